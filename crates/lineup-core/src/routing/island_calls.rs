//! An island's live calls and operators merged into the global state (`IslandMergeCall`,
//! `IslandMergeOperators`), after its records and before its End.
//!
//! Each call is an upsert by call id: a caller of the island's site from before the fork
//! keeps its number and its place in line; a call born on the island gets the merge
//! command's index as its number and a place by its original arrival (it sorts right after
//! the last global caller who arrived before it). An offered or connected call keeps the
//! fork's fence and brings its operator, set in the same apply, so every offer is held by
//! both sides after every command. Whatever the global state paired with the same parties
//! is let go first, without a miss and without history (the island's records are the
//! history). A call whose end the global state knows is skipped, never revived.
//!
//! An operators chunk names every operator the island may have changed; the global state
//! takes those the island owns (logged in at its site, or offline with it as home).
//!
//! Calls come in fork number order and operator chunks in id order, so a resent one is told
//! from a new one by its place and changes nothing. The island's site stays unreachable until
//! the End: nothing merged is offered before (a promise excepted: promises are served from
//! any site, so one the island made is the majority's to serve from its merge on).

use super::refusals::invalid;
use super::{CommandResult, Response, Routing};
use crate::apply_index::ApplyIndex;
use crate::command::HungUpBy;
use crate::effect::{OperatorStatus, Outcome};
use crate::ids::{CallId, OperatorId, SiteId};
use crate::island::{is_fork_apply_index, operator_site, IslandEpoch, ISLAND_APPLY_INDEX_BASE};
use crate::island_merge::{digest_item, MergedCall, MergedOperator, ISLAND_MERGE_OPERATORS_PER_COMMAND_MAX};
use crate::model::{Call, CallState};
use crate::order::OrderKey;
use crate::CoreError;

/// What a merged call does to the global state.
enum Upsert {
    /// The global state ended it already (or forgot it): the island must not revive it. Or
    /// the global state holds it as the majority's.
    Skip,
    /// Born on the island: a new call.
    Insert,
    /// A caller of the island from before the fork, by its global number.
    Replace(u64),
}

impl Routing {
    pub(super) fn island_merge_call(&mut self, index: u64, epoch: &IslandEpoch, merged: &MergedCall) -> CommandResult {
        self.merge_on_the_global_state(epoch)?;
        if self.island_merged(epoch) {
            return Ok(Response::Done);
        }
        let progress = self.open_merge(epoch)?.progress.clone();
        let incomplete = |detail: String| CoreError::IslandMergeIncomplete { site: epoch.site, seq: epoch.seq, detail };
        if progress.parties.last_call.is_some_and(|last| merged.fork_number <= last) {
            return Ok(Response::Done); // resent: merged already
        }
        if progress.records_merged != progress.counts.records {
            return Err(incomplete(format!("calls come after the {} records", progress.counts.records)));
        }
        if progress.parties.calls_merged >= progress.counts.calls {
            return Err(incomplete(format!("more than the {} calls its begin announced", progress.counts.calls)));
        }
        match self.check_merged_call(epoch, merged)? {
            Upsert::Skip => {}
            Upsert::Insert => self.upsert_call(epoch, merged, None, index),
            Upsert::Replace(call_number) => self.upsert_call(epoch, merged, Some(call_number), index),
        }
        let mark = self.state.islands.marks.get_mut(&epoch.site).expect("the open merge was found above");
        mark.progress.parties.calls_merged += 1;
        mark.progress.parties.last_call = Some(merged.fork_number);
        mark.progress.digest_so_far = digest_item(mark.progress.digest_so_far, merged);
        Ok(Response::Done)
    }

