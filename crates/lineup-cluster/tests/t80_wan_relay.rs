//! Real QUIC nodes under WAN conditions, through the userspace UDP relay.

mod common;

use std::time::{Duration, Instant};

use common::*;
use lineup_cluster::relay::{Direction, LinkConditions};
use lineup_cluster::ClusterTiming;

const ONE_WAY_DELAY_MS: u64 = 15;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_sites_over_a_wan_agree_and_survive_a_blackholed_site() {
    let timing = ClusterTiming {
        heartbeat_interval_ms: 100,
        election_timeout_min_ms: 400,
        election_timeout_max_ms: 800,
        ..fast_timing()
    };
    let (cluster, relays) = quic_cluster_behind_relays("wan", &[1, 2, 3], timing, Some(ONE_WAY_DELAY_MS)).await;
    let (a, b, c) = (&cluster.nodes[&1], &cluster.nodes[&2], &cluster.nodes[&3]);
    let leader = await_leader(&[a, b, c]).await;
    let mut a_effects = a.subscribe_effects();

    b.propose(queue_config("sales")).await.unwrap().result.unwrap();
    b.propose(operator_config("carol", 3, "sales")).await.unwrap().result.unwrap();
    c.propose(login("carol", 3)).await.unwrap().result.unwrap();
    let started = Instant::now();
    let committed = a.propose(enqueue("c1", "sales", 1)).await.unwrap();
    let offer = offers(&committed.effects).pop().expect("an offer");
    // A commit needs a quorum round trip through the relays.
    assert!(started.elapsed() >= Duration::from_millis(2 * ONE_WAY_DELAY_MS));
    assert_eq!(next_offer_for(&mut a_effects, "c1").await.1, offer);
    await_applied_command(c, offer.fence).await;
    await_applied_command(b, offer.fence).await;

    // Blackhole a follower in both directions: the other two still commit.
    let follower = *cluster.nodes.keys().find(|s| **s != leader).unwrap();
    let blackhole = LinkConditions { blackhole: true, ..Default::default() };
    relays[&follower].set_conditions(Direction::ToUpstream, blackhole);
    relays[&follower].set_conditions(Direction::FromUpstream, blackhole);
    let other = *cluster.nodes.keys().find(|s| **s != follower).unwrap();
    cluster.nodes[&other].propose(enqueue("c2", "sales", other)).await.unwrap().result.unwrap();

    for node in cluster.nodes.values() {
        node.shutdown().await;
    }
}
