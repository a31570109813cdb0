//! The production transport: QUIC (quinn) with mutual TLS against the cluster CA.
//!
//! - Both sides present a certificate chained to the cluster CA; anything else fails the
//!   handshake (rustls' WebPKI verifiers on both sides).
//! - The dialler connects to site N with server name `site-N`, so a listener whose
//!   certificate names another site is refused by TLS itself.
//! - The dialler's first stream carries a hello frame with its site id; the listener checks
//!   that the client certificate names that site and closes the connection otherwise. The
//!   authenticated id is what the [`PeerHandler`] sees as `from`. The hello also carries
//!   the dialler's incarnation (a random id per process start).
//! - A restarted peer is heard at once: it greets every member as it starts
//!   ([`PeerTransport::greet`]), and a hello from a new incarnation of a peer makes us drop
//!   our own connection to it and redial without backoff. Without this, a connection to a
//!   peer killed without a goodbye (`kill -9`, power loss) looks alive until the idle
//!   timeout, and a peer that said goodbye is redialled only after the backoff.
//! - Each request uses its own bidirectional stream: one length-prefixed frame each way
//!   ([`crate::frame`]), size-checked before reading. One connection per peer is reused by
//!   all requests; a broken connection is re-dialled with jittered exponential backoff
//!   (at most 1 s), cut short when the peer's own dial reaches us. A connection on which
//!   requests time out and nothing was answered for a second gets a fresh one dialled
//!   beside it (after a partition, the old one's retransmission timer has backed off to
//!   seconds).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use tokio::time::Instant;

pub use super::quic_tls::install_crypto_provider;
use super::quic_tls::{client_config, server_config};
use super::{PeerHandler, PeerTransport, SplitMix64};
use crate::certs::{site_server_name, verify_certificate_names_site, SiteIdentity};
use crate::frame::{read_frame, write_frame, PEER_FRAME_MAX_BYTES};
use crate::ClusterError;

/// ALPN protocol id; bump the suffix on an incompatible wire change.
pub const ALPN_PROTOCOL: &[u8] = b"lineup/1";
/// Hello frame layout version (first byte of the hello).
const HELLO_VERSION: u8 = 2;
/// Version 1 had no incarnation; still accepted from peers running an older build.
const HELLO_VERSION_WITHOUT_INCARNATION: u8 = 1;
const HELLO_BYTES: usize = 1 + 8 + 8;
const HELLO_V1_BYTES: usize = 1 + 8;
const HELLO_ACCEPTED: &[u8] = b"ok";

/// Concurrent request streams a peer may have open on one connection.
pub const PEER_STREAMS_MAX: u32 = 256;
/// A connection with no traffic (keep-alives included) for this long is dead. Long enough
/// that a peer frozen for a few seconds (a VM pause, SIGSTOP) keeps its connection, whose
/// queued packets then flow the moment it runs again.
pub const PEER_IDLE_TIMEOUT_MS: u64 = 10_000;
/// Keep-alive period; well under the idle timeout, so a quiet link stays up.
pub const PEER_KEEP_ALIVE_MS: u64 = 2_000;
/// A connection on which requests time out and nothing has been answered for this long gets
/// a fresh connection dialled beside it, which replaces it once up. Through a partition,
/// the old connection's retransmission timer backs off to seconds and its congestion window
/// is spent on lost packets, so after the heal its first answers would wait for that timer;
/// a new connection starts clean.
pub const PEER_STALL_REDIAL_MS: u64 = 1_000;
/// Time allowed for the QUIC+TLS handshake and the hello exchange.
pub const PEER_CONNECT_TIMEOUT_MS: u64 = 3_000;
/// RTT assumed before the first sample: QUIC's 333 ms default makes a handshake whose first
/// packet met a peer still starting wait ~1 s for the retransmission; WAN sites are well
/// under this, and the estimate adapts after the first sample.
pub const PEER_INITIAL_RTT_MS: u64 = 100;
/// First reconnect delay after a failed dial; doubles per failure up to the maximum. The
/// maximum is short: a dial is a few datagrams, and after a partition heals the first dial
/// that gets through (from either side, see `PeerIncarnations::heard`) is when the peer is
/// heard again.
pub const RECONNECT_BACKOFF_BASE_MS: u64 = 100;
pub const RECONNECT_BACKOFF_MAX_MS: u64 = 1_000;

const _: () = assert!(PEER_KEEP_ALIVE_MS * 4 <= PEER_IDLE_TIMEOUT_MS);
const _: () = assert!(PEER_STALL_REDIAL_MS < PEER_IDLE_TIMEOUT_MS);

