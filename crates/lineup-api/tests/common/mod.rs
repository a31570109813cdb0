//! A real server on 127.0.0.1:0 over a LocalBackend, with one token per role, and clients
//! (reqwest for REST, tokio-tungstenite for WebSockets). No sleeps: waits are bounded loops
//! on a condition.
#![allow(dead_code)]

use futures_util::StreamExt;
use lineup_api::local::LocalBackend;
use lineup_api::{ApiConfig, ApiToken, Role};
use lineup_core::{
    CallId, CommandBody, Enqueue, GateConfig, GateId, OperatorConfig, OperatorId, QueueConfig, QueueId,
    RoutingConfigSet, SiteId,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

pub const ADMIN: &str = "admin-token-0123456789";
pub const SUPERVISOR: &str = "supervisor-token-0123456789";
pub const VIEWER: &str = "viewer-token-0123456789";
pub const FRONTEND: &str = "frontend-token-0123456789";
pub const T0_MS: u64 = 1_700_000_000_000;
/// Bound on any wait for the server to reflect something.
pub const WAIT_MAX_MS: u64 = 10_000;

/// For tests that poll REST in a loop until the live feed agrees: request rates that such a
/// loop cannot reach (the rate limits have tests of their own).
pub fn polling_limits() -> lineup_api::ApiLimits {
    lineup_api::ApiLimits {
        request_burst_per_address: 1_000_000,
        request_burst_per_token: 1_000_000,
        ..lineup_api::ApiLimits::default()
    }
}

/// A server that pushes queue summaries every 50 ms, with limits a polling loop cannot reach
/// and the base config applied.
pub async fn polling_rig() -> Rig {
    let rig = Rig::start_with(lineup_api::ApiConfig {
        summary_interval_ms: 50,
        limits: polling_limits(),
        ..Default::default()
    })
    .await;
    apply_base_config(&rig);
    rig
}

pub fn tokens() -> Vec<ApiToken> {
    [
        ("admin", ADMIN, Role::Admin),
        ("sup", SUPERVISOR, Role::Supervisor),
        ("wall", VIEWER, Role::Viewer),
        ("web", FRONTEND, Role::Frontend),
    ]
    .into_iter()
    .map(|(name, token, role)| ApiToken::plain(name, token, role))
    .collect()
}

pub struct Rig {
    pub addr: SocketAddr,
    pub backend: Arc<LocalBackend>,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), lineup_api::ApiError>>>,
}

impl Rig {
    pub async fn start() -> Rig {
        Self::start_with(ApiConfig::default()).await
    }

    /// Serves `config` with [`tokens`] added to its own.
    pub async fn start_with(mut config: ApiConfig) -> Rig {
        config.tokens.splice(0..0, tokens());
        let backend = Arc::new(LocalBackend::new(SiteId(1), T0_MS));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(lineup_api::serve(listener, Arc::clone(&backend), config, async move {
            let _ = stopped.await;
        }));
        Rig { addr, backend, http: reqwest::Client::new(), stop: Some(stop), server: Some(server) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends a request; returns the status and the JSON body (Null when not JSON).
    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let mut req = self.http.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.header("content-type", "application/json").body(body.to_string());
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Declares a body of `declared_bytes` and sends none of it, then reads the answer: the
    /// server must refuse on the header alone. (Writing a whole oversized body races the
    /// server's early answer and close: the client can fail with a broken pipe first.)
    pub async fn declared_oversized(&self, method: &str, path: &str, token: &str, declared_bytes: usize) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let head = format!(
            "{} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
             Content-Length: {declared_bytes}\r\nConnection: close\r\n\r\n",
            method.to_uppercase(),
            self.addr
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut answer = vec![0u8; 4096];
        let read = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut answer))
            .await
            .expect("an answer without the body")
            .unwrap();
        let text = String::from_utf8_lossy(&answer[..read]);
        text.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0)
    }

    pub async fn get(&self, path: &str, token: &str) -> Value {
        let (status, body) = self.call("get", path, Some(token), None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call("post", path, Some(token), Some(&body.to_string())).await
    }

    /// Mints a widget token for `call` with the frontend token; returns `{token, url}`.
    pub async fn mint(&self, call: &str) -> Value {
        let (status, body) = self.call("post", &format!("/v1/calls/{call}/widget-token"), Some(FRONTEND), None).await;
        assert_eq!(status, 200, "mint for {call}: {body}");
        body
    }

    /// Mints a widget token for `call` and returns the token alone.
    pub async fn widget_token(&self, call: &str) -> String {
        self.mint(call).await["token"].as_str().expect("a token").to_string()
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let finished = tokio::time::timeout(Duration::from_millis(WAIT_MAX_MS), server).await;
            assert!(matches!(finished, Ok(Ok(Ok(())))), "server did not stop cleanly: {finished:?}");
        }
    }

    pub fn enqueue(&self, call: &str, queue: &str, gate: Option<&str>) {
        let result = self.backend.apply(CommandBody::Enqueue(Enqueue {
            call: CallId::new(call),
            queue: QueueId::new(queue),
            gate: gate.map(GateId::new),
            priority: None,
            caller_number: "5551234".into(),
            caller_name: String::new(),
            site: SiteId(1),
            channel: Some(format!("chan-{call}")),
            skills: BTreeMap::new(),
            callback_number: None,
        }));
        assert!(result.is_ok(), "enqueue {call}: {result:?}");
    }

    pub fn login(&self, operator: &str) {
        let result = self.backend.apply(CommandBody::OperatorLogin {
            operator: OperatorId::new(operator),
            site: SiteId(1),
            channel: Some(format!("op-{operator}")),
        });
        assert!(result.is_ok(), "login {operator}: {result:?}");
    }

    pub async fn ws(&self, path_and_query: &str, origin: Option<&str>) -> Result<Ws, u16> {
        let mut request = format!("ws://{}{}", self.addr, path_and_query).into_client_request().unwrap();
        if let Some(origin) = origin {
            request.headers_mut().insert("origin", origin.parse().unwrap());
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => Ok(Ws { socket }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
            Err(e) => panic!("websocket connect: {e}"),
        }
    }
}

