//! Small helpers several crates share, with no dependencies: the SplitMix64 generator
//! (`rng`), backoff jitter (`jitter`), the wall clock in milliseconds (`clock`) and
//! nearest-rank percentiles for benchmarks (`stats`).
//!
//! lineup-core does not depend on this crate: its state machine takes time only from
//! commands and draws no random numbers.

pub mod clock;
pub mod jitter;
pub mod rng;
pub mod stats;

pub use clock::now_ms;
pub use rng::{entropy_seed, SplitMix64};
pub use stats::percentile;