/// QUIC application error codes.
const CLOSE_REFUSED: u32 = 1;
const CLOSE_SHUTDOWN: u32 = 2;
const STREAM_BAD_FRAME: u32 = 3;
/// Our connection to a peer that has restarted since it was made.
const CLOSE_REPLACED: u32 = 4;
/// We dialled a fresh connection because this one answered nothing for a while.
const CLOSE_STALLED: u32 = 5;

/// Dial state of one peer.
struct PeerLink {
    connection: Option<quinn::Connection>,
    consecutive_failures: u32,
    next_dial_at: Option<Instant>,
}

/// What the listening side learns from hellos, shared with the dialling side.
#[derive(Default)]
struct PeerIncarnations {
    /// The last incarnation each peer greeted us with.
    seen: Mutex<BTreeMap<u64, u64>>,
    /// Peers that restarted since our connection to them was made: the next request drops
    /// that connection and dials at once.
    restarted: Mutex<BTreeSet<u64>>,
    /// Peers whose dial reached us since we last dialled them: they are reachable now (a
    /// partition healed), so a backoff after our own failed dials is over.
    heard: Mutex<BTreeSet<u64>>,
}

impl PeerIncarnations {
    /// Records a hello; a peer we had not heard from, or one with a new incarnation, may
    /// have restarted since we dialled it.
    fn greeted(&self, site: u64, incarnation: Option<u64>) {
        self.heard.lock().unwrap_or_else(|p| p.into_inner()).insert(site);
        let Some(incarnation) = incarnation else { return };
        let previous = self.seen.lock().unwrap_or_else(|p| p.into_inner()).insert(site, incarnation);
        if previous != Some(incarnation) {
            self.restarted.lock().unwrap_or_else(|p| p.into_inner()).insert(site);
        }
    }

    fn take_restarted(&self, site: u64) -> bool {
        self.restarted.lock().unwrap_or_else(|p| p.into_inner()).remove(&site)
    }

    fn take_heard(&self, site: u64) -> bool {
        self.heard.lock().unwrap_or_else(|p| p.into_inner()).remove(&site)
    }

    fn is_restarted(&self, site: u64) -> bool {
        self.restarted.lock().unwrap_or_else(|p| p.into_inner()).contains(&site)
    }
}

/// A site's QUIC endpoint: it listens for peers and dials them.
pub struct QuicTransport {
    /// Shared with dials running in their own tasks (see [`QuicTransport::call`]).
    inner: Arc<QuicInner>,
}

struct QuicInner {
    site: u64,
    /// Random per process start, sent in every hello.
    incarnation: u64,
    endpoint: quinn::Endpoint,
    /// One entry per peer ever dialled; each behind its own async lock so concurrent
    /// requests to a peer share one dial.
    links: Mutex<BTreeMap<u64, Arc<tokio::sync::Mutex<PeerLink>>>>,
    incarnations: Arc<PeerIncarnations>,
    jitter: Mutex<SplitMix64>,
    /// When each peer last answered a request (or was dialled): how long a link is quiet.
    answered_at: Mutex<BTreeMap<u64, Instant>>,
    /// Peers whose stalled connection is being replaced (one dial beside it at a time).
    redialling: Mutex<BTreeSet<u64>>,
    /// Where this node reaches each peer, from its own node file: used instead of the
    /// address in the Raft membership, which is the proposing leader's view (sites may reach
    /// each other at different addresses: a VPN from one, a public address from another).
    peer_addresses: BTreeMap<u64, String>,
}

impl QuicTransport {
    /// Binds the endpoint (e.g. `127.0.0.1:0` in tests). Call [`PeerTransport::serve`] to
    /// start accepting.
    pub fn bind(identity: &SiteIdentity, listen: SocketAddr) -> Result<Self, ClusterError> {
        Self::bind_with_peers(identity, listen, BTreeMap::new())
    }

