//! The island journal (docs/rfcs/island-mode.md §2.2 "Journal"): the durable local record of
//! every batch of commands an island decides, so its node can restart and go on from the
//! same fork.
//!
//! One redb file, `<data_dir>/island.redb` ([`ISLAND_JOURNAL_FILE`]), separate from the Raft
//! store. Tables:
//! - `island_meta`: the epoch ([`IslandEpoch`]), its [`JournalState`], the fork snapshot and
//!   the next entry number. The fork snapshot is `Routing::snapshot_bytes` of the fork as
//!   `Routing::fork_island` made it (the state at the fork index `k` with the island's marks),
//!   so restoring needs neither the members nor the time the fork was made at;
//! - `island_entries`: entry number `j` (0, 1, … with no gap) → the versioned codec
//!   envelope of the batch's `Vec<Command>` (sealed, see below), 1 to [`ISLAND_ENTRY_COMMANDS_MAX`] commands. Command `p`
//!   of entry `j` is applied at `lineup_core::island::fork_apply_index(j, p)`;
//! - `island_merge`: merge steps known committed at the majority, step name → a number (how
//!   far that step got; the merge driver gives the names their meaning).
//!
//! The rule the island proposer (`proposer.rs`) follows is the log's "sync before ack": a
//! batch is appended ([`IslandJournal::append`] returns only after redb's default
//! `Durability::Immediate` commit, an fsync) **before** it is applied to the fork and its
//! effects published. A crash therefore loses at most batches nobody saw the effects of.
//!
//! One fsync per batch, no group commit: the island proposer already gathers the commands
//! waiting into one batch of up to 256 (as the Raft proposer does), so the journal sees one
//! append per batch, not per command. The RFC's sizing for an island is about 50 commands/s;
//! a disk that syncs in 1 to 10 ms takes 100 to 1,000 appends/s, each up to 256 commands, so
//! a site stays two orders of magnitude below what one fsync per batch can carry. Group
//! commit (one writer thread, many appends per transaction, as `log_store.rs`) can come
//! later without changing the file.
//!
//! Every call does blocking disk IO: from async code, call it on a blocking thread.
//!
//! A damaged file is an error, never a panic: redb panics on some damaged files (see
//! `lineup-store`'s outbox), so every call runs with the panic contained. redb checks its
//! pages' checksums only when it repairs a file after a crash, so a byte flipped in a clean
//! file could decode into another valid command and replay a different history: every
//! stored value is therefore sealed (its codec envelope followed by the 8-byte FNV-1a hash
//! of it, [`SEAL_BYTES`]), and every value read back is unsealed, decoded with a bound and
//! checked (entry numbers without gaps, batch sizes, the fork's epoch and its invariants).
//!
//! Limits: [`ISLAND_JOURNAL_ENTRIES_MAX`] entries per epoch; past it an append fails with
//! [`ClusterError::IslandJournalFull`], which the island turns into refusing new callers.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use lineup_core::codec;
use lineup_core::island::{fork_apply_index, IslandEpoch, ISLAND_JOURNAL_ENTRIES_BAND};
use lineup_core::{Applied, ApplyIndex, Command, Routing};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::node::COMMAND_MAX_BYTES;
use crate::ClusterError;

/// The journal's file name inside a node's data directory.
pub const ISLAND_JOURNAL_FILE: &str = "island.redb";
/// Entries one epoch may journal. At the bound the island refuses new callers (RFC §2.2).
pub const ISLAND_JOURNAL_ENTRIES_MAX: u64 = 10_000_000;
/// Commands in one journal entry at most: as many as an entry has fork apply indexes.
pub const ISLAND_ENTRY_COMMANDS_MAX: usize = ApplyIndex::STRIDE as usize;
/// Encoded size of one entry at most: a full batch of the largest commands a node accepts.
pub const ISLAND_ENTRY_MAX_BYTES: usize = ISLAND_ENTRY_COMMANDS_MAX * COMMAND_MAX_BYTES;
/// Length of a merge step's name at most.
pub const MERGE_STEP_NAME_MAX_BYTES: usize = 64;
/// Encoded size of the fork snapshot at most (the codec's general ceiling, as a Raft snapshot).
const FORK_SNAPSHOT_MAX_BYTES: usize = codec::DECODE_LIMIT_BYTES;
/// Encoded size of the small values (epoch, state, next entry, a merge step's value) at most.
const META_VALUE_MAX_BYTES: usize = 1_024;
/// The seal after every stored value: the FNV-1a hash of the value, little-endian.
pub const SEAL_BYTES: usize = 8;

