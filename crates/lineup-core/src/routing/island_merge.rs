//! An island merging back into the global state: its Begin, its history in chunks, and its
//! End (which is also its site's `SiteBack`).
//!
//! Every step counts nothing twice, however often it is applied: a step of an epoch that
//! merged already (`merged_seq`) or a Begin of the open merge is answered done and changes
//! nothing; a resent chunk skips the records the open merge's mark says are merged; the End
//! adds the stats delta and closes the mark in one apply. The island's site stays
//! unreachable from the Begin until the End: nothing merged is offered before.

use super::refusals::invalid;
use super::{CommandResult, Response, Routing, PIN_LOCKOUT_FAILURES_MAX};
use crate::apply_index::ApplyIndex;
use crate::effect::Effect;
use crate::ids::{OperatorId, QueueId};
use crate::island::IslandEpoch;
use crate::island_merge::{add_stats, IslandMark, MergeCounts, MergeProgress, StatsDelta, FNV_OFFSET_BASIS};
use crate::model::CallState;
use crate::stats::HANDLE_WINDOW_SAMPLES;
use crate::CoreError;
use std::collections::BTreeMap;

impl Routing {
    pub(super) fn island_merge_begin(
        &mut self,
        epoch: &IslandEpoch,
        counts: &MergeCounts,
        digest: u64,
    ) -> CommandResult {
        self.merge_on_the_global_state(epoch)?;
        if self.island_merged(epoch) {
            return Ok(Response::Done);
        }
        if let Some(mark) = self.state.islands.marks.get(&epoch.site) {
            if mark.epoch == *epoch {
                return Ok(Response::Done);
            }
            return Err(CoreError::IslandMergeOpen { site: epoch.site, open_seq: mark.epoch.seq });
        }
        if self.state.lost_sites.contains(&epoch.site) {
            return Err(CoreError::SiteDown(epoch.site));
        }
        if !self.is_site_unreachable(epoch.site) {
            return Err(invalid(
                "an island merges only while the majority holds its site unreachable",
                format!("site {}", epoch.site.0),
            ));
        }
        let progress = MergeProgress {
            counts: *counts,
            digest,
            records_merged: 0,
            digest_so_far: FNV_OFFSET_BASIS,
            parties: Default::default(),
        };
        self.state.islands.marks.insert(epoch.site, IslandMark { epoch: *epoch, progress });
        self.void_orphan_offers(epoch);
        Ok(Response::Done)
    }

    /// Offers the majority made after the fork (a fence beyond the fork's log entry) to or
    /// of a party of the island (a live caller of its site, an operator at it), before it
    /// heard the site was cut off: the island never saw them and went its own way. Each is
    /// withdrawn without a miss: the caller keeps its place, the operator is free, and
    /// `CancelOffer` tells the majority's site holding a leg.
    fn void_orphan_offers(&mut self, epoch: &IslandEpoch) {
        let first_after_fork = epoch.fork_index.saturating_add(1).saturating_mul(ApplyIndex::STRIDE);
        let orphans: Vec<(u64, OperatorId)> = (self.state.calls.values())
            .filter_map(|call| match &call.state {
                CallState::Offered { operator, fence, operator_site, .. } if *fence >= first_after_fork => {
                    let islands_caller = call.callback.is_none() && call.entry_site == epoch.site;
                    (islands_caller || *operator_site == epoch.site).then(|| (call.call_number, operator.clone()))
                }
                _ => None,
            })
            .collect();
        for (call_number, operator) in orphans {
            self.cancel_offer(call_number);
            self.return_to_queue(call_number);
            self.release_after_offer(&operator, false);
        }
    }

    pub(super) fn island_merge_end(
        &mut self,
        index: u64,
        epoch: &IslandEpoch,
        stats: &StatsDelta,
        handle_samples: &BTreeMap<QueueId, Vec<u64>>,
        pin_failures: &BTreeMap<OperatorId, Vec<u64>>,
    ) -> CommandResult {
        self.merge_on_the_global_state(epoch)?;
        if self.island_merged(epoch) {
            return Ok(Response::Done);
        }
        check_end_samples(handle_samples, pin_failures)?;
        self.check_merge_complete(epoch)?;
        self.add_island_stats(stats);
        for (queue, samples) in handle_samples {
            if let Some(queue) = self.state.queues.get_mut(queue) {
                samples.iter().for_each(|handle_ms| queue.handle_times.push(*handle_ms));
            }
        }
        for (operator, times) in pin_failures {
            self.merge_pin_failures(operator, times);
        }
        self.state.islands.marks.remove(&epoch.site);
        self.state.islands.merged_seq.insert(epoch.site, epoch.seq);
        self.bring_site_back(epoch.site);
        // Where acted on: the site is back and no merge of it is open.
        debug_assert!(!self.is_site_unreachable(epoch.site) && !self.state.islands.marks.contains_key(&epoch.site));
        self.scratch.out.push(Effect::IslandMerged { site: epoch.site, epoch: *epoch, end_index: index });
        Ok(Response::Done)
    }

