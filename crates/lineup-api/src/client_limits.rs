//! What the server keeps per client to apply [`crate::ApiLimits`]: request rates per
//! address and per token and failed authentications per address ([`ClientLimits`], on the
//! server's monotonic clock), and the open WebSockets in all and per token
//! ([`WebSocketSlots`]).

use crate::error::ApiError;
use crate::limits::{ApiLimits, CLIENT_ADDRESSES_TRACKED_MAX};
use crate::rate_limit::{AuthThrottle, RateLimiter, Refused};
use crate::{ApiBackend, AppState};
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

struct Tables {
    by_address: RateLimiter<IpAddr>,
    by_token: RateLimiter<usize>,
    auth_failures: AuthThrottle<IpAddr>,
}

/// Rate limits and the authentication throttle, decided at the server's clock.
pub(crate) struct ClientLimits {
    started: Instant,
    tables: Mutex<Tables>,
}

impl ClientLimits {
    pub(crate) fn new(limits: &ApiLimits, tokens: usize) -> Self {
        let tables = Tables {
            by_address: RateLimiter::new(
                limits.requests_per_address_per_second,
                limits.request_burst_per_address,
                CLIENT_ADDRESSES_TRACKED_MAX,
            ),
            by_token: RateLimiter::new(limits.requests_per_token_per_second, limits.request_burst_per_token, tokens),
            auth_failures: AuthThrottle::new(
                limits.auth_failures_before_throttle,
                limits.auth_failure_window_ms,
                CLIENT_ADDRESSES_TRACKED_MAX,
            ),
        };
        Self { started: Instant::now(), tables: Mutex::new(tables) }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn admit_address(&self, address: IpAddr) -> Result<(), Refused> {
        let now_ms = self.now_ms();
        self.lock().by_address.take(&address, now_ms)
    }

    /// `holder`: the token's index in the config.
    pub(crate) fn admit_token(&self, holder: usize) -> Result<(), Refused> {
        let now_ms = self.now_ms();
        self.lock().by_token.take(&holder, now_ms)
    }

    pub(crate) fn auth_throttled(&self, address: IpAddr) -> Result<(), Refused> {
        let now_ms = self.now_ms();
        self.lock().auth_failures.check(&address, now_ms)
    }

    pub(crate) fn auth_failed(&self, address: IpAddr) {
        let now_ms = self.now_ms();
        self.lock().auth_failures.record_failure(&address, now_ms);
    }
}

/// Middleware: every request (pages and health included) is counted against its client
/// address's rate before anything else is done for it.
pub(crate) async fn limit_by_address<B: ApiBackend>(
    State(state): State<Arc<AppState<B>>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(address) = client_address(request.extensions()) {
        if let Err(refused) = state.limits.admit_address(address) {
            let who = "this client address";
            return ApiError::RateLimited { who, retry_after_ms: refused.retry_after_ms }.into_response();
        }
    }
    next.run(request).await
}

/// The client's IP address, as the accept loop recorded it.
pub(crate) fn client_address(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(address)| address.ip())
}

/// Why a WebSocket was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotRefused {
    Token { limit: usize },
    Total { limit: usize },
}

/// Open WebSockets, in all and per token; a slot is given back when its [`WebSocketSlot`]
/// is dropped (the socket's task ends).
pub(crate) struct WebSocketSlots {
    total: AtomicUsize,
    per_token: Vec<AtomicUsize>,
    total_max: usize,
    per_token_max: usize,
}

/// One open WebSocket's place in [`WebSocketSlots`].
pub(crate) struct WebSocketSlot {
    slots: Arc<WebSocketSlots>,
    /// The configured token it counts against; `None` for a call's widget token.
    holder: Option<usize>,
}

impl WebSocketSlots {
    pub(crate) fn new(limits: &ApiLimits, tokens: usize) -> Self {
        Self {
            total: AtomicUsize::new(0),
            per_token: (0..tokens).map(|_| AtomicUsize::new(0)).collect(),
            total_max: limits.websockets_max,
            per_token_max: limits.websockets_per_token_max,
        }
    }

    /// A slot for one more WebSocket of configured token `holder` (`None`: a call's widget
    /// token, counted in the total only), if the caps allow it.
    pub(crate) fn take(self: &Arc<Self>, holder: Option<usize>) -> Result<WebSocketSlot, SlotRefused> {
        let token = match holder {
            Some(holder) => Some(self.per_token.get(holder).ok_or(SlotRefused::Token { limit: 0 })?),
            None => None,
        };
        let per_token_max = self.per_token_max;
        if let Some(token) = token {
            token
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < per_token_max).then_some(n + 1))
                .map_err(|_| SlotRefused::Token { limit: per_token_max })?;
        }
        let total_max = self.total_max;
        if self.total.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < total_max).then_some(n + 1)).is_err() {
            if let Some(token) = token {
                token.fetch_sub(1, Ordering::AcqRel);
            }
            return Err(SlotRefused::Total { limit: total_max });
        }
        Ok(WebSocketSlot { slots: Arc::clone(self), holder })
    }

    #[cfg(test)]
    fn open(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }
}

impl Drop for WebSocketSlot {
    fn drop(&mut self) {
        self.slots.total.fetch_sub(1, Ordering::AcqRel);
        if let Some(token) = self.holder.and_then(|holder| self.slots.per_token.get(holder)) {
            token.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_slots_cap_each_token_and_the_total_and_come_back_on_drop() {
        let limits = ApiLimits { websockets_max: 3, websockets_per_token_max: 2, ..ApiLimits::default() };
        let slots = Arc::new(WebSocketSlots::new(&limits, 2));
        let a1 = slots.take(Some(0)).unwrap();
        let _a2 = slots.take(Some(0)).unwrap();
        assert_eq!(slots.take(Some(0)).err(), Some(SlotRefused::Token { limit: 2 }));
        let _b1 = slots.take(Some(1)).unwrap();
        assert_eq!(slots.take(Some(1)).err(), Some(SlotRefused::Total { limit: 3 }));
        assert_eq!(slots.open(), 3);
        drop(a1);
        assert!(slots.take(Some(1)).is_ok(), "a closed socket's slot is free again");
        assert_eq!(slots.take(Some(7)).err(), Some(SlotRefused::Token { limit: 0 }), "no such token");
        // A call's widget token counts in the total only.
        let widget = slots.take(None).unwrap();
        assert_eq!(slots.open(), 3);
        assert_eq!(slots.take(None).err(), Some(SlotRefused::Total { limit: 3 }));
        drop(widget);
        assert_eq!(slots.open(), 2);
    }
}
