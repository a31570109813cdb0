//! CI's bounded run of the real-process fault harness: `lineup-chaos --scenario restarts`
//! over three real `lineup run` nodes and the stand-in Asterisk in its own process, with a
//! short traffic phase (the whole schedule still runs: every fault, then a rolling restart).
//!
//! Asserted (every run so far): nobody double booked, every outcome in every site's history
//! true, no operator's leg dropped. Printed, not yet asserted, because they do not hold in
//! every run yet: calls dropped by a fault (a rare race when a site restarts in the middle
//! of connecting a cross-site call), a restarted node heard within 1 s, a caller answered
//! within 2.5 s of the leader's kill (skipped when no persistent operator is free then).

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// Seconds of traffic with faults in CI (the faults run back to back when they take longer).
const CI_DURATION_S: u64 = 30;
/// Report figures that must be 0.
const MUST_BE_ZERO: [&str; 3] = ["outcomes_wrong", "double_booked", "operator_legs_dropped"];
/// Figures printed for the record (see the module comment).
const PRINTED: [&str; 4] =
    ["calls_dropped_by_fault", "faults_skipped", "max_restart_to_heard_ms", "leader_kill_to_answer_ms"];

/// The `lineup` binary: `LINEUP_CHAOS_LINEUP_BIN`, else beside this package's binary in the
/// target directory (built with the workspace).
fn lineup_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("LINEUP_CHAOS_LINEUP_BIN") {
        return PathBuf::from(path);
    }
    PathBuf::from(env!("CARGO_BIN_EXE_lineup-chaos")).with_file_name("lineup")
}

#[test]
fn restarts_and_kills_during_live_calls_book_nobody_twice_and_keep_outcomes_true() {
    let lineup = lineup_bin();
    assert!(lineup.is_file(), "no lineup binary at {} (cargo build -p lineup)", lineup.display());
    let output = Command::new(env!("CARGO_BIN_EXE_lineup-chaos"))
        .args(["--scenario", "restarts", "--duration", &CI_DURATION_S.to_string(), "--json", "--lineup-bin"])
        .arg(&lineup)
        .output()
        .expect("run lineup-chaos");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); exit {:?}\n{stderr}", output.status.code()));
    let shown = format!("{}\n{stderr}", serde_json::to_string_pretty(&report).unwrap_or_default());
    let figure = |name: &str| report[name].as_u64().unwrap_or_else(|| panic!("{name} missing\n{shown}"));
    assert!(figure("calls") > 0 && figure("answered") > 0, "no traffic\n{shown}");
    assert_eq!(figure("restarts"), 7, "four SIGTERM restarts and a rolling restart of three\n{shown}");
    assert_eq!(figure("kills"), 4, "kill -9 of the caller's nodes, the operator's and the leader\n{shown}");
    for zero in MUST_BE_ZERO {
        assert_eq!(figure(zero), 0, "{zero}\n{shown}");
    }
    let printed: Vec<String> = PRINTED.iter().map(|name| format!("{name} {}", report[*name])).collect();
    eprintln!("open figures: {}", printed.join(", "));
}
