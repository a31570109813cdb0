//! The API's limits on its clients, named: request rates per client address and per token,
//! the throttle after failed authentication, caps on connections and WebSockets, and the
//! HTTP and TLS handshake timeouts. [`ApiLimits`] carries them (the defaults are the
//! constants below) so the benchmark and tests can set their own.

use serde::{Deserialize, Serialize};

/// Requests one client address may make per second, sustained (a token bucket).
pub const REQUESTS_PER_ADDRESS_PER_SECOND: u32 = 100;
/// Requests one client address may make at once before the per-second rate applies.
pub const REQUEST_BURST_PER_ADDRESS: u32 = 200;
/// Requests one token may make per second, sustained, from all its addresses together.
pub const REQUESTS_PER_TOKEN_PER_SECOND: u32 = 50;
/// Requests one token may make at once before the per-second rate applies.
pub const REQUEST_BURST_PER_TOKEN: u32 = 100;
/// Wrong tokens one client address may present within [`AUTH_FAILURE_WINDOW_MS`]; after
/// that every request from it that presents a token is answered 429 until the window ends,
/// a right token included, so guessing is slow.
pub const AUTH_FAILURES_BEFORE_THROTTLE: u32 = 10;
/// The window over which failed authentications are counted (from the first failure).
pub const AUTH_FAILURE_WINDOW_MS: u64 = 60_000;
/// Client addresses whose request rate and failed authentications are remembered; beyond
/// this the least recently seen address is forgotten.
pub const CLIENT_ADDRESSES_TRACKED_MAX: usize = 16_384;
/// Open connections (WebSockets included); a connection beyond this is answered 503 and
/// closed at once.
pub const CONNECTIONS_MAX: usize = 4_096;
/// Open WebSockets (`/v1/live`, `/v1/calls/{id}/live`) in all.
pub const WEBSOCKETS_MAX: usize = 2_048;
/// Open WebSockets per token (a shared wallboard token opens one per screen).
pub const WEBSOCKETS_PER_TOKEN_MAX: usize = 64;
/// A request's head (request line and headers) must arrive within this long of the server
/// starting to wait for it; otherwise the connection is closed.
pub const HEADER_READ_TIMEOUT_MS: u64 = 10_000;
/// A request's body must arrive within this long of its handler starting to read it (408).
pub const BODY_READ_TIMEOUT_MS: u64 = 10_000;
/// A kept-alive connection with no request in progress and no byte either way for this long
/// is closed.
pub const KEEP_ALIVE_IDLE_TIMEOUT_MS: u64 = 5_000;
/// With TLS on, an accepted connection must finish its TLS handshake within this long of
/// being accepted; otherwise it is closed. It holds its place under [`CONNECTIONS_MAX`]
/// meanwhile. The header and idle timeouts start after the handshake.
pub const TLS_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// On shutdown, how long open connections are given to finish before the server returns.
pub const SHUTDOWN_DRAIN_MAX_MS: u64 = 5_000;

/// The limits a server applies (see the constants for what each means).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiLimits {
    pub requests_per_address_per_second: u32,
    pub request_burst_per_address: u32,
    pub requests_per_token_per_second: u32,
    pub request_burst_per_token: u32,
    pub auth_failures_before_throttle: u32,
    pub auth_failure_window_ms: u64,
    pub connections_max: usize,
    pub websockets_max: usize,
    pub websockets_per_token_max: usize,
    pub header_read_timeout_ms: u64,
    pub body_read_timeout_ms: u64,
    pub keep_alive_idle_timeout_ms: u64,
    pub tls_handshake_timeout_ms: u64,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            requests_per_address_per_second: REQUESTS_PER_ADDRESS_PER_SECOND,
            request_burst_per_address: REQUEST_BURST_PER_ADDRESS,
            requests_per_token_per_second: REQUESTS_PER_TOKEN_PER_SECOND,
            request_burst_per_token: REQUEST_BURST_PER_TOKEN,
            auth_failures_before_throttle: AUTH_FAILURES_BEFORE_THROTTLE,
            auth_failure_window_ms: AUTH_FAILURE_WINDOW_MS,
            connections_max: CONNECTIONS_MAX,
            websockets_max: WEBSOCKETS_MAX,
            websockets_per_token_max: WEBSOCKETS_PER_TOKEN_MAX,
            header_read_timeout_ms: HEADER_READ_TIMEOUT_MS,
            body_read_timeout_ms: BODY_READ_TIMEOUT_MS,
            keep_alive_idle_timeout_ms: KEEP_ALIVE_IDLE_TIMEOUT_MS,
            tls_handshake_timeout_ms: TLS_HANDSHAKE_TIMEOUT_MS,
        }
    }
}

impl ApiLimits {
    /// The name of the first limit that is zero (every limit must let something through).
    pub fn first_zero(&self) -> Option<&'static str> {
        let values: [(&'static str, u64); 13] = [
            ("requests_per_address_per_second", self.requests_per_address_per_second.into()),
            ("request_burst_per_address", self.request_burst_per_address.into()),
            ("requests_per_token_per_second", self.requests_per_token_per_second.into()),
            ("request_burst_per_token", self.request_burst_per_token.into()),
            ("auth_failures_before_throttle", self.auth_failures_before_throttle.into()),
            ("auth_failure_window_ms", self.auth_failure_window_ms),
            ("connections_max", self.connections_max as u64),
            ("websockets_max", self.websockets_max as u64),
            ("websockets_per_token_max", self.websockets_per_token_max as u64),
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("body_read_timeout_ms", self.body_read_timeout_ms),
            ("keep_alive_idle_timeout_ms", self.keep_alive_idle_timeout_ms),
            ("tls_handshake_timeout_ms", self.tls_handshake_timeout_ms),
        ];
        values.iter().find(|(_, v)| *v == 0).map(|(name, _)| *name)
    }
}
