//! Many seeds: the JSON summary, reproduce commands and trace files for failures.
//!
//! Each seed runs single-threaded and alone decides its own trace; seeds are spread over
//! worker threads only to use both cores, and results are sorted by seed, so the summary
//! does not depend on the thread count.

use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::config::{PlantedBug, Replication, SimConfig};
use crate::report::{Coverage, RunReport};
use lineup_cluster::node::{SITE_LOST_AFTER_MS, SITE_UNREACHABLE_AFTER_MS};

/// Worker threads at most (the CI machine has two cores).
pub const SWEEP_THREADS_MAX: usize = 64;

#[derive(Debug, Clone)]
pub struct SweepSpec {
    pub seeds: u64,
    pub first_seed: u64,
    pub ops: u64,
    pub faults: bool,
    pub bug: PlantedBug,
    pub replication: Replication,
    /// Callers may accept callbacks (on by default; off narrows a failure down).
    pub callbacks: bool,
    /// Which fault kinds may be drawn (bit k = `FAULT_KIND_NAMES[k]`).
    pub fault_kinds: u32,
    pub threads: usize,
    /// The leader's health thresholds (`SimConfig::site_unreachable_after_ms`, ...).
    pub site_unreachable_after_ms: u64,
    pub site_lost_after_ms: u64,
    /// Where failing seeds' traces go (replayed with the trace on); `None` writes none.
    pub trace_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SeedFailure {
    pub seed: u64,
    pub violations: Vec<String>,
    pub reproduce: String,
    pub trace_file: Option<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct SweepSummary {
    pub seeds: u64,
    pub first_seed: u64,
    /// Committed client operations over all seeds.
    pub ops: u64,
    pub ops_per_seed_min: u64,
    pub events: u64,
    pub violations: u64,
    pub failures: Vec<SeedFailure>,
    pub trace_hashes: Vec<String>,
    pub coverage: Coverage,
    /// Seeds in which each rare path was hit at least once.
    pub seeds_with: Coverage,
    pub calls: u64,
    pub wall_ms: u64,
    pub events_per_s: f64,
}

/// The one-line command that replays a seed.
pub fn reproduce_command(spec: &SweepSpec, seed: u64) -> String {
    let (ops, faults, bug) = (spec.ops, spec.faults, spec.bug);
    let mut cmd = format!("cargo run -p lineup-sim --release -- run --seeds 1 --first-seed {seed} --ops {ops}");
    if !spec.callbacks {
        cmd.push_str(" --no-callbacks");
    }
    if spec.fault_kinds != crate::config::FAULT_KINDS_ALL {
        cmd.push_str(&format!(" --fault-kinds {}", spec.fault_kinds));
    }
    if !faults {
        cmd.push_str(" --no-faults");
    }
    if bug != PlantedBug::None {
        cmd.push_str(&format!(" --plant {}", bug.name()));
    }
    if spec.replication != Replication::Model {
        cmd.push_str(&format!(" --replication {}", spec.replication.name()));
    }
    if spec.site_unreachable_after_ms != SITE_UNREACHABLE_AFTER_MS {
        cmd.push_str(&format!(" --site-unreachable-after-ms {}", spec.site_unreachable_after_ms));
    }
    if spec.site_lost_after_ms != SITE_LOST_AFTER_MS {
        cmd.push_str(&format!(" --site-lost-after-ms {}", spec.site_lost_after_ms));
    }
    cmd
}

pub fn config_for(spec: &SweepSpec, seed: u64) -> SimConfig {
    let mut cfg = SimConfig::chaos(seed, spec.ops);
    cfg.faults = spec.faults;
    cfg.bug = spec.bug;
    cfg.replication = spec.replication;
    cfg.fault_kinds = spec.fault_kinds;
    cfg.site_unreachable_after_ms = spec.site_unreachable_after_ms;
    cfg.site_lost_after_ms = spec.site_lost_after_ms;
    if !spec.callbacks {
        cfg.workload.callback_takers = 0.0;
    }
    cfg
}

fn add(total: &mut Coverage, c: &Coverage, seeds: &mut Coverage) {
    macro_rules! both {
        ($($f:ident),*) => {$(
            total.$f += c.$f;
            seeds.$f += u64::from(c.$f > 0);
        )*};
    }
    both!(
        leader_changes,
        fenced_offers,
        ari_reconnects,
        callbacks_served_after_restart,
        one_way_partitions,
        partitions,
        swizzle_clogs,
        crashes,
        log_entries_lost_at_crashes,
        leader_pauses,
        snapshots_installed,
        effect_redeliveries,
        proposals_retried,
        forwards_dropped,
        database_outages,
        history_rows,
        redis_outages,
        redis_keys,
        long_outages,
        outages_past_site_lost,
        slow_reconnects,
        calls_connected_at_an_outage,
        calls_connected_across_an_outage,
        double_bookings_after_cancel,
        sites_unreachable,
        sites_back,
        sites_lost
    );
}

/// Runs one configuration per seed on up to `threads` workers (each seed single-threaded);
/// the reports (with their traces, empty unless the configuration keeps one) come back
/// sorted by seed.
pub fn run_seeds(
    seeds: std::ops::Range<u64>,
    threads: usize,
    config: impl Fn(u64) -> SimConfig + Sync,
) -> Vec<(RunReport, Vec<String>)> {
    let next = AtomicU64::new(seeds.start);
    let runs: Mutex<Vec<(RunReport, Vec<String>)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, SWEEP_THREADS_MAX) {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= seeds.end {
                    return;
                }
                let run = crate::run_seed(config(seed));
                runs.lock().unwrap_or_else(|p| p.into_inner()).push(run);
            });
        }
    });
    let mut runs = runs.into_inner().unwrap_or_else(|p| p.into_inner());
    runs.sort_by_key(|(r, _)| r.seed);
    runs
}

