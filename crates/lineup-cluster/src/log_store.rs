//! The durable Raft log on redb.
//!
//! One redb file per node holds the log (`raft_log`, keyed by log index) and the small Raft
//! bookkeeping values (`raft_meta`: vote, committed log id, last purged log id). The state
//! machine's snapshot lives in the same file (see [`crate::state_machine`]), so one fsync
//! discipline covers everything a node needs to restart.
//!
//! All log writes go, in order, through one writer thread that owns the redb write side.
//! It takes every operation waiting in its (bounded) queue into one transaction and commits
//! once (group commit): under load one fsync covers many appends, which is what makes the
//! log fast, and the async runtime never waits on disk.
//!
//! [`RedbLogStore::inline`] is the other mode, for an in-memory database under the
//! deterministic simulator: each operation commits on the calling task before the call
//! returns. No second thread means nothing races the simulator's paused clock.
//!
//! Durability contract (what openraft requires of a `RaftLogStorage`):
//! - `save_vote` returns only after the vote is committed (redb's default
//!   `Durability::Immediate` makes a returned commit durable);
//! - `append` returns once the entries are readable (they sit in an in-memory overlay until
//!   written) and calls the `LogFlushed` callback only after the commit that holds them;
//! - `truncate` and `purge` return after their commit, so a restart never resurrects
//!   entries, and the overlay drops truncated entries at once;
//! - `save_committed` is queued behind the appends it follows and not awaited (openraft
//!   uses it only to re-apply faster after a restart).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};

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

pub(crate) const META_VOTE: &str = "vote";
const META_COMMITTED: &str = "committed";
pub(crate) const META_LAST_PURGED: &str = "last_purged";

/// Largest stored value we decode from our own disk. The file is trusted (we wrote it), so
/// this is the codec's general ceiling rather than the tighter peer-frame limit.
const STORED_VALUE_MAX_BYTES: usize = codec::DECODE_LIMIT_BYTES;

/// Opens (or creates) the node's redb file. Both the log store and the state machine share
/// the returned handle.
pub fn open_database(path: &Path) -> Result<Arc<Database>, ClusterError> {
    let db = Database::create(path).map_err(|e| ClusterError::storage(format!("opening {}", path.display()), e))?;
    create_tables(db)
}

/// A fresh in-memory database for one node (see [`crate::node::NodeStorage::Memory`]).
pub fn memory_database() -> Result<Arc<Database>, ClusterError> {
    database_on_backend(redb::backends::InMemoryBackend::new())
}

/// A fresh database for one node on any redb backend (see
/// [`crate::node::NodeStorage::Memory`]): tests put a failing disk under a node this way.
pub fn database_on_backend(backend: impl redb::StorageBackend) -> Result<Arc<Database>, ClusterError> {
    let db = redb::Builder::new()
        .create_with_backend(backend)
        .map_err(|e| ClusterError::storage("creating the database on its backend", e))?;
    create_tables(db)
}

fn create_tables(db: Database) -> Result<Arc<Database>, ClusterError> {
    // Create both tables up front so read transactions never meet a missing table.
    let tx = db.begin_write().map_err(|e| ClusterError::storage("creating the tables", e))?;
    {
        tx.open_table(LOG_TABLE).map_err(|e| ClusterError::storage("creating the log table", e))?;
        tx.open_table(META_TABLE).map_err(|e| ClusterError::storage("creating the meta table", e))?;
        tx.open_table(crate::state_machine::SNAPSHOT_TABLE)
            .map_err(|e| ClusterError::storage("creating the snapshot table", e))?;
    }
    tx.commit().map_err(|e| ClusterError::storage("creating the tables", e))?;
    Ok(Arc::new(db))
}

/// What a stopped node's log holds, read offline: its entries as stored (index → bytes; the
/// encoding is deterministic, so one entry has one byte string on every member) and the
/// committed index it last stored (never ahead of the real one).
#[derive(Debug, Default)]
pub struct StoredLog {
    pub committed: Option<u64>,
    pub entries: BTreeMap<u64, Vec<u8>>,
}

