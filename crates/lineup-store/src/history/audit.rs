//! Reading the audit trail back (`GET /v1/audit`): who made which supervisor's or admin's
//! write, newest first, filtered by time and actor.

use super::{Backend, HistoryStore, READ_MAX_ROWS};
use crate::error::StoreError;

/// Which audit rows to read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditQuery {
    /// Rows applied at or after this time (Unix ms).
    pub from_ms: Option<u64>,
    /// Rows applied at or before this time (Unix ms).
    pub to_ms: Option<u64>,
    /// Only this token name's rows.
    pub actor: Option<String>,
    /// Most rows answered (at most [`READ_MAX_ROWS`]).
    pub limit: u64,
}

/// A row of `audit`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditRow {
    pub log_index: i64,
    pub at_ms: i64,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
}

// Actor names are never empty (the core refuses them), so '' stands for "any actor".
const SELECT_AUDIT: &str = "SELECT CAST(log_index AS BIGINT) AS log_index, CAST(at_ms AS BIGINT) AS at_ms, actor, \
     role, action, target, outcome FROM audit WHERE at_ms >= $1 AND at_ms <= $2 AND ($3 = '' OR actor = $3) \
     ORDER BY log_index DESC, seq DESC LIMIT $4";

impl HistoryStore {
    /// Audit rows matching `query`, newest first.
    pub async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
        let from = super::sql::int(query.from_ms.unwrap_or(0));
        let to = super::sql::int(query.to_ms.unwrap_or(u64::MAX));
        let actor = query.actor.clone().unwrap_or_default();
        let limit = super::sql::int(query.limit).min(READ_MAX_ROWS);
        Ok(match &self.backend {
            Backend::Postgres(pool) => {
                sqlx::query_as::<_, AuditRow>(SELECT_AUDIT)
                    .bind(from)
                    .bind(to)
                    .bind(actor)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
            }
            Backend::Sqlite(pool) => {
                sqlx::query_as::<_, AuditRow>(SELECT_AUDIT)
                    .bind(from)
                    .bind(to)
                    .bind(actor)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
            }
        })
    }
}
