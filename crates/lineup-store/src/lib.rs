//! lineup-store: where committed effects go after routing is done with them. Nothing here
//! is routing truth (the Raft log is), and nothing in routing waits on anything here.
//!
//! - [`history`]: PostgreSQL or SQLite history (calls, operator events and sessions, callback
//!   promises, Asterisk's adaptive `queue_log` table, a config mirror), idempotent by log index.
//! - [`outbox`]: the local durable queue between the apply stream and the sinks, so a
//!   database outage delays history and loses nothing; see its docs for why submit never
//!   waits on the database.
//! - [`queue_log`]: the Asterisk queue_log flat file, exactly once across restarts.
//! - [`projection`]: the Redis live projection (optional; degraded, never blocking, when
//!   Redis is down; rebuilt from state to catch up).
//! - [`pipeline`]: the history side wired for a node.
//! - [`assembler`]: whole entries from a per-effect stream (both sinks need whole entries).
//!
//! Wiring in a node: start a [`HistoryPipeline`] (an [`Outbox`] drained into a
//! [`HistorySink`] and a [`QueueLogSink`]), hand it every applied entry with
//! [`HistoryPipeline::submit`] and the routing config with [`HistoryPipeline::update_config`];
//! read [`HistoryPipeline::health`] for readiness and the outbox lag metric. Start a
//! [`RedisProjection`] with a [`StateSource`] reading the node's state, and hand it the same
//! entries with [`RedisProjection::submit`].
pub mod assembler;
pub mod error;
pub mod history;
pub mod outbox;
pub mod pipeline;
pub mod projection;
pub mod queue_log;

pub use assembler::EntryAssembler;
pub use error::StoreError;
pub use history::{
    AuditQuery, AuditRow, BatchOutcome, ConfigFeed, ConfigMirror, Dialect, HistorySink, HistoryStore, OperatorPath,
    OperatorReportRow, QueueReportRow, ReportInterval, ReportQuery,
};
pub use outbox::{AppliedEntry, DatabaseOpener, Drainer, DrainerStatus, Outbox, OutboxLag, OutboxSink, Submitted};
pub use pipeline::{HistoryHealth, HistoryPipeline, HistoryPipelineConfig};
pub use projection::{ProjectionConfig, ProjectionHealth, ProjectionState, RedisProjection, StateSource};
pub use queue_log::{QueueLogFile, QueueLogSink};

/// Sink name of the history database in an [`Outbox`].
pub const SINK_HISTORY: &str = "history";
/// Sink name of the queue_log flat file in an [`Outbox`].
pub const SINK_QUEUE_LOG: &str = "queue_log";
