//! A member whose disk refuses a write (full) or an fsync (failing) stops its Raft for good: openraft
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
const FAILING_SITE: u64 = 3;
/// Writes proposed while its disk fails; any one of them reaching it stops its Raft.
const WRITES_WHILE_FULL_COUNT: usize = 10;

/// How the disk fails once it is told to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Every write and every growth fails, as the kernel's ENOSPC.
    Full,
    /// Writes land in the page cache, but fsync reports EIO (a failing device).
    Fsync,
}

/// An in-memory disk that starts failing when `failing` is set.
#[derive(Debug)]
struct FailingDisk {
    inner: InMemoryBackend,
    failure: Failure,
    failing: Arc<AtomicBool>,
}

impl FailingDisk {
    fn refuse(&self, failure: Failure) -> io::Result<()> {
        if self.failure != failure || !self.failing.load(Ordering::SeqCst) {
            return Ok(());
        }
        Err(match failure {
            Failure::Full => io::Error::new(io::ErrorKind::StorageFull, "no space left on device"),
            Failure::Fsync => io::Error::other("input/output error on fsync"),
        })
    }
}

impl StorageBackend for FailingDisk {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        if len > self.inner.len()? {
            self.refuse(Failure::Full)?;
        }
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.refuse(Failure::Full)?;
        self.refuse(Failure::Fsync)?;
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.refuse(Failure::Full)?;
        self.inner.write(offset, data)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_disk_fills_says_its_raft_stopped_and_the_others_go_on() {
    let why = one_member_disk_fails(Failure::Full).await;
    assert!(why.contains("no space left on device"), "the reason is the disk's: {why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_fsync_fails_says_its_raft_stopped_and_the_others_go_on() {
    let why = one_member_disk_fails(Failure::Fsync).await;
    assert!(why.contains("input/output error on fsync"), "the reason is the disk's: {why}");
}

/// Three members; `FAILING_SITE`'s disk starts failing with `failure` once the cluster runs.
/// Answers why its Raft stopped, after checking the other two still commit.
async fn one_member_disk_fails(failure: Failure) -> String {
    let failing = Arc::new(AtomicBool::new(false));
    let disk = FailingDisk { inner: InMemoryBackend::new(), failure, failing: Arc::clone(&failing) };
    let failing_db = database_on_backend(disk).unwrap();
    let cluster = memory_cluster("disk-failing", &[1, 2, 3], move |mut config| {
        if config.site == FAILING_SITE {
            config.storage = NodeStorage::Memory(Arc::clone(&failing_db));
        }
        config
    })
    .await;
    let all: Vec<_> = cluster.nodes.values().collect();
    let leader = await_leader(&all).await;
    let committed = cluster.nodes[&leader].propose(queue_config("sales")).await.unwrap();
    await_applied_command(
        &cluster.nodes[&FAILING_SITE],
        committed.apply_index.expect("a config change has an apply index"),
    )
    .await;
    let healthy = if leader == FAILING_SITE { 1 } else { leader };

    failing.store(true, Ordering::SeqCst);
    for n in 0..WRITES_WHILE_FULL_COUNT {
        // The failing member may have led: its writes fail until the others elect anew.
        let _ = cluster.nodes[&healthy].propose(enqueue(&format!("while-failing-{n}"), "sales", healthy)).await;
    }
    let why = tokio::time::timeout(WAIT, cluster.nodes[&FAILING_SITE].raft_stopped())
        .await
        .expect("the member whose disk fails must report its Raft stopped");

    // The two others are a quorum and go on committing.
    let others: Vec<_> = cluster.nodes.iter().filter(|(s, _)| **s != FAILING_SITE).map(|(_, n)| n).collect();
    let leader = await_leader(&others).await;
    let after = cluster.nodes[&leader].propose(enqueue("after", "sales", leader)).await.unwrap();
    assert!(after.result.is_ok(), "the others commit without the failing member");
    for node in cluster.nodes.values() {
        node.shutdown().await;
    }
    why
}
