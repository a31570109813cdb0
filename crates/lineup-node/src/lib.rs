//! lineup-node: one site's node, assembled from the workspace's libraries — the Raft member
//! over QUIC, site control over ARI, the history pipeline, the optional Redis projection, and
//! the API backend over all of them. `lineup run` starts one; `lineup demo` starts three in
//! one process. Wiring only: no routing decision is made here.
//!
//! Code map:
//! - [`node`]: `NodeSpec` (everything resolved, no files) and `RunningNode` (start, shutdown).
//! - [`wiring`]: the cluster node as site control's port and feed.
//! - [`serial_floor`]: the site's command serials, kept growing across restarts.
//! - [`api_backend`]: `NodeBackend` (lineup-api's backend over a running node), `start_api`.
//! - `api_reports`: interval reports from the history database, in the API's shapes.
//! - [`error`]: the one error type, `NodeError`.
//! - [`webhook`]: signed webhook events about alarms and site health, sent by the leader.

pub mod api_backend;
mod api_reports;
pub mod error;
pub mod island_health;
pub mod node;
pub mod serial_floor;
pub mod webhook;
pub mod wiring;

pub use api_backend::{serve_api, start_api, IngressTargets, NodeBackend};
pub use error::NodeError;
pub use node::{EdgeHealth, Node, NodeSpec, RunningNode};
