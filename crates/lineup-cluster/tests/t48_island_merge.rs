//! The merge driver (island mode §3.1, §3.5, §3.7): an island heard again for the stable time
//! freezes its fork, proposes the fork's merge plan to the log and closes its epoch once the
//! End has committed. Every member then holds the island's decisions once: its live call
//! offered to its operator, its ended call counted once, its site reachable again, and the
//! island's node proposes to the log again. A restart that finds the journal frozen merges
//! at once; a link that loses and repeats the island's messages during the merge changes
//! nothing in what is merged.

mod common;

use std::time::Duration;

use common::island::*;
use common::*;
use lineup_cluster::island::{IslandJournal, JournalState, ISLAND_JOURNAL_FILE};
use lineup_cluster::island_route::SiteRoute;
use lineup_cluster::island_watch::IslandPhase;
use lineup_cluster::transport::memory::{Filter, Links, MemoryTransport};
use lineup_cluster::{ClusterNode, NodeConfig, SiteEffect};
use lineup_core::island::ISLAND_APPLY_INDEX_BASE;
use lineup_core::*;
use std::sync::Arc;
use tokio::time::Instant;

fn island_config(config: NodeConfig) -> NodeConfig {
    let mut config = forking_island_config(config);
    // A lost write is retried after half a second, not two.
    config.timing.client_write_timeout_ms = 500;
    config
}

/// Waits (bounded) until `node`'s island watch is back to `None` with no epoch open.
async fn await_merged(node: &ClusterNode<MemoryTransport>) {
    // The epoch is unpublished before the watch is closed, and closing always notifies.
    let mut watch = node.island().subscribe();
    let merged = watch.wait_for(|state| state.phase() == IslandPhase::None && node.island().epoch().is_none());
    let merged = tokio::time::timeout(WAIT, merged).await.is_ok_and(|seen| seen.is_ok());
    assert!(merged, "site {} still {:?} after {WAIT:?}", node.site(), node.island().state());
    assert!(node.island_proposer().is_none(), "a merged island still serves its fork");
}

struct Island {
    cluster: MemoryCluster,
    cut: u64,
    rest: Vec<u64>,
    node: Arc<ClusterNode<MemoryTransport>>,
    epoch: IslandEpoch,
}

/// A three-site cluster with a queue and two operators at one follower's site, which is cut
/// off and forks. On the fork: alice logs in and is offered c1; c2 joins and hangs up.
async fn an_island_with_a_live_and_an_ended_call(name: &str) -> Island {
    let CutFollower { cluster, cut, rest, .. } = cut_a_follower_with_alice(name, island_config).await;
    let node = cluster.nodes[&cut].clone();
    let proposer = await_fork(&node).await;
    let epoch = proposer.epoch();
    let mut effects = proposer.subscribe_effects();
    node.island_submit(command(&node, login("alice", cut))).await.unwrap().result.unwrap();
    node.island_submit(command(&node, enqueue("c1", "sales", cut))).await.unwrap().result.unwrap();
    let (_, offer) = next_offer_for(&mut effects, "c1").await;
    assert_eq!(offer.operator, OperatorId::new("alice"));
    node.island_submit(command(&node, enqueue("c2", "sales", cut))).await.unwrap().result.unwrap();
    let abandoned = CommandBody::Abandoned { call: CallId::new("c2") };
    node.island_submit(command(&node, abandoned)).await.unwrap().result.unwrap();
    // The majority holds the site unreachable before the island merges (its Begin needs it).
    for site in &rest {
        let unreachable = move |r: &Routing| r.is_site_unreachable(SiteId(cut));
        await_state(&cluster.nodes[site], "the island's site unreachable", unreachable).await;
    }
    Island { cluster, cut, rest, node, epoch }
}

