//! A site's cluster node: the routing core replicated by openraft.
//!
//! - The Raft state machine is [`lineup_core::Routing`] ([`SiteState`]); every site applies
//!   the same commands in the same order and so computes the same offers.
//! - Effects addressed to this site ([`lineup_core::Effect::is_for`]) go out on a bounded broadcast
//!   stream ([`ClusterNode::subscribe_effects`]). A subscriber that falls behind gets
//!   `Lagged` and must reconcile from state. After a restart the node re-applies its log
//!   past the snapshot and re-emits those effects; the site adapter's fences make them
//!   harmless.
//! - Writes from any site ([`ClusterNode::submit`]) go to the leader over the peer link; the
//!   caller gets the committed result or a definite error. A timeout (unknown outcome) is
//!   resolved by reading the result back by command id, never by a blind retry.
//! - The leader proposes `Tick` every [`ClusterTiming::tick_interval_ms`], and the members'
//!   health ([`mod@leader_duty`]): `SiteUnreachable` when one has not answered for
//!   [`ClusterTiming::site_unreachable_after_ms`], `SiteBack` when it answers again, and
//!   `SiteLost` only after the long [`ClusterTiming::site_lost_after_ms`].
//! - Every member stands for election only while a quorum of voters answers it
//!   (`stand_gate`: pre-vote as far as openraft 0.9 allows), so a member cut off raises no
//!   term that would unseat the leader when the link heals.
//! - The leader appends a batch treating a site as reachable only while it holds a lease
//!   on it (`lease`, `lease_guard`): otherwise the batch starts with `SiteUnreachable`.
//! - Every node watches whether it is cut off from the quorum long enough to be an island
//!   ([`mod@island_watch`]), and answers its peers' `IslandStatus`; the leader brings a site
//!   heard again back only when it says it is no island.
//! - With island mode on, an island forks the applied state and serves it through the
//!   island proposer (`island_fork`: [`ClusterNode::island_submit`],
//!   [`ClusterNode::island_read`]); a restart while an island serves the journaled fork again.
//!   Once healed, the merge driver (`island_merge_driver`) freezes the fork, proposes its
//!   merge plan to the log and closes the epoch when `IslandMergeEnd` has committed.
//!
//! Layers: `config` (how a node starts), `site_state` (what Raft applies to), `network`
//! (openraft's client side of the peer link), `serve` (what this node answers peers),
//! `client` (writes and reads through the leader), and this file: the node's lifecycle,
//! membership and stale reads.

mod backup;
mod client;
pub mod clock_rules;
mod config;
mod island_fork;
pub mod island_merge_driver;
pub mod island_route;
pub mod island_watch;
mod leader_clock;
pub mod leader_duty;
pub mod lease;
mod lease_guard;
mod network;
mod proposer;
mod serve;
mod site_state;
mod stand_gate;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lineup_core::{CommandId, Routing, SiteId};
use openraft::error::{InitializeError, RaftError};
use openraft::{BasicNode, ChangeMembers};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::log_store::{open_database, RedbLogStore, SimulatedDiskWriter, WriterFinished};
use crate::rpc::{leader_error, PeerRequest, PeerResponse};
use crate::transport::PeerTransport;
use crate::ClusterError;
use island_watch::{IslandMode, IslandWatchHandle};
use leader_duty::leader_duty;
use lease_guard::{CommandIds, LeaseGuard};
use network::call_peer;
pub(crate) use network::PeerContact;
use proposer::Proposer;
use serve::{HealthSource, NodeHandler};
use site_state::Store;