    /// As [`QuicTransport::bind`], reaching the sites in `peer_addresses` at those
    /// addresses whatever the membership says (others at the membership's).
    pub fn bind_with_peers(
        identity: &SiteIdentity,
        listen: SocketAddr,
        peer_addresses: BTreeMap<u64, String>,
    ) -> Result<Self, ClusterError> {
        install_crypto_provider();
        let mut endpoint = quinn::Endpoint::server(server_config(identity)?, listen)?;
        endpoint.set_default_client_config(client_config(identity)?);
        let mut jitter = SplitMix64::from_entropy();
        let inner = QuicInner {
            site: identity.site,
            incarnation: jitter.next_u64(),
            endpoint,
            links: Mutex::new(BTreeMap::new()),
            incarnations: Arc::new(PeerIncarnations::default()),
            jitter: Mutex::new(jitter),
            answered_at: Mutex::new(BTreeMap::new()),
            redialling: Mutex::new(BTreeSet::new()),
            peer_addresses,
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    pub fn local_addr(&self) -> Result<SocketAddr, ClusterError> {
        Ok(self.inner.endpoint.local_addr()?)
    }

    /// Closes every connection and stops accepting.
    pub fn close(&self) {
        self.inner.endpoint.close(CLOSE_SHUTDOWN.into(), b"shutdown");
    }

    /// Closes every connection and waits (bounded by the idle timeout) until the peers
    /// have been told, so a restarted node can bind the same address once the last
    /// handle on this transport is dropped.
    pub async fn shutdown(&self) {
        self.close();
        let _ =
            tokio::time::timeout(Duration::from_millis(PEER_IDLE_TIMEOUT_MS), self.inner.endpoint.wait_idle()).await;
    }

    /// The connection to `target` if one is up and nobody is dialling or replacing it.
    fn live_connection(&self, target: u64) -> Option<quinn::Connection> {
        if self.inner.incarnations.is_restarted(target) {
            return None;
        }
        let link = self.inner.link(target);
        let link = link.try_lock().ok()?;
        link.connection.clone().filter(|c| c.close_reason().is_none())
    }

    /// The connection to `target`, dialling in a task of its own when there is none: the
    /// dial runs to its own timeout even if this request gives up first, so a handshake
    /// slower than one heartbeat's budget still completes and the next request uses it.
    async fn connection_by(
        &self,
        target: u64,
        target_addr: &str,
        deadline: Instant,
    ) -> Result<quinn::Connection, ClusterError> {
        if let Some(connection) = self.live_connection(target) {
            return Ok(connection);
        }
        let inner = self.inner.clone();
        let addr = target_addr.to_owned();
        let dial = tokio::spawn(async move { inner.connection(target, &addr).await });
        let unreachable = |reason: &str| ClusterError::Unreachable { site: target, reason: reason.into() };
        match tokio::time::timeout_at(deadline, dial).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(_)) => Err(unreachable("the dial task failed")),
            Err(_) => Err(unreachable("connect did not finish in time")),
        }
    }
}

impl QuicTransport {
    /// A request on `stalled` timed out: if `target` has answered nothing for
    /// `PEER_STALL_REDIAL_MS`, a fresh connection is dialled beside it in a task of its own.
    fn redial_if_stalled(&self, target: u64, target_addr: &str, stalled: &quinn::Connection) {
        if self.inner.quiet_for(target) < Duration::from_millis(PEER_STALL_REDIAL_MS) {
            return;
        }
        if !self.inner.redialling.lock().unwrap_or_else(|p| p.into_inner()).insert(target) {
            return;
        }
        let inner = self.inner.clone();
        let addr = target_addr.to_owned();
        let stalled_id = stalled.stable_id();
        tokio::spawn(async move {
            inner.replace_stalled(target, &addr, stalled_id).await;
            inner.redialling.lock().unwrap_or_else(|p| p.into_inner()).remove(&target);
        });
    }
}

impl QuicInner {
    /// The address to dial `target` at: this node's own for it, else the membership's.
    fn address_of<'a>(&'a self, target: u64, membership_addr: &'a str) -> &'a str {
        self.peer_addresses.get(&target).map_or(membership_addr, String::as_str)
    }

    fn note_answer(&self, target: u64) {
        self.answered_at.lock().unwrap_or_else(|p| p.into_inner()).insert(target, Instant::now());
    }

    /// How long `target` has answered nothing (forever if it never did).
    fn quiet_for(&self, target: u64) -> Duration {
        let answered = self.answered_at.lock().unwrap_or_else(|p| p.into_inner()).get(&target).copied();
        answered.map_or(Duration::MAX, |at| at.elapsed())
    }

