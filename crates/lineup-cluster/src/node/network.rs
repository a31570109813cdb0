//! openraft's network over a [`PeerTransport`]: the per-peer client, and the record of when
//! the leader last reached each peer (the leader duty's input) and of the last request each
//! peer accepted (the lease, `lease.rs`).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lineup_core::codec;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::BasicNode;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::lease::LeaseFrom;
use crate::frame::PEER_DECODE_LIMIT_BYTES;
use crate::raft_types::LineupRaft;
use crate::rpc::{PeerRequest, PeerResponse};
use crate::transport::PeerTransport;
use crate::ClusterError;

/// What the leader knows about reaching its peers: the last successful exchange with each
/// (for SiteLost and quorum checks), the last request each accepted (the lease), and whether
/// it has gone quiet (see [`crate::leader_duty`]).
#[derive(Default)]
pub(crate) struct PeerHealth {
    pub(crate) last_contact: Mutex<BTreeMap<u64, Instant>>,
    /// Per peer, the send time and term of the last AppendEntries it accepted or vote it
    /// granted: an answer proves the peer had the request no earlier than its send time.
    pub(crate) lease_from: Mutex<BTreeMap<u64, LeaseFrom>>,
    /// Woken whenever a lease is noted, for a new leader waiting to acquire its leases.
    pub(crate) lease_noted: Notify,
    /// Set while this node is a leader that hears no quorum: it then sends no log
    /// replication or heartbeats, so the sites that can still form a majority elect a leader.
    pub(crate) quiet: std::sync::atomic::AtomicBool,
    /// When this node last accepted a leader's AppendEntries or InstallSnapshot (its vote
    /// not higher than the leader's): while that is recent it does not stand for election
    /// (`stand_gate.rs`).
    pub(crate) leader_heard: Mutex<Option<Instant>>,
    /// When this node last had contact with the quorum (island mode §1.2): as a follower, an
    /// accepted AppendEntries or InstallSnapshot or a granted vote; as a leader, a check
    /// that found a quorum heard (`island_watch.rs`).
    pub(crate) quorum_contact: Mutex<Option<Instant>>,
}

impl PeerHealth {
    /// Notes that a leader's request was accepted now (or, after a freeze, counts as if).
    pub(crate) fn note_leader_heard(&self, at: Instant) {
        let mut heard = self.leader_heard.lock().unwrap_or_else(|p| p.into_inner());
        *heard = Some(heard.map_or(at, |before| before.max(at)));
    }

    pub(crate) fn leader_heard_at(&self) -> Option<Instant> {
        *self.leader_heard.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes contact with the quorum at `at` (never moves it back).
    pub(crate) fn note_quorum_contact(&self, at: Instant) {
        let mut contact = self.quorum_contact.lock().unwrap_or_else(|p| p.into_inner());
        *contact = Some(contact.map_or(at, |before| before.max(at)));
    }

    pub(crate) fn quorum_contact_at(&self) -> Option<Instant> {
        *self.quorum_contact.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) type PeerContact = Arc<PeerHealth>;

fn note_contact(contact: &PeerContact, site: u64) {
    contact.last_contact.lock().unwrap_or_else(|p| p.into_inner()).insert(site, Instant::now());
}

fn note_lease(contact: &PeerContact, site: u64, lease: LeaseFrom) {
    let mut leases = contact.lease_from.lock().unwrap_or_else(|p| p.into_inner());
    if leases.get(&site).is_none_or(|held| lease.newer_than(held)) {
        leases.insert(site, lease);
        drop(leases);
        contact.lease_noted.notify_waiters();
    }
}

/// openraft's network factory over a [`PeerTransport`].
pub struct PeerNetworkFactory<T> {
    pub(super) transport: Arc<T>,
    pub(super) contact: PeerContact,
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
pub(super) async fn call_peer<T: PeerTransport>(
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
        other => format!("unexpected answer {}", other.kind()),
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
        let lease = LeaseFrom { term: rpc.vote.leader_id().get_term(), sent_at: Instant::now() };
        let answer = match self.call(&PeerRequest::AppendEntries(rpc), &option).await.map_err(rpc_error)? {
            PeerResponse::AppendEntries(answer) => {
                answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))?
            }
            other => return Err(unexpected(other)),
        };
        if matches!(answer, AppendEntriesResponse::Success | AppendEntriesResponse::PartialSuccess(_)) {
            note_lease(&self.contact, self.target, lease);
        }
        Ok(answer)
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
        let lease = LeaseFrom { term: rpc.vote.leader_id().get_term(), sent_at: Instant::now() };
        let answer = match self.call(&PeerRequest::Vote(rpc), &option).await.map_err(rpc_error)? {
            PeerResponse::Vote(answer) => {
                answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))?
            }
            other => return Err(unexpected(other)),
        };
        if answer.vote_granted {
            note_lease(&self.contact, self.target, lease);
        }
        Ok(answer)
    }
}
