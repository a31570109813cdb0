//! The faults of `--scenario island`: a follower's site, then the leader's, each cut from
//! every other node (every peer link blackholed both ways) for a sixth of the run, under
//! load. The site's node waits out the island timeout, forks the state it last applied and
//! serves its own callers with its own operators; the majority serves the rest. At the heal
//! the island merges its fork back through the log, and its site control goes back to the
//! log.
//!
//! Recorded on the stand-in's clock (`IslandRecord`): when the site's health first says it
//! serves a fork, the caller the harness placed at the site for its own aimed operator as
//! the cut began, the heal, and how long after it the site stopped being an island or
//! merging one. `island_figures.rs` judges those against the phones' truth and the sites'
//! histories.

use crate::faults::{Chaos, OutageRecord};
use crate::links::Cut;
use crate::nemesis::Seams;
use crate::setup::{aimed_gate_exten, aimed_operator};
use crate::wait::poll;
use crate::workload::plan;
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

impl IslandRecord {
    /// Whether `at_ms` (the stand-in's clock) falls within the cut.
    pub fn during_cut(&self, at_ms: u64) -> bool {
        self.cut_from_ms <= at_ms && at_ms <= self.healed_ms
    }

    /// Whether `caller` is the island's: it entered at the cut site while the cut lasted.
    pub fn holds(&self, caller: &lineup_pbx_sim::truth::CallerTruth) -> bool {
        caller.box_index as u64 + 1 == self.site && caller.entered_at_ms.is_some_and(|at| self.during_cut(at))
    }
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
