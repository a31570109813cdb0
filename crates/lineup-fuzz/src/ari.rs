//! What Asterisk sends: events on the WebSocket and answers to REST requests.

use crate::input::ByteReader;
use crate::rigs::SiteRig;
use lineup_ari::rest::{decode_answer, read_answer};
use lineup_ari::{Application, AriError, AriEvent, Bridge, Channel, Playback};

/// Events per input, at most (one per line).
pub const EVENTS_PER_INPUT_MAX: usize = 64;
/// Virtual time between two events.
pub const EVENT_SPACING_MS: u64 = 200;

/// Newline-separated ARI event JSON → `AriEvent::parse` → the site controller (with the
/// routing state its proposals change), Tick between events. A line that does not parse is
/// refused with an error, as the events stream counts it.
pub fn ari_events(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut rig = SiteRig::new();
    for line in text.lines().take(EVENTS_PER_INPUT_MAX) {
        match AriEvent::parse(line) {
            Ok(event) => rig.event(event),
            Err(AriError::MalformedJson { .. }) => {}
            Err(other) => panic!("a parse failure is MalformedJson, not {other}"),
        }
        rig.advance(EVENT_SPACING_MS);
    }
    rig.reconcile();
}

/// The answer kinds `HttpAri` decodes a 2xx body into.
const ANSWER_KINDS: u8 = 7;

/// A status and a body as Asterisk might answer → `read_answer` → `decode_answer` into the
/// type the request expects. A channel or bridge list reaches the site controller as a
/// reconcile (after a caller entered, so it meets a tracked call).
pub fn ari_rest_answer(data: &[u8]) {
    let mut input = ByteReader::new(data);
    let kind = input.u8() % ANSWER_KINDS;
    let status = match input.u8() {
        0..=127 => 200,
        128..=159 => 204,
        160..=239 => input.pick(&[400u16, 401, 403, 404, 409, 412, 422, 500, 502, 503]),
        _ => input.u16(),
    };
    let body = input.rest();
    let text = match read_answer(status, body) {
        Ok(text) => text,
        Err(error) => {
            assert!(!(200..300).contains(&status), "a {status} answer refused: {error}");
            return;
        }
    };
    match kind {
        0 => drop(decode_answer::<Channel>("get channel", &text)),
        1 => drop(decode_answer::<Bridge>("get bridge", &text)),
        2 => drop(decode_answer::<Playback>("play", &text)),
        3 => drop(decode_answer::<Application>("get application", &text)),
        4 => drop(decode_answer::<lineup_ari::model::VariableValue>("get variable", &text)),
        5 => {
            if let Ok(channels) = decode_answer::<Vec<Channel>>("list channels", &text) {
                reconcile_after_a_caller(channels, Vec::new());
            }
        }
        _ => {
            if let Ok(bridges) = decode_answer::<Vec<Bridge>>("list bridges", &text) {
                reconcile_after_a_caller(Vec::new(), bridges);
            }
        }
    }
}

fn reconcile_after_a_caller(channels: Vec<Channel>, bridges: Vec<Bridge>) {
    let mut rig = SiteRig::new();
    let entry = crate::rigs::channel_json("1795325224.1", "PJSIP/caller-00000001", "5551234", "lineup,queue=sales");
    let start = serde_json::json!({
        "type": "StasisStart", "application": "lineup", "timestamp": "2026-11-22T05:27:04.654+0000",
        "args": ["queue=sales", "gate=web"], "channel": entry,
    });
    let event = AriEvent::from_value(start).expect("the recorded StasisStart parses");
    rig.event(event);
    rig.feed(lineup_site::Input::Reconcile { channels, bridges });
    rig.advance(EVENT_SPACING_MS);
}