impl StoredLog {
    /// Reads the log of the node whose redb file is at `path` (the node must be stopped: redb
    /// holds its file exclusively). A missing file is an error, not an empty log.
    pub fn read(path: &Path) -> Result<StoredLog, ClusterError> {
        let storage = |e: redb::Error| ClusterError::storage(format!("reading the log at {}", path.display()), e);
        let db = Database::open(path).map_err(|e| storage(e.into()))?;
        let tx = db.begin_read().map_err(|e| storage(e.into()))?;
        let meta = tx.open_table(META_TABLE).map_err(|e| storage(e.into()))?;
        let committed = match meta.get(META_COMMITTED).map_err(|e| storage(e.into()))? {
            Some(bytes) => {
                codec::decode_versioned::<Option<LogId<u64>>>(bytes.value(), STORED_VALUE_MAX_BYTES)?.map(|id| id.index)
            }
            None => None,
        };
        let log = tx.open_table(LOG_TABLE).map_err(|e| storage(e.into()))?;
        let mut entries = BTreeMap::new();
        for row in log.iter().map_err(|e| storage(e.into()))? {
            let (index, bytes) = row.map_err(|e| storage(e.into()))?;
            entries.insert(index.value(), bytes.value().to_vec());
        }
        Ok(StoredLog { committed, entries })
    }

    /// The membership entries it holds: log index → the voter sets of that configuration (two
    /// while a change is joint, one otherwise) and every node in it, learners included. For
    /// tools reading a stopped node's log (where a kill left a membership change).
    pub fn memberships(&self) -> Result<BTreeMap<u64, StoredMembershipEntry>, ClusterError> {
        let mut found = BTreeMap::new();
        for (index, bytes) in &self.entries {
            let entry: openraft::Entry<crate::raft_types::LineupRaft> =
                codec::decode_versioned(bytes, STORED_VALUE_MAX_BYTES)?;
            if let openraft::EntryPayload::Membership(membership) = entry.payload {
                let voters = membership.get_joint_config().clone();
                let nodes = membership.nodes().map(|(id, _)| *id).collect();
                found.insert(*index, StoredMembershipEntry { voters, nodes });
            }
        }
        Ok(found)
    }
}

/// One membership entry of a stored log (see [`StoredLog::memberships`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMembershipEntry {
    pub voters: Vec<std::collections::BTreeSet<u64>>,
    pub nodes: std::collections::BTreeSet<u64>,
}

pub(crate) const META_INCARNATION: &str = "incarnation";

/// Counts this node's runs: returns 1 on the first start, then one more per start, durably.
/// Command ids proposed by a run use it, so a restarted node never reuses an id.
pub fn next_incarnation(db: &Database) -> Result<u32, ClusterError> {
    let storage = |e: redb::Error| ClusterError::storage("counting this run", e);
    let tx = db.begin_write().map_err(|e| storage(e.into()))?;
    let next = {
        let mut table = tx.open_table(META_TABLE).map_err(|e| storage(e.into()))?;
        let previous: u32 = match table.get(META_INCARNATION).map_err(|e| storage(e.into()))? {
            Some(bytes) => codec::decode_versioned(bytes.value(), STORED_VALUE_MAX_BYTES)?,
            None => 0,
        };
        let next = previous
            .checked_add(1)
            .ok_or_else(|| ClusterError::Storage { what: "incarnation counter exhausted".into(), source: None })?;
        let bytes = codec::encode_versioned(&next)?;
        table.insert(META_INCARNATION, bytes.as_slice()).map_err(|e| storage(e.into()))?;
        next
    };
    tx.commit().map_err(|e| storage(e.into()))?;
    Ok(next)
}

