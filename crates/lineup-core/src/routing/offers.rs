//! What sites report about an offer: connected, failed, not answered, a callback's result,
//! and the end of a connected call.

use super::refusals::invalid;
use super::{CommandResult, Response, Routing, TRUNK_FAILURE_REST_MS};
use crate::command::OfferFailure;
use crate::effect::Outcome;
use crate::ids::{CallId, OperatorId};
use crate::model::CallState;
use crate::CoreError;

impl Routing {
    /// Checks that `fence` is the current offer of `call` to `operator`.
    fn offered_call(&self, id: &CallId, operator: &OperatorId, fence: u64) -> Result<u64, CoreError> {
        let call_number = self.call_number_of(id)?;
        match &self.state.calls[&call_number].state {
            CallState::Offered { operator: o, fence: f, .. } if o == operator && *f == fence => Ok(call_number),
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
        let call_number = self.offered_call(id, operator, fence)?;
        self.connect(call_number);
        Ok(Response::Done)
    }

    pub(super) fn offer_failed(
        &mut self,
        id: &CallId,
        operator: &OperatorId,
        fence: u64,
        reason: OfferFailure,
    ) -> CommandResult {
        let call_number = self.offered_call(id, operator, fence)?;
        self.cancel_offer(call_number);
        self.return_to_queue(call_number);
        match reason {
            OfferFailure::OperatorUnreachable => self.go_offline(operator),
            OfferFailure::BridgeFailed => self.release_after_offer(operator, true),
            OfferFailure::TrunkFailed { .. } => {
                // Not a miss; but the same trunk would likely fail again at once, so the
                // operator rests briefly instead of being offered across it in a tight loop.
                self.release_after_offer(operator, false);
                let wake_at = self.state.now_ms.saturating_add(TRUNK_FAILURE_REST_MS);
                self.with_operator(operator, |op| op.wake_ms = Some(wake_at));
            }
            OfferFailure::Interrupted => self.release_after_offer(operator, false),
        }
        Ok(Response::Done)
    }

    pub(super) fn ring_no_answer(&mut self, id: &CallId, operator: &OperatorId, fence: u64) -> CommandResult {
        let call_number = self.offered_call(id, operator, fence)?;
        self.missed(call_number, operator);
        Ok(Response::Done)
    }

    pub(super) fn completed(&mut self, id: &CallId, fence: u64, outcome: Outcome) -> CommandResult {
        let call_number = self.call_number_of(id)?;
        let call = &self.state.calls[&call_number];
        let CallState::Connected { fence: current, .. } = call.state else {
            return Err(CoreError::StaleFence { call: id.clone(), got: fence, current: call.offer_fence() });
        };
        if current != fence {
            return Err(CoreError::StaleFence { call: id.clone(), got: fence, current: Some(current) });
        }
        self.finish_connected(call_number, outcome);
        Ok(Response::Done)
    }

    pub(super) fn callback_result(
        &mut self,
        id: &CallId,
        operator: &OperatorId,
        fence: u64,
        answered: bool,
    ) -> CommandResult {
        let call_number = self.offered_call(id, operator, fence)?;
        if self.state.calls[&call_number].callback.is_none() {
            return Err(invalid("call is not a callback promise", id.to_string()));
        }
        if answered {
            self.connect(call_number);
            return Ok(Response::Done);
        }
        self.callback_attempt_failed(call_number, operator);
        Ok(Response::Done)
    }
}
