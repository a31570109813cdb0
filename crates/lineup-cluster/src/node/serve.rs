//! What this node answers its peers: Raft RPCs, and the writes, read indexes, result
//! read-backs and health reports that other sites ask of it.

use std::sync::Arc;
use std::time::Duration;

use lineup_core::codec;
use openraft::error::CheckIsLeaderError;
use openraft::raft::AppendEntriesResponse;
use openraft::BasicNode;
use tokio::time::Instant;

use super::config::{WallClock, COMMAND_MAX_BYTES, LEADER_REQUEST_TIMEOUT_MS};
use super::island_watch::IslandWatchHandle;
use super::proposer::Proposer;
use super::site_state::Store;
use super::PeerContact;
use crate::raft_types::LineupRaftHandle;
use crate::rpc::{admit_request, leader_error, LeaderError, PeerRequest, PeerResponse};
use crate::transport::{PeerHandler, ResponseFuture};

/// Serves peers' requests on this node.
pub(super) struct NodeHandler {
    pub(super) raft: LineupRaftHandle,
    pub(super) store: Store,
    pub(super) proposer: Proposer,
    pub(super) health: HealthSource,
    pub(super) clock: WallClock,
    pub(super) contact: PeerContact,
    pub(super) island: Arc<IslandWatchHandle>,
}

impl NodeHandler {
    async fn answer(&self, from: u64, request: Vec<u8>) -> PeerResponse {
        let request = match admit_request(from, &request) {
            Ok(request) => request,
            Err(refusal) => return PeerResponse::Refused(refusal),
        };
        match request {
            PeerRequest::AppendEntries(rpc) => {
                let answer = self.raft.append_entries(rpc).await;
                if matches!(&answer, Ok(response) if !matches!(response, AppendEntriesResponse::HigherVote(_))) {
                    let now = Instant::now();
                    self.contact.note_leader_heard(now);
                    self.contact.note_quorum_contact(now);
                }
                PeerResponse::AppendEntries(answer)
            }
            PeerRequest::Vote(rpc) => {
                let answer = self.raft.vote(rpc).await;
                // A granted vote is a promise to a candidate that may lead at once (§1.2).
                if matches!(&answer, Ok(response) if response.vote_granted) {
                    self.contact.note_quorum_contact(Instant::now());
                }
                PeerResponse::Vote(answer)
            }
            PeerRequest::InstallSnapshot(rpc) => {
                let leader_vote = rpc.vote;
                let answer = self.raft.install_snapshot(rpc).await;
                // A lower vote than this node's is answered Ok with the higher one.
                if matches!(&answer, Ok(response) if response.vote <= leader_vote) {
                    let now = Instant::now();
                    self.contact.note_leader_heard(now);
                    self.contact.note_quorum_contact(now);
                }
                PeerResponse::InstallSnapshot(answer)
            }
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
                    Ok(_) => Ok(self.store.read().app.routing().result_of(&id)),
                    Err(e) => Err(e),
                })
            }
            PeerRequest::Health => PeerResponse::Health(self.health.report()),
            PeerRequest::WallClock => PeerResponse::WallClock(self.clock.now_unix_ms()),
            PeerRequest::IslandStatus => {
                PeerResponse::IslandStatus { epoch: self.island.epoch(), state: self.island.state().phase() }
            }
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
            clock: self.clock,
            contact: self.contact.clone(),
            island: self.island.clone(),
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

pub(super) async fn read_index_as_leader(raft: &LineupRaftHandle) -> Result<u64, LeaderError> {
    match raft.ensure_linearizable().await {
        Ok(read_log_id) => Ok(read_log_id.map(|id| id.index).unwrap_or(0)),
        Err(e) => Err(leader_error::<CheckIsLeaderError<u64, BasicNode>>(e)),
    }
}

/// Largest health report a node sends or accepts (a few hundred bytes in practice).
pub const HEALTH_REPORT_MAX_BYTES: usize = 64 * 1024;

/// Makes this node's health report (encoded by the binary).
pub(super) type MakeHealthReport = Arc<dyn Fn() -> Vec<u8> + Send + Sync>;

/// The function that makes this node's health report, set by the binary once its parts run.
#[derive(Clone, Default)]
pub(super) struct HealthSource(Arc<std::sync::RwLock<Option<MakeHealthReport>>>);

impl HealthSource {
    pub(super) fn set(&self, report: MakeHealthReport) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(report);
    }

    /// The report now; empty without a source or when it is over the size limit.
    pub(super) fn report(&self) -> Vec<u8> {
        let source = self.0.read().unwrap_or_else(|p| p.into_inner()).clone();
        let report = source.map(|make| make()).unwrap_or_default();
        if report.len() > HEALTH_REPORT_MAX_BYTES {
            return Vec::new();
        }
        report
    }
}
