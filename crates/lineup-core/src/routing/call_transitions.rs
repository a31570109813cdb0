//! Every change of a call after it joined: offered, offer over, connected, missed, a failed
//! callback attempt, finished, leaving the line.

use super::records::secs;
use super::{Routing, CALLBACK_DIAL_TIMEOUT_MS, OFFER_CONNECT_TIMEOUT_MS, OFFER_RING_GRACE_MS};
use crate::command::HungUpBy;
use crate::config::OperatorMode;
use crate::effect::{Effect, OperatorStatus, Outcome, QueueLogVerb};
use crate::ids::OperatorId;
use crate::model::CallState;

impl Routing {
    pub(super) fn make_offer(&mut self, call_number: u64, op_id: &OperatorId) {
        let fence = self.scratch.index;
        let now = self.state.now_ms;
        let call = &self.state.calls[&call_number];
        let op = &self.state.operators[op_id];
        // Invariant, where decided: only a waiting caller and an offerable operator pair up.
        debug_assert!(call.is_waiting(), "offer for a call that is not waiting");
        debug_assert!(op.is_offerable() || matches!(op.status, OperatorStatus::Available));
        if !call.is_waiting() || !matches!(op.status, OperatorStatus::Available) {
            return;
        }
        let ring_timeout_ms = self.state.queues[&call.queue].config.ring_timeout_ms;
        let deadline_ms = now.saturating_add(match (&call.callback, op.config.mode) {
            (Some(_), _) => CALLBACK_DIAL_TIMEOUT_MS,
            (None, OperatorMode::Ring) => ring_timeout_ms + OFFER_RING_GRACE_MS,
            (None, OperatorMode::Persistent) => OFFER_CONNECT_TIMEOUT_MS,
        });
        let operator_site = op.site.unwrap_or(op.config.site);
        let call_id = call.id.clone();
        let is_callback = call.callback.is_some();
        self.with_call(call_number, |c| {
            c.state = CallState::Offered { operator: op_id.clone(), fence, operator_site, since_ms: now, deadline_ms };
        });
        self.with_operator(op_id, |op| {
            op.status = OperatorStatus::Offered { call: call_id, fence };
            op.since_ms = now;
        });
        let offer = self.offer_for(call_number, op_id, fence);
        self.scratch.out.push(if is_callback { Effect::DialCallback(offer) } else { Effect::Offer(offer) });
    }

