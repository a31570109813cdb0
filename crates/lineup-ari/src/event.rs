//! ARI events: the typed envelope, parsing that tolerates unknown types, and the
//! de-duplication of the copies Asterisk sends once per subscribed application.

use crate::error::AriError;
use crate::model::{Bridge, Channel, Playback};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};

/// Largest event accepted from the WebSocket. Real events are a few KiB; a `GET /channels`
/// sized event would be a bug or an attack.
pub const EVENT_SIZE_MAX_BYTES: usize = 1024 * 1024;

/// How many recent events the de-duplicator remembers. Asterisk sends the per-application
/// copies back to back, so a short window is enough.
pub const DEDUP_WINDOW_EVENTS: usize = 512;

/// One ARI event: the fields every event carries, plus the typed body.
#[derive(Clone, Debug, PartialEq)]
pub struct AriEvent {
    /// The application this copy was sent for.
    pub application: String,
    /// Asterisk's timestamp, e.g. `2026-11-22T05:27:04.654+0000`.
    pub timestamp: String,
    /// Which Asterisk sent it, if it says.
    pub asterisk_id: Option<String>,
    pub kind: EventKind,
}

/// The event types Lineup acts on, plus the few that a real Asterisk interleaves with them
/// (so the stand-in can reproduce the recorded order). Everything else is `Unknown`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum EventKind {
    StasisStart {
        args: Vec<String>,
        channel: Channel,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replace_channel: Option<Channel>,
    },
    StasisEnd {
        channel: Channel,
    },
    ChannelDtmfReceived {
        digit: String,
        duration_ms: u32,
        channel: Channel,
    },
    ChannelStateChange {
        channel: Channel,
    },
    ChannelHangupRequest {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cause: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tech_cause: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        soft: Option<bool>,
        channel: Channel,
    },
    ChannelDestroyed {
        cause: i32,
        cause_txt: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tech_cause: Option<i32>,
        channel: Channel,
    },
    ChannelEnteredBridge {
        bridge: Bridge,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<Channel>,
    },
    ChannelLeftBridge {
        bridge: Bridge,
        channel: Channel,
    },
    PlaybackStarted {
        playback: Playback,
    },
    PlaybackContinuing {
        playback: Playback,
    },
    PlaybackFinished {
        playback: Playback,
    },
    Dial {
        peer: Channel,
        dialstatus: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caller: Option<Channel>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dialstring: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        forward: Option<String>,
    },
    ChannelVarset {
        variable: String,
        value: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<Channel>,
    },
    ChannelDialplan {
        dialplan_app: String,
        dialplan_app_data: String,
        channel: Channel,
    },
    ChannelCallerId {
        caller_presentation: i32,
        caller_presentation_txt: String,
        channel: Channel,
    },
    ChannelConnectedLine {
        channel: Channel,
    },
    BridgeCreated {
        bridge: Bridge,
    },
    BridgeDestroyed {
        bridge: Bridge,
    },
    /// Another WebSocket took this application over.
    ApplicationReplaced {},
    /// A type this crate does not model. Tolerated and counted, never an error.
    #[serde(skip)]
    Unknown {
        event_type: String,
    },
}

/// The `type` strings `EventKind` models (everything but `Unknown`).
pub const MODELLED_EVENT_TYPES: [&str; 19] = [
    "StasisStart",
    "StasisEnd",
    "ChannelDtmfReceived",
    "ChannelStateChange",
    "ChannelHangupRequest",
    "ChannelDestroyed",
    "ChannelEnteredBridge",
    "ChannelLeftBridge",
    "PlaybackStarted",
    "PlaybackContinuing",
    "PlaybackFinished",
    "Dial",
    "ChannelVarset",
    "ChannelDialplan",
    "ChannelCallerId",
    "ChannelConnectedLine",
    "BridgeCreated",
    "BridgeDestroyed",
    "ApplicationReplaced",
];

