//! Runs the API benchmark at full scale and prints the report as JSON:
//! `cargo run --release -p lineup-bench --example api_bench [clients] [waiting_calls] [delta_interval_ms]`.
//! (`lineup bench api --json` is the product's way; this example exists for working on
//! the API alone.) It counts live heap bytes like the `lineup` binary does.

use lineup_bench::api::ApiBenchOptions;
use lineup_bench::{live_bytes, CountingAllocator};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut options = ApiBenchOptions { allocated_bytes: Some(live_bytes), ..Default::default() };
    if let Some(clients) = args.next() {
        options.clients = clients.parse()?;
    }
    if let Some(calls) = args.next() {
        options.waiting_calls = calls.parse()?;
    }
    if let Some(interval) = args.next() {
        options.delta_interval_ms = interval.parse()?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = runtime.block_on(lineup_bench::api::run(options))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
