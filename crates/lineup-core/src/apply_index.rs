//! The apply index: the order in which commands are applied, across Raft entries.

use std::fmt;

/// Where a command sits in the applied sequence: `raft_log_index × STRIDE + position`, the
/// position being its place in the Raft entry that carried it (lineup-cluster packs up to
/// [`ApplyIndex::STRIDE`] commands per entry). It is the order key of an Enqueue and the
/// fence of an offer; `Routing::apply` takes it as a plain `u64` ([`ApplyIndex::get`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ApplyIndex(u64);

impl ApplyIndex {
    /// Commands per Raft entry, and so the distance between the first apply indexes of two
    /// consecutive entries. Part of every stored fence and order key: never change it.
    pub const STRIDE: u64 = 256;

    /// The command at `position` in the Raft entry at `raft_log_index`.
    pub fn new(raft_log_index: u64, position: usize) -> Self {
        assert!((position as u64) < Self::STRIDE, "position {position} beyond an entry's {} commands", Self::STRIDE);
        Self(raft_log_index * Self::STRIDE + position as u64)
    }

    /// The first command of the Raft entry at `raft_log_index`.
    pub fn first_of(raft_log_index: u64) -> Self {
        Self::new(raft_log_index, 0)
    }

    /// The last apply index the Raft entry at `raft_log_index` could hold: everything of that
    /// entry is applied once this is reached.
    pub fn last_of(raft_log_index: u64) -> Self {
        Self((raft_log_index + 1) * Self::STRIDE - 1)
    }

    /// An apply index as stored or sent (a fence, an order key, a history row).
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    /// The number stored and sent for this apply index.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The Raft log index of the entry that carried the command.
    pub const fn raft_log_index(self) -> u64 {
        self.0 / Self::STRIDE
    }

    /// The command's place in its Raft entry.
    pub const fn position(self) -> usize {
        (self.0 % Self::STRIDE) as usize
    }
}

impl From<ApplyIndex> for u64 {
    fn from(index: ApplyIndex) -> u64 {
        index.0
    }
}

impl fmt::Display for ApplyIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::ApplyIndex;

    #[test]
    fn orders_entries_then_positions() {
        let last = ApplyIndex::STRIDE as usize - 1;
        assert!(ApplyIndex::new(7, last) < ApplyIndex::new(8, 0));
        assert!(ApplyIndex::new(7, 0) < ApplyIndex::new(7, 1));
        assert_eq!(ApplyIndex::new(7, last), ApplyIndex::last_of(7));
        assert_eq!(ApplyIndex::first_of(8).get(), 8 * 256);
    }

    #[test]
    fn splits_back_into_entry_and_position() {
        let index = ApplyIndex::new(7, 5);
        assert_eq!(index.get(), 7 * 256 + 5);
        assert_eq!((index.raft_log_index(), index.position()), (7, 5));
        assert_eq!(ApplyIndex::from_raw(index.get()), index);
        assert_eq!(ApplyIndex::last_of(7).raft_log_index(), 7);
    }
}
