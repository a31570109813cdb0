//! The leader is killed under load over real QUIC: a new leader takes over, no
//! acknowledged command is lost, no offer is made twice, and the killed site restarts
//! from its disk and catches up.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::*;
use lineup_cluster::transport::quic::QuicTransport;
use lineup_cluster::ClusterNode;
use lineup_core::*;
use tokio::sync::mpsc;

const WORKERS: usize = 3;
const COMMANDS_PER_WORKER: usize = 40;
const ACKS_BEFORE_KILL: usize = 15;
/// A worker's tries per command before it gives up on it (about 5 s at the pause below).
const SUBMIT_ATTEMPTS_MAX: usize = 100;
const SUBMIT_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_under_load_loses_nothing_and_restarts_from_disk() {
    let mut timing = fast_timing();
    // No background Ticks: the test compares states at one log index.
    timing.tick_interval_ms = 3_600_000;
    let mut cluster = quic_cluster("failover", &[1, 2, 3], timing.clone()).await;
    let all: Vec<_> = cluster.nodes.values().cloned().collect();
    let leader = await_leader(&all.iter().collect::<Vec<_>>()).await;
    drop(all);
    let followers: Vec<Arc<ClusterNode<QuicTransport>>> =
        cluster.nodes.iter().filter(|(site, _)| **site != leader).map(|(_, n)| n.clone()).collect();
    let mut offers_seen = followers[0].subscribe_effects();

    followers[0].propose(queue_config("sales")).await.unwrap().result.unwrap();
    // Operators at the surviving sites keep offers flowing through the failover.
    for (i, node) in followers.iter().enumerate() {
        let name = format!("op{i}");
        node.propose(operator_config(&name, node.site(), "sales")).await.unwrap().result.unwrap();
        node.propose(login(&name, node.site())).await.unwrap().result.unwrap();
    }

    let (acked_tx, mut acked_rx) = mpsc::channel::<CommandId>(WORKERS * COMMANDS_PER_WORKER);
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..WORKERS {
        let node = followers[worker % followers.len()].clone();
        let acked_tx = acked_tx.clone();
        workers.spawn(async move {
            for i in 0..COMMANDS_PER_WORKER {
                let command = Command {
                    id: node.next_command_id(),
                    at_ms: 0,
                    body: enqueue(&format!("w{worker}-{i}"), "sales", node.site()),
                };
                // During the failover a write fails or its outcome stays unknown. A client
                // sends the same command again (same id: the core applies it at most once)
                // until it is acknowledged or it gives up; only acknowledged ones are checked.
                // Without retries the workers could burn through every command against the
                // dead leader before a new one is elected, and nothing would be acknowledged
                // after the failover.
                for _attempt in 0..SUBMIT_ATTEMPTS_MAX {
                    match node.submit(command.clone()).await {
                        Ok(committed) => {
                            if committed.result.is_ok() {
                                acked_tx.send(command.id).await.unwrap();
                            }
                            break;
                        }
                        Err(_) => tokio::time::sleep(SUBMIT_RETRY_PAUSE).await,
                    }
                }
            }
        });
    }
    drop(acked_tx);

    let mut acked = BTreeSet::new();
    while acked.len() < ACKS_BEFORE_KILL {
        acked.insert(acked_rx.recv().await.expect("workers acknowledge writes before the kill"));
    }
    let killed = cluster.nodes.remove(&leader).unwrap();
    killed.shutdown().await;
    killed.transport().shutdown().await;
    drop(killed);

    while let Some(id) = acked_rx.recv().await {
        acked.insert(id);
    }
    while workers.join_next().await.is_some() {}
    assert!(acked.len() > ACKS_BEFORE_KILL, "writes were acknowledged after the failover too");

    let survivors: Vec<_> = cluster.nodes.values().cloned().collect();
    let new_leader = await_leader(&survivors.iter().collect::<Vec<_>>()).await;
    assert_ne!(new_leader, leader);
    // Every acknowledged command is in the state the survivors agree on.
    let last = cluster.nodes[&new_leader].raft().metrics().borrow().last_log_index.unwrap();
    for node in &survivors {
        await_applied(node, last).await;
    }
    for node in &survivors {
        node.read_stale(|routing| {
            routing.check_invariants().unwrap();
            for id in &acked {
                assert!(routing.result_of(id).is_some(), "acknowledged {id:?} lost at site {}", node.site());
            }
        });
    }
    let state = survivors[0].read_stale(|r| r.snapshot_bytes());
    assert_eq!(state, survivors[1].read_stale(|r| r.snapshot_bytes()));

    // No offer was made twice: each fence at most once on this site's stream.
    let mut fences = BTreeSet::new();
    while let Ok(effect) = offers_seen.try_recv() {
        if let Effect::Offer(offer) = effect.effect {
            assert!(fences.insert(offer.fence), "offer with fence {} emitted twice", offer.fence);
        }
    }
    assert!(!fences.is_empty());

    // The killed site comes back on its old address, from its own disk, and catches up.
    let identity = identity(&cluster.ca, leader);
    let transport = QuicTransport::bind(&identity, cluster.addrs[&leader].parse().unwrap()).unwrap();
    let restarted = ClusterNode::start(node_config(&cluster.dir, leader, timing), transport).await.unwrap();
    await_applied(&restarted, last).await;
    // The new leader marked the killed site unreachable when it held no lease on it, and
    // brings it back (SiteBack) once it hears it: the log goes on past `last`, so the three
    // are compared once that is applied everywhere.
    let killed_site = SiteId(leader);
    let everyone: Vec<_> = survivors.iter().chain([&restarted]).collect();
    for node in &everyone {
        await_state(node, "the restarted site is back", move |r| !r.is_site_unreachable(killed_site)).await;
    }
    let end = cluster.nodes[&new_leader].raft().metrics().borrow().last_log_index.unwrap();
    for node in &everyone {
        await_applied(node, end).await;
    }
    let state = restarted.read_stale(|r| r.snapshot_bytes());
    for node in &survivors {
        assert_eq!(
            node.read_stale(|r| r.snapshot_bytes()),
            state,
            "site {} differs from the restarted one",
            node.site()
        );
    }
    restarted.read_stale(|routing| assert!(acked.iter().all(|id| routing.result_of(id).is_some())));

    restarted.shutdown().await;
    for node in survivors {
        node.shutdown().await;
    }
}
