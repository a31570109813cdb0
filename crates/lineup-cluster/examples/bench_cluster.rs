//! Runs the cluster benchmark without the `lineup` binary:
//! `cargo run --release -p lineup-cluster --example bench_cluster -- [nodes] [rtt_ms] [commands]`.

use lineup_cluster::bench::{run_cluster_bench, BenchOptions};

fn main() {
    lineup_cluster::transport::quic::install_crypto_provider();
    let args: Vec<u64> = std::env::args().skip(1).map(|a| a.parse().expect("numeric arguments")).collect();
    let defaults = BenchOptions::default();
    let options = BenchOptions {
        nodes: args.first().map_or(defaults.nodes, |n| *n as usize),
        rtt_ms: args.get(1).copied().unwrap_or(defaults.rtt_ms),
        commands: args.get(2).map_or(defaults.commands, |n| *n as usize),
        ..defaults
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    let report = runtime.block_on(run_cluster_bench(options)).expect("the benchmark runs");
    println!("{report:#?}");
}
