//! What sites say to each other: Raft RPCs plus the client-side requests that must reach
//! the leader (forwarded writes, read index, result read-back). One request, one response,
//! each a versioned codec envelope inside one transport frame.

use lineup_core::{codec, Applied, Command, CommandId, CommandResult, Effect};
use openraft::error::{ForwardToLeader, InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};

use crate::frame::PEER_DECODE_LIMIT_BYTES;
use crate::origin::site_of_origin;
use crate::raft_types::LineupRaft;

#[derive(Debug, Serialize, Deserialize)]
pub enum PeerRequest {
    AppendEntries(AppendEntriesRequest<LineupRaft>),
    Vote(VoteRequest<u64>),
    InstallSnapshot(InstallSnapshotRequest<LineupRaft>),
    /// A client write proposed at another site, to be committed by this (leader) site.
    ClientWrite(Command),
    /// Confirm leadership with a quorum and return the index a linearizable read must wait
    /// for.
    ReadIndex,
    /// The committed result of a command, read linearizably (resolves unknown outcomes).
    ResultOf(CommandId),
    /// The peer's own health report (ARI, history, Redis), for status pages: asked over this
    /// mutually authenticated link so no API token ever travels to a peer.
    Health,
    /// The peer's wall clock, for a leader whose own is outside the shared clock's slew
    /// (appended last: peer frames are bincode, and older nodes must keep decoding).
    WallClock,
}

/// Decodes a request that the transport authenticated as coming from site `from`, or says
/// why it is refused: undecodable, or a Raft message in the name of another site (a site
/// with a valid certificate must not speak for another).
pub fn admit_request(from: u64, bytes: &[u8]) -> Result<PeerRequest, String> {
    let request: PeerRequest = codec::decode_versioned_bounded::<_, PEER_DECODE_LIMIT_BYTES>(bytes)
        .map_err(|e| format!("undecodable request: {e}"))?;
    // A Raft message names its sender in its vote.
    let claimed = match &request {
        PeerRequest::AppendEntries(rpc) => rpc.vote.leader_id().voted_for(),
        PeerRequest::Vote(rpc) => rpc.vote.leader_id().voted_for(),
        PeerRequest::InstallSnapshot(rpc) => rpc.vote.leader_id().voted_for(),
        // A forwarded write names its site in its command id.
        PeerRequest::ClientWrite(command) => Some(site_of_origin(command.id.origin)),
        PeerRequest::ReadIndex | PeerRequest::ResultOf(_) | PeerRequest::Health | PeerRequest::WallClock => Some(from),
    };
    if claimed != Some(from) {
        let claimed = claimed.map_or("no site".to_string(), |site| format!("site {site}"));
        return Err(format!("site {from} sent a message in the name of {claimed}"));
    }
    Ok(request)
}

#[derive(Debug, Serialize, Deserialize)]
pub enum PeerResponse {
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    ClientWrite(Result<Committed, LeaderError>),
    ReadIndex(Result<u64, LeaderError>),
    ResultOf(Result<Option<CommandResult>, LeaderError>),
    /// The request could not be decoded, or its claimed sender is not the authenticated
    /// peer. Nothing was done.
    Refused(String),
    /// The answering node's health report, as its binary encodes it (opaque here; empty when
    /// the node has no report source).
    Health(Vec<u8>),
    /// The answering node's wall clock, Unix milliseconds.
    WallClock(u64),
}

impl PeerResponse {
    /// The answer's kind, for messages about an answer that did not fit the request (its
    /// Debug form would dump whole log entries).
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            PeerResponse::AppendEntries(_) => "AppendEntries",
            PeerResponse::Vote(_) => "Vote",
            PeerResponse::InstallSnapshot(_) => "InstallSnapshot",
            PeerResponse::ClientWrite(_) => "ClientWrite",
            PeerResponse::ReadIndex(_) => "ReadIndex",
            PeerResponse::ResultOf(_) => "ResultOf",
            PeerResponse::Refused(_) => "Refused",
            PeerResponse::Health(_) => "Health",
            PeerResponse::WallClock(_) => "WallClock",
        }
    }
}

/// Why a site that was asked to act as leader did not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaderError {
    /// Not the leader; here is who is, if known. The request was not proposed.
    NotLeader { leader: Option<u64>, leader_addr: Option<String> },
    /// The request itself is unacceptable (e.g. too large); nothing was proposed.
    Refused(String),
    /// Raft refused or failed; the message says why. For a write, nothing was committed
    /// unless the message is about a lost leadership after proposing (then the outcome is
    /// resolved by read-back).
    Failed(String),
}

/// What a Raft refusal means to the site that asked this one to act as leader.
pub(crate) fn leader_error<E>(e: RaftError<u64, E>) -> LeaderError
where
    E: std::error::Error + openraft::TryAsRef<ForwardToLeader<u64, BasicNode>>,
{
    match e.forward_to_leader::<BasicNode>() {
        Some(forward) => LeaderError::NotLeader {
            leader: forward.leader_id,
            leader_addr: forward.leader_node.as_ref().map(|n| n.addr.clone()),
        },
        None => LeaderError::Failed(e.to_string()),
    }
}

/// A committed command's outcome, as returned to the proposer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    /// The apply index it was applied at (its Raft log index times
    /// [`crate::batch::ENTRY_COMMANDS_MAX`] plus its position in the entry; the fence of an
    /// offer it made). `None` when the outcome was recovered by reading the result back.
    pub apply_index: Option<u64>,
    pub result: CommandResult,
    /// The effects of this apply. Empty when the outcome was recovered by read-back or the
    /// command was a duplicate; every site's effect stream carries them regardless.
    pub effects: Vec<Effect>,
}

impl Committed {
    pub(crate) fn from_applied(apply_index: u64, applied: Applied) -> Self {
        Self { apply_index: Some(apply_index), result: applied.result, effects: applied.effects }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_admitted_only_when_it_decodes() {
        let health = codec::encode_versioned(&PeerRequest::Health).unwrap();
        assert!(matches!(admit_request(2, &health), Ok(PeerRequest::Health)));
        assert!(admit_request(2, &[]).unwrap_err().contains("undecodable"));
        assert!(admit_request(2, &health[..0]).is_err());
        let mut wrong_version = health.clone();
        wrong_version[0] = codec::FORMAT_VERSION.wrapping_add(1);
        assert!(admit_request(2, &wrong_version).unwrap_err().contains("undecodable"));
    }

    fn client_write(origin: u64) -> Vec<u8> {
        let command = Command {
            id: CommandId { origin, serial: 1 },
            at_ms: 0,
            body: lineup_core::CommandBody::SiteBack { site: lineup_core::SiteId(origin) },
        };
        codec::encode_versioned(&PeerRequest::ClientWrite(command)).unwrap()
    }

    #[test]
    fn a_peer_forwards_only_writes_of_its_own_site() {
        assert!(matches!(admit_request(2, &client_write(2)), Ok(PeerRequest::ClientWrite(_))));
        assert!(admit_request(2, &client_write(crate::origin::origin_for(2, 7))).is_ok());
        let refused = admit_request(2, &client_write(3)).unwrap_err();
        assert_eq!(refused, "site 2 sent a message in the name of site 3");
        assert!(admit_request(2, &client_write(crate::origin::origin_for(3, 1))).is_err());
    }
}
