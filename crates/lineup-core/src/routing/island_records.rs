//! An island's history merged into the global state (`IslandMergeRecords`): each record is
//! written once, at the merge command's index, and each call the island ended ends once.
//!
//! A call the island ended that the global state still holds (a caller of the island's site
//! from before the fork, or a promise its operator was dialling then) is taken out by the
//! usual transitions, which free its operator; their history and stats are left out, since
//! the island's record is the history and its End carries the stats. A call whose end the
//! global state already knows keeps the ending it has.

use super::refusals::invalid;
use super::{CommandResult, Response, Routing};
use crate::effect::{Effect, Outcome};
use crate::ids::SiteId;
use crate::island::{is_fork_apply_index, IslandEpoch};
use crate::island_merge::{digest_record, IslandHistory, IslandRecord, ISLAND_MERGE_RECORDS_PER_COMMAND_MAX};
use crate::model::CallState;
use crate::CoreError;

impl Routing {
    pub(super) fn island_merge_records(
        &mut self,
        epoch: &IslandEpoch,
        first_record: u64,
        records: &[IslandRecord],
    ) -> CommandResult {
        self.merge_on_the_global_state(epoch)?;
        if self.island_merged(epoch) {
            return Ok(Response::Done);
        }
        if records.len() > ISLAND_MERGE_RECORDS_PER_COMMAND_MAX {
            let reason = format!("at most {ISLAND_MERGE_RECORDS_PER_COMMAND_MAX} per command");
            return Err(CoreError::InvalidField { field: "records".into(), reason });
        }
        let progress = self.open_merge(epoch)?.progress.clone();
        let incomplete = |detail: String| CoreError::IslandMergeIncomplete { site: epoch.site, seq: epoch.seq, detail };
        if first_record > progress.records_merged {
            let detail =
                format!("records from {} expected, the chunk starts at {first_record}", progress.records_merged);
            return Err(incomplete(detail));
        }
        // A resent chunk: the records up to the mark are merged already.
        let skip = usize::try_from(progress.records_merged - first_record).unwrap_or(usize::MAX);
        let fresh = records.get(skip..).unwrap_or_default();
        if progress.records_merged + fresh.len() as u64 > progress.counts.records {
            return Err(incomplete(format!("more than the {} records its begin announced", progress.counts.records)));
        }
        for record in fresh {
            self.check_island_record(epoch.site, record)?;
        }
        for record in fresh {
            self.merge_island_record(record);
        }
        let mark = self.state.islands.marks.get_mut(&epoch.site).expect("the open merge was found above");
        mark.progress.records_merged += fresh.len() as u64;
        mark.progress.digest_so_far = fresh.iter().fold(mark.progress.digest_so_far, digest_record);
        Ok(Response::Done)
    }

    /// A record the island may have written: from the fork band, and ending a call the
    /// island could end (the global state holds it as a caller of `site`, or as a promise
    /// offered to or connected with an operator at `site`; or does not hold it).
    fn check_island_record(&self, site: SiteId, record: &IslandRecord) -> Result<(), CoreError> {
        if !is_fork_apply_index(record.fork_index) {
            return Err(invalid("an island's record comes from the fork band", record.fork_index.to_string()));
        }
        let IslandHistory::CallEnded(ended) = &record.history else { return Ok(()) };
        let Some(call) = self.indexes.call_numbers.get(&ended.call).map(|n| &self.state.calls[n]) else {
            return Ok(());
        };
        let operator_site = match &call.state {
            CallState::Waiting => None,
            CallState::Offered { operator_site, .. } | CallState::Connected { operator_site, .. } => {
                Some(*operator_site)
            }
        };
        let islands = (call.callback.is_none() && call.entry_site == site) || operator_site == Some(site);
        if !islands {
            return Err(invalid("the island did not own this call", ended.call.to_string()));
        }
        Ok(())
    }

    fn merge_island_record(&mut self, record: &IslandRecord) {
        match &record.history {
            IslandHistory::QueueLog(line) => self.scratch.out.push(Effect::QueueLog(line.clone())),
            IslandHistory::CallEnded(ended) => {
                if self.indexes.ended_calls.contains(&ended.call) {
                    return; // the global state ended it already: one record per call
                }
                match self.indexes.call_numbers.get(&ended.call).copied() {
                    Some(call_number) => self.end_held_call_quietly(call_number, ended.outcome.clone()),
                    None => self.remember_ended(&ended.call),
                }
                self.scratch.out.push(Effect::CallEnded(ended.clone()));
            }
        }
    }

    /// Ends a call the island ended that the global state still holds, by the usual
    /// transitions (its operator is freed as after any such end), keeping their projections
    /// but not their history, exits or stats: the island wrote those.
    pub(super) fn end_held_call_quietly(&mut self, call_number: u64, outcome: Outcome) {
        let call = &self.state.calls[&call_number];
        let (queue, gate) = (call.queue.clone(), call.gate.clone());
        let queue_before = self.state.queues.get(&queue).map(|q| (q.stats.clone(), q.handle_times.clone()));
        let gate_before = gate.as_ref().and_then(|g| self.state.gates.get(g)).map(|g| g.stats.clone());
        let first_effect = self.scratch.out.len();
        match call.state.clone() {
            CallState::Connected { .. } => self.finish_connected(call_number, outcome),
            CallState::Offered { operator, .. } => {
                self.cancel_offer(call_number);
                self.release_after_offer(&operator, false);
                let call = self.take_call(call_number);
                self.end_call(call, outcome, None);
            }
            CallState::Waiting => {
                let call = self.take_call(call_number);
                self.end_call(call, outcome, None);
            }
        }
        if let (Some(q), Some((stats, handle_times))) = (self.state.queues.get_mut(&queue), queue_before) {
            (q.stats, q.handle_times) = (stats, handle_times);
        }
        if let (Some(g), Some(stats)) = (gate.as_ref().and_then(|g| self.state.gates.get_mut(g)), gate_before) {
            g.stats = stats;
        }
        let quiet = |e: &Effect| !matches!(e, Effect::CallEnded(_) | Effect::QueueLog(_) | Effect::Exit { .. });
        let transitions = self.scratch.out.split_off(first_effect);
        self.scratch.out.extend(transitions.into_iter().filter(quiet));
    }
}
