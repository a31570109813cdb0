//! The figures of `--scenario island` (see `island.rs`): for each island, from its record,
//! the phones' truth, every site's history and the times of the order check's overtakings,
//! how fast it served and answered, how many of its callers it answered against what its
//! free operators could have, whether each of its calls is in every site's history once,
//! and how fast it merged; and the summary of every island of the run.

use crate::history::CallRows;
use crate::island::IslandRecord;
use crate::setup::{operators, SALES_WRAP_UP_MS};
use lineup_cluster::lease::ISLAND_AFTER_MS;
use lineup_pbx_sim::truth::{CallerTruth, TruthReport};
use serde::Serialize;

/// The island's figures, from its record, the phones' truth, every site's history and the
/// times of the order check's overtakings.
#[derive(Clone, Debug, Serialize)]
pub struct IslandFigures {
    pub island_site: u64,
    pub island_epoch: Option<u64>,
    /// From the cut until the site served its fork.
    pub cut_to_island_ms: Option<u64>,
    /// From the cut until the caller placed at the site as it began was answered there.
    pub cut_to_first_island_answer_ms: Option<u64>,
    /// Callers who entered at the site while it was cut (the one placed at the cut too)...
    pub island_callers: u64,
    /// ...and those of them answered there while it was cut.
    pub island_answered: u64,
    /// `island_answered` ÷ what the site could have answered: the island's callers, at most
    /// the caller placed at the cut (its operator idle) plus the free time of the site's
    /// `sales` operators while the island served ÷ the run's mean handle time. 1 when that
    /// is nothing.
    pub island_capacity_ratio: f64,
    /// Every island caller's call is in every site's history exactly once.
    pub merged_exactly_once: bool,
    /// Overtakings the order check found from the heal on.
    pub order_violations_after_heal: u64,
    pub merge_ms: Option<u64>,
}

/// The island's figures: `record` against the stand-in's `truth`, the sites' `histories` and
/// the times of the overtakings (`overtaken_at`), in a run of `sites` sites.
pub fn island_figures(
    record: &IslandRecord,
    truth: &TruthReport,
    histories: &[(u64, CallRows)],
    overtaken_at: &[u64],
    sites: u64,
) -> IslandFigures {
    let box_index = record.site as usize - 1;
    let callers: Vec<&CallerTruth> = truth.callers.iter().filter(|c| record.holds(c)).collect();
    let answered_there = |c: &&&CallerTruth| {
        c.connections.first().is_some_and(|first| first.operator_box == box_index && record.during_cut(first.at_ms))
    };
    let island_answered = callers.iter().filter(answered_there).count() as u64;
    let probe = truth.callers.iter().find(|c| Some(&c.call_id) == record.probe_call.as_ref());
    let probe_answered = probe.and_then(|c| c.connections.first()).filter(|first| record.during_cut(first.at_ms));
    let once_everywhere =
        |c: &&CallerTruth| histories.iter().all(|(_, rows)| rows.get(&c.call_id).is_some_and(|r| r.len() == 1));
    IslandFigures {
        island_site: record.site,
        island_epoch: record.epoch,
        cut_to_island_ms: record.serving_fork_ms.map(|at| at.saturating_sub(record.cut_from_ms)),
        cut_to_first_island_answer_ms: probe_answered.map(|first| first.at_ms - record.cut_from_ms),
        island_callers: callers.len() as u64,
        island_answered,
        island_capacity_ratio: capacity_ratio(island_answered, callers.len() as u64, capacity(record, truth, sites)),
        merged_exactly_once: callers.iter().all(once_everywhere),
        order_violations_after_heal: overtaken_at.iter().filter(|at| **at >= record.healed_ms).count() as u64,
        merge_ms: record.merge_ms,
    }
}

/// Every island of the run together: the worst of each time, the lowest capacity ratio,
/// the callers summed, and each island's figures.
#[derive(Clone, Debug, Serialize)]
pub struct IslandSummary {
    pub islands: u64,
    /// The worst of the islands' (None when one was never measured).
    pub cut_to_island_ms: Option<u64>,
    pub cut_to_first_island_answer_ms: Option<u64>,
    pub merge_ms: Option<u64>,
    pub island_callers: u64,
    pub island_answered: u64,
    /// The lowest of the islands'.
    pub island_capacity_ratio: f64,
    pub merged_exactly_once: bool,
    /// Overtakings the order check found from the first heal on.
    pub order_violations_after_heal: u64,
    pub islands_detail: Vec<IslandFigures>,
}

