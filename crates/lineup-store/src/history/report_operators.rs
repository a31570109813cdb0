//! Operator interval rows from state changes and answered calls. A state lasts from its
//! change to the operator's next one (or the end of the period, or the caller's now), and
//! its time is split at interval edges; a login is a change from `offline` (or from no
//! earlier state) to any other state.

use std::collections::{BTreeMap, BTreeSet};

use super::report_fetch::{ReportCall, StatusEvent};
use super::reports::{bad, ratio, seconds, OperatorReportRow, ReportQuery, REPORT_ROWS_MAX};
use crate::error::StoreError;

#[derive(Debug, Default, Clone)]
struct Tally {
    calls_taken: u64,
    talk_ms: u64,
    wrap_up_ms: u64,
    break_ms: u64,
    breaks_ms: BTreeMap<String, u64>,
    available_ms: u64,
    logged_in_ms: u64,
    logins: u64,
}

impl Tally {
    fn add_state(&mut self, state: &StatusEvent, length_ms: u64) {
        match state.status.as_str() {
            "offline" => return,
            "busy" => self.talk_ms += length_ms,
            "wrap_up" => self.wrap_up_ms += length_ms,
            "break" => {
                self.break_ms += length_ms;
                let reason = state.reason.clone().unwrap_or_default();
                *self.breaks_ms.entry(reason).or_default() += length_ms;
            }
            _ => self.available_ms += length_ms,
        }
        self.logged_in_ms += length_ms;
    }

    fn row(&self, operator: &str, interval_start: u64) -> OperatorReportRow {
        let working_ms = self.logged_in_ms - self.break_ms;
        OperatorReportRow {
            operator: operator.to_string(),
            interval_start,
            calls_taken: self.calls_taken,
            talk_s: seconds(self.talk_ms),
            wrap_up_s: seconds(self.wrap_up_ms),
            break_s: seconds(self.break_ms),
            breaks: self.breaks_ms.iter().map(|(reason, ms)| (reason.clone(), seconds(*ms))).collect(),
            available_s: seconds(self.available_ms),
            logged_in_s: seconds(self.logged_in_ms),
            logins: self.logins,
            occupancy: ratio(self.talk_ms + self.wrap_up_ms, working_ms, 4),
        }
    }
}

type Tallies = BTreeMap<(String, u64), Tally>;

/// Adds `[start_ms, end_ms)` (within the period) to each interval it overlaps.
fn split(query: &ReportQuery, start_ms: u64, end_ms: u64, mut add: impl FnMut(u64, u64)) {
    if end_ms <= start_ms {
        return;
    }
    for index in query.interval_of(start_ms)..=query.interval_of(end_ms - 1) {
        let interval_start = query.interval_start(index);
        let interval_end = interval_start + query.interval.length_ms();
        add(index, end_ms.min(interval_end) - start_ms.max(interval_start));
    }
}

/// One operator's states and logins, `timeline` in log order, states ending by `until_ms`.
fn add_timeline(query: &ReportQuery, until_ms: u64, timeline: &[StatusEvent], tallies: &mut Tallies) {
    for (i, state) in timeline.iter().enumerate() {
        let at_ms = u64::try_from(state.at_ms).unwrap_or(0);
        let previous = i.checked_sub(1).map(|p| timeline[p].status.as_str());
        let logged_in = state.status != "offline" && previous.is_none_or(|p| p == "offline");
        if logged_in && query.contains(at_ms) {
            tallies.entry((state.operator.clone(), query.interval_of(at_ms))).or_default().logins += 1;
        }
        let next_ms = timeline.get(i + 1).map_or(until_ms, |n| u64::try_from(n.at_ms).unwrap_or(0));
        if state.status == "offline" {
            continue;
        }
        let start_ms = at_ms.max(query.from_ms);
        split(query, start_ms, next_ms.min(until_ms), |index, length_ms| {
            tallies.entry((state.operator.clone(), index)).or_default().add_state(state, length_ms);
        });
    }
}

/// Every reported operator's row for every interval, by operator then interval.
pub(super) fn rows(
    query: &ReportQuery,
    intervals: u64,
    calls: &[ReportCall],
    events: &BTreeMap<String, Vec<StatusEvent>>,
    members: Option<&BTreeSet<String>>,
) -> Result<Vec<OperatorReportRow>, StoreError> {
    let until_ms = query.to_ms.min(query.now_ms.max(query.from_ms));
    let mut tallies = Tallies::new();
    for timeline in events.values() {
        add_timeline(query, until_ms, timeline, &mut tallies);
    }
    let mut takers = BTreeSet::new();
    for call in calls {
        let (Some(operator), Some(answered_ms)) = (&call.operator, call.answered_at_ms()) else { continue };
        if query.contains(answered_ms) {
            takers.insert(operator.clone());
            tallies.entry((operator.clone(), query.interval_of(answered_ms))).or_default().calls_taken += 1;
        }
    }
    let active = |operator: &String| members.is_none_or(|m| m.contains(operator)) || takers.contains(operator);
    let operators: BTreeSet<String> = tallies.keys().map(|(operator, _)| operator.clone()).filter(active).collect();
    let row_count = operators.len().saturating_mul(usize::try_from(intervals).unwrap_or(usize::MAX));
    if row_count > REPORT_ROWS_MAX {
        return Err(bad(&format!("the report would have {row_count} rows; at most {REPORT_ROWS_MAX}")));
    }
    let empty = Tally::default();
    let mut rows = Vec::with_capacity(row_count);
    for operator in &operators {
        for index in 0..intervals {
            let tally = tallies.get(&(operator.clone(), index)).unwrap_or(&empty);
            rows.push(tally.row(operator, query.interval_start(index)));
        }
    }
    Ok(rows)
}
