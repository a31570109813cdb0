//! `/v1/live` and the widget's feed over real WebSockets.

mod common;

use common::*;
use lineup_core::{CallId, CommandBody};
use serde_json::json;
use std::time::Duration;

async fn read_snapshot(ws: &mut Ws, model: &mut LiveModel) {
    for _ in 0..10_000 {
        let m = ws.next_json().await;
        model.apply(&m);
        if model.complete() {
            return;
        }
    }
    panic!("no complete snapshot");
}

/// Reads live messages until the model agrees with the REST answers (bounded).
async fn converge(rig: &Rig, ws: &mut Ws, model: &mut LiveModel) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MAX_MS);
    loop {
        let operators = rest_operator_states(&rig.get("/v1/operators", VIEWER).await);
        let calls = rest_call_states(&rig.get("/v1/calls", VIEWER).await);
        if model.complete() && model.operator_states() == operators && model.call_states() == calls {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "live model never matched REST:\n{:?}\n{operators:?}\n{:?}\n{calls:?}",
            model.operator_states(),
            model.call_states()
        );
        let m = tokio::time::timeout_at(deadline, ws.next_json()).await.expect("no live message");
        model.apply(&m);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_deltas_agree_with_rest() {
    let rig = polling_rig().await;
    rig.login("alice");
    rig.enqueue("c1", "sales", Some("web"));
    rig.enqueue("c2", "sales", None);
    let mut ws = rig.ws("/v1/live?token=viewer-token-0123456789", None).await.unwrap();
    let mut model = LiveModel::default();
    let first = ws.next_json().await;
    assert_eq!(first["type"], "snapshot");
    assert_eq!(first["queues"].as_array().unwrap().len(), 2);
    model.apply(&first);
    read_snapshot(&mut ws, &mut model).await;
    converge(&rig, &mut ws, &mut model).await;
    assert_eq!(model.call_states()["c1"].0, "offered", "alice took c1");

    // Changes through the API and through the backend both arrive as deltas.
    rig.login("bob");
    let (status, _) =
        rig.post("/v1/operators/alice/state", SUPERVISOR, json!({ "state": "break", "reason": "x" })).await;
    assert_eq!(status, 200, "a break withdraws alice's offer; c1 goes back to the head");
    let (status, _) = rig.post("/v1/operators/bob/state", SUPERVISOR, json!({ "state": "available" })).await;
    assert_eq!(status, 409, "bob has an offer in progress");
    rig.enqueue("c3", "support", None);
    let (status, _) = rig.post("/v1/calls/c3/priority", SUPERVISOR, json!({ "priority": 2 })).await;
    assert_eq!(status, 200);
    let (status, _) =
        rig.post("/v1/calls/c3/reassign", SUPERVISOR, json!({ "queue": "sales", "keep_age": false })).await;
    assert_eq!(status, 200);
    let ended = rig.backend.apply(CommandBody::Abandoned { call: CallId::new("c1") });
    assert!(ended.is_ok(), "{ended:?}");
    converge(&rig, &mut ws, &mut model).await;
    assert!(!model.calls.contains_key("c1"), "call_ended removed c1");
    assert_eq!(model.calls["c3"]["queue"], "sales");

    // Periodic summaries follow the clock.
    assert!(rig.backend.tick(T0_MS + 30_000).is_ok());
    let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MAX_MS);
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next_json()).await.expect("no queues frame");
        model.apply(&m);
        if m["type"] == "queues" && m["now_ms"] == T0_MS + 30_000 {
            let sales = m["queues"].as_array().unwrap().iter().find(|q| q["queue"] == "sales").unwrap().clone();
            assert!(sales["longest_wait_ms"].as_u64().unwrap() >= 30_000, "{sales}");
            break;
        }
    }
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_client_gets_a_fresh_snapshot() {
    let rig = Rig::start_with(lineup_api::ApiConfig {
        live_buffer_frames: 16,
        limits: polling_limits(),
        ..Default::default()
    })
    .await;
    apply_base_config(&rig);
    for i in 0..20 {
        rig.enqueue(&format!("c{i}"), "sales", None);
    }
    // A client whose socket receive buffer is tiny stops reading: the server's writes stall.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(rig.addr).await.unwrap();
    let url = format!("ws://{}/v1/live?token={VIEWER}", rig.addr);
    let (socket, _) =
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream)).await.unwrap();
    let mut ws = Ws { socket };
    let mut model = LiveModel::default();
    read_snapshot(&mut ws, &mut model).await;
    // Far more delta bytes than the socket buffers hold, while the client does not read.
    for round in 0..2_000u32 {
        for i in 0..20 {
            let priority = if round % 2 == 0 { 3 } else { 4 };
            let r = rig.backend.apply(CommandBody::ChangePriority { call: CallId::new(format!("c{i}")), priority });
            assert!(r.is_ok());
        }
    }
    let mut snapshots_before = model.snapshots;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MAX_MS * 3);
    while model.snapshots == snapshots_before || !model.complete() {
        assert!(tokio::time::Instant::now() < deadline, "no resync snapshot");
        let m = tokio::time::timeout_at(deadline, ws.next_json()).await.expect("no message");
        model.apply(&m);
    }
    snapshots_before = model.snapshots;
    converge(&rig, &mut ws, &mut model).await;
    assert!(model.snapshots >= snapshots_before);
    assert!(model.call_states().values().all(|(_, _, priority)| *priority == 4));
    let metrics = rig.call("get", "/metrics", Some(VIEWER), None).await;
    assert_eq!(metrics.0, 200);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_origin_is_checked() {
    let rig = Rig::start_with(lineup_api::ApiConfig {
        allowed_origins: vec!["https://wall.example.com".into()],
        ..Default::default()
    })
    .await;
    let path = format!("/v1/live?token={VIEWER}");
    assert_eq!(rig.ws(&path, Some("https://evil.example.com")).await.err(), Some(403));
    assert!(rig.ws(&path, Some("https://wall.example.com")).await.is_ok());
    let same_origin = format!("http://{}", rig.addr);
    assert!(rig.ws(&path, Some(&same_origin)).await.is_ok());
    // The same host over another scheme is another origin.
    let other_scheme = format!("https://{}", rig.addr);
    assert_eq!(rig.ws(&path, Some(&other_scheme)).await.err(), Some(403));
    assert!(rig.ws(&path, None).await.is_ok(), "no Origin: not a browser");
    let widget = format!("/v1/calls/c1/live?token={VIEWER}");
    assert_eq!(rig.ws(&widget, Some("http://127.0.0.1:1")).await.err(), Some(403));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widget_position_decreases_as_calls_ahead_are_served() {
    let rig = Rig::start().await;
    apply_base_config(&rig);
    for call in ["c1", "c2", "c3"] {
        rig.enqueue(call, "sales", Some("web"));
    }
    let widget = rig.widget_token("c3").await;
    let mut ws = rig.ws(&format!("/v1/calls/c3/live?token={widget}"), None).await.unwrap();
    let first = ws.next_json().await;
    assert_eq!((first["type"].as_str(), first["position"].as_u64()), (Some("position"), Some(3)), "{first}");
    assert_eq!(rig.get("/v1/calls/c3/position", &widget).await["position"], 3);
    rig.login("alice");
    let m = ws.next_json().await;
    assert_eq!(m["position"], 2, "{m}");
    assert!(m["eta_ms"].as_u64().is_some(), "{m}");
    rig.login("bob");
    assert_eq!(ws.next_json().await["position"], 1);
    assert_eq!(rig.get("/v1/calls/c3/position", &widget).await["position"], 1);
    let r = rig.backend.apply(CommandBody::Abandoned { call: CallId::new("c3") });
    assert!(r.is_ok());
    assert_eq!(ws.next_json().await["type"], "ended");
    let (status, _) = rig.call("get", "/v1/calls/c3/position", Some(ADMIN), None).await;
    assert_eq!(status, 404);
    // The call's widget token died with it.
    let (status, _) = rig.call("get", "/v1/calls/c3/position", Some(&widget), None).await;
    assert_eq!(status, 401);
    rig.stop().await;
}

/// A `call` delta carries the caller's number and name as the snapshot rows do, so a table
/// fed by deltas shows them too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_deltas_carry_the_callers_number_and_name() {
    let rig = Rig::start().await;
    apply_base_config(&rig);
    rig.enqueue("c1", "sales", None);
    let mut ws = rig.ws("/v1/live?token=viewer-token-0123456789", None).await.unwrap();
    let mut model = LiveModel::default();
    read_snapshot(&mut ws, &mut model).await;
    assert_eq!(model.calls["c1"]["caller_number"], "5551234", "snapshot row");
    rig.enqueue("c2", "sales", None);
    let delta = next_of_kind(&mut ws, "call").await;
    assert_eq!(delta["call"]["call"], "c2");
    assert_eq!(delta["call"]["caller_number"], "5551234", "{delta}");
    assert_eq!(delta["call"]["caller_name"], "", "{delta}");
    // An offered call keeps them too.
    rig.login("alice");
    let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MAX_MS);
    loop {
        let m = tokio::time::timeout_at(deadline, next_of_kind(&mut ws, "call")).await.expect("no offer delta");
        if m["call"]["status"] == "offered" {
            assert_eq!(m["call"]["caller_number"], "5551234", "{m}");
            break;
        }
    }
    rig.stop().await;
}