/// Operations queued to the writer thread, applied in order.
enum WriteOp<C: RaftTypeConfig> {
    Append {
        seq: u64,
        entries: Vec<(u64, Vec<u8>)>,
        callback: LogFlushed<C>,
    },
    /// Values for the meta table; `done` is answered after the commit (None: not awaited).
    Meta {
        key: &'static str,
        bytes: Vec<u8>,
        done: Option<oneshot::Sender<Result<(), String>>>,
    },
    Truncate {
        from: u64,
        done: oneshot::Sender<Result<(), String>>,
    },
    Purge {
        upto: u64,
        last_purged: Vec<u8>,
        done: oneshot::Sender<Result<(), String>>,
    },
}

/// Operations the writer queue holds before `append` waits for room (backpressure on
/// openraft instead of unbounded memory).
pub const LOG_WRITER_QUEUE_OPS_MAX: usize = 1_024;
/// Operations folded into one transaction at most.
pub const LOG_WRITER_BATCH_OPS_MAX: usize = 1_024;

/// Appended entries not yet known to be committed, by index, with the sequence number of
/// the append that wrote them. Readers see them; the writer forgets them once committed.
type Overlay<C> = BTreeMap<u64, (u64, <C as RaftTypeConfig>::Entry)>;

struct Shared<C: RaftTypeConfig> {
    db: Arc<Database>,
    overlay: Mutex<Overlay<C>>,
    /// The writer thread's queue; `None` in inline mode.
    queue: Option<mpsc::Sender<WriteOp<C>>>,
    next_seq: AtomicU64,
}

impl<C: RaftTypeConfig> Shared<C> {
    fn new(db: Arc<Database>, queue: Option<mpsc::Sender<WriteOp<C>>>) -> Arc<Self> {
        Arc::new(Shared { db, overlay: Mutex::new(BTreeMap::new()), queue, next_seq: AtomicU64::new(1) })
    }
}

/// openraft's `RaftLogStorage` over redb, generic over the type config so the storage test
/// suite can run it with a test config and the node with the routing config. Clones share
/// one writer thread, which ends when the last clone is dropped.
pub struct RedbLogStore<C: RaftTypeConfig> {
    shared: Arc<Shared<C>>,
}

impl<C: RaftTypeConfig> Clone for RedbLogStore<C> {
    fn clone(&self) -> Self {
        Self { shared: self.shared.clone() }
    }
}

/// Tells when a log store's writer thread has finished (and released the database).
pub struct WriterFinished(watch::Receiver<bool>);

impl WriterFinished {
    /// Waits until the writer thread has exited.
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|finished| *finished).await;
    }
}

/// The writer task of a simulated disk ([`RedbLogStore::on_task`]).
pub struct SimulatedDiskWriter<C: RaftTypeConfig> {
    task: tokio::task::JoinHandle<()>,
    shared: std::sync::Weak<Shared<C>>,
}

impl<C: RaftTypeConfig> SimulatedDiskWriter<C> {
    /// The process dies: the task stops where it is; answers how many appended log entries
    /// were not written yet and are lost. Counted before anything else runs (on the
    /// simulator's one thread the task is not mid-commit): once the appends' callbacks are
    /// dropped, Raft stops and takes the log store with it.
    pub async fn crash(self) -> usize {
        self.task.abort();
        let lost = self.unsynced_entries();
        let _ = self.task.await;
        lost
    }

    /// Log entries appended and not written yet (a crash now would lose them).
    pub fn unsynced_entries(&self) -> usize {
        self.shared.upgrade().map(|shared| shared.overlay.lock().unwrap_or_else(|p| p.into_inner()).len()).unwrap_or(0)
    }

    /// Waits up to `wait` for the task to write what was queued and end (it ends with the
    /// log store); stops it if it has not.
    pub async fn finish(mut self, wait: std::time::Duration) {
        if tokio::time::timeout(wait, &mut self.task).await.is_err() {
            self.task.abort();
        }
    }
}

impl<C> RedbLogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned + Clone,
{
    pub fn new(db: Arc<Database>) -> Self {
        Self::with_writer(db).0
    }

