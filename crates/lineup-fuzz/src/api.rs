//! What an API client sends: REST requests (route, token, query, body) and WebSocket
//! upgrade requests, into the real router (`lineup_api::router`) over a `LocalBackend`
//! holding a configured routing state with a waiting call and a logged-in operator.
//!
//! A live WebSocket's server reads nothing from a client's messages (any message shows the
//! client is there, a close ends it): what a client controls there is the upgrade request,
//! which passes the token and `Origin` checks before the upgrade.

use crate::input::ByteReader;
use crate::rigs::{check, configured_routing, EPOCH_MS, SITE};
use crate::runtime::block_on;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use lineup_api::local::LocalBackend;
use lineup_api::{ApiConfig, ApiToken, Role};
use lineup_core::{CallId, CommandBody, Enqueue, GateId, OperatorId, QueueId};
use std::sync::Arc;
use tower::ServiceExt;

/// Largest request body a target sends (above every route's limit, so limits are met).
const BODY_MAX_BYTES: usize = 2 * 1024 * 1024;
/// Longest path parameter or query string read from the input.
const PART_MAX_BYTES: usize = 120;

const TOKENS: [(&str, Role); 4] = [
    ("fuzz-admin-token-0123456789", Role::Admin),
    ("fuzz-supervisor-token-0123456789", Role::Supervisor),
    ("fuzz-viewer-token-0123456789", Role::Viewer),
    ("fuzz-frontend-token-0123456789", Role::Frontend),
];
const ALLOWED_ORIGIN: &str = "https://wallboard.example";

/// Every route the API serves, `{}` standing for its path parameter.
pub const API_ROUTES: [(&str, &str); 58] = [
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/v1/me"),
    ("GET", "/v1/config"),
    ("PUT", "/v1/config"),
    ("GET", "/v1/config/queues/{}"),
    ("PUT", "/v1/config/queues/{}"),
    ("DELETE", "/v1/config/queues/{}"),
    ("GET", "/v1/config/gates/{}"),
    ("PUT", "/v1/config/gates/{}"),
    ("DELETE", "/v1/config/gates/{}"),
    ("GET", "/v1/config/operators/{}"),
    ("PUT", "/v1/config/operators/{}"),
    ("DELETE", "/v1/config/operators/{}"),
    ("GET", "/v1/config/schedules/{}"),
    ("PUT", "/v1/config/schedules/{}"),
    ("GET", "/v1/config/callback-policy"),
    ("PUT", "/v1/config/callback-policy"),
    ("GET", "/v1/config/alarm-policy"),
    ("PUT", "/v1/config/alarm-policy"),
    ("GET", "/v1/config/webhooks"),
    ("PUT", "/v1/config/webhooks"),
    ("GET", "/v1/config/ingress"),
    ("PUT", "/v1/config/ingress"),
    ("GET", "/v1/ingress"),
    ("DELETE", "/v1/config/schedules/{}"),
    ("GET", "/v1/queues"),
    ("GET", "/v1/operators"),
    ("GET", "/v1/calls"),
    ("GET", "/v1/calls/{}"),
    ("GET", "/v1/cluster"),
    ("POST", "/v1/cluster/members"),
    ("DELETE", "/v1/cluster/members/{}"),
    ("POST", "/v1/cluster/members/{}/lost"),
    ("POST", "/v1/cluster/snapshot"),
    ("GET", "/v1/cluster/backup"),
    ("POST", "/v1/operators/{}/state"),
    ("POST", "/v1/operators/{}/logout"),
    ("POST", "/v1/operators/{}/pull"),
    ("POST", "/v1/calls/{}/reassign"),
    ("POST", "/v1/calls/{}/priority"),
    ("POST", "/v1/calls/{}/monitor"),
    ("GET", "/v1/calls/{}/position"),
    ("POST", "/v1/calls/{}/callback"),
    ("POST", "/v1/calls/{}/widget-token"),
    ("GET", "/v1/audit"),
    ("GET", "/v1/reports/queues"),
    ("GET", "/v1/reports/operators"),
    ("POST", "/v1/agent/sign-in"),
    ("POST", "/v1/agent/sign-out"),
    ("GET", "/v1/agent/me"),
    ("POST", "/v1/agent/state"),
    ("POST", "/v1/agent/pull"),
    ("POST", "/v1/agent/login"),
    ("POST", "/v1/agent/logout"),
    ("POST", "/v1/calls/{}/hangup"),
];

const IDS: [&str; 6] = ["sales", "web", "alice", "c1", "bob", "2"];

