//! Today's figures for the wallboard: per queue offered, answered, abandoned, service level,
//! ASA and AHT, and per operator calls taken and talk time, since midnight in the node's time
//! zone. The live hub reads them from the history database every
//! `TODAY_REFRESH_INTERVAL_MS` (one read for every client, not one per screen) and pushes
//! them as a `today` frame; a snapshot carries the last one read.

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Serialize;

use crate::reports::{OperatorReportRow, QueueReportRow, ReportInterval, ReportRequest};

/// How often today's figures are read again.
pub const TODAY_REFRESH_INTERVAL_MS: u64 = 30_000;
/// A read slower than this is given up until the next round.
pub const TODAY_READ_TIMEOUT_MS: u64 = 10_000;

/// One queue's day so far.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TodayQueue {
    pub queue: String,
    pub offered: u64,
    pub answered: u64,
    pub abandoned: u64,
    pub service_level: Option<f64>,
    pub asa_s: Option<f64>,
    pub aht_s: Option<f64>,
}

/// One operator's day so far.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TodayOperator {
    pub operator: String,
    pub calls_taken: u64,
    pub talk_s: f64,
}

/// What a `today` frame carries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TodayFigures {
    /// Local midnight, Unix ms.
    pub from_ms: u64,
    pub queues: Vec<TodayQueue>,
    pub operators: Vec<TodayOperator>,
}

/// Midnight of `now_ms`'s day in `zone`, Unix ms (None for a time jiff cannot place).
pub fn day_start_ms(now_ms: u64, zone: &TimeZone) -> Option<u64> {
    let now = Timestamp::from_millisecond(i64::try_from(now_ms).ok()?).ok()?;
    let midnight = now.to_zoned(zone.clone()).start_of_day().ok()?;
    u64::try_from(midnight.timestamp().as_millisecond()).ok()
}

/// The report that covers today: one day-long interval from midnight to now.
pub fn today_request(from_ms: u64, now_ms: u64) -> ReportRequest {
    ReportRequest {
        from_ms,
        to_ms: now_ms.max(from_ms + 1),
        interval: ReportInterval::Day,
        queue: None,
        gate: None,
        service_level_ms: None,
    }
}

/// The day's figures from the report rows (a queue's own rows; its gates' rows are left out).
pub fn today_figures(from_ms: u64, queues: &[QueueReportRow], operators: &[OperatorReportRow]) -> TodayFigures {
    TodayFigures {
        from_ms,
        queues: queues
            .iter()
            .filter(|row| row.gate.is_none())
            .map(|row| TodayQueue {
                queue: row.queue.clone(),
                offered: row.offered,
                answered: row.answered,
                abandoned: row.abandoned,
                service_level: row.service_level,
                asa_s: row.asa_s,
                aht_s: row.aht_s,
            })
            .collect(),
        operators: operators
            .iter()
            .map(|row| TodayOperator {
                operator: row.operator.clone(),
                calls_taken: row.calls_taken,
                talk_s: row.talk_s,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_day_starts_at_local_midnight() {
        let paris = TimeZone::get("Europe/Paris").unwrap();
        // 2026-12-07 08:30 UTC is 09:30 in Paris; its midnight is 2026-12-06 23:00 UTC.
        let now: Timestamp = "2026-12-07T08:30:00Z".parse().unwrap();
        let midnight: Timestamp = "2026-12-06T23:00:00Z".parse().unwrap();
        let start = day_start_ms(now.as_millisecond() as u64, &paris);
        assert_eq!(start, Some(midnight.as_millisecond() as u64));
        assert_eq!(day_start_ms(midnight.as_millisecond() as u64, &paris), start, "midnight itself starts the day");
    }

    #[test]
    fn a_request_right_at_midnight_still_covers_an_interval() {
        let request = today_request(1_000, 1_000);
        assert!(request.from_ms < request.to_ms);
        assert_eq!(request.interval, ReportInterval::Day);
    }
}
