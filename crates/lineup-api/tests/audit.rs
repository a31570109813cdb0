//! The audit trail over real HTTP: admin and supervisor writes are recorded with their
//! token's name, `GET /v1/audit` lists them newest first (supervisors and admins only), and
//! a refused write or a caller's own widget write leaves no row.

mod common;

use common::*;
use lineup_api::{ApiConfig, ApiError, ApiToken, Role};
use serde_json::{json, Value};

fn summary(rows: &Value) -> Vec<(String, String, String, String, String)> {
    let text = |row: &Value, key: &str| row[key].as_str().unwrap_or("?").to_string();
    rows.as_array()
        .expect("an array of rows")
        .iter()
        .map(|r| (text(r, "actor"), text(r, "role"), text(r, "action"), text(r, "target"), text(r, "outcome")))
        .collect()
}

fn row(actor: &str, role: &str, action: &str, target: &str) -> (String, String, String, String, String) {
    (actor.into(), role.into(), action.into(), target.into(), "done".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_and_supervisor_writes_are_listed_with_their_token_names() {
    let rig = Rig::start().await;
    apply_base_config(&rig);
    rig.enqueue("c1", "sales", None);
    let queue = json!({ "id": "extra", "name": "Extra" }).to_string();
    let (status, body) = rig.call("put", "/v1/config/queues/extra", Some(ADMIN), Some(&queue)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = rig.post("/v1/calls/c1/priority", SUPERVISOR, json!({ "priority": 0 })).await;
    assert_eq!(status, 200, "{body}");

    let rows = rig.get("/v1/audit", SUPERVISOR).await;
    let expected =
        vec![row("sup", "supervisor", "change_priority", "call:c1"), row("admin", "admin", "put_queue", "queue:extra")];
    assert_eq!(summary(&rows), expected, "{rows}");
    assert_eq!(rows[0]["at"].as_u64(), Some(rig.backend.now_ms()));

    assert_eq!(summary(&rig.get("/v1/audit?actor=admin", ADMIN).await), expected[1..]);
    assert_eq!(summary(&rig.get("/v1/audit?limit=1", ADMIN).await), expected[..1]);
    let now = rig.backend.now_ms();
    assert!(summary(&rig.get(&format!("/v1/audit?from={}", now + 1), ADMIN).await).is_empty());
    assert_eq!(summary(&rig.get(&format!("/v1/audit?from={now}&to={now}"), ADMIN).await), expected);
    let (status, body) = rig.call("get", "/v1/audit?from=2&to=1", Some(ADMIN), None).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("from")), "{body}");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_are_refused_and_refused_or_caller_writes_leave_no_row() {
    let rig = Rig::start().await;
    apply_base_config(&rig);
    rig.enqueue("c1", "sales", None);
    let (status, body) = rig.call("get", "/v1/audit", Some(VIEWER), None).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")), "{body}");

    // Refused before proposing (unknown call), and refused by a state check (unknown queue).
    let (status, body) = rig.post("/v1/calls/nobody/priority", SUPERVISOR, json!({ "priority": 0 })).await;
    assert!((400..500).contains(&status), "{status} {body}");
    let (status, body) = rig.call("delete", "/v1/config/queues/nope", Some(ADMIN), None).await;
    assert_eq!(status, 404, "{body}");
    // The caller's own request through its widget token is not a supervisor's write.
    let widget = rig.widget_token("c1").await;
    let (status, body) = rig.post("/v1/calls/c1/callback", &widget, json!({ "number": "5551234" })).await;
    assert_eq!(status, 200, "{body}");
    assert!(summary(&rig.get("/v1/audit", ADMIN).await).is_empty());
    rig.stop().await;
}

#[test]
fn token_names_that_cannot_name_an_actor_are_refused_at_start() {
    let long = "x".repeat(lineup_core::AUDIT_ACTOR_NAME_MAX_BYTES + 1);
    for name in ["", "ops\nroot", long.as_str()] {
        let config = ApiConfig {
            tokens: vec![ApiToken::plain(name, "a-long-enough-token-0123", Role::Admin)],
            ..ApiConfig::default()
        };
        match config.validate() {
            Err(ApiError::Config { field, .. }) => assert_eq!(field, "tokens[0].name"),
            other => panic!("{name:?}: {other:?}"),
        }
    }
}

/// A supervisor asking a callback for a caller is a supervisor's write: audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_acting_for_a_caller_is_audited() {
    let rig = Rig::start().await;
    apply_base_config(&rig);
    rig.enqueue("c1", "sales", None);
    let (status, body) = rig.post("/v1/calls/c1/callback", SUPERVISOR, json!({ "number": "5551234" })).await;
    assert_eq!(status, 200, "{body}");
    let rows = rig.get("/v1/audit", ADMIN).await;
    let expected = ("sup".into(), "supervisor".into(), "request_callback".into(), "call:c1".into());
    let got: Vec<_> = summary(&rows).into_iter().map(|(a, r, act, t, _)| (a, r, act, t)).collect();
    assert_eq!(got, [expected], "{rows}");
    rig.stop().await;
}