pub use crate::raft_types::{LineupRaft, LineupRaftHandle};
pub use config::{
    ClusterTiming, NodeConfig, NodeStorage, WallClock, CLIENT_WRITE_ATTEMPTS_MAX, CLIENT_WRITE_TIMEOUT_MS,
    COMMAND_MAX_BYTES, EFFECT_STREAM_CAPACITY, ELECTION_TIMEOUT_MAX_MS, ELECTION_TIMEOUT_MIN_MS,
    GREET_MEMBERSHIP_WAIT_MS, HEARTBEAT_INTERVAL_MS, LEADER_REQUEST_TIMEOUT_MS, LOGS_KEPT_AFTER_SNAPSHOT,
    MAX_PAYLOAD_ENTRIES, SHUTDOWN_WAIT_MS, SITE_LOST_AFTER_MS, SITE_UNREACHABLE_AFTER_MS, SNAPSHOT_CHUNK_BYTES,
    SNAPSHOT_LOGS_SINCE_LAST, TICK_INTERVAL_MS,
};
pub use network::{PeerClient, PeerNetworkFactory};
pub use serve::HEALTH_REPORT_MAX_BYTES;
pub use site_state::{AppliedCommand, AppliedSink, SiteEffect, SiteState, StateEvent, StateHook};

/// A running node. Cheap to share behind an `Arc`.
pub struct ClusterNode<T: PeerTransport> {
    pub(crate) site: u64,
    pub(crate) raft: LineupRaftHandle,
    store: Store,
    transport: Arc<T>,
    effects: broadcast::Sender<SiteEffect>,
    pub(crate) timing: ClusterTiming,
    /// Command ids this node assigns: origin is unique per node run (see [`origin_for`]).
    ids: CommandIds,
    background: Mutex<Vec<JoinHandle<()>>>,
    proposer: Proposer,
    pub(crate) clock: WallClock,
    log_writer: Mutex<Option<WriterFinished>>,
    /// The simulated disk's writer task (`NodeStorage::SimulatedDisk`).
    log_writer_task: Mutex<Option<SimulatedDiskWriter<LineupRaft>>>,
    /// The node had a Raft log or vote on disk when it started: it is already in a cluster,
    /// and `bootstrap` does nothing (openraft would refuse and log the refusal as an error).
    stored_raft_state_at_start: bool,
    /// What this node answers when a peer asks for its health.
    health: HealthSource,
    /// Set while this node leads with a wall clock far off the shared clock.
    clock_alarm: Mutex<Option<String>>,
    /// How this node reaches its peers (read by the duty, the lease and [`Self::lease_from`]).
    contact: PeerContact,
    /// Whether this node is an island, its open epoch and its Asterisk's connection.
    island: Arc<IslandWatchHandle>,
    /// The island journal and, while an island, the proposer serving the fork.
    island_serving: Mutex<island_fork::IslandServing>,
    /// Bumped whenever the site's route changes (`island_route`).
    island_route: tokio::sync::watch::Sender<u64>,
    /// Held in arrival order by the site's proposals waiting for a merge.
    held_proposals: tokio::sync::Mutex<()>,
}

pub use crate::origin::origin_for;