// Every entry number the journal hands out has fork apply indexes.
const _: () = assert!(ISLAND_JOURNAL_ENTRIES_MAX <= ISLAND_JOURNAL_ENTRIES_BAND);

const META_TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("island_meta");
const ENTRIES_TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("island_entries");
const MERGE_TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("island_merge");

const META_EPOCH: &str = "epoch";
const META_STATE: &str = "state";
const META_FORK: &str = "fork";
const META_NEXT_ENTRY: &str = "next_entry";

/// Where the journal's epoch is. Every state but `Closed` is an open epoch: the island's
/// fork is live (`Open`), frozen for a merge (`Frozen`) or being merged (`Merging`). An open
/// epoch is never abandoned: it ends by [`IslandJournal::close`] after its merge (or a
/// `declare-lost`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JournalState {
    Open,
    Frozen,
    Merging,
    Closed,
}

impl JournalState {
    pub fn is_open(self) -> bool {
        self != JournalState::Closed
    }
}

/// An open epoch read back from the journal: the fork as it was at the fork index and the
/// batches journaled since, in order, for replay ([`RestoredIsland::replay`]).
#[derive(Debug)]
pub struct RestoredIsland {
    pub epoch: IslandEpoch,
    pub state: JournalState,
    pub fork: Routing,
    pub entries: Vec<(u64, Vec<Command>)>,
    /// Merge steps known committed (step name → how far).
    pub merge: BTreeMap<String, u64>,
}

impl RestoredIsland {
    /// The fork as it was live: the fork at `k` with every journaled batch applied again,
    /// each at its fork apply indexes ([`apply_entry`]). Apply is deterministic, so this is
    /// the state the island had after its last journaled batch.
    pub fn replay(&self) -> Result<Routing, ClusterError> {
        let mut routing = self.fork.clone();
        for (entry, commands) in &self.entries {
            apply_entry(&mut routing, *entry, commands)?;
        }
        Ok(routing)
    }
}

/// Applies journal entry `entry` to the fork: command `p` at `fork_apply_index(entry, p)`,
/// then checks the fork's invariants (a replay that contradicts itself stops here rather
/// than serve from a wrong state). The island proposer applies a batch this way after
/// journaling it, and a restart replays the journal the same way.
pub fn apply_entry(routing: &mut Routing, entry: u64, commands: &[Command]) -> Result<Vec<Applied>, ClusterError> {
    check_batch_size(commands.len())?;
    let mut applied = Vec::with_capacity(commands.len());
    for (position, command) in commands.iter().enumerate() {
        let index = fork_apply_index(entry, position as u64)
            .ok_or_else(|| refused(format!("entry {entry} position {position} has no fork apply index")))?;
        applied.push(routing.apply(index, command));
    }
    routing
        .check_invariants()
        .map_err(|reason| refused(format!("entry {entry} leaves the fork contradicting itself: {reason}")))?;
    Ok(applied)
}

/// The island journal. See the module docs.
pub struct IslandJournal {
    db: Database,
    path: PathBuf,
}

/// What the meta table says.
#[derive(Debug, Clone, Copy)]
struct Meta {
    /// The last epoch begun, and its state (both or neither).
    epoch: Option<(IslandEpoch, JournalState)>,
    next_entry: u64,
}

impl Meta {
    fn open_epoch(&self) -> Option<IslandEpoch> {
        self.epoch.filter(|(_, state)| state.is_open()).map(|(epoch, _)| epoch)
    }
}

