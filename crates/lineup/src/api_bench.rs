//! `lineup bench api`: live WebSocket clients on `/v1/live` over loopback (lineup-api's
//! benchmark, with this binary's counting allocator for memory per client).

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

pub fn api(args: &ApiBenchArgs) -> anyhow::Result<()> {
    let options = lineup_api::ApiBenchOptions {
        clients: args.clients,
        waiting_calls: args.waiting_calls,
        deltas: args.deltas,
        allocated_bytes: Some(crate::alloc_count::live_bytes),
        ..lineup_api::ApiBenchOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = runtime.block_on(lineup_api::bench::run(options))?;
    if !args.json {
        println!(
            "lineup bench api: {} clients on /v1/live, {} waiting calls, loopback",
            args.clients, args.waiting_calls
        );
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
