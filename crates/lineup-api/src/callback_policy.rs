//! The callback destination policy over REST: which numbers a callback may dial. Anyone
//! who reads the config reads it; only an admin replaces it, checked before it is proposed.

use crate::auth::{Admin, Caller, Read};
use crate::error::ApiError;
use crate::rest::{JsonBody, St, OBJECT_BODY_MAX_BYTES};
use crate::ApiBackend;
use axum::extract::State;
use axum::Json;
use lineup_core::{CallbackPolicy, CommandBody};

pub async fn get_callback_policy<B: ApiBackend>(
    State(s): St<B>,
    _caller: Caller<Read>,
) -> Result<Json<CallbackPolicy>, ApiError> {
    Ok(Json(s.backend.read_latest(|r| r.callback_policy().clone()).await?))
}

pub async fn put_callback_policy<B: ApiBackend>(
    State(s): St<B>,
    caller: Caller<Admin>,
    JsonBody(policy): JsonBody<CallbackPolicy, OBJECT_BODY_MAX_BYTES>,
) -> Result<Json<CallbackPolicy>, ApiError> {
    // A malformed policy never reaches the log.
    policy.validate().map_err(ApiError::from_core)?;
    crate::audit::submit_by(&s, Some(caller.holder), CommandBody::PutCallbackPolicy(policy.clone())).await?;
    Ok(Json(policy))
}
