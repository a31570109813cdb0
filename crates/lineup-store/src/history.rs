//! The history store: PostgreSQL or SQLite (the embedded default), same schema, one
//! migration set per dialect (`migrations/postgres`, `migrations/sqlite`).
//!
//! History is written from committed effects, batch by batch, each batch in one transaction
//! that also advances `history_watermark`. Anything at or below the watermark is skipped,
//! and every row's key is `(log_index, seq)` with `seq` the effect's position in its entry,
//! so replaying a batch (after a crash, or from a second site writing to the same database)
//! adds no row.
//!
//! Queries are plain runtime `sqlx::query` strings, written once per dialect where they
//! differ; no compile-time-checked macros (they bind a crate to one database).

use std::str::FromStr;
use std::time::Duration;

use lineup_core::{
    CallRecord, Effect, GateConfig, HungUpBy, OperatorConfig, OperatorMode, OperatorStatus, OperatorView, Outcome,
    QueueConfig, QueueLogEntry, QueueLogVerb, Routing,
};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::error::StoreError;

/// Connections per PostgreSQL pool: history is written by one drainer and read by reports.
pub const POSTGRES_POOL_MAX_CONNECTIONS: u32 = 4;
/// SQLite allows one writer; a second connection serves reads during a write.
pub const SQLITE_POOL_MAX_CONNECTIONS: u32 = 2;
/// How long a caller waits for a pooled connection (also bounds a connect attempt).
pub const POOL_ACQUIRE_TIMEOUT_MS: u64 = 5_000;
/// How long SQLite waits for a lock held by another connection.
pub const SQLITE_BUSY_TIMEOUT_MS: u64 = 5_000;
/// Data columns of Asterisk's adaptive queue_log table (`data1`..`data5`).
pub const QUEUE_LOG_DATA_COLUMNS: usize = 5;
/// SQLite has no migration lock (PostgreSQL's migrator takes an advisory lock): two stores
/// opening one new file at once race to create the tables, and the loser sees "already
/// exists". It retries, and then finds the migration applied.
pub const SQLITE_MIGRATION_ATTEMPTS_MAX: u32 = 5;
pub const SQLITE_MIGRATION_RETRY_MS: u64 = 100;
/// Most rows one read method returns (reads are for reports and tests, newest last).
pub const READ_MAX_ROWS: i64 = 100_000;

static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("../../migrations/postgres");
static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");

/// Which SQL dialect a store speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

#[derive(Debug, Clone)]
enum Backend {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// The history database. Cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct HistoryStore {
    backend: Backend,
}

/// What one [`HistoryStore::write_batch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchOutcome {
    /// Entries above the watermark, written.
    pub entries_written: usize,
    /// Entries at or below the watermark, skipped (already in the database).
    pub entries_skipped: usize,
    /// Rows inserted across all tables.
    pub rows_inserted: u64,
    /// The watermark after the batch.
    pub watermark: u64,
}

/// One SQL statement in both dialects (PostgreSQL `$n`, SQLite `?n`, same argument order).
struct Statement {
    postgres: &'static str,
    sqlite: &'static str,
}

/// A bound value: the history schema only needs 64-bit integers and text.
#[derive(Debug, Clone)]
enum Arg {
    Int(i64),
    OptInt(Option<i64>),
    Text(String),
    OptText(Option<String>),
}

macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                Arg::Int(v) => query.bind(*v),
                Arg::OptInt(v) => query.bind(*v),
                Arg::Text(v) => query.bind(v.clone()),
                Arg::OptText(v) => query.bind(v.clone()),
            };
        }
        query
    }};
}

/// Fetches rows of `$row` with the same SQL on either backend.
macro_rules! fetch_rows {
    ($store:expr, $row:ty, $sql:expr) => {
        match &$store.backend {
            Backend::Postgres(pool) => sqlx::query_as::<_, $row>($sql).bind(READ_MAX_ROWS).fetch_all(pool).await?,
            Backend::Sqlite(pool) => sqlx::query_as::<_, $row>($sql).bind(READ_MAX_ROWS).fetch_all(pool).await?,
        }
    };
}

enum Tx {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

impl Tx {
    async fn execute(&mut self, statement: &Statement, args: &[Arg]) -> Result<u64, StoreError> {
        Ok(match self {
            Tx::Postgres(tx) => {
                bind_args!(sqlx::query(statement.postgres), args).execute(&mut **tx).await?.rows_affected()
            }
            Tx::Sqlite(tx) => bind_args!(sqlx::query(statement.sqlite), args).execute(&mut **tx).await?.rows_affected(),
        })
    }

