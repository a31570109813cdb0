//! How handlers refuse a command: field checks shared by several commands, and the error
//! for a command that does not fit the current state.

use super::{CALLBACK_NUMBER_MAX_DIGITS, CALLBACK_NUMBER_MIN_DIGITS};
use crate::CoreError;

/// A command that does not fit the current state of the call or operator.
pub(super) fn invalid(what: &'static str, detail: impl Into<String>) -> CoreError {
    CoreError::InvalidState { what: what.into(), detail: detail.into() }
}

pub(super) fn validate_callback_number(number: &str) -> Result<(), CoreError> {
    let digits = number.strip_prefix('+').unwrap_or(number);
    let ok = (CALLBACK_NUMBER_MIN_DIGITS..=CALLBACK_NUMBER_MAX_DIGITS).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit());
    if ok {
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
