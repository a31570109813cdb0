//! Caller commands: enqueue, hang up, leave with a key, ask for a callback, and a
//! supervisor's reassign and priority change.

use super::records::secs;
use super::refusals::{invalid, validate_callback_number, validate_channel_field};
use super::{CommandResult, Response, Routing, TOTAL_WAITING_MAX_CALLS};
use crate::command::{Enqueue, HungUpBy};
use crate::config::validate_text;
use crate::config::GateConfig;
use crate::effect::{Outcome, QueueLogVerb};
use crate::ids::{CallId, GateId, QueueId, Skill};
use crate::model::{Call, CallState, CallbackPromise};
use crate::order::{OrderKey, ORDER_SEQ_MAX};
use crate::CoreError;
use std::collections::BTreeMap;

impl Routing {
    pub(super) fn enqueue(&mut self, index: u64, e: &Enqueue) -> CommandResult {
        check_entry_fields(e, &self.state.callback_policy)?;
        if self.state.lost_sites.contains(&e.site) {
            return Err(CoreError::SiteDown(e.site));
        }
        if self.indexes.call_numbers.contains_key(&e.call) || self.indexes.ended_calls.contains(&e.call) {
            return Err(CoreError::DuplicateCall(e.call.clone()));
        }
        let (priority, extra_skills) = self.entry_priority_and_skills(e)?;
        if index > ORDER_SEQ_MAX {
            return Err(CoreError::LogIndexTooLarge(index));
        }
        if self.indexes.waiting_total >= TOTAL_WAITING_MAX_CALLS {
            return Err(CoreError::TooManyCalls { limit: TOTAL_WAITING_MAX_CALLS });
        }
        let call = self.new_call(index, e, priority, extra_skills);
        let (queue, position, exit) = self.admit(call, e.queue.clone());
        // Where decided: a caller either joined a line or left with an outcome.
        debug_assert_eq!(position.is_some(), exit.is_none(), "call {} both joined and left", e.call);
        let eta_ms = position.and_then(|p| self.eta_ms(&queue, p));
        Ok(Response::Enqueued { queue, position, eta_ms, exit })
    }

    /// The call's priority (the entry's, else its gate's, else its queue's) and the skills it
    /// needs beyond its queue's (the entry's, raised to its gate's).
    fn entry_priority_and_skills(&self, e: &Enqueue) -> Result<(u8, BTreeMap<Skill, u8>), CoreError> {
        let (priority, gate) = self.gate_priority(&e.queue, e.gate.as_ref())?;
        let mut extra_skills = e.skills.clone();
        for (skill, level) in gate.map(|g| &g.required_skills).into_iter().flatten() {
            let l = extra_skills.entry(skill.clone()).or_insert(*level);
            *l = (*l).max(*level);
        }
        Ok((e.priority.unwrap_or(priority), extra_skills))
    }

    /// A caller entering `queue` through `gate`: the priority it gets (its gate's, else its
    /// queue's) and the gate's config; refused for an unknown queue or gate, or a gate of
    /// another queue.
    pub(super) fn gate_priority(
        &self,
        queue: &QueueId,
        gate: Option<&GateId>,
    ) -> Result<(u8, Option<&GateConfig>), CoreError> {
        let q = self.state.queues.get(queue).ok_or_else(|| CoreError::UnknownQueue(queue.clone()))?;
        let Some(g) = gate else { return Ok((q.config.default_priority, None)) };
        let gate = &self.state.gates.get(g).ok_or_else(|| CoreError::UnknownGate(g.clone()))?.config;
        if gate.queue != *queue {
            return Err(CoreError::GateNotInQueue {
                gate: g.clone(),
                gate_queue: gate.queue.clone(),
                queue: queue.clone(),
            });
        }
        Ok((gate.priority.unwrap_or(q.config.default_priority), Some(gate)))
    }

