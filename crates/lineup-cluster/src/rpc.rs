//! What sites say to each other: Raft RPCs plus the client-side requests that must reach
//! the leader (forwarded writes, read index, result read-back). One request, one response,
//! each a versioned codec envelope inside one transport frame.

use lineup_core::{codec, Applied, Command, CommandId, CommandResult, Effect, IslandEpoch};
use openraft::error::{ForwardToLeader, InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};

use crate::frame::PEER_DECODE_LIMIT_BYTES;
use crate::node::island_watch::IslandPhase;
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
    /// Whether the peer is an island (docs/rfcs/island-mode.md §2.2), asked by a leader before
    /// it brings a site heard again back (appended last, as `WallClock`).
    IslandStatus,
}

/// How a refusal of an undecodable request starts (a leader asking an older node a newer
/// question recognises it).
pub const UNDECODABLE_REQUEST: &str = "undecodable request";

/// Decodes a request that the transport authenticated as coming from site `from`, or says
/// why it is refused: undecodable, or a Raft message in the name of another site (a site
/// with a valid certificate must not speak for another).
pub fn admit_request(from: u64, bytes: &[u8]) -> Result<PeerRequest, String> {
    let request: PeerRequest = codec::decode_versioned_bounded::<_, PEER_DECODE_LIMIT_BYTES>(bytes)
        .map_err(|e| format!("{UNDECODABLE_REQUEST}: {e}"))?;
    // A Raft message names its sender in its vote.
    let claimed = match &request {
        PeerRequest::AppendEntries(rpc) => rpc.vote.leader_id().voted_for(),
        PeerRequest::Vote(rpc) => rpc.vote.leader_id().voted_for(),
        PeerRequest::InstallSnapshot(rpc) => rpc.vote.leader_id().voted_for(),
        // A forwarded write names its site in its command id.
        PeerRequest::ClientWrite(command) => Some(site_of_origin(command.id.origin)),
        PeerRequest::ReadIndex
        | PeerRequest::ResultOf(_)
        | PeerRequest::Health
        | PeerRequest::WallClock
        | PeerRequest::IslandStatus => Some(from),
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
    /// The answering node's open island epoch (journaled; `None` when it has none) and what
    /// its island watch says now.
    IslandStatus {
        epoch: Option<IslandEpoch>,
        state: IslandPhase,
    },
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
            PeerResponse::IslandStatus { .. } => "IslandStatus",
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

    /// Golden bytes: peer frames are bincode, so a variant's tag is its position; appending
    /// `IslandStatus` must leave every older message's bytes as they were.
    #[test]
    fn island_status_is_appended_and_older_messages_keep_their_bytes() {
        let v = codec::FORMAT_VERSION;
        assert_eq!(codec::encode_versioned(&PeerRequest::Health).unwrap(), [v, 6]);
        assert_eq!(codec::encode_versioned(&PeerRequest::WallClock).unwrap(), [v, 7]);
        assert_eq!(codec::encode_versioned(&PeerRequest::IslandStatus).unwrap(), [v, 8]);
        assert_eq!(codec::encode_versioned(&PeerResponse::WallClock(5)).unwrap(), [v, 8, 5]);
        let none = PeerResponse::IslandStatus { epoch: None, state: IslandPhase::None };
        assert_eq!(codec::encode_versioned(&none).unwrap(), [v, 9, 0, 0]);
        let epoch = IslandEpoch { site: lineup_core::SiteId(2), seq: 3, fork_index: 40 };
        let open = PeerResponse::IslandStatus { epoch: Some(epoch), state: IslandPhase::Island };
        assert_eq!(codec::encode_versioned(&open).unwrap(), [v, 9, 1, 2, 3, 40, 1]);
    }

    #[test]
    fn island_status_round_trips_and_is_asked_in_ones_own_name() {
        let asked = codec::encode_versioned(&PeerRequest::IslandStatus).unwrap();
        assert!(matches!(admit_request(3, &asked), Ok(PeerRequest::IslandStatus)));
        let epoch = IslandEpoch { site: lineup_core::SiteId(3), seq: 1, fork_index: 7 };
        for state in [IslandPhase::None, IslandPhase::Island, IslandPhase::Healed] {
            for epoch in [None, Some(epoch)] {
                let bytes = codec::encode_versioned(&PeerResponse::IslandStatus { epoch, state }).unwrap();
                let back: PeerResponse = codec::decode_versioned(&bytes, usize::MAX).unwrap();
                assert!(
                    matches!(back, PeerResponse::IslandStatus { epoch: e, state: s } if e == epoch && s == state),
                    "{back:?}"
                );
            }
        }
        // An older node's refusal of the question names it undecodable (the leader reads it so).
        assert!(admit_request(3, &[codec::FORMAT_VERSION, 200]).unwrap_err().starts_with(UNDECODABLE_REQUEST));
    }
}
