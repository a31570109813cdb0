//! Whole applied entries from a stream of single effects.
//!
//! History rows are keyed by (apply index, position in the entry), and the outbox and the
//! sinks skip an index once they have it, so they must be handed each entry whole. A node
//! that only has a per-effect stream (lineup-cluster's `subscribe_effects`, in log order)
//! plus its applied index reassembles entries with an [`EntryAssembler`]:
//!
//! ```text
//! loop {
//!     let first = effects.recv().await;          // wait for activity
//!     assembler.push(first.apply_index, first.effect);
//!     let applied = node.applied_index();         // 1. read the applied index …
//!     while let Ok(e) = effects.try_recv() {      // 2. … then drain until empty
//!         assembler.push(e.apply_index, e.effect);
//!     }
//!     for (index, effects) in assembler.take_complete(applied) {
//!         projection.submit(index, &effects);
//!         history.submit(index, effects)?;
//!     }
//!     // An entry still open (being applied during the drain) completes on the next
//!     // round; while one is open, wake up after ASSEMBLER_OPEN_RECHECK_MS even if the
//!     // stream stays quiet.
//! }
//! ```
//!
//! The indexes must be the ones the effects carry. lineup-cluster applies several commands
//! per Raft entry and tags effects with *apply indexes* (`lineup_core::ApplyIndex`: Raft log
//! index × `ApplyIndex::STRIDE` + position) while `applied_index()` is a Raft log index, so
//! the node passes the last apply index of the applied entry:
//! `ApplyIndex::last_of(applied_index())`
//! (tests/with_cluster.rs runs exactly this loop against a real node).
//!
//! Why this is exact: an entry's effects are all sent while it is applied, and the applied
//! index only moves past it after that. So once the index reads `A`, every effect of every
//! entry up to `A` is already in the stream, and draining it until empty collects them all.
//! An entry is also complete as soon as an effect of a later entry shows up (the stream is
//! in log order).

use std::collections::BTreeMap;

use lineup_core::Effect;

use crate::outbox::AppliedEntry;

/// How often a node re-checks an open entry while the stream is quiet.
pub const ASSEMBLER_OPEN_RECHECK_MS: u64 = 10;

/// Groups single effects into whole entries. See the module docs for the protocol.
#[derive(Debug, Default)]
pub struct EntryAssembler {
    open: BTreeMap<u64, Vec<Effect>>,
    /// Highest index handed out: later effects at or below it are replays, dropped.
    completed_through: u64,
}

impl EntryAssembler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next effect of the stream.
    pub fn push(&mut self, apply_index: u64, effect: Effect) {
        if apply_index > self.completed_through {
            self.open.entry(apply_index).or_default().push(effect);
        }
    }

    /// Entries known complete: those at or below `applied_through` (read before the stream
    /// was drained), and all but the newest one seen. In log order.
    pub fn take_complete(&mut self, applied_through: u64) -> Vec<AppliedEntry> {
        let newest = self.open.keys().next_back().copied().unwrap_or(0);
        let bound = applied_through.max(newest.saturating_sub(1));
        let still_open = self.open.split_off(&(bound + 1));
        let complete: Vec<AppliedEntry> = std::mem::replace(&mut self.open, still_open).into_iter().collect();
        if let Some((last, _)) = complete.last() {
            self.completed_through = *last;
        }
        complete
    }

    /// True while an entry waits for the applied index to pass it.
    pub fn has_open_entries(&self) -> bool {
        !self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lineup_core::{AlarmKind, QueueId};

    fn alarm(value: u64) -> Effect {
        Effect::Alarm { queue: QueueId::new("q"), kind: AlarmKind::Depth, raised: true, value, threshold: 0 }
    }

    #[test]
    fn entries_complete_by_applied_index_or_by_a_later_entry() {
        let mut a = EntryAssembler::new();
        a.push(3, alarm(1));
        a.push(3, alarm(2));
        assert!(a.take_complete(2).is_empty(), "3 may still be applying");
        a.push(3, alarm(3));
        a.push(5, alarm(4));
        assert_eq!(a.take_complete(2), vec![(3, vec![alarm(1), alarm(2), alarm(3)])], "a later entry closes 3");
        assert!(a.has_open_entries());
        assert_eq!(a.take_complete(5), vec![(5, vec![alarm(4)])]);
        a.push(5, alarm(9));
        assert!(!a.has_open_entries(), "a replayed index is dropped");
    }
}
