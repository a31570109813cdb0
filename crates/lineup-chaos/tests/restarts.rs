//! CI's bounded run of the real-process fault harness: `lineup-chaos --scenario restarts`
//! over three real `lineup run` nodes and the stand-in Asterisk in its own process, with a
//! short traffic phase (the whole schedule still runs: every fault, then a rolling restart).
//!
//! Asserted: nobody double booked, no call dropped by a fault, every outcome in every site's
//! history true, no operator's leg dropped, every site's history and queue_log the same,
//! the committed entries of every site's Raft log the same, every restarted node heard by the leader within 1 s of being ready, and a caller arriving
//! at the leader's kill answered within 2.5 s (by an operator logged in for that probe, so it
//! always runs). `LINEUP_CHAOS_SEED` picks the workload's seed (default 1).

mod common;
use common::ChaosRun;

/// Seconds of traffic with faults in CI (the faults run back to back when they take longer).
const CI_DURATION_S: u64 = 30;
/// Report figures that must be 0 besides the broken promises.
const MUST_BE_ZERO: [&str; 1] = ["order_violations"];
/// Figures printed for the record.
const PRINTED: [&str; 2] = ["max_restart_to_heard_ms", "leader_kill_to_answer_ms"];
/// Report figures that must stay below a limit (ms): the harness's own thresholds.
const MUST_BE_BELOW_MS: [(&str, u64); 2] = [("max_restart_to_heard_ms", 1_000), ("leader_kill_to_answer_ms", 2_500)];

#[test]
fn restarts_and_kills_during_live_calls_book_nobody_twice_and_keep_outcomes_true() {
    let run = ChaosRun::run("restarts", CI_DURATION_S);
    assert!(run.figure("calls") > 0 && run.figure("answered") > 0, "no traffic\n{}", run.shown);
    assert_eq!(run.figure("restarts"), 7, "four SIGTERM restarts and a rolling restart of three\n{}", run.shown);
    assert_eq!(run.figure("kills"), 4, "kill -9 of the caller's nodes, the operator's and the leader\n{}", run.shown);
    run.print(&PRINTED);
    run.assert_promises_kept();
    run.assert_zero(&MUST_BE_ZERO);
    run.assert_nothing_skipped();
    run.assert_below_ms(&MUST_BE_BELOW_MS);
}
