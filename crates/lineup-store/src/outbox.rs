//! The outbox: a local durable queue, keyed by log index, between a node's apply stream and
//! the places history goes (the database, the queue_log file).
//!
//! # Why routing never waits
//!
//! The apply side calls [`Outbox::submit`] with each applied entry. Submit is a push onto a
//! bounded in-memory queue ([`OUTBOX_PENDING_MAX_ENTRIES`]) guarded by a mutex that nobody
//! holds across IO in the normal path; a dedicated writer thread takes everything queued,
//! writes it to a redb file in one transaction (one fsync for the whole group) and tells the
//! drainers. Nothing on this path touches the database: a PostgreSQL outage only makes the
//! redb file grow.
//!
//! # When the queue is full
//!
//! Dropping an entry would lose history, and blocking on the queue would tie routing to
//! the writer. Instead, a submit that finds the queue full writes the queued entries and
//! its own to the redb file itself, synchronously: it waits at most for the writer's
//! in-flight commit and one commit of its own, both local disk, never the database. The
//! queue can only fill when the local disk is slower than the apply rate, and the Raft log
//! on the same disk fsyncs every entry anyway, so this path costs routing no more than its
//! own log already does. Commits happen in log order (the writer takes its group and the
//! commit lock while holding the queue lock), so the file only ever holds a prefix of what
//! was submitted, and a drainer never skips an entry that is still in memory.
//!
//! If the local disk itself fails, the writer retries its group (holding the commit lock,
//! to keep that order) and reports the error ([`Outbox::write_error`]); submits keep
//! queueing until the queue is full, then wait on that disk. The Raft log lives on the same
//! disk, so such a node is not applying anything anyway. redb refuses every transaction
//! after one failed write until the database is closed and opened again, so before each
//! retry the writer reopens the file (a full disk that was freed works again at once); a
//! drainer or a lag read meanwhile gets an error and retries.
//!
//! # Draining
//!
//! Each sink ([`OutboxSink`]: the history database, the queue_log file) has a drainer task
//! and a cursor stored in the same redb file. A drainer reads up to
//! [`DRAIN_BATCH_MAX_ENTRIES`] past its cursor, delivers them, and on success moves its
//! cursor; an entry is deleted once every declared sink's cursor has passed it, so nothing
//! leaves the file before the database transaction that holds it has committed. Failures
//! are retried with jittered exponential backoff ([`DRAIN_RETRY_MIN_MS`] to
//! [`DRAIN_RETRY_MAX_MS`]); sinks are idempotent by log index, so a delivery repeated after a
//! crash writes nothing twice.
//!
//! # Inline mode, for the simulator
//!
//! [`Outbox::open_inline`] keeps the file in memory, writes each submit before it returns
//! (no writer thread), lets drainers read and write the file on their own task (no blocking
//! pool) and draws retry jitter from a seed: under the simulator's paused tokio clock no
//! other thread may run, or a seed would not replay. Cursors, deletion and the replay
//! guard are the same code.
//!
//! # Restarts
//!
//! The outbox remembers the highest index it accepted; after a restart the node re-applies
//! its log past the last snapshot and re-submits those entries, and submit ignores every
//! index it already holds or has delivered.

use std::collections::VecDeque;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use lineup_core::{codec, Effect};
use lineup_util::jitter;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use tokio::sync::watch;

use crate::error::StoreError;

/// Entries queued in memory for the writer thread before submit writes them itself.
pub const OUTBOX_PENDING_MAX_ENTRIES: usize = 4_096;
/// Most entries one drainer delivers in one batch (one database transaction).
pub const DRAIN_BATCH_MAX_ENTRIES: usize = 256;
/// First retry delay after a failed delivery; doubles per failure up to the maximum.
pub const DRAIN_RETRY_MIN_MS: u64 = 100;
pub const DRAIN_RETRY_MAX_MS: u64 = 10_000;
/// How often an idle drainer lets its sink do housekeeping (e.g. mirror a changed config).
pub const DRAIN_IDLE_HOUSEKEEPING_MS: u64 = 500;
/// Pause of the writer thread after a failed local write before it tries again.
pub const WRITER_RETRY_MS: u64 = 200;
/// Most sinks one outbox serves.
pub const OUTBOX_SINKS_MAX: usize = 8;

const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox_entries");
const META: TableDefinition<&str, u64> = TableDefinition::new("outbox_meta");
const ACCEPTED_THROUGH: &str = "accepted_through";

