//! Island mode at the node (docs/rfcs/island-mode.md §2.2): what a site cut off from the
//! quorum keeps on its own disk while it runs its fork of the routing state.
//!
//! [`journal`], the durable local journal of the fork's batches, and [`proposer`], which
//! decides the fork's commands (journaled, then applied and answered). The node forks and
//! starts the proposer when it becomes an island, and restores it after a restart
//! (`node/island_fork.rs`); site control follows it through the node's route
//! (`node/island_route.rs`), and the merge driver carries it back (`node/island_merge_driver.rs`).

pub mod journal;
pub mod proposer;

pub use journal::{
    apply_entry, IslandJournal, JournalState, RestoredIsland, ISLAND_ENTRY_COMMANDS_MAX, ISLAND_ENTRY_MAX_BYTES,
    ISLAND_JOURNAL_ENTRIES_MAX, ISLAND_JOURNAL_FILE, MERGE_STEP_NAME_MAX_BYTES, SEAL_BYTES,
};
pub use proposer::{
    IslandProposer, IslandProposerConfig, NextCommandId, ISLAND_EFFECT_STREAM_CAPACITY,
    ISLAND_PROPOSAL_QUEUE_COMMANDS_MAX, ISLAND_STOP_WAIT_MS,
};