    /// Like [`RedbLogStore::new`], also returning a handle to await the writer's end.
    pub fn with_writer(db: Arc<Database>) -> (Self, WriterFinished) {
        let (queue, ops) = mpsc::channel(LOG_WRITER_QUEUE_OPS_MAX);
        let (finished_tx, finished_rx) = watch::channel(false);
        let shared = Shared::new(db.clone(), Some(queue));
        let overlay = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("lineup-log-writer".into())
            .spawn(move || {
                run_writer::<C>(db, ops, overlay);
                let _ = finished_tx.send(true);
            })
            .expect("spawning the log writer thread");
        (Self { shared }, WriterFinished(finished_rx))
    }

    /// A store whose writes commit on the calling task, before the call returns (see the
    /// module notes: for in-memory databases under the simulator).
    pub fn inline(db: Arc<Database>) -> Self {
        let shared = Shared::new(db, None);
        Self { shared }
    }

    /// A store whose writes a task of the calling runtime commits, each batch `sync_delay`
    /// after its first operation was queued (the writer thread's group commit and fsync, on
    /// a paused tokio clock: see [`crate::node::NodeStorage::SimulatedDisk`]). Aborting the
    /// returned task is a crash: what it had not committed is lost, and nothing queued is
    /// answered.
    pub fn on_task(db: Arc<Database>, sync_delay: std::time::Duration) -> (Self, SimulatedDiskWriter<C>) {
        let (queue, ops) = mpsc::channel(LOG_WRITER_QUEUE_OPS_MAX);
        let shared = Shared::new(db.clone(), Some(queue));
        let task = tokio::spawn(run_writer_task::<C>(db, ops, Arc::downgrade(&shared), sync_delay));
        let writer = SimulatedDiskWriter { task, shared: Arc::downgrade(&shared) };
        (Self { shared }, writer)
    }

    fn overlay(&self) -> std::sync::MutexGuard<'_, Overlay<C>> {
        // Plain data; a panic elsewhere cannot leave it half-updated.
        self.shared.overlay.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read_meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, redb::Error> {
        let tx = self.shared.db.begin_read()?;
        let table = tx.open_table(META_TABLE)?;
        let Some(bytes) = table.get(key)? else { return Ok(None) };
        let value = codec::decode_versioned(bytes.value(), STORED_VALUE_MAX_BYTES)
            .map_err(|e| redb::Error::Corrupted(format!("meta {key}: {e}")))?;
        Ok(Some(value))
    }

    async fn enqueue(&self, op: WriteOp<C>) -> Result<(), redb::Error> {
        match &self.shared.queue {
            Some(queue) => queue.send(op).await.map_err(|_| redb::Error::Corrupted("log writer has stopped".into())),
            None => {
                commit_batch(&self.shared.db, vec![op], Some(&*self.shared));
                Ok(())
            }
        }
    }

    /// Queues `op` (built around a completion sender) and waits for its commit.
    async fn write_and_wait(
        &self,
        op: impl FnOnce(oneshot::Sender<Result<(), String>>) -> WriteOp<C>,
    ) -> Result<(), redb::Error> {
        let (done, committed) = oneshot::channel();
        self.enqueue(op(done)).await?;
        match committed.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(redb::Error::Corrupted(e)),
            Err(_) => Err(redb::Error::Corrupted("log writer stopped before committing".into())),
        }
    }
}

/// The writer thread: applies queued operations in order, many per transaction.
fn run_writer<C>(db: Arc<Database>, mut ops: mpsc::Receiver<WriteOp<C>>, shared: std::sync::Weak<Shared<C>>)
where
    C: RaftTypeConfig,
{
    while let Some(first) = ops.blocking_recv() {
        let batch = batch_after(first, &mut ops);
        commit_batch(&db, batch, shared.upgrade().as_deref());
    }
}

