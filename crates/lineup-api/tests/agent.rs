//! The agent panel's routes over real HTTP: an operator signs in with its id and PIN, sees
//! and changes its own state, sees the caller offered to it, takes callers by pulling, and
//! follows its panel live; wrong PINs count towards the replicated lockout; its token opens
//! its own panel routes and nothing else.

mod common;

use argon2::password_hash::PasswordHasher;
use common::*;
use lineup_api::ApiBackend;
use lineup_core::{CommandBody, OperatorId, OperatorMode, QueueConfig, QueueId};
use serde_json::{json, Value};

const PIN: &str = "4711";

/// An argon2id hash of `pin` with small costs (the check reads its costs from the hash).
fn cheap_hash(pin: &str) -> String {
    let params = argon2::Params::new(8, 1, 1, None).unwrap();
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    argon.hash_password(pin.as_bytes()).unwrap().to_string()
}

/// The base config with alice's PIN set, and `back-office` (pull only) with alice in it.
fn start_config(rig: &Rig) {
    let mut config = base_config();
    config.operators[0].pin_hash = cheap_hash(PIN);
    config.operators[0].memberships.insert(QueueId::new("back-office"), 0);
    config.queues.push(QueueConfig { id: QueueId::new("back-office"), pull_only: true, ..QueueConfig::default() });
    let mut rita = config.operators[0].clone();
    (rita.id, rita.name, rita.mode, rita.endpoint) =
        (OperatorId::new("rita"), "Rita".into(), OperatorMode::Ring, Some("PJSIP/rita".into()));
    config.operators.push(rita);
    let result = rig.backend.apply(CommandBody::ApplyConfig(Box::new(config)));
    assert!(result.is_ok(), "{result:?}");
}

async fn sign_in(rig: &Rig, operator: &str, pin: &str) -> (u16, Value) {
    let body = json!({ "operator": operator, "pin": pin }).to_string();
    rig.call("post", "/v1/agent/sign-in", None, Some(&body)).await
}

