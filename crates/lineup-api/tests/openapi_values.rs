//! What the handlers really answer matches the OpenAPI document's schema for that answer:
//! real answers from a running API over a configured routing state, and report rows and
//! audit entries built directly (the in-process backend keeps no history). The schemas
//! are derived from the same types, so this catches a hand-written schema or a derive
//! attribute that says something the serializer does not do.

mod common;

use common::*;
use serde_json::{json, Value};

/// Checks `value` against `schema`, resolving `$ref`s in `document`. Covers the keywords the
/// document uses (types, nullability, properties, required, additionalProperties, items,
/// enum, allOf/oneOf/anyOf, minimum/maximum, min/maxItems, maxLength); `pattern` is not
/// checked (no regular expression engine in this crate's tree).
fn check(document: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        let target = &document["components"]["schemas"][name];
        if target.is_null() {
            return Err(format!("{at}: dangling reference {reference}"));
        }
        return check(document, target, value, at);
    }
    check_type(schema, value, at)?;
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            return Err(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        check(document, part, value, at)?;
    }
    check_alternatives(document, schema, value, at)?;
    check_bounds(schema, value, at)?;
    if let Some(object) = value.as_object() {
        check_object(document, schema, object, at)?;
    }
    if let Some(items) = value.as_array() {
        for (i, item) in items.iter().enumerate() {
            if schema.get("items").is_some() {
                check(document, &schema["items"], item, &format!("{at}[{i}]"))?;
            }
        }
    }
    Ok(())
}

fn check_type(schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let types: Vec<&str> = match &schema["type"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => return Ok(()),
    };
    let fits = |kind: &str| match kind {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    };
    if types.iter().any(|kind| fits(kind)) {
        Ok(())
    } else {
        Err(format!("{at}: {value} is not of type {types:?}"))
    }
}

fn check_alternatives(document: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(options) = schema["oneOf"].as_array() {
        let passing = options.iter().filter(|option| check(document, option, value, at).is_ok()).count();
        if passing != 1 {
            return Err(format!("{at}: {value} matches {passing} of oneOf {options:?}"));
        }
    }
    if let Some(options) = schema["anyOf"].as_array() {
        if !options.iter().any(|option| check(document, option, value, at).is_ok()) {
            return Err(format!("{at}: {value} matches none of anyOf {options:?}"));
        }
    }
    Ok(())
}

fn check_bounds(schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let (Some(number), Some(minimum)) = (value.as_f64(), schema["minimum"].as_f64()) {
        if number < minimum {
            return Err(format!("{at}: {number} is below the minimum {minimum}"));
        }
    }
    if let (Some(number), Some(maximum)) = (value.as_f64(), schema["maximum"].as_f64()) {
        if number > maximum {
            return Err(format!("{at}: {number} is above the maximum {maximum}"));
        }
    }
    if let (Some(items), Some(max)) = (value.as_array(), schema["maxItems"].as_u64()) {
        if items.len() as u64 > max {
            return Err(format!("{at}: {} items, at most {max}", items.len()));
        }
    }
    if let (Some(items), Some(min)) = (value.as_array(), schema["minItems"].as_u64()) {
        if (items.len() as u64) < min {
            return Err(format!("{at}: {} items, at least {min}", items.len()));
        }
    }
    if let (Some(text), Some(max)) = (value.as_str(), schema["maxLength"].as_u64()) {
        if text.chars().count() as u64 > max {
            return Err(format!("{at}: {text:?} is longer than {max}"));
        }
    }
    Ok(())
}

fn check_object(
    document: &Value,
    schema: &Value,
    object: &serde_json::Map<String, Value>,
    at: &str,
) -> Result<(), String> {
    for name in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        if !object.contains_key(name) {
            return Err(format!("{at}: the required field {name} is missing"));
        }
    }
    let properties = schema["properties"].as_object();
    for (name, field) in object {
        let at = format!("{at}.{name}");
        match (properties.and_then(|p| p.get(name)), &schema["additionalProperties"]) {
            (Some(property), _) => check(document, property, field, &at)?,
            (None, Value::Bool(false)) if !declared_elsewhere(schema, name) => {
                return Err(format!("{at}: not a declared field"));
            }
            (None, extra) if extra.is_object() => check(document, extra, field, &at)?,
            _ => {}
        }
    }
    Ok(())
}

