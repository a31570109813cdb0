//! [`LocalBackend`]: the API's backend over one in-process `Routing`, with no Raft. Commands
//! are applied at once, at the first apply index of log index `n` (`ApplyIndex::first_of`,
//! as lineup-cluster numbers a one-command entry), on a clock that only moves when [`LocalBackend::tick`] is called. Used by the
//! tests, the API benchmark and dashboard work; a real node uses the cluster instead.
//! Having no history database, it keeps the audit trail in a bounded in-memory ring fed by
//! the `Audit` effects it applies ([`LOCAL_AUDIT_ROWS_MAX`] newest rows).

use crate::audit::{AuditEntry, AuditQuery};
use crate::backend::{
    ApiBackend, AppliedEffect, BackendError, ClusterStatus, EdgeHealth, Health, MemberStatus, RaftHealth, RaftRole,
};
use lineup_core::{ApplyIndex, Command, CommandBody, CommandId, CommandResult, Effect, Routing, SiteId};
use std::sync::{Mutex, MutexGuard, PoisonError};
use tokio::sync::broadcast;

/// Effects buffered for slow subscribers before they see `Lagged` (and resynchronise).
pub const LOCAL_EFFECTS_CAPACITY: usize = 4_096;
/// Audit rows the in-memory ring keeps; the oldest is dropped beyond it.
pub const LOCAL_AUDIT_ROWS_MAX: usize = 10_000;
/// The command origin LocalBackend proposes under (a real node derives it from its site).
pub const LOCAL_ORIGIN: u64 = 1;

struct LocalState {
    routing: Routing,
    /// Raft-like log index of the last applied command.
    log_index: u64,
    serial: u64,
    now_ms: u64,
    /// Audited writes, oldest first, at most [`LOCAL_AUDIT_ROWS_MAX`].
    audit: std::collections::VecDeque<AuditEntry>,
}

/// One `Routing` behind a mutex; see the module documentation.
pub struct LocalBackend {
    site: SiteId,
    state: Mutex<LocalState>,
    effects: broadcast::Sender<AppliedEffect>,
    /// Edges reported by [`ApiBackend::health`]; tests flip them with [`LocalBackend::set_edges`].
    edges: Mutex<(bool, Option<EdgeHealth>, Option<EdgeHealth>)>,
    /// Webhook counters reported by [`ApiBackend::health`]; tests set them with
    /// [`LocalBackend::set_webhooks`].
    webhooks: Mutex<Vec<crate::backend::WebhookHealth>>,
    ingress: Mutex<Option<crate::ingress::IngressDirectory>>,
    ingress_decisions: crate::ingress::IngressCounters,
}

impl LocalBackend {
    /// An empty routing state at `now_ms` (Unix ms); ARI reported connected, no Redis, no database.
    pub fn new(site: SiteId, now_ms: u64) -> Self {
        Self::with_routing(site, Routing::new(), now_ms)
    }

    /// Starts from an existing state (e.g. a restored snapshot).
    pub fn with_routing(site: SiteId, routing: Routing, now_ms: u64) -> Self {
        let log_index = ApplyIndex::from_raw(routing.last_applied_index()).raft_log_index();
        let (effects, _) = broadcast::channel(LOCAL_EFFECTS_CAPACITY);
        let backend = Self {
            site,
            state: Mutex::new(LocalState { routing, log_index, serial: 0, now_ms, audit: Default::default() }),
            effects,
            edges: Mutex::new((true, None, None)),
            webhooks: Mutex::default(),
            ingress: Mutex::default(),
            ingress_decisions: Default::default(),
        };
        // The routing clock starts at `now_ms`, as a leader's first Tick would set it.
        let _ = backend.tick(now_ms);
        backend
    }

    fn lock(&self) -> MutexGuard<'_, LocalState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies one command now, at the local clock, and broadcasts its effects.
    pub fn apply(&self, body: CommandBody) -> CommandResult {
        let mut s = self.lock();
        s.serial += 1;
        s.log_index += 1;
        let command = Command { id: CommandId { origin: LOCAL_ORIGIN, serial: s.serial }, at_ms: s.now_ms, body };
        let apply_index = ApplyIndex::first_of(s.log_index).get();
        let applied = s.routing.apply(apply_index, &command);
        // Sent under the lock, so subscribers see effects in apply order even with
        // concurrent appliers. No receiver is not an error.
        for effect in applied.effects {
            if let Effect::Audit(record) = &effect {
                if s.audit.len() >= LOCAL_AUDIT_ROWS_MAX {
                    s.audit.pop_front();
                }
                s.audit.push_back(AuditEntry::from_record(record));
            }
            let _ = self.effects.send(AppliedEffect { apply_index, effect });
        }
        applied.result
    }

