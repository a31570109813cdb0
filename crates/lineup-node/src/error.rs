//! The one error type of lineup-node: what failed while a node started (or its API was
//! bound), with the underlying error as its source so callers print the whole chain.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("create data directory {}", path.display())]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The history pipeline or the Redis projection would not start (`step` says which).
    #[error("{step}")]
    Store {
        step: &'static str,
        #[source]
        source: lineup_store::StoreError,
    },
    /// The cluster node would not start or bootstrap (`step` says which).
    #[error("{step}")]
    Cluster {
        step: &'static str,
        #[source]
        source: lineup_cluster::ClusterError,
    },
    /// The ARI client or events socket could not be set up (`step` says which).
    #[error("{step}")]
    Ari {
        step: &'static str,
        #[source]
        source: lineup_ari::AriError,
    },
    #[error("open the command serial mark")]
    SerialMark(#[source] Box<NodeError>),
    /// The serial mark file holds something other than a number.
    #[error("{} does not hold a serial number; remove it only if the clock is right", path.display())]
    SerialNotANumber { path: PathBuf },
    /// A file operation on the serial mark (`action`: read, create, replace).
    #[error("{action} {}: {error}", path.display())]
    SerialFile { action: &'static str, path: PathBuf, error: std::io::Error },
    #[error("bind the API on {listen}")]
    ApiBind {
        listen: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("[api] settings")]
    ApiSettings(#[source] lineup_api::ApiError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A webhook URL this client cannot send to (the core checked its scheme and length).
    #[error("webhook URL `{url}`: {reason}")]
    WebhookUrl { url: String, reason: &'static str },
    /// Connecting to a webhook's host, or its TLS handshake, failed.
    #[error("webhook {step} to {authority}")]
    WebhookConnect {
        step: &'static str,
        authority: String,
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange with a webhook's host failed.
    #[error("webhook request to {authority}")]
    WebhookHttp {
        authority: String,
        #[source]
        source: hyper::Error,
    },
    #[error("webhook request to {authority}: no answer within {timeout_ms} ms")]
    WebhookTimeout { authority: String, timeout_ms: u64 },
    /// The CA bundle https webhooks are checked against could not be read.
    #[error("webhook CA bundle {}", path.display())]
    WebhookCaBundle {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}
