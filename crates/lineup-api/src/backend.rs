//! The seam between the API and a node: [`ApiBackend`]. The `lineup` binary implements it
//! over a cluster node; [`crate::local::LocalBackend`] implements it over one in-process
//! `Routing` (tests, the benchmark, dashboard work). The API never writes state except
//! through [`ApiBackend::submit`], and never reads it except through [`ApiBackend::read`].

use lineup_core::{CommandBody, CommandResult, Effect, Routing, SiteId};
use serde::{Deserialize, Serialize};
use std::future::Future;

/// One applied effect and the apply index of the command that produced it (Raft log index
/// × 256 + position in the entry, as lineup-cluster numbers them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedEffect {
    pub apply_index: u64,
    pub effect: Effect,
}

/// Why a command could not be committed (distinct from a refusal by the routing core, which
/// is `Ok(Err(CoreError))`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendError {
    pub kind: BackendErrorKind,
    /// Human-readable detail (never a credential).
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendErrorKind {
    /// Nothing was applied: no leader, no quorum, node shutting down. Safe to retry.
    Unavailable,
    /// No answer in time and no result to read back: the command may or may not have been
    /// applied. The client reads state before retrying.
    OutcomeUnknown,
    /// Only the leader does this (membership changes): nothing was done here; the detail
    /// names the leader's API when it is known.
    NotLeader,
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            BackendErrorKind::Unavailable => "unavailable",
            BackendErrorKind::OutcomeUnknown => "outcome unknown",
            BackendErrorKind::NotLeader => "not the leader",
        };
        write!(f, "{kind}: {}", self.detail)
    }
}

impl std::error::Error for BackendError {}

/// This node's Raft role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RaftRole {
    Leader,
    Follower,
    Candidate,
    Learner,
    Shutdown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RaftHealth {
    pub role: RaftRole,
    pub term: u64,
    pub leader: Option<SiteId>,
    /// Highest apply index known committed / applied here (lineup-cluster's apply index).
    pub committed_index: u64,
    pub applied_index: u64,
    /// Milliseconds since this node last heard from a leader (on the leader: since its
    /// quorum last acknowledged it); None when unknown. Over
    /// [`crate::READY_LEADER_CONTACT_MAX_MS`] the node is not ready.
    pub leader_contact_age_ms: Option<u64>,
}

/// Where a node stands in island mode, while it is cut off from the quorum or merging back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IslandPhaseView {
    /// Cut off from the quorum for longer than `island_after_ms`.
    Island,
    /// Heard again: its island's decisions are being merged into the log.
    Merging,
}

/// A node's island state (absent while it is part of the majority).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IslandHealth {
    pub phase: IslandPhaseView,
    /// Since when (Unix ms) the node has been an island; None after a restart that found a
    /// merge to finish.
    pub since_ms: Option<u64>,
    /// The island's epoch (its number at this site), once it forked.
    pub epoch: Option<u64>,
    /// The node serves its site's callers from its fork (routes on its own).
    pub serving_fork: bool,
}

/// An optional dependency (Redis projection, history database).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EdgeHealth {
    pub ok: bool,
    /// Entries not yet delivered (history outbox), or not yet projected (Redis).
    pub lag_entries: Option<u64>,
    /// Last error, if any (never a credential).
    pub detail: Option<String>,
}

/// What `/readyz`, `/metrics` and the cluster panel report about one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    pub site: SiteId,
    /// The box's ARI application answers and this node's site control has read the box at
    /// least once since the node started (its first reconcile: it knows every caller there).
    pub ari_connected: bool,
    /// None when Redis is not configured.
    pub redis: Option<EdgeHealth>,
    /// History (outbox → PostgreSQL/SQLite); None when not configured.
    pub database: Option<EdgeHealth>,
    pub raft: RaftHealth,
    /// Callers this site's Asterisk sent into Lineup that were handed back at the door with
    /// `LINEUP_RESULT=INVALID` (a queue or gate the routing config does not have), since the
    /// node started.
    #[serde(default)]
    pub callers_refused_at_entry: u64,
    /// Set while this node leads with a wall clock far off the cluster's shared clock (the
    /// shared clock keeps real time regardless; the node's NTP needs a look).
    #[serde(default)]
    pub clock_alarm: Option<String>,
    /// This node's webhook deliveries since it started, per webhook (only the leader sends).
    #[serde(default)]
    pub webhooks: Vec<WebhookHealth>,
    /// Ingress answers this node gave since it started, by the site put first and why.
    #[serde(default)]
    pub ingress_decisions: Vec<IngressDecisions>,
    /// Set while this node is an island or merging one back.
    #[serde(default)]
    pub island: Option<IslandHealth>,
}

