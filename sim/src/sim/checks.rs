//! The simulator's side of the checkers: the bounds and the end conditions checked after
//! every step, the expensive checks run every `CHECK_EVERY_MS`, liveness after the heal,
//! the final checks, and the run's call figures against the ideal M/M/c queue.

use std::collections::BTreeMap;

use super::replication::Replication;
use super::workload::CallerRec;
use super::Sim;
use crate::check::{self, Checker, NodeEnd};
use crate::config::SimConfig;
use crate::erlang;
use crate::report::{CallStats, MmcReference};

/// Expensive checks (core self-check on every node, starvation) run this often.
pub const CHECK_EVERY_MS: u64 = 30_000;
/// After the heal: a leader and every node caught up within this bound (I7).
pub const LIVENESS_BOUND_MS: u64 = 15_000;
/// The service level's answer time (the 80/20 convention: answered within 20 s).
pub const SERVICE_LEVEL_ANSWER_MS: u64 = 20_000;
/// After the heal: every caller gone within this bound (I2, I4 "none stuck").
pub const DRAIN_BOUND_MS: u64 = 1_800_000;
/// A waiting caller and an idle eligible operator may coexist this long after the heal.
pub const STARVATION_BOUND_MS: u64 = 45_000;
/// Bounds checked every step (I8).
pub const EVENTS_PENDING_MAX: usize = 200_000;
pub const LOG_ENTRIES_MAX: usize = 20_000;

impl<R: Replication> Sim<R> {
    /// After every step: the event bound, the stand-in's audio (when a bridge changed), and
    /// whether the run is over (drained after the heal, or out of time).
    pub(super) fn step_checks(&mut self) {
        if self.heap.len() > EVENTS_PENDING_MAX {
            self.checker.violation(self.now_ms, format!("I8 {} events pending", self.heap.len()));
        }
        if self.checker.bridges_changed() {
            check::ground_truth_i1(&self.world, &mut self.checker, self.now_ms);
        }
        if let Some(healed) = self.healed_at_ms {
            let drained = self.callers_left() == 0 && self.sites.iter().all(|s| s.ctl.tracked_callers() == 0);
            if drained && self.now_ms >= healed + LIVENESS_BOUND_MS {
                self.done = true;
            } else if self.now_ms > healed + DRAIN_BOUND_MS {
                self.not_drained();
                self.done = true;
            }
        } else if self.now_ms > self.cfg.virtual_max_ms {
            self.checker.violation(self.now_ms, format!("I7 only {} ops by the virtual time limit", self.ops));
            self.done = true;
        }
    }

    fn not_drained(&mut self) {
        let mut left = self.read(0, |routing| self.checker.leftovers(routing));
        for (i, s) in self.sites.iter().enumerate() {
            let chans: Vec<String> = s.ctl.tracked_caller_channels().take(4).map(|c| c.to_string()).collect();
            if !chans.is_empty() {
                left.push_str(&format!("; site {} tracks {chans:?}", i + 1));
            }
        }
        self.checker.violation(self.now_ms, format!("I2 callers still in the system after the drain bound: {left}"));
    }

    fn callers_left(&self) -> usize {
        self.checker.live_callers()
    }

    /// Every `CHECK_EVERY_MS`: log bounds, the core's self-check on every live node, the
    /// stand-in's output bound, and after the heal starvation on the leader.
    pub(super) fn periodic_checks(&mut self) {
        for i in 0..self.cfg.sites {
            let log_len = self.repl.log_entries(i);
            if log_len > LOG_ENTRIES_MAX {
                self.checker.violation(self.now_ms, format!("I8 node {i} holds {log_len} log entries"));
            }
            if !self.sites[i].up {
                continue;
            }
            if let Err(e) = self.read(i, |routing| routing.check_invariants()) {
                self.checker.violation(self.now_ms, format!("I1 core self-check on node {i}: {e}"));
            }
        }
        if self.world.dropped_outputs() > 0 {
            self.checker.violation(self.now_ms, "I8 the stand-in dropped events (output bound)".into());
        }
        if let Some(healed) = self.healed_at_ms {
            if self.now_ms >= healed + LIVENESS_BOUND_MS {
                if let Some(leader) = (0..self.cfg.sites).find(|i| self.is_leader(*i)) {
                    let (checker, now) = (&mut self.checker, self.now_ms);
                    self.repl.read(leader, |r| check::starvation(r, checker, now, STARVATION_BOUND_MS));
                }
            }
        }
    }

