//! lineup-api: the node's REST + WebSocket API (axum).
//!
//! Entry point: [`serve`] a [`ApiBackend`] with an [`ApiConfig`] on a bound listener.
//! The backend is the seam to the node (the `lineup` binary implements it over a cluster
//! node; [`local::LocalBackend`] over one in-process `Routing`).
//!
//! Code map:
//! - [`backend`]: the `ApiBackend` trait, health and cluster status shapes.
//! - [`local`]: `LocalBackend` (tests, benchmark, dashboard work).
//! - [`config`]: `ApiConfig`, tokens and roles, the `Origin` check.
//! - [`secret`]: tokens from the OS random source, SHA-256 digests, constant-time equality.
//! - `auth`: `Caller<Need>` and per-call `CallAccess<Need>` extractors (refused before the
//!   body is read; the failed authentication throttle and the per-token rate).
//! - `widget_tokens`: per-call widget tokens, bounded, keyed by digest, swept as calls end.
//! - `agent`: the agent panel's routes (sign-in by operator id and PIN, the operator's own
//!   panel, state, pull, logout, live feed); `agent_tokens`: the panels' tokens, bounded,
//!   by digest, expiring; [`agent_view`]: what a panel shows.
//! - `server`: the accept loop (connection cap, TLS handshake, header and idle timeouts,
//!   client address).
//! - [`tls`]: `ApiTls` (rustls with ring, from PEM files), the handshake under its timeout,
//!   and the client config that trusts a given CA file.
//! - [`limits`]: the named limits and `ApiLimits`; [`rate_limit`]: token buckets and the
//!   failure throttle driven by `now_ms`; `client_limits`: both on the server's clock, the
//!   per-address middleware, and the WebSocket slots.
//! - `rest`: config, live state, supervisor and widget handlers; `JsonBody` with limits.
//! - `callback_policy`: `GET`/`PUT /v1/config/callback-policy`.
//! - [`audit`]: admin and supervisor writes wrapped with their token's name; `GET /v1/audit`.
//! - [`reports`]: `GET /v1/reports/queues` and `/v1/reports/operators` (interval reports
//!   from the backend's history, JSON or CSV); [`report_csv`]: the CSV form.
//! - `live`: the hub (effects → numbered frames, serialized once) and the WebSockets;
//!   `trend`: the last hour of each queue's depth and abandon rate, for the plots; `today`:
//!   today's queue and operator figures from the history database, for the wallboard.
//! - `health`: `/healthz`, `/readyz`.
//! - `metrics`: `/metrics` (prometheus-client); `call_metrics`: the wait and handle histograms.
//! - [`openapi`]: the OpenAPI 3.1 document, a table checked against the router whose
//!   schemas are derived from the handlers' types.
//! - [`assets`]: pages served at `/` and `/widget` from files embedded in the binary.
//! - [`views`]: the rows REST answers and live frames share.
//!
//! Invariants (as absences): no handler writes state except through
//! [`ApiBackend::submit`]; no write is attempted before the caller's role is checked and
//! the body parsed and validated; no token is logged or printed by `Debug`; no channel is
//! unbounded; no live frame is serialized per client; no client goes unbounded (rate,
//! wrong tokens, connections, WebSockets, header, body and idle time).

mod agent;
mod agent_tokens;
pub mod agent_view;
mod alarm_policy;
pub mod assets;
pub mod audit;
mod auth;
pub mod backend;
mod backup;
mod call_metrics;
mod callback_policy;
mod client_limits;
pub mod config;
mod error;
mod health;
pub mod ingress;
pub mod limits;
mod live;
pub mod local;
mod metrics;
mod monitor;
pub mod openapi;
mod openapi_schemas;
pub mod rate_limit;
pub mod report_csv;
pub mod reports;
mod rest;
pub mod secret;
mod server;
pub mod tls;
mod today;
mod trend;
pub mod views;
mod webhooks;
mod widget_tokens;

pub use agent::{AGENT_PIN_CHECKS_MAX, AGENT_PIN_MAX_CHARS, AGENT_TOKENS_MAX, AGENT_TOKEN_LIFETIME_MS};
pub use backend::{
    ApiBackend, AppliedEffect, BackendError, BackendErrorKind, ClusterStatus, EdgeHealth, Health, IslandHealth,
    IslandPhaseView, MemberStatus, RaftHealth, RaftRole, SiteState, WebhookHealth,
};
pub use call_metrics::{HANDLE_BUCKETS_SECONDS, WAIT_BUCKETS_SECONDS};
pub use config::{ApiConfig, ApiToken, Role, TokenSecret};
pub use error::ApiError;
pub use health::{readiness, Readiness, READY_APPLY_LAG_MAX_ENTRIES, READY_LEADER_CONTACT_MAX_MS};
pub use limits::ApiLimits;
pub use live::{LiveCounters, CLUSTER_REFRESH_INTERVAL_MS, SNAPSHOT_ROWS_PER_MESSAGE};
pub use rest::{ACTION_BODY_MAX_BYTES, CONFIG_BODY_MAX_BYTES, OBJECT_BODY_MAX_BYTES};
pub use tls::ApiTls;
pub use widget_tokens::WIDGET_TOKENS_MAX;

