//! A site that is down while the log is compacted catches up from a snapshot.

mod common;

use common::*;
use lineup_cluster::ClusterNode;

const COMMANDS_WHILE_DOWN: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_down_during_compaction_receives_a_snapshot_and_converges() {
    let cluster = memory_cluster("snapshot", &[1, 2, 3], |mut config| {
        config.snapshot_logs_since_last = 20;
        config.logs_kept_after_snapshot = 0;
        // No background Ticks: states are compared at one log index.
        config.timing.tick_interval_ms = 3_600_000;
        config
    })
    .await;
    let nodes: Vec<_> = cluster.nodes.values().collect();
    let leader_site = await_leader(&nodes).await;
    let leader = cluster.nodes[&leader_site].clone();
    let down_site = *cluster.nodes.keys().find(|s| **s != leader_site).unwrap();
    leader.propose(queue_config("sales")).await.unwrap().result.unwrap();
    await_applied(&cluster.nodes[&down_site], leader.applied_index()).await;

    // The site goes down (process stopped, off the network); its disk stays.
    let down = cluster.nodes[&down_site].clone();
    let applied_before = down.applied_index();
    down.shutdown().await;
    cluster.network.disconnect(down_site);
    drop(down);

    for i in 0..COMMANDS_WHILE_DOWN {
        leader.propose(enqueue(&format!("c{i}"), "sales", leader_site)).await.unwrap().result.unwrap();
    }
    leader.trigger_snapshot().await.unwrap();
    let metrics = leader
        .raft()
        .wait(Some(WAIT))
        .metrics(|m| m.purged.is_some_and(|p| p.index > applied_before + 1), "log compacted past the down site")
        .await
        .expect("the leader compacts its log");
    let last = metrics.last_log_index.unwrap();

    // Back up from its own disk: the entries it misses are gone from every log.
    let config = node_config(&cluster.dir, down_site, {
        let mut timing = fast_timing();
        timing.tick_interval_ms = 3_600_000;
        timing
    });
    let restarted = ClusterNode::start(config, cluster.network.transport(down_site)).await.unwrap();
    await_applied(&restarted, last).await;
    let snapshot = restarted.raft().metrics().borrow().snapshot;
    assert!(snapshot.is_some_and(|s| s.index > applied_before), "caught up through a snapshot: {snapshot:?}");
    assert_eq!(restarted.read_stale(|r| r.snapshot_bytes()), leader.read_stale(|r| r.snapshot_bytes()));
    assert_eq!(restarted.read_stale(|r| r.waiting_count()), COMMANDS_WHILE_DOWN);

    restarted.shutdown().await;
    for node in cluster.nodes.values() {
        node.shutdown().await;
    }
}
