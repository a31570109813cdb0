//! The crate's one error type. As an HTTP answer it is `{"error", "code", "field"?, ...}`
//! with a status that says whose fault it is.

use crate::backend::{BackendError, BackendErrorKind};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lineup_core::ConfigKind;
use lineup_core::{ConfigProblem, CoreError};
use serde::Serialize;

/// Every error answer's body (the OpenAPI document's `Error` schema is derived from it).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What went wrong, in a sentence.
    pub error: String,
    /// A stable word for programs: `invalid`, `not_found`, `refused`, `unavailable`, ...
    pub code: &'static str,
    /// The field at fault (a JSON path such as `queues[0].max_wait_ms`), when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For a refused config: the kind of object at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<ConfigKind>,
    /// For a refused config: the id of the object at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A bad `ApiConfig` (at start-up).
    #[error("api config, field {field}: {reason}")]
    Config { field: String, reason: String },
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    #[error("missing or unknown bearer token")]
    Unauthorized,
    #[error("this token's role ({role}) may not {action}")]
    Forbidden { role: &'static str, action: &'static str },
    #[error("WebSocket origin {origin:?} is not allowed")]
    OriginRefused { origin: String },
    /// Not JSON at all, or not the expected shape (400); `field` is the JSON path.
    #[error("bad JSON body: {detail}")]
    BadBody { field: Option<String>, detail: String },
    #[error("body larger than {limit_bytes} bytes")]
    TooLarge { limit_bytes: usize },
    /// Well-formed but not acceptable (422).
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    /// A routing config object or set was refused (422); names the object and field.
    #[error("{0}")]
    ConfigRefused(ConfigProblem),
    #[error("{what} not found")]
    NotFound { what: String },
    /// The routing core refused the command for a reason of state (409).
    #[error("refused: {0}")]
    Refused(CoreError),
    #[error("backend: {0}")]
    Backend(#[from] BackendError),
    /// Too many widget tokens of calls still going (503).
    #[error("too many widget tokens ({max}) for calls still going; try again when calls end")]
    WidgetTokensFull { max: usize },
    /// Too many agent panels signed in on this node (503).
    #[error("too many agent panels signed in ({max}); try again later")]
    AgentTokensFull { max: usize },
    /// An agent panel sign-in with an unknown operator or a wrong PIN (401).
    #[error("unknown operator or wrong PIN")]
    SignInRefused,
    /// The operating system's random source failed (500).
    #[error("OS random source: {0}")]
    Random(String),
    /// A request rate limit or the throttle after failed authentication (429, with
    /// `Retry-After`); `who` names what is limited ("this client address", "this token").
    #[error("too many requests from {who}; try again in {} s", retry_after_secs(*retry_after_ms))]
    RateLimited { who: &'static str, retry_after_ms: u64 },
    /// A WebSocket over a cap: the token's (429) or the server's in all (503).
    #[error("too many open WebSockets {scope} (at most {limit})")]
    TooManyWebSockets { scope: &'static str, limit: usize },
    /// The body did not arrive in time (408).
    #[error("the request body did not arrive within {limit_ms} ms")]
    BodyTimeout { limit_ms: u64 },
    /// A certificate, key or CA file for the API's TLS that cannot be used (at start-up).
    #[error("TLS: {0}")]
    Tls(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Config { .. } | ApiError::Io(_) | ApiError::Random(_) | ApiError::Tls(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ApiError::WidgetTokensFull { .. } | ApiError::AgentTokensFull { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unauthorized | ApiError::SignInRefused => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } | ApiError::OriginRefused { .. } => StatusCode::FORBIDDEN,
            ApiError::BadBody { .. } => StatusCode::BAD_REQUEST,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Invalid { .. } | ApiError::ConfigRefused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Refused(_) => StatusCode::CONFLICT,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::TooManyWebSockets { scope, .. } if *scope == WEBSOCKETS_IN_ALL => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooManyWebSockets { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::Backend(e) => match e.kind {
                BackendErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                BackendErrorKind::OutcomeUnknown => StatusCode::GATEWAY_TIMEOUT,
                // The request reached a node that cannot do it: send it to the one named.
                BackendErrorKind::NotLeader => StatusCode::MISDIRECTED_REQUEST,
            },
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::Config { .. } | ApiError::Io(_) | ApiError::Random(_) | ApiError::Tls(_) => "internal",
            ApiError::WidgetTokensFull { .. } | ApiError::AgentTokensFull { .. } => "unavailable",
            ApiError::Unauthorized => "unauthorized",
            ApiError::SignInRefused => "sign_in_refused",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::OriginRefused { .. } => "origin_refused",
            ApiError::BadBody { .. } => "bad_body",
            ApiError::TooLarge { .. } => "too_large",
            ApiError::Invalid { .. } | ApiError::ConfigRefused(_) => "invalid",
            ApiError::NotFound { .. } => "not_found",
            ApiError::Refused(_) => "refused",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::TooManyWebSockets { .. } => "too_many_websockets",
            ApiError::BodyTimeout { .. } => "body_timeout",
            ApiError::Backend(e) => match e.kind {
                BackendErrorKind::Unavailable => "unavailable",
                BackendErrorKind::OutcomeUnknown => "outcome_unknown",
                BackendErrorKind::NotLeader => "not_leader",
            },
        }
    }

    /// Maps a refusal by the routing core: field errors are 422 naming the field, unknown
    /// objects 404, everything else (wrong state, in use) 409.
    pub fn from_core(e: CoreError) -> ApiError {
        match e {
            CoreError::InvalidField { field, reason } => ApiError::Invalid { field, reason },
            CoreError::InvalidConfig(problem) => ApiError::ConfigRefused(problem),
            CoreError::UnknownCall(id) => ApiError::NotFound { what: format!("call {id}") },
            CoreError::UnknownOperator(id) => ApiError::NotFound { what: format!("operator {id}") },
            CoreError::UnknownQueue(id) => ApiError::NotFound { what: format!("queue {id}") },
            CoreError::UnknownGate(id) => ApiError::NotFound { what: format!("gate {id}") },
            CoreError::UnknownSchedule(id) => ApiError::NotFound { what: format!("schedule {id}") },
            other => ApiError::Refused(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body = ErrorBody { error: self.to_string(), code: self.code(), field: None, kind: None, id: None };
        match &self {
            ApiError::BadBody { field: Some(field), .. } | ApiError::Invalid { field, .. } => {
                body.field = Some(field.clone());
            }
            ApiError::ConfigRefused(problem) => {
                body.field = Some(problem.field.clone());
                body.kind = Some(problem.kind);
                body.id = Some(problem.id.clone());
            }
            _ => {}
        }
        if status.is_server_error() && !matches!(self, ApiError::Backend(_)) {
            tracing::warn!(error = %self, "api request failed");
        }
        let mut response = (status, axum::Json(body)).into_response();
        if let ApiError::RateLimited { retry_after_ms, .. } = self {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, retry_after_secs(retry_after_ms).into());
        }
        response
    }
}

/// The scope of [`ApiError::TooManyWebSockets`] when the server's cap in all is reached.
pub(crate) const WEBSOCKETS_IN_ALL: &str = "on this server";
/// The scope of [`ApiError::TooManyWebSockets`] when the token's cap is reached.
pub(crate) const WEBSOCKETS_OF_TOKEN: &str = "for this token";

/// `Retry-After` is in whole seconds: rounded up, at least 1.
fn retry_after_secs(retry_after_ms: u64) -> u64 {
    retry_after_ms.div_ceil(1_000).max(1)
}
