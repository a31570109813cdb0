//! The API's view of a running node ([`lineup_api::ApiBackend`] over a cluster node, its
//! history pipeline, Redis projection and ARI probe). Wiring only.

use crate::node::{EdgeHealth as NodeEdges, Node, RunningNode};
use crate::NodeError;
use lineup_api::audit::{AuditEntry, AuditQuery};
use lineup_api::ingress::IngressDirectory;
use lineup_api::reports::{OperatorReportRow, QueueReportRow, ReportRequest};
use lineup_api::{
    ApiBackend, ApiError, AppliedEffect, BackendError, BackendErrorKind, ClusterStatus, EdgeHealth, Health,
    MemberStatus, RaftHealth, RaftRole, SiteState, WebhookHealth,
};
use lineup_cluster::ClusterError;
use lineup_core::{ApplyIndex, CommandBody, CommandResult, Routing, SiteId};
use lineup_store::{HistoryPipeline, RedisProjection};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// Effects waiting between the node's broadcast and the API's live hub.
pub const API_EFFECTS_CAPACITY: usize = 16_384;
/// How long the cluster panel waits for a peer's health report (asked over the cluster link).
pub const PEER_HEALTH_TIMEOUT_MS: u64 = 1_000;

pub struct NodeBackend {
    node: Arc<Node>,
    history: Arc<HistoryPipeline>,
    projection: Option<Arc<RedisProjection>>,
    edges: Arc<NodeEdges>,
    effects: broadcast::Sender<AppliedEffect>,
    /// Peer site → API base URL, to tell where membership changes go.
    peer_apis: BTreeMap<u64, String>,
    site_counters: tokio::sync::watch::Receiver<lineup_site::SiteCounters>,
    webhooks: Arc<crate::webhook::WebhookSender>,
    /// Every site's SIP target and the static order, for ingress answers (the node file).
    ingress: std::sync::RwLock<IngressTargets>,
    ingress_decisions: lineup_api::ingress::IngressCounters,
}

/// What the node file says about ingress: each site's SIP URI and the static order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngressTargets {
    pub targets: BTreeMap<SiteId, String>,
    pub fallback: Vec<SiteId>,
}

