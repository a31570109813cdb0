//! The state machine: `Routing::apply(log_index, command) -> effects`.
//!
//! Apply is pure: no clock (time arrives in commands), no randomness, no IO, and every output
//! path iterates ordered maps, so every node computes byte-identical effects from the same log.
//!
//! Each apply runs in two phases. The command's handler validates everything first (a refused
//! command changes nothing), then changes state and marks the operators, calls and queues
//! whose eligibility may have changed as dirty. `settle` then pairs dirty operators with their
//! globally first eligible caller and dirty callers with their best available operator, so
//! after every apply no available operator has an eligible waiting caller ("quiescence").
//! Offers are only made in `settle`, so no call or operator can be offered twice within one
//! apply, and the fence (= log index) identifies an offer uniquely per call and per operator.

use crate::command::{Command, CommandBody, CommandId, Enqueue, HungUpBy, OfferFailure, RequestedState};
use crate::config::{
    validate_text, EmptyRule, GateConfig, OperatorConfig, OperatorMode, QueueConfig, ScheduleConfig, Target,
    OVERFLOW_HOPS_MAX,
};
use crate::config_set::RoutingConfigSet;
use crate::effect::{
    AlarmKind, Announcement, CallRecord, CallStatus, CallView, Effect, Offer, OperatorStatus, OperatorView, Outcome,
    QueueLogEntry, QueueLogVerb,
};
use crate::ids::{CallId, GateId, OperatorId, QueueId, ScheduleId, SiteId};
use crate::model::{Call, CallState, CallbackPromise, Gate, Operator, Queue};
use crate::order::{OrderKey, OrderTree, ORDER_SEQ_MAX};
use crate::stats::Stats;
use crate::{codec, CoreError};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

mod sites;
pub use sites::UNREACHABLE_TIMER_RECHECK_MS;

/// Most callers waiting across all queues at once.
pub const TOTAL_WAITING_MAX_CALLS: usize = 1_000_000;
/// Results remembered per origin for deduplication and read-back.
pub const DEDUP_WINDOW_PER_ORIGIN_COMMANDS: usize = 4_096;
/// Origins remembered; the least recently active one is forgotten beyond this.
pub const DEDUP_ORIGINS_MAX: usize = 1_024;
/// Ended call ids remembered so that none is queued twice (~40 bytes each in a snapshot).
pub const ENDED_CALLS_REMEMBERED_MAX: usize = 20_000;
/// A proposer's clock may run at most this far ahead of the leader's last Tick; beyond it
/// the command's time is clamped, so one site with a fast clock cannot expire everyone's timers.
pub const COMMAND_CLOCK_LEAD_MAX_MS: u64 = 2_000;
/// A persistent operator's bridge is instant; if the site has not confirmed by then, the
/// offer is taken back (counts as a miss). Sites report their failures themselves, so this
/// only catches an offer a site lost track of; it is long because taking back an offer
/// whose bridge is up (its Connected held up by a leader change or a restarting site) cuts
/// a conversation that has begun.
pub const OFFER_CONNECT_TIMEOUT_MS: u64 = 30_000;
/// Slack on top of the ring timeout before the core takes a ring-mode offer back (trunk
/// set-up, and a Connected held up as above).
pub const OFFER_RING_GRACE_MS: u64 = 15_000;
/// After a trunk call to an operator's site failed (refused, congested, no node there), the
/// operator is not offered again for this long. Not a miss: it never counts toward a break.
pub const TRUNK_FAILURE_REST_MS: u64 = 2_000;
/// How long the operator's site may take to reach a callback number before the core gives up.
pub const CALLBACK_DIAL_TIMEOUT_MS: u64 = 90_000;
/// Longest E.164 number (digits, without the `+`).
pub const CALLBACK_NUMBER_MAX_DIGITS: usize = 15;
/// Shortest callback number accepted (internal extensions included).
pub const CALLBACK_NUMBER_MIN_DIGITS: usize = 3;
/// Bound on offers made by one settle pass (a safety net; one pass never needs more than
/// one per operator).
pub const SETTLE_OFFERS_MAX: usize = 100_000;

pub type CommandResult = Result<Response, CoreError>;

/// What a successful command returns to its proposer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Done,
    /// `exit` is set when the caller was refused or left at once (FULL, CLOSED, EMPTY).
    Enqueued {
        queue: QueueId,
        position: Option<u32>,
        eta_ms: Option<u64>,
        exit: Option<Outcome>,
    },
    CallbackAccepted {
        position: u32,
    },
    Pulled {
        call: CallId,
        fence: u64,
    },
    /// Accepted; takes effect when the operator's current call ends.
    AfterCurrentCall,
}

/// Result and effects of one applied command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub result: CommandResult,
    pub effects: Vec<Effect>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct OriginWindow {
    results: BTreeMap<u64, CommandResult>,
    last_index: u64,
}

/// Everything a snapshot carries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    queues: BTreeMap<QueueId, Queue>,
    gates: BTreeMap<GateId, Gate>,
    operators: BTreeMap<OperatorId, Operator>,
    schedules: BTreeMap<ScheduleId, ScheduleConfig>,
    lost_sites: BTreeSet<SiteId>,
    calls: BTreeMap<u64, Call>,
    dedup: BTreeMap<u64, OriginWindow>,
    now_ms: u64,
    last_tick_ms: u64,
    last_applied_index: u64,
    /// The most recently ended calls, oldest first (at most `ENDED_CALLS_REMEMBERED_MAX`): a
    /// call id that ended is never queued again, so a caller reaches exactly one outcome
    /// even when a site re-announces a channel whose call already ended (a site restarted
    /// while its caller heard the callback confirmation, a very late StasisStart).
    ended_calls: VecDeque<CallId>,
    /// Unreachable sites and the calls their silence left half-settled (see sites.rs). Last
    /// in the layout, so a snapshot written before it existed still restores (`restore`).
    outages: sites::Outages,
}

impl State {
    /// A copy of everything but the dedup windows and the ended-call memory.
    fn without_id_memories(&self) -> State {
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
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    MaxWait(u64),
    Widen(u64),
    Announce(u64),
    Periodic(u64),
    CallbackReady(u64),
    OfferDeadline(u64),
}

#[derive(Debug, Clone, Default)]
struct QueueIndex {
    /// Waiting calls (live and callback promises) in line order.
    order: OrderTree,
    /// Live waiting callers by join time (longest wait, tier pruning).
    live_by_joined: BTreeSet<(u64, u64)>,
    callbacks_waiting: u32,
    /// Offerable member operators: (penalty, idle since, id) — the operator-choice order.
    available: BTreeSet<(u8, u64, OperatorId)>,
    logged_in: u32,
    ready: u32,
    /// Calls of this queue offered or connected (the per-queue cap counts these).
    active: u32,
}

/// Derived from `State`; rebuilt on restore, never serialized.
#[derive(Debug, Clone, Default)]
struct Indexes {
    queues: BTreeMap<QueueId, QueueIndex>,
    gate_waiting: BTreeMap<GateId, BTreeSet<(u64, u64)>>,
    /// Call id → call number. A hash map is safe here: it is only ever looked up, never
    /// iterated, so it cannot make any output order depend on hashing.
    call_numbers: HashMap<CallId, u64>,
    call_timers: BTreeSet<(u64, Timer)>,
    operator_wakes: BTreeSet<(u64, OperatorId)>,
    waiting_total: usize,
    /// The ids in `State::ended_calls`, for lookup (hash map: looked up, never iterated).
    ended_calls: HashSet<CallId>,
}

/// Per-apply scratch; empty between applies.
#[derive(Debug, Clone, Default)]
struct Scratch {
    index: u64,
    dirty_operators: BTreeSet<OperatorId>,
    dirty_calls: BTreeSet<u64>,
    dirty_queues: BTreeSet<QueueId>,
    out: Vec<Effect>,
}

/// The routing state machine.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    s: State,
    idx: Indexes,
    scratch: Scratch,
}

/// Live figures of one queue (or gate) for dashboards and the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSummary {
    pub queue: QueueId,
    pub waiting: u32,
    pub callbacks_waiting: u32,
    pub longest_wait_ms: Option<u64>,
    /// ETA a caller joining now would be told.
    pub eta_ms: Option<u64>,
    pub logged_in: u32,
    pub staffed: u32,
    pub available: u32,
    pub busy: u32,
    pub stats: Stats,
    pub alarm_longest_wait: bool,
    pub alarm_depth: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateSummary {
    pub gate: GateId,
    pub queue: QueueId,
    pub waiting: u32,
    pub longest_wait_ms: Option<u64>,
    pub stats: Stats,
}

/// A waiting call as listed for supervisors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingCall {
    pub call: CallId,
    pub queue: QueueId,
    pub gate: Option<GateId>,
    pub priority: u8,
    pub order_seq: u64,
    pub position: u32,
    pub entry_site: SiteId,
    pub wait_ms: u64,
    pub callback: bool,
    pub caller_number: String,
}

fn invalid(what: &'static str, detail: impl Into<String>) -> CoreError {
    CoreError::InvalidState { what: what.into(), detail: detail.into() }
}

fn secs(ms: u64) -> String {
    (ms / 1000).to_string()
}

fn validate_callback_number(number: &str) -> Result<(), CoreError> {
    let digits = number.strip_prefix('+').unwrap_or(number);
    let ok = (CALLBACK_NUMBER_MIN_DIGITS..=CALLBACK_NUMBER_MAX_DIGITS).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(CoreError::InvalidField {
            field: "callback_number".into(),
            reason: format!(
                "must be {CALLBACK_NUMBER_MIN_DIGITS} to {CALLBACK_NUMBER_MAX_DIGITS} digits, optionally after '+'"
            ),
        })
    }
}

fn validate_id_field(field: &'static str, id: &str) -> Result<(), CoreError> {
    crate::ids::validate_id(id).map_err(|e| CoreError::InvalidField { field: field.into(), reason: e.to_string() })
}

impl Routing {
    pub fn new() -> Self {
        Self::default()
    }

    // ----------------------------------------------------------------- apply

    /// Applies one committed command. `log_index` is its Raft log index (the order key of an
    /// Enqueue, the fence of any offer it makes).
    pub fn apply(&mut self, log_index: u64, cmd: &Command) -> Applied {
        if let Some(previous) = self.result_of(&cmd.id) {
            return Applied { result: previous, effects: Vec::new() };
        }
        if let Some(window) = self.s.dedup.get(&cmd.id.origin) {
            if window.results.len() >= DEDUP_WINDOW_PER_ORIGIN_COMMANDS
                && window.results.keys().next().is_some_and(|oldest| cmd.id.serial < *oldest)
            {
                let result = Err(CoreError::DuplicateTooOld { origin: cmd.id.origin, serial: cmd.id.serial });
                return Applied { result, effects: Vec::new() };
            }
        }
        debug_assert!(self.scratch.out.is_empty() && self.scratch.dirty_calls.is_empty());
        self.scratch.index = log_index;
        let clock_before = (self.s.now_ms, self.s.last_tick_ms);
        match &cmd.body {
            CommandBody::Tick { now_ms } => {
                self.s.now_ms = self.s.now_ms.max(*now_ms);
                self.s.last_tick_ms = self.s.now_ms;
            }
            _ => {
                let ceiling = self.s.last_tick_ms.saturating_add(COMMAND_CLOCK_LEAD_MAX_MS);
                self.s.now_ms = self.s.now_ms.max(cmd.at_ms.min(ceiling));
            }
        }
        let result = self.dispatch(log_index, &cmd.body);
        if result.is_ok() {
            self.settle();
        } else {
            // Refused: nothing changed, not even the clock.
            (self.s.now_ms, self.s.last_tick_ms) = clock_before;
            self.scratch.out.clear();
            debug_assert!(self.scratch.dirty_calls.is_empty() && self.scratch.dirty_operators.is_empty());
            self.scratch.dirty_calls.clear();
            self.scratch.dirty_operators.clear();
            self.scratch.dirty_queues.clear();
        }
        self.s.last_applied_index = self.s.last_applied_index.max(log_index);
        self.remember(cmd.id, log_index, &result);
        Applied { result, effects: std::mem::take(&mut self.scratch.out) }
    }

    /// The first result of the command with this id, if it is still in the window.
    pub fn result_of(&self, id: &CommandId) -> Option<CommandResult> {
        self.s.dedup.get(&id.origin)?.results.get(&id.serial).cloned()
    }

    fn remember(&mut self, id: CommandId, index: u64, result: &CommandResult) {
        if !self.s.dedup.contains_key(&id.origin) && self.s.dedup.len() >= DEDUP_ORIGINS_MAX {
            // Forget the origin that has been quiet longest (deterministic: ties by origin id).
            if let Some(quietest) =
                self.s.dedup.iter().min_by_key(|(origin, w)| (w.last_index, **origin)).map(|(o, _)| *o)
            {
                self.s.dedup.remove(&quietest);
            }
        }
        let window = self.s.dedup.entry(id.origin).or_default();
        window.results.insert(id.serial, result.clone());
        window.last_index = index;
        while window.results.len() > DEDUP_WINDOW_PER_ORIGIN_COMMANDS {
            window.results.pop_first();
        }
    }