/// The summary of `records` (None when the run made no island); see [`island_figures`].
pub fn island_summary(
    records: &[IslandRecord],
    truth: &TruthReport,
    histories: &[(u64, CallRows)],
    overtaken_at: &[u64],
    sites: u64,
) -> Option<IslandSummary> {
    let first_heal_ms = records.iter().map(|r| r.healed_ms).min()?;
    let detail: Vec<IslandFigures> =
        records.iter().map(|record| island_figures(record, truth, histories, overtaken_at, sites)).collect();
    let worst = |value: fn(&IslandFigures) -> Option<u64>| -> Option<u64> {
        detail.iter().map(value).collect::<Option<Vec<u64>>>()?.into_iter().max()
    };
    Some(IslandSummary {
        islands: detail.len() as u64,
        cut_to_island_ms: worst(|i| i.cut_to_island_ms),
        cut_to_first_island_answer_ms: worst(|i| i.cut_to_first_island_answer_ms),
        merge_ms: worst(|i| i.merge_ms),
        island_callers: detail.iter().map(|i| i.island_callers).sum(),
        island_answered: detail.iter().map(|i| i.island_answered).sum(),
        island_capacity_ratio: detail.iter().map(|i| i.island_capacity_ratio).fold(1.0, f64::min),
        merged_exactly_once: detail.iter().all(|i| i.merged_exactly_once),
        order_violations_after_heal: overtaken_at.iter().filter(|at| **at >= first_heal_ms).count() as u64,
        islands_detail: detail,
    })
}

/// Answered ÷ what could have been, at most 1 (the capacity is an estimate in whole handle
/// times).
fn capacity_ratio(answered: u64, callers: u64, capacity: u64) -> f64 {
    match callers.min(capacity) {
        0 => 1.0,
        could => (answered as f64 / could as f64).min(1.0),
    }
}

/// How many callers the island could have answered: the caller placed at the cut (for an
/// idle operator) plus the time the site's `sales` operators were not taken by other calls
/// (those that were not the island's callers') from when the island served (or would have:
/// the cut plus the island timeout) to the heal, in whole mean handle times.
fn capacity(record: &IslandRecord, truth: &TruthReport, sites: u64) -> u64 {
    let from_ms = record.serving_fork_ms.unwrap_or(record.cut_from_ms + ISLAND_AFTER_MS);
    let until_ms = record.healed_ms;
    let site_operators: Vec<String> =
        operators(sites).into_iter().filter(|o| o.site == record.site).map(|o| o.id).collect();
    let window_ms = until_ms.saturating_sub(from_ms);
    let free_ms: u64 = site_operators
        .iter()
        .map(|operator| window_ms.saturating_sub(taken_within(record, truth, operator, from_ms, until_ms)))
        .sum();
    let probe = u64::from(record.probe_call.is_some());
    match mean_handle_ms(truth) {
        Some(handle_ms) if handle_ms > 0 => probe + free_ms / handle_ms,
        _ => probe,
    }
}

/// Ms of `[from_ms, until_ms]` that `operator` (at the island's site) spent connected to a
/// caller who was not the island's, or in that call's wrap-up: each connection lasts until
/// the caller's next connection or end.
fn taken_within(record: &IslandRecord, truth: &TruthReport, operator: &str, from_ms: u64, until_ms: u64) -> u64 {
    let box_index = record.site as usize - 1;
    let mut busy_ms = 0;
    for caller in truth.callers.iter().filter(|c| !record.holds(c)) {
        for (k, connection) in caller.connections.iter().enumerate() {
            if connection.operator != operator || connection.operator_box != box_index {
                continue;
            }
            let end = caller.connections.get(k + 1).map(|next| next.at_ms).or(caller.ended_at_ms).unwrap_or(until_ms);
            let (start, end) = (connection.at_ms.max(from_ms), (end + SALES_WRAP_UP_MS).min(until_ms));
            busy_ms += end.saturating_sub(start);
        }
    }
    busy_ms
}

