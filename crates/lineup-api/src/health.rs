//! `/healthz`, `/readyz` and the Prometheus `/metrics` text (rendered by hand: a few dozen
//! series do not need a metrics crate).

use crate::auth::{Caller, Read};
use crate::backend::{Health, RaftRole};
use crate::views::{OperatorRow, QueueRow};
use crate::{ApiBackend, AppState};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A node that has not heard from a leader for longer than this is not ready to route.
pub const READY_LEADER_CONTACT_MAX_MS: u64 = 10_000;
/// A node whose applied state trails the committed log by more than this many Raft entries
/// is not ready (it would route on stale state).
pub const READY_APPLY_LAG_MAX_ENTRIES: u64 = 1_000;

pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "up" }))
}

#[derive(Debug, Serialize)]
pub struct Readiness {
    pub ready: bool,
    /// Ready, but an optional edge (Redis, history database) is down: routing is unaffected.
    pub degraded: bool,
    /// `redis`, `database`, or `clock` (see `clock_alarm`).
    pub degraded_edges: Vec<&'static str>,
    /// Why this node's wall clock is not trusted, while it leads with one far off the
    /// cluster's clock. Routing is unaffected (the cluster's clock keeps real time).
    pub clock_alarm: Option<String>,
    /// Why the node is not ready (empty when ready).
    pub problems: Vec<String>,
    pub site: lineup_core::SiteId,
    pub raft_role: RaftRole,
    pub leader: Option<lineup_core::SiteId>,
}

/// Ready to route: a leader is known and recently heard from, this node has applied what was
/// committed, and ARI is connected. Redis and the history database only degrade.
pub fn readiness(h: &Health) -> Readiness {
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
    Readiness {
        ready: problems.is_empty(),
        degraded: !degraded_edges.is_empty(),
        degraded_edges,
        clock_alarm: h.clock_alarm.clone(),
        problems,
        site: h.site,
        raft_role: h.raft.role,
        leader: h.raft.leader,
    }
}

pub async fn readyz<B: ApiBackend>(State(s): State<Arc<AppState<B>>>) -> Response {
    let r = readiness(&s.backend.health());
    let status = if r.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(r)).into_response()
}

fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

