//! The verdict: the phones' ground truth (stand-in) and every site's history against the
//! issue's thresholds.

use crate::faults::FaultFigures;
use crate::history::CallRows;
use crate::order::order_violations;
use crate::raft_logs::RaftLogAgreement;
use crate::snapshot_kill::Phase;
use crate::Scenario;
use lineup_pbx_sim::truth::{CallerTruth, TruthReport};
use serde::Serialize;
use std::collections::BTreeMap;

/// `max_restart_to_heard_ms` must stay below this.
pub const RESTART_TO_HEARD_LIMIT_MS: u64 = 1_000;
/// `leader_kill_to_answer_ms` must stay below this.
pub const LEADER_KILL_TO_ANSWER_LIMIT_MS: u64 = 2_500;
/// `max_heal_to_heard_ms` (nemesis) must stay below this: after a pause or a partition, the
/// leader replicates to the site again within two seconds.
pub const HEAL_TO_HEARD_LIMIT_MS: u64 = 2_000;
/// `after_faults_answer_ms` (nemesis) must stay below this: a caller arriving for a free
/// operator once every fault healed is answered as on a healthy federation.
pub const AFTER_FAULTS_ANSWER_LIMIT_MS: u64 = 2_500;
/// `cut_to_first_island_answer_ms` (island) must stay below this: the island timeout (6 s),
/// then the fork, then an offer to a free persistent operator, which bridges at once.
pub const CUT_TO_ISLAND_ANSWER_LIMIT_MS: u64 = 9_000;
/// `merge_ms` (island) must stay below this: from the heal until the site is part of the
/// majority again, its fork merged. That is the island's wait for a stable link (1 s), the
/// elections a returning node can set off (it may stand before the leader reaches it: up
/// to ~5 s of churn seen), and the merge itself (tens of ms).
pub const MERGE_LIMIT_MS: u64 = 10_000;
/// `island_capacity_ratio` (island) must reach this: the island answers at least 80 % of
/// what its free operators could have answered while it served.
pub const ISLAND_CAPACITY_RATIO_MIN: f64 = 0.8;
/// Most failure details printed per check.
pub const DETAILS_MAX_COUNT: usize = 20;

#[derive(Clone, Debug, Serialize)]
pub struct Figures {
    pub calls: u64,
    pub answered: u64,
    pub outcomes_wrong: u64,
    pub double_booked: u64,
    pub calls_dropped_by_fault: u64,
    pub operator_legs_dropped: u64,
    pub calls_not_ended: u64,
    /// Callers connected in calm times while one who entered clearly earlier still waited
    /// (`order.rs`).
    pub order_violations: u64,
    /// Every site's history holds the same outcome rows, and every site's queue_log the same
    /// lines.
    pub history_converged: bool,
    /// Every pair of sites' stopped Raft logs holds the same committed entries
    /// (`raft_logs.rs`), and how many entries that compared.
    pub raft_logs_agree: bool,
    pub raft_log_entries_compared: u64,
    /// Everything above that broke a promise: wrong outcomes, double bookings, drops, calls
    /// not ended, overtakings, unconverged histories (1), disagreeing Raft logs (1) and
    /// memberships that did not settle (1).
    pub violations: u64,
    pub restarts: u64,
    pub kills: u64,
    pub max_restart_to_heard_ms: u64,
    pub leader_kill_to_answer_ms: Option<u64>,
    pub faults: BTreeMap<String, u64>,
    pub max_heal_to_heard_ms: Option<u64>,
    pub after_faults_answer_ms: Option<u64>,
    pub faults_skipped: u64,
    pub teardowns: BTreeMap<String, u64>,
    /// kill -9 aimed at a snapshot being built and written (`snapshot_kill.rs`), and how many
    /// landed while its state was encoded and while its bytes were being written (the write
    /// cut short: the restarted node came back from the snapshot before it).
    pub snapshot_kills: u64,
    pub snapshot_kills_mid_build: u64,
    pub snapshot_kills_mid_write: u64,
    /// Membership changes with a kill in them (`member_kill.rs`), and whether every founding
    /// node listed the same voters after each.
    pub membership_changes: u64,
    pub memberships_converged: bool,
    /// The islands and their merges (`--scenario island`).
    #[serde(flatten)]
    pub island: Option<crate::island_figures::IslandSummary>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub value: String,
    pub limit: String,
    pub ok: bool,
}

/// A report the node made just before it was stopped may die with it (proposed, not yet
/// committed); hangups this long before a stop count as unseen too.
pub const UNCOMMITTED_BEFORE_STOP_MS: u64 = 1_000;

