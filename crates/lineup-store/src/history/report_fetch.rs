//! The rows interval reports are computed from: ended calls, operator state changes, the
//! mirrored service-level thresholds and memberships. Plain selects with the same text and
//! answers on both dialects; each read is bounded, and a period holding more rows than the
//! bound is refused rather than reported short.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::reports::{bad, ReportQuery, REPORT_CALLS_MAX, REPORT_OPERATOR_EVENTS_MAX};
use super::sql::int;
use super::{Backend, HistoryStore, READ_MAX_ROWS};
use crate::error::StoreError;

/// Runs `$sql` with `$args` bound in order and collects rows of `$row` on either backend.
macro_rules! select {
    ($store:expr, $row:ty, $sql:expr, $($arg:expr),*) => {
        match &$store.backend {
            Backend::Postgres(pool) => sqlx::query_as::<_, $row>($sql)$(.bind($arg.clone()))*.fetch_all(pool).await?,
            Backend::Sqlite(pool) => sqlx::query_as::<_, $row>($sql)$(.bind($arg.clone()))*.fetch_all(pool).await?,
        }
    };
}

/// An ended call, as reports need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ReportCall {
    pub queue: String,
    pub gate: Option<String>,
    pub outcome: String,
    pub entered_at_ms: u64,
    pub ended_at_ms: u64,
    pub wait_ms: u64,
    /// Talk time; Some exactly when an operator answered.
    pub handle_ms: Option<u64>,
    pub operator: Option<String>,
    pub call_id: String,
    pub callback: bool,
    /// Callback attempts that did not reach the caller.
    pub callback_attempts_failed: u64,
}

impl ReportCall {
    /// When an operator answered it.
    pub fn answered_at_ms(&self) -> Option<u64> {
        self.handle_ms.map(|talk| self.ended_at_ms.saturating_sub(talk))
    }
}

#[derive(sqlx::FromRow)]
struct CallColumns {
    queue: String,
    gate: Option<String>,
    outcome: String,
    entered_at_ms: i64,
    ended_at_ms: i64,
    wait_ms: i64,
    handle_ms: Option<i64>,
    operator: Option<String>,
    call_id: String,
    callback_number: Option<String>,
    callback_attempts: i64,
}

fn ms(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl From<CallColumns> for ReportCall {
    fn from(c: CallColumns) -> Self {
        ReportCall {
            queue: c.queue,
            gate: c.gate,
            outcome: c.outcome,
            entered_at_ms: ms(c.entered_at_ms),
            ended_at_ms: ms(c.ended_at_ms),
            wait_ms: ms(c.wait_ms),
            handle_ms: c.handle_ms.map(ms),
            operator: c.operator,
            call_id: c.call_id,
            callback: c.callback_number.is_some(),
            callback_attempts_failed: ms(c.callback_attempts),
        }
    }
}

// '' stands for "any": queue and gate ids are never empty.
const SELECT_CALLS: &str = "SELECT queue, gate, outcome, CAST(entered_at_ms AS BIGINT) AS entered_at_ms, \
     CAST(ended_at_ms AS BIGINT) AS ended_at_ms, CAST(wait_ms AS BIGINT) AS wait_ms, \
     CAST(handle_ms AS BIGINT) AS handle_ms, operator, call_id, callback_number, \
     CAST(callback_attempts AS BIGINT) AS callback_attempts FROM calls \
     WHERE entered_at_ms < $1 AND ended_at_ms >= $2 AND ($3 = '' OR queue = $3) AND ($4 = '' OR gate = $4) \
     ORDER BY log_index, seq LIMIT $5";

/// Calls that overlap the period (entered before its end, ended after its start) of the
/// queue and gate asked for.
pub(super) async fn calls(store: &HistoryStore, query: &ReportQuery) -> Result<Vec<ReportCall>, StoreError> {
    let (to, from) = (int(query.to_ms), int(query.from_ms));
    let queue = query.queue.clone().unwrap_or_default();
    let gate = query.gate.clone().unwrap_or_default();
    let limit = int(REPORT_CALLS_MAX as u64 + 1);
    let rows = select!(store, CallColumns, SELECT_CALLS, to, from, queue, gate, limit);
    if rows.len() > REPORT_CALLS_MAX {
        return Err(bad(&format!("the period holds more than {REPORT_CALLS_MAX} calls: ask for a shorter one")));
    }
    Ok(rows.into_iter().map(ReportCall::from).collect())
}

/// An operator's state change.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(super) struct StatusEvent {
    pub operator: String,
    pub status: String,
    pub reason: Option<String>,
    pub call_id: Option<String>,
    pub at_ms: i64,
}

// Per operator, one backward walk of the (operator, log_index) index to its last change
// before $1, instead of numbering every change ever written. The operators asked about are
// the configured ones and any with a change in [$1, $2): an operator in neither has no
// state in the period that a report counts (removing an operator logs it out first). The
// walks are materialized, then joined on the primary key: SQLite otherwise ran them again
// for every change of the operator (20 s for a day of 50,000 calls).
const SELECT_STATES_AT: &str = "WITH ops AS ( \
     SELECT id AS operator FROM config_operators \
     UNION SELECT operator FROM operator_events WHERE at_ms >= $1 AND at_ms < $2), \
     latest AS MATERIALIZED (SELECT ops.operator AS operator, \
       (SELECT l.log_index FROM operator_events l WHERE l.operator = ops.operator \
         AND l.at_ms < $1 ORDER BY l.log_index DESC, l.seq DESC LIMIT 1) AS log_index, \
       (SELECT l.seq FROM operator_events l WHERE l.operator = ops.operator \
         AND l.at_ms < $1 ORDER BY l.log_index DESC, l.seq DESC LIMIT 1) AS seq \
       FROM ops) \
     SELECT e.operator, e.status, e.reason, e.call_id, CAST(e.at_ms AS BIGINT) AS at_ms \
     FROM latest JOIN operator_events e ON e.log_index = latest.log_index AND e.seq = latest.seq \
       AND e.operator = latest.operator \
     ORDER BY e.operator LIMIT $3";

