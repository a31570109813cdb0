//! A site's cluster node: the routing core replicated by openraft.
//!
//! - The Raft state machine is [`lineup_core::Routing`] ([`SiteState`]); every site applies
//!   the same commands in the same order and so computes the same offers.
//! - Effects addressed to this site ([`Effect::is_for`]) go out on a bounded broadcast
//!   stream ([`ClusterNode::subscribe_effects`]). A subscriber that falls behind gets
//!   `Lagged` and must reconcile from state. After a restart the node re-applies its log
//!   past the snapshot and re-emits those effects; the site adapter's fences make them
//!   harmless (DESIGN decision 5).
//! - Writes from any site ([`ClusterNode::submit`]) go to the leader over the peer link; the
//!   caller gets the committed result or a definite error. A timeout (unknown outcome) is
//!   resolved by reading the result back by command id, never by a blind retry.
//! - The leader proposes `Tick` every [`ClusterTiming::tick_interval_ms`], and the members'
//!   health ([`crate::leader_duty`]): `SiteUnreachable` when one has not answered for
//!   [`ClusterTiming::site_unreachable_after_ms`], `SiteBack` when it answers again, and
//!   `SiteLost` only after the long [`ClusterTiming::site_lost_after_ms`].

use std::collections::{BTreeMap, BTreeSet};
// The raft-types macro names `Cursor` unqualified for its default SnapshotData.
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lineup_core::codec::{self, CodecError};
use lineup_core::{Applied, Command, CommandBody, CommandId, CommandResult, Effect, Routing, SiteId};
use openraft::error::{
    CheckIsLeaderError, InitializeError, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{BasicNode, ChangeMembers, Config, SnapshotPolicy};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::batch::{apply_index, CommandBatch, Proposer, ENTRY_GATHER_BYTES};
use crate::frame::{PEER_DECODE_LIMIT_BYTES, PEER_FRAME_MAX_BYTES};
use crate::leader_duty::leader_duty;
use crate::log_store::{open_database, RedbLogStore, WriterFinished};
use crate::rpc::{Committed, LeaderError, PeerRequest, PeerResponse};
use crate::state_machine::{ReplicatedState, StateMachineStore};
use crate::transport::{PeerHandler, PeerTransport, ResponseFuture};
use crate::ClusterError;

openraft::declare_raft_types!(
    /// openraft's type configuration for Lineup: a log entry carries a batch of routing
    /// [`Command`]s ([`CommandBatch`]), the response is their [`Applied`] results (None for
    /// Raft's own blank and membership entries), and a node id is a site id.
    pub LineupRaft:
        D = CommandBatch,
        R = Option<Vec<Applied>>,
        NodeId = u64,
        Node = BasicNode,
        AsyncRuntime = crate::runtime::LineupRuntime,
);

pub type LineupRaftHandle = openraft::Raft<LineupRaft>;
type Store = StateMachineStore<LineupRaft, SiteState>;

/// Heartbeat period. Three times openraft's 50 ms default: sites talk across a WAN, and
/// three heartbeats still fit in the minimum election timeout, so one lost datagram does not
/// depose a leader.
pub const HEARTBEAT_INTERVAL_MS: u64 = 150;
/// Election timeout range. openraft 0.9 lets a follower that has known a leader stand for
/// election only after the leader lease (= the maximum) *plus* a random timeout in this
/// range, so failover detection takes 1.4–1.8 s with these values (the goal is a new
/// offer within 2 s of losing the leader). Raise both for links with RTT above ~150 ms.
pub const ELECTION_TIMEOUT_MIN_MS: u64 = 500;
pub const ELECTION_TIMEOUT_MAX_MS: u64 = 900;
/// The leader's clock rate into the routing core (`Tick`).
pub const TICK_INTERVAL_MS: u64 = 1_000;
/// A member that has not answered the leader for this long is unreachable
/// (`SiteUnreachable`): nothing is offered across it, its calls go on. Chosen with the peer
/// transport: a live member answers every heartbeat ([`HEARTBEAT_INTERVAL_MS`]), a leader
/// change takes under 2 s, and a restarted member greets its peers as it starts, so it is
/// heard again well within this (see `transport::quic`).
pub const SITE_UNREACHABLE_AFTER_MS: u64 = 3_000;
/// A member silent for this long is declared lost (`SiteLost`): its calls end and its
/// operators are logged out. Long on purpose: a silent node's Asterisk keeps carrying its
/// calls, and a node that comes back reconciles them itself; an admin declares a site that
/// is really gone sooner (`lineup cluster declare-lost`). 0 disables it.
pub const SITE_LOST_AFTER_MS: u64 = 2 * 60 * 60 * 1_000;
/// Bound on waiting for the stored membership to load before greeting the members.
pub const GREET_MEMBERSHIP_WAIT_MS: u64 = 5_000;
/// How long a client write may take before its outcome counts as unknown.
pub const CLIENT_WRITE_TIMEOUT_MS: u64 = 5_000;
/// Bound on a request a leader serves for a peer (forwarded write, read index).
pub const LEADER_REQUEST_TIMEOUT_MS: u64 = 10_000;
/// Rounds of (find leader, send, resolve) before a write gives up with an error.
pub const CLIENT_WRITE_ATTEMPTS_MAX: u32 = 5;
/// Snapshot (and then compact the log) after this many entries since the last snapshot.
pub const SNAPSHOT_LOGS_SINCE_LAST: u64 = 10_000;
/// Entries kept in the log behind the snapshot, so a briefly lagging follower catches up
/// from the log instead of a full snapshot.
pub const LOGS_KEPT_AFTER_SNAPSHOT: u64 = 1_000;
/// Entries per AppendEntries. With entries bounded by [`ENTRY_GATHER_BYTES`] plus one
/// [`COMMAND_MAX_BYTES`] command, an AppendEntries stays under [`PEER_FRAME_MAX_BYTES`].
pub const MAX_PAYLOAD_ENTRIES: u64 = 64;
/// Largest encoded command accepted for proposal.
pub const COMMAND_MAX_BYTES: usize = 32 * 1024;
/// Snapshot chunk size for InstallSnapshot (well under the frame limit).
pub const SNAPSHOT_CHUNK_BYTES: u64 = 1024 * 1024;
/// Bound on waiting for the log writer to finish when a node stops.
pub const SHUTDOWN_WAIT_MS: u64 = 5_000;
/// Applied effects buffered per subscriber before it lags.
pub const EFFECT_STREAM_CAPACITY: usize = 4_096;

const _: () =
    assert!(MAX_PAYLOAD_ENTRIES as usize * (ENTRY_GATHER_BYTES + COMMAND_MAX_BYTES) * 2 <= PEER_FRAME_MAX_BYTES);
const _: () = assert!((SNAPSHOT_CHUNK_BYTES as usize) * 2 <= PEER_FRAME_MAX_BYTES);
const _: () = assert!(HEARTBEAT_INTERVAL_MS * 3 <= ELECTION_TIMEOUT_MIN_MS);
const _: () = assert!(ELECTION_TIMEOUT_MAX_MS * 3 <= SITE_UNREACHABLE_AFTER_MS);

/// Timing of one node; defaults suit sites on a WAN. Tests shorten them.
#[derive(Debug, Clone)]
pub struct ClusterTiming {
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    pub tick_interval_ms: u64,
    pub site_unreachable_after_ms: u64,
    pub site_lost_after_ms: u64,
    pub client_write_timeout_ms: u64,
}

impl Default for ClusterTiming {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS,
            election_timeout_min_ms: ELECTION_TIMEOUT_MIN_MS,
            election_timeout_max_ms: ELECTION_TIMEOUT_MAX_MS,
            tick_interval_ms: TICK_INTERVAL_MS,
            site_unreachable_after_ms: SITE_UNREACHABLE_AFTER_MS,
            site_lost_after_ms: SITE_LOST_AFTER_MS,
            client_write_timeout_ms: CLIENT_WRITE_TIMEOUT_MS,
        }
    }
}