    /// A new call, not yet in any line; its number and order are the entry's log index.
    fn new_call(&self, index: u64, e: &Enqueue, priority: u8, extra_skills: BTreeMap<Skill, u8>) -> Call {
        let now = self.state.now_ms;
        let callback_max_attempts = self.state.queues[&e.queue].config.callback_max_attempts;
        Call {
            call_number: index,
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
                attempts_left: callback_max_attempts,
                attempts_made: 0,
                ready_at_ms: None,
            }),
            max_wait_due_ms: None,
            next_widen_ms: None,
            next_announce_ms: None,
            next_periodic_ms: None,
            periodic_index: 0,
            callback_offered: false,
        }
    }

    pub(super) fn abandoned(&mut self, id: &CallId) -> CommandResult {
        let call_number = self.call_number_of(id)?;
        let call = &self.state.calls[&call_number];
        if call.callback.is_some() && !matches!(call.state, CallState::Waiting) {
            // The first leg of a caller who took a callback hangs up after the confirmation,
            // while the callback is already being placed or is connected: the promise no
            // longer has that leg, and its callback goes on.
            return Err(invalid("the callback is being served; its first leg has left", id.to_string()));
        }
        match &call.state {
            CallState::Connected { .. } => {
                // The site saw the caller hang up after the bridge: that is a completion.
                self.finish_connected(call_number, Outcome::Completed { by: HungUpBy::Caller });
                Ok(Response::Done)
            }
            CallState::Offered { operator, since_ms, .. } => {
                let (operator, since_ms) = (operator.clone(), *since_ms);
                let ring_ms = self.state.now_ms.saturating_sub(since_ms);
                let (queue, gate) = (call.queue.clone(), call.gate.clone());
                let data = vec![ring_ms.to_string()];
                self.log(Some(id.clone()), Some(queue), gate, Some(operator.clone()), QueueLogVerb::RingCanceled, data);
                self.cancel_offer(call_number);
                self.release_after_offer(&operator, false);
                self.leave_waiting(call_number, Outcome::Abandoned, QueueLogVerb::Abandon, None);
                Ok(Response::Done)
            }
            CallState::Waiting => {
                self.leave_waiting(call_number, Outcome::Abandoned, QueueLogVerb::Abandon, None);
                Ok(Response::Done)
            }
        }
    }

    pub(super) fn exit_with_key(&mut self, id: &CallId, key: char) -> CommandResult {
        if !"0123456789*#".contains(key) {
            return Err(CoreError::InvalidField {
                field: "key".into(),
                reason: format!("{key:?} is not a DTMF digit"),
            });
        }
        let call_number = self.call_number_of(id)?;
        if !self.state.calls[&call_number].is_live_waiting() {
            return Err(invalid("call is not waiting on the line", id.to_string()));
        }
        self.leave_waiting(call_number, Outcome::ExitWithKey { key }, QueueLogVerb::ExitWithKey, Some(key.to_string()));
        Ok(Response::Done)
    }

    /// What `request_callback` refuses, decided without changing anything; else the call.
    pub(super) fn check_request_callback(&self, id: &CallId, number: &str) -> Result<u64, CoreError> {
        validate_callback_number(number)?;
        let call_number = self.call_number_of(id)?;
        if !self.state.calls[&call_number].is_live_waiting() {
            return Err(invalid("call is not waiting on the line", id.to_string()));
        }
        Ok(call_number)
    }

    pub(super) fn request_callback(&mut self, id: &CallId, number: &str) -> CommandResult {
        let call_number = self.check_request_callback(id, number)?;
        if let Err(refusal) = self.state.callback_policy.check(number) {
            // On record, and the caller waits on: the site says the number cannot be used.
            let data = vec![number.to_string(), refusal.to_string()];
            self.log_call(call_number, None, QueueLogVerb::CallbackDenied, data);
            return Ok(Response::CallbackDenied { reason: refusal.to_string() });
        }
        let position = self.position_of_no(call_number).unwrap_or(0);
        let attempts = self.state.queues[&self.state.calls[&call_number].queue].config.callback_max_attempts;
        let now = self.state.now_ms;
        self.with_call(call_number, |c| {
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
        self.scratch.dirty_calls.insert(call_number);
        let c = &self.state.calls[&call_number];
        let wait_ms = now.saturating_sub(c.joined_at_ms);
        let (queue, gate) = (c.queue.clone(), c.gate.clone());
        let data = vec![number.to_string(), position.to_string(), c.orig_position.to_string(), secs(wait_ms)];
        self.log(Some(id.clone()), Some(queue.clone()), gate.clone(), None, QueueLogVerb::CallbackRequest, data);
        self.bump_stats(&queue, gate.as_ref(), |s| s.callbacks_requested += 1);
        Ok(Response::CallbackAccepted { position })
    }

    /// What `reassign` refuses, decided without changing anything; else the call.
    pub(super) fn check_reassign(&self, id: &CallId, to: &QueueId) -> Result<u64, CoreError> {
        let call_number = self.call_number_of(id)?;
        if !self.state.queues.contains_key(to) {
            return Err(CoreError::UnknownQueue(to.clone()));
        }
        let call = &self.state.calls[&call_number];
        if !call.is_waiting() {
            return Err(invalid("only a waiting call can be reassigned", id.to_string()));
        }
        if &call.queue == to {
            return Err(invalid("call is already in that queue", to.to_string()));
        }
        Ok(call_number)
    }

    pub(super) fn reassign(&mut self, index: u64, id: &CallId, to: &QueueId, keep_age: bool) -> CommandResult {
        let call_number = self.check_reassign(id, to)?;
        let position = self.position_of_no(call_number).unwrap_or(0);
        let mut call = self.take_call(call_number);
        let wait_ms = self.state.now_ms.saturating_sub(call.joined_at_ms);
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
        call.joined_at_ms = self.state.now_ms;
        // A supervisor's move bypasses the entry checks (closed, full, empty) on purpose.
        self.join(call);
        Ok(Response::Enqueued {
            queue: to.clone(),
            position: self.position_of_no(call_number),
            eta_ms: None,
            exit: None,
        })
    }

    /// What `change_priority` refuses, decided without changing anything; else the call.
    pub(super) fn check_change_priority(&self, id: &CallId) -> Result<u64, CoreError> {
        let call_number = self.call_number_of(id)?;
        if !self.state.calls[&call_number].is_waiting() {
            return Err(invalid("only a waiting call's priority can change", id.to_string()));
        }
        Ok(call_number)
    }

    pub(super) fn change_priority(&mut self, id: &CallId, priority: u8) -> CommandResult {
        let call_number = self.check_change_priority(id)?;
        self.with_call(call_number, |c| c.key.priority = priority);
        self.scratch.dirty_calls.insert(call_number);
        Ok(Response::Done)
    }
}

/// The entry's own fields, before anything is looked up.
fn check_entry_fields(e: &Enqueue, policy: &crate::callback_policy::CallbackPolicy) -> Result<(), CoreError> {
    e.call.validate().map_err(|err| CoreError::InvalidField { field: "call".into(), reason: err.to_string() })?;
    if let Some(ch) = &e.channel {
        validate_channel_field("channel", ch)?;
    }
    validate_text("caller_number", &e.caller_number)?;
    validate_text("caller_name", &e.caller_name)?;
    if let Some(n) = &e.callback_number {
        validate_callback_number(n)?;
        policy.check(n).map_err(|refusal| CoreError::InvalidField {
            field: "callback_number".into(),
            reason: refusal.to_string(),
        })?;
    }
    if e.channel.is_none() && e.callback_number.is_none() {
        return Err(CoreError::InvalidField {
            field: "channel".into(),
            reason: "an entry needs a caller channel or a callback number".into(),
        });
    }
    for (skill, level) in &e.skills {
        skill.validate().map_err(|err| CoreError::InvalidField { field: "skills".into(), reason: err.to_string() })?;
        if *level > crate::config::SKILL_LEVEL_MAX {
            return Err(CoreError::InvalidField { field: "skills".into(), reason: format!("level {level} above 100") });
        }
    }
    Ok(())
}