impl<T: PeerTransport> ClusterNode<T> {
    /// Opens (or creates) the node's storage, starts Raft, serves peers on `transport` and
    /// starts the leader's Tick/SiteLost duty. The node joins a cluster when a leader adds
    /// it, or forms one with [`ClusterNode::bootstrap`].
    pub async fn start(config: NodeConfig, transport: T) -> Result<Arc<Self>, ClusterError> {
        config.validate()?;
        let (island_serving, restored_fork) = island_fork::open_island(&config).await?;
        let db = open_storage(&config.storage)?;
        let incarnation = crate::log_store::next_incarnation(&db)?;
        let (effects, _) = broadcast::channel(EFFECT_STREAM_CAPACITY);
        let state = SiteState::new(
            SiteId(config.site),
            effects.clone(),
            config.applied_sink.clone(),
            config.state_hook.clone(),
        );
        let Stores { store, log_store, writer_thread, writer_task } = open_stores(db, &config.storage, state)?;
        let stored_raft_state_at_start = stored_raft_state(&log_store).await?;
        let transport = Arc::new(transport);
        let contact = PeerContact::default();
        let network = PeerNetworkFactory { transport: transport.clone(), contact: contact.clone() };
        let raft_config = Arc::new(config.raft_config()?);
        let raft = openraft::Raft::new(config.site, raft_config, network, log_store, store.clone())
            .await
            .map_err(|e| ClusterError::raft("starting raft", e))?;
        let ids = CommandIds::new(origin_for(config.site, incarnation));
        let lease = LeaseGuard {
            site: config.site,
            contact: contact.clone(),
            store: store.clone(),
            unreachable_after: Duration::from_millis(config.timing.site_unreachable_after_ms),
            ids: ids.clone(),
            clock: config.clock,
        };
        let (proposer, proposer_task) = Proposer::start(raft.clone(), lease);
        let health = HealthSource::default();
        let island = Arc::new(IslandWatchHandle::default());
        transport.serve(Arc::new(NodeHandler {
            raft: raft.clone(),
            store: store.clone(),
            proposer: proposer.clone(),
            health: health.clone(),
            clock: config.clock,
            contact: contact.clone(),
            island: island.clone(),
        }));
        let node = Arc::new(Self {
            site: config.site,
            raft,
            store,
            transport,
            effects,
            timing: config.timing.clone(),
            ids,
            background: Mutex::new(vec![proposer_task]),
            proposer,
            clock: config.clock,
            log_writer: Mutex::new(writer_thread),
            log_writer_task: Mutex::new(writer_task),
            stored_raft_state_at_start,
            health,
            clock_alarm: Mutex::new(None),
            contact: contact.clone(),
            island,
            island_serving,
            island_route: tokio::sync::watch::Sender::new(0),
            held_proposals: tokio::sync::Mutex::new(()),
        });
        if let Some(restored) = restored_fork {
            node.resume_island(restored)?;
        }
        let duty = tokio::spawn(leader_duty(Arc::downgrade(&node), contact.clone()));
        let gate = tokio::spawn(stand_gate::stand_gate(Arc::downgrade(&node), contact));
        let (mode, island_after) = match &config.island {
            Some(island) => (IslandMode::Auto, Duration::from_millis(island.island_after_ms)),
            None => (IslandMode::Off, Duration::MAX),
        };
        let watch = tokio::spawn(island_watch::island_watch(Arc::downgrade(&node), mode, island_after));
        node.background.lock().unwrap_or_else(|p| p.into_inner()).extend([duty, gate, watch]);
        if mode == IslandMode::Auto && config.island_fork {
            let fork = tokio::spawn(island_fork::island_fork_duty(Arc::downgrade(&node)));
            node.background.lock().unwrap_or_else(|p| p.into_inner()).push(fork);
        }
        if node.island_journal().is_some() {
            // Also with island mode off now: an epoch the journal holds open is merged.
            let merge = tokio::spawn(island_merge_driver::island_merge_duty(Arc::downgrade(&node)));
            node.background.lock().unwrap_or_else(|p| p.into_inner()).push(merge);
        }
        node.greet_members();
        Ok(node)
    }

    pub fn site(&self) -> u64 {
        self.site
    }

    /// Greets every other member known from the stored membership (a restart), so peers
    /// holding a connection to our previous run replace it now rather than at its timeout.
    fn greet_members(&self) {
        let (raft, transport, site) = (self.raft.clone(), self.transport.clone(), self.site);
        let greeting = tokio::spawn(async move {
            // Raft publishes the stored membership once its core has loaded it; a node that
            // never had one (a new site) has nobody to greet.
            let wait = Duration::from_millis(GREET_MEMBERSHIP_WAIT_MS);
            let loaded = raft
                .wait(Some(wait))
                .metrics(|m| m.membership_config.membership().nodes().count() > 0, "membership")
                .await;
            let Ok(metrics) = loaded else { return };
            let members: Vec<(u64, String)> = metrics
                .membership_config
                .membership()
                .nodes()
                .filter(|(id, _)| **id != site)
                .map(|(id, node)| (*id, node.addr.clone()))
                .collect();
            let mut greetings = tokio::task::JoinSet::new();
            for (peer, addr) in members {
                let transport = transport.clone();
                greetings.spawn(async move { transport.greet(peer, &addr).await });
            }
            while greetings.join_next().await.is_some() {}
        });
        self.background.lock().unwrap_or_else(|p| p.into_inner()).push(greeting);
    }