use axum::handler::Handler;
use axum::Router;
use lineup_core::{GateConfig, OperatorConfig, QueueConfig, ScheduleConfig};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Shared by every handler.
pub(crate) struct AppState<B> {
    pub(crate) backend: Arc<B>,
    pub(crate) config: ApiConfig,
    pub(crate) hub: Arc<live::LiveHub>,
    /// Per-call widget tokens minted by this process.
    pub(crate) widget_tokens: Arc<widget_tokens::WidgetTokens>,
    /// Agent panel tokens minted by this process.
    pub(crate) agent_tokens: agent_tokens::AgentTokens,
    /// PIN checks running at once for agent sign-ins (`agent::AGENT_PIN_CHECKS_MAX`).
    pub(crate) pin_checks: Arc<tokio::sync::Semaphore>,
    /// Flips to true on shutdown: WebSocket tasks close so the server can drain.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Request rates and failed authentications per client.
    pub(crate) limits: client_limits::ClientLimits,
    /// Open WebSockets, in all and per token.
    pub(crate) websockets: Arc<client_limits::WebSocketSlots>,
}

type Shared<B> = Arc<AppState<B>>;

/// Builds the router and records every (method, path) it registers, so the OpenAPI test
/// compares the document against what is really served.
pub(crate) struct Routes<B: ApiBackend> {
    router: Router<Shared<B>>,
    listed: Vec<(&'static str, &'static str)>,
}

macro_rules! route_method {
    ($name:ident, $method:literal) => {
        fn $name<H: Handler<T, Shared<B>>, T: 'static>(mut self, path: &'static str, handler: H) -> Self {
            self.listed.push(($method, path));
            self.router = self.router.route(path, axum::routing::$name(handler));
            self
        }
    };
}

impl<B: ApiBackend> Routes<B> {
    route_method!(get, "get");
    route_method!(put, "put");
    route_method!(post, "post");
    route_method!(delete, "delete");

    fn config_object<T: rest::ConfigObject>(self, path: &'static str) -> Self {
        self.get(path, rest::get_object::<B, T>)
            .put(path, rest::put_object::<B, T>)
            .delete(path, rest::delete_object::<B, T>)
    }

    fn new() -> Self {
        let routes = Routes { router: Router::new(), listed: Vec::new() };
        routes
            .get("/healthz", health::healthz)
            .get("/readyz", health::readyz::<B>)
            .get("/metrics", metrics::metrics::<B>)
            .get("/v1/openapi.json", openapi::serve_document)
            .get("/v1/me", rest::get_me::<B>)
            .get("/v1/config", rest::get_config::<B>)
            .put("/v1/config", rest::put_config::<B>)
            .get("/v1/config/callback-policy", callback_policy::get_callback_policy::<B>)
            .put("/v1/config/callback-policy", callback_policy::put_callback_policy::<B>)
            .get("/v1/config/alarm-policy", alarm_policy::get_alarm_policy::<B>)
            .put("/v1/config/alarm-policy", alarm_policy::put_alarm_policy::<B>)
            .get("/v1/config/ingress", ingress::get_ingress_policy::<B>)
            .put("/v1/config/ingress", ingress::put_ingress_policy::<B>)
            .get("/v1/ingress", ingress::get_ingress::<B>)
            .get("/v1/config/webhooks", webhooks::get_webhooks::<B>)
            .put("/v1/config/webhooks", webhooks::put_webhooks::<B>)
            .config_object::<QueueConfig>("/v1/config/queues/{id}")
            .config_object::<GateConfig>("/v1/config/gates/{id}")
            .config_object::<OperatorConfig>("/v1/config/operators/{id}")
            .config_object::<ScheduleConfig>("/v1/config/schedules/{id}")
            .get("/v1/queues", rest::get_queues::<B>)
            .get("/v1/operators", rest::get_operators::<B>)
            .get("/v1/calls", rest::get_calls::<B>)
            .get("/v1/calls/{id}", rest::get_call::<B>)
            .get("/v1/audit", audit::get_audit::<B>)
            .get("/v1/reports/queues", reports::get_queue_report::<B>)
            .get("/v1/reports/operators", reports::get_operator_report::<B>)
            .get("/v1/cluster", rest::get_cluster::<B>)
            .post("/v1/cluster/members", rest::add_member::<B>)
            .delete("/v1/cluster/members/{site}", rest::remove_member::<B>)
            .post("/v1/cluster/members/{site}/lost", rest::declare_lost::<B>)
            .post("/v1/cluster/snapshot", rest::trigger_snapshot::<B>)
            .get("/v1/cluster/backup", backup::get_backup::<B>)
            .post("/v1/operators/{id}/state", rest::set_operator_state::<B>)
            .post("/v1/operators/{id}/logout", rest::logout_operator::<B>)
            .post("/v1/operators/{id}/pull", rest::pull::<B>)
            .post("/v1/calls/{id}/reassign", rest::reassign::<B>)
            .post("/v1/calls/{id}/priority", rest::change_priority::<B>)
            .post("/v1/calls/{id}/monitor", monitor::monitor_call::<B>)
            .post("/v1/calls/{id}/hangup", rest::hang_up_call::<B>)
            .post("/v1/calls/{id}/widget-token", rest::mint_widget_token::<B>)
            .get("/v1/calls/{id}/position", rest::get_position::<B>)
            .post("/v1/calls/{id}/callback", rest::request_callback::<B>)
            .get("/v1/calls/{id}/live", live::call_live::<B>)
            .get("/v1/live", live::live::<B>)
            .post("/v1/agent/sign-in", agent::sign_in::<B>)
            .post("/v1/agent/sign-out", agent::sign_out::<B>)
            .get("/v1/agent/me", agent::get_panel::<B>)
            .post("/v1/agent/state", agent::set_state::<B>)
            .post("/v1/agent/pull", agent::pull::<B>)
            .post("/v1/agent/login", agent::login::<B>)
            .post("/v1/agent/logout", agent::logout::<B>)
            .get("/v1/agent/live", agent::live::<B>)
    }
}

