//! Runs the API benchmark at full scale and prints the report as JSON:
//! `cargo run --release -p lineup-api --example api_bench [clients] [waiting_calls] [delta_interval_ms]`.
//! (`lineup bench api --json` is the product's way; this example exists for working on
//! the API alone.) It counts live heap bytes like the `lineup` binary does.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only counts sizes.
#[allow(unsafe_code)] // a GlobalAlloc impl is unsafe by definition
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_bytes() -> usize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut options = lineup_api::ApiBenchOptions { allocated_bytes: Some(live_bytes), ..Default::default() };
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
    let report = runtime.block_on(lineup_api::bench::run(options))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
