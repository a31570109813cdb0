//! Roles: a viewer changes nothing, a frontend token only mints widget tokens, no token
//! reaches nothing but health and the document. (Per-call widget tokens: `widget_tokens.rs`.)

mod common;

use common::*;
use serde_json::json;

fn concrete(path: &str) -> String {
    let id = if path.contains("/operators/") {
        "alice"
    } else if path.contains("/calls/") {
        "c1"
    } else {
        "sales"
    };
    path.replace("{id}", id).replace("{site}", "4")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_are_admin_only_checked_and_refused_without_a_cluster() {
    let rig = Rig::start().await;
    let add = json!({ "site": 4, "address": "10.0.4.10:7401" }).to_string();
    let (status, body) = rig.call("post", "/v1/cluster/members", Some(SUPERVISOR), Some(&add)).await;
    assert_eq!(status, 403, "{body}");
    let bad = json!({ "site": 4, "address": "10.0.4.10 ; rm" }).to_string();
    let (status, body) = rig.call("post", "/v1/cluster/members", Some(ADMIN), Some(&bad)).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("address")), "{body}");
    // LocalBackend is one process with no Raft group: a definite 503 that says so.
    let (status, body) = rig.call("post", "/v1/cluster/members", Some(ADMIN), Some(&add)).await;
    assert_eq!(status, 503, "{body}");
    let (status, body) = rig.call("delete", "/v1/cluster/members/4", Some(ADMIN), None).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("site")), "not a member: {body}");
    let (status, body) = rig.call("delete", "/v1/cluster/members/1", Some(ADMIN), None).await;
    assert_eq!(status, 503, "{body}");
    // A snapshot on demand is an admin's too; LocalBackend has no Raft log to snapshot.
    let (status, body) = rig.call("post", "/v1/cluster/snapshot", Some(SUPERVISOR), None).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = rig.call("post", "/v1/cluster/snapshot", Some(ADMIN), None).await;
    assert_eq!(status, 503, "{body}");
    rig.stop().await;
}

/// Declaring a site lost is an admin's explicit act, checked before anything is proposed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declaring_a_site_lost_is_admin_only_and_checked() {
    let rig = Rig::start().await;
    let (status, body) = rig.call("get", "/v1/cluster", Some(ADMIN), None).await;
    assert_eq!(status, 200, "{body}");
    let site = body["members"][0]["site"].as_u64().unwrap();
    assert_eq!(body["members"][0]["site_state"], "up", "{body}");
    // What a peer asks for: this node's own view, the same members.
    let (status, local) = rig.call("get", "/v1/cluster?peers=false", Some(ADMIN), None).await;
    assert_eq!((status, &local["members"]), (200, &body["members"]), "{local}");
    let lost = format!("/v1/cluster/members/{site}/lost");
    let (status, body) = rig.call("post", &lost, Some(SUPERVISOR), None).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = rig.call("post", "/v1/cluster/members/99/lost", Some(ADMIN), None).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("site")), "{body}");
    let (status, body) = rig.call("post", &lost, Some(ADMIN), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["members"][0]["site_state"], "lost", "{body}");
    let (status, body) = rig.call("post", &lost, Some(ADMIN), None).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("site")), "already lost: {body}");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_gets_403_on_every_write_and_nothing_changes() {
    let rig = Rig::start().await;
    apply_base_config(&rig);
    rig.login("alice");
    rig.enqueue("c0", "sales", None);
    rig.enqueue("c1", "sales", Some("web"));
    let before =
        (rig.get("/v1/config", ADMIN).await, rig.get("/v1/calls", ADMIN).await, rig.get("/v1/operators", ADMIN).await);
    let mut writes = 0;
    for (method, path) in lineup_api::api_routes() {
        // Signing in to an agent panel takes no token (an operator's id and PIN instead).
        if method == "get" || path == "/v1/agent/sign-in" {
            continue;
        }
        writes += 1;
        let (status, body) = rig.call(method, &concrete(path), Some(VIEWER), body_for(path).as_deref()).await;
        assert_eq!(status, 403, "{method} {path} as viewer: {body}");
        assert_eq!(body["code"], "forbidden");
    }
    assert!(writes >= 12, "only {writes} write routes");
    let after =
        (rig.get("/v1/config", ADMIN).await, rig.get("/v1/calls", ADMIN).await, rig.get("/v1/operators", ADMIN).await);
    assert_eq!(before.0, after.0);
    assert_eq!(before.1["calls"], after.1["calls"]);
    assert_eq!(rest_operator_states(&before.2), rest_operator_states(&after.2));
    rig.stop().await;
}

