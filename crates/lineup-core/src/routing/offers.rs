//! What sites report about an offer: connected, failed, not answered, a callback's result,
//! and the end of a connected call.

use super::records::secs;
use super::refusals::invalid;
use super::{CommandResult, Response, Routing, TRUNK_FAILURE_REST_MS};
use crate::command::{HungUpBy, OfferFailure};
use crate::effect::{Outcome, QueueLogVerb};
use crate::ids::{CallId, OperatorId};
use crate::model::CallState;
use crate::CoreError;

impl Routing {
    /// Checks that `fence` is the current offer of `call` to `operator`.
    pub(super) fn offered_call(&self, id: &CallId, operator: &OperatorId, fence: u64) -> Result<u64, CoreError> {
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

    pub(super) fn connected(&mut self, id: &CallId, operator: &OperatorId, fence: u64) -> CommandResult {
        let no = self.offered_call(id, operator, fence)?;
        self.connect(no);
        Ok(Response::Done)
    }

    pub(super) fn offer_failed(
        &mut self,
        id: &CallId,
        operator: &OperatorId,
        fence: u64,
        reason: OfferFailure,
    ) -> CommandResult {
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

    pub(super) fn ring_no_answer(&mut self, id: &CallId, operator: &OperatorId, fence: u64) -> CommandResult {
        let no = self.offered_call(id, operator, fence)?;
        self.missed(no, operator);
        Ok(Response::Done)
    }

    pub(super) fn completed(&mut self, id: &CallId, fence: u64, outcome: Outcome) -> CommandResult {
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

    pub(super) fn callback_result(
        &mut self,
        id: &CallId,
        operator: &OperatorId,
        fence: u64,
        answered: bool,
    ) -> CommandResult {
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
}
