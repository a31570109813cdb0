//! A member whose disk refuses a write (full, or failing) stops its Raft for good: openraft
//! treats any storage error as fatal. The node must say so, so that its binary exits and is
//! started again, rather than live on as a member that answers no peer while its site's
//! callers wait on it. The others keep committing meanwhile.

mod common;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use lineup_cluster::log_store::database_on_backend;
use lineup_cluster::NodeStorage;
use redb::backends::InMemoryBackend;
use redb::StorageBackend;

/// The failing member.
const FULL_SITE: u64 = 3;
/// Writes proposed while its disk is full; any one of them reaching it stops its Raft.
const WRITES_WHILE_FULL_COUNT: usize = 10;

/// An in-memory disk that can be filled: while full, every write and every growth fails
/// as the kernel's ENOSPC does.
#[derive(Debug)]
struct FillableDisk {
    inner: InMemoryBackend,
    full: Arc<AtomicBool>,
}

impl FillableDisk {
    fn refuse_if_full(&self) -> io::Result<()> {
        if self.full.load(Ordering::SeqCst) {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "no space left on device"));
        }
        Ok(())
    }
}

impl StorageBackend for FillableDisk {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        if len > self.inner.len()? {
            self.refuse_if_full()?;
        }
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.refuse_if_full()?;
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.refuse_if_full()?;
        self.inner.write(offset, data)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_disk_fills_says_its_raft_stopped_and_the_others_go_on() {
    let full = Arc::new(AtomicBool::new(false));
    let disk = FillableDisk { inner: InMemoryBackend::new(), full: Arc::clone(&full) };
    let full_db = database_on_backend(disk).unwrap();
    let cluster = memory_cluster("disk-full", &[1, 2, 3], move |mut config| {
        if config.site == FULL_SITE {
            config.storage = NodeStorage::Memory(Arc::clone(&full_db));
        }
        config
    })
    .await;
    let all: Vec<_> = cluster.nodes.values().collect();
    let leader = await_leader(&all).await;
    let committed = cluster.nodes[&leader].propose(queue_config("sales")).await.unwrap();
    await_applied_command(
        &cluster.nodes[&FULL_SITE],
        committed.apply_index.expect("a config change has an apply index"),
    )
    .await;
    let healthy = if leader == FULL_SITE { 1 } else { leader };

    full.store(true, Ordering::SeqCst);
    for n in 0..WRITES_WHILE_FULL_COUNT {
        // The full member may have led: its writes fail until the others elect anew.
        let _ = cluster.nodes[&healthy].propose(enqueue(&format!("while-full-{n}"), "sales", healthy)).await;
    }
    let why = tokio::time::timeout(WAIT, cluster.nodes[&FULL_SITE].raft_stopped())
        .await
        .expect("the member whose disk is full must report its Raft stopped");
    assert!(why.contains("no space left on device"), "the reason is the disk's: {why}");

    // The two others are a quorum and go on committing.
    let others: Vec<_> = cluster.nodes.iter().filter(|(s, _)| **s != FULL_SITE).map(|(_, n)| n).collect();
    let leader = await_leader(&others).await;
    let after = cluster.nodes[&leader].propose(enqueue("after", "sales", leader)).await.unwrap();
    assert!(after.result.is_ok(), "the others commit without the full member");
    for node in cluster.nodes.values() {
        node.shutdown().await;
    }
}
