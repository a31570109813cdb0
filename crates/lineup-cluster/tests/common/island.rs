//! Island mode in the cluster tests: a node file with island mode on and forking, fast
//! timings that keep the island-mode inequality, commands stamped with the wall clock, and a
//! bounded wait for a fork.

use lineup_cluster::island::IslandProposer;
use lineup_cluster::island_watch::IslandPhase;
use lineup_cluster::lease::IslandTiming;
use lineup_cluster::transport::memory::MemoryTransport;
use lineup_cluster::{ClusterNode, NodeConfig};
use lineup_core::{Command, CommandBody};

use super::WAIT;

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
