//! A node whose wall clock is hours off breaks nothing: as leader it slews the shared clock
//! at real rate (waiting callers keep their full wait) and raises the clock alarm; a cluster
//! whose clocks all agree still steps the shared clock to them.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use lineup_cluster::transport::memory::MemoryTransport;
use lineup_cluster::{ClusterNode, WallClock};
use lineup_core::*;

const HOUR_MS: i64 = 3_600_000;
/// How far the shared clock may be from true time in these runs.
const SHARED_CLOCK_TOLERANCE_MS: u64 = 3_000;
/// Real time the skewed leader leads while the test watches.
const LEADING_FOR_MS: u64 = 3_000;
/// Bound on rounds of asking the skewed node to stand for election.
const ELECTION_ROUNDS: usize = 20;

fn true_now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// A wall clock `offset_ms` off true time, advancing in real time.
fn clock_off_by(offset_ms: i64) -> WallClock {
    WallClock::Tokio { unix_ms: (true_now_ms() as i64 + offset_ms) as u64, instant: tokio::time::Instant::now() }
}

fn shared_now_ms(node: &ClusterNode<MemoryTransport>) -> u64 {
    node.read_stale(|r| r.now_ms())
}

/// Asks `site` to stand for election until it leads (bounded).
async fn make_leader(cluster: &MemoryCluster, site: u64) {
    let nodes: Vec<_> = cluster.nodes.values().collect();
    for _ in 0..ELECTION_ROUNDS {
        if await_leader(&nodes).await == site {
            return;
        }
        cluster.nodes[&site].raft().trigger().elect().await.unwrap();
        let _ = cluster.nodes[&site]
            .raft()
            .wait(Some(Duration::from_secs(2)))
            .current_leader(site, "the skewed node leads")
            .await;
    }
    panic!("site {site} did not become leader in {ELECTION_ROUNDS} rounds");
}

async fn a_skewed_leader_breaks_nothing(name: &str, offset_ms: i64) {
    let cluster = memory_cluster(name, &[1, 2, 3], |mut config| {
        if config.site == 1 {
            config.clock = clock_off_by(offset_ms);
        }
        config
    })
    .await;
    let follower = Arc::clone(&cluster.nodes[&2]);
    // A right leader sets the shared clock first (a fresh cluster's clock starts at zero).
    let nodes: Vec<_> = cluster.nodes.values().collect();
    if await_leader(&nodes).await == 1 {
        // One election asked of site 2 may be won by another: site 1 stops hearing a leader
        // when site 2 stands, and may stand again itself; ask until site 2 leads.
        make_leader(&cluster, 2).await;
    }
    await_state(&follower, "the shared clock at true time", |r| r.now_ms().abs_diff(true_now_ms()) < 1_000).await;
    let queue = QueueConfig { id: QueueId::new("sales"), max_wait_ms: Some(60_000), ..Default::default() };
    follower.propose(CommandBody::PutQueue(queue)).await.unwrap().result.unwrap();
    follower.propose(enqueue("c1", "sales", 2)).await.unwrap().result.unwrap();

    make_leader(&cluster, 1).await;
    let skewed = Arc::clone(&cluster.nodes[&1]);
    let start_ms = shared_now_ms(&follower);
    await_state(&follower, "the skewed leader ticked for a while", move |r| r.now_ms() >= start_ms + LEADING_FOR_MS)
        .await;

    let shared = shared_now_ms(&follower);
    assert!(
        shared.abs_diff(true_now_ms()) <= SHARED_CLOCK_TOLERANCE_MS,
        "shared clock {} ms off true time",
        shared as i64 - true_now_ms() as i64
    );
    assert_eq!(follower.read_stale(|r| r.waiting_count()), 1, "the caller was timed out early");
    assert_eq!(skewed.raft().metrics().borrow().current_leader, Some(1));
    let alarm = skewed.clock_alarm().expect("the skewed leader raises the clock alarm");
    assert!(alarm.contains("wall clock"), "{alarm}");
    assert_eq!(follower.clock_alarm(), None);
    for node in cluster.nodes.values() {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_three_hours_ahead_breaks_nothing() {
    a_skewed_leader_breaks_nothing("clock-ahead", 3 * HOUR_MS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_three_hours_behind_breaks_nothing() {
    a_skewed_leader_breaks_nothing("clock-behind", -3 * HOUR_MS).await;
}

/// The whole cluster was down for an hour: every clock agrees and is an hour ahead of the
/// shared clock, so the shared clock steps to them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_whole_cluster_restart_the_shared_clock_steps_to_agreeing_clocks() {
    let hour_ago = clock_off_by(-HOUR_MS);
    let mut cluster = memory_cluster("clock-restart", &[1, 2, 3], |mut config| {
        config.clock = hour_ago;
        config
    })
    .await;
    let probe = Arc::clone(&cluster.nodes[&1]);
    let hour_ago_ms = true_now_ms() - HOUR_MS as u64;
    await_state(&probe, "the shared clock an hour ago", move |r| r.now_ms() >= hour_ago_ms).await;
    drop(probe);
    for (site, node) in std::mem::take(&mut cluster.nodes) {
        cluster.network.disconnect(site);
        node.shutdown().await;
    }
    for site in [1, 2, 3] {
        let mut config = node_config(&cluster.dir, site, fast_timing());
        config.clock = clock_off_by(0);
        let node = ClusterNode::start(config, cluster.network.transport(site)).await.unwrap();
        cluster.nodes.insert(site, node);
    }
    let node = Arc::clone(&cluster.nodes[&2]);
    await_state(&node, "the restarted state, an hour behind", move |r| {
        r.now_ms() >= hour_ago_ms && r.now_ms() < hour_ago_ms + SHARED_CLOCK_TOLERANCE_MS
    })
    .await;
    eprintln!("restarted at {} ms behind", true_now_ms() as i64 - shared_now_ms(&node) as i64);
    await_state(&node, "the shared clock steps to the agreeing clocks", |r| {
        r.now_ms().abs_diff(true_now_ms()) < SHARED_CLOCK_TOLERANCE_MS
    })
    .await;
    for node in cluster.nodes.values() {
        node.shutdown().await;
    }
}