/// The mean time from a caller's first connection to its end, plus wrap-up, over the run.
fn mean_handle_ms(truth: &TruthReport) -> Option<u64> {
    let handles: Vec<u64> = truth
        .callers
        .iter()
        .filter_map(|c| Some(c.ended_at_ms?.saturating_sub(c.connections.first()?.at_ms) + SALES_WRAP_UP_MS))
        .collect();
    (!handles.is_empty()).then(|| handles.iter().sum::<u64>() / handles.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OutcomeRow;
    use lineup_pbx_sim::truth::{CallerPlan, Connection, Party};

    /// A caller at box 1 (site 2) entering at `entered_ms`, answered by `operator` at
    /// `answered_ms` (if any), ending at `ended_ms`.
    fn caller(id: &str, entered_ms: u64, answered: Option<(&str, u64)>, ended_ms: u64) -> CallerTruth {
        let connections = answered
            .map(|(operator, at_ms)| vec![Connection { operator: operator.into(), operator_box: 1, at_ms }])
            .unwrap_or_default();
        CallerTruth {
            call_id: id.into(),
            box_index: 1,
            channel: id.into(),
            plan: CallerPlan { talk_ms: 20_000, hang_up_by: Party::Caller, patience_ms: 120_000 },
            placed_at_ms: entered_ms,
            entered_at_ms: Some(entered_ms),
            connections,
            scripted_by: Some(Party::Caller),
            ended_at_ms: Some(ended_ms),
            ended_by: None,
            dropped: None,
        }
    }

    fn truth(callers: Vec<CallerTruth>) -> TruthReport {
        serde_json::from_value(serde_json::json!({
            "now_ms": 200_000, "callers": callers, "operators": [], "double_booked": 0, "double_bookings": [],
            "calls_dropped": 0, "drops": [], "operator_legs_dropped": 0, "operator_leg_drops": [],
            "teardowns": {}, "actions_dropped": 0
        }))
        .expect("a truth report")
    }

    fn once(ids: &[&str]) -> CallRows {
        let row = || vec![OutcomeRow { outcome: "completed".into(), detail: Some("caller".into()) }];
        ids.iter().map(|id| (id.to_string(), row())).collect()
    }

    /// Site 2 cut from 10 s to 40 s, serving its fork from 16 s; its three `sales` operators
    /// (2101–2103) and its aimed operator 2108.
    #[test]
    fn the_island_is_judged_on_its_callers_its_free_operators_and_every_sites_history() {
        let record = IslandRecord {
            site: 2,
            cut_from_ms: 10_000,
            healed_ms: 40_000,
            serving_fork_ms: Some(16_000),
            epoch: Some(1),
            probe_call: Some("2-probe".into()),
            merge_ms: Some(1_500),
        };
        let callers = vec![
            caller("2-probe", 10_010, Some(("2108", 16_100)), 60_000),
            // Answered by the island; then one answered after the heal (operators busy).
            caller("2-a", 12_000, Some(("2101", 17_000)), 37_000),
            caller("2-b", 30_000, Some(("2102", 45_000)), 70_000),
            // Before the cut: not the island's.
            caller("2-c", 5_000, Some(("2103", 6_000)), 50_000),
        ];
        let truth = truth(callers);
        let histories = [(1, once(&["2-probe", "2-a", "2-b", "2-c"])), (2, once(&["2-probe", "2-a", "2-b", "2-c"]))];
        let figures = island_figures(&record, &truth, &histories, &[39_000, 41_000], 3);
        assert_eq!((figures.island_callers, figures.island_answered), (3, 2));
        assert_eq!(figures.cut_to_first_island_answer_ms, Some(6_100));
        assert_eq!(figures.cut_to_island_ms, Some(6_000));
        assert!(figures.merged_exactly_once);
        assert_eq!(figures.order_violations_after_heal, 1);
        // While serving (16–40 s), 2103 is taken by a caller from before the cut; 2101 (who
        // took 2-a) and 2102 are the island's: 48 s against a mean handle of ~34 s, so the
        // island could have answered the probe's caller and one more, and it did.
        assert!((figures.island_capacity_ratio - 1.0).abs() < 1e-9, "{figures:?}");
        // Had 2-b been answered in the cut by 2102 too: capacity 2 of 3 callers, answered 3.
        let mut more = truth.clone();
        more.callers[2].connections[0].at_ms = 31_000;
        let all = island_figures(&record, &more, &histories, &[], 3);
        assert_eq!((all.island_answered, all.island_capacity_ratio), (3, 1.0));
        // Had the island answered nobody but the probe's caller, with capacity for 2.
        let mut fewer = truth.clone();
        fewer.callers[1].connections.clear();
        fewer.callers[2].connections.clear();
        let one = island_figures(&record, &fewer, &histories, &[], 3);
        assert_eq!(one.island_answered, 1);
        assert!(one.island_capacity_ratio < 0.8, "{one:?}");

        let lost = [(1, once(&["2-probe", "2-a", "2-c"])), (2, once(&["2-probe", "2-a", "2-b", "2-c"]))];
        assert!(!island_figures(&record, &truth, &lost, &[], 3).merged_exactly_once, "2-b missing at site 1");

        // With a second island later (site 2 again, nobody entering): callers summed, the
        // worst times, overtakings from the first heal on; one never merged spoils merge_ms.
        let later = IslandRecord {
            cut_from_ms: 80_000,
            healed_ms: 95_000,
            serving_fork_ms: Some(86_500),
            probe_call: None,
            merge_ms: None,
            ..record.clone()
        };
        let both = island_summary(&[record.clone(), later], &truth, &histories, &[39_000, 41_000], 3).unwrap();
        assert_eq!((both.islands, both.island_callers, both.island_answered), (2, 3, 2));
        assert_eq!((both.cut_to_island_ms, both.order_violations_after_heal), (Some(6_500), 1));
        assert_eq!((both.merge_ms, both.cut_to_first_island_answer_ms), (None, None));
        assert!(island_summary(&[], &truth, &histories, &[], 3).is_none());
    }
}
