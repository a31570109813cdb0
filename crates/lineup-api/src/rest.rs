//! REST handlers: config, live state, supervisor actions, the caller widget. Every write is
//! one `ApiBackend::submit`; nothing is changed when a body is refused.

use crate::auth::{Admin, CallAccess, Caller, MintWidget, Read, Supervise, WidgetAct, WidgetRead};
use crate::config::Role;
use crate::error::ApiError;
use crate::views::{self, CallRow, OperatorRow, PositionView, QueueRow};
use crate::widget_tokens::{MintFailure, WidgetTokens, WIDGET_TOKENS_MAX};
use crate::{ApiBackend, AppState};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::Json;
use lineup_core::config_set::REDACTED_PIN_HASH;
use lineup_core::{
    CallId, CommandBody, ConfigChange, ConfigKind, ConfigProblem, GateConfig, GateId, OperatorConfig, OperatorId,
    QueueConfig, QueueId, RequestedState, Response, RoutingConfigSet, ScheduleConfig, ScheduleId,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Largest `PUT /v1/config` body (a whole routing config).
pub const CONFIG_BODY_MAX_BYTES: usize = 1024 * 1024;
/// Largest body of a single config object.
pub const OBJECT_BODY_MAX_BYTES: usize = 64 * 1024;
/// Largest body of an action (state, reassign, priority, pull, callback).
pub const ACTION_BODY_MAX_BYTES: usize = 4 * 1024;

pub(crate) type St<B> = State<Arc<AppState<B>>>;

/// A JSON body read with a size limit; errors name the JSON path of the bad field.
pub struct JsonBody<T, const LIMIT_BYTES: usize>(pub T);

impl<B: ApiBackend, T: DeserializeOwned, const LIMIT_BYTES: usize> FromRequest<Arc<AppState<B>>>
    for JsonBody<T, LIMIT_BYTES>
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState<B>>) -> Result<Self, ApiError> {
        let too_large = ApiError::TooLarge { limit_bytes: LIMIT_BYTES };
        let declared = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > LIMIT_BYTES as u64) {
            return Err(too_large);
        }
        let limit_ms = state.config.limits.body_read_timeout_ms;
        let read = axum::body::to_bytes(req.into_body(), LIMIT_BYTES);
        let bytes = tokio::time::timeout(std::time::Duration::from_millis(limit_ms), read)
            .await
            .map_err(|_| ApiError::BodyTimeout { limit_ms })?
            .map_err(|_| too_large)?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses JSON: syntax errors are 400, shape errors (wrong type, unknown or missing field)
/// 422 with `field` set to the JSON path (`queues[0].max_wait_ms`).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_data() {
            let detail = inner.to_string();
            // serde names an unknown or missing field in the message, at its parent's path.
            let named = ["unknown field `", "missing field `"]
                .iter()
                .find_map(|p| detail.split_once(p).and_then(|(_, rest)| rest.split_once('`')).map(|(f, _)| f));
            // The list of every allowed field is long and in the OpenAPI document already.
            let reason = match detail.split_once(", expected one of") {
                Some((head, _)) => head.to_string(),
                None => detail.clone(),
            };
            let ends_with_named = named.is_some_and(|f| path == f || path.ends_with(&format!(".{f}")));
            match (path.as_str(), named) {
                // The body as a whole has the wrong shape (an array for an object...).
                (".", None) => ApiError::BadBody { field: None, detail },
                (".", Some(f)) => ApiError::Invalid { field: f.to_string(), reason },
                (p, Some(f)) if !ends_with_named => ApiError::Invalid { field: format!("{p}.{f}"), reason },
                (p, _) => ApiError::Invalid { field: p.to_string(), reason },
            }
        } else {
            ApiError::BadBody { field: None, detail: inner.to_string() }
        }
    })?;
    de.end().map_err(|e| ApiError::BadBody { field: None, detail: e.to_string() })?;
    Ok(value)
}