    async fn fetch_i64(&mut self, statement: &Statement) -> Result<i64, StoreError> {
        Ok(match self {
            Tx::Postgres(tx) => sqlx::query_scalar::<_, i64>(statement.postgres).fetch_one(&mut **tx).await?,
            Tx::Sqlite(tx) => sqlx::query_scalar::<_, i64>(statement.sqlite).fetch_one(&mut **tx).await?,
        })
    }

    async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Postgres(tx) => tx.commit().await?,
            Tx::Sqlite(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

// Row locks serialise writers when several sites share one PostgreSQL database: the second
// writer waits, then sees the first one's watermark and skips what it already wrote.
const SELECT_WATERMARK: Statement = Statement {
    postgres: "SELECT log_index FROM history_watermark WHERE id = 1 FOR UPDATE",
    sqlite: "SELECT log_index FROM history_watermark WHERE id = 1",
};

const UPDATE_WATERMARK: Statement = Statement {
    postgres: "UPDATE history_watermark SET log_index = $1 WHERE id = 1",
    sqlite: "UPDATE history_watermark SET log_index = ?1 WHERE id = 1",
};

const INSERT_CALL: Statement = Statement {
    postgres: "INSERT INTO calls (log_index, seq, call_id, queue, gate, priority, entry_site, caller_number, \
               caller_name, outcome, outcome_detail, entered_at_ms, ended_at_ms, wait_ms, handle_ms, operator, \
               operator_site, callback_number, callback_attempts) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) \
               ON CONFLICT DO NOTHING",
    sqlite: "INSERT INTO calls (log_index, seq, call_id, queue, gate, priority, entry_site, caller_number, \
             caller_name, outcome, outcome_detail, entered_at_ms, ended_at_ms, wait_ms, handle_ms, operator, \
             operator_site, callback_number, callback_attempts) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19) \
             ON CONFLICT DO NOTHING",
};

const INSERT_OPERATOR_EVENT: Statement = Statement {
    postgres: "INSERT INTO operator_events (log_index, seq, operator, status, reason, call_id, site, channel, at_ms) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
    sqlite: "INSERT INTO operator_events (log_index, seq, operator, status, reason, call_id, site, channel, at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING",
};

const INSERT_CALLBACK_EVENT: Statement = Statement {
    postgres: "INSERT INTO callback_events (log_index, seq, call_id, queue, gate, event, number, position, operator, \
               attempts_left, at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
    sqlite: "INSERT INTO callback_events (log_index, seq, call_id, queue, gate, event, number, position, operator, \
             attempts_left, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT DO NOTHING",
};

const INSERT_QUEUE_LOG: Statement = Statement {
    postgres: "INSERT INTO queue_log (log_index, seq, time, at_ms, callid, queuename, agent, event, data1, data2, \
               data3, data4, data5) VALUES ($1, $2, to_timestamp($3::float8 / 1000), $3, $4, $5, $6, $7, $8, $9, \
               $10, $11, $12) ON CONFLICT DO NOTHING",
    sqlite: "INSERT INTO queue_log (log_index, seq, time, at_ms, callid, queuename, agent, event, data1, data2, \
             data3, data4, data5) VALUES (?1, ?2, strftime('%Y-%m-%d %H:%M:%f', ?3 / 1000.0, 'unixepoch'), ?3, ?4, \
             ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT DO NOTHING",
};

const INSERT_CONFIG_QUEUE: Statement = Statement {
    postgres: "INSERT INTO config_queues (id, name, default_priority, weight, max_waiting, max_wait_ms, \
               service_level_ms, wrap_up_ms, schedule, config_json, log_index) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    sqlite: "INSERT INTO config_queues (id, name, default_priority, weight, max_waiting, max_wait_ms, \
             service_level_ms, wrap_up_ms, schedule, config_json, log_index) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
};

const INSERT_CONFIG_GATE: Statement = Statement {
    postgres: "INSERT INTO config_gates (id, queue, priority, whisper, config_json, log_index) \
               VALUES ($1, $2, $3, $4, $5, $6)",
    sqlite: "INSERT INTO config_gates (id, queue, priority, whisper, config_json, log_index) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
};

const INSERT_CONFIG_OPERATOR: Statement = Statement {
    postgres: "INSERT INTO config_operators (id, name, site, mode, endpoint, config_json, log_index) \
               VALUES ($1, $2, $3, $4, $5, $6, $7)",
    sqlite: "INSERT INTO config_operators (id, name, site, mode, endpoint, config_json, log_index) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
};

const INSERT_CONFIG_OPERATOR_QUEUE: Statement = Statement {
    postgres: "INSERT INTO config_operator_queues (operator, queue, penalty) VALUES ($1, $2, $3)",
    sqlite: "INSERT INTO config_operator_queues (operator, queue, penalty) VALUES (?1, ?2, ?3)",
};

const CLEAR_CONFIG: [Statement; 4] = [
    Statement { postgres: "DELETE FROM config_queues", sqlite: "DELETE FROM config_queues" },
    Statement { postgres: "DELETE FROM config_gates", sqlite: "DELETE FROM config_gates" },
    Statement { postgres: "DELETE FROM config_operators", sqlite: "DELETE FROM config_operators" },
    Statement { postgres: "DELETE FROM config_operator_queues", sqlite: "DELETE FROM config_operator_queues" },
];

/// Database integers are signed; log indexes, times and site ids never come near 2^63, and
/// a history writer must not wedge on one absurd value, so out-of-range values saturate.
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn outcome_columns(outcome: &Outcome) -> (&'static str, Option<String>) {
    match outcome {
        Outcome::Completed { by } => ("completed", Some(hung_up_by_name(*by).to_string())),
        Outcome::Transferred { target } => ("transferred", Some(target.clone())),
        Outcome::Abandoned => ("abandoned", None),
        Outcome::TimedOut => ("timed_out", None),
        Outcome::Full => ("full", None),
        Outcome::Closed => ("closed", None),
        Outcome::Empty => ("empty", None),
        Outcome::ExitWithKey { key } => ("exit_with_key", Some(key.to_string())),
        Outcome::CallbackFailed => ("callback_failed", None),
        Outcome::SiteLost => ("site_lost", None),
    }
}

fn hung_up_by_name(by: HungUpBy) -> &'static str {
    match by {
        HungUpBy::Caller => "caller",
        HungUpBy::Operator => "operator",
        HungUpBy::SiteLost => "site_lost",
    }
}

fn mode_name(mode: OperatorMode) -> &'static str {
    match mode {
        OperatorMode::Persistent => "persistent",
        OperatorMode::Ring => "ring",
    }
}

fn call_args(log_index: u64, seq: usize, r: &CallRecord) -> Vec<Arg> {
    let (outcome, detail) = outcome_columns(&r.outcome);
    vec![
        Arg::Int(int(log_index)),
        Arg::Int(int(seq as u64)),
        Arg::Text(r.call.to_string()),
        Arg::Text(r.queue.to_string()),
        Arg::OptText(r.gate.as_ref().map(ToString::to_string)),
        Arg::Int(i64::from(r.priority)),
        Arg::Int(int(r.entry_site.0)),
        Arg::Text(r.caller_number.clone()),
        Arg::Text(r.caller_name.clone()),
        Arg::Text(outcome.to_string()),
        Arg::OptText(detail),
        Arg::Int(int(r.entered_at_ms)),
        Arg::Int(int(r.ended_at_ms)),
        Arg::Int(int(r.wait_ms)),
        Arg::OptInt(r.handle_ms.map(int)),
        Arg::OptText(r.operator.as_ref().map(ToString::to_string)),
        Arg::OptInt(r.operator_site.map(|s| int(s.0))),
        Arg::OptText(r.callback_number.clone()),
        Arg::Int(i64::from(r.callback_attempts)),
    ]
}

fn operator_event_args(log_index: u64, seq: usize, v: &OperatorView) -> Vec<Arg> {
    let (reason, call) = match &v.status {
        OperatorStatus::Break { reason } => (Some(reason.clone()), None),
        OperatorStatus::Offered { call, .. } | OperatorStatus::Busy { call, .. } => (None, Some(call.to_string())),
        OperatorStatus::Offline | OperatorStatus::Available | OperatorStatus::WrapUp { .. } => (None, None),
    };
    vec![
        Arg::Int(int(log_index)),
        Arg::Int(int(seq as u64)),
        Arg::Text(v.operator.to_string()),
        Arg::Text(v.status.name().to_string()),
        Arg::OptText(reason),
        Arg::OptText(call),
        Arg::OptInt(v.site.map(|s| int(s.0))),
        Arg::OptText(v.channel.clone()),
        Arg::Int(int(v.since_ms)),
    ]
}

/// The adaptive queue_log columns of one entry, taken apart from [`QueueLogEntry::to_line`]
/// so the table and the flat file can never disagree. Ids cannot hold `|` and data fields
/// have it replaced, so splitting on `|` is exact.
pub fn queue_log_columns(entry: &QueueLogEntry) -> QueueLogColumns {
    let line = entry.to_line();
    let mut fields = line.split('|');
    let mut next = || fields.next().unwrap_or("").to_string();
    let _epoch = next();
    let (callid, queuename, agent, event) = (next(), next(), next(), next());
    let rest: Vec<&str> = line.splitn(6, '|').nth(5).map(|d| d.split('|').collect()).unwrap_or_default();
    let mut data: [String; QUEUE_LOG_DATA_COLUMNS] = Default::default();
    for (i, field) in rest.iter().enumerate() {
        if i < QUEUE_LOG_DATA_COLUMNS - 1 {
            data[i] = field.to_string();
        } else {
            // Asterisk keeps whatever does not fit in the last column.
            data[QUEUE_LOG_DATA_COLUMNS - 1] = rest[i..].join("|");
            break;
        }
    }
    QueueLogColumns { callid, queuename, agent, event, data }
}

/// One queue_log row as Asterisk's adaptive realtime table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueLogColumns {
    pub callid: String,
    pub queuename: String,
    pub agent: String,
    pub event: String,
    pub data: [String; QUEUE_LOG_DATA_COLUMNS],
}

