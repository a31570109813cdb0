//! The audit trail over REST. Every write made with an admin's or a supervisor's token is
//! proposed wrapped in `CommandBody::Audited` with the token's name, so the replicated log
//! and every node's history say who made it; `GET /v1/audit` reads those rows back.
//! Writes by a call's widget token are the caller's own, not a supervisor's: unwrapped.
//! Membership changes do not go through the routing log: the node's tracing log records
//! them (at info, with the token's name).

use crate::auth::{Caller, Supervise};
use crate::config::{ApiConfig, Role};
use crate::error::ApiError;
use crate::rest::{self, St};
use crate::{ApiBackend, AppState};
use axum::extract::{Query, State};
use axum::Json;
use lineup_core::{AuditActor, AuditRole, CommandBody, Response};
use serde::{Deserialize, Serialize};

/// Most rows one `GET /v1/audit` answers (a larger `limit` is capped to it).
pub const AUDIT_ROWS_MAX: usize = 1_000;
/// Rows answered when the request names no `limit`.
pub const AUDIT_ROWS_DEFAULT: usize = 100;

/// Which audit rows to read (times are Unix ms, both ends included).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AuditQuery {
    pub from_ms: Option<u64>,
    pub to_ms: Option<u64>,
    /// Only this token name's writes.
    pub actor: Option<String>,
    /// Most rows (at most [`AUDIT_ROWS_MAX`]).
    pub limit: usize,
}

/// One audited write, as `GET /v1/audit` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// When it was applied (Unix ms, the cluster's clock).
    pub at: u64,
    /// The token's configured name.
    pub actor: String,
    /// `admin` or `supervisor`.
    pub role: String,
    /// The command's kind (`reassign`, `apply_config`...).
    pub action: String,
    /// What it was about, as `kind:id` words (`call:c1 queue:support`).
    pub target: String,
    /// The accepted result (`done`, `pulled`, `after_current_call`...).
    pub outcome: String,
}

impl AuditEntry {
    pub fn from_record(record: &lineup_core::AuditRecord) -> Self {
        Self {
            at: record.at_ms,
            actor: record.actor.token_name.clone(),
            role: record.actor.role.name().to_string(),
            action: record.action.clone(),
            target: record.target.clone(),
            outcome: record.outcome.clone(),
        }
    }

    /// Does this entry pass the query's time and actor filters?
    pub fn matches(&self, query: &AuditQuery) -> bool {
        query.from_ms.is_none_or(|from| self.at >= from)
            && query.to_ms.is_none_or(|to| self.at <= to)
            && query.actor.as_ref().is_none_or(|actor| *actor == self.actor)
    }
}

/// Who the audit trail names for a write by the token at `holder` (None for a widget
/// token, or a role whose writes are not audited).
fn actor_of(config: &ApiConfig, holder: Option<usize>) -> Option<AuditActor> {
    let token = config.tokens.get(holder?)?;
    let role = match token.role {
        Role::Admin => AuditRole::Admin,
        Role::Supervisor => AuditRole::Supervisor,
        Role::Viewer | Role::Frontend => return None,
    };
    Some(AuditActor { token_name: token.name.clone(), role })
}

/// Proposes `body` as [`rest::submit`] does, wrapped with its actor when the token at
/// `holder` is an admin's or a supervisor's.
pub(crate) async fn submit_by<B: ApiBackend>(
    state: &AppState<B>,
    holder: Option<usize>,
    body: CommandBody,
) -> Result<Response, ApiError> {
    let body = match actor_of(&state.config, holder) {
        Some(actor) => CommandBody::Audited { actor, body: Box::new(body) },
        None => body,
    };
    rest::submit(&*state.backend, body).await
}

/// The name of the token at `holder`, for the tracing log of writes outside the routing log.
pub(crate) fn token_name(config: &ApiConfig, holder: usize) -> &str {
    config.tokens.get(holder).map_or("(unknown)", |t| t.name.as_str())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditParams {
    /// Unix ms, included.
    from: Option<u64>,
    /// Unix ms, included.
    to: Option<u64>,
    /// A token name.
    actor: Option<String>,
    /// Default 100, capped at 1000.
    limit: Option<usize>,
}

/// `GET /v1/audit`: audited writes, newest first.
pub(crate) async fn get_audit<B: ApiBackend>(
    State(s): St<B>,
    _caller: Caller<Supervise>,
    Query(params): Query<AuditParams>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    if let (Some(from), Some(to)) = (params.from, params.to) {
        if from > to {
            return Err(ApiError::Invalid { field: "from".into(), reason: "must not be after `to`".into() });
        }
    }
    if params.limit == Some(0) {
        return Err(ApiError::Invalid { field: "limit".into(), reason: "must be at least 1".into() });
    }
    let limit = params.limit.unwrap_or(AUDIT_ROWS_DEFAULT).min(AUDIT_ROWS_MAX);
    let query = AuditQuery { from_ms: params.from, to_ms: params.to, actor: params.actor, limit };
    let mut rows = s.backend.audit(query).await?;
    rows.truncate(limit);
    Ok(Json(rows))
}
