use crate::ids::{CallId, GateId, OperatorId, QueueId, ScheduleId, SiteId};
use serde::{Deserialize, Serialize};

/// Why a command was refused. A refused command changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CoreError {
    #[error("unknown queue {0}")]
    UnknownQueue(QueueId),
    #[error("unknown gate {0}")]
    UnknownGate(GateId),
    #[error("gate {gate} belongs to queue {gate_queue}, not {queue}")]
    GateNotInQueue { gate: GateId, gate_queue: QueueId, queue: QueueId },
    #[error("unknown operator {0}")]
    UnknownOperator(OperatorId),
    #[error("unknown schedule {0}")]
    UnknownSchedule(ScheduleId),
    #[error("unknown call {0}")]
    UnknownCall(CallId),
    #[error("call {0} already exists")]
    DuplicateCall(CallId),
    #[error("operator {0} is not logged in")]
    OperatorNotLoggedIn(OperatorId),
    #[error("stale fence {got} for call {call} ({})", current.map_or("no current offer".to_string(), |f| format!("current offer has fence {f}")))]
    StaleFence { call: CallId, got: u64, current: Option<u64> },
    #[error("{what}: {detail}")]
    InvalidState { what: String, detail: String },
    #[error("site {0} is lost")]
    SiteDown(SiteId),
    #[error("invalid {field}: {reason}")]
    InvalidField { field: String, reason: String },
    #[error("{what} {id} is still in use: {detail}")]
    InUse { what: String, id: String, detail: String },
    #[error("too many waiting calls in total (limit {limit})")]
    TooManyCalls { limit: usize },
    #[error("log index {0} is beyond the order key range")]
    LogIndexTooLarge(u64),
    #[error("duplicate command (origin {origin}, serial {serial}) older than the deduplication window")]
    DuplicateTooOld { origin: u64, serial: u64 },
    #[error("operator {0} has no eligible caller to pull")]
    NothingToPull(OperatorId),
    /// A whole-config apply was refused; names the object and field at fault.
    #[error("config refused: {0}")]
    InvalidConfig(crate::config_set::ConfigProblem),
    /// A supervisor's or admin's change of a party the unreachable site owns (island mode:
    /// the site may be serving it on its own), or a config removal while a site is cut off.
    #[error("site {} is unreachable: its operators and callers change only there until it is back or declared lost", .0.0)]
    SiteUnreachable(SiteId),
    /// A merge step (Records, End) of an island whose Begin has not been applied.
    #[error("island {seq} of site {} is not merging: its merge has not begun", .site.0)]
    IslandMergeNotOpen { site: SiteId, seq: u64 },
    /// A merge of another island of the site is open (a Begin of another epoch, or a plain
    /// `SiteBack`, while the site merges).
    #[error("site {} is merging its island {open_seq}: only that merge's end brings it back", .site.0)]
    IslandMergeOpen { site: SiteId, open_seq: u64 },
    /// The merge's steps do not add up (a chunk after a gap, an End before every record,
    /// records that differ from what the Begin announced).
    #[error("the merge of island {seq} of site {} is incomplete: {detail}", .site.0)]
    IslandMergeIncomplete { site: SiteId, seq: u64, detail: String },
}
