//! Island detection and the gate (island mode §1.2, §2.2, §3.7): a follower cut off from the
//! quorum reports an island after `island_after_ms` (the majority does not), a healed link
//! reports it healed after `ISLAND_HEAL_STABLE_MS` of accepted heartbeats, and the leader
//! never brings back a site whose `IslandStatus` answers with an open epoch.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use lineup_cluster::island_watch::{IslandPhase, IslandWatch, ISLAND_HEAL_STABLE_MS};
use lineup_cluster::lease::IslandTiming;
use lineup_cluster::transport::memory::{Filter, MemoryTransport};
use lineup_cluster::{ClusterNode, NodeConfig, StateEvent, StateHook};
use lineup_core::*;
use tokio::time::Instant;

const HEARTBEAT_MS: u64 = 100;
const UNREACHABLE_AFTER_MS: u64 = 1_000;
/// 1,500 / 1.001 > 1,000 / 0.999 + 200 + 100: §1.4's inequality holds.
const ISLAND: IslandTiming =
    IslandTiming { island_after_ms: 1_500, clock_rate_drift_max_ppm: 1_000, pause_margin_ms: 100 };

/// Every `SiteBack` applied: (applying node, site brought back, when).
type SiteBacks = Arc<Mutex<Vec<(u64, u64, Instant)>>>;

fn island_config(mut config: NodeConfig, site_backs: SiteBacks) -> NodeConfig {
    config.timing.heartbeat_interval_ms = HEARTBEAT_MS;
    config.timing.election_timeout_min_ms = 400;
    config.timing.election_timeout_max_ms = 800;
    config.timing.site_unreachable_after_ms = UNREACHABLE_AFTER_MS;
    config.island = Some(ISLAND);
    let site = config.site;
    config.state_hook = Some(StateHook(Arc::new(move |event| {
        if let StateEvent::Applied { command, .. } = event {
            if let CommandBody::SiteBack { site: back } = command.body {
                site_backs.lock().unwrap().push((site, back.0, Instant::now()));
            }
        }
    })));
    config
}

struct Cut {
    cluster: MemoryCluster,
    leader: u64,
    cut: u64,
    cut_at: Instant,
    site_backs: SiteBacks,
}

/// A three-site cluster with island mode on and every Asterisk connected; one follower cut
/// off both ways once all three agree on a leader.
async fn cut_a_follower(name: &str) -> Cut {
    let site_backs = SiteBacks::default();
    let hooks = site_backs.clone();
    let cluster = memory_cluster(name, &[1, 2, 3], move |config| island_config(config, hooks.clone())).await;
    for node in cluster.nodes.values() {
        node.island().set_ari_connected(true);
    }
    let nodes: Vec<_> = cluster.nodes.values().collect();
    let leader = await_leader(&nodes).await;
    cluster.nodes[&leader].propose(queue_config("sales")).await.unwrap().result.unwrap();
    let cut = *cluster.nodes.keys().find(|s| **s != leader).unwrap();
    let rest: Vec<u64> = cluster.nodes.keys().copied().filter(|s| *s != cut).collect();
    let cut_at = Instant::now();
    for filter in Filter::partition(&[cut], &rest) {
        cluster.network.add_filter(filter);
    }
    Cut { cluster, leader, cut, cut_at, site_backs }
}

/// Waits (bounded) until `node`'s island watch is in `phase`; answers the state.
async fn await_island_phase(node: &ClusterNode<MemoryTransport>, phase: IslandPhase) -> IslandWatch {
    let mut watch = node.island().subscribe();
    let seen = tokio::time::timeout(WAIT, watch.wait_for(|state| state.phase() == phase)).await;
    match seen {
        Ok(Ok(state)) => *state,
        _ => panic!("site {} was not {phase:?} within {WAIT:?}: {:?}", node.site(), node.island().state()),
    }
}

