//! The outbox on a disk that fills and is freed again: redb refuses every transaction after
//! one failed write until the database is opened again, so an outbox that only retried kept
//! failing after the disk had room (found by the real-process harness: a site's history
//! stopped for good after a 5 s full disk). Nothing submitted is lost, and everything
//! arrives once the disk has room.

mod common;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use lineup_core::{Effect, QueueLogEntry, QueueLogVerb};
use lineup_store::outbox::OUTBOX_PENDING_MAX_ENTRIES;
use lineup_store::{Outbox, QueueLogFile, QueueLogSink, StoreError, SINK_QUEUE_LOG};
use redb::backends::InMemoryBackend;
use redb::StorageBackend;

/// One in-memory disk that every reopen of the outbox sees, full while `full` is set.
#[derive(Debug, Clone)]
struct SharedDisk {
    bytes: Arc<InMemoryBackend>,
    full: Arc<AtomicBool>,
}

impl SharedDisk {
    fn refuse_when_full(&self) -> io::Result<()> {
        if self.full.load(Ordering::SeqCst) {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "no space left on device"));
        }
        Ok(())
    }
}

impl StorageBackend for SharedDisk {
    fn len(&self) -> io::Result<u64> {
        self.bytes.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.bytes.read(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        if len > self.bytes.len()? {
            self.refuse_when_full()?;
        }
        self.bytes.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.refuse_when_full()?;
        self.bytes.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.refuse_when_full()?;
        self.bytes.write(offset, data)
    }
}

fn line(i: u64) -> Effect {
    Effect::QueueLog(QueueLogEntry {
        at_ms: 1_732_250_000_000 + i * 1000,
        call: Some(lineup_core::CallId::new(format!("a-{i}"))),
        queue: Some(lineup_core::QueueId::new("sales")),
        gate: None,
        agent: None,
        verb: QueueLogVerb::EnterQueue,
        data: vec![String::new(), "5551234".into(), "1".into()],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_filled_and_was_freed_takes_the_outbox_writes_again() {
    let disk = SharedDisk { bytes: Arc::new(InMemoryBackend::new()), full: Arc::new(AtomicBool::new(false)) };
    let opened_on = disk.clone();
    let open = Box::new(move || {
        redb::Builder::new().create_with_backend(opened_on.clone()).map_err(|e| StoreError::Outbox(e.to_string()))
    });
    let outbox = Outbox::open_with(open, &[SINK_QUEUE_LOG], OUTBOX_PENDING_MAX_ENTRIES).unwrap();
    for i in 1..=3 {
        outbox.submit(i, vec![line(i)]).unwrap();
    }
    poll("written before the disk fills", || async { (outbox.lag().ok()?.newest_index == Some(3)).then_some(()) })
        .await;

    disk.full.store(true, Ordering::SeqCst);
    for i in 4..=6 {
        outbox.submit(i, vec![line(i)]).unwrap();
    }
    poll("the writer reports the full disk", || async { outbox.write_error() }).await;

    disk.full.store(false, Ordering::SeqCst);
    poll("written once the disk has room", || async {
        (outbox.write_error().is_none() && outbox.lag().ok()?.newest_index == Some(6)).then_some(())
    })
    .await;

    let dir = TempDir::new();
    let sink = QueueLogSink::new(QueueLogFile::open(dir.path("queue_log")).unwrap());
    let drainer = outbox.spawn_drainer(SINK_QUEUE_LOG, sink.clone()).unwrap();
    poll("everything drained", || async { (outbox.lag().ok()?.entries == 0).then_some(()) }).await;
    drainer.stop().await;
    let lines = std::fs::read_to_string(dir.path("queue_log")).unwrap();
    assert_eq!(lines.lines().count(), 6, "every entry once, none lost to the full disk");
    assert_eq!(sink.last_index(), 6);
}
