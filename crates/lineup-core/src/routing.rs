//! The state machine: `Routing::apply(apply_index, command) -> effects`.
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

use crate::command::{Command, CommandBody, CommandId};
use crate::config::validate_text;
use crate::effect::{Effect, Outcome};
use crate::ids::{CallId, QueueId};
use crate::CoreError;
use serde::{Deserialize, Serialize};
use state::{Indexes, Scratch, State};

// Layers, each calling only those below it: `apply` and `dispatch` here; the command
// handlers (config, callers, operators, offers, sites, timers); matching (settle); the
// transitions (admission, call_transitions, operator_transitions); invariants and snapshot;
// the bookkeeping that keeps indexes true and writes records (index, records, refusals);
// reads of the state (reachability, reads, views); the data (state).
mod admission;
mod call_transitions;
mod callers;
mod config;
mod dedup_origins;
mod hang_up;
mod index;
mod ingress;
mod invariants;
mod island_calls;
mod island_fork;
mod island_merge;
mod island_records;
mod merge_plan;
mod missed;
mod monitor;
mod offers;
mod operator_transitions;
mod operators;
mod pin_lockout;
mod reachability;
mod reads;
mod records;
mod refusal_record;
mod refusals;
mod settle;
mod sites;
mod snapshot;
mod split_refusals;
mod state;
mod timers;
mod views;

pub use ingress::IngressTarget;
pub use reads::{GateSummary, QueueSummary, WaitingCall};
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
/// Wrong PINs for one operator within `PIN_LOCKOUT_WINDOW_MS`, at any site, that lock the
/// operator out of logging in by phone until the oldest of them leaves the window.
pub const PIN_LOCKOUT_FAILURES_MAX: usize = 5;
pub const PIN_LOCKOUT_WINDOW_MS: u64 = 15 * 60_000;
/// Bound on offers made by one settle pass (a safety net; one pass never needs more than
/// one per operator).
pub const SETTLE_OFFERS_MAX: usize = 100_000;

pub type CommandResult = Result<Response, CoreError>;

/// What a successful command returns to its proposer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// The callback policy denies the number: the caller keeps waiting on the line, and the
    /// attempt is on record (queue_log CALLBACKDENIED). Appended last: results are stored.
    CallbackDenied {
        reason: String,
    },
}

/// Result and effects of one applied command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub result: CommandResult,
    pub effects: Vec<Effect>,
}

/// The routing state machine.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    state: State,
    indexes: Indexes,
    scratch: Scratch,
}