/// Where a node keeps its log, vote and snapshot.
#[derive(Clone)]
pub enum NodeStorage {
    /// A redb file in this directory (created if missing), written by a group-commit
    /// thread: every real node.
    Dir(PathBuf),
    /// An in-memory redb database (see [`memory_database`]) that the caller keeps across
    /// restarts of the node, written on the calling task: the deterministic simulator,
    /// where no thread may race the paused clock. Nothing survives the process.
    Memory(Arc<redb::Database>),
}

impl std::fmt::Debug for NodeStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeStorage::Dir(dir) => f.debug_tuple("Dir").field(dir).finish(),
            NodeStorage::Memory(_) => f.write_str("Memory"),
        }
    }
}

/// The wall clock a node stamps its own commands with (`Tick`, `SiteLost`, proposals).
#[derive(Debug, Clone, Copy)]
pub enum WallClock {
    /// The system clock: every real node.
    System,
    /// `unix_ms` at tokio's `instant`, advancing with tokio's clock: under a paused tokio
    /// clock this is the simulator's virtual time, the same for every node of a run.
    Tokio { unix_ms: u64, instant: Instant },
}

impl WallClock {
    pub fn now_unix_ms(&self) -> u64 {
        match self {
            WallClock::System => now_unix_ms(),
            WallClock::Tokio { unix_ms, instant } => {
                unix_ms + Instant::now().saturating_duration_since(*instant).as_millis() as u64
            }
        }
    }
}

