//! lineup-sim: the deterministic whole-federation simulator and the capacity planner.
//!
//! Code map:
//! - [`sim`]: the federation in virtual time (stand-in boxes, real site controllers,
//!   replication nodes holding the real core), workload, faults, the event loop.
//! - [`raft`]: the deterministic Raft replication model that feeds the real core.
//! - [`real`]: the production replication instead (lineup-cluster's openraft nodes over
//!   the in-memory transport, in a paused-clock tokio runtime).
//! - [`history`]: with real nodes, each site's production outbox drained into a simulated
//!   history database that can go down; history must converge after the heal.
//! - [`projection`]: with real nodes, each site's production Redis projection over an
//!   in-memory Redis that can go down; it must converge to a fresh rebuild after the heal.
//! - [`applied`]: one applied entry as a replication reports it (digest, apply index).
//! - [`check`]: invariant checkers I1–I8.
//! - [`report`]: the run report (violations, coverage, call figures).
//! - [`config`]: run configuration, workloads, planted bugs.
//! - [`sweep`]: many seeds, the JSON report, reproduce commands and trace files.
//! - [`erlang`]: Erlang C, the ideal M/M/c reference queue, the staffing planner and its
//!   SVG plot.
//! - [`validate`]: M/M/c through the federation against Erlang C (control variates).
//! - [`rng`]: the seeded dice and the trace hash.

pub mod applied;
pub mod check;
pub mod config;
pub mod erlang;
pub mod history;
pub mod projection;
pub mod raft;
pub mod real;
pub mod report;
pub mod rng;
pub mod sim;
pub mod sweep;
pub mod validate;

pub use config::{PlantedBug, SimConfig, Workload};
pub use report::{Coverage, RunReport};

/// Runs one seed to the end; returns the report and the trace (empty unless `cfg.trace`).
pub fn run_seed(cfg: SimConfig) -> (RunReport, Vec<String>) {
    sim::run_seed(cfg)
}
