//! openraft's state machine around an application state (the routing core in production).
//!
//! The application state lives in memory; durability comes from the Raft log plus the latest
//! snapshot, which is kept in the node's redb file. On start the store restores the state from
//! that snapshot, and openraft re-applies the committed log entries after it (the committed
//! log id is persisted by the log store). A snapshot is the application's own bytes
//! ([`ReplicatedState::snapshot_bytes`]); openraft's snapshot metadata (last applied log id and
//! membership) travels beside them.

use std::fmt::Debug;
use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use lineup_core::codec::{self, CodecError};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, RaftTypeConfig, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use redb::{Database, ReadableDatabase, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
#[error("the node's database has been released (node stopped)")]
struct ClosedDatabase;

/// The current snapshot (one row, key [`SNAPSHOT_KEY`]).
pub(crate) const SNAPSHOT_TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshot");
pub(crate) const SNAPSHOT_KEY: &str = "current";

/// The application state that Raft replicates. `apply` must be deterministic: every node
/// applies the same commands in the same order and must reach the same state.
pub trait ReplicatedState: Send + Sync + 'static {
    type Command: Clone + Debug + Send + Sync + Serialize + DeserializeOwned + 'static;
    type Output: Clone + Debug + Send + Sync + Serialize + DeserializeOwned + 'static;

    fn apply(&mut self, log_index: u64, command: &Self::Command) -> Self::Output;
    fn snapshot_bytes(&self) -> Vec<u8>;
    /// Replace the whole state with one rebuilt from `snapshot_bytes` output.
    fn restore(&mut self, bytes: &[u8]) -> Result<(), CodecError>;
}

/// What the snapshot table holds: openraft's metadata and the application's bytes.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct StoredSnapshot<C: RaftTypeConfig> {
    meta: SnapshotMeta<C::NodeId, C::Node>,
    data: Vec<u8>,
}

/// The snapshot table's value for `meta` and the application's `data`, as the store writes
/// it (a restore from a backup writes one before the node first starts).
pub(crate) fn encode_stored_snapshot<C: RaftTypeConfig>(
    meta: SnapshotMeta<C::NodeId, C::Node>,
    data: Vec<u8>,
) -> Result<Vec<u8>, CodecError> {
    codec::encode_versioned(&StoredSnapshot::<C> { meta, data })
}

/// The in-memory state plus what openraft needs to know about it.
pub struct AppliedState<C: RaftTypeConfig, S> {
    pub app: S,
    pub last_applied: Option<LogId<C::NodeId>>,
    pub membership: StoredMembership<C::NodeId, C::Node>,
}

struct Shared<C: RaftTypeConfig, S> {
    state: RwLock<AppliedState<C, S>>,
    /// Taken out by [`StateMachineStore::release_database`] when the node stops, so the
    /// redb file lock is released even while clones of the store are still alive.
    db: Mutex<Option<Arc<Database>>>,
    /// Makes snapshot ids unique within this process run (two snapshots at the same log id).
    snapshot_serial: AtomicU64,
    /// Write snapshots on the calling task instead of a blocking-pool thread (in-memory
    /// databases under the simulator: no thread may race its paused clock).
    inline_io: bool,
}

/// openraft's `RaftStateMachine` (and snapshot builder) over a [`ReplicatedState`]. Clones
/// share the same state.
pub struct StateMachineStore<C: RaftTypeConfig, S> {
    shared: Arc<Shared<C, S>>,
}

impl<C: RaftTypeConfig, S> Clone for StateMachineStore<C, S> {
    fn clone(&self) -> Self {
        Self { shared: self.shared.clone() }
    }
}

