//! The one error type of the stand-in (its ARI answers use `lineup_ari::AriError`).

use thiserror::Error;

#[derive(Debug, Error)]
pub enum SimError {
    /// A dialplan text the stand-in cannot read.
    #[error("dialplan line {line}: {reason}")]
    Dialplan { line: usize, reason: String },
    /// A world or script setting that cannot work (unknown box, duplicate phone, ...).
    #[error("invalid stand-in setup: {0}")]
    InvalidSetup(String),
}
