//! `lineup bench core|site|reports|cluster|api`: the arguments, a runtime, and the report
//! printed as JSON (after a headline unless `--json`). The measuring is lineup-bench's.

use lineup_bench::api::ApiBenchOptions;
use lineup_bench::cluster::ClusterBenchOptions;
use lineup_bench::reports::ReportBenchOptions;
use lineup_bench::routing::CoreBenchOptions;
use lineup_bench::site::SiteBenchOptions;
use serde::Serialize;

#[derive(clap::Subcommand)]
pub enum BenchTarget {
    /// The routing core alone: apply latency, position lookups, memory per waiting call.
    Core(CoreBenchArgs),
    /// Pickup latency through stand-in, ARI, site driver and a one-node cluster.
    Site(SiteBenchArgs),
    /// Interval reports over a day of calls in SQLite (and PostgreSQL with --postgres).
    Reports(ReportBenchArgs),
    /// Commits per second and enqueue→offer latency over real QUIC with fsync.
    Cluster(ClusterBenchArgs),
    /// Delta latency and memory per client for WebSocket clients on /v1/live.
    Api(ApiBenchArgs),
}

#[derive(clap::Args)]
pub struct CoreBenchArgs {
    /// Waiting calls held in the state while measuring.
    #[arg(long, default_value_t = 100_000)]
    waiting: u64,
    /// Queues the waiting calls are spread over.
    #[arg(long, default_value_t = 10)]
    queues: u64,
    /// Operators in the state (all busy except a small idle team of `--idle-operators`).
    #[arg(long, default_value_t = 1_000)]
    operators: u64,
    #[arg(long, default_value_t = 10)]
    idle_operators: u64,
    /// Samples per measured operation.
    #[arg(long, default_value_t = 20_000)]
    samples: usize,
    /// Print JSON only.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct SiteBenchArgs {
    /// Pickups to measure.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Print JSON only.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct ReportBenchArgs {
    /// Calls in the day.
    #[arg(long, default_value_t = 50_000)]
    calls: u64,
    /// An empty PostgreSQL database to fill as well (left filled).
    #[arg(long)]
    postgres: Option<String>,
    /// The SQLite file to fill (kept); default a temporary one, removed after.
    #[arg(long)]
    sqlite: Option<std::path::PathBuf>,
    /// Print JSON only.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct ClusterBenchArgs {
    /// Sites (1, 3 or 5).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Round trip added between sites through the UDP relay (0: direct loopback).
    #[arg(long, default_value_t = 0)]
    rtt_ms: u64,
    /// Commands in the throughput phase.
    #[arg(long, default_value_t = 20_000)]
    commands: usize,
    /// Print JSON only.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct ApiBenchArgs {
    /// WebSocket clients on /v1/live.
    #[arg(long, default_value_t = 1_000)]
    clients: usize,
    /// Calls waiting (each client's snapshot lists them all).
    #[arg(long, default_value_t = 10_000)]
    waiting_calls: usize,
    /// Deltas measured.
    #[arg(long, default_value_t = 200)]
    deltas: usize,
    /// Print JSON only.
    #[arg(long)]
    json: bool,
}

pub fn bench(target: &BenchTarget) -> anyhow::Result<()> {
    match target {
        BenchTarget::Core(args) => core(args),
        BenchTarget::Site(args) => site(args),
        BenchTarget::Reports(args) => reports(args),
        BenchTarget::Cluster(args) => cluster(args),
        BenchTarget::Api(args) => api(args),
    }
}

/// The headline (unless `--json`), then the report as pretty JSON.
fn print_report(json: bool, headline: impl FnOnce() -> String, report: &impl Serialize) -> anyhow::Result<()> {
    if !json {
        println!("{}", headline());
    }
    println!("{}", serde_json::to_string_pretty(report)?);
    Ok(())
}

fn multi_thread_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn core(args: &CoreBenchArgs) -> anyhow::Result<()> {
    let options = CoreBenchOptions {
        waiting: args.waiting,
        queues: args.queues,
        operators: args.operators,
        idle_operators: args.idle_operators,
        samples: args.samples,
    };
    let report = lineup_bench::routing::run(&options)?;
    let headline = || {
        format!(
            "lineup bench core: {} waiting calls in {} queues, {} operators",
            args.waiting, args.queues, args.operators
        )
    };
    print_report(args.json, headline, &report)
}

fn site(args: &SiteBenchArgs) -> anyhow::Result<()> {
    let report =
        multi_thread_runtime()?.block_on(lineup_bench::site::run(&SiteBenchOptions { samples: args.samples }))?;
    let headline =
        || format!("lineup bench site: {} pickups through stand-in, ARI, driver and a one-node cluster", args.samples);
    print_report(args.json, headline, &report)
}

fn reports(args: &ReportBenchArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let options =
        ReportBenchOptions { calls: args.calls, postgres: args.postgres.clone(), sqlite: args.sqlite.clone() };
    let report = runtime.block_on(lineup_bench::reports::run(&options))?;
    let headline =
        || format!("lineup bench reports: a day of {} calls, each report over the whole day (median ms)", args.calls);
    print_report(args.json, headline, &report)
}

fn cluster(args: &ClusterBenchArgs) -> anyhow::Result<()> {
    let options = ClusterBenchOptions {
        nodes: args.nodes,
        rtt_ms: args.rtt_ms,
        commands: args.commands,
        ..ClusterBenchOptions::default()
    };
    let report = multi_thread_runtime()?.block_on(lineup_bench::cluster::run(options))?;
    let headline = || format!("lineup bench cluster: {} nodes over QUIC on loopback, fsync on", args.nodes);
    print_report(args.json, headline, &report)
}

/// With this binary's counting allocator for memory per client.
fn api(args: &ApiBenchArgs) -> anyhow::Result<()> {
    let options = ApiBenchOptions {
        clients: args.clients,
        waiting_calls: args.waiting_calls,
        deltas: args.deltas,
        allocated_bytes: Some(lineup_bench::live_bytes),
        ..ApiBenchOptions::default()
    };
    let report = multi_thread_runtime()?.block_on(lineup_bench::api::run(options))?;
    let headline = || {
        format!(
            "lineup bench api: {} clients on /v1/live, {} waiting calls, loopback",
            args.clients, args.waiting_calls
        )
    };
    print_report(args.json, headline, &report)
}
