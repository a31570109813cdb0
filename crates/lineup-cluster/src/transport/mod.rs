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
mod quic_tls;

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

/// The generator for fault filters and backoff jitter.
pub use lineup_util::SplitMix64;
