//! Reading history back, for reports and tests: one row type per table, newest last, at
//! most `READ_MAX_ROWS` rows.

use super::{Backend, HistoryStore, READ_MAX_ROWS};
use crate::error::StoreError;

/// Fetches rows of `$row` with the same SQL on either backend.
macro_rules! fetch_rows {
    ($store:expr, $row:ty, $sql:expr) => {
        match &$store.backend {
            Backend::Postgres(pool) => sqlx::query_as::<_, $row>($sql).bind(READ_MAX_ROWS).fetch_all(pool).await?,
            Backend::Sqlite(pool) => sqlx::query_as::<_, $row>($sql).bind(READ_MAX_ROWS).fetch_all(pool).await?,
        }
    };
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
