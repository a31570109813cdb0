//! Runs `lineup-chaos` as CI does and hands back its JSON report.
//! Each test binary uses part of it (the ingress scenario judges its own report).
#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// The phones' promises every scenario keeps: report figures that must be 0.
pub const BROKEN_PROMISES: [&str; 5] =
    ["outcomes_wrong", "double_booked", "calls_dropped_by_fault", "operator_legs_dropped", "calls_not_ended"];

/// The workload's seed when `LINEUP_CHAOS_SEED` is unset.
const DEFAULT_SEED: &str = "1";

/// The `lineup` binary: `LINEUP_CHAOS_LINEUP_BIN`, else beside this package's binary in the
/// target directory (built with the workspace).
fn lineup_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("LINEUP_CHAOS_LINEUP_BIN") {
        return PathBuf::from(path);
    }
    PathBuf::from(env!("CARGO_BIN_EXE_lineup-chaos")).with_file_name("lineup")
}

/// The report's lists of what went wrong, shown first in a failure message: CI keeps only the
/// head and the tail of a long test output.
const DETAIL_LISTS: [&str; 7] = [
    "wrong_outcomes",
    "double_bookings",
    "drops",
    "operator_leg_drops",
    "order_violations_detail",
    "raft_log_disagreements",
    "skipped",
];

/// Every non-empty detail list of `report`, one line per entry under its name.
fn failure_details(report: &Value) -> String {
    let mut shown = String::new();
    for name in DETAIL_LISTS {
        let Some(lines) = report[name].as_array().filter(|lines| !lines.is_empty()) else { continue };
        shown.push_str(&format!("{name}:\n"));
        for line in lines {
            shown.push_str(&format!("  {}\n", line.as_str().unwrap_or_default()));
        }
    }
    shown
}

/// One run's report and, for failure messages, the report and the harness's log together.
pub struct ChaosRun {
    pub seed: String,
    pub report: Value,
    pub shown: String,
}

impl ChaosRun {
    /// `lineup-chaos --scenario SCENARIO --duration DURATION_S --json`, the seed from
    /// `LINEUP_CHAOS_SEED` (default 1).
    pub fn run(scenario: &str, duration_s: u64) -> ChaosRun {
        let lineup = lineup_bin();
        let seed = std::env::var("LINEUP_CHAOS_SEED").unwrap_or_else(|_| DEFAULT_SEED.to_string());
        assert!(lineup.is_file(), "no lineup binary at {} (cargo build -p lineup)", lineup.display());
        let output = Command::new(env!("CARGO_BIN_EXE_lineup-chaos"))
            .args(["--scenario", scenario, "--duration", &duration_s.to_string(), "--seed", &seed, "--json"])
            .arg("--lineup-bin")
            .arg(&lineup)
            .output()
            .expect("run lineup-chaos");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let report: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("no JSON report ({e}); exit {:?}\n{stderr}", output.status.code()));
        let shown = format!(
            "{}\n{}\n{stderr}",
            failure_details(&report),
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        ChaosRun { seed, report, shown }
    }

    pub fn figure(&self, name: &str) -> u64 {
        self.report[name].as_u64().unwrap_or_else(|| panic!("{name} missing\n{}", self.shown))
    }

    /// Every named figure is 0.
    pub fn assert_zero(&self, names: &[&str]) {
        for name in names {
            assert_eq!(self.figure(name), 0, "{name} (seed {})\n{}", self.seed, self.shown);
        }
    }

    /// Every named figure (ms) is below its limit.
    pub fn assert_below_ms(&self, limits: &[(&str, u64)]) {
        for (name, limit_ms) in limits {
            let value = self.figure(name);
            assert!(value < *limit_ms, "{name} {value} ms, limit {limit_ms} ms (seed {})\n{}", self.seed, self.shown);
        }
    }

    /// Shows the named figures with the seed (nextest shows it with `--no-capture`).
    pub fn print(&self, names: &[&str]) {
        let shown: Vec<String> = names.iter().map(|name| format!("{name} {}", self.report[*name])).collect();
        eprintln!("seed {}: {}", self.seed, shown.join(", "));
    }

    /// The promises every scenario keeps: no broken promise (`BROKEN_PROMISES` all 0), every
    /// site's history and queue_log the same, every site's Raft log the same.
    pub fn assert_promises_kept(&self) {
        self.assert_zero(&BROKEN_PROMISES);
        assert_eq!(self.report["history_converged"].as_bool(), Some(true), "histories differ\n{}", self.shown);
        assert_eq!(self.report["raft_logs_agree"].as_bool(), Some(true), "Raft logs differ\n{}", self.shown);
    }

    /// No fault or probe was skipped.
    pub fn assert_nothing_skipped(&self) {
        let skipped = self.report["skipped"].as_array().is_some_and(Vec::is_empty);
        assert!(skipped, "a fault or a probe was skipped\n{}", self.shown);
    }
}
