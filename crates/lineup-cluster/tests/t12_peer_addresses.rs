//! Each site reaches its peers at the addresses its own node file gives, not at those the
//! Raft membership carries: a membership entry holds the proposing leader's view of every
//! address, and sites may reach each other at different ones (a VPN address from one site, a
//! public one from another). Seen with real processes: after a leader added a member, every
//! site dialled every other through the leader's own routes, and cutting that one site off
//! cut the others from each other too, so no leader could be elected while it lasted.

mod common;

use common::*;
use lineup_cluster::transport::quic::QuicTransport;
use lineup_cluster::ClusterNode;
use std::collections::BTreeMap;

/// Free loopback ports, found by binding and letting go (each then bound by a transport).
fn free_addresses(count: usize) -> Vec<String> {
    let sockets: Vec<std::net::UdpSocket> =
        (0..count).map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
    sockets.iter().map(|s| s.local_addr().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sites_reach_each_other_at_their_own_addresses_when_the_membership_names_dead_ones() {
    lineup_cluster::transport::quic::install_crypto_provider();
    let ca = lineup_cluster::certs::generate_ca().unwrap();
    let dir = TempDir::new("own-peer-addresses");
    let sites = [1u64, 2, 3];
    let real: BTreeMap<u64, String> = sites.iter().copied().zip(free_addresses(sites.len())).collect();
    // The membership every site bootstraps with names addresses where nobody listens.
    let dead: BTreeMap<u64, String> = sites.iter().copied().zip(free_addresses(sites.len())).collect();
    let mut nodes = BTreeMap::new();
    for &site in &sites {
        let own: BTreeMap<u64, String> =
            real.iter().filter(|(s, _)| **s != site).map(|(s, a)| (*s, a.clone())).collect();
        let listen = real[&site].parse().unwrap();
        let transport = QuicTransport::bind_with_peers(&identity(&ca, site), listen, own).unwrap();
        let node = ClusterNode::start(node_config(&dir, site, fast_timing()), transport).await.unwrap();
        nodes.insert(site, node);
    }
    for node in nodes.values() {
        node.bootstrap(&dead).await.unwrap();
    }
    let all: Vec<_> = nodes.values().collect();
    await_leader(&all).await;
    let committed = nodes[&2].propose(queue_config("sales")).await.expect("a write commits");
    committed.result.unwrap();
    for node in nodes.values() {
        node.shutdown().await;
    }
}
