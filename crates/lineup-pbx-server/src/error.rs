//! The one error type of the stand-in's server face.

use lineup_pbx_sim::SimError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ServerError {
    /// A world or script setting that cannot work (unknown box, a box count out of range, ...).
    #[error(transparent)]
    Setup(#[from] SimError),
    /// A listener could not be bound or read.
    #[error("stand-in server: {0}")]
    Serve(String),
}
