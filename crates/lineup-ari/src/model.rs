//! ARI resource models (`Channel`, `Bridge`, `Playback`, `Application`) and the typed request
//! parameters Lineup sends. Field names are exactly ARI's, so these types serialize to the JSON
//! a real Asterisk 22 produces (the stand-in serves them as they are).

use crate::error::AriError;
use crate::ids::{ApplicationName, BridgeId, ChannelId, Endpoint};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Longest media argument accepted in one `sound:`/`digits:`/`number:` URI.
pub const MEDIA_ARGUMENT_LENGTH_MAX_BYTES: usize = 128;
/// Most media URIs in one play request.
pub const MEDIA_PER_PLAY_MAX_COUNT: usize = 16;
/// Longest DTMF string accepted in one send-DTMF request.
pub const DTMF_LENGTH_MAX_DIGITS: usize = 32;

/// `CallerID` in ARI.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerId {
    pub name: String,
    pub number: String,
}

/// `DialplanCEP`: where a channel is in the dialplan.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DialplanLocation {
    pub context: String,
    pub exten: String,
    pub priority: i64,
    #[serde(default)]
    pub app_name: String,
    #[serde(default)]
    pub app_data: String,
}

/// A channel's state as ARI spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChannelState {
    Down,
    Rsrved,
    OffHook,
    Dialing,
    Ring,
    Ringing,
    Up,
    Busy,
    #[serde(rename = "Dialing Offhook")]
    DialingOffhook,
    #[serde(rename = "Pre-ring")]
    PreRing,
    #[serde(other)]
    Unknown,
}

/// ARI `Channel`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Channel {
    pub id: ChannelId,
    pub name: String,
    pub state: ChannelState,
    #[serde(default)]
    pub protocol_id: String,
    pub caller: CallerId,
    pub connected: CallerId,
    #[serde(default)]
    pub accountcode: String,
    pub dialplan: DialplanLocation,
    pub creationtime: String,
    #[serde(default)]
    pub language: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channelvars: Option<BTreeMap<String, String>>,
}

/// `bridge_type` of ARI `Bridge`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BridgeKind {
    Mixing,
    Holding,
}

/// ARI `Bridge`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bridge {
    pub id: BridgeId,
    pub technology: String,
    pub bridge_type: BridgeKind,
    pub bridge_class: String,
    pub creator: String,
    pub name: String,
    pub channels: Vec<ChannelId>,
    pub creationtime: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_mode: Option<String>,
}

/// `state` of ARI `Playback`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlaybackState {
    Queued,
    Playing,
    Continuing,
    Done,
    Failed,
    #[serde(other)]
    Unknown,
}

/// ARI `Playback`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Playback {
    pub id: crate::ids::PlaybackId,
    pub media_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_media_uri: Option<String>,
    pub target_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    pub state: PlaybackState,
}

/// ARI `Application`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Application {
    pub name: String,
    pub channel_ids: Vec<String>,
    pub bridge_ids: Vec<String>,
    pub endpoint_ids: Vec<String>,
    pub device_names: Vec<String>,
    #[serde(default)]
    pub events_allowed: Vec<serde_json::Value>,
    #[serde(default)]
    pub events_disallowed: Vec<serde_json::Value>,
}

/// `{"value": "..."}` answer of a variable get.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariableValue {
    pub value: String,
}

/// One media URI for play. Only the schemes Lineup uses, each with a strict argument syntax,
/// so no caller-controlled text can smuggle a second URI (`,`) into a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Media {
    /// `sound:<name>`: a file from the sounds directory, `[A-Za-z0-9_/-]`.
    Sound(String),
    /// `digits:<d>`: said digit by digit, `[0-9*#]`.
    Digits(String),
    /// `number:<n>`: said as a number.
    Number(u64),
    /// `tone:<indication>`: a tone such as `ring`, `[a-z]`.
    Tone(String),
}