fn queue_log_args(log_index: u64, seq: usize, e: &QueueLogEntry) -> Vec<Arg> {
    let c = queue_log_columns(e);
    let mut args = vec![
        Arg::Int(int(log_index)),
        Arg::Int(int(seq as u64)),
        Arg::Int(int(e.at_ms)),
        Arg::Text(c.callid),
        Arg::Text(c.queuename),
        Arg::Text(c.agent),
        Arg::Text(c.event),
    ];
    args.extend(c.data.into_iter().map(Arg::Text));
    args
}

/// CALLBACKREQUEST data is `number|position|origpos|wait_s`; CALLBACKFAILED is
/// `attempts_left`, with the operator as agent (see lineup-core's routing).
fn callback_event_args(log_index: u64, seq: usize, e: &QueueLogEntry) -> Option<Vec<Arg>> {
    let field = |i: usize| e.data.get(i).cloned();
    let number = |i: usize| field(i).and_then(|s| s.parse::<i64>().ok());
    let (event, number_text, position, attempts_left) = match e.verb {
        QueueLogVerb::CallbackRequest => ("request", field(0), number(1), None),
        QueueLogVerb::CallbackFailed => ("failed", None, None, number(0)),
        _ => return None,
    };
    Some(vec![
        Arg::Int(int(log_index)),
        Arg::Int(int(seq as u64)),
        Arg::Text(e.call.as_ref().map_or_else(|| "NONE".to_string(), ToString::to_string)),
        Arg::Text(e.queue.as_ref().map_or_else(|| "NONE".to_string(), ToString::to_string)),
        Arg::OptText(e.gate.as_ref().map(ToString::to_string)),
        Arg::Text(event.to_string()),
        Arg::OptText(number_text),
        Arg::OptInt(position),
        Arg::OptText(e.agent.as_ref().map(ToString::to_string)),
        Arg::OptInt(attempts_left),
        Arg::Int(int(e.at_ms)),
    ])
}

