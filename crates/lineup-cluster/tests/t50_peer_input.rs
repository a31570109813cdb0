//! Hostile or broken peer input is refused with an answer, never a panic, and a site cannot
//! speak for another.

mod common;

use std::time::Duration;

use common::*;
use lineup_cluster::rpc::{PeerRequest, PeerResponse};
use lineup_cluster::transport::PeerTransport;
use lineup_core::codec;
use openraft::raft::VoteRequest;
use openraft::Vote;

const CALL_TIMEOUT: Duration = Duration::from_secs(2);

async fn ask(cluster: &MemoryCluster, from: u64, to: u64, bytes: Vec<u8>) -> PeerResponse {
    let answer = cluster.network.transport(from).call(to, "", bytes, CALL_TIMEOUT).await.expect("an answer");
    codec::decode_versioned(&answer, usize::MAX).expect("a decodable answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_impersonation_are_refused_and_the_node_keeps_working() {
    let cluster = memory_cluster("peer-input", &[1, 2, 3], |config| config).await;
    let nodes: Vec<_> = cluster.nodes.values().collect();
    let leader = await_leader(&nodes).await;
    let target = *cluster.nodes.keys().find(|s| **s != leader).unwrap();
    let other = *cluster.nodes.keys().find(|s| **s != leader && **s != target).unwrap();

    for garbage in [vec![], vec![0xFF; 3], vec![codec::FORMAT_VERSION, 0xFF, 0xFF, 0xFF], vec![99, 1, 2]] {
        let answer = ask(&cluster, 7, target, garbage).await;
        assert!(matches!(answer, PeerResponse::Refused(ref reason) if reason.contains("undecodable")), "{answer:?}");
    }

    // Site `other` asks for a vote in the leader's name, with a huge term that would
    // depose the leader if it were believed.
    let forged = PeerRequest::Vote(VoteRequest::new(Vote::new(1_000, leader), None));
    let answer = ask(&cluster, other, target, codec::encode_versioned(&forged).unwrap()).await;
    assert!(matches!(answer, PeerResponse::Refused(ref reason) if reason.contains("in the name of")), "{answer:?}");
    assert!(cluster.nodes[&target].raft().metrics().borrow().current_term < 1_000);

    // The cluster still commits.
    let committed = cluster.nodes[&target].propose(queue_config("sales")).await.unwrap();
    committed.result.unwrap();

    for node in cluster.nodes.values() {
        node.shutdown().await;
    }
}
