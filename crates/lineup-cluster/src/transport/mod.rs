//! The peer transport seam: one request, one response, between two sites.
//!
//! Raft RPCs and forwarded client writes are encoded by the node ([`crate::node`]) into
//! opaque request bytes; a transport only moves them. Two implementations:
//! - [`quic::QuicTransport`]: quinn with mutual TLS against the cluster CA (production);
//! - [`memory::MemoryNetwork`]: in-process, with composable fault filters (tests and the
//!   deterministic simulator).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::ClusterError;

pub mod memory;
pub mod quic;

/// A boxed response future, as returned by a [`PeerHandler`].
pub type ResponseFuture = Pin<Box<dyn Future<Output = Vec<u8>> + Send + 'static>>;

/// Serves requests that peers send to this site. `from` is the sender's site id as
/// authenticated by the transport (for QUIC: the site named by its client certificate).
pub trait PeerHandler: Send + Sync + 'static {
    fn handle(&self, from: u64, request: Vec<u8>) -> ResponseFuture;
}

/// Sends requests to peers.
///
/// Errors distinguish what the caller may conclude: [`ClusterError::Unreachable`] means the
/// request was not delivered; [`ClusterError::Timeout`] and [`ClusterError::ConnectionLost`]
/// mean it may or may not have been (the outcome is unknown and must be resolved by reading
/// state back).
pub trait PeerTransport: Send + Sync + 'static {
    /// Starts serving inbound requests with `handler`. Called once, after the node exists.
    fn serve(&self, handler: Arc<dyn PeerHandler>);

    fn call(
        &self,
        target: u64,
        target_addr: &str,
        request: Vec<u8>,
        timeout: Duration,
    ) -> impl Future<Output = Result<Vec<u8>, ClusterError>> + Send;

    /// Makes contact with a peer as this node starts, so a peer that still holds a
    /// connection to our previous run learns at once that we restarted (see `quic`).
    /// Best effort; transports without connections do nothing.
    fn greet(&self, target: u64, target_addr: &str) -> impl Future<Output = ()> + Send {
        let _ = (target, target_addr);
        async {}
    }
}

/// A tiny deterministic PRNG (SplitMix64) for fault filters and backoff jitter. Not for
/// anything security related.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A seed that differs between processes and calls (for jitter in production).
    pub fn from_entropy() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(std::process::id() as u64);
        Self(hasher.finish())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }

    /// True with probability `percent` / 100.
    pub fn chance_percent(&mut self, percent: u8) -> bool {
        self.below(100) < u64::from(percent)
    }
}
