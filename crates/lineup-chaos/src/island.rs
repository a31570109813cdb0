//! The faults of `--scenario island`: a follower's site, then the leader's, each cut from
//! every other node (every peer link blackholed both ways) for a sixth of the run, under
//! load. The site's node
//! waits out the island timeout, forks the state it last applied and serves its own callers
//! with its own operators; the majority serves the rest. At the heal the island merges its
//! fork back through the log, and its site control goes back to the log.
//!
//! Measured on the stand-in's clock: when the site's health first says it serves a fork,
//! when a caller the harness placed at the site for its own aimed operator as the cut began
//! was answered (the island's first answer), and how long after the heal the site stopped
//! being an island or merging one. The figures (`IslandFigures`) add how many of the
//! workload's callers arrived at the site while it was cut and how many of them it answered
//! while cut.

use crate::faults::{Chaos, OutageRecord};
use crate::history::CallRows;
use crate::links::Cut;
use crate::nemesis::Seams;
use crate::setup::{aimed_gate_exten, aimed_operator, operators, SALES_WRAP_UP_MS};
use crate::wait::poll;
use crate::workload::plan;
use lineup_cluster::lease::ISLAND_AFTER_MS;
use lineup_pbx_sim::truth::{CallerTruth, TruthReport};
use serde::Serialize;
use std::time::Duration;
use tokio::time::Instant;

/// The shortest cut: past the island timeout (6 s by default) with time to answer callers.
pub const ISLAND_CUT_MIN_MS: u64 = 15_000;
/// Bound on the island having merged back after the heal; the figure reported when never.
pub const MERGE_WAIT_MS: u64 = 30_000;
/// Talk time of the caller placed at the site as the cut begins: it stays connected across
/// the heal, so the merge carries a connected call.
const ISLAND_PROBE_TALK_MS: u64 = 25_000;
/// Caller number of that caller (the workload's start at 1,000,000, the aimed calls' at
/// 8,000,000, the answer probes' at 9,000,000).
const ISLAND_PROBE_NUMBER_BASE: u64 = 7_000_000;
const POLL_MS: u64 = 50;