/// What a [`StateHook`] is told, with the state as it is right then.
pub enum StateEvent<'a> {
    /// One command applied (the state right after it).
    Applied { apply_index: u64, command: &'a Command, applied: &'a Applied, routing: &'a Routing },
    /// The state was replaced by a snapshot: at start, or installed from the leader (the
    /// effects of the entries it covers are never published here).
    Restored { routing: &'a Routing },
}

/// Called inside the state machine, after each applied command and each restore (the
/// simulator's checkers; it must be quick and must not block).
#[derive(Clone)]
pub struct StateHook(pub Arc<dyn Fn(StateEvent<'_>) + Send + Sync>);

impl std::fmt::Debug for StateHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateHook")
    }
}

/// How to start a node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub site: u64,
    pub storage: NodeStorage,
    pub clock: WallClock,
    pub state_hook: Option<StateHook>,
    pub timing: ClusterTiming,
    /// Snapshot after this many log entries (then compact the log).
    pub snapshot_logs_since_last: u64,
    pub logs_kept_after_snapshot: u64,
    /// Receives every applied command's effects for this site, whole and in log order, for
    /// consumers that must not miss one (the history outbox). Unlike
    /// [`ClusterNode::subscribe_effects`], which drops for a lagging reader, a full sink
    /// holds up apply: keep its consumer fast and local (it writes to a local outbox).
    pub applied_sink: Option<AppliedSink>,
}

/// One applied command's effects addressed to this site (see [`NodeConfig::applied_sink`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedCommand {
    pub apply_index: u64,
    pub effects: Vec<Effect>,
}

/// Bounded: the consumer sizes it; a full channel is backpressure on apply.
pub type AppliedSink = std::sync::mpsc::SyncSender<AppliedCommand>;

impl NodeConfig {
    pub fn new(site: u64, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            site,
            storage: NodeStorage::Dir(data_dir.into()),
            clock: WallClock::System,
            state_hook: None,
            timing: ClusterTiming::default(),
            snapshot_logs_since_last: SNAPSHOT_LOGS_SINCE_LAST,
            logs_kept_after_snapshot: LOGS_KEPT_AFTER_SNAPSHOT,
            applied_sink: None,
        }
    }

    fn raft_config(&self) -> Result<Config, ClusterError> {
        let config = Config {
            cluster_name: "lineup".into(),
            heartbeat_interval: self.timing.heartbeat_interval_ms,
            election_timeout_min: self.timing.election_timeout_min_ms,
            election_timeout_max: self.timing.election_timeout_max_ms,
            install_snapshot_timeout: self.timing.election_timeout_max_ms.max(1_000),
            max_payload_entries: MAX_PAYLOAD_ENTRIES,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_logs_since_last),
            max_in_snapshot_log_to_keep: self.logs_kept_after_snapshot,
            snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES,
            ..Config::default()
        };
        config.validate().map_err(|e| ClusterError::Config(e.to_string()))
    }
}

/// An effect addressed to this site, with the apply index of the command that produced it
/// (see [`crate::batch`]; an Offer's fence is that index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteEffect {
    pub apply_index: u64,
    pub effect: Effect,
}

/// The Raft state machine: the routing core plus publication of this site's effects.
pub struct SiteState {
    routing: Routing,
    site: SiteId,
    effects: broadcast::Sender<SiteEffect>,
    applied_sink: Option<AppliedSink>,
    state_hook: Option<StateHook>,
}

impl SiteState {
    pub fn routing(&self) -> &Routing {
        &self.routing
    }
}

impl ReplicatedState for SiteState {
    type Command = CommandBatch;
    type Output = Vec<Applied>;

    fn apply(&mut self, log_index: u64, batch: &CommandBatch) -> Vec<Applied> {
        let mut results = Vec::with_capacity(batch.commands.len());
        for (position, command) in batch.commands.iter().enumerate() {
            let apply_index = apply_index(log_index, position);
            let applied = self.routing.apply(apply_index, command);
            if let Some(hook) = &self.state_hook {
                (hook.0)(StateEvent::Applied { apply_index, command, applied: &applied, routing: &self.routing });
            }
            for effect in applied.effects.iter().filter(|e| e.is_for(self.site)) {
                // No subscriber is fine: the effect is also in the committed log.
                let _ = self.effects.send(SiteEffect { apply_index, effect: effect.clone() });
            }
            if let Some(sink) = &self.applied_sink {
                let effects: Vec<Effect> = applied.effects.iter().filter(|e| e.is_for(self.site)).cloned().collect();
                if !effects.is_empty() {
                    // Blocks only while the consumer is a whole channel behind (backpressure);
                    // a consumer that has gone away is ignored.
                    let _ = sink.send(AppliedCommand { apply_index, effects });
                }
            }
            results.push(applied);
        }
        results
    }