/// Every member holds the island's decisions once.
async fn assert_merged_everywhere(island: &Island) {
    let cut = island.cut;
    let seq = island.epoch.seq;
    let majority = island.rest.iter().map(|site| &island.cluster.nodes[site]);
    for node in majority.chain([&island.node]) {
        // A leader that holds no lease on the restarted island's node yet marks its site
        // unreachable again until it answers; the merge is what brings it back for good.
        let merged =
            move |r: &Routing| r.island_merged_seq(SiteId(cut)) == Some(seq) && !r.is_site_unreachable(SiteId(cut));
        await_state(node, "the island's epoch merged and its site reachable", merged).await;
        node.read_stale(|r| {
            let c1 = r.calls().find(|c| c.call == CallId::new("c1")).expect("c1 merged");
            let alice = r.operators().find(|o| o.operator == OperatorId::new("alice"));
            assert_eq!(
                (c1.status, c1.operator.clone()),
                (CallStatus::Offered, Some(OperatorId::new("alice"))),
                "site {}: c1 {c1:?}, alice {alice:?}",
                node.site()
            );
            assert!(r.calls().all(|c| c.call != CallId::new("c2")), "the call that ended on the island is live");
            let alice = r.operators().find(|o| o.operator == OperatorId::new("alice")).unwrap();
            assert_eq!(alice.site, Some(SiteId(cut)), "alice's island login was not merged");
            let stats = r.queue_summary(&QueueId::new("sales")).unwrap().stats;
            assert_eq!((stats.offered, stats.abandoned), (2, 1), "site {}: the island's calls counted", node.site());
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healed_island_merges_its_fork_once_and_follows_the_log_again() {
    let island = an_island_with_a_live_and_an_ended_call("island-merge").await;
    island.cluster.network.clear_filters();
    await_merged(&island.node).await;
    assert_merged_everywhere(&island).await;

    // The island's node writes to the log again, and its site is offered across again.
    let leader_site = island.rest[0];
    let leader = &island.cluster.nodes[&leader_site];
    island.node.propose(enqueue("c3", "sales", island.cut)).await.unwrap().result.unwrap();
    leader.propose(operator_config("bob", leader_site, "sales")).await.unwrap().result.unwrap();
    leader.propose(login("bob", leader_site)).await.unwrap().result.unwrap();
    let bob_offered =
        |r: &Routing| r.calls().any(|c| c.call == CallId::new("c3") && c.operator == Some(OperatorId::new("bob")));
    await_state(&island.node, "c3 offered to bob across the healed link", bob_offered).await;

    // The journal's epoch is closed: a restart serves no fork and merges nothing again.
    island.node.shutdown().await;
    let journal = IslandJournal::open(island.cluster.dir.site(island.cut).join(ISLAND_JOURNAL_FILE)).unwrap();
    assert_eq!(journal.last_epoch().unwrap(), Some((island.epoch, JournalState::Closed)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_island_restarted_frozen_merges_at_once() {
    let island = an_island_with_a_live_and_an_ended_call("island-merge-restart").await;
    // Stopped frozen (as after a crash between the freeze and the first merge command).
    island.node.shutdown().await;
    island.cluster.network.disconnect(island.cut);
    let path = island.cluster.dir.site(island.cut).join(ISLAND_JOURNAL_FILE);
    IslandJournal::open(&path).unwrap().set_state(JournalState::Frozen).unwrap();

    island.cluster.network.clear_filters();
    let config = island_config(node_config(&island.cluster.dir, island.cut, fast_timing()));
    let restarted = ClusterNode::start(config, island.cluster.network.transport(island.cut)).await.unwrap();
    restarted.island().set_ari_connected(true);
    assert!(restarted.island_proposer().is_none(), "a frozen fork is served again");
    await_merged(&restarted).await;
    let island = Island { node: restarted, ..island };
    assert_merged_everywhere(&island).await;
    island.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_over_a_lossy_link_that_repeats_messages_counts_everything_once() {
    let island = an_island_with_a_live_and_an_ended_call("island-merge-lossy").await;
    island.cluster.network.clear_filters();
    // The island's requests (its forwarded merge commands and reads) are lost or delivered
    // twice: commands time out and are proposed again, and duplicates reach the leader.
    let lossy = Links::From(island.cut);
    island.cluster.network.add_filter(Filter::Drop { links: lossy.clone(), percent: 20 });
    island.cluster.network.add_filter(Filter::Duplicate { links: lossy, percent: 50 });
    await_merged(&island.node).await;
    assert_merged_everywhere(&island).await;
    island.cluster.network.clear_filters();
}

/// Waits (bounded) until a proposal of `node` is held for a merge. Nothing signals that, so
/// this one wait polls.
async fn await_held(node: &ClusterNode<MemoryTransport>) {
    let deadline = Instant::now() + WAIT;
    while !node.proposals_held() {
        assert!(Instant::now() < deadline, "site {}: no proposal held within {WAIT:?}", node.site());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sites_proposals_go_to_the_fork_while_an_island_wait_during_the_merge_and_then_go_to_the_log() {
    let island = an_island_with_a_live_and_an_ended_call("island-route").await;
    let node = &island.node;
    let routed = node.submit_for_site(command(node, enqueue("c4", "sales", island.cut))).await.unwrap();
    assert!(routed.apply_index.unwrap() >= ISLAND_APPLY_INDEX_BASE, "an island's proposal went to the log");
    assert!(node.read_for_site(|r| r.call_view(&CallId::new("c4")).is_some()), "the site reads the fork");
    assert!(node.read_stale(|r| r.call_view(&CallId::new("c4")).is_none()), "the log saw the fork's caller");

    // Heard again, but its own requests are lost: the fork freezes and its merge waits.
    let mut log_effects = node.subscribe_effects();
    let mut changes = node.site_route_changes();
    island.cluster.network.clear_filters();
    let rest = island.rest.iter().copied().collect();
    let one_way = island.cluster.network.add_filter(Filter::Cut { from: [island.cut].into(), to: rest });
    let frozen = changes.wait_for(|_| matches!(node.site_route(), SiteRoute::Frozen(_)));
    assert!(tokio::time::timeout(WAIT, frozen).await.is_ok_and(|seen| seen.is_ok()), "not frozen within {WAIT:?}");
    assert!(node.read_for_site(|r| r.call_view(&CallId::new("c4")).is_some()), "the site reads the frozen fork");
    let held_node = node.clone();
    let held = tokio::spawn(async move {
        let body = enqueue("c5", "sales", held_node.site());
        held_node.submit_for_site(command(&held_node, body)).await
    });
    await_held(node).await;

    island.cluster.network.remove_filter(one_way);
    let committed = held.await.unwrap().expect("the held proposal commits after the merge");
    let end_index = loop {
        match tokio::time::timeout(WAIT, log_effects.recv()).await.expect("the merge's end within the bound") {
            Ok(SiteEffect { effect: Effect::IslandMerged { end_index, .. }, .. }) => break end_index,
            _ => continue,
        }
    };
    let c5_index = committed.apply_index.expect("applied through this node");
    assert!(
        c5_index < ISLAND_APPLY_INDEX_BASE && c5_index > end_index,
        "c5 at {c5_index}, the merge ended at {end_index}"
    );
    await_merged(node).await;
    assert!(matches!(node.site_route(), SiteRoute::Log));
    assert!(*changes.borrow_and_update() >= 2, "the feed was not told of the freeze and the merge");
    // The log's state, once this node has applied what its held proposal committed.
    let both = |r: &Routing| r.call_view(&CallId::new("c4")).is_some() && r.call_view(&CallId::new("c5")).is_some();
    await_state(node, "the merged c4 and the held c5", both).await;
    assert!(node.read_for_site(both));
}

/// A proposal the site sent to the log as the cut began goes to the fork once the site is an
/// island: the caller it concerns is on the site's box and must be served, and the log may
/// not answer for as long as the cut lasts. (The real-process island run found it: its
/// caller, entering as the cut began, waited for the heal.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposal_in_flight_to_the_log_at_the_cut_goes_to_the_fork() {
    let patient_log = |config: NodeConfig| {
        let mut config = forking_island_config(config);
        // The log's write outlasts the test's bound: only the fork can answer within it.
        config.timing.client_write_timeout_ms = 2 * WAIT.as_millis() as u64;
        config
    };
    let CutFollower { cluster, cut, .. } = cut_a_follower_with_alice("island-in-flight", patient_log).await;
    let node = cluster.nodes[&cut].clone();
    assert!(matches!(node.site_route(), SiteRoute::Log), "cut, but no island yet");
    let in_flight_node = node.clone();
    let in_flight = tokio::spawn(async move {
        let body = enqueue("c9", "sales", in_flight_node.site());
        in_flight_node.submit_for_site(command(&in_flight_node, body)).await
    });
    await_fork(&node).await;
    let committed = tokio::time::timeout(WAIT, in_flight).await.expect("answered within the bound");
    let committed = committed.unwrap().expect("committed on the fork");
    assert!(committed.apply_index.unwrap() >= ISLAND_APPLY_INDEX_BASE, "not applied on the fork");
    assert!(node.read_for_site(|r| r.call_view(&CallId::new("c9")).is_some()), "the island holds the caller");
}
