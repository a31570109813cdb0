//! The Raft model's vocabulary: its timing, log entries, messages between nodes, roles,
//! and what one handler call produces for the simulator to act on.

use lineup_core::Command;
use std::rc::Rc;

use crate::applied::AppliedEntry;

#[derive(Debug, Clone, Copy)]
pub struct RaftTiming {
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    pub entries_per_append_max: usize,
    /// Every node snapshots when its applied index is a multiple of this, so snapshots of
    /// different nodes at one index can be compared byte for byte.
    pub snapshot_every_entries: u64,
}

impl Default for RaftTiming {
    fn default() -> Self {
        RaftTiming {
            heartbeat_ms: 100,
            election_min_ms: 600,
            election_max_ms: 1_200,
            entries_per_append_max: 64,
            snapshot_every_entries: 1_024,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub term: u64,
    pub commands: Rc<Vec<Command>>,
}

#[derive(Debug, Clone)]
pub enum Msg {
    Append {
        term: u64,
        leader: usize,
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Entry>,
        commit: u64,
    },
    /// `index`: on success the highest index known to match the leader; on failure a hint
    /// where to resume.
    AppendResp {
        term: u64,
        from: usize,
        ok: bool,
        index: u64,
    },
    Vote {
        term: u64,
        candidate: usize,
        last_index: u64,
        last_term: u64,
    },
    VoteResp {
        term: u64,
        from: usize,
        granted: bool,
    },
    Snapshot {
        term: u64,
        leader: usize,
        index: u64,
        snap_term: u64,
        data: Rc<Vec<u8>>,
    },
    /// A client proposal on its way to the leader.
    Forward {
        command: Command,
        hops: u8,
    },
}

impl Msg {
    pub fn kind(&self) -> u64 {
        match self {
            Msg::Append { .. } => 1,
            Msg::AppendResp { .. } => 2,
            Msg::Vote { .. } => 3,
            Msg::VoteResp { .. } => 4,
            Msg::Snapshot { .. } => 5,
            Msg::Forward { .. } => 6,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Follower,
    Candidate { votes: u64 },
    Leader { next: Vec<u64>, matched: Vec<u64> },
}

/// What one handler call produced.
#[derive(Debug, Default)]
pub struct Out {
    pub msgs: Vec<(usize, Msg)>,
    pub applied: Vec<AppliedEntry>,
    pub want_sync: bool,
    pub want_flush: bool,
    pub became_leader: Option<u64>,
    /// (applied index, hash of the snapshot bytes)
    pub snapshots: Vec<(u64, u64)>,
    pub installed_snapshot: bool,
    pub forwards_dropped: u64,
    pub violations: Vec<String>,
}
