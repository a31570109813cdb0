//! Keeping the derived indexes true: every change of a call or an operator goes through
//! here, which also emits its projection.

use super::state::{Indexes, QueueIndex, Timer};
use super::Routing;
use crate::config::EmptyRule;
use crate::effect::Effect;
use crate::ids::{CallId, OperatorId, QueueId};
use crate::model::{Call, CallState, Operator};
use crate::CoreError;

impl Routing {
    pub(super) fn call_number_of(&self, id: &CallId) -> Result<u64, CoreError> {
        self.indexes.call_numbers.get(id).copied().ok_or_else(|| CoreError::UnknownCall(id.clone()))
    }

    pub(super) fn timer_due(&self, timer: Timer) -> Option<u64> {
        let (call_number, field): (u64, fn(&Call) -> Option<u64>) = match timer {
            Timer::MaxWait(call_number) => (call_number, |c| c.max_wait_due_ms.filter(|_| c.is_live_waiting())),
            Timer::Widen(call_number) => (call_number, |c| c.next_widen_ms.filter(|_| c.is_waiting())),
            Timer::Announce(call_number) => (call_number, |c| c.next_announce_ms.filter(|_| c.is_live_waiting())),
            Timer::Periodic(call_number) => (call_number, |c| c.next_periodic_ms.filter(|_| c.is_live_waiting())),
            Timer::CallbackReady(call_number) => {
                (call_number, |c| c.callback.as_ref().and_then(|cb| cb.ready_at_ms).filter(|_| c.is_waiting()))
            }
            Timer::OfferDeadline(call_number) => (call_number, |c| match &c.state {
                CallState::Offered { deadline_ms, .. } => Some(*deadline_ms),
                _ => None,
            }),
        };
        self.state.calls.get(&call_number).and_then(field)
    }

    pub(super) fn insert_call(&mut self, call: Call) {
        let call_number = call.call_number;
        self.indexes.call_numbers.insert(call.id.clone(), call_number);
        self.state.calls.insert(call_number, call);
        self.index_call(call_number, true);
        self.emit_call_view(call_number);
    }

    pub(super) fn take_call(&mut self, call_number: u64) -> Call {
        self.state.outages.released_calls.remove(&call_number);
        self.index_call(call_number, false);
        let call = self.state.calls.remove(&call_number).expect("call exists");
        self.indexes.call_numbers.remove(&call.id);
        call
    }

    /// Changes a call and keeps every index true (remove, change, re-add).
    pub(super) fn with_call(&mut self, call_number: u64, f: impl FnOnce(&mut Call)) {
        self.index_call(call_number, false);
        f(self.state.calls.get_mut(&call_number).expect("call exists"));
        self.index_call(call_number, true);
        self.emit_call_view(call_number);
    }

    pub(super) fn with_operator(&mut self, id: &OperatorId, f: impl FnOnce(&mut Operator)) {
        // What the projection shows, without cloning the membership list twice.
        let visible = |op: &Operator| (op.status.clone(), op.site, op.channel.clone(), op.since_ms, op.wake_ms);
        let before = self.state.operators.get(id).map(visible);
        let was_offerable = self.is_offerable_here(id);
        self.index_operator(id, false);
        f(self.state.operators.get_mut(id).expect("operator exists"));
        self.index_operator(id, true);
        if !was_offerable && self.is_offerable_here(id) {
            // E.g. a re-login moved it from an unreachable site to a reachable one.
            self.scratch.dirty_operators.insert(id.clone());
        }
        if before != self.state.operators.get(id).map(visible) {
            if let Some(view) = self.operator_view(id) {
                self.scratch.out.push(Effect::OperatorChanged(view));
            }
        }
    }

    /// Adds the call to (or removes it from) its queue's indexes, by its current state.
    fn index_call(&mut self, call_number: u64, add: bool) {
        let call = &self.state.calls[&call_number];
        if !self.indexes.queues.contains_key(&call.queue) {
            return;
        }
        match &call.state {
            CallState::Waiting => self.index_waiting_call(call_number, add),
            CallState::Offered { .. } | CallState::Connected { .. } => self.index_active_call(call_number, add),
        }
        if add {
            self.index_call_timers(call_number);
        }
        // Timer entries are not removed here: a stale entry is skipped when it comes due.
    }

    /// A waiting call: its place in line, its wait (live callers) or the callback count.
    fn index_waiting_call(&mut self, call_number: u64, add: bool) {
        let call = &self.state.calls[&call_number];
        let queue_index = self.indexes.queues.get_mut(&call.queue).expect("index_call checked the queue index");
        if add {
            queue_index.order.insert(call.key, call_number);
        } else {
            queue_index.order.remove(call.key, call_number);
        }
        if call.callback.is_none() {
            let entry = (call.joined_at_ms, call_number);
            if add {
                queue_index.live_by_joined.insert(entry);
            } else {
                queue_index.live_by_joined.remove(&entry);
            }
            if let Some(g) = &call.gate {
                let set = self.indexes.gate_waiting.entry(g.clone()).or_default();
                if add {
                    set.insert(entry);
                } else {
                    set.remove(&entry);
                    if set.is_empty() {
                        self.indexes.gate_waiting.remove(g);
                    }
                }
            }
        } else if add {
            queue_index.callbacks_waiting += 1;
        } else {
            queue_index.callbacks_waiting -= 1;
        }
        if add {
            self.indexes.waiting_total += 1;
        } else {
            self.indexes.waiting_total -= 1;
        }
    }

