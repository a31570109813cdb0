//! `lineup bench cluster`: real nodes over QUIC on loopback (fsync on), optionally through
//! the UDP relay for a WAN round trip, measuring what issue 3 asks for.
//!
//! - `commits_per_sec`: `Tick` commands submitted at the leader with many in flight.
//! - `enqueue_to_offer_ms_*`: from submitting an Enqueue at a site (an operator already
//!   waiting at the last site) until the Enqueue, and so its Offer, is applied at every
//!   site. Samples enter at every site in turn, as callers do, and are also reported split
//!   by whether the entering site led at the time: a write entering at a follower is
//!   forwarded to the leader first, which costs half a round trip more, and both are bound
//!   below by Raft itself (see docs/BENCHMARKS.md).
//! - `leader_kill_to_offer_ms`: from stopping the leader until an Enqueue submitted at a
//!   surviving site is applied, with its Offer, at every surviving site.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lineup_core::{
    CallId, CommandBody, Enqueue, OperatorConfig, OperatorId, OperatorMode, QueueConfig, QueueId, SiteId,
};
use lineup_util::percentile;
use serde::Serialize;

use crate::certs::{generate_ca, issue_site_material, SiteIdentity};
use crate::node::{ClusterNode, NodeConfig};
use crate::relay::{LinkConditions, UdpRelay};
use crate::transport::quic::QuicTransport;
use crate::ClusterError;

/// Bound on each wait inside the benchmark (leader election, replication).
pub const BENCH_WAIT_MS: u64 = 30_000;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Sites in the cluster (1, 3 or 5).
    pub nodes: usize,
    /// Round trip added between sites by the UDP relay (0: direct loopback).
    pub rtt_ms: u64,
    /// Commands for the throughput phase.
    pub commands: usize,
    /// Commands in flight during the throughput phase.
    pub in_flight: usize,
    /// Enqueue→offer samples.
    pub offer_samples: usize,
    /// Where the nodes' redb files go (removed afterwards).
    pub data_dir: PathBuf,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            nodes: 3,
            rtt_ms: 0,
            commands: 20_000,
            in_flight: 512,
            offer_samples: 200,
            data_dir: std::env::temp_dir().join(format!("lineup-bench-{}", std::process::id())),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub nodes: usize,
    pub rtt_ms: u64,
    pub commands: usize,
    pub commits_per_sec: f64,
    pub enqueue_to_offer_ms_p50: f64,
    pub enqueue_to_offer_ms_p99: f64,
    /// The samples that entered at the leader's site (None if there were none).
    pub enqueue_at_leader_to_offer_ms_p50: Option<f64>,
    /// The samples that entered at a follower's site, forwarded to the leader.
    pub enqueue_at_follower_to_offer_ms_p50: Option<f64>,
    pub leader_kill_to_offer_ms: f64,
}

struct BenchSite {
    node: Arc<ClusterNode<QuicTransport>>,
    _relay: Option<UdpRelay>,
}

fn wait() -> Duration {
    Duration::from_millis(BENCH_WAIT_MS)
}

fn bench_err(what: &str, e: impl Into<crate::error::ErrorSource>) -> ClusterError {
    ClusterError::raft(format!("bench: {what}"), e)
}

async fn start_sites(options: &BenchOptions) -> Result<BTreeMap<u64, BenchSite>, ClusterError> {
    let ca = generate_ca()?;
    let mut transports = BTreeMap::new();
    let mut members = BTreeMap::new();
    let mut relays = BTreeMap::new();
    for site in 1..=options.nodes as u64 {
        let identity = SiteIdentity::from_material(&issue_site_material(&ca, site)?)?;
        let transport = QuicTransport::bind(&identity, "127.0.0.1:0".parse().expect("a valid literal address"))?;
        let direct = transport.local_addr()?;
        let addr = if options.rtt_ms > 0 {
            let one_way = LinkConditions { delay_ms: options.rtt_ms / 2, ..LinkConditions::default() };
            let relay = UdpRelay::start(direct, one_way).await?;
            let addr = relay.local_addr();
            relays.insert(site, relay);
            addr
        } else {
            direct
        };
        members.insert(site, addr.to_string());
        transports.insert(site, transport);
    }
    let mut sites = BTreeMap::new();
    for (site, transport) in transports {
        let config = NodeConfig::new(site, options.data_dir.join(format!("site-{site}")));
        let node = ClusterNode::start(config, transport).await?;
        sites.insert(site, BenchSite { node, _relay: relays.remove(&site) });
    }
    for site in sites.values() {
        site.node.bootstrap(&members).await?;
    }
    Ok(sites)
}

async fn leader_of(sites: &BTreeMap<u64, BenchSite>) -> Result<u64, ClusterError> {
    let any = sites.values().next().ok_or_else(|| bench_err("sites", "none"))?;
    let metrics = any
        .node
        .raft()
        .wait(Some(wait()))
        .metrics(|m| m.current_leader.is_some_and(|l| sites.contains_key(&l)), "bench leader")
        .await
        .map_err(|e| bench_err("leader", e))?;
    metrics.current_leader.ok_or_else(|| bench_err("leader", "none"))
}

