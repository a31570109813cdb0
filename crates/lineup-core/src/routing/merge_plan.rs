//! The island's side of a merge: the history the fork keeps as it applies, and the plan
//! of commands that carries it back to the global state.

use super::{Routing, PIN_LOCKOUT_FAILURES_MAX};
use crate::command::CommandBody;
use crate::effect::Effect;
use crate::ids::{OperatorId, QueueId};
use crate::island_merge::{
    digest_records, stats_since, IslandHistory, IslandRecord, MergeCounts, MergePlan, StatsDelta,
    ISLAND_MERGE_RECORDS_PER_COMMAND_MAX,
};
use crate::model::CallState;
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
    /// then `IslandMergeEnd` with the stats the fork counted beyond those at the fork. On
    /// the global state (no fork) the plan is empty.
    ///
    /// Not carried by this version: the fork's waiting callers and its offered or connected
    /// calls, and its operators' states (counted in `waiting_left_out` and `live_left_out`);
    /// they stay in the global state as they were at the fork. Their stats (an island
    /// caller's entry) are in the delta all the same.
    pub fn merge_plan(&self) -> MergePlan {
        let Some(fork) = self.island() else {
            return MergePlan { commands: Vec::new(), waiting_left_out: 0, live_left_out: 0 };
        };
        let epoch = fork.epoch;
        let counts = MergeCounts { records: fork.records.len() as u64, calls: 0, operator_chunks: 0 };
        let digest = digest_records(&fork.records);
        let mut commands = vec![CommandBody::IslandMergeBegin { epoch, counts, digest }];
        for (chunk_number, chunk) in fork.records.chunks(ISLAND_MERGE_RECORDS_PER_COMMAND_MAX).enumerate() {
            let first_record = (chunk_number * ISLAND_MERGE_RECORDS_PER_COMMAND_MAX) as u64;
            commands.push(CommandBody::IslandMergeRecords { epoch, first_record, records: chunk.to_vec() });
        }
        let stats = self.stats_since_fork(&fork.stats_at_fork);
        let (handle_samples, pin_failures) = (fork.handle_samples.clone(), fork.pin_failures.clone());
        commands.push(CommandBody::IslandMergeEnd { epoch, stats, handle_samples, pin_failures });
        let (waiting_left_out, live_left_out) = self.island_calls_left_out();
        MergePlan { commands, waiting_left_out, live_left_out }
    }

    /// What each queue and gate counted beyond `at_fork` (those that counted nothing left out).
    fn stats_since_fork(&self, at_fork: &StatsDelta) -> StatsDelta {
        let queues = self.state.queues.iter().map(|(id, q)| (id, &q.stats));
        let gates = self.state.gates.iter().map(|(id, g)| (id, &g.stats));
        StatsDelta { queues: deltas(queues, &at_fork.queues), gates: deltas(gates, &at_fork.gates) }
    }

    /// The island's calls the fork still holds: (waiting, offered or connected). Promises
    /// parked at the fork are the majority's and not counted.
    fn island_calls_left_out(&self) -> (usize, usize) {
        let Some(fork) = self.island() else { return (0, 0) };
        let ours = (self.state.calls.values())
            .filter(|c| !fork.is_parked(c.call_number))
            .filter(|c| c.callback.is_some() || c.entry_site == fork.epoch.site);
        ours.fold((0, 0), |(waiting, live), call| match call.state {
            CallState::Waiting => (waiting + 1, live),
            CallState::Offered { .. } | CallState::Connected { .. } => (waiting, live + 1),
        })
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
