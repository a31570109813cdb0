//! `lineup demo` end to end: three sites, real QUIC, three stand-ins over real ARI, for 40
//! seconds. Every site answers calls, nothing breaks an invariant, every call has exactly
//! one outcome.

use std::process::Command;

#[test]
fn demo_answers_calls_at_every_site_with_no_violation() {
    let dir = std::env::temp_dir().join(format!("lineup-demo-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let summary_path = dir.join("summary.json");
    let output = Command::new(env!("CARGO_BIN_EXE_lineup"))
        .args([
            "demo",
            "--duration",
            "40",
            "--calls-per-minute",
            "40",
            "--seed",
            "7",
            "--api-port",
            "0",
            "--summary-json",
        ])
        .arg(&summary_path)
        .output()
        .expect("lineup demo runs");
    assert!(
        output.status.success(),
        "demo failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    assert_eq!(summary["invariant_violations"], 0, "{summary:#}");
    assert_eq!(summary["calls_without_one_outcome"], 0, "{summary:#}");
    let sites = summary["sites"].as_array().unwrap();
    assert_eq!(sites.len(), 3);
    for site in sites {
        assert!(site["answered"].as_u64().unwrap() > 0, "a site answered nothing: {summary:#}");
        // Every demo extension names a queue and one of its gates: nobody is refused at the door.
        assert_eq!(site["refused_at_entry"], 0, "callers refused as INVALID: {summary:#}");
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("dashboard: http://127.0.0.1:"), "the dashboard URL is printed:\n{stdout}");
    assert_eq!(summary["api_queues"], 2, "the API listed sales and support: {summary:#}");
    let _ = std::fs::remove_dir_all(&dir);
}
