//! Authorization as extractors: a handler names what it needs in its arguments
//! (`Caller<Supervise>`), and the request is refused before its body is even read.

use crate::client_limits::client_address;
use crate::config::{origin_allowed, presented_token, Role};
use crate::error::ApiError;
use crate::{ApiBackend, AppState};
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde::Deserialize;
use std::marker::PhantomData;
use std::sync::Arc;

/// What a route needs from the caller's token.
pub trait Need: Send + Sync + 'static {
    /// Lowest role let through (roles order as widget < viewer < supervisor < admin).
    const MIN: Role;
    /// Widget tokens reach only routes that say so.
    const WIDGET_ALLOWED: bool;
    /// WebSocket routes: browsers cannot set headers on an upgrade, so `?token=` is accepted,
    /// and the `Origin` is checked.
    const WEBSOCKET: bool;
    /// For the 403 message.
    const ACTION: &'static str;
}

pub struct Read;
pub struct Supervise;
pub struct Admin;
pub struct Widget;
pub struct WidgetAct;
pub struct ReadWs;
pub struct WidgetWs;

impl Need for Read {
    const MIN: Role = Role::Viewer;
    const WIDGET_ALLOWED: bool = false;
    const WEBSOCKET: bool = false;
    const ACTION: &'static str = "read live state or config";
}
impl Need for Supervise {
    const MIN: Role = Role::Supervisor;
    const WIDGET_ALLOWED: bool = false;
    const WEBSOCKET: bool = false;
    const ACTION: &'static str = "act on operators or calls";
}
impl Need for Admin {
    const MIN: Role = Role::Admin;
    const WIDGET_ALLOWED: bool = false;
    const WEBSOCKET: bool = false;
    const ACTION: &'static str = "change the routing config";
}
impl Need for Widget {
    const MIN: Role = Role::Widget;
    const WIDGET_ALLOWED: bool = true;
    const WEBSOCKET: bool = false;
    const ACTION: &'static str = "use the caller widget";
}
/// A caller's own request (callback): widget tokens, and supervisors or admins acting for a
/// caller; not viewers, who change nothing.
impl Need for WidgetAct {
    const MIN: Role = Role::Supervisor;
    const WIDGET_ALLOWED: bool = true;
    const WEBSOCKET: bool = false;
    const ACTION: &'static str = "request a callback";
}
impl Need for ReadWs {
    const MIN: Role = Role::Viewer;
    const WIDGET_ALLOWED: bool = false;
    const WEBSOCKET: bool = true;
    const ACTION: &'static str = "read live state";
}
impl Need for WidgetWs {
    const MIN: Role = Role::Widget;
    const WIDGET_ALLOWED: bool = true;
    const WEBSOCKET: bool = true;
    const ACTION: &'static str = "use the caller widget";
}

/// An authenticated caller allowed to do `N`.
pub struct Caller<N: Need> {
    pub role: Role,
    /// Index of the caller's token in `ApiConfig::tokens` (for its holder's name).
    pub holder: usize,
    _need: PhantomData<N>,
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

impl<B: ApiBackend, N: Need> FromRequestParts<Arc<AppState<B>>> for Caller<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState<B>>) -> Result<Self, ApiError> {
        let query = if N::WEBSOCKET {
            Query::<TokenQuery>::try_from_uri(&parts.uri).ok().and_then(|q| q.0.token)
        } else {
            None
        };
        let token = presented_token(&parts.headers, query.as_deref()).ok_or(ApiError::Unauthorized)?;
        let holder = authenticate(state, parts, token)?;
        let role = state.config.tokens[holder].role;
        let allowed = if role == Role::Widget { N::WIDGET_ALLOWED } else { role >= N::MIN };
        if !allowed {
            return Err(ApiError::Forbidden { role: role.name(), action: N::ACTION });
        }
        if N::WEBSOCKET && !origin_allowed(&state.config, &parts.headers) {
            let origin = parts
                .headers
                .get(axum::http::header::ORIGIN)
                .and_then(|o| o.to_str().ok())
                .unwrap_or("(not text)")
                .to_string();
            return Err(ApiError::OriginRefused { origin });
        }
        Ok(Caller { role, holder, _need: PhantomData })
    }
}

/// The holder of `token`, under the limits: an address that presented too many wrong tokens
/// is refused before its token is even compared (a right one too, so guessing is slow); a
/// wrong token counts against its address; a right one against the token's own rate.
fn authenticate<B: ApiBackend>(state: &AppState<B>, parts: &Parts, token: &str) -> Result<usize, ApiError> {
    let address = client_address(&parts.extensions);
    if let Some(address) = address {
        state.limits.auth_throttled(address).map_err(|refused| ApiError::RateLimited {
            who: "this client address after failed authentication",
            retry_after_ms: refused.retry_after_ms,
        })?;
    }
    let Some(holder) = state.config.holder_of(token) else {
        if let Some(address) = address {
            state.limits.auth_failed(address);
        }
        return Err(ApiError::Unauthorized);
    };
    state
        .limits
        .admit_token(holder)
        .map_err(|refused| ApiError::RateLimited { who: "this token", retry_after_ms: refused.retry_after_ms })?;
    Ok(holder)
}