    /// Dials `target` and, once up, puts the new connection in place of the stalled one
    /// (unless something replaced it meanwhile). The link is not held during the dial: a
    /// restarted peer's greeting must be able to redial it at once (see `connection`). A
    /// failed dial backs off as any other.
    async fn replace_stalled(&self, target: u64, target_addr: &str, stalled_id: usize) {
        let link = self.link(target);
        if link.lock().await.next_dial_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        let timeout = Duration::from_millis(PEER_CONNECT_TIMEOUT_MS);
        let dialled = tokio::time::timeout(timeout, self.dial(target, target_addr)).await;
        let mut link = link.lock().await;
        let still_stalled = link.connection.as_ref().map(quinn::Connection::stable_id) == Some(stalled_id);
        match dialled {
            Ok(Ok(fresh)) if still_stalled => {
                if let Some(old) = link.connection.replace(fresh) {
                    old.close(CLOSE_STALLED.into(), b"replaced after a stall");
                }
                link.consecutive_failures = 0;
                link.next_dial_at = None;
                self.note_answer(target);
                tracing::debug!(peer = target, "replaced a stalled connection");
            }
            Ok(Ok(fresh)) => fresh.close(CLOSE_REPLACED.into(), b"replaced meanwhile"),
            _ if still_stalled => {
                link.consecutive_failures = link.consecutive_failures.saturating_add(1);
                link.next_dial_at = Some(Instant::now() + self.backoff(link.consecutive_failures));
            }
            _ => {}
        }
    }

    fn link(&self, target: u64) -> Arc<tokio::sync::Mutex<PeerLink>> {
        let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        links
            .entry(target)
            .or_insert_with(|| {
                Arc::new(tokio::sync::Mutex::new(PeerLink {
                    connection: None,
                    consecutive_failures: 0,
                    next_dial_at: None,
                }))
            })
            .clone()
    }

    fn backoff(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(16);
        let ceiling = RECONNECT_BACKOFF_BASE_MS.saturating_mul(1 << exponent).min(RECONNECT_BACKOFF_MAX_MS);
        // Full jitter in the upper half: spreads simultaneous redials after a shared outage.
        let jitter = self.jitter.lock().unwrap_or_else(|p| p.into_inner()).below(ceiling / 2 + 1);
        Duration::from_millis(ceiling / 2 + jitter)
    }

    /// The live connection to `target`, dialling if there is none and the backoff allows.
    async fn connection(&self, target: u64, target_addr: &str) -> Result<quinn::Connection, ClusterError> {
        let link = self.link(target);
        let mut link = link.lock().await;
        if self.incarnations.take_restarted(target) {
            if let Some(old) = link.connection.take() {
                old.close(CLOSE_REPLACED.into(), b"you restarted");
            }
            link.consecutive_failures = 0;
            link.next_dial_at = None;
        }
        if self.incarnations.take_heard(target) {
            link.consecutive_failures = 0;
            link.next_dial_at = None;
        }
        if let Some(connection) = &link.connection {
            match connection.close_reason() {
                None => return Ok(connection.clone()),
                Some(reason) => {
                    // Keep-alives keep a healthy link open, so a closed one means the peer
                    // went away (or shut down): back off before redialling it, instead of
                    // spending a whole connect timeout on a peer that is likely down.
                    link.connection = None;
                    link.consecutive_failures = link.consecutive_failures.saturating_add(1);
                    link.next_dial_at = Some(Instant::now() + self.backoff(link.consecutive_failures));
                    return Err(ClusterError::Unreachable {
                        site: target,
                        reason: format!("connection closed: {reason}"),
                    });
                }
            }
        }
        if let Some(at) = link.next_dial_at {
            if Instant::now() < at {
                return Err(ClusterError::Unreachable {
                    site: target,
                    reason: "backing off after a failed dial".into(),
                });
            }
        }
        let dialled =
            tokio::time::timeout(Duration::from_millis(PEER_CONNECT_TIMEOUT_MS), self.dial(target, target_addr)).await;
        let dialled = dialled
            .unwrap_or_else(|_| Err(ClusterError::Unreachable { site: target, reason: "connect timed out".into() }));
        match dialled {
            Ok(connection) => {
                link.consecutive_failures = 0;
                link.next_dial_at = None;
                link.connection = Some(connection.clone());
                self.note_answer(target);
                Ok(connection)
            }
            Err(e) => {
                link.consecutive_failures = link.consecutive_failures.saturating_add(1);
                link.next_dial_at = Some(Instant::now() + self.backoff(link.consecutive_failures));
                Err(e)
            }
        }
    }

