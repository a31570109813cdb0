//! `lineup demo`: the options, and a runtime for lineup-demo to run in.

use lineup_demo::DemoOptions;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Port of site 1's API and dashboard (another free port is used when it is taken).
    #[arg(long, default_value_t = 8080)]
    api_port: u16,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration: Option<u64>,
    /// Write a JSON summary here at the end.
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// Caller arrivals per minute, over all sites and gates.
    #[arg(long, default_value_t = 24.0)]
    calls_per_minute: f64,
    /// Seed of the simulated callers and operators.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Keep the data directory (each site's Raft log, SQLite history and queue_log) at the
    /// end instead of deleting it; its path is printed at the start.
    #[arg(long)]
    keep_data: bool,
}

pub fn demo(args: &DemoArgs) -> anyhow::Result<()> {
    let options = DemoOptions {
        api_port: args.api_port,
        duration: args.duration,
        summary_json: args.summary_json.clone(),
        calls_per_minute: args.calls_per_minute,
        seed: args.seed,
        keep_data: args.keep_data,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(lineup_demo::run(&options))?;
    Ok(())
}