fn read_err<C: RaftTypeConfig>(e: &(impl std::error::Error + 'static)) -> StorageError<C::NodeId> {
    StorageIOError::read_snapshot(None, e).into()
}

impl<C, S> StateMachineStore<C, S>
where
    C: RaftTypeConfig<
        D = S::Command,
        R = Option<S::Output>,
        SnapshotData = Cursor<Vec<u8>>,
        Entry = openraft::Entry<C>,
    >,
    S: ReplicatedState,
{
    /// Builds the store over `app` (an empty state) and restores the latest snapshot from
    /// `db`, if there is one.
    pub fn open(db: Arc<Database>, app: S) -> Result<Self, StorageError<C::NodeId>> {
        Self::open_mode(db, app, false)
    }

    /// Like [`StateMachineStore::open`], writing snapshots on the calling task (for an
    /// in-memory database under the deterministic simulator).
    pub fn open_inline(db: Arc<Database>, app: S) -> Result<Self, StorageError<C::NodeId>> {
        Self::open_mode(db, app, true)
    }

    fn open_mode(db: Arc<Database>, mut app: S, inline_io: bool) -> Result<Self, StorageError<C::NodeId>> {
        let stored = read_stored_snapshot::<C>(&db)?;
        let (last_applied, membership) = match &stored {
            Some(snapshot) => {
                app.restore(&snapshot.data).map_err(|e| read_err::<C>(&e))?;
                let index = snapshot.meta.last_log_id.as_ref().map(|id| id.index);
                tracing::info!(
                    snapshot_index = index.unwrap_or_default(),
                    bytes = snapshot.data.len(),
                    "snapshot: restored"
                );
                (snapshot.meta.last_log_id.clone(), snapshot.meta.last_membership.clone())
            }
            None => (None, StoredMembership::default()),
        };
        let state = AppliedState { app, last_applied, membership };
        Ok(Self {
            shared: Arc::new(Shared {
                state: RwLock::new(state),
                db: Mutex::new(Some(db)),
                snapshot_serial: AtomicU64::new(0),
                inline_io,
            }),
        })
    }

    /// Read access to the applied state (a stale read: whatever this node has applied).
    pub fn read(&self) -> RwLockReadGuard<'_, AppliedState<C, S>> {
        // A poisoned lock means an apply panicked halfway; the state is then untrustworthy
        // and continuing would diverge from the other sites, so panicking is the safe choice.
        self.shared.state.read().expect("state machine lock poisoned by a panic in apply")
    }

    fn database(&self) -> Result<Arc<Database>, StorageError<C::NodeId>> {
        let db = self.shared.db.lock().unwrap_or_else(|p| p.into_inner()).clone();
        db.ok_or_else(|| StorageIOError::read_state_machine(&ClosedDatabase).into())
    }

    /// Drops this store's handle on the database (call after Raft has stopped). The
    /// in-memory state stays readable; snapshot IO fails from now on.
    pub fn release_database(&self) {
        self.shared.db.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    fn write(&self) -> RwLockWriteGuard<'_, AppliedState<C, S>> {
        self.shared.state.write().expect("state machine lock poisoned by a panic in apply")
    }

    async fn persist_snapshot(&self, stored: StoredSnapshot<C>) -> Result<(), StorageError<C::NodeId>> {
        let signature = stored.meta.signature();
        let bytes = codec::encode_versioned(&stored)
            .map_err(|e| StorageError::from(StorageIOError::write_snapshot(Some(signature.clone()), &e)))?;
        let db = self.database()?;
        let write = move || {
            let tx = db.begin_write()?;
            tx.open_table(SNAPSHOT_TABLE)?.insert(SNAPSHOT_KEY, bytes.as_slice())?;
            tx.commit()?;
            Ok::<(), redb::Error>(())
        };
        let result = if self.shared.inline_io {
            write()
        } else {
            tokio::task::spawn_blocking(write)
                .await
                .unwrap_or_else(|join| Err(redb::Error::Corrupted(format!("snapshot writer failed: {join}"))))
        };
        result.map_err(|e| StorageIOError::write_snapshot(Some(signature), &e).into())
    }
}