    /// The open merge of `epoch` has every record, call and operator chunk its Begin
    /// announced, with its digest.
    fn check_merge_complete(&self, epoch: &IslandEpoch) -> Result<(), CoreError> {
        let progress = &self.open_merge(epoch)?.progress;
        let incomplete = |detail: String| CoreError::IslandMergeIncomplete { site: epoch.site, seq: epoch.seq, detail };
        if progress.records_merged != progress.counts.records {
            let detail = format!("{} of {} records merged", progress.records_merged, progress.counts.records);
            return Err(incomplete(detail));
        }
        let parties = &progress.parties;
        if parties.calls_merged != progress.counts.calls {
            return Err(incomplete(format!("{} of {} calls merged", parties.calls_merged, progress.counts.calls)));
        }
        if parties.operator_chunks_merged != progress.counts.operator_chunks {
            let detail = format!(
                "{} of {} operator chunks merged",
                parties.operator_chunks_merged, progress.counts.operator_chunks
            );
            return Err(incomplete(detail));
        }
        if progress.digest_so_far != progress.digest {
            return Err(incomplete("the records, calls and operators merged are not those its begin announced".into()));
        }
        Ok(())
    }

    /// Adds the island's counts to the queues and gates the global state has (one created
    /// on the island only has nowhere to go).
    fn add_island_stats(&mut self, stats: &StatsDelta) {
        for (id, delta) in &stats.queues {
            if let Some(queue) = self.state.queues.get_mut(id) {
                add_stats(&mut queue.stats, delta);
            }
        }
        for (id, delta) in &stats.gates {
            if let Some(gate) = self.state.gates.get_mut(id) {
                add_stats(&mut gate.stats, delta);
            }
        }
    }

    /// Merge commands change the global state; an island's fork refuses them (it merges by
    /// sending them, never by applying them).
    pub(super) fn merge_on_the_global_state(&self, epoch: &IslandEpoch) -> Result<(), CoreError> {
        match self.island() {
            Some(_) => Err(invalid(
                "an island's fork does not apply merge commands; the global state does",
                format!("island {} of site {}", epoch.seq, epoch.site.0),
            )),
            None => Ok(()),
        }
    }

    /// Has this epoch (or a later one of its site) merged already?
    pub(super) fn island_merged(&self, epoch: &IslandEpoch) -> bool {
        self.state.islands.merged_seq.get(&epoch.site).is_some_and(|merged| epoch.seq <= *merged)
    }

    /// The mark of this epoch's open merge.
    pub(super) fn open_merge(&self, epoch: &IslandEpoch) -> Result<&IslandMark, CoreError> {
        match self.state.islands.marks.get(&epoch.site) {
            Some(mark) if mark.epoch == *epoch => Ok(mark),
            Some(mark) => Err(CoreError::IslandMergeOpen { site: epoch.site, open_seq: mark.epoch.seq }),
            None => Err(CoreError::IslandMergeNotOpen { site: epoch.site, seq: epoch.seq }),
        }
    }

    /// The merge open for `site`, if any (from its Begin to its End).
    pub fn island_mark(&self, site: crate::ids::SiteId) -> Option<&IslandMark> {
        self.state.islands.marks.get(&site)
    }

    /// The last island epoch of `site` that merged.
    pub fn island_merged_seq(&self, site: crate::ids::SiteId) -> Option<u64> {
        self.state.islands.merged_seq.get(&site).copied()
    }
}

/// An End carries at most a window's worth of handle times per queue and a lockout's worth
/// of wrong PINs per operator (what a fork keeps).
fn check_end_samples(
    handle_samples: &BTreeMap<QueueId, Vec<u64>>,
    pin_failures: &BTreeMap<OperatorId, Vec<u64>>,
) -> Result<(), CoreError> {
    if handle_samples.values().any(|samples| samples.len() > HANDLE_WINDOW_SAMPLES) {
        let reason = format!("at most {HANDLE_WINDOW_SAMPLES} per queue");
        return Err(CoreError::InvalidField { field: "handle_samples".into(), reason });
    }
    if pin_failures.values().any(|times| times.len() > PIN_LOCKOUT_FAILURES_MAX) {
        let reason = format!("at most {PIN_LOCKOUT_FAILURES_MAX} per operator");
        return Err(CoreError::InvalidField { field: "pin_failures".into(), reason });
    }
    Ok(())
}