/// Each operator's last state change before `at_ms` (its state then), for the operators
/// configured or with a change before `until_ms`.
pub(super) async fn operator_states_at(
    store: &HistoryStore,
    at_ms: u64,
    until_ms: u64,
) -> Result<Vec<StatusEvent>, StoreError> {
    let limit = int(REPORT_OPERATOR_EVENTS_MAX as u64);
    Ok(select!(store, StatusEvent, SELECT_STATES_AT, int(at_ms), int(until_ms), limit))
}

const SELECT_EVENTS: &str = "SELECT operator, status, reason, call_id, CAST(at_ms AS BIGINT) AS at_ms \
     FROM operator_events WHERE at_ms >= $1 AND at_ms < $2 ORDER BY operator, log_index, seq LIMIT $3";

/// State changes in `[from_ms, until_ms)` by operator, in log order, each operator's list
/// led by its entry in `initial` (its state at `from_ms`) when there is one.
pub(super) async fn operator_events(
    store: &HistoryStore,
    from_ms: u64,
    until_ms: u64,
    initial: Option<Vec<StatusEvent>>,
) -> Result<BTreeMap<String, Vec<StatusEvent>>, StoreError> {
    let limit = int(REPORT_OPERATOR_EVENTS_MAX as u64 + 1);
    let rows = select!(store, StatusEvent, SELECT_EVENTS, int(from_ms), int(until_ms), limit);
    if rows.len() > REPORT_OPERATOR_EVENTS_MAX {
        let max = REPORT_OPERATOR_EVENTS_MAX;
        return Err(bad(&format!("the period holds more than {max} operator state changes: ask for a shorter one")));
    }
    let mut by_operator: BTreeMap<String, Vec<StatusEvent>> = BTreeMap::new();
    for event in initial.into_iter().flatten().chain(rows) {
        by_operator.entry(event.operator.clone()).or_default().push(event);
    }
    Ok(by_operator)
}

// A wrap-up is a `wrap_up` change right after the operator's `busy` change on a call; it
// lasts until the operator's next change (none yet: not counted).
const SELECT_WRAP_UPS: &str = "SELECT call_id, wrap_up_ms FROM ( \
     SELECT status, LAG(status) OVER w AS previous_status, LAG(call_id) OVER w AS call_id, \
     CAST(LEAD(at_ms) OVER w - at_ms AS BIGINT) AS wrap_up_ms \
     FROM operator_events WHERE at_ms >= $1 AND at_ms < $2 \
     WINDOW w AS (PARTITION BY operator ORDER BY log_index, seq)) spans \
     WHERE status = 'wrap_up' AND previous_status = 'busy' AND call_id IS NOT NULL AND wrap_up_ms IS NOT NULL \
     LIMIT $3";

/// Wrap-up after each call (by call id) among the state changes in `[from_ms, until_ms)`.
pub(super) async fn wrap_ups(
    store: &HistoryStore,
    from_ms: u64,
    until_ms: u64,
) -> Result<HashMap<String, u64>, StoreError> {
    let limit = int(REPORT_OPERATOR_EVENTS_MAX as u64 + 1);
    let rows: Vec<(String, i64)> = select!(store, (String, i64), SELECT_WRAP_UPS, int(from_ms), int(until_ms), limit);
    if rows.len() > REPORT_OPERATOR_EVENTS_MAX {
        let max = REPORT_OPERATOR_EVENTS_MAX;
        return Err(bad(&format!("the period holds more than {max} wrap-ups: ask for a shorter one")));
    }
    let mut by_call: HashMap<String, u64> = HashMap::with_capacity(rows.len());
    for (call, wrap_up_ms) in rows {
        *by_call.entry(call).or_default() += ms(wrap_up_ms);
    }
    Ok(by_call)
}

#[derive(sqlx::FromRow)]
struct Threshold {
    id: String,
    service_level_ms: i64,
}

/// Each mirrored queue's service-level threshold (ms).
pub(super) async fn service_levels(store: &HistoryStore) -> Result<BTreeMap<String, u64>, StoreError> {
    let sql = "SELECT id, CAST(service_level_ms AS BIGINT) AS service_level_ms FROM config_queues ORDER BY id LIMIT $1";
    let rows = select!(store, Threshold, sql, READ_MAX_ROWS);
    Ok(rows.into_iter().map(|t| (t.id, ms(t.service_level_ms))).collect())
}

/// The mirrored members of `queue`.
pub(super) async fn members(store: &HistoryStore, queue: &str) -> Result<BTreeSet<String>, StoreError> {
    let sql = "SELECT operator FROM config_operator_queues WHERE queue = $1 ORDER BY operator LIMIT $2";
    let rows: Vec<(String,)> = select!(store, (String,), sql, queue.to_string(), READ_MAX_ROWS);
    Ok(rows.into_iter().map(|(operator,)| operator).collect())
}
