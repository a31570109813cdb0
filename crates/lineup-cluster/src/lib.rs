//! lineup-cluster: the routing core replicated by openraft over QUIC with mutual TLS.
//!
//! See docs/ARCHITECTURE.md for the code map. Only this crate knows openraft and quinn.
//!
//! Start here: [`node::ClusterNode`] (start, bootstrap, propose/submit, effects, reads,
//! membership), [`certs`] (cluster CA and site certificates), [`certs_api`] (API server
//! certificates from the same CA), [`transport::quic`] and
//! [`transport::memory`] (the production transport and the fault seam), [`relay`] (WAN
//! conditions for real QUIC), [`bench::run_cluster_bench`].

pub mod backup;
pub mod batch;
pub mod bench;
pub mod certs;
pub mod certs_api;
mod error;
pub mod frame;
pub mod island;
pub mod log_store;
pub mod node;
pub mod origin;
pub mod raft_types;
pub mod relay;
pub mod rpc;
pub mod runtime;
pub mod state_machine;
pub mod transport;

pub use error::{ClusterError, ErrorSource};
pub use node::clock_rules;
pub use node::island_route;
pub use node::island_watch;
pub use node::leader_duty;
pub use node::lease;

pub use node::{
    AppliedCommand, AppliedSink, ClusterNode, ClusterTiming, NodeConfig, NodeStorage, SiteEffect, StateEvent,
    StateHook, WallClock,
};
pub use rpc::Committed;
