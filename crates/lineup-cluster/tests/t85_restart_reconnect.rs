//! Real QUIC nodes that die without a goodbye (`kill -9`, a cut cable): a restarted member
//! is heard again at once, and writes follow a new leader instead of waiting out the dead
//! one. Each site is behind a UDP relay that can drop everything, which is what a killed
//! process looks like from the other side: its connections stay open until they time out.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use lineup_cluster::relay::{Direction, LinkConditions, UdpRelay};
use lineup_cluster::transport::quic::QuicTransport;
use lineup_cluster::{ClusterNode, ClusterTiming};

/// The promise: a restarted member is heard within this of being ready.
const RESTART_TO_HEARD_MAX_MS: u128 = 1_000;
/// Attempts at rebinding the dead node's address while its socket closes.
const REBIND_ATTEMPTS_MAX: u32 = 100;
const REBIND_RETRY_MS: u64 = 50;

fn cut(relay: &UdpRelay, blackhole: bool) {
    let link = LinkConditions { blackhole, ..Default::default() };
    relay.set_conditions(Direction::ToUpstream, link);
    relay.set_conditions(Direction::FromUpstream, link);
}

async fn rebind(identity: &lineup_cluster::certs::SiteIdentity, addr: SocketAddr) -> QuicTransport {
    for _ in 0..REBIND_ATTEMPTS_MAX {
        if let Ok(transport) = QuicTransport::bind(identity, addr) {
            return transport;
        }
        // The dead endpoint's socket is still closing; nothing to wait on but the OS.
        tokio::time::sleep(Duration::from_millis(REBIND_RETRY_MS)).await;
    }
    panic!("could not rebind {addr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_killed_without_a_goodbye_is_heard_within_a_second_of_restarting() {
    let (mut cluster, relays) = quic_cluster_behind_relays("restart-heard", &[1, 2, 3], fast_timing(), Some(0)).await;
    let all: Vec<_> = cluster.nodes.values().collect();
    let leader = await_leader(&all).await;
    let follower = *cluster.nodes.keys().find(|s| **s != leader).unwrap();
    cluster.nodes[&leader].propose(queue_config("sales")).await.unwrap().result.unwrap();
    let direct = cluster.nodes[&follower].transport().local_addr().unwrap();

    // Dies silently: nothing it says on the way out reaches anyone.
    cut(&relays[&follower], true);
    let dead = cluster.nodes.remove(&follower).unwrap();
    dead.shutdown().await;
    dead.transport().shutdown().await;
    drop(dead);
    // The others go on committing while it is away.
    cluster.nodes[&leader].propose(enqueue("while-away", "sales", leader)).await.unwrap().result.unwrap();

    cut(&relays[&follower], false);
    let transport = rebind(&identity(&cluster.ca, follower), direct).await;
    let restarted = ClusterNode::start(node_config(&cluster.dir, follower, fast_timing()), transport).await.unwrap();
    let ready = Instant::now();
    let committed = cluster.nodes[&leader].propose(enqueue("after", "sales", leader)).await.unwrap();
    await_applied_command(&restarted, committed.apply_index.unwrap()).await;
    let heard_after = ready.elapsed().as_millis();
    assert!(heard_after < RESTART_TO_HEARD_MAX_MS, "heard {heard_after} ms after restarting");

    restarted.shutdown().await;
    for node in cluster.nodes.values() {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_follows_the_new_leader_instead_of_waiting_out_the_dead_one() {
    // A long write timeout makes the difference plain: the dead leader's connection keeps
    // looking alive for all of it.
    let timing = ClusterTiming { client_write_timeout_ms: 10_000, ..fast_timing() };
    let (cluster, relays) = quic_cluster_behind_relays("write-follows", &[1, 2, 3], timing, Some(0)).await;
    let all: Vec<_> = cluster.nodes.values().collect();
    let leader = await_leader(&all).await;
    let follower = cluster.nodes.iter().find(|(s, _)| **s != leader).map(|(_, n)| n.clone()).unwrap();
    // The follower's connection to the leader is up and in use.
    follower.propose(queue_config("sales")).await.unwrap().result.unwrap();

    // Killed: it stops speaking, and what is sent to it is never answered (its relay drops
    // everything; its socket stays bound, as a dead host's address stays routable).
    cut(&relays[&leader], true);
    cluster.nodes[&leader].shutdown().await;
    let started = Instant::now();
    let committed = follower.propose(enqueue("during-failover", "sales", follower.site())).await.unwrap();
    committed.result.unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(5_000), "the write waited {took:?} on the dead leader");

    for (site, node) in &cluster.nodes {
        if *site != leader {
            node.shutdown().await;
        }
    }
}
