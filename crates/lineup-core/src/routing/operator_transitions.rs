//! Every change of an operator's status: offline, break, available, after an offer or a call.

use super::records::secs;
use super::Routing;
use crate::command::RequestedState;
use crate::config::QueueConfig;
use crate::effect::{OperatorStatus, QueueLogVerb};
use crate::ids::{CallId, OperatorId, QueueId};

impl Routing {
    pub(super) fn go_offline(&mut self, id: &OperatorId) {
        let now = self.state.now_ms;
        let op = &self.state.operators[id];
        let login_s = secs(now.saturating_sub(op.logged_in_at_ms));
        let device = op.channel.clone().or_else(|| op.config.endpoint.clone()).unwrap_or_default();
        for q in op.config.memberships.keys().cloned().collect::<Vec<_>>() {
            self.log(None, Some(q), None, Some(id.clone()), QueueLogVerb::RemoveMember, vec![]);
        }
        // As app_agent_pool writes it: the login call's unique id and channel name.
        let (login_call, channel) = match self.state.phone_logins.calls.remove(id) {
            Some(login) => (Some(CallId::new(&login.uniqueid)), login.name),
            None => (None, device),
        };
        self.log(login_call, None, None, Some(id.clone()), QueueLogVerb::AgentLogoff, vec![channel, login_s]);
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

    pub(super) fn go_break(&mut self, id: &OperatorId, reason: &str) {
        let now = self.state.now_ms;
        for q in self.state.operators[id].config.memberships.keys().cloned().collect::<Vec<_>>() {
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
    pub(super) fn go_available(&mut self, id: &OperatorId, fresh_idle: bool) {
        let now = self.state.now_ms;
        if let OperatorStatus::Break { reason } = &self.state.operators[id].status {
            let reason = reason.clone();
            for q in self.state.operators[id].config.memberships.keys().cloned().collect::<Vec<_>>() {
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
    pub(super) fn release_after_offer(&mut self, id: &OperatorId, missed: bool) {
        let Some(op) = self.state.operators.get(id) else { return };
        if !matches!(op.status, OperatorStatus::Offered { .. }) {
            return;
        }
        if !missed {
            let now = self.state.now_ms;
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
        let now = self.state.now_ms;
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
        let op = &self.state.operators[id];
        // Strictest rules among the operator's queues.
        op.config
            .memberships
            .keys()
            .filter_map(|q| self.state.queues.get(q))
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
    pub(super) fn after_call(&mut self, id: &OperatorId, queue: &QueueId) {
        let Some(op) = self.state.operators.get(id) else { return };
        let now = self.state.now_ms;
        match op.after_call.clone() {
            Some(RequestedState::Offline) => self.go_offline(id),
            Some(RequestedState::Break { reason }) => self.go_break(id, &reason),
            _ => {
                let wrap_up_ms = self.state.queues.get(queue).map_or(0, |q| q.config.wrap_up_ms);
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
}
