//! Island mode (docs/rfcs/island-mode.md): what an island fork is, and who owns what while
//! a site is cut off from the majority.
//!
//! An island is one site `S` serving its own callers with its own operators from a local
//! fork of the routing state (`Routing::fork_island`, in `routing/island_fork.rs`). Both
//! sides must keep their hands off each other's parties until the merge; [`owner`] is the
//! one rule that says whose a party is, computed from the state at the fork.

use crate::apply_index::ApplyIndex;
use crate::effect::CallStatus;
use crate::ids::{CallId, OperatorId, SiteId};
use crate::order::ORDER_SEQ_MAX;
use crate::routing::Routing;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The first apply index of the fork band. Every fork apply index (an island caller's order
/// key, an island offer's fence) is at least this: far above any global log's apply index
/// (global log indexes stay far below 2^47), so fences and history keys of the two never
/// collide, and a fork fence is newer than every prefix fence at the island's site.
pub const ISLAND_APPLY_INDEX_BASE: u64 = 1 << 55;

// A fork apply index is also an order key's sequence: the band must fit below its maximum.
const _: () = assert!(ISLAND_APPLY_INDEX_BASE < ORDER_SEQ_MAX);

/// Journal entries an island can number before its apply indexes leave the order-key range.
pub const ISLAND_JOURNAL_ENTRIES_BAND: u64 = (ORDER_SEQ_MAX - ISLAND_APPLY_INDEX_BASE + 1) / ApplyIndex::STRIDE;

/// One island episode of one site: `seq` counts the site's islands (persisted by its node),
/// `fork_index` is the Raft log index of the last global entry the fork starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IslandEpoch {
    pub site: SiteId,
    pub seq: u64,
    pub fork_index: u64,
}

/// What makes a routing state an island's fork (None on the global state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IslandFork {
    pub epoch: IslandEpoch,
    /// Callback promises that existed at the fork, by call number: the majority owns them
    /// and serves them elsewhere, so the fork never offers them ("parked").
    pub parked_calls: BTreeSet<u64>,
    /// The stats the state counted at the fork: the merge carries what the fork counted
    /// beyond them.
    pub stats_at_fork: crate::island_merge::StatsDelta,
    /// The history the fork wrote (ended calls, queue_log lines), in fork order, for the
    /// merge to carry back (at most about `ISLAND_RECORDS_MAX`).
    pub records: Vec<crate::island_merge::IslandRecord>,
    /// The handle times the fork sampled, newest last (at most `HANDLE_WINDOW_SAMPLES` per
    /// queue, as many as a queue's ETA window keeps), for the merge to add to the global
    /// windows.
    pub handle_samples: BTreeMap<crate::ids::QueueId, Vec<u64>>,
    /// Wrong PINs typed on the island, per operator, newest last (at most
    /// `PIN_LOCKOUT_FAILURES_MAX` each), for the merge to add to the replicated lockout.
    pub pin_failures: BTreeMap<OperatorId, Vec<u64>>,
}

impl IslandFork {
    pub fn is_parked(&self, call_number: u64) -> bool {
        self.parked_calls.contains(&call_number)
    }
}

/// The island part of the replicated state (the state's last field): the fork (on an
/// island's fork only), and on the global state the merges open and done.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IslandState {
    pub fork: Option<IslandFork>,
    /// Sites whose island is merging (from its Begin to its End).
    pub marks: BTreeMap<SiteId, crate::island_merge::IslandMark>,
    /// The last island epoch (`seq`) of each site that merged: a merge command of it or an
    /// older one is answered done and changes nothing.
    pub merged_seq: BTreeMap<SiteId, u64>,
}

/// The fork apply index of the command at `position` in journal entry `entry`:
/// `ISLAND_APPLY_INDEX_BASE + entry × STRIDE + position`. None when the position is not
/// within an entry or the index would leave the order-key range.
pub fn fork_apply_index(entry: u64, position: u64) -> Option<u64> {
    if position >= ApplyIndex::STRIDE || entry >= ISLAND_JOURNAL_ENTRIES_BAND {
        return None;
    }
    let index = ISLAND_APPLY_INDEX_BASE.checked_add(entry.checked_mul(ApplyIndex::STRIDE)?)?.checked_add(position)?;
    (index <= ORDER_SEQ_MAX).then_some(index)
}

