//! What callers and operators hear. Queue announcements and operator login use Asterisk's
//! stock English sounds (core sounds package: queue-*, agent-*, digits/*), composed the way
//! app_queue and app_agent_pool say them. The callback flow has no stock sounds: its prompts
//! (`lineup-callback-*`) ship in deploy/asterisk/sounds (words in prompts.txt there, generated
//! by its generate.sh) and are installed beside the stock sounds.

use lineup_ari::Media;
use lineup_core::Announcement;

pub const SOUND_YOU_ARE_NEXT: &str = "queue-youarenext";
pub const SOUND_THERE_ARE: &str = "queue-thereare";
pub const SOUND_CALLS_WAITING: &str = "queue-callswaiting";
pub const SOUND_HOLD_TIME: &str = "queue-holdtime";
pub const SOUND_MINUTES: &str = "queue-minutes";
pub const SOUND_LESS_THAN: &str = "queue-less-than";
pub const SOUND_THANK_YOU: &str = "queue-thankyou";
pub const SOUND_AGENT_USER: &str = "agent-user";
pub const SOUND_AGENT_PASS: &str = "agent-pass";
pub const SOUND_AGENT_INCORRECT: &str = "agent-incorrect";
pub const SOUND_AGENT_LOGIN_OK: &str = "agent-loginok";
pub const SOUND_AGENT_LOGGED_OFF: &str = "agent-loggedoff";
/// "I'm sorry."
pub const SOUND_SORRY: &str = "sorry";
/// "Please try your call later."
pub const SOUND_TRY_LATER: &str = "please-try-call-later";
/// Not a stock sound: shipped in deploy/asterisk/sounds ("To be called back instead of
/// waiting, press 1. You keep your place in line.").
pub const SOUND_CALLBACK_OFFER: &str = "lineup-callback-offer";
/// Not a stock sound: "Thank you. We will call you back. Goodbye."
pub const SOUND_CALLBACK_CONFIRMED: &str = "lineup-callback-confirmed";
/// Not a stock sound: "We will call you back on" (the number follows, digit by digit).
pub const SOUND_CALLBACK_NUMBER_IS: &str = "lineup-callback-number-is";
/// Not a stock sound: "Press 1 to confirm, 2 to enter another number."
pub const SOUND_CALLBACK_CONFIRM_KEYS: &str = "lineup-callback-confirm-keys";
/// Not a stock sound: "Please enter the number to call, then press the pound key."
pub const SOUND_CALLBACK_ENTER_NUMBER: &str = "lineup-callback-enter-number";
/// Not a stock sound: "That number is not valid."
pub const SOUND_CALLBACK_INVALID: &str = "lineup-callback-invalid";

/// Every sound Lineup plays by name (configured announcements and whispers aside).
pub const ALL_SOUNDS: &[&str] = &[
    SOUND_YOU_ARE_NEXT,
    SOUND_THERE_ARE,
    SOUND_CALLS_WAITING,
    SOUND_HOLD_TIME,
    SOUND_MINUTES,
    SOUND_LESS_THAN,
    SOUND_THANK_YOU,
    SOUND_AGENT_USER,
    SOUND_AGENT_PASS,
    SOUND_AGENT_INCORRECT,
    SOUND_AGENT_LOGIN_OK,
    SOUND_AGENT_LOGGED_OFF,
    SOUND_SORRY,
    SOUND_TRY_LATER,
    SOUND_CALLBACK_OFFER,
    SOUND_CALLBACK_CONFIRMED,
    SOUND_CALLBACK_NUMBER_IS,
    SOUND_CALLBACK_CONFIRM_KEYS,
    SOUND_CALLBACK_ENTER_NUMBER,
    SOUND_CALLBACK_INVALID,
];

/// Time allowed for a prompt to play before a digit-entry silence timer starts counting.
pub const PROMPT_ALLOWANCE_MS: u64 = 4_000;

/// Minutes announced for an ETA, rounded up (never promise less than the estimate).
pub fn eta_minutes(eta_ms: u64) -> u64 {
    eta_ms.div_ceil(60_000).max(1)
}

/// Media for an announcement.
pub fn announcement_media(announcement: &Announcement) -> Vec<Media> {
    match announcement {
        Announcement::Position { position, eta_ms } => {
            let mut media = if *position <= 1 {
                vec![Media::Sound(SOUND_YOU_ARE_NEXT.into())]
            } else {
                vec![
                    Media::Sound(SOUND_THERE_ARE.into()),
                    Media::Number(u64::from(*position)),
                    Media::Sound(SOUND_CALLS_WAITING.into()),
                ]
            };
            if let Some(eta) = eta_ms {
                media.extend([
                    Media::Sound(SOUND_HOLD_TIME.into()),
                    Media::Number(eta_minutes(*eta)),
                    Media::Sound(SOUND_MINUTES.into()),
                ]);
            }
            media
        }
        Announcement::Message { sound } => vec![Media::Sound(sound.clone())],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real Asterisk fails a playback whose file it does not have, and the caller hears
    /// nothing: every prompt must be a stock English sound or one deploy/asterisk/sounds ships.
    #[test]
    fn every_prompt_exists_on_a_fresh_asterisk_with_the_shipped_sounds() {
        for sound in ALL_SOUNDS {
            assert!(lineup_pbx_sim::sounds::media_exists(&format!("sound:{sound}")), "{sound} cannot be played");
        }
        for shipped in lineup_pbx_sim::sounds::lineup_prompt_names() {
            assert!(ALL_SOUNDS.contains(&shipped), "{shipped} is shipped but never played");
        }
    }

    #[test]
    fn position_and_minutes_rounded_up() {
        assert_eq!(eta_minutes(1), 1);
        assert_eq!(eta_minutes(60_000), 1);
        assert_eq!(eta_minutes(60_001), 2);
        let media = announcement_media(&Announcement::Position { position: 3, eta_ms: Some(150_000) });
        assert_eq!(
            media,
            vec![
                Media::Sound("queue-thereare".into()),
                Media::Number(3),
                Media::Sound("queue-callswaiting".into()),
                Media::Sound("queue-holdtime".into()),
                Media::Number(3),
                Media::Sound("queue-minutes".into()),
            ]
        );
        assert_eq!(
            announcement_media(&Announcement::Position { position: 1, eta_ms: None }),
            vec![Media::Sound("queue-youarenext".into())]
        );
    }
}