    fn dispatch(&mut self, index: u64, body: &CommandBody) -> CommandResult {
        match body {
            CommandBody::PutQueue(cfg) => self.put_queue(cfg),
            CommandBody::DeleteQueue { queue } => self.delete_queue(queue),
            CommandBody::PutGate(cfg) => self.put_gate(cfg),
            CommandBody::DeleteGate { gate } => self.delete_gate(gate),
            CommandBody::PutOperator(cfg) => self.put_operator(cfg),
            CommandBody::DeleteOperator { operator } => self.delete_operator(operator),
            CommandBody::PutSchedule(cfg) => self.put_schedule(cfg),
            CommandBody::DeleteSchedule { schedule } => self.delete_schedule(schedule),
            CommandBody::Enqueue(e) => self.enqueue(index, e),
            CommandBody::OperatorLogin { operator, site, channel } => self.login(operator, *site, channel),
            CommandBody::OperatorLogout { operator } => self.logout(operator),
            CommandBody::OperatorState { operator, state } => self.operator_state(operator, state),
            CommandBody::Connected { call, operator, fence } => self.connected(call, operator, *fence),
            CommandBody::OfferFailed { call, operator, fence, reason } => {
                self.offer_failed(call, operator, *fence, *reason)
            }
            CommandBody::RingNoAnswer { call, operator, fence } => self.ring_no_answer(call, operator, *fence),
            CommandBody::Completed { call, fence, by } => self.completed(call, *fence, Outcome::Completed { by: *by }),
            CommandBody::Transferred { call, fence, target } => {
                validate_text("target", target)?;
                self.completed(call, *fence, Outcome::Transferred { target: target.clone() })
            }
            CommandBody::Abandoned { call } => self.abandoned(call),
            CommandBody::ExitWithKey { call, key } => self.exit_with_key(call, *key),
            CommandBody::RequestCallback { call, number } => self.request_callback(call, number),
            CommandBody::CallbackResult { call, operator, fence, answered } => {
                self.callback_result(call, operator, *fence, *answered)
            }
            CommandBody::Reassign { call, queue, keep_age } => self.reassign(index, call, queue, *keep_age),
            CommandBody::ChangePriority { call, priority } => self.change_priority(call, *priority),
            CommandBody::Pull { operator, call } => self.pull(index, operator, call.as_ref()),
            CommandBody::Tick { .. } => {
                self.tick();
                Ok(Response::Done)
            }
            CommandBody::SiteLost { site } => self.site_lost(*site),
            CommandBody::SiteBack { site } => self.site_back(*site),
            CommandBody::SiteUnreachable { site } => self.site_unreachable(*site),
            CommandBody::OperatorLegEnded { call, operator, fence } => self.operator_leg_ended(call, operator, *fence),
            CommandBody::ApplyConfig(set) => self.apply_config(set),
        }
    }

    // ----------------------------------------------------------------- config

    /// Replaces the whole configuration, all or nothing: every check that a single put or
    /// delete would make runs first, against the set as a whole, so no step below can fail.
    fn apply_config(&mut self, wanted: &RoutingConfigSet) -> CommandResult {
        use crate::config_set::{ChangeAction, ConfigKind, ConfigProblem, REDACTED_PIN_HASH};
        let refuse = |kind: ConfigKind, id: &str, field: &str, reason: String| {
            Err(CoreError::InvalidConfig(ConfigProblem { kind, id: id.into(), field: field.into(), reason }))
        };
        let current = self.config_set();
        let mut wanted = wanted.clone().normalized();
        for o in &mut wanted.operators {
            if o.pin_hash == REDACTED_PIN_HASH {
                match self.s.operators.get(&o.id) {
                    Some(existing) => o.pin_hash = existing.config.pin_hash.clone(),
                    None => {
                        return refuse(
                            ConfigKind::Operator,
                            o.id.as_str(),
                            "pin_hash",
                            "a redacted hash can only keep an existing operator's PIN".into(),
                        )
                    }
                }
            }
        }
        wanted.validate().map_err(CoreError::InvalidConfig)?;
        let changes = wanted.diff_from(&current);
        for change in &changes {
            match (change.action, change.kind) {
                (ChangeAction::Removed, ConfigKind::Queue) => {
                    if let Some(call) = self.s.calls.values().find(|c| c.queue.as_str() == change.id) {
                        return refuse(ConfigKind::Queue, &change.id, "id", format!("call {} is still in it", call.id));
                    }
                }
                (ChangeAction::Removed, ConfigKind::Operator) => {
                    if self.s.operators.values().any(|o| o.config.id.as_str() == change.id && o.is_logged_in()) {
                        return refuse(ConfigKind::Operator, &change.id, "id", "still logged in".into());
                    }
                }
                (ChangeAction::Changed, ConfigKind::Operator) => {
                    let new = wanted.operators.iter().find(|o| o.id.as_str() == change.id);
                    let old = self.s.operators.values().find(|o| o.config.id.as_str() == change.id);
                    if let (Some(new), Some(old)) = (new, old) {
                        if old.is_logged_in() && old.config.mode != new.mode {
                            return refuse(
                                ConfigKind::Operator,
                                &change.id,
                                "mode",
                                "log the operator out before changing persistent/ring mode".into(),
                            );
                        }
                    }
                }
                _ => {}
            }
        }
        let wanted_now = |kind: ConfigKind, id: &str| {
            changes.iter().any(|c| c.kind == kind && c.id == id && c.action != ChangeAction::Removed)
        };
        // Puts in dependency order, then deletes in reverse dependency order.
        for s in wanted.schedules.iter().filter(|s| wanted_now(ConfigKind::Schedule, s.id.as_str())) {
            self.put_schedule(s)?;
        }
        for q in wanted.queues.iter().filter(|q| wanted_now(ConfigKind::Queue, q.id.as_str())) {
            self.put_queue(q)?;
        }
        for g in wanted.gates.iter().filter(|g| wanted_now(ConfigKind::Gate, g.id.as_str())) {
            self.put_gate(g)?;
        }
        for o in wanted.operators.iter().filter(|o| wanted_now(ConfigKind::Operator, o.id.as_str())) {
            self.put_operator(o)?;
        }
        for kind in [ConfigKind::Operator, ConfigKind::Gate, ConfigKind::Queue, ConfigKind::Schedule] {
            for change in changes.iter().filter(|c| c.kind == kind && c.action == ChangeAction::Removed) {
                let removed = match kind {
                    ConfigKind::Operator => self.delete_operator(&OperatorId::new(&change.id)),
                    ConfigKind::Gate => self.delete_gate(&GateId::new(&change.id)),
                    ConfigKind::Queue => self.delete_queue(&QueueId::new(&change.id)),
                    ConfigKind::Schedule => self.delete_schedule(&ScheduleId::new(&change.id)),
                };
                debug_assert!(removed.is_ok(), "pre-checked removal failed: {removed:?}");
                removed?;
            }
        }
        debug_assert_eq!(self.config_set(), wanted);
        Ok(Response::Done)
    }

    /// The whole configuration as one document, lists sorted by id.
    pub fn config_set(&self) -> RoutingConfigSet {
        RoutingConfigSet {
            schedules: self.schedule_configs().cloned().collect(),
            queues: self.queue_configs().cloned().collect(),
            gates: self.gate_configs().cloned().collect(),
            operators: self.operator_configs().cloned().collect(),
        }
        .normalized()
    }

    fn put_queue(&mut self, cfg: &QueueConfig) -> CommandResult {
        cfg.validate()?;
        if let Some(s) = &cfg.schedule {
            if !self.s.schedules.contains_key(s) {
                return Err(CoreError::UnknownSchedule(s.clone()));
            }
        }
        let queue = self.s.queues.entry(cfg.id.clone()).or_insert_with(|| Queue {
            config: cfg.clone(),
            stats: Stats::default(),
            handle_times: Default::default(),
            alarm_longest_wait_raised: false,
            alarm_depth_raised: false,
        });
        queue.config = cfg.clone();
        // Deadlines derived from the queue's settings follow the new settings.
        let now = self.s.now_ms;
        for call in self.s.calls.values_mut().filter(|c| c.queue == cfg.id) {
            call.max_wait_due_ms = cfg.max_wait_ms.map(|w| call.joined_at_ms.saturating_add(w));
            call.next_widen_ms = cfg
                .next_widening_after(now.saturating_sub(call.joined_at_ms))
                .map(|after| call.joined_at_ms.saturating_add(after));
        }
        self.rebuild_indexes();
        self.scratch.dirty_queues.insert(cfg.id.clone());
        Ok(Response::Done)
    }

    fn delete_queue(&mut self, id: &QueueId) -> CommandResult {
        if !self.s.queues.contains_key(id) {
            return Err(CoreError::UnknownQueue(id.clone()));
        }
        if let Some(call) = self.s.calls.values().find(|c| &c.queue == id) {
            return Err(CoreError::InUse {
                what: "queue".into(),
                id: id.to_string(),
                detail: format!("call {} is in it", call.id),
            });
        }
        if let Some(gate) = self.s.gates.values().find(|g| &g.config.queue == id) {
            return Err(CoreError::InUse {
                what: "queue".into(),
                id: id.to_string(),
                detail: format!("gate {} leads into it", gate.config.id),
            });
        }
        self.s.queues.remove(id);
        self.rebuild_indexes();
        Ok(Response::Done)
    }

    fn put_gate(&mut self, cfg: &GateConfig) -> CommandResult {
        cfg.validate()?;
        if !self.s.queues.contains_key(&cfg.queue) {
            return Err(CoreError::UnknownQueue(cfg.queue.clone()));
        }
        let gate =
            self.s.gates.entry(cfg.id.clone()).or_insert_with(|| Gate { config: cfg.clone(), stats: Stats::default() });
        gate.config = cfg.clone();
        Ok(Response::Done)
    }

    fn delete_gate(&mut self, id: &GateId) -> CommandResult {
        if self.s.gates.remove(id).is_none() {
            return Err(CoreError::UnknownGate(id.clone()));
        }
        // Calls keep their gate name for history; only the gate's counters go.
        Ok(Response::Done)
    }

    fn put_operator(&mut self, cfg: &OperatorConfig) -> CommandResult {
        cfg.validate()?;
        let Some(existing) = self.s.operators.get(&cfg.id) else {
            self.s.operators.insert(
                cfg.id.clone(),
                Operator {
                    config: cfg.clone(),
                    status: OperatorStatus::Offline,
                    site: None,
                    channel: None,
                    since_ms: self.s.now_ms,
                    idle_since_ms: self.s.now_ms,
                    logged_in_at_ms: 0,
                    misses: 0,
                    wake_ms: None,
                    after_call: None,
                },
            );
            return Ok(Response::Done);
        };
        if existing.is_logged_in() && existing.config.mode != cfg.mode {
            return Err(invalid("operator is logged in", "log out before changing persistent/ring mode"));
        }
        let logged_in = existing.is_logged_in();
        let old_queues: BTreeSet<QueueId> = existing.config.memberships.keys().cloned().collect();
        let new_queues: BTreeSet<QueueId> = cfg.memberships.keys().cloned().collect();
        self.with_operator(&cfg.id, |op| op.config = cfg.clone());
        if logged_in {
            for q in new_queues.difference(&old_queues) {
                self.log(
                    None,
                    Some(q.clone()),
                    None,
                    Some(cfg.id.clone()),
                    QueueLogVerb::AddMember,
                    vec![String::new()],
                );
            }
            for q in old_queues.difference(&new_queues) {
                self.log(None, Some(q.clone()), None, Some(cfg.id.clone()), QueueLogVerb::RemoveMember, vec![]);
            }
        }
        self.scratch.dirty_operators.insert(cfg.id.clone());
        Ok(Response::Done)
    }

    fn delete_operator(&mut self, id: &OperatorId) -> CommandResult {
        let op = self.s.operators.get(id).ok_or_else(|| CoreError::UnknownOperator(id.clone()))?;
        if op.is_logged_in() {
            return Err(CoreError::InUse { what: "operator".into(), id: id.to_string(), detail: "logged in".into() });
        }
        self.s.operators.remove(id);
        Ok(Response::Done)
    }

    fn put_schedule(&mut self, cfg: &ScheduleConfig) -> CommandResult {
        crate::schedule::validate(cfg)?;
        self.s.schedules.insert(cfg.id.clone(), cfg.clone());
        Ok(Response::Done)
    }

    fn delete_schedule(&mut self, id: &ScheduleId) -> CommandResult {
        if !self.s.schedules.contains_key(id) {
            return Err(CoreError::UnknownSchedule(id.clone()));
        }
        if let Some(q) = self.s.queues.values().find(|q| q.config.schedule.as_ref() == Some(id)) {
            return Err(CoreError::InUse {
                what: "schedule".into(),
                id: id.to_string(),
                detail: format!("queue {} uses it", q.config.id),
            });
        }
        self.s.schedules.remove(id);
        Ok(Response::Done)
    }

    // ----------------------------------------------------------------- callers