impl EventKind {
    /// The ARI `type` string.
    pub fn type_name(&self) -> &str {
        match self {
            EventKind::StasisStart { .. } => "StasisStart",
            EventKind::StasisEnd { .. } => "StasisEnd",
            EventKind::ChannelDtmfReceived { .. } => "ChannelDtmfReceived",
            EventKind::ChannelStateChange { .. } => "ChannelStateChange",
            EventKind::ChannelHangupRequest { .. } => "ChannelHangupRequest",
            EventKind::ChannelDestroyed { .. } => "ChannelDestroyed",
            EventKind::ChannelEnteredBridge { .. } => "ChannelEnteredBridge",
            EventKind::ChannelLeftBridge { .. } => "ChannelLeftBridge",
            EventKind::PlaybackStarted { .. } => "PlaybackStarted",
            EventKind::PlaybackContinuing { .. } => "PlaybackContinuing",
            EventKind::PlaybackFinished { .. } => "PlaybackFinished",
            EventKind::Dial { .. } => "Dial",
            EventKind::ChannelVarset { .. } => "ChannelVarset",
            EventKind::ChannelDialplan { .. } => "ChannelDialplan",
            EventKind::ChannelCallerId { .. } => "ChannelCallerId",
            EventKind::ChannelConnectedLine { .. } => "ChannelConnectedLine",
            EventKind::BridgeCreated { .. } => "BridgeCreated",
            EventKind::BridgeDestroyed { .. } => "BridgeDestroyed",
            EventKind::ApplicationReplaced {} => "ApplicationReplaced",
            EventKind::Unknown { event_type } => event_type,
        }
    }

    /// The channel the event is about, where there is one.
    pub fn channel(&self) -> Option<&Channel> {
        match self {
            EventKind::StasisStart { channel, .. }
            | EventKind::StasisEnd { channel }
            | EventKind::ChannelDtmfReceived { channel, .. }
            | EventKind::ChannelStateChange { channel }
            | EventKind::ChannelHangupRequest { channel, .. }
            | EventKind::ChannelDestroyed { channel, .. }
            | EventKind::ChannelLeftBridge { channel, .. }
            | EventKind::ChannelDialplan { channel, .. }
            | EventKind::ChannelCallerId { channel, .. }
            | EventKind::ChannelConnectedLine { channel } => Some(channel),
            EventKind::ChannelEnteredBridge { channel, .. } | EventKind::ChannelVarset { channel, .. } => {
                channel.as_ref()
            }
            EventKind::Dial { peer, .. } => Some(peer),
            _ => None,
        }
    }
}

impl AriEvent {
    /// Parses one WebSocket text message. Unknown types become `EventKind::Unknown`; a known
    /// type with a wrong shape, or a message without `type`/`application`, is an error.
    pub fn parse(text: &str) -> Result<AriEvent, AriError> {
        if text.len() > EVENT_SIZE_MAX_BYTES {
            return Err(AriError::MessageTooLarge { size_bytes: text.len(), limit_bytes: EVENT_SIZE_MAX_BYTES });
        }
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|error| AriError::MalformedJson { context: "event", detail: error.to_string() })?;
        AriEvent::from_value(value)
    }

    /// Like `parse`, from an already decoded JSON value.
    pub fn from_value(value: serde_json::Value) -> Result<AriEvent, AriError> {
        let malformed = |detail: String| AriError::MalformedJson { context: "event", detail };
        let object = value.as_object().ok_or_else(|| malformed("not a JSON object".into()))?;
        let text_field = |name: &str| object.get(name).and_then(|field| field.as_str()).map(str::to_string);
        let event_type = text_field("type").ok_or_else(|| malformed("missing string field `type`".into()))?;
        let application = text_field("application").unwrap_or_default();
        let timestamp = text_field("timestamp").unwrap_or_default();
        let asterisk_id = text_field("asterisk_id");
        let kind = if MODELLED_EVENT_TYPES.contains(&event_type.as_str()) {
            serde_json::from_value::<EventKind>(value).map_err(|error| malformed(format!("{event_type}: {error}")))?
        } else {
            EventKind::Unknown { event_type }
        };
        Ok(AriEvent { application, timestamp, asterisk_id, kind })
    }

    /// Serializes in ARI's shape. `Unknown` kinds serialize as just their envelope.
    pub fn to_value(&self) -> serde_json::Value {
        let mut value = match &self.kind {
            EventKind::Unknown { event_type } => serde_json::json!({ "type": event_type }),
            kind => serde_json::to_value(kind).unwrap_or_else(|_| serde_json::json!({})),
        };
        if let Some(object) = value.as_object_mut() {
            object.insert("timestamp".into(), self.timestamp.clone().into());
            if let Some(asterisk_id) = &self.asterisk_id {
                object.insert("asterisk_id".into(), asterisk_id.clone().into());
            }
            object.insert("application".into(), self.application.clone().into());
        }
        value
    }

    /// The identity of the event regardless of which application's copy this is: a 128-bit
    /// digest of everything but the application, hashed while serializing (no JSON tree
    /// or string is built: this runs for every event a site receives). Every map in an
    /// event is a `BTreeMap`, so equal events serialize, and hash, identically.
    fn dedup_key(&self) -> DedupKey {
        let mut writer = DigestWriter::default();
        if serde_json::to_writer(&mut writer, &(&self.timestamp, &self.asterisk_id, &self.kind)).is_err() {
            // Unserializable is impossible for these types; fall back to the debug form.
            writer = DigestWriter::default();
            let _ = std::io::Write::write_all(&mut writer, format!("{self:?}").as_bytes());
        }
        writer.finish()
    }
}

