//! `lineup bench cluster`: commits per second and enqueue→offer latency over real QUIC with
//! fsync on — lineup-cluster's benchmark (it needs the cluster's internals), run from here
//! like every other.

use crate::BenchError;
pub use lineup_cluster::bench::{BenchOptions as ClusterBenchOptions, BenchReport as ClusterBenchReport};

/// Runs the benchmark. Needs a multi-thread tokio runtime.
pub async fn run(options: ClusterBenchOptions) -> Result<ClusterBenchReport, BenchError> {
    lineup_cluster::transport::quic::install_crypto_provider();
    Ok(lineup_cluster::bench::run_cluster_bench(options).await?)
}
