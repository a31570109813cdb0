//! The data `Routing` holds: the replicated `State` (what a snapshot carries), the
//! `Indexes` derived from it, and the per-apply `Scratch`.

use super::refusal_record::ResultRecord;
use crate::config::ScheduleConfig;
use crate::effect::Effect;
use crate::ids::{CallId, GateId, OperatorId, QueueId, ScheduleId, SiteId};
use crate::model::{Call, Gate, LoginChannel, Operator, Queue};
use crate::order::OrderTree;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

/// The results remembered for one origin (deduplication and read-back).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct OriginWindow {
    pub(super) results: BTreeMap<u64, ResultRecord>,
    pub(super) last_index: u64,
}

/// Everything a snapshot carries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct State {
    pub(super) queues: BTreeMap<QueueId, Queue>,
    pub(super) gates: BTreeMap<GateId, Gate>,
    pub(super) operators: BTreeMap<OperatorId, Operator>,
    pub(super) schedules: BTreeMap<ScheduleId, ScheduleConfig>,
    pub(super) lost_sites: BTreeSet<SiteId>,
    pub(super) calls: BTreeMap<u64, Call>,
    pub(super) dedup: BTreeMap<u64, OriginWindow>,
    pub(super) now_ms: u64,
    pub(super) last_tick_ms: u64,
    pub(super) last_applied_index: u64,
    /// The most recently ended calls, oldest first (at most `ENDED_CALLS_REMEMBERED_MAX`): a
    /// call id that ended is never queued again, so a caller reaches exactly one outcome
    /// even when a site re-announces a channel whose call already ended (a site restarted
    /// while its caller heard the callback confirmation, a very late StasisStart).
    pub(super) ended_calls: VecDeque<CallId>,
    /// Unreachable sites and the calls their silence left half-settled (see sites.rs). Last
    /// in the layout, so a snapshot written before it existed still restores (`restore`).
    pub(super) outages: Outages,
    /// Operators' phone logins (see operators.rs). Last in the layout, so a snapshot written
    /// before it existed still restores (`restore`).
    pub(super) phone_logins: PhoneLogins,
    /// Which numbers a callback may dial (part of the routing config).
    pub(super) callback_policy: crate::callback_policy::CallbackPolicy,
    /// The alarm policy and when each raised alarm was raised (see timers.rs). Last in the
    /// layout, so a snapshot written before it existed still restores (`restore`).
    pub(super) alarms: Alarms,
    /// Island mode: set on an island's fork only (see island.rs and island_fork.rs). Last in
    /// the layout, so a snapshot written before it existed still restores (`restore`).
    pub(super) islands: crate::island::IslandState,
    /// The webhook list (part of the routing config). Last in the layout, so a snapshot
    /// written before it existed still restores (`restore`).
    pub(super) webhooks: Vec<crate::webhook::WebhookConfig>,
    /// The DID map for ingress steering (part of the routing config). Last in the layout, so
    /// a snapshot written before it existed still restores (`restore`).
    pub(super) ingress: crate::ingress::IngressPolicy,
}

/// Queue alarms' hysteresis: the policy (part of the routing config) and raise times.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Alarms {
    pub(super) policy: crate::alarm_policy::AlarmPolicy,
    /// Core time each raised alarm was raised; an alarm raised before this existed (restored
    /// from an older snapshot) has none, and counts as held long enough.
    pub(super) raised_at: BTreeMap<QueueId, AlarmRaisedAt>,
}

/// When a queue's alarms were raised (None = not raised, or raised before times were kept).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct AlarmRaisedAt {
    pub(super) longest_wait_ms: Option<u64>,
    pub(super) depth_ms: Option<u64>,
}

/// What the core keeps about operators' logins by phone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct PhoneLogins {
    /// The call each operator logged in from by PIN (only those who did), for queue_log's
    /// AGENTLOGIN/AGENTLOGOFF; forgotten at logoff.
    pub(super) calls: BTreeMap<OperatorId, LoginChannel>,
    /// Recent wrong PINs per operator, core times oldest first (at most
    /// `PIN_LOCKOUT_FAILURES_MAX`). Replicated, so a lockout holds at every site and across
    /// restarts; cleared by a login.
    pub(super) pin_failures: BTreeMap<OperatorId, VecDeque<u64>>,
}