    fn enqueue(&mut self, index: u64, e: &Enqueue) -> CommandResult {
        e.call.validate().map_err(|err| CoreError::InvalidField { field: "call".into(), reason: err.to_string() })?;
        if let Some(ch) = &e.channel {
            validate_id_field("channel", ch)?;
        }
        validate_text("caller_number", &e.caller_number)?;
        validate_text("caller_name", &e.caller_name)?;
        if let Some(n) = &e.callback_number {
            validate_callback_number(n)?;
        }
        if e.channel.is_none() && e.callback_number.is_none() {
            return Err(CoreError::InvalidField {
                field: "channel".into(),
                reason: "an entry needs a caller channel or a callback number".into(),
            });
        }
        for (skill, level) in &e.skills {
            skill
                .validate()
                .map_err(|err| CoreError::InvalidField { field: "skills".into(), reason: err.to_string() })?;
            if *level > crate::config::SKILL_LEVEL_MAX {
                return Err(CoreError::InvalidField {
                    field: "skills".into(),
                    reason: format!("level {level} above 100"),
                });
            }
        }
        if self.s.lost_sites.contains(&e.site) {
            return Err(CoreError::SiteDown(e.site));
        }
        if self.idx.call_numbers.contains_key(&e.call) || self.idx.ended_calls.contains(&e.call) {
            return Err(CoreError::DuplicateCall(e.call.clone()));
        }
        let queue = self.s.queues.get(&e.queue).ok_or_else(|| CoreError::UnknownQueue(e.queue.clone()))?;
        let mut extra_skills = e.skills.clone();
        let mut priority = queue.config.default_priority;
        if let Some(g) = &e.gate {
            let gate = self.s.gates.get(g).ok_or_else(|| CoreError::UnknownGate(g.clone()))?;
            if gate.config.queue != e.queue {
                return Err(CoreError::GateNotInQueue {
                    gate: g.clone(),
                    gate_queue: gate.config.queue.clone(),
                    queue: e.queue.clone(),
                });
            }
            priority = gate.config.priority.unwrap_or(priority);
            for (skill, level) in &gate.config.required_skills {
                let l = extra_skills.entry(skill.clone()).or_insert(*level);
                *l = (*l).max(*level);
            }
        }
        let priority = e.priority.unwrap_or(priority);
        if index > ORDER_SEQ_MAX {
            return Err(CoreError::LogIndexTooLarge(index));
        }
        if self.idx.waiting_total >= TOTAL_WAITING_MAX_CALLS {
            return Err(CoreError::TooManyCalls { limit: TOTAL_WAITING_MAX_CALLS });
        }
        let now = self.s.now_ms;
        let call = Call {
            no: index,
            id: e.call.clone(),
            queue: e.queue.clone(),
            gate: e.gate.clone(),
            key: OrderKey { priority, seq: index },
            caller_number: e.caller_number.clone(),
            caller_name: e.caller_name.clone(),
            entry_site: e.site,
            channel: e.channel.clone(),
            extra_skills,
            entered_at_ms: now,
            joined_at_ms: now,
            orig_position: 0,
            overflow_hops: 0,
            state: CallState::Waiting,
            callback: e.callback_number.as_ref().map(|n| CallbackPromise {
                number: n.clone(),
                attempts_left: queue.config.callback_max_attempts,
                attempts_made: 0,
                ready_at_ms: None,
            }),
            max_wait_due_ms: None,
            next_widen_ms: None,
            next_announce_ms: None,
            next_periodic_ms: None,
            periodic_index: 0,
            callback_offered: false,
        };
        let (queue, position, exit) = self.admit(call, e.queue.clone());
        let eta_ms = position.and_then(|p| self.eta_ms(&queue, p));
        Ok(Response::Enqueued { queue, position, eta_ms, exit })
    }

    /// Entry checks (closed, full, empty), then join; a refusal follows the queue's target,
    /// which may be another queue. Returns (final queue, position if joined, outcome if left).
    fn admit(&mut self, mut call: Call, queue_id: QueueId) -> (QueueId, Option<u32>, Option<Outcome>) {
        let Some(queue) = self.s.queues.get(&queue_id) else {
            // Unreachable: Enqueue checks the queue and follow_target checks overflow targets.
            // Never lose the caller anyway: back to the dialplan.
            let outcome = Outcome::Full;
            self.end_call(call, outcome.clone(), None);
            return (queue_id, None, Some(outcome));
        };
        let cfg = &queue.config;
        let now = self.s.now_ms;
        let closed = cfg
            .schedule
            .as_ref()
            .and_then(|s| self.s.schedules.get(s))
            .is_some_and(|s| !crate::schedule::is_open(s, now));
        let qidx = self.idx.queues.get(&queue_id);
        let depth = qidx.map_or(0, |q| q.order.len());
        let refusal = if closed {
            Some((Outcome::Closed, QueueLogVerb::Closed, cfg.after_hours_target.clone()))
        } else if depth >= cfg.max_waiting as usize {
            Some((Outcome::Full, QueueLogVerb::Full, cfg.full_target.clone()))
        } else if self.is_empty_by(&queue_id, cfg.join_when_empty) && call.callback.is_none() {
            Some((Outcome::Empty, QueueLogVerb::JoinEmpty, cfg.empty_target.clone()))
        } else {
            None
        };
        if let Some((outcome, verb, target)) = refusal {
            self.bump_stats(&queue_id, call.gate.as_ref(), |s| match outcome {
                Outcome::Closed => s.closed += 1,
                Outcome::Full => s.full += 1,
                _ => s.empty += 1,
            });
            self.log(
                Some(call.id.clone()),
                Some(queue_id.clone()),
                call.gate.clone(),
                None,
                verb,
                vec![String::new(), call.caller_number.clone()],
            );
            return self.follow_target(call, outcome, target);
        }
        call.queue = queue_id.clone();
        call.joined_at_ms = now;
        let no = call.no;
        self.join(call);
        let position = self.position_of_no(no);
        (queue_id, position, None)
    }

    /// Leaves with `outcome`: either into the target queue (overflow) or back to the dialplan.
    fn follow_target(
        &mut self,
        mut call: Call,
        outcome: Outcome,
        target: Target,
    ) -> (QueueId, Option<u32>, Option<Outcome>) {
        match target {
            Target::Queue { queue, keep_order }
                if call.overflow_hops < OVERFLOW_HOPS_MAX && self.s.queues.contains_key(&queue) =>
            {
                call.overflow_hops += 1;
                if !keep_order {
                    call.key.seq = self.scratch.index;
                }
                let from = call.queue.clone();
                self.bump_stats(&from, call.gate.as_ref(), |s| s.overflowed += 1);
                self.admit(call, queue)
            }
            _ => {
                let queue = call.queue.clone();
                self.end_call(call, outcome.clone(), None);
                (queue, None, Some(outcome))
            }
        }
    }

    /// Puts a call into its queue's line (it must not be indexed yet).
    fn join(&mut self, mut call: Call) {
        let now = self.s.now_ms;
        let cfg = &self.s.queues[&call.queue].config;
        call.state = CallState::Waiting;
        call.max_wait_due_ms = cfg.max_wait_ms.map(|w| now.saturating_add(w));
        call.next_widen_ms = cfg.next_widening_after(0).map(|after| now.saturating_add(after));
        let live = call.callback.is_none();
        call.next_announce_ms = cfg.announce_every_ms.filter(|_| live).map(|every| now.saturating_add(every));
        call.next_periodic_ms = cfg
            .periodic_every_ms
            .filter(|_| live && !cfg.periodic_messages.is_empty())
            .map(|every| now.saturating_add(every));
        let announce_now = live && cfg.announce_every_ms.is_some();
        let no = call.no;
        let queue_id = call.queue.clone();
        let gate = call.gate.clone();
        self.insert_call(call);
        let position = self.position_of_no(no).unwrap_or(0);
        if let Some(c) = self.s.calls.get_mut(&no) {
            c.orig_position = position;
        }
        self.bump_stats(&queue_id, gate.as_ref(), |s| s.offered += 1);
        let c = &self.s.calls[&no];
        self.log(
            Some(c.id.clone()),
            Some(queue_id),
            gate,
            None,
            QueueLogVerb::EnterQueue,
            vec![String::new(), c.caller_number.clone(), position.to_string()],
        );
        if live {
            self.announce_position(no, announce_now);
        }
        self.scratch.dirty_calls.insert(no);
    }

    /// Position and ETA announcement (when `speak`), plus the callback offer when the ETA is
    /// above the queue's threshold (once per call).
    fn announce_position(&mut self, no: u64, speak: bool) {
        let Some(call) = self.s.calls.get(&no) else { return };
        let (Some(channel), Some(position)) = (call.channel.clone(), self.position_of_no(no)) else { return };
        let eta_ms = self.eta_ms(&call.queue, position);
        let (id, site) = (call.id.clone(), call.entry_site);
        if speak {
            self.scratch.out.push(Effect::Announce {
                call: id.clone(),
                site,
                channel: channel.clone(),
                announcement: Announcement::Position { position, eta_ms },
            });
        }
        let threshold = self.s.queues[&call.queue].config.callback_offer_above_eta_ms;
        if let (Some(threshold), Some(eta)) = (threshold, eta_ms) {
            if eta > threshold && !call.callback_offered {
                self.scratch.out.push(Effect::OfferCallback { call: id, site, channel, eta_ms: eta });
                if let Some(c) = self.s.calls.get_mut(&no) {
                    c.callback_offered = true;
                }
            }
        }
    }

    fn abandoned(&mut self, id: &CallId) -> CommandResult {
        let no = self.call_no(id)?;
        let call = &self.s.calls[&no];
        if call.callback.is_some() && !matches!(call.state, CallState::Waiting) {
            // The first leg of a caller who took a callback hangs up after the confirmation,
            // while the callback is already being placed or is connected: the promise no
            // longer has that leg, and its callback goes on.
            return Err(invalid("the callback is being served; its first leg has left", id.to_string()));
        }
        match &call.state {
            CallState::Connected { fence, .. } => {
                // The site saw the caller hang up after the bridge: that is a completion.
                let fence = *fence;
                self.completed(id, fence, Outcome::Completed { by: HungUpBy::Caller })
            }
            CallState::Offered { operator, since_ms, .. } => {
                let (operator, since_ms) = (operator.clone(), *since_ms);
                let ring_ms = self.s.now_ms.saturating_sub(since_ms);
                let (queue, gate) = (call.queue.clone(), call.gate.clone());
                let data = vec![ring_ms.to_string()];
                self.log(Some(id.clone()), Some(queue), gate, Some(operator.clone()), QueueLogVerb::RingCanceled, data);
                self.cancel_offer(no);
                self.release_after_offer(&operator, false);
                self.leave_waiting(no, Outcome::Abandoned, QueueLogVerb::Abandon, None);
                Ok(Response::Done)
            }
            CallState::Waiting => {
                self.leave_waiting(no, Outcome::Abandoned, QueueLogVerb::Abandon, None);
                Ok(Response::Done)
            }
        }
    }

    fn exit_with_key(&mut self, id: &CallId, key: char) -> CommandResult {
        if !"0123456789*#".contains(key) {
            return Err(CoreError::InvalidField {
                field: "key".into(),
                reason: format!("{key:?} is not a DTMF digit"),
            });
        }
        let no = self.call_no(id)?;
        if !self.s.calls[&no].is_live_waiting() {
            return Err(invalid("call is not waiting on the line", id.to_string()));
        }
        self.leave_waiting(no, Outcome::ExitWithKey { key }, QueueLogVerb::ExitWithKey, Some(key.to_string()));
        Ok(Response::Done)
    }

    /// A waiting (or just withdrawn) caller leaves the queue with `outcome`; logs
    /// `verb|[first]|pos|origpos|waittime` and ends the call.
    fn leave_waiting(&mut self, no: u64, outcome: Outcome, verb: QueueLogVerb, first: Option<String>) {
        // An offered caller is at the front of the line.
        let position = self.position_of_no(no).unwrap_or(1);
        let call = self.take_call(no);
        let wait_ms = self.s.now_ms.saturating_sub(call.joined_at_ms);
        let mut data: Vec<String> = first.into_iter().collect();
        data.extend([position.to_string(), call.orig_position.to_string(), secs(wait_ms)]);
        self.log(Some(call.id.clone()), Some(call.queue.clone()), call.gate.clone(), None, verb, data);
        self.bump_stats(&call.queue.clone(), call.gate.as_ref(), |s| match &outcome {
            Outcome::Abandoned => s.abandoned += 1,
            Outcome::TimedOut => s.timed_out += 1,
            Outcome::Empty => s.empty += 1,
            Outcome::ExitWithKey { .. } => s.exited_with_key += 1,
            Outcome::CallbackFailed => s.callbacks_failed += 1,
            _ => {}
        });
        self.end_call(call, outcome, None);
    }