/// A frontend token mints widget tokens and does nothing else: no live state, no call's
/// position, no action.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frontend_token_only_mints_widget_tokens() {
    let rig = Rig::start().await;
    apply_base_config(&rig);
    rig.enqueue("c1", "sales", Some("web"));
    let public = ["/healthz", "/readyz", "/v1/openapi.json", "/v1/agent/sign-in"];
    let mut refused = 0;
    for (method, path) in lineup_api::api_routes() {
        if path == "/v1/calls/{id}/widget-token" || public.contains(&path) {
            continue;
        }
        let (status, body) = rig.call(method, &concrete(path), Some(FRONTEND), body_for(path).as_deref()).await;
        assert_eq!(status, 403, "{method} {path} as frontend: {body}");
        refused += 1;
    }
    assert!(refused >= 30, "only {refused} routes checked");
    assert_eq!(rig.ws(&format!("/v1/live?token={FRONTEND}"), None).await.err(), Some(403));
    assert_eq!(rig.ws(&format!("/v1/calls/c1/live?token={FRONTEND}"), None).await.err(), Some(403));
    let link = rig.mint("c1").await;
    assert!(link["token"].is_string() && link["url"].is_string(), "{link}");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_unknown_token_is_401_and_health_is_public() {
    let rig = Rig::start().await;
    for (method, path) in lineup_api::api_routes() {
        let (status, _) = rig.call(method, &concrete(path), None, body_for(path).as_deref()).await;
        match path {
            "/healthz" | "/readyz" | "/v1/openapi.json" => assert_eq!(status, 200, "{path}"),
            "/v1/live" | "/v1/calls/{id}/live" | "/v1/agent/live" => {
                assert!(status == 401 || status == 400, "{path}: {status}")
            }
            _ => assert_eq!(status, 401, "{method} {path}"),
        }
    }
    let (status, body) = rig.call("get", "/v1/queues", Some("not-a-real-token-at-all"), None).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
    assert_eq!(rig.ws("/v1/live?token=not-a-real-token-at-all", None).await.err(), Some(401));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_reads_redact_pin_hashes_below_admin() {
    let rig = Rig::start().await;
    apply_base_config(&rig);
    let admin = rig.get("/v1/config", ADMIN).await;
    assert_eq!(admin["operators"][0]["pin_hash"], "$argon2id$fake-alice");
    for token in [SUPERVISOR, VIEWER] {
        let set = rig.get("/v1/config", token).await;
        assert_eq!(set["operators"][0]["pin_hash"], "(redacted)");
        assert_eq!(rig.get("/v1/config/operators/alice", token).await["pin_hash"], "(redacted)");
    }
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn me_names_the_token_holder_and_role_and_never_the_token() {
    let rig = Rig::start().await;
    for (token, name, role) in
        [(ADMIN, "admin", "admin"), (SUPERVISOR, "sup", "supervisor"), (VIEWER, "wall", "viewer")]
    {
        let (status, body) = rig.call("get", "/v1/me", Some(token), None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, json!({ "name": name, "role": role }));
    }
    let (status, _) = rig.call("get", "/v1/me", Some(FRONTEND), None).await;
    assert_eq!(status, 403, "a frontend token reads nothing, not even who it is");
    let (status, _) = rig.call("get", "/v1/me", None, None).await;
    assert_eq!(status, 401);
    let (status, _) = rig.call("get", "/v1/me", Some("not-a-token-0123456789"), None).await;
    assert_eq!(status, 401);
    rig.stop().await;
}

/// A backup is an admin's; LocalBackend has no replicated state to back up (a definite 503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_is_admin_only_and_refused_without_a_cluster() {
    let rig = Rig::start().await;
    for token in [VIEWER, SUPERVISOR] {
        let (status, body) = rig.call("get", "/v1/cluster/backup", Some(token), None).await;
        assert_eq!(status, 403, "{body}");
    }
    let (status, body) = rig.call("get", "/v1/cluster/backup", Some(ADMIN), None).await;
    assert_eq!(status, 503, "{body}");
    rig.stop().await;
}