/// `first` and whatever else is queued now, up to `LOG_WRITER_BATCH_OPS_MAX` operations.
fn batch_after<C: RaftTypeConfig>(first: WriteOp<C>, ops: &mut mpsc::Receiver<WriteOp<C>>) -> Vec<WriteOp<C>> {
    let mut batch = vec![first];
    while batch.len() < LOG_WRITER_BATCH_OPS_MAX {
        match ops.try_recv() {
            Ok(op) => batch.push(op),
            Err(_) => break,
        }
    }
    batch
}

/// The writer thread's loop as a task: after the first queued operation, `sync_delay` of
/// the runtime's clock (the disk's sync), then everything queued by then in one commit.
async fn run_writer_task<C>(
    db: Arc<Database>,
    mut ops: mpsc::Receiver<WriteOp<C>>,
    shared: std::sync::Weak<Shared<C>>,
    sync_delay: std::time::Duration,
) where
    C: RaftTypeConfig,
{
    while let Some(first) = ops.recv().await {
        tokio::time::sleep(sync_delay).await;
        let batch = batch_after(first, &mut ops);
        commit_batch(&db, batch, shared.upgrade().as_deref());
    }
}

/// Commits `batch` in one transaction, forgets the committed appends from the overlay and
/// answers every operation.
fn commit_batch<C: RaftTypeConfig>(db: &Database, batch: Vec<WriteOp<C>>, shared: Option<&Shared<C>>) {
    let result = write_batch(db, &batch).map_err(|e| e.to_string());
    let committed_seq = batch
        .iter()
        .filter_map(|op| match op {
            WriteOp::Append { seq, .. } => Some(*seq),
            _ => None,
        })
        .max();
    if let (Ok(()), Some(committed_seq), Some(shared)) = (&result, committed_seq, shared) {
        shared.overlay.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, (seq, _)| *seq > committed_seq);
    }
    for op in batch {
        let answer = result.clone();
        match op {
            WriteOp::Append { callback, .. } => {
                callback.log_io_completed(answer.map_err(std::io::Error::other));
            }
            WriteOp::Meta { done, .. } => {
                if let Some(done) = done {
                    let _ = done.send(answer);
                }
            }
            WriteOp::Truncate { done, .. } | WriteOp::Purge { done, .. } => {
                let _ = done.send(answer);
            }
        }
    }
}

fn write_batch<C: RaftTypeConfig>(db: &Database, batch: &[WriteOp<C>]) -> Result<(), redb::Error> {
    let tx = db.begin_write()?;
    {
        let mut log = tx.open_table(LOG_TABLE)?;
        let mut meta = tx.open_table(META_TABLE)?;
        for op in batch {
            match op {
                WriteOp::Append { entries, .. } => {
                    for (index, bytes) in entries {
                        log.insert(*index, bytes.as_slice())?;
                    }
                }
                WriteOp::Meta { key, bytes, .. } => {
                    meta.insert(*key, bytes.as_slice())?;
                }
                WriteOp::Truncate { from, .. } => {
                    log.retain_in(*from.., |_, _| false)?;
                }
                WriteOp::Purge { upto, last_purged, .. } => {
                    // The purge point and the deletion commit together, so a crash never
                    // leaves a log whose start is unknown.
                    meta.insert(META_LAST_PURGED, last_purged.as_slice())?;
                    log.retain_in(..=*upto, |_, _| false)?;
                }
            }
        }
    }
    tx.commit()?;
    Ok(())
}