impl Routing {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one committed command. `apply_index` is its [`crate::ApplyIndex`] (the order
    /// key of an Enqueue, the fence of any offer it makes); it only ever grows.
    pub fn apply(&mut self, apply_index: u64, cmd: &Command) -> Applied {
        if let Some(previous) = self.result_of(&cmd.id) {
            return Applied { result: previous, effects: Vec::new() };
        }
        if let Some(window) = self.state.dedup.get(&cmd.id.origin) {
            if window.results.len() >= DEDUP_WINDOW_PER_ORIGIN_COMMANDS
                && window.results.keys().next().is_some_and(|oldest| cmd.id.serial < *oldest)
            {
                let result = Err(CoreError::DuplicateTooOld { origin: cmd.id.origin, serial: cmd.id.serial });
                return Applied { result, effects: Vec::new() };
            }
        }
        debug_assert!(self.scratch.out.is_empty() && self.scratch.dirty_calls.is_empty());
        self.scratch.index = apply_index;
        let clock_before = (self.state.now_ms, self.state.last_tick_ms);
        match &cmd.body {
            CommandBody::Tick { now_ms } => {
                self.state.now_ms = self.state.now_ms.max(*now_ms);
                self.state.last_tick_ms = self.state.now_ms;
            }
            _ => {
                let ceiling = self.state.last_tick_ms.saturating_add(COMMAND_CLOCK_LEAD_MAX_MS);
                self.state.now_ms = self.state.now_ms.max(cmd.at_ms.min(ceiling));
            }
        }
        let result = self.dispatch(apply_index, &cmd.body);
        if let Ok(response) = &result {
            self.settle();
            self.keep_fork_records(apply_index);
            if let CommandBody::Audited { actor, body } = &cmd.body {
                let record = crate::audit::record(self.state.now_ms, actor, body, response);
                self.scratch.out.push(Effect::Audit(record));
            }
            // Quiescence: nothing is left dirty for the next apply.
            debug_assert!(self.scratch.dirty_calls.is_empty() && self.scratch.dirty_operators.is_empty());
            debug_assert!(self.scratch.dirty_queues.is_empty());
        } else {
            // Refused: nothing changed, not even the clock.
            (self.state.now_ms, self.state.last_tick_ms) = clock_before;
            self.scratch.out.clear();
            debug_assert!(self.scratch.dirty_calls.is_empty() && self.scratch.dirty_operators.is_empty());
            self.scratch.dirty_calls.clear();
            self.scratch.dirty_operators.clear();
            self.scratch.dirty_queues.clear();
        }
        self.state.last_applied_index = self.state.last_applied_index.max(apply_index);
        self.remember(cmd.id, apply_index, &result);
        Applied { result, effects: std::mem::take(&mut self.scratch.out) }
    }

    /// The first result of the command with this id, if it is still in the window.
    pub fn result_of(&self, id: &CommandId) -> Option<CommandResult> {
        self.state.dedup.get(&id.origin)?.results.get(&id.serial).map(refusal_record::result)
    }

    fn remember(&mut self, id: CommandId, index: u64, result: &CommandResult) {
        if !self.state.dedup.contains_key(&id.origin) && self.state.dedup.len() >= DEDUP_ORIGINS_MAX {
            // Forget the origin that has been quiet longest (deterministic: ties by origin id).
            if let Some(quietest) =
                self.state.dedup.iter().min_by_key(|(origin, w)| (w.last_index, **origin)).map(|(o, _)| *o)
            {
                self.state.dedup.remove(&quietest);
            }
        }
        let window = self.state.dedup.entry(id.origin).or_default();
        window.results.insert(id.serial, refusal_record::record(result));
        window.last_index = index;
        while window.results.len() > DEDUP_WINDOW_PER_ORIGIN_COMMANDS {
            window.results.pop_first();
        }
        debug_assert!(self.state.dedup.len() <= DEDUP_ORIGINS_MAX);
    }

    /// The refusal applying `body` to this state would answer, decided without changing
    /// anything, by the same checks the handlers run first: a client of the API is answered
    /// from a local read, and a command refused here is never proposed. Covers the commands
    /// a supervisor, an admin or the caller widget sends; the commands only sites propose
    /// (entries, offer reports, ticks, site health) answer `Ok` and are left to apply.
    /// Apply still decides: the state may change before the command is applied.
    pub fn check_command(&self, body: &CommandBody) -> Result<(), CoreError> {
        self.check_split(body)?;
        match body {
            CommandBody::PutQueue(cfg) => self.check_put_queue(cfg),
            CommandBody::DeleteQueue { queue } => self.check_delete_queue(queue),
            CommandBody::PutGate(cfg) => self.check_put_gate(cfg),
            CommandBody::DeleteGate { gate } => self.check_delete_gate(gate),
            CommandBody::PutOperator(cfg) => self.check_put_operator(cfg),
            CommandBody::DeleteOperator { operator } => self.check_delete_operator(operator),
            CommandBody::PutSchedule(cfg) => crate::schedule::validate(cfg),
            CommandBody::DeleteSchedule { schedule } => self.check_delete_schedule(schedule),
            CommandBody::ApplyConfig(set) => self.check_apply_config(set).map(|_| ()),
            CommandBody::OperatorLogout { operator } => self.check_logout(operator),
            CommandBody::OperatorState { operator, state } => self.check_operator_state(operator, state),
            CommandBody::Pull { operator, call } => self.check_pull(operator, call.as_ref()).map(|_| ()),
            CommandBody::Reassign { call, queue, .. } => self.check_reassign(call, queue).map(|_| ()),
            CommandBody::ChangePriority { call, .. } => self.check_change_priority(call).map(|_| ()),
            CommandBody::RequestCallback { call, number } => self.check_request_callback(call, number).map(|_| ()),
            CommandBody::PutCallbackPolicy(policy) => policy.validate(),
            CommandBody::PutAlarmPolicy(policy) => policy.validate(),
            CommandBody::PutWebhooks(list) => crate::webhook::resolve_webhooks(list, &self.state.webhooks).map(|_| ()),
            CommandBody::PutIngress(policy) => self.check_put_ingress(policy),
            CommandBody::MonitorCall { call, mode, endpoint, supervisor_site } => {
                self.check_monitor_call(call, *mode, endpoint, *supervisor_site).map(|_| ())
            }
            CommandBody::HangUpCall { call } => self.check_hang_up_call(call).map(|_| ()),
            CommandBody::Audited { actor, body } => {
                crate::audit::validate_audited(actor, body)?;
                self.check_command(body)
            }
            // Never refused (an admin's declaration of a lost site, already lost or not).
            CommandBody::SiteLost { .. } => Ok(()),
            // Named one by one, so a new command is placed on one side or the other.
            CommandBody::Enqueue(_)
            | CommandBody::OperatorLogin { .. }
            | CommandBody::Connected { .. }
            | CommandBody::OfferFailed { .. }
            | CommandBody::RingNoAnswer { .. }
            | CommandBody::Completed { .. }
            | CommandBody::Transferred { .. }
            | CommandBody::Abandoned { .. }
            | CommandBody::ExitWithKey { .. }
            | CommandBody::CallbackResult { .. }
            | CommandBody::Tick { .. }
            | CommandBody::SiteBack { .. }
            | CommandBody::SiteUnreachable { .. }
            | CommandBody::OperatorLegEnded { .. }
            | CommandBody::OperatorLoginFrom { .. }
            | CommandBody::PinRejected { .. }
            | CommandBody::MissedWhileDown(_)
            | CommandBody::IslandMergeBegin { .. }
            | CommandBody::IslandMergeRecords { .. }
            | CommandBody::IslandMergeEnd { .. }
            | CommandBody::IslandMergeCall { .. }
            | CommandBody::IslandMergeOperators { .. } => Ok(()),
        }
    }

    fn dispatch(&mut self, index: u64, body: &CommandBody) -> CommandResult {
        // Island mode: neither side of a split changes the other's parties.
        self.check_split(body)?;
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
            CommandBody::OperatorLogin { operator, site, channel } => self.login(operator, *site, channel, None),
            CommandBody::OperatorLoginFrom { operator, site, channel, login } => {
                self.login(operator, *site, channel, Some(login))
            }
            CommandBody::PinRejected { operator } => self.pin_rejected(operator),
            CommandBody::PutCallbackPolicy(policy) => self.put_callback_policy(policy),
            CommandBody::PutAlarmPolicy(policy) => self.put_alarm_policy(policy),
            CommandBody::PutWebhooks(list) => self.put_webhooks(list),
            CommandBody::PutIngress(policy) => self.put_ingress(policy),
            CommandBody::MonitorCall { call, mode, endpoint, supervisor_site } => {
                self.monitor_call(index, call, *mode, endpoint, *supervisor_site)
            }
            CommandBody::HangUpCall { call } => self.hang_up_call(call),
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
            CommandBody::MissedWhileDown(missed) => self.missed_while_down(missed),
            CommandBody::IslandMergeBegin { epoch, counts, digest } => self.island_merge_begin(epoch, counts, *digest),
            CommandBody::IslandMergeRecords { epoch, first_record, records } => {
                self.island_merge_records(epoch, *first_record, records)
            }
            CommandBody::IslandMergeEnd { epoch, stats, handle_samples, pin_failures } => {
                self.island_merge_end(index, epoch, stats, handle_samples, pin_failures)
            }
            CommandBody::IslandMergeCall { epoch, call } => self.island_merge_call(index, epoch, call),
            CommandBody::IslandMergeOperators { epoch, operators } => self.island_merge_operators(epoch, operators),
            // One level deep: `validate_audited` refuses a nested wrapper.
            CommandBody::Audited { actor, body } => {
                crate::audit::validate_audited(actor, body)?;
                self.dispatch(index, body)
            }
        }
    }
}
