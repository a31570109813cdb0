//! Asterisk's timestamp format from virtual milliseconds, without a date crate.

/// `2026-11-22T05:27:04.653+0000` for a Unix time in milliseconds (UTC).
pub fn format_timestamp(unix_ms: u64) -> String {
    let seconds = unix_ms / 1000;
    let millis = unix_ms % 1000;
    let days = (seconds / 86_400) as i64;
    let second_of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}+0000",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_the_recording() {
        // 1795325224 is the uniqueid prefix of the recording, taken at 05:27:04 UTC.
        assert_eq!(format_timestamp(1_795_325_224_654), "2026-11-22T05:27:04.654+0000");
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000+0000");
        assert_eq!(format_timestamp(951_782_400_000), "2000-02-29T00:00:00.000+0000");
    }
}