impl NodeBackend {
    pub fn new(running: &RunningNode, peer_apis: BTreeMap<u64, String>) -> Arc<Self> {
        let (effects, _) = broadcast::channel(API_EFFECTS_CAPACITY);
        // Re-publish the node's effect stream in the API's type; a lag on either side shows
        // up as `Lagged` at the API's reader, which resynchronises from a fresh read.
        let mut from_node = running.node.subscribe_effects();
        let to_api = effects.clone();
        tokio::spawn(async move {
            loop {
                match from_node.recv().await {
                    Ok(e) => {
                        let _ = to_api.send(AppliedEffect { apply_index: e.apply_index, effect: e.effect });
                    }
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        tracing::warn!(skipped, "API effect feed fell behind; clients resynchronise");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        let backend = Arc::new(Self {
            node: Arc::clone(&running.node),
            history: Arc::clone(&running.history),
            projection: running.projection.clone(),
            edges: Arc::clone(&running.edges),
            effects,
            peer_apis,
            site_counters: running.site_counters.clone(),
            webhooks: Arc::clone(&running.webhooks),
            ingress: Default::default(),
            ingress_decisions: Default::default(),
        });
        // Peers ask for this node's health over the cluster link (see `peer_health`).
        let reporter = Arc::downgrade(&backend);
        running.node.set_health_report(move || {
            reporter.upgrade().and_then(|backend| serde_json::to_vec(&backend.health()).ok()).unwrap_or_default()
        });
        backend
    }

    /// Sets the sites' SIP targets and the static order ingress answers use.
    pub fn set_ingress_targets(&self, targets: IngressTargets) {
        *self.ingress.write().unwrap_or_else(std::sync::PoisonError::into_inner) = targets;
    }

    fn webhook_health(&self) -> Vec<WebhookHealth> {
        let counts = self.webhooks.counts().into_iter();
        counts.map(|(id, c)| WebhookHealth { id, sent: c.sent, failed: c.failed, dropped: c.dropped }).collect()
    }

    fn island_health(&self) -> Option<lineup_api::IslandHealth> {
        let watch = self.node.island();
        let now_unix_ms = lineup_util::now_ms();
        let serving_fork = self.node.island_proposer().is_some();
        let now = std::time::Instant::now();
        crate::island_health::island_health(watch.state(), watch.epoch(), serving_fork, now, now_unix_ms)
    }

    fn raft_health(&self) -> RaftHealth {
        let metrics = self.node.raft().metrics().borrow().clone();
        let role = match metrics.state {
            openraft::ServerState::Leader => RaftRole::Leader,
            openraft::ServerState::Follower => RaftRole::Follower,
            openraft::ServerState::Candidate => RaftRole::Candidate,
            openraft::ServerState::Learner => RaftRole::Learner,
            openraft::ServerState::Shutdown => RaftRole::Shutdown,
        };
        let to_apply_index = |log_index: u64| ApplyIndex::first_of(log_index).get();
        RaftHealth {
            role,
            term: metrics.current_term,
            leader: metrics.current_leader.map(SiteId),
            committed_index: to_apply_index(metrics.last_log_index.unwrap_or(0)),
            applied_index: to_apply_index(metrics.last_applied.map(|l| l.index).unwrap_or(0)),
            leader_contact_age_ms: metrics.millis_since_quorum_ack,
        }
    }
}

fn backend_error(e: ClusterError) -> BackendError {
    let kind = match e {
        ClusterError::OutcomeUnknown { .. } | ClusterError::Timeout { .. } => BackendErrorKind::OutcomeUnknown,
        _ => BackendErrorKind::Unavailable,
    };
    BackendError { kind, detail: with_causes(&e) }
}

/// An error and its causes, outermost first, joined by ": " (the cluster's errors keep the
/// storage or Raft error they came from as their source).
pub(crate) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

impl ApiBackend for NodeBackend {
    fn site(&self) -> SiteId {
        SiteId(self.node.site())
    }

    fn read<R>(&self, f: impl FnOnce(&Routing) -> R) -> R {
        self.node.read_stale(f)
    }

    async fn read_latest<R, F>(&self, f: F) -> Result<R, BackendError>
    where
        R: Send,
        F: FnOnce(&Routing) -> R + Send,
    {
        self.node.read_linearizable(f).await.map_err(backend_error)
    }

    async fn submit(&self, body: CommandBody) -> Result<CommandResult, BackendError> {
        self.node.propose(body).await.map(|committed| committed.result).map_err(backend_error)
    }

    fn subscribe(&self) -> broadcast::Receiver<AppliedEffect> {
        self.effects.subscribe()
    }

    fn health(&self) -> Health {
        let database = match self.history.health() {
            Ok(h) => EdgeHealth {
                ok: h.is_healthy(),
                lag_entries: Some(h.lag.entries),
                detail: h.database.last_error.clone().or(h.outbox_write_error.clone()),
            },
            Err(e) => EdgeHealth { ok: false, lag_entries: None, detail: Some(e.to_string()) },
        };
        let redis = self.projection.as_ref().map(|p| {
            let h = p.health();
            EdgeHealth { ok: !h.degraded, lag_entries: None, detail: h.last_error }
        });
        Health {
            site: self.site(),
            // Until the first reconcile, a caller who hangs up is one this node never sees:
            // not ready before it, so "ready" means every caller on the box is accounted for.
            ari_connected: self.edges.ari_reachable.load(std::sync::atomic::Ordering::Relaxed)
                && self.site_counters.borrow().reconciles > 0,
            redis,
            database: Some(database),
            raft: self.raft_health(),
            callers_refused_at_entry: self.site_counters.borrow().callers_invalid,
            clock_alarm: self.node.clock_alarm(),
            webhooks: self.webhook_health(),
            ingress_decisions: self.ingress_decisions.snapshot(),
            island: self.island_health(),
        }
    }

    fn record_ingress_decision(&self, site: SiteId, reason: &str) {
        self.ingress_decisions.count(site, reason);
    }

    fn ingress_directory(&self) -> IngressDirectory {
        let targets = self.ingress.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let members =
            self.node.raft().metrics().borrow().membership_config.membership().voter_ids().map(SiteId).collect();
        let current =
            self.node.leader_contact_age_ms().is_some_and(|age| age <= lineup_api::READY_LEADER_CONTACT_MAX_MS);
        IngressDirectory { members, targets: targets.targets, fallback: targets.fallback, current }
    }

    async fn cluster(&self) -> ClusterStatus {
        self.cluster_status(true).await
    }

    async fn cluster_local(&self) -> ClusterStatus {
        self.cluster_status(false).await
    }

    async fn add_member(&self, site: SiteId, address: String) -> Result<(), BackendError> {
        self.node.add_site(site.0, address).await.map_err(|e| self.membership_error(e))
    }

    async fn remove_member(&self, site: SiteId) -> Result<(), BackendError> {
        self.node.remove_site(site.0).await.map_err(|e| self.membership_error(e))
    }

    async fn trigger_snapshot(&self) -> Result<(), BackendError> {
        self.node.trigger_snapshot().await.map_err(|e| BackendError {
            kind: BackendErrorKind::Unavailable,
            detail: format!("no snapshot could be asked for: {}", with_causes(&e)),
        })
    }

    async fn backup(&self) -> Result<Vec<u8>, BackendError> {
        let unavailable = |e: ClusterError| BackendError {
            kind: BackendErrorKind::Unavailable,
            detail: format!("no backup could be taken: {}", with_causes(&e)),
        };
        let backup = self.node.backup().await.map_err(unavailable)?;
        backup.encode().map_err(unavailable)
    }

    async fn audit(&self, query: AuditQuery) -> Result<Vec<AuditEntry>, BackendError> {
        let query = lineup_store::AuditQuery {
            from_ms: query.from_ms,
            to_ms: query.to_ms,
            actor: query.actor,
            limit: query.limit as u64,
        };
        let rows = self.history.audit(&query).await.map_err(|e| BackendError {
            kind: BackendErrorKind::Unavailable,
            detail: format!("the history database cannot be read: {}", with_causes(&e)),
        })?;
        let entry = |r: lineup_store::AuditRow| AuditEntry {
            at: u64::try_from(r.at_ms).unwrap_or(0),
            actor: r.actor,
            role: r.role,
            action: r.action,
            target: r.target,
            outcome: r.outcome,
        };
        Ok(rows.into_iter().map(entry).collect())
    }

    async fn queue_report(&self, request: ReportRequest) -> Result<Vec<QueueReportRow>, ApiError> {
        crate::api_reports::queue_report(&self.history, request).await
    }

    async fn operator_report(&self, request: ReportRequest) -> Result<Vec<OperatorReportRow>, ApiError> {
        crate::api_reports::operator_report(&self.history, request).await
    }
}

impl NodeBackend {
    /// Membership changes are the leader's: a follower's answer says where to send them.
    fn membership_error(&self, e: ClusterError) -> BackendError {
        if let ClusterError::NotLeader { leader, .. } = &e {
            let detail = match (leader, leader.and_then(|l| self.peer_apis.get(&l))) {
                (Some(l), Some(api)) => {
                    format!("site {l} leads the cluster: send membership changes to its API at {api}")
                }
                (Some(l), None) => format!("site {l} leads the cluster: send membership changes to its API"),
                (None, _) => "no leader is known right now: try again shortly".to_string(),
            };
            let kind = if leader.is_some() { BackendErrorKind::NotLeader } else { BackendErrorKind::Unavailable };
            return BackendError { kind, detail };
        }
        backend_error(e)
    }
}

impl NodeBackend {
    /// Members, leader and term; the peers' own health reports when `ask_peers`.
    async fn cluster_status(&self, ask_peers: bool) -> ClusterStatus {
        let metrics = self.node.raft().metrics().borrow().clone();
        let membership = metrics.membership_config.membership().clone();
        let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
        let last_log = metrics.last_log_index.unwrap_or(0);
        let replication = metrics.replication.clone();
        let mut members = Vec::new();
        for (site, _node) in membership.nodes() {
            let site = *site;
            let (reachable, lag_entries) = match (&replication, site == self.node.site()) {
                (_, true) => (Some(true), Some(0)),
                (Some(rep), false) => match rep.get(&site) {
                    Some(Some(matched)) => (Some(true), Some(last_log.saturating_sub(matched.index))),
                    Some(None) => (Some(false), None),
                    None => (None, None),
                },
                (None, false) => (None, None),
            };
            let health = match (site == self.node.site(), ask_peers) {
                (true, _) => Some(self.health()),
                (false, true) => self.peer_health(site).await,
                (false, false) => None,
            };
            let reachable = reachable.or(health.as_ref().map(|_| true));
            let (site_state, unreachable_since_ms) = self.node.read_stale(|r| SiteState::of(r, SiteId(site)));
            members.push(MemberStatus {
                site: SiteId(site),
                voter: voters.contains(&site),
                reachable,
                lag_entries,
                health,
                site_state,
                unreachable_since_ms,
            });
        }
        members.sort_by_key(|m| m.site);
        ClusterStatus { leader: metrics.current_leader.map(SiteId), term: metrics.current_term, members }
    }

    /// A peer's own health report, asked over the cluster link (mutual TLS): no API token
    /// is sent to a peer, and a peer needs no `api_url` for its health to show here.
    async fn peer_health(&self, site: u64) -> Option<Health> {
        let timeout = Duration::from_millis(PEER_HEALTH_TIMEOUT_MS);
        let report = match self.node.peer_health(site, timeout).await {
            Ok(report) => report,
            Err(error) => {
                tracing::debug!(site, %error, "no health report from the peer");
                return None;
            }
        };
        serde_json::from_slice(&report).ok()
    }
}

/// Binds `listen` and serves the API (and dashboard) for `running` until `shutdown` turns
/// true. Returns the bound address.
pub async fn start_api(
    running: &RunningNode,
    listen: std::net::SocketAddr,
    config: lineup_api::ApiConfig,
    peer_apis: BTreeMap<u64, String>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<std::net::SocketAddr, NodeError> {
    serve_api(NodeBackend::new(running, peer_apis), listen, config, shutdown).await
}

/// Like [`start_api`], over a backend the caller keeps (`lineup run` also reads its health
/// for the service manager). One backend per node: the newest one made answers peers'
/// health requests.
pub async fn serve_api(
    backend: Arc<NodeBackend>,
    listen: std::net::SocketAddr,
    config: lineup_api::ApiConfig,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<std::net::SocketAddr, NodeError> {
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|source| NodeError::ApiBind { listen, source })?;
    let address = listener.local_addr()?;
    config.validate().map_err(NodeError::ApiSettings)?;
    tokio::spawn(async move {
        let stop = async move {
            while !*shutdown.borrow() {
                if shutdown.changed().await.is_err() {
                    return;
                }
            }
        };
        if let Err(error) = lineup_api::serve(listener, backend, config, stop).await {
            tracing::error!(%error, "the API stopped");
        }
    });
    Ok(address)
}