    fn request_callback(&mut self, id: &CallId, number: &str) -> CommandResult {
        validate_callback_number(number)?;
        let no = self.call_no(id)?;
        if !self.s.calls[&no].is_live_waiting() {
            return Err(invalid("call is not waiting on the line", id.to_string()));
        }
        let position = self.position_of_no(no).unwrap_or(0);
        let attempts = self.s.queues[&self.s.calls[&no].queue].config.callback_max_attempts;
        let now = self.s.now_ms;
        self.with_call(no, |c| {
            c.callback = Some(CallbackPromise {
                number: number.to_string(),
                attempts_left: attempts,
                attempts_made: 0,
                ready_at_ms: None,
            });
            // The caller hangs up after the confirmation: no more announcements.
            c.channel = None;
            c.next_announce_ms = None;
            c.next_periodic_ms = None;
        });
        // A promise is offerable even when its caller's site is unreachable (the operator's
        // site places the call).
        self.scratch.dirty_calls.insert(no);
        let c = &self.s.calls[&no];
        let wait_ms = now.saturating_sub(c.joined_at_ms);
        let (queue, gate) = (c.queue.clone(), c.gate.clone());
        let data = vec![number.to_string(), position.to_string(), c.orig_position.to_string(), secs(wait_ms)];
        self.log(Some(id.clone()), Some(queue.clone()), gate.clone(), None, QueueLogVerb::CallbackRequest, data);
        self.bump_stats(&queue, gate.as_ref(), |s| s.callbacks_requested += 1);
        Ok(Response::CallbackAccepted { position })
    }

    fn reassign(&mut self, index: u64, id: &CallId, to: &QueueId, keep_age: bool) -> CommandResult {
        let no = self.call_no(id)?;
        if !self.s.queues.contains_key(to) {
            return Err(CoreError::UnknownQueue(to.clone()));
        }
        let call = &self.s.calls[&no];
        if !call.is_waiting() {
            return Err(invalid("only a waiting call can be reassigned", id.to_string()));
        }
        if &call.queue == to {
            return Err(invalid("call is already in that queue", to.to_string()));
        }
        let position = self.position_of_no(no).unwrap_or(0);
        let mut call = self.take_call(no);
        let wait_ms = self.s.now_ms.saturating_sub(call.joined_at_ms);
        self.log(
            Some(call.id.clone()),
            Some(call.queue.clone()),
            call.gate.clone(),
            None,
            QueueLogVerb::Reassign,
            vec![to.to_string(), position.to_string(), call.orig_position.to_string(), secs(wait_ms)],
        );
        if !keep_age {
            call.key.seq = index;
        }
        call.queue = to.clone();
        call.joined_at_ms = self.s.now_ms;
        // A supervisor's move bypasses the entry checks (closed, full, empty) on purpose.
        self.join(call);
        Ok(Response::Enqueued { queue: to.clone(), position: self.position_of_no(no), eta_ms: None, exit: None })
    }

    fn change_priority(&mut self, id: &CallId, priority: u8) -> CommandResult {
        let no = self.call_no(id)?;
        if !self.s.calls[&no].is_waiting() {
            return Err(invalid("only a waiting call's priority can change", id.to_string()));
        }
        self.with_call(no, |c| c.key.priority = priority);
        self.scratch.dirty_calls.insert(no);
        Ok(Response::Done)
    }

    // ----------------------------------------------------------------- operators

    fn login(&mut self, id: &OperatorId, site: SiteId, channel: &Option<String>) -> CommandResult {
        let op = self.s.operators.get(id).ok_or_else(|| CoreError::UnknownOperator(id.clone()))?;
        if self.s.lost_sites.contains(&site) {
            return Err(CoreError::SiteDown(site));
        }
        if let Some(ch) = channel {
            validate_id_field("channel", ch)?;
        }
        if op.config.mode == OperatorMode::Persistent && channel.is_none() {
            return Err(CoreError::InvalidField {
                field: "channel".into(),
                reason: "a persistent operator logs in with the channel that stays on the line".into(),
            });
        }
        let now = self.s.now_ms;
        match &op.status {
            OperatorStatus::Offline => {}
            OperatorStatus::Offered { .. } | OperatorStatus::Busy { .. } => {
                return Err(invalid("operator is on a call", id.to_string()));
            }
            _ => {
                // Logging in again (new holding channel after a reconnect): keep the state.
                self.with_operator(id, |op| {
                    op.site = Some(site);
                    op.channel = channel.clone();
                });
                return Ok(Response::Done);
            }
        }
        self.with_operator(id, |op| {
            op.status = OperatorStatus::Available;
            op.site = Some(site);
            op.channel = channel.clone();
            op.since_ms = now;
            op.idle_since_ms = now;
            op.logged_in_at_ms = now;
            op.misses = 0;
            op.wake_ms = None;
            op.after_call = None;
        });
        let op = &self.s.operators[id];
        let login_channel = channel.clone().unwrap_or_else(|| op.config.endpoint.clone().unwrap_or_default());
        self.log(None, None, None, Some(id.clone()), QueueLogVerb::AgentLogin, vec![login_channel]);
        for q in self.s.operators[id].config.memberships.keys().cloned().collect::<Vec<_>>() {
            self.log(None, Some(q), None, Some(id.clone()), QueueLogVerb::AddMember, vec![String::new()]);
        }
        self.scratch.dirty_operators.insert(id.clone());
        Ok(Response::Done)
    }

    fn logout(&mut self, id: &OperatorId) -> CommandResult {
        let op = self.s.operators.get(id).ok_or_else(|| CoreError::UnknownOperator(id.clone()))?;
        match &op.status {
            OperatorStatus::Offline => Err(CoreError::OperatorNotLoggedIn(id.clone())),
            OperatorStatus::Busy { .. } => {
                self.with_operator(id, |op| op.after_call = Some(RequestedState::Offline));
                Ok(Response::AfterCurrentCall)
            }
            OperatorStatus::Offered { call, .. } => {
                let no = self.call_no(call)?;
                self.cancel_offer(no);
                self.return_to_queue(no);
                self.go_offline(id);
                Ok(Response::Done)
            }
            _ => {
                self.go_offline(id);
                Ok(Response::Done)
            }
        }
    }

    fn go_offline(&mut self, id: &OperatorId) {
        let now = self.s.now_ms;
        let op = &self.s.operators[id];
        let login_s = secs(now.saturating_sub(op.logged_in_at_ms));
        let channel = op.channel.clone().or_else(|| op.config.endpoint.clone()).unwrap_or_default();
        for q in op.config.memberships.keys().cloned().collect::<Vec<_>>() {
            self.log(None, Some(q), None, Some(id.clone()), QueueLogVerb::RemoveMember, vec![]);
        }
        self.log(None, None, None, Some(id.clone()), QueueLogVerb::AgentLogoff, vec![channel, login_s]);
        self.with_operator(id, |op| {
            op.status = OperatorStatus::Offline;
            op.site = None;
            op.channel = None;
            op.since_ms = now;
            op.wake_ms = None;
            op.after_call = None;
            op.misses = 0;
        });
    }

    fn operator_state(&mut self, id: &OperatorId, requested: &RequestedState) -> CommandResult {
        let op = self.s.operators.get(id).ok_or_else(|| CoreError::UnknownOperator(id.clone()))?;
        if let RequestedState::Break { reason } = requested {
            validate_text("reason", reason)?;
        }
        if matches!(requested, RequestedState::Offline) {
            return self.logout(id);
        }
        let status = op.status.clone();
        match (status, requested) {
            (OperatorStatus::Offline, _) => Err(CoreError::OperatorNotLoggedIn(id.clone())),
            (OperatorStatus::Busy { .. }, RequestedState::Available) => {
                self.with_operator(id, |op| op.after_call = None);
                Ok(Response::Done)
            }
            (OperatorStatus::Busy { .. }, other) => {
                let other = other.clone();
                self.with_operator(id, |op| op.after_call = Some(other));
                Ok(Response::AfterCurrentCall)
            }
            (OperatorStatus::Offered { .. }, RequestedState::Available) => {
                Err(invalid("operator has an offer in progress", id.to_string()))
            }
            (OperatorStatus::Offered { call, .. }, RequestedState::Break { reason }) => {
                let no = self.call_no(&call)?;
                self.cancel_offer(no);
                self.return_to_queue(no);
                self.go_break(id, reason);
                Ok(Response::Done)
            }
            (OperatorStatus::Break { .. }, RequestedState::Available)
            | (OperatorStatus::WrapUp { .. }, RequestedState::Available)
            | (OperatorStatus::Available, RequestedState::Available) => {
                self.go_available(id, true);
                Ok(Response::Done)
            }
            (_, RequestedState::Break { reason }) => {
                self.go_break(id, reason);
                Ok(Response::Done)
            }
            (_, RequestedState::Offline) => unreachable!("handled above"),
        }
    }

    fn go_break(&mut self, id: &OperatorId, reason: &str) {
        let now = self.s.now_ms;
        for q in self.s.operators[id].config.memberships.keys().cloned().collect::<Vec<_>>() {
            self.log(None, Some(q), None, Some(id.clone()), QueueLogVerb::Pause, vec![reason.to_string()]);
        }
        self.with_operator(id, |op| {
            op.status = OperatorStatus::Break { reason: reason.to_string() };
            op.since_ms = now;
            op.wake_ms = None;
            op.after_call = None;
        });
    }

    /// Makes the operator available. `fresh_idle` restarts the idle clock (after a call or a
    /// break); an operator whose offer was withdrawn keeps its place among the idle.
    fn go_available(&mut self, id: &OperatorId, fresh_idle: bool) {
        let now = self.s.now_ms;
        if let OperatorStatus::Break { reason } = &self.s.operators[id].status {
            let reason = reason.clone();
            for q in self.s.operators[id].config.memberships.keys().cloned().collect::<Vec<_>>() {
                self.log(None, Some(q), None, Some(id.clone()), QueueLogVerb::Unpause, vec![reason.clone()]);
            }
        }
        self.with_operator(id, |op| {
            op.status = OperatorStatus::Available;
            op.since_ms = now;
            if fresh_idle {
                op.idle_since_ms = now;
            }
            op.wake_ms = None;
            op.misses = 0;
        });
        self.scratch.dirty_operators.insert(id.clone());
    }

    /// After an offer ended without a connection. A miss rests the operator (and after
    /// `misses_before_break` consecutive misses puts it on break); a withdrawn offer does not.
    fn release_after_offer(&mut self, id: &OperatorId, missed: bool) {
        let Some(op) = self.s.operators.get(id) else { return };
        if !matches!(op.status, OperatorStatus::Offered { .. }) {
            return;
        }
        if !missed {
            let now = self.s.now_ms;
            self.with_operator(id, |op| {
                op.status = OperatorStatus::Available;
                op.since_ms = now;
            });
            self.scratch.dirty_operators.insert(id.clone());
            return;
        }
        // The queue whose offer was missed decides the rules; fall back to defaults.
        let misses = op.misses.saturating_add(1);
        let (limit, backoff) = self.miss_rules_for(id);
        if limit > 0 && misses >= limit {
            self.go_break(id, "missed-offers");
            self.with_operator(id, |op| op.misses = misses);
            return;
        }
        let now = self.s.now_ms;
        self.with_operator(id, |op| {
            op.status = OperatorStatus::Available;
            op.since_ms = now;
            op.idle_since_ms = now;
            op.misses = misses;
            op.wake_ms = (backoff > 0).then(|| now.saturating_add(backoff));
        });
        self.scratch.dirty_operators.insert(id.clone());
    }

    fn miss_rules_for(&self, id: &OperatorId) -> (u8, u64) {
        let defaults = QueueConfig::default();
        let op = &self.s.operators[id];
        // Strictest rules among the operator's queues.
        op.config
            .memberships
            .keys()
            .filter_map(|q| self.s.queues.get(q))
            .map(|q| (q.config.misses_before_break, q.config.miss_backoff_ms))
            .reduce(|a, b| {
                let limit = match (a.0, b.0) {
                    (0, x) | (x, 0) => x,
                    (x, y) => x.min(y),
                };
                (limit, a.1.max(b.1))
            })
            .unwrap_or((defaults.misses_before_break, defaults.miss_backoff_ms))
    }

    /// After a connected call ended: a pending request, else wrap-up, else available.
    fn after_call(&mut self, id: &OperatorId, queue: &QueueId) {
        let Some(op) = self.s.operators.get(id) else { return };
        let now = self.s.now_ms;
        match op.after_call.clone() {
            Some(RequestedState::Offline) => self.go_offline(id),
            Some(RequestedState::Break { reason }) => self.go_break(id, &reason),
            _ => {
                let wrap_up_ms = self.s.queues.get(queue).map_or(0, |q| q.config.wrap_up_ms);
                if wrap_up_ms > 0 {
                    let until_ms = now.saturating_add(wrap_up_ms);
                    self.with_operator(id, |op| {
                        op.status = OperatorStatus::WrapUp { until_ms };
                        op.since_ms = now;
                        op.wake_ms = Some(until_ms);
                        op.after_call = None;
                    });
                } else {
                    self.go_available(id, true);
                }
            }
        }
    }

