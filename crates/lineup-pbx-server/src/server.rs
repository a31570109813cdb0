//! The stand-in's ARI face: the model on a real clock, served over HTTP + WebSocket.
//!
//! `LiveWorld` owns a `PbxWorld` behind a mutex and a driver task that fires the model's
//! timers on time; `serve_box` answers ARI for one box on one listener (same paths, query
//! parameters, JSON shapes and Basic auth as Asterisk). This layer holds no telephony logic:
//! every request goes to `rest::handle_rest`, every event comes from the model.

use crate::error::ServerError;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use lineup_ari::basic_auth::parse_authorization;
use lineup_ari::{AriEvent, EventKind};
use lineup_pbx_sim::rest::{handle_rest, RestParams, RestReply};
use lineup_pbx_sim::world::{BoxIndex, PbxWorld};
use lineup_pbx_sim::SimError;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Events buffered per WebSocket. A consumer that falls this far behind is disconnected, as
/// Asterisk drops a WebSocket it cannot write to.
pub const SUBSCRIBER_BUFFER_CAPACITY_EVENTS: usize = 4_096;
/// Largest request body accepted.
pub const REQUEST_BODY_MAX_BYTES: usize = 64 * 1024;
/// Most WebSockets per world.
pub const SUBSCRIBERS_MAX_COUNT: usize = 256;
/// Longest idle wait of the driver task when no timer is pending (it also wakes on requests).
const DRIVER_IDLE_WAIT_MS: u64 = 1_000;

/// The ARI user the stand-in accepts (ari.conf's `[user]` section).
#[derive(Clone)]
pub struct SimCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SimCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCredentials").field("username", &self.username).finish_non_exhaustive()
    }
}

struct Subscriber {
    id: u64,
    box_index: BoxIndex,
    applications: Vec<String>,
    sender: mpsc::Sender<AriEvent>,
}

struct LiveState {
    world: PbxWorld,
    subscribers: Vec<Subscriber>,
    next_subscriber_id: u64,
    rest_faults: Vec<RestFault>,
    duplicated_event_boxes: Vec<BoxIndex>,
    reordered_event_boxes: Vec<BoxIndex>,
    observer: Option<WorldObserver>,
}

/// Called with the world after every change (a request, a scripted action, fired timers),
/// under the world's lock: it must be quick and must not call back into the `LiveWorld`.
pub type WorldObserver = Box<dyn FnMut(&PbxWorld) + Send>;

/// Most REST faults armed at once.
pub const REST_FAULTS_MAX_COUNT: usize = 64;

/// What an injected REST fault does to a matching request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestFaultKind {
    /// Answer 500 without executing the request.
    RefuseWithServerError,
    /// Execute the request, then hold the answer back this long: a client that times out
    /// first cannot know the outcome and must read state back.
    AnswerLate { delay_ms: u64 },
    /// Hold the request this long, then execute it against the world as it is by then (a
    /// slow Asterisk): what the request names may have changed or gone meanwhile.
    ExecuteLate { delay_ms: u64 },
}

/// A fault for the next `count` requests to `box_index` whose method matches (any, if
/// `None`) and whose path (relative to `/ari`) contains `path_contains`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestFault {
    pub box_index: BoxIndex,
    pub method: Option<String>,
    pub path_contains: String,
    pub kind: RestFaultKind,
    pub count: u32,
}

/// A `PbxWorld` on the wall clock: virtual millisecond 0 is when `start` was called.
pub struct LiveWorld {
    state: Mutex<LiveState>,
    wake: Notify,
    started: Instant,
    requests: broadcast::Sender<RequestRecord>,
}

/// Request records kept for slow observers; older ones are skipped (`Lagged`).
pub const REQUEST_NOTIFICATIONS_CAPACITY_RECORDS: usize = 1_024;

/// One ARI request the HTTP face answered, for tests and benchmarks ("when did the stand-in
/// receive the bridge request", "how many bridges were created for this call").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    pub box_index: BoxIndex,
    /// When the request arrived (after authentication and parsing).
    pub received_at: Instant,
    pub method: String,
    /// Relative to `/ari`, e.g. `/bridges/c1/addChannel`.
    pub path: String,
    /// The query parameters, decoded, in order (`api_key` left out: no credentials here).
    pub query: Vec<(String, String)>,
    pub status: u16,
}

impl std::fmt::Debug for LiveWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveWorld").finish_non_exhaustive()
    }
}

