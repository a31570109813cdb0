//! Which sounds a fresh Asterisk 22 can play, and how long they play. A fresh box has the stock
//! English core sounds (the list in data/stock-sounds-en.txt) plus Lineup's own prompts from
//! deploy/asterisk/sounds; a `sound:` outside both fails there ("File … does not exist in any
//! format", the playback ends `failed`), and so it does here. Lengths of the stock sounds that
//! Lineup uses are measured from the Asterisk 22 recording where it has them, otherwise
//! approximate; Lineup's prompts have their files' lengths (checked by a test).

/// Stock English core sounds, one name per line (`#` lines are comments).
const STOCK_SOUNDS_EN: &str = include_str!("../data/stock-sounds-en.txt");
/// Lineup's own prompts, `name|words` per line, as deploy/asterisk/sounds ships them.
const LINEUP_PROMPTS: &str = include_str!("../../../deploy/asterisk/sounds/prompts.txt");

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
    // Lineup's prompts: the lengths of deploy/asterisk/sounds/*.ulaw (8 bytes per ms).
    ("lineup-callback-offer", 6_117),
    ("lineup-callback-confirmed", 4_070),
    ("lineup-callback-number-is", 2_255),
    ("lineup-callback-confirm-keys", 4_224),
    ("lineup-callback-enter-number", 4_372),
    ("lineup-callback-invalid", 2_310),
];

fn names(list: &'static str) -> impl Iterator<Item = &'static str> {
    list.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split('|').next())
        .map(str::trim)
        .filter(|name| !name.is_empty())
}

/// Names of Lineup's own prompts (deploy/asterisk/sounds/prompts.txt).
pub fn lineup_prompt_names() -> impl Iterator<Item = &'static str> {
    names(LINEUP_PROMPTS)
}

/// Whether a fresh Asterisk 22 with the stock English sounds and deploy/asterisk/sounds
/// installed can play this media URI. Only `sound:` names can be missing; numbers, digits and
/// tones are always said.
pub fn media_exists(media_uri: &str) -> bool {
    let (scheme, argument) = media_uri.split_once(':').unwrap_or(("sound", media_uri));
    scheme != "sound" || names(STOCK_SOUNDS_EN).chain(lineup_prompt_names()).any(|name| name == argument)
}

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

    #[test]
    fn stock_sounds_and_lineup_prompts_exist_and_nothing_else() {
        for present in ["sound:queue-thereare", "sound:digits/7", "sound:vm-goodbye", "sound:lineup-callback-offer"] {
            assert!(media_exists(present), "{present}");
        }
        for missing in ["sound:lineup-callback-nonsense", "sound:queue-nonsense", "sound:", "sound:#comment"] {
            assert!(!media_exists(missing), "{missing}");
        }
        assert!(media_exists("number:42") && media_exists("digits:123") && media_exists("tone:ring"));
        assert_eq!(lineup_prompt_names().count(), 6);
    }

    /// The stand-in plays Lineup's prompts for as long as the shipped files last.
    #[test]
    fn lineup_prompt_lengths_match_the_shipped_files() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/asterisk/sounds");
        for name in lineup_prompt_names() {
            let bytes = std::fs::metadata(dir.join(format!("{name}.ulaw"))).expect(name).len();
            let file_ms = bytes / 8;
            let table_ms = media_duration_ms(&format!("sound:{name}"));
            assert!(file_ms.abs_diff(table_ms) <= 1, "{name}: file {file_ms} ms, table {table_ms} ms");
            assert!(dir.join(format!("{name}.wav")).exists(), "{name}.wav");
        }
    }
}
