//! Per-call widget tokens over real HTTP: minted by frontend, supervisor and admin tokens;
//! each opens only its own call's position, live feed and callback request, and dies when
//! the call ends.

mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

const WIDGET_ROUTES: [&str; 3] = ["/v1/calls/{id}/position", "/v1/calls/{id}/callback", "/v1/calls/{id}/live"];
const PUBLIC_ROUTES: [&str; 4] = ["/healthz", "/readyz", "/v1/openapi.json", "/v1/agent/sign-in"];

/// `path` with its own call `c1` (the token's call), operator alice, queue sales, site 4.
fn concrete(path: &str, call: &str) -> String {
    let id = if path.contains("/operators/") {
        "alice"
    } else if path.contains("/calls/") {
        call
    } else {
        "sales"
    };
    path.replace("{id}", id).replace("{site}", "4")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minted_token_opens_its_own_call_only() {
    let rig = Rig::start().await;
    apply_base_config(&rig);
    rig.enqueue("c1", "sales", Some("web"));
    rig.enqueue("c2", "sales", Some("web"));
    let link = rig.mint("c1").await;
    let token = link["token"].as_str().unwrap();
    assert_eq!(link["url"], format!("/widget?call=c1&token={token}"));

    let position = rig.get("/v1/calls/c1/position", token).await;
    assert_eq!((position["position"].as_u64(), position["status"].as_str()), (Some(1), Some("waiting")));
    let mut feed = rig.ws(&format!("/v1/calls/c1/live?token={token}"), None).await.unwrap();
    assert_eq!(feed.next_json().await["position"], 1);

    // Another call: refused on position, callback and live feed; that call is untouched.
    let (status, body) = rig.call("get", "/v1/calls/c2/position", Some(token), None).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")), "{body}");
    let (status, body) = rig.post("/v1/calls/c2/callback", token, json!({ "number": "+15550100" })).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(rig.ws(&format!("/v1/calls/c2/live?token={token}"), None).await.err(), Some(403));
    assert_eq!(rig.get("/v1/calls/c2/position", ADMIN).await["status"], "waiting");

    // Every route that is not this call's widget route refuses it.
    let mut refused = 0;
    for (method, path) in lineup_api::api_routes() {
        if PUBLIC_ROUTES.contains(&path) {
            continue;
        }
        let own_call = if WIDGET_ROUTES.contains(&path) { "c2" } else { "c1" };
        let (status, body) = rig.call(method, &concrete(path, own_call), Some(token), body_for(path).as_deref()).await;
        assert_eq!(status, 403, "{method} {path} with c1's widget token: {body}");
        refused += 1;
    }
    assert!(refused >= 33, "only {refused} routes checked");
    assert_eq!(rig.ws(&format!("/v1/live?token={token}"), None).await.err(), Some(403));

    let (status, body) = rig.post("/v1/calls/c1/callback", token, json!({ "number": "+15550100" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(rig.get("/v1/calls/c1/position", token).await["status"], "callback_waiting");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_refused_once_its_call_ends_and_is_swept() {
    let rig = polling_rig().await;
    rig.enqueue("c1", "sales", Some("web"));
    rig.enqueue("c2", "sales", Some("web"));
    let ended = rig.widget_token("c1").await;
    let going = rig.widget_token("c2").await;
    assert_eq!(widget_tokens_held(&rig).await, 2);
    let result = rig.backend.apply(lineup_core::CommandBody::Abandoned { call: lineup_core::CallId::new("c1") });
    assert!(result.is_ok(), "{result:?}");
    let (status, _) = rig.call("get", "/v1/calls/c1/position", Some(&ended), None).await;
    assert_eq!(status, 401);
    let (status, _) = rig.post("/v1/calls/c1/callback", &ended, json!({ "number": "+15550100" })).await;
    assert_eq!(status, 401);
    assert_eq!(rig.ws(&format!("/v1/calls/c1/live?token={ended}"), None).await.err(), Some(401));
    // A call that ended (or never was) gets no new token.
    for call in ["c1", "nope"] {
        let (status, body) = rig.call("post", &format!("/v1/calls/{call}/widget-token"), Some(ADMIN), None).await;
        assert_eq!((status, body["code"].as_str()), (404, Some("not_found")), "{call}: {body}");
    }
    // c2's token is untouched; once c2 ends too, the sweep leaves nothing held.
    assert_eq!(rig.get("/v1/calls/c2/position", &going).await["position"], 1);
    assert_eq!(widget_tokens_held(&rig).await, 1);
    let result = rig.backend.apply(lineup_core::CommandBody::Abandoned { call: lineup_core::CallId::new("c2") });
    assert!(result.is_ok(), "{result:?}");
    let deadline = Instant::now() + Duration::from_millis(WAIT_MAX_MS);
    while widget_tokens_held(&rig).await != 0 {
        assert!(Instant::now() < deadline, "ended calls' tokens were not swept");
        tokio::task::yield_now().await;
    }
    rig.stop().await;
}

async fn widget_tokens_held(rig: &Rig) -> u64 {
    let res = rig.http.get(rig.url("/metrics")).bearer_auth(VIEWER).send().await.unwrap();
    let text = res.text().await.unwrap();
    let line = text.lines().find(|l| l.starts_with("lineup_api_widget_tokens ")).expect("the gauge");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_may_mint_and_what_a_token_looks_like() {
    let rig = Rig::start().await;
    apply_base_config(&rig);
    rig.enqueue("c1", "sales", Some("web"));
    let (status, body) = rig.call("post", "/v1/calls/c1/widget-token", Some(VIEWER), None).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")), "{body}");
    let (status, _) = rig.call("post", "/v1/calls/c1/widget-token", None, None).await;
    assert_eq!(status, 401);
    let mut tokens = Vec::new();
    for minter in [FRONTEND, SUPERVISOR, ADMIN] {
        let (status, body) = rig.call("post", "/v1/calls/c1/widget-token", Some(minter), None).await;
        assert_eq!(status, 200, "{body}");
        let token = body["token"].as_str().unwrap().to_string();
        assert!(token.len() >= 32 && token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
        assert_eq!(rig.get("/v1/calls/c1/position", &token).await["position"], 1);
        tokens.push(token);
    }
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 3, "every minted token differs");
    // A minted token cannot mint (it is no frontend).
    let (status, _) = rig.call("post", "/v1/calls/c1/widget-token", Some(&tokens[0]), None).await;
    assert_eq!(status, 403);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_configured_by_its_hash_authenticates() {
    let secret = "hashed-viewer-token-0123456789";
    let digest = lineup_api::secret::sha256(secret);
    let rig = Rig::start_with(lineup_api::ApiConfig {
        tokens: vec![lineup_api::ApiToken::hashed("hashed", digest, lineup_api::Role::Viewer)],
        ..Default::default()
    })
    .await;
    assert_eq!(rig.get("/v1/me", secret).await, json!({ "name": "hashed", "role": "viewer" }));
    let hex = lineup_api::secret::sha256_hex(secret);
    let (status, _) = rig.call("get", "/v1/me", Some(&hex), None).await;
    assert_eq!(status, 401, "the digest itself is no token");
    rig.stop().await;
}
