//! The API benchmark at a small scale: it runs, every client gets every delta, figures are sane.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_benchmark_delivers_every_delta() {
    let options = lineup_bench::api::ApiBenchOptions {
        clients: 20,
        waiting_calls: 500,
        operators: 20,
        deltas: 10,
        delta_interval_ms: 5,
        allocated_bytes: None,
    };
    let report = lineup_bench::api::run(options).await.expect("benchmark runs");
    assert_eq!(report.failed_clients, 0, "{report:?}");
    assert_eq!(report.samples, 20 * 10, "{report:?}");
    assert_eq!(report.deltas_missed, 0);
    assert!(report.delta_latency_ms_p50 <= report.delta_latency_ms_p99);
    assert!(report.delta_latency_ms_p99 <= report.delta_latency_ms_max);
    assert!(report.snapshot_bytes > 500 * 100, "{report:?}");
    assert_eq!(report.snapshot_messages, 2 + 1 + 16);
}
