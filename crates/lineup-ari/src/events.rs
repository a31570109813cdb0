//! The events half of the client: one WebSocket per Asterisk, reconnected with jittered
//! backoff, de-duplicated, delivered through a bounded channel.

use crate::basic_auth::authorization_value;
use crate::config::AriConfig;
use crate::error::AriError;
use crate::event::{AriEvent, EventDeduplicator, EventKind, EVENT_SIZE_MAX_BYTES};
use futures_util::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::{HeaderValue, AUTHORIZATION};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// Events buffered between the socket and the consumer. When full, reading from the socket
/// pauses (backpressure) rather than dropping events.
pub const EVENT_BUFFER_CAPACITY_EVENTS: usize = 1024;
/// First reconnect delay.
pub const RECONNECT_BACKOFF_INITIAL_MS: u64 = 100;
/// Largest reconnect delay.
pub const RECONNECT_BACKOFF_MAX_MS: u64 = 5_000;
/// Deadline for the WebSocket handshake.
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;

/// What the events stream yields.
#[derive(Clone, Debug, PartialEq)]
// Events are the common item; boxing each one would cost an allocation per event.
#[allow(clippy::large_enum_variant)]
pub enum EventStreamItem {
    /// A (re)connection is up. After any but the first, state must be rebuilt from
    /// `GET /channels` and `GET /bridges`: events were missed in between.
    Connected { connection_serial: u64 },
    /// One event (already de-duplicated across applications; unknown types are counted, not
    /// delivered).
    Event(AriEvent),
    /// The connection dropped; a reconnect follows after a backoff.
    Disconnected { reason: String },
}

/// Counters of the events stream, readable while it runs.
#[derive(Debug, Default)]
pub struct EventStreamStats {
    unknown_events: AtomicU64,
    duplicate_events: AtomicU64,
    malformed_messages: AtomicU64,
    connections: AtomicU64,
    failed_connects: AtomicU64,
}

