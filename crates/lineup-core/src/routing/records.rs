//! What apply writes down: queue_log lines, counters, and the end of a call (its history
//! record, final projection and remembered id).

use super::{Routing, ENDED_CALLS_REMEMBERED_MAX};
use crate::effect::{CallRecord, CallStatus, CallView, Effect, Outcome, QueueLogEntry, QueueLogVerb};
use crate::ids::{CallId, GateId, OperatorId, QueueId};
use crate::model::{Call, CallState};
use crate::stats::Stats;

/// Seconds, as queue_log fields carry durations.
pub(super) fn secs(ms: u64) -> String {
    (ms / 1000).to_string()
}

impl Routing {
    pub(super) fn log(
        &mut self,
        call: Option<CallId>,
        queue: Option<QueueId>,
        gate: Option<GateId>,
        agent: Option<OperatorId>,
        verb: QueueLogVerb,
        data: Vec<String>,
    ) {
        self.scratch.out.push(Effect::QueueLog(QueueLogEntry {
            at_ms: self.state.now_ms,
            call,
            queue,
            gate,
            agent,
            verb,
            data,
        }));
    }

    /// A queue_log line about a call still in the state (its queue and gate).
    pub(super) fn log_call(
        &mut self,
        call_number: u64,
        agent: Option<OperatorId>,
        verb: QueueLogVerb,
        data: Vec<String>,
    ) {
        let call = &self.state.calls[&call_number];
        let (call_id, queue, gate) = (call.id.clone(), call.queue.clone(), call.gate.clone());
        self.log(Some(call_id), Some(queue), gate, agent, verb, data);
    }

    pub(super) fn bump_stats(&mut self, queue: &QueueId, gate: Option<&GateId>, f: impl Fn(&mut Stats)) {
        if let Some(q) = self.state.queues.get_mut(queue) {
            f(&mut q.stats);
        }
        if let Some(g) = gate.and_then(|g| self.state.gates.get_mut(g)) {
            f(&mut g.stats);
        }
    }

    /// Remembers an ended call's id (the oldest is forgotten beyond the bound), so that it is
    /// never queued again.
    pub(super) fn remember_ended(&mut self, id: &CallId) {
        if self.state.ended_calls.len() == ENDED_CALLS_REMEMBERED_MAX {
            if let Some(oldest) = self.state.ended_calls.pop_front() {
                self.indexes.ended_calls.remove(&oldest);
            }
        }
        self.state.ended_calls.push_back(id.clone());
        self.indexes.ended_calls.insert(id.clone());
        debug_assert!(self.state.ended_calls.len() <= ENDED_CALLS_REMEMBERED_MAX);
    }

    /// Ends a call (already out of the indexes): dialplan exit if the caller is on the line,
    /// the history record, and the final projection.
    pub(super) fn end_call(&mut self, call: Call, outcome: Outcome, handle_ms: Option<u64>) {
        self.remember_ended(&call.id);
        let now = self.state.now_ms;
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
}