async fn panel(rig: &Rig, token: &str) -> Value {
    rig.get("/v1/agent/me", token).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_signs_in_changes_its_state_and_sees_its_caller() {
    let rig = Rig::start().await;
    start_config(&rig);
    let (status, signed) = sign_in(&rig, "alice", PIN).await;
    assert_eq!(status, 200, "{signed}");
    let token = signed["token"].as_str().unwrap().to_string();
    assert_eq!((signed["operator"].as_str(), signed["name"].as_str()), (Some("alice"), Some("alice")));

    let me = panel(&rig, &token).await;
    assert_eq!((me["state"].as_str(), me["call"].is_null()), (Some("offline"), true), "{me}");
    assert_eq!(me["pull_queues"], json!(["back-office"]));
    rig.login("alice");
    assert_eq!(panel(&rig, &token).await["state"], "available");

    let (status, body) = rig.post("/v1/agent/state", &token, json!({ "state": "break", "reason": "lunch" })).await;
    assert_eq!(status, 200, "{body}");
    let me = panel(&rig, &token).await;
    assert_eq!((me["state"].as_str(), me["break_reason"].as_str()), (Some("break"), Some("lunch")));
    let (status, body) = rig.post("/v1/agent/state", &token, json!({ "state": "break" })).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("reason")), "a break needs its reason");
    let (status, _) = rig.post("/v1/agent/state", &token, json!({ "state": "available" })).await;
    assert_eq!(status, 200);

    rig.enqueue("c1", "sales", Some("web"));
    let me = panel(&rig, &token).await;
    assert_eq!(me["state"], "offered", "{me}");
    let call = &me["call"];
    assert_eq!(
        (call["call"].as_str(), call["queue"].as_str(), call["gate"].as_str()),
        (Some("c1"), Some("sales"), Some("web"))
    );
    assert_eq!(call["caller_number"], "5551234");
    assert!(me["now_ms"].as_u64().unwrap() >= call["since_ms"].as_u64().unwrap());
    // Bob's state is not alice's to change: the token names its operator, the body cannot.
    let before = rig.get("/v1/operators", ADMIN).await;
    let (status, _) = rig.post("/v1/agent/state", &token, json!({ "state": "offline", "operator": "bob" })).await;
    assert_eq!(status, 422, "unknown fields are refused");
    assert_eq!(rest_operator_states(&before), rest_operator_states(&rig.get("/v1/operators", ADMIN).await));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_operator_logs_in_from_its_panel_and_a_persistent_one_by_phone() {
    let rig = Rig::start().await;
    start_config(&rig);
    let rita = sign_in(&rig, "rita", PIN).await.1["token"].as_str().unwrap().to_string();
    let (status, body) = rig.call("post", "/v1/agent/login", Some(&rita), None).await;
    assert_eq!(status, 200, "{body}");
    let me = panel(&rig, &rita).await;
    assert_eq!(
        (me["state"].as_str(), me["site"].as_u64(), me["mode"].as_str()),
        (Some("available"), Some(1), Some("ring"))
    );
    let (status, _) = rig.call("post", "/v1/agent/logout", Some(&rita), None).await;
    assert_eq!(status, 200);
    assert_eq!(panel(&rig, &rita).await["state"], "offline");

    let alice = sign_in(&rig, "alice", PIN).await.1["token"].as_str().unwrap().to_string();
    let (status, body) = rig.call("post", "/v1/agent/login", Some(&alice), None).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("channel")), "{body}");
    assert_eq!(panel(&rig, &alice).await["state"], "offline");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_pull_mode_the_panel_lists_the_callers_it_may_take_and_takes_one() {
    let rig = Rig::start().await;
    start_config(&rig);
    rig.login("alice");
    rig.enqueue("b1", "back-office", None);
    rig.enqueue("b2", "back-office", None);
    let token = sign_in(&rig, "alice", PIN).await.1["token"].as_str().unwrap().to_string();
    let me = panel(&rig, &token).await;
    let listed: Vec<&str> = me["pullable"].as_array().unwrap().iter().map(|c| c["call"].as_str().unwrap()).collect();
    assert_eq!(listed, ["b1", "b2"], "{me}");
    assert_eq!(me["pullable"][1]["position"], 2);

    let (status, body) = rig.post("/v1/agent/pull", &token, json!({ "call": "b2" })).await;
    assert_eq!(status, 200, "{body}");
    let me = panel(&rig, &token).await;
    assert_eq!((me["state"].as_str(), me["call"]["call"].as_str()), (Some("offered"), Some("b2")));
    let listed: Vec<&str> = me["pullable"].as_array().unwrap().iter().map(|c| c["call"].as_str().unwrap()).collect();
    assert_eq!(listed, ["b1"]);
    let (status, body) = rig.post("/v1/agent/pull", &token, json!({})).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("refused")), "an offered operator pulls nothing: {body}");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_pins_lock_the_operator_out_everywhere_and_say_nothing_of_who_exists() {
    let rig = Rig::start().await;
    start_config(&rig);
    let (status, unknown) = sign_in(&rig, "nobody", PIN).await;
    let (status_wrong, wrong) = sign_in(&rig, "alice", "0000").await;
    assert_eq!((status, status_wrong), (401, 401));
    assert_eq!(unknown["error"], wrong["error"], "an unknown operator reads as a wrong PIN");
    assert_eq!(wrong["code"], "sign_in_refused");
    for _ in 1..lineup_core::routing::PIN_LOCKOUT_FAILURES_MAX {
        assert_eq!(sign_in(&rig, "alice", "0000").await.0, 401);
    }
    // The replicated lockout (the phone login's too) holds: even the right PIN is refused.
    assert!(rig.backend.read(|r| r.pin_locked_out(&OperatorId::new("alice"))));
    let (status, body) = sign_in(&rig, "alice", PIN).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("rate_limited")), "{body}");
    assert_eq!(sign_in(&rig, "bob", "").await.0, 422, "an empty PIN is refused before any check");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_token_opens_its_own_panel_and_nothing_else() {
    let rig = Rig::start().await;
    start_config(&rig);
    rig.enqueue("c1", "sales", Some("web"));
    let token = sign_in(&rig, "alice", PIN).await.1["token"].as_str().unwrap().to_string();
    let mut refused = 0;
    for (method, path) in lineup_api::api_routes() {
        if path.starts_with("/v1/agent/") || ["/healthz", "/readyz", "/v1/openapi.json"].contains(&path) {
            continue;
        }
        let concrete =
            path.replace("{id}", if path.contains("/calls/") { "c1" } else { "alice" }).replace("{site}", "2");
        let (status, body) = rig.call(method, &concrete, Some(&token), body_for(path).as_deref()).await;
        assert_eq!(status, 403, "{method} {path} with an agent token: {body}");
        refused += 1;
    }
    assert!(refused >= 40, "only {refused} routes checked");
    // Configured tokens do not open a panel.
    let (status, body) = rig.call("get", "/v1/agent/me", Some(SUPERVISOR), None).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));

    // Signing out ends the token; an operator removed from the config is signed out too.
    let (status, _) = rig.call("post", "/v1/agent/sign-out", Some(&token), None).await;
    assert_eq!(status, 200);
    assert_eq!(rig.call("get", "/v1/agent/me", Some(&token), None).await.0, 401);
    let token = sign_in(&rig, "alice", PIN).await.1["token"].as_str().unwrap().to_string();
    let mut config = base_config();
    config.operators.remove(0);
    assert!(rig.backend.apply(CommandBody::ApplyConfig(Box::new(config))).is_ok());
    assert_eq!(rig.call("get", "/v1/agent/me", Some(&token), None).await.0, 401);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_panel_follows_the_operators_state_and_ends_at_sign_out() {
    let rig = Rig::start().await;
    start_config(&rig);
    let token = sign_in(&rig, "alice", PIN).await.1["token"].as_str().unwrap().to_string();
    let mut live = rig.ws(&format!("/v1/agent/live?token={token}"), None).await.unwrap();
    let first = live.next_json().await;
    assert_eq!((first["type"].as_str(), first["state"].as_str()), (Some("agent"), Some("offline")), "{first}");
    rig.login("alice");
    rig.enqueue("c1", "sales", None);
    // Each change arrives as a whole panel; wait (bounded) for the offer.
    let offered = loop {
        let message = live.next_json().await;
        if message["state"] == "offered" {
            break message;
        }
    };
    assert_eq!(offered["call"]["call"], "c1");
    assert_eq!(rig.ws("/v1/agent/live?token=not-a-token", None).await.err(), Some(401));
    assert_eq!(rig.ws(&format!("/v1/agent/live?token={VIEWER}"), None).await.err(), Some(403));
    rig.call("post", "/v1/agent/sign-out", Some(&token), None).await;
    // The next wake-up of the socket finds the token gone.
    rig.enqueue("c2", "sales", None);
    let ended = loop {
        let message = live.next_json().await;
        if message["type"] == "signed_out" {
            break message;
        }
    };
    assert_eq!(ended["type"], "signed_out");
    rig.stop().await;
}
