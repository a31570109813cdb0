//! Opening hours. The time zone database is compiled into the binary (jiff's bundled tzdb,
//! no system lookups), so every node running the same build decides "open" identically.

use crate::config::{CivilDate, ScheduleConfig};
use crate::CoreError;

/// Checks a schedule before it enters the state.
pub fn validate(s: &ScheduleConfig) -> Result<(), CoreError> {
    use CoreError::InvalidField;
    s.id.validate().map_err(|e| InvalidField { field: "id".into(), reason: e.to_string() })?;
    jiff::tz::db().get(&s.time_zone).map_err(|_| InvalidField {
        field: "time_zone".into(),
        reason: format!("unknown IANA time zone {:?}", s.time_zone),
    })?;
    if s.weekly.len() > crate::config::CONFIG_LIST_MAX_ITEMS || s.holidays.len() > 1000 {
        return Err(InvalidField { field: "weekly".into(), reason: "too many entries".into() });
    }
    for h in &s.weekly {
        if h.days.is_empty() || h.days.iter().any(|d| !(1..=7).contains(d)) {
            return Err(InvalidField {
                field: "weekly.days".into(),
                reason: "days are 1 (Monday) to 7 (Sunday)".into(),
            });
        }
        if h.open_minute >= h.close_minute || h.close_minute > 1440 {
            return Err(InvalidField {
                field: "weekly.open_minute".into(),
                reason: "need open_minute < close_minute <= 1440".into(),
            });
        }
    }
    for d in &s.holidays {
        jiff::civil::Date::new(d.year, d.month as i8, d.day as i8)
            .map_err(|e| InvalidField { field: "holidays".into(), reason: e.to_string() })?;
    }
    Ok(())
}

/// Is the schedule open at `now_ms` (Unix milliseconds)?
pub fn is_open(s: &ScheduleConfig, now_ms: u64) -> bool {
    let Ok(tz) = jiff::tz::db().get(&s.time_zone) else {
        // Validated on the way in; a zone that vanished from the bundled db reads as closed.
        return false;
    };
    let Ok(ts) = jiff::Timestamp::from_millisecond(now_ms.min(i64::MAX as u64) as i64) else {
        return false;
    };
    let local = ts.to_zoned(tz);
    let today = CivilDate { year: local.year(), month: local.month() as u8, day: local.day() as u8 };
    if s.holidays.contains(&today) {
        return false;
    }
    let weekday = local.weekday().to_monday_one_offset() as u8;
    let minute = local.hour() as u16 * 60 + local.minute() as u16;
    s.weekly.iter().any(|h| h.days.contains(&weekday) && h.open_minute <= minute && minute < h.close_minute)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OpeningHours;
    use crate::ids::ScheduleId;

    fn paris_office() -> ScheduleConfig {
        ScheduleConfig {
            id: ScheduleId::new("office"),
            time_zone: "Europe/Paris".into(),
            weekly: vec![OpeningHours { days: vec![1, 2, 3, 4, 5], open_minute: 9 * 60, close_minute: 18 * 60 }],
            holidays: vec![CivilDate { year: 2026, month: 12, day: 25 }],
        }
    }

    fn ms(rfc3339: &str) -> u64 {
        rfc3339.parse::<jiff::Timestamp>().unwrap().as_millisecond() as u64
    }

    #[test]
    fn weekly_hours_in_local_time_with_dst_and_holidays() {
        let s = paris_office();
        validate(&s).unwrap();
        // Monday 2026-11-23 08:30 UTC = 09:30 in Paris (CET, UTC+1): open.
        assert!(is_open(&s, ms("2026-11-23T08:30:00Z")));
        // 07:30 UTC = 08:30 Paris: closed.
        assert!(!is_open(&s, ms("2026-11-23T07:30:00Z")));
        // Summer (CEST, UTC+2): 07:30 UTC = 09:30 Paris: open.
        assert!(is_open(&s, ms("2026-07-06T07:30:00Z")));
        // Saturday: closed.
        assert!(!is_open(&s, ms("2026-11-28T10:00:00Z")));
        // Christmas Friday: closed all day.
        assert!(!is_open(&s, ms("2026-12-25T10:00:00Z")));
    }

    #[test]
    fn bad_schedules_are_refused() {
        let mut s = paris_office();
        s.time_zone = "Mars/Olympus".into();
        assert!(validate(&s).is_err());
        let mut s = paris_office();
        s.weekly[0].days.push(8);
        assert!(validate(&s).is_err());
        let mut s = paris_office();
        s.weekly[0].close_minute = 1441;
        assert!(validate(&s).is_err());
        let mut s = paris_office();
        s.holidays.push(CivilDate { year: 2026, month: 2, day: 30 });
        assert!(validate(&s).is_err());
    }
}
