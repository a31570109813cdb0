//! The fault of `--scenario island`: one site (not the leader's) cut from every other node
//! (every peer link blackholed both ways) for a third of the run, under load. The site's node
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
use crate::links::Cut;
use crate::nemesis::Seams;
use crate::setup::{aimed_gate_exten, aimed_operator};
use crate::wait::poll;
use crate::workload::plan;
use lineup_pbx_sim::truth::TruthReport;
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

/// The island's figures, from its record and the phones' truth.
#[derive(Clone, Debug, Serialize)]
pub struct IslandFigures {
    pub island_site: u64,
    pub island_epoch: Option<u64>,
    /// From the cut until the site served its fork.
    pub cut_to_island_ms: Option<u64>,
    /// From the cut until the caller placed at the site as it began was answered there.
    pub cut_to_first_island_answer_ms: Option<u64>,
    /// The workload's callers who arrived at the site while it was cut...
    pub island_callers: u64,
    /// ...and those of them answered there while it was cut.
    pub island_answered: u64,
    pub merge_ms: Option<u64>,
}

/// The island's figures: `record` against the stand-in's `truth`.
pub fn island_figures(record: &IslandRecord, truth: &TruthReport) -> IslandFigures {
    let box_index = record.site as usize - 1;
    let during_cut = |at: u64| record.cut_from_ms <= at && at <= record.healed_ms;
    let arrived: Vec<_> = truth
        .callers
        .iter()
        .filter(|c| c.box_index == box_index && Some(&c.call_id) != record.probe_call.as_ref())
        .filter(|c| c.entered_at_ms.is_some_and(during_cut))
        .collect();
    let answered_there = |c: &&&lineup_pbx_sim::truth::CallerTruth| {
        c.connections.first().is_some_and(|first| first.operator_box == box_index && during_cut(first.at_ms))
    };
    let probe_answered = truth
        .callers
        .iter()
        .find(|c| Some(&c.call_id) == record.probe_call.as_ref())
        .and_then(|c| c.connections.first())
        .filter(|first| during_cut(first.at_ms))
        .map(|first| first.at_ms - record.cut_from_ms);
    IslandFigures {
        island_site: record.site,
        island_epoch: record.epoch,
        cut_to_island_ms: record.serving_fork_ms.map(|at| at.saturating_sub(record.cut_from_ms)),
        cut_to_first_island_answer_ms: probe_answered,
        island_callers: arrived.len() as u64,
        island_answered: arrived.iter().filter(answered_there).count() as u64,
        merge_ms: record.merge_ms,
    }
}

impl Chaos<'_> {
    /// Traffic for a third of `duration_ms`, a site cut off for a third (at least
    /// `ISLAND_CUT_MIN_MS`), healed and merged, traffic to the end; then every node ready and
    /// the answer probe.
    pub async fn run_island(&mut self, seams: &Seams, duration_ms: u64) {
        let started = Instant::now();
        let third_ms = duration_ms / 3;
        tokio::time::sleep_until(started + Duration::from_millis(third_ms)).await;
        self.settle().await;
        match self.island_site().await {
            Some(site) => self.island(seams, site, third_ms.max(ISLAND_CUT_MIN_MS)).await,
            None => {
                self.note("skipped the island: no leader known".into()).await;
                self.figures.skipped.push("the island".into());
            }
        }
        tokio::time::sleep_until(started + Duration::from_millis(duration_ms)).await;
        self.settle().await;
        self.answer_after_faults().await;
    }

    /// The highest site that does not lead: the majority keeps its leader, so the cut shows
    /// the island alone (a cut leader is the nemesis's).
    async fn island_site(&self) -> Option<u64> {
        let leader = self.leader().await?;
        self.nodes.sites().into_iter().rev().find(|site| *site != leader)
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
        self.note(format!("{what}: healed; merged after {:?} ms, heard {heard_after_heal_ms:?} ms after", record.merge_ms))
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
        self.figures.island = Some(record);
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
