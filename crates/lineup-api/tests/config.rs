//! Routing config over REST: dry-run diffs, applies, refusals that name the field and
//! change nothing, bad and oversized bodies.

mod common;

use common::*;
use lineup_api::ApiBackend;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_config_dry_run_diffs_then_applies() {
    let rig = Rig::start().await;
    let body = serde_json::to_string(&base_config()).unwrap();
    let (status, answer) = rig.call("put", "/v1/config?dry_run=true", Some(ADMIN), Some(&body)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["dry_run"], true);
    let changes = answer["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 7, "{answer}");
    assert!(changes.iter().all(|c| c["action"] == "added"));
    assert_eq!(rig.get("/v1/config", ADMIN).await["queues"], json!([]), "a dry run changes nothing");

    let (status, answer) = rig.call("put", "/v1/config", Some(ADMIN), Some(&body)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["dry_run"], false);
    assert_eq!(rig.get("/v1/config", ADMIN).await, serde_json::to_value(base_config().normalized()).unwrap());

    // A change to one field is reported as that field.
    let mut changed = base_config();
    changed.queues[0].max_wait_ms = Some(60_000);
    let (status, answer) =
        rig.call("put", "/v1/config?dry_run=true", Some(ADMIN), Some(&serde_json::to_string(&changed).unwrap())).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer["changes"],
        json!([{ "action": "changed", "kind": "queue", "id": "sales", "fields": ["max_wait_ms"] }])
    );

    // A viewer's export (redacted PINs) applied back by an admin keeps every PIN.
    let export = rig.get("/v1/config", VIEWER).await;
    let (status, answer) = rig.call("put", "/v1/config?dry_run=true", Some(ADMIN), Some(&export.to_string())).await;
    assert_eq!((status, answer["changes"].clone()), (200, json!([])), "{answer}");
    let (status, _) = rig.call("put", "/v1/config", Some(ADMIN), Some(&export.to_string())).await;
    assert_eq!(status, 200);
    assert_eq!(rig.get("/v1/config/operators/alice", ADMIN).await["pin_hash"], "$argon2id$fake-alice");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_config_names_the_field_and_changes_nothing() {
    let rig = Rig::start().await;
    apply_base_config(&rig);
    let before = rig.get("/v1/config", ADMIN).await;

    let mut bad = base_config();
    bad.gates[1].queue = lineup_core::QueueId::new("nowhere");
    let (status, answer) =
        rig.call("put", "/v1/config", Some(ADMIN), Some(&serde_json::to_string(&bad).unwrap())).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(
        (answer["kind"].as_str(), answer["id"].as_str(), answer["field"].as_str()),
        (Some("gate"), Some("web"), Some("queue"))
    );

    // Per object: a dangling schedule reference, a path/body id mismatch, a bad id.
    let (status, answer) = rig
        .call(
            "put",
            "/v1/config/queues/sales",
            Some(ADMIN),
            Some(&json!({ "id": "sales", "schedule": "nights" }).to_string()),
        )
        .await;
    assert_eq!((status, answer["field"].as_str()), (422, Some("schedule")), "{answer}");
    let (status, answer) =
        rig.call("put", "/v1/config/queues/sales", Some(ADMIN), Some(&json!({ "id": "other" }).to_string())).await;
    assert_eq!((status, answer["field"].as_str()), (422, Some("id")), "{answer}");
    let (status, answer) =
        rig.call("put", "/v1/config/queues/a b", Some(ADMIN), Some(&json!({ "id": "a b" }).to_string())).await;
    assert_eq!((status, answer["field"].as_str()), (422, Some("id")), "{answer}");
    // Deleting a queue a gate still points at names the gate's field.
    let (status, answer) = rig.call("delete", "/v1/config/queues/support", Some(ADMIN), None).await;
    assert_eq!(
        (status, answer["kind"].as_str(), answer["field"].as_str()),
        (422, Some("operator"), Some("memberships")),
        "{answer}"
    );
    // A queue holding a call is refused by the core: 409.
    let (status, _) = rig.call("delete", "/v1/config/gates/phone", Some(ADMIN), None).await;
    assert_eq!(status, 200);
    rig.enqueue("c1", "sales", Some("web"));
    let no_sales = json!({ "queues": [{ "id": "support" }], "operators": [] });
    let (status, answer) = rig.call("put", "/v1/config", Some(ADMIN), Some(&no_sales.to_string())).await;
    assert_eq!(
        (status, answer["kind"].as_str(), answer["field"].as_str()),
        (422, Some("queue"), Some("id")),
        "c1 waits in sales: {answer}"
    );
    let (status, answer) = rig.call("delete", "/v1/config/queues/nothing", Some(ADMIN), None).await;
    assert_eq!(status, 404, "{answer}");

    let mut expected = before.clone();
    expected["gates"] = json!([before["gates"][1]]);
    assert_eq!(rig.get("/v1/config", ADMIN).await, expected, "only the accepted gate delete changed anything");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_object_put_get_delete() {
    let rig = Rig::start().await;
    apply_base_config(&rig);
    let (status, answer) = rig
        .call(
            "put",
            "/v1/config/queues/billing",
            Some(ADMIN),
            Some(&json!({ "id": "billing", "name": "Billing", "weight": 3 }).to_string()),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["changes"], json!([{ "action": "added", "kind": "queue", "id": "billing", "fields": [] }]));
    let q = rig.get("/v1/config/queues/billing", VIEWER).await;
    assert_eq!((q["name"].as_str(), q["weight"].as_u64()), (Some("Billing"), Some(3)));
    assert!(rig.get("/v1/queues", VIEWER).await["queues"].as_array().unwrap().iter().any(|q| q["queue"] == "billing"));
    let (status, _) = rig.call("delete", "/v1/config/queues/billing", Some(ADMIN), None).await;
    assert_eq!(status, 200);
    let (status, _) = rig.call("get", "/v1/config/queues/billing", Some(VIEWER), None).await;
    assert_eq!(status, 404);
    // An operator sent back with a redacted PIN keeps it.
    let mut alice = rig.get("/v1/config/operators/alice", VIEWER).await;
    alice["name"] = json!("Alice A.");
    let (status, answer) = rig.call("put", "/v1/config/operators/alice", Some(ADMIN), Some(&alice.to_string())).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["changes"][0]["fields"], json!(["name"]));
    let alice = rig.get("/v1/config/operators/alice", ADMIN).await;
    assert_eq!((alice["name"].as_str(), alice["pin_hash"].as_str()), (Some("Alice A."), Some("$argon2id$fake-alice")));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_400_or_422_and_oversized_413() {
    let rig = Rig::start().await;
    apply_base_config(&rig);
    let before = rig.get("/v1/config", ADMIN).await;
    let cases: [(&str, &str, &str, u16, Option<&str>); 7] = [
        ("put", "/v1/config", "{not json", 400, None),
        ("put", "/v1/config", "{\"queues\": [] } trailing", 400, None),
        ("put", "/v1/config", "{\"queues\": [{\"id\": \"sales\", \"max_wait\": 5}]}", 422, Some("queues[0].max_wait")),
        (
            "put",
            "/v1/config",
            "{\"queues\": [{\"id\": \"sales\", \"weight\": \"heavy\"}]}",
            422,
            Some("queues[0].weight"),
        ),
        ("put", "/v1/config/gates/web", "{\"id\": \"web\"}", 200, None),
        ("put", "/v1/config/schedules/s", "{\"id\": \"s\", \"weekly\": []}", 422, Some("time_zone")),
        ("put", "/v1/config/queues/sales", "\"a string\"", 400, None),
    ];
    for (method, path, body, expected, field) in cases {
        let (status, answer) = rig.call(method, path, Some(ADMIN), Some(body)).await;
        if expected == 200 {
            // A gate without its queue defaults to queue "queue": refused naming the field.
            assert_eq!((status, answer["field"].as_str()), (422, Some("queue")), "{path} {body}: {answer}");
            continue;
        }
        assert_eq!(status, expected, "{path} {body}: {answer}");
        assert!(answer["error"].is_string(), "{answer}");
        assert_eq!(answer["field"].as_str(), field, "{path} {body}: {answer}");
    }
    let (status, answer) = rig.post("/v1/calls/c1/priority", SUPERVISOR, json!({ "priority": 300 })).await;
    assert_eq!((status, answer["field"].as_str()), (422, Some("priority")), "{answer}");
    let (status, answer) = rig.post("/v1/operators/alice/state", SUPERVISOR, json!({ "state": "break" })).await;
    assert_eq!((status, answer["field"].as_str()), (422, Some("reason")), "{answer}");
    let (status, answer) = rig.post("/v1/operators/alice/state", SUPERVISOR, json!({ "state": "sleeping" })).await;
    assert_eq!((status, answer["field"].as_str()), (422, Some("state")), "{answer}");

    // Over the limits: a whole config over 1 MiB, an action body over 4 KiB — refused on
    // the declared length, before a byte of the body is read.
    let status = rig.declared_oversized("put", "/v1/config", ADMIN, lineup_api::CONFIG_BODY_MAX_BYTES + 1).await;
    assert_eq!(status, 413);
    let status = rig
        .declared_oversized("post", "/v1/operators/alice/state", SUPERVISOR, lineup_api::ACTION_BODY_MAX_BYTES + 1)
        .await;
    assert_eq!(status, 413);
    // A body just over the limit sent whole (small enough that the server reads it) is 413
    // with the error body too.
    let long_reason = json!({ "state": "break", "reason": "x".repeat(lineup_api::ACTION_BODY_MAX_BYTES) });
    let (status, answer) = rig.post("/v1/operators/alice/state", SUPERVISOR, long_reason).await;
    assert_eq!((status, answer["code"].as_str()), (413, Some("too_large")), "{answer}");
    assert_eq!(rig.get("/v1/config", ADMIN).await, before, "no bad body changed anything");
    let _: Value = rig.get("/healthz", ADMIN).await;
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callback_policy_is_read_replaced_by_an_admin_and_enforced() {
    let rig = Rig::start().await;
    apply_base_config(&rig);
    let policy = rig.get("/v1/config/callback-policy", VIEWER).await;
    assert!(policy["denied_numbers"].as_array().unwrap().contains(&json!("911")), "{policy}");
    // Emergency numbers are denied by default: 422, and the caller keeps waiting.
    rig.enqueue("c1", "sales", None);
    let (status, answer) = rig.post("/v1/calls/c1/callback", ADMIN, json!({ "number": "911" })).await;
    assert_eq!((status, answer["field"].clone()), (422, json!("number")), "{answer}");
    assert_eq!(rig.get("/v1/calls/c1/position", ADMIN).await["status"], "waiting");

    let national = json!({ "allowed_patterns": ["_33ZXXXXXXXX"] });
    let (status, _) = rig.call("put", "/v1/config/callback-policy", Some(VIEWER), Some(&national.to_string())).await;
    assert_eq!(status, 403);
    let (status, answer) =
        rig.call("put", "/v1/config/callback-policy", Some(ADMIN), Some(&national.to_string())).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(rig.get("/v1/config/callback-policy", VIEWER).await["allowed_patterns"], json!(["_33ZXXXXXXXX"]));
    let (status, _) = rig.post("/v1/calls/c1/callback", ADMIN, json!({ "number": "+15551234567" })).await;
    assert_eq!(status, 422, "outside the allow-list");
    let (status, answer) = rig.post("/v1/calls/c1/callback", ADMIN, json!({ "number": "+33142685300" })).await;
    assert_eq!(status, 200, "{answer}");

    // A malformed policy is refused, naming the field, and changes nothing.
    let bad = json!({ "allowed_patterns": ["33["] }).to_string();
    let (status, answer) = rig.call("put", "/v1/config/callback-policy", Some(ADMIN), Some(&bad)).await;
    assert_eq!((status, answer["field"].clone()), (422, json!("callback_policy.allowed_patterns")), "{answer}");
    assert_eq!(rig.get("/v1/config/callback-policy", VIEWER).await["allowed_patterns"], json!(["_33ZXXXXXXXX"]));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_put_by_an_admin_and_never_read_back_with_their_secret() {
    let rig = Rig::start().await;
    let secret = "a-long-shared-secret-0123";
    let hooks =
        json!([{ "id": "ops", "url": "https://ops.example/lineup", "secret": secret, "events": ["alarm_raised"] }]);
    let (status, _) = rig.call("put", "/v1/config/webhooks", Some(SUPERVISOR), Some(&hooks.to_string())).await;
    assert_eq!(status, 403);
    let (status, answer) = rig.call("put", "/v1/config/webhooks", Some(ADMIN), Some(&hooks.to_string())).await;
    assert_eq!(status, 200, "{answer}");
    assert!(!answer.to_string().contains(secret), "{answer}");
    let read = rig.get("/v1/config/webhooks", VIEWER).await;
    assert_eq!(read[0]["secret"], json!("(redacted)"), "{read}");
    assert_eq!((read[0]["id"].clone(), read[0]["enabled"].clone()), (json!("ops"), json!(true)));
    assert_eq!(rig.backend.read(|r| r.webhooks()[0].secret.clone()), secret, "kept in the state");

    // Put back as read (redacted), the secret stays; a new webhook needs its own.
    let (status, _) = rig.call("put", "/v1/config/webhooks", Some(ADMIN), Some(&read.to_string())).await;
    assert_eq!(status, 200);
    assert_eq!(rig.backend.read(|r| r.webhooks()[0].secret.clone()), secret);
    let renamed =
        json!([{ "id": "noc", "url": "https://ops.example/lineup", "secret": "(redacted)", "events": ["site_lost"] }]);
    let (status, answer) = rig.call("put", "/v1/config/webhooks", Some(ADMIN), Some(&renamed.to_string())).await;
    assert_eq!((status, answer["field"].clone()), (422, json!("webhooks[id=noc].secret")), "{answer}");
    assert_eq!(rig.backend.read(|r| r.webhooks().len()), 1, "a refusal changes nothing");
    rig.stop().await;
}
