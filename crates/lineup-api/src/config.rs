//! API settings and authentication: bearer tokens with roles, compared in constant time,
//! and the `Origin` check for WebSocket upgrades.

use crate::error::ApiError;
use crate::limits::ApiLimits;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

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

/// What a token may do. `Admin > Supervisor > Viewer`; `Widget` only reaches the widget
/// endpoints (a call's position, its live feed, a callback request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Widget,
    Viewer,
    Supervisor,
    Admin,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Widget => "widget",
            Role::Viewer => "viewer",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }
}

/// One bearer token. `Debug` never prints the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    /// Who holds it (for logs; never the token itself).
    pub name: String,
    pub token: String,
    pub role: Role,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
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
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            tokens: Vec::new(),
            allowed_origins: Vec::new(),
            live_buffer_frames: LIVE_BUFFER_FRAMES,
            summary_interval_ms: SUMMARY_INTERVAL_MS,
            limits: ApiLimits::default(),
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
            if t.token.len() < API_TOKEN_MIN_BYTES || t.token.len() > API_TOKEN_MAX_BYTES {
                return bad(
                    format!("tokens[{i}].token"),
                    &format!("must be {API_TOKEN_MIN_BYTES} to {API_TOKEN_MAX_BYTES} bytes"),
                );
            }
            if !t.token.bytes().all(|b| b.is_ascii_graphic()) {
                return bad(format!("tokens[{i}].token"), "must be printable ASCII without spaces");
            }
            if self.tokens[..i].iter().any(|o| o.token == t.token) {
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
    /// [`ApiConfig::role_of`]: every token, in constant time).
    pub fn holder_of(&self, presented: &str) -> Option<usize> {
        let mut found = None;
        for (i, t) in self.tokens.iter().enumerate() {
            if constant_time_eq(t.token.as_bytes(), presented.as_bytes()) {
                found = Some(i);
            }
        }
        found
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Length is not secret (tokens are long and random); contents are.
    let mut diff = (a.len() != b.len()) as u8;
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff);
    }
    diff == 0
}

/// The bearer token of a request: the `Authorization` header, or (`allow_query`, WebSocket
/// routes only, since browsers cannot set headers on an upgrade) the `token` query value.
pub(crate) fn presented_token<'a>(headers: &'a HeaderMap, query_token: Option<&'a str>) -> Option<&'a str> {
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        return value.to_str().ok()?.strip_prefix("Bearer ").map(str::trim);
    }
    query_token
}

/// Whether a WebSocket upgrade's `Origin` may connect: absent (not a browser), the same
/// origin as the request's `Host`, or listed in `allowed_origins`.
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
    let origin_host = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
    matches!((host, origin_host), (Some(h), Some(o)) if h.eq_ignore_ascii_case(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_matches_only_equal_bytes() {
        assert!(constant_time_eq(b"abcdef", b"abcdef"));
        assert!(!constant_time_eq(b"abcdef", b"abcdeg"));
        assert!(!constant_time_eq(b"abcdef", b"abcde"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn debug_hides_the_token() {
        let t = ApiToken { name: "wall".into(), token: "s3cret-s3cret-s3cret".into(), role: Role::Viewer };
        assert!(!format!("{t:?}").contains("s3cret"));
    }

    #[test]
    fn validate_names_the_field() {
        let config = ApiConfig {
            tokens: vec![ApiToken { name: "x".into(), token: "short".into(), role: Role::Admin }],
            ..ApiConfig::default()
        };
        match config.validate() {
            Err(ApiError::Config { field, .. }) => assert_eq!(field, "tokens[0].token"),
            other => panic!("expected a config error, got {other:?}"),
        }
    }
}
