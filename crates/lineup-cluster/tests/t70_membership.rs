//! Membership: bootstrap 1 or 5 sites, add sites at run time (learner, then voter), remove a
//! site, and a lost site's callers get their outcome through SiteLost.

mod common;

use std::collections::BTreeSet;

use common::*;
use lineup_cluster::ClusterNode;
use lineup_core::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_site_grows_to_three_then_shrinks_to_two() {
    let mut cluster = memory_cluster("grow", &[1], |config| config).await;
    let first = cluster.nodes[&1].clone();
    await_leader(&[&first]).await;
    first.propose(queue_config("sales")).await.unwrap().result.unwrap();

    for site in [2u64, 3] {
        let node = ClusterNode::start(node_config(&cluster.dir, site, fast_timing()), cluster.network.transport(site))
            .await
            .unwrap();
        first.add_site(site, format!("memory:{site}")).await.unwrap();
        cluster.nodes.insert(site, node);
    }
    let voters: BTreeSet<u64> = first.raft().metrics().borrow().membership_config.membership().voter_ids().collect();
    assert_eq!(voters, BTreeSet::from([1, 2, 3]));
    // The new sites received the state from before they joined, and take writes.
    let third = cluster.nodes[&3].clone();
    await_state(&third, "queue replicated", |r| r.queue_config(&QueueId::new("sales")).is_some()).await;
    third.propose(operator_config("dora", 3, "sales")).await.unwrap().result.unwrap();

    first.remove_site(3).await.unwrap();
    let voters: BTreeSet<u64> = first.raft().metrics().borrow().membership_config.membership().voter_ids().collect();
    assert_eq!(voters, BTreeSet::from([1, 2]));
    cluster.nodes[&2].propose(enqueue("c1", "sales", 2)).await.unwrap().result.unwrap();

    for node in cluster.nodes.values() {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_sites_bootstrap_and_commit() {
    let cluster = memory_cluster("five", &[1, 2, 3, 4, 5], |config| config).await;
    let nodes: Vec<_> = cluster.nodes.values().collect();
    await_leader(&nodes).await;
    let committed = cluster.nodes[&5].propose(queue_config("sales")).await.unwrap();
    committed.result.unwrap();
    for node in cluster.nodes.values() {
        await_applied_command(node, committed.apply_index.unwrap()).await;
    }
    for node in cluster.nodes.values() {
        node.shutdown().await;
    }
}

/// A silent site is unreachable first: its caller keeps waiting (its Asterisk still carries
/// the call). Only the long limit declares it lost, which gives the caller its outcome; once
/// it answers again it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_site_is_unreachable_then_lost_and_comes_back() {
    let cluster = memory_cluster("site-lost", &[1, 2, 3], |mut config| {
        config.timing.site_unreachable_after_ms = 500;
        config.timing.site_lost_after_ms = 3_000;
        config
    })
    .await;
    let nodes: Vec<_> = cluster.nodes.values().collect();
    let leader = await_leader(&nodes).await;
    let lost_site = *cluster.nodes.keys().find(|s| **s != leader).unwrap();
    let lost = cluster.nodes[&lost_site].clone();
    lost.propose(queue_config("sales")).await.unwrap().result.unwrap();
    let committed = lost.propose(enqueue("stranded", "sales", lost_site)).await.unwrap();
    committed.result.unwrap();
    // The write is acknowledged once the leader applied it; this follower may trail.
    await_applied_command(&lost, committed.apply_index.unwrap()).await;
    let waiting = lost.read_stale(|r| r.call_view(&CallId::new("stranded"))).unwrap();
    assert_eq!(waiting.status, CallStatus::Waiting);

    lost.shutdown().await;
    cluster.network.disconnect(lost_site);
    drop(lost);

    let survivor = cluster.nodes[&leader].clone();
    await_state(&survivor, "site unreachable", move |r| r.is_site_unreachable(SiteId(lost_site))).await;
    let call = survivor.read_stale(|r| r.call_view(&CallId::new("stranded")));
    assert_eq!(call.map(|c| c.status), Some(CallStatus::Waiting), "silence ends no call");

    await_state(&survivor, "site declared lost", move |r| r.is_site_lost(SiteId(lost_site))).await;
    let call = survivor.read_stale(|r| r.call_view(&CallId::new("stranded")));
    assert!(
        call.as_ref().is_none_or(|c| c.status == CallStatus::Ended),
        "the stranded caller got an outcome: {call:?}"
    );

    let back =
        ClusterNode::start(node_config(&cluster.dir, lost_site, fast_timing()), cluster.network.transport(lost_site))
            .await
            .unwrap();
    let back_everywhere =
        move |r: &lineup_core::Routing| !r.is_site_lost(SiteId(lost_site)) && !r.is_site_unreachable(SiteId(lost_site));
    await_state(&survivor, "site back", back_everywhere).await;
    await_state(&back, "restarted site sees itself back", back_everywhere).await;

    back.shutdown().await;
    for node in cluster.nodes.values() {
        node.shutdown().await;
    }
}

/// A site joining after the log was compacted cannot replay the log from the start: it must
/// be sent a snapshot, and then be identical to the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_joining_after_compaction_is_sent_a_snapshot() {
    let compacting = |mut config: lineup_cluster::NodeConfig| {
        config.snapshot_logs_since_last = 10;
        config.logs_kept_after_snapshot = 0;
        config
    };
    let mut cluster = memory_cluster("join-snapshot", &[1], compacting).await;
    let first = cluster.nodes[&1].clone();
    await_leader(&[&first]).await;
    first.propose(queue_config("sales")).await.unwrap().result.unwrap();
    for n in 0..40 {
        first.propose(enqueue(&format!("c{n}"), "sales", 1)).await.unwrap().result.unwrap();
    }
    first.trigger_snapshot().await.unwrap();
    let purged = first
        .raft()
        .wait(Some(std::time::Duration::from_secs(10)))
        .metrics(|m| m.purged.is_some_and(|p| p.index > 10), "the log purged past its start")
        .await;
    assert!(purged.is_ok(), "the first site compacted its log");

    // Adding a site is the leader's job: a follower would answer NotLeader. Here site 1 leads.
    let second =
        ClusterNode::start(compacting(node_config(&cluster.dir, 2, fast_timing())), cluster.network.transport(2))
            .await
            .unwrap();
    first.add_site(2, "memory:2".into()).await.unwrap();
    cluster.nodes.insert(2, second.clone());
    await_state(&second, "the 40 waiting calls", |r| r.waiting_count() == 40).await;
    let installed = second.raft().metrics().borrow().snapshot;
    assert!(installed.is_some(), "site 2 holds a snapshot it was sent");
    // Same state at the same index on both sites, and the new site takes writes.
    let index = first.applied_index();
    await_applied(&second, index).await;
    assert_eq!(first.read_stale(|r| r.snapshot_bytes()), second.read_stale(|r| r.snapshot_bytes()));
    second.propose(enqueue("late", "sales", 2)).await.unwrap().result.unwrap();
    let follower_add = second.add_site(3, "memory:3".into()).await;
    assert!(
        matches!(follower_add, Err(lineup_cluster::ClusterError::NotLeader { leader: Some(1), .. })),
        "a follower refuses membership changes and names the leader: {follower_add:?}"
    );

    for node in cluster.nodes.values() {
        node.shutdown().await;
    }
}
