//! `GET /v1/cluster/backup`: the committed routing state as a backup file (`lineup backup`).
//! A read, so it leaves no row in the routing log's audit trail: the tracing log says who
//! took it, as for membership changes.

use crate::auth::{Admin, Caller};
use crate::error::ApiError;
use crate::rest::St;
use crate::ApiBackend;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

/// The backup file's media type.
pub const BACKUP_CONTENT_TYPE: &str = "application/octet-stream";

pub async fn get_backup<B: ApiBackend>(State(s): St<B>, caller: Caller<Admin>) -> Result<Response, ApiError> {
    let actor = crate::audit::token_name(&s.config, caller.holder);
    tracing::info!(actor, "backup asked for");
    let file = s.backend.backup().await.map_err(ApiError::Backend)?;
    tracing::info!(actor, bytes = file.len(), "backup answered");
    let headers = [
        (CONTENT_TYPE, BACKUP_CONTENT_TYPE),
        (CONTENT_DISPOSITION, "attachment; filename=\"lineup.backup\""),
        (CACHE_CONTROL, "no-store"),
    ];
    Ok((headers, file).into_response())
}
