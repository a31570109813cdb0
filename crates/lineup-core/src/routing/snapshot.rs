//! The state as a Raft snapshot: encode, and restore (with the older layouts).
//!
//! New state goes at the end of `State`; each older layout stays here as a struct of the
//! fields it had, so a node upgraded in place restores the snapshot its previous version
//! wrote. `restore` tries the newest layout first.

use super::state::{Alarms, Indexes, OriginWindow, Outages, PhoneLogins, Scratch, State};
use super::Routing;
use crate::codec;
use crate::ids::{OperatorId, SiteId};
use crate::model::Call;
use std::collections::BTreeMap;

impl Routing {
    /// Encodes the whole state (a Raft snapshot).
    pub fn snapshot_bytes(&self) -> Vec<u8> {
        codec::encode_versioned(&self.state).expect("routing state always encodes")
    }

    /// Restores a state written by [`Routing::snapshot_bytes`] of this or an older version;
    /// indexes are rebuilt.
    pub fn restore(bytes: &[u8]) -> Result<Routing, codec::CodecError> {
        let limit = codec::DECODE_LIMIT_BYTES;
        let state: State = match codec::decode_versioned(bytes, limit) {
            Ok(state) => state,
            Err(e) => decode_older(bytes, limit).map_err(|_| e)?,
        };
        let mut routing = Routing { state, indexes: Indexes::default(), scratch: Scratch::default() };
        routing.rebuild_indexes();
        // A state that contradicts itself (damaged, or not written by `snapshot_bytes`) is
        // refused rather than run: every later apply would build on it.
        routing
            .check_invariants()
            .map_err(|reason| codec::CodecError::Decode(format!("the routing state contradicts itself: {reason}")))?;
        Ok(routing)
    }
}

/// A snapshot of an older version: each layout, newest first, brought up to the next.
fn decode_older(bytes: &[u8], limit: usize) -> Result<State, codec::CodecError> {
    let before_unreachable =
        || codec::decode_versioned::<StateWithoutUnreachable>(bytes, limit).map(StateWithoutPhoneLogins::from);
    let before_phone_logins = || {
        codec::decode_versioned::<StateWithoutPhoneLogins>(bytes, limit)
            .or_else(|_| before_unreachable())
            .map(StateWithoutAlarms::from)
    };
    let before_alarms = || {
        codec::decode_versioned::<StateWithoutAlarms>(bytes, limit)
            .or_else(|_| before_phone_logins())
            .map(StateWithoutIslands::from)
    };
    let before_islands =
        || codec::decode_versioned::<StateWithoutIslands>(bytes, limit).or_else(|_| before_alarms()).map(State::from);
    let before_island_merges = || {
        codec::decode_versioned::<StateWithoutIslandMerges>(bytes, limit).map(State::from).or_else(|_| before_islands())
    };
    let before_webhooks = || {
        codec::decode_versioned::<StateWithoutWebhooks>(bytes, limit)
            .map(State::from)
            .or_else(|_| before_island_merges())
    };
    codec::decode_versioned::<StateBeforeMergedParties>(bytes, limit).map(State::from).or_else(|_| before_webhooks())
}

/// The snapshot layout before merges carried live calls and operators (an open merge's
/// progress counted records only) and before `ingress` (the DID map).
#[derive(serde::Deserialize)]
pub(super) struct StateBeforeMergedParties {
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
    outages: Outages,
    phone_logins: PhoneLogins,
    callback_policy: crate::callback_policy::CallbackPolicy,
    alarms: Alarms,
    islands: IslandStateBeforeParties,
    webhooks: Vec<crate::webhook::WebhookConfig>,
}

#[derive(serde::Deserialize)]
pub(super) struct IslandStateBeforeParties {
    fork: Option<crate::island::IslandFork>,
    marks: BTreeMap<SiteId, IslandMarkBeforeParties>,
    merged_seq: BTreeMap<SiteId, u64>,
}

#[derive(serde::Deserialize)]
pub(super) struct IslandMarkBeforeParties {
    epoch: crate::island::IslandEpoch,
    progress: MergeProgressBeforeParties,
}

#[derive(serde::Deserialize)]
pub(super) struct MergeProgressBeforeParties {
    counts: crate::island_merge::MergeCounts,
    digest: u64,
    records_merged: u64,
    digest_so_far: u64,
}

impl From<IslandStateBeforeParties> for crate::island::IslandState {
    fn from(old: IslandStateBeforeParties) -> Self {
        // A merge of that version announced no calls and no operators (its Begin refused them).
        let marks = (old.marks.into_iter())
            .map(|(site, mark)| {
                let progress = crate::island_merge::MergeProgress {
                    counts: mark.progress.counts,
                    digest: mark.progress.digest,
                    records_merged: mark.progress.records_merged,
                    digest_so_far: mark.progress.digest_so_far,
                    parties: Default::default(),
                };
                (site, crate::island_merge::IslandMark { epoch: mark.epoch, progress })
            })
            .collect();
        crate::island::IslandState { fork: old.fork, marks, merged_seq: old.merged_seq }
    }
}

