//! The operator report's sums read from `operator_quarters` (per operator and quarter hour,
//! the time closed spans spent in each state there and the logins that began there, kept by
//! triggers on `operator_spans`), for periods whose start is on a quarter hour: at most 96
//! rolled-up rows per operator and day instead of every span of the period cut at interval
//! edges. What the rollup leaves out is cut from the spans as the span path does: each
//! operator's span still open, and the part of the period after its last quarter edge.

use super::report_fetch::{cut_pieces_and_sums, operators_walk, refuse_over_limit, select, OperatorSums};
use super::reports::{ReportQuery, REPORT_GROUPS_MAX};
use super::sql::int;
use super::HistoryStore;
use crate::error::StoreError;

/// The rollup's quarter hour; the migrations `*_operator_quarters.sql` use the same.
pub const ROLLUP_QUARTER_MS: u64 = 900_000;

/// Whether `query` can read the rollup: its period starts on a quarter hour (every report
/// interval is a whole number of quarters).
pub(super) fn rollup_fits(query: &ReportQuery) -> bool {
    query.from_ms.is_multiple_of(ROLLUP_QUARTER_MS) && query.interval.length_ms().is_multiple_of(ROLLUP_QUARTER_MS)
}

// $1 from, $2 until (states still open end here), $3 to, $4 interval length, $5 queue and
// $6 gate of the calls taken ('' any), $7 the row limit, $8 the tail's start (the last
// quarter edge at or before $2).
//
// The quarters [$1, $8) come from the rollup. The spans it leaves out are cut as the span
// path cuts them: those that began in the tail [$8, $2), each operator's span still open
// (from the period's start or its change), and each operator's latest span before the
// tail if it ended inside it (from $8). A login counts once: in the rollup for a closed
// span that began before the tail, here for the others that began in the period.
const SELECT_OPERATOR_QUARTERS: &str = concat!(
    operators_walk!(),
    "latest AS MATERIALIZED (SELECT ops.operator AS operator, \
       (SELECT l.at_ms FROM operator_spans l WHERE l.operator = ops.operator AND l.at_ms < $8 \
         ORDER BY l.at_ms DESC, l.log_index DESC, l.seq DESC LIMIT 1) AS at_ms, \
       (SELECT l.log_index FROM operator_spans l WHERE l.operator = ops.operator AND l.at_ms < $8 \
         ORDER BY l.at_ms DESC, l.log_index DESC, l.seq DESC LIMIT 1) AS log_index, \
       (SELECT l.seq FROM operator_spans l WHERE l.operator = ops.operator AND l.at_ms < $8 \
         ORDER BY l.at_ms DESC, l.log_index DESC, l.seq DESC LIMIT 1) AS seq \
       FROM ops WHERE ops.operator IS NOT NULL), \
     live AS ( \
       SELECT s.operator AS operator, s.status AS status, s.reason AS reason, s.at_ms AS at_ms, \
         s.next_at_ms AS next_at_ms, s.previous_status AS previous_status \
       FROM ops JOIN operator_spans s ON s.operator = ops.operator AND s.at_ms >= $8 AND s.at_ms < $2 \
       UNION ALL \
       SELECT s.operator, s.status, s.reason, s.at_ms, s.next_at_ms, s.previous_status \
       FROM operator_spans s WHERE s.next_at_ms IS NULL AND s.at_ms < $8 \
       UNION ALL \
       SELECT s.operator, s.status, s.reason, s.at_ms, s.next_at_ms, s.previous_status \
       FROM latest JOIN operator_spans s ON s.operator = latest.operator AND s.at_ms = latest.at_ms \
         AND s.log_index = latest.log_index AND s.seq = latest.seq \
       WHERE s.next_at_ms > $8), \
     cut AS ( \
       SELECT operator, status, reason, start_ms, end_ms, login, (start_ms - $1) / $4 AS first_bucket, \
         CASE WHEN end_ms > start_ms THEN (end_ms - 1 - $1) / $4 ELSE (start_ms - $1) / $4 END AS last_bucket \
       FROM (SELECT operator, status, COALESCE(reason, '') AS reason, \
           CASE WHEN at_ms >= $8 THEN at_ms WHEN next_at_ms IS NOT NULL THEN $8 \
             WHEN at_ms > $1 THEN at_ms ELSE $1 END AS start_ms, \
           CASE WHEN next_at_ms IS NULL OR next_at_ms > $2 THEN $2 ELSE next_at_ms END AS end_ms, \
           CASE WHEN at_ms >= $1 AND (at_ms >= $8 OR next_at_ms IS NULL) \
             AND (previous_status IS NULL OR previous_status = 'offline') THEN 1 ELSE 0 END AS login \
         FROM live WHERE status <> 'offline') AS spans), \
     pieces AS ( \
       SELECT r.operator AS operator, r.status AS status, r.reason AS reason, \
         (r.quarter_start_ms - $1) / $4 AS bucket, NULL AS through_bucket, r.state_ms AS length_ms, \
         r.logins AS login, 0 AS calls \
       FROM ops JOIN operator_quarters r ON r.operator = ops.operator AND r.quarter_start_ms >= $1 \
         AND r.quarter_start_ms < $8 \
       UNION ALL \
",
    cut_pieces_and_sums!()
);

/// Each operator's sums for its states in `[from_ms, until_ms)` (the state at the period's
/// start included) and the calls it answered in the period (of the queue and gate asked
/// for). Only for a `query` that [`rollup_fits`].
pub(super) async fn operator_quarter_sums(
    store: &HistoryStore,
    query: &ReportQuery,
    until_ms: u64,
) -> Result<Vec<OperatorSums>, StoreError> {
    let queue = query.queue.clone().unwrap_or_default();
    let gate = query.gate.clone().unwrap_or_default();
    let (from, until, to) = (int(query.from_ms), int(until_ms), int(query.to_ms));
    let (length, limit) = (int(query.interval.length_ms()), int(REPORT_GROUPS_MAX as u64 + 1));
    let tail = int(query.from_ms.max(until_ms - until_ms % ROLLUP_QUARTER_MS));
    let rows =
        select!(store, OperatorSums, SELECT_OPERATOR_QUARTERS, from, until, to, length, queue, gate, limit, tail);
    refuse_over_limit(rows.len())?;
    Ok(rows)
}
