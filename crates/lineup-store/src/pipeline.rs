//! The history side of a node in one piece: an outbox with a history drainer and, when a
//! path is configured, a queue_log file drainer. The node binary starts one, hands it every
//! applied entry, and reads its health for `/readyz` and metrics.

use std::path::PathBuf;

use lineup_core::Effect;

use crate::error::StoreError;
use crate::history::{AuditQuery, AuditRow, ConfigFeed, ConfigMirror, HistorySink, HistoryStore};
use crate::outbox::{Drainer, DrainerStatus, Outbox, OutboxLag, Submitted};
use crate::queue_log::{QueueLogFile, QueueLogSink};
use crate::{SINK_HISTORY, SINK_QUEUE_LOG};

/// Where history goes.
#[derive(Debug, Clone)]
pub struct HistoryPipelineConfig {
    /// The local outbox file (redb), e.g. `<data dir>/history-outbox.redb`.
    pub outbox_path: PathBuf,
    /// `postgres://…` or `sqlite:…` (the embedded default, e.g. `sqlite://<data dir>/history.db`).
    pub database_url: String,
    /// The Asterisk-format queue_log file, if wanted.
    pub queue_log_path: Option<PathBuf>,
}

/// How history is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryHealth {
    pub lag: OutboxLag,
    pub database: DrainerStatus,
    pub queue_log: Option<DrainerStatus>,
    /// A failing local outbox write (the one thing that can make submit return an error).
    pub outbox_write_error: Option<String>,
}

impl HistoryHealth {
    /// True when every sink is delivering (entries may still be in flight).
    pub fn is_healthy(&self) -> bool {
        self.outbox_write_error.is_none()
            && self.database.consecutive_failures == 0
            && self.queue_log.as_ref().is_none_or(|q| q.consecutive_failures == 0)
    }
}

/// A running history pipeline. Must be started inside a tokio runtime.
pub struct HistoryPipeline {
    outbox: Outbox,
    database: Drainer,
    queue_log: Option<Drainer>,
    config: ConfigFeed,
    database_url: String,
    /// The database for reads (the audit trail, reports), opened on first use apart from the
    /// drainer's connection, so a read never waits behind a history write.
    reader: tokio::sync::OnceCell<HistoryStore>,
}

impl HistoryPipeline {
    /// Opens the outbox and the queue_log file and starts the drainers. The database is
    /// connected lazily by its drainer, so an unreachable database does not stop a node
    /// from starting: history waits in the outbox.
    pub fn start(config: HistoryPipelineConfig) -> Result<Self, StoreError> {
        let sinks: &[&str] =
            if config.queue_log_path.is_some() { &[SINK_HISTORY, SINK_QUEUE_LOG] } else { &[SINK_HISTORY] };
        let outbox = Outbox::open(&config.outbox_path, sinks)?;
        let queue_log = match &config.queue_log_path {
            Some(path) => {
                let sink = QueueLogSink::new(QueueLogFile::open(path)?);
                Some(outbox.spawn_drainer(SINK_QUEUE_LOG, sink)?)
            }
            None => None,
        };
        let (sink, feed) = HistorySink::new(config.database_url.clone());
        let database = outbox.spawn_drainer(SINK_HISTORY, sink)?;
        let reader = tokio::sync::OnceCell::new();
        Ok(Self { outbox, database, queue_log, config: feed, database_url: config.database_url, reader })
    }

    /// Hands over one applied entry (see [`Outbox::submit`]: never waits on the database).
    pub fn submit(&self, apply_index: u64, effects: Vec<Effect>) -> Result<Submitted, StoreError> {
        self.outbox.submit(apply_index, effects)
    }

    /// Mirrors the routing configuration for SQL reports (call after config changes; an
    /// unchanged configuration is ignored).
    pub fn update_config(&self, config: ConfigMirror) {
        self.config.update(config);
    }

    /// Audit rows from the history database, newest first. Rows appear once the drainer has
    /// delivered their entries (shortly after apply; later while the database is down).
    pub async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
        self.reader().await?.audit(query).await
    }

    /// The database for reads (audit trail, reports), opened on first use.
    pub async fn reader(&self) -> Result<&HistoryStore, StoreError> {
        self.reader.get_or_try_init(|| HistoryStore::open(&self.database_url)).await
    }

    pub fn health(&self) -> Result<HistoryHealth, StoreError> {
        Ok(HistoryHealth {
            lag: self.outbox.lag()?,
            database: self.database.status(),
            queue_log: self.queue_log.as_ref().map(Drainer::status),
            outbox_write_error: self.outbox.write_error(),
        })
    }

    /// Stops the drainers; what they have not delivered stays in the outbox for next time.
    pub async fn stop(self) {
        self.database.stop().await;
        if let Some(queue_log) = self.queue_log {
            queue_log.stop().await;
        }
    }
}
