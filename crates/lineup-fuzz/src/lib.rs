//! lineup-fuzz: the logic of every fuzz target, one plain `pub fn <name>(data: &[u8])` per
//! input that crosses a trust boundary. Each drives the real code path of the crate that
//! owns the input and panics only on a real bug (a panic in product code, or a broken
//! invariant); an `Err` for bad input is the documented answer and passes.
//!
//! The libFuzzer targets in `fuzz/fuzz_targets/` (cargo-fuzz, nightly, outside the
//! workspace) call these functions, and `tests/replay.rs` replays every committed corpus
//! file and crash regression through them on stable, in the normal test run.
//!
//! Code map:
//! - `input`: `ByteReader`, the small decoder structure-aware targets read their choices with.
//! - `rigs`: the routing state targets start from, and `SiteRig` (a site controller and a
//!   one-node "cluster" applying its proposals, in virtual time).
//! - one file per boundary: `ari` (events and REST answers), `login` (Stasis arguments and
//!   digit sequences), `missed` (missed-caller record keys from the box's AstDB), `peer` (frames, Raft messages, log entries, snapshots), `api` (REST
//!   bodies, WebSocket upgrades), `config_files` (routing and node config), `store` (queue_log
//!   and outbox recovery), `island` (the island journal's file, damaged), `core_commands`
//!   (command streams into `Routing::apply`).

mod api;
mod ari;
#[allow(dead_code)]
#[path = "../../lineup/src/config_file.rs"]
mod config_file;
mod config_files;
mod contained_panics;
mod core_commands;
mod input;
mod island;
mod login;
mod missed;
#[allow(dead_code)]
#[path = "../../lineup/src/node_config.rs"]
mod node_config;
mod peer;
mod rigs;
mod runtime;
mod scratch;
mod store;

pub use api::{api_rest, api_websocket, API_ROUTES};
pub use ari::{ari_events, ari_rest_answer};
pub use config_files::{node_config, routing_config};
pub use contained_panics::let_redb_panics_unwind;
pub use core_commands::core_commands;
pub use island::island_journal;
pub use login::stasis_login;
pub use missed::missed_records;
pub use peer::{peer_frame, raft_log_entry, routing_snapshot};
pub use rigs::{base_config, configured_routing};
pub use store::{outbox_recovery, queue_log_recovery};

/// A fuzz target's logic.
pub type Target = fn(&[u8]);

/// Every target by name: the name is the cargo-fuzz target and the directory of its corpus
/// (`fuzz/corpus/<name>`) and regressions (`fuzz/regressions/<name>`).
pub const TARGETS: [(&str, Target); 15] = [
    ("ari_events", ari_events),
    ("ari_rest_answer", ari_rest_answer),
    ("stasis_login", stasis_login),
    ("missed_records", missed_records),
    ("peer_frame", peer_frame),
    ("raft_log_entry", raft_log_entry),
    ("routing_snapshot", routing_snapshot),
    ("api_rest", api_rest),
    ("api_websocket", api_websocket),
    ("routing_config", routing_config),
    ("node_config", node_config),
    ("queue_log_recovery", queue_log_recovery),
    ("outbox_recovery", outbox_recovery),
    ("island_journal", island_journal),
    ("core_commands", core_commands),
];
