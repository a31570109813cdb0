//! The island's side of a merge: the history the fork keeps as it applies, and the plan
//! of commands that carries it back to the global state.

use super::{Routing, PIN_LOCKOUT_FAILURES_MAX};
use crate::command::CommandBody;
use crate::effect::{Effect, OperatorStatus};
use crate::ids::{OperatorId, QueueId};
use crate::island_merge::{
    digest_item, digest_records, stats_since, IslandHistory, IslandRecord, MergeCounts, MergePlan, MergedCall,
    MergedOperator, StatsDelta, ISLAND_MERGE_OPERATORS_PER_COMMAND_MAX, ISLAND_MERGE_RECORDS_PER_COMMAND_MAX,
};
use crate::model::{Call, CallState};
use crate::stats::{Stats, HANDLE_WINDOW_SAMPLES};
use std::collections::BTreeMap;

impl Routing {
    /// On a fork: keeps the history effects of the command just applied at `fork_index`
    /// (ended calls, queue_log lines) for the merge. Nothing on the global state.
    pub(super) fn keep_fork_records(&mut self, fork_index: u64) {
        let Some(fork) = self.state.islands.fork.as_mut() else { return };
        for effect in &self.scratch.out {
            let history = match effect {
                Effect::CallEnded(record) => IslandHistory::CallEnded(record.clone()),
                Effect::QueueLog(line) => IslandHistory::QueueLog(line.clone()),
                _ => continue,
            };
            fork.records.push(IslandRecord { fork_index, history });
        }
    }

    /// On a fork: keeps a handle time its queue's ETA window took, for the merge.
    pub(super) fn keep_fork_handle_sample(&mut self, queue: &QueueId, handle_ms: u64) {
        let Some(fork) = self.state.islands.fork.as_mut() else { return };
        let samples = fork.handle_samples.entry(queue.clone()).or_default();
        samples.push(handle_ms);
        if samples.len() > HANDLE_WINDOW_SAMPLES {
            samples.remove(0);
        }
        debug_assert!(samples.len() <= HANDLE_WINDOW_SAMPLES);
    }

    /// On a fork: keeps a wrong PIN typed on the island, for the merge.
    pub(super) fn keep_fork_pin_failure(&mut self, operator: &OperatorId, at_ms: u64) {
        let Some(fork) = self.state.islands.fork.as_mut() else { return };
        let times = fork.pin_failures.entry(operator.clone()).or_default();
        times.push(at_ms);
        if times.len() > PIN_LOCKOUT_FAILURES_MAX {
            times.remove(0);
        }
        debug_assert!(times.len() <= PIN_LOCKOUT_FAILURES_MAX);
    }

    /// The commands that carry this fork's decisions back to the global state, in the order
    /// they are proposed: `IslandMergeBegin`, the history in chunks (`IslandMergeRecords`),
    /// one `IslandMergeCall` per live call of the island in fork number order, the island's
    /// other operators in chunks (`IslandMergeOperators`, id order), then `IslandMergeEnd`
    /// with the stats the fork counted beyond those at the fork. On the global state (no
    /// fork) the plan is empty.
    ///
    /// Left out (counted in `live_left_out`): a call of the island offered to or connected
    /// with an operator of another site, and the island's operator holding a promise the
    /// majority owns. Those pairings span the split; the island's node re-proposes their
    /// reports instead.
    pub fn merge_plan(&self) -> MergePlan {
        let Some(fork) = self.island() else {
            return MergePlan { commands: Vec::new(), live_left_out: 0 };
        };
        let epoch = fork.epoch;
        let (calls, live_left_out) = self.merged_calls();
        let operators = self.merged_operators();
        let operator_chunks: Vec<&[MergedOperator]> =
            operators.chunks(ISLAND_MERGE_OPERATORS_PER_COMMAND_MAX).collect();
        let counts = MergeCounts {
            records: fork.records.len() as u64,
            calls: calls.len() as u64,
            operator_chunks: operator_chunks.len() as u64,
        };
        let digest = operators.iter().fold(calls.iter().fold(digest_records(&fork.records), digest_item), digest_item);
        let mut commands = vec![CommandBody::IslandMergeBegin { epoch, counts, digest }];
        for (chunk_number, chunk) in fork.records.chunks(ISLAND_MERGE_RECORDS_PER_COMMAND_MAX).enumerate() {
            let first_record = (chunk_number * ISLAND_MERGE_RECORDS_PER_COMMAND_MAX) as u64;
            commands.push(CommandBody::IslandMergeRecords { epoch, first_record, records: chunk.to_vec() });
        }
        commands.extend(calls.into_iter().map(|call| CommandBody::IslandMergeCall { epoch, call }));
        commands.extend(
            operator_chunks
                .into_iter()
                .map(|chunk| CommandBody::IslandMergeOperators { epoch, operators: chunk.to_vec() }),
        );
        let stats = self.stats_since_fork(&fork.stats_at_fork);
        let (handle_samples, pin_failures) = (fork.handle_samples.clone(), fork.pin_failures.clone());
        commands.push(CommandBody::IslandMergeEnd { epoch, stats, handle_samples, pin_failures });
        MergePlan { commands, live_left_out }
    }

