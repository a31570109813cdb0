//! CI's bounded run of the real-process fault harness: `lineup-chaos --scenario restarts`
//! over three real `lineup run` nodes and the stand-in Asterisk in its own process, with a
//! short traffic phase (the whole schedule still runs: every fault, then a rolling restart).
//! The thresholds are issue 15's: nothing dropped, nobody double booked, every outcome
//! right, a restarted node heard within 1 s, a caller answered within 2.5 s of the leader's
//! kill.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// Seconds of traffic with faults in CI (the faults run back to back when they take longer).
const CI_DURATION_S: u64 = 30;

/// The `lineup` binary: `LINEUP_CHAOS_LINEUP_BIN`, else beside this package's binary in the
/// target directory (built with the workspace).
fn lineup_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("LINEUP_CHAOS_LINEUP_BIN") {
        return PathBuf::from(path);
    }
    PathBuf::from(env!("CARGO_BIN_EXE_lineup-chaos")).with_file_name("lineup")
}

#[test]
fn restarts_and_kills_during_live_calls_keep_every_call_and_promise() {
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
    for zero in ["outcomes_wrong", "double_booked", "calls_dropped_by_fault", "operator_legs_dropped", "faults_skipped"]
    {
        assert_eq!(figure(zero), 0, "{zero}\n{shown}");
    }
    assert!(figure("max_restart_to_heard_ms") < 1_000, "max_restart_to_heard_ms\n{shown}");
    assert!(figure("leader_kill_to_answer_ms") < 2_500, "leader_kill_to_answer_ms\n{shown}");
    assert!(output.status.success(), "lineup-chaos failed a check\n{shown}");
}
