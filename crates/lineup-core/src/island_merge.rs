//! What an island's merge carries back to the global state, and the marks the global state
//! keeps while it merges, so that a resent, duplicated or resumed merge counts nothing twice.
//!
//! The merge is a short run of ordinary commands, all naming the island's epoch:
//! `IslandMergeBegin` (how much is coming and its digest), `IslandMergeRecords` chunks (the
//! history the fork wrote: ended calls and queue_log lines, in fork order), one
//! `IslandMergeCall` per live call of the island (with its operator when it is offered or
//! connected), `IslandMergeOperators` chunks (the island's other operators) and
//! `IslandMergeEnd` (the fork's stats delta, and the island's site back). The plan is a pure
//! function of the fork (`Routing::merge_plan`), so every node computes the same commands.

use crate::command::RequestedState;
use crate::effect::{CallRecord, OperatorStatus, QueueLogEntry};
use crate::ids::{CallId, GateId, OperatorId, QueueId, SiteId, Skill};
use crate::island::IslandEpoch;
use crate::model::{CallState, CallbackPromise, LoginChannel};
use crate::stats::Stats;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most records one `IslandMergeRecords` command carries (a log entry stays far below the
/// codec's size limit with them).
pub const ISLAND_MERGE_RECORDS_PER_COMMAND_MAX: usize = 256;

/// Most operators one `IslandMergeOperators` command carries.
pub const ISLAND_MERGE_OPERATORS_PER_COMMAND_MAX: usize = 256;

/// History records a fork keeps for its merge before it refuses new callers (calls in
/// progress still end and add their few records).
pub const ISLAND_RECORDS_MAX: usize = 4_000_000;

/// One history effect the fork produced, with the fork apply index of the command that
/// produced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IslandRecord {
    pub fork_index: u64,
    pub history: IslandHistory,
}

/// The history effects a merge carries. Append only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IslandHistory {
    CallEnded(CallRecord),
    QueueLog(QueueLogEntry),
}

/// How much a merge carries, announced by its Begin and checked by its End: history
/// records, `IslandMergeCall` commands and `IslandMergeOperators` chunks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeCounts {
    pub records: u64,
    pub calls: u64,
    pub operator_chunks: u64,
}

/// A live call of the island as the fork holds it at the merge: a caller of the island's
/// site waiting, offered or connected, or a callback promise the island made. The global
/// state gives it its number and order key (a call from before the fork keeps its own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergedCall {
    /// The call's number on the fork (the apply index of its entry): below the fork band
    /// for a call from before the fork. The plan sends calls in this order, which is also
    /// how a resent call is told from a new one.
    pub fork_number: u64,
    pub id: CallId,
    pub queue: QueueId,
    pub gate: Option<GateId>,
    pub priority: u8,
    pub caller_number: String,
    pub caller_name: String,
    pub entry_site: SiteId,
    pub channel: Option<String>,
    pub extra_skills: BTreeMap<Skill, u8>,
    pub entered_at_ms: u64,
    pub joined_at_ms: u64,
    pub orig_position: u32,
    pub overflow_hops: u8,
    /// Offered or connected with the fork's fence, or waiting.
    pub state: CallState,
    pub callback: Option<CallbackPromise>,
    /// The call's timers as the fork set them (the fork's core time follows the same shared
    /// clock as the global one).
    pub max_wait_due_ms: Option<u64>,
    pub next_widen_ms: Option<u64>,
    pub next_announce_ms: Option<u64>,
    pub next_periodic_ms: Option<u64>,
    pub periodic_index: u32,
    pub callback_offered: bool,
    /// The island operator holding the call when it is offered or connected: set in the
    /// same apply, so the call and its operator never disagree.
    pub operator: Option<MergedOperator>,
}

/// An operator of the island as the fork holds it at the merge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergedOperator {
    pub id: OperatorId,
    pub status: OperatorStatus,
    pub site: Option<SiteId>,
    pub channel: Option<String>,
    /// The phone call it logged in from by PIN, if it did.
    pub login: Option<LoginChannel>,
    pub since_ms: u64,
    pub idle_since_ms: u64,
    pub logged_in_at_ms: u64,
    pub misses: u8,
    pub wake_ms: Option<u64>,
    pub after_call: Option<RequestedState>,
}

/// What the fork's routing counted, less what it had counted at the fork: the island's
/// share of the stats, added once by `IslandMergeEnd`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsDelta {
    pub queues: BTreeMap<QueueId, Stats>,
    pub gates: BTreeMap<GateId, Stats>,
}

/// How far a merge open on the global state has come (between its Begin and its End).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeProgress {
    pub counts: MergeCounts,
    /// The digest Begin announced, of every record in order.
    pub digest: u64,
    /// Records merged so far (a resent chunk skips this many from the start).
    pub records_merged: u64,
    /// The digest of the records merged so far, then of the calls and operators.
    pub digest_so_far: u64,
    /// How far the calls and operators have come (after the records).
    pub parties: PartiesProgress,
}