    fn pull(&mut self, index: u64, id: &OperatorId, named: Option<&CallId>) -> CommandResult {
        let op = self.s.operators.get(id).ok_or_else(|| CoreError::UnknownOperator(id.clone()))?;
        if !matches!(op.status, OperatorStatus::Available) {
            return Err(invalid("only an available operator can pull a call", id.to_string()));
        }
        let no = match named {
            Some(call_id) => {
                let no = self.call_no(call_id)?;
                let call = &self.s.calls[&no];
                if !call.is_waiting() {
                    return Err(invalid("call is not waiting", call_id.to_string()));
                }
                let penalty =
                    op.config.memberships.get(&call.queue).ok_or_else(|| {
                        invalid("operator is not a member of the call's queue", call.queue.to_string())
                    })?;
                if self.is_capped(&call.queue) || !self.eligible(op, *penalty, call, false) {
                    return Err(invalid(
                        "operator cannot take this call (skills, cap or callback delay)",
                        call_id.to_string(),
                    ));
                }
                no
            }
            None => self.best_call_for(op, true).ok_or_else(|| CoreError::NothingToPull(id.clone()))?,
        };
        // Pulling is explicit: a rest after a missed offer does not stop it.
        self.with_operator(id, |op| op.wake_ms = None);
        self.make_offer(no, id);
        Ok(Response::Pulled { call: self.s.calls[&no].id.clone(), fence: index })
    }

    // ----------------------------------------------------------------- offers

    fn offer_for(&self, no: u64, op_id: &OperatorId, fence: u64) -> Offer {
        let call = &self.s.calls[&no];
        let op = &self.s.operators[op_id];
        let queue = &self.s.queues[&call.queue].config;
        Offer {
            call: call.id.clone(),
            operator: op_id.clone(),
            fence,
            queue: call.queue.clone(),
            gate: call.gate.clone(),
            caller_site: call.entry_site,
            operator_site: op.site.unwrap_or(op.config.site),
            caller_channel: call.channel.clone(),
            caller_number: call.caller_number.clone(),
            caller_name: call.caller_name.clone(),
            mode: op.config.mode,
            operator_channel: op.channel.clone(),
            endpoint: op.config.endpoint.clone(),
            ring_timeout_ms: queue.ring_timeout_ms,
            whisper: call.gate.as_ref().and_then(|g| self.s.gates.get(g)).and_then(|g| g.config.whisper.clone()),
            callback_number: call.callback.as_ref().map(|c| c.number.clone()),
        }
    }

    fn make_offer(&mut self, no: u64, op_id: &OperatorId) {
        let fence = self.scratch.index;
        let now = self.s.now_ms;
        let call = &self.s.calls[&no];
        let op = &self.s.operators[op_id];
        // Invariant, where decided: only a waiting caller and an offerable operator pair up.
        debug_assert!(call.is_waiting(), "offer for a call that is not waiting");
        debug_assert!(op.is_offerable() || matches!(op.status, OperatorStatus::Available));
        if !call.is_waiting() || !matches!(op.status, OperatorStatus::Available) {
            return;
        }
        let ring_timeout_ms = self.s.queues[&call.queue].config.ring_timeout_ms;
        let deadline_ms = now.saturating_add(match (&call.callback, op.config.mode) {
            (Some(_), _) => CALLBACK_DIAL_TIMEOUT_MS,
            (None, OperatorMode::Ring) => ring_timeout_ms + OFFER_RING_GRACE_MS,
            (None, OperatorMode::Persistent) => OFFER_CONNECT_TIMEOUT_MS,
        });
        let operator_site = op.site.unwrap_or(op.config.site);
        let call_id = call.id.clone();
        let is_callback = call.callback.is_some();
        self.with_call(no, |c| {
            c.state = CallState::Offered { operator: op_id.clone(), fence, operator_site, since_ms: now, deadline_ms };
        });
        self.with_operator(op_id, |op| {
            op.status = OperatorStatus::Offered { call: call_id, fence };
            op.since_ms = now;
        });
        let offer = self.offer_for(no, op_id, fence);
        self.scratch.out.push(if is_callback { Effect::DialCallback(offer) } else { Effect::Offer(offer) });
    }

    /// Tells the sites holding the legs that the current offer is over.
    fn cancel_offer(&mut self, no: u64) {
        let call = &self.s.calls[&no];
        if let CallState::Offered { operator, fence, operator_site, .. } = &call.state {
            self.scratch.out.push(Effect::CancelOffer {
                call: call.id.clone(),
                operator: operator.clone(),
                fence: *fence,
                caller_site: call.entry_site,
                operator_site: *operator_site,
            });
        }
    }

    /// The call goes back into line with its original order key (it keeps its place).
    fn return_to_queue(&mut self, no: u64) {
        self.with_call(no, |c| c.state = CallState::Waiting);
        self.scratch.dirty_calls.insert(no);
    }

    /// Checks that `fence` is the current offer of `call` to `operator`.
    fn offered_call(&self, id: &CallId, operator: &OperatorId, fence: u64) -> Result<u64, CoreError> {
        let no = self.call_no(id)?;
        match &self.s.calls[&no].state {
            CallState::Offered { operator: o, fence: f, .. } if o == operator && *f == fence => Ok(no),
            state => Err(CoreError::StaleFence {
                call: id.clone(),
                got: fence,
                current: match state {
                    CallState::Offered { fence, .. } | CallState::Connected { fence, .. } => Some(*fence),
                    CallState::Waiting => None,
                },
            }),
        }
    }

    fn connected(&mut self, id: &CallId, operator: &OperatorId, fence: u64) -> CommandResult {
        let no = self.offered_call(id, operator, fence)?;
        self.connect(no);
        Ok(Response::Done)
    }

    fn connect(&mut self, no: u64) {
        let now = self.s.now_ms;
        let call = &self.s.calls[&no];
        let CallState::Offered { operator, fence, operator_site, since_ms, .. } = call.state.clone() else { return };
        let wait_ms = now.saturating_sub(call.joined_at_ms);
        let ring_s = secs(now.saturating_sub(since_ms));
        let member = self.s.operators[&operator].channel.clone().unwrap_or_else(|| operator.to_string());
        let sl_ms = self.s.queues[&call.queue].config.service_level_ms;
        let (queue, gate, call_id) = (call.queue.clone(), call.gate.clone(), call.id.clone());
        let data = vec![secs(wait_ms), member, ring_s];
        self.log(
            Some(call_id.clone()),
            Some(queue.clone()),
            gate.clone(),
            Some(operator.clone()),
            QueueLogVerb::Connect,
            data,
        );
        self.bump_stats(&queue, gate.as_ref(), |s| {
            s.answered += 1;
            s.total_wait_ms += wait_ms;
            if wait_ms <= sl_ms {
                s.answered_within_service_level += 1;
            }
        });
        self.with_call(no, |c| {
            c.state = CallState::Connected { operator: operator.clone(), fence, operator_site, since_ms: now, wait_ms };
            c.next_announce_ms = None;
            c.next_periodic_ms = None;
        });
        self.with_operator(&operator, |op| {
            op.status = OperatorStatus::Busy { call: call_id, fence };
            op.since_ms = now;
            op.misses = 0;
        });
    }

    fn offer_failed(&mut self, id: &CallId, operator: &OperatorId, fence: u64, reason: OfferFailure) -> CommandResult {
        let no = self.offered_call(id, operator, fence)?;
        self.cancel_offer(no);
        self.return_to_queue(no);
        match reason {
            OfferFailure::OperatorUnreachable => self.go_offline(operator),
            OfferFailure::BridgeFailed => self.release_after_offer(operator, true),
            OfferFailure::TrunkFailed { .. } => {
                // Not a miss; but the same trunk would likely fail again at once, so the
                // operator rests briefly instead of being offered across it in a tight loop.
                self.release_after_offer(operator, false);
                let wake_at = self.s.now_ms.saturating_add(TRUNK_FAILURE_REST_MS);
                self.with_operator(operator, |op| op.wake_ms = Some(wake_at));
            }
            OfferFailure::Interrupted => self.release_after_offer(operator, false),
        }
        Ok(Response::Done)
    }

    fn ring_no_answer(&mut self, id: &CallId, operator: &OperatorId, fence: u64) -> CommandResult {
        let no = self.offered_call(id, operator, fence)?;
        self.missed(no, operator);
        Ok(Response::Done)
    }

    /// The operator did not take the offer (no answer, or the core's deadline passed).
    fn missed(&mut self, no: u64, operator: &OperatorId) {
        let call = &self.s.calls[&no];
        if let CallState::Offered { since_ms, .. } = &call.state {
            let ring_ms = self.s.now_ms.saturating_sub(*since_ms);
            self.log_call(no, Some(operator.clone()), QueueLogVerb::RingNoAnswer, vec![ring_ms.to_string()]);
        }
        self.cancel_offer(no);
        self.return_to_queue(no);
        self.release_after_offer(operator, true);
    }

    fn completed(&mut self, id: &CallId, fence: u64, outcome: Outcome) -> CommandResult {
        let no = self.call_no(id)?;
        let call = &self.s.calls[&no];
        let CallState::Connected { operator, fence: current, since_ms, wait_ms, .. } = call.state.clone() else {
            return Err(CoreError::StaleFence { call: id.clone(), got: fence, current: call.offer_fence() });
        };
        if current != fence {
            return Err(CoreError::StaleFence { call: id.clone(), got: fence, current: Some(current) });
        }
        let now = self.s.now_ms;
        // An operator released by its own site talked until then, however late the caller's
        // site reports.
        let released_at_ms = self.s.outages.released_calls.get(&no).copied();
        let talk_ms = released_at_ms.unwrap_or(now).saturating_sub(since_ms);
        let (verb, data) = match &outcome {
            Outcome::Transferred { target } => (
                QueueLogVerb::BlindTransfer,
                vec![target.clone(), String::new(), secs(wait_ms), secs(talk_ms), call.orig_position.to_string()],
            ),
            Outcome::Completed { by: HungUpBy::Operator } => {
                (QueueLogVerb::CompleteAgent, vec![secs(wait_ms), secs(talk_ms), call.orig_position.to_string()])
            }
            _ => (QueueLogVerb::CompleteCaller, vec![secs(wait_ms), secs(talk_ms), call.orig_position.to_string()]),
        };
        let (queue_id, gate) = (call.queue.clone(), call.gate.clone());
        self.log(Some(id.clone()), Some(queue_id.clone()), gate, Some(operator.clone()), verb, data);
        let wrap_up_ms = self.s.queues[&queue_id].config.wrap_up_ms;
        let call = self.take_call(no);
        if let Some(q) = self.s.queues.get_mut(&queue_id) {
            q.handle_times.push(talk_ms + wrap_up_ms);
        }
        self.bump_stats(&queue_id, call.gate.as_ref(), |s| {
            s.handled += 1;
            s.total_handle_ms += talk_ms;
        });
        self.end_call(call, outcome, Some(talk_ms));
        if released_at_ms.is_none() {
            self.after_call(&operator, &queue_id);
        }
        Ok(Response::Done)
    }

    fn callback_result(&mut self, id: &CallId, operator: &OperatorId, fence: u64, answered: bool) -> CommandResult {
        let no = self.offered_call(id, operator, fence)?;
        if self.s.calls[&no].callback.is_none() {
            return Err(invalid("call is not a callback promise", id.to_string()));
        }
        if answered {
            self.connect(no);
            return Ok(Response::Done);
        }
        self.callback_attempt_failed(no, operator);
        Ok(Response::Done)
    }

    fn callback_attempt_failed(&mut self, no: u64, operator: &OperatorId) {
        self.cancel_offer(no);
        let now = self.s.now_ms;
        let retry_delay_ms = self.s.queues[&self.s.calls[&no].queue].config.callback_retry_delay_ms;
        self.with_call(no, |c| {
            if let Some(cb) = c.callback.as_mut() {
                cb.attempts_made = cb.attempts_made.saturating_add(1);
                cb.attempts_left = cb.attempts_left.saturating_sub(1);
                cb.ready_at_ms = Some(now.saturating_add(retry_delay_ms));
            }
            c.state = CallState::Waiting;
        });
        self.release_after_offer(operator, false);
        let call = &self.s.calls[&no];
        let left = call.callback.as_ref().map_or(0, |c| c.attempts_left);
        if left == 0 {
            // Out of attempts: the CALLBACKFAILED line with 0 left is the call's terminal line.
            self.leave_waiting(no, Outcome::CallbackFailed, QueueLogVerb::CallbackFailed, Some("0".into()));
        } else {
            self.log_call(no, Some(operator.clone()), QueueLogVerb::CallbackFailed, vec![left.to_string()]);
        }
    }

    // ----------------------------------------------------------------- sites

    fn site_lost(&mut self, site: SiteId) -> CommandResult {
        if self.s.lost_sites.contains(&site) {
            return Ok(Response::Done);
        }
        // A lost site is no longer "unreachable": its operators become indexable again
        // (they are logged out below) and its callers' timers run again.
        self.set_site_unreachable(site, None);
        self.s.lost_sites.insert(site);
        let nos: Vec<u64> = self.s.calls.keys().copied().collect();
        for no in nos {
            let Some(call) = self.s.calls.get(&no) else { continue };
            let caller_lost = call.callback.is_none() && call.entry_site == site;
            match call.state.clone() {
                CallState::Waiting if caller_lost => {
                    self.leave_waiting(no, Outcome::SiteLost, QueueLogVerb::SiteLost, None);
                }
                CallState::Waiting => {}
                CallState::Offered { operator, operator_site, .. } => {
                    if caller_lost {
                        self.cancel_offer(no);
                        if operator_site != site {
                            self.release_after_offer(&operator, false);
                        }
                        self.leave_waiting(no, Outcome::SiteLost, QueueLogVerb::SiteLost, None);
                    } else if operator_site == site {
                        self.cancel_offer(no);
                        self.return_to_queue(no);
                    }
                }
                CallState::Connected { fence, operator_site, .. } => {
                    if caller_lost || operator_site == site {
                        let id = call.id.clone();
                        self.completed(&id, fence, Outcome::Completed { by: HungUpBy::SiteLost })?;
                    }
                }
            }
        }
        let lost_operators: Vec<OperatorId> = self
            .s
            .operators
            .values()
            .filter(|op| op.is_logged_in() && op.site == Some(site))
            .map(|op| op.config.id.clone())
            .collect();
        for id in lost_operators {
            self.go_offline(&id);
        }
        Ok(Response::Done)
    }

