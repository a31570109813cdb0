//! API settings and authentication: bearer tokens with roles, compared in constant time,
//! TLS, and the `Origin` check for WebSocket upgrades.

use crate::error::ApiError;
use crate::limits::ApiLimits;
use crate::secret::{constant_time_eq, sha256, SHA256_BYTES};
use crate::tls::ApiTls;
use axum::http::HeaderMap;
use serde::Serialize;

/// Shortest token accepted (a guessable token is a configuration error).
pub const API_TOKEN_MIN_BYTES: usize = 16;
/// Longest token accepted.
pub const API_TOKEN_MAX_BYTES: usize = 256;
/// Most tokens in one config.
pub const API_TOKENS_MAX: usize = 256;
/// Frames a `/v1/live` client may fall behind by before it is sent a fresh snapshot.
pub const LIVE_BUFFER_FRAMES: usize = 1_024;
/// How often queue summaries (waits and ETAs move with time) are pushed to live clients.
pub const SUMMARY_INTERVAL_MS: u64 = 1_000;

/// What a configured token may do. `Admin > Supervisor > Viewer`; `Frontend` stands apart:
/// it only mints per-call widget tokens (`POST /v1/calls/{id}/widget-token`) for the web
/// front end that hands a caller the widget link, and reads nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Frontend,
    Viewer,
    Supervisor,
    Admin,
}

/// The roles a node config may name.
pub const ROLE_NAMES: [&str; 4] = ["admin", "supervisor", "viewer", "frontend"];

/// Why a config's `role = "widget"` is refused: the shared widget token could read and act
/// on every call, so callers' widgets now get a token for their own call only.
pub const WIDGET_ROLE_GONE: &str = "the shared `widget` role is gone (it reached every call): a caller's widget \
     gets a token for its own call from POST /v1/calls/{id}/widget-token, minted by a token of role frontend, \
     supervisor or admin";

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Frontend => "frontend",
            Role::Viewer => "viewer",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }

    /// The role a config names; the error says what is allowed instead.
    pub fn from_name(name: &str) -> Result<Role, String> {
        match name {
            "admin" => Ok(Role::Admin),
            "supervisor" => Ok(Role::Supervisor),
            "viewer" => Ok(Role::Viewer),
            "frontend" => Ok(Role::Frontend),
            "widget" => Err(WIDGET_ROLE_GONE.to_string()),
            _ => Err(format!("must be one of {}", ROLE_NAMES.join(", "))),
        }
    }
}

/// How a configured token is known: the token itself, or only its SHA-256 digest (so the
/// node config need not hold the secret).
#[derive(Clone, PartialEq, Eq)]
pub enum TokenSecret {
    Plain(String),
    Sha256([u8; SHA256_BYTES]),
}

impl TokenSecret {
    fn digest(&self) -> [u8; SHA256_BYTES] {
        match self {
            TokenSecret::Plain(token) => sha256(token),
            TokenSecret::Sha256(digest) => *digest,
        }
    }
}

/// One bearer token. `Debug` never prints the token nor its digest.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Who holds it (for logs; never the token itself).
    pub name: String,
    pub secret: TokenSecret,
    pub role: Role,
}

impl ApiToken {
    /// A token given as itself.
    pub fn plain(name: impl Into<String>, token: impl Into<String>, role: Role) -> Self {
        Self { name: name.into(), secret: TokenSecret::Plain(token.into()), role }
    }

    /// A token known only by its SHA-256 digest.
    pub fn hashed(name: impl Into<String>, digest: [u8; SHA256_BYTES], role: Role) -> Self {
        Self { name: name.into(), secret: TokenSecret::Sha256(digest), role }
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiToken")
            .field("name", &self.name)
            .field("token", &"(hidden)")
            .field("role", &self.role)
            .finish()
    }
}

/// The API's settings (the node config's `[api]` section).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    pub tokens: Vec<ApiToken>,
    /// Origins (`https://wall.example.com`) allowed to open WebSockets besides the page's
    /// own origin (same-origin is always allowed).
    pub allowed_origins: Vec<String>,
    /// See [`LIVE_BUFFER_FRAMES`].
    pub live_buffer_frames: usize,
    /// See [`SUMMARY_INTERVAL_MS`].
    pub summary_interval_ms: u64,
    /// Rates, caps and timeouts applied to clients (defaults: the constants in
    /// [`crate::limits`]).
    pub limits: ApiLimits,
    /// When set, the API serves only HTTPS (and `wss` for the WebSockets).
    pub tls: Option<ApiTls>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            tokens: Vec::new(),
            allowed_origins: Vec::new(),
            live_buffer_frames: LIVE_BUFFER_FRAMES,
            summary_interval_ms: SUMMARY_INTERVAL_MS,
            limits: ApiLimits::default(),
            tls: None,
        }
    }
}

