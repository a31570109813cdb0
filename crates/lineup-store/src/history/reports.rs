//! Interval reports from history (`GET /v1/reports/queues`, `/v1/reports/operators`): what a
//! report asks for, what its rows hold, and the two report methods of the store.
//!
//! The database sums each interval with one statement whose text and integer arithmetic are
//! the same on both dialects (`report_fetch`), so PostgreSQL and SQLite give the same
//! figures; `report_queues` and `report_operators` turn the sums into rows (ratios,
//! averages, seconds) and add the intervals nothing happened in.

use std::collections::BTreeMap;

use serde::Serialize;

use super::report_fetch;
use super::report_operators::StartState;
use super::{report_operators, report_quarters, report_queues, HistoryStore};
use crate::error::StoreError;

/// Most intervals one report covers (31 days of 15-minute intervals is 2,976).
pub const REPORT_INTERVALS_MAX: u64 = 3_000;
/// Most rows one report answers (intervals × queues or operators).
pub const REPORT_ROWS_MAX: usize = 20_000;
/// Most per-interval sums one report reads from the database (a queue's or operator's
/// interval, split by break reason); a period holding more is refused, never cut short.
pub const REPORT_GROUPS_MAX: usize = 200_000;
/// Service-level threshold of a queue the config mirror does not know (a deleted queue),
/// when the request names none: answered within 20 s.
pub const SERVICE_LEVEL_THRESHOLD_DEFAULT_MS: u64 = 20_000;

/// How long each interval of a report is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportInterval {
    Minutes15,
    Minutes30,
    Minutes60,
    /// 24 hours from `from` (UTC days when `from` is a UTC midnight).
    Day,
}

impl ReportInterval {
    pub fn length_ms(self) -> u64 {
        match self {
            ReportInterval::Minutes15 => 900_000,
            ReportInterval::Minutes30 => 1_800_000,
            ReportInterval::Minutes60 => 3_600_000,
            ReportInterval::Day => 86_400_000,
        }
    }

    /// `15m`, `30m`, `60m` or `day`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "15m" => Some(ReportInterval::Minutes15),
            "30m" => Some(ReportInterval::Minutes30),
            "60m" | "1h" => Some(ReportInterval::Minutes60),
            "day" | "1d" => Some(ReportInterval::Day),
            _ => None,
        }
    }
}

/// What a report covers: `[from_ms, to_ms)` cut into intervals counted from `from_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportQuery {
    pub from_ms: u64,
    pub to_ms: u64,
    pub interval: ReportInterval,
    /// Only this queue (operators: members of it, or who took one of its calls).
    pub queue: Option<String>,
    /// Only calls that came through this gate.
    pub gate: Option<String>,
    /// The service-level threshold for every queue; None: each queue's mirrored
    /// `service_level_ms`, else [`SERVICE_LEVEL_THRESHOLD_DEFAULT_MS`].
    pub service_level_ms: Option<u64>,
    /// The caller's clock: operator states still open end here (or at `to_ms`, if earlier).
    pub now_ms: u64,
}

impl ReportQuery {
    /// How many intervals the period holds, or why the request is refused.
    pub fn interval_count(&self) -> Result<u64, StoreError> {
        if self.from_ms >= self.to_ms {
            return Err(bad("`from` must be before `to`"));
        }
        let count = (self.to_ms - self.from_ms).div_ceil(self.interval.length_ms());
        if count > REPORT_INTERVALS_MAX {
            return Err(bad(&format!("the period holds {count} intervals; at most {REPORT_INTERVALS_MAX}")));
        }
        Ok(count)
    }

    /// The interval holding `at_ms` (which is within the period).
    pub(super) fn interval_of(&self, at_ms: u64) -> u64 {
        (at_ms - self.from_ms) / self.interval.length_ms()
    }

    pub(super) fn interval_start(&self, index: u64) -> u64 {
        self.from_ms + index * self.interval.length_ms()
    }
}

pub(super) fn bad(reason: &str) -> StoreError {
    StoreError::BadReport { reason: reason.to_string() }
}

/// Where the operator report's state times come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorPath {
    /// Every span of the period, cut at interval edges.
    Spans,
    /// The per-quarter rollup, plus the spans it leaves out (periods starting on a quarter hour).
    Quarters,
}