    /// The openraft handle, for metrics and waits (`raft().wait(..)`).
    pub fn raft(&self) -> &LineupRaftHandle {
        &self.raft
    }

    pub fn transport(&self) -> &Arc<T> {
        &self.transport
    }

    /// Forms a new cluster of `members` (site id → peer address). Run it on every founding
    /// site with the same members (1, 3 or 5); a site that is already part of a cluster
    /// ignores it.
    pub async fn bootstrap(&self, members: &BTreeMap<u64, String>) -> Result<(), ClusterError> {
        if self.stored_raft_state_at_start {
            return Ok(());
        }
        let nodes: BTreeMap<u64, BasicNode> =
            members.iter().map(|(site, addr)| (*site, BasicNode::new(addr.clone()))).collect();
        match self.raft.initialize(nodes).await {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(ClusterError::raft("forming the cluster", e)),
        }
    }

    /// Why this node's wall clock is not to be trusted, while it leads with a wall clock
    /// more than [`clock_rules::CLOCK_AGREEMENT_MS`] off the shared clock (the shared clock
    /// keeps real time regardless). For the health report.
    pub fn clock_alarm(&self) -> Option<String> {
        self.clock_alarm.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How long ago this node last knew its replica current: on the leader, since a quorum
    /// last acknowledged it; elsewhere, since it last accepted a leader's request. None when
    /// neither ever happened since the node started.
    pub fn leader_contact_age_ms(&self) -> Option<u64> {
        let leading = self.raft.metrics().borrow().millis_since_quorum_ack;
        leading.or_else(|| self.contact.leader_heard_at().map(|at| at.elapsed().as_millis() as u64))
    }

    pub(crate) fn set_clock_alarm(&self, alarm: Option<String>) {
        *self.clock_alarm.lock().unwrap_or_else(|p| p.into_inner()) = alarm;
    }

    /// Sets what this node answers when a peer asks for its health (`peer_health`): the
    /// binary's report, encoded by the binary. Until set, peers get an empty report.
    pub fn set_health_report(&self, report: impl Fn() -> Vec<u8> + Send + Sync + 'static) {
        self.health.set(Arc::new(report));
    }

    /// Asks member `site` for its health report over the cluster link (mutual TLS; no API
    /// token involved). `Ok(empty)` when the peer has no report source; an error when it
    /// cannot be asked within `timeout`. Reports over `HEALTH_REPORT_MAX_BYTES` are refused.
    pub async fn peer_health(&self, site: u64, timeout: Duration) -> Result<Vec<u8>, ClusterError> {
        let addr = {
            let metrics = self.raft.metrics().borrow().clone();
            metrics.membership_config.membership().get_node(&site).map(|n| n.addr.clone())
        };
        let addr = addr.ok_or_else(|| ClusterError::PeerRefused(format!("site {site} is not a member")))?;
        match call_peer(&*self.transport, site, &addr, &PeerRequest::Health, timeout).await? {
            PeerResponse::Health(report) if report.len() <= HEALTH_REPORT_MAX_BYTES => Ok(report),
            PeerResponse::Health(report) => {
                Err(ClusterError::PeerRefused(format!("a health report of {} bytes is too large", report.len())))
            }
            PeerResponse::Refused(reason) => Err(ClusterError::PeerRefused(reason)),
            _ => Err(ClusterError::PeerRefused("unexpected answer to a health request".into())),
        }
    }

    /// The send time and term of the last request `site` accepted from this node (an
    /// AppendEntries or a granted vote): where this node's lease on `site` starts while it
    /// leads ([`lease`]). For status and tests.
    pub fn lease_from(&self, site: u64) -> Option<lease::LeaseFrom> {
        self.contact.lease_from.lock().unwrap_or_else(|p| p.into_inner()).get(&site).copied()
    }

    /// Whether this node is an island (watch it with `island().subscribe()`), its open epoch
    /// and its Asterisk's connection, which the binary reports here.
    pub fn island(&self) -> &IslandWatchHandle {
        &self.island
    }

    /// Effects addressed to this site, in log order, from now on.
    pub fn subscribe_effects(&self) -> broadcast::Receiver<SiteEffect> {
        self.effects.subscribe()
    }

    /// Reads this node's applied state (stale: it may trail the leader). For announcements
    /// and dashboards.
    pub fn read_stale<R>(&self, read: impl FnOnce(&Routing) -> R) -> R {
        read(self.store.read().app.routing())
    }

    /// The last log index this node has applied.
    pub fn applied_index(&self) -> u64 {
        self.store.read().last_applied.as_ref().map(|id| id.index).unwrap_or(0)
    }

    /// A new command id from this node's origin.
    pub fn next_command_id(&self) -> CommandId {
        self.ids.next()
    }

    /// Adds a site at run time: first as a learner (it receives the log or a snapshot
    /// until it has caught up), then as a voter. Must run on the leader.
    pub async fn add_site(&self, site: u64, addr: String) -> Result<(), ClusterError> {
        self.raft
            .add_learner(site, BasicNode::new(addr), true)
            .await
            .map_err(|e| ClusterError::from_leader(self.site, leader_error(e)))?;
        self.raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([site])), false)
            .await
            .map_err(|e| ClusterError::from_leader(self.site, leader_error(e)))?;
        Ok(())
    }

    /// Removes a site from the cluster (it stops receiving the log). Must run on the leader.
    pub async fn remove_site(&self, site: u64) -> Result<(), ClusterError> {
        self.raft
            .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([site])), false)
            .await
            .map_err(|e| ClusterError::from_leader(self.site, leader_error(e)))?;
        Ok(())
    }

    /// Builds a snapshot now (the log before it is then compacted per the config).
    pub async fn trigger_snapshot(&self) -> Result<(), ClusterError> {
        self.raft.trigger().snapshot().await.map_err(|e| ClusterError::raft("triggering a snapshot", e))
    }

    /// Waits until Raft's core has stopped for good on this node and answers why: a storage
    /// write failed (a full or failing disk), or the core ended. Such a node answers no peer
    /// and applies nothing while its process looks alive; its binary should exit, so that
    /// the service manager starts it again and it resumes from what it last stored. Pending
    /// while Raft runs; answers at once after [`ClusterNode::shutdown`].
    pub async fn raft_stopped(&self) -> String {
        let mut metrics = self.raft.metrics();
        loop {
            if let Err(fatal) = &metrics.borrow_and_update().running_state {
                return fatal.to_string();
            }
            if metrics.changed().await.is_err() {
                return "Raft's core has ended".to_string();
            }
        }
    }

    /// Log entries appended and not yet written by a simulated disk (0 on a file, where the
    /// writer thread's queue is not observed).
    pub fn unsynced_log_entries(&self) -> usize {
        let writer = self.log_writer_task.lock().unwrap_or_else(|p| p.into_inner());
        writer.as_ref().map(SimulatedDiskWriter::unsynced_entries).unwrap_or(0)
    }

    /// The process dies: on a simulated disk, the appends not yet written are lost (the
    /// writer task is stopped before anything else); then as [`ClusterNode::shutdown`].
    /// Answers how many appended log entries were lost.
    pub async fn crash(&self) -> usize {
        let writer = self.log_writer_task.lock().unwrap_or_else(|p| p.into_inner()).take();
        let lost = match writer {
            Some(writer) => writer.crash().await,
            None => 0,
        };
        self.shutdown().await;
        lost
    }

    /// Stops Raft and the leader duty. The transport stays with the caller.
    pub async fn shutdown(&self) {
        for task in self.background.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            task.abort();
        }
        // The fork's last batch is journaled before it is answered; stopping releases the
        // journal's file for a restart in the same process.
        self.stop_island().await;
        let _ = self.raft.shutdown().await;
        // Raft's core (and with it the log store) is gone; the state machine worker may
        // still hold a store clone for a moment. Releasing the database here lets a
        // restart in the same process open the file right away.
        self.store.release_database();
        let log_writer = self.log_writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(log_writer) = log_writer {
            // The writer ends once Raft has dropped the log store, releasing the file.
            let _ = tokio::time::timeout(Duration::from_millis(SHUTDOWN_WAIT_MS), log_writer.wait()).await;
        }
        let writer_task = self.log_writer_task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(writer_task) = writer_task {
            // It writes what was queued and ends with the log store; one that outlives the
            // bound is stopped, so a restart never shares the database with it.
            writer_task.finish(Duration::from_millis(SHUTDOWN_WAIT_MS)).await;
        }
    }
}

