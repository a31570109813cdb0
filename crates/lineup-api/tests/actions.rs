//! Supervisor actions, checked through the live-state GETs.

mod common;

use common::*;
use serde_json::json;

fn call<'a>(calls: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    calls["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["call"] == id)
        .unwrap_or_else(|| panic!("no call {id}: {calls}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_reassigns_a_call_and_changes_its_priority() {
    let rig = Rig::start().await;
    apply_base_config(&rig);
    rig.enqueue("c1", "sales", Some("web"));
    rig.enqueue("c2", "sales", Some("phone"));
    rig.enqueue("c3", "support", None);
    let calls = rig.get("/v1/calls", VIEWER).await;
    let order: Vec<&str> = calls["calls"].as_array().unwrap().iter().map(|c| c["call"].as_str().unwrap()).collect();
    assert_eq!(order, ["c1", "c2", "c3"], "sales weighs more than support");
    assert_eq!(
        (call(&calls, "c2")["position"].as_u64(), call(&calls, "c2")["gate"].as_str()),
        (Some(2), Some("phone"))
    );

    let (status, body) = rig.post("/v1/calls/c1/reassign", SUPERVISOR, json!({ "queue": "support" })).await;
    assert_eq!(status, 200, "{body}");
    let calls = rig.get("/v1/calls", VIEWER).await;
    assert_eq!(call(&calls, "c1")["queue"], "support");
    // Kept its age: ahead of c3 in support.
    assert_eq!(call(&calls, "c1")["position"], 1);
    assert_eq!(call(&calls, "c3")["position"], 2);
    assert_eq!(call(&calls, "c2")["position"], 1);
    assert_eq!(rig.get("/v1/calls/c1", VIEWER).await["queue"], "support");

    let (status, body) = rig.post("/v1/calls/c3/priority", SUPERVISOR, json!({ "priority": 0 })).await;
    assert_eq!(status, 200, "{body}");
    let calls = rig.get("/v1/calls", VIEWER).await;
    assert_eq!((call(&calls, "c3")["priority"].as_u64(), call(&calls, "c3")["position"].as_u64()), (Some(0), Some(1)));

    // Refusals: an unknown target queue names the field; an unknown call is 404; the admin may act too.
    let (status, body) = rig.post("/v1/calls/c3/reassign", SUPERVISOR, json!({ "queue": "nowhere" })).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("queue")));
    let (status, _) = rig.post("/v1/calls/nobody/priority", ADMIN, json!({ "priority": 1 })).await;
    assert_eq!(status, 404);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_sets_operator_state_logs_out_and_pulls() {
    let rig = Rig::start().await;
    apply_base_config(&rig);
    rig.login("alice");
    rig.login("bob");
    let state_of = |body: &serde_json::Value, id: &str| rest_operator_states(body)[id].clone();

    let (status, body) =
        rig.post("/v1/operators/alice/state", SUPERVISOR, json!({ "state": "break", "reason": "lunch" })).await;
    assert_eq!(status, 200, "{body}");
    let ops = rig.get("/v1/operators", VIEWER).await;
    assert_eq!(state_of(&ops, "alice"), "break");
    let alice = ops["operators"].as_array().unwrap().iter().find(|o| o["operator"] == "alice").unwrap().clone();
    assert_eq!(
        (alice["break_reason"].as_str(), alice["site"].as_u64(), alice["mode"].as_str()),
        (Some("lunch"), Some(1), Some("persistent"))
    );

    let (status, _) = rig.post("/v1/operators/bob/logout", SUPERVISOR, json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(state_of(&rig.get("/v1/operators", VIEWER).await, "bob"), "offline");
    let (status, body) = rig.post("/v1/operators/bob/logout", SUPERVISOR, json!({})).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("refused")), "{body}");

    // A pull-only queue: callers wait until an operator pulls them.
    let (status, body) = rig
        .call(
            "put",
            "/v1/config/queues/support",
            Some(ADMIN),
            Some(&json!({ "id": "support", "pull_only": true }).to_string()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    rig.login("carol");
    let (status, _) =
        rig.post("/v1/operators/carol/state", SUPERVISOR, json!({ "state": "break", "reason": "prep" })).await;
    assert_eq!(status, 200);
    rig.enqueue("c9", "support", None);
    let (status, _) = rig.post("/v1/operators/carol/state", SUPERVISOR, json!({ "state": "available" })).await;
    assert_eq!(status, 200);
    assert_eq!(rig.get("/v1/calls/c9", VIEWER).await["status"], "waiting");
    let (status, body) = rig.post("/v1/operators/carol/pull", SUPERVISOR, json!({ "call": "c9" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(rig.get("/v1/calls/c9", VIEWER).await["status"], "offered");
    assert_eq!(state_of(&rig.get("/v1/operators", VIEWER).await, "carol"), "offered");
    rig.stop().await;
}

/// Refused writes are answered from the local replica with the core's own refusal and never
/// proposed: the apply index (the Raft log's, on a node) does not move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_writes_are_answered_without_being_proposed() {
    const REFUSED_WRITES: usize = 60;
    let rig = Rig::start().await;
    apply_base_config(&rig);
    rig.login("alice");
    rig.enqueue("c1", "sales", None);
    assert_eq!(rig.get("/v1/calls/c1", VIEWER).await["status"], "offered", "c1 is with alice, not waiting");
    let index_before = rig.backend.next_apply_index();
    for i in 0..REFUSED_WRITES {
        let (path, body, expected) = match i % 4 {
            0 => ("/v1/calls/c1/callback", json!({ "number": "5551234" }), (409, "refused")),
            1 => ("/v1/calls/nobody/callback", json!({ "number": "5551234" }), (404, "not_found")),
            2 => ("/v1/operators/bob/logout", json!({}), (409, "refused")),
            _ => ("/v1/calls/c1/priority", json!({ "priority": 1 }), (409, "refused")),
        };
        let (status, answer) = rig.post(path, SUPERVISOR, body).await;
        assert_eq!((status, answer["code"].as_str().unwrap_or("")), expected, "{path}: {answer}");
    }
    let (status, body) = rig.call("delete", "/v1/config/operators/alice", Some(ADMIN), None).await;
    assert_eq!(status, 409, "a logged-in operator stays: {body}");
    assert_eq!(rig.backend.next_apply_index(), index_before, "a refused write was proposed");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_hangs_up_a_caller_through_its_site() {
    let rig = Rig::start().await;
    apply_base_config(&rig);
    rig.enqueue("c1", "sales", None);
    let (status, body) = rig.post("/v1/calls/c1/hangup", SUPERVISOR, json!({})).await;
    assert_eq!((status, body["ok"].as_bool()), (200, Some(true)), "{body}");
    // The caller's site hangs up the channel and reports it; until then the call is listed.
    let calls = rig.get("/v1/calls", VIEWER).await;
    assert_eq!(call(&calls, "c1")["status"], "waiting");
    let audit = rig.get("/v1/audit", SUPERVISOR).await;
    assert_eq!((audit[0]["action"].as_str(), audit[0]["target"].as_str()), (Some("hang_up_call"), Some("call:c1")));

    let (status, body) = rig.post("/v1/calls/nobody/hangup", SUPERVISOR, json!({})).await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = rig.post("/v1/calls/c1/hangup", VIEWER, json!({})).await;
    assert_eq!(status, 403);
    rig.stop().await;
}