fn cursor_key(sink: &str) -> String {
    format!("cursor:{sink}")
}

/// One applied log entry as history sees it: its index and all of its effects (positions
/// matter: a row's key is the effect's position in its entry).
pub type AppliedEntry = (u64, Vec<Effect>);

/// What [`Outbox::submit`] did with an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    /// Queued for the writer thread.
    Queued,
    /// The queue was full: written to the outbox file before returning.
    WrittenSynchronously,
    /// Not history (no call records, queue_log lines or operator changes): nothing to keep.
    NothingToKeep,
    /// At or below an index already accepted (a replay after a restart): ignored.
    AlreadyAccepted,
}

/// How far history trails the apply stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxLag {
    /// Entries in the outbox file not yet delivered to every sink.
    pub entries: u64,
    /// Oldest of those (None when the file is empty).
    pub oldest_index: Option<u64>,
    pub newest_index: Option<u64>,
    /// Entries still in memory, on their way to the file (0 means everything submitted is
    /// in the file).
    pub pending: usize,
    /// Submits that found the queue full and wrote the file themselves, since open.
    pub synchronous_writes: u64,
}

struct Pending {
    queue: VecDeque<AppliedEntry>,
    /// Highest index accepted (queued or written); submits at or below are replays.
    accepted_through: u64,
    closed: bool,
}

/// Opens the outbox's database again after a failed write ([`Outbox::open_with`]).
pub type DatabaseOpener = Box<dyn Fn() -> Result<Database, StoreError> + Send + Sync>;

struct Shared {
    /// `None` while the writer reopens it after a failed write.
    db: RwLock<Option<Arc<Database>>>,
    /// How to open the database again; `None` for a database the caller keeps (inline mode).
    reopen: Option<DatabaseOpener>,
    pending: Mutex<Pending>,
    wake_writer: Condvar,
    /// Held across each commit of new entries, taken while holding `pending`, so commits
    /// happen in log order.
    commit_order: Mutex<()>,
    /// Highest index durably in the file; drainers wait on changes.
    persisted_through: watch::Sender<u64>,
    sinks: Vec<String>,
    synchronous_writes: AtomicU64,
    pending_capacity_entries: usize,
    /// Entries the writer took from the queue and has not committed yet (set under the
    /// `pending` lock, cleared after the commit), so lag never hides them.
    in_flight: AtomicUsize,
    /// Inline mode (module docs): no writer thread, no blocking pool, seeded jitter.
    inline: bool,
    /// The inline mode's jitter generator state (xorshift).
    jitter_state: Mutex<u64>,
    /// Error of the last failed local write while the writer retries it. Its own lock (and
    /// `closing`): the writer must not take `pending` while holding `commit_order`.
    write_error: Mutex<Option<String>>,
    closing: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// The database, or an error while the writer is reopening it.
    fn db(&self) -> Result<Arc<Database>, StoreError> {
        let db = self.db.read().unwrap_or_else(PoisonError::into_inner).clone();
        db.ok_or_else(|| StoreError::Outbox("the outbox file is being reopened after a failed write".into()))
    }

    /// After a failed write redb refuses every transaction until the database is opened
    /// again. Closes it and opens it again; if that fails (the disk still full) the next
    /// retry tries again. A reader holding the old handle for a moment makes the open fail
    /// too (the file is still open), and the next retry succeeds.
    fn reopen_after_failed_write(&self) {
        let Some(open) = &self.reopen else { return };
        let mut slot = self.db.write().unwrap_or_else(PoisonError::into_inner);
        drop(slot.take());
        match open() {
            Ok(db) => {
                tracing::info!("outbox file reopened after a failed write");
                *slot = Some(Arc::new(db));
            }
            Err(e) => tracing::warn!(error = %e, "outbox file cannot be reopened yet"),
        }
    }

    /// Appends entries to the file in one transaction (the caller holds `commit_order`).
    fn write_entries(&self, entries: &[AppliedEntry]) -> Result<(), StoreError> {
        let Some(last) = entries.last().map(|(index, _)| *index) else { return Ok(()) };
        let tx = self.db()?.begin_write()?;
        {
            let mut table = tx.open_table(ENTRIES)?;
            for (index, effects) in entries {
                let bytes = codec::encode_versioned(effects).map_err(|e| StoreError::Encode(e.to_string()))?;
                table.insert(*index, bytes.as_slice())?;
            }
            let mut meta = tx.open_table(META)?;
            let previous = meta.get(ACCEPTED_THROUGH)?.map_or(0, |v| v.value());
            meta.insert(ACCEPTED_THROUGH, previous.max(last))?;
        }
        tx.commit()?;
        self.persisted_through.send_modify(|p| *p = (*p).max(last));
        Ok(())
    }

