//! lineup-bench: Lineup's benchmarks, measured in-process and answered as reports that
//! serialize to the JSON `lineup bench …` prints (docs/BENCHMARKS.md, CI). The command line
//! (arguments, printing) is the `lineup` binary's; the measuring is here.
//!
//! Code map:
//! - [`routing`]: the routing core alone (apply latency, position lookups, memory per waiting
//!   call, snapshot size and times).
//! - [`site`]: pickup latency through the stand-in, ARI, the site driver and a one-node
//!   cluster.
//! - [`cluster`]: commits per second and enqueue→offer latency over real QUIC (lineup-cluster's
//!   benchmark).
//! - [`api`]: delta latency and memory per client for WebSocket clients on `/v1/live`.
//! - [`reports`]: interval reports over a day of calls in SQLite (and PostgreSQL).
//! - [`alloc_count`]: the counting global allocator (a binary declares it) and `live_bytes`.
//! - [`error`]: the one error type, `BenchError`.

pub mod alloc_count;
pub mod api;
pub mod cluster;
pub mod error;
pub mod reports;
pub mod routing;
pub mod site;

pub use alloc_count::{live_bytes, CountingAllocator};
pub use error::BenchError;
