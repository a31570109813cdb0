//! Island mode in the cluster tests: a node file with island mode on and forking, fast
//! timings that keep the island-mode inequality, commands stamped with the wall clock, and a
//! bounded wait for a fork.

use lineup_cluster::island::IslandProposer;
use lineup_cluster::island_watch::IslandPhase;
use lineup_cluster::lease::IslandTiming;
use lineup_cluster::transport::memory::{Filter, MemoryTransport};
use lineup_cluster::{ClusterNode, NodeConfig};
use lineup_core::{Command, CommandBody, OperatorId};

use super::{await_leader, await_state, memory_cluster, operator_config, queue_config, MemoryCluster, WAIT};

pub const ISLAND_HEARTBEAT_MS: u64 = 100;
pub const ISLAND_UNREACHABLE_AFTER_MS: u64 = 1_000;
/// 1,500 / 1.001 > 1,000 / 0.999 + 200 + 100: the island-mode inequality holds.
pub const ISLAND: IslandTiming =
    IslandTiming { island_after_ms: 1_500, clock_rate_drift_max_ppm: 1_000, pause_margin_ms: 100 };

/// `config` with island mode on (and forking) and timings that reach an island quickly.
pub fn forking_island_config(mut config: NodeConfig) -> NodeConfig {
    config.timing.heartbeat_interval_ms = ISLAND_HEARTBEAT_MS;
    config.timing.election_timeout_min_ms = 400;
    config.timing.election_timeout_max_ms = 800;
    config.timing.site_unreachable_after_ms = ISLAND_UNREACHABLE_AFTER_MS;
    config.island = Some(ISLAND);
    config.island_fork = true;
    config
}

pub use lineup_util::now_ms as wall_ms;

/// `body` as a command of `node`, stamped with the wall clock.
pub fn command(node: &ClusterNode<MemoryTransport>, body: CommandBody) -> Command {
    Command { id: node.next_command_id(), at_ms: wall_ms(), body }
}

/// Waits (bounded) until `node` is an island serving a fork; answers its proposer.
pub async fn await_fork(node: &ClusterNode<MemoryTransport>) -> IslandProposer {
    let mut watch = node.island().subscribe();
    let island = tokio::time::timeout(WAIT, watch.wait_for(|state| state.phase() == IslandPhase::Island)).await;
    assert!(matches!(island, Ok(Ok(_))), "site {} was no island within {WAIT:?}", node.site());
    let mut routes = node.site_route_changes();
    let forked = tokio::time::timeout(WAIT, routes.wait_for(|_| node.island_proposer().is_some())).await;
    assert!(matches!(forked, Ok(Ok(_))), "site {} did not fork within {WAIT:?}", node.site());
    node.island_proposer().expect("a fork is served")
}

/// A three-site cluster whose follower `cut` is cut off both ways from the `rest` (the
/// leader among them).
pub struct CutFollower {
    pub cluster: MemoryCluster,
    pub leader: u64,
    pub cut: u64,
    pub rest: Vec<u64>,
}

/// A three-site cluster made with `config`, every Asterisk connected, a queue `sales` and
/// the operator alice at one follower's site, which is then cut off both ways.
pub async fn cut_a_follower_with_alice(name: &str, config: impl Fn(NodeConfig) -> NodeConfig) -> CutFollower {
    let cluster = memory_cluster(name, &[1, 2, 3], config).await;
    for node in cluster.nodes.values() {
        node.island().set_ari_connected(true);
    }
    let nodes: Vec<_> = cluster.nodes.values().collect();
    let leader = await_leader(&nodes).await;
    let cut = *cluster.nodes.keys().find(|s| **s != leader).unwrap();
    let rest: Vec<u64> = cluster.nodes.keys().copied().filter(|s| *s != cut).collect();
    let majority = &cluster.nodes[&leader];
    majority.propose(queue_config("sales")).await.unwrap().result.unwrap();
    majority.propose(operator_config("alice", cut, "sales")).await.unwrap().result.unwrap();
    let node = &cluster.nodes[&cut];
    await_state(node, "alice configured", |r| r.operators().any(|o| o.operator == OperatorId::new("alice"))).await;
    // The fork's clock starts at the applied state's last Tick: cut after one from the wall
    // clock, or the offers the fork makes would expire at once against the majority's clock.
    let configured_at_ms = wall_ms();
    await_state(node, "a Tick applied", move |r| r.now_ms() >= configured_at_ms).await;
    for filter in Filter::partition(&[cut], &rest) {
        cluster.network.add_filter(filter);
    }
    CutFollower { cluster, leader, cut, rest }
}