/// Runs the seeds; a failing seed is run again with tracing on and its trace written.
pub fn sweep(spec: &SweepSpec) -> SweepSummary {
    let started = std::time::Instant::now();
    let seeds = spec.first_seed..spec.first_seed + spec.seeds;
    let reports: Vec<RunReport> =
        run_seeds(seeds, spec.threads, |seed| config_for(spec, seed)).into_iter().map(|(r, _)| r).collect();
    let mut summary = SweepSummary {
        seeds: spec.seeds,
        first_seed: spec.first_seed,
        ops_per_seed_min: u64::MAX,
        ..Default::default()
    };
    for r in &reports {
        summary.ops += r.ops;
        summary.ops_per_seed_min = summary.ops_per_seed_min.min(r.ops);
        summary.events += r.events;
        summary.calls += r.calls.calls;
        summary.trace_hashes.push(r.trace_hash.clone());
        add(&mut summary.coverage, &r.coverage, &mut summary.seeds_with);
        if !r.violations.is_empty() {
            summary.violations += r.violations.len() as u64;
            let trace_file = spec.trace_dir.as_deref().and_then(|dir| write_trace(spec, dir, r.seed));
            summary.failures.push(SeedFailure {
                seed: r.seed,
                violations: r.violations.clone(),
                reproduce: reproduce_command(spec, r.seed),
                trace_file,
            });
        }
    }
    if reports.is_empty() {
        summary.ops_per_seed_min = 0;
    }
    summary.wall_ms = started.elapsed().as_millis() as u64;
    summary.events_per_s = summary.events as f64 / started.elapsed().as_secs_f64().max(1e-9);
    summary
}

/// Replays a seed with the trace on (same seed, same run) and writes it out.
fn write_trace(spec: &SweepSpec, dir: &Path, seed: u64) -> Option<String> {
    let mut cfg = config_for(spec, seed);
    cfg.trace = true;
    let (report, trace) = crate::run_seed(cfg);
    let path = dir.join(format!("lineup-sim-seed-{seed}.trace"));
    let mut text = format!("# {}\n# violations: {:?}\n", reproduce_command(spec, seed), report.violations);
    for line in trace {
        text.push_str(&line);
        text.push('\n');
    }
    std::fs::create_dir_all(dir).ok()?;
    std::fs::write(&path, text).ok()?;
    Some(display(&path))
}

fn display(p: &Path) -> String {
    p.display().to_string()
}