impl EventStreamStats {
    pub fn unknown_events(&self) -> u64 {
        self.unknown_events.load(Ordering::Relaxed)
    }
    pub fn duplicate_events(&self) -> u64 {
        self.duplicate_events.load(Ordering::Relaxed)
    }
    pub fn malformed_messages(&self) -> u64 {
        self.malformed_messages.load(Ordering::Relaxed)
    }
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
    pub fn failed_connects(&self) -> u64 {
        self.failed_connects.load(Ordering::Relaxed)
    }
    /// For event sources other than the WebSocket (an in-memory Asterisk) that de-duplicate
    /// with their own `EventDeduplicator`.
    pub fn record_duplicate_event(&self) {
        self.duplicate_events.fetch_add(1, Ordering::Relaxed);
    }
    /// For other event sources: a (re)connection, returning its serial.
    pub fn record_connection(&self) -> u64 {
        self.connections.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// The receiving end of an events stream. Dropping it stops the connection task.
#[derive(Debug)]
pub struct AriEvents {
    receiver: mpsc::Receiver<EventStreamItem>,
    stats: Arc<EventStreamStats>,
    task: Option<JoinHandle<()>>,
}

impl AriEvents {
    /// An events stream fed by something else than a WebSocket (an in-memory Asterisk).
    pub fn from_receiver(receiver: mpsc::Receiver<EventStreamItem>, stats: Arc<EventStreamStats>) -> AriEvents {
        AriEvents { receiver, stats, task: None }
    }

    /// Opens the WebSocket for `config.applications` and keeps it open until dropped.
    /// Must be called inside a tokio runtime (the connection runs as a task).
    pub fn connect(config: &AriConfig) -> Result<AriEvents, AriError> {
        let url = config.events_url()?;
        let authorization = authorization_value(&config.username, &config.password);
        AriEvents::connect_url(&url, &authorization)
    }

    /// Opens `url` (`ws://host:port/ari/events?app=...`) with an `Authorization` value.
    pub(crate) fn connect_url(url: &str, authorization: &str) -> Result<AriEvents, AriError> {
        let mut request =
            url.into_client_request().map_err(|error| AriError::InvalidConfig(format!("events URL: {error}")))?;
        let mut header = HeaderValue::from_str(authorization)
            .map_err(|_| AriError::InvalidConfig("credentials are not a valid header value".into()))?;
        header.set_sensitive(true);
        request.headers_mut().insert(AUTHORIZATION, header);
        let (sender, receiver) = mpsc::channel(EVENT_BUFFER_CAPACITY_EVENTS);
        let stats = Arc::new(EventStreamStats::default());
        let task = tokio::spawn(run_connection_loop(request, sender, Arc::clone(&stats)));
        Ok(AriEvents { receiver, stats, task: Some(task) })
    }

    /// The next item; `None` once the stream has ended.
    pub async fn next(&mut self) -> Option<EventStreamItem> {
        self.receiver.recv().await
    }

    pub fn stats(&self) -> &EventStreamStats {
        &self.stats
    }
}

impl Drop for AriEvents {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Exponential backoff with full jitter, so a fleet of nodes that lost one Asterisk does not
/// reconnect in lockstep.
#[derive(Debug)]
pub struct ReconnectBackoff {
    ceiling_ms: u64,
    random_state: u64,
}

impl ReconnectBackoff {
    pub fn new(seed: u64) -> ReconnectBackoff {
        ReconnectBackoff { ceiling_ms: RECONNECT_BACKOFF_INITIAL_MS, random_state: seed | 1 }
    }

    /// A delay in `[ceiling/2, ceiling]`, then doubles the ceiling up to the maximum.
    pub fn next_delay_ms(&mut self) -> u64 {
        let delay = lineup_util::jitter::seeded_jitter_ms(&mut self.random_state, self.ceiling_ms);
        self.ceiling_ms = (self.ceiling_ms * 2).min(RECONNECT_BACKOFF_MAX_MS);
        debug_assert!(delay <= RECONNECT_BACKOFF_MAX_MS);
        delay
    }

    pub fn reset(&mut self) {
        self.ceiling_ms = RECONNECT_BACKOFF_INITIAL_MS;
    }
}

type ClientRequest = tokio_tungstenite::tungstenite::handshake::client::Request;

/// Runs until the consumer drops its receiver; each pass is one connection.
async fn run_connection_loop(
    request: ClientRequest,
    sender: mpsc::Sender<EventStreamItem>,
    stats: Arc<EventStreamStats>,
) {
    let mut backoff = ReconnectBackoff::new(lineup_util::entropy_seed());
    let mut dedup = EventDeduplicator::new();
    let socket_config = WebSocketConfig::default()
        .max_message_size(Some(EVENT_SIZE_MAX_BYTES))
        .max_frame_size(Some(EVENT_SIZE_MAX_BYTES));
    let connect_timeout = Duration::from_millis(CONNECT_TIMEOUT_MS);
    while !sender.is_closed() {
        let attempt = tokio_tungstenite::connect_async_with_config(request.clone(), Some(socket_config), true);
        match tokio::time::timeout(connect_timeout, attempt).await {
            Ok(Ok((socket, _response))) => {
                backoff.reset();
                dedup.clear();
                let connection_serial = stats.connections.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::info!(connection_serial, "ari events connected");
                if sender.send(EventStreamItem::Connected { connection_serial }).await.is_err() {
                    return;
                }
                let reason = pump_events(socket, &sender, &stats, &mut dedup).await;
                tracing::warn!(%reason, "ari events disconnected");
                if sender.send(EventStreamItem::Disconnected { reason }).await.is_err() {
                    return;
                }
            }
            Ok(Err(error)) => {
                stats.failed_connects.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "ari events connect failed");
            }
            Err(_) => {
                stats.failed_connects.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(timeout_ms = CONNECT_TIMEOUT_MS, "ari events connect timed out");
            }
        }
        tokio::time::sleep(Duration::from_millis(backoff.next_delay_ms())).await;
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads one connection until it ends; returns why.
async fn pump_events(
    mut socket: Socket,
    sender: &mpsc::Sender<EventStreamItem>,
    stats: &EventStreamStats,
    dedup: &mut EventDeduplicator,
) -> String {
    loop {
        let message = match socket.next().await {
            None => return "closed by Asterisk".into(),
            Some(Err(error)) => return error.to_string(),
            Some(Ok(message)) => message,
        };
        let text = match message {
            Message::Text(text) => text,
            Message::Close(frame) => return format!("close frame {frame:?}"),
            // Pings are answered by tungstenite; nothing else carries events.
            _ => continue,
        };
        let event = match AriEvent::parse(text.as_str()) {
            Ok(event) => event,
            Err(error) => {
                stats.malformed_messages.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "ari event dropped");
                continue;
            }
        };
        if let EventKind::Unknown { event_type } = &event.kind {
            stats.unknown_events.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(event_type, "ari event of unmodelled type ignored");
            continue;
        }
        if !dedup.admit(&event) {
            stats.duplicate_events.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if sender.send(EventStreamItem::Event(event)).await.is_err() {
            return "consumer gone".into();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_stays_bounded() {
        let mut backoff = ReconnectBackoff::new(42);
        let mut previous_ceiling = RECONNECT_BACKOFF_INITIAL_MS;
        for _ in 0..20 {
            let delay = backoff.next_delay_ms();
            assert!(delay >= previous_ceiling / 2 && delay <= previous_ceiling, "{delay} vs {previous_ceiling}");
            previous_ceiling = (previous_ceiling * 2).min(RECONNECT_BACKOFF_MAX_MS);
        }
        backoff.reset();
        assert!(backoff.next_delay_ms() <= RECONNECT_BACKOFF_INITIAL_MS);
    }

    #[test]
    fn different_seeds_give_different_delays() {
        let delays = |seed| {
            let mut backoff = ReconnectBackoff::new(seed);
            (0..8).map(|_| backoff.next_delay_ms()).collect::<Vec<_>>()
        };
        assert_ne!(delays(1), delays(2));
    }
}
