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