    // ----------------------------------------------------------------- time

    fn tick(&mut self) {
        let now = self.s.now_ms;
        // Wake-ups whose entity still has that deadline, in order of the entity's own
        // deadline: stale entries never act and never reorder anything, so a node restored
        // from a snapshot (which has no stale entries) does exactly the same.
        let mut due: BTreeSet<(u64, Timer)> = BTreeSet::new();
        while let Some(&(at, timer)) = self.idx.call_timers.first() {
            if at > now {
                break;
            }
            self.idx.call_timers.pop_first();
            if let Some(actual) = self.timer_due(timer) {
                if actual <= now {
                    due.insert((actual, timer));
                }
            }
        }
        let mut wakes: BTreeSet<(u64, OperatorId)> = BTreeSet::new();
        while let Some((at, _)) = self.idx.operator_wakes.first() {
            if *at > now {
                break;
            }
            let (_, id) = self.idx.operator_wakes.pop_first().expect("checked non-empty");
            if let Some(actual) = self.s.operators.get(&id).and_then(|op| op.wake_ms) {
                if actual <= now {
                    wakes.insert((actual, id));
                }
            }
        }
        for (_, id) in wakes {
            self.wake_operator(&id);
        }
        for (_, timer) in due {
            self.fire(timer);
        }
        let queue_ids: Vec<QueueId> = self.s.queues.keys().cloned().collect();
        for q in &queue_ids {
            self.leave_when_empty(q);
            self.check_alarms(q);
        }
    }

    fn timer_due(&self, timer: Timer) -> Option<u64> {
        let (no, field): (u64, fn(&Call) -> Option<u64>) = match timer {
            Timer::MaxWait(no) => (no, |c| c.max_wait_due_ms.filter(|_| c.is_live_waiting())),
            Timer::Widen(no) => (no, |c| c.next_widen_ms.filter(|_| c.is_waiting())),
            Timer::Announce(no) => (no, |c| c.next_announce_ms.filter(|_| c.is_live_waiting())),
            Timer::Periodic(no) => (no, |c| c.next_periodic_ms.filter(|_| c.is_live_waiting())),
            Timer::CallbackReady(no) => {
                (no, |c| c.callback.as_ref().and_then(|cb| cb.ready_at_ms).filter(|_| c.is_waiting()))
            }
            Timer::OfferDeadline(no) => (no, |c| match &c.state {
                CallState::Offered { deadline_ms, .. } => Some(*deadline_ms),
                _ => None,
            }),
        };
        self.s.calls.get(&no).and_then(field)
    }

    fn fire(&mut self, timer: Timer) {
        let now = self.s.now_ms;
        // An earlier timer in this tick may have ended or changed the call.
        if self.timer_due(timer).is_none_or(|at| at > now) {
            return;
        }
        match timer {
            Timer::MaxWait(no) if self.caller_site_unreachable(no) => {
                // Its site cannot send the caller on, and the caller is still on its box.
                self.with_call(no, |c| c.max_wait_due_ms = Some(now.saturating_add(UNREACHABLE_TIMER_RECHECK_MS)));
            }
            Timer::MaxWait(no) => {
                let call = &self.s.calls[&no];
                let target = self.s.queues[&call.queue].config.timeout_target.clone();
                let position = self.position_of_no(no).unwrap_or(0);
                let call = self.take_call(no);
                let wait_ms = now.saturating_sub(call.joined_at_ms);
                self.log(
                    Some(call.id.clone()),
                    Some(call.queue.clone()),
                    call.gate.clone(),
                    None,
                    QueueLogVerb::ExitWithTimeout,
                    vec![position.to_string(), call.orig_position.to_string(), secs(wait_ms)],
                );
                self.bump_stats(&call.queue.clone(), call.gate.as_ref(), |s| s.timed_out += 1);
                self.follow_target(call, Outcome::TimedOut, target);
            }
            Timer::Widen(no) => {
                let call = &self.s.calls[&no];
                let cfg = &self.s.queues[&call.queue].config;
                let next = cfg
                    .next_widening_after(now.saturating_sub(call.joined_at_ms))
                    .map(|after| call.joined_at_ms.saturating_add(after));
                self.with_call(no, |c| c.next_widen_ms = next);
                self.scratch.dirty_calls.insert(no);
            }
            Timer::Announce(no) => {
                let every = self.s.queues[&self.s.calls[&no].queue].config.announce_every_ms;
                self.with_call(no, |c| c.next_announce_ms = every.map(|e| now.saturating_add(e)));
                self.announce_position(no, true);
            }
            Timer::Periodic(no) => {
                let call = &self.s.calls[&no];
                let cfg = &self.s.queues[&call.queue].config;
                let every = cfg.periodic_every_ms;
                if let (Some(channel), false) = (call.channel.clone(), cfg.periodic_messages.is_empty()) {
                    let sound =
                        cfg.periodic_messages[call.periodic_index as usize % cfg.periodic_messages.len()].clone();
                    self.scratch.out.push(Effect::Announce {
                        call: call.id.clone(),
                        site: call.entry_site,
                        channel,
                        announcement: Announcement::Message { sound },
                    });
                }
                self.with_call(no, |c| {
                    c.periodic_index = c.periodic_index.wrapping_add(1);
                    c.next_periodic_ms = every.map(|e| now.saturating_add(e));
                });
            }
            Timer::CallbackReady(no) => {
                self.with_call(no, |c| {
                    if let Some(cb) = c.callback.as_mut() {
                        cb.ready_at_ms = None;
                    }
                });
                self.scratch.dirty_calls.insert(no);
            }
            Timer::OfferDeadline(no) if self.offer_spans_unreachable_site(no) => {
                // The silent site may be carrying the offer out right now; it reports when
                // it is heard again. Until then the offer stands.
                self.with_call(no, |c| {
                    if let CallState::Offered { deadline_ms, .. } = &mut c.state {
                        *deadline_ms = now.saturating_add(UNREACHABLE_TIMER_RECHECK_MS);
                    }
                });
            }
            Timer::OfferDeadline(no) => {
                let CallState::Offered { operator, .. } = self.s.calls[&no].state.clone() else { return };
                if self.s.calls[&no].callback.is_some() {
                    self.callback_attempt_failed(no, &operator);
                } else {
                    self.missed(no, &operator);
                }
            }
        }
    }

    fn wake_operator(&mut self, id: &OperatorId) {
        let Some(op) = self.s.operators.get(id) else { return };
        match op.status {
            OperatorStatus::WrapUp { .. } => self.go_available(id, true),
            OperatorStatus::Available => {
                // End of the rest after a missed offer.
                self.with_operator(id, |op| op.wake_ms = None);
                self.scratch.dirty_operators.insert(id.clone());
            }
            _ => self.with_operator(id, |op| op.wake_ms = None),
        }
    }

    fn is_empty_by(&self, queue: &QueueId, rule: EmptyRule) -> bool {
        let Some(idx) = self.idx.queues.get(queue) else { return true };
        match rule {
            EmptyRule::Never => false,
            EmptyRule::NoneLoggedIn => idx.logged_in == 0,
            EmptyRule::NoneReady => idx.ready == 0,
        }
    }

    fn leave_when_empty(&mut self, queue: &QueueId) {
        let cfg = &self.s.queues[queue].config;
        if !self.is_empty_by(queue, cfg.leave_when_empty) {
            return;
        }
        let target = cfg.empty_target.clone();
        let leaving: Vec<u64> = self.idx.queues[queue]
            .order
            .iter()
            .map(|(_, no)| no)
            .filter(|no| self.s.calls[no].is_live_waiting() && !self.caller_site_unreachable(*no))
            .collect();
        for no in leaving {
            let position = self.position_of_no(no).unwrap_or(0);
            let call = self.take_call(no);
            let wait_ms = self.s.now_ms.saturating_sub(call.joined_at_ms);
            self.log(
                Some(call.id.clone()),
                Some(call.queue.clone()),
                call.gate.clone(),
                None,
                QueueLogVerb::ExitEmpty,
                vec![position.to_string(), call.orig_position.to_string(), secs(wait_ms)],
            );
            self.bump_stats(queue, call.gate.as_ref(), |s| s.empty += 1);
            self.follow_target(call, Outcome::Empty, target.clone());
        }
    }

    fn check_alarms(&mut self, queue_id: &QueueId) {
        let now = self.s.now_ms;
        let idx = &self.idx.queues[queue_id];
        let longest = idx.live_by_joined.first().map_or(0, |(joined, _)| now.saturating_sub(*joined));
        let depth = idx.order.len() as u64;
        let q = self.s.queues.get_mut(queue_id).expect("queue exists");
        let mut raised = Vec::new();
        if let Some(threshold) = q.config.alarm_longest_wait_ms {
            let over = longest >= threshold;
            if over != q.alarm_longest_wait_raised {
                q.alarm_longest_wait_raised = over;
                raised.push((AlarmKind::LongestWait, over, longest, threshold));
            }
        }
        if let Some(threshold) = q.config.alarm_depth {
            let over = depth >= u64::from(threshold);
            if over != q.alarm_depth_raised {
                q.alarm_depth_raised = over;
                raised.push((AlarmKind::Depth, over, depth, u64::from(threshold)));
            }
        }
        for (kind, raised, value, threshold) in raised {
            self.scratch.out.push(Effect::Alarm { queue: queue_id.clone(), kind, raised, value, threshold });
        }
    }

    // ----------------------------------------------------------------- matching

    /// Phase two of apply: pair everything that became eligible. Operators first (each takes
    /// its globally first eligible caller, which may be older than any new caller), then
    /// callers in global order (each takes its best operator), then queues whose cap freed.
    fn settle(&mut self) {
        let mut offers = 0usize;
        let mut ops: Vec<(u64, OperatorId)> = std::mem::take(&mut self.scratch.dirty_operators)
            .into_iter()
            .filter_map(|id| self.s.operators.get(&id).map(|op| (op.idle_since_ms, id)))
            .collect();
        ops.sort();
        for (_, id) in ops {
            // The freed operator finds its globally first eligible caller; that caller then
            // goes to *its* best operator, which may be one idle longer (e.g. one that a
            // queue cap held back). Repeat until this operator is served or has nothing.
            while offers < SETTLE_OFFERS_MAX {
                let Some(op) = self.s.operators.get(&id) else { break };
                if !op.is_offerable() {
                    break;
                }
                let Some(no) = self.best_call_for(op, false) else { break };
                // Give it to a better operator only if it is that operator's own first
                // eligible caller too; otherwise that operator would overtake someone.
                let chosen = self
                    .best_operator_for(no)
                    .filter(|other| {
                        other == &id
                            || self.s.operators.get(other).and_then(|o| self.best_call_for(o, false)) == Some(no)
                    })
                    .unwrap_or_else(|| id.clone());
                self.make_offer(no, &chosen);
                offers += 1;
                if chosen == id {
                    break;
                }
            }
        }
        let mut calls: Vec<((Reverse<u8>, OrderKey), u64)> = std::mem::take(&mut self.scratch.dirty_calls)
            .into_iter()
            .filter_map(|no| {
                let c = self.s.calls.get(&no)?;
                let weight = self.s.queues.get(&c.queue)?.config.weight;
                Some(((Reverse(weight), c.key), no))
            })
            .collect();
        calls.sort();
        for (_, no) in calls {
            if let Some(op) = self.best_operator_for(no) {
                self.make_offer(no, &op);
                offers += 1;
            }
        }
        for q in std::mem::take(&mut self.scratch.dirty_queues) {
            while offers < SETTLE_OFFERS_MAX {
                let Some((no, op)) = self.first_pair_in(&q) else { break };
                self.make_offer(no, &op);
                offers += 1;
            }
        }
        // Offers never make anything else eligible, so one pass reaches quiescence.
        self.scratch.dirty_calls.clear();
        self.scratch.dirty_operators.clear();
    }

    fn is_capped(&self, queue: &QueueId) -> bool {
        let (Some(q), Some(idx)) = (self.s.queues.get(queue), self.idx.queues.get(queue)) else { return true };
        q.config.max_busy_operators.is_some_and(|cap| idx.active >= cap)
    }

    /// Can `op` (with `penalty` in the call's queue) take `call`? Membership, pull mode and
    /// caps are the caller's business; this checks the callback delay, skills and tiers.
    fn eligible(&self, op: &Operator, penalty: u8, call: &Call, respect_tiers: bool) -> bool {
        if !call.callback_ready() || !self.call_reachable(call) {
            return false;
        }
        let queue = &self.s.queues[&call.queue].config;
        if respect_tiers {
            if let Some(allowed) = queue.allowed_penalty(self.s.now_ms.saturating_sub(call.joined_at_ms)) {
                if penalty > allowed {
                    return false;
                }
            }
        }
        op.has_skills(queue.required_skills.iter()) && op.has_skills(call.extra_skills.iter())
    }