impl Media {
    /// Parses `scheme:argument`.
    pub fn parse(uri: &str) -> Result<Media, AriError> {
        let invalid = |reason| AriError::InvalidInput {
            what: "media URI",
            value: uri.chars().take(MEDIA_ARGUMENT_LENGTH_MAX_BYTES).collect(),
            reason,
        };
        let (scheme, argument) = uri.split_once(':').ok_or_else(|| invalid("expected scheme:argument"))?;
        if argument.is_empty() || argument.len() > MEDIA_ARGUMENT_LENGTH_MAX_BYTES {
            return Err(invalid("argument empty or longer than MEDIA_ARGUMENT_LENGTH_MAX_BYTES"));
        }
        match scheme {
            "sound" => {
                let allowed = |b: u8| b.is_ascii_alphanumeric() || b"_/-".contains(&b);
                if !argument.bytes().all(allowed) || argument.contains("..") {
                    return Err(invalid("sound names allow A-Z a-z 0-9 _ / -"));
                }
                Ok(Media::Sound(argument.to_string()))
            }
            "digits" => {
                if !argument.bytes().all(|b| b.is_ascii_digit() || b == b'*' || b == b'#') {
                    return Err(invalid("digits allow 0-9 * #"));
                }
                Ok(Media::Digits(argument.to_string()))
            }
            "number" => {
                argument.parse::<u64>().map(Media::Number).map_err(|_| invalid("number must be a non-negative integer"))
            }
            "tone" => {
                if !argument.bytes().all(|b| b.is_ascii_lowercase()) {
                    return Err(invalid("tone names allow a-z"));
                }
                Ok(Media::Tone(argument.to_string()))
            }
            _ => Err(invalid("unsupported scheme (sound, digits, number, tone)")),
        }
    }
}

impl fmt::Display for Media {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Media::Sound(name) => write!(f, "sound:{name}"),
            Media::Digits(digits) => write!(f, "digits:{digits}"),
            Media::Number(number) => write!(f, "number:{number}"),
            Media::Tone(tone) => write!(f, "tone:{tone}"),
        }
    }
}

/// Validates a DTMF string for send-DTMF: `[0-9A-D*#]`, at most `DTMF_LENGTH_MAX_DIGITS`.
pub fn validate_dtmf(digits: &str) -> Result<(), AriError> {
    let ok = !digits.is_empty()
        && digits.len() <= DTMF_LENGTH_MAX_DIGITS
        && digits.bytes().all(|b| b.is_ascii_digit() || b"ABCD*#".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(AriError::InvalidInput {
            what: "DTMF digits",
            value: digits.chars().take(DTMF_LENGTH_MAX_DIGITS).collect(),
            reason: "1..=DTMF_LENGTH_MAX_DIGITS of 0-9 A-D * #",
        })
    }
}

/// `reason` of a channel hangup, with the Q.850 cause Asterisk maps it to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HangupReason {
    Normal,
    Busy,
    Congestion,
    NoAnswer,
    Timeout,
    Rejected,
    Unallocated,
    NormalUnspecified,
    NumberIncomplete,
    CodecMismatch,
    Interworking,
    Failure,
    AnsweredElsewhere,
}

impl HangupReason {
    pub const ALL: [HangupReason; 13] = [
        HangupReason::Normal,
        HangupReason::Busy,
        HangupReason::Congestion,
        HangupReason::NoAnswer,
        HangupReason::Timeout,
        HangupReason::Rejected,
        HangupReason::Unallocated,
        HangupReason::NormalUnspecified,
        HangupReason::NumberIncomplete,
        HangupReason::CodecMismatch,
        HangupReason::Interworking,
        HangupReason::Failure,
        HangupReason::AnsweredElsewhere,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HangupReason::Normal => "normal",
            HangupReason::Busy => "busy",
            HangupReason::Congestion => "congestion",
            HangupReason::NoAnswer => "no_answer",
            HangupReason::Timeout => "timeout",
            HangupReason::Rejected => "rejected",
            HangupReason::Unallocated => "unallocated",
            HangupReason::NormalUnspecified => "normal_unspecified",
            HangupReason::NumberIncomplete => "number_incomplete",
            HangupReason::CodecMismatch => "codec_mismatch",
            HangupReason::Interworking => "interworking",
            HangupReason::Failure => "failure",
            HangupReason::AnsweredElsewhere => "answered_elsewhere",
        }
    }

    pub fn parse(value: &str) -> Option<HangupReason> {
        HangupReason::ALL.into_iter().find(|reason| reason.as_str() == value)
    }

    /// The Q.850 cause code (`res/ari/resource_channels.c` mapping).
    pub fn cause_code(self) -> i32 {
        match self {
            HangupReason::Normal => 16,
            HangupReason::Busy => 17,
            HangupReason::Congestion => 34,
            HangupReason::NoAnswer => 19,
            HangupReason::Timeout => 18,
            HangupReason::Rejected => 21,
            HangupReason::Unallocated => 1,
            HangupReason::NormalUnspecified => 31,
            HangupReason::NumberIncomplete => 28,
            HangupReason::CodecMismatch => 58,
            HangupReason::Interworking => 127,
            HangupReason::Failure => 38,
            HangupReason::AnsweredElsewhere => 26,
        }
    }
}