    /// An offered or connected call counts toward its queue's cap; one leaving a capped
    /// queue frees a place there.
    fn index_active_call(&mut self, call_number: u64, add: bool) {
        let call = &self.state.calls[&call_number];
        let queue_index = self.indexes.queues.get_mut(&call.queue).expect("index_call checked the queue index");
        if add {
            queue_index.active += 1;
        } else {
            queue_index.active -= 1;
            if self.state.queues.get(&call.queue).is_some_and(|q| q.config.max_busy_operators.is_some()) {
                self.scratch.dirty_queues.insert(call.queue.clone());
            }
        }
    }

    /// The call's deadlines that are due as the call now stands.
    fn index_call_timers(&mut self, call_number: u64) {
        let call = &self.state.calls[&call_number];
        let timers = [
            (call.max_wait_due_ms, Timer::MaxWait(call_number)),
            (call.next_widen_ms, Timer::Widen(call_number)),
            (call.next_announce_ms, Timer::Announce(call_number)),
            (call.next_periodic_ms, Timer::Periodic(call_number)),
            (call.callback.as_ref().and_then(|c| c.ready_at_ms), Timer::CallbackReady(call_number)),
            (
                match &call.state {
                    CallState::Offered { deadline_ms, .. } => Some(*deadline_ms),
                    _ => None,
                },
                Timer::OfferDeadline(call_number),
            ),
        ];
        for (at, timer) in timers {
            if let Some(at) = at {
                if self.timer_due(timer) == Some(at) {
                    self.indexes.call_timers.insert((at, timer));
                }
            }
        }
    }

    /// Offerable, and not at an unreachable site: what the `available` index holds.
    fn is_offerable_here(&self, id: &OperatorId) -> bool {
        self.state.operators.get(id).is_some_and(|op| op.is_offerable() && self.operator_reachable(op))
    }

    pub(super) fn index_operator(&mut self, id: &OperatorId, add: bool) {
        let Some(op) = self.state.operators.get(id) else { return };
        // An operator at an unreachable site is not offered from here (see sites.rs).
        let offerable = self.is_offerable_here(id);
        let staff = self.counts_as_staff(op);
        for (queue, penalty) in &op.config.memberships {
            let Some(queue_index) = self.indexes.queues.get_mut(queue) else { continue };
            let delta = |count: &mut u32, on: bool| {
                if on {
                    if add {
                        *count += 1;
                    } else {
                        *count -= 1;
                    }
                }
            };
            delta(&mut queue_index.logged_in, staff && op.is_logged_in());
            delta(&mut queue_index.ready, staff && op.is_ready());
            if offerable {
                let entry = (*penalty, op.idle_since_ms, id.clone());
                if add {
                    queue_index.available.insert(entry);
                } else {
                    queue_index.available.remove(&entry);
                }
            }
        }
        if let (true, Some(at)) = (add, op.wake_ms) {
            self.indexes.operator_wakes.insert((at, id.clone()));
        }
    }

    fn emit_call_view(&mut self, call_number: u64) {
        if let Some(view) = self.call_view_of(call_number) {
            self.scratch.out.push(Effect::CallChanged(view));
        }
    }

    pub(super) fn rebuild_indexes(&mut self) {
        self.indexes = Indexes::default();
        for id in self.state.queues.keys() {
            self.indexes.queues.insert(id.clone(), QueueIndex::default());
        }
        let nos: Vec<u64> = self.state.calls.keys().copied().collect();
        for call_number in nos {
            self.indexes.call_numbers.insert(self.state.calls[&call_number].id.clone(), call_number);
            self.index_call(call_number, true);
        }
        let ids: Vec<OperatorId> = self.state.operators.keys().cloned().collect();
        for id in ids {
            self.index_operator(&id, true);
        }
        self.indexes.ended_calls = self.state.ended_calls.iter().cloned().collect();
        // Rebuilding is not a release of capacity.
        self.scratch.dirty_queues.clear();
    }

    pub(super) fn is_empty_by(&self, queue: &QueueId, rule: EmptyRule) -> bool {
        let Some(queue_index) = self.indexes.queues.get(queue) else { return true };
        match rule {
            EmptyRule::Never => false,
            EmptyRule::NoneLoggedIn => queue_index.logged_in == 0,
            EmptyRule::NoneReady => queue_index.ready == 0,
        }
    }
}