    pub(super) fn island_merge_operators(
        &mut self,
        epoch: &IslandEpoch,
        operators: &[MergedOperator],
    ) -> CommandResult {
        self.merge_on_the_global_state(epoch)?;
        if self.island_merged(epoch) {
            return Ok(Response::Done);
        }
        let (Some(first), Some(last)) = (operators.first(), operators.last()) else {
            return Err(CoreError::InvalidField { field: "operators".into(), reason: "a chunk names some".into() });
        };
        if operators.len() > ISLAND_MERGE_OPERATORS_PER_COMMAND_MAX || operators.windows(2).any(|w| w[0].id >= w[1].id)
        {
            let reason = format!("at most {ISLAND_MERGE_OPERATORS_PER_COMMAND_MAX} per command, in id order");
            return Err(CoreError::InvalidField { field: "operators".into(), reason });
        }
        let progress = self.open_merge(epoch)?.progress.clone();
        let incomplete = |detail: String| CoreError::IslandMergeIncomplete { site: epoch.site, seq: epoch.seq, detail };
        if let Some(merged_through) = &progress.parties.last_operator {
            if first.id <= *merged_through {
                if last.id <= *merged_through {
                    return Ok(Response::Done); // resent: merged already
                }
                return Err(incomplete(format!("a chunk overlaps the operators merged (through {merged_through})")));
            }
        }
        let (counts, parties) = (&progress.counts, &progress.parties);
        if progress.records_merged != counts.records || parties.calls_merged != counts.calls {
            return Err(incomplete("operators come after every record and call".into()));
        }
        if parties.operator_chunks_merged >= counts.operator_chunks {
            let detail = format!("more than the {} operator chunks its begin announced", counts.operator_chunks);
            return Err(incomplete(detail));
        }
        for operator in operators {
            self.check_merged_operator(epoch.site, operator, None)?;
        }
        for operator in operators {
            // Owned by the island: at its site, or offline with it as home, in the global
            // state, which changed neither since the fork (its refusals, §1.5).
            if operator_site(self, &operator.id) == Some(epoch.site) {
                self.free_operator_for(&operator.id, None);
                self.set_merged_operator(operator);
            }
        }
        let mark = self.state.islands.marks.get_mut(&epoch.site).expect("the open merge was found above");
        mark.progress.parties.operator_chunks_merged += 1;
        mark.progress.parties.last_operator = Some(last.id.clone());
        mark.progress.digest_so_far = operators.iter().fold(mark.progress.digest_so_far, digest_item);
        Ok(Response::Done)
    }

    /// What to do with a call the island could hold: a caller of its site (or a promise it
    /// made), in a queue the global state has, offered or connected only with an operator of
    /// the island who holds it with the same fence, from the fork band or from before the
    /// fork.
    fn check_merged_call(&self, epoch: &IslandEpoch, merged: &MergedCall) -> Result<Upsert, CoreError> {
        let site = epoch.site;
        if merged.entry_site != site {
            return Err(invalid("an island merges the calls of its own site", merged.id.to_string()));
        }
        if !self.state.queues.contains_key(&merged.queue) {
            return Err(CoreError::UnknownQueue(merged.queue.clone()));
        }
        if let Some(gate) = merged.gate.as_ref().filter(|g| !self.state.gates.contains_key(*g)) {
            return Err(CoreError::UnknownGate(gate.clone()));
        }
        let first_after_fork = epoch.fork_index.saturating_add(1).saturating_mul(ApplyIndex::STRIDE);
        let held = match &merged.state {
            CallState::Waiting => None,
            CallState::Offered { operator, fence, operator_site, .. } => Some((
                operator,
                *fence,
                *operator_site,
                OperatorStatus::Offered { call: merged.id.clone(), fence: *fence },
            )),
            CallState::Connected { operator, fence, operator_site, .. } => Some((
                operator,
                *fence,
                *operator_site,
                OperatorStatus::Busy { call: merged.id.clone(), fence: *fence },
            )),
        };
        match (held, &merged.operator) {
            (None, None) => {}
            (Some((id, fence, operator_site, status)), Some(operator)) => {
                let fork_fence = is_fork_apply_index(fence) || fence < first_after_fork;
                if operator.id != *id || operator.status != status || operator_site != site || !fork_fence {
                    return Err(invalid("a merged call's operator holds it with its fence", merged.id.to_string()));
                }
                self.check_merged_operator(site, operator, Some(&merged.id))?;
            }
            _ => return Err(invalid("an offered or connected call comes with its operator", merged.id.to_string())),
        }
        match self.indexes.call_numbers.get(&merged.id).copied() {
            Some(call_number) => {
                // A promise the global state holds is the majority's to serve (one the
                // island's site proposed just before the cut may have committed on both
                // sides): kept as it is, as is any call the island did not own. Refusing
                // would leave the merge unable to end.
                let call = &self.state.calls[&call_number];
                if call.callback.is_some() || call.entry_site != site {
                    return Ok(Upsert::Skip);
                }
                Ok(Upsert::Replace(call_number))
            }
            // A call from before the fork the global state no longer holds ended here.
            None if self.indexes.ended_calls.contains(&merged.id) || !is_fork_apply_index(merged.fork_number) => {
                Ok(Upsert::Skip)
            }
            None => Ok(Upsert::Insert),
        }
    }

