//! The state as a Raft snapshot: encode, and restore (with the older layout).

use super::state::{Indexes, OriginWindow, Outages, Scratch, State};
use super::Routing;
use crate::codec;
use crate::ids::{OperatorId, SiteId};
use crate::model::Call;
use std::collections::BTreeMap;

impl Routing {
    /// Encodes the whole state (a Raft snapshot).
    pub fn snapshot_bytes(&self) -> Vec<u8> {
        codec::encode_versioned(&self.s).expect("routing state always encodes")
    }

    /// Restores a state written by [`Routing::snapshot_bytes`]; indexes are rebuilt.
    pub fn restore(bytes: &[u8]) -> Result<Routing, codec::CodecError> {
        let s: State = match codec::decode_versioned(bytes, codec::DECODE_LIMIT_BYTES) {
            Ok(s) => s,
            // Written before the unreachable-site set was added at the end of the layout.
            Err(e) => codec::decode_versioned::<StateWithoutUnreachable>(bytes, codec::DECODE_LIMIT_BYTES)
                .map(State::from)
                .map_err(|_| e)?,
        };
        let mut routing = Routing { s, idx: Indexes::default(), scratch: Scratch::default() };
        routing.rebuild_indexes();
        // A state that contradicts itself (damaged, or not written by `snapshot_bytes`) is
        // refused rather than run: every later apply would build on it.
        routing
            .check_invariants()
            .map_err(|reason| codec::CodecError::Decode(format!("the routing state contradicts itself: {reason}")))?;
        Ok(routing)
    }
}

/// The snapshot layout before `unreachable_sites` existed (same fields, in order, without
/// it). `Routing::restore` falls back to it, so a node upgraded in place restores the
/// snapshot its previous version wrote.
#[derive(serde::Deserialize)]
pub(super) struct StateWithoutUnreachable {
    queues: BTreeMap<crate::ids::QueueId, crate::model::Queue>,
    gates: BTreeMap<crate::ids::GateId, crate::model::Gate>,
    operators: BTreeMap<OperatorId, crate::model::Operator>,
    schedules: BTreeMap<crate::ids::ScheduleId, crate::config::ScheduleConfig>,
    lost_sites: std::collections::BTreeSet<SiteId>,
    calls: BTreeMap<u64, Call>,
    dedup: BTreeMap<u64, OriginWindow>,
    now_ms: u64,
    last_tick_ms: u64,
    last_applied_index: u64,
    ended_calls: std::collections::VecDeque<crate::ids::CallId>,
}

impl From<StateWithoutUnreachable> for State {
    fn from(old: StateWithoutUnreachable) -> State {
        State {
            queues: old.queues,
            gates: old.gates,
            operators: old.operators,
            schedules: old.schedules,
            lost_sites: old.lost_sites,
            calls: old.calls,
            dedup: old.dedup,
            now_ms: old.now_ms,
            last_tick_ms: old.last_tick_ms,
            last_applied_index: old.last_applied_index,
            ended_calls: old.ended_calls,
            outages: Outages::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_that_contradicts_itself_is_refused() {
        // Found by fuzzing (routing_snapshot): well-formed bincode whose ended-call list
        // names one call three times, so the set derived from it is shorter than the list.
        let repeated_ended_call = [1u8, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0x20, 0, 3, 0, 0, 0];
        let refusal = Routing::restore(&repeated_ended_call).expect_err("refused");
        assert!(refusal.to_string().contains("contradicts itself"), "{refusal}");
        assert!(Routing::restore(&Routing::new().snapshot_bytes()).is_ok());
    }
}