async fn await_applied_everywhere(sites: &BTreeMap<u64, BenchSite>, index: u64) -> Result<(), ClusterError> {
    for site in sites.values() {
        site.node
            .raft()
            .wait(Some(wait()))
            .applied_index_at_least(Some(index), "bench apply")
            .await
            .map_err(|e| bench_err("apply", e))?;
    }
    Ok(())
}

fn enqueue(call: String, site: u64) -> CommandBody {
    CommandBody::Enqueue(Enqueue {
        call: CallId::new(call.clone()),
        queue: QueueId::new("bench"),
        gate: None,
        priority: None,
        caller_number: "0".into(),
        caller_name: "bench".into(),
        site: SiteId(site),
        channel: Some(format!("ch-{call}")),
        skills: BTreeMap::new(),
        callback_number: None,
    })
}

async fn add_operator(node: &ClusterNode<QuicTransport>, name: &str, site: u64) -> Result<(), ClusterError> {
    let config = OperatorConfig {
        id: OperatorId::new(name),
        name: name.to_string(),
        site: SiteId(site),
        mode: OperatorMode::Persistent,
        memberships: [(QueueId::new("bench"), 0u8)].into_iter().collect(),
        ..Default::default()
    };
    node.propose(CommandBody::PutOperator(config)).await?.result.map_err(|e| bench_err("operator", e))?;
    let login = CommandBody::OperatorLogin {
        operator: OperatorId::new(name),
        site: SiteId(site),
        channel: Some(format!("op-{name}")),
    };
    node.propose(login).await?.result.map_err(|e| bench_err("login", e))?;
    Ok(())
}

/// Submits an Enqueue at `at` and returns the time until it is applied at every site.
async fn time_enqueue_to_offer(
    sites: &BTreeMap<u64, BenchSite>,
    at: &ClusterNode<QuicTransport>,
    call: String,
    started: Instant,
) -> Result<f64, ClusterError> {
    let committed = at.propose(enqueue(call, at.site())).await?;
    committed.result.map_err(|e| bench_err("enqueue", e))?;
    let offer = committed
        .effects
        .iter()
        .find_map(|e| match e {
            lineup_core::Effect::Offer(offer) => Some(offer.clone()),
            _ => None,
        })
        .ok_or_else(|| bench_err("enqueue", "no offer was made"))?;
    let index = committed.apply_index.ok_or_else(|| bench_err("enqueue", "no apply index"))?;
    await_applied_everywhere(sites, crate::batch::log_index_of(index)).await?;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1_000.0;
    // Finish the call (not measured), so no unanswered offer expires and takes the next
    // sample's operator.
    let connected = CommandBody::Connected { call: offer.call.clone(), operator: offer.operator, fence: offer.fence };
    at.propose(connected).await?.result.map_err(|e| bench_err("connect", e))?;
    let completed =
        CommandBody::Completed { call: offer.call, fence: offer.fence, by: lineup_core::HungUpBy::Operator };
    at.propose(completed).await?.result.map_err(|e| bench_err("complete", e))?;
    Ok(elapsed_ms)
}

/// Runs the benchmark and returns its figures. Needs a multi-threaded tokio runtime.
pub async fn run_cluster_bench(options: BenchOptions) -> Result<BenchReport, ClusterError> {
    if ![1, 3, 5].contains(&options.nodes) {
        return Err(ClusterError::Config {
            what: format!("bench runs 1, 3 or 5 sites, not {}", options.nodes),
            source: None,
        });
    }
    let _ = std::fs::remove_dir_all(&options.data_dir);
    let mut sites = start_sites(&options).await?;
    let leader = leader_of(&sites).await?;
    let leader_node = sites[&leader].node.clone();
    leader_node.propose(CommandBody::PutQueue(QueueConfig { id: QueueId::new("bench"), ..Default::default() })).await?;
    let (committed, commits_per_sec) = measure_throughput(&leader_node, &options).await;
    let offers = measure_enqueue_to_offer(&sites, options.offer_samples).await?;
    let median = |sorted: &[f64]| (!sorted.is_empty()).then(|| percentile(sorted, 0.50));
    let leader_kill_to_offer_ms = if options.nodes > 1 { measure_failover(&mut sites).await? } else { 0.0 };
    for site in sites.values() {
        site.node.shutdown().await;
        site.node.transport().shutdown().await;
    }
    drop(sites);
    let _ = std::fs::remove_dir_all(&options.data_dir);
    Ok(BenchReport {
        nodes: options.nodes,
        rtt_ms: options.rtt_ms,
        commands: committed,
        commits_per_sec,
        enqueue_to_offer_ms_p50: percentile(&offers.all, 0.50),
        enqueue_to_offer_ms_p99: percentile(&offers.all, 0.99),
        enqueue_at_leader_to_offer_ms_p50: median(&offers.at_leader),
        enqueue_at_follower_to_offer_ms_p50: median(&offers.at_follower),
        leader_kill_to_offer_ms,
    })
}