/// Is this effect something history records? (The outbox keeps only these.)
pub fn is_history_effect(effect: &Effect) -> bool {
    matches!(effect, Effect::CallEnded(_) | Effect::QueueLog(_) | Effect::OperatorChanged(_))
}

/// The routing configuration as mirrored for SQL reports (PIN hashes removed).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigMirror {
    /// The log index the configuration was read at.
    pub log_index: u64,
    pub queues: Vec<QueueConfig>,
    pub gates: Vec<GateConfig>,
    pub operators: Vec<OperatorConfig>,
}

impl ConfigMirror {
    pub fn from_routing(routing: &Routing) -> Self {
        Self {
            log_index: routing.last_applied_index(),
            queues: routing.queue_configs().cloned().collect(),
            gates: routing.gate_configs().cloned().collect(),
            operators: routing
                .operator_configs()
                .map(|o| OperatorConfig { pin_hash: String::new(), ..o.clone() })
                .collect(),
        }
    }

    /// Same configuration, whatever index it was read at.
    pub fn same_config_as(&self, other: &ConfigMirror) -> bool {
        self.queues == other.queues && self.gates == other.gates && self.operators == other.operators
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Encode(e.to_string()))
}

/// A row of `calls`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CallRow {
    pub log_index: i64,
    pub call_id: String,
    pub queue: String,
    pub gate: Option<String>,
    pub priority: i64,
    pub entry_site: i64,
    pub caller_number: String,
    pub caller_name: String,
    pub outcome: String,
    pub outcome_detail: Option<String>,
    pub entered_at_ms: i64,
    pub ended_at_ms: i64,
    pub wait_ms: i64,
    pub handle_ms: Option<i64>,
    pub operator: Option<String>,
    pub operator_site: Option<i64>,
    pub callback_number: Option<String>,
    pub callback_attempts: i64,
}

