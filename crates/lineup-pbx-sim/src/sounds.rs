//! How long prompts play. Lengths of the stock English sounds that Lineup uses, measured from
//! the Asterisk 22 recording where it has them, otherwise approximate.

/// Length of a sound file not in the table.
pub const SOUND_DURATION_MS_DEFAULT: u64 = 1_500;
/// Length of one spoken digit (`digits:3` took 842 ms in the recording).
pub const DIGIT_DURATION_MS: u64 = 842;
/// Length of one spoken number word.
pub const NUMBER_WORD_DURATION_MS: u64 = 700;
/// Length of `tone:` media before the stand-in ends it (real tones play until stopped).
pub const TONE_DURATION_MS: u64 = 30_000;

/// Known prompt lengths in milliseconds.
const SOUND_DURATIONS_MS: &[(&str, u64)] = &[
    ("queue-thereare", 2_262),     // recorded
    ("queue-callswaiting", 2_481), // recorded
    ("agent-pass", 3_302),         // recorded
    ("queue-youarenext", 1_900),
    ("queue-holdtime", 2_300),
    ("queue-minutes", 900),
    ("queue-seconds", 900),
    ("queue-thankyou", 2_100),
    ("queue-periodic-announce", 4_200),
    ("queue-reporthold", 1_300),
    ("agent-user", 2_000),
    ("agent-loginok", 1_000),
    ("agent-incorrect", 1_700),
    ("agent-loggedoff", 1_100),
    ("vm-goodbye", 800),
    ("beep", 300),
];

/// How long one media URI plays.
pub fn media_duration_ms(media_uri: &str) -> u64 {
    let (scheme, argument) = media_uri.split_once(':').unwrap_or(("sound", media_uri));
    match scheme {
        "sound" => SOUND_DURATIONS_MS
            .iter()
            .find(|(name, _)| *name == argument)
            .map(|(_, duration)| *duration)
            .unwrap_or(SOUND_DURATION_MS_DEFAULT),
        "digits" => DIGIT_DURATION_MS * argument.chars().count().max(1) as u64,
        "number" => NUMBER_WORD_DURATION_MS * number_word_count(argument),
        "tone" => TONE_DURATION_MS,
        _ => SOUND_DURATION_MS_DEFAULT,
    }
}

/// Rough count of words Asterisk says for a number ("one hundred twenty three" = 4).
fn number_word_count(argument: &str) -> u64 {
    let Ok(number) = argument.parse::<u64>() else {
        return 1;
    };
    let mut words = 0;
    let mut rest = number;
    for (unit, unit_words) in [(1_000_000_000, 2), (1_000_000, 2), (1_000, 2), (100, 2)] {
        if rest >= unit {
            words += unit_words;
            rest %= unit;
        }
    }
    words += match rest {
        0 => u64::from(number == 0),
        1..=20 => 1,
        _ if rest % 10 == 0 => 1,
        _ => 2,
    };
    words.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_lengths_and_fallbacks() {
        assert_eq!(media_duration_ms("sound:queue-thereare"), 2_262);
        assert_eq!(media_duration_ms("digits:3"), 842);
        assert_eq!(media_duration_ms("digits:12"), 2 * 842);
        assert_eq!(media_duration_ms("sound:unknown"), SOUND_DURATION_MS_DEFAULT);
        assert_eq!(media_duration_ms("number:0"), NUMBER_WORD_DURATION_MS);
        assert_eq!(media_duration_ms("number:123"), 4 * NUMBER_WORD_DURATION_MS);
    }
}