impl ApiConfig {
    /// Checks every setting; the error names the field.
    pub fn validate(&self) -> Result<(), ApiError> {
        let bad = |field: String, reason: &str| Err(ApiError::Config { field, reason: reason.into() });
        if self.tokens.len() > API_TOKENS_MAX {
            return bad("tokens".into(), "too many tokens");
        }
        for (i, t) in self.tokens.iter().enumerate() {
            // The name is the actor of the token's writes in the audit trail (and the log).
            if lineup_core::audit::validate_actor_name(&t.name).is_err() {
                let max = lineup_core::AUDIT_ACTOR_NAME_MAX_BYTES;
                return bad(format!("tokens[{i}].name"), &format!("must be 1 to {max} bytes, no control characters"));
            }
            if let TokenSecret::Plain(token) = &t.secret {
                if token.len() < API_TOKEN_MIN_BYTES || token.len() > API_TOKEN_MAX_BYTES {
                    return bad(
                        format!("tokens[{i}].token"),
                        &format!("must be {API_TOKEN_MIN_BYTES} to {API_TOKEN_MAX_BYTES} bytes"),
                    );
                }
                if !token.bytes().all(|b| b.is_ascii_graphic()) {
                    return bad(format!("tokens[{i}].token"), "must be printable ASCII without spaces");
                }
            }
            if self.tokens[..i].iter().any(|o| o.secret.digest() == t.secret.digest()) {
                return bad(format!("tokens[{i}].token"), "the same token is listed twice");
            }
        }
        for (i, o) in self.allowed_origins.iter().enumerate() {
            if !(o.starts_with("http://") || o.starts_with("https://")) || o.ends_with('/') {
                return bad(format!("allowed_origins[{i}]"), "must look like https://host[:port] (no path)");
            }
        }
        if self.live_buffer_frames == 0 {
            return bad("live_buffer_frames".into(), "must be at least 1");
        }
        if self.summary_interval_ms < 10 {
            return bad("summary_interval_ms".into(), "must be at least 10");
        }
        if let Some(name) = self.limits.first_zero() {
            return bad(format!("limits.{name}"), "must be at least 1");
        }
        Ok(())
    }

    /// The role of `presented`, if it matches a configured token. Every token is compared,
    /// each in time independent of where the bytes differ, so timing does not reveal a prefix.
    pub fn role_of(&self, presented: &str) -> Option<Role> {
        self.holder_of(presented).map(|i| self.tokens[i].role)
    }

    /// The index in [`ApiConfig::tokens`] of the token `presented` matches (compared as in
    /// [`ApiConfig::role_of`]: every token, in constant time; a hashed token by its digest).
    pub fn holder_of(&self, presented: &str) -> Option<usize> {
        let digest = sha256(presented);
        let mut found = None;
        for (i, t) in self.tokens.iter().enumerate() {
            let equal = match &t.secret {
                TokenSecret::Plain(token) => constant_time_eq(token.as_bytes(), presented.as_bytes()),
                TokenSecret::Sha256(stored) => constant_time_eq(stored, &digest),
            };
            if equal {
                found = Some(i);
            }
        }
        found
    }
}

/// The bearer token of a request: the `Authorization` header, or (`allow_query`, WebSocket
/// routes only, since browsers cannot set headers on an upgrade) the `token` query value.
pub(crate) fn presented_token<'a>(headers: &'a HeaderMap, query_token: Option<&'a str>) -> Option<&'a str> {
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        return value.to_str().ok()?.strip_prefix("Bearer ").map(str::trim);
    }
    query_token
}

impl ApiConfig {
    /// The scheme the API is served with: `https` with [`ApiConfig::tls`], else `http` (a
    /// TLS-terminating proxy in front lists its own origin in `allowed_origins`).
    pub fn served_scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// Whether a WebSocket upgrade's `Origin` may connect: absent (not a browser), the same
/// origin as the request's `Host` (scheme included: a page served over another scheme is
/// another origin), or listed in `allowed_origins`.
pub(crate) fn origin_allowed(config: &ApiConfig, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(axum::http::header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if config.allowed_origins.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin.strip_prefix(config.served_scheme()).and_then(|rest| rest.strip_prefix("://"));
    matches!((host, origin_host), (Some(h), Some(o)) if h.eq_ignore_ascii_case(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_token() {
        let t = ApiToken::plain("wall", "s3cret-s3cret-s3cret", Role::Viewer);
        assert!(!format!("{t:?}").contains("s3cret"));
    }

    #[test]
    fn validate_names_the_field() {
        let config = ApiConfig { tokens: vec![ApiToken::plain("x", "short", Role::Admin)], ..ApiConfig::default() };
        match config.validate() {
            Err(ApiError::Config { field, .. }) => assert_eq!(field, "tokens[0].token"),
            other => panic!("expected a config error, got {other:?}"),
        }
    }
}

#[cfg(test)]
mod hashed_tests {
    use super::*;

    #[test]
    fn a_hashed_token_is_found_by_its_digest() {
        let config = ApiConfig {
            tokens: vec![
                ApiToken::plain("a", "plain-token-0123456789", Role::Admin),
                ApiToken::hashed("b", sha256("hashed-token-0123456789"), Role::Viewer),
            ],
            ..ApiConfig::default()
        };
        assert!(config.validate().is_ok());
        assert_eq!(config.role_of("hashed-token-0123456789"), Some(Role::Viewer));
        assert_eq!(config.role_of("plain-token-0123456789"), Some(Role::Admin));
        assert_eq!(config.role_of("hashed-token-012345678"), None);
    }

    #[test]
    fn the_widget_role_is_refused_naming_the_new_way() {
        let problem = Role::from_name("widget").unwrap_err();
        assert!(problem.contains("/v1/calls/{id}/widget-token") && problem.contains("frontend"), "{problem}");
        assert_eq!(Role::from_name("frontend"), Ok(Role::Frontend));
    }
}
