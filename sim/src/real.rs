//! The production replication under the simulator: one lineup-cluster `ClusterNode`
//! (openraft 0.9, the routing core as its state machine) per site, over lineup-cluster's
//! in-memory transport, in a current-thread tokio runtime whose clock is paused.
//!
//! What makes a seed reproduce: the runtime runs only inside `advance_to`, on the
//! simulator's thread, and its paused clock jumps from timer to timer, so openraft's
//! heartbeats, elections and timeouts happen at virtual instants; the nodes store their log
//! in in-memory redb, the log written by a task of the runtime after a simulated sync
//! (`NodeStorage::SimulatedDisk`: no writer thread, no blocking pool; a crash loses the
//! appends not synced yet); election timeouts come from `LineupRuntime`'s generator, seeded here;
//! the transport's fault filters draw from their own seeded generator; nodes stamp their
//! commands with the tokio clock (`WallClock::Tokio`). The one draw left to tokio is
//! `select!`'s branch order, which openraft's metric waits and replication backoff leave
//! unbiased; it is seeded because the build has `--cfg tokio_unstable`
//! (`.cargo/config.toml`). Without it, runs of one seed diverge where two branches are
//! ready at once (seen in practice), which the CI replay would catch.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lineup_cluster::leader_duty::HealthThresholds;
use lineup_cluster::log_store::memory_database;
use lineup_cluster::transport::memory::{Filter, FilterId, Links, MemoryNetwork, MemoryTransport};
use lineup_cluster::{ClusterNode, ClusterTiming, NodeConfig, NodeStorage, StateEvent, StateHook, WallClock};
use lineup_core::{Applied, Command, Routing};
use openraft::ServerState;

use crate::config::EPOCH_MS;

/// Virtual time the cluster gets to elect a leader and commit the bootstrap commands
/// before the simulation's time zero.
pub const BOOTSTRAP_MS: u64 = 20_000;
/// Observations (applied commands, restores) buffered between two drains; more is an I8
/// violation (the simulator drains after every slice, so this is never near).
pub const OBSERVED_PENDING_MAX: usize = 200_000;
/// Snapshot after this many entries in the simulation (production: 10,000), so runs of a
/// few thousand operations exercise snapshots and InstallSnapshot.
pub const SIM_SNAPSHOT_LOGS_SINCE_LAST: u64 = 200;
pub const SIM_LOGS_KEPT_AFTER_SNAPSHOT: u64 = 10;
/// A node's disk syncs a batch of log appends this long after the first was queued (the
/// model replication draws 1–4 ms; an SSD or cloud volume's fsync takes 1–10 ms); a crash
/// loses the appends not synced yet.
pub const SIM_DISK_SYNC: Duration = Duration::from_millis(4);
/// One-way delay between sites (the same WAN as the model's).
pub const WAN_DELAY_MIN_MS: u64 = 5;
pub const WAN_DELAY_MAX_MS: u64 = 40;

