//! The OpenAPI document lists exactly the routes the router serves.

use std::collections::BTreeSet;

#[test]
fn every_route_is_documented_and_every_documented_route_exists() {
    let routes: BTreeSet<(String, String)> =
        lineup_api::api_routes().into_iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    let document = lineup_api::openapi::document();
    assert_eq!(document["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            assert!(operation["summary"].is_string() && operation["responses"].is_object(), "{method} {path}");
            documented.insert((method.clone(), path.clone()));
        }
    }
    let undocumented: Vec<_> = routes.difference(&documented).collect();
    let phantom: Vec<_> = documented.difference(&routes).collect();
    assert!(undocumented.is_empty(), "served but not documented: {undocumented:?}");
    assert!(phantom.is_empty(), "documented but not served: {phantom:?}");
    assert_eq!(routes.len(), lineup_api::api_routes().len(), "a route registered twice");
}

#[test]
fn every_schema_reference_resolves() {
    let document = lineup_api::openapi::document();
    let text = document.to_string();
    let schemas = document["components"]["schemas"].as_object().unwrap();
    for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "dangling schema reference {name}");
    }
}

/// Every `{name}` in a path is declared as a path parameter of each of its operations (a
/// validator refuses the document otherwise, and generated clients cannot fill it in).
#[test]
fn every_path_template_parameter_is_declared() {
    let document = lineup_api::openapi::document();
    for (path, item) in document["paths"].as_object().unwrap() {
        let names: Vec<&str> = path.split('{').skip(1).filter_map(|rest| rest.split('}').next()).collect();
        for (method, operation) in item.as_object().unwrap() {
            let declared: BTreeSet<&str> = operation["parameters"]
                .as_array()
                .map(|list| list.iter().filter(|p| p["in"] == "path").filter_map(|p| p["name"].as_str()).collect())
                .unwrap_or_default();
            for name in &names {
                assert!(declared.contains(name), "{method} {path} does not declare its path parameter {name}");
            }
        }
    }
}

/// The document reads as an OpenAPI 3.1 object in utoipa's own model (a wrong shape for a
/// known field, such as a response without a description, is refused).
#[test]
fn the_document_reads_back_as_an_openapi_object() {
    let document = lineup_api::openapi::document();
    let model: Result<utoipa::openapi::OpenApi, _> = serde_json::from_value(document.clone());
    let model = model.unwrap_or_else(|e| panic!("not an OpenAPI object: {e}"));
    assert_eq!(model.paths.paths.len(), document["paths"].as_object().unwrap().len());
}

/// Limits written as literals in derive attributes are the core's constants.
#[test]
fn declared_limits_are_the_cores_own() {
    let document = lineup_api::openapi::document();
    let schemas = &document["components"]["schemas"];
    let alarm = &schemas["AlarmPolicy"]["properties"];
    for percent in ["depth_clear_percent", "longest_wait_clear_percent"] {
        assert_eq!(
            alarm[percent]["maximum"],
            u64::from(lineup_core::alarm_policy::ALARM_CLEAR_MAX_PERCENT),
            "{percent}"
        );
    }
    assert_eq!(alarm["hold_ms"]["maximum"], lineup_core::alarm_policy::ALARM_HOLD_MAX_MS);
    assert_eq!(
        schemas["IngressPolicy"]["properties"]["dids"]["maxItems"],
        lineup_core::ingress::INGRESS_DIDS_MAX_COUNT
    );
    assert_eq!(
        schemas["CallbackPolicy"]["properties"]["allowed_patterns"]["maxItems"],
        lineup_core::callback_policy::CALLBACK_POLICY_ENTRIES_MAX
    );
    let put_webhooks = &document["paths"]["/v1/config/webhooks"]["put"]["requestBody"]["content"]["application/json"];
    assert_eq!(put_webhooks["schema"]["maxItems"], lineup_core::WEBHOOKS_MAX_COUNT);
    let priority = &schemas["PriorityRequest"]["properties"]["priority"];
    assert_eq!((priority["minimum"].as_u64(), priority["maximum"].as_u64()), (Some(0), Some(u64::from(u8::MAX))));
    let endpoint = &schemas["MonitorRequest"]["properties"]["endpoint"];
    assert_eq!(endpoint["maxLength"].as_u64(), Some(lineup_core::monitor::MONITOR_ENDPOINT_MAX_BYTES as u64));
    let pin = &schemas["SignInRequest"]["properties"]["pin"];
    assert_eq!(
        (pin["minLength"].as_u64(), pin["maxLength"].as_u64()),
        (Some(1), Some(lineup_api::AGENT_PIN_MAX_CHARS as u64))
    );
}

/// Request bodies refuse unknown fields as their types do (`deny_unknown_fields`), so the
/// fuzzer's bodies with extra fields are expected refusals.
#[test]
fn request_bodies_refuse_unknown_fields() {
    let document = lineup_api::openapi::document();
    let schemas = &document["components"]["schemas"];
    for name in [
        "QueueConfig",
        "GateConfig",
        "OperatorConfig",
        "ScheduleConfig",
        "RoutingConfigSet",
        "StateRequest",
        "PullRequest",
        "ReassignRequest",
        "PriorityRequest",
        "CallbackRequest",
        "MemberRequest",
        "AlarmPolicy",
        "CallbackPolicy",
        "IngressPolicy",
        "WebhookConfig",
    ] {
        assert_eq!(schemas[name]["additionalProperties"], false, "{name}");
    }
}