/// Is this apply index (a fence, an order key's sequence, a call number) in the fork band?
pub fn is_fork_apply_index(index: u64) -> bool {
    index >= ISLAND_APPLY_INDEX_BASE
}

/// Which side decides about a party while a site is an island.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Side {
    Island,
    Majority,
}

/// A party whose owner is asked. A caller names the site its entry names, which decides
/// for a call born after the fork (the state at the fork does not know it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party<'a> {
    Caller { call: &'a CallId, entry_site: SiteId },
    Operator(&'a OperatorId),
}

/// Who owns `party` while `site` is an island (RFC §1.5), from `at_fork`, the state the
/// fork started from:
///
/// - a live caller whose entry site is `site`: the island; a caller of another site: the
///   majority;
/// - a callback promise that existed at the fork (any site): the majority (parked on the
///   island); a promise born on the island (a callback-only entry at `site`, or a caller of
///   `site` who asked for a callback after the fork): the island;
/// - an operator logged in at `site`, or offline with `site` as home: the island; any other
///   operator (including one unknown at the fork): the majority.
///
/// An offer in progress at the fork has no owner of its own: each of its parties is owned
/// by the rules above, and its reports come from the site holding the leg.
pub fn owner(at_fork: &Routing, site: SiteId, party: Party<'_>) -> Side {
    let ours = match party {
        Party::Caller { call, entry_site } => match at_fork.call_view(call) {
            Some(view) => caller_site(&view.status, view.entry_site) == Some(site),
            None => entry_site == site,
        },
        Party::Operator(id) => operator_site(at_fork, id) == Some(site),
    };
    if ours {
        Side::Island
    } else {
        Side::Majority
    }
}

/// The site whose island owns this caller: its entry site for a caller on the line, none
/// for a callback promise (promises are served from anywhere, so the majority keeps them).
pub fn caller_site(status: &CallStatus, entry_site: SiteId) -> Option<SiteId> {
    match status {
        CallStatus::Waiting | CallStatus::Offered | CallStatus::Connected => Some(entry_site),
        CallStatus::CallbackWaiting
        | CallStatus::CallbackOffered
        | CallStatus::CallbackConnected
        | CallStatus::Ended => None,
    }
}

/// The site whose island owns this operator: where it is logged in, or its home when
/// offline (it may log in there by PIN). None for an unknown operator.
pub fn operator_site(routing: &Routing, id: &OperatorId) -> Option<SiteId> {
    let home = routing.operator_config(id)?.site;
    Some(routing.operator_view(id).and_then(|view| view.site).unwrap_or(home))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_band_starts_at_its_base_and_ends_inside_the_order_key_range() {
        assert_eq!(fork_apply_index(0, 0), Some(ISLAND_APPLY_INDEX_BASE));
        assert_eq!(fork_apply_index(3, 7), Some(ISLAND_APPLY_INDEX_BASE + 3 * 256 + 7));
        let last = fork_apply_index(ISLAND_JOURNAL_ENTRIES_BAND - 1, ApplyIndex::STRIDE - 1);
        assert_eq!(last, Some(ORDER_SEQ_MAX));
        assert_eq!(fork_apply_index(ISLAND_JOURNAL_ENTRIES_BAND, 0), None);
        assert_eq!(fork_apply_index(0, ApplyIndex::STRIDE), None);
        assert_eq!(fork_apply_index(u64::MAX, 0), None);
    }

    #[test]
    fn the_band_is_above_every_global_index_a_log_reaches() {
        let global = ApplyIndex::last_of((1 << 47) - 1).get();
        assert!(!is_fork_apply_index(global));
        assert!(is_fork_apply_index(ISLAND_APPLY_INDEX_BASE));
    }

    #[test]
    fn callers_on_the_line_belong_to_their_entry_site_and_promises_to_none() {
        assert_eq!(caller_site(&CallStatus::Waiting, SiteId(3)), Some(SiteId(3)));
        assert_eq!(caller_site(&CallStatus::Connected, SiteId(3)), Some(SiteId(3)));
        assert_eq!(caller_site(&CallStatus::CallbackWaiting, SiteId(3)), None);
        assert_eq!(caller_site(&CallStatus::CallbackOffered, SiteId(3)), None);
    }
}