/// The node's redb database: its file under a data directory, or the caller's in-memory one.
fn open_storage(storage: &NodeStorage) -> Result<Arc<redb::Database>, ClusterError> {
    match storage {
        NodeStorage::Dir(dir) => {
            std::fs::create_dir_all(dir)?;
            open_database(&dir.join(crate::backup::RAFT_DATABASE_FILE))
        }
        NodeStorage::Memory(db) | NodeStorage::SimulatedDisk { db, .. } => Ok(db.clone()),
    }
}

/// The state machine and the log store on the node's storage, and the log's writer.
struct Stores {
    store: Store,
    log_store: RedbLogStore<LineupRaft>,
    /// The writer thread (a file), so shutdown can wait for it to release the file.
    writer_thread: Option<WriterFinished>,
    /// The writer task (a simulated disk), so a crash can abort it.
    writer_task: Option<SimulatedDiskWriter<LineupRaft>>,
}

/// The stores on `db`: for a file, the log has its own writer thread; in memory, both
/// write on the calling task, except the simulated disk's log, which a task writes.
fn open_stores(db: Arc<redb::Database>, storage: &NodeStorage, state: SiteState) -> Result<Stores, ClusterError> {
    let inline_io = !matches!(storage, NodeStorage::Dir(_));
    let store = if inline_io { Store::open_inline(db.clone(), state) } else { Store::open(db.clone(), state) }
        .map_err(|e| ClusterError::storage("opening the state machine", e))?;
    let stores = match storage {
        NodeStorage::Dir(_) => {
            let (log_store, writer) = RedbLogStore::<LineupRaft>::with_writer(db);
            Stores { store, log_store, writer_thread: Some(writer), writer_task: None }
        }
        NodeStorage::Memory(_) => {
            Stores { store, log_store: RedbLogStore::inline(db), writer_thread: None, writer_task: None }
        }
        NodeStorage::SimulatedDisk { sync_delay, .. } => {
            let (log_store, writer) = RedbLogStore::<LineupRaft>::on_task(db, *sync_delay);
            Stores { store, log_store, writer_thread: None, writer_task: Some(writer) }
        }
    };
    Ok(stores)
}

