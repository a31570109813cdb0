//! The agent panel's routes (`/agent` is the page): an operator signs in with its id and PIN
//! and gets a token for itself alone, then reads its panel, changes its own state, takes
//! callers by pulling, logs out, and follows its panel live.
//!
//! The PIN is checked as the phone login checks it (argon2 against the routing config's
//! hash) and a wrong one counts towards the same replicated lockout (`PinRejected`): a
//! locked-out operator cannot sign in at any site, by phone or panel. Wrong PINs also count
//! against the client's address like wrong tokens. The operator's own writes are its own,
//! not a supervisor's: they are not wrapped for the audit trail (as a PIN login by phone).

use crate::agent_view::{agent_view, AgentView};
use crate::client_limits::client_address;
use crate::config::presented_token;
use crate::error::ApiError;
use crate::live::{configure, follow_view, to_text, websocket_slot};
use crate::rest::{submit, ActionDone, JsonBody, PullRequest, St, StateRequest, ACTION_BODY_MAX_BYTES};
use crate::{ApiBackend, AppState};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::response::Response;
use axum::Json;
use lineup_core::routing::PIN_LOCKOUT_WINDOW_MS;
use lineup_core::{CommandBody, OperatorId, Routing};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

pub use crate::agent_tokens::{AGENT_TOKENS_MAX, AGENT_TOKEN_LIFETIME_MS};

/// PIN checks (argon2, tens of ms of CPU each) running at once on this node; a sign-in over
/// it is told to retry, so a flood of sign-ins cannot take the node's cores.
pub const AGENT_PIN_CHECKS_MAX: usize = 2;
/// What a sign-in refused for [`AGENT_PIN_CHECKS_MAX`] is told to wait.
pub const AGENT_PIN_CHECK_RETRY_MS: u64 = 1_000;
/// Longest PIN accepted before any check (the phone login keys at most 16 digits; a longer
/// text is refused without spending an argon2 check on it).
pub const AGENT_PIN_MAX_CHARS: usize = 32;

/// The 403's name for a configured (not an agent) token on an agent route.
const CONFIGURED_TOKEN_ROLE: &str = "configured token";
/// What a token that is not an agent's may not do (the 403's words).
const PANEL_ACTION: &str = "use an operator's own panel";

/// An operator's own agent token. `WEBSOCKET`: the token may come as `?token=` (browsers
/// cannot set headers on an upgrade) and the `Origin` is checked.
pub struct AgentAccess<const WEBSOCKET: bool> {
    pub operator: OperatorId,
    token: String,
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

impl<B: ApiBackend, const WEBSOCKET: bool> FromRequestParts<Arc<AppState<B>>> for AgentAccess<WEBSOCKET> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState<B>>) -> Result<Self, ApiError> {
        let query =
            if WEBSOCKET { Query::<TokenQuery>::try_from_uri(&parts.uri).ok().and_then(|q| q.0.token) } else { None };
        let token = presented_token(&parts.headers, query.as_deref()).ok_or(ApiError::Unauthorized)?.to_string();
        let address = client_address(&parts.extensions);
        throttle_check(state, address)?;
        let Some(operator) = state.agent_tokens.operator_of(&token, Instant::now()) else {
            if state.config.holder_of(&token).is_some() {
                return Err(ApiError::Forbidden { role: CONFIGURED_TOKEN_ROLE, action: PANEL_ACTION });
            }
            if state.widget_tokens.call_of(&token).is_some() {
                return Err(ApiError::Forbidden { role: crate::auth::WIDGET_TOKEN_ROLE, action: PANEL_ACTION });
            }
            if let Some(address) = address {
                state.limits.auth_failed(address);
            }
            return Err(ApiError::Unauthorized);
        };
        if !state.backend.read(|r| r.operator_config(&operator).is_some()) {
            // The operator was removed from the config: its panel is signed out.
            state.agent_tokens.forget(&token);
            return Err(ApiError::Unauthorized);
        }
        if WEBSOCKET && !crate::config::origin_allowed(&state.config, &parts.headers) {
            let origin = parts.headers.get(axum::http::header::ORIGIN).and_then(|o| o.to_str().ok());
            return Err(ApiError::OriginRefused { origin: origin.unwrap_or("(not text)").to_string() });
        }
        Ok(AgentAccess { operator, token })
    }
}

fn throttle_check<B: ApiBackend>(state: &AppState<B>, address: Option<IpAddr>) -> Result<(), ApiError> {
    let Some(address) = address else { return Ok(()) };
    state.limits.auth_throttled(address).map_err(|refused| ApiError::RateLimited {
        who: "this client address after failed authentication",
        retry_after_ms: refused.retry_after_ms,
    })
}

