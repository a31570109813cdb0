//! How a refusal is kept in the deduplication window, and so in every snapshot.
//!
//! `CoreError` is the API of refusals and may change shape; what a snapshot carries must
//! not. `RefusalRecord` is that carried form: its variants and fields are only ever
//! appended (bincode numbers variants by position), and it maps to and from `CoreError`
//! exhaustively, so a new refusal does not compile until it has a record. Its layout is the
//! one `CoreError` itself had when the window stored it, so older snapshots restore
//! unchanged (`tests/snapshot_golden_bytes.rs`).

use super::Response;
use crate::config_set::{ConfigKind, ConfigProblem};
use crate::ids::{CallId, GateId, OperatorId, QueueId, ScheduleId, SiteId};
use crate::CoreError;
use serde::{Deserialize, Serialize};

/// A command's result as the deduplication window keeps it.
pub(super) type ResultRecord = Result<Response, RefusalRecord>;

/// A refused command, as a snapshot carries it. Append only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum RefusalRecord {
    UnknownQueue(QueueId),
    UnknownGate(GateId),
    GateNotInQueue {
        gate: GateId,
        gate_queue: QueueId,
        queue: QueueId,
    },
    UnknownOperator(OperatorId),
    UnknownSchedule(ScheduleId),
    UnknownCall(CallId),
    DuplicateCall(CallId),
    OperatorNotLoggedIn(OperatorId),
    StaleFence {
        call: CallId,
        got: u64,
        current: Option<u64>,
    },
    InvalidState {
        what: String,
        detail: String,
    },
    SiteDown(SiteId),
    InvalidField {
        field: String,
        reason: String,
    },
    InUse {
        what: String,
        id: String,
        detail: String,
    },
    /// `usize` as `CoreError` had it (bincode writes it as a varint, like `u64`).
    TooManyCalls {
        limit: usize,
    },
    LogIndexTooLarge(u64),
    DuplicateTooOld {
        origin: u64,
        serial: u64,
    },
    NothingToPull(OperatorId),
    InvalidConfig(ConfigProblemRecord),
    SiteUnreachable(SiteId),
    IslandMergeNotOpen {
        site: SiteId,
        seq: u64,
    },
    IslandMergeOpen {
        site: SiteId,
        open_seq: u64,
    },
    IslandMergeIncomplete {
        site: SiteId,
        seq: u64,
        detail: String,
    },
}

/// A refused whole config's problem, as a snapshot carries it. Append only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ConfigProblemRecord {
    kind: ConfigKindRecord,
    id: String,
    field: String,
    reason: String,
}

/// The section of a config problem, as a snapshot carries it. Append only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum ConfigKindRecord {
    Schedule,
    Queue,
    Gate,
    Operator,
}

/// The record of a result, to keep in the window.
pub(super) fn record(result: &super::CommandResult) -> ResultRecord {
    match result {
        Ok(response) => Ok(response.clone()),
        Err(refusal) => Err(RefusalRecord::from(refusal)),
    }
}

/// The result a record stands for.
pub(super) fn result(record: &ResultRecord) -> super::CommandResult {
    record.clone().map_err(CoreError::from)
}

impl From<&CoreError> for RefusalRecord {
    fn from(refusal: &CoreError) -> Self {
        use RefusalRecord as R;
        match refusal.clone() {
            CoreError::UnknownQueue(queue) => R::UnknownQueue(queue),
            CoreError::UnknownGate(gate) => R::UnknownGate(gate),
            CoreError::GateNotInQueue { gate, gate_queue, queue } => R::GateNotInQueue { gate, gate_queue, queue },
            CoreError::UnknownOperator(operator) => R::UnknownOperator(operator),
            CoreError::UnknownSchedule(schedule) => R::UnknownSchedule(schedule),
            CoreError::UnknownCall(call) => R::UnknownCall(call),
            CoreError::DuplicateCall(call) => R::DuplicateCall(call),
            CoreError::OperatorNotLoggedIn(operator) => R::OperatorNotLoggedIn(operator),
            CoreError::StaleFence { call, got, current } => R::StaleFence { call, got, current },
            CoreError::InvalidState { what, detail } => R::InvalidState { what, detail },
            CoreError::SiteDown(site) => R::SiteDown(site),
            CoreError::InvalidField { field, reason } => R::InvalidField { field, reason },
            CoreError::InUse { what, id, detail } => R::InUse { what, id, detail },
            CoreError::TooManyCalls { limit } => R::TooManyCalls { limit },
            CoreError::LogIndexTooLarge(index) => R::LogIndexTooLarge(index),
            CoreError::DuplicateTooOld { origin, serial } => R::DuplicateTooOld { origin, serial },
            CoreError::NothingToPull(operator) => R::NothingToPull(operator),
            CoreError::InvalidConfig(problem) => R::InvalidConfig(ConfigProblemRecord {
                kind: problem.kind.into(),
                id: problem.id,
                field: problem.field,
                reason: problem.reason,
            }),
            CoreError::SiteUnreachable(site) => R::SiteUnreachable(site),
            CoreError::IslandMergeNotOpen { site, seq } => R::IslandMergeNotOpen { site, seq },
            CoreError::IslandMergeOpen { site, open_seq } => R::IslandMergeOpen { site, open_seq },
            CoreError::IslandMergeIncomplete { site, seq, detail } => R::IslandMergeIncomplete { site, seq, detail },
        }
    }
}

