//! The one error type of lineup-bench: why a benchmark could not run or finish.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The options (or the database given) do not allow the measurement.
    #[error("{0}")]
    Unfit(&'static str),
    /// A check the benchmark makes on what it measured failed.
    #[error("{0}")]
    Check(&'static str),
    /// A step of the benchmark did not happen within its bound.
    #[error("no {what} within {limit:?}")]
    Timeout { what: String, limit: Duration },
    /// The routing core refused one of the benchmark's commands (`step` says which).
    #[error("{step} refused")]
    Refused {
        step: &'static str,
        #[source]
        source: lineup_core::CoreError,
    },
    /// More clients than the process may open file descriptors for.
    #[error(
        "{clients} clients need about {needed} file descriptors but the soft limit is {limit}; run `ulimit -n {needed}` first"
    )]
    FdLimit { clients: usize, needed: u64, limit: u64 },
    /// Not every API client had its snapshot in time.
    #[error("only {connected} of {clients} clients had their snapshot after {timeout_ms} ms")]
    Connect { connected: usize, clients: usize, timeout_ms: u64 },
    #[error("hash the operator's PIN: {0}")]
    PinHash(String),
    #[error(transparent)]
    Core(#[from] lineup_core::CoreError),
    #[error(transparent)]
    Snapshot(#[from] lineup_core::codec::CodecError),
    #[error(transparent)]
    Cluster(#[from] lineup_cluster::ClusterError),
    #[error(transparent)]
    Store(#[from] lineup_store::StoreError),
    #[error(transparent)]
    Ari(#[from] lineup_ari::AriError),
    #[error(transparent)]
    Sim(#[from] lineup_pbx_sim::SimError),
    #[error(transparent)]
    StandIn(#[from] lineup_pbx_server::ServerError),
    #[error(transparent)]
    Address(#[from] std::net::AddrParseError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