/// A sales queue (gates web and phone) and a support queue; operators alice, bob, carol in
/// sales (carol also in support), all persistent, none logged in.
pub fn base_config() -> RoutingConfigSet {
    let queue = |id: &str, weight: u8| QueueConfig {
        id: QueueId::new(id),
        name: id.to_uppercase(),
        weight,
        ..QueueConfig::default()
    };
    let gate =
        |id: &str, queue: &str| GateConfig { id: GateId::new(id), queue: QueueId::new(queue), ..GateConfig::default() };
    let operator = |id: &str, queues: &[&str]| OperatorConfig {
        id: OperatorId::new(id),
        name: id.to_string(),
        site: SiteId(1),
        pin_hash: format!("$argon2id$fake-{id}"),
        memberships: queues.iter().map(|q| (QueueId::new(*q), 0)).collect(),
        ..OperatorConfig::default()
    };
    RoutingConfigSet {
        schedules: vec![],
        queues: vec![queue("sales", 1), queue("support", 0)],
        gates: vec![gate("phone", "sales"), gate("web", "sales")],
        operators: vec![
            operator("alice", &["sales"]),
            operator("bob", &["sales"]),
            operator("carol", &["sales", "support"]),
        ],
    }
}

pub fn apply_base_config(rig: &Rig) {
    let result = rig.backend.apply(CommandBody::ApplyConfig(Box::new(base_config())));
    assert!(result.is_ok(), "{result:?}");
}

pub struct Ws {
    pub socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

impl Ws {
    /// The next JSON text message, within the wait bound.
    pub async fn next_json(&mut self) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MAX_MS);
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .expect("no message within the wait bound")
                .expect("socket closed")
                .expect("socket error");
            match message {
                Message::Text(text) => return serde_json::from_str(&text).unwrap(),
                Message::Close(_) => panic!("socket closed by the server"),
                _ => continue,
            }
        }
    }
}

/// What a `/v1/live` client holds, built from a snapshot and deltas.
#[derive(Default)]
pub struct LiveModel {
    pub operators: BTreeMap<String, Value>,
    pub calls: BTreeMap<String, Value>,
    pub queues: Vec<Value>,
    pub snapshots: u32,
    pub last_seq: u64,
    in_snapshot: bool,
}

impl LiveModel {
    pub fn apply(&mut self, m: &Value) {
        let kind = m["type"].as_str().unwrap();
        match kind {
            "snapshot" => {
                self.operators.clear();
                self.calls.clear();
                self.queues = m["queues"].as_array().unwrap().clone();
                self.snapshots += 1;
                self.in_snapshot = true;
            }
            "snapshot_operators" => {
                for o in m["operators"].as_array().unwrap() {
                    self.operators.insert(o["operator"].as_str().unwrap().to_string(), o.clone());
                }
            }
            "snapshot_calls" => {
                for c in m["calls"].as_array().unwrap() {
                    self.calls.insert(c["call"].as_str().unwrap().to_string(), c.clone());
                }
            }
            "snapshot_end" => self.in_snapshot = false,
            "operator" => {
                self.operators.insert(m["operator"]["operator"].as_str().unwrap().to_string(), m["operator"].clone());
            }
            "call" => {
                self.calls.insert(m["call"]["call"].as_str().unwrap().to_string(), m["call"].clone());
            }
            "call_ended" => {
                self.calls.remove(m["record"]["call"].as_str().unwrap());
            }
            "queues" => self.queues = m["queues"].as_array().unwrap().clone(),
            _ => {}
        }
        if !kind.starts_with("snapshot") {
            let seq = m["seq"].as_u64().unwrap();
            assert!(seq > self.last_seq, "seq went from {} to {seq}", self.last_seq);
        }
        if let Some(seq) = m["seq"].as_u64() {
            self.last_seq = self.last_seq.max(seq);
        }
    }