/// Whether a node's stored Raft state shows it is already part of a cluster (it has a log or
/// has voted in a term), so forming a new one must not be attempted.
fn already_in_a_cluster(last_log_index: Option<u64>, vote_term: u64) -> bool {
    last_log_index.is_some() || vote_term > 0
}

/// Reads the stored log end and vote before Raft starts: is this node already in a cluster?
async fn stored_raft_state(log_store: &RedbLogStore<LineupRaft>) -> Result<bool, ClusterError> {
    use openraft::storage::RaftLogStorage;
    let mut probe = log_store.clone();
    let log = probe.get_log_state().await.map_err(|e| ClusterError::storage("reading the stored log state", e))?;
    let vote = probe.read_vote().await.map_err(|e| ClusterError::storage("reading the stored vote", e))?;
    let vote_term = vote.map(|v| v.leader_id().get_term()).unwrap_or(0);
    Ok(already_in_a_cluster(log.last_log_id.map(|id| id.index), vote_term))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_with_raft_state_does_not_form_a_new_cluster() {
        assert!(!already_in_a_cluster(None, 0), "a fresh node forms the cluster");
        assert!(already_in_a_cluster(Some(0), 0), "the initial membership entry is a log");
        assert!(already_in_a_cluster(None, 3), "it voted");
    }
}