    fn snapshot_bytes(&self) -> Vec<u8> {
        self.routing.snapshot_bytes()
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
        self.routing = Routing::restore(bytes)?;
        if let Some(hook) = &self.state_hook {
            (hook.0)(StateEvent::Restored { routing: &self.routing });
        }
        Ok(())
    }
}

fn now_unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// What the leader knows about reaching its peers: the last successful exchange with each
/// (for SiteLost and quorum checks), and whether it has gone quiet (see [`leader_duty`]).
#[derive(Default)]
pub(crate) struct PeerHealth {
    pub(crate) last_contact: Mutex<BTreeMap<u64, Instant>>,
    /// Set while this node is a leader that hears no quorum: it then sends no log
    /// replication or heartbeats, so the sites that can still form a majority elect a leader.
    pub(crate) quiet: std::sync::atomic::AtomicBool,
}

pub(crate) type PeerContact = Arc<PeerHealth>;

fn note_contact(contact: &PeerContact, site: u64) {
    contact.last_contact.lock().unwrap_or_else(|p| p.into_inner()).insert(site, Instant::now());
}

/// openraft's network factory over a [`PeerTransport`].
pub struct PeerNetworkFactory<T> {
    transport: Arc<T>,
    contact: PeerContact,
}

/// openraft's client for one peer.
pub struct PeerClient<T> {
    transport: Arc<T>,
    target: u64,
    target_addr: String,
    contact: PeerContact,
}

impl<T: PeerTransport> RaftNetworkFactory<LineupRaft> for PeerNetworkFactory<T> {
    type Network = PeerClient<T>;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient<T> {
        PeerClient {
            transport: self.transport.clone(),
            target,
            target_addr: node.addr.clone(),
            contact: self.contact.clone(),
        }
    }
}

/// Sends one request to a peer and decodes its answer.
async fn call_peer<T: PeerTransport>(
    transport: &T,
    target: u64,
    target_addr: &str,
    request: &PeerRequest,
    timeout: Duration,
) -> Result<PeerResponse, ClusterError> {
    let bytes = codec::encode_versioned(request)?;
    let answer = transport.call(target, target_addr, bytes, timeout).await?;
    Ok(codec::decode_versioned_bounded::<_, PEER_DECODE_LIMIT_BYTES>(&answer)?)
}

fn rpc_error<E: std::error::Error>(e: ClusterError) -> RPCError<u64, BasicNode, E> {
    match e {
        ClusterError::Unreachable { .. } | ClusterError::PeerRefused(_) => RPCError::Unreachable(Unreachable::new(&e)),
        _ => RPCError::Network(NetworkError::new(&e)),
    }
}

fn unexpected<E: std::error::Error>(answer: PeerResponse) -> RPCError<u64, BasicNode, E> {
    let reason = match answer {
        PeerResponse::Refused(reason) => reason,
        other => format!("unexpected answer {other:?}"),
    };
    RPCError::Network(NetworkError::new(&ClusterError::PeerRefused(reason)))
}

impl<T: PeerTransport> PeerClient<T> {
    async fn call(&self, request: &PeerRequest, option: &RPCOption) -> Result<PeerResponse, ClusterError> {
        let replication = matches!(request, PeerRequest::AppendEntries(_) | PeerRequest::InstallSnapshot(_));
        if replication && self.contact.quiet.load(Ordering::Relaxed) {
            return Err(ClusterError::Unreachable {
                site: self.target,
                reason: "this leader hears no quorum and has gone quiet".into(),
            });
        }
        let answer = call_peer(&*self.transport, self.target, &self.target_addr, request, option.hard_ttl()).await?;
        note_contact(&self.contact, self.target);
        Ok(answer)
    }
}

impl<T: PeerTransport> RaftNetwork<LineupRaft> for PeerClient<T> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<LineupRaft>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self.call(&PeerRequest::AppendEntries(rpc), &option).await.map_err(rpc_error)? {
            PeerResponse::AppendEntries(answer) => {
                answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<LineupRaft>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>> {
        match self.call(&PeerRequest::InstallSnapshot(rpc), &option).await.map_err(rpc_error)? {
            PeerResponse::InstallSnapshot(answer) => {
                answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self.call(&PeerRequest::Vote(rpc), &option).await.map_err(rpc_error)? {
            PeerResponse::Vote(answer) => answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e))),
            other => Err(unexpected(other)),
        }
    }
}