    /// An operator the global state knows, logged in at the island's site or offline, offered
    /// or busy only with the call it comes with.
    fn check_merged_operator(
        &self,
        site: SiteId,
        operator: &MergedOperator,
        with_call: Option<&CallId>,
    ) -> Result<(), CoreError> {
        if !self.state.operators.contains_key(&operator.id) {
            return Err(CoreError::UnknownOperator(operator.id.clone()));
        }
        let offline = matches!(operator.status, OperatorStatus::Offline);
        let placed =
            if offline { operator.site.is_none() && operator.login.is_none() } else { operator.site == Some(site) };
        let holds = match &operator.status {
            OperatorStatus::Offered { call, .. } | OperatorStatus::Busy { call, .. } => Some(call),
            _ => None,
        };
        if !placed || holds != with_call {
            return Err(invalid("an island merges its own operators as it holds them", operator.id.to_string()));
        }
        Ok(())
    }

    /// Puts the island's call in the global state: in place of the global call `held` (its
    /// number and place kept, whatever the global state paired it with let go), or as a new
    /// call numbered `index`, placed by its arrival. Its operator follows in the same apply.
    fn upsert_call(&mut self, epoch: &IslandEpoch, merged: &MergedCall, held: Option<u64>, index: u64) {
        let keeps_operator = merged.operator.as_ref().map(|op| &op.id);
        let (call_number, seq) = match held {
            Some(call_number) => {
                let seq = self.state.calls[&call_number].key.seq;
                self.let_go_of_pairing(call_number, keeps_operator);
                self.take_call(call_number);
                (call_number, seq)
            }
            None => (index, self.seq_by_arrival(epoch, merged.entered_at_ms)),
        };
        if let Some(operator) = &merged.operator {
            self.free_operator_for(&operator.id, Some(&merged.id));
        }
        self.insert_call(Call {
            call_number,
            id: merged.id.clone(),
            queue: merged.queue.clone(),
            gate: merged.gate.clone(),
            key: OrderKey { priority: merged.priority, seq },
            caller_number: merged.caller_number.clone(),
            caller_name: merged.caller_name.clone(),
            entry_site: merged.entry_site,
            channel: merged.channel.clone(),
            extra_skills: merged.extra_skills.clone(),
            entered_at_ms: merged.entered_at_ms,
            joined_at_ms: merged.joined_at_ms,
            orig_position: merged.orig_position,
            overflow_hops: merged.overflow_hops,
            state: merged.state.clone(),
            callback: merged.callback.clone(),
            max_wait_due_ms: merged.max_wait_due_ms,
            next_widen_ms: merged.next_widen_ms,
            next_announce_ms: merged.next_announce_ms,
            next_periodic_ms: merged.next_periodic_ms,
            periodic_index: merged.periodic_index,
            callback_offered: merged.callback_offered,
        });
        if let Some(operator) = &merged.operator {
            self.set_merged_operator(operator);
        }
        if matches!(merged.state, CallState::Waiting) {
            self.scratch.dirty_calls.insert(call_number);
        }
    }