/// The client's address as the accept loop recorded it (none in process).
pub struct ClientAddress(Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(client_address(&parts.extensions)))
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInRequest {
    pub operator: String,
    #[schema(min_length = 1, max_length = 32)]
    pub pin: String,
}

/// A signed-in panel: the token for the operator's own routes.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SignedIn {
    pub token: String,
    pub operator: OperatorId,
    pub name: String,
    pub lifetime_ms: u64,
}

/// `POST /v1/agent/sign-in` (no token): an operator's id and PIN for a panel token.
pub async fn sign_in<B: ApiBackend>(
    State(s): St<B>,
    ClientAddress(address): ClientAddress,
    JsonBody(req): JsonBody<SignInRequest, ACTION_BODY_MAX_BYTES>,
) -> Result<Json<SignedIn>, ApiError> {
    throttle_check(&s, address)?;
    if req.pin.is_empty() || req.pin.chars().count() > AGENT_PIN_MAX_CHARS {
        return Err(ApiError::Invalid {
            field: "pin".into(),
            reason: format!("1 to {AGENT_PIN_MAX_CHARS} characters"),
        });
    }
    let operator = OperatorId::new(req.operator);
    let known = s.backend.read(|r| signing_in(r, &operator));
    let (name, phc) = match known {
        SigningIn::Unknown => return refuse(&s, address, None).await,
        SigningIn::LockedOut => {
            return Err(ApiError::RateLimited {
                who: "this operator after too many wrong PINs",
                retry_after_ms: PIN_LOCKOUT_WINDOW_MS,
            })
        }
        SigningIn::Known { name, phc } => (name, phc),
    };
    if !check_pin(&s, req.pin, phc).await? {
        return refuse(&s, address, Some(operator)).await;
    }
    let token = s.agent_tokens.mint(&operator, Instant::now()).map_err(|failure| match failure {
        crate::widget_tokens::MintFailure::Full => ApiError::AgentTokensFull { max: AGENT_TOKENS_MAX },
        crate::widget_tokens::MintFailure::Random(e) => ApiError::Random(e.to_string()),
    })?;
    tracing::info!(%operator, "agent panel signed in");
    Ok(Json(SignedIn { token, operator, name, lifetime_ms: AGENT_TOKEN_LIFETIME_MS }))
}

enum SigningIn {
    Unknown,
    LockedOut,
    Known { name: String, phc: String },
}

fn signing_in(r: &Routing, operator: &OperatorId) -> SigningIn {
    match r.operator_config(operator) {
        None => SigningIn::Unknown,
        Some(_) if r.pin_locked_out(operator) => SigningIn::LockedOut,
        Some(config) => SigningIn::Known { name: config.name.clone(), phc: config.pin_hash.clone() },
    }
}

/// argon2 on the blocking pool, at most [`AGENT_PIN_CHECKS_MAX`] at once.
async fn check_pin<B: ApiBackend>(s: &AppState<B>, pin: String, phc: String) -> Result<bool, ApiError> {
    let Ok(permit) = Arc::clone(&s.pin_checks).try_acquire_owned() else {
        return Err(ApiError::RateLimited { who: "PIN checks on this node", retry_after_ms: AGENT_PIN_CHECK_RETRY_MS });
    };
    let checked = tokio::task::spawn_blocking(move || {
        let matches = pin_matches(&pin, &phc);
        drop(permit);
        matches
    })
    .await;
    // A panicked check is a wrong PIN, never a sign-in.
    Ok(checked.unwrap_or(false))
}

/// Verifies a PIN against an argon2 PHC string (CPU-heavy: off the async runtime).
fn pin_matches(pin: &str, phc: &str) -> bool {
    use argon2::password_hash::{phc::PasswordHash, PasswordVerifier};
    PasswordHash::new(phc).is_ok_and(|hash| argon2::Argon2::default().verify_password(pin.as_bytes(), &hash).is_ok())
}

/// A refused sign-in: counted against the address, and a configured operator's wrong PIN
/// towards its replicated lockout (before the answer, so a quick retry sees it).
async fn refuse<B: ApiBackend>(
    s: &AppState<B>,
    address: Option<IpAddr>,
    operator: Option<OperatorId>,
) -> Result<Json<SignedIn>, ApiError> {
    if let Some(address) = address {
        s.limits.auth_failed(address);
    }
    if let Some(operator) = operator {
        tracing::info!(%operator, "agent panel sign-in with a wrong PIN");
        if let Err(error) = submit(&*s.backend, CommandBody::PinRejected { operator }).await {
            tracing::warn!(%error, "a wrong PIN could not be counted towards the lockout");
        }
    }
    Err(ApiError::SignInRefused)
}