/// How many ingress answers put `site` first for `reason` (site 0: an answer naming no site).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IngressDecisions {
    pub site: SiteId,
    pub reason: String,
    pub count: u64,
}

/// One webhook's delivery counters on a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookHealth {
    /// The webhook's id in the routing config.
    pub id: String,
    /// Events the receiver took (a 2xx).
    pub sent: u64,
    /// Events given up on (refused for good, or out of attempts).
    pub failed: u64,
    /// Events dropped unsent because the webhook's queue was full.
    pub dropped: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberStatus {
    pub site: SiteId,
    pub voter: bool,
    /// None when this node cannot tell (it is not the leader and has no recent report).
    pub reachable: Option<bool>,
    /// Leader's view: entries this member is behind the leader's last log entry.
    pub lag_entries: Option<u64>,
    /// The member's own health report, where this node knows it.
    pub health: Option<Health>,
    /// What the replicated routing state says of the site: `up`, `unreachable` (silent: its
    /// calls go on, nothing is offered across it) or `lost` (declared gone).
    #[serde(default)]
    pub site_state: SiteState,
    /// Since when (Unix ms, the cluster's clock) the site has been unreachable.
    #[serde(default)]
    pub unreachable_since_ms: Option<u64>,
}

/// A site as the routing state sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SiteState {
    #[default]
    Up,
    Unreachable,
    Lost,
}

