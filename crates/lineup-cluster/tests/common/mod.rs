//! Shared test harness: clusters of real nodes on loopback QUIC or on the in-memory network,
//! with short timings and temporary data directories.
#![allow(dead_code)]

pub mod island;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lineup_cluster::certs::{generate_ca, issue_site_material, CaMaterial, SiteIdentity};
use lineup_cluster::relay::{LinkConditions, UdpRelay};
use lineup_cluster::transport::memory::{MemoryNetwork, MemoryTransport};
use lineup_cluster::transport::quic::QuicTransport;
use lineup_cluster::transport::PeerTransport;
use lineup_cluster::{ClusterNode, ClusterTiming, NodeConfig, SiteEffect};
use lineup_core::*;
use tokio::sync::broadcast;

/// Bound on every wait in these tests.
pub const WAIT: Duration = Duration::from_secs(20);

pub fn fast_timing() -> ClusterTiming {
    ClusterTiming {
        heartbeat_interval_ms: 50,
        election_timeout_min_ms: 300,
        election_timeout_max_ms: 600,
        tick_interval_ms: 200,
        // Longer than any test here runs: a loaded CI machine must not call a slow site
        // unreachable or lost mid-test. Tests that exercise them set their own (t70).
        site_unreachable_after_ms: 30_000,
        site_lost_after_ms: 60_000,
        client_write_timeout_ms: 2_000,
    }
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "lineup-cluster-{name}-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn site(&self, site: u64) -> PathBuf {
        self.0.join(format!("site-{site}"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn node_config(dir: &TempDir, site: u64, timing: ClusterTiming) -> NodeConfig {
    let mut config = NodeConfig::new(site, dir.site(site));
    config.timing = timing;
    config
}

pub fn identity(ca: &CaMaterial, site: u64) -> SiteIdentity {
    SiteIdentity::from_material(&issue_site_material(ca, site).unwrap()).unwrap()
}

pub struct QuicCluster {
    pub ca: CaMaterial,
    pub dir: TempDir,
    pub nodes: BTreeMap<u64, Arc<ClusterNode<QuicTransport>>>,
    pub addrs: BTreeMap<u64, String>,
}

/// Starts `sites` nodes on loopback QUIC and bootstraps them as one cluster.
pub async fn quic_cluster(name: &str, sites: &[u64], timing: ClusterTiming) -> QuicCluster {
    quic_cluster_behind_relays(name, sites, timing, None).await.0
}

/// Like [`quic_cluster`], with every site reachable only through a UDP relay that delays
/// each direction by `one_way_delay_ms` (when given). Returns the relays by site.
pub async fn quic_cluster_behind_relays(
    name: &str,
    sites: &[u64],
    timing: ClusterTiming,
    one_way_delay_ms: Option<u64>,
) -> (QuicCluster, BTreeMap<u64, UdpRelay>) {
    lineup_cluster::transport::quic::install_crypto_provider();
    let ca = generate_ca().unwrap();
    let dir = TempDir::new(name);
    let mut transports = BTreeMap::new();
    let mut addrs = BTreeMap::new();
    let mut relays = BTreeMap::new();
    for &site in sites {
        let transport = QuicTransport::bind(&identity(&ca, site), "127.0.0.1:0".parse().unwrap()).unwrap();
        let direct = transport.local_addr().unwrap();
        let addr = match one_way_delay_ms {
            Some(delay_ms) => {
                let relay = UdpRelay::start(direct, LinkConditions { delay_ms, ..Default::default() }).await.unwrap();
                let addr = relay.local_addr();
                relays.insert(site, relay);
                addr
            }
            None => direct,
        };
        addrs.insert(site, addr.to_string());
        transports.insert(site, transport);
    }
    let mut nodes = BTreeMap::new();
    for (site, transport) in transports {
        let node = ClusterNode::start(node_config(&dir, site, timing.clone()), transport).await.unwrap();
        nodes.insert(site, node);
    }
    for node in nodes.values() {
        node.bootstrap(&addrs).await.unwrap();
    }
    (QuicCluster { ca, dir, nodes, addrs }, relays)
}

pub struct MemoryCluster {
    pub network: MemoryNetwork,
    pub dir: TempDir,
    pub nodes: BTreeMap<u64, Arc<ClusterNode<MemoryTransport>>>,
    pub members: BTreeMap<u64, String>,
}

pub async fn memory_cluster(name: &str, sites: &[u64], config: impl Fn(NodeConfig) -> NodeConfig) -> MemoryCluster {
    let network = MemoryNetwork::new(42);
    let dir = TempDir::new(name);
    let members: BTreeMap<u64, String> = sites.iter().map(|s| (*s, format!("memory:{s}"))).collect();
    let mut nodes = BTreeMap::new();
    for &site in sites {
        let node =
            ClusterNode::start(config(node_config(&dir, site, fast_timing())), network.transport(site)).await.unwrap();
        nodes.insert(site, node);
    }
    for node in nodes.values() {
        node.bootstrap(&members).await.unwrap();
    }
    MemoryCluster { network, dir, nodes, members }
}

/// Rounds of "find a leader, check everyone agrees" in [`await_leader`] (an early
/// election can be superseded while we look).
const LEADER_AGREEMENT_ROUNDS: usize = 10;

/// Waits until all of `nodes` agree on one leader that is among them.
pub async fn await_leader<T: PeerTransport>(nodes: &[&Arc<ClusterNode<T>>]) -> u64 {
    let sites: Vec<u64> = nodes.iter().map(|n| n.site()).collect();
    for _round in 0..LEADER_AGREEMENT_ROUNDS {
        let metrics = nodes[0]
            .raft()
            .wait(Some(WAIT))
            .metrics(|m| m.current_leader.is_some_and(|l| sites.contains(&l)), "a leader among the nodes")
            .await
            .expect("a leader within the bound");
        let leader = metrics.current_leader.unwrap();
        let mut agreed = true;
        for node in nodes {
            let wait = node.raft().wait(Some(Duration::from_secs(2)));
            if wait.current_leader(leader, "agree on leader").await.is_err() {
                agreed = false;
                break;
            }
        }
        if agreed {
            return leader;
        }
    }
    panic!("sites {sites:?} did not agree on a leader in {LEADER_AGREEMENT_ROUNDS} rounds");
}

pub async fn await_applied<T: PeerTransport>(node: &ClusterNode<T>, index: u64) {
    node.raft()
        .wait(Some(WAIT))
        .applied_index_at_least(Some(index), "applied")
        .await
        .unwrap_or_else(|e| panic!("site {} did not apply {index}: {e}", node.site()));
}

/// Waits until the node has applied the command with this apply index (a fence, or
/// `Committed::apply_index`).
pub async fn await_applied_command<T: PeerTransport>(node: &ClusterNode<T>, apply_index: u64) {
    await_applied(node, lineup_cluster::batch::log_index_of(apply_index)).await;
}

pub fn queue_config(id: &str) -> CommandBody {
    CommandBody::PutQueue(QueueConfig { id: QueueId::new(id), ..Default::default() })
}

pub fn operator_config(id: &str, site: u64, queue: &str) -> CommandBody {
    CommandBody::PutOperator(OperatorConfig {
        id: OperatorId::new(id),
        name: id.to_string(),
        site: SiteId(site),
        pin_hash: String::new(),
        mode: OperatorMode::Persistent,
        endpoint: None,
        skills: BTreeMap::new(),
        memberships: [(QueueId::new(queue), 0u8)].into_iter().collect(),
    })
}

pub fn login(id: &str, site: u64) -> CommandBody {
    CommandBody::OperatorLogin { operator: OperatorId::new(id), site: SiteId(site), channel: Some(format!("op-{id}")) }
}

pub fn enqueue(call: &str, queue: &str, site: u64) -> CommandBody {
    CommandBody::Enqueue(Enqueue {
        call: CallId::new(call),
        queue: QueueId::new(queue),
        gate: None,
        priority: None,
        caller_number: "5551234".into(),
        caller_name: "Caller".into(),
        site: SiteId(site),
        channel: Some(format!("ch-{call}")),
        skills: BTreeMap::new(),
        callback_number: None,
    })
}

pub fn offers(effects: &[Effect]) -> Vec<Offer> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Offer(offer) => Some(offer.clone()),
            _ => None,
        })
        .collect()
}

/// Receives from an effect stream until an Offer for `call` arrives (bounded by [`WAIT`]).
pub async fn next_offer_for(stream: &mut broadcast::Receiver<SiteEffect>, call: &str) -> (u64, Offer) {
    let wanted = CallId::new(call);
    tokio::time::timeout(WAIT, async {
        loop {
            match stream.recv().await {
                Ok(SiteEffect { apply_index, effect: Effect::Offer(offer) }) if offer.call == wanted => {
                    return (apply_index, offer)
                }
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => panic!("effect stream closed"),
            }
        }
    })
    .await
    .expect("an offer within the bound")
}

/// Waits (bounded by [`WAIT`]) until `predicate` holds on the node's applied state. It is
/// re-checked whenever the node's Raft metrics change (every apply changes them).
pub async fn await_state<T: PeerTransport>(
    node: &Arc<ClusterNode<T>>,
    what: &str,
    predicate: impl Fn(&Routing) -> bool + Send + Sync + 'static,
) {
    let watched = node.clone();
    node.raft()
        .wait(Some(WAIT))
        .metrics(move |_| watched.read_stale(&predicate), what)
        .await
        .unwrap_or_else(|e| panic!("site {}: {what}: {e}", node.site()));
}
