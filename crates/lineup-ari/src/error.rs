//! The one error type of the crate.

use thiserror::Error;

/// Everything that can go wrong between Lineup and an Asterisk's ARI.
///
/// HTTP answers that ARI documents get their own variant so callers can match on meaning
/// (a 404 on hangup means "already gone", a 409 on create means "that id exists") instead of
/// on numbers. Every variant carries Asterisk's own `message` where there is one.
#[derive(Debug, Error)]
pub enum AriError {
    /// An id, application name, endpoint, media URI or variable name failed validation before
    /// anything was sent: it would otherwise reach a URL path or a dial string.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidInput { what: &'static str, value: String, reason: &'static str },
    /// The configuration cannot be used (for example a base URL that carries credentials).
    #[error("invalid ARI configuration: {0}")]
    InvalidConfig(String),
    /// 400: Asterisk rejected the parameters.
    #[error("ARI 400 bad request: {message}")]
    BadRequest { message: String },
    /// 401/403: wrong credentials or a read-only user.
    #[error("ARI {status} unauthorized: {message}")]
    Unauthorized { status: u16, message: String },
    /// 404: the channel, bridge, playback or application does not exist.
    #[error("ARI 404 not found: {message}")]
    NotFound { message: String },
    /// 409: the resource is not in Stasis, or an id already exists.
    #[error("ARI 409 conflict: {message}")]
    Conflict { message: String },
    /// 412: the channel is in a state that does not allow the operation.
    #[error("ARI 412 precondition failed: {message}")]
    PreconditionFailed { message: String },
    /// 422: a channel named in the request is not in Stasis or not in the bridge.
    #[error("ARI 422 unprocessable: {message}")]
    Unprocessable { message: String },
    /// 500: Asterisk failed internally (for example an unknown bridge type).
    #[error("ARI 500 server error: {message}")]
    ServerError { message: String },
    /// Any other status ARI does not document for the operation.
    #[error("ARI unexpected status {status}: {message}")]
    UnexpectedStatus { status: u16, message: String },
    /// No answer within the deadline. The outcome is unknown: read state back, do not retry
    /// blindly (the request may have been carried out).
    #[error("ARI {operation} timed out after {timeout_ms} ms")]
    Timeout { operation: &'static str, timeout_ms: u64 },
    /// The connection failed before an HTTP answer arrived.
    #[error("ARI transport error during {operation}: {detail}")]
    Transport { operation: &'static str, detail: String },
    /// A body or event that is not the JSON shape ARI documents.
    #[error("malformed ARI JSON in {context}: {detail}")]
    MalformedJson { context: &'static str, detail: String },
    /// A message larger than the crate accepts.
    #[error("ARI message of {size_bytes} bytes exceeds the limit of {limit_bytes} bytes")]
    MessageTooLarge { size_bytes: usize, limit_bytes: usize },
    /// The events WebSocket could not be opened or failed.
    #[error("ARI events WebSocket: {0}")]
    WebSocket(String),
    /// A `Stasis(...)` argument list that Lineup's dialplan contract does not allow.
    #[error("invalid Stasis arguments {args:?}: {reason}")]
    InvalidStasisArgs { args: Vec<String>, reason: String },
}

impl AriError {
    /// Maps an HTTP status and ARI's `{"message": ...}` body to the typed variant.
    pub fn from_status(status: u16, message: String) -> AriError {
        match status {
            400 => AriError::BadRequest { message },
            401 | 403 => AriError::Unauthorized { status, message },
            404 => AriError::NotFound { message },
            409 => AriError::Conflict { message },
            412 => AriError::PreconditionFailed { message },
            422 => AriError::Unprocessable { message },
            500 => AriError::ServerError { message },
            _ => AriError::UnexpectedStatus { status, message },
        }
    }

    /// The HTTP status this error stands for, if it came from an HTTP answer. The stand-in
    /// uses it to answer with the same status Asterisk would.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            AriError::BadRequest { .. } => Some(400),
            AriError::Unauthorized { status, .. } => Some(*status),
            AriError::NotFound { .. } => Some(404),
            AriError::Conflict { .. } => Some(409),
            AriError::PreconditionFailed { .. } => Some(412),
            AriError::Unprocessable { .. } => Some(422),
            AriError::ServerError { .. } => Some(500),
            AriError::UnexpectedStatus { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Asterisk's `message` text for HTTP errors.
    pub fn ari_message(&self) -> Option<&str> {
        match self {
            AriError::BadRequest { message }
            | AriError::Unauthorized { message, .. }
            | AriError::NotFound { message }
            | AriError::Conflict { message }
            | AriError::PreconditionFailed { message }
            | AriError::Unprocessable { message }
            | AriError::ServerError { message }
            | AriError::UnexpectedStatus { message, .. } => Some(message),
            _ => None,
        }
    }
}