impl IslandJournal {
    /// Opens (or creates) the journal at `path`, checking what its meta table holds. A
    /// damaged file is [`ClusterError::Storage`], never a panic.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ClusterError> {
        let path = path.as_ref().to_path_buf();
        let what = format!("opening {}", path.display());
        contained(&path, &what, || {
            let mut db = Database::create(&path).map_err(|e| ClusterError::storage(what.clone(), e))?;
            // redb trusts a cleanly closed file; a damaged one can make its first write
            // panic inside a destructor while unwinding, which aborts the process whatever
            // catches the panic. Its integrity check reads every page first.
            db.check_integrity().map_err(|e| ClusterError::storage(format!("{what}: the file is damaged"), e))?;
            let journal = IslandJournal { db, path: path.clone() };
            journal.create_tables()?;
            let tx = journal.db.begin_read().map_err(|e| journal.storage("reading the meta table", e))?;
            let meta = tx.open_table(META_TABLE).map_err(|e| journal.storage("reading the meta table", e))?;
            journal.meta_of(&meta)?;
            drop(meta);
            drop(tx);
            Ok(journal)
        })
    }

    /// The journal's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last epoch begun and its state (Closed once merged), if any: the next epoch's
    /// `seq` must be larger.
    pub fn last_epoch(&self) -> Result<Option<(IslandEpoch, JournalState)>, ClusterError> {
        self.contain("reading the epoch", || {
            let tx = self.db.begin_read().map_err(|e| self.storage("reading the epoch", e))?;
            let meta = tx.open_table(META_TABLE).map_err(|e| self.storage("reading the epoch", e))?;
            Ok(self.meta_of(&meta)?.epoch)
        })
    }

    /// Begins `epoch` from `fork_snapshot` (`Routing::snapshot_bytes` of the fork
    /// `Routing::fork_island` made for it). Refused while an epoch is open, for an epoch not
    /// newer than the last one, and for a snapshot that is not a fork of `epoch`.
    pub fn begin(&self, epoch: IslandEpoch, fork_snapshot: &[u8]) -> Result<(), ClusterError> {
        if fork_snapshot.len() > FORK_SNAPSHOT_MAX_BYTES {
            return Err(refused(format!(
                "a fork snapshot of {} bytes exceeds {FORK_SNAPSHOT_MAX_BYTES} bytes",
                fork_snapshot.len()
            )));
        }
        let fork = Routing::restore(fork_snapshot).map_err(|e| ClusterError::IslandJournal {
            what: "the fork snapshot does not restore".into(),
            source: Some(e.into()),
        })?;
        if fork.island().map(|f| f.epoch) != Some(epoch) {
            return Err(refused(format!("the fork snapshot is not the fork of {epoch:?}")));
        }
        self.write("beginning an epoch", |tx| {
            let mut meta = tx.open_table(META_TABLE)?;
            let found = self.meta_of(&meta)?;
            if let Some(open) = found.open_epoch() {
                return Err(ClusterError::IslandEpochOpen { open }.into());
            }
            if let Some((last, _)) = found.epoch {
                if epoch.seq <= last.seq {
                    return Err(refused(format!("{epoch:?} is not newer than the last epoch, {last:?}")).into());
                }
            }
            // Closing empties these; a file that was closed halfway starts clean anyway.
            tx.open_table(ENTRIES_TABLE)?.retain(|_, _| false)?;
            tx.open_table(MERGE_TABLE)?.retain(|_, _| false)?;
            meta.insert(META_EPOCH, encode(&epoch)?.as_slice())?;
            meta.insert(META_STATE, encode(&JournalState::Open)?.as_slice())?;
            meta.insert(META_FORK, sealed(fork_snapshot.to_vec()).as_slice())?;
            meta.insert(META_NEXT_ENTRY, encode(&0u64)?.as_slice())?;
            Ok(())
        })
    }

    /// Journals one batch of the open epoch and returns its entry number, once it is durable
    /// (fsynced). Refused, changing nothing: an empty batch or one over
    /// [`ISLAND_ENTRY_COMMANDS_MAX`] commands or [`ISLAND_ENTRY_MAX_BYTES`] bytes, no open
    /// epoch, and a full journal ([`ClusterError::IslandJournalFull`]).
    pub fn append(&self, commands: &[Command]) -> Result<u64, ClusterError> {
        check_batch_size(commands.len())?;
        let bytes = encode(&commands)?;
        if bytes.len() - SEAL_BYTES > ISLAND_ENTRY_MAX_BYTES {
            return Err(refused(format!(
                "a batch of {} bytes exceeds {ISLAND_ENTRY_MAX_BYTES} bytes",
                bytes.len() - SEAL_BYTES
            )));
        }
        self.write("appending a batch", |tx| {
            let mut meta = tx.open_table(META_TABLE)?;
            let found = self.meta_of(&meta)?;
            if found.open_epoch().is_none() {
                return Err(refused("no epoch is open to append to".into()).into());
            }
            let entry = found.next_entry;
            if entry >= ISLAND_JOURNAL_ENTRIES_MAX {
                return Err(ClusterError::IslandJournalFull { entries_max: ISLAND_JOURNAL_ENTRIES_MAX }.into());
            }
            tx.open_table(ENTRIES_TABLE)?.insert(entry, bytes.as_slice())?;
            meta.insert(META_NEXT_ENTRY, encode(&(entry + 1))?.as_slice())?;
            Ok(entry)
        })
    }

    /// Moves the open epoch to `state` (Open, Frozen or Merging; closing is
    /// [`IslandJournal::close`]). Which moves make sense is the merge driver's to decide: a
    /// merge cut again thaws back to Open (RFC §3.7).
    pub fn set_state(&self, state: JournalState) -> Result<(), ClusterError> {
        if !state.is_open() {
            return Err(refused("an epoch is closed by close(), not set_state".into()));
        }
        self.write("setting the epoch's state", |tx| {
            let mut meta = tx.open_table(META_TABLE)?;
            if self.meta_of(&meta)?.open_epoch().is_none() {
                return Err(refused("no epoch is open".into()).into());
            }
            meta.insert(META_STATE, encode(&state)?.as_slice())?;
            Ok(())
        })
    }

    /// Records that merge step `step` of the open epoch is known committed, up to `value`.
    pub fn mark_merge_step(&self, step: &str, value: u64) -> Result<(), ClusterError> {
        if step.is_empty() || step.len() > MERGE_STEP_NAME_MAX_BYTES {
            return Err(refused(format!("a merge step's name has 1 to {MERGE_STEP_NAME_MAX_BYTES} bytes")));
        }
        self.write("marking a merge step", |tx| {
            if self.meta_of(&tx.open_table(META_TABLE)?)?.open_epoch().is_none() {
                return Err(refused("no epoch is open".into()).into());
            }
            tx.open_table(MERGE_TABLE)?.insert(step, encode(&value)?.as_slice())?;
            Ok(())
        })
    }

    /// Closes the open epoch (merged, or its site declared lost) and returns it: its fork,
    /// entries and merge steps are deleted; the epoch is kept, Closed, so the next is newer.
    pub fn close(&self) -> Result<IslandEpoch, ClusterError> {
        self.write("closing the epoch", |tx| {
            let mut meta = tx.open_table(META_TABLE)?;
            let Some(epoch) = self.meta_of(&meta)?.open_epoch() else {
                return Err(refused("no epoch is open to close".into()).into());
            };
            tx.open_table(ENTRIES_TABLE)?.retain(|_, _| false)?;
            tx.open_table(MERGE_TABLE)?.retain(|_, _| false)?;
            meta.insert(META_STATE, encode(&JournalState::Closed)?.as_slice())?;
            meta.remove(META_FORK)?;
            meta.remove(META_NEXT_ENTRY)?;
            Ok(epoch)
        })
    }

    /// The open epoch with its fork and batches (None when no epoch is open). Everything is
    /// decoded and checked: a damaged journal is an error, not a shorter history.
    pub fn restore(&self) -> Result<Option<RestoredIsland>, ClusterError> {
        self.contain("restoring the island", || {
            let storage = |e: redb::Error| self.storage("restoring the island", e);
            let tx = self.db.begin_read().map_err(|e| storage(e.into()))?;
            let meta = tx.open_table(META_TABLE).map_err(|e| storage(e.into()))?;
            let found = self.meta_of(&meta)?;
            let Some((epoch, state)) = found.epoch.filter(|(_, state)| state.is_open()) else {
                return Ok(None);
            };
            let fork = {
                let bytes = meta
                    .get(META_FORK)
                    .map_err(|e| storage(e.into()))?
                    .ok_or_else(|| self.damaged("an open epoch has no fork snapshot"))?;
                let snapshot = self.unseal(META_FORK, bytes.value())?;
                Routing::restore(snapshot)
                    .map_err(|e| ClusterError::storage(format!("{} holds a damaged fork", self.path.display()), e))?
            };
            if fork.island().map(|f| f.epoch) != Some(epoch) {
                return Err(self.damaged("its fork snapshot is not the open epoch's fork"));
            }
            let table = tx.open_table(ENTRIES_TABLE).map_err(|e| storage(e.into()))?;
            let mut entries = Vec::new();
            for row in table.iter().map_err(|e| storage(e.into()))? {
                let (key, bytes) = row.map_err(|e| storage(e.into()))?;
                let entry = key.value();
                if entry != entries.len() as u64 || entry >= found.next_entry {
                    return Err(self.damaged(&format!("entry {entry} is out of sequence")));
                }
                let envelope = self.unseal(&format!("entry {entry}"), bytes.value())?;
                let commands: Vec<Command> = codec::decode_versioned_bounded::<_, ISLAND_ENTRY_MAX_BYTES>(envelope)
                    .map_err(|e| {
                        ClusterError::storage(format!("{} holds a damaged entry {entry}", self.path.display()), e)
                    })?;
                if commands.is_empty() || commands.len() > ISLAND_ENTRY_COMMANDS_MAX {
                    return Err(self.damaged(&format!("entry {entry} holds {} commands", commands.len())));
                }
                entries.push((entry, commands));
            }
            if entries.len() as u64 != found.next_entry {
                return Err(self.damaged(&format!(
                    "it holds {} entries where it numbered {}",
                    entries.len(),
                    found.next_entry
                )));
            }
            let merge_table = tx.open_table(MERGE_TABLE).map_err(|e| storage(e.into()))?;
            let mut merge = BTreeMap::new();
            for row in merge_table.iter().map_err(|e| storage(e.into()))? {
                let (step, bytes) = row.map_err(|e| storage(e.into()))?;
                let step = step.value().to_string();
                let value = self.decode_small(&format!("merge step {step}"), bytes.value())?;
                merge.insert(step, value);
            }
            Ok(Some(RestoredIsland { epoch, state, fork, entries, merge }))
        })
    }

    fn create_tables(&self) -> Result<(), ClusterError> {
        self.write("creating the tables", |tx| {
            tx.open_table(META_TABLE)?;
            tx.open_table(ENTRIES_TABLE)?;
            tx.open_table(MERGE_TABLE)?;
            Ok(())
        })
    }

    /// Reads and checks the meta table.
    fn meta_of(&self, meta: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<Meta, ClusterError> {
        let read = |key: &str| -> Result<Option<Vec<u8>>, ClusterError> {
            let value = meta.get(key).map_err(|e| self.storage("reading the meta table", e))?;
            Ok(value.map(|v| v.value().to_vec()))
        };
        let epoch: Option<IslandEpoch> = read(META_EPOCH)?.map(|b| self.decode_small(META_EPOCH, &b)).transpose()?;
        let state: Option<JournalState> = read(META_STATE)?.map(|b| self.decode_small(META_STATE, &b)).transpose()?;
        let next_entry: Option<u64> =
            read(META_NEXT_ENTRY)?.map(|b| self.decode_small(META_NEXT_ENTRY, &b)).transpose()?;
        let epoch = match (epoch, state) {
            (Some(epoch), Some(state)) => Some((epoch, state)),
            (None, None) => None,
            _ => return Err(self.damaged("its epoch and state disagree")),
        };
        let open = epoch.is_some_and(|(_, state)| state.is_open());
        match next_entry {
            Some(next) if open && next <= ISLAND_JOURNAL_ENTRIES_MAX => Ok(Meta { epoch, next_entry: next }),
            None if !open => Ok(Meta { epoch, next_entry: 0 }),
            _ => Err(self.damaged("its next entry number does not fit its epoch")),
        }
    }

    fn decode_small<T: serde::de::DeserializeOwned>(&self, key: &str, bytes: &[u8]) -> Result<T, ClusterError> {
        codec::decode_versioned(self.unseal(key, bytes)?, META_VALUE_MAX_BYTES)
            .map_err(|e| ClusterError::storage(format!("{} holds a damaged {key}", self.path.display()), e))
    }

    /// The value under its seal, if the seal matches.
    fn unseal<'a>(&self, key: &str, bytes: &'a [u8]) -> Result<&'a [u8], ClusterError> {
        let (value, seal) = bytes
            .split_at_checked(bytes.len().saturating_sub(SEAL_BYTES))
            .filter(|(_, seal)| seal.len() == SEAL_BYTES)
            .ok_or_else(|| self.damaged(&format!("its {key} is shorter than its seal")))?;
        if seal != fnv1a(value).to_le_bytes() {
            return Err(self.damaged(&format!("its {key} does not match its seal")));
        }
        Ok(value)
    }

    /// Runs `body` in one write transaction and commits it (durably) if it succeeds; on an
    /// error nothing it did is kept.
    fn write<T>(
        &self,
        what: &str,
        body: impl FnOnce(&redb::WriteTransaction) -> Result<T, JournalWriteError>,
    ) -> Result<T, ClusterError> {
        self.contain(what, || {
            let tx = self.db.begin_write().map_err(|e| self.storage(what, e))?;
            let value = body(&tx).map_err(|e| match e {
                JournalWriteError::Cluster(e) => e,
                JournalWriteError::Redb(e) => self.storage(what, e),
            })?;
            tx.commit().map_err(|e| self.storage(what, e))?;
            Ok(value)
        })
    }

    fn contain<T>(&self, what: &str, body: impl FnOnce() -> Result<T, ClusterError>) -> Result<T, ClusterError> {
        contained(&self.path, what, body)
    }

    fn storage(&self, what: &str, e: impl Into<redb::Error>) -> ClusterError {
        let e: redb::Error = e.into();
        ClusterError::storage(format!("{what} in {}", self.path.display()), e)
    }

    fn damaged(&self, why: &str) -> ClusterError {
        ClusterError::Storage { what: format!("{} is damaged: {why}", self.path.display()), source: None }
    }
}