    async fn dial(&self, target: u64, target_addr: &str) -> Result<quinn::Connection, ClusterError> {
        let unreachable = |reason: String| ClusterError::Unreachable { site: target, reason };
        let addr = tokio::net::lookup_host(target_addr)
            .await
            .map_err(|e| unreachable(format!("resolve {target_addr}: {e}")))?
            .next()
            .ok_or_else(|| unreachable(format!("{target_addr} resolves to nothing")))?;
        let connecting =
            self.endpoint.connect(addr, &site_server_name(target)).map_err(|e| unreachable(e.to_string()))?;
        let connection = connecting.await.map_err(|e| unreachable(format!("handshake: {e}")))?;
        let (mut send, mut recv) = connection.open_bi().await.map_err(|e| unreachable(e.to_string()))?;
        let mut hello = Vec::with_capacity(HELLO_BYTES);
        hello.push(HELLO_VERSION);
        hello.extend_from_slice(&self.site.to_le_bytes());
        hello.extend_from_slice(&self.incarnation.to_le_bytes());
        write_frame(&mut send, &hello, HELLO_BYTES).await?;
        let _ = send.finish();
        match read_frame(&mut recv, HELLO_ACCEPTED.len()).await {
            Ok(answer) if answer == HELLO_ACCEPTED => Ok(connection),
            _ => {
                let reason =
                    connection.close_reason().map(|r| r.to_string()).unwrap_or_else(|| "no hello answer".into());
                Err(ClusterError::PeerRefused(format!("site {target} refused us: {reason}")))
            }
        }
    }

    async fn exchange(connection: &quinn::Connection, request: &[u8]) -> Result<Vec<u8>, ClusterError> {
        let site = 0;
        // Failing to open a stream means nothing was sent.
        let (mut send, mut recv) =
            connection.open_bi().await.map_err(|e| ClusterError::Unreachable { site, reason: e.to_string() })?;
        // From here on the peer may have received the request: a failure leaves the
        // outcome unknown.
        let lost = |e: ClusterError| ClusterError::ConnectionLost { site, reason: e.to_string() };
        write_frame(&mut send, request, PEER_FRAME_MAX_BYTES).await.map_err(lost)?;
        let _ = send.finish();
        read_frame(&mut recv, PEER_FRAME_MAX_BYTES).await.map_err(lost)
    }
}

impl Drop for QuicTransport {
    fn drop(&mut self) {
        self.close();
    }
}

impl PeerTransport for QuicTransport {
    fn serve(&self, handler: Arc<dyn PeerHandler>) {
        let endpoint = self.inner.endpoint.clone();
        let incarnations = self.inner.incarnations.clone();
        tokio::spawn(async move {
            while let Some(incoming) = endpoint.accept().await {
                tokio::spawn(serve_connection(incoming, handler.clone(), incarnations.clone()));
            }
        });
    }

    async fn greet(&self, target: u64, target_addr: &str) {
        let target_addr = self.inner.address_of(target, target_addr);
        let timeout = Duration::from_millis(PEER_CONNECT_TIMEOUT_MS);
        if let Ok(Err(e)) = tokio::time::timeout(timeout, self.inner.connection(target, target_addr)).await {
            tracing::debug!(peer = target, error = %e, "could not greet peer");
        }
    }

