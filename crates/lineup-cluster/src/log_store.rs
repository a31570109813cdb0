//! The durable Raft log on redb.
//!
//! One redb file per node holds the log (`raft_log`, keyed by log index) and the small Raft
//! bookkeeping values (`raft_meta`: vote, committed log id, last purged log id). The state
//! machine's snapshot lives in the same file (see [`crate::state_machine`]), so one fsync
//! discipline covers everything a node needs to restart.
//!
//! Durability contract (what openraft requires of a `RaftLogStorage`):
//! - `save_vote` returns only after the vote is on disk;
//! - `append` calls the `LogFlushed` callback only after the redb commit returned, and redb's
//!   default `Durability::Immediate` makes a returned commit durable;
//! - `truncate` and `purge` commit before returning, so a restart never resurrects entries.
//!
//! Every write transaction runs on tokio's blocking pool: a commit is synchronous disk IO and
//! must not stall the async worker threads that carry Raft heartbeats. openraft awaits each
//! storage call before issuing the next, so writes stay in log order.

use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use lineup_core::codec;
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{LogId, OptionalSend, RaftLogReader, RaftTypeConfig, StorageError, StorageIOError, Vote};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::ClusterError;

/// Log entries by index; the value is a versioned codec envelope of the openraft entry.
pub(crate) const LOG_TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
/// Raft bookkeeping values by name (see the `META_*` keys).
pub(crate) const META_TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");

const META_VOTE: &str = "vote";
const META_COMMITTED: &str = "committed";
const META_LAST_PURGED: &str = "last_purged";

/// Largest stored value we decode from our own disk. The file is trusted (we wrote it), so
/// this is the codec's general ceiling rather than the tighter peer-frame limit.
const STORED_VALUE_MAX_BYTES: usize = codec::DECODE_LIMIT_BYTES;

/// Opens (or creates) the node's redb file. Both the log store and the state machine share
/// the returned handle.
pub fn open_database(path: &Path) -> Result<Arc<Database>, ClusterError> {
    let db = Database::create(path).map_err(|e| ClusterError::Storage(e.to_string()))?;
    // Create both tables up front so read transactions never meet a missing table.
    let tx = db.begin_write().map_err(|e| ClusterError::Storage(e.to_string()))?;
    {
        tx.open_table(LOG_TABLE).map_err(|e| ClusterError::Storage(e.to_string()))?;
        tx.open_table(META_TABLE).map_err(|e| ClusterError::Storage(e.to_string()))?;
        tx.open_table(crate::state_machine::SNAPSHOT_TABLE).map_err(|e| ClusterError::Storage(e.to_string()))?;
    }
    tx.commit().map_err(|e| ClusterError::Storage(e.to_string()))?;
    Ok(Arc::new(db))
}

const META_INCARNATION: &str = "incarnation";

/// Counts this node's runs: returns 1 on the first start, then one more per start, durably.
/// Command ids proposed by a run use it, so a restarted node never reuses an id.
pub fn next_incarnation(db: &Database) -> Result<u32, ClusterError> {
    let storage = |e: redb::Error| ClusterError::Storage(e.to_string());
    let tx = db.begin_write().map_err(|e| storage(e.into()))?;
    let next = {
        let mut table = tx.open_table(META_TABLE).map_err(|e| storage(e.into()))?;
        let previous: u32 = match table.get(META_INCARNATION).map_err(|e| storage(e.into()))? {
            Some(bytes) => codec::decode_versioned(bytes.value(), STORED_VALUE_MAX_BYTES)?,
            None => 0,
        };
        let next =
            previous.checked_add(1).ok_or_else(|| ClusterError::Storage("incarnation counter exhausted".into()))?;
        let bytes = codec::encode_versioned(&next)?;
        table.insert(META_INCARNATION, bytes.as_slice()).map_err(|e| storage(e.into()))?;
        next
    };
    tx.commit().map_err(|e| storage(e.into()))?;
    Ok(next)
}

/// openraft's `RaftLogStorage` over redb, generic over the type config so the storage test
/// suite can run it with a test config and the node with the routing config.
pub struct RedbLogStore<C: RaftTypeConfig> {
    db: Arc<Database>,
    _config: PhantomData<fn() -> C>,
}

impl<C: RaftTypeConfig> Clone for RedbLogStore<C> {
    fn clone(&self) -> Self {
        Self { db: self.db.clone(), _config: PhantomData }
    }
}

impl<C: RaftTypeConfig> RedbLogStore<C> {
    pub fn new(db: Arc<Database>) -> Self {
        Self { db, _config: PhantomData }
    }

    fn read_meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, redb::Error> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(META_TABLE)?;
        let Some(bytes) = table.get(key)? else {
            return Ok(None);
        };
        let value = codec::decode_versioned(bytes.value(), STORED_VALUE_MAX_BYTES)
            .map_err(|e| redb::Error::Corrupted(format!("meta {key}: {e}")))?;
        Ok(Some(value))
    }

    /// Runs one write transaction on the blocking pool and commits it (durably) before
    /// returning.
    async fn write<F>(&self, body: F) -> Result<(), redb::Error>
    where
        F: FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error> + Send + 'static,
    {
        let db = self.db.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let tx = db.begin_write()?;
            body(&tx)?;
            tx.commit()?;
            Ok::<(), redb::Error>(())
        })
        .await;
        match joined {
            Ok(result) => result,
            Err(join) => Err(redb::Error::Corrupted(format!("log store writer task failed: {join}"))),
        }
    }
}

