//! How handlers refuse a command: field checks shared by several commands, and the error
//! for a command that does not fit the current state.

use crate::callback_policy::{is_callback_number, CALLBACK_NUMBER_MAX_DIGITS, CALLBACK_NUMBER_MIN_DIGITS};
use crate::CoreError;

/// A command that does not fit the current state of the call or operator.
pub(super) fn invalid(what: &'static str, detail: impl Into<String>) -> CoreError {
    CoreError::InvalidState { what: what.into(), detail: detail.into() }
}

pub(super) fn validate_callback_number(number: &str) -> Result<(), CoreError> {
    if is_callback_number(number) {
        Ok(())
    } else {
        Err(CoreError::InvalidField {
            field: "callback_number".into(),
            reason: format!(
                "must be {CALLBACK_NUMBER_MIN_DIGITS} to {CALLBACK_NUMBER_MAX_DIGITS} digits, optionally after '+'"
            ),
        })
    }
}

pub(super) fn validate_id_field(field: &'static str, id: &str) -> Result<(), CoreError> {
    crate::ids::validate_id(id).map_err(|e| CoreError::InvalidField { field: field.into(), reason: e.to_string() })
}

/// A channel id: an id, or an id with Asterisk's Local-half suffix (`X;2`: the second half
/// of a Local channel originated with `channelId=X`), which is the channel a caller or
/// operator on a Local channel enters Stasis with.
pub(super) fn validate_channel_field(field: &'static str, channel: &str) -> Result<(), CoreError> {
    let base = match channel.rsplit_once(';') {
        Some((base, half)) if !half.is_empty() && half.bytes().all(|b| b.is_ascii_digit()) => base,
        Some(_) => {
            return Err(CoreError::InvalidField {
                field: field.into(),
                reason: "only a Local channel half (`;1`, `;2`) may follow the id".into(),
            })
        }
        None => channel,
    };
    validate_id_field(field, base)
}

/// The phone call a PIN login came from: a channel id, and a name fit for a queue_log
/// field (no `|`, no control character, bounded).
pub(super) fn validate_login_channel(login: &crate::model::LoginChannel) -> Result<(), CoreError> {
    validate_channel_field("login.uniqueid", &login.uniqueid)?;
    if login.name.is_empty() {
        return Err(CoreError::InvalidField { field: "login.name".into(), reason: "empty".into() });
    }
    crate::config::validate_text("login.name", &login.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_channel_half_is_a_channel_id() {
        for good in ["1795325224.1", "cb-2-17;2", "x;1"] {
            assert!(validate_channel_field("channel", good).is_ok(), "{good}");
        }
        for bad in ["", ";2", "x;", "x;a", "x;2;2", "a b", "x/;2"] {
            assert!(validate_channel_field("channel", bad).is_err(), "{bad}");
        }
    }
}
