//! What the demo prints: a status line while it runs and a JSON summary at the end.

use super::observe::{replay, Observed};
use lineup_cluster::ClusterNode;
use lineup_core::stats::Stats;
use lineup_core::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Serialize)]
pub(super) struct SiteSummary {
    site: u64,
    /// Calls answered by an operator at this site.
    answered: u64,
    /// Calls that entered at this site.
    entered: u64,
    /// Callers this site's Asterisk sent into Lineup that Lineup refused at the door (a bad
    /// queue or gate in the dialplan): handed back with `LINEUP_RESULT=INVALID`, never queued.
    refused_at_entry: Option<u64>,
}

#[derive(Serialize)]
pub(super) struct DemoSummary {
    pub duration_s: u64,
    pub sites: Vec<SiteSummary>,
    /// Callers the simulated phones placed.
    pub placed: u64,
    /// Calls that entered the queue.
    pub calls: u64,
    pub outcomes: BTreeMap<String, u64>,
    pub service_level_percent: Option<f64>,
    pub abandon_rate_percent: Option<f64>,
    pub invariant_violations: u64,
    pub violations: Vec<String>,
    pub calls_without_one_outcome: u64,
    /// Effects the checker's readers skipped because they fell behind (the replay uses each
    /// index's most complete list).
    pub effects_skipped: u64,
    pub leader: Option<u64>,
    /// Each operator's state at the end.
    pub operators: BTreeMap<String, String>,
    /// Every site's history outbox reached its SQLite file and queue_log.
    pub history_drained: bool,
    pub queue_log_lines_site_1: u64,
    /// Site 1's dashboard, and how many queues its API listed at the end (read back over HTTP).
    pub dashboard_url: String,
    pub api_queues: u64,
    /// Where each site's history (SQLite, queue_log) was written.
    pub data_dir: String,
}

/// The figures service level and abandon rate are computed from, added up over every queue.
fn totals(routing: &Routing) -> Stats {
    let mut total = Stats::default();
    for queue in routing.config_set().queues {
        if let Some(summary) = routing.queue_summary(&queue.id) {
            let s = summary.stats;
            total.answered += s.answered;
            total.answered_within_service_level += s.answered_within_service_level;
            total.abandoned += s.abandoned;
            total.timed_out += s.timed_out;
        }
    }
    total
}

fn percent(permille: Option<u64>) -> String {
    permille.map(|p| format!("{:>3}%", p / 10)).unwrap_or_else(|| "   -".into())
}

/// One line: waiting, talking, free operators, ended calls, service level, abandon rate and
/// answers by site.
pub(super) fn status_line<T>(node: &ClusterNode<T>, observed: &Mutex<Observed>, elapsed: Duration) -> String
where
    T: lineup_cluster::transport::PeerTransport + 'static,
{
    let (waiting, connected, operators, stats) = node.read_stale(|r| {
        let calls: Vec<CallView> = r.calls().collect();
        let waiting =
            calls.iter().filter(|c| matches!(c.status, CallStatus::Waiting | CallStatus::CallbackWaiting)).count();
        let connected =
            calls.iter().filter(|c| matches!(c.status, CallStatus::Connected | CallStatus::CallbackConnected)).count();
        let available = r.operators().filter(|o| o.status == OperatorStatus::Available).count();
        (waiting, connected, available, totals(r))
    });
    let replay = replay(&observed.lock().unwrap_or_else(|p| p.into_inner()));
    let ended: u64 = replay.outcomes.values().sum();
    let by_site = super::SITES
        .iter()
        .map(|s| format!("{s}:{}", replay.answered.get(s).copied().unwrap_or(0)))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "[{:>4}s] waiting {waiting:>2} | talking {connected:>2} | free operators {operators} | ended {ended:>3} | \
         service level {} | abandoned {} | answered by site {by_site}",
        elapsed.as_secs(),
        percent(stats.service_level_permille()),
        percent(stats.abandon_rate_permille()),
    )
}

/// Checks every node against itself and the others (identical state at the same index) and
/// replays the observed effects.
pub(super) fn summarize<T>(
    nodes: &BTreeMap<u64, Arc<ClusterNode<T>>>,
    observed: &Mutex<Observed>,
    elapsed: Duration,
    drained: bool,
    placed: u64,
) -> DemoSummary
where
    T: lineup_cluster::transport::PeerTransport + 'static,
{
    let mut violations = Vec::new();
    let snapshots: Vec<(u64, u64, Vec<u8>)> = nodes
        .iter()
        .map(|(site, node)| {
            if let Err(e) = node.read_stale(|r| r.check_invariants()) {
                violations.push(format!("site {site}: {e}"));
            }
            (*site, node.applied_index(), node.read_stale(|r| r.snapshot_bytes()))
        })
        .collect();
    for pair in snapshots.windows(2) {
        if pair[0].1 == pair[1].1 && pair[0].2 != pair[1].2 {
            violations.push(format!("sites {} and {} differ at log index {}", pair[0].0, pair[1].0, pair[0].1));
        }
    }
    if !drained {
        violations.push("calls still in the system after the drain".into());
    }
    let observed = observed.lock().unwrap_or_else(|p| p.into_inner());
    let replay = replay(&observed);
    violations.extend(replay.violations);
    let first = nodes.values().next();
    let stats = first.map(|n| n.read_stale(totals)).unwrap_or_default();
    DemoSummary {
        duration_s: elapsed.as_secs(),
        sites: super::SITES
            .iter()
            .map(|s| SiteSummary {
                site: *s,
                answered: replay.answered.get(s).copied().unwrap_or(0),
                entered: replay.entered.get(s).copied().unwrap_or(0),
                refused_at_entry: None,
            })
            .collect(),
        placed,
        calls: replay.calls,
        outcomes: replay.outcomes,
        service_level_percent: stats.service_level_permille().map(|p| p as f64 / 10.0),
        abandon_rate_percent: stats.abandon_rate_permille().map(|p| p as f64 / 10.0),
        invariant_violations: violations.len() as u64,
        violations,
        calls_without_one_outcome: replay.calls_without_one_outcome,
        effects_skipped: observed.skipped,
        leader: first.and_then(|n| n.raft().metrics().borrow().current_leader),
        operators: first
            .map(|n| {
                n.read_stale(|r| r.operators().map(|o| (o.operator.to_string(), o.status.name().to_string())).collect())
            })
            .unwrap_or_default(),
        history_drained: false,
        queue_log_lines_site_1: 0,
        dashboard_url: String::new(),
        api_queues: 0,
        data_dir: String::new(),
    }
}

impl DemoSummary {
    /// Records a site's counters from its stopped site controller.
    pub fn set_refused_at_entry(&mut self, site: u64, refused: u64) {
        if let Some(row) = self.sites.iter_mut().find(|row| row.site == site) {
            row.refused_at_entry = Some(refused);
        }
    }
}
