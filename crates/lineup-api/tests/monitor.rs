//! `POST /v1/calls/{id}/monitor` over real HTTP: a supervisor's monitoring of a connected
//! call is audited and committed as an `Effect::Monitor` for the sites; the refusals name
//! what is wrong.

mod common;

use common::*;
use lineup_api::ApiBackend;
use lineup_core::{CallId, CommandBody, Effect, MonitorMode, OperatorId, SiteId};
use serde_json::json;

/// alice talks to c1; c2 waits.
fn connected_call(rig: &Rig) {
    apply_base_config(rig);
    rig.login("alice");
    rig.enqueue("c1", "sales", None);
    rig.enqueue("c2", "sales", None);
    let call = CallId::new("c1");
    let offer = rig.backend.read(|r| r.current_offer(&call)).expect("c1 offered to alice");
    let connected =
        rig.backend.apply(CommandBody::Connected { call, operator: OperatorId::new("alice"), fence: offer.fence });
    assert!(connected.is_ok(), "{connected:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_monitors_a_connected_call_and_it_is_audited() {
    let rig = Rig::start().await;
    connected_call(&rig);
    let mut effects = rig.backend.subscribe();
    let body = json!({ "mode": "whisper", "endpoint": "PJSIP/2001" });
    let (status, answer) = rig.post("/v1/calls/c1/monitor", SUPERVISOR, body).await;
    assert_eq!(status, 200, "{answer}");

    let order = loop {
        let applied = effects.recv().await.expect("effects");
        if let Effect::Monitor(order) = applied.effect {
            break order;
        }
    };
    assert_eq!(order.call, CallId::new("c1"));
    assert_eq!(order.operator, OperatorId::new("alice"));
    assert_eq!((order.mode, order.endpoint.as_str()), (MonitorMode::Whisper, "PJSIP/2001"));
    assert_eq!(order.supervisor_site, SiteId(1), "this node's site when none is named");

    let rows = rig.get("/v1/audit", ADMIN).await;
    let row = &rows[0];
    assert_eq!((row["actor"].as_str(), row["action"].as_str()), (Some("sup"), Some("monitor_call")), "{rows}");
    assert_eq!(row["target"], "call:c1 mode:whisper endpoint:PJSIP/2001");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_is_refused_clearly() {
    let rig = Rig::start().await;
    connected_call(&rig);
    let listen = |endpoint: &str| json!({ "mode": "listen", "endpoint": endpoint });
    let (status, _) = rig.post("/v1/calls/c1/monitor", VIEWER, listen("PJSIP/2001")).await;
    assert_eq!(status, 403, "a viewer may not monitor");
    let (status, body) = rig.post("/v1/calls/nobody/monitor", SUPERVISOR, listen("PJSIP/2001")).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = rig.post("/v1/calls/c2/monitor", SUPERVISOR, listen("PJSIP/2001")).await;
    assert_eq!(status, 409, "a waiting call is not connected: {body}");
    let (status, body) = rig.post("/v1/calls/c1/monitor", SUPERVISOR, listen("PJSIP/2001&PJSIP/2002")).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("endpoint")), "{body}");
    let (status, body) = rig.post("/v1/calls/c1/monitor", SUPERVISOR, listen("2001")).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("endpoint")), "{body}");
    let elsewhere = json!({ "mode": "barge", "endpoint": "PJSIP/2001", "site": 9 });
    let (status, body) = rig.post("/v1/calls/c1/monitor", SUPERVISOR, elsewhere).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("site")), "{body}");
    let (status, body) =
        rig.post("/v1/calls/c1/monitor", SUPERVISOR, json!({ "mode": "spy", "endpoint": "x/y" })).await;
    assert_eq!(status, 422, "{body}");
    // Nothing refused reached the log: no row in the audit trail.
    assert!(rig.get("/v1/audit", ADMIN).await.as_array().unwrap().is_empty());
    rig.stop().await;
}
