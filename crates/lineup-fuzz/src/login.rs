//! A call entering Stasis with dialplan-supplied arguments, then keys and time: the caller
//! entry (`queue=`, `gate=`, `priority=`, `xfer=`) and the operator login by phone (operator
//! id and PIN digits, `#`, silence, tries and lockout), through the real site controller.

use crate::input::ByteReader;
use crate::rigs::{channel_json, SiteRig};
use lineup_ari::AriEvent;
use lineup_site::DIGIT_TIMEOUT_MS;

/// Steps (keys, pauses, prompt ends, hangups) per input, at most.
pub const STEPS_PER_INPUT_MAX: usize = 256;
/// Longest argument string read from the input.
const ARGS_MAX_BYTES: usize = 160;
const DIGITS: &[u8; 12] = b"0123456789*#";
const CHANNEL: &str = "1795400000.7";

fn event(value: serde_json::Value) -> AriEvent {
    // Through the real parser, as the events stream delivers it.
    match AriEvent::parse(&value.to_string()) {
        Ok(event) => event,
        Err(error) => panic!("an event the rig built does not parse: {error}"),
    }
}

/// An event's envelope. Each event gets its own millisecond timestamp, as Asterisk's do
/// (two identical events are one event delivered twice, and dropped as such).
fn envelope(rig: &mut SiteRig, kind: &str, application: &str, mut body: serde_json::Value) -> serde_json::Value {
    rig.events_sent += 1;
    let ms = rig.events_sent % 60_000;
    body["type"] = kind.into();
    body["application"] = application.into();
    body["timestamp"] = format!("2026-11-22T05:27:{:02}.{:03}+0000", ms / 1_000, ms % 1_000).into();
    body
}

/// Input: application choice, caller number choice, the argument string (comma separated,
/// length-prefixed), ARI failure script (length-prefixed), then one step per byte.
pub fn stasis_login(data: &[u8]) {
    let mut input = ByteReader::new(data);
    let application = input.pick(&["lineup-login", "lineup", "lineup-login", "other-app"]);
    let number = input.pick(&["100", "alice", "", "5551234", "bob"]);
    let args_text = input.text(ARGS_MAX_BYTES);
    let args: Vec<String> =
        if args_text.is_empty() { Vec::new() } else { args_text.split(',').map(str::to_string).collect() };
    let mut rig = SiteRig::new();
    rig.ari_script = input.bytes(32).iter().copied().collect();
    let app_data = format!("{application},{args_text}");
    let channel = channel_json(CHANNEL, "PJSIP/phone-00000007", number, &app_data);
    let start =
        envelope(&mut rig, "StasisStart", application, serde_json::json!({ "args": args, "channel": channel.clone() }));
    rig.event(event(start));
    for _ in 0..STEPS_PER_INPUT_MAX {
        if input.is_empty() {
            break;
        }
        step(&mut rig, input.u8(), application, &channel);
    }
    rig.advance(DIGIT_TIMEOUT_MS + 1);
}

fn step(rig: &mut SiteRig, byte: u8, application: &str, channel: &serde_json::Value) {
    match byte % 16 {
        digit @ 0..=11 => {
            let digit = char::from(DIGITS[usize::from(digit)]).to_string();
            let body = serde_json::json!({ "digit": digit, "duration_ms": 100, "channel": channel });
            let sent = envelope(rig, "ChannelDtmfReceived", application, body);
            rig.event(event(sent));
        }
        12 => rig.advance(1_000),
        13 => rig.advance(DIGIT_TIMEOUT_MS + 1),
        14 => {
            let Some((on, playback)) = rig.playbacks.last().cloned() else { return };
            let body = serde_json::json!({ "playback": {
                "id": playback.as_str(), "media_uri": "sound:beep", "target_uri": format!("channel:{on}"),
                "language": "en", "state": "done",
            }});
            let sent = envelope(rig, "PlaybackFinished", application, body);
            rig.event(event(sent));
        }
        _ => {
            let hangup = serde_json::json!({ "cause": 16, "channel": channel });
            let sent = envelope(rig, "ChannelHangupRequest", application, hangup);
            rig.event(event(sent));
            let sent = envelope(rig, "StasisEnd", application, serde_json::json!({ "channel": channel }));
            rig.event(event(sent));
            let destroyed = serde_json::json!({ "cause": 16, "cause_txt": "Normal Clearing", "channel": channel });
            let sent = envelope(rig, "ChannelDestroyed", application, destroyed);
            rig.event(event(sent));
        }
    }
}
