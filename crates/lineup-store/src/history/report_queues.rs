//! Queue interval rows from ended calls: each call counts in the interval it entered, by
//! how it ended; its wrap-up (`report_fetch::wrap_ups`) counts in AHT.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::report_fetch::ReportCall;
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
    fn add(&mut self, call: &ReportCall, threshold_ms: u64, wrap_up_ms: u64) {
        let within = call.wait_ms <= threshold_ms;
        self.offered += 1;
        self.longest_wait_ms = self.longest_wait_ms.max(call.wait_ms);
        if let Some(talk_ms) = call.handle_ms {
            self.answered += 1;
            self.answered_within_sl += u64::from(within);
            self.answered_wait_ms += call.wait_ms;
            self.talk_ms += talk_ms;
            self.wrap_up_ms += wrap_up_ms;
        } else {
            match call.outcome.as_str() {
                "abandoned" => {
                    self.abandoned += 1;
                    self.abandoned_before_sl += u64::from(within);
                }
                "timed_out" => self.timed_out += 1,
                "full" => self.full += 1,
                "closed" => self.closed += 1,
                _ => self.other += 1,
            }
        }
        if call.callback {
            let answered = u64::from(call.handle_ms.is_some());
            self.callbacks_promised += 1;
            self.callbacks_made += call.callback_attempts_failed + answered;
            self.callbacks_answered += answered;
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
fn queues_reported(query: &ReportQuery, calls: &[ReportCall], thresholds: &BTreeMap<String, u64>) -> BTreeSet<String> {
    if let Some(queue) = &query.queue {
        return BTreeSet::from([queue.clone()]);
    }
    let seen = calls.iter().filter(|c| query.contains(c.entered_at_ms)).map(|c| c.queue.clone());
    if query.gate.is_some() {
        return seen.collect();
    }
    thresholds.keys().cloned().chain(seen).collect()
}

/// Every reported queue's row for every interval, by queue then interval.
pub(super) fn rows(
    query: &ReportQuery,
    intervals: u64,
    calls: &[ReportCall],
    thresholds: &BTreeMap<String, u64>,
    wraps: &HashMap<String, u64>,
) -> Result<Vec<QueueReportRow>, StoreError> {
    let queues = queues_reported(query, calls, thresholds);
    let row_count = queues.len().saturating_mul(usize::try_from(intervals).unwrap_or(usize::MAX));
    if row_count > REPORT_ROWS_MAX {
        return Err(bad(&format!("the report would have {row_count} rows; at most {REPORT_ROWS_MAX}")));
    }
    let threshold_of = |queue: &str| {
        query.service_level_ms.or_else(|| thresholds.get(queue).copied()).unwrap_or(SERVICE_LEVEL_THRESHOLD_DEFAULT_MS)
    };
    let mut tallies: BTreeMap<(&str, u64), Tally> = BTreeMap::new();
    for call in calls.iter().filter(|c| query.contains(c.entered_at_ms) && queues.contains(&c.queue)) {
        let wrap_up_ms = wraps.get(&call.call_id).copied().unwrap_or(0);
        let tally = tallies.entry((call.queue.as_str(), query.interval_of(call.entered_at_ms))).or_default();
        tally.add(call, threshold_of(&call.queue), wrap_up_ms);
    }
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
