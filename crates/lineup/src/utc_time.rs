//! UTC times on the command line: `2026-12-01`, `2026-12-01T08:00` (or with a space, or
//! with seconds) or Unix ms in, `2026-12-01 08:00` out. Civil dates from day counts by
//! the proleptic Gregorian calendar (days since 1970-01-01).

const DAY_MS: u64 = 86_400_000;

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

fn number(text: &str, low: i64, high: i64) -> Option<i64> {
    let value: i64 = text.parse().ok().filter(|_| text.bytes().all(|b| b.is_ascii_digit()))?;
    (low..=high).contains(&value).then_some(value)
}

/// Unix ms of a UTC date or date and time, or of Unix ms given as such.
pub fn parse_utc(text: &str) -> Result<u64, String> {
    let wrong = || format!("`{text}` is not a UTC time: give 2026-12-01, 2026-12-01T08:00[:00] or Unix ms");
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| wrong());
    }
    let (date, time) = text.split_once(['T', ' ']).unwrap_or((text, "00:00"));
    let date: Vec<&str> = date.split('-').collect();
    let time: Vec<&str> = time.split(':').collect();
    let [year, month, day] = date[..] else { return Err(wrong()) };
    let (hour, minute, second) = match time[..] {
        [h, m] => (h, m, "0"),
        [h, m, s] => (h, m, s),
        _ => return Err(wrong()),
    };
    let year = number(year, 1970, 9999).ok_or_else(wrong)?;
    let month = number(month, 1, 12).ok_or_else(wrong)?;
    let day = number(day, 1, 31).ok_or_else(wrong)?;
    let clock = [number(hour, 0, 23), number(minute, 0, 59), number(second, 0, 59)];
    let [Some(hour), Some(minute), Some(second)] = clock else { return Err(wrong()) };
    let days = days_from_civil(year, month, day);
    if civil_from_days(days) != (year, month, day) {
        return Err(wrong());
    }
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
    u64::try_from(seconds * 1_000).map_err(|_| wrong())
}

/// `YYYY-MM-DD HH:MM` (UTC) of Unix ms.
pub fn format_utc(ms: u64) -> String {
    let days = i64::try_from(ms / DAY_MS).unwrap_or(0);
    let (year, month, day) = civil_from_days(days);
    let minutes = (ms % DAY_MS) / 60_000;
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}", minutes / 60, minutes % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_round_trip_through_unix_ms() {
        assert_eq!(parse_utc("2026-12-01"), Ok(1_796_083_200_000));
        assert_eq!(parse_utc("2026-12-01T08:30"), Ok(1_796_113_800_000));
        assert_eq!(parse_utc("2026-12-01 08:30:15"), Ok(1_796_113_815_000));
        assert_eq!(parse_utc("1796083200000"), Ok(1_796_083_200_000));
        assert_eq!(parse_utc("2024-02-29"), Ok(1_709_164_800_000));
        assert_eq!(format_utc(1_796_113_815_000), "2026-12-01 08:30");
        assert_eq!(format_utc(0), "1970-01-01 00:00");
        assert_eq!(format_utc(1_709_164_800_000), "2024-02-29 00:00");
        for bad in ["", "2026-13-01", "2026-02-30", "2025-02-29", "2026-12-01T24:00", "yesterday", "2026-12-1x", "-5"] {
            assert!(parse_utc(bad).is_err(), "{bad}");
        }
    }
}