/// An error inside a write transaction: the journal's own, or redb's (`?` on redb calls).
enum JournalWriteError {
    Cluster(ClusterError),
    Redb(redb::Error),
}

impl From<ClusterError> for JournalWriteError {
    fn from(e: ClusterError) -> Self {
        JournalWriteError::Cluster(e)
    }
}

impl<E: Into<redb::Error>> From<E> for JournalWriteError {
    fn from(e: E) -> Self {
        JournalWriteError::Redb(e.into())
    }
}

/// Runs `body`, turning a panic inside it (redb panics on some damaged files) into an error.
fn contained<T>(path: &Path, what: &str, body: impl FnOnce() -> Result<T, ClusterError>) -> Result<T, ClusterError> {
    std::panic::catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        Err(ClusterError::Storage {
            what: format!("{what}: {} is damaged (its database could not be read)", path.display()),
            source: None,
        })
    })
}

fn check_batch_size(commands: usize) -> Result<(), ClusterError> {
    if commands == 0 || commands > ISLAND_ENTRY_COMMANDS_MAX {
        return Err(ClusterError::IslandBatch { commands, limit_commands: ISLAND_ENTRY_COMMANDS_MAX });
    }
    Ok(())
}

fn refused(what: String) -> ClusterError {
    ClusterError::IslandJournal { what, source: None }
}

/// The sealed codec envelope of `value`, as stored.
fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ClusterError> {
    Ok(sealed(codec::encode_versioned(value)?))
}

/// `bytes` followed by their seal.
fn sealed(mut bytes: Vec<u8>) -> Vec<u8> {
    let seal = fnv1a(&bytes);
    bytes.extend_from_slice(&seal.to_le_bytes());
    bytes
}

/// 64-bit FNV-1a. Each step is a bijection of the running hash for a given byte, so any one
/// changed byte changes the hash; it guards against damage, not against a forger.
fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(PRIME))
}