/// A field declared by one of an `allOf`'s parts (a flattened struct) is not "additional".
fn declared_elsewhere(schema: &Value, name: &str) -> bool {
    schema["allOf"].as_array().into_iter().flatten().any(|part| part["properties"].get(name).is_some())
}

/// The schema of `method path`'s answer with `status`.
fn answer_schema(document: &Value, method: &str, path: &str, status: &str) -> Value {
    let answer = &document["paths"][path][method]["responses"][status];
    assert!(answer.is_object(), "{method} {path} documents no {status} answer");
    answer["content"]["application/json"]["schema"].clone()
}

fn assert_fits(document: &Value, schema: &Value, value: &Value, what: &str) {
    if let Err(problem) = check(document, schema, value, "$") {
        panic!("{what}: {problem}\nvalue: {value}\nschema: {schema}");
    }
}

/// Each read answers a body that fits its documented schema, on a state with waiting
/// calls, a logged-in operator and a configured queue of every kind of setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_answers_fit_their_documented_schemas() {
    let rig = Rig::start().await;
    apply_base_config(&rig);
    rig.enqueue("c1", "sales", Some("web"));
    rig.enqueue("c2", "support", None);
    rig.login("alice");
    let document = lineup_api::openapi::document();
    let reads = [
        ("/healthz", "/healthz"),
        ("/readyz", "/readyz"),
        ("/v1/me", "/v1/me"),
        ("/v1/config", "/v1/config"),
        ("/v1/config/queues/sales", "/v1/config/queues/{id}"),
        ("/v1/config/gates/web", "/v1/config/gates/{id}"),
        ("/v1/config/operators/alice", "/v1/config/operators/{id}"),
        ("/v1/config/callback-policy", "/v1/config/callback-policy"),
        ("/v1/config/alarm-policy", "/v1/config/alarm-policy"),
        ("/v1/config/ingress", "/v1/config/ingress"),
        ("/v1/config/webhooks", "/v1/config/webhooks"),
        ("/v1/queues", "/v1/queues"),
        ("/v1/operators", "/v1/operators"),
        ("/v1/calls", "/v1/calls"),
        ("/v1/calls/c1", "/v1/calls/{id}"),
        ("/v1/calls/c1/position", "/v1/calls/{id}/position"),
        ("/v1/cluster", "/v1/cluster"),
    ];
    for (concrete, template) in reads {
        let (status, body) = rig.call("get", concrete, Some(ADMIN), None).await;
        assert!(status == 200 || (template == "/readyz" && status == 503), "GET {concrete}: {status} {body}");
        let schema = answer_schema(&document, "get", template, "200");
        assert_fits(&document, &schema, &body, concrete);
    }
    let (status, body) = rig.post("/v1/calls/c2/priority", SUPERVISOR, json!({ "priority": 1 })).await;
    assert_eq!(status, 200, "{body}");
    assert_fits(&document, &answer_schema(&document, "post", "/v1/calls/{id}/priority", "200"), &body, "priority");
    let (status, body) = rig.post("/v1/calls/c1/widget-token", SUPERVISOR, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_fits(&document, &answer_schema(&document, "post", "/v1/calls/{id}/widget-token", "200"), &body, "mint");
    rig.stop().await;
}

/// An agent panel's sign-in and panel (with a caller offered and a pull list) fit theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_panel_answers_fit_their_documented_schemas() {
    use argon2::password_hash::PasswordHasher;
    let rig = Rig::start().await;
    let mut config = base_config();
    let params = argon2::Params::new(8, 1, 1, None).unwrap();
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    config.operators[0].pin_hash = argon.hash_password(b"4711").unwrap().to_string();
    config.operators[0].memberships.insert(lineup_core::QueueId::new("back-office"), 0);
    let back_office = lineup_core::QueueConfig {
        id: lineup_core::QueueId::new("back-office"),
        pull_only: true,
        ..Default::default()
    };
    config.queues.push(back_office);
    assert!(rig.backend.apply(lineup_core::CommandBody::ApplyConfig(Box::new(config))).is_ok());
    rig.login("alice");
    rig.enqueue("b1", "back-office", None);
    rig.enqueue("c1", "sales", Some("web"));
    let document = lineup_api::openapi::document();
    let (status, signed) = rig
        .call("post", "/v1/agent/sign-in", None, Some(&json!({ "operator": "alice", "pin": "4711" }).to_string()))
        .await;
    assert_eq!(status, 200, "{signed}");
    assert_fits(&document, &answer_schema(&document, "post", "/v1/agent/sign-in", "200"), &signed, "sign-in");
    let panel = rig.get("/v1/agent/me", signed["token"].as_str().unwrap()).await;
    assert!(panel["call"].is_object() && panel["pullable"][0].is_object(), "{panel}");
    assert_fits(&document, &answer_schema(&document, "get", "/v1/agent/me", "200"), &panel, "panel");
    rig.stop().await;
}