impl From<StateBeforeMergedParties> for State {
    fn from(old: StateBeforeMergedParties) -> State {
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
            outages: old.outages,
            phone_logins: old.phone_logins,
            callback_policy: old.callback_policy,
            alarms: old.alarms,
            islands: old.islands.into(),
            webhooks: old.webhooks,
            ingress: Default::default(),
        }
    }
}

/// The snapshot layout before `webhooks` existed.
#[derive(serde::Deserialize)]
pub(super) struct StateWithoutWebhooks {
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
    outages: Outages,
    phone_logins: PhoneLogins,
    callback_policy: crate::callback_policy::CallbackPolicy,
    alarms: Alarms,
    islands: IslandStateBeforeParties,
}

impl From<StateWithoutWebhooks> for State {
    fn from(old: StateWithoutWebhooks) -> State {
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
            outages: old.outages,
            phone_logins: old.phone_logins,
            callback_policy: old.callback_policy,
            alarms: old.alarms,
            islands: old.islands.into(),
            webhooks: Vec::new(),
            ingress: Default::default(),
        }
    }
}

/// The snapshot layout before island merges: `islands` held the fork alone, and the fork
/// its epoch and parked promises.
#[derive(serde::Deserialize)]
pub(super) struct StateWithoutIslandMerges {
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
    outages: Outages,
    phone_logins: PhoneLogins,
    callback_policy: crate::callback_policy::CallbackPolicy,
    alarms: Alarms,
    islands: IslandStateBeforeMerges,
}

#[derive(serde::Deserialize)]
pub(super) struct IslandStateBeforeMerges {
    fork: Option<IslandForkBeforeMerges>,
}

#[derive(serde::Deserialize)]
pub(super) struct IslandForkBeforeMerges {
    epoch: crate::island::IslandEpoch,
    parked_calls: std::collections::BTreeSet<u64>,
}

impl From<StateWithoutIslandMerges> for State {
    fn from(old: StateWithoutIslandMerges) -> State {
        // A fork's snapshot of that version is the state at its fork with nothing applied
        // since (the island journal replays the rest), so its stats are the stats at the fork.
        let stats_at_fork = crate::island_merge::StatsDelta {
            queues: old.queues.iter().map(|(id, q)| (id.clone(), q.stats.clone())).collect(),
            gates: old.gates.iter().map(|(id, g)| (id.clone(), g.stats.clone())).collect(),
        };
        let fork = old.islands.fork.map(|fork| crate::island::IslandFork {
            epoch: fork.epoch,
            parked_calls: fork.parked_calls,
            stats_at_fork,
            records: Vec::new(),
            handle_samples: BTreeMap::new(),
            pin_failures: BTreeMap::new(),
        });
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
            outages: old.outages,
            phone_logins: old.phone_logins,
            callback_policy: old.callback_policy,
            alarms: old.alarms,
            islands: crate::island::IslandState { fork, ..Default::default() },
            webhooks: Vec::new(),
            ingress: Default::default(),
        }
    }
}

/// The snapshot layout before `islands` (island mode's fork) existed.
#[derive(serde::Deserialize)]
pub(super) struct StateWithoutIslands {
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
    outages: Outages,
    phone_logins: PhoneLogins,
    callback_policy: crate::callback_policy::CallbackPolicy,
    alarms: Alarms,
}

impl From<StateWithoutIslands> for State {
    fn from(old: StateWithoutIslands) -> State {
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
            outages: old.outages,
            phone_logins: old.phone_logins,
            callback_policy: old.callback_policy,
            alarms: old.alarms,
            // Written by the global state: no fork.
            islands: crate::island::IslandState::default(),
            webhooks: Vec::new(),
            ingress: Default::default(),
        }
    }
}

/// The snapshot layout before `alarms` (the alarm policy and raise times) existed.
#[derive(serde::Deserialize)]
pub(super) struct StateWithoutAlarms {
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
    outages: Outages,
    phone_logins: PhoneLogins,
    callback_policy: crate::callback_policy::CallbackPolicy,
}

impl From<StateWithoutAlarms> for StateWithoutIslands {
    fn from(old: StateWithoutAlarms) -> StateWithoutIslands {
        StateWithoutIslands {
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
            outages: old.outages,
            phone_logins: old.phone_logins,
            callback_policy: old.callback_policy,
            // Alarms already raised have no raise time: they may clear at once (below the
            // clear level), as they would have before.
            alarms: Alarms::default(),
        }
    }
}

/// The snapshot layout before `phone_logins` and `callback_policy` existed (every field before it, in order).
#[derive(serde::Deserialize)]
pub(super) struct StateWithoutPhoneLogins {
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
    outages: Outages,
}

impl From<StateWithoutPhoneLogins> for StateWithoutAlarms {
    fn from(old: StateWithoutPhoneLogins) -> StateWithoutAlarms {
        StateWithoutAlarms {
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
            outages: old.outages,
            phone_logins: PhoneLogins::default(),
            // Older versions dialled any number: the default denies emergency and premium ones.
            callback_policy: crate::callback_policy::CallbackPolicy::default(),
        }
    }
}

/// The snapshot layout before `outages` (the unreachable-site set) existed.
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

impl From<StateWithoutUnreachable> for StateWithoutPhoneLogins {
    fn from(old: StateWithoutUnreachable) -> StateWithoutPhoneLogins {
        StateWithoutPhoneLogins {
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