    fn writer_loop(&self) {
        loop {
            let (batch, _order) = {
                let mut pending = lock(&self.pending);
                while pending.queue.is_empty() && !pending.closed {
                    pending = self.wake_writer.wait(pending).unwrap_or_else(PoisonError::into_inner);
                }
                if pending.queue.is_empty() {
                    return;
                }
                let batch: Vec<AppliedEntry> = pending.queue.drain(..).collect();
                self.in_flight.store(batch.len(), Ordering::Release);
                (batch, lock(&self.commit_order))
            };
            // Retry the same group while holding the commit lock: a later group must never
            // reach the file before this one (the module docs explain why). Only the local
            // disk can fail here; a submit that finds the queue full waits for it meanwhile.
            loop {
                match self.write_entries(&batch) {
                    Ok(()) => {
                        self.in_flight.store(0, Ordering::Release);
                        *lock(&self.write_error) = None;
                        break;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, entries = batch.len(), "outbox write failed; retrying");
                        *lock(&self.write_error) = Some(e.to_string());
                        if self.closing.load(Ordering::Acquire) {
                            tracing::error!(entries = batch.len(), "outbox closed with a failing disk");
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(WRITER_RETRY_MS));
                        self.reopen_after_failed_write();
                    }
                }
            }
        }
    }

    /// A retry delay in [base/2, base]: from the clock's nanoseconds, or in inline mode from
    /// the seeded generator.
    fn jittered(&self, base_ms: u64) -> Duration {
        if !self.inline {
            return jittered(base_ms);
        }
        seeded_jitter(&mut lock(&self.jitter_state), base_ms)
    }

    fn read_after(&self, cursor: u64, max: usize) -> Result<Vec<AppliedEntry>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let table = tx.open_table(ENTRIES)?;
        let mut out = Vec::new();
        for item in table.range((cursor + 1)..)?.take(max) {
            let (key, value) = item?;
            let index = key.value();
            let effects: Vec<Effect> = codec::decode_versioned(value.value(), codec::DECODE_LIMIT_BYTES)
                .map_err(|e| StoreError::OutboxDecode { index, reason: e.to_string() })?;
            out.push((index, effects));
        }
        Ok(out)
    }

    fn cursor(&self, sink: &str) -> Result<u64, StoreError> {
        let tx = self.db()?.begin_read()?;
        let meta = tx.open_table(META)?;
        Ok(meta.get(cursor_key(sink).as_str())?.map_or(0, |v| v.value()))
    }

    /// Records a sink's progress and deletes what every sink has.
    fn advance_cursor(&self, sink: &str, delivered_through: u64) -> Result<(), StoreError> {
        let tx = self.db()?.begin_write()?;
        {
            let mut meta = tx.open_table(META)?;
            meta.insert(cursor_key(sink).as_str(), delivered_through)?;
            let mut everyone = u64::MAX;
            for name in &self.sinks {
                everyone = everyone.min(meta.get(cursor_key(name).as_str())?.map_or(0, |v| v.value()));
            }
            let mut table = tx.open_table(ENTRIES)?;
            table.retain_in(..=everyone, |_, _| false)?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// A place drained entries go. Deliveries must be idempotent by log index: after a crash
/// between a delivery and the cursor update, the same entries come again.
pub trait OutboxSink: Send + 'static {
    /// Delivers entries (increasing log index). Ok means they are durable in the sink.
    fn deliver(&mut self, entries: &[AppliedEntry]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Called when the drainer is idle, every [`DRAIN_IDLE_HOUSEKEEPING_MS`].
    fn housekeeping(&mut self) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }
}

/// The local durable queue. See the module docs.
pub struct Outbox {
    shared: Arc<Shared>,
    writer: Option<std::thread::JoinHandle<()>>,
}

/// Opens the redb file. redb 4.5 panics on some damaged files instead of returning an error
/// (found by fuzzing: one changed byte in the allocator state); a damaged outbox must stop
/// the node with a clear error, never a panic. redb trusts a cleanly closed file, and a
/// damaged one can make the first write panic inside a destructor while unwinding, which
/// aborts the process whatever catches the panic (found by fuzzing too): so every page is
/// checked before anything is written (`check_integrity`; the outbox is bounded, and this
/// runs at start and at each reopen after a failed write).
fn create_database(path: &Path) -> Result<Database, StoreError> {
    let damaged = || StoreError::Outbox(format!("{} is damaged: its database could not be read", path.display()));
    let opened = std::panic::catch_unwind(|| -> Result<Database, StoreError> {
        let mut db = Database::create(path)?;
        match db.check_integrity() {
            Ok(true) => {}
            Ok(false) => tracing::warn!(path = %path.display(), "outbox file was damaged and repaired by redb"),
            Err(_) => return Err(damaged()),
        }
        Ok(db)
    });
    opened.unwrap_or_else(|_| Err(damaged()))
}

impl Outbox {
    /// Opens (or creates) the outbox file. `sinks` names every sink that drains it: an entry
    /// is deleted only once all of them have it.
    pub fn open(path: impl AsRef<Path>, sinks: &[&str]) -> Result<Self, StoreError> {
        Self::open_with_pending_capacity(path, sinks, OUTBOX_PENDING_MAX_ENTRIES)
    }

    /// [`Outbox::open`] with a smaller in-memory queue (at least 1, at most
    /// [`OUTBOX_PENDING_MAX_ENTRIES`]): less memory, more submits that write the file
    /// themselves.
    pub fn open_with_pending_capacity(
        path: impl AsRef<Path>,
        sinks: &[&str],
        pending_capacity_entries: usize,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        Self::open_with(Box::new(move || create_database(&path)), sinks, pending_capacity_entries)
    }

    /// [`Outbox::open_with_pending_capacity`] over whatever database `open` opens (a file, or
    /// another redb storage backend): it is called once now and again after each failed
    /// write, so it must open the same storage every time.
    pub fn open_with(
        open: DatabaseOpener,
        sinks: &[&str],
        pending_capacity_entries: usize,
    ) -> Result<Self, StoreError> {
        let db = Arc::new(open()?);
        Self::open_database(db, Some(open), sinks, pending_capacity_entries, None)
    }

    /// An outbox in inline mode (module docs) over `db`, an in-memory database the caller
    /// keeps across restarts ([`Outbox::memory_database`]); retry jitter is drawn from
    /// `jitter_seed`. For the deterministic simulator.
    pub fn open_inline(db: Arc<Database>, sinks: &[&str], jitter_seed: u64) -> Result<Self, StoreError> {
        Self::open_database(db, None, sinks, 1, Some(jitter_seed))
    }

    /// A fresh in-memory database for [`Outbox::open_inline`].
    pub fn memory_database() -> Result<Arc<Database>, StoreError> {
        Ok(Arc::new(redb::Builder::new().create_with_backend(redb::backends::InMemoryBackend::new())?))
    }

    fn open_database(
        db: Arc<Database>,
        reopen: Option<DatabaseOpener>,
        sinks: &[&str],
        pending_capacity_entries: usize,
        inline_jitter_seed: Option<u64>,
    ) -> Result<Self, StoreError> {
        let pending_capacity_entries = pending_capacity_entries.clamp(1, OUTBOX_PENDING_MAX_ENTRIES);
        if sinks.is_empty() || sinks.len() > OUTBOX_SINKS_MAX {
            return Err(StoreError::Outbox(format!("an outbox needs 1 to {OUTBOX_SINKS_MAX} sinks")));
        }
        let (accepted_through, newest) = {
            let tx = db.begin_write()?;
            let found = {
                let meta = tx.open_table(META)?;
                let table = tx.open_table(ENTRIES)?;
                let accepted = meta.get(ACCEPTED_THROUGH)?.map_or(0, |v| v.value());
                let newest = table.last()?.map_or(0, |(k, _)| k.value());
                (accepted, newest)
            };
            tx.commit()?;
            found
        };
        let shared = Arc::new(Shared {
            db: RwLock::new(Some(db)),
            reopen,
            pending: Mutex::new(Pending { queue: VecDeque::new(), accepted_through, closed: false }),
            wake_writer: Condvar::new(),
            commit_order: Mutex::new(()),
            persisted_through: watch::Sender::new(newest.max(accepted_through)),
            sinks: sinks.iter().map(|s| s.to_string()).collect(),
            synchronous_writes: AtomicU64::new(0),
            pending_capacity_entries,
            in_flight: AtomicUsize::new(0),
            inline: inline_jitter_seed.is_some(),
            // xorshift must not start at zero.
            jitter_state: Mutex::new(inline_jitter_seed.unwrap_or(0) | 1),
            write_error: Mutex::new(None),
            closing: AtomicBool::new(false),
        });
        if shared.inline {
            return Ok(Self { shared, writer: None });
        }
        let writer_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("lineup-outbox-writer".into())
            .spawn(move || writer_shared.writer_loop())
            .map_err(|e| StoreError::Outbox(format!("cannot start the writer thread: {e}")))?;
        Ok(Self { shared, writer: Some(writer) })
    }

    /// Hands over one applied entry. Never waits on the database; see the module docs for
    /// what happens when the in-memory queue is full. Entries must come in increasing log
    /// order (gaps are fine); anything at or below an accepted index is ignored.
    pub fn submit(&self, apply_index: u64, effects: Vec<Effect>) -> Result<Submitted, StoreError> {
        let mut pending = lock(&self.shared.pending);
        if pending.closed {
            return Err(StoreError::OutboxClosed);
        }
        if apply_index <= pending.accepted_through {
            return Ok(Submitted::AlreadyAccepted);
        }
        if !effects.iter().any(Effect::is_history) {
            return Ok(Submitted::NothingToKeep);
        }
        if !self.shared.inline && pending.queue.len() < self.shared.pending_capacity_entries {
            pending.queue.push_back((apply_index, effects));
            pending.accepted_through = apply_index;
            drop(pending);
            self.shared.wake_writer.notify_one();
            return Ok(Submitted::Queued);
        }
        // Full: write everything queued plus this entry now, in order (module docs).
        let _order = lock(&self.shared.commit_order);
        let mut batch: Vec<AppliedEntry> = pending.queue.drain(..).collect();
        batch.push((apply_index, effects));
        match self.shared.write_entries(&batch) {
            Ok(()) => {
                pending.accepted_through = apply_index;
                if self.shared.inline {
                    return Ok(Submitted::Queued);
                }
                self.shared.synchronous_writes.fetch_add(1, Ordering::Relaxed);
                Ok(Submitted::WrittenSynchronously)
            }
            Err(e) => {
                // Keep what was queued (the writer retries it); this entry was not accepted.
                batch.pop();
                pending.queue.extend(batch);
                Err(e)
            }
        }
    }

    /// Entries not yet delivered to every sink.
    pub fn lag(&self) -> Result<OutboxLag, StoreError> {
        let pending = lock(&self.shared.pending).queue.len() + self.shared.in_flight.load(Ordering::Acquire);
        let tx = self.shared.db()?.begin_read()?;
        let table = tx.open_table(ENTRIES)?;
        let entries = table.len()?;
        let oldest_index = table.first()?.map(|(k, _)| k.value());
        let newest_index = table.last()?.map(|(k, _)| k.value());
        Ok(OutboxLag {
            entries,
            oldest_index,
            newest_index,
            pending,
            synchronous_writes: self.shared.synchronous_writes.load(Ordering::Relaxed),
        })
    }

    /// The error of the last failed local write while the writer retries it.
    pub fn write_error(&self) -> Option<String> {
        lock(&self.shared.write_error).clone()
    }

    /// Starts the drainer task of a declared sink (one per sink at a time).
    pub fn spawn_drainer<S: OutboxSink>(&self, name: &str, sink: S) -> Result<Drainer, StoreError> {
        if !self.shared.sinks.iter().any(|s| s == name) {
            return Err(StoreError::UnknownSink { name: name.to_string() });
        }
        let cursor = self.shared.cursor(name)?;
        let status = Arc::new(Mutex::new(DrainerStatus { delivered_through: cursor, ..DrainerStatus::default() }));
        let (stop_tx, stop_rx) = watch::channel(false);
        let run = DrainerRun {
            shared: self.shared.clone(),
            name: name.to_string(),
            cursor,
            status: status.clone(),
            stop: stop_rx,
        };
        let task = tokio::spawn(run.run(sink));
        Ok(Drainer { status, stop: stop_tx, task: Some(task) })
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        lock(&self.shared.pending).closed = true;
        self.shared.closing.store(true, Ordering::Release);
        self.shared.wake_writer.notify_all();
        if let Some(writer) = self.writer.take() {
            // The writer flushes what is queued before it exits.
            let _ = writer.join();
        }
    }
}

/// Health of one drainer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DrainerStatus {
    /// Highest log index delivered to the sink.
    pub delivered_through: u64,
    /// Failed deliveries in a row (0 when healthy).
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
}

