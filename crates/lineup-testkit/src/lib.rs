//! Test rigs shared by lineup-site's tests and the simulator (`lineup-sim`).
//!
//! - `ari`: executes a site controller's `AriRequest` against the stand-in's `PbxWorld`
//!   directly (the REST face without HTTP), so a controller can drive a box in virtual time.

pub mod ari;

pub use ari::{execute_ari, missed_reader_request, read_missed_records};
