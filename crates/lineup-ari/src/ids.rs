//! Validated identifiers. Anything that reaches a URL path or a dial string goes through here.

use crate::error::AriError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest id accepted. Asterisk's uniqueids are about 20 bytes and UUIDs 36; Lineup derives
/// its own ids from call ids, which stay far below this.
pub const ID_LENGTH_MAX_BYTES: usize = 128;

/// Longest dial endpoint accepted (`PJSIP/lineup-<call>@site-b` and the like).
pub const ENDPOINT_LENGTH_MAX_BYTES: usize = 256;

fn is_id_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-')
}

/// A channel id may also hold `;`: Asterisk names the second half of a Local channel
/// originated with `channelId=X` (and no `otherChannelId`) `X;2`. A `;` is an ordinary
/// character in a URL path segment and Asterisk's HTTP server passes it through unchanged.
fn is_channel_id_byte(byte: u8) -> bool {
    is_id_byte(byte) || byte == b';'
}

/// Checks the strict id charset: `[A-Za-z0-9._-]`, 1..=`ID_LENGTH_MAX_BYTES` bytes, and not
/// `.` or `..` (they would change the meaning of a URL path).
pub fn validate_id(what: &'static str, value: &str) -> Result<(), AriError> {
    validate_id_with(what, value, is_id_byte, "only A-Z a-z 0-9 . _ - are allowed")
}

/// Checks a channel id: the strict id charset plus `;` (see `is_channel_id_byte`).
pub fn validate_channel_id(what: &'static str, value: &str) -> Result<(), AriError> {
    validate_id_with(what, value, is_channel_id_byte, "only A-Z a-z 0-9 . _ - ; are allowed")
}

fn validate_id_with(
    what: &'static str,
    value: &str,
    allowed: fn(u8) -> bool,
    charset: &'static str,
) -> Result<(), AriError> {
    let invalid =
        |reason| AriError::InvalidInput { what, value: value.chars().take(ID_LENGTH_MAX_BYTES).collect(), reason };
    if value.is_empty() {
        return Err(invalid("empty"));
    }
    if value.len() > ID_LENGTH_MAX_BYTES {
        return Err(invalid("longer than ID_LENGTH_MAX_BYTES"));
    }
    if value == "." || value == ".." {
        return Err(invalid("a path segment"));
    }
    if !value.bytes().all(allowed) {
        return Err(invalid(charset));
    }
    Ok(())
}

macro_rules! validated_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        validated_id!($(#[$doc])* $name, $what, validate_id);
    };
    ($(#[$doc:meta])* $name:ident, $what:literal, $validate:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Result<Self, AriError> {
                let value = value.into();
                $validate($what, &value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = String::deserialize(deserializer)?;
                $name::new(value).map_err(serde::de::Error::custom)
            }
        }

        impl std::str::FromStr for $name {
            type Err = AriError;
            fn from_str(value: &str) -> Result<Self, AriError> {
                $name::new(value)
            }
        }
    };
}

validated_id!(
    /// A channel's uniqueid: Asterisk's (`1795325224.1`), one Lineup chose with `channelId`,
    /// or the `;2` half of a Local channel Lineup originated (`cb-2-7;2`).
    ChannelId,
    "channel id",
    validate_channel_id
);
validated_id!(
    /// A bridge id; Lineup chooses them deterministically from the call id.
    BridgeId,
    "bridge id"
);
validated_id!(
    /// A playback id.
    PlaybackId,
    "playback id"
);
validated_id!(
    /// A Stasis application name (`lineup`, `lineup-login`).
    ApplicationName,
    "application name"
);

/// A dial endpoint such as `PJSIP/agent7`, `Local/100@phone` or `IAX2/site-b/lineup-42`.
///
/// Only `[A-Za-z0-9/@._+-]` is allowed: `&` would dial a second endpoint, `,` would add dial
/// options, and `$`/`{` would be dialplan expressions. A technology prefix is required.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Endpoint(String);

