//! openraft's own storage conformance suite, run against the redb log store and the
//! snapshot-persisting state machine.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use lineup_cluster::log_store::{open_database, RedbLogStore};
use lineup_cluster::state_machine::{ReplicatedState, StateMachineStore};
use lineup_core::codec::{self, CodecError};
use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;

openraft::declare_raft_types!(
    pub SuiteConfig:
        D = u64,
        R = Option<u64>,
);

/// A minimal deterministic application: the running sum of applied commands.
#[derive(Default)]
struct RunningSum(u64);

impl ReplicatedState for RunningSum {
    type Command = u64;
    type Output = u64;

    fn apply(&mut self, _log_index: u64, command: &u64) -> u64 {
        self.0 = self.0.wrapping_add(*command);
        self.0
    }

    fn snapshot_bytes(&self) -> Vec<u8> {
        codec::encode(&self.0).expect("a u64 always encodes")
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
        self.0 = codec::decode(bytes)?;
        Ok(())
    }
}

/// Removes the test's database directory when the suite drops the store.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct RedbBuilder;

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

impl StoreBuilder<SuiteConfig, RedbLogStore<SuiteConfig>, StateMachineStore<SuiteConfig, RunningSum>, TempDir>
    for RedbBuilder
{
    async fn build(
        &self,
    ) -> Result<(TempDir, RedbLogStore<SuiteConfig>, StateMachineStore<SuiteConfig, RunningSum>), StorageError<u64>>
    {
        let dir = std::env::temp_dir().join(format!(
            "lineup-storage-suite-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let db = open_database(&dir.join("node.redb")).expect("open redb");
        let log = RedbLogStore::new(db.clone());
        let sm = StateMachineStore::open(db, RunningSum::default())?;
        Ok((TempDir(dir), log, sm))
    }
}

#[test]
fn redb_store_passes_openraft_storage_suite() {
    Suite::test_all(RedbBuilder).expect("storage suite");
}
