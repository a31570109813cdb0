//! CI's bounded mixed run: `lineup-chaos --scenario random`, every fault kind (pause,
//! partitions symmetric, one-way and flapping, clock skew, ARI cut, full disk, failing
//! fsync, database and Redis down, SIGTERM and kill -9, kill -9 mid-snapshot and
//! mid-membership-change) drawn from the seed one after another, at the leader, a caller's
//! node or an operator's node, during live local and cross-site calls. `LINEUP_CHAOS_SEED`
//! picks another draw.
//!
//! Asserted: nobody double booked, every outcome in every site's history true, no call
//! dropped by a fault, no operator's leg dropped, every call ended, every site's history and
//! queue_log the same, the committed entries of every site's Raft log the same, nothing
//! skipped, and the timing checks of whatever was drawn. Printed: the overtakings the order
//! check counted and every violation (see tests/nemesis.rs).

mod common;
use common::ChaosRun;

/// Seconds of traffic with faults in CI: about eight faults.
const CI_DURATION_S: u64 = 60;
const PRINTED: [&str; 2] = ["order_violations", "violations"];

#[test]
fn faults_drawn_from_the_seed_during_live_calls_book_nobody_twice() {
    let run = ChaosRun::run("random", CI_DURATION_S);
    assert!(run.figure("calls") > 0 && run.figure("answered") > 0, "no traffic\n{}", run.shown);
    let drawn: u64 =
        run.report["faults"].as_object().map(|kinds| kinds.values().filter_map(|n| n.as_u64()).sum()).unwrap_or(0);
    assert!(drawn >= 2, "too few faults drawn\n{}", run.shown);
    run.print(&PRINTED);
    run.assert_promises_kept();
    run.assert_nothing_skipped();
    run.assert_below_ms(&[("after_faults_answer_ms", 2_500)]);
    // The other timing checks are those of what was drawn: each must hold.
    for check in run.report["checks"].as_array().into_iter().flatten() {
        let name = check["name"].as_str().unwrap_or_default();
        if name.ends_with("_ms") {
            assert_eq!(check["ok"].as_bool(), Some(true), "{name}\n{}", run.shown);
        }
    }
}