    /// The order key sequence of an island-born caller who arrived at `arrival_ms`: that of
    /// the last global waiting caller who arrived no later, so it sorts right after them
    /// (its number, this command's index, is above theirs) and before every later one; with
    /// none, the last sequence of the fork's entry.
    fn seq_by_arrival(&self, epoch: &IslandEpoch, arrival_ms: u64) -> u64 {
        let fork_last = epoch.fork_index.saturating_add(1).saturating_mul(ApplyIndex::STRIDE).saturating_sub(1);
        (self.state.calls.values())
            .filter(|c| c.is_waiting() && c.entered_at_ms <= arrival_ms && c.key.seq < ISLAND_APPLY_INDEX_BASE)
            .map(|c| c.key.seq)
            .max()
            .unwrap_or(fork_last)
            .min(ISLAND_APPLY_INDEX_BASE - 1)
    }

    /// Lets go of the global call's offer or connection, unless its operator comes back with
    /// it: the offer is withdrawn (no miss), the operator freed.
    fn let_go_of_pairing(&mut self, call_number: u64, keeps_operator: Option<&OperatorId>) {
        if self.state.outages.released_calls.contains_key(&call_number) {
            return; // its operator's own site freed them already
        }
        let (holder, offered) = match &self.state.calls[&call_number].state {
            CallState::Waiting => return,
            CallState::Offered { operator, .. } => (operator.clone(), true),
            CallState::Connected { operator, .. } => (operator.clone(), false),
        };
        if keeps_operator == Some(&holder) {
            return; // the island's operator comes back with the call, as the island holds them
        }
        if offered {
            self.cancel_offer(call_number);
        }
        self.free_quietly(&holder);
    }

    /// Frees `operator` from any call it holds in the global state but `keep`: an offer is
    /// withdrawn and its caller keeps its place; a connected cross-site call keeps going with
    /// its operator released (as its own site releases one); a connected call of one site,
    /// which only a plan the island did not make can name, is ended quietly.
    fn free_operator_for(&mut self, operator: &OperatorId, keep: Option<&CallId>) {
        let held = match &self.state.operators[operator].status {
            OperatorStatus::Offered { call, .. } | OperatorStatus::Busy { call, .. } if Some(call) != keep => {
                call.clone()
            }
            _ => return,
        };
        let Some(call_number) = self.indexes.call_numbers.get(&held).copied() else { return };
        let call = &self.state.calls[&call_number];
        match call.state.clone() {
            CallState::Waiting => {}
            CallState::Offered { .. } => {
                self.cancel_offer(call_number);
                self.return_to_queue(call_number);
            }
            CallState::Connected { operator_site, .. } if operator_site != call.entry_site => {
                let now = self.state.now_ms;
                self.state.outages.released_calls.insert(call_number, now);
            }
            CallState::Connected { .. } => {
                self.end_held_call_quietly(call_number, Outcome::Completed { by: HungUpBy::Operator });
            }
        }
        self.free_quietly(operator);
    }

    /// Available, without wrap-up, history or miss: what the merge writes next decides.
    fn free_quietly(&mut self, operator: &OperatorId) {
        let held =
            |status: &OperatorStatus| matches!(status, OperatorStatus::Offered { .. } | OperatorStatus::Busy { .. });
        if !self.state.operators.get(operator).is_some_and(|op| held(&op.status)) {
            return;
        }
        let now = self.state.now_ms;
        self.with_operator(operator, |op| {
            op.status = OperatorStatus::Available;
            op.since_ms = now;
        });
        self.scratch.dirty_operators.insert(operator.clone());
    }

    /// The operator as the island holds it, and its login call.
    fn set_merged_operator(&mut self, merged: &MergedOperator) {
        self.with_operator(&merged.id, |op| {
            op.status = merged.status.clone();
            op.site = merged.site;
            op.channel = merged.channel.clone();
            op.since_ms = merged.since_ms;
            op.idle_since_ms = merged.idle_since_ms;
            op.logged_in_at_ms = merged.logged_in_at_ms;
            op.misses = merged.misses;
            op.wake_ms = merged.wake_ms;
            op.after_call = merged.after_call.clone();
        });
        match &merged.login {
            Some(login) => self.state.phone_logins.calls.insert(merged.id.clone(), login.clone()),
            None => self.state.phone_logins.calls.remove(&merged.id),
        };
        self.scratch.dirty_operators.insert(merged.id.clone());
    }
}