/// Asterisk's `cause_txt` for a Q.850 cause code (`main/causes` table).
pub fn cause_text(cause: i32) -> &'static str {
    match cause {
        1 => "Unallocated (unassigned) number",
        3 => "No route to destination",
        16 => "Normal Clearing",
        17 => "User busy",
        18 => "No user responding",
        19 => "User alerting, no answer",
        20 => "Subscriber absent",
        21 => "Call Rejected",
        26 => "Answered elsewhere",
        28 => "Invalid number format (addr incomplete)",
        31 => "Normal, unspecified",
        34 => "Circuit/channel congestion",
        38 => "Network out of order",
        58 => "Bearer capability not available",
        127 => "Interworking, unspecified",
        _ => "Unknown",
    }
}

/// `type` of a bridge create. Order matters in Asterisk: `mixing,dtmf_events` clears the
/// native capability, `dtmf_events,mixing` adds it back (res_stasis.c parses the flags in
/// order), so only fixed
/// spellings are offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BridgeType {
    /// `mixing,dtmf_events`: media through Asterisk, DTMF seen, NAT-safe. Lineup's default.
    MixingDtmfEvents,
    /// `holding`: a holding bridge (persistent operators between calls).
    Holding,
}

impl BridgeType {
    pub fn as_str(self) -> &'static str {
        match self {
            BridgeType::MixingDtmfEvents => "mixing,dtmf_events",
            BridgeType::Holding => "holding",
        }
    }
}

/// Where `originate` sends the channel once answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OriginateTarget {
    /// Into a Stasis application with arguments (`app`, `appArgs`).
    Application { app: ApplicationName, app_args: Vec<String> },
    /// Into the dialplan (`context`, `extension`, `priority`).
    Dialplan { context: String, extension: String, priority: i64 },
}

/// `POST /channels` (originate).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginateRequest {
    pub endpoint: Endpoint,
    pub target: OriginateTarget,
    /// Deterministic id, so a retried originate answers 409 instead of dialing twice.
    pub channel_id: Option<ChannelId>,
    pub other_channel_id: Option<ChannelId>,
    /// `"Name" <number>` or `Name <number>`.
    pub caller_id: Option<String>,
    /// Ring timeout in seconds; `None` leaves Asterisk's default of 30.
    pub timeout_s: Option<i32>,
    pub originator: Option<ChannelId>,
    pub variables: BTreeMap<String, String>,
}

/// A direction of a snoop channel's `spy` or `whisper`, seen from the snooped channel:
/// `in` is the audio the channel sends into Asterisk (what its phone picks up), `out` the
/// audio Asterisk sends to it (what its phone plays).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SnoopDirection {
    None,
    In,
    Out,
    Both,
}

impl SnoopDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            SnoopDirection::None => "none",
            SnoopDirection::In => "in",
            SnoopDirection::Out => "out",
            SnoopDirection::Both => "both",
        }
    }

    /// Asterisk's spelling; anything else is refused as Asterisk refuses it.
    pub fn parse(text: &str) -> Option<SnoopDirection> {
        match text {
            "" | "none" => Some(SnoopDirection::None),
            "in" => Some(SnoopDirection::In),
            "out" => Some(SnoopDirection::Out),
            "both" => Some(SnoopDirection::Both),
            _ => None,
        }
    }

    /// Whether this direction covers the audio coming from the channel.
    pub fn includes_in(self) -> bool {
        matches!(self, SnoopDirection::In | SnoopDirection::Both)
    }

    /// Whether this direction covers the audio going to the channel.
    pub fn includes_out(self) -> bool {
        matches!(self, SnoopDirection::Out | SnoopDirection::Both)
    }
}

