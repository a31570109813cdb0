//! Several commands per Raft entry.
//!
//! openraft 0.9 waits for each leader append to be flushed before it handles the next
//! client write, so one command per entry caps a leader at one command per fsync. The
//! leader therefore gathers the commands waiting to be proposed into one [`CommandBatch`]
//! entry (group commit at the Raft level; the gathering is `node/proposer.rs`).
//!
//! Each command in an entry still gets its own position in the global order: the core
//! applies it at its *apply index* ([`lineup_core::ApplyIndex`]: `log_index × 256 + position`). Apply
//! indexes grow strictly with log order, so they serve as the Enqueue order key and the
//! Offer fence exactly as a log index would (unique, increasing, identical at every site),
//! and [`log_index_of`] maps one back to the Raft log index that holds it.

use lineup_core::{ApplyIndex, Command};
use serde::{Deserialize, Serialize};

/// Commands in one Raft entry at most: as many as an entry has apply indexes.
pub const ENTRY_COMMANDS_MAX: u64 = ApplyIndex::STRIDE;
/// Client commands gathered into one entry when the group has `voters` voters. The lease
/// guard may put one `SiteUnreachable` per voter before them, and the whole entry must fit
/// an entry's apply indexes: a command past them would share its apply index (its fence, its
/// order key) with the first command of the next entry.
pub fn gathered_commands_max(voters: usize) -> usize {
    (ENTRY_COMMANDS_MAX as usize).saturating_sub(voters).max(1)
}
/// Encoded commands gathered into one entry stop once they reach this many bytes (the last
/// command may carry an entry up to this plus one command).
pub const ENTRY_GATHER_BYTES: usize = 32 * 1024;
/// Commands waiting for a batch before submitters wait for room.
pub const PROPOSAL_QUEUE_COMMANDS_MAX: usize = 4_096;
/// Batches proposed to Raft and not yet committed, at most.
pub const BATCHES_IN_FLIGHT_MAX: usize = 8;

/// The Raft log entry payload: commands applied in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandBatch {
    pub commands: Vec<Command>,
}

/// The apply index of the command at `position` in the entry at `log_index`.
pub fn apply_index(log_index: u64, position: usize) -> u64 {
    // Not `ApplyIndex::new`, which refuses a position beyond the stride: a batch is bounded
    // where it is gathered, and applying one never panics.
    ApplyIndex::first_of(log_index).get() + position as u64
}

/// The Raft log index of the entry holding the command with this apply index (an offer's
/// fence, an Enqueue's order key).
pub fn log_index_of(apply_index: u64) -> u64 {
    ApplyIndex::from_raw(apply_index).raft_log_index()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_indexes_grow_with_log_order_and_map_back() {
        assert!(apply_index(7, ENTRY_COMMANDS_MAX as usize - 1) < apply_index(8, 0));
        assert!(apply_index(7, 0) < apply_index(7, 1));
        assert_eq!(log_index_of(apply_index(7, 5)), 7);
        assert_eq!(log_index_of(apply_index(8, 0)), 8);
    }

    /// Found by the simulator: a full batch of 256 commands with one `SiteUnreachable` put
    /// before it made an entry of 257, whose last command took the apply index of the next
    /// entry's first, and two nodes applied different commands at one index.
    #[test]
    fn a_full_gather_leaves_room_for_a_site_unreachable_per_voter() {
        for voters in 1..=9 {
            let prepended_max = voters;
            assert!(gathered_commands_max(voters) + prepended_max <= ENTRY_COMMANDS_MAX as usize, "{voters} voters");
        }
        assert_eq!(gathered_commands_max(3), 253);
        assert_eq!(gathered_commands_max(1_000), 1, "a batch always takes at least its first command");
    }
}
