//! `lineup bench core` at a small scale: it runs, and its JSON has the figures docs/BENCHMARKS.md
//! and CI read, in their order.

use lineup_bench::routing::{run, CoreBenchOptions};

const REPORT_KEYS: [&str; 15] = [
    "waiting_calls",
    "queues",
    "operators",
    "enqueue_offer_ns_p50",
    "enqueue_offer_ns_p99",
    "enqueue_ns_p50",
    "enqueue_ns_p99",
    "complete_to_offer_ns_p50",
    "complete_to_offer_ns_p99",
    "position_ns_p50",
    "position_ns_p99",
    "bytes_per_waiting_call",
    "snapshot_bytes_per_waiting_call",
    "snapshot_encode_ms",
    "snapshot_restore_ms",
];

#[test]
fn small_core_benchmark_reports_every_figure_in_order() {
    let options = CoreBenchOptions { waiting: 200, queues: 4, operators: 12, idle_operators: 2, samples: 50 };
    let report = run(&options).expect("benchmark runs");
    let json = serde_json::to_string(&report).unwrap();
    let mut from = 0;
    for key in REPORT_KEYS {
        let at = json[from..].find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("{key} after byte {from}: {json}"));
        from += at + key.len();
    }
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value.as_object().unwrap().len(), REPORT_KEYS.len(), "{json}");
    assert_eq!(value["waiting_calls"], 200);
    assert!(value["snapshot_bytes_per_waiting_call"].as_u64().unwrap() > 0, "{json}");
}

#[test]
fn options_without_busy_operators_are_refused_in_a_sentence() {
    let options = CoreBenchOptions { waiting: 10, queues: 1, operators: 2, idle_operators: 2, samples: 1 };
    let error = run(&options).err().expect("refused");
    assert_eq!(error.to_string(), "need queues and busy operators");
}
