//! The persisted model: what a snapshot holds. Indexes derived from it live in
//! `routing/state.rs` (`Indexes`) and are rebuilt on restore.

use crate::config::{GateConfig, OperatorConfig, QueueConfig};
use crate::effect::OperatorStatus;
use crate::ids::{CallId, GateId, OperatorId, QueueId, SiteId, Skill};
use crate::order::OrderKey;
use crate::stats::{HandleWindow, Stats};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queue {
    pub config: QueueConfig,
    pub stats: Stats,
    pub handle_times: HandleWindow,
    pub alarm_longest_wait_raised: bool,
    pub alarm_depth_raised: bool,
}

/// The phone call an operator logged in from (the PIN login call). queue_log's AGENTLOGIN
/// and AGENTLOGOFF lines carry it as app_agent_pool writes them: its unique id in the
/// call-id field, its channel name (`PJSIP/100-0000002a`) as the data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginChannel {
    /// The channel's unique id (ARI's channel id for a call that entered Stasis itself).
    pub uniqueid: String,
    /// The channel's name, as Asterisk shows it.
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gate {
    pub config: GateConfig,
    pub stats: Stats,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operator {
    pub config: OperatorConfig,
    pub status: OperatorStatus,
    /// Site where the operator is logged in.
    pub site: Option<SiteId>,
    /// Persistent leg (holding bridge) channel.
    pub channel: Option<String>,
    /// When `status` last changed.
    pub since_ms: u64,
    /// Start of the current idle stretch; the longest-idle operator is preferred.
    pub idle_since_ms: u64,
    pub logged_in_at_ms: u64,
    /// Consecutive missed offers.
    pub misses: u8,
    /// Wrap-up end, or end of the rest after a missed offer; None = nothing pending.
    pub wake_ms: Option<u64>,
    /// State requested while busy, applied when the call ends.
    pub after_call: Option<crate::command::RequestedState>,
}

impl Operator {
    pub fn is_logged_in(&self) -> bool {
        !matches!(self.status, OperatorStatus::Offline)
    }
    /// Logged in and off break: counts as staffed for ETA.
    pub fn is_ready(&self) -> bool {
        matches!(
            self.status,
            OperatorStatus::Available
                | OperatorStatus::Offered { .. }
                | OperatorStatus::Busy { .. }
                | OperatorStatus::WrapUp { .. }
        )
    }
    /// Can receive an offer right now.
    pub fn is_offerable(&self) -> bool {
        matches!(self.status, OperatorStatus::Available) && self.wake_ms.is_none()
    }
    pub fn has_skills<'a>(&self, mut required: impl Iterator<Item = (&'a Skill, &'a u8)>) -> bool {
        required.all(|(skill, level)| self.config.skills.get(skill).is_some_and(|have| have >= level))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallState {
    Waiting,
    Offered { operator: OperatorId, fence: u64, operator_site: SiteId, since_ms: u64, deadline_ms: u64 },
    Connected { operator: OperatorId, fence: u64, operator_site: SiteId, since_ms: u64, wait_ms: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackPromise {
    pub number: String,
    pub attempts_left: u8,
    pub attempts_made: u8,
    /// Not offered again before this time (after a failed attempt).
    pub ready_at_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// Log index of the Enqueue: the call's internal number, unique and stable.
    pub call_number: u64,
    pub id: CallId,
    pub queue: QueueId,
    pub gate: Option<GateId>,
    pub key: OrderKey,
    pub caller_number: String,
    pub caller_name: String,
    pub entry_site: SiteId,
    /// The caller's channel while the caller is on the line.
    pub channel: Option<String>,
    /// Skills beyond the queue's: the gate's and the entry's.
    pub extra_skills: BTreeMap<Skill, u8>,
    pub entered_at_ms: u64,
    /// When the call joined its current queue (waits, tiers and max wait count from here).
    pub joined_at_ms: u64,
    /// Position when it joined its current queue (queue_log `origpos`).
    pub orig_position: u32,
    pub overflow_hops: u8,
    pub state: CallState,
    pub callback: Option<CallbackPromise>,
    pub max_wait_due_ms: Option<u64>,
    pub next_widen_ms: Option<u64>,
    pub next_announce_ms: Option<u64>,
    pub next_periodic_ms: Option<u64>,
    pub periodic_index: u32,
    pub callback_offered: bool,
}

impl Call {
    pub fn is_waiting(&self) -> bool {
        matches!(self.state, CallState::Waiting)
    }
    /// Waiting with the caller on the line (not a callback promise).
    pub fn is_live_waiting(&self) -> bool {
        self.is_waiting() && self.callback.is_none()
    }
    pub fn offer_fence(&self) -> Option<u64> {
        match &self.state {
            CallState::Offered { fence, .. } => Some(*fence),
            _ => None,
        }
    }
    pub fn callback_ready(&self) -> bool {
        self.callback.as_ref().is_none_or(|c| c.ready_at_ms.is_none())
    }
}
