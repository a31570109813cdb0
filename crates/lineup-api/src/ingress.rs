//! Ingress steering over REST: `GET /v1/ingress?did=…` (or `queue=…`) tells a SIP proxy in
//! front of the sites which site's Asterisk to send a new call to, best first, from a read of
//! this node's replica (no round trip). The DID map is `GET`/`PUT /v1/config/ingress`.
//!
//! A node that has not heard its leader for `READY_LEADER_CONTACT_MAX_MS` cannot tell
//! whether its replica is current: it answers the node file's static order instead
//! (`"fallback": true`, reason `fallback`), which is what the proxy would use if no node
//! answered at all.

use crate::auth::{Admin, Caller, Read};
use crate::error::ApiError;
use crate::rest::{JsonBody, St, OBJECT_BODY_MAX_BYTES};
use crate::ApiBackend;
use axum::extract::{Query, State};
use axum::Json;
use lineup_core::ingress::{IngressPolicy, IngressSite};
use lineup_core::routing::IngressTarget;
use lineup_core::{CommandBody, GateId, QueueId, SiteId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// How long a proxy may reuse an answer: about the time for an operator's state to change
/// and reach every replica.
pub const INGRESS_TTL_MS: u64 = 1_000;

/// What an ingress answer needs beyond the routing state, from the node: the member sites,
/// each site's SIP target and the static order for when this replica may be stale.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngressDirectory {
    /// The sites of the Raft group (voters).
    pub members: Vec<SiteId>,
    /// Site → the SIP URI a proxy relays its new calls to (`[ingress] sip_uri` in each
    /// site's node file, the peers' in this one). A site without one is left out.
    pub targets: BTreeMap<SiteId, String>,
    /// The order to answer when the replica may be stale.
    pub fallback: Vec<SiteId>,
    /// Whether this replica is current (its leader was heard recently).
    pub current: bool,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct IngressQuery {
    /// Exactly one of did and queue.
    #[param(schema_with = did_schema)]
    did: Option<String>,
    /// Exactly one of did and queue.
    #[param(schema_with = queue_schema)]
    queue: Option<String>,
}

fn did_schema() -> utoipa::openapi::schema::Object {
    lineup_core::openapi::did_schema().build()
}

fn queue_schema() -> utoipa::openapi::schema::Object {
    lineup_core::openapi::id_schema().build()
}

/// One site of an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IngressSiteView {
    pub site: SiteId,
    pub target: String,
    pub score: u32,
    /// `free_operator`, `staffed`, `unstaffed`, `unreachable`, or `fallback`.
    pub reason: String,
    pub free_operators: u32,
    pub staffed_operators: u32,
    pub waiting_callers: u32,
    pub expected_wait_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IngressAnswer {
    pub did: Option<String>,
    pub queue: QueueId,
    pub gate: Option<GateId>,
    /// Best first; relay to the first, fail over down the list.
    pub sites: Vec<IngressSiteView>,
    pub ttl_ms: u64,
    /// True when this node answered its static order (its replica may be stale).
    pub fallback: bool,
}

/// Ingress answers a node gave, by first site and reason, for a backend to keep. Bounded:
/// sites × reasons (the reasons are this module's fixed words).
#[derive(Debug, Default)]
pub struct IngressCounters {
    counts: Mutex<BTreeMap<(SiteId, String), u64>>,
}

impl IngressCounters {
    pub fn count(&self, site: SiteId, reason: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *counts.entry((site, reason.to_string())).or_default() += 1;
    }

    pub fn snapshot(&self) -> Vec<crate::backend::IngressDecisions> {
        let counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let decision = |((site, reason), count): (&(SiteId, String), &u64)| crate::backend::IngressDecisions {
            site: *site,
            reason: reason.clone(),
            count: *count,
        };
        counts.iter().map(decision).collect()
    }
}

pub(crate) async fn get_ingress<B: ApiBackend>(
    State(s): St<B>,
    _caller: Caller<Read>,
    Query(query): Query<IngressQuery>,
) -> Result<Json<IngressAnswer>, ApiError> {
    let directory = s.backend.ingress_directory();
    let answer = match (query.did, query.queue) {
        (Some(did), None) => s.backend.read(|r| answer_for_did(r, &directory, &did))?,
        (None, Some(queue)) => {
            let queue = QueueId::new(queue);
            s.backend
                .read(|r| answer_for(r, &directory, IngressTarget::Queue(&queue), &[]))
                .map(|sites| IngressAnswer::new(None, queue.clone(), None, sites, &directory))
                .ok_or(ApiError::NotFound { what: format!("queue {queue}") })?
        }
        _ => {
            return Err(ApiError::Invalid {
                field: "query".into(),
                reason: "give exactly one of did= and queue=".into(),
            })
        }
    };
    match answer.sites.first() {
        Some(first) => s.backend.record_ingress_decision(first.site, &first.reason),
        None => s.backend.record_ingress_decision(SiteId(0), "none"),
    }
    Ok(Json(answer))
}

fn answer_for_did(
    routing: &lineup_core::Routing,
    directory: &IngressDirectory,
    did: &str,
) -> Result<IngressAnswer, ApiError> {
    let route = routing.ingress_policy().route(did).ok_or(ApiError::NotFound { what: format!("DID {did}") })?;
    let gate = routing
        .gate_config(&route.gate)
        .ok_or(ApiError::NotFound { what: format!("gate {} of DID {did}", route.gate) })?;
    let sites = answer_for(routing, directory, IngressTarget::Gate(&route.gate), &route.prefer_sites)
        .ok_or(ApiError::NotFound { what: format!("queue {} of DID {did}", gate.queue) })?;
    Ok(IngressAnswer::new(Some(did.to_string()), gate.queue.clone(), Some(route.gate.clone()), sites, directory))
}

/// The ranked sites with a SIP target; the static order when the replica may be stale.
fn answer_for(
    routing: &lineup_core::Routing,
    directory: &IngressDirectory,
    target: IngressTarget<'_>,
    prefer: &[SiteId],
) -> Option<Vec<IngressSiteView>> {
    let ranked = routing.ingress_sites(target, &directory.members, prefer)?;
    if !directory.current {
        return Some(directory.fallback.iter().filter_map(|site| fallback_view(directory, *site)).collect());
    }
    Some(ranked.iter().filter_map(|site| view(directory, site)).collect())
}

fn view(directory: &IngressDirectory, site: &IngressSite) -> Option<IngressSiteView> {
    Some(IngressSiteView {
        site: site.site,
        target: directory.targets.get(&site.site)?.clone(),
        score: site.score,
        reason: site.reason.as_str().to_string(),
        free_operators: site.free_operators,
        staffed_operators: site.staffed_operators,
        waiting_callers: site.waiting_callers,
        expected_wait_ms: site.expected_wait_ms,
    })
}

fn fallback_view(directory: &IngressDirectory, site: SiteId) -> Option<IngressSiteView> {
    Some(IngressSiteView {
        site,
        target: directory.targets.get(&site)?.clone(),
        score: 0,
        reason: "fallback".to_string(),
        free_operators: 0,
        staffed_operators: 0,
        waiting_callers: 0,
        expected_wait_ms: None,
    })
}

impl IngressAnswer {
    fn new(
        did: Option<String>,
        queue: QueueId,
        gate: Option<GateId>,
        sites: Vec<IngressSiteView>,
        directory: &IngressDirectory,
    ) -> Self {
        IngressAnswer { did, queue, gate, sites, ttl_ms: INGRESS_TTL_MS, fallback: !directory.current }
    }
}

pub(crate) async fn get_ingress_policy<B: ApiBackend>(
    State(s): St<B>,
    _caller: Caller<Read>,
) -> Result<Json<IngressPolicy>, ApiError> {
    Ok(Json(s.backend.read_latest(|r| r.ingress_policy().clone()).await?))
}

pub(crate) async fn put_ingress_policy<B: ApiBackend>(
    State(s): St<B>,
    caller: Caller<Admin>,
    JsonBody(policy): JsonBody<IngressPolicy, INGRESS_BODY_MAX_BYTES>,
) -> Result<Json<IngressPolicy>, ApiError> {
    crate::audit::submit_by(&s, Some(caller.holder), CommandBody::PutIngress(policy.clone())).await?;
    Ok(Json(policy))
}

/// Largest `PUT /v1/config/ingress` body: the most DIDs, each with a long gate id and a
/// preference list.
pub const INGRESS_BODY_MAX_BYTES: usize = 1024 * 1024;
const _: () = assert!(INGRESS_BODY_MAX_BYTES >= OBJECT_BODY_MAX_BYTES);
