//! Authorization as extractors: a handler names what it needs in its arguments
//! (`Caller<Supervise>`, `CallAccess<WidgetRead>`), and the request is refused before its
//! body is even read.
//!
//! Two kinds of token: configured tokens with a [`Role`], and per-call widget tokens
//! minted by `POST /v1/calls/{id}/widget-token`. A widget token passes only
//! [`CallAccess`] for its own call while the call lasts; every [`Caller`] route refuses it.

use crate::client_limits::client_address;
use crate::config::{origin_allowed, presented_token, Role};
use crate::error::ApiError;
use crate::{ApiBackend, AppState};
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use lineup_core::CallId;
use serde::Deserialize;
use std::marker::PhantomData;
use std::sync::Arc;

/// The 403's name for a per-call widget token.
pub(crate) const WIDGET_TOKEN_ROLE: &str = "call widget";
/// The 403's name for an operator's agent panel token.
const AGENT_TOKEN_ROLE: &str = "agent panel";

/// What a route needs from the caller's token.
pub trait Need: Send + Sync + 'static {
    /// Lowest role let through (roles order as viewer < supervisor < admin).
    const MIN: Role;
    /// Frontend tokens reach only the route that says so (minting widget tokens).
    const FRONTEND_ALLOWED: bool;
    /// WebSocket routes: browsers cannot set headers on an upgrade, so `?token=` is accepted,
    /// and the `Origin` is checked.
    const WEBSOCKET: bool;
    /// For the 403 message.
    const ACTION: &'static str;
}

pub struct Read;
pub struct Supervise;
pub struct Admin;
pub struct ReadWs;
pub struct MintWidget;
/// A call's position and live feed: that call's widget token, or viewers and above.
pub struct WidgetRead;
pub struct WidgetReadWs;
/// A caller's own request (callback): that call's widget token, or supervisors and admins
/// acting for a caller; not viewers, who change nothing.
pub struct WidgetAct;

macro_rules! need {
    ($name:ident, $min:expr, $frontend:expr, $ws:expr, $action:literal) => {
        impl Need for $name {
            const MIN: Role = $min;
            const FRONTEND_ALLOWED: bool = $frontend;
            const WEBSOCKET: bool = $ws;
            const ACTION: &'static str = $action;
        }
    };
}

need!(Read, Role::Viewer, false, false, "read live state or config");
need!(Supervise, Role::Supervisor, false, false, "act on operators or calls");
need!(Admin, Role::Admin, false, false, "change the routing config");
need!(ReadWs, Role::Viewer, false, true, "read live state");
need!(MintWidget, Role::Supervisor, true, false, "mint a caller widget token");
need!(WidgetRead, Role::Viewer, false, false, "read a call's position");
need!(WidgetReadWs, Role::Viewer, false, true, "follow a call's position");
need!(WidgetAct, Role::Supervisor, false, false, "request a callback");

/// An authenticated holder of a configured token allowed to do `N`.
pub struct Caller<N: Need> {
    pub role: Role,
    /// Index of the caller's token in `ApiConfig::tokens` (for its holder's name).
    pub holder: usize,
    _need: PhantomData<N>,
}