/// A running drainer. Dropping it aborts the task; [`Drainer::stop`] lets the current
/// delivery finish first. Either way undelivered entries stay in the outbox.
pub struct Drainer {
    status: Arc<Mutex<DrainerStatus>>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drainer {
    pub fn status(&self) -> DrainerStatus {
        lock(&self.status).clone()
    }

    /// Stops after the current delivery.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Drainer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

struct DrainerRun {
    shared: Arc<Shared>,
    name: String,
    cursor: u64,
    status: Arc<Mutex<DrainerStatus>>,
    stop: watch::Receiver<bool>,
}

/// A delay in [base/2, base] drawn from a xorshift generator `state` (never zero): the
/// simulator's seeded retry jitter, here and in the projection.
pub(crate) fn seeded_jitter(state: &mut u64, base_ms: u64) -> Duration {
    Duration::from_millis(jitter::seeded_jitter_ms(state, base_ms))
}

/// A delay in [base/2, base] so drainers of several sites do not retry in step.
pub(crate) fn jittered(base_ms: u64) -> Duration {
    Duration::from_millis(jitter::clock_jitter_ms(base_ms))
}

impl DrainerRun {
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Shared) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let shared = self.shared.clone();
        if shared.inline {
            return f(&shared);
        }
        tokio::task::spawn_blocking(move || f(&shared))
            .await
            .map_err(|e| StoreError::Outbox(format!("outbox task failed: {e}")))?
    }