fn read_stored_snapshot<C: RaftTypeConfig>(
    db: &Database,
) -> Result<Option<StoredSnapshot<C>>, StorageError<C::NodeId>> {
    let read = || -> Result<Option<StoredSnapshot<C>>, redb::Error> {
        let tx = db.begin_read()?;
        let table = tx.open_table(SNAPSHOT_TABLE)?;
        let Some(bytes) = table.get(SNAPSHOT_KEY)? else {
            return Ok(None);
        };
        let stored = codec::decode_versioned(bytes.value(), codec::DECODE_LIMIT_BYTES)
            .map_err(|e| redb::Error::Corrupted(format!("stored snapshot: {e}")))?;
        Ok(Some(stored))
    };
    read().map_err(|e| read_err::<C>(&e))
}

impl<C, S> RaftSnapshotBuilder<C> for StateMachineStore<C, S>
where
    C: RaftTypeConfig<
        D = S::Command,
        R = Option<S::Output>,
        SnapshotData = Cursor<Vec<u8>>,
        Entry = openraft::Entry<C>,
    >,
    S: ReplicatedState,
{
    async fn build_snapshot(&mut self) -> Result<Snapshot<C>, StorageError<C::NodeId>> {
        // Logged at info (a snapshot is rare: every `snapshot_every_entries`) so an operator,
        // and the chaos harness aiming a kill at the write, can tell when one is under way.
        let (data, last_log_id, last_membership) = {
            let state = self.read();
            let index = state.last_applied.as_ref().map(|id| id.index);
            tracing::info!(snapshot_index = index.unwrap_or_default(), "snapshot: building");
            (state.app.snapshot_bytes(), state.last_applied.clone(), state.membership.clone())
        };
        let index = last_log_id.as_ref().map(|id| id.index);
        let serial = self.shared.snapshot_serial.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match last_log_id {
            Some(ref log_id) => format!("{}-{}-{serial}", log_id.leader_id, log_id.index),
            None => format!("empty-{serial}"),
        };
        let meta = SnapshotMeta { last_log_id, last_membership, snapshot_id };
        tracing::info!(snapshot_index = index.unwrap_or_default(), bytes = data.len(), "snapshot: writing");
        self.persist_snapshot(StoredSnapshot { meta: meta.clone(), data: data.clone() }).await?;
        tracing::info!(snapshot_index = index.unwrap_or_default(), "snapshot: written");
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl<C, S> RaftStateMachine<C> for StateMachineStore<C, S>
where
    C: RaftTypeConfig<
        D = S::Command,
        R = Option<S::Output>,
        SnapshotData = Cursor<Vec<u8>>,
        Entry = openraft::Entry<C>,
    >,
    S: ReplicatedState,
{
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<C::NodeId>>, StoredMembership<C::NodeId, C::Node>), StorageError<C::NodeId>> {
        let state = self.read();
        Ok((state.last_applied.clone(), state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<C::R>, StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut outputs = Vec::new();
        let mut state = self.write();
        for entry in entries {
            let log_id = entry.log_id.clone();
            state.last_applied = Some(log_id.clone());
            match entry.payload {
                EntryPayload::Blank => outputs.push(None),
                EntryPayload::Normal(command) => outputs.push(Some(state.app.apply(log_id.index, &command))),
                EntryPayload::Membership(membership) => {
                    state.membership = StoredMembership::new(Some(log_id), membership);
                    outputs.push(None);
                }
            }
        }
        Ok(outputs)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<C::NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<C::NodeId, C::Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        let data = snapshot.into_inner();
        {
            let mut state = self.write();
            state
                .app
                .restore(&data)
                .map_err(|e| StorageError::from(StorageIOError::read_snapshot(Some(meta.signature()), &e)))?;
            state.last_applied = meta.last_log_id.clone();
            state.membership = meta.last_membership.clone();
        }
        self.persist_snapshot(StoredSnapshot { meta: meta.clone(), data }).await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<C>>, StorageError<C::NodeId>> {
        let db = self.database()?;
        let stored = read_stored_snapshot::<C>(&db)?;
        Ok(stored.map(|s| Snapshot { meta: s.meta, snapshot: Box::new(Cursor::new(s.data)) }))
    }
}