/// A row of `operator_events`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OperatorEventRow {
    pub log_index: i64,
    pub operator: String,
    pub status: String,
    pub reason: Option<String>,
    pub call_id: Option<String>,
    pub site: Option<i64>,
    pub channel: Option<String>,
    pub at_ms: i64,
}

/// A row of the `operator_sessions` view.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OperatorSessionRow {
    pub operator: String,
    pub site: Option<i64>,
    pub login_at_ms: i64,
    pub logout_at_ms: Option<i64>,
}

/// A row of `callback_events`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CallbackEventRow {
    pub log_index: i64,
    pub call_id: String,
    pub queue: String,
    pub event: String,
    pub number: Option<String>,
    pub position: Option<i64>,
    pub operator: Option<String>,
    pub attempts_left: Option<i64>,
    pub at_ms: i64,
}

/// A row of `queue_log` (the `time` column is left out: its type differs per dialect).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct QueueLogRow {
    pub log_index: i64,
    pub seq: i64,
    pub at_ms: i64,
    pub callid: String,
    pub queuename: String,
    pub agent: String,
    pub event: String,
    pub data1: String,
    pub data2: String,
    pub data3: String,
    pub data4: String,
    pub data5: String,
}

/// A row of `config_operator_queues`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OperatorQueueRow {
    pub operator: String,
    pub queue: String,
    pub penalty: i64,
}