impl LiveWorld {
    /// Takes the world and starts the task that fires its timers. The task ends when the last
    /// `Arc<LiveWorld>` is dropped.
    pub fn start(world: PbxWorld) -> Arc<LiveWorld> {
        let live = Arc::new(LiveWorld {
            state: Mutex::new(LiveState {
                world,
                subscribers: Vec::new(),
                next_subscriber_id: 0,
                rest_faults: Vec::new(),
                duplicated_event_boxes: Vec::new(),
                reordered_event_boxes: Vec::new(),
                observer: None,
            }),
            wake: Notify::new(),
            requests: broadcast::channel(REQUEST_NOTIFICATIONS_CAPACITY_RECORDS).0,
            started: Instant::now(),
        });
        tokio::spawn(drive_timers(Arc::downgrade(&live)));
        live
    }

    fn lock(&self) -> MutexGuard<'_, LiveState> {
        // A panic while holding the lock leaves a model mid-change; the stand-in is a test
        // tool, so keep serving what is there rather than cascading the panic.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Runs `action` on the world at the current time, then delivers the events it caused.
    /// Use it to script callers and operators (`place_call`, `register_phone`, ...).
    pub fn with_world<R>(&self, action: impl FnOnce(&mut PbxWorld) -> R) -> R {
        let now_ms = self.now_ms();
        let result = {
            let mut state = self.lock();
            state.world.advance_to(now_ms);
            // What the clock's advance produced goes out first, so the action's events are a
            // batch of their own (the reorder fault swaps pairs within a batch: a timer firing
            // here must not shift the action's pairs).
            deliver(&mut state);
            let result = action(&mut state.world);
            deliver(&mut state);
            result
        };
        self.wake.notify_one();
        result
    }

    /// Registers `applications` for one consumer; a newer consumer takes an application over
    /// (the older one gets `ApplicationReplaced`), as with Asterisk's WebSockets.
    pub(crate) fn subscribe(
        &self,
        box_index: BoxIndex,
        applications: Vec<String>,
    ) -> Result<(u64, mpsc::Receiver<AriEvent>), StatusCode> {
        let mut state = self.lock();
        if state.subscribers.len() >= SUBSCRIBERS_MAX_COUNT {
            return Err(StatusCode::SERVICE_UNAVAILABLE);
        }
        // Only one WebSocket owns an application; a newer one takes it over.
        let timestamp = lineup_pbx_sim::time::format_timestamp(self.now_ms());
        for subscriber in state.subscribers.iter_mut().filter(|s| s.box_index == box_index) {
            for application in &applications {
                if let Some(position) = subscriber.applications.iter().position(|owned| owned == application) {
                    subscriber.applications.remove(position);
                    let replaced = AriEvent {
                        application: application.clone(),
                        timestamp: timestamp.clone(),
                        asterisk_id: None,
                        kind: EventKind::ApplicationReplaced {},
                    };
                    let _ = subscriber.sender.try_send(replaced);
                }
            }
        }
        for application in &applications {
            state.world.register_application(box_index, application);
        }
        let (sender, receiver) = mpsc::channel(SUBSCRIBER_BUFFER_CAPACITY_EVENTS);
        state.next_subscriber_id += 1;
        let id = state.next_subscriber_id;
        state.subscribers.push(Subscriber { id, box_index, applications, sender });
        Ok((id, receiver))
    }

    /// Sets the observer that sees the world after every change (the chaos stand-in's ground
    /// truth: bridge memberships and channel teardowns at every step). Replaces any earlier one.
    pub fn set_observer(&self, observer: WorldObserver) {
        self.lock().observer = Some(observer);
    }

    /// Every request the HTTP faces of this world answer from now on.
    pub fn watch_requests(&self) -> broadcast::Receiver<RequestRecord> {
        self.requests.subscribe()
    }

    /// Arms a REST fault (see `RestFault`). Returns false if `REST_FAULTS_MAX_COUNT` are armed.
    pub fn inject_rest_fault(&self, fault: RestFault) -> bool {
        let mut state = self.lock();
        if state.rest_faults.len() >= REST_FAULTS_MAX_COUNT || fault.count == 0 {
            return false;
        }
        state.rest_faults.push(fault);
        true
    }

    /// The fault for this request, if one is armed; uses up one of its count.
    fn take_rest_fault(&self, box_index: BoxIndex, method: &str, path: &str) -> Option<RestFaultKind> {
        let mut state = self.lock();
        let position = state.rest_faults.iter().position(|fault| {
            fault.box_index == box_index
                && fault.method.as_deref().is_none_or(|wanted| wanted == method)
                && path.contains(&fault.path_contains)
        })?;
        let fault = &mut state.rest_faults[position];
        let kind = fault.kind.clone();
        fault.count -= 1;
        if fault.count == 0 {
            state.rest_faults.remove(position);
        }
        Some(kind)
    }

