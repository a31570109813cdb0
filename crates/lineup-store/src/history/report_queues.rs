//! Queue interval rows from the database's per-interval sums of ended calls: each call
//! counts in the interval it entered, by how it ended; its wrap-up counts in AHT.

use std::collections::{BTreeMap, BTreeSet};

use super::report_fetch::QueueSums;
use super::reports::{
    bad, ratio, round, seconds, QueueReportRow, ReportQuery, REPORT_ROWS_MAX, SERVICE_LEVEL_THRESHOLD_DEFAULT_MS,
};
use crate::error::StoreError;

/// The counts and sums behind one row.
#[derive(Debug, Default, Clone)]
struct Tally {
    offered: u64,
    answered: u64,
    answered_within_sl: u64,
    abandoned: u64,
    abandoned_before_sl: u64,
    timed_out: u64,
    full: u64,
    closed: u64,
    other: u64,
    answered_wait_ms: u64,
    talk_ms: u64,
    wrap_up_ms: u64,
    longest_wait_ms: u64,
    callbacks_promised: u64,
    callbacks_made: u64,
    callbacks_answered: u64,
}

impl Tally {
    fn from_sums(sums: &QueueSums) -> Self {
        let count = |value: i64| u64::try_from(value).unwrap_or(0);
        Tally {
            offered: count(sums.offered),
            answered: count(sums.answered),
            answered_within_sl: count(sums.answered_within_sl),
            abandoned: count(sums.abandoned),
            abandoned_before_sl: count(sums.abandoned_before_sl),
            timed_out: count(sums.timed_out),
            full: count(sums.full),
            closed: count(sums.closed),
            other: count(sums.other),
            answered_wait_ms: count(sums.answered_wait_ms),
            talk_ms: count(sums.talk_ms),
            wrap_up_ms: count(sums.wrap_up_ms),
            longest_wait_ms: count(sums.longest_wait_ms),
            callbacks_promised: count(sums.callbacks_promised),
            callbacks_made: count(sums.callbacks_made),
            callbacks_answered: count(sums.callbacks_answered),
        }
    }

    fn row(&self, queue: &str, gate: Option<&String>, interval_start: u64, threshold_ms: u64) -> QueueReportRow {
        let counted = self.offered - self.abandoned_before_sl;
        let average_s = |total_ms: u64| ratio(total_ms, self.answered, 0).map(|v| round(v / 1_000.0, 1));
        QueueReportRow {
            queue: queue.to_string(),
            gate: gate.cloned(),
            interval_start,
            offered: self.offered,
            answered: self.answered,
            answered_within_sl: self.answered_within_sl,
            abandoned: self.abandoned,
            abandoned_before_sl: self.abandoned_before_sl,
            abandoned_after_sl: self.abandoned - self.abandoned_before_sl,
            timed_out: self.timed_out,
            full: self.full,
            closed: self.closed,
            other: self.other,
            service_level_threshold_ms: threshold_ms,
            service_level: ratio(self.answered_within_sl, counted, 4),
            asa_s: average_s(self.answered_wait_ms),
            aht_s: average_s(self.talk_ms + self.wrap_up_ms),
            talk_s: seconds(self.talk_ms),
            wrap_up_s: seconds(self.wrap_up_ms),
            longest_wait_s: seconds(self.longest_wait_ms),
            callbacks_promised: self.callbacks_promised,
            callbacks_made: self.callbacks_made,
            callbacks_answered: self.callbacks_answered,
        }
    }
}

/// Which queues get rows: the one asked for, else every mirrored queue and every queue
/// with a call in the period.
fn queues_reported(query: &ReportQuery, sums: &[QueueSums], thresholds: &BTreeMap<String, u64>) -> BTreeSet<String> {
    if let Some(queue) = &query.queue {
        return BTreeSet::from([queue.clone()]);
    }
    let seen = sums.iter().map(|s| s.queue.clone());
    if query.gate.is_some() {
        return seen.collect();
    }
    thresholds.keys().cloned().chain(seen).collect()
}

/// Every reported queue's row for every interval, by queue then interval.
pub(super) fn rows(
    query: &ReportQuery,
    intervals: u64,
    sums: &[QueueSums],
    thresholds: &BTreeMap<String, u64>,
) -> Result<Vec<QueueReportRow>, StoreError> {
    let queues = queues_reported(query, sums, thresholds);
    let row_count = queues.len().saturating_mul(usize::try_from(intervals).unwrap_or(usize::MAX));
    if row_count > REPORT_ROWS_MAX {
        return Err(bad(&format!("the report would have {row_count} rows; at most {REPORT_ROWS_MAX}")));
    }
    let threshold_of = |queue: &str| {
        query.service_level_ms.or_else(|| thresholds.get(queue).copied()).unwrap_or(SERVICE_LEVEL_THRESHOLD_DEFAULT_MS)
    };
    let tallies: BTreeMap<(&str, u64), Tally> = sums
        .iter()
        .filter_map(|s| Some(((s.queue.as_str(), u64::try_from(s.bucket).ok()?), Tally::from_sums(s))))
        .collect();
    let empty = Tally::default();
    let mut rows = Vec::with_capacity(row_count);
    for queue in &queues {
        for index in 0..intervals {
            let tally = tallies.get(&(queue.as_str(), index)).unwrap_or(&empty);
            rows.push(tally.row(queue, query.gate.as_ref(), query.interval_start(index), threshold_of(queue)));
        }
    }
    Ok(rows)
}
