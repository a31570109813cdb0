//! What interval reports read: per-interval sums computed by the database (one statement
//! per report, the same text on both dialects), each operator's state at the period's start,
//! the mirrored service-level thresholds and memberships. Each read is bounded, and a period
//! holding more than the bound is refused rather than reported short.
//!
//! Sums come from `calls` and `operator_spans` (each operator state change with the
//! operator's change before it and the time of the one after it, kept by triggers on
//! `operator_events`), so no report reads every row of its period into Rust.

use std::collections::{BTreeMap, BTreeSet};

use super::reports::{bad, ReportQuery, REPORT_GROUPS_MAX, SERVICE_LEVEL_THRESHOLD_DEFAULT_MS};
use super::sql::int;
use super::{HistoryStore, READ_MAX_ROWS};
use crate::error::StoreError;

/// Runs `$sql` with `$args` bound in order and collects rows of `$row` on either backend.
macro_rules! select {
    ($store:expr, $row:ty, $sql:expr, $($arg:expr),*) => {
        match &$store.backend {
            $crate::history::Backend::Postgres(pool) => sqlx::query_as::<_, $row>($sql)$(.bind($arg.clone()))*.fetch_all(pool).await?,
            $crate::history::Backend::Sqlite(pool) => sqlx::query_as::<_, $row>($sql)$(.bind($arg.clone()))*.fetch_all(pool).await?,
        }
    };
}
pub(super) use select;

fn ms(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// One queue's calls that entered in one interval, summed.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub(super) struct QueueSums {
    pub queue: String,
    pub bucket: i64,
    pub offered: i64,
    pub answered: i64,
    pub answered_within_sl: i64,
    pub abandoned: i64,
    pub abandoned_before_sl: i64,
    pub timed_out: i64,
    pub full: i64,
    pub closed: i64,
    pub other: i64,
    pub answered_wait_ms: i64,
    pub talk_ms: i64,
    pub wrap_up_ms: i64,
    pub longest_wait_ms: i64,
    pub callbacks_promised: i64,
    pub callbacks_made: i64,
    pub callbacks_answered: i64,
}

// $1 from, $2 to, $3 interval length, $4 queue and $5 gate ('' stands for "any": ids are
// never empty), $6 the threshold asked for (-1: each queue's), $7 the default threshold,
// $8 the row limit.
//
// A call's wrap-up is `calls.wrap_up_ms`: the `wrap_up` changes right after the operator's
// `busy` change on it, each lasting until the operator's next change, summed (a wrap-up
// still open counts as none), kept by triggers on `operator_spans` and `calls` (migration
// `20261210000001_call_wrap_ups`). Looking each answered call's wrap-up up in the spans at
// report time cost ~4 µs a call, most of a day's report on PostgreSQL.
const SELECT_QUEUE_SUMS: &str = "WITH counted AS ( \
       SELECT c.queue AS queue, (c.entered_at_ms - $1) / $3 AS bucket, c.outcome AS outcome, \
         c.wait_ms AS wait_ms, c.handle_ms AS handle_ms, c.callback_attempts AS callback_attempts, \
         CASE WHEN c.callback_number IS NULL THEN 0 ELSE 1 END AS callback, \
         CASE WHEN c.wait_ms <= CASE WHEN $6 >= 0 THEN $6 ELSE COALESCE(q.service_level_ms, $7) END \
           THEN 1 ELSE 0 END AS within, \
         CASE WHEN c.handle_ms IS NULL THEN 0 ELSE COALESCE(c.wrap_up_ms, 0) END AS wrap_up_ms \
       FROM calls c LEFT JOIN config_queues q ON q.id = c.queue \
       WHERE c.entered_at_ms >= $1 AND c.entered_at_ms < $2 AND ($4 = '' OR c.queue = $4) \
         AND ($5 = '' OR c.gate = $5)) \
     SELECT queue, CAST(bucket AS BIGINT) AS bucket, CAST(COUNT(*) AS BIGINT) AS offered, \
       CAST(SUM(CASE WHEN handle_ms IS NULL THEN 0 ELSE 1 END) AS BIGINT) AS answered, \
       CAST(SUM(CASE WHEN handle_ms IS NULL THEN 0 ELSE within END) AS BIGINT) AS answered_within_sl, \
       CAST(SUM(CASE WHEN handle_ms IS NULL AND outcome = 'abandoned' THEN 1 ELSE 0 END) AS BIGINT) AS abandoned, \
       CAST(SUM(CASE WHEN handle_ms IS NULL AND outcome = 'abandoned' THEN within ELSE 0 END) AS BIGINT) \
         AS abandoned_before_sl, \
       CAST(SUM(CASE WHEN handle_ms IS NULL AND outcome = 'timed_out' THEN 1 ELSE 0 END) AS BIGINT) AS timed_out, \
       CAST(SUM(CASE WHEN handle_ms IS NULL AND outcome = 'full' THEN 1 ELSE 0 END) AS BIGINT) AS full, \
       CAST(SUM(CASE WHEN handle_ms IS NULL AND outcome = 'closed' THEN 1 ELSE 0 END) AS BIGINT) AS closed, \
       CAST(SUM(CASE WHEN handle_ms IS NULL AND outcome NOT IN ('abandoned', 'timed_out', 'full', 'closed') \
         THEN 1 ELSE 0 END) AS BIGINT) AS other, \
       CAST(SUM(CASE WHEN handle_ms IS NULL THEN 0 ELSE wait_ms END) AS BIGINT) AS answered_wait_ms, \
       CAST(COALESCE(SUM(handle_ms), 0) AS BIGINT) AS talk_ms, \
       CAST(SUM(wrap_up_ms) AS BIGINT) AS wrap_up_ms, \
       CAST(MAX(wait_ms) AS BIGINT) AS longest_wait_ms, \
       CAST(SUM(callback) AS BIGINT) AS callbacks_promised, \
       CAST(SUM(CASE WHEN callback = 0 THEN 0 WHEN handle_ms IS NULL THEN callback_attempts \
         ELSE callback_attempts + 1 END) AS BIGINT) AS callbacks_made, \
       CAST(SUM(CASE WHEN callback = 1 AND handle_ms IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS callbacks_answered \
     FROM counted GROUP BY queue, bucket LIMIT $8";

