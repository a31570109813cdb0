use lineup_core::codec::CodecError;

/// Everything that can go wrong in the cluster layer. Peer input never panics the node: a
/// bad frame becomes [`ClusterError::Frame`] or [`ClusterError::Codec`] and the stream or
/// connection that carried it is dropped.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("storage: {0}")]
    Storage(String),
    #[error("codec: {0}")]
    Codec(#[from] CodecError),
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("tls configuration: {0}")]
    Tls(String),
    #[error("frame: {0}")]
    Frame(String),
    #[error("peer {site} unreachable: {reason}")]
    Unreachable { site: u64, reason: String },
    #[error("no answer from peer {site} within {timeout_ms} ms (the request may or may not have been applied)")]
    Timeout { site: u64, timeout_ms: u64 },
    #[error("peer refused: {0}")]
    PeerRefused(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}