/// An operator's panel as answered, with the routing clock's now for the page's timers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AgentAnswer {
    pub now_ms: u64,
    #[serde(flatten)]
    pub view: AgentView,
}

fn read_panel<B: ApiBackend>(s: &AppState<B>, operator: &OperatorId) -> Option<AgentView> {
    let today = s.hub.today_of_operator(operator.as_str());
    s.backend.read(|r| agent_view(r, operator, today))
}

/// `GET /v1/agent/me`: the operator's panel.
pub async fn get_panel<B: ApiBackend>(
    State(s): St<B>,
    agent: AgentAccess<false>,
) -> Result<Json<AgentAnswer>, ApiError> {
    let view = read_panel(&s, &agent.operator).ok_or(ApiError::Unauthorized)?;
    Ok(Json(AgentAnswer { now_ms: s.backend.read(|r| r.now_ms()), view }))
}

/// `POST /v1/agent/state`: available (also ends a wrap-up early), break with a reason, or
/// offline, for the operator itself.
pub async fn set_state<B: ApiBackend>(
    State(s): St<B>,
    agent: AgentAccess<false>,
    JsonBody(req): JsonBody<StateRequest, ACTION_BODY_MAX_BYTES>,
) -> Result<Json<ActionDone>, ApiError> {
    let state = crate::rest::requested_state(req)?;
    let done = submit(&*s.backend, CommandBody::OperatorState { operator: agent.operator, state }).await?;
    Ok(Json(ActionDone { ok: true, response: done }))
}

/// `POST /v1/agent/pull`: the operator takes the named waiting caller, or its next one.
pub async fn pull<B: ApiBackend>(
    State(s): St<B>,
    agent: AgentAccess<false>,
    JsonBody(req): JsonBody<PullRequest, ACTION_BODY_MAX_BYTES>,
) -> Result<Json<ActionDone>, ApiError> {
    let done = submit(&*s.backend, CommandBody::Pull { operator: agent.operator, call: req.call }).await?;
    Ok(Json(ActionDone { ok: true, response: done }))
}

/// `POST /v1/agent/login`: a ring-mode operator logs in at this node's site (each offer
/// then rings its endpoint from here). A persistent operator logs in by phone: its line is
/// held open between calls, which a page cannot do (the core refuses it, naming `channel`).
pub async fn login<B: ApiBackend>(State(s): St<B>, agent: AgentAccess<false>) -> Result<Json<ActionDone>, ApiError> {
    let body = CommandBody::OperatorLogin { operator: agent.operator, site: s.backend.site(), channel: None };
    let done = submit(&*s.backend, body).await?;
    Ok(Json(ActionDone { ok: true, response: done }))
}

/// `POST /v1/agent/logout`: the operator logs out (after its current call if busy).
pub async fn logout<B: ApiBackend>(State(s): St<B>, agent: AgentAccess<false>) -> Result<Json<ActionDone>, ApiError> {
    let done = submit(&*s.backend, CommandBody::OperatorLogout { operator: agent.operator }).await?;
    Ok(Json(ActionDone { ok: true, response: done }))
}

/// `POST /v1/agent/sign-out`: this panel's token stops working (the operator's state is
/// left as it is).
pub async fn sign_out<B: ApiBackend>(State(s): St<B>, agent: AgentAccess<false>) -> Json<SignedOut> {
    s.agent_tokens.forget(&agent.token);
    Json(SignedOut { ok: true })
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SignedOut {
    pub ok: bool,
}

#[derive(Serialize)]
struct PanelMessage<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    now_ms: u64,
    #[serde(flatten)]
    view: &'a AgentView,
}

/// `GET /v1/agent/live` (WebSocket): `{"type":"agent", now_ms, ...panel}` at once and
/// whenever the panel changes; `{"type":"signed_out"}` and a close when the token expires
/// or the operator is removed.
pub async fn live<B: ApiBackend>(
    State(s): St<B>,
    agent: AgentAccess<true>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let slot = websocket_slot(&s, None)?;
    Ok(configure(ws).on_upgrade(move |socket| async move {
        let AgentAccess { operator, token } = agent;
        let still_signed_in = || s.agent_tokens.operator_of(&token, Instant::now()).is_some();
        let today = |op: &OperatorId| s.hub.today_of_operator(op.as_str());
        let read = |r: &Routing| still_signed_in().then(|| agent_view(r, &operator, today(&operator))).flatten();
        let message = |view: &AgentView| {
            let now_ms = s.backend.read(|r| r.now_ms());
            to_text(&PanelMessage { kind: "agent", now_ms, view })
        };
        let ended = to_text(&serde_json::json!({ "type": "signed_out" }));
        follow_view(socket, &s, read, message, ended).await;
        drop(slot);
    }))
}