/// Each queue's sums for each interval with a call that entered in it (of the queue and
/// gate asked for), thresholds as `query` says.
pub(super) async fn queue_sums(store: &HistoryStore, query: &ReportQuery) -> Result<Vec<QueueSums>, StoreError> {
    let queue = query.queue.clone().unwrap_or_default();
    let gate = query.gate.clone().unwrap_or_default();
    let threshold = query.service_level_ms.map_or(-1, int);
    let (from, to, length) = (int(query.from_ms), int(query.to_ms), int(query.interval.length_ms()));
    let (default, limit) = (int(SERVICE_LEVEL_THRESHOLD_DEFAULT_MS), int(REPORT_GROUPS_MAX as u64 + 1));
    let rows = select!(store, QueueSums, SELECT_QUEUE_SUMS, from, to, length, queue, gate, threshold, default, limit);
    refuse_over_limit(rows.len())?;
    Ok(rows)
}

pub(super) fn refuse_over_limit(rows: usize) -> Result<(), StoreError> {
    if rows > REPORT_GROUPS_MAX {
        return Err(bad(&format!("the period holds more than {REPORT_GROUPS_MAX} sums: ask for a shorter one")));
    }
    Ok(())
}

/// One operator's state times and counts in an interval (or in each interval of a run of
/// whole ones), for one break reason or none.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(super) struct OperatorSums {
    pub operator: String,
    pub bucket: i64,
    /// Some: the sums hold for every interval from `bucket` through this one.
    pub through_bucket: Option<i64>,
    /// Some: the break time is this reason's ('' when the break gave none).
    pub break_reason: Option<String>,
    pub talk_ms: i64,
    pub wrap_up_ms: i64,
    pub break_ms: i64,
    pub available_ms: i64,
    pub logins: i64,
    pub calls_taken: i64,
}

/// The walk of the operators with spans (one seek per operator), opening a report statement.
macro_rules! operators_walk {
    () => {
        "WITH RECURSIVE ops (operator) AS ( \
       SELECT MIN(operator) FROM operator_spans \
       UNION ALL \
       SELECT (SELECT MIN(s.operator) FROM operator_spans s WHERE s.operator > ops.operator) \
       FROM ops WHERE ops.operator IS NOT NULL), "
    };
}
pub(super) use operators_walk;