/// Whether the call ended while the node of a site that held one of its legs was down (or
/// just before, see `UNCOMMITTED_BEFORE_STOP_MS`): the caller's site, or the site of the
/// operator it was connected to. A site that was down saw no hangup, only on its return that
/// its leg was gone, and the other site cannot know of a hangup it did not hold: in a
/// cross-site call whose operator hung up at a box whose node was down, the caller hears
/// silence and may hang up a few ms later, before the operator's site is back to say so.
/// Which party hung up first is then not something the federation could know, and either
/// `by` is a true answer. The outcome itself must still be right.
fn ended_unseen(caller: &CallerTruth, faults: &FaultFigures) -> bool {
    let Some(ended) = caller.ended_at_ms else { return false };
    let caller_site = caller.box_index as u64 + 1;
    let operator_site = caller.connections.last().map(|c| c.operator_box as u64 + 1);
    [Some(caller_site), operator_site].into_iter().flatten().any(|site| site_unseeing_at(site, ended, faults))
}

/// Whether `site`'s node could not see its box at `at_ms`: restarting (from its stop to its
/// ready), frozen, or with its ARI socket cut (the box may also drop a subscriber that falls
/// behind); either way it finds its legs gone on its return.
fn site_unseeing_at(site: u64, at_ms: u64, faults: &FaultFigures) -> bool {
    let restarted = faults.restarts_detail.iter().any(|r| {
        let from = r.down_from_ms.saturating_sub(UNCOMMITTED_BEFORE_STOP_MS);
        r.site == site && from <= at_ms && r.ready_at_ms.is_none_or(|ready| at_ms <= ready)
    });
    let blind = faults
        .outages
        .iter()
        .filter(|o| o.blind && o.site == site)
        .any(|o| o.from_ms.saturating_sub(UNCOMMITTED_BEFORE_STOP_MS) <= at_ms && at_ms <= o.until_ms);
    restarted || blind
}

/// Outcome problems of one call across the sites' histories, if any.
fn outcome_problem(caller: &CallerTruth, histories: &[(u64, CallRows)], faults: &FaultFigures) -> Option<String> {
    caller.entered_at_ms?;
    let expected = caller.expected_outcome();
    let by_unseen = ended_unseen(caller, faults);
    let mut problems = Vec::new();
    for (site, rows) in histories {
        let found = rows.get(&caller.call_id).map(Vec::as_slice).unwrap_or(&[]);
        match (found, expected) {
            ([row], Some((outcome, _))) if by_unseen && row.outcome == outcome => {}
            ([row], Some((outcome, by))) if row.outcome != outcome || row.detail.as_deref() != by => {
                problems.push(format!("site {site}: {} {:?}, truth {outcome} {by:?}", row.outcome, row.detail))
            }
            ([_], _) => {}
            (rows, _) => problems.push(format!("site {site}: {} outcomes", rows.len())),
        }
    }
    (!problems.is_empty()).then(|| format!("call {}: {}", caller.call_id, problems.join("; ")))
}

/// The figures and the details of every wrong outcome.
pub fn figures(
    truth: &TruthReport,
    histories: &[(u64, CallRows)],
    queue_logs_agree: bool,
    raft_logs: &RaftLogAgreement,
    faults: &FaultFigures,
    sites: u64,
) -> (Figures, Vec<String>, Vec<String>) {
    let wrong: Vec<String> = truth.callers.iter().filter_map(|c| outcome_problem(c, histories, faults)).collect();
    let overtakings = order_violations(&truth.callers, faults, sites);
    let history_converged = queue_logs_agree && histories.windows(2).all(|pair| pair[0].1 == pair[1].1);
    let mut figures = Figures {
        calls: truth.callers.len() as u64,
        answered: truth.callers.iter().filter(|c| !c.connections.is_empty()).count() as u64,
        outcomes_wrong: wrong.len() as u64,
        double_booked: truth.double_booked,
        calls_dropped_by_fault: truth.calls_dropped,
        operator_legs_dropped: truth.operator_legs_dropped,
        calls_not_ended: truth.callers.iter().filter(|c| c.ended_at_ms.is_none()).count() as u64,
        order_violations: overtakings.len() as u64,
        history_converged,
        raft_logs_agree: raft_logs.agree,
        raft_log_entries_compared: raft_logs.entries_compared,
        violations: 0,
        restarts: faults.restarts,
        kills: faults.kills,
        max_restart_to_heard_ms: faults.max_restart_to_heard_ms(),
        leader_kill_to_answer_ms: faults.leader_kill_to_answer_ms,
        faults: faults.faults.clone(),
        max_heal_to_heard_ms: faults.max_heal_to_heard_ms(),
        after_faults_answer_ms: faults.after_faults_answer_ms,
        faults_skipped: faults.skipped.len() as u64,
        teardowns: truth.teardowns.clone(),
        snapshot_kills: faults.snapshot_kills.len() as u64,
        snapshot_kills_mid_build: faults.snapshot_kills.iter().filter(|k| k.phase == Phase::Building).count() as u64,
        snapshot_kills_mid_write: faults.snapshot_kills.iter().filter(|k| k.phase == Phase::Writing).count() as u64,
        membership_changes: faults.memberships.len() as u64,
        memberships_converged: faults.memberships.iter().all(|m| m.converged),
        island: {
            let overtaken_at: Vec<u64> = overtakings.iter().map(|(at_ms, _)| *at_ms).collect();
            crate::island_figures::island_summary(&faults.islands, truth, histories, &overtaken_at, sites)
        },
    };
    figures.violations = figures.outcomes_wrong
        + figures.double_booked
        + figures.calls_dropped_by_fault
        + figures.operator_legs_dropped
        + figures.calls_not_ended
        + figures.order_violations
        + u64::from(!history_converged)
        + u64::from(!raft_logs.agree)
        + u64::from(!figures.memberships_converged);
    (figures, wrong, overtakings.into_iter().map(|(_, what)| what).collect())
}