/// One command applied on one node, with the I3 finding of the first node to apply it.
#[derive(Debug, Clone)]
pub struct Record {
    pub node: usize,
    pub apply_index: u64,
    pub command: Command,
    pub applied: Applied,
    pub order_issue: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Observed {
    Applied(Record),
    /// The node's state was replaced by a snapshot (at start or installed from the leader).
    Restored {
        node: usize,
    },
}

#[derive(Default)]
struct Shared {
    observed: Mutex<Vec<Observed>>,
    overflow: AtomicU64,
    /// Highest apply index any node has applied: the node that passes it runs the I3 check.
    first_applier: AtomicU64,
}

impl Shared {
    fn push(&self, observed: Observed) {
        let mut pending = self.observed.lock().unwrap_or_else(|p| p.into_inner());
        if pending.len() >= OBSERVED_PENDING_MAX {
            self.overflow.fetch_add(1, Ordering::Relaxed);
        } else {
            pending.push(observed);
        }
    }
}

/// A node's Raft view, read from openraft's metrics.
#[derive(Debug, Clone, Copy)]
pub struct RaftView {
    pub leader: bool,
    pub term: u64,
    pub last_applied: u64,
    pub log_entries: u64,
}

pub struct RealCluster {
    rt: tokio::runtime::Runtime,
    net: MemoryNetwork,
    nodes: Vec<Arc<ClusterNode<MemoryTransport>>>,
    dbs: Vec<Arc<redb::Database>>,
    shared: Arc<Shared>,
    /// The tokio instant of the simulation's time zero.
    zero: tokio::time::Instant,
    timing: ClusterTiming,
    cuts: BTreeMap<(usize, usize), FilterId>,
    lossy: Vec<FilterId>,
    /// Per site: the filters of a slow reconnect's lossy spell.
    site_lossy: BTreeMap<usize, Vec<FilterId>>,
}

fn site_id(node: usize) -> u64 {
    node as u64 + 1
}

impl RealCluster {
    /// Starts `sites` nodes, forms the cluster and commits `bootstrap`; the simulation's
    /// time zero is [`BOOTSTRAP_MS`] after the start.
    pub fn new(
        seed: u64,
        sites: usize,
        faults: bool,
        thresholds: HealthThresholds,
        bootstrap: &[Command],
    ) -> Result<RealCluster, String> {
        lineup_cluster::runtime::seed_election_rng(seed ^ 0x5eed_e1ec_7105);
        let mut builder = tokio::runtime::Builder::new_current_thread();
        builder.enable_time().start_paused(true);
        #[cfg(tokio_unstable)]
        builder.rng_seed(tokio::runtime::RngSeed::from_bytes(&seed.to_le_bytes()));
        let rt = builder.build().map_err(|e| format!("tokio runtime: {e}"))?;
        let net = MemoryNetwork::new(seed ^ 0x0e7);
        let (min, max) = if faults {
            (WAN_DELAY_MIN_MS, WAN_DELAY_MAX_MS)
        } else {
            let mid = (WAN_DELAY_MIN_MS + WAN_DELAY_MAX_MS) / 2;
            (mid, mid)
        };
        net.add_filter(Filter::Delay { links: Links::All, min_ms: min, max_ms: max });
        let start = rt.block_on(async { tokio::time::Instant::now() });
        let zero = start + Duration::from_millis(BOOTSTRAP_MS);
        let mut cluster = RealCluster {
            rt,
            net,
            nodes: Vec::new(),
            dbs: Vec::new(),
            shared: Arc::new(Shared::default()),
            zero,
            timing: ClusterTiming {
                site_unreachable_after_ms: thresholds.unreachable_after_ms,
                site_lost_after_ms: thresholds.lost_after_ms,
                ..ClusterTiming::default()
            },
            cuts: BTreeMap::new(),
            lossy: Vec::new(),
            site_lossy: BTreeMap::new(),
        };
        for node in 0..sites {
            let db = memory_database().map_err(|e| e.to_string())?;
            cluster.dbs.push(db);
            let started = cluster.start_node(node)?;
            cluster.nodes.push(started);
        }
        let members: BTreeMap<u64, String> = (0..sites).map(|i| (site_id(i), format!("site-{}", i + 1))).collect();
        let nodes = cluster.nodes.clone();
        let commands = bootstrap.to_vec();
        let formed = cluster.rt.block_on(async move {
            for node in &nodes {
                node.bootstrap(&members).await.map_err(|e| e.to_string())?;
            }
            for command in commands {
                nodes[0].submit(command).await.map_err(|e| format!("bootstrap command: {e}"))?;
            }
            Ok::<(), String>(())
        });
        formed?;
        if cluster.rt.block_on(async { tokio::time::Instant::now() }) > zero {
            return Err(format!("the cluster took longer than {BOOTSTRAP_MS} ms to form"));
        }
        cluster.advance_to(0);
        Ok(cluster)
    }

    fn start_node(&self, node: usize) -> Result<Arc<ClusterNode<MemoryTransport>>, String> {
        let shared = self.shared.clone();
        let hook = StateHook(Arc::new(move |event: StateEvent<'_>| match event {
            StateEvent::Applied { apply_index, command, applied, routing } => {
                let first = shared.first_applier.fetch_max(apply_index, Ordering::Relaxed) < apply_index;
                let order_issue = if first { crate::check::order_check(routing, applied) } else { None };
                shared.push(Observed::Applied(Record {
                    node,
                    apply_index,
                    command: command.clone(),
                    applied: applied.clone(),
                    order_issue,
                }));
            }
            StateEvent::Restored { .. } => shared.push(Observed::Restored { node }),
        }));
        let mut config = NodeConfig::new(site_id(node), "unused-in-memory");
        config.storage = NodeStorage::SimulatedDisk { db: self.dbs[node].clone(), sync_delay: SIM_DISK_SYNC };
        config.clock = WallClock::Tokio { unix_ms: EPOCH_MS, instant: self.zero };
        config.state_hook = Some(hook);
        config.timing = self.timing.clone();
        config.snapshot_logs_since_last = SIM_SNAPSHOT_LOGS_SINCE_LAST;
        config.logs_kept_after_snapshot = SIM_LOGS_KEPT_AFTER_SNAPSHOT;
        let transport = self.net.transport(site_id(node));
        self.rt.block_on(ClusterNode::start(config, transport)).map_err(|e| format!("start node {node}: {e}"))
    }

    /// Runs `f` inside the runtime's context (to spawn tasks from outside it).
    pub fn in_runtime<R>(&self, f: impl FnOnce() -> R) -> R {
        let _entered = self.rt.enter();
        f()
    }