fn seconds(ms: u64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

/// The Prometheus exposition text for this node.
pub fn render_metrics<B: ApiBackend>(state: &AppState<B>) -> String {
    let health = state.backend.health();
    let (queues, operators, unreachable) = state.backend.read(|r| {
        let now_ms = r.now_ms();
        let unreachable: Vec<(String, u64)> =
            r.unreachable_sites().map(|(site, since)| (site.0.to_string(), now_ms.saturating_sub(since))).collect();
        (crate::views::queue_rows(r), crate::views::operator_rows(r), unreachable)
    });
    let mut t = Text(String::with_capacity(4096));
    render_unreachable_sites(&mut t, &unreachable);
    render_queue_gauges(&mut t, &queues);
    render_queue_counters(&mut t, &queues);
    render_offers_and_operators(&mut t, state, &operators);
    render_raft_and_edges(&mut t, &health);
    render_api_counters(&mut t, state);
    t.0
}

/// Sites the cluster has not heard from, and for how long.
fn render_unreachable_sites(t: &mut Text, unreachable: &[(String, u64)]) {
    t.family(
        "lineup_site_unreachable_seconds",
        "gauge",
        "How long the cluster has not heard a site (present only while it is unreachable).",
    );
    for (site, for_ms) in unreachable {
        t.sample("lineup_site_unreachable_seconds", &[("site", site.as_str())], seconds(*for_ms));
    }
}

/// Per queue: waiting callers and callbacks, longest wait, ETA, operators by state, alarms.
fn render_queue_gauges(t: &mut Text, queues: &[QueueRow]) {
    t.family("lineup_queue_waiting_calls", "gauge", "Callers waiting on the line in the queue.");
    for q in queues {
        t.sample("lineup_queue_waiting_calls", &[("queue", q.summary.queue.as_str())], q.summary.waiting);
    }
    t.family("lineup_queue_callbacks_waiting", "gauge", "Callback promises holding a place in the queue.");
    for q in queues {
        t.sample("lineup_queue_callbacks_waiting", &[("queue", q.summary.queue.as_str())], q.summary.callbacks_waiting);
    }
    t.family("lineup_queue_longest_wait_seconds", "gauge", "Wait of the longest-waiting caller (0 when none).");
    for q in queues {
        let wait = seconds(q.summary.longest_wait_ms.unwrap_or(0));
        t.sample("lineup_queue_longest_wait_seconds", &[("queue", q.summary.queue.as_str())], wait);
    }
    t.family("lineup_queue_eta_seconds", "gauge", "ETA a caller joining now would be told (absent when unstaffed).");
    for q in queues {
        if let Some(eta) = q.summary.eta_ms {
            t.sample("lineup_queue_eta_seconds", &[("queue", q.summary.queue.as_str())], seconds(eta));
        }
    }
    t.family("lineup_queue_operators", "gauge", "Member operators of the queue by state.");
    for q in queues {
        let s = &q.summary;
        for (state_name, n) in
            [("logged_in", s.logged_in), ("staffed", s.staffed), ("available", s.available), ("busy", s.busy)]
        {
            t.sample("lineup_queue_operators", &[("queue", s.queue.as_str()), ("state", state_name)], n);
        }
    }
    t.family("lineup_queue_alarm", "gauge", "1 while the queue's alarm is raised.");
    for q in queues {
        let s = &q.summary;
        t.sample(
            "lineup_queue_alarm",
            &[("queue", s.queue.as_str()), ("kind", "longest_wait")],
            u8::from(s.alarm_longest_wait),
        );
        t.sample("lineup_queue_alarm", &[("queue", s.queue.as_str()), ("kind", "depth")], u8::from(s.alarm_depth));
    }
}

/// Per queue and per gate: callers entered, and calls that left by outcome.
fn render_queue_counters(t: &mut Text, queues: &[QueueRow]) {
    use lineup_core::stats::Stats;
    t.family("lineup_queue_entered_total", "counter", "Callers that joined the queue (ENTERQUEUE).");
    for q in queues {
        t.sample("lineup_queue_entered_total", &[("queue", q.summary.queue.as_str())], q.summary.stats.offered);
    }
    let outcomes = |s: &Stats| {
        [
            ("answered", s.answered),
            ("abandoned", s.abandoned),
            ("timed_out", s.timed_out),
            ("full", s.full),
            ("closed", s.closed),
            ("empty", s.empty),
            ("exited_with_key", s.exited_with_key),
            ("overflowed", s.overflowed),
            ("callback_requested", s.callbacks_requested),
            ("callback_failed", s.callbacks_failed),
        ]
    };
    t.family("lineup_queue_outcomes_total", "counter", "Calls that left the queue, by outcome.");
    for q in queues {
        for (outcome, n) in outcomes(&q.summary.stats) {
            t.sample("lineup_queue_outcomes_total", &[("queue", q.summary.queue.as_str()), ("outcome", outcome)], n);
        }
    }
    t.family("lineup_gate_waiting_calls", "gauge", "Callers waiting that entered through the gate.");
    for q in queues {
        for g in &q.gates {
            let labels = [("queue", q.summary.queue.as_str()), ("gate", g.summary.gate.as_str())];
            t.sample("lineup_gate_waiting_calls", &labels, g.summary.waiting);
        }
    }
    t.family("lineup_gate_outcomes_total", "counter", "Calls that entered through the gate, by outcome.");
    for q in queues {
        for g in &q.gates {
            for (outcome, n) in outcomes(&g.summary.stats) {
                let labels =
                    [("queue", q.summary.queue.as_str()), ("gate", g.summary.gate.as_str()), ("outcome", outcome)];
                t.sample("lineup_gate_outcomes_total", &labels, n);
            }
        }
    }
}

/// Offers seen on the live feed, and configured operators by state.
fn render_offers_and_operators<B: ApiBackend>(t: &mut Text, state: &AppState<B>, operators: &[OperatorRow]) {
    t.family("lineup_offers_total", "counter", "Offers (call to operator) seen on this node's live feed since start.");
    t.sample("lineup_offers_total", &[], state.hub.counters.offers_seen.load(Ordering::Relaxed));

    t.family("lineup_operators", "gauge", "Configured operators by state.");
    for state_name in ["offline", "available", "offered", "busy", "wrap_up", "break"] {
        let n = operators.iter().filter(|o| o.state == state_name).count();
        t.sample("lineup_operators", &[("state", state_name)], n);
    }
}

/// Raft position and role, and the edges: ARI, refused callers, Redis, history.
fn render_raft_and_edges(t: &mut Text, health: &Health) {
    let raft = &health.raft;
    t.family("lineup_raft_term", "gauge", "Current Raft term.");
    t.sample("lineup_raft_term", &[], raft.term);
    t.family("lineup_raft_committed_index", "gauge", "Highest committed apply index known here.");
    t.sample("lineup_raft_committed_index", &[], raft.committed_index);
    t.family("lineup_raft_applied_index", "gauge", "Highest apply index applied here.");
    t.sample("lineup_raft_applied_index", &[], raft.applied_index);
    t.family("lineup_raft_is_leader", "gauge", "1 on the leader.");
    t.sample("lineup_raft_is_leader", &[], u8::from(raft.role == RaftRole::Leader));
    t.family("lineup_raft_leader_known", "gauge", "1 when a leader is known.");
    t.sample("lineup_raft_leader_known", &[], u8::from(raft.leader.is_some()));

    t.family("lineup_ari_connected", "gauge", "1 while the ARI connection is up.");
    t.sample("lineup_ari_connected", &[], u8::from(health.ari_connected));
    t.family(
        "lineup_site_callers_refused_total",
        "counter",
        "Callers handed back at the door with LINEUP_RESULT=INVALID (a queue or gate the routing config does not have).",
    );
    t.sample("lineup_site_callers_refused_total", &[], health.callers_refused_at_entry);
    t.family("lineup_redis_ok", "gauge", "1 while the Redis projection is current (absent when not configured).");
    if let Some(r) = &health.redis {
        t.sample("lineup_redis_ok", &[], u8::from(r.ok));
    }
    t.family("lineup_history_ok", "gauge", "1 while history sinks deliver (absent when not configured).");
    if let Some(d) = &health.database {
        t.sample("lineup_history_ok", &[], u8::from(d.ok));
    }
    t.family("lineup_history_outbox_lag_entries", "gauge", "Entries in the history outbox not yet delivered.");
    if let Some(lag) = health.database.as_ref().and_then(|d| d.lag_entries) {
        t.sample("lineup_history_outbox_lag_entries", &[], lag);
    }
}

/// The API's own connections and live-feed counters.
fn render_api_counters<B: ApiBackend>(t: &mut Text, state: &AppState<B>) {
    let c = &state.hub.counters;
    t.family("lineup_api_ws_clients", "gauge", "Open WebSocket connections.");
    t.sample("lineup_api_ws_clients", &[("route", "live")], c.live_clients.load(Ordering::Relaxed));
    t.sample("lineup_api_ws_clients", &[("route", "call")], c.call_clients.load(Ordering::Relaxed));
    t.family("lineup_api_live_frames_total", "counter", "Frames published by the live hub.");
    t.sample("lineup_api_live_frames_total", &[], c.frames.load(Ordering::Relaxed));
    t.family("lineup_api_live_snapshots_total", "counter", "Snapshots sent to live clients.");
    t.sample("lineup_api_live_snapshots_total", &[], c.snapshots_sent.load(Ordering::Relaxed));
    t.family("lineup_api_live_resyncs_total", "counter", "Snapshots sent to clients that fell behind.");
    t.sample("lineup_api_live_resyncs_total", &[], c.resyncs.load(Ordering::Relaxed));
    t.family("lineup_api_widget_tokens", "gauge", "Per-call widget tokens held (swept as their calls end).");
    t.sample("lineup_api_widget_tokens", &[], state.widget_tokens.len());
}

pub async fn metrics<B: ApiBackend>(State(s): State<Arc<AppState<B>>>, _caller: Caller<Read>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], render_metrics(&s)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::RaftHealth;

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
        };
        let r = readiness(&health);
        assert!(r.ready && r.degraded, "{r:?}");
        assert_eq!(r.degraded_edges, vec!["clock"]);
        assert_eq!(r.clock_alarm, Some(alarm));
        assert!(!readiness(&Health { clock_alarm: None, ..health }).degraded);
    }
}
