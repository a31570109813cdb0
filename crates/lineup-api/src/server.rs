//! The accept loop: hyper's HTTP/1 server on each accepted connection, under the limits of
//! [`ApiLimits`]: at most `connections_max` open connections (one more is answered 503 and
//! closed), a request head read within `header_read_timeout_ms`, and a kept-alive
//! connection closed after `keep_alive_idle_timeout_ms` with no request and no byte. Each
//! request carries its client's address as `ConnectInfo<SocketAddr>`. With TLS, each
//! connection first finishes its handshake within `tls_handshake_timeout_ms`, holding its
//! place under the cap meanwhile; the header and idle timeouts start after it.

use crate::limits::{ApiLimits, SHUTDOWN_DRAIN_MAX_MS};
use crate::tls;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower_service::Service;

/// After an accept error (out of file descriptors), the loop pauses this long before the
/// next accept instead of spinning.
pub const ACCEPT_ERROR_PAUSE_MS: u64 = 100;

/// What a plain-HTTP connection over the cap is told before it is closed (a TLS one is
/// closed without a word: it expects a handshake, not these bytes).
const OVER_CAPACITY_ANSWER: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// Serves `app` on `listener` until `stop` turns true, then lets open connections finish
/// (at most [`SHUTDOWN_DRAIN_MAX_MS`]).
pub(crate) async fn serve_connections(
    listener: TcpListener,
    app: Router,
    limits: ApiLimits,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(limits.connections_max));
    while !*stop.borrow() {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            changed = stop.changed() => match changed {
                Ok(()) => continue,
                // The switch is gone: nothing can stop the server any more, so stop now.
                Err(_) => break,
            },
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "API accept failed");
                tokio::time::sleep(Duration::from_millis(ACCEPT_ERROR_PAUSE_MS)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            if tls.is_none() {
                // Best effort: the socket buffer of a new connection has room for these bytes.
                let _ = stream.try_write(OVER_CAPACITY_ANSWER);
            }
            continue;
        };
        let connection = Connection { peer, app: app.clone(), limits: limits.clone(), stop: stop.clone() };
        tokio::spawn(serve_connection(stream, connection, tls.clone(), permit));
    }
    drop(listener);
    let all = u32::try_from(limits.connections_max).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(Duration::from_millis(SHUTDOWN_DRAIN_MAX_MS), permits.acquire_many(all)).await;
    if drained.is_err() {
        tracing::warn!(open = limits.connections_max - permits.available_permits(), "API connections still open");
    }
}

/// What one accepted connection is served with.
struct Connection {
    peer: SocketAddr,
    app: Router,
    limits: ApiLimits,
    stop: watch::Receiver<bool>,
}

async fn serve_connection(
    stream: TcpStream,
    connection: Connection,
    tls: Option<TlsAcceptor>,
    permit: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let tracked = TrackedStream { inner: stream, activity: Arc::clone(&activity), _permit: permit };
    match tls {
        None => serve_http(tracked, connection, activity).await,
        Some(acceptor) => {
            let timeout_ms = connection.limits.tls_handshake_timeout_ms;
            let mut stop = connection.stop.clone();
            // On shutdown a connection still shaking hands is dropped: it has no request yet.
            let handshake = tokio::select! {
                stream = tls::handshake(&acceptor, tracked, timeout_ms, connection.peer) => stream,
                _ = stop.changed() => None,
            };
            if let Some(stream) = handshake {
                serve_http(stream, connection, activity).await;
            }
        }
    }
}

/// HTTP/1 (and WebSocket upgrades) over `stream`, plain or TLS, until it ends or is idle.
async fn serve_http<S>(stream: S, connection: Connection, activity: Arc<Activity>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Connection { peer, app, limits, mut stop } = connection;
    let io = TokioIo::new(stream);
    let requests = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let in_progress = RequestInProgress::start(Arc::clone(&requests));
        let mut app = app.clone();
        async move {
            let response = app.call(request).await;
            drop(in_progress);
            response
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms));
    let connection = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(connection);
    let idle_limit = Duration::from_millis(limits.keep_alive_idle_timeout_ms);
    let mut closing = false;
    loop {
        // While a request is in progress the connection is not idle: look again later.
        let idle_deadline = match activity.requests.load(Ordering::Acquire) {
            0 => activity.last_at() + idle_limit,
            _ => Instant::now() + idle_limit,
        };
        tokio::select! {
            finished = connection.as_mut() => {
                if let Err(error) = finished {
                    tracing::debug!(%error, %peer, "API connection ended");
                }
                return;
            }
            _ = stop.changed(), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = tokio::time::sleep_until(idle_deadline), if !closing => {
                if activity.idle_for(idle_limit) {
                    // No request in progress: hyper closes the connection at once.
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}

/// When a connection last moved a byte, and how many of its requests are in progress.
struct Activity {
    base: Instant,
    last_ms: AtomicU64,
    requests: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self { base: Instant::now(), last_ms: AtomicU64::new(0), requests: AtomicUsize::new(0) }
    }

    fn touch(&self) {
        let now_ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(now_ms, Ordering::Relaxed);
    }

    fn last_at(&self) -> Instant {
        self.base + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    fn idle_for(&self, limit: Duration) -> bool {
        self.requests.load(Ordering::Acquire) == 0 && self.last_at().elapsed() >= limit
    }
}

/// A request being handled: the connection is not idle while one is.
struct RequestInProgress(Arc<Activity>);

impl RequestInProgress {
    fn start(activity: Arc<Activity>) -> Self {
        activity.requests.fetch_add(1, Ordering::AcqRel);
        Self(activity)
    }
}

impl Drop for RequestInProgress {
    fn drop(&mut self) {
        self.0.touch();
        self.0.requests.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The accepted stream, noting every byte moved; it holds the connection's place under the
/// cap for as long as it lives (through a WebSocket upgrade too).
struct TrackedStream {
    inner: TcpStream,
    activity: Arc<Activity>,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for TrackedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