/// One queue's interval. Calls count in the interval they entered; the period is
/// `[interval_start, interval_start + interval)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueReportRow {
    pub queue: String,
    /// The gate the report was filtered on (None: every gate).
    pub gate: Option<String>,
    /// Unix ms.
    pub interval_start: u64,
    /// Every call that tried to join (refused ones included).
    pub offered: u64,
    /// Connected to an operator.
    pub answered: u64,
    /// Answered after a wait of at most the threshold.
    pub answered_within_sl: u64,
    pub abandoned: u64,
    /// Abandoned after a wait of at most the threshold.
    pub abandoned_before_sl: u64,
    pub abandoned_after_sl: u64,
    /// Left at the queue's maximum wait.
    pub timed_out: u64,
    /// Refused because the queue was full.
    pub full: u64,
    /// Refused because the queue was closed (schedule).
    pub closed: u64,
    /// Every other end: left empty, exit key, callback attempts ran out, site lost,
    /// transferred before an operator answered.
    pub other: u64,
    pub service_level_threshold_ms: u64,
    /// answered_within_sl / (offered - abandoned_before_sl), 4 decimals; None when nothing counts.
    pub service_level: Option<f64>,
    /// Average wait of answered calls, seconds (1 decimal).
    pub asa_s: Option<f64>,
    /// Average talk + wrap-up of answered calls, seconds (1 decimal).
    pub aht_s: Option<f64>,
    /// Talk time of answered calls, seconds (1 decimal).
    pub talk_s: f64,
    /// Wrap-up after answered calls, seconds (1 decimal).
    pub wrap_up_s: f64,
    /// Longest wait of any call, seconds (1 decimal).
    pub longest_wait_s: f64,
    /// Callers who asked to be called back.
    pub callbacks_promised: u64,
    /// Callback attempts (failed ones and the one answered).
    pub callbacks_made: u64,
    /// Callbacks that reached the caller and an operator.
    pub callbacks_answered: u64,
}

/// One operator's interval. State times are split at interval edges; calls count in the
/// interval they were answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatorReportRow {
    pub operator: String,
    /// Unix ms.
    pub interval_start: u64,
    /// Calls answered (of the queue or gate filtered on, if any).
    pub calls_taken: u64,
    /// Time in `busy`, seconds (1 decimal).
    pub talk_s: f64,
    /// Time in `wrap_up`, seconds (1 decimal).
    pub wrap_up_s: f64,
    /// Time in `break`, seconds (1 decimal).
    pub break_s: f64,
    /// Break time by reason, seconds (1 decimal).
    pub breaks: BTreeMap<String, f64>,
    /// Time in `available` and `offered`, seconds (1 decimal).
    pub available_s: f64,
    /// Time logged in (any state but offline), seconds (1 decimal).
    pub logged_in_s: f64,
    /// Logins (offline to any other state).
    pub logins: u64,
    /// (talk + wrap-up) / (logged in - break), 4 decimals; None when never available.
    pub occupancy: Option<f64>,
}

/// `n / d` rounded to `decimals`, None when `d` is 0.
pub(super) fn ratio(n: u64, d: u64, decimals: i32) -> Option<f64> {
    (d > 0).then(|| round(n as f64 / d as f64, decimals))
}

pub(super) fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// Milliseconds as seconds with one decimal.
pub(super) fn seconds(ms: u64) -> f64 {
    round(ms as f64 / 1_000.0, 1)
}

impl HistoryStore {
    /// Queue interval rows for `query`: every queue mirrored or seen in the period (or the
    /// one asked for), every interval, by queue then interval.
    pub async fn queue_report(&self, query: &ReportQuery) -> Result<Vec<QueueReportRow>, StoreError> {
        let intervals = query.interval_count()?;
        let sums = report_fetch::queue_sums(self, query).await?;
        let thresholds = report_fetch::service_levels(self).await?;
        report_queues::rows(query, intervals, &sums, &thresholds)
    }

    /// Operator interval rows for `query`: every operator active in the period (with a
    /// queue: its members and whoever took one of its calls), every interval. A period that
    /// starts on a quarter hour reads the per-quarter rollup, any other one the spans; both
    /// give the same figures.
    pub async fn operator_report(&self, query: &ReportQuery) -> Result<Vec<OperatorReportRow>, StoreError> {
        let path = if report_quarters::rollup_fits(query) { OperatorPath::Quarters } else { OperatorPath::Spans };
        self.operator_report_by(query, path).await
    }

    /// [`HistoryStore::operator_report`] read one way: what the rollup path is checked
    /// against. A period that does not start on a quarter hour is always read from spans.
    pub async fn operator_report_by(
        &self,
        query: &ReportQuery,
        path: OperatorPath,
    ) -> Result<Vec<OperatorReportRow>, StoreError> {
        let intervals = query.interval_count()?;
        let members = match &query.queue {
            Some(queue) => Some(report_fetch::members(self, queue).await?),
            None => None,
        };
        let until = query.to_ms.min(query.now_ms.max(query.from_ms));
        // Also on the rollup path: who is reported follows each operator's state at the start.
        let open = report_fetch::operator_states_at(self, query.from_ms, until).await?;
        if path == OperatorPath::Quarters && report_quarters::rollup_fits(query) {
            let sums = report_quarters::operator_quarter_sums(self, query, until).await?;
            return report_operators::rows(query, intervals, &sums, &open, StartState::InSums, members.as_ref());
        }
        let sums = report_fetch::operator_sums(self, query, until).await?;
        report_operators::rows(query, intervals, &sums, &open, StartState::Split, members.as_ref())
    }
}