/// The end of an operator statement: `cut`'s states as pieces of intervals, the calls taken
/// ($3 to, $4 interval length, $5 queue, $6 gate), and the sums by operator and interval
/// ($7 the row limit).
macro_rules! cut_pieces_and_sums {
    () => {
        "SELECT operator, status, reason, \
         CASE part.kind WHEN 0 THEN first_bucket WHEN 1 THEN last_bucket ELSE first_bucket + 1 END AS bucket, \
         CASE WHEN part.kind = 2 THEN last_bucket - 1 END AS through_bucket, \
         CASE WHEN end_ms <= start_ms THEN 0 \
           WHEN last_bucket = first_bucket THEN end_ms - start_ms \
           WHEN part.kind = 0 THEN $1 + (first_bucket + 1) * $4 - start_ms \
           WHEN part.kind = 1 THEN end_ms - ($1 + last_bucket * $4) \
           ELSE $4 END AS length_ms, \
         CASE WHEN part.kind = 0 THEN login ELSE 0 END AS login, 0 AS calls \
       FROM cut JOIN (SELECT 0 AS kind UNION ALL SELECT 1 UNION ALL SELECT 2) AS part \
         ON (part.kind = 0 AND (end_ms > start_ms OR login = 1)) \
           OR (part.kind = 1 AND last_bucket > first_bucket) \
           OR (part.kind = 2 AND last_bucket > first_bucket + 1) \
       UNION ALL \
       SELECT operator, 'call', '', (ended_at_ms - handle_ms - $1) / $4, NULL, 0, 0, 1 FROM calls \
       WHERE entered_at_ms < $3 AND ended_at_ms >= $1 AND handle_ms IS NOT NULL AND operator IS NOT NULL \
         AND ended_at_ms - handle_ms >= $1 AND ended_at_ms - handle_ms < $3 \
         AND ($5 = '' OR queue = $5) AND ($6 = '' OR gate = $6)) \
     SELECT operator, CAST(bucket AS BIGINT) AS bucket, CAST(through_bucket AS BIGINT) AS through_bucket, \
       CASE WHEN status = 'break' THEN reason END AS break_reason, \
       CAST(SUM(CASE WHEN status = 'busy' THEN length_ms ELSE 0 END) AS BIGINT) AS talk_ms, \
       CAST(SUM(CASE WHEN status = 'wrap_up' THEN length_ms ELSE 0 END) AS BIGINT) AS wrap_up_ms, \
       CAST(SUM(CASE WHEN status = 'break' THEN length_ms ELSE 0 END) AS BIGINT) AS break_ms, \
       CAST(SUM(CASE WHEN status IN ('busy', 'wrap_up', 'break', 'call') THEN 0 ELSE length_ms END) AS BIGINT) \
         AS available_ms, \
       CAST(SUM(login) AS BIGINT) AS logins, \
       CAST(SUM(calls) AS BIGINT) AS calls_taken \
     FROM pieces GROUP BY operator, bucket, through_bucket, CASE WHEN status = 'break' THEN reason END \
     LIMIT $7"
    };
}
pub(super) use cut_pieces_and_sums;

// $1 from, $2 until (states still open end here), $3 to, $4 interval length, $5 queue and
// $6 gate of the calls taken ('' any), $7 the row limit.
//
// Each state that began in [$1, $2) lasts until the operator's next change (or $2) and is
// cut at interval edges: its first interval (part 0, which also counts a login: a change
// from offline or from nothing), its last one (part 1) and, between them, a run of whole
// intervals (part 2, expanded by the caller). The operators are found by a walk of the
// primary key's distinct operators, then each one's spans are read by (operator, at_ms),
// in the order the primary key keeps them.
const SELECT_OPERATOR_SUMS: &str = concat!(
    operators_walk!(),
    "cut AS ( \
       SELECT operator, status, reason, start_ms, end_ms, login, (start_ms - $1) / $4 AS first_bucket, \
         CASE WHEN end_ms > start_ms THEN (end_ms - 1 - $1) / $4 ELSE (start_ms - $1) / $4 END AS last_bucket \
       FROM (SELECT s.operator AS operator, s.status AS status, COALESCE(s.reason, '') AS reason, \
           s.at_ms AS start_ms, \
           CASE WHEN s.next_at_ms IS NULL OR s.next_at_ms > $2 THEN $2 ELSE s.next_at_ms END AS end_ms, \
           CASE WHEN s.previous_status IS NULL OR s.previous_status = 'offline' THEN 1 ELSE 0 END AS login \
         FROM ops JOIN operator_spans s ON s.operator = ops.operator AND s.at_ms >= $1 AND s.at_ms < $2 \
         WHERE s.status <> 'offline') AS spans), \
     pieces AS ( \
",
    cut_pieces_and_sums!()
);