    /// Closes every events WebSocket of `box_index` (a socket drop mid-call); clients
    /// reconnect and must reconcile. Returns how many were closed.
    pub fn drop_event_connections(&self, box_index: BoxIndex) -> usize {
        let mut state = self.lock();
        let (dropped, kept): (Vec<Subscriber>, Vec<Subscriber>) =
            state.subscribers.drain(..).partition(|subscriber| subscriber.box_index == box_index);
        state.subscribers = kept;
        for subscriber in &dropped {
            for application in &subscriber.applications {
                state.world.unregister_application(box_index, application);
            }
        }
        dropped.len()
    }

    /// Sends every event of `box_index` twice while on (at-least-once delivery faults).
    pub fn set_duplicate_events(&self, box_index: BoxIndex, on: bool) {
        let mut state = self.lock();
        state.duplicated_event_boxes.retain(|index| *index != box_index);
        if on {
            state.duplicated_event_boxes.push(box_index);
        }
    }

    /// While on, swaps each adjacent pair of `box_index`'s events within every batch the model
    /// produces (a hangup's events, a bridge join's events): out-of-order delivery faults.
    pub fn set_reorder_events(&self, box_index: BoxIndex, on: bool) {
        let mut state = self.lock();
        state.reordered_event_boxes.retain(|index| *index != box_index);
        if on {
            state.reordered_event_boxes.push(box_index);
        }
    }

    pub(crate) fn unsubscribe(&self, id: u64) {
        let mut state = self.lock();
        let Some(position) = state.subscribers.iter().position(|subscriber| subscriber.id == id) else { return };
        let subscriber = state.subscribers.remove(position);
        for application in subscriber.applications {
            state.world.unregister_application(subscriber.box_index, &application);
        }
    }
}

/// Sends each pending event to the WebSocket owning its application; drops subscribers whose
/// buffer is full (their socket closes) and unregisters their applications.
fn deliver(state: &mut LiveState) {
    let mut outputs = state.world.drain_outputs();
    for box_index in &state.reordered_event_boxes {
        let positions: Vec<usize> =
            outputs.iter().enumerate().filter(|(_, output)| output.box_index == *box_index).map(|(i, _)| i).collect();
        for pair in positions.chunks_exact(2) {
            outputs.swap(pair[0], pair[1]);
        }
    }
    let mut overflowed: Vec<u64> = Vec::new();
    for output in outputs {
        let copies = if state.duplicated_event_boxes.contains(&output.box_index) { 2 } else { 1 };
        for subscriber in state.subscribers.iter().cycle().take(state.subscribers.len() * copies) {
            let owns =
                subscriber.box_index == output.box_index && subscriber.applications.contains(&output.event.application);
            if owns && subscriber.sender.try_send(output.event.clone()).is_err() && !overflowed.contains(&subscriber.id)
            {
                overflowed.push(subscriber.id);
            }
        }
    }
    for id in overflowed {
        if let Some(position) = state.subscribers.iter().position(|subscriber| subscriber.id == id) {
            let subscriber = state.subscribers.remove(position);
            tracing::warn!(subscriber = id, "stand-in dropped a WebSocket that fell behind");
            for application in subscriber.applications {
                state.world.unregister_application(subscriber.box_index, &application);
            }
        }
    }
    if let Some(observer) = state.observer.as_mut() {
        observer(&state.world);
    }
}

async fn drive_timers(live: Weak<LiveWorld>) {
    loop {
        // A strong reference lives for one wait at most (bounded by DRIVER_IDLE_WAIT_MS), so
        // the task ends soon after the last user drops the world.
        let Some(world) = live.upgrade() else { return };
        let now_ms = world.now_ms();
        let next_due_ms = {
            let mut state = world.lock();
            state.world.advance_to(now_ms);
            deliver(&mut state);
            state.world.next_timer_due_ms()
        };
        let idle_deadline = Instant::now() + Duration::from_millis(DRIVER_IDLE_WAIT_MS);
        let deadline = match next_due_ms {
            Some(due_ms) => (world.started + Duration::from_millis(due_ms)).min(idle_deadline),
            None => idle_deadline,
        };
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {}
            _ = world.wake.notified() => {}
        }
    }
}

#[derive(Clone)]
struct BoxState {
    live: Arc<LiveWorld>,
    box_index: BoxIndex,
    credentials: SimCredentials,
}

/// One box's ARI server. Dropping it stops serving.
#[derive(Debug)]
pub struct BoxServer {
    pub address: SocketAddr,
    task: JoinHandle<()>,
}

impl BoxServer {
    /// `http://127.0.0.1:port/ari`, for `lineup_ari::AriConfig::base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/ari", self.address)
    }
}