    pub fn complete(&self) -> bool {
        self.snapshots > 0 && !self.in_snapshot
    }

    /// (operator, state) pairs.
    pub fn operator_states(&self) -> BTreeMap<String, String> {
        self.operators.iter().map(|(k, v)| (k.clone(), v["state"].as_str().unwrap().to_string())).collect()
    }

    /// (call, status, queue, priority) for every call held.
    pub fn call_states(&self) -> BTreeMap<String, (String, String, u64)> {
        self.calls
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    (
                        v["status"].as_str().unwrap().into(),
                        v["queue"].as_str().unwrap().into(),
                        v["priority"].as_u64().unwrap(),
                    ),
                )
            })
            .collect()
    }
}

pub fn rest_operator_states(body: &Value) -> BTreeMap<String, String> {
    body["operators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["operator"].as_str().unwrap().to_string(), o["state"].as_str().unwrap().to_string()))
        .collect()
}

pub fn rest_call_states(body: &Value) -> BTreeMap<String, (String, String, u64)> {
    body["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["call"].as_str().unwrap().to_string(),
                (
                    v["status"].as_str().unwrap().into(),
                    v["queue"].as_str().unwrap().into(),
                    v["priority"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

/// A body that parses for every write route, so a 403 is about the role, not the body.
pub fn body_for(path: &str) -> Option<String> {
    let body = match path {
        "/v1/config" => serde_json::to_value(base_config()).unwrap(),
        "/v1/config/callback-policy" => json!({ "allowed_patterns": ["_1NXXNXXXXXX"] }),
        "/v1/config/queues/{id}" => json!({ "id": "sales" }),
        "/v1/config/gates/{id}" => json!({ "id": "web", "queue": "sales" }),
        "/v1/config/operators/{id}" => json!({ "id": "alice" }),
        "/v1/config/schedules/{id}" => json!({ "id": "sales", "time_zone": "UTC", "weekly": [] }),
        "/v1/operators/{id}/state" => json!({ "state": "available" }),
        "/v1/operators/{id}/pull" => json!({}),
        "/v1/calls/{id}/reassign" => json!({ "queue": "support" }),
        "/v1/calls/{id}/priority" => json!({ "priority": 0 }),
        "/v1/calls/{id}/callback" => json!({ "number": "5550000" }),
        "/v1/cluster/members" => json!({ "site": 4, "address": "10.0.4.10:7401" }),
        "/v1/agent/sign-in" => json!({ "operator": "nobody", "pin": "1234" }),
        "/v1/agent/state" => json!({ "state": "available" }),
        "/v1/agent/pull" => json!({}),
        _ => return None,
    };
    Some(body.to_string())
}

/// Waits on a `/v1/live` socket for a frame of `kind`, within the wait bound.
pub async fn next_of_kind(ws: &mut Ws, kind: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MAX_MS);
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next_json()).await.unwrap_or_else(|_| panic!("no {kind} frame"));
        if m["type"] == kind {
            return m;
        }
    }
}

/// One answered call through sales, with the hub watching: alice logs in, c1 joins at T0,
/// is answered `wait_ms` later, talks `talk_ms`, and the caller hangs up. Returns once the
/// hub has published the call's end (so it has observed it).
pub async fn scripted_call(rig: &Rig, wait_ms: u64, talk_ms: u64) {
    use lineup_api::ApiBackend;
    use lineup_core::HungUpBy;
    // Connected (the server subscribed its hub before accepting), and the hub is seen to
    // publish before the call starts.
    let mut ws = rig.ws("/v1/live?token=viewer-token-0123456789", None).await.unwrap();
    next_of_kind(&mut ws, "snapshot_end").await;
    // A config applied just before may still be news to the hub: its next summary tick then
    // sends every client a fresh snapshot, and that snapshot covers (so skips) the deltas
    // below. A summary frame is published only once the hub has taken the config in.
    next_of_kind(&mut ws, "queues").await;
    rig.login("alice");
    next_of_kind(&mut ws, "operator").await;
    rig.enqueue("c1", "sales", None);
    let call = CallId::new("c1");
    let offer = rig.backend.read(|r| r.current_offer(&call)).expect("c1 offered to alice");
    assert!(rig.backend.tick(T0_MS + wait_ms).is_ok());
    let connected = rig.backend.apply(CommandBody::Connected {
        call: call.clone(),
        operator: OperatorId::new("alice"),
        fence: offer.fence,
    });
    assert!(connected.is_ok(), "{connected:?}");
    assert!(rig.backend.tick(T0_MS + wait_ms + talk_ms).is_ok());
    let completed = rig.backend.apply(CommandBody::Completed { call, fence: offer.fence, by: HungUpBy::Caller });
    assert!(completed.is_ok(), "{completed:?}");
    next_of_kind(&mut ws, "call_ended").await;
}

/// The `/metrics` text, read with the viewer's token.
pub async fn scrape(rig: &Rig) -> String {
    let res = rig.http.get(rig.url("/metrics")).bearer_auth(VIEWER).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    res.text().await.unwrap()
}