    /// Waits for `d` or a stop request; true when asked to stop.
    async fn pause(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => *self.stop.borrow(),
            _ = self.stop.changed() => true,
        }
    }

    async fn run<S: OutboxSink>(mut self, mut sink: S) {
        let mut persisted = self.shared.persisted_through.subscribe();
        let mut retry_ms = DRAIN_RETRY_MIN_MS;
        loop {
            if *self.stop.borrow() {
                return;
            }
            // Seen before reading, so a write landing after the read still wakes us.
            persisted.borrow_and_update();
            let cursor = self.cursor;
            let batch = match self.blocking(move |s| s.read_after(cursor, DRAIN_BATCH_MAX_ENTRIES)).await {
                Ok(batch) => batch,
                Err(e) => {
                    self.failed(&e);
                    if self.pause(self.shared.jittered(retry_ms)).await {
                        return;
                    }
                    retry_ms = (retry_ms * 2).min(DRAIN_RETRY_MAX_MS);
                    continue;
                }
            };
            let Some(last) = batch.last().map(|(index, _)| *index) else {
                if let Err(e) = sink.housekeeping().await {
                    self.failed(&e);
                }
                tokio::select! {
                    _ = persisted.changed() => {}
                    _ = tokio::time::sleep(Duration::from_millis(DRAIN_IDLE_HOUSEKEEPING_MS)) => {}
                    _ = self.stop.changed() => return,
                }
                continue;
            };
            let delivered = match sink.deliver(&batch).await {
                Ok(()) => {
                    // The sink holds the batch now: say so before the cursor moves, or a
                    // health read could find the outbox empty and this sink behind it.
                    lock(&self.status).delivered_through = last;
                    let name = self.name.clone();
                    self.blocking(move |s| s.advance_cursor(&name, last)).await
                }
                Err(e) => Err(e),
            };
            match delivered {
                Ok(()) => {
                    self.cursor = last;
                    retry_ms = DRAIN_RETRY_MIN_MS;
                    let mut status = lock(&self.status);
                    status.consecutive_failures = 0;
                    status.last_error = None;
                }
                Err(e) => {
                    self.failed(&e);
                    if self.pause(self.shared.jittered(retry_ms)).await {
                        return;
                    }
                    retry_ms = (retry_ms * 2).min(DRAIN_RETRY_MAX_MS);
                }
            }
        }
    }

    fn failed(&self, e: &StoreError) {
        tracing::warn!(sink = %self.name, error = %e, "outbox delivery failed; will retry");
        let mut status = lock(&self.status);
        status.consecutive_failures = status.consecutive_failures.saturating_add(1);
        status.last_error = Some(e.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_half_to_full_base() {
        for base in [1, 2, 100, DRAIN_RETRY_MAX_MS] {
            let d = jittered(base).as_millis() as u64;
            assert!(d >= base / 2 && d <= base, "{d} for {base}");
        }
    }
}
