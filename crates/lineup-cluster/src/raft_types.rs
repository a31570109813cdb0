//! openraft's type configuration for Lineup and the handle type built on it, declared apart
//! from the node so the batcher and the peer messages depend on it without depending on the
//! node.

// The raft-types macro names `Cursor` unqualified for its default SnapshotData.
use std::io::Cursor;

use lineup_core::Applied;
use openraft::BasicNode;

use crate::batch::CommandBatch;

openraft::declare_raft_types!(
    /// openraft's type configuration for Lineup: a log entry carries a batch of routing
    /// [`Command`](lineup_core::Command)s ([`CommandBatch`]), the response is their
    /// [`Applied`] results (None for Raft's own blank and membership entries), and a node
    /// id is a site id.
    pub LineupRaft:
        D = CommandBatch,
        R = Option<Vec<Applied>>,
        NodeId = u64,
        Node = BasicNode,
        AsyncRuntime = crate::runtime::LineupRuntime,
);

pub type LineupRaftHandle = openraft::Raft<LineupRaft>;
