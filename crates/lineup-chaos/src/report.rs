//! The run's report: figures, checks, the details behind failed checks, and a command that
//! reproduces the run.

use crate::checks::{Check, Figures, DETAILS_MAX_COUNT};
use crate::faults::FaultFigures;
use serde::Serialize;

#[derive(Serialize)]
pub struct Report {
    pub scenario: String,
    pub seed: u64,
    pub duration_s: u64,
    #[serde(flatten)]
    pub figures: Figures,
    pub passed: bool,
    pub checks: Vec<Check>,
    pub restarts_detail: Vec<crate::faults::RestartRecord>,
    pub outages_detail: Vec<crate::faults::OutageRecord>,
    pub snapshot_kills_detail: Vec<crate::snapshot_kill::SnapshotKillRecord>,
    pub memberships_detail: Vec<crate::member_kill::MembershipRecord>,
    /// When no node named a leader that named itself (the order check judges nobody then).
    pub leaderless_detail: Vec<crate::leaders::Leaderless>,
    pub skipped: Vec<String>,
    /// Calls the harness placed because the workload had none of the kind a fault aims at.
    pub aimed_calls: Vec<String>,
    pub double_bookings: Vec<String>,
    pub drops: Vec<String>,
    pub operator_leg_drops: Vec<String>,
    pub wrong_outcomes: Vec<String>,
    pub order_violations_detail: Vec<String>,
    pub raft_log_disagreements: Vec<String>,
    pub run_dir: String,
    pub reproduce: String,
}

pub fn first(details: impl IntoIterator<Item = String>) -> Vec<String> {
    details.into_iter().take(DETAILS_MAX_COUNT).collect()
}

impl Report {
    pub fn faults(&mut self, faults: &FaultFigures) {
        self.restarts_detail = faults.restarts_detail.clone();
        self.outages_detail = faults.outages.clone();
        self.snapshot_kills_detail = faults.snapshot_kills.clone();
        self.memberships_detail = faults.memberships.clone();
        self.leaderless_detail = faults.leaderless.clone();
        self.skipped = faults.skipped.clone();
        self.aimed_calls = faults.aimed_calls.clone();
    }

    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string_pretty(self)?);
        } else {
            self.print_text();
        }
        if !self.passed {
            eprintln!("lineup-chaos: FAILED; run directory {}", self.run_dir);
            eprintln!("reproduce: {}", self.reproduce);
        }
        Ok(())
    }

    fn print_text(&self) {
        println!("lineup-chaos --scenario {} (seed {}, {} s)", self.scenario, self.seed, self.duration_s);
        for check in &self.checks {
            let mark = if check.ok { "ok  " } else { "FAIL" };
            println!("  {mark} {:<26} {:>12}  (limit {})", check.name, check.value, check.limit);
        }
        let faults: Vec<String> = self.figures.faults.iter().map(|(kind, n)| format!("{kind} {n}")).collect();
        println!("  calls {} answered {} faults: {}", self.figures.calls, self.figures.answered, faults.join(", "));
        for (title, lines) in [
            ("double bookings", &self.double_bookings),
            ("calls dropped", &self.drops),
            ("operator legs dropped", &self.operator_leg_drops),
            ("wrong outcomes", &self.wrong_outcomes),
            ("callers overtaken", &self.order_violations_detail),
            ("skipped faults", &self.skipped),
        ] {
            if !lines.is_empty() {
                println!("  {title}:");
                lines.iter().for_each(|line| println!("    {line}"));
            }
        }
    }
}