async fn await_unreachable_at_leader(cut: &Cut) {
    let leader = &cut.cluster.nodes[&cut.leader];
    let deadline = Instant::now() + WAIT;
    while !leader.read_stale(|r| r.is_site_unreachable(SiteId(cut.cut))) {
        assert!(Instant::now() < deadline, "the leader did not mark site {} unreachable", cut.cut);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_follower_is_an_island_after_island_after_ms_and_the_majority_is_not() {
    let cut = cut_a_follower("island-watch-cut").await;
    let node = &cut.cluster.nodes[&cut.cut];
    let IslandWatch::Island { since } = await_island_phase(node, IslandPhase::Island).await else { unreachable!() };
    // Its last contact was at most a heartbeat (and a delivery) before the cut.
    let waited = since.duration_since(cut.cut_at);
    let earliest = Duration::from_millis(ISLAND.island_after_ms - 2 * HEARTBEAT_MS);
    assert!(waited >= earliest, "an island {waited:?} after the cut, before {earliest:?}");
    for (site, other) in &cut.cluster.nodes {
        if *site != cut.cut {
            assert_eq!(other.island().state(), IslandWatch::None, "site {site} hears the quorum");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healed_island_reports_healed_after_the_stable_time_and_only_then_comes_back() {
    let cut = cut_a_follower("island-watch-heal").await;
    let node = &cut.cluster.nodes[&cut.cut];
    await_island_phase(node, IslandPhase::Island).await;
    await_unreachable_at_leader(&cut).await;
    let healed_link_at = Instant::now();
    cut.cluster.network.clear_filters();
    let IslandWatch::Healed { healed_at, .. } = await_island_phase(node, IslandPhase::Healed).await else {
        unreachable!()
    };
    let stable = Duration::from_millis(ISLAND_HEAL_STABLE_MS);
    assert!(healed_at.duration_since(healed_link_at) >= stable, "healed before {stable:?} of heartbeats");
    // Healed without an epoch (it forked nothing): the leader brings it back, not before.
    let leader = &cut.cluster.nodes[&cut.leader];
    let deadline = Instant::now() + WAIT;
    while leader.read_stale(|r| r.is_site_unreachable(SiteId(cut.cut))) {
        assert!(Instant::now() < deadline, "site {} never came back", cut.cut);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let backs = cut.site_backs.lock().unwrap().clone();
    let first_back = backs
        .iter()
        .find(|(node, site, _)| *node == cut.leader && *site == cut.cut)
        .map(|(_, _, at)| *at)
        .expect("a SiteBack applied at the leader");
    assert!(first_back >= healed_at, "brought back {:?} before it healed", healed_at.duration_since(first_back));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_never_brings_back_a_site_that_answers_with_an_open_island() {
    let cut = cut_a_follower("island-watch-gate").await;
    let node = &cut.cluster.nodes[&cut.cut];
    await_island_phase(node, IslandPhase::Island).await;
    // What the island proposer does when it forks (a later step): the epoch is open.
    let epoch = IslandEpoch { site: SiteId(cut.cut), seq: 1, fork_index: node.applied_index() };
    node.island().set_epoch(Some(epoch));
    await_unreachable_at_leader(&cut).await;
    cut.cluster.network.clear_filters();
    // Heard again for the whole stable time: the leader's duty ran a dozen times meanwhile.
    await_island_phase(node, IslandPhase::Healed).await;
    let leader = &cut.cluster.nodes[&cut.leader];
    let heard_since = Instant::now();
    let deadline = heard_since + WAIT;
    while leader.lease_from(cut.cut).is_none_or(|lease| lease.sent_at <= heard_since) {
        assert!(Instant::now() < deadline, "the leader did not hear site {} again", cut.cut);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A write through the log, so everything the duty proposed before it is applied.
    leader.propose(queue_config("after-heal")).await.unwrap().result.unwrap();
    assert!(leader.read_stale(|r| r.is_site_unreachable(SiteId(cut.cut))), "an open island stays unreachable");
    assert!(
        cut.site_backs.lock().unwrap().iter().all(|(_, site, _)| *site != cut.cut),
        "SiteBack for site {} while it answered {epoch:?}",
        cut.cut
    );
    // Merged (a later step closes the epoch): now it is brought back, so the leader did ask.
    node.island().set_epoch(None);
    let deadline = Instant::now() + WAIT;
    while leader.read_stale(|r| r.is_site_unreachable(SiteId(cut.cut))) {
        assert!(Instant::now() < deadline, "site {} never came back after its epoch closed", cut.cut);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
