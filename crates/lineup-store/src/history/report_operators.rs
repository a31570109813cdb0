//! Operator interval rows from the database's per-interval sums of state times, logins and
//! calls taken, plus each operator's state at the period's start. A state lasts from its
//! change to the operator's next one (or the end of the period, or the caller's now), and
//! its time is split at interval edges; a login is a change from `offline` (or from no
//! earlier state) to any other state.

use std::collections::{BTreeMap, BTreeSet};

use super::report_fetch::{OpenState, OperatorSums};
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
    fn add_state(&mut self, state: &OpenState, length_ms: u64) {
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

    fn add_sums(&mut self, sums: &OperatorSums) {
        let count = |value: i64| u64::try_from(value).unwrap_or(0);
        let (talk, wrap_up, on_break, available) =
            (count(sums.talk_ms), count(sums.wrap_up_ms), count(sums.break_ms), count(sums.available_ms));
        self.calls_taken += count(sums.calls_taken);
        self.talk_ms += talk;
        self.wrap_up_ms += wrap_up;
        self.break_ms += on_break;
        if let Some(reason) = &sums.break_reason {
            *self.breaks_ms.entry(reason.clone()).or_default() += on_break;
        }
        self.available_ms += available;
        self.logged_in_ms += talk + wrap_up + on_break + available;
        self.logins += count(sums.logins);
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

/// Whether each operator's state at the period's start adds its time here or is already in
/// the sums (the rollup path); either way it makes its operator one the report lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StartState {
    Split,
    InSums,
}

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

/// Every reported operator's row for every interval, by operator then interval: `sums` for
/// the states that began in the period and the calls taken, `open` for each operator's state
/// at its start (its time counted as `start_state` says).
pub(super) fn rows(
    query: &ReportQuery,
    intervals: u64,
    sums: &[OperatorSums],
    open: &[OpenState],
    start_state: StartState,
    members: Option<&BTreeSet<String>>,
) -> Result<Vec<OperatorReportRow>, StoreError> {
    let until_ms = query.to_ms.min(query.now_ms.max(query.from_ms));
    let mut tallies = Tallies::new();
    for state in open {
        let next_ms = state.next_at_ms.map_or(until_ms, |next| u64::try_from(next).unwrap_or(0));
        split(query, query.from_ms, next_ms.min(until_ms), |index, length_ms| {
            let tally = tallies.entry((state.operator.clone(), index)).or_default();
            if start_state == StartState::Split {
                tally.add_state(state, length_ms);
            }
        });
    }
    let mut takers = BTreeSet::new();
    let last_interval = intervals.saturating_sub(1);
    for piece in sums {
        let Ok(first) = u64::try_from(piece.bucket) else { continue };
        let through = piece.through_bucket.and_then(|t| u64::try_from(t).ok()).unwrap_or(first);
        for index in first..=through.min(last_interval) {
            tallies.entry((piece.operator.clone(), index)).or_default().add_sums(piece);
        }
        if piece.calls_taken > 0 {
            takers.insert(piece.operator.clone());
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
