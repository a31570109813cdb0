//! The verdict: the phones' ground truth (stand-in) and every site's history against the
//! issue's thresholds.

use crate::faults::FaultFigures;
use crate::history::CallRows;
use lineup_pbx_sim::standin::truth::{CallerTruth, TruthReport};
use serde::Serialize;
use std::collections::BTreeMap;

/// `max_restart_to_heard_ms` must stay below this.
pub const RESTART_TO_HEARD_LIMIT_MS: u64 = 1_000;
/// `leader_kill_to_answer_ms` must stay below this.
pub const LEADER_KILL_TO_ANSWER_LIMIT_MS: u64 = 2_500;
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
    pub restarts: u64,
    pub kills: u64,
    pub max_restart_to_heard_ms: u64,
    pub leader_kill_to_answer_ms: Option<u64>,
    pub faults_skipped: u64,
    pub teardowns: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub value: String,
    pub limit: String,
    pub ok: bool,
}

/// Outcome problems of one call across the sites' histories, if any.
fn outcome_problem(caller: &CallerTruth, histories: &[(u64, CallRows)]) -> Option<String> {
    caller.entered_at_ms?;
    let expected = caller.expected_outcome();
    let mut problems = Vec::new();
    for (site, rows) in histories {
        let found = rows.get(&caller.call_id).map(Vec::as_slice).unwrap_or(&[]);
        match (found, expected) {
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
pub fn figures(truth: &TruthReport, histories: &[(u64, CallRows)], faults: &FaultFigures) -> (Figures, Vec<String>) {
    let wrong: Vec<String> = truth.callers.iter().filter_map(|c| outcome_problem(c, histories)).collect();
    let figures = Figures {
        calls: truth.callers.len() as u64,
        answered: truth.callers.iter().filter(|c| !c.connections.is_empty()).count() as u64,
        outcomes_wrong: wrong.len() as u64,
        double_booked: truth.double_booked,
        calls_dropped_by_fault: truth.calls_dropped,
        operator_legs_dropped: truth.operator_legs_dropped,
        calls_not_ended: truth.callers.iter().filter(|c| c.ended_at_ms.is_none()).count() as u64,
        restarts: faults.restarts,
        kills: faults.kills,
        max_restart_to_heard_ms: faults.max_restart_to_heard_ms(),
        leader_kill_to_answer_ms: faults.leader_kill_to_answer_ms,
        faults_skipped: faults.skipped.len() as u64,
        teardowns: truth.teardowns.clone(),
    };
    (figures, wrong)
}

fn zero(name: &'static str, value: u64) -> Check {
    Check { name, value: value.to_string(), limit: "0".into(), ok: value == 0 }
}

fn below(name: &'static str, value: Option<u64>, limit_ms: u64) -> Check {
    let shown = value.map(|v| v.to_string()).unwrap_or_else(|| "not measured".into());
    Check { name, value: shown, limit: format!("< {limit_ms}"), ok: value.is_some_and(|v| v < limit_ms) }
}

pub fn checks(figures: &Figures) -> Vec<Check> {
    vec![
        Check { name: "answered", value: figures.answered.to_string(), limit: "> 0".into(), ok: figures.answered > 0 },
        zero("outcomes_wrong", figures.outcomes_wrong),
        zero("double_booked", figures.double_booked),
        zero("calls_dropped_by_fault", figures.calls_dropped_by_fault),
        zero("operator_legs_dropped", figures.operator_legs_dropped),
        zero("calls_not_ended", figures.calls_not_ended),
        zero("faults_skipped", figures.faults_skipped),
        below("max_restart_to_heard_ms", Some(figures.max_restart_to_heard_ms), RESTART_TO_HEARD_LIMIT_MS),
        below("leader_kill_to_answer_ms", figures.leader_kill_to_answer_ms, LEADER_KILL_TO_ANSWER_LIMIT_MS),
    ]
}