    /// Runs `future` to completion in the runtime (the cluster runs meanwhile, at the
    /// current virtual time unless the future waits on a timer).
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.rt.block_on(future)
    }

    /// Runs the cluster until `at_ms` of simulation time.
    pub fn advance_to(&self, at_ms: u64) {
        let deadline = self.zero + Duration::from_millis(at_ms);
        self.rt.block_on(async move { tokio::time::sleep_until(deadline).await });
    }

    /// What the nodes applied and restored since the last drain, in the order it happened.
    pub fn drain(&self) -> Vec<Observed> {
        std::mem::take(&mut *self.shared.observed.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Observations lost to the buffer bound (an I8 violation when not zero).
    pub fn overflowed(&self) -> u64 {
        self.shared.overflow.load(Ordering::Relaxed)
    }

    /// What the site's Redis projection rebuilds from: the node's current state.
    pub fn state_source(&self, node: usize) -> lineup_store::StateSource {
        let node = self.nodes[node].clone();
        Arc::new(move || node.read_stale(lineup_store::ProjectionState::from_routing))
    }

    pub fn read<R>(&self, node: usize, read: impl FnOnce(&Routing) -> R) -> R {
        self.nodes[node].read_stale(read)
    }

    pub fn view(&self, node: usize) -> RaftView {
        // Borrowed, not cloned: this runs for every node after every slice.
        let receiver = self.nodes[node].raft().metrics();
        let metrics = receiver.borrow();
        let last = metrics.last_log_index.unwrap_or(0);
        let purged = metrics.purged.map(|id| id.index).unwrap_or(0);
        RaftView {
            leader: metrics.state == ServerState::Leader,
            term: metrics.current_term,
            last_applied: metrics.last_applied.map(|id| id.index).unwrap_or(0),
            log_entries: last.saturating_sub(purged),
        }
    }

    /// Submits `command` at `node` (through the leader, wherever it is); the outcome shows
    /// in the node's applied stream or, if never committed, through the site's timeout.
    pub fn propose(&self, node: usize, command: Command) {
        let proposer = self.nodes[node].clone();
        self.rt.spawn(async move {
            let _ = proposer.submit(command).await;
        });
    }

    /// The process dies: peers can no longer reach it, the log appends its disk had not
    /// synced yet are lost, and Raft stops. Its in-memory database (what it synced) stays
    /// for the restart. Answers how many appended log entries were lost.
    pub fn crash(&self, node: usize) -> u64 {
        self.net.disconnect(site_id(node));
        let stopping = self.nodes[node].clone();
        self.rt.block_on(async move { stopping.crash().await }) as u64
    }

    pub fn restart(&mut self, node: usize) -> Result<(), String> {
        let started = self.start_node(node)?;
        self.nodes[node] = started;
        Ok(())
    }

    /// Cuts the directed link `from → to` (no-op if cut already).
    pub fn cut(&mut self, from: usize, to: usize) {
        if self.cuts.contains_key(&(from, to)) {
            return;
        }
        let id = self
            .net
            .add_filter(Filter::Cut { from: BTreeSet::from([site_id(from)]), to: BTreeSet::from([site_id(to)]) });
        self.cuts.insert((from, to), id);
    }

    pub fn mend(&mut self, from: usize, to: usize) {
        if let Some(id) = self.cuts.remove(&(from, to)) {
            self.net.remove_filter(id);
        }
    }

    pub fn mend_all(&mut self) {
        for (_, id) in std::mem::take(&mut self.cuts) {
            self.net.remove_filter(id);
        }
        for (_, ids) in std::mem::take(&mut self.site_lossy) {
            for id in ids {
                self.net.remove_filter(id);
            }
        }
    }

    /// Every message is dropped with `drop_percent`, and a request duplicated with
    /// `duplicate_percent` (0, 0: a clean network).
    pub fn set_loss(&mut self, drop_percent: u8, duplicate_percent: u8) {
        for id in self.lossy.drain(..) {
            self.net.remove_filter(id);
        }
        if drop_percent > 0 {
            self.lossy.push(self.net.add_filter(Filter::Drop { links: Links::All, percent: drop_percent }));
        }
        if duplicate_percent > 0 {
            self.lossy.push(self.net.add_filter(Filter::Duplicate { links: Links::All, percent: duplicate_percent }));
        }
    }
}

impl RealCluster {
    /// Messages from and to `node` are dropped with `drop_percent` (0: its spell ends).
    pub fn set_site_loss(&mut self, node: usize, drop_percent: u8) {
        for id in self.site_lossy.remove(&node).unwrap_or_default() {
            self.net.remove_filter(id);
        }
        if drop_percent > 0 {
            let site = site_id(node);
            let ids = [Links::From(site), Links::To(site)]
                .into_iter()
                .map(|links| self.net.add_filter(Filter::Drop { links, percent: drop_percent }))
                .collect();
            self.site_lossy.insert(node, ids);
        }
    }
}

impl Drop for RealCluster {
    fn drop(&mut self) {
        lineup_cluster::runtime::unseed_election_rng();
    }
}
