//! The one error type of lineup-demo: why the demo could not start, run or pass its checks.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("OS random source: {0}")]
    Random(String),
    #[error("config refused")]
    ConfigRefused(#[source] lineup_core::CoreError),
    #[error("no leader elected to take the routing config")]
    NoLeader,
    /// A step that waits on the cluster or the stand-ins did not finish in its bound.
    #[error("{step}")]
    Timeout {
        step: &'static str,
        #[source]
        source: tokio::time::error::Elapsed,
    },
    #[error("writing {}", path.display())]
    WriteSummary {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The checker over every node's effects found broken invariants (listed).
    #[error("invariant violations: {0}")]
    Violations(String),
    #[error(transparent)]
    Node(#[from] lineup_node::NodeError),
    #[error(transparent)]
    Cluster(#[from] lineup_cluster::ClusterError),
    #[error(transparent)]
    Sim(#[from] lineup_pbx_sim::SimError),
    #[error(transparent)]
    StandIn(#[from] lineup_pbx_server::ServerError),
    #[error(transparent)]
    Ari(#[from] lineup_ari::AriError),
    #[error(transparent)]
    Address(#[from] std::net::AddrParseError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