impl HistoryStore {
    /// Opens (creating a SQLite file if needed) and migrates the database at `url`:
    /// `postgres://…` / `postgresql://…`, or `sqlite:path` / `sqlite://path`.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let acquire = Duration::from_millis(POOL_ACQUIRE_TIMEOUT_MS);
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(POSTGRES_POOL_MAX_CONNECTIONS)
                .acquire_timeout(acquire)
                .connect(url)
                .await?;
            POSTGRES_MIGRATOR.run(&pool).await?;
            Backend::Postgres(pool)
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_millis(SQLITE_BUSY_TIMEOUT_MS));
            // Openers of a new file race twice: switching the journal to WAL while connecting
            // (answered "database is locked" at once, the busy timeout does not apply to it)
            // and running the migration. Both are retried a bounded number of times.
            let mut attempt = 1;
            let pool = loop {
                let opened = async {
                    let pool = SqlitePoolOptions::new()
                        .max_connections(SQLITE_POOL_MAX_CONNECTIONS)
                        .acquire_timeout(acquire)
                        .connect_with(options.clone())
                        .await?;
                    SQLITE_MIGRATOR.run(&pool).await?;
                    Ok::<_, StoreError>(pool)
                }
                .await;
                match opened {
                    Ok(pool) => break pool,
                    Err(e) if attempt < SQLITE_MIGRATION_ATTEMPTS_MAX => {
                        tracing::debug!(error = %e, attempt, "sqlite open raced another opener; retrying");
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(SQLITE_MIGRATION_RETRY_MS)).await;
                    }
                    Err(e) => return Err(e),
                }
            };
            Backend::Sqlite(pool)
        } else {
            return Err(StoreError::UnsupportedUrl { url: redact_url(url) });
        };
        Ok(Self { backend })
    }

    pub fn dialect(&self) -> Dialect {
        match self.backend {
            Backend::Postgres(_) => Dialect::Postgres,
            Backend::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Closes the pool (waits for checked-out connections to return).
    pub async fn close(&self) {
        match &self.backend {
            Backend::Postgres(pool) => pool.close().await,
            Backend::Sqlite(pool) => pool.close().await,
        }
    }

    async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match &self.backend {
            Backend::Postgres(pool) => Tx::Postgres(pool.begin().await?),
            Backend::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
        })
    }

    /// The last log index whose effects are in the database.
    pub async fn watermark(&self) -> Result<u64, StoreError> {
        let sql = "SELECT log_index FROM history_watermark WHERE id = 1";
        let value = match &self.backend {
            Backend::Postgres(pool) => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await?,
            Backend::Sqlite(pool) => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await?,
        };
        Ok(u64::try_from(value).unwrap_or(0))
    }

    /// Writes the history rows of `entries` (log index, that entry's effects, in increasing
    /// index order) in one transaction that also advances the watermark. Entries at or below
    /// the watermark are skipped, so a replayed batch writes nothing twice. Effects that are
    /// not history (call control, projections other than operator changes) are ignored.
    pub async fn write_batch(&self, entries: &[(u64, Vec<Effect>)]) -> Result<BatchOutcome, StoreError> {
        for pair in entries.windows(2) {
            if pair[1].0 <= pair[0].0 {
                return Err(StoreError::BatchOutOfOrder { previous: pair[0].0, index: pair[1].0 });
            }
        }
        let mut tx = self.begin().await?;
        let watermark = u64::try_from(tx.fetch_i64(&SELECT_WATERMARK).await?).unwrap_or(0);
        let mut outcome = BatchOutcome { watermark, ..BatchOutcome::default() };
        for (log_index, effects) in entries {
            if *log_index <= watermark {
                outcome.entries_skipped += 1;
                continue;
            }
            outcome.entries_written += 1;
            for (seq, effect) in effects.iter().enumerate() {
                outcome.rows_inserted += match effect {
                    Effect::CallEnded(record) => tx.execute(&INSERT_CALL, &call_args(*log_index, seq, record)).await?,
                    Effect::OperatorChanged(view) => {
                        tx.execute(&INSERT_OPERATOR_EVENT, &operator_event_args(*log_index, seq, view)).await?
                    }
                    Effect::QueueLog(entry) => {
                        let mut rows = tx.execute(&INSERT_QUEUE_LOG, &queue_log_args(*log_index, seq, entry)).await?;
                        if let Some(args) = callback_event_args(*log_index, seq, entry) {
                            rows += tx.execute(&INSERT_CALLBACK_EVENT, &args).await?;
                        }
                        rows
                    }
                    _ => 0,
                };
            }
            outcome.watermark = *log_index;
        }
        if outcome.watermark > watermark {
            tx.execute(&UPDATE_WATERMARK, &[Arg::Int(int(outcome.watermark))]).await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }

    /// Replaces the config mirror tables with `config` in one transaction.
    pub async fn mirror_config(&self, config: &ConfigMirror) -> Result<(), StoreError> {
        let at = Arg::Int(int(config.log_index));
        let mut tx = self.begin().await?;
        for statement in &CLEAR_CONFIG {
            tx.execute(statement, &[]).await?;
        }
        for q in &config.queues {
            let args = [
                Arg::Text(q.id.to_string()),
                Arg::Text(q.name.clone()),
                Arg::Int(i64::from(q.default_priority)),
                Arg::Int(i64::from(q.weight)),
                Arg::Int(i64::from(q.max_waiting)),
                Arg::OptInt(q.max_wait_ms.map(int)),
                Arg::Int(int(q.service_level_ms)),
                Arg::Int(int(q.wrap_up_ms)),
                Arg::OptText(q.schedule.as_ref().map(ToString::to_string)),
                Arg::Text(json(q)?),
                at.clone(),
            ];
            tx.execute(&INSERT_CONFIG_QUEUE, &args).await?;
        }
        for g in &config.gates {
            let args = [
                Arg::Text(g.id.to_string()),
                Arg::Text(g.queue.to_string()),
                Arg::OptInt(g.priority.map(i64::from)),
                Arg::OptText(g.whisper.clone()),
                Arg::Text(json(g)?),
                at.clone(),
            ];
            tx.execute(&INSERT_CONFIG_GATE, &args).await?;
        }
        for o in &config.operators {
            let without_pin = OperatorConfig { pin_hash: String::new(), ..o.clone() };
            let args = [
                Arg::Text(o.id.to_string()),
                Arg::Text(o.name.clone()),
                Arg::Int(int(o.site.0)),
                Arg::Text(mode_name(o.mode).to_string()),
                Arg::OptText(o.endpoint.clone()),
                Arg::Text(json(&without_pin)?),
                at.clone(),
            ];
            tx.execute(&INSERT_CONFIG_OPERATOR, &args).await?;
            for (queue, penalty) in &o.memberships {
                let args = [Arg::Text(o.id.to_string()), Arg::Text(queue.to_string()), Arg::Int(i64::from(*penalty))];
                tx.execute(&INSERT_CONFIG_OPERATOR_QUEUE, &args).await?;
            }
        }
        tx.commit().await
    }

    /// Ended calls, oldest first.
    pub async fn calls(&self) -> Result<Vec<CallRow>, StoreError> {
        Ok(fetch_rows!(
            self,
            CallRow,
            "SELECT CAST(log_index AS BIGINT) AS log_index, call_id, queue, gate, \
             CAST(priority AS BIGINT) AS priority, CAST(entry_site AS BIGINT) AS entry_site, caller_number, \
             caller_name, outcome, outcome_detail, CAST(entered_at_ms AS BIGINT) AS entered_at_ms, \
             CAST(ended_at_ms AS BIGINT) AS ended_at_ms, CAST(wait_ms AS BIGINT) AS wait_ms, \
             CAST(handle_ms AS BIGINT) AS handle_ms, operator, CAST(operator_site AS BIGINT) AS operator_site, \
             callback_number, CAST(callback_attempts AS BIGINT) AS callback_attempts \
             FROM calls ORDER BY log_index, seq LIMIT $1"
        ))
    }

    /// Operator state changes, oldest first.
    pub async fn operator_events(&self) -> Result<Vec<OperatorEventRow>, StoreError> {
        Ok(fetch_rows!(
            self,
            OperatorEventRow,
            "SELECT CAST(log_index AS BIGINT) AS log_index, operator, status, reason, call_id, \
             CAST(site AS BIGINT) AS site, channel, CAST(at_ms AS BIGINT) AS at_ms \
             FROM operator_events ORDER BY log_index, seq LIMIT $1"
        ))
    }

    /// Operator sessions (the `operator_sessions` view), by operator then login.
    pub async fn operator_sessions(&self) -> Result<Vec<OperatorSessionRow>, StoreError> {
        Ok(fetch_rows!(
            self,
            OperatorSessionRow,
            "SELECT operator, CAST(site AS BIGINT) AS site, CAST(login_at_ms AS BIGINT) AS login_at_ms, \
             CAST(logout_at_ms AS BIGINT) AS logout_at_ms \
             FROM operator_sessions ORDER BY operator, login_log_index LIMIT $1"
        ))
    }

    /// Callback promises and failed attempts, oldest first.
    pub async fn callback_events(&self) -> Result<Vec<CallbackEventRow>, StoreError> {
        Ok(fetch_rows!(
            self,
            CallbackEventRow,
            "SELECT CAST(log_index AS BIGINT) AS log_index, call_id, queue, event, number, \
             CAST(position AS BIGINT) AS position, operator, CAST(attempts_left AS BIGINT) AS attempts_left, \
             CAST(at_ms AS BIGINT) AS at_ms FROM callback_events ORDER BY log_index, seq LIMIT $1"
        ))
    }

    /// The queue_log table, oldest first.
    pub async fn queue_log(&self) -> Result<Vec<QueueLogRow>, StoreError> {
        Ok(fetch_rows!(
            self,
            QueueLogRow,
            "SELECT CAST(log_index AS BIGINT) AS log_index, CAST(seq AS BIGINT) AS seq, \
             CAST(at_ms AS BIGINT) AS at_ms, callid, queuename, agent, event, data1, data2, data3, data4, data5 \
             FROM queue_log ORDER BY log_index, seq LIMIT $1"
        ))
    }

    /// Mirrored queue ids, sorted.
    pub async fn config_queue_ids(&self) -> Result<Vec<String>, StoreError> {
        let sql = "SELECT id FROM config_queues ORDER BY id LIMIT $1";
        Ok(match &self.backend {
            Backend::Postgres(pool) => sqlx::query_scalar::<_, String>(sql).bind(READ_MAX_ROWS).fetch_all(pool).await?,
            Backend::Sqlite(pool) => sqlx::query_scalar::<_, String>(sql).bind(READ_MAX_ROWS).fetch_all(pool).await?,
        })
    }

    /// Mirrored memberships (operator, queue, penalty), sorted.
    pub async fn config_operator_queues(&self) -> Result<Vec<OperatorQueueRow>, StoreError> {
        Ok(fetch_rows!(
            self,
            OperatorQueueRow,
            "SELECT operator, queue, CAST(penalty AS BIGINT) AS penalty FROM config_operator_queues \
             ORDER BY operator, queue LIMIT $1"
        ))
    }
}