    /// `LIVENESS_BOUND_MS` after the heal: a leader exists and every node has applied
    /// (nearly) what it committed.
    pub(super) fn liveness_check(&mut self) {
        let leaders: Vec<usize> = (0..self.cfg.sites).filter(|i| self.is_leader(*i)).collect();
        let Some(&leader) = leaders.first() else {
            self.checker.violation(self.now_ms, format!("I7 no leader {LIVENESS_BOUND_MS} ms after the heal"));
            return;
        };
        let applied: Vec<u64> = (0..self.cfg.sites).map(|i| self.repl.applied(i)).collect();
        let commit = self.repl.commit(leader);
        for (i, applied) in applied.into_iter().enumerate() {
            // Allow the entries of the last few heartbeats to be in flight.
            if applied + 8 < commit {
                self.checker.violation(
                    self.now_ms,
                    format!("I7 node {i} applied {applied} of {commit} {LIVENESS_BOUND_MS} ms after the heal"),
                );
            }
        }
    }

    /// After the drain: every node's end state (I5), the stand-in's leftovers, the stores'
    /// convergence, and no site still tracking a caller.
    pub(super) fn final_checks(&mut self) {
        let ends: Vec<NodeEnd> = (0..self.cfg.sites)
            .map(|i| NodeEnd {
                applied: self.repl.applied(i),
                invariants: self.read(i, |routing| routing.check_invariants()),
                state: self.read(i, |routing| routing.snapshot_bytes()),
            })
            .collect();
        check::final_checks(&self.world, &ends, &mut self.checker, self.cfg.sites);
        R::settle(self);
        for (i, s) in self.sites.iter().enumerate() {
            if s.ctl.tracked_callers() > 0 {
                self.checker.violation(
                    self.now_ms,
                    format!("I2 site {} still tracks {} callers", i + 1, s.ctl.tracked_callers()),
                );
            }
        }
    }
}

/// The run's call figures (answered waits after the warm-up, service level) and, for
/// M/M/c workloads, the same callers through the ideal queue with the run's operators.
pub(super) fn call_figures(
    cfg: &SimConfig,
    checker: &Checker,
    callers: &BTreeMap<u64, CallerRec>,
    operators: usize,
) -> (CallStats, Option<MmcReference>) {
    let mut calls = checker.calls.clone();
    let mmc = cfg.workload.is_mmc();
    // Callers are numbered in arrival order, so this is the reference queue's input.
    let path: Vec<(u64, u64)> =
        if mmc { callers.values().map(|rec| (rec.entered_ms, rec.talk_ms)).collect() } else { vec![] };
    let reference_waits = erlang::fifo_waits_ms(operators, &path);
    let mut reference = MmcReference { operators, ..Default::default() };
    for (i, rec) in callers.values().enumerate() {
        if rec.entered_ms < cfg.stats_after_ms {
            continue;
        }
        if let Some(wait) = checker.answered_wait(&rec.call) {
            calls.answered_waits += 1;
            calls.wait_sum_ms += wait;
            if wait <= SERVICE_LEVEL_ANSWER_MS {
                calls.within_20s += 1;
            }
            if let Some(&ideal) = reference_waits.get(i) {
                reference.calls += 1;
                reference.wait_sum_ms += ideal;
                if ideal <= SERVICE_LEVEL_ANSWER_MS {
                    reference.within_20s += 1;
                }
            }
        }
    }
    (calls, mmc.then_some(reference))
}