/// What happened to the island, on the stand-in's clock.
#[derive(Clone, Debug, Default, Serialize)]
pub struct IslandRecord {
    pub site: u64,
    /// The cut and the heal.
    pub cut_from_ms: u64,
    pub healed_ms: u64,
    /// When the site's health first said it served a fork; None: never within the cut.
    pub serving_fork_ms: Option<u64>,
    /// The island epoch its health named.
    pub epoch: Option<u64>,
    /// The caller placed at the site for its aimed operator as the cut began.
    pub probe_call: Option<String>,
    /// Ms from the heal until the site's health showed no island and no merge; None: not
    /// within `MERGE_WAIT_MS`.
    pub merge_ms: Option<u64>,
}

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
    let during_cut = |at: u64| record.cut_from_ms <= at && at <= record.healed_ms;
    let callers: Vec<&CallerTruth> =
        truth.callers.iter().filter(|c| c.box_index == box_index && c.entered_at_ms.is_some_and(during_cut)).collect();
    let answered_there = |c: &&&CallerTruth| {
        c.connections.first().is_some_and(|first| first.operator_box == box_index && during_cut(first.at_ms))
    };
    let island_answered = callers.iter().filter(answered_there).count() as u64;
    let probe = truth.callers.iter().find(|c| Some(&c.call_id) == record.probe_call.as_ref());
    let probe_answered = probe.and_then(|c| c.connections.first()).filter(|first| during_cut(first.at_ms));
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
    let islands = |c: &CallerTruth| {
        c.box_index == box_index && c.entered_at_ms.is_some_and(|at| record.cut_from_ms <= at && at <= record.healed_ms)
    };
    let mut busy_ms = 0;
    for caller in truth.callers.iter().filter(|c| !islands(c)) {
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

impl Chaos<'_> {
    /// The run in sixths: traffic; a follower's site cut off (a sixth, at least
    /// `ISLAND_CUT_MIN_MS`), healed and merged; traffic; the leader's site cut off likewise
    /// (the majority elects another leader while the old one becomes an island); traffic to
    /// the end (the cuts run back to back when they take longer than their share); then
    /// every node ready and the answer probe.
    pub async fn run_island(&mut self, seams: &Seams, duration_ms: u64) {
        let started = Instant::now();
        let sixth_ms = duration_ms / 6;
        let cut_ms = sixth_ms.max(ISLAND_CUT_MIN_MS);
        for (k, leader) in [(1, false), (3, true)] {
            tokio::time::sleep_until(started + Duration::from_millis(sixth_ms * k)).await;
            self.settle().await;
            match self.island_site(leader).await {
                Some(site) => self.island(seams, site, cut_ms).await,
                None => {
                    self.note("skipped an island: no leader known".into()).await;
                    self.figures
                        .skipped
                        .push(format!("the island of the {}", if leader { "leader" } else { "follower" }));
                }
            }
        }
        tokio::time::sleep_until(started + Duration::from_millis(duration_ms)).await;
        self.settle().await;
        self.answer_after_faults().await;
    }

    /// The leader's site, or else the highest site that does not lead.
    async fn island_site(&self, leader: bool) -> Option<u64> {
        let leading = self.leader().await?;
        match leader {
            true => Some(leading),
            false => self.nodes.sites().into_iter().rev().find(|site| *site != leading),
        }
    }

    async fn island(&mut self, seams: &Seams, site: u64, cut_ms: u64) {
        let what = format!("island of site {site} for {cut_ms} ms");
        let log_at_cut = self.log_at_stop(site).await;
        let cut_from_ms = self.standin_now_ms().await;
        let cut_at = Instant::now();
        seams.links.cut(site, Cut::Isolated);
        self.note(format!("{what}: cut")).await;
        let probe_call = self.place_island_probe(site).await;
        let mut record = IslandRecord { site, cut_from_ms, probe_call, ..IslandRecord::default() };
        let heal_at = cut_at + Duration::from_millis(cut_ms);
        if let Some((at_ms, epoch)) = self.await_serving_fork(site, heal_at).await {
            self.note(format!("{what}: serving its fork (epoch {epoch:?})")).await;
            (record.serving_fork_ms, record.epoch) = (Some(at_ms), epoch);
        } else {
            self.note(format!("{what}: never served a fork while cut")).await;
        }
        tokio::time::sleep_until(heal_at).await;
        seams.links.heal();
        record.healed_ms = self.standin_now_ms().await;
        self.figures.count("island");
        let healed = Instant::now();
        let merged = poll(MERGE_WAIT_MS, POLL_MS, || async {
            let api = self.nodes.site(site).ok()?.api_url();
            matches!(self.api.island_phase(&api).await, Some(None)).then(|| crate::wait::elapsed_ms(healed))
        });
        record.merge_ms = merged.await;
        let heard_after_heal_ms = match log_at_cut {
            Some(log) => self.heard(site, log).await,
            None => None,
        };
        self.note(format!(
            "{what}: healed; merged after {:?} ms, heard {heard_after_heal_ms:?} ms after",
            record.merge_ms
        ))
        .await;
        // The island's callers keep their arrival at the merge: the order check lets them
        // rank from their entry (as a partial cut's may) or from the heal.
        let outage = OutageRecord {
            what,
            site,
            blind: false,
            cut_off: true,
            partial: true,
            from_ms: cut_from_ms,
            until_ms: record.healed_ms,
            heard_after_heal_ms,
        };
        self.figures.outages.push(outage);
        self.figures.islands.push(record);
    }

    /// A caller at `site` for the site's own aimed operator (logged in and idle): only the
    /// island can answer it while the site is cut. Its id; None when placing failed.
    async fn place_island_probe(&mut self, site: u64) -> Option<String> {
        let operator = aimed_operator(site).id;
        let number = format!("+1555{:07}", ISLAND_PROBE_NUMBER_BASE + site);
        let exten = aimed_gate_exten(site);
        let placed = self.standin.place_caller(site as usize - 1, &exten, &number, plan(ISLAND_PROBE_TALK_MS, false));
        match placed.await {
            Ok(call_id) => {
                self.note(format!("placed {call_id} at site {site} for operator {operator}")).await;
                self.figures.aimed_calls.push(call_id.clone());
                Some(call_id)
            }
            Err(error) => {
                self.note(format!("placing the island's caller failed: {error:#}")).await;
                None
            }
        }
    }

    /// Polls the site's health until it serves a fork, at most until `deadline`: when (the
    /// stand-in's clock) and the epoch it named.
    async fn await_serving_fork(&self, site: u64, deadline: Instant) -> Option<(u64, Option<u64>)> {
        let api = self.nodes.site(site).ok()?.api_url();
        let wait_ms = deadline.saturating_duration_since(Instant::now()).as_millis() as u64;
        let serving = poll(wait_ms, POLL_MS, || async {
            let island = self.api.island_phase(&api).await??;
            island.serving_fork.then_some(island.epoch)
        });
        let epoch = serving.await?;
        Some((self.standin_now_ms().await, epoch))
    }
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