    async fn call(
        &self,
        target: u64,
        target_addr: &str,
        request: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, ClusterError> {
        if request.len() > PEER_FRAME_MAX_BYTES {
            return Err(ClusterError::Frame(format!("request of {} bytes exceeds the frame limit", request.len())));
        }
        let target_addr = self.inner.address_of(target, target_addr);
        let deadline = Instant::now() + timeout;
        let connection = self.connection_by(target, target_addr, deadline).await?;
        match tokio::time::timeout_at(deadline, QuicInner::exchange(&connection, &request)).await {
            Ok(Ok(answer)) => {
                self.inner.note_answer(target);
                Ok(answer)
            }
            Ok(Err(e)) => Err(e.for_site(target)),
            Err(_) => {
                self.redial_if_stalled(target, target_addr, &connection);
                Err(ClusterError::Timeout { site: target, timeout_ms: timeout.as_millis() as u64 })
            }
        }
    }
}

/// Site id and incarnation (None from an older build) read from a hello.
fn parse_hello(hello: &[u8]) -> Option<(u64, Option<u64>)> {
    let word = |at: usize| hello.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    match (hello.first(), hello.len()) {
        (Some(&HELLO_VERSION), HELLO_BYTES) => Some((word(1)?, Some(word(9)?))),
        (Some(&HELLO_VERSION_WITHOUT_INCARNATION), HELLO_V1_BYTES) => Some((word(1)?, None)),
        _ => None,
    }
}

/// The site a connected peer authenticated as (from its hello and certificate), and the
/// incarnation it greeted with.
fn authenticate(connection: &quinn::Connection, hello: &[u8]) -> Result<(u64, Option<u64>), ClusterError> {
    let (claimed, incarnation) =
        parse_hello(hello).ok_or_else(|| ClusterError::PeerRefused("malformed hello".into()))?;
    let identity =
        connection.peer_identity().ok_or_else(|| ClusterError::PeerRefused("no client certificate".into()))?;
    let chain = identity
        .downcast::<Vec<CertificateDer<'static>>>()
        .map_err(|_| ClusterError::PeerRefused("unexpected peer identity type".into()))?;
    let leaf = chain.first().ok_or_else(|| ClusterError::PeerRefused("empty client certificate chain".into()))?;
    verify_certificate_names_site(leaf, claimed)?;
    Ok((claimed, incarnation))
}

async fn serve_connection(
    incoming: quinn::Incoming,
    handler: Arc<dyn PeerHandler>,
    incarnations: Arc<PeerIncarnations>,
) {
    // The handshake fails here for a client without a certificate chained to our CA.
    let connection = match incoming.await {
        Ok(connection) => connection,
        Err(e) => {
            tracing::warn!(error = %e, "peer handshake failed");
            return;
        }
    };
    let from =
        match tokio::time::timeout(Duration::from_millis(PEER_CONNECT_TIMEOUT_MS), accept_hello(&connection)).await {
            Ok(Ok((site, incarnation))) => {
                incarnations.greeted(site, incarnation);
                site
            }
            Ok(Err(e)) => {
                tracing::warn!(remote = %connection.remote_address(), error = %e, "peer refused");
                connection.close(CLOSE_REFUSED.into(), e.to_string().as_bytes());
                return;
            }
            Err(_) => {
                connection.close(CLOSE_REFUSED.into(), b"no hello");
                return;
            }
        };
    // quinn caps open streams at PEER_STREAMS_MAX, so the tasks spawned here are bounded.
    while let Ok((send, recv)) = connection.accept_bi().await {
        tokio::spawn(serve_stream(from, send, recv, handler.clone()));
    }
}

async fn accept_hello(connection: &quinn::Connection) -> Result<(u64, Option<u64>), ClusterError> {
    let (mut send, mut recv) = connection.accept_bi().await.map_err(|e| ClusterError::PeerRefused(e.to_string()))?;
    let hello = read_frame(&mut recv, HELLO_BYTES).await?;
    let greeting = authenticate(connection, &hello)?;
    write_frame(&mut send, HELLO_ACCEPTED, HELLO_ACCEPTED.len()).await?;
    let _ = send.finish();
    Ok(greeting)
}

async fn serve_stream(
    from: u64,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    handler: Arc<dyn PeerHandler>,
) {
    let request = match read_frame(&mut recv, PEER_FRAME_MAX_BYTES).await {
        Ok(request) => request,
        Err(e) => {
            // Oversized, truncated or otherwise unreadable: drop this stream only.
            tracing::warn!(peer = from, error = %e, "bad frame from peer");
            let _ = recv.stop(STREAM_BAD_FRAME.into());
            let _ = send.reset(STREAM_BAD_FRAME.into());
            return;
        }
    };
    let response = handler.handle(from, request).await;
    if let Err(e) = write_frame(&mut send, &response, PEER_FRAME_MAX_BYTES).await {
        tracing::warn!(peer = from, error = %e, "could not answer peer");
        let _ = send.reset(STREAM_BAD_FRAME.into());
        return;
    }
    let _ = send.finish();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{generate_ca, issue_site_material, CaMaterial, SiteMaterial};
    use crate::transport::ResponseFuture;
    use lineup_core::codec;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const TIMEOUT: Duration = Duration::from_secs(5);

    /// Answers `from` followed by the request; counts the requests it saw.
    struct WhoAmI(Arc<AtomicUsize>);

    impl PeerHandler for WhoAmI {
        fn handle(&self, from: u64, request: Vec<u8>) -> ResponseFuture {
            self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                let mut answer = from.to_le_bytes().to_vec();
                answer.extend(request);
                answer
            })
        }
    }

    fn identity(ca: &CaMaterial, site: u64) -> SiteIdentity {
        SiteIdentity::from_material(&issue_site_material(ca, site).unwrap()).unwrap()
    }

    fn serving(ca: &CaMaterial, site: u64) -> (QuicTransport, String, Arc<AtomicUsize>) {
        let transport = QuicTransport::bind(&identity(ca, site), "127.0.0.1:0".parse().unwrap()).unwrap();
        let seen = Arc::new(AtomicUsize::new(0));
        transport.serve(Arc::new(WhoAmI(seen.clone())));
        let addr = transport.local_addr().unwrap().to_string();
        (transport, addr, seen)
    }

    #[tokio::test]
    async fn authenticated_requests_reuse_one_connection() {
        let ca = generate_ca().unwrap();
        let (_two, two_addr, seen) = serving(&ca, 2);
        let (one, _, _) = serving(&ca, 1);
        let mut calls = tokio::task::JoinSet::new();
        let one = Arc::new(one);
        for i in 0..16u8 {
            let one = one.clone();
            let addr = two_addr.clone();
            calls.spawn(async move { one.call(2, &addr, vec![i], TIMEOUT).await });
        }
        while let Some(answer) = calls.join_next().await {
            let answer = answer.unwrap().unwrap();
            assert_eq!(&answer[..8], &1u64.to_le_bytes(), "the server saw the authenticated sender");
        }
        assert_eq!(seen.load(Ordering::SeqCst), 16);
        let links = one.inner.links.lock().unwrap();
        let link = links.get(&2).unwrap().try_lock().unwrap();
        let connection = link.connection.as_ref().unwrap();
        assert_eq!(link.consecutive_failures, 0);
        // All 16 requests and the hello went over this one connection.
        assert!(connection.stats().frame_tx.stream >= 17);
    }

    #[tokio::test]
    async fn a_peer_certified_by_another_ca_is_refused() {
        let ca = generate_ca().unwrap();
        let stranger_ca = generate_ca().unwrap();
        let (_two, two_addr, seen) = serving(&ca, 2);
        let (stranger, _, _) = serving(&stranger_ca, 1);
        let err = stranger.call(2, &two_addr, b"hi".to_vec(), TIMEOUT).await.unwrap_err();
        assert!(matches!(err, ClusterError::Unreachable { .. } | ClusterError::PeerRefused(_)), "{err}");
        assert_eq!(seen.load(Ordering::SeqCst), 0);
        // Nor may we talk to a stranger's listener.
        let (_stranger_two, stranger_two_addr, stranger_seen) = serving(&stranger_ca, 2);
        let (one, _, _) = serving(&ca, 1);
        assert!(one.call(2, &stranger_two_addr, b"hi".to_vec(), TIMEOUT).await.is_err());
        assert_eq!(stranger_seen.load(Ordering::SeqCst), 0);
    }

    /// Rotating the cluster CA without a cluster-wide restart: every node first trusts a CA
    /// file holding the old and the new CA (both named "Lineup cluster CA"), then sites move
    /// to certificates of the new CA one at a time. Sites of either CA must talk meanwhile.
    #[tokio::test]
    async fn a_ca_file_with_the_old_and_the_new_ca_lets_sites_of_either_talk() {
        let old_ca = generate_ca().unwrap();
        let new_ca = generate_ca().unwrap();
        let bundle = format!("{}{}", old_ca.cert_pem, new_ca.cert_pem);
        let bundled = |ca: &CaMaterial, site: u64| {
            let material = SiteMaterial { ca_cert_pem: bundle.clone(), ..issue_site_material(ca, site).unwrap() };
            let identity = SiteIdentity::from_material(&material).unwrap();
            let transport = QuicTransport::bind(&identity, "127.0.0.1:0".parse().unwrap()).unwrap();
            let seen = Arc::new(AtomicUsize::new(0));
            transport.serve(Arc::new(WhoAmI(seen.clone())));
            let addr = transport.local_addr().unwrap().to_string();
            (transport, addr, seen)
        };
        let (old_one, old_one_addr, old_seen) = bundled(&old_ca, 1);
        let (new_two, new_two_addr, new_seen) = bundled(&new_ca, 2);
        let answer = old_one.call(2, &new_two_addr, b"hi".to_vec(), TIMEOUT).await.unwrap();
        assert_eq!(&answer[..8], &1u64.to_le_bytes());
        let answer = new_two.call(1, &old_one_addr, b"hi".to_vec(), TIMEOUT).await.unwrap();
        assert_eq!(&answer[..8], &2u64.to_le_bytes());
        assert_eq!((old_seen.load(Ordering::SeqCst), new_seen.load(Ordering::SeqCst)), (1, 1));
        // A node still trusting only the old CA refuses a site already on the new one: every
        // node must have the bundle before the first site moves.
        let (old_only, _, _) = serving(&old_ca, 3);
        assert!(old_only.call(2, &new_two_addr, b"hi".to_vec(), TIMEOUT).await.is_err());
    }

    #[tokio::test]
    async fn a_listener_whose_certificate_names_another_site_is_refused() {
        let ca = generate_ca().unwrap();
        let (_three, three_addr, seen) = serving(&ca, 3);
        let (one, _, _) = serving(&ca, 1);
        // We believe site 2 listens there, but the certificate says site 3.
        let err = one.call(2, &three_addr, b"hi".to_vec(), TIMEOUT).await.unwrap_err();
        assert!(matches!(err, ClusterError::Unreachable { .. }), "{err}");
        assert_eq!(seen.load(Ordering::SeqCst), 0);
        // The failed dial is followed by a backoff, not an immediate redial.
        let err = one.call(2, &three_addr, b"hi".to_vec(), TIMEOUT).await.unwrap_err();
        assert!(matches!(err, ClusterError::Unreachable { ref reason, .. } if reason.contains("backing off")), "{err}");
    }

    /// A hand-driven client: valid site-1 certificate, arbitrary hello and frames.
    async fn raw_connection(ca: &CaMaterial, server_site: u64, addr: &str, claimed_site: u64) -> quinn::Connection {
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        endpoint.set_default_client_config(client_config(&identity(ca, 1)).unwrap());
        let connection =
            endpoint.connect(addr.parse().unwrap(), &site_server_name(server_site)).unwrap().await.unwrap();
        let (mut send, mut recv) = connection.open_bi().await.unwrap();
        let mut hello = vec![HELLO_VERSION];
        hello.extend_from_slice(&claimed_site.to_le_bytes());
        hello.extend_from_slice(&7u64.to_le_bytes());
        write_frame(&mut send, &hello, HELLO_BYTES).await.unwrap();
        send.finish().unwrap();
        let _ = read_frame(&mut recv, HELLO_ACCEPTED.len()).await;
        connection
    }

    #[tokio::test]
    async fn a_peer_claiming_a_site_its_certificate_does_not_name_is_refused() {
        let ca = generate_ca().unwrap();
        let (_two, two_addr, seen) = serving(&ca, 2);
        // Certificate for site 1, hello claims site 3.
        let connection = raw_connection(&ca, 2, &two_addr, 3).await;
        let closed =
            tokio::time::timeout(TIMEOUT, connection.closed()).await.expect("the server closes the connection");
        assert!(
            matches!(closed, quinn::ConnectionError::ApplicationClosed(ref c) if c.error_code == CLOSE_REFUSED.into())
        );
        assert_eq!(seen.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn garbage_truncated_and_oversized_frames_are_rejected_and_the_link_survives() {
        let ca = generate_ca().unwrap();
        // A handler that decodes like the node does: garbage becomes an error answer.
        struct Decoding;
        impl PeerHandler for Decoding {
            fn handle(&self, _from: u64, request: Vec<u8>) -> ResponseFuture {
                let answer =
                    match codec::decode_versioned_bounded::<(u64, String), { crate::frame::PEER_DECODE_LIMIT_BYTES }>(
                        &request,
                    ) {
                        Ok((n, s)) => format!("ok {n} {s}"),
                        Err(e) => format!("refused: {e}"),
                    };
                Box::pin(async move { answer.into_bytes() })
            }
        }
        let server = QuicTransport::bind(&identity(&ca, 2), "127.0.0.1:0".parse().unwrap()).unwrap();
        server.serve(Arc::new(Decoding));
        let addr = server.local_addr().unwrap().to_string();
        let connection = raw_connection(&ca, 2, &addr, 1).await;

        // Oversized: a length prefix over the limit; the server resets the stream unread.
        let (mut send, mut recv) = connection.open_bi().await.unwrap();
        send.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        let _ = send.finish();
        assert!(read_frame(&mut recv, PEER_FRAME_MAX_BYTES).await.is_err());

        // Truncated: declares 100 bytes, sends 10, finishes.
        let (mut send, mut recv) = connection.open_bi().await.unwrap();
        send.write_all(&100u32.to_be_bytes()).await.unwrap();
        send.write_all(&[7u8; 10]).await.unwrap();
        send.finish().unwrap();
        assert!(read_frame(&mut recv, PEER_FRAME_MAX_BYTES).await.is_err());

        // Garbage inside a well-formed frame: the handler refuses it with an answer.
        let garbage = QuicInner::exchange(&connection, &[0xFF; 64]).await.unwrap();
        assert!(String::from_utf8(garbage).unwrap().starts_with("refused"));

        // The connection still serves good requests.
        let good = codec::encode_versioned(&(5u64, String::from("sales"))).unwrap();
        let answer = QuicInner::exchange(&connection, &good).await.unwrap();
        assert_eq!(answer, b"ok 5 sales");
        assert!(connection.close_reason().is_none());
    }
}