fn encode_stored<T: Serialize>(value: &T) -> Result<Vec<u8>, redb::Error> {
    codec::encode_versioned(value).map_err(|e| redb::Error::Corrupted(format!("encode: {e}")))
}

fn put_meta<T: Serialize>(tx: &redb::WriteTransaction, key: &str, value: &T) -> Result<(), redb::Error> {
    let bytes = encode_stored(value)?;
    tx.open_table(META_TABLE)?.insert(key, bytes.as_slice())?;
    Ok(())
}

fn bound_start(bound: Bound<&u64>) -> Option<u64> {
    match bound {
        Bound::Included(&i) => Some(i),
        Bound::Excluded(&i) => i.checked_add(1),
        Bound::Unbounded => Some(0),
    }
}

impl<C> RaftLogReader<C> for RedbLogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        let Some(start) = bound_start(range.start_bound()) else {
            return Ok(Vec::new());
        };
        let read = || -> Result<Vec<C::Entry>, redb::Error> {
            let tx = self.db.begin_read()?;
            let table = tx.open_table(LOG_TABLE)?;
            let mut entries = Vec::new();
            for item in table.range(start..)? {
                let (index, bytes) = item?;
                if !range.contains(&index.value()) {
                    break;
                }
                let entry: C::Entry = codec::decode_versioned(bytes.value(), STORED_VALUE_MAX_BYTES)
                    .map_err(|e| redb::Error::Corrupted(format!("log entry {}: {e}", index.value())))?;
                entries.push(entry);
            }
            Ok(entries)
        };
        read().map_err(|e| StorageIOError::read_logs(&e).into())
    }
}

impl<C> RaftLogStorage<C> for RedbLogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        let read = || -> Result<LogState<C>, redb::Error> {
            let last_purged_log_id: Option<LogId<C::NodeId>> = self.read_meta(META_LAST_PURGED)?;
            let tx = self.db.begin_read()?;
            let table = tx.open_table(LOG_TABLE)?;
            let last_in_log = match table.last()? {
                Some((index, bytes)) => {
                    let entry: C::Entry = codec::decode_versioned(bytes.value(), STORED_VALUE_MAX_BYTES)
                        .map_err(|e| redb::Error::Corrupted(format!("log entry {}: {e}", index.value())))?;
                    Some(openraft::RaftLogId::get_log_id(&entry).clone())
                }
                None => None,
            };
            // After a purge of everything, the log is empty but its end is the purge point.
            let last_log_id = last_in_log.or(last_purged_log_id.clone());
            Ok(LogState { last_purged_log_id, last_log_id })
        };
        read().map_err(|e| StorageIOError::read_logs(&e).into())
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let vote = vote.clone();
        self.write(move |tx| put_meta(tx, META_VOTE, &vote)).await.map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        self.read_meta(META_VOTE).map_err(|e| StorageIOError::read_vote(&e).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId<C::NodeId>>) -> Result<(), StorageError<C::NodeId>> {
        self.write(move |tx| put_meta(tx, META_COMMITTED, &committed))
            .await
            .map_err(|e| StorageIOError::write(&e).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<C::NodeId>>, StorageError<C::NodeId>> {
        let stored: Option<Option<LogId<C::NodeId>>> =
            self.read_meta(META_COMMITTED).map_err(|e| StorageIOError::read(&e))?;
        Ok(stored.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<C>) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // Encode on the caller's thread: the blocking task then holds only bytes.
        let mut encoded = Vec::new();
        for entry in entries {
            let index = openraft::RaftLogId::get_log_id(&entry).index;
            let bytes = encode_stored(&entry).map_err(|e| StorageIOError::write_logs(&e))?;
            encoded.push((index, bytes));
        }
        let result = self
            .write(move |tx| {
                let mut table = tx.open_table(LOG_TABLE)?;
                for (index, bytes) in &encoded {
                    table.insert(*index, bytes.as_slice())?;
                }
                Ok(())
            })
            .await;
        // The commit above returned, so the entries are durable: only now may openraft count
        // this node towards the quorum for them.
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(StorageIOError::write_logs(&e).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let from = log_id.index;
        self.write(move |tx| {
            let mut table = tx.open_table(LOG_TABLE)?;
            table.retain_in(from.., |_, _| false)?;
            Ok(())
        })
        .await
        .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let upto = log_id.index;
        self.write(move |tx| {
            // Record the purge point in the same transaction as the deletion, so a crash can
            // never leave a log whose start is unknown.
            put_meta(tx, META_LAST_PURGED, &log_id)?;
            let mut table = tx.open_table(LOG_TABLE)?;
            table.retain_in(..=upto, |_, _| false)?;
            Ok(())
        })
        .await
        .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}
