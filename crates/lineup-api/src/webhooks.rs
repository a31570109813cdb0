//! The webhook list over REST. Anyone who reads the config reads it, secrets redacted; only an
//! admin replaces it (a redacted secret keeps the named webhook's own), checked by the core
//! before it is proposed.

use crate::auth::{Admin, Caller, Read};
use crate::error::ApiError;
use crate::rest::{JsonBody, St, OBJECT_BODY_MAX_BYTES};
use crate::ApiBackend;
use axum::extract::State;
use axum::Json;
use lineup_core::{CommandBody, WebhookConfig};

/// The list as every read shows it: secrets redacted.
fn redacted(list: &[WebhookConfig]) -> Vec<WebhookConfig> {
    list.iter().map(WebhookConfig::redacted).collect()
}

pub async fn get_webhooks<B: ApiBackend>(
    State(s): St<B>,
    _caller: Caller<Read>,
) -> Result<Json<Vec<WebhookConfig>>, ApiError> {
    Ok(Json(s.backend.read_latest(|r| redacted(r.webhooks())).await?))
}

pub async fn put_webhooks<B: ApiBackend>(
    State(s): St<B>,
    caller: Caller<Admin>,
    JsonBody(list): JsonBody<Vec<WebhookConfig>, OBJECT_BODY_MAX_BYTES>,
) -> Result<Json<Vec<WebhookConfig>>, ApiError> {
    crate::audit::submit_by(&s, Some(caller.holder), CommandBody::PutWebhooks(list.clone())).await?;
    Ok(Json(redacted(&list)))
}
