//! Island mode at the node (docs/rfcs/island-mode.md §2.2): what a site cut off from the
//! quorum keeps on its own disk while it runs its fork of the routing state.
//!
//! Built so far: [`journal`], the durable local journal of the fork's batches. Not yet wired
//! into the running node (the island proposer, detection and the feed switch come later).

pub mod journal;

pub use journal::{
    apply_entry, IslandJournal, JournalState, RestoredIsland, ISLAND_ENTRY_COMMANDS_MAX, ISLAND_ENTRY_MAX_BYTES,
    ISLAND_JOURNAL_ENTRIES_MAX, ISLAND_JOURNAL_FILE, MERGE_STEP_NAME_MAX_BYTES, SEAL_BYTES,
};