/// An event's identity for deduplication (see `AriEvent::dedup_key`).
type DedupKey = (u64, u64);

/// Two independent SipHash streams over the bytes written (fixed keys: deterministic).
struct DigestWriter {
    low: std::collections::hash_map::DefaultHasher,
    high: std::collections::hash_map::DefaultHasher,
}

impl Default for DigestWriter {
    fn default() -> DigestWriter {
        use std::hash::Hasher;
        let (mut low, mut high) =
            (std::collections::hash_map::DefaultHasher::new(), std::collections::hash_map::DefaultHasher::new());
        low.write_u8(0x4c);
        high.write_u8(0x68);
        DigestWriter { low, high }
    }
}

impl DigestWriter {
    fn finish(&self) -> DedupKey {
        use std::hash::Hasher;
        (self.low.finish(), self.high.finish())
    }
}

impl std::io::Write for DigestWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        use std::hash::Hasher;
        self.low.write(bytes);
        self.high.write(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Drops the second and later copies of one event that Asterisk sends once per subscribed
/// application (a WebSocket for `app=lineup,lineup-login` sees a bridge event twice).
///
/// With `admit`, two identical events for the *same* application are both kept: that is two
/// events, not two copies of one. `admit_once` drops those too (redeliveries), for consumers
/// that must act on each event once even over at-least-once delivery.
#[derive(Debug, Default)]
pub struct EventDeduplicator {
    recent: VecDeque<DedupKey>,
    applications_by_key: HashMap<DedupKey, Vec<String>>,
    duplicates_dropped: u64,
}

impl EventDeduplicator {
    pub fn new() -> EventDeduplicator {
        EventDeduplicator::default()
    }

    /// True if the event is new and should be delivered; false for another application's copy
    /// of an event already delivered.
    pub fn admit(&mut self, event: &AriEvent) -> bool {
        if matches!(event.kind, EventKind::Unknown { .. } | EventKind::ApplicationReplaced {}) {
            return true;
        }
        let key = event.dedup_key();
        if let Some(applications) = self.applications_by_key.get_mut(&key) {
            if !applications.contains(&event.application) {
                applications.push(event.application.clone());
                self.duplicates_dropped += 1;
                return false;
            }
            // Same application again: a genuinely repeated event. Deliver it.
            return true;
        }
        self.remember(key, &event.application);
        true
    }

    /// Like `admit`, but a repeat for the same application is dropped as well: an event
    /// identical to one admitted within the window is a redelivery, never a second event.
    /// Distinct ARI events are never identical: each carries a millisecond timestamp and the
    /// snapshot of what it is about (two key presses, two hangup requests differ).
    pub fn admit_once(&mut self, event: &AriEvent) -> bool {
        if matches!(event.kind, EventKind::Unknown { .. } | EventKind::ApplicationReplaced {}) {
            return true;
        }
        let key = event.dedup_key();
        if let Some(applications) = self.applications_by_key.get_mut(&key) {
            if !applications.contains(&event.application) {
                applications.push(event.application.clone());
            }
            self.duplicates_dropped += 1;
            return false;
        }
        self.remember(key, &event.application);
        true
    }

    fn remember(&mut self, key: DedupKey, application: &str) {
        if self.recent.len() == DEDUP_WINDOW_EVENTS {
            if let Some(oldest) = self.recent.pop_front() {
                self.applications_by_key.remove(&oldest);
            }
        }
        self.recent.push_back(key);
        self.applications_by_key.insert(key, vec![application.to_string()]);
        debug_assert!(self.recent.len() <= DEDUP_WINDOW_EVENTS);
    }

    pub fn duplicates_dropped(&self) -> u64 {
        self.duplicates_dropped
    }

    /// Forgets the window, e.g. after a reconnect (a new connection starts a new stream).
    pub fn clear(&mut self) {
        self.recent.clear();
        self.applications_by_key.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORDING: &str = include_str!("../tests/data/asterisk22-queue-call.jsonl");

    fn recorded_events() -> Vec<AriEvent> {
        RECORDING
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .filter(|record| record["kind"] == "event")
            .map(|record| AriEvent::from_value(record["event"].clone()).unwrap())
            .collect()
    }

    #[test]
    fn every_recorded_event_parses_and_round_trips() {
        for line in RECORDING.lines() {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            if record["kind"] != "event" {
                continue;
            }
            let event = AriEvent::from_value(record["event"].clone()).unwrap();
            assert!(!matches!(event.kind, EventKind::Unknown { .. }), "{line}");
            assert_eq!(event.to_value(), record["event"], "round trip of {line}");
        }
    }

    #[test]
    fn recorded_stasis_start_carries_args() {
        let events = recorded_events();
        let EventKind::StasisStart { args, channel, .. } = &events[0].kind else {
            panic!("first recorded event is StasisStart");
        };
        assert_eq!(args, &["queue=sales", "gate=web"]);
        assert_eq!(channel.id.as_str(), "1795325224.1");
        assert_eq!(events[0].application, "lineup");
    }

    /// Asterisk 22 names the second half of a Local channel originated with `channelId=X` as
    /// `X;2` (core_unreal.c); its events must reach the controller, not be dropped.
    #[test]
    fn events_of_a_local_channels_second_half_parse() {
        let mut record = recorded_events()[0].to_value();
        record["channel"]["id"] = "cb-2-1764980000.17;2".into();
        record["channel"]["name"] = "Local/100@callbacks-00000001;2".into();
        let event = AriEvent::from_value(record).unwrap();
        let EventKind::StasisStart { channel, .. } = &event.kind else { panic!("StasisStart") };
        assert_eq!(channel.id.as_str(), "cb-2-1764980000.17;2");
    }

    #[test]
    fn unknown_events_are_tolerated() {
        let event =
            AriEvent::parse(r#"{"type":"ChannelTalkingStarted","application":"lineup","timestamp":"t"}"#).unwrap();
        assert_eq!(event.kind, EventKind::Unknown { event_type: "ChannelTalkingStarted".into() });
        assert_eq!(event.kind.type_name(), "ChannelTalkingStarted");
    }

    #[test]
    fn malformed_events_are_errors_not_panics() {
        for bad in ["", "[]", "{}", "{\"type\":5}", "{\"type\":\"StasisStart\",\"application\":\"x\"}", "{"] {
            assert!(matches!(AriEvent::parse(bad), Err(AriError::MalformedJson { .. })), "{bad}");
        }
        let huge = format!("{{\"type\":\"X\",\"pad\":\"{}\"}}", "a".repeat(EVENT_SIZE_MAX_BYTES));
        assert!(matches!(AriEvent::parse(&huge), Err(AriError::MessageTooLarge { .. })));
    }

    /// Truncated and corrupted copies of every recorded message: each parse returns (an
    /// event or an error), none panics.
    #[test]
    fn damaged_messages_never_panic() {
        const STRIDE_BYTES: usize = 7;
        let mut parsed = 0;
        let mut refused = 0;
        for line in RECORDING.lines() {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            if record["kind"] != "event" {
                continue;
            }
            let text = record["event"].to_string();
            let bytes = text.as_bytes();
            for cut in (0..bytes.len()).step_by(STRIDE_BYTES) {
                let mut damaged = bytes.to_vec();
                const NOISE: &[u8] = b"\"{}[]:,0x";
                damaged[cut] = NOISE[cut % NOISE.len()];
                for candidate in [&bytes[..cut], damaged.as_slice()] {
                    match AriEvent::parse(&String::from_utf8_lossy(candidate)) {
                        Ok(_) => parsed += 1,
                        Err(_) => refused += 1,
                    }
                }
            }
        }
        assert!(parsed > 0 && refused > 0, "parsed {parsed}, refused {refused}");
    }

    #[test]
    fn per_application_copies_are_dropped_once() {
        let events = recorded_events();
        let mut dedup = EventDeduplicator::new();
        let admitted: Vec<&AriEvent> = events.iter().filter(|event| dedup.admit(event)).collect();
        // The recording has four events sent to both applications: one ChannelEnteredBridge,
        // two ChannelLeftBridge and one BridgeDestroyed.
        assert_eq!(dedup.duplicates_dropped(), 4);
        assert_eq!(admitted.len(), events.len() - 4);
        // The two ChannelHangupRequest events for one channel differ (`soft`): both kept.
        let hangups = admitted.iter().filter(|e| e.kind.type_name() == "ChannelHangupRequest").count();
        assert_eq!(hangups, 4);
    }

    #[test]
    fn same_application_repeats_are_kept() {
        let event = recorded_events().remove(0);
        let mut dedup = EventDeduplicator::new();
        assert!(dedup.admit(&event));
        assert!(dedup.admit(&event));
        let mut other_copy = event.clone();
        other_copy.application = "lineup-login".into();
        assert!(!dedup.admit(&other_copy));
    }

    #[test]
    fn admit_once_drops_redeliveries_and_keeps_every_distinct_recorded_event() {
        let events = recorded_events();
        let (mut copies, mut once) = (EventDeduplicator::new(), EventDeduplicator::new());
        let admitted: Vec<&AriEvent> = events.iter().filter(|event| copies.admit(event)).collect();
        // Every event of the recording delivered twice: the second copies all go, and nothing
        // that `admit` keeps as distinct is lost.
        let twice = events.iter().flat_map(|event| [event, event]);
        let admitted_once: Vec<&AriEvent> = twice.filter(|event| once.admit_once(event)).collect();
        assert_eq!(admitted_once, admitted);
        let event = events[0].clone();
        let mut dedup = EventDeduplicator::new();
        assert!(dedup.admit_once(&event));
        assert!(!dedup.admit_once(&event));
        let mut other_copy = event.clone();
        other_copy.application = "lineup-login".into();
        assert!(!dedup.admit_once(&other_copy));
        dedup.clear();
        assert!(dedup.admit_once(&event), "a new stream starts afresh");
    }

    #[test]
    fn dedup_window_is_bounded() {
        let template = recorded_events().remove(0);
        let mut dedup = EventDeduplicator::new();
        for index in 0..(DEDUP_WINDOW_EVENTS * 2) {
            let mut event = template.clone();
            event.timestamp = format!("t{index}");
            assert!(dedup.admit(&event));
        }
        assert_eq!(dedup.recent.len(), DEDUP_WINDOW_EVENTS);
        assert_eq!(dedup.applications_by_key.len(), DEDUP_WINDOW_EVENTS);
    }
}
