//! A backup taken from a running cluster seeds a new cluster's nodes: they start from the
//! restored snapshot without bootstrap, elect a leader and commit after it.

mod common;

use common::*;
use lineup_cluster::backup::{seed_node_storage, Backup};
use lineup_cluster::transport::memory::MemoryNetwork;
use lineup_cluster::ClusterNode;
use std::collections::BTreeMap;

const CALLS_BEFORE_BACKUP: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_cluster_seeded_from_a_backup_starts_from_its_state_and_commits_after_it() {
    // No background Ticks: the restored state is compared byte for byte.
    let quiet = |mut config: lineup_cluster::NodeConfig| {
        config.timing.tick_interval_ms = 3_600_000;
        config
    };
    let old = memory_cluster("backup-old", &[1, 2, 3], quiet).await;
    let nodes: Vec<_> = old.nodes.values().collect();
    let leader_site = await_leader(&nodes).await;
    let leader = old.nodes[&leader_site].clone();
    leader.propose(queue_config("sales")).await.unwrap().result.unwrap();
    for i in 0..CALLS_BEFORE_BACKUP {
        leader.propose(enqueue(&format!("c{i}"), "sales", leader_site)).await.unwrap().result.unwrap();
    }
    let follower = old.nodes.values().find(|n| n.site() != leader_site).unwrap().clone();
    // The leader may commit entries of its own (site health) at any time, so the backup is
    // judged against what was acknowledged before it was asked for, not against the end of
    // the log when it is checked.
    let acknowledged = leader.applied_index();
    let backup = Backup::decode(&follower.backup().await.unwrap().encode().unwrap()).unwrap();
    assert!(backup.log_index >= acknowledged, "taken at or after every write acknowledged before it");
    assert_eq!(backup.members.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
    let at_backup = lineup_core::Routing::restore(&backup.state).unwrap();
    for i in 0..CALLS_BEFORE_BACKUP {
        let call = lineup_core::CallId::new(format!("c{i}"));
        assert!(at_backup.position(&call).is_some(), "c{i} waits in the backup");
    }
    for node in old.nodes.values() {
        node.shutdown().await;
    }

    let network = MemoryNetwork::new(7);
    let dir = TempDir::new("backup-new");
    let members: BTreeMap<u64, String> = [1, 2, 3].iter().map(|s| (*s, format!("memory:{s}"))).collect();
    let mut restored = BTreeMap::new();
    for site in [1, 2, 3] {
        let seeded = seed_node_storage(&dir.site(site), site, &members, &backup).unwrap();
        assert_eq!(seeded.log_index, backup.log_index);
        let config = quiet(node_config(&dir, site, fast_timing()));
        let node = ClusterNode::start(config, network.transport(site)).await.unwrap();
        // A restored node is in a cluster already: bootstrap does nothing.
        node.bootstrap(&members).await.unwrap();
        restored.insert(site, node);
    }
    let nodes: Vec<_> = restored.values().collect();
    let new_leader = restored[&await_leader(&nodes).await].clone();
    // Each node starts from the backup's state; the new leader's own first entries (its
    // clock, site health) may already be applied on top, so the calls are compared.
    let waiting = |r: &lineup_core::Routing| r.waiting_calls().into_iter().map(|w| w.call).collect::<Vec<_>>();
    for node in restored.values() {
        assert!(node.applied_index() >= backup.log_index, "site {} starts at the backup", node.site());
        assert_eq!(node.read_stale(waiting), waiting(&at_backup), "site {}", node.site());
    }
    let committed = new_leader.propose(enqueue("after", "sales", new_leader.site())).await.unwrap();
    committed.result.unwrap();
    let index = new_leader.applied_index();
    assert!(index > backup.log_index, "the new log continues after the snapshot: {index}");
    for node in restored.values() {
        await_applied(node, index).await;
        assert_eq!(node.read_stale(|r| r.waiting_count()), CALLS_BEFORE_BACKUP + 1, "site {}", node.site());
    }
    // The old leader's first run proposed everything the backup remembers: the restored
    // node for its site numbers its first run above it.
    let origin = restored[&leader_site].next_command_id().origin;
    assert_eq!(origin, (leader_site << 32) | 2, "a new run's origin {origin:#x} must not reuse a remembered one");
    for node in restored.values() {
        node.shutdown().await;
    }
}