impl Drop for BoxServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves ARI for `box_index` on `listener` until the returned server is dropped.
pub async fn serve_box(
    live: Arc<LiveWorld>,
    box_index: BoxIndex,
    listener: tokio::net::TcpListener,
    credentials: SimCredentials,
) -> Result<BoxServer, ServerError> {
    if box_index.0 >= live.lock().world.box_count() {
        return Err(SimError::InvalidSetup(format!("no box {}", box_index.0)).into());
    }
    let address = listener.local_addr().map_err(|error| ServerError::Serve(error.to_string()))?;
    let state = BoxState { live, box_index, credentials };
    let router = Router::new()
        .route("/ari/events", get(events_socket))
        .fallback(rest_request)
        .layer(DefaultBodyLimit::max(REQUEST_BODY_MAX_BYTES))
        .with_state(state);
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::warn!(%error, "stand-in server stopped");
        }
    });
    Ok(BoxServer { address, task })
}

fn reply_response(reply: RestReply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match reply.body {
        Some(body) => (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response(),
        None => status.into_response(),
    }
}

fn error_response(status: StatusCode, message: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], serde_json::json!({ "message": message }).to_string())
        .into_response()
}

/// Basic auth first, then `api_key=user:pass`, as Asterisk checks them.
fn authorized(credentials: &SimCredentials, headers: &HeaderMap, query: &[(String, String)]) -> bool {
    let presented = match headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok()) {
        Some(value) => parse_authorization(value),
        None => query
            .iter()
            .find(|(key, _)| key == "api_key")
            .and_then(|(_, value)| value.split_once(':'))
            .filter(|(_, password)| !password.is_empty())
            .map(|(user, password)| (user.to_string(), password.to_string())),
    };
    presented.is_some_and(|(user, password)| user == credentials.username && password == credentials.password)
}

async fn rest_request(
    State(state): State<BoxState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    if !authorized(&state.credentials, &headers, &query) {
        return error_response(StatusCode::UNAUTHORIZED, "Authentication required");
    }
    let Some(path) = uri.path().strip_prefix("/ari") else {
        return error_response(StatusCode::NOT_FOUND, "Resource not found");
    };
    let pairs = query.iter().filter(|(key, _)| key != "api_key").map(|(key, value)| (key.as_str(), value.as_str()));
    let mut params = RestParams::from_pairs(pairs);
    if !body.is_empty() {
        let parsed: Result<serde_json::Value, _> = serde_json::from_slice(&body);
        match parsed
            .map_err(|error| error.to_string())
            .and_then(|value| params.merge_body(&value).map_err(|e| e.to_string()))
        {
            Ok(()) => {}
            Err(message) => return error_response(StatusCode::BAD_REQUEST, &message),
        }
    }
    let method = method.as_str().to_string();
    let path = path.to_string();
    let received_at = Instant::now();
    let fault = state.live.take_rest_fault(state.box_index, &method, &path);
    if let Some(RestFaultKind::ExecuteLate { delay_ms }) = fault {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    let reply = if fault == Some(RestFaultKind::RefuseWithServerError) {
        RestReply::error(&lineup_ari::AriError::ServerError { message: "Injected fault".into() })
    } else {
        state.live.with_world(|world| handle_rest(world, state.box_index, &method, &path, &params))
    };
    // Nobody watching is the normal case: the send error is ignored.
    let query = query.into_iter().filter(|(key, _)| key != "api_key").collect();
    let record = RequestRecord { box_index: state.box_index, received_at, method, path, query, status: reply.status };
    let _ = state.live.requests.send(record);
    if let Some(RestFaultKind::AnswerLate { delay_ms }) = fault {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    reply_response(reply)
}

async fn events_socket(
    State(state): State<BoxState>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
    request: axum::extract::Request,
) -> Response {
    if !authorized(&state.credentials, &headers, &query) {
        return error_response(StatusCode::UNAUTHORIZED, "Authentication required");
    }
    let applications: Vec<String> = query
        .iter()
        .filter(|(key, _)| key == "app")
        .flat_map(|(_, value)| value.split(','))
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect();
    if applications.is_empty() || applications.iter().any(|name| lineup_ari::ids::validate_id("app", name).is_err()) {
        return error_response(StatusCode::BAD_REQUEST, "Missing or invalid parameter app");
    }
    let (mut parts, _body) = request.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let (id, receiver) = match state.live.subscribe(state.box_index, applications) {
        Ok(subscription) => subscription,
        Err(status) => return error_response(status, "Too many WebSockets"),
    };
    let live = Arc::clone(&state.live);
    upgrade.on_upgrade(move |socket| pump_socket(socket, receiver, live, id))
}

async fn pump_socket(mut socket: WebSocket, mut receiver: mpsc::Receiver<AriEvent>, live: Arc<LiveWorld>, id: u64) {
    loop {
        tokio::select! {
            outgoing = receiver.recv() => {
                let Some(event) = outgoing else { break };
                let text = event.to_value().to_string();
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => {
                match incoming {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                    Some(Ok(_)) => {}
                }
            }
        }
    }
    live.unsubscribe(id);
}
