//! `/metrics`, `/readyz` and `/healthz` over HTTP.

mod common;

use common::*;
use lineup_api::EdgeHealth;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_name_every_series() {
    let rig = Rig::start().await;
    apply_base_config(&rig);
    rig.enqueue("c1", "sales", Some("web"));
    rig.enqueue("c2", "sales", None);
    rig.login("alice");
    assert!(rig.backend.tick(T0_MS + 5_000).is_ok());
    let res = rig.http.get(rig.url("/metrics")).bearer_auth(VIEWER).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = res.text().await.unwrap();
    for line in [
        "lineup_queue_waiting_calls{queue=\"sales\"} 1",
        "lineup_queue_longest_wait_seconds{queue=\"sales\"} 5.0",
        "lineup_queue_entered_total{queue=\"sales\"} 2",
        "lineup_queue_outcomes_total{queue=\"sales\",outcome=\"abandoned\"} 0",
        "lineup_gate_waiting_calls{queue=\"sales\",gate=\"web\"} 0",
        "lineup_operators{state=\"offered\"} 1",
        "lineup_operators{state=\"offline\"} 2",
        "lineup_raft_term 1",
        "lineup_raft_is_leader 1",
        "lineup_ari_connected 1",
        "lineup_island 0",
        "lineup_site_callers_refused_total 0",
        "lineup_api_ws_clients{route=\"live\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    for family in [
        "lineup_raft_committed_index",
        "lineup_raft_applied_index",
        "lineup_offers_total",
        "lineup_history_outbox_lag_entries",
        "lineup_queue_eta_seconds",
    ] {
        assert!(text.contains(&format!("# TYPE {family} ")), "missing family {family}");
    }
    let (status, _) = rig.call("get", "/metrics", None, None).await;
    assert_eq!(status, 401);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_degraded_or_not_ready() {
    let rig = Rig::start().await;
    let (status, body) = rig.call("get", "/healthz", None, None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("up")));
    let (status, body) = rig.call("get", "/readyz", None, None).await;
    assert_eq!((status, body["ready"].as_bool(), body["degraded"].as_bool()), (200, Some(true), Some(false)), "{body}");

    let down = |detail: &str| Some(EdgeHealth { ok: false, lag_entries: Some(12), detail: Some(detail.into()) });
    rig.backend.set_edges(true, down("connection refused"), down("pool timed out"));
    let (status, body) = rig.call("get", "/readyz", None, None).await;
    assert_eq!((status, body["ready"].as_bool(), body["degraded"].as_bool()), (200, Some(true), Some(true)), "{body}");
    assert_eq!(body["degraded_edges"], serde_json::json!(["redis", "database"]));
    let metrics = rig.http.get(rig.url("/metrics")).bearer_auth(VIEWER).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("lineup_redis_ok 0") && metrics.contains("lineup_history_outbox_lag_entries 12"));

    rig.backend.set_edges(false, None, None);
    let (status, body) = rig.call("get", "/readyz", None, None).await;
    assert_eq!((status, body["ready"].as_bool()), (503, Some(false)), "{body}");
    assert!(body["problems"][0].as_str().unwrap().contains("ARI"), "{body}");
    rig.stop().await;
}

/// One call answered after 12 s that talks 90 s in a queue with 30 s of wrap-up: one wait of
/// 12 s (first in the 15 s bucket) and one handle of 120 s (first in the 120 s bucket).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histograms_observe_a_scripted_call_once() {
    let rig = Rig::start().await;
    let mut config = base_config();
    config.queues[0].wrap_up_ms = 30_000;
    assert!(rig.backend.apply(lineup_core::CommandBody::ApplyConfig(Box::new(config))).is_ok());
    scripted_call(&rig, 12_000, 90_000).await;
    let text = scrape(&rig).await;
    for line in [
        "# TYPE lineup_queue_wait_seconds histogram",
        "lineup_queue_wait_seconds_bucket{queue=\"sales\",le=\"10\"} 0",
        "lineup_queue_wait_seconds_bucket{queue=\"sales\",le=\"15\"} 1",
        "lineup_queue_wait_seconds_bucket{queue=\"sales\",le=\"+Inf\"} 1",
        "lineup_queue_wait_seconds_sum{queue=\"sales\"} 12.0",
        "lineup_queue_wait_seconds_count{queue=\"sales\"} 1",
        "lineup_queue_wait_seconds_count{queue=\"support\"} 0",
        "# TYPE lineup_queue_handle_seconds histogram",
        "lineup_queue_handle_seconds_bucket{queue=\"sales\",le=\"60\"} 0",
        "lineup_queue_handle_seconds_bucket{queue=\"sales\",le=\"120\"} 1",
        "lineup_queue_handle_seconds_sum{queue=\"sales\"} 120.0",
        "lineup_queue_handle_seconds_count{queue=\"sales\"} 1",
        "lineup_queue_outcomes_total{queue=\"sales\",outcome=\"answered\"} 1",
        "lineup_build_info{version=\"0.1.0\",format_version=\"1\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    rig.stop().await;
}

/// A deleted queue's histogram series go with it (labels stay the configured queues).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histogram_series_follow_the_configured_queues() {
    let rig = Rig::start().await;
    apply_base_config(&rig);
    assert!(scrape(&rig).await.contains("lineup_queue_wait_seconds_count{queue=\"support\"} 0"));
    let mut config = base_config();
    config.queues.retain(|q| q.id.as_str() != "support");
    config.operators.iter_mut().for_each(|o| o.memberships.retain(|q, _| q.as_str() != "support"));
    let applied = rig.backend.apply(lineup_core::CommandBody::ApplyConfig(Box::new(config)));
    assert!(applied.is_ok(), "{applied:?}");
    let text = scrape(&rig).await;
    assert!(!text.contains("queue=\"support\""), "{text}");
    assert!(text.contains("lineup_queue_wait_seconds_count{queue=\"sales\"} 0"), "{text}");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_counters_are_series_per_webhook_and_outcome() {
    let rig = Rig::start().await;
    let ops = lineup_api::WebhookHealth { id: "ops".into(), sent: 7, failed: 1, dropped: 2 };
    rig.backend.set_webhooks(vec![ops]);
    let metrics = rig.http.get(rig.url("/metrics")).bearer_auth(VIEWER).send().await.unwrap().text().await.unwrap();
    for line in [
        "# TYPE lineup_webhook_events_total counter",
        "lineup_webhook_events_total{webhook=\"ops\",outcome=\"sent\"} 7",
        "lineup_webhook_events_total{webhook=\"ops\",outcome=\"failed\"} 1",
        "lineup_webhook_events_total{webhook=\"ops\",outcome=\"dropped\"} 2",
    ] {
        assert!(metrics.lines().any(|l| l == line), "missing {line:?} in\n{metrics}");
    }
    rig.stop().await;
}
