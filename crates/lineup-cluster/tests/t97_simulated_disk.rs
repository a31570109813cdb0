//! The simulator's disk (`NodeStorage::SimulatedDisk`) is a disk, not a promise: a crash
//! loses the log appends it had not synced yet, as a real page cache does, and a node never
//! applies an entry its disk lost. (The simulator's openraft mode runs on it.)

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use lineup_cluster::log_store::memory_database;
use lineup_cluster::transport::memory::{MemoryNetwork, MemoryTransport};
use lineup_cluster::{ClusterNode, NodeConfig, NodeStorage};
use lineup_core::QueueId;

/// Long enough that a write's append is still unsynced after it was queued.
const SYNC_DELAY: Duration = Duration::from_millis(50);
/// Steps of virtual time while waiting for the append to be queued.
const STEP: Duration = Duration::from_millis(1);
const STEPS_MAX: usize = 1_000;

async fn start(network: &MemoryNetwork, db: Arc<redb::Database>) -> Arc<ClusterNode<MemoryTransport>> {
    let mut config = NodeConfig::new(1, "unused-in-memory");
    config.storage = NodeStorage::SimulatedDisk { db, sync_delay: SYNC_DELAY };
    config.timing = fast_timing();
    ClusterNode::start(config, network.transport(1)).await.unwrap()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_crash_loses_the_appends_the_disk_had_not_synced_and_nothing_of_them_is_applied() {
    let network = MemoryNetwork::new(7);
    let db = memory_database().unwrap();
    let node = start(&network, Arc::clone(&db)).await;
    node.bootstrap(&BTreeMap::from([(1, "memory:1".to_string())])).await.unwrap();
    await_leader(&[&node]).await;
    node.propose(queue_config("sales")).await.unwrap().result.unwrap();

    let writer = Arc::clone(&node);
    let unsynced = tokio::spawn(async move { writer.propose(queue_config("support")).await });
    let mut steps = 0;
    while node.unsynced_log_entries() == 0 && steps < STEPS_MAX {
        tokio::time::sleep(STEP).await;
        steps += 1;
    }
    assert!(node.unsynced_log_entries() > 0, "the second write's append is queued, not synced");
    let lost = node.crash().await;
    network.disconnect(1);
    assert!(lost >= 1, "the crash lost the unsynced append");
    assert!(unsynced.await.unwrap().is_err(), "the lost write was never reported committed");
    drop(node);

    let restarted = start(&network, db).await;
    await_leader(&[&restarted]).await;
    restarted.propose(queue_config("after")).await.unwrap().result.unwrap();
    let (sales, support) = restarted.read_stale(|routing| {
        (
            routing.queue_config(&QueueId::new("sales")).is_some(),
            routing.queue_config(&QueueId::new("support")).is_some(),
        )
    });
    assert!(sales, "what was synced survives the crash");
    assert!(!support, "what was not synced is gone");
    restarted.shutdown().await;
}
