//! The queue alarms' clear levels and hold over REST. Anyone who reads the config reads it;
//! only an admin replaces it, checked before it is proposed.

use crate::auth::{Admin, Caller, Read};
use crate::error::ApiError;
use crate::rest::{JsonBody, St, OBJECT_BODY_MAX_BYTES};
use crate::ApiBackend;
use axum::extract::State;
use axum::Json;
use lineup_core::{AlarmPolicy, CommandBody};

pub async fn get_alarm_policy<B: ApiBackend>(
    State(s): St<B>,
    _caller: Caller<Read>,
) -> Result<Json<AlarmPolicy>, ApiError> {
    Ok(Json(s.backend.read_latest(|r| r.alarm_policy().clone()).await?))
}

pub async fn put_alarm_policy<B: ApiBackend>(
    State(s): St<B>,
    caller: Caller<Admin>,
    JsonBody(policy): JsonBody<AlarmPolicy, OBJECT_BODY_MAX_BYTES>,
) -> Result<Json<AlarmPolicy>, ApiError> {
    // A malformed policy never reaches the log.
    policy.validate().map_err(ApiError::from_core)?;
    crate::audit::submit_by(&s, Some(caller.holder), CommandBody::PutAlarmPolicy(policy.clone())).await?;
    Ok(Json(policy))
}