fn backend() -> Arc<LocalBackend> {
    let (routing, _) = configured_routing();
    let backend = Arc::new(LocalBackend::with_routing(SITE, routing, EPOCH_MS));
    let enqueue = Enqueue {
        call: CallId::new("c1"),
        queue: QueueId::new("sales"),
        gate: Some(GateId::new("web")),
        priority: None,
        caller_number: "5551234".into(),
        caller_name: "Alice".into(),
        site: SITE,
        channel: Some("1795325224.1".into()),
        skills: Default::default(),
        callback_number: None,
    };
    let setup = [
        CommandBody::Enqueue(enqueue),
        CommandBody::OperatorLogin { operator: OperatorId::new("bob"), site: SITE, channel: None },
    ];
    for body in setup {
        backend.apply(body).expect("the API rig's setup applies");
    }
    backend
}

fn config() -> ApiConfig {
    ApiConfig {
        tokens: TOKENS.iter().map(|(t, role)| ApiToken::plain(role.name(), *t, *role)).collect(),
        allowed_origins: vec![ALLOWED_ORIGIN.into()],
        ..ApiConfig::default()
    }
}

/// Sends one request to a fresh router and checks the state afterwards.
fn send(request: Request<Body>) {
    let backend = backend();
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let router = lineup_api::router(Arc::clone(&backend), config(), stopped).expect("the fuzz API config is valid");
    let status = block_on(async move {
        let response = router.oneshot(request).await.expect("the router answers every request");
        let status = response.status();
        axum::body::to_bytes(response.into_body(), BODY_MAX_BYTES).await.expect("an answer body reads");
        status
    });
    assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "a request made the API fail");
    lineup_api::ApiBackend::read(&*backend, |routing| check(routing, "an API request"));
}

fn path_part(input: &mut ByteReader<'_>) -> String {
    match input.u8() % 4 {
        0 => input.text(PART_MAX_BYTES),
        choice => IDS[(usize::from(choice) + usize::from(input.u8())) % IDS.len()].to_string(),
    }
}

fn token(input: &mut ByteReader<'_>) -> Option<String> {
    match input.u8() % 6 {
        choice @ 0..=3 => Some(TOKENS[usize::from(choice)].0.to_string()),
        4 => None,
        _ => Some(input.text(PART_MAX_BYTES)),
    }
}

/// Input: route, path parameter, token, query string, content type, then the body.
pub fn api_rest(data: &[u8]) {
    let mut input = ByteReader::new(data);
    let (method, template) = input.pick(&API_ROUTES);
    let mut uri = template.replace("{}", &path_part(&mut input));
    let token = token(&mut input);
    if input.bool() {
        uri.push('?');
        uri.push_str(&input.text(PART_MAX_BYTES));
    }
    let content_type =
        input.pick(&[Some("application/json"), None, Some("text/plain"), Some("application/json; charset=utf-8")]);
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    // A URI or header the HTTP layer would not accept never reaches the router.
    let Ok(request) = request.body(Body::from(input.rest().to_vec())) else { return };
    send(request);
}

/// Input: which feed, call id, `?token=`, Origin, upgrade headers present or not.
pub fn api_websocket(data: &[u8]) {
    let mut input = ByteReader::new(data);
    let mut uri =
        if input.bool() { "/v1/live".to_string() } else { format!("/v1/calls/{}/live", path_part(&mut input)) };
    match input.u8() % 3 {
        0 => uri.push_str(&format!("?token={}", token(&mut input).unwrap_or_default())),
        1 => uri.push_str(&format!("?{}", input.text(PART_MAX_BYTES))),
        _ => {}
    }
    let origin = match input.u8() % 4 {
        0 => Some(ALLOWED_ORIGIN.to_string()),
        1 => None,
        2 => Some("https://evil.example".to_string()),
        _ => Some(input.text(PART_MAX_BYTES)),
    };
    let mut request = Request::builder().method("GET").uri(uri);
    if input.bool() {
        if let Some(token) = token(&mut input) {
            request = request.header("authorization", format!("Bearer {token}"));
        }
    }
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    if input.bool() {
        request = request
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    }
    let Ok(request) = request.body(Body::empty()) else { return };
    send(request);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The target reaches every REST route the router serves (the WebSockets have their own).
    #[test]
    fn every_rest_route_is_in_the_targets_list() {
        for (method, path) in lineup_api::api_routes() {
            let path = path.replace("{id}", "{}").replace("{site}", "{}");
            if path.ends_with("/live") {
                continue;
            }
            let listed = API_ROUTES.iter().any(|(m, p)| m.eq_ignore_ascii_case(method) && *p == path);
            assert!(listed, "{method} {path} is not fuzzed");
        }
    }
}