fn holds(name: &'static str, value: bool) -> Check {
    Check { name, value: value.to_string(), limit: "true".into(), ok: value }
}

fn zero(name: &'static str, value: u64) -> Check {
    Check { name, value: value.to_string(), limit: "0".into(), ok: value == 0 }
}

fn below(name: &'static str, value: Option<u64>, limit_ms: u64) -> Check {
    let shown = value.map(|v| v.to_string()).unwrap_or_else(|| "not measured".into());
    Check { name, value: shown, limit: format!("< {limit_ms}"), ok: value.is_some_and(|v| v < limit_ms) }
}

/// The checks every scenario shares, then the timing checks of `scenario`.
pub fn checks(figures: &Figures, scenario: Scenario) -> Vec<Check> {
    let mut checks = vec![
        Check { name: "answered", value: figures.answered.to_string(), limit: "> 0".into(), ok: figures.answered > 0 },
        zero("outcomes_wrong", figures.outcomes_wrong),
        zero("double_booked", figures.double_booked),
        zero("calls_dropped_by_fault", figures.calls_dropped_by_fault),
        zero("operator_legs_dropped", figures.operator_legs_dropped),
        zero("calls_not_ended", figures.calls_not_ended),
        zero("order_violations", figures.order_violations),
        zero("faults_skipped", figures.faults_skipped),
        holds("history_converged", figures.history_converged),
        holds("raft_logs_agree", figures.raft_logs_agree),
        holds("memberships_converged", figures.memberships_converged),
    ];
    match scenario {
        Scenario::Restarts => checks.extend([
            below("max_restart_to_heard_ms", Some(figures.max_restart_to_heard_ms), RESTART_TO_HEARD_LIMIT_MS),
            below("leader_kill_to_answer_ms", figures.leader_kill_to_answer_ms, LEADER_KILL_TO_ANSWER_LIMIT_MS),
        ]),
        Scenario::Nemesis => {
            checks.extend([
                below("max_heal_to_heard_ms", figures.max_heal_to_heard_ms, HEAL_TO_HEARD_LIMIT_MS),
                below("after_faults_answer_ms", figures.after_faults_answer_ms, AFTER_FAULTS_ANSWER_LIMIT_MS),
            ]);
            // The nodes killed while writing a snapshot come back and are heard.
            if figures.kills > 0 {
                let heard = Some(figures.max_restart_to_heard_ms);
                checks.push(below("max_restart_to_heard_ms", heard, RESTART_TO_HEARD_LIMIT_MS));
            }
        }
        Scenario::Random => {
            // Only what the draw held: an outage's heal, a restart's return.
            if figures.max_heal_to_heard_ms.is_some() {
                checks.push(below("max_heal_to_heard_ms", figures.max_heal_to_heard_ms, HEAL_TO_HEARD_LIMIT_MS));
            }
            if figures.restarts + figures.kills > 0 {
                let heard = Some(figures.max_restart_to_heard_ms);
                checks.push(below("max_restart_to_heard_ms", heard, RESTART_TO_HEARD_LIMIT_MS));
            }
            let answer = figures.after_faults_answer_ms;
            checks.push(below("after_faults_answer_ms", answer, AFTER_FAULTS_ANSWER_LIMIT_MS));
        }
        Scenario::Island => {
            let island = figures.island.as_ref();
            let answer = island.and_then(|i| i.cut_to_first_island_answer_ms);
            let answered = island.map_or(0, |i| i.island_answered);
            let ratio = island.map_or(0.0, |i| i.island_capacity_ratio);
            checks.extend([
                Check { name: "island_answered", value: answered.to_string(), limit: "> 0".into(), ok: answered > 0 },
                Check {
                    name: "island_capacity_ratio",
                    value: format!("{ratio:.2}"),
                    limit: format!(">= {ISLAND_CAPACITY_RATIO_MIN}"),
                    ok: ratio >= ISLAND_CAPACITY_RATIO_MIN,
                },
                holds("merged_exactly_once", island.is_some_and(|i| i.merged_exactly_once)),
                zero("order_violations_after_heal", island.map_or(0, |i| i.order_violations_after_heal)),
                below("cut_to_first_island_answer_ms", answer, CUT_TO_ISLAND_ANSWER_LIMIT_MS),
                below("merge_ms", island.and_then(|i| i.merge_ms), MERGE_LIMIT_MS),
                below("max_heal_to_heard_ms", figures.max_heal_to_heard_ms, HEAL_TO_HEARD_LIMIT_MS),
                below("after_faults_answer_ms", figures.after_faults_answer_ms, AFTER_FAULTS_ANSWER_LIMIT_MS),
            ]);
        }
        // Judged by its own report (ingress.rs), never through these figures.
        Scenario::Ingress => {}
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::RestartRecord;
    use lineup_pbx_sim::truth::{CallerPlan, Connection, Party};

    fn caller(ended_at_ms: u64) -> CallerTruth {
        CallerTruth {
            call_id: "3-7.11".into(),
            box_index: 2,
            channel: "7.11".into(),
            plan: CallerPlan { talk_ms: 5_000, hang_up_by: Party::Operator, patience_ms: 60_000 },
            placed_at_ms: 1_000,
            entered_at_ms: Some(1_100),
            connections: vec![Connection { operator: "1001".into(), operator_box: 2, at_ms: 2_000 }],
            scripted_by: Some(Party::Operator),
            ended_at_ms: Some(ended_at_ms),
            ended_by: None,
            dropped: None,
        }
    }

    fn site_3_down(from: u64, ready: u64) -> FaultFigures {
        let record = RestartRecord {
            what: "Kill of the CallerNode (site 3)".into(),
            site: 3,
            ready_after_start_ms: Some(50),
            heard_after_ready_ms: Some(3),
            down_from_ms: from,
            ready_at_ms: Some(ready),
        };
        FaultFigures { restarts_detail: vec![record], ..FaultFigures::default() }
    }

    /// The operator hung up, then the caller, while the caller's site was down: on its return
    /// both legs were gone, and "caller" is as true an answer as the site could give.
    #[test]
    fn who_hung_up_first_is_not_asked_of_a_site_that_was_down() {
        let mut rows = CallRows::new();
        rows.insert(
            "3-7.11".into(),
            vec![crate::history::OutcomeRow { outcome: "completed".into(), detail: Some("caller".into()) }],
        );
        let histories = [(3, rows)];
        assert!(outcome_problem(&caller(10_500), &histories, &site_3_down(10_000, 12_000)).is_none());
        let problem = outcome_problem(&caller(20_000), &histories, &site_3_down(10_000, 12_000));
        assert!(problem.is_some_and(|p| p.contains("truth completed")), "a site that was up must get it right");
    }

    /// A cross-site call (caller at site 1, operator at site 3) whose operator hung up 12 ms
    /// before site 3's node was ready again, and whose caller hung up 27 ms later: site 1
    /// reported the caller's hangup before site 3 could report the operator's.
    #[test]
    fn who_hung_up_first_is_not_asked_when_the_operators_site_was_down() {
        let mut rows = CallRows::new();
        rows.insert(
            "3-7.11".into(),
            vec![crate::history::OutcomeRow { outcome: "completed".into(), detail: Some("caller".into()) }],
        );
        let histories = [(1, rows)];
        let cross_site = |ended| CallerTruth { box_index: 0, ..caller(ended) };
        assert!(outcome_problem(&cross_site(11_988), &histories, &site_3_down(10_000, 12_000)).is_none());
        let problem = outcome_problem(&cross_site(20_000), &histories, &site_3_down(10_000, 12_000));
        assert!(problem.is_some_and(|p| p.contains("truth completed")), "both sites up must get it right");
    }
}
