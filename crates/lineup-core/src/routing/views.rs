//! Projections of one call or operator (what effects and the API show): views, offers,
//! positions and ETAs.

use super::Routing;
use crate::effect::{CallStatus, CallView, Offer, OperatorStatus, OperatorView};
use crate::ids::{CallId, OperatorId, QueueId};
use crate::model::CallState;

impl Routing {
    /// 1-based position among the callers this one waits behind in its queue.
    pub fn position(&self, call: &CallId) -> Option<u32> {
        self.position_of_no(*self.indexes.call_numbers.get(call)?)
    }

    pub(super) fn position_of_no(&self, call_number: u64) -> Option<u32> {
        let call = self.state.calls.get(&call_number)?;
        if !call.is_waiting() {
            return None;
        }
        self.indexes.queues.get(&call.queue)?.order.rank(call.key, call.call_number).map(|r| r as u32)
    }

    /// ceil(position / staffed operators) × rolling average handle time (rounded up).
    pub fn eta_ms(&self, queue: &QueueId, position: u32) -> Option<u64> {
        let q = self.state.queues.get(queue)?;
        let staffed = u64::from(self.indexes.queues.get(queue)?.ready);
        if staffed == 0 {
            return None;
        }
        let average = q.handle_times.average_ms().unwrap_or(q.config.default_handle_ms);
        Some(u64::from(position).div_ceil(staffed).saturating_mul(average))
    }

    /// Position and ETA of a waiting call (widget, announcements).
    pub fn call_position(&self, call: &CallId) -> Option<(u32, Option<u64>)> {
        let call_number = *self.indexes.call_numbers.get(call)?;
        let position = self.position_of_no(call_number)?;
        Some((position, self.eta_ms(&self.state.calls[&call_number].queue, position)))
    }

    /// The offer this call is under right now, as its `Offer` effect carried it (a site
    /// that restarted mid-offer picks it up from here).
    pub fn current_offer(&self, call: &CallId) -> Option<Offer> {
        let call_number = *self.indexes.call_numbers.get(call)?;
        match &self.state.calls[&call_number].state {
            CallState::Offered { operator, fence, .. } => Some(self.offer_for(call_number, operator, *fence)),
            _ => None,
        }
    }

    pub(super) fn offer_for(&self, call_number: u64, op_id: &OperatorId, fence: u64) -> Offer {
        let call = &self.state.calls[&call_number];
        let op = &self.state.operators[op_id];
        let queue = &self.state.queues[&call.queue].config;
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
            whisper: call.gate.as_ref().and_then(|g| self.state.gates.get(g)).and_then(|g| g.config.whisper.clone()),
            callback_number: call.callback.as_ref().map(|c| c.number.clone()),
        }
    }

    /// The caller's number and name (empty when the channel gave none) of a call in the
    /// system, for the supervisors' tables.
    pub fn call_caller(&self, call: &CallId) -> Option<(&str, &str)> {
        let c = self.state.calls.get(self.indexes.call_numbers.get(call)?)?;
        Some((c.caller_number.as_str(), c.caller_name.as_str()))
    }

    pub fn call_view(&self, call: &CallId) -> Option<CallView> {
        self.call_view_of(*self.indexes.call_numbers.get(call)?)
    }

    pub(super) fn call_view_of(&self, call_number: u64) -> Option<CallView> {
        let call = self.state.calls.get(&call_number)?;
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

    pub fn operator_view(&self, id: &OperatorId) -> Option<OperatorView> {
        let op = self.state.operators.get(id)?;
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
}