/// Each operator's sums for the states that began in `[from_ms, until_ms)` and the calls it
/// answered in the period (of the queue and gate asked for).
pub(super) async fn operator_sums(
    store: &HistoryStore,
    query: &ReportQuery,
    until_ms: u64,
) -> Result<Vec<OperatorSums>, StoreError> {
    let queue = query.queue.clone().unwrap_or_default();
    let gate = query.gate.clone().unwrap_or_default();
    let (from, until, to) = (int(query.from_ms), int(until_ms), int(query.to_ms));
    let (length, limit) = (int(query.interval.length_ms()), int(REPORT_GROUPS_MAX as u64 + 1));
    let rows = select!(store, OperatorSums, SELECT_OPERATOR_SUMS, from, until, to, length, queue, gate, limit);
    refuse_over_limit(rows.len())?;
    Ok(rows)
}

/// An operator's state at the period's start: its last change before it, and when its next
/// change came (None: none yet).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(super) struct OpenState {
    pub operator: String,
    pub status: String,
    pub reason: Option<String>,
    pub next_at_ms: Option<i64>,
}

// Per operator, one seek of operator_spans' primary key to its last change before $1. The
// operators asked about are the configured ones and any with a change in [$1, $2) (one seek
// per operator ever seen, found by a walk of the key's distinct operators): an operator in
// neither has no state in the period that a report counts (removing an operator logs it
// out first). The seeks are materialized, then joined on the key: run as a join filter,
// they ran again for every span of the operator.
const SELECT_STATES_AT: &str = "WITH RECURSIVE seen (operator) AS ( \
       SELECT MIN(operator) FROM operator_spans \
       UNION ALL \
       SELECT (SELECT MIN(s.operator) FROM operator_spans s WHERE s.operator > seen.operator) \
       FROM seen WHERE seen.operator IS NOT NULL), \
     ops AS (SELECT id AS operator FROM config_operators \
       UNION SELECT seen.operator FROM seen WHERE EXISTS (SELECT 1 FROM operator_spans s \
         WHERE s.operator = seen.operator AND s.at_ms >= $1 AND s.at_ms < $2)), \
     latest AS MATERIALIZED (SELECT ops.operator AS operator, \
       (SELECT l.at_ms FROM operator_spans l WHERE l.operator = ops.operator AND l.at_ms < $1 \
         ORDER BY l.at_ms DESC, l.log_index DESC, l.seq DESC LIMIT 1) AS at_ms, \
       (SELECT l.log_index FROM operator_spans l WHERE l.operator = ops.operator AND l.at_ms < $1 \
         ORDER BY l.at_ms DESC, l.log_index DESC, l.seq DESC LIMIT 1) AS log_index, \
       (SELECT l.seq FROM operator_spans l WHERE l.operator = ops.operator AND l.at_ms < $1 \
         ORDER BY l.at_ms DESC, l.log_index DESC, l.seq DESC LIMIT 1) AS seq \
       FROM ops) \
     SELECT s.operator, s.status, s.reason, CAST(s.next_at_ms AS BIGINT) AS next_at_ms \
     FROM latest JOIN operator_spans s ON s.operator = latest.operator AND s.at_ms = latest.at_ms \
       AND s.log_index = latest.log_index AND s.seq = latest.seq \
     ORDER BY s.operator LIMIT $3";

/// Each operator's state at `at_ms` (its last change before it), for the operators
/// configured or with a change before `until_ms`.
pub(super) async fn operator_states_at(
    store: &HistoryStore,
    at_ms: u64,
    until_ms: u64,
) -> Result<Vec<OpenState>, StoreError> {
    let limit = int(REPORT_GROUPS_MAX as u64 + 1);
    let rows = select!(store, OpenState, SELECT_STATES_AT, int(at_ms), int(until_ms), limit);
    refuse_over_limit(rows.len())?;
    Ok(rows)
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