/// Proposes `options.commands` Ticks at the leader, `options.in_flight` at a time: the
/// commands committed and the commits per second.
async fn measure_throughput(leader_node: &Arc<ClusterNode<QuicTransport>>, options: &BenchOptions) -> (usize, f64) {
    let started = Instant::now();
    let mut in_flight = tokio::task::JoinSet::new();
    let mut committed = 0usize;
    for _ in 0..options.commands {
        if in_flight.len() >= options.in_flight.max(1) {
            if let Some(done) = in_flight.join_next().await {
                committed += usize::from(matches!(done, Ok(Ok(_))));
            }
        }
        let node = leader_node.clone();
        in_flight.spawn(async move { node.propose(CommandBody::Tick { now_ms: lineup_util::now_ms() }).await });
    }
    while let Some(done) = in_flight.join_next().await {
        committed += usize::from(matches!(done, Ok(Ok(_))));
    }
    (committed, committed as f64 / started.elapsed().as_secs_f64())
}

/// Enqueue→offer samples in milliseconds, each sorted: all, and split by whether the
/// caller's site led at the time.
struct OfferSamples {
    all: Vec<f64>,
    at_leader: Vec<f64>,
    at_follower: Vec<f64>,
}

/// Enqueues at each site in turn, an operator waiting at the last one.
async fn measure_enqueue_to_offer(
    sites: &BTreeMap<u64, BenchSite>,
    samples: usize,
) -> Result<OfferSamples, ClusterError> {
    let site_ids: Vec<u64> = sites.keys().copied().collect();
    let last = *site_ids.last().ok_or_else(|| bench_err("sites", "none"))?;
    let mut offers = OfferSamples { all: Vec::with_capacity(samples), at_leader: Vec::new(), at_follower: Vec::new() };
    for i in 0..samples {
        add_operator(&sites[&last].node, &format!("op{i}"), last).await?;
        let caller_node = sites[&site_ids[i % site_ids.len()]].node.clone();
        let leads = caller_node.raft().metrics().borrow().current_leader == Some(caller_node.site());
        let elapsed_ms = time_enqueue_to_offer(sites, &caller_node, format!("call{i}"), Instant::now()).await?;
        offers.all.push(elapsed_ms);
        if leads {
            offers.at_leader.push(elapsed_ms);
        } else {
            offers.at_follower.push(elapsed_ms);
        }
    }
    for sorted in [&mut offers.all, &mut offers.at_leader, &mut offers.at_follower] {
        sorted.sort_by(|a, b| a.total_cmp(b));
    }
    Ok(offers)
}

/// Failover: an operator waits at a surviving site; the leader is stopped (and removed from
/// `sites`); the time until an Enqueue at the survivor is offered everywhere left.
async fn measure_failover(sites: &mut BTreeMap<u64, BenchSite>) -> Result<f64, ClusterError> {
    // Leadership may have moved under load: kill whoever leads now.
    let leader = leader_of(sites).await?;
    sites[&leader]
        .node
        .raft()
        .wait(Some(wait()))
        .state(openraft::ServerState::Leader, "bench leader confirmed")
        .await
        .map_err(|e| bench_err("leader", e))?;
    let survivor = *sites.keys().find(|s| **s != leader).ok_or_else(|| bench_err("sites", "none"))?;
    add_operator(&sites[&survivor].node, "failover-op", survivor).await?;
    let killed = sites.remove(&leader).ok_or_else(|| bench_err("sites", "leader gone"))?;
    // The leader's links die first (as in a crash); its process winds down meanwhile.
    let killed_at = Instant::now();
    killed.node.transport().close();
    let winding_down = tokio::spawn(async move {
        killed.node.shutdown().await;
        killed.node.transport().shutdown().await;
    });
    let survivor_node = sites[&survivor].node.clone();
    let elapsed_ms = time_enqueue_to_offer(sites, &survivor_node, "failover-call".into(), killed_at).await?;
    let _ = winding_down.await;
    Ok(elapsed_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_benchmark_reports_every_figure() {
        let options = BenchOptions {
            commands: 300,
            in_flight: 64,
            offer_samples: 10,
            data_dir: std::env::temp_dir().join(format!("lineup-bench-test-{}", std::process::id())),
            ..BenchOptions::default()
        };
        let report = run_cluster_bench(options).await.unwrap();
        eprintln!("{report:?}");
        assert_eq!(report.commands, 300);
        assert!(report.commits_per_sec > 0.0);
        assert!(report.enqueue_to_offer_ms_p50 > 0.0);
        assert!(report.enqueue_to_offer_ms_p99 >= report.enqueue_to_offer_ms_p50);
        // Ten samples over three sites in turn: some entered at the leader, some did not.
        assert!(report.enqueue_at_leader_to_offer_ms_p50.is_some_and(|ms| ms > 0.0));
        assert!(report.enqueue_at_follower_to_offer_ms_p50.is_some_and(|ms| ms > 0.0));
        assert!(report.leader_kill_to_offer_ms > 0.0);
    }
}