/// Every (method, path) the API serves (the dashboard's pages in [`assets`] excepted).
pub fn api_routes() -> Vec<(&'static str, &'static str)> {
    Routes::<local::LocalBackend>::new().listed
}

/// Serves the API (and the pages in [`assets`]) on `listener` until `shutdown` resolves;
/// then open WebSockets are closed and in-flight requests finish. With
/// [`ApiConfig::tls`] set, every connection is HTTPS (`wss` for WebSockets).
///
/// ```no_run
/// # async fn run() -> Result<(), lineup_api::ApiError> {
/// use lineup_api::{local::LocalBackend, ApiConfig, ApiToken, Role};
/// let backend = std::sync::Arc::new(LocalBackend::new(lineup_core::SiteId(1), 1_700_000_000_000));
/// let config = ApiConfig {
///     tokens: vec![ApiToken::plain("ops", "a-long-random-admin-token", Role::Admin)],
///     ..ApiConfig::default()
/// };
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// lineup_api::serve(listener, backend, config, std::future::pending()).await
/// # }
/// ```
pub async fn serve<B: ApiBackend>(
    listener: TcpListener,
    backend: Arc<B>,
    config: ApiConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ApiError> {
    config.validate()?;
    let (stop, stopped) = watch::channel(false);
    let hub = Arc::new(live::LiveHub::new(config.live_buffer_frames));
    let widget_tokens = Arc::new(widget_tokens::WidgetTokens::default());
    // Subscribed before the first connection is accepted, not when the task first runs: an
    // effect applied once a client has connected reaches the hub (its frames and metrics).
    let effects = backend.subscribe();
    let hub_task = tokio::spawn(live::run_hub(
        Arc::clone(&backend),
        effects,
        Arc::clone(&hub),
        Arc::clone(&widget_tokens),
        config.summary_interval_ms,
        stopped.clone(),
    ));
    let limits = config.limits.clone();
    let tls = config.tls.as_ref().map(tls::ApiTls::acceptor);
    let app = app(backend, config, hub, widget_tokens, stopped.clone());
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    server::serve_connections(listener, app, limits, tls, stopped).await;
    hub_task.abort();
    Ok(())
}

/// The API's routes over `backend`, to be called in process (`tower::ServiceExt::oneshot`),
/// as the fuzz targets do. No hub task runs: `/v1/live` sends snapshots but no deltas; use
/// [`serve`] for a node. `shutdown` flipping to true closes open WebSockets.
pub fn router<B: ApiBackend>(
    backend: Arc<B>,
    config: ApiConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<Router, ApiError> {
    config.validate()?;
    let hub = Arc::new(live::LiveHub::new(config.live_buffer_frames));
    let widget_tokens = Arc::new(widget_tokens::WidgetTokens::default());
    Ok(app(backend, config, hub, widget_tokens, shutdown))
}

/// The routes with their state and the per-address limits, as `serve` and `router` use them.
fn app<B: ApiBackend>(
    backend: Arc<B>,
    config: ApiConfig,
    hub: Arc<live::LiveHub>,
    widget_tokens: Arc<widget_tokens::WidgetTokens>,
    shutdown: watch::Receiver<bool>,
) -> Router {
    let limits = config.limits.clone();
    let state = Arc::new(AppState {
        limits: client_limits::ClientLimits::new(&limits, config.tokens.len()),
        websockets: Arc::new(client_limits::WebSocketSlots::new(&limits, config.tokens.len())),
        backend,
        config,
        hub,
        widget_tokens,
        agent_tokens: agent_tokens::AgentTokens::default(),
        pin_checks: Arc::new(tokio::sync::Semaphore::new(agent::AGENT_PIN_CHECKS_MAX)),
        shutdown,
    });
    let by_address = axum::middleware::from_fn_with_state(Arc::clone(&state), client_limits::limit_by_address::<B>);
    Routes::<B>::new().router.merge(assets::router()).layer(by_address).with_state(state)
}