fn encode_stored<T: Serialize>(value: &T) -> Result<Vec<u8>, redb::Error> {
    codec::encode_versioned(value).map_err(|e| redb::Error::Corrupted(format!("encode: {e}")))
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
    C::Entry: Serialize + DeserializeOwned + Clone,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        let Some(start) = bound_start(range.start_bound()) else { return Ok(Vec::new()) };
        let read = || -> Result<BTreeMap<u64, C::Entry>, redb::Error> {
            let tx = self.shared.db.begin_read()?;
            let table = tx.open_table(LOG_TABLE)?;
            let mut entries = BTreeMap::new();
            for item in table.range(start..)? {
                let (index, bytes) = item?;
                if !range.contains(&index.value()) {
                    break;
                }
                let entry: C::Entry = codec::decode_versioned(bytes.value(), STORED_VALUE_MAX_BYTES)
                    .map_err(|e| redb::Error::Corrupted(format!("log entry {}: {e}", index.value())))?;
                entries.insert(index.value(), entry);
            }
            Ok(entries)
        };
        // Take the overlay after reading the disk: an entry the writer commits and drops
        // from the overlay in between is then on disk already.
        let mut entries = read().map_err(|e| StorageIOError::read_logs(&e))?;
        for (index, (_, entry)) in self.overlay().range(start..) {
            if !range.contains(index) {
                break;
            }
            entries.insert(*index, entry.clone());
        }
        Ok(entries.into_values().collect())
    }
}

impl<C> RaftLogStorage<C> for RedbLogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned + Clone,
{
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        let read = || -> Result<LogState<C>, redb::Error> {
            let last_purged_log_id: Option<LogId<C::NodeId>> = self.read_meta(META_LAST_PURGED)?;
            let tx = self.shared.db.begin_read()?;
            let table = tx.open_table(LOG_TABLE)?;
            let last_on_disk = match table.last()? {
                Some((index, bytes)) => {
                    let entry: C::Entry = codec::decode_versioned(bytes.value(), STORED_VALUE_MAX_BYTES)
                        .map_err(|e| redb::Error::Corrupted(format!("log entry {}: {e}", index.value())))?;
                    Some(openraft::RaftLogId::get_log_id(&entry).clone())
                }
                None => None,
            };
            let last_pending =
                self.overlay().values().next_back().map(|(_, e)| openraft::RaftLogId::get_log_id(e).clone());
            let last_in_log = match (last_on_disk, last_pending) {
                (Some(disk), Some(pending)) => Some(if pending.index >= disk.index { pending } else { disk }),
                (disk, pending) => disk.or(pending),
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
        let bytes = encode_stored(vote).map_err(|e| StorageIOError::write_vote(&e))?;
        self.write_and_wait(|done| WriteOp::Meta { key: META_VOTE, bytes, done: Some(done) })
            .await
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        self.read_meta(META_VOTE).map_err(|e| StorageIOError::read_vote(&e).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId<C::NodeId>>) -> Result<(), StorageError<C::NodeId>> {
        let bytes = encode_stored(&committed).map_err(|e| StorageIOError::write(&e))?;
        self.enqueue(WriteOp::Meta { key: META_COMMITTED, bytes, done: None })
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
        let seq = self.shared.next_seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut encoded = Vec::new();
        let mut readable = Vec::new();
        for entry in entries {
            let index = openraft::RaftLogId::get_log_id(&entry).index;
            let bytes = encode_stored(&entry).map_err(|e| StorageIOError::write_logs(&e))?;
            encoded.push((index, bytes));
            readable.push((index, entry));
        }
        // Readable from now on; durable (and acknowledged to openraft) after the commit.
        {
            let mut overlay = self.overlay();
            for (index, entry) in readable {
                overlay.insert(index, (seq, entry));
            }
        }
        self.enqueue(WriteOp::Append { seq, entries: encoded, callback })
            .await
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let from = log_id.index;
        self.overlay().retain(|index, _| *index < from);
        self.write_and_wait(|done| WriteOp::Truncate { from, done })
            .await
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let upto = log_id.index;
        let last_purged = encode_stored(&log_id).map_err(|e| StorageIOError::write_logs(&e))?;
        self.write_and_wait(|done| WriteOp::Purge { upto, last_purged, done })
            .await
            .map_err(|e| StorageIOError::<C::NodeId>::write_logs(&e))?;
        // Purged entries are committed ones, long written; drop any stale overlay copy.
        self.overlay().retain(|index, _| *index > upto);
        Ok(())
    }
}
