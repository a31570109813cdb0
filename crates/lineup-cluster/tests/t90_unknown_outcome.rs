//! A write whose answer is lost is resolved by reading its result back, not by a blind
//! retry: it is applied exactly once and the caller learns its result.

mod common;

use std::time::Duration;

use common::*;
use lineup_cluster::transport::memory::Filter;
use lineup_core::*;

/// Time between the leader applying the write and the heal: the leader's answer is judged
/// (and dropped) within it; far below the write timeout, after which the writer reads back.
const ANSWER_SETTLE_MS: u64 = 150;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_resolved_by_read_back_and_applied_once() {
    let cluster = memory_cluster("unknown-outcome", &[1, 2, 3], |mut config| {
        config.timing.client_write_timeout_ms = 1_000;
        config.timing.tick_interval_ms = 3_600_000;
        config
    })
    .await;
    let nodes: Vec<_> = cluster.nodes.values().collect();
    let leader = await_leader(&nodes).await;
    let writer_site = *cluster.nodes.keys().find(|s| **s != leader).unwrap();
    let writer = cluster.nodes[&writer_site].clone();
    writer.propose(queue_config("sales")).await.unwrap().result.unwrap();

    // Everything the leader sends to the writer is lost, including the answer to the
    // write below; the write itself reaches the leader and commits. The link heals once
    // the leader has applied the write (its answer is dropped at that moment) and well
    // before the writer's timeout, so the writer's read-back gets through.
    let id = writer.next_command_id();
    let cut = cluster.network.add_filter(Filter::Cut { from: [leader].into(), to: [writer_site].into() });
    let network = cluster.network.clone();
    let leader_node = cluster.nodes[&leader].clone();
    let heal = tokio::spawn(async move {
        await_state(&leader_node, "write applied at the leader", move |r| r.result_of(&id).is_some()).await;
        // A fault schedule, not a wait for progress: let the dropped answer be judged.
        tokio::time::sleep(Duration::from_millis(ANSWER_SETTLE_MS)).await;
        network.remove_filter(cut);
    });
    let committed = writer.submit(Command { id, at_ms: 0, body: enqueue("c1", "sales", writer_site) }).await.unwrap();
    heal.await.unwrap();
    committed.result.clone().unwrap();
    // The original answer (with the offer's effects) was lost. The outcome came from the
    // read-back (no apply index), or, if the machine was so slow that the read-back also
    // timed out, from resending the same id, which the core answers from its dedup table
    // without applying again (no effects either way).
    assert!(committed.effects.is_empty(), "{committed:?}");

    // Applied exactly once, everywhere.
    let leader_node = cluster.nodes[&leader].clone();
    await_applied(&writer, leader_node.applied_index()).await;
    for node in cluster.nodes.values() {
        node.read_stale(|r| {
            assert!(r.result_of(&id).is_some());
            assert_eq!(r.waiting_count(), 1);
        });
    }

    for node in cluster.nodes.values() {
        node.shutdown().await;
    }
}