/// The calls and operator chunks an open merge has taken. A resent call or chunk is told by
/// its place: calls come in fork number order, operator chunks in id order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartiesProgress {
    pub calls_merged: u64,
    /// The fork number of the last call merged.
    pub last_call: Option<u64>,
    pub operator_chunks_merged: u64,
    /// The last operator merged.
    pub last_operator: Option<OperatorId>,
}

/// An island merging into the global state: set by its Begin, removed by its End. While a
/// site has one, a plain `SiteBack` for it is refused (only its End brings it back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IslandMark {
    pub epoch: IslandEpoch,
    pub progress: MergeProgress,
}

/// The commands that carry a fork's decisions back, in the order they are proposed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergePlan {
    pub commands: Vec<crate::command::CommandBody>,
    /// Offered or connected calls of the island that this plan leaves out: those paired
    /// across sites (an operator of another site, or a promise the majority owns), whose
    /// reports the island's node re-proposes instead.
    pub live_left_out: usize,
}

/// FNV-1a, 64 bits: the digest of a merge's records.
pub const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The digest `digest` extended with `record` (its encoded bytes).
pub fn digest_record(digest: u64, record: &IslandRecord) -> u64 {
    digest_item(digest, record)
}

/// The digest `digest` extended with any merged item (its encoded bytes): records, then
/// calls, then operators, in the order the plan sends them.
pub fn digest_item<T: Serialize>(digest: u64, item: &T) -> u64 {
    let bytes = crate::codec::encode(item).expect("a merged item always encodes");
    bytes.iter().fold(digest, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(FNV_PRIME))
}

/// The digest of `records` in order.
pub fn digest_records<'a>(records: impl IntoIterator<Item = &'a IslandRecord>) -> u64 {
    records.into_iter().fold(FNV_OFFSET_BASIS, digest_record)
}

/// `delta` added to `stats` field by field (saturating: stats never wrap).
pub fn add_stats(stats: &mut Stats, delta: &Stats) {
    for_each_counter(stats, delta, |s, d| *s = s.saturating_add(d));
}

/// `now − then` field by field (saturating at 0).
pub fn stats_since(now: &Stats, then: &Stats) -> Stats {
    let mut out = now.clone();
    for_each_counter(&mut out, then, |s, t| *s = s.saturating_sub(t));
    out
}

fn for_each_counter(a: &mut Stats, b: &Stats, f: impl Fn(&mut u64, u64)) {
    let Stats {
        offered,
        answered,
        answered_within_service_level,
        abandoned,
        timed_out,
        full,
        closed,
        empty,
        exited_with_key,
        overflowed,
        callbacks_requested,
        callbacks_failed,
        total_wait_ms,
        total_handle_ms,
        handled,
    } = b;
    f(&mut a.offered, *offered);
    f(&mut a.answered, *answered);
    f(&mut a.answered_within_service_level, *answered_within_service_level);
    f(&mut a.abandoned, *abandoned);
    f(&mut a.timed_out, *timed_out);
    f(&mut a.full, *full);
    f(&mut a.closed, *closed);
    f(&mut a.empty, *empty);
    f(&mut a.exited_with_key, *exited_with_key);
    f(&mut a.overflowed, *overflowed);
    f(&mut a.callbacks_requested, *callbacks_requested);
    f(&mut a.callbacks_failed, *callbacks_failed);
    f(&mut a.total_wait_ms, *total_wait_ms);
    f(&mut a.total_handle_ms, *total_handle_ms);
    f(&mut a.handled, *handled);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_add_and_subtract_every_counter() {
        let then = Stats { offered: 2, answered: 1, total_wait_ms: 500, ..Default::default() };
        let now = Stats { offered: 5, answered: 1, handled: 3, total_wait_ms: 900, ..Default::default() };
        let delta = stats_since(&now, &then);
        assert_eq!(delta, Stats { offered: 3, handled: 3, total_wait_ms: 400, ..Default::default() });
        let mut back = then.clone();
        add_stats(&mut back, &delta);
        assert_eq!(back, now);
    }

    #[test]
    fn the_digest_depends_on_every_record_and_their_order() {
        let line = |at_ms| IslandRecord {
            fork_index: crate::ISLAND_APPLY_INDEX_BASE,
            history: IslandHistory::QueueLog(QueueLogEntry {
                at_ms,
                call: None,
                queue: None,
                gate: None,
                agent: None,
                verb: crate::effect::QueueLogVerb::Pause,
                data: Vec::new(),
            }),
        };
        let (a, b) = (line(1), line(2));
        assert_ne!(digest_records([&a, &b]), digest_records([&b, &a]));
        assert_ne!(digest_records([&a]), digest_records([&a, &b]));
        assert_eq!(digest_records([]), FNV_OFFSET_BASIS);
    }
}
