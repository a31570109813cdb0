//! CI's bounded run of `lineup-chaos --scenario island`: three real `lineup run` nodes with
//! island mode on, joined through a UDP relay per pair, the stand-in Asterisk in its own
//! process, callers at every site throughout. A sixth of the way in, a site that does not
//! lead is cut from both others for 15 s, and half way in the leader's site likewise; a
//! caller placed at the cut site as each cut begins, for an idle operator of that site,
//! must be answered by the island; at each heal the island merges back.
//!
//! Asserted: the island answered its caller within 9 s of the cut (and at least 80 % of what
//! its free operators could have answered) and merged within 10 s of the heal, every island
//! call once in every site's history, no overtaking after the heal; nobody double booked, every outcome in every site's history true (each call
//! once), no call dropped, no operator's leg dropped, every call ended, every site's history
//! and queue_log the same, the committed entries of every site's Raft log the same, the site
//! heard by the leader within 2 s of the heal, and a caller placed after the heal answered
//! within 2.5 s. Printed: the island's figures.

mod common;
use common::ChaosRun;

/// Seconds of traffic: two cuts of 15 s.
const CI_DURATION_S: u64 = 60;
/// Report figures that must be 0 besides the broken promises.
const MUST_BE_ZERO: [&str; 2] = ["order_violations", "order_violations_after_heal"];
const PRINTED: [&str; 7] = [
    "cut_to_island_ms",
    "cut_to_first_island_answer_ms",
    "island_callers",
    "island_answered",
    "island_capacity_ratio",
    "merge_ms",
    "calls",
];
const MUST_BE_BELOW_MS: [(&str, u64); 4] = [
    ("cut_to_first_island_answer_ms", 9_000),
    ("merge_ms", 10_000),
    ("max_heal_to_heard_ms", 2_000),
    ("after_faults_answer_ms", 2_500),
];

#[test]
fn a_cut_off_site_serves_its_own_callers_and_merges_back_once() {
    let run = ChaosRun::run("island", CI_DURATION_S);
    assert!(run.figure("calls") > 0 && run.figure("answered") > 0, "no traffic\n{}", run.shown);
    assert_eq!(run.report["faults"]["island"].as_u64(), Some(2), "two islands\n{}", run.shown);
    run.print(&PRINTED);
    assert!(run.figure("island_answered") > 0, "the island answered nobody\n{}", run.shown);
    let ratio = run.report["island_capacity_ratio"].as_f64().unwrap_or_default();
    assert!(ratio >= 0.8, "island_capacity_ratio {ratio}\n{}", run.shown);
    assert_eq!(run.report["merged_exactly_once"].as_bool(), Some(true), "merged twice or not\n{}", run.shown);
    run.assert_promises_kept();
    run.assert_zero(&MUST_BE_ZERO);
    run.assert_nothing_skipped();
    run.assert_below_ms(&MUST_BE_BELOW_MS);
}