/// The history database as an outbox sink. Connects lazily and reconnects on its own, so a
/// drainer can start while PostgreSQL is down; also mirrors the routing configuration
/// handed to its [`ConfigFeed`] whenever it changed.
pub struct HistorySink {
    url: String,
    store: Option<HistoryStore>,
    config: tokio::sync::watch::Receiver<Option<ConfigMirror>>,
    mirrored: Option<ConfigMirror>,
}

/// Hands the current routing configuration to a [`HistorySink`] (state, not history: only
/// the latest one matters, so an outage loses nothing).
#[derive(Debug, Clone)]
pub struct ConfigFeed(std::sync::Arc<tokio::sync::watch::Sender<Option<ConfigMirror>>>);

impl ConfigFeed {
    /// Mirrors `config` at the sink's next chance, if it differs from the last one given.
    pub fn update(&self, config: ConfigMirror) {
        self.0.send_if_modified(|current| match current {
            Some(c) if c.same_config_as(&config) => false,
            _ => {
                *current = Some(config);
                true
            }
        });
    }
}

impl HistorySink {
    pub fn new(url: impl Into<String>) -> (Self, ConfigFeed) {
        let (tx, rx) = tokio::sync::watch::channel(None);
        (Self { url: url.into(), store: None, config: rx, mirrored: None }, ConfigFeed(std::sync::Arc::new(tx)))
    }