/// `POST /channels/{channel}/snoop`: a snoop channel on `channel`, entering `app`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnoopRequest {
    pub channel: ChannelId,
    pub app: ApplicationName,
    pub app_args: Vec<String>,
    pub spy: SnoopDirection,
    pub whisper: SnoopDirection,
    /// Deterministic id, so a retried snoop answers 409 instead of snooping twice.
    pub snoop_id: Option<ChannelId>,
}

/// `POST /channels/create` (create without dialing; `dial` follows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateChannelRequest {
    pub endpoint: Endpoint,
    pub app: ApplicationName,
    pub app_args: Vec<String>,
    pub channel_id: Option<ChannelId>,
    pub other_channel_id: Option<ChannelId>,
    pub originator: Option<ChannelId>,
    pub variables: BTreeMap<String, String>,
}

/// `POST /channels/{id}/dial`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialRequest {
    pub caller: Option<ChannelId>,
    /// Seconds; 0 means no timeout.
    pub timeout_s: u32,
}

/// `POST /channels/{id}/continue` target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContinueTarget {
    pub context: Option<String>,
    pub extension: Option<String>,
    pub priority: Option<i64>,
}

/// `POST /bridges` with a deterministic id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateBridgeRequest {
    pub bridge_id: BridgeId,
    pub bridge_type: BridgeType,
    pub name: Option<String>,
}

/// Parses a caller id string `"Name" <number>`, `Name <number>` or a bare number.
pub fn parse_caller_id(value: &str) -> CallerId {
    let value = value.trim();
    if let (Some(open), true) = (value.rfind('<'), value.ends_with('>')) {
        let number = value[open + 1..value.len() - 1].trim().to_string();
        let name = value[..open].trim().trim_matches('"').trim().to_string();
        CallerId { name, number }
    } else {
        CallerId { name: String::new(), number: value.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_round_trips_and_rejects_smuggled_uris() {
        for uri in ["sound:queue-thereare", "digits:3", "number:42", "tone:ring", "sound:digits/1"] {
            assert_eq!(Media::parse(uri).unwrap().to_string(), uri);
        }
        for bad in ["sound:a,sound:b", "digits:12a", "number:-1", "recording:x", "sound:", "sound:../x", "x"] {
            assert!(Media::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hangup_reasons_parse_and_map_to_causes() {
        for reason in HangupReason::ALL {
            assert_eq!(HangupReason::parse(reason.as_str()), Some(reason));
            assert_ne!(cause_text(reason.cause_code()), "Unknown");
        }
        assert_eq!(HangupReason::parse("bogus"), None);
    }

    #[test]
    fn caller_ids_parse_in_asterisk_forms() {
        assert_eq!(parse_caller_id("Alice <5551234>"), CallerId { name: "Alice".into(), number: "5551234".into() });
        assert_eq!(parse_caller_id("\"Op\" <100>"), CallerId { name: "Op".into(), number: "100".into() });
        assert_eq!(parse_caller_id("100"), CallerId { name: String::new(), number: "100".into() });
    }

    #[test]
    fn dtmf_validation_is_strict() {
        assert!(validate_dtmf("1234#").is_ok());
        assert!(validate_dtmf("").is_err());
        assert!(validate_dtmf("1,2").is_err());
        assert!(validate_dtmf(&"1".repeat(DTMF_LENGTH_MAX_DIGITS + 1)).is_err());
    }

    #[test]
    fn recorded_channel_parses() {
        let json = r#"{"id": "1795325224.0", "name": "Local/sales@callers-00000000;1", "state": "Down", "protocol_id": "", "caller": {"name": "Alice", "number": "5551234"}, "connected": {"name": "Alice", "number": "5551234"}, "accountcode": "", "dialplan": {"context": "callers", "exten": "sales", "priority": 1, "app_name": "AppDial2", "app_data": "(Outgoing Line)"}, "creationtime": "2026-11-22T05:27:04.653+0000", "language": "en"}"#;
        let channel: Channel = serde_json::from_str(json).unwrap();
        assert_eq!(channel.state, ChannelState::Down);
        let back: serde_json::Value = serde_json::to_value(&channel).unwrap();
        assert_eq!(back, serde_json::from_str::<serde_json::Value>(json).unwrap());
    }
}