    /// What each queue and gate counted beyond `at_fork` (those that counted nothing left out).
    fn stats_since_fork(&self, at_fork: &StatsDelta) -> StatsDelta {
        let queues = self.state.queues.iter().map(|(id, q)| (id, &q.stats));
        let gates = self.state.gates.iter().map(|(id, g)| (id, &g.stats));
        StatsDelta { queues: deltas(queues, &at_fork.queues), gates: deltas(gates, &at_fork.gates) }
    }

    /// The island's live calls in fork number order (its callers, and the promises it made;
    /// promises parked at the fork are the majority's), and how many are left out because
    /// an operator of another site holds them.
    fn merged_calls(&self) -> (Vec<MergedCall>, usize) {
        let Some(fork) = self.island() else { return (Vec::new(), 0) };
        let site = fork.epoch.site;
        let ours = (self.state.calls.values()).filter(|c| !fork.is_parked(c.call_number) && c.entry_site == site);
        let mut left_out = 0;
        let mut calls = Vec::new();
        for call in ours {
            let operator = match &call.state {
                CallState::Waiting => None,
                CallState::Offered { operator, operator_site, .. }
                | CallState::Connected { operator, operator_site, .. } => {
                    let at_site = self.state.operators.get(operator).is_some_and(|op| op.site == Some(site));
                    if *operator_site != site || !at_site {
                        left_out += 1;
                        continue;
                    }
                    Some(self.merged_operator(operator))
                }
            };
            calls.push(merged_call(call, operator));
        }
        (calls, left_out)
    }

    /// The operators the island may have changed that hold no call (those holding one come
    /// with it), in id order: every operator logged in at the island's site, and every one
    /// offline (one logged out on the island may have another home). The global state takes
    /// only those the island owns.
    fn merged_operators(&self) -> Vec<MergedOperator> {
        let Some(fork) = self.island() else { return Vec::new() };
        let site = fork.epoch.site;
        (self.state.operators.values())
            .filter(|op| op.site == Some(site) || !op.is_logged_in())
            .filter(|op| !matches!(op.status, OperatorStatus::Offered { .. } | OperatorStatus::Busy { .. }))
            .map(|op| self.merged_operator(&op.config.id))
            .collect()
    }

    fn merged_operator(&self, id: &OperatorId) -> MergedOperator {
        let op = &self.state.operators[id];
        MergedOperator {
            id: id.clone(),
            status: op.status.clone(),
            site: op.site,
            channel: op.channel.clone(),
            login: self.state.phone_logins.calls.get(id).cloned(),
            since_ms: op.since_ms,
            idle_since_ms: op.idle_since_ms,
            logged_in_at_ms: op.logged_in_at_ms,
            misses: op.misses,
            wake_ms: op.wake_ms,
            after_call: op.after_call.clone(),
        }
    }
}

/// A fork's call as its merge carries it.
fn merged_call(call: &Call, operator: Option<MergedOperator>) -> MergedCall {
    MergedCall {
        fork_number: call.call_number,
        id: call.id.clone(),
        queue: call.queue.clone(),
        gate: call.gate.clone(),
        priority: call.key.priority,
        caller_number: call.caller_number.clone(),
        caller_name: call.caller_name.clone(),
        entry_site: call.entry_site,
        channel: call.channel.clone(),
        extra_skills: call.extra_skills.clone(),
        entered_at_ms: call.entered_at_ms,
        joined_at_ms: call.joined_at_ms,
        orig_position: call.orig_position,
        overflow_hops: call.overflow_hops,
        state: call.state.clone(),
        callback: call.callback.clone(),
        max_wait_due_ms: call.max_wait_due_ms,
        next_widen_ms: call.next_widen_ms,
        next_announce_ms: call.next_announce_ms,
        next_periodic_ms: call.next_periodic_ms,
        periodic_index: call.periodic_index,
        callback_offered: call.callback_offered,
        operator,
    }
}

/// `now − then` per key, leaving out the keys that counted nothing.
fn deltas<'a, K: Ord + Clone + 'a>(
    now: impl Iterator<Item = (&'a K, &'a Stats)>,
    then: &BTreeMap<K, Stats>,
) -> BTreeMap<K, Stats> {
    let zero = Stats::default();
    now.map(|(id, stats)| (id.clone(), stats_since(stats, then.get(id).unwrap_or(&zero))))
        .filter(|(_, delta)| *delta != zero)
        .collect()
}