/// The `queues` frame's waiting count (promises included) of `queue`.
fn depth_of(frame: &serde_json::Value, queue: &str) -> u64 {
    let row = frame["queues"].as_array().unwrap().iter().find(|q| q["queue"] == queue).unwrap();
    row["waiting"].as_u64().unwrap() + row["callbacks_waiting"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_opened_later_plots_the_hour_behind_it() {
    let rig = polling_rig().await;
    rig.login("alice");
    rig.enqueue("c1", "sales", None);
    rig.enqueue("c2", "sales", None);
    let mut first = rig.ws("/v1/live?token=viewer-token-0123456789", None).await.unwrap();
    let early = next_of_kind(&mut first, "queues").await;
    // One caller more, then twenty seconds later on the routing clock: a second sample.
    rig.enqueue("c3", "sales", None);
    let later_ms = early["now_ms"].as_u64().unwrap() + 20_000;
    assert!(rig.backend.tick(later_ms).is_ok());
    let late = loop {
        let frame = next_of_kind(&mut first, "queues").await;
        if frame["now_ms"].as_u64().unwrap() >= later_ms {
            break frame;
        }
    };

    // A page opened (or reloaded) now gets both samples in its snapshot.
    let mut page = rig.ws("/v1/live?token=viewer-token-0123456789", None).await.unwrap();
    let mut trend = None;
    loop {
        let m = page.next_json().await;
        match m["type"].as_str().unwrap() {
            "snapshot_trend" if m["queue"] == "sales" => trend = Some(m["points"].clone()),
            "snapshot_end" => break,
            _ => {}
        }
    }
    let points = trend.expect("no trend for sales in the snapshot");
    let points = points.as_array().unwrap();
    assert_eq!(points.len(), 2, "{points:?}");
    // The first sample was taken at the first summary after the queue existed, on the clock
    // the early frame still showed.
    assert_eq!(points[0][0], early["now_ms"]);
    assert_eq!(points[1][0].as_u64(), late["now_ms"].as_u64());
    assert_eq!(points[1][1].as_u64(), Some(depth_of(&late, "sales")));
    rig.stop().await;
}
