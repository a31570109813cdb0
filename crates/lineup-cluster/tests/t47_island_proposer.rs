//! The island proposer at the node (island mode §2.2, step 9a): a follower cut off with
//! island mode on forks its applied state, serves its own site's commands from the fork
//! (journaled, applied, answered at fork apply indexes, its effects published), the majority
//! never sees them, and a restart with the same data directory serves the same fork again.

mod common;

use std::time::Duration;

use common::island::*;
use common::*;
use lineup_cluster::ClusterNode;
use lineup_core::island::ISLAND_APPLY_INDEX_BASE;
use lineup_core::*;
use tokio::time::Instant;

/// The restarted island's tick interval: no Tick of its own while the test compares states.
const NO_TICK_WITHIN_TEST_MS: u64 = 3_600_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_island_serves_its_own_site_from_a_journaled_fork_and_restarts_into_it() {
    let CutFollower { cluster, leader, cut, rest } =
        cut_a_follower_with_alice("island-proposer", forking_island_config).await;
    let majority = &cluster.nodes[&leader];
    let alice = OperatorId::new("alice");
    let island = cluster.nodes[&cut].clone();
    let proposer = await_fork(&island).await;
    let epoch = proposer.epoch();
    assert_eq!((epoch.site, epoch.seq), (SiteId(cut), 1));
    assert_eq!(epoch.fork_index, island.applied_index(), "forked from its applied state (nothing arrives since)");
    assert_eq!(island.island().epoch(), Some(epoch), "the epoch is published for IslandStatus");
    assert!(proposer.read(|r| r.island().is_some_and(|fork| fork.epoch == epoch)));

    let mut effects = proposer.subscribe_effects();
    let login = island.island_submit(command(&island, login("alice", cut))).await.unwrap();
    login.result.unwrap();
    assert!(login.apply_index.unwrap() >= ISLAND_APPLY_INDEX_BASE, "{:?}", login.apply_index);
    let enqueued = island.island_submit(command(&island, enqueue("c1", "sales", cut))).await.unwrap();
    enqueued.result.unwrap();
    let (offer_index, offer) = next_offer_for(&mut effects, "c1").await;
    assert_eq!(
        (offer.operator.clone(), offer.operator_site, offer.caller_site),
        (alice.clone(), SiteId(cut), SiteId(cut))
    );
    assert!(offer_index >= ISLAND_APPLY_INDEX_BASE, "offered at {offer_index}, no fork apply index");
    assert_eq!(offer.fence, offer_index);

    // The island's clock runs on its own Ticks.
    let forked_at_ms = island.read_stale(|r| r.now_ms());
    let deadline = Instant::now() + WAIT;
    while proposer.read(|r| r.now_ms()) <= forked_at_ms {
        assert!(Instant::now() < deadline, "the fork's clock did not move within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The majority goes on and never sees the island's commands; nor does the island's log.
    majority.propose(queue_config("after-cut")).await.unwrap().result.unwrap();
    for site in &rest {
        let node = &cluster.nodes[site];
        await_state(node, "after-cut applied", |r| r.queue_summary(&QueueId::new("after-cut")).is_some()).await;
        assert!(node.read_stale(|r| r.calls().all(|c| c.call != CallId::new("c1"))), "site {site} saw c1");
        let offline = node.read_stale(|r| r.operators().any(|o| o.operator == alice && o.site.is_none()));
        assert!(offline, "site {site} saw alice log in");
    }
    assert_eq!(island.read_stale(|r| r.call_count()), 0, "the island's commands stay off its log");

    // Restart with the same data directory, still cut off: the same fork is served again.
    island.shutdown().await;
    cluster.network.disconnect(cut);
    drop(island);
    let served = proposer.read(|r| r.snapshot_bytes());
    let mut config = forking_island_config(node_config(&cluster.dir, cut, fast_timing()));
    config.timing.tick_interval_ms = NO_TICK_WITHIN_TEST_MS;
    let restarted = ClusterNode::start(config, cluster.network.transport(cut)).await.unwrap();
    assert_eq!(restarted.island().epoch(), Some(epoch), "the open epoch is published again");
    let restored = restarted.island_read(|r| r.snapshot_bytes()).expect("the restored fork is served");
    assert!(restored == served, "the restored fork differs from the one served before the restart");
    let again = restarted.island_submit(command(&restarted, enqueue("c2", "sales", cut))).await.unwrap();
    again.result.unwrap();
    assert!(again.apply_index.unwrap() > offer_index, "the fork's indexes go on after the restart");
    restarted.shutdown().await;
}