impl SiteState {
    /// The site's state and, when unreachable, since when.
    pub fn of(routing: &lineup_core::Routing, site: SiteId) -> (SiteState, Option<u64>) {
        if routing.is_site_lost(site) {
            return (SiteState::Lost, None);
        }
        match routing.unreachable_sites().find(|(s, _)| *s == site) {
            Some((_, since)) => (SiteState::Unreachable, Some(since)),
            None => (SiteState::Up, None),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClusterStatus {
    pub leader: Option<SiteId>,
    pub term: u64,
    /// Sorted by site.
    pub members: Vec<MemberStatus>,
}

/// What the API needs from a node. Small on purpose: reads are closures over the local
/// replica, writes are command bodies (the backend picks the command id and clock).
pub trait ApiBackend: Send + Sync + 'static {
    /// This node's site.
    fn site(&self) -> SiteId;

    /// Reads this node's replica. May be slightly stale (fine for views); keep `f` short:
    /// it may hold the state machine's lock.
    fn read<R>(&self, f: impl FnOnce(&Routing) -> R) -> R;

    /// Reads the replica after everything the cluster committed before the call is applied
    /// here (a linearizable read), so a write acknowledged by any node is seen. Costs a
    /// round trip to the leader; for answers that must not be stale (a config export right
    /// after an apply). A backend without a cluster reads its own state.
    fn read_latest<R, F>(&self, f: F) -> impl Future<Output = Result<R, BackendError>> + Send
    where
        R: Send,
        F: FnOnce(&Routing) -> R + Send,
    {
        let answer = self.read(f);
        async move { Ok(answer) }
    }

    /// Proposes a command and resolves when it is committed and applied: `Ok(Ok(_))`
    /// accepted, `Ok(Err(CoreError))` refused by the routing core (nothing changed), `Err`
    /// not committed or outcome unknown.
    fn submit(&self, body: CommandBody) -> impl Future<Output = Result<CommandResult, BackendError>> + Send;

    /// Every applied effect this node sees, in apply order (projections at least:
    /// OperatorChanged, CallChanged, CallEnded, Alarm). A bounded broadcast: a slow reader
    /// gets `Lagged` and the API resynchronises its clients from a fresh read.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<AppliedEffect>;

    /// This node's health, now (cheap: no network).
    fn health(&self) -> Health;

    /// Members, leader, term and per-site health where known (may ask peers; bounded by the
    /// backend's own timeouts).
    fn cluster(&self) -> impl Future<Output = ClusterStatus> + Send;

    /// Like [`ApiBackend::cluster`] but without asking peers: what a peer asks for, so one
    /// request never sets off a chain of requests between the nodes.
    fn cluster_local(&self) -> impl Future<Output = ClusterStatus> + Send {
        self.cluster()
    }

    /// Counts an ingress answer that put `site` first for `reason` (shown in
    /// `Health::ingress_decisions`).
    fn record_ingress_decision(&self, site: SiteId, reason: &str);

    /// Member sites, their SIP targets and the static order for ingress answers (cheap: no
    /// network). A backend without a cluster has this site alone and no target.
    fn ingress_directory(&self) -> crate::ingress::IngressDirectory {
        crate::ingress::IngressDirectory { members: vec![self.site()], current: true, ..Default::default() }
    }

    /// Adds a site to the Raft group (a learner until it has caught up, then a voter). Only
    /// the leader can; elsewhere the error names the leader. A backend without a cluster
    /// answers Unavailable.
    fn add_member(&self, site: SiteId, address: String) -> impl Future<Output = Result<(), BackendError>> + Send {
        let _ = (site, address);
        async { Err(no_membership()) }
    }

    /// Removes a site from the Raft group (leader only, like [`ApiBackend::add_member`]).
    fn remove_member(&self, site: SiteId) -> impl Future<Output = Result<(), BackendError>> + Send {
        let _ = site;
        async { Err(no_membership()) }
    }

    /// Builds a snapshot of this node's routing state now and compacts its log behind it
    /// (`POST /v1/cluster/snapshot`); answers once the build was asked for, not when it is
    /// written. A backend without a cluster answers Unavailable.
    fn trigger_snapshot(&self) -> impl Future<Output = Result<(), BackendError>> + Send {
        async {
            Err(BackendError {
                kind: BackendErrorKind::Unavailable,
                detail: "this node has no Raft log to snapshot".into(),
            })
        }
    }

    /// The committed routing state as a backup file's bytes (`GET /v1/cluster/backup`): read
    /// linearizably, with the log entry and members it was read at. A backend without a
    /// cluster answers Unavailable.
    fn backup(&self) -> impl Future<Output = Result<Vec<u8>, BackendError>> + Send {
        async {
            Err(BackendError {
                kind: BackendErrorKind::Unavailable,
                detail: "this node has no replicated state to back up".into(),
            })
        }
    }

    /// Audited writes matching `query`, newest first, at most `query.limit` of them. A
    /// backend that keeps no audit trail (no history database) answers Unavailable.
    fn audit(
        &self,
        query: crate::audit::AuditQuery,
    ) -> impl Future<Output = Result<Vec<crate::audit::AuditEntry>, BackendError>> + Send {
        let _ = query;
        async {
            Err(BackendError {
                kind: BackendErrorKind::Unavailable,
                detail: "this node keeps no audit trail: it has no history database".into(),
            })
        }
    }

    /// Queue interval rows for `request` from the history database, by queue then interval.
    /// Refusals of the request itself are `ApiError::Invalid`; a backend without a history
    /// database answers Unavailable.
    fn queue_report(
        &self,
        request: crate::reports::ReportRequest,
    ) -> impl Future<Output = Result<Vec<crate::reports::QueueReportRow>, crate::ApiError>> + Send {
        let _ = request;
        async { Err(no_history().into()) }
    }

    /// Operator interval rows for `request`, by operator then interval (as
    /// [`ApiBackend::queue_report`]).
    fn operator_report(
        &self,
        request: crate::reports::ReportRequest,
    ) -> impl Future<Output = Result<Vec<crate::reports::OperatorReportRow>, crate::ApiError>> + Send {
        let _ = request;
        async { Err(no_history().into()) }
    }
}

fn no_history() -> BackendError {
    BackendError {
        kind: BackendErrorKind::Unavailable,
        detail: "this node keeps no reports: it has no history database".into(),
    }
}

fn no_membership() -> BackendError {
    BackendError { kind: BackendErrorKind::Unavailable, detail: "this node has no cluster membership to change".into() }
}
