//! lineup-store: where committed effects go after routing is done with them.
//!
//! - [`history`]: PostgreSQL or SQLite history (calls, operator events and sessions, callback
//!   promises, Asterisk's adaptive `queue_log` table, a config mirror), idempotent by log index.
pub mod error;
pub mod history;

pub use error::StoreError;
pub use history::{BatchOutcome, ConfigMirror, Dialect, HistoryStore};
