//! `lineup-pbx-server`: the Asterisk stand-in's IO face. The world itself (`PbxWorld`, its
//! dialplan and ARI REST surface) is the sans-IO `lineup-pbx-sim`; this crate puts it on a
//! real clock and behind real sockets, for end-to-end tests, the demo and the chaos harness.
//!
//! Code map:
//! - `server`: `LiveWorld` (the world on a real clock, timers driven by a task) and
//!   `serve_box` (axum HTTP + WebSocket for one box, every request through
//!   `lineup_pbx_sim::handle_rest`), with fault seams for tests: `RestFault` (500s, late
//!   answers, late execution), `drop_event_connections`, `set_duplicate_events`,
//!   `set_reorder_events`; `watch_requests` reports every request answered (benchmarks time
//!   the bridge request with it).
//! - `in_memory`: `InMemoryAri`, the `lineup_ari::Ari` trait over a `LiveWorld` with no
//!   sockets (with tokio's paused clock, in virtual time).
//! - `standin` (and the `lineup-pbx-sim-server` binary): the boxes in a process of their own
//!   with a control API and the ground truth of `lineup_pbx_sim::truth`, for the real-process
//!   chaos harness `lineup-chaos`.
//! - `error`: `ServerError`.

pub mod error;
pub mod in_memory;
pub mod server;
pub mod standin;

pub use error::ServerError;
pub use in_memory::InMemoryAri;
pub use server::{
    serve_box, BoxServer, LiveWorld, RequestRecord, RestFault, RestFaultKind, SimCredentials, WorldObserver,
};