/// Serves peers' requests on this node.
struct NodeHandler {
    raft: LineupRaftHandle,
    store: Store,
    proposer: Proposer,
    health: HealthSource,
}

pub(crate) fn leader_error<E>(e: RaftError<u64, E>) -> LeaderError
where
    E: std::error::Error + openraft::TryAsRef<openraft::error::ForwardToLeader<u64, BasicNode>>,
{
    match e.forward_to_leader::<BasicNode>() {
        Some(forward) => LeaderError::NotLeader {
            leader: forward.leader_id,
            leader_addr: forward.leader_node.as_ref().map(|n| n.addr.clone()),
        },
        None => LeaderError::Failed(e.to_string()),
    }
}

impl NodeHandler {
    async fn answer(&self, from: u64, request: Vec<u8>) -> PeerResponse {
        let request: PeerRequest = match codec::decode_versioned_bounded::<_, PEER_DECODE_LIMIT_BYTES>(&request) {
            Ok(request) => request,
            Err(e) => return PeerResponse::Refused(format!("undecodable request: {e}")),
        };
        // A Raft message names its sender in its vote; it must be the authenticated peer,
        // or a site with a valid certificate could speak for another.
        let claimed = match &request {
            PeerRequest::AppendEntries(rpc) => rpc.vote.leader_id().voted_for(),
            PeerRequest::Vote(rpc) => rpc.vote.leader_id().voted_for(),
            PeerRequest::InstallSnapshot(rpc) => rpc.vote.leader_id().voted_for(),
            PeerRequest::ClientWrite(_) | PeerRequest::ReadIndex | PeerRequest::ResultOf(_) | PeerRequest::Health => {
                Some(from)
            }
        };
        if claimed != Some(from) {
            return PeerResponse::Refused(format!("site {from} sent a message in the name of {claimed:?}"));
        }
        match request {
            PeerRequest::AppendEntries(rpc) => PeerResponse::AppendEntries(self.raft.append_entries(rpc).await),
            PeerRequest::Vote(rpc) => PeerResponse::Vote(self.raft.vote(rpc).await),
            PeerRequest::InstallSnapshot(rpc) => PeerResponse::InstallSnapshot(self.raft.install_snapshot(rpc).await),
            PeerRequest::ClientWrite(command) => PeerResponse::ClientWrite(match codec::encode_versioned(&command) {
                Ok(bytes) if bytes.len() <= COMMAND_MAX_BYTES => {
                    bounded(self.proposer.propose(command, bytes.len())).await
                }
                Ok(bytes) => Err(LeaderError::Refused(format!("command of {} bytes is too large", bytes.len()))),
                Err(e) => Err(LeaderError::Refused(e.to_string())),
            }),
            PeerRequest::ReadIndex => PeerResponse::ReadIndex(bounded(read_index_as_leader(&self.raft)).await),
            PeerRequest::ResultOf(id) => {
                PeerResponse::ResultOf(match bounded(read_index_as_leader(&self.raft)).await {
                    Ok(_) => Ok(self.store.read().app.routing.result_of(&id)),
                    Err(e) => Err(e),
                })
            }
            PeerRequest::Health => PeerResponse::Health(self.health.report()),
        }
    }
}

impl PeerHandler for NodeHandler {
    fn handle(&self, from: u64, request: Vec<u8>) -> ResponseFuture {
        let handler = NodeHandler {
            raft: self.raft.clone(),
            store: self.store.clone(),
            proposer: self.proposer.clone(),
            health: self.health.clone(),
        };
        Box::pin(async move {
            let answer = handler.answer(from, request).await;
            codec::encode_versioned(&answer).unwrap_or_else(|e| {
                // Only an unencodable openraft type could get here; answer with a refusal.
                let refusal = PeerResponse::Refused(format!("could not encode the answer: {e}"));
                codec::encode_versioned(&refusal).unwrap_or_default()
            })
        })
    }
}

/// Bounds a leader-side request served for a peer: a leader cut off from its quorum would
/// otherwise hold the request (and its task) forever.
async fn bounded<V>(request: impl std::future::Future<Output = Result<V, LeaderError>>) -> Result<V, LeaderError> {
    match tokio::time::timeout(Duration::from_millis(LEADER_REQUEST_TIMEOUT_MS), request).await {
        Ok(answer) => answer,
        Err(_) => Err(LeaderError::Failed(format!("not done within {LEADER_REQUEST_TIMEOUT_MS} ms"))),
    }
}