impl From<RefusalRecord> for CoreError {
    fn from(record: RefusalRecord) -> Self {
        use RefusalRecord as R;
        match record {
            R::UnknownQueue(queue) => CoreError::UnknownQueue(queue),
            R::UnknownGate(gate) => CoreError::UnknownGate(gate),
            R::GateNotInQueue { gate, gate_queue, queue } => CoreError::GateNotInQueue { gate, gate_queue, queue },
            R::UnknownOperator(operator) => CoreError::UnknownOperator(operator),
            R::UnknownSchedule(schedule) => CoreError::UnknownSchedule(schedule),
            R::UnknownCall(call) => CoreError::UnknownCall(call),
            R::DuplicateCall(call) => CoreError::DuplicateCall(call),
            R::OperatorNotLoggedIn(operator) => CoreError::OperatorNotLoggedIn(operator),
            R::StaleFence { call, got, current } => CoreError::StaleFence { call, got, current },
            R::InvalidState { what, detail } => CoreError::InvalidState { what, detail },
            R::SiteDown(site) => CoreError::SiteDown(site),
            R::InvalidField { field, reason } => CoreError::InvalidField { field, reason },
            R::InUse { what, id, detail } => CoreError::InUse { what, id, detail },
            R::TooManyCalls { limit } => CoreError::TooManyCalls { limit },
            R::LogIndexTooLarge(index) => CoreError::LogIndexTooLarge(index),
            R::DuplicateTooOld { origin, serial } => CoreError::DuplicateTooOld { origin, serial },
            R::NothingToPull(operator) => CoreError::NothingToPull(operator),
            R::InvalidConfig(problem) => CoreError::InvalidConfig(ConfigProblem {
                kind: problem.kind.into(),
                id: problem.id,
                field: problem.field,
                reason: problem.reason,
            }),
            R::SiteUnreachable(site) => CoreError::SiteUnreachable(site),
            R::IslandMergeNotOpen { site, seq } => CoreError::IslandMergeNotOpen { site, seq },
            R::IslandMergeOpen { site, open_seq } => CoreError::IslandMergeOpen { site, open_seq },
            R::IslandMergeIncomplete { site, seq, detail } => CoreError::IslandMergeIncomplete { site, seq, detail },
        }
    }
}

impl From<ConfigKind> for ConfigKindRecord {
    fn from(kind: ConfigKind) -> Self {
        match kind {
            ConfigKind::Schedule => ConfigKindRecord::Schedule,
            ConfigKind::Queue => ConfigKindRecord::Queue,
            ConfigKind::Gate => ConfigKindRecord::Gate,
            ConfigKind::Operator => ConfigKindRecord::Operator,
        }
    }
}

impl From<ConfigKindRecord> for ConfigKind {
    fn from(kind: ConfigKindRecord) -> Self {
        match kind {
            ConfigKindRecord::Schedule => ConfigKind::Schedule,
            ConfigKindRecord::Queue => ConfigKind::Queue,
            ConfigKindRecord::Gate => ConfigKind::Gate,
            ConfigKindRecord::Operator => ConfigKind::Operator,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every refusal maps to a record and back unchanged, and its record encodes exactly
    /// as `CoreError` did when the window stored it (the layout older snapshots have).
    #[test]
    fn every_refusal_round_trips_with_the_layout_core_error_had() {
        let problem =
            ConfigProblem { kind: ConfigKind::Gate, id: "g".into(), field: "queue".into(), reason: "r".into() };
        let refusals = [
            CoreError::UnknownQueue(QueueId::new("q")),
            CoreError::UnknownGate(GateId::new("g")),
            CoreError::GateNotInQueue {
                gate: GateId::new("g"),
                gate_queue: QueueId::new("a"),
                queue: QueueId::new("b"),
            },
            CoreError::UnknownOperator(OperatorId::new("o")),
            CoreError::UnknownSchedule(ScheduleId::new("s")),
            CoreError::UnknownCall(CallId::new("c")),
            CoreError::DuplicateCall(CallId::new("c")),
            CoreError::OperatorNotLoggedIn(OperatorId::new("o")),
            CoreError::StaleFence { call: CallId::new("c"), got: 3, current: Some(4) },
            CoreError::InvalidState { what: "w".into(), detail: "d".into() },
            CoreError::SiteDown(SiteId(2)),
            CoreError::InvalidField { field: "f".into(), reason: "r".into() },
            CoreError::InUse { what: "w".into(), id: "i".into(), detail: "d".into() },
            CoreError::TooManyCalls { limit: 300 },
            CoreError::LogIndexTooLarge(u64::MAX),
            CoreError::DuplicateTooOld { origin: 1, serial: 2 },
            CoreError::NothingToPull(OperatorId::new("o")),
            CoreError::InvalidConfig(problem),
            CoreError::SiteUnreachable(SiteId(3)),
            CoreError::IslandMergeNotOpen { site: SiteId(3), seq: 2 },
            CoreError::IslandMergeOpen { site: SiteId(3), open_seq: 1 },
            CoreError::IslandMergeIncomplete { site: SiteId(3), seq: 2, detail: "d".into() },
        ];
        for refusal in refusals {
            let record = RefusalRecord::from(&refusal);
            let as_before = crate::codec::encode(&refusal).unwrap();
            assert_eq!(crate::codec::encode(&record).unwrap(), as_before, "{refusal:?}");
            assert_eq!(crate::codec::decode::<RefusalRecord>(&as_before).unwrap(), record);
            assert_eq!(CoreError::from(record), refusal);
        }
    }
}