    /// Moves the clock to `now_ms` (never backwards) and applies the leader's `Tick`.
    pub fn tick(&self, now_ms: u64) -> CommandResult {
        {
            let mut s = self.lock();
            s.now_ms = s.now_ms.max(now_ms);
        }
        self.apply(CommandBody::Tick { now_ms })
    }

    /// The apply index the next command will be applied at (for latency measurements).
    pub fn next_apply_index(&self) -> u64 {
        ApplyIndex::first_of(self.lock().log_index + 1).get()
    }

    /// The local clock (Unix ms), as last set by [`LocalBackend::tick`].
    pub fn now_ms(&self) -> u64 {
        self.lock().now_ms
    }

    /// Sets what [`ApiBackend::health`] reports about ARI, Redis and the history database.
    pub fn set_edges(&self, ari_connected: bool, redis: Option<EdgeHealth>, database: Option<EdgeHealth>) {
        *self.edges.lock().unwrap_or_else(PoisonError::into_inner) = (ari_connected, redis, database);
    }

    /// Sets the webhook counters the health report (and so `/metrics`) shows.
    /// What ingress answers use instead of the default (this site alone, no target).
    pub fn set_ingress_directory(&self, directory: crate::ingress::IngressDirectory) {
        *self.ingress.lock().unwrap_or_else(PoisonError::into_inner) = Some(directory);
    }

    pub fn set_webhooks(&self, webhooks: Vec<crate::backend::WebhookHealth>) {
        *self.webhooks.lock().unwrap_or_else(PoisonError::into_inner) = webhooks;
    }
}

impl ApiBackend for LocalBackend {
    fn site(&self) -> SiteId {
        self.site
    }

    fn read<R>(&self, f: impl FnOnce(&Routing) -> R) -> R {
        f(&self.lock().routing)
    }

    fn submit(
        &self,
        body: CommandBody,
    ) -> impl std::future::Future<Output = Result<CommandResult, BackendError>> + Send {
        let result = self.apply(body);
        std::future::ready(Ok(result))
    }

    fn subscribe(&self) -> broadcast::Receiver<AppliedEffect> {
        self.effects.subscribe()
    }

    fn audit(
        &self,
        query: AuditQuery,
    ) -> impl std::future::Future<Output = Result<Vec<AuditEntry>, BackendError>> + Send {
        let s = self.lock();
        let rows: Vec<AuditEntry> =
            s.audit.iter().rev().filter(|e| e.matches(&query)).take(query.limit).cloned().collect();
        std::future::ready(Ok(rows))
    }

    fn health(&self) -> Health {
        let applied_index = self.lock().routing.last_applied_index();
        let (ari_connected, redis, database) = self.edges.lock().unwrap_or_else(PoisonError::into_inner).clone();
        Health {
            site: self.site,
            ari_connected,
            redis,
            database,
            raft: RaftHealth {
                role: RaftRole::Leader,
                term: 1,
                leader: Some(self.site),
                committed_index: applied_index,
                applied_index,
                // The only member: always in contact with itself.
                leader_contact_age_ms: Some(0),
            },
            callers_refused_at_entry: 0,
            clock_alarm: None,
            webhooks: self.webhooks.lock().unwrap_or_else(PoisonError::into_inner).clone(),
            ingress_decisions: self.ingress_decisions.snapshot(),
            island: None,
        }
    }

    fn record_ingress_decision(&self, site: SiteId, reason: &str) {
        self.ingress_decisions.count(site, reason);
    }

    fn ingress_directory(&self) -> crate::ingress::IngressDirectory {
        let set = self.ingress.lock().unwrap_or_else(PoisonError::into_inner).clone();
        set.unwrap_or_else(|| crate::ingress::IngressDirectory {
            members: vec![self.site],
            current: true,
            ..Default::default()
        })
    }

    fn cluster(&self) -> impl std::future::Future<Output = ClusterStatus> + Send {
        let health = self.health();
        let (site_state, unreachable_since_ms) = self.read(|r| crate::backend::SiteState::of(r, self.site));
        std::future::ready(ClusterStatus {
            leader: Some(self.site),
            term: 1,
            members: vec![MemberStatus {
                site: self.site,
                voter: true,
                reachable: Some(true),
                lag_entries: Some(0),
                health: Some(health),
                site_state,
                unreachable_since_ms,
            }],
        })
    }
}