async fn read_index_as_leader(raft: &LineupRaftHandle) -> Result<u64, LeaderError> {
    match raft.ensure_linearizable().await {
        Ok(read_log_id) => Ok(read_log_id.map(|id| id.index).unwrap_or(0)),
        Err(e) => Err(leader_error::<CheckIsLeaderError<u64, BasicNode>>(e)),
    }
}

/// Largest health report a node sends or accepts (a few hundred bytes in practice).
pub const HEALTH_REPORT_MAX_BYTES: usize = 64 * 1024;

/// The function that makes this node's health report, set by the binary once its parts run.
#[derive(Clone, Default)]
struct HealthSource(Arc<std::sync::RwLock<Option<Arc<dyn Fn() -> Vec<u8> + Send + Sync>>>>);

impl HealthSource {
    fn set(&self, report: Arc<dyn Fn() -> Vec<u8> + Send + Sync>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(report);
    }

    /// The report now; empty without a source or when it is over the size limit.
    fn report(&self) -> Vec<u8> {
        let source = self.0.read().unwrap_or_else(|p| p.into_inner()).clone();
        let report = source.map(|make| make()).unwrap_or_default();
        if report.len() > HEALTH_REPORT_MAX_BYTES {
            return Vec::new();
        }
        report
    }
}

/// A running node. Cheap to share behind an `Arc`.
pub struct ClusterNode<T: PeerTransport> {
    pub(crate) site: u64,
    pub(crate) raft: LineupRaftHandle,
    store: Store,
    transport: Arc<T>,
    effects: broadcast::Sender<SiteEffect>,
    pub(crate) timing: ClusterTiming,
    /// Command ids this node assigns: origin is unique per node run (see [`origin_for`]).
    origin: u64,
    next_serial: AtomicU64,
    background: Mutex<Vec<JoinHandle<()>>>,
    proposer: Proposer,
    pub(crate) clock: WallClock,
    log_writer: Mutex<Option<WriterFinished>>,
    /// The node had a Raft log or vote on disk when it started: it is already in a cluster,
    /// and `bootstrap` does nothing (openraft would refuse and log the refusal as an error).
    stored_raft_state_at_start: bool,
    /// What this node answers when a peer asks for its health.
    health: HealthSource,
}

/// The origin of commands proposed by `site` during run number `incarnation`. A new run
/// never reuses an old run's (origin, serial), so the core's dedup cannot mistake a new
/// command for an old one.
pub fn origin_for(site: u64, incarnation: u32) -> u64 {
    (site << 32) | u64::from(incarnation)
}

