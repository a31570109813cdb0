use lineup_core::codec::CodecError;

/// The failure underneath a [`ClusterError`] that wraps one (redb's, openraft's), kept so
/// a report can print the whole chain of causes.
pub type ErrorSource = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in the cluster layer. Peer input never panics the node: a
/// bad frame becomes [`ClusterError::Frame`] or [`ClusterError::Codec`] and the stream or
/// connection that carried it is dropped.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The node's redb file or openraft's storage failed; `what` says at which step.
    #[error("storage: {what}")]
    Storage {
        what: String,
        #[source]
        source: Option<ErrorSource>,
    },
    #[error("codec: {0}")]
    Codec(#[from] CodecError),
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("tls configuration: {0}")]
    Tls(String),
    #[error("frame: {0}")]
    Frame(String),
    #[error("peer {site} unreachable: {reason}")]
    Unreachable { site: u64, reason: String },
    #[error("no answer from peer {site} within {timeout_ms} ms (the request may or may not have been applied)")]
    Timeout { site: u64, timeout_ms: u64 },
    #[error("connection to peer {site} lost mid-request (the request may or may not have been applied): {reason}")]
    ConnectionLost { site: u64, reason: String },
    #[error("peer refused: {0}")]
    PeerRefused(String),
    /// The node's configuration was refused; `what` says which part.
    #[error("configuration: {what}")]
    Config {
        what: String,
        #[source]
        source: Option<ErrorSource>,
    },
    /// openraft failed or refused; `what` says what was being done.
    #[error("raft: {what}")]
    Raft {
        what: String,
        #[source]
        source: Option<ErrorSource>,
    },
    #[error("no leader known after waiting {waited_ms} ms (no quorum reachable?)")]
    NoLeader { waited_ms: u64 },
    #[error("site {site} is not the leader ({})", leader.map_or("no leader known".to_string(), |l| format!("the leader is site {l}")))]
    NotLeader { site: u64, leader: Option<u64> },
    #[error("leader {site} failed the request: {reason}")]
    LeaderFailed { site: u64, reason: String },
    #[error("command ({origin}, {serial}) may or may not have been applied: no answer and no result to read back")]
    OutcomeUnknown { origin: u64, serial: u64 },
    #[error("command of {size_bytes} bytes exceeds the limit of {limit_bytes} bytes")]
    CommandTooLarge { size_bytes: usize, limit_bytes: usize },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A backup file was refused (damaged, truncated, too large, another format), or a
    /// restore was refused (a data directory already in use); `what` says why.
    #[error("backup: {what}")]
    Backup { what: String },
    /// The island journal refused an operation (no open epoch, an epoch not newer than the
    /// last, a fork snapshot of another epoch, a replay that contradicts itself); `what` says
    /// which. A damaged journal file is [`ClusterError::Storage`].
    #[error("island journal: {what}")]
    IslandJournal {
        what: String,
        #[source]
        source: Option<ErrorSource>,
    },
    /// `begin` while an epoch is open: an open epoch ends only by its merge or declare-lost.
    #[error("island journal: epoch {open:?} is still open")]
    IslandEpochOpen { open: lineup_core::IslandEpoch },
    /// The island journal holds its maximum of entries: the island refuses new callers.
    #[error("island journal full: it holds its maximum of {entries_max} entries (refuse new callers)")]
    IslandJournalFull { entries_max: u64 },
    #[error("island batch of {commands} commands refused: 1 to {limit_commands} commands per entry")]
    IslandBatch { commands: usize, limit_commands: usize },
    /// A command for the island's fork while this node serves none (no open epoch, or its
    /// proposer stopped): nothing was applied.
    #[error("this node serves no island fork")]
    NoIsland,
}

impl ClusterError {
    pub(crate) fn storage(what: impl Into<String>, source: impl Into<ErrorSource>) -> Self {
        ClusterError::Storage { what: what.into(), source: Some(source.into()) }
    }

    pub(crate) fn config(what: impl Into<String>, source: impl Into<ErrorSource>) -> Self {
        ClusterError::Config { what: what.into(), source: Some(source.into()) }
    }

    pub(crate) fn raft(what: impl Into<String>, source: impl Into<ErrorSource>) -> Self {
        ClusterError::Raft { what: what.into(), source: Some(source.into()) }
    }

    /// Names the peer in a transport error raised below the layer that knew it.
    pub(crate) fn for_site(self, target: u64) -> Self {
        match self {
            ClusterError::Unreachable { reason, .. } => ClusterError::Unreachable { site: target, reason },
            ClusterError::ConnectionLost { reason, .. } => ClusterError::ConnectionLost { site: target, reason },
            ClusterError::Timeout { timeout_ms, .. } => ClusterError::Timeout { site: target, timeout_ms },
            other => other,
        }
    }

    pub(crate) fn from_leader(site: u64, e: crate::rpc::LeaderError) -> Self {
        match e {
            crate::rpc::LeaderError::NotLeader { leader, .. } => ClusterError::NotLeader { site, leader },
            crate::rpc::LeaderError::Failed(reason) => ClusterError::LeaderFailed { site, reason },
            crate::rpc::LeaderError::Refused(reason) => ClusterError::PeerRefused(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn a_wrapped_failure_stays_in_the_chain_and_out_of_the_message() {
        let cause = std::io::Error::other("disk on fire");
        let e = ClusterError::storage("opening raft.redb", cause);
        assert_eq!(e.to_string(), "storage: opening raft.redb");
        let source = e.source().expect("the cause is kept as the source");
        assert_eq!(source.to_string(), "disk on fire");
    }
}