/// Error answers (a field error, a refused config naming its object, an unknown object)
/// fit the documented `Error` schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_answers_fit_the_error_schema() {
    let rig = Rig::start().await;
    apply_base_config(&rig);
    let document = lineup_api::openapi::document();
    let error = json!({ "$ref": "#/components/schemas/Error" });
    let bad_priority = rig.post("/v1/calls/nope/priority", SUPERVISOR, json!({ "priority": "high" })).await;
    let unknown = rig.call("get", "/v1/config/queues/nope", Some(ADMIN), None).await;
    let mut config = base_config();
    config.gates[0].queue = lineup_core::QueueId::new("missing");
    let refused = rig.call("put", "/v1/config", Some(ADMIN), Some(&serde_json::to_string(&config).unwrap())).await;
    for (what, (status, body)) in [("bad body", bad_priority), ("unknown queue", unknown), ("refused config", refused)]
    {
        assert!((400..500).contains(&status), "{what}: {status} {body}");
        assert_fits(&document, &error, &body, what);
    }
    rig.stop().await;
}

/// Report rows and audit entries (answered from a history database) fit their schemas.
#[test]
fn report_rows_and_audit_entries_fit_their_schemas() {
    let document = lineup_api::openapi::document();
    let queue_row = lineup_api::reports::QueueReportRow {
        queue: "sales".into(),
        gate: Some("web".into()),
        interval_start: 1_796_112_000_000,
        offered: 10,
        answered: 8,
        answered_within_sl: 7,
        abandoned: 2,
        abandoned_before_sl: 1,
        abandoned_after_sl: 1,
        timed_out: 0,
        full: 0,
        closed: 0,
        other: 0,
        service_level_threshold_ms: 20_000,
        service_level: Some(7.0 / 9.0),
        asa_s: Some(12.5),
        aht_s: None,
        talk_s: 600.0,
        wrap_up_s: 40.0,
        longest_wait_s: 48.2,
        callbacks_promised: 1,
        callbacks_made: 1,
        callbacks_answered: 0,
    };
    let operator_row = lineup_api::reports::OperatorReportRow {
        operator: "alice".into(),
        interval_start: 1_796_112_000_000,
        calls_taken: 3,
        talk_s: 300.0,
        wrap_up_s: 30.0,
        break_s: 60.0,
        breaks: [("lunch".to_string(), 60.0)].into_iter().collect(),
        available_s: 1_200.0,
        logged_in_s: 3_600.0,
        logins: 1,
        occupancy: Some(0.1),
    };
    let audit = lineup_api::audit::AuditEntry {
        at: 1_796_112_000_000,
        actor: "ops".into(),
        role: "admin".into(),
        action: "apply_config".into(),
        target: String::new(),
        outcome: "done".into(),
    };
    let cases = [
        ("/v1/reports/queues", serde_json::to_value(vec![queue_row]).unwrap()),
        ("/v1/reports/operators", serde_json::to_value(vec![operator_row]).unwrap()),
        ("/v1/audit", serde_json::to_value(vec![audit]).unwrap()),
    ];
    for (path, value) in cases {
        assert_fits(&document, &answer_schema(&document, "get", path, "200"), &value, path);
    }
}

/// The check itself refuses what the derived schemas forbid, so the tests above can fail.
#[test]
fn the_check_refuses_values_outside_a_schema() {
    let document = lineup_api::openapi::document();
    let queue = json!({ "$ref": "#/components/schemas/QueueConfig" });
    let mut good = serde_json::to_value(&base_config().queues[0]).unwrap();
    assert_fits(&document, &queue, &good, "a real queue");
    good["misspelt_setting"] = json!(1);
    assert!(check(&document, &queue, &good, "$").is_err(), "an unknown field passed");
    let wrong_type = json!({ "id": "sales", "weight": "heavy" });
    assert!(check(&document, &queue, &wrong_type, "$").is_err(), "a string weight passed");
    let alarm = json!({ "$ref": "#/components/schemas/AlarmPolicy" });
    assert!(check(&document, &alarm, &json!({ "depth_clear_percent": 100 }), "$").is_err(), "100 % passed");
}
