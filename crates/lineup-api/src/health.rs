//! `/healthz` and `/readyz` (`/metrics` is `metrics.rs`).

use crate::backend::{Health, RaftRole};
use crate::{ApiBackend, AppState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use std::sync::Arc;

/// A node that has not heard from a leader for longer than this is not ready to route.
pub const READY_LEADER_CONTACT_MAX_MS: u64 = 10_000;
/// A node whose applied state trails the committed log by more than this many Raft entries
/// is not ready (it would route on stale state).
pub const READY_APPLY_LAG_MAX_ENTRIES: u64 = 1_000;

/// `/healthz`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Status {
    /// Always `up`: the process answers.
    pub status: &'static str,
}

pub async fn healthz() -> Json<Status> {
    Json(Status { status: "up" })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub ready: bool,
    /// Ready, but an optional edge (Redis, history database) is down: routing is unaffected.
    pub degraded: bool,
    /// `redis`, `database`, `clock` (see `clock_alarm`) or `island` (see `island`).
    pub degraded_edges: Vec<&'static str>,
    /// Why this node's wall clock is not trusted, while it leads with one far off the
    /// cluster's clock. Routing is unaffected (the cluster's clock keeps real time).
    pub clock_alarm: Option<String>,
    /// Set while this node is an island or merging one back.
    pub island: Option<crate::backend::IslandHealth>,
    /// Why the node is not ready (empty when ready).
    pub problems: Vec<String>,
    pub site: lineup_core::SiteId,
    pub raft_role: RaftRole,
    pub leader: Option<lineup_core::SiteId>,
}

/// Ready to route: a leader is known and recently heard from, this node has applied what was
/// committed, and ARI is connected. Redis and the history database only degrade. An island
/// serving its fork routes without a leader: ready, degraded `island`.
pub fn readiness(h: &Health) -> Readiness {
    let serving_fork = h.island.as_ref().is_some_and(|island| island.serving_fork);
    let mut problems = if serving_fork { Vec::new() } else { leader_problems(h) };
    if !h.ari_connected {
        problems.push("ARI not connected".to_string());
    }
    let mut degraded_edges = Vec::new();
    if h.redis.as_ref().is_some_and(|r| !r.ok) {
        degraded_edges.push("redis");
    }
    if h.database.as_ref().is_some_and(|d| !d.ok) {
        degraded_edges.push("database");
    }
    if h.clock_alarm.is_some() {
        degraded_edges.push("clock");
    }
    if h.island.is_some() {
        degraded_edges.push("island");
    }
    Readiness {
        ready: problems.is_empty(),
        degraded: !degraded_edges.is_empty(),
        degraded_edges,
        clock_alarm: h.clock_alarm.clone(),
        island: h.island.clone(),
        problems,
        site: h.site,
        raft_role: h.raft.role,
        leader: h.raft.leader,
    }
}

/// What keeps a node that follows the log from routing: no leader, or a stale state.
fn leader_problems(h: &Health) -> Vec<String> {
    let mut problems = Vec::new();
    if h.raft.leader.is_none() {
        problems.push("no Raft leader known".to_string());
    }
    // Unknown contact age (a follower whose Raft library does not report it) is not held
    // against the node: a known leader and a small apply lag stand for it.
    if let Some(age) = h.raft.leader_contact_age_ms.filter(|age| *age > READY_LEADER_CONTACT_MAX_MS) {
        problems.push(format!("no contact with the leader for {age} ms"));
    }
    let lag_entries = h.raft.committed_index.saturating_sub(h.raft.applied_index) / lineup_core::ApplyIndex::STRIDE;
    if lag_entries > READY_APPLY_LAG_MAX_ENTRIES {
        problems.push(format!("applied state trails the log by {lag_entries} entries"));
    }
    problems
}

pub async fn readyz<B: ApiBackend>(State(s): State<Arc<AppState<B>>>) -> Response {
    let r = readiness(&s.backend.health());
    let status = if r.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(r)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{IslandHealth, IslandPhaseView, RaftHealth};

    #[test]
    fn a_clock_alarm_degrades_but_keeps_the_node_ready() {
        let raft = RaftHealth {
            role: RaftRole::Leader,
            term: 3,
            leader: Some(lineup_core::SiteId(1)),
            committed_index: 10,
            applied_index: 10,
            leader_contact_age_ms: Some(0),
        };
        let alarm = "this leader's wall clock is 10800000 ms off the cluster's clock".to_string();
        let health = Health {
            site: lineup_core::SiteId(1),
            ari_connected: true,
            redis: None,
            database: None,
            raft,
            callers_refused_at_entry: 0,
            clock_alarm: Some(alarm.clone()),
            webhooks: Vec::new(),
            ingress_decisions: Vec::new(),
            island: None,
        };
        let r = readiness(&health);
        assert!(r.ready && r.degraded, "{r:?}");
        assert_eq!(r.degraded_edges, vec!["clock"]);
        assert_eq!(r.clock_alarm, Some(alarm));
        assert!(!readiness(&Health { clock_alarm: None, ..health }).degraded);
    }

    #[test]
    fn an_island_serving_its_fork_is_ready_without_a_leader_and_one_not_serving_is_not() {
        let raft = RaftHealth {
            role: RaftRole::Follower,
            term: 3,
            leader: None,
            committed_index: 10,
            applied_index: 10,
            leader_contact_age_ms: Some(60_000),
        };
        let island = IslandHealth {
            phase: IslandPhaseView::Island,
            since_ms: Some(1_800_000_000_000),
            epoch: Some(1),
            serving_fork: true,
        };
        let health = Health {
            site: lineup_core::SiteId(3),
            ari_connected: true,
            redis: None,
            database: None,
            raft,
            callers_refused_at_entry: 0,
            clock_alarm: None,
            webhooks: Vec::new(),
            ingress_decisions: Vec::new(),
            island: Some(island.clone()),
        };
        let serving = readiness(&health);
        assert!(serving.ready && serving.degraded, "{serving:?}");
        assert_eq!((serving.degraded_edges, serving.island), (vec!["island"], Some(island.clone())));

        let detected = Health { island: Some(IslandHealth { serving_fork: false, epoch: None, ..island }), ..health };
        let r = readiness(&detected);
        assert!(!r.ready && r.degraded, "{r:?}");
        assert!(r.problems.iter().any(|p| p == "no Raft leader known"), "{r:?}");
        let no_ari = readiness(&Health { ari_connected: false, ..detected.clone() });
        assert!(no_ari.problems.iter().any(|p| p == "ARI not connected"));
        let back = readiness(&Health { island: None, ..detected });
        assert!(!back.degraded_edges.contains(&"island"));
    }
}