    /// The store, once connected.
    pub fn store(&self) -> Option<&HistoryStore> {
        self.store.as_ref()
    }

    async fn connected(&mut self) -> Result<HistoryStore, StoreError> {
        if let Some(store) = &self.store {
            return Ok(store.clone());
        }
        let store = HistoryStore::open(&self.url).await?;
        self.store = Some(store.clone());
        Ok(store)
    }

    async fn mirror_if_changed(&mut self) -> Result<(), StoreError> {
        let latest = self.config.borrow().clone();
        let Some(latest) = latest else { return Ok(()) };
        if self.mirrored.as_ref().is_some_and(|m| m.same_config_as(&latest)) {
            return Ok(());
        }
        self.connected().await?.mirror_config(&latest).await?;
        self.mirrored = Some(latest);
        Ok(())
    }
}

impl std::fmt::Debug for HistorySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistorySink").field("url", &redact_url(&self.url)).finish_non_exhaustive()
    }
}

impl crate::outbox::OutboxSink for HistorySink {
    async fn deliver(&mut self, entries: &[crate::outbox::AppliedEntry]) -> Result<(), StoreError> {
        self.connected().await?.write_batch(entries).await?;
        self.mirror_if_changed().await
    }

    async fn housekeeping(&mut self) -> Result<(), StoreError> {
        self.mirror_if_changed().await
    }
}

/// A URL fit for an error message: no password.
pub(crate) fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => format!("{}://…@{}", &url[..scheme_end], &url[at + 1..]),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lineup_core::{CallId, GateId, OperatorId, QueueId};

    #[test]
    fn queue_log_columns_follow_the_flat_line_and_keep_overflow_in_data5() {
        let entry = QueueLogEntry {
            at_ms: 1_732_250_000_123,
            call: Some(CallId::new("a-1.42")),
            queue: Some(QueueId::new("sales")),
            gate: Some(GateId::new("web")),
            agent: Some(OperatorId::new("alice")),
            verb: QueueLogVerb::BlindTransfer,
            data: ["1", "2", "3", "4", "5", "6|7"].iter().map(|s| s.to_string()).collect(),
        };
        let c = queue_log_columns(&entry);
        assert_eq!((c.callid.as_str(), c.queuename.as_str(), c.agent.as_str()), ("a-1.42", "sales", "alice"));
        assert_eq!(c.event, "BLINDTRANSFER");
        assert_eq!(c.data, ["1", "2", "3", "4", "5|6_7"].map(String::from));

        let bare = QueueLogEntry { data: vec![], call: None, queue: None, gate: None, ..entry };
        let c = queue_log_columns(&bare);
        assert_eq!((c.callid.as_str(), c.queuename.as_str()), ("NONE", "NONE"));
        assert_eq!(c.data, <[String; QUEUE_LOG_DATA_COLUMNS]>::default());
    }

    #[test]
    fn urls_lose_their_password_in_errors() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://…@h:5432/db");
        assert_eq!(redact_url("mysql://h/db"), "mysql://h/db");
    }
}