impl State {
    /// A copy of everything but the dedup windows and the ended-call memory.
    pub(super) fn without_id_memories(&self) -> State {
        State {
            queues: self.queues.clone(),
            gates: self.gates.clone(),
            operators: self.operators.clone(),
            schedules: self.schedules.clone(),
            lost_sites: self.lost_sites.clone(),
            calls: self.calls.clone(),
            dedup: BTreeMap::new(),
            now_ms: self.now_ms,
            last_tick_ms: self.last_tick_ms,
            last_applied_index: self.last_applied_index,
            ended_calls: VecDeque::new(),
            outages: self.outages.clone(),
            phone_logins: self.phone_logins.clone(),
            callback_policy: self.callback_policy.clone(),
            alarms: self.alarms.clone(),
            islands: self.islands.clone(),
            webhooks: self.webhooks.clone(),
            ingress: self.ingress.clone(),
        }
    }
}

/// What silence leaves behind, replicated with the rest of the state (see sites.rs).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct Outages {
    /// Sites the leader has not heard for a while, with the core time it said so.
    pub(super) unreachable_sites: BTreeMap<SiteId, u64>,
    /// Connected cross-site calls whose operator's side ended and whose operator its own site
    /// released (`OperatorLegEnded`) before the caller's site reported the end: call number →
    /// when. The call's outcome waits for the caller's site (or `SiteLost`); its operator
    /// takes other calls meanwhile.
    pub(super) released_calls: BTreeMap<u64, u64>,
}

impl Outages {
    /// Is `site` (when there is one) in the unreachable set?
    pub(super) fn is_unreachable(&self, site: Option<SiteId>) -> bool {
        site.is_some_and(|s| self.unreachable_sites.contains_key(&s))
    }
}

/// A call's timer, named by the call number; when it is due is read from the call itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    MaxWait(u64),
    Widen(u64),
    Announce(u64),
    Periodic(u64),
    CallbackReady(u64),
    OfferDeadline(u64),
}

/// One queue's share of the indexes.
#[derive(Debug, Clone, Default)]
pub(super) struct QueueIndex {
    /// Waiting calls (live and callback promises) in line order.
    pub(super) order: OrderTree,
    /// Live waiting callers by join time (longest wait, tier pruning).
    pub(super) live_by_joined: BTreeSet<(u64, u64)>,
    pub(super) callbacks_waiting: u32,
    /// Offerable member operators: (penalty, idle since, id) — the operator-choice order.
    pub(super) available: BTreeSet<(u8, u64, OperatorId)>,
    pub(super) logged_in: u32,
    pub(super) ready: u32,
    /// Calls of this queue offered or connected (the per-queue cap counts these).
    pub(super) active: u32,
}

/// Derived from `State`; rebuilt on restore, never serialized.
#[derive(Debug, Clone, Default)]
pub(super) struct Indexes {
    pub(super) queues: BTreeMap<QueueId, QueueIndex>,
    pub(super) gate_waiting: BTreeMap<GateId, BTreeSet<(u64, u64)>>,
    /// Call id → call number. A hash map is safe here: it is only ever looked up, never
    /// iterated, so it cannot make any output order depend on hashing.
    pub(super) call_numbers: HashMap<CallId, u64>,
    pub(super) call_timers: BTreeSet<(u64, Timer)>,
    pub(super) operator_wakes: BTreeSet<(u64, OperatorId)>,
    pub(super) waiting_total: usize,
    /// The ids in `State::ended_calls`, for lookup (hash map: looked up, never iterated).
    pub(super) ended_calls: HashSet<CallId>,
}

/// Per-apply scratch; empty between applies.
#[derive(Debug, Clone, Default)]
pub(super) struct Scratch {
    pub(super) index: u64,
    pub(super) dirty_operators: BTreeSet<OperatorId>,
    pub(super) dirty_calls: BTreeSet<u64>,
    pub(super) dirty_queues: BTreeSet<QueueId>,
    pub(super) out: Vec<Effect>,
}