    /// Tells the sites holding the legs that the current offer is over.
    pub(super) fn cancel_offer(&mut self, call_number: u64) {
        let call = &self.state.calls[&call_number];
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
    pub(super) fn return_to_queue(&mut self, call_number: u64) {
        self.with_call(call_number, |c| c.state = CallState::Waiting);
        self.scratch.dirty_calls.insert(call_number);
    }

    pub(super) fn connect(&mut self, call_number: u64) {
        let now = self.state.now_ms;
        let call = &self.state.calls[&call_number];
        let CallState::Offered { operator, fence, operator_site, since_ms, .. } = call.state.clone() else {
            debug_assert!(false, "connecting call {} which is not offered", call.id);
            return;
        };
        // Where acted on: the site confirmed the offer both sides hold.
        debug_assert_eq!(
            self.state.operators[&operator].status,
            OperatorStatus::Offered { call: call.id.clone(), fence }
        );
        let wait_ms = now.saturating_sub(call.joined_at_ms);
        let ring_s = secs(now.saturating_sub(since_ms));
        let member = self.state.operators[&operator].channel.clone().unwrap_or_else(|| operator.to_string());
        let sl_ms = self.state.queues[&call.queue].config.service_level_ms;
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
        self.with_call(call_number, |c| {
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

    /// The operator did not take the offer (no answer, or the core's deadline passed).
    pub(super) fn missed(&mut self, call_number: u64, operator: &OperatorId) {
        let call = &self.state.calls[&call_number];
        if let CallState::Offered { since_ms, .. } = &call.state {
            let ring_ms = self.state.now_ms.saturating_sub(*since_ms);
            self.log_call(call_number, Some(operator.clone()), QueueLogVerb::RingNoAnswer, vec![ring_ms.to_string()]);
        }
        self.cancel_offer(call_number);
        self.return_to_queue(call_number);
        self.release_after_offer(operator, true);
    }

    pub(super) fn callback_attempt_failed(&mut self, call_number: u64, operator: &OperatorId) {
        self.cancel_offer(call_number);
        let now = self.state.now_ms;
        let retry_delay_ms = self.state.queues[&self.state.calls[&call_number].queue].config.callback_retry_delay_ms;
        self.with_call(call_number, |c| {
            if let Some(cb) = c.callback.as_mut() {
                cb.attempts_made = cb.attempts_made.saturating_add(1);
                cb.attempts_left = cb.attempts_left.saturating_sub(1);
                cb.ready_at_ms = Some(now.saturating_add(retry_delay_ms));
            }
            c.state = CallState::Waiting;
        });
        self.release_after_offer(operator, false);
        let call = &self.state.calls[&call_number];
        let left = call.callback.as_ref().map_or(0, |c| c.attempts_left);
        if left == 0 {
            // Out of attempts: the CALLBACKFAILED line with 0 left is the call's terminal line.
            self.leave_waiting(call_number, Outcome::CallbackFailed, QueueLogVerb::CallbackFailed, Some("0".into()));
        } else {
            self.log_call(call_number, Some(operator.clone()), QueueLogVerb::CallbackFailed, vec![left.to_string()]);
        }
    }

    /// A waiting (or just withdrawn) caller leaves the queue with `outcome`; logs
    /// `verb|[first]|pos|origpos|waittime` and ends the call.
    pub(super) fn leave_waiting(
        &mut self,
        call_number: u64,
        outcome: Outcome,
        verb: QueueLogVerb,
        first: Option<String>,
    ) {
        // A connected call ends through `finish_connected`, never by leaving the line.
        debug_assert!(!matches!(self.state.calls[&call_number].state, CallState::Connected { .. }));
        // An offered caller is at the front of the line.
        let position = self.position_of_no(call_number).unwrap_or(1);
        let call = self.take_call(call_number);
        let wait_ms = self.state.now_ms.saturating_sub(call.joined_at_ms);
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

    /// A connected call ended with `outcome`: its closing queue_log line, the handle time,
    /// and its operator freed (unless its own site released it already).
    pub(super) fn finish_connected(&mut self, call_number: u64, outcome: Outcome) {
        let call = &self.state.calls[&call_number];
        let CallState::Connected { operator, since_ms, wait_ms, .. } = call.state.clone() else {
            debug_assert!(false, "finishing call {} which is not connected", call.id);
            return;
        };
        let call_id = call.id.clone();
        let now = self.state.now_ms;
        // An operator released by its own site talked until then, however late the caller's
        // site reports.
        let released_at_ms = self.state.outages.released_calls.get(&call_number).copied();
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
        self.log(Some(call_id), Some(queue_id.clone()), gate, Some(operator.clone()), verb, data);
        let wrap_up_ms = self.state.queues[&queue_id].config.wrap_up_ms;
        let call = self.take_call(call_number);
        if let Some(q) = self.state.queues.get_mut(&queue_id) {
            q.handle_times.push(talk_ms + wrap_up_ms);
        }
        self.keep_fork_handle_sample(&queue_id, talk_ms + wrap_up_ms);
        self.bump_stats(&queue_id, call.gate.as_ref(), |s| {
            s.handled += 1;
            s.total_handle_ms += talk_ms;
        });
        self.end_call(call, outcome, Some(talk_ms));
        if released_at_ms.is_none() {
            self.after_call(&operator, &queue_id);
        }
    }
}