impl<T: PeerTransport> ClusterNode<T> {
    /// Opens (or creates) the node's storage, starts Raft, serves peers on `transport` and
    /// starts the leader's Tick/SiteLost duty. The node joins a cluster when a leader adds
    /// it, or forms one with [`ClusterNode::bootstrap`].
    pub async fn start(config: NodeConfig, transport: T) -> Result<Arc<Self>, ClusterError> {
        let db = match &config.storage {
            NodeStorage::Dir(dir) => {
                std::fs::create_dir_all(dir)?;
                open_database(&dir.join("raft.redb"))?
            }
            NodeStorage::Memory(db) => db.clone(),
        };
        let inline_io = matches!(config.storage, NodeStorage::Memory(_));
        let incarnation = crate::log_store::next_incarnation(&db)?;
        let (effects, _) = broadcast::channel(EFFECT_STREAM_CAPACITY);
        let state = SiteState {
            routing: Routing::new(),
            site: SiteId(config.site),
            effects: effects.clone(),
            applied_sink: config.applied_sink.clone(),
            state_hook: config.state_hook.clone(),
        };
        let store = if inline_io { Store::open_inline(db.clone(), state) } else { Store::open(db.clone(), state) }
            .map_err(|e| ClusterError::Storage(e.to_string()))?;
        let (log_store, log_writer) = if inline_io {
            (RedbLogStore::<LineupRaft>::inline(db), None)
        } else {
            let (store, writer) = RedbLogStore::<LineupRaft>::with_writer(db);
            (store, Some(writer))
        };
        let stored_raft_state_at_start = stored_raft_state(&log_store).await?;
        let transport = Arc::new(transport);
        let contact = PeerContact::default();
        let network = PeerNetworkFactory { transport: transport.clone(), contact: contact.clone() };
        let raft_config = Arc::new(config.raft_config()?);
        let raft = openraft::Raft::new(config.site, raft_config, network, log_store, store.clone())
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))?;
        let (proposer, proposer_task) = Proposer::start(raft.clone());
        let health = HealthSource::default();
        transport.serve(Arc::new(NodeHandler {
            raft: raft.clone(),
            store: store.clone(),
            proposer: proposer.clone(),
            health: health.clone(),
        }));
        let node = Arc::new(Self {
            site: config.site,
            raft,
            store,
            transport,
            effects,
            timing: config.timing.clone(),
            origin: origin_for(config.site, incarnation),
            next_serial: AtomicU64::new(1),
            background: Mutex::new(vec![proposer_task]),
            proposer,
            clock: config.clock,
            log_writer: Mutex::new(log_writer),
            stored_raft_state_at_start,
            health,
        });
        let duty = tokio::spawn(leader_duty(Arc::downgrade(&node), contact));
        node.background.lock().unwrap_or_else(|p| p.into_inner()).push(duty);
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
            Err(e) => Err(ClusterError::Raft(e.to_string())),
        }
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

    /// Effects addressed to this site, in log order, from now on.
    pub fn subscribe_effects(&self) -> broadcast::Receiver<SiteEffect> {
        self.effects.subscribe()
    }

    /// Reads this node's applied state (stale: it may trail the leader). For announcements
    /// and dashboards.
    pub fn read_stale<R>(&self, read: impl FnOnce(&Routing) -> R) -> R {
        read(&self.store.read().app.routing)
    }

    /// The last log index this node has applied.
    pub fn applied_index(&self) -> u64 {
        self.store.read().last_applied.as_ref().map(|id| id.index).unwrap_or(0)
    }

    /// Reads the state after everything committed before the call is applied here
    /// (linearizable): the leader confirms its leadership with a quorum and names a log
    /// index, this node waits until it has applied that index, then reads.
    pub async fn read_linearizable<R>(&self, read: impl FnOnce(&Routing) -> R) -> Result<R, ClusterError> {
        let timeout = Duration::from_millis(self.timing.client_write_timeout_ms);
        let index = self.read_index(timeout).await?;
        self.raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(index), "linearizable read")
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))?;
        Ok(self.read_stale(read))
    }

    async fn read_index(&self, timeout: Duration) -> Result<u64, ClusterError> {
        let (leader, addr) = self.wait_for_leader(timeout).await?;
        if leader == self.site {
            // A leader cut off from its quorum never confirms: bound the wait.
            return match tokio::time::timeout(timeout, read_index_as_leader(&self.raft)).await {
                Ok(answer) => answer.map_err(|e| ClusterError::from_leader(leader, e)),
                Err(_) => Err(ClusterError::Timeout { site: leader, timeout_ms: timeout.as_millis() as u64 }),
            };
        }
        match call_peer(&*self.transport, leader, &addr, &PeerRequest::ReadIndex, timeout).await? {
            PeerResponse::ReadIndex(answer) => answer.map_err(|e| ClusterError::from_leader(leader, e)),
            other => Err(ClusterError::PeerRefused(format!("unexpected answer to ReadIndex: {other:?}"))),
        }
    }

    /// The current leader and its address, waiting (bounded) while there is none.
    async fn wait_for_leader(&self, timeout: Duration) -> Result<(u64, String), ClusterError> {
        let metrics = self
            .raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader is known")
            .await
            .map_err(|_| ClusterError::NoLeader { waited_ms: timeout.as_millis() as u64 })?;
        let leader = metrics.current_leader.ok_or(ClusterError::NoLeader { waited_ms: 0 })?;
        let addr = metrics.membership_config.membership().get_node(&leader).map(|n| n.addr.clone()).unwrap_or_default();
        Ok((leader, addr))
    }

    /// A new command id from this node's origin.
    pub fn next_command_id(&self) -> CommandId {
        CommandId { origin: self.origin, serial: self.next_serial.fetch_add(1, Ordering::Relaxed) }
    }

    /// Proposes `body` with a fresh id from this node, stamped with the wall clock.
    pub async fn propose(&self, body: CommandBody) -> Result<Committed, ClusterError> {
        let command = Command { id: self.next_command_id(), at_ms: self.clock.now_unix_ms(), body };
        self.submit(command).await
    }

    /// Commits `command` through the leader, wherever it is, and returns its result.
    ///
    /// Errors are definite: when this returns an error the command was not applied, except
    /// [`ClusterError::OutcomeUnknown`], which says so explicitly. A lost answer is resolved
    /// by reading the result back by the command's id; resending the same id afterwards is
    /// safe because the core applies an id at most once.
    pub async fn submit(&self, command: Command) -> Result<Committed, ClusterError> {
        let size = codec::encode_versioned(&command)?.len();
        if size > COMMAND_MAX_BYTES {
            return Err(ClusterError::CommandTooLarge { size_bytes: size, limit_bytes: COMMAND_MAX_BYTES });
        }
        let timeout = Duration::from_millis(self.timing.client_write_timeout_ms);
        let mut outcome_unknown = false;
        for _attempt in 0..CLIENT_WRITE_ATTEMPTS_MAX {
            let (leader, addr) = self.wait_for_leader(timeout).await?;
            let sent = if leader == self.site {
                match tokio::time::timeout(timeout, self.proposer.propose(command.clone(), size)).await {
                    Ok(answer) => Ok(answer),
                    Err(_) => Err(ClusterError::Timeout { site: leader, timeout_ms: timeout.as_millis() as u64 }),
                }
            } else {
                let request = PeerRequest::ClientWrite(command.clone());
                let forward = call_peer(&*self.transport, leader, &addr, &request, timeout);
                // A leader that died (kill -9, a cut link) may leave its connection looking
                // alive until the timeout: as soon as another leader is known, stop waiting
                // for this one and resolve the outcome with the new leader instead.
                tokio::select! {
                    answer = forward => match answer {
                        Ok(PeerResponse::ClientWrite(answer)) => Ok(answer),
                        Ok(other) => Err(ClusterError::PeerRefused(format!("unexpected answer to a write: {other:?}"))),
                        Err(e) => Err(e),
                    },
                    true = self.leader_changed_from(leader, timeout) => {
                        Err(ClusterError::ConnectionLost { site: leader, reason: "another leader took over".into() })
                    }
                }
            };
            match sent {
                Ok(Ok(committed)) => return Ok(committed),
                // The leader moved before proposing: nothing happened; go again.
                Ok(Err(LeaderError::NotLeader { .. })) => {
                    self.await_leader_change(leader, timeout).await;
                }
                // Not delivered: nothing happened; go again once a leader is known.
                Err(ClusterError::Unreachable { .. }) => {
                    self.await_leader_change(leader, timeout).await;
                }
                // Delivered but unanswered, or failed after proposing: read it back.
                // Refused before proposing: definite.
                Ok(Err(LeaderError::Refused(reason))) => return Err(ClusterError::PeerRefused(reason)),
                Ok(Err(LeaderError::Failed(_)))
                | Err(ClusterError::Timeout { .. })
                | Err(ClusterError::ConnectionLost { .. }) => {
                    outcome_unknown = true;
                    if let Ok(Some(result)) = self.result_of(command.id).await {
                        return Ok(Committed { apply_index: None, result, effects: Vec::new() });
                    }
                    // Not applied as of a linearizable read: resending the same id is safe.
                }
                Err(e) => return Err(e),
            }
        }
        if outcome_unknown {
            Err(ClusterError::OutcomeUnknown { origin: command.id.origin, serial: command.id.serial })
        } else {
            Err(ClusterError::NoLeader { waited_ms: timeout.as_millis() as u64 * u64::from(CLIENT_WRITE_ATTEMPTS_MAX) })
        }
    }

    /// Proposes through this node's own Raft (it must be the leader).
    pub(crate) async fn propose_as_leader(&self, command: Command) -> Result<Committed, LeaderError> {
        let size = codec::encode_versioned(&command).map_err(|e| LeaderError::Refused(e.to_string()))?.len();
        self.proposer.propose(command, size).await
    }

    /// True once another leader than `old` is known; false if none is within `timeout`.
    async fn leader_changed_from(&self, old: u64, timeout: Duration) -> bool {
        self.raft
            .wait(Some(timeout))
            .metrics(move |m| m.current_leader.is_some_and(|l| l != old), "another leader")
            .await
            .is_ok()
    }

    /// Waits (bounded) until the known leader is someone other than `old`.
    async fn await_leader_change(&self, old: u64, timeout: Duration) {
        let _ = self
            .raft
            .wait(Some(timeout))
            .metrics(move |m| m.current_leader.is_some_and(|l| l != old), "leader changed")
            .await;
    }

    /// The committed result of command `id`, read linearizably; `None` if it has not been
    /// applied (or has left the core's dedup window).
    pub async fn result_of(&self, id: CommandId) -> Result<Option<CommandResult>, ClusterError> {
        self.read_linearizable(|routing| routing.result_of(&id)).await
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
        self.raft.trigger().snapshot().await.map_err(|e| ClusterError::Raft(e.to_string()))
    }

    /// Stops Raft and the leader duty. The transport stays with the caller.
    pub async fn shutdown(&self) {
        for task in self.background.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            task.abort();
        }
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
    }
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
    let log = probe.get_log_state().await.map_err(|e| ClusterError::Storage(e.to_string()))?;
    let vote = probe.read_vote().await.map_err(|e| ClusterError::Storage(e.to_string()))?;
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