impl Endpoint {
    pub fn new(value: impl Into<String>) -> Result<Endpoint, AriError> {
        let value = value.into();
        let invalid = |reason| AriError::InvalidInput {
            what: "endpoint",
            value: value.chars().take(ENDPOINT_LENGTH_MAX_BYTES).collect(),
            reason,
        };
        if value.len() > ENDPOINT_LENGTH_MAX_BYTES {
            return Err(invalid("longer than ENDPOINT_LENGTH_MAX_BYTES"));
        }
        let allowed = |byte: u8| byte.is_ascii_alphanumeric() || b"/@._+-".contains(&byte);
        if !value.bytes().all(allowed) {
            return Err(invalid("only A-Z a-z 0-9 / @ . _ + - are allowed"));
        }
        match value.split_once('/') {
            Some((technology, resource)) if !technology.is_empty() && !resource.is_empty() => Ok(Endpoint(value)),
            _ => Err(invalid("expected TECHNOLOGY/resource")),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The technology before the first `/` (`PJSIP`, `IAX2`, `Local`).
    pub fn technology(&self) -> &str {
        self.0.split_once('/').map(|(technology, _)| technology).unwrap_or("")
    }

    /// Everything after the first `/`.
    pub fn resource(&self) -> &str {
        self.0.split_once('/').map(|(_, resource)| resource).unwrap_or("")
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Endpoint::new(value).map_err(serde::de::Error::custom)
    }
}

/// Checks a channel variable name: dialplan variable names, or a function call such as
/// `CALLERID(num)`. Names go in query strings (encoded), but are still kept to a strict set.
pub fn validate_variable_name(name: &str) -> Result<(), AriError> {
    let rule = NameRule {
        max_bytes: ID_LENGTH_MAX_BYTES,
        too_long: "empty or longer than ID_LENGTH_MAX_BYTES",
        punctuation: b"_()-.",
        charset: "only A-Z a-z 0-9 _ ( ) - . are allowed",
    };
    rule.check(name)
}

/// A variable-name check: a length bound and ASCII letters, digits and some punctuation.
struct NameRule {
    max_bytes: usize,
    too_long: &'static str,
    punctuation: &'static [u8],
    charset: &'static str,
}

impl NameRule {
    fn check(&self, name: &str) -> Result<(), AriError> {
        let invalid = |reason| AriError::InvalidInput {
            what: "variable name",
            value: name.chars().take(self.max_bytes).collect(),
            reason,
        };
        if name.is_empty() || name.len() > self.max_bytes {
            return Err(invalid(self.too_long));
        }
        if !name.bytes().all(|byte| byte.is_ascii_alphanumeric() || self.punctuation.contains(&byte)) {
            return Err(invalid(self.charset));
        }
        Ok(())
    }
}

/// Longest name `GET`/`POST /asterisk/variable` may carry: a function over an AstDB path,
/// such as `DB_DELETE(family/key)` with a missed-caller key of up to a few hundred bytes.
pub const ASTERISK_VARIABLE_NAME_LENGTH_MAX_BYTES: usize = 512;

/// Checks the name `GET` or `POST /asterisk/variable` carries: a global variable, or a
/// dialplan function over an AstDB path such as `DB_DELETE(family/key)`. The charset of
/// [`validate_variable_name`] plus `/` and `,` (AstDB paths and function arguments) and
/// `:` `+` `*` `#` (the fields of a missed-caller key), at most
/// [`ASTERISK_VARIABLE_NAME_LENGTH_MAX_BYTES`] bytes. Names go in query strings, encoded.
pub fn validate_asterisk_variable_name(name: &str) -> Result<(), AriError> {
    let rule = NameRule {
        max_bytes: ASTERISK_VARIABLE_NAME_LENGTH_MAX_BYTES,
        too_long: "empty or longer than ASTERISK_VARIABLE_NAME_LENGTH_MAX_BYTES",
        punctuation: b"_()-./,:+*#",
        charset: "only A-Z a-z 0-9 _ ( ) - . / , : + * # are allowed",
    };
    rule.check(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_asterisk_uniqueids_and_uuids() {
        assert!(ChannelId::new("1795325224.1").is_ok());
        assert!(BridgeId::new("30e608b3-048c-4f00-9d17-625d2f92e285").is_ok());
        assert!(ApplicationName::new("lineup-login").is_ok());
    }

    #[test]
    fn channel_ids_accept_the_second_half_of_a_local_channel() {
        assert!(ChannelId::new("cb-2-1764980000.17;2").is_ok());
        assert!(BridgeId::new("call;2").is_err(), "only channel ids carry ';'");
        let parsed: ChannelId = serde_json::from_str("\"cb-2-7;2\"").unwrap();
        assert_eq!(parsed.as_str(), "cb-2-7;2");
    }

    #[test]
    fn ids_reject_path_and_query_characters() {
        for bad in ["", ".", "..", "a/b", "a?b", "a b", "a%2f", "a#b", "é"] {
            let error = ChannelId::new(bad).expect_err(bad);
            assert!(matches!(error, AriError::InvalidInput { what: "channel id", .. }));
        }
        assert!(ChannelId::new("x".repeat(ID_LENGTH_MAX_BYTES + 1)).is_err());
        assert!(ChannelId::new("x".repeat(ID_LENGTH_MAX_BYTES)).is_ok());
    }

    #[test]
    fn ids_are_validated_when_deserialized() {
        let parsed: Result<ChannelId, _> = serde_json::from_str("\"../bridges\"");
        assert!(parsed.is_err());
    }

    #[test]
    fn endpoints_reject_dial_string_injection() {
        let endpoint = Endpoint::new("IAX2/site-b/lineup-42").unwrap();
        assert_eq!(endpoint.technology(), "IAX2");
        assert_eq!(endpoint.resource(), "site-b/lineup-42");
        for bad in ["PJSIP/a&PJSIP/b", "PJSIP/a,tT", "PJSIP/${EXTEN}", "agent7", "/x", "PJSIP/"] {
            assert!(Endpoint::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn variable_names_allow_functions_but_not_injection() {
        assert!(validate_variable_name("LINEUP_RESULT").is_ok());
        assert!(validate_variable_name("CALLERID(num)").is_ok());
        assert!(validate_variable_name("A=B").is_err());
        assert!(validate_variable_name("").is_err());
    }
}