/// Allowed to do `N` on the call named in the path: a configured token whose role allows
/// `N`, or that call's own widget token while the call lasts.
pub struct CallAccess<N: Need> {
    pub call: CallId,
    /// The configured token's index; `None` for the call's own widget token.
    pub holder: Option<usize>,
    _need: PhantomData<N>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TokenQuery {
    /// Bearer token, for browsers (they cannot set headers on an upgrade).
    token: Option<String>,
}

fn token_of<N: Need>(parts: &Parts) -> Result<String, ApiError> {
    let query =
        if N::WEBSOCKET { Query::<TokenQuery>::try_from_uri(&parts.uri).ok().and_then(|q| q.0.token) } else { None };
    presented_token(&parts.headers, query.as_deref()).map(str::to_string).ok_or(ApiError::Unauthorized)
}

fn check_role<N: Need>(role: Role) -> Result<(), ApiError> {
    let allowed = if role == Role::Frontend { N::FRONTEND_ALLOWED } else { role >= N::MIN };
    if allowed {
        Ok(())
    } else {
        Err(ApiError::Forbidden { role: role.name(), action: N::ACTION })
    }
}

fn check_origin<B: ApiBackend, N: Need>(parts: &Parts, state: &AppState<B>) -> Result<(), ApiError> {
    if !N::WEBSOCKET || origin_allowed(&state.config, &parts.headers) {
        return Ok(());
    }
    let origin = parts.headers.get(axum::http::header::ORIGIN).and_then(|o| o.to_str().ok()).unwrap_or("(not text)");
    Err(ApiError::OriginRefused { origin: origin.to_string() })
}

impl<B: ApiBackend, N: Need> FromRequestParts<Arc<AppState<B>>> for Caller<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState<B>>) -> Result<Self, ApiError> {
        let token = token_of::<N>(parts)?;
        let holder = match authenticate(state, parts, &token)? {
            Some(holder) => holder,
            None => return Err(ApiError::Forbidden { role: WIDGET_TOKEN_ROLE, action: N::ACTION }),
        };
        let role = state.config.tokens[holder].role;
        check_role::<N>(role)?;
        check_origin::<B, N>(parts, state)?;
        Ok(Caller { role, holder, _need: PhantomData })
    }
}

impl<B: ApiBackend, N: Need> FromRequestParts<Arc<AppState<B>>> for CallAccess<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState<B>>) -> Result<Self, ApiError> {
        let token = token_of::<N>(parts)?;
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound { what: "call".into() })?;
        let call = CallId::new(id);
        let holder = authenticate(state, parts, &token)?;
        if let Some(holder) = holder {
            check_role::<N>(state.config.tokens[holder].role)?;
        } else {
            let granted = state.widget_tokens.call_of(&token).ok_or(ApiError::Unauthorized)?;
            if !state.backend.read(|r| crate::views::call_is_live(r, &granted)) {
                // The call ended: its token is dead from now on.
                state.widget_tokens.forget(&token);
                return Err(ApiError::Unauthorized);
            }
            if granted != call {
                return Err(ApiError::Forbidden { role: WIDGET_TOKEN_ROLE, action: "reach another call" });
            }
        }
        check_origin::<B, N>(parts, state)?;
        Ok(CallAccess { call, holder, _need: PhantomData })
    }
}

/// The holder of `token`, under the limits: an address that presented too many wrong tokens
/// is refused before its token is even compared (a right one too, so guessing is slow); a
/// wrong token counts against its address; a right one against the token's own rate.
/// `None`: not a configured token but a live call's widget token (the route decides).
fn authenticate<B: ApiBackend>(state: &AppState<B>, parts: &Parts, token: &str) -> Result<Option<usize>, ApiError> {
    let address = client_address(&parts.extensions);
    if let Some(address) = address {
        state.limits.auth_throttled(address).map_err(|refused| ApiError::RateLimited {
            who: "this client address after failed authentication",
            retry_after_ms: refused.retry_after_ms,
        })?;
    }
    let Some(holder) = state.config.holder_of(token) else {
        if state.widget_tokens.call_of(token).is_some() {
            return Ok(None);
        }
        if state.agent_tokens.operator_of(token, std::time::Instant::now()).is_some() {
            return Err(ApiError::Forbidden { role: AGENT_TOKEN_ROLE, action: "reach routes beyond its own panel" });
        }
        if let Some(address) = address {
            state.limits.auth_failed(address);
        }
        return Err(ApiError::Unauthorized);
    };
    state
        .limits
        .admit_token(holder)
        .map_err(|refused| ApiError::RateLimited { who: "this token", retry_after_ms: refused.retry_after_ms })?;
    Ok(Some(holder))
}