    /// The globally first caller `op` may take: over its queues, by (queue weight, priority,
    /// arrival). `pulling` includes pull-only queues and ignores tier widening.
    fn best_call_for(&self, op: &Operator, pulling: bool) -> Option<u64> {
        let mut best: Option<((Reverse<u8>, OrderKey), u64)> = None;
        for (queue_id, penalty) in &op.config.memberships {
            let (Some(queue), Some(idx)) = (self.s.queues.get(queue_id), self.idx.queues.get(queue_id)) else {
                continue;
            };
            if (queue.config.pull_only && !pulling) || self.is_capped(queue_id) || idx.order.is_empty() {
                continue;
            }
            if !op.has_skills(queue.config.required_skills.iter()) {
                continue;
            }
            if !pulling && idx.callbacks_waiting == 0 {
                // Tier pruning: allowed penalty only grows with wait, so if even the longest
                // waiting caller may not use this operator yet, nobody in the queue may.
                let oldest = idx.live_by_joined.first().map(|(joined, _)| *joined).unwrap_or(self.s.now_ms);
                if queue.config.allowed_penalty(self.s.now_ms.saturating_sub(oldest)).is_some_and(|a| *penalty > a) {
                    continue;
                }
            }
            let weight = Reverse(queue.config.weight);
            for (key, no) in idx.order.iter() {
                if best.as_ref().is_some_and(|(b, _)| (weight, key) >= *b) {
                    break;
                }
                if self.eligible(op, *penalty, &self.s.calls[&no], !pulling) {
                    best = Some(((weight, key), no));
                    break;
                }
            }
        }
        best.map(|(_, no)| no)
    }

    /// The best available operator for a waiting caller: lowest penalty tier, then longest
    /// idle, then one at the caller's site, then by id.
    fn best_operator_for(&self, no: u64) -> Option<OperatorId> {
        let call = self.s.calls.get(&no)?;
        if !call.is_waiting() || !call.callback_ready() || !self.call_reachable(call) {
            return None;
        }
        let queue = self.s.queues.get(&call.queue)?;
        if queue.config.pull_only || self.is_capped(&call.queue) {
            return None;
        }
        let allowed = queue.config.allowed_penalty(self.s.now_ms.saturating_sub(call.joined_at_ms));
        let mut best: Option<(u8, u64, &OperatorId)> = None;
        for (penalty, idle_since, id) in &self.idx.queues.get(&call.queue)?.available {
            if allowed.is_some_and(|a| *penalty > a) {
                break;
            }
            if best.is_some_and(|(p, i, _)| (p, i) != (*penalty, *idle_since)) {
                break; // past the group of equally good operators
            }
            let op = &self.s.operators[id];
            if !self.eligible(op, *penalty, call, false) {
                continue;
            }
            let local = op.site == Some(call.entry_site);
            if best.is_none() || local {
                best = Some((*penalty, *idle_since, id));
                if local {
                    break;
                }
            }
        }
        best.map(|(_, _, id)| id.clone())
    }

    /// First (caller, operator) pair in a queue, scanning callers in line order.
    fn first_pair_in(&self, queue: &QueueId) -> Option<(u64, OperatorId)> {
        let idx = self.idx.queues.get(queue)?;
        if idx.available.is_empty() || self.is_capped(queue) {
            return None;
        }
        for (_, no) in idx.order.iter() {
            if let Some(op) = self.best_operator_for(no) {
                return Some((no, op));
            }
        }
        None
    }

    // ----------------------------------------------------------------- bookkeeping

    fn call_no(&self, id: &CallId) -> Result<u64, CoreError> {
        self.idx.call_numbers.get(id).copied().ok_or_else(|| CoreError::UnknownCall(id.clone()))
    }

    fn log(
        &mut self,
        call: Option<CallId>,
        queue: Option<QueueId>,
        gate: Option<GateId>,
        agent: Option<OperatorId>,
        verb: QueueLogVerb,
        data: Vec<String>,
    ) {
        self.scratch.out.push(Effect::QueueLog(QueueLogEntry {
            at_ms: self.s.now_ms,
            call,
            queue,
            gate,
            agent,
            verb,
            data,
        }));
    }

    /// A queue_log line about a call still in the state (its queue and gate).
    fn log_call(&mut self, no: u64, agent: Option<OperatorId>, verb: QueueLogVerb, data: Vec<String>) {
        let call = &self.s.calls[&no];
        let (call_id, queue, gate) = (call.id.clone(), call.queue.clone(), call.gate.clone());
        self.log(Some(call_id), Some(queue), gate, agent, verb, data);
    }

    fn bump_stats(&mut self, queue: &QueueId, gate: Option<&GateId>, f: impl Fn(&mut Stats)) {
        if let Some(q) = self.s.queues.get_mut(queue) {
            f(&mut q.stats);
        }
        if let Some(g) = gate.and_then(|g| self.s.gates.get_mut(g)) {
            f(&mut g.stats);
        }
    }

    /// Ends a call (already out of the indexes): dialplan exit if the caller is on the line,
    /// the history record, and the final projection.
    fn remember_ended(&mut self, id: &CallId) {
        if self.s.ended_calls.len() == ENDED_CALLS_REMEMBERED_MAX {
            if let Some(oldest) = self.s.ended_calls.pop_front() {
                self.idx.ended_calls.remove(&oldest);
            }
        }
        self.s.ended_calls.push_back(id.clone());
        self.idx.ended_calls.insert(id.clone());
        debug_assert!(self.s.ended_calls.len() <= ENDED_CALLS_REMEMBERED_MAX);
    }

    fn end_call(&mut self, call: Call, outcome: Outcome, handle_ms: Option<u64>) {
        self.remember_ended(&call.id);
        let now = self.s.now_ms;
        let returns_to_dialplan = matches!(
            outcome,
            Outcome::TimedOut | Outcome::Full | Outcome::Closed | Outcome::Empty | Outcome::ExitWithKey { .. }
        );
        if let (true, Some(channel)) = (returns_to_dialplan, &call.channel) {
            self.scratch.out.push(Effect::Exit {
                call: call.id.clone(),
                site: call.entry_site,
                channel: channel.clone(),
                outcome: outcome.clone(),
            });
        }
        let (operator, operator_site, wait_ms) = match &call.state {
            CallState::Connected { operator, operator_site, wait_ms, .. } => {
                (Some(operator.clone()), Some(*operator_site), *wait_ms)
            }
            _ => (None, None, now.saturating_sub(call.joined_at_ms)),
        };
        self.scratch.out.push(Effect::CallChanged(CallView {
            call: call.id.clone(),
            status: CallStatus::Ended,
            queue: call.queue.clone(),
            gate: call.gate.clone(),
            priority: call.key.priority,
            order_seq: call.key.seq,
            entry_site: call.entry_site,
            operator: operator.clone(),
            fence: None,
            since_ms: now,
            not_before_ms: None,
        }));
        self.scratch.out.push(Effect::CallEnded(CallRecord {
            call: call.id,
            queue: call.queue,
            gate: call.gate,
            priority: call.key.priority,
            entry_site: call.entry_site,
            caller_number: call.caller_number,
            caller_name: call.caller_name,
            outcome,
            entered_at_ms: call.entered_at_ms,
            ended_at_ms: now,
            wait_ms,
            handle_ms,
            operator,
            operator_site,
            callback_number: call.callback.as_ref().map(|c| c.number.clone()),
            callback_attempts: call.callback.as_ref().map_or(0, |c| c.attempts_made),
        }));
    }

    fn insert_call(&mut self, call: Call) {
        let no = call.no;
        self.idx.call_numbers.insert(call.id.clone(), no);
        self.s.calls.insert(no, call);
        self.index_call(no, true);
        self.emit_call_view(no);
    }

    fn take_call(&mut self, no: u64) -> Call {
        self.s.outages.released_calls.remove(&no);
        self.index_call(no, false);
        let call = self.s.calls.remove(&no).expect("call exists");
        self.idx.call_numbers.remove(&call.id);
        call
    }

    /// Changes a call and keeps every index true (remove, change, re-add).
    fn with_call(&mut self, no: u64, f: impl FnOnce(&mut Call)) {
        self.index_call(no, false);
        f(self.s.calls.get_mut(&no).expect("call exists"));
        self.index_call(no, true);
        self.emit_call_view(no);
    }

    fn with_operator(&mut self, id: &OperatorId, f: impl FnOnce(&mut Operator)) {
        // What the projection shows, without cloning the membership list twice.
        let visible = |op: &Operator| (op.status.clone(), op.site, op.channel.clone(), op.since_ms, op.wake_ms);
        let before = self.s.operators.get(id).map(visible);
        let was_offerable = self.is_offerable_here(id);
        self.index_operator(id, false);
        f(self.s.operators.get_mut(id).expect("operator exists"));
        self.index_operator(id, true);
        if !was_offerable && self.is_offerable_here(id) {
            // E.g. a re-login moved it from an unreachable site to a reachable one.
            self.scratch.dirty_operators.insert(id.clone());
        }
        if before != self.s.operators.get(id).map(visible) {
            if let Some(view) = self.operator_view(id) {
                self.scratch.out.push(Effect::OperatorChanged(view));
            }
        }
    }

    fn index_call(&mut self, no: u64, add: bool) {
        let call = &self.s.calls[&no];
        let Some(idx) = self.idx.queues.get_mut(&call.queue) else { return };
        match &call.state {
            CallState::Waiting => {
                if add {
                    idx.order.insert(call.key, no);
                } else {
                    idx.order.remove(call.key);
                }
                if call.callback.is_none() {
                    let entry = (call.joined_at_ms, no);
                    if add {
                        idx.live_by_joined.insert(entry);
                    } else {
                        idx.live_by_joined.remove(&entry);
                    }
                    if let Some(g) = &call.gate {
                        let set = self.idx.gate_waiting.entry(g.clone()).or_default();
                        if add {
                            set.insert(entry);
                        } else {
                            set.remove(&entry);
                            if set.is_empty() {
                                self.idx.gate_waiting.remove(g);
                            }
                        }
                    }
                } else if add {
                    idx.callbacks_waiting += 1;
                } else {
                    idx.callbacks_waiting -= 1;
                }
                if add {
                    self.idx.waiting_total += 1;
                } else {
                    self.idx.waiting_total -= 1;
                }
            }
            CallState::Offered { .. } | CallState::Connected { .. } => {
                if add {
                    idx.active += 1;
                } else {
                    idx.active -= 1;
                    if self.s.queues.get(&call.queue).is_some_and(|q| q.config.max_busy_operators.is_some()) {
                        self.scratch.dirty_queues.insert(call.queue.clone());
                    }
                }
            }
        }
        if add {
            let timers = [
                (call.max_wait_due_ms, Timer::MaxWait(no)),
                (call.next_widen_ms, Timer::Widen(no)),
                (call.next_announce_ms, Timer::Announce(no)),
                (call.next_periodic_ms, Timer::Periodic(no)),
                (call.callback.as_ref().and_then(|c| c.ready_at_ms), Timer::CallbackReady(no)),
                (
                    match &call.state {
                        CallState::Offered { deadline_ms, .. } => Some(*deadline_ms),
                        _ => None,
                    },
                    Timer::OfferDeadline(no),
                ),
            ];
            for (at, timer) in timers {
                if let Some(at) = at {
                    if self.timer_due(timer) == Some(at) {
                        self.idx.call_timers.insert((at, timer));
                    }
                }
            }
        }
        // Timer entries are not removed here: a stale entry is skipped when it comes due.
    }

    /// Offerable, and not at an unreachable site: what the `available` index holds.
    fn is_offerable_here(&self, id: &OperatorId) -> bool {
        self.s
            .operators
            .get(id)
            .is_some_and(|op| op.is_offerable() && !sites::site_in(&self.s.outages.unreachable_sites, op.site))
    }

    fn index_operator(&mut self, id: &OperatorId, add: bool) {
        let Some(op) = self.s.operators.get(id) else { return };
        // An operator at an unreachable site is not offered from here (see sites.rs).
        let offerable = self.is_offerable_here(id);
        for (queue, penalty) in &op.config.memberships {
            let Some(idx) = self.idx.queues.get_mut(queue) else { continue };
            let delta = |count: &mut u32, on: bool| {
                if on {
                    if add {
                        *count += 1;
                    } else {
                        *count -= 1;
                    }
                }
            };
            delta(&mut idx.logged_in, op.is_logged_in());
            delta(&mut idx.ready, op.is_ready());
            if offerable {
                let entry = (*penalty, op.idle_since_ms, id.clone());
                if add {
                    idx.available.insert(entry);
                } else {
                    idx.available.remove(&entry);
                }
            }
        }
        if let (true, Some(at)) = (add, op.wake_ms) {
            self.idx.operator_wakes.insert((at, id.clone()));
        }
    }

