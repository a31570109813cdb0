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
    pub(super) fn call_no(&self, id: &CallId) -> Result<u64, CoreError> {
        self.idx.call_numbers.get(id).copied().ok_or_else(|| CoreError::UnknownCall(id.clone()))
    }

    pub(super) fn timer_due(&self, timer: Timer) -> Option<u64> {
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

    pub(super) fn insert_call(&mut self, call: Call) {
        let no = call.no;
        self.idx.call_numbers.insert(call.id.clone(), no);
        self.s.calls.insert(no, call);
        self.index_call(no, true);
        self.emit_call_view(no);
    }

    pub(super) fn take_call(&mut self, no: u64) -> Call {
        self.s.outages.released_calls.remove(&no);
        self.index_call(no, false);
        let call = self.s.calls.remove(&no).expect("call exists");
        self.idx.call_numbers.remove(&call.id);
        call
    }

    /// Changes a call and keeps every index true (remove, change, re-add).
    pub(super) fn with_call(&mut self, no: u64, f: impl FnOnce(&mut Call)) {
        self.index_call(no, false);
        f(self.s.calls.get_mut(&no).expect("call exists"));
        self.index_call(no, true);
        self.emit_call_view(no);
    }

    pub(super) fn with_operator(&mut self, id: &OperatorId, f: impl FnOnce(&mut Operator)) {
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

    /// Adds the call to (or removes it from) its queue's indexes, by its current state.
    fn index_call(&mut self, no: u64, add: bool) {
        let call = &self.s.calls[&no];
        if !self.idx.queues.contains_key(&call.queue) {
            return;
        }
        match &call.state {
            CallState::Waiting => self.index_waiting_call(no, add),
            CallState::Offered { .. } | CallState::Connected { .. } => self.index_active_call(no, add),
        }
        if add {
            self.index_call_timers(no);
        }
        // Timer entries are not removed here: a stale entry is skipped when it comes due.
    }

    /// A waiting call: its place in line, its wait (live callers) or the callback count.
    fn index_waiting_call(&mut self, no: u64, add: bool) {
        let call = &self.s.calls[&no];
        let idx = self.idx.queues.get_mut(&call.queue).expect("index_call checked the queue index");
        if add {
            idx.order.insert(call.key, no);
        } else {
            idx.order.remove(call.key, no);
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

    /// An offered or connected call counts toward its queue's cap; one leaving a capped
    /// queue frees a place there.
    fn index_active_call(&mut self, no: u64, add: bool) {
        let call = &self.s.calls[&no];
        let idx = self.idx.queues.get_mut(&call.queue).expect("index_call checked the queue index");
        if add {
            idx.active += 1;
        } else {
            idx.active -= 1;
            if self.s.queues.get(&call.queue).is_some_and(|q| q.config.max_busy_operators.is_some()) {
                self.scratch.dirty_queues.insert(call.queue.clone());
            }
        }
    }

    /// The call's deadlines that are due as the call now stands.
    fn index_call_timers(&mut self, no: u64) {
        let call = &self.s.calls[&no];
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

    /// Offerable, and not at an unreachable site: what the `available` index holds.
    fn is_offerable_here(&self, id: &OperatorId) -> bool {
        self.s.operators.get(id).is_some_and(|op| op.is_offerable() && !self.s.outages.is_unreachable(op.site))
    }

    pub(super) fn index_operator(&mut self, id: &OperatorId, add: bool) {
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

    pub(super) fn rebuild_indexes(&mut self) {
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

    pub(super) fn is_empty_by(&self, queue: &QueueId, rule: EmptyRule) -> bool {
        let Some(idx) = self.idx.queues.get(queue) else { return true };
        match rule {
            EmptyRule::Never => false,
            EmptyRule::NoneLoggedIn => idx.logged_in == 0,
            EmptyRule::NoneReady => idx.ready == 0,
        }
    }
}