/// Proposes `body` unless this node's replica already shows the routing core would refuse
/// it: such a refusal is answered as apply would answer it and never reaches the Raft log.
pub(crate) async fn submit<B: ApiBackend>(backend: &B, body: CommandBody) -> Result<Response, ApiError> {
    check(backend, &body)?;
    backend.submit(body).await?.map_err(ApiError::from_core)
}

/// The core's own refusal of `body` against this node's replica (a stale read: apply still
/// decides what passes here).
fn check<B: ApiBackend>(backend: &B, body: &CommandBody) -> Result<(), ApiError> {
    backend.read(|r| r.check_command(body)).map_err(ApiError::from_core)
}

// ------------------------------------------------------------------------------ config

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DryRun {
    /// `true`: answer the diff only, change nothing.
    #[serde(default)]
    dry_run: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ConfigApplied {
    pub dry_run: bool,
    pub changes: Vec<ConfigChange>,
}

fn redact_for(role: Role, set: RoutingConfigSet) -> RoutingConfigSet {
    if role == Role::Admin {
        set
    } else {
        set.without_pin_hashes()
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConfigRead {
    /// `true`: this node's own copy, without asking the leader (works without a quorum, may
    /// miss the latest apply).
    #[serde(default)]
    stale: bool,
}

/// The routing config in force. By default a linearizable read, so an export from any node
/// right after `PUT /v1/config` shows what was applied; `?stale=true` reads this node's copy
/// (for a node cut off from the quorum).
pub async fn get_config<B: ApiBackend>(
    State(s): St<B>,
    caller: Caller<Read>,
    Query(q): Query<ConfigRead>,
) -> Result<Json<RoutingConfigSet>, ApiError> {
    let set =
        if q.stale { s.backend.read(|r| r.config_set()) } else { s.backend.read_latest(|r| r.config_set()).await? };
    Ok(Json(redact_for(caller.role, set)))
}

/// A PIN hash sent back as [`REDACTED_PIN_HASH`] keeps the operator's current hash (what the
/// core does at apply time); resolved here too so the validation and diff are exact.
fn resolve_redacted(set: &mut RoutingConfigSet, current: &RoutingConfigSet) -> Result<(), ApiError> {
    for (i, o) in set.operators.iter_mut().enumerate() {
        if o.pin_hash == REDACTED_PIN_HASH {
            match current.operators.iter().find(|c| c.id == o.id) {
                Some(c) => o.pin_hash = c.pin_hash.clone(),
                None => {
                    return Err(ApiError::Invalid {
                        field: format!("operators[{i}].pin_hash"),
                        reason: "a redacted hash can only keep an existing operator's PIN".into(),
                    })
                }
            }
        }
    }
    Ok(())
}

pub async fn put_config<B: ApiBackend>(
    State(s): St<B>,
    caller: Caller<Admin>,
    Query(q): Query<DryRun>,
    JsonBody(set): JsonBody<RoutingConfigSet, CONFIG_BODY_MAX_BYTES>,
) -> Result<Json<ConfigApplied>, ApiError> {
    let current = s.backend.read(|r| r.config_set());
    let mut resolved = set.clone().normalized();
    resolve_redacted(&mut resolved, &current)?;
    resolved.validate().map_err(ApiError::ConfigRefused)?;
    let changes = resolved.diff_from(&current);
    // The set as sent: the core resolves redacted hashes against the state it applies to.
    let body = CommandBody::ApplyConfig(Box::new(set));
    if q.dry_run {
        // A dry run answers what apply would: live-state refusals too (calls in a removed queue).
        check(&*s.backend, &body)?;
    } else {
        crate::audit::submit_by(&s, Some(caller.holder), body).await?;
    }
    Ok(Json(ConfigApplied { dry_run: q.dry_run, changes }))
}

/// One kind of config object, for the per-object routes.
pub trait ConfigObject: Serialize + DeserializeOwned + Clone + Send + 'static {
    const KIND: ConfigKind;
    fn id_str(&self) -> &str;
    fn list(set: &mut RoutingConfigSet) -> &mut Vec<Self>;
    fn put(self) -> CommandBody;
    fn delete(id: &str) -> CommandBody;
    /// Replaces a "keep the current value" marker with the current value (PIN hashes).
    fn resolve_redacted(&mut self, _current: &RoutingConfigSet) -> Result<(), ApiError> {
        Ok(())
    }
}

impl ConfigObject for QueueConfig {
    const KIND: ConfigKind = ConfigKind::Queue;
    fn id_str(&self) -> &str {
        self.id.as_str()
    }
    fn list(set: &mut RoutingConfigSet) -> &mut Vec<Self> {
        &mut set.queues
    }
    fn put(self) -> CommandBody {
        CommandBody::PutQueue(self)
    }
    fn delete(id: &str) -> CommandBody {
        CommandBody::DeleteQueue { queue: QueueId::new(id) }
    }
}

impl ConfigObject for GateConfig {
    const KIND: ConfigKind = ConfigKind::Gate;
    fn id_str(&self) -> &str {
        self.id.as_str()
    }
    fn list(set: &mut RoutingConfigSet) -> &mut Vec<Self> {
        &mut set.gates
    }
    fn put(self) -> CommandBody {
        CommandBody::PutGate(self)
    }
    fn delete(id: &str) -> CommandBody {
        CommandBody::DeleteGate { gate: GateId::new(id) }
    }
}

impl ConfigObject for OperatorConfig {
    const KIND: ConfigKind = ConfigKind::Operator;
    fn id_str(&self) -> &str {
        self.id.as_str()
    }
    fn list(set: &mut RoutingConfigSet) -> &mut Vec<Self> {
        &mut set.operators
    }
    fn put(self) -> CommandBody {
        CommandBody::PutOperator(self)
    }
    fn delete(id: &str) -> CommandBody {
        CommandBody::DeleteOperator { operator: OperatorId::new(id) }
    }
    fn resolve_redacted(&mut self, current: &RoutingConfigSet) -> Result<(), ApiError> {
        if self.pin_hash == REDACTED_PIN_HASH {
            let existing = current.operators.iter().find(|o| o.id == self.id).ok_or_else(|| ApiError::Invalid {
                field: "pin_hash".into(),
                reason: "a redacted hash can only keep an existing operator's PIN".into(),
            })?;
            self.pin_hash = existing.pin_hash.clone();
        }
        Ok(())
    }
}

impl ConfigObject for ScheduleConfig {
    const KIND: ConfigKind = ConfigKind::Schedule;
    fn id_str(&self) -> &str {
        self.id.as_str()
    }
    fn list(set: &mut RoutingConfigSet) -> &mut Vec<Self> {
        &mut set.schedules
    }
    fn put(self) -> CommandBody {
        CommandBody::PutSchedule(self)
    }
    fn delete(id: &str) -> CommandBody {
        CommandBody::DeleteSchedule { schedule: ScheduleId::new(id) }
    }
}

fn not_found(kind: ConfigKind, id: &str) -> ApiError {
    ApiError::NotFound { what: format!("{} {id:?}", kind.section().trim_end_matches('s')) }
}

pub async fn get_object<B: ApiBackend, T: ConfigObject>(
    State(s): St<B>,
    caller: Caller<Read>,
    Path(id): Path<String>,
) -> Result<Json<T>, ApiError> {
    let mut set = redact_for(caller.role, s.backend.read(|r| r.config_set()));
    let object = T::list(&mut set).iter().find(|o| o.id_str() == id).cloned();
    object.map(Json).ok_or_else(|| not_found(T::KIND, &id))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ObjectApplied {
    pub changes: Vec<ConfigChange>,
}

pub async fn put_object<B: ApiBackend, T: ConfigObject>(
    State(s): St<B>,
    caller: Caller<Admin>,
    Path(id): Path<String>,
    JsonBody(mut object): JsonBody<T, OBJECT_BODY_MAX_BYTES>,
) -> Result<Json<ObjectApplied>, ApiError> {
    if object.id_str() != id {
        return Err(ApiError::Invalid { field: "id".into(), reason: format!("must equal the path's id {id:?}") });
    }
    let current = s.backend.read(|r| r.config_set());
    // Checked as part of the whole set, so a dangling reference names its field.
    let mut candidate = current.clone();
    object.resolve_redacted(&current)?;
    let list = T::list(&mut candidate);
    list.retain(|o| o.id_str() != id);
    list.push(object.clone());
    let candidate = candidate.normalized();
    candidate.validate().map_err(ApiError::ConfigRefused)?;
    let changes = candidate.diff_from(&current);
    crate::audit::submit_by(&s, Some(caller.holder), object.put()).await?;
    Ok(Json(ObjectApplied { changes }))
}

pub async fn delete_object<B: ApiBackend, T: ConfigObject>(
    State(s): St<B>,
    caller: Caller<Admin>,
    Path(id): Path<String>,
) -> Result<Json<ObjectApplied>, ApiError> {
    let current = s.backend.read(|r| r.config_set());
    let mut candidate = current.clone();
    let list = T::list(&mut candidate);
    let before = list.len();
    list.retain(|o| o.id_str() != id);
    if list.len() == before {
        return Err(not_found(T::KIND, &id));
    }
    candidate.validate().map_err(|p: ConfigProblem| {
        ApiError::ConfigRefused(ConfigProblem {
            reason: format!("still refers to {} {id:?} ({})", T::KIND.section().trim_end_matches('s'), p.reason),
            ..p
        })
    })?;
    let changes = candidate.diff_from(&current);
    crate::audit::submit_by(&s, Some(caller.holder), T::delete(&id)).await?;
    Ok(Json(ObjectApplied { changes }))
}

// ------------------------------------------------------------------------------ live state

#[derive(Serialize, utoipa::ToSchema)]
pub struct QueuesAnswer {
    pub now_ms: u64,
    pub index: u64,
    pub queues: Vec<QueueRow>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OperatorsAnswer {
    pub now_ms: u64,
    pub index: u64,
    pub operators: Vec<OperatorRow>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CallsAnswer {
    pub now_ms: u64,
    pub index: u64,
    /// Waiting calls first, in global order; then offered and connected calls.
    pub calls: Vec<CallRow>,
}

/// Who the caller's token says it is: the dashboard shows actions only to roles allowed them.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Me {
    /// The token holder's name from the config (never the token).
    pub name: String,
    pub role: Role,
}

pub async fn get_me<B: ApiBackend>(State(s): St<B>, caller: Caller<Read>) -> Json<Me> {
    let name = s.config.tokens.get(caller.holder).map(|t| t.name.clone()).unwrap_or_default();
    Json(Me { name, role: caller.role })
}

pub async fn get_queues<B: ApiBackend>(State(s): St<B>, _caller: Caller<Read>) -> Json<QueuesAnswer> {
    Json(s.backend.read(|r| QueuesAnswer {
        now_ms: r.now_ms(),
        index: r.last_applied_index(),
        queues: views::queue_rows(r),
    }))
}

pub async fn get_operators<B: ApiBackend>(State(s): St<B>, _caller: Caller<Read>) -> Json<OperatorsAnswer> {
    Json(s.backend.read(|r| OperatorsAnswer {
        now_ms: r.now_ms(),
        index: r.last_applied_index(),
        operators: views::operator_rows(r),
    }))
}

pub async fn get_calls<B: ApiBackend>(State(s): St<B>, _caller: Caller<Read>) -> Json<CallsAnswer> {
    Json(s.backend.read(|r| CallsAnswer {
        now_ms: r.now_ms(),
        index: r.last_applied_index(),
        calls: views::call_rows(r),
    }))
}

pub async fn get_call<B: ApiBackend>(
    State(s): St<B>,
    _caller: Caller<Read>,
    Path(id): Path<String>,
) -> Result<Json<CallRow>, ApiError> {
    let call = CallId::new(id);
    s.backend.read(|r| views::call_row(r, &call)).map(Json).ok_or(ApiError::NotFound { what: format!("call {call}") })
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ClusterQuery {
    /// `false`: this node's own knowledge only, without asking peers (what peers ask for).
    pub peers: Option<bool>,
}

pub async fn get_cluster<B: ApiBackend>(
    State(s): St<B>,
    _caller: Caller<Read>,
    Query(query): Query<ClusterQuery>,
) -> Json<crate::backend::ClusterStatus> {
    match query.peers {
        Some(false) => Json(s.backend.cluster_local().await),
        _ => Json(s.backend.cluster().await),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRequest {
    pub site: u64,
    /// The new site's QUIC address as the other sites reach it (`host:port`).
    pub address: String,
}

/// Most bytes of a member's address.
pub const MEMBER_ADDRESS_MAX_BYTES: usize = 256;

pub async fn add_member<B: ApiBackend>(
    State(s): St<B>,
    caller: Caller<Admin>,
    JsonBody(req): JsonBody<MemberRequest, ACTION_BODY_MAX_BYTES>,
) -> Result<Json<crate::backend::ClusterStatus>, ApiError> {
    let address_ok = !req.address.is_empty()
        && req.address.len() <= MEMBER_ADDRESS_MAX_BYTES
        && req.address.contains(':')
        && req.address.chars().all(|c| c.is_ascii_alphanumeric() || ".:-[]".contains(c));
    if req.site == 0 {
        return Err(ApiError::Invalid { field: "site".into(), reason: "site ids start at 1".into() });
    }
    if !address_ok {
        return Err(ApiError::Invalid { field: "address".into(), reason: "a host:port such as 10.0.4.10:7401".into() });
    }
    // Membership is not in the routing log, so not in the audit table: the tracing log says who.
    let actor = crate::audit::token_name(&s.config, caller.holder);
    tracing::info!(actor, site = req.site, address = %req.address, "membership change: add a site");
    s.backend.add_member(lineup_core::SiteId(req.site), req.address).await.map_err(ApiError::Backend)?;
    Ok(Json(s.backend.cluster().await))
}

pub async fn remove_member<B: ApiBackend>(
    State(s): St<B>,
    caller: Caller<Admin>,
    Path(site): Path<u64>,
) -> Result<Json<crate::backend::ClusterStatus>, ApiError> {
    let site = lineup_core::SiteId(site);
    // Refused before a membership change is proposed.
    if !s.backend.cluster_local().await.members.iter().any(|m| m.site == site) {
        return Err(ApiError::Invalid { field: "site".into(), reason: format!("site {site} is not a member") });
    }
    let actor = crate::audit::token_name(&s.config, caller.holder);
    tracing::info!(actor, site = site.0, "membership change: remove a site");
    s.backend.remove_member(site).await.map_err(ApiError::Backend)?;
    Ok(Json(s.backend.cluster().await))
}

/// Builds a snapshot on this node now (its log is then compacted behind it): before a
/// planned restart, so the node replays less, or to see a snapshot written on demand.
pub async fn trigger_snapshot<B: ApiBackend>(
    State(s): St<B>,
    caller: Caller<Admin>,
) -> Result<Json<crate::backend::ClusterStatus>, ApiError> {
    let actor = crate::audit::token_name(&s.config, caller.holder);
    tracing::info!(actor, "snapshot asked for");
    s.backend.trigger_snapshot().await.map_err(ApiError::Backend)?;
    Ok(Json(s.backend.cluster_local().await))
}

/// Declares a site gone (`lineup cluster declare-lost`): its calls end and its operators are
/// logged out. For a site that is really gone; a silent site is only unreachable, and its
/// calls go on. Refused (before anything is proposed) for a site that is not a member or is
/// lost already.
pub async fn declare_lost<B: ApiBackend>(
    State(s): St<B>,
    caller: Caller<Admin>,
    Path(site): Path<u64>,
) -> Result<Json<crate::backend::ClusterStatus>, ApiError> {
    let site = lineup_core::SiteId(site);
    let cluster = s.backend.cluster().await;
    if !cluster.members.iter().any(|m| m.site == site) {
        return Err(ApiError::Invalid { field: "site".into(), reason: format!("site {site} is not a member") });
    }
    if s.backend.read(|r| r.is_site_lost(site)) {
        return Err(ApiError::Invalid { field: "site".into(), reason: format!("site {site} is already lost") });
    }
    crate::audit::submit_by(&s, Some(caller.holder), CommandBody::SiteLost { site }).await?;
    Ok(Json(s.backend.cluster().await))
}

// ------------------------------------------------------------------------------ actions

#[derive(Serialize, utoipa::ToSchema)]
pub struct ActionDone {
    pub ok: bool,
    /// The routing core's answer, e.g. `"Done"` or `{"Pulled": {"call": …, "fence": …}}`.
    pub response: Response,
}

fn done(response: Response) -> Json<ActionDone> {
    Json(ActionDone { ok: true, response })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StateName {
    Available,
    Break,
    Offline,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StateRequest {
    pub state: StateName,
    /// Required for `break`.
    pub reason: Option<String>,
}

/// The state a request asks for (a break needs its reason; nothing else takes one).
pub(crate) fn requested_state(req: StateRequest) -> Result<RequestedState, ApiError> {
    match (req.state, req.reason) {
        (StateName::Available, None) => Ok(RequestedState::Available),
        (StateName::Offline, None) => Ok(RequestedState::Offline),
        (StateName::Break, Some(reason)) => Ok(RequestedState::Break { reason }),
        (StateName::Break, None) => {
            Err(ApiError::Invalid { field: "reason".into(), reason: "a break needs a reason".into() })
        }
        (_, Some(_)) => Err(ApiError::Invalid { field: "reason".into(), reason: "only a break takes a reason".into() }),
    }
}

pub async fn set_operator_state<B: ApiBackend>(
    State(s): St<B>,
    caller: Caller<Supervise>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<StateRequest, ACTION_BODY_MAX_BYTES>,
) -> Result<Json<ActionDone>, ApiError> {
    let state = requested_state(req)?;
    crate::audit::submit_by(
        &s,
        Some(caller.holder),
        CommandBody::OperatorState { operator: OperatorId::new(id), state },
    )
    .await
    .map(done)
}

pub async fn logout_operator<B: ApiBackend>(
    State(s): St<B>,
    caller: Caller<Supervise>,
    Path(id): Path<String>,
) -> Result<Json<ActionDone>, ApiError> {
    crate::audit::submit_by(&s, Some(caller.holder), CommandBody::OperatorLogout { operator: OperatorId::new(id) })
        .await
        .map(done)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    /// The call to take; the operator's next eligible caller when absent.
    pub call: Option<CallId>,
}

pub async fn pull<B: ApiBackend>(
    State(s): St<B>,
    caller: Caller<Supervise>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<PullRequest, ACTION_BODY_MAX_BYTES>,
) -> Result<Json<ActionDone>, ApiError> {
    crate::audit::submit_by(
        &s,
        Some(caller.holder),
        CommandBody::Pull { operator: OperatorId::new(id), call: req.call },
    )
    .await
    .map(done)
}

fn default_true() -> bool {
    true
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReassignRequest {
    pub queue: QueueId,
    /// Keep the caller's place by age (its original arrival); default true.
    #[serde(default = "default_true")]
    pub keep_age: bool,
}

pub async fn reassign<B: ApiBackend>(
    State(s): St<B>,
    caller: Caller<Supervise>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<ReassignRequest, ACTION_BODY_MAX_BYTES>,
) -> Result<Json<ActionDone>, ApiError> {
    if s.backend.read(|r| r.queue_config(&req.queue).is_none()) {
        return Err(ApiError::Invalid { field: "queue".into(), reason: format!("no queue named `{}`", req.queue) });
    }
    let body = CommandBody::Reassign { call: CallId::new(id), queue: req.queue, keep_age: req.keep_age };
    crate::audit::submit_by(&s, Some(caller.holder), body).await.map(done)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriorityRequest {
    /// Lower is served first (0 = VIP, 5 = normal, 10 = low).
    #[schema(maximum = 255)]
    pub priority: u8,
}

pub async fn change_priority<B: ApiBackend>(
    State(s): St<B>,
    caller: Caller<Supervise>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<PriorityRequest, ACTION_BODY_MAX_BYTES>,
) -> Result<Json<ActionDone>, ApiError> {
    crate::audit::submit_by(
        &s,
        Some(caller.holder),
        CommandBody::ChangePriority { call: CallId::new(id), priority: req.priority },
    )
    .await
    .map(done)
}

pub async fn hang_up_call<B: ApiBackend>(
    State(s): St<B>,
    caller: Caller<Supervise>,
    Path(id): Path<String>,
) -> Result<Json<ActionDone>, ApiError> {
    crate::audit::submit_by(&s, Some(caller.holder), CommandBody::HangUpCall { call: CallId::new(id) }).await.map(done)
}

// ------------------------------------------------------------------------------ widget

pub async fn get_position<B: ApiBackend>(
    State(s): St<B>,
    access: CallAccess<WidgetRead>,
) -> Result<Json<PositionView>, ApiError> {
    let call = access.call;
    s.backend
        .read(|r| views::position_view(r, &call))
        .map(Json)
        .ok_or(ApiError::NotFound { what: format!("call {call}") })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallbackRequest {
    /// The number to call back (3 to 15 digits, optionally after `+`).
    #[schema(pattern = "^\\+?[0-9]{3,15}$")]
    pub number: String,
}

pub async fn request_callback<B: ApiBackend>(
    State(s): St<B>,
    access: CallAccess<WidgetAct>,
    JsonBody(req): JsonBody<CallbackRequest, ACTION_BODY_MAX_BYTES>,
) -> Result<Json<ActionDone>, ApiError> {
    let body = CommandBody::RequestCallback { call: access.call, number: req.number };
    // A supervisor or an admin acting for a caller is audited; the caller's own token is not.
    match crate::audit::submit_by(&s, access.holder, body).await {
        // Denied by the callback policy: on record, and the caller keeps waiting.
        Ok(Response::CallbackDenied { reason }) => Err(ApiError::Invalid { field: "number".into(), reason }),
        Ok(response) => Ok(done(response)),
        // The core names its own field; the body calls it `number`.
        Err(ApiError::Invalid { field, reason }) if field == "callback_number" => {
            Err(ApiError::Invalid { field: "number".into(), reason })
        }
        Err(other) => Err(other),
    }
}

/// A minted widget token and the link to hand the caller.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WidgetLink {
    /// Good only for this call's position, live feed and callback request, while it lasts.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub token: String,
    /// The widget page on this node, relative to its base address: `/widget?call=…&token=…`.
    pub url: String,
}

/// `POST /v1/calls/{id}/widget-token`: a fresh token for one waiting caller's widget.
pub async fn mint_widget_token<B: ApiBackend>(
    State(s): St<B>,
    _caller: Caller<MintWidget>,
    Path(id): Path<String>,
) -> Result<Json<WidgetLink>, ApiError> {
    let call = CallId::new(id);
    let not_found = || ApiError::NotFound { what: format!("call {call}") };
    if !s.backend.read(|r| views::call_is_live(r, &call)) {
        return Err(not_found());
    }
    let sweep = |store: &WidgetTokens| s.backend.read(|r| store.retain_live(|c| views::call_is_live(r, c)));
    let token = s.widget_tokens.mint(&call, sweep).map_err(|failure| match failure {
        MintFailure::Full => ApiError::WidgetTokensFull { max: WIDGET_TOKENS_MAX },
        MintFailure::Random(e) => ApiError::Random(e.to_string()),
    })?;
    let url = format!("/widget?call={}&token={token}", percent_encode(call.as_str()));
    Ok(Json(WidgetLink { token, url }))
}

/// A query value with everything but unreserved characters percent-encoded (call ids are
/// unreserved characters today; the link stays right if that ever widens).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn percent_encode_keeps_unreserved_and_escapes_the_rest() {
        assert_eq!(super::percent_encode("c-1.2_x~"), "c-1.2_x~");
        assert_eq!(super::percent_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