    fn emit_call_view(&mut self, no: u64) {
        if let Some(view) = self.call_view_of(no) {
            self.scratch.out.push(Effect::CallChanged(view));
        }
    }

    fn rebuild_indexes(&mut self) {
        self.idx = Indexes::default();
        for id in self.s.queues.keys() {
            self.idx.queues.insert(id.clone(), QueueIndex::default());
        }
        let nos: Vec<u64> = self.s.calls.keys().copied().collect();
        for no in nos {
            self.idx.call_numbers.insert(self.s.calls[&no].id.clone(), no);
            self.index_call(no, true);
        }
        let ids: Vec<OperatorId> = self.s.operators.keys().cloned().collect();
        for id in ids {
            self.index_operator(&id, true);
        }
        self.idx.ended_calls = self.s.ended_calls.iter().cloned().collect();
        // Rebuilding is not a release of capacity.
        self.scratch.dirty_queues.clear();
    }

    // ----------------------------------------------------------------- reads

    /// Encodes the whole state (a Raft snapshot).
    pub fn snapshot_bytes(&self) -> Vec<u8> {
        codec::encode_versioned(&self.s).expect("routing state always encodes")
    }

    /// Restores a state written by [`Routing::snapshot_bytes`]; indexes are rebuilt.
    pub fn restore(bytes: &[u8]) -> Result<Routing, codec::CodecError> {
        let s: State = match codec::decode_versioned(bytes, codec::DECODE_LIMIT_BYTES) {
            Ok(s) => s,
            // Written before the unreachable-site set was added at the end of the layout.
            Err(e) => codec::decode_versioned::<sites::StateWithoutUnreachable>(bytes, codec::DECODE_LIMIT_BYTES)
                .map(State::from)
                .map_err(|_| e)?,
        };
        let mut routing = Routing { s, idx: Indexes::default(), scratch: Scratch::default() };
        routing.rebuild_indexes();
        Ok(routing)
    }

    pub fn now_ms(&self) -> u64 {
        self.s.now_ms
    }

    pub fn last_applied_index(&self) -> u64 {
        self.s.last_applied_index
    }

    pub fn is_site_lost(&self, site: SiteId) -> bool {
        self.s.lost_sites.contains(&site)
    }

    pub fn queue_config(&self, id: &QueueId) -> Option<&QueueConfig> {
        self.s.queues.get(id).map(|q| &q.config)
    }

    pub fn queue_configs(&self) -> impl Iterator<Item = &QueueConfig> {
        self.s.queues.values().map(|q| &q.config)
    }

    pub fn gate_configs(&self) -> impl Iterator<Item = &GateConfig> {
        self.s.gates.values().map(|g| &g.config)
    }

    pub fn operator_configs(&self) -> impl Iterator<Item = &OperatorConfig> {
        self.s.operators.values().map(|o| &o.config)
    }

    pub fn operator_config(&self, id: &OperatorId) -> Option<&OperatorConfig> {
        self.s.operators.get(id).map(|o| &o.config)
    }

    pub fn schedule_configs(&self) -> impl Iterator<Item = &ScheduleConfig> {
        self.s.schedules.values()
    }

    /// 1-based position among the callers this one waits behind in its queue.
    pub fn position(&self, call: &CallId) -> Option<u32> {
        self.position_of_no(*self.idx.call_numbers.get(call)?)
    }

    fn position_of_no(&self, no: u64) -> Option<u32> {
        let call = self.s.calls.get(&no)?;
        if !call.is_waiting() {
            return None;
        }
        self.idx.queues.get(&call.queue)?.order.rank(call.key).map(|r| r as u32)
    }

    /// ceil(position / staffed operators) × rolling average handle time (rounded up).
    pub fn eta_ms(&self, queue: &QueueId, position: u32) -> Option<u64> {
        let q = self.s.queues.get(queue)?;
        let staffed = u64::from(self.idx.queues.get(queue)?.ready);
        if staffed == 0 {
            return None;
        }
        let average = q.handle_times.average_ms().unwrap_or(q.config.default_handle_ms);
        Some(u64::from(position).div_ceil(staffed).saturating_mul(average))
    }

    /// Position and ETA of a waiting call (widget, announcements).
    pub fn call_position(&self, call: &CallId) -> Option<(u32, Option<u64>)> {
        let no = *self.idx.call_numbers.get(call)?;
        let position = self.position_of_no(no)?;
        Some((position, self.eta_ms(&self.s.calls[&no].queue, position)))
    }

    /// The offer this call is under right now, as its `Offer` effect carried it (a site
    /// that restarted mid-offer picks it up from here).
    pub fn current_offer(&self, call: &CallId) -> Option<Offer> {
        let no = *self.idx.call_numbers.get(call)?;
        match &self.s.calls[&no].state {
            CallState::Offered { operator, fence, .. } => Some(self.offer_for(no, operator, *fence)),
            _ => None,
        }
    }

    pub fn call_view(&self, call: &CallId) -> Option<CallView> {
        self.call_view_of(*self.idx.call_numbers.get(call)?)
    }

    fn call_view_of(&self, no: u64) -> Option<CallView> {
        let call = self.s.calls.get(&no)?;
        let cb = call.callback.is_some();
        let (status, operator, fence, since_ms) = match &call.state {
            CallState::Waiting => {
                (if cb { CallStatus::CallbackWaiting } else { CallStatus::Waiting }, None, None, call.joined_at_ms)
            }
            CallState::Offered { operator, fence, since_ms, .. } => (
                if cb { CallStatus::CallbackOffered } else { CallStatus::Offered },
                Some(operator.clone()),
                Some(*fence),
                *since_ms,
            ),
            CallState::Connected { operator, fence, since_ms, .. } => (
                if cb { CallStatus::CallbackConnected } else { CallStatus::Connected },
                Some(operator.clone()),
                Some(*fence),
                *since_ms,
            ),
        };
        Some(CallView {
            call: call.id.clone(),
            status,
            queue: call.queue.clone(),
            gate: call.gate.clone(),
            priority: call.key.priority,
            order_seq: call.key.seq,
            entry_site: call.entry_site,
            operator,
            fence,
            since_ms,
            not_before_ms: call.callback.as_ref().and_then(|c| c.ready_at_ms),
        })
    }

    /// Every call currently known (waiting, offered, connected), by arrival.
    pub fn calls(&self) -> impl Iterator<Item = CallView> + '_ {
        self.s.calls.keys().filter_map(|no| self.call_view_of(*no))
    }

    pub fn call_count(&self) -> usize {
        self.s.calls.len()
    }

    pub fn waiting_count(&self) -> usize {
        self.idx.waiting_total
    }

    /// The caller channel of a call, if the caller is on the line.
    pub fn call_channel(&self, call: &CallId) -> Option<&str> {
        self.s.calls.get(self.idx.call_numbers.get(call)?)?.channel.as_deref()
    }

    pub fn operator_view(&self, id: &OperatorId) -> Option<OperatorView> {
        let op = self.s.operators.get(id)?;
        Some(OperatorView {
            operator: id.clone(),
            status: op.status.clone(),
            site: op.site,
            channel: op.channel.clone(),
            since_ms: op.since_ms,
            rest_until_ms: op.wake_ms.filter(|_| matches!(op.status, OperatorStatus::Available)),
            queues: op.config.memberships.keys().cloned().collect(),
        })
    }

    pub fn operators(&self) -> impl Iterator<Item = OperatorView> + '_ {
        self.s.operators.keys().filter_map(|id| self.operator_view(id))
    }

    pub fn queue_summary(&self, id: &QueueId) -> Option<QueueSummary> {
        let q = self.s.queues.get(id)?;
        let idx = self.idx.queues.get(id)?;
        let now = self.s.now_ms;
        let busy = self
            .s
            .operators
            .values()
            .filter(|op| op.config.memberships.contains_key(id))
            .filter(|op| matches!(op.status, OperatorStatus::Offered { .. } | OperatorStatus::Busy { .. }))
            .count() as u32;
        Some(QueueSummary {
            queue: id.clone(),
            waiting: idx.order.len() as u32 - idx.callbacks_waiting,
            callbacks_waiting: idx.callbacks_waiting,
            longest_wait_ms: idx.live_by_joined.first().map(|(joined, _)| now.saturating_sub(*joined)),
            eta_ms: self.eta_ms(id, idx.order.len() as u32 + 1),
            logged_in: idx.logged_in,
            staffed: idx.ready,
            available: idx.available.len() as u32,
            busy,
            stats: q.stats.clone(),
            alarm_longest_wait: q.alarm_longest_wait_raised,
            alarm_depth: q.alarm_depth_raised,
        })
    }

    pub fn gate_summary(&self, id: &GateId) -> Option<GateSummary> {
        let g = self.s.gates.get(id)?;
        let waiting = self.idx.gate_waiting.get(id);
        Some(GateSummary {
            gate: id.clone(),
            queue: g.config.queue.clone(),
            waiting: waiting.map_or(0, |w| w.len() as u32),
            longest_wait_ms: waiting.and_then(|w| w.first()).map(|(joined, _)| self.s.now_ms.saturating_sub(*joined)),
            stats: g.stats.clone(),
        })
    }

    /// Waiting calls in global order across all queues: (queue weight, priority, arrival).
    pub fn waiting_calls(&self) -> Vec<WaitingCall> {
        let mut all: Vec<((Reverse<u8>, OrderKey), WaitingCall)> = Vec::new();
        for (queue_id, idx) in &self.idx.queues {
            let weight = Reverse(self.s.queues[queue_id].config.weight);
            for (position, (key, no)) in idx.order.iter().enumerate() {
                let c = &self.s.calls[&no];
                all.push((
                    (weight, key),
                    WaitingCall {
                        call: c.id.clone(),
                        queue: queue_id.clone(),
                        gate: c.gate.clone(),
                        priority: key.priority,
                        order_seq: key.seq,
                        position: position as u32 + 1,
                        entry_site: c.entry_site,
                        wait_ms: self.s.now_ms.saturating_sub(c.joined_at_ms),
                        callback: c.callback.is_some(),
                        caller_number: c.caller_number.clone(),
                    },
                ));
            }
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all.into_iter().map(|(_, w)| w).collect()
    }

    /// Cross-checks the state against itself: every offer and connection is held by both
    /// sides with the same fence, no operator or caller is in two, indexes match a rebuild.
    /// Used by tests and the simulator after every step.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut operators_in_offers: BTreeMap<&OperatorId, &CallId> = BTreeMap::new();
        for call in self.s.calls.values() {
            if self.s.outages.released_calls.contains_key(&call.no) {
                // Its operator was released by its own site; see sites.rs.
                if !matches!(call.state, CallState::Connected { operator_site, .. } if operator_site != call.entry_site)
                {
                    return Err(format!("released call {} is not a connected cross-site call", call.id));
                }
                continue;
            }
            let (operator, fence, busy) = match &call.state {
                CallState::Waiting => continue,
                CallState::Offered { operator, fence, .. } => (operator, *fence, false),
                CallState::Connected { operator, fence, .. } => (operator, *fence, true),
            };
            if let Some(other) = operators_in_offers.insert(operator, &call.id) {
                return Err(format!("operator {operator} holds calls {other} and {}", call.id));
            }
            let op =
                self.s.operators.get(operator).ok_or_else(|| format!("call {} held by unknown operator", call.id))?;
            let expected = if busy {
                OperatorStatus::Busy { call: call.id.clone(), fence }
            } else {
                OperatorStatus::Offered { call: call.id.clone(), fence }
            };
            if op.status != expected {
                return Err(format!("call {} is {:?} but operator {operator} is {:?}", call.id, call.state, op.status));
            }
        }
        for op in self.s.operators.values() {
            if let OperatorStatus::Offered { call, .. } | OperatorStatus::Busy { call, .. } = &op.status {
                if operators_in_offers.get(&op.config.id) != Some(&call) {
                    return Err(format!("operator {} claims call {call} which does not claim it", op.config.id));
                }
            }
        }
        // Rebuild from a copy without the id memories (dedup windows, ended calls): no index
        // is derived from them but the ended-call set, and copying them made every check cost
        // as much as tens of thousands of remembered ids.
        let mut rebuilt =
            Routing { s: self.s.without_id_memories(), idx: Indexes::default(), scratch: Scratch::default() };
        rebuilt.rebuild_indexes();
        if self.idx.ended_calls.len() != self.s.ended_calls.len() {
            return Err("the ended-call set differs from the ended-call list".into());
        }
        for (id, idx) in &self.idx.queues {
            let r = &rebuilt.idx.queues[id];
            let ours: Vec<_> = idx.order.iter().collect();
            let theirs: Vec<_> = r.order.iter().collect();
            if ours != theirs
                || idx.available != r.available
                || idx.live_by_joined != r.live_by_joined
                || (idx.logged_in, idx.ready, idx.active, idx.callbacks_waiting)
                    != (r.logged_in, r.ready, r.active, r.callbacks_waiting)
            {
                return Err(format!("index of queue {id} differs from a rebuild"));
            }
        }
        if self.idx.waiting_total != rebuilt.idx.waiting_total || self.idx.call_numbers != rebuilt.idx.call_numbers {
            return Err("call indexes differ from a rebuild".into());
        }
        Ok(())
    }
}
