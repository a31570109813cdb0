//! `POST /v1/calls/{id}/monitor`: a supervisor listens to, whispers to the operator of, or
//! barges into a connected call from a phone of their own. Proposed as the core's audited
//! `MonitorCall`; the sites carry it out (the operator's site snoops on the operator's leg and
//! rings the supervisor, over the trunk when the phone is at another site). There is no end
//! route: hanging up the supervisor's phone ends the monitoring, and so does the call's end.

use crate::auth::{Caller, Supervise};
use crate::error::ApiError;
use crate::rest::{ActionDone, JsonBody, St, ACTION_BODY_MAX_BYTES};
use crate::ApiBackend;
use axum::extract::{Path, State};
use axum::Json;
use lineup_core::monitor::validate_monitor_endpoint;
use lineup_core::{CallId, CommandBody, CoreError, MonitorMode, SiteId};
use serde::Deserialize;

#[derive(Deserialize, Clone, Copy, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Listen,
    Whisper,
    Barge,
}

impl From<Mode> for MonitorMode {
    fn from(mode: Mode) -> MonitorMode {
        match mode {
            Mode::Listen => MonitorMode::Listen,
            Mode::Whisper => MonitorMode::Whisper,
            Mode::Barge => MonitorMode::Barge,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MonitorRequest {
    pub mode: Mode,
    /// The supervisor's phone, `TECHNOLOGY/resource` (`PJSIP/2001`).
    #[schema(max_length = 128, pattern = "^[A-Za-z0-9@._+-]+/[A-Za-z0-9/@._+-]+$")]
    pub endpoint: String,
    /// The site whose Asterisk reaches `endpoint`; this node's site when absent.
    pub site: Option<u64>,
}

pub async fn monitor_call<B: ApiBackend>(
    State(s): St<B>,
    caller: Caller<Supervise>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<MonitorRequest, ACTION_BODY_MAX_BYTES>,
) -> Result<Json<ActionDone>, ApiError> {
    validate_monitor_endpoint(&req.endpoint).map_err(ApiError::from_core)?;
    let supervisor_site = req.site.map(SiteId).unwrap_or_else(|| s.backend.site());
    // The local view of the membership (no peer is asked): a site that is not a member has
    // no Asterisk to ring the supervisor from.
    let members = s.backend.cluster_local().await.members;
    if !members.iter().any(|member| member.site == supervisor_site) {
        let reason = format!("site {} is not a member", supervisor_site.0);
        return Err(ApiError::from_core(CoreError::InvalidField { field: "site".into(), reason }));
    }
    let body = CommandBody::MonitorCall {
        call: CallId::new(id),
        mode: req.mode.into(),
        endpoint: req.endpoint,
        supervisor_site,
    };
    crate::audit::submit_by(&s, Some(caller.holder), body).await.map(|response| Json(ActionDone { ok: true, response }))
}
