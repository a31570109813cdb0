//! The Tick command: due call timers and operator wake-ups, leave-when-empty and alarms.

use super::records::secs;
use super::sites::UNREACHABLE_TIMER_RECHECK_MS;
use super::state::Timer;
use super::Routing;
use crate::effect::{AlarmKind, Announcement, Effect, OperatorStatus, Outcome, QueueLogVerb};
use crate::ids::{OperatorId, QueueId};
use crate::model::CallState;
use std::collections::BTreeSet;

impl Routing {
    pub(super) fn tick(&mut self) {
        let now = self.state.now_ms;
        // Wake-ups whose entity still has that deadline, in order of the entity's own
        // deadline: stale entries never act and never reorder anything, so a node restored
        // from a snapshot (which has no stale entries) does exactly the same.
        let mut due: BTreeSet<(u64, Timer)> = BTreeSet::new();
        while let Some(&(at, timer)) = self.indexes.call_timers.first() {
            if at > now {
                break;
            }
            self.indexes.call_timers.pop_first();
            if let Some(actual) = self.timer_due(timer) {
                if actual <= now {
                    due.insert((actual, timer));
                }
            }
        }
        let mut wakes: BTreeSet<(u64, OperatorId)> = BTreeSet::new();
        while let Some((at, _)) = self.indexes.operator_wakes.first() {
            if *at > now {
                break;
            }
            let (_, id) = self.indexes.operator_wakes.pop_first().expect("checked non-empty");
            if let Some(actual) = self.state.operators.get(&id).and_then(|op| op.wake_ms) {
                if actual <= now {
                    wakes.insert((actual, id));
                }
            }
        }
        for (_, id) in wakes {
            self.wake_operator(&id);
        }
        for (_, timer) in due {
            self.fire(timer);
        }
        let queue_ids: Vec<QueueId> = self.state.queues.keys().cloned().collect();
        for q in &queue_ids {
            self.leave_when_empty(q);
            self.check_alarms(q);
        }
        self.forget_deleted_queue_alarms();
    }

    /// Acts on one due timer of a call.
    fn fire(&mut self, timer: Timer) {
        let now = self.state.now_ms;
        // An earlier timer in this tick may have ended or changed the call.
        if self.timer_due(timer).is_none_or(|at| at > now) {
            return;
        }
        match timer {
            Timer::MaxWait(call_number) if self.caller_site_unreachable(call_number) => {
                // Its site cannot send the caller on, and the caller is still on its box.
                self.with_call(call_number, |c| {
                    c.max_wait_due_ms = Some(now.saturating_add(UNREACHABLE_TIMER_RECHECK_MS))
                });
            }
            Timer::MaxWait(call_number) => self.max_wait_reached(call_number),
            Timer::Widen(call_number) => {
                let call = &self.state.calls[&call_number];
                let cfg = &self.state.queues[&call.queue].config;
                let next = cfg
                    .next_widening_after(now.saturating_sub(call.joined_at_ms))
                    .map(|after| call.joined_at_ms.saturating_add(after));
                self.with_call(call_number, |c| c.next_widen_ms = next);
                self.scratch.dirty_calls.insert(call_number);
            }
            Timer::Announce(call_number) => {
                let every = self.state.queues[&self.state.calls[&call_number].queue].config.announce_every_ms;
                self.with_call(call_number, |c| c.next_announce_ms = every.map(|e| now.saturating_add(e)));
                self.announce_position(call_number, true);
            }
            Timer::Periodic(call_number) => self.play_periodic_message(call_number),
            Timer::CallbackReady(call_number) => {
                self.with_call(call_number, |c| {
                    if let Some(cb) = c.callback.as_mut() {
                        cb.ready_at_ms = None;
                    }
                });
                self.scratch.dirty_calls.insert(call_number);
            }
            Timer::OfferDeadline(call_number) if self.offer_spans_unreachable_site(call_number) => {
                // The silent site may be carrying the offer out right now; it reports when
                // it is heard again. Until then the offer stands.
                self.with_call(call_number, |c| {
                    if let CallState::Offered { deadline_ms, .. } = &mut c.state {
                        *deadline_ms = now.saturating_add(UNREACHABLE_TIMER_RECHECK_MS);
                    }
                });
            }
            Timer::OfferDeadline(call_number) => {
                let CallState::Offered { operator, .. } = self.state.calls[&call_number].state.clone() else { return };
                if self.state.calls[&call_number].callback.is_some() {
                    self.callback_attempt_failed(call_number, &operator);
                } else {
                    self.missed(call_number, &operator);
                }
            }
        }
    }

    /// A caller waited the queue's longest: out of line, on to the queue's timeout target.
    fn max_wait_reached(&mut self, call_number: u64) {
        let now = self.state.now_ms;
        let call = &self.state.calls[&call_number];
        let target = self.state.queues[&call.queue].config.timeout_target.clone();
        let position = self.position_of_no(call_number).unwrap_or(0);
        let call = self.take_call(call_number);
        let wait_ms = now.saturating_sub(call.joined_at_ms);
        self.log(
            Some(call.id.clone()),
            Some(call.queue.clone()),
            call.gate.clone(),
            None,
            QueueLogVerb::ExitWithTimeout,
            vec![position.to_string(), call.orig_position.to_string(), secs(wait_ms)],
        );
        self.bump_stats(&call.queue.clone(), call.gate.as_ref(), |s| s.timed_out += 1);
        self.follow_target(call, Outcome::TimedOut, target);
    }

    /// The queue's next periodic message to a caller on the line, in turn.
    fn play_periodic_message(&mut self, call_number: u64) {
        let now = self.state.now_ms;
        let call = &self.state.calls[&call_number];
        let cfg = &self.state.queues[&call.queue].config;
        let every = cfg.periodic_every_ms;
        if let (Some(channel), false) = (call.channel.clone(), cfg.periodic_messages.is_empty()) {
            let sound = cfg.periodic_messages[call.periodic_index as usize % cfg.periodic_messages.len()].clone();
            self.scratch.out.push(Effect::Announce {
                call: call.id.clone(),
                site: call.entry_site,
                channel,
                announcement: Announcement::Message { sound },
            });
        }
        self.with_call(call_number, |c| {
            c.periodic_index = c.periodic_index.wrapping_add(1);
            c.next_periodic_ms = every.map(|e| now.saturating_add(e));
        });
    }

    fn wake_operator(&mut self, id: &OperatorId) {
        let Some(op) = self.state.operators.get(id) else { return };
        match op.status {
            OperatorStatus::WrapUp { .. } => self.go_available(id, true),
            OperatorStatus::Available => {
                // End of the rest after a missed offer.
                self.with_operator(id, |op| op.wake_ms = None);
                self.scratch.dirty_operators.insert(id.clone());
            }
            _ => self.with_operator(id, |op| op.wake_ms = None),
        }
    }

    fn leave_when_empty(&mut self, queue: &QueueId) {
        let cfg = &self.state.queues[queue].config;
        if !self.is_empty_by(queue, cfg.leave_when_empty) {
            return;
        }
        let target = cfg.empty_target.clone();
        let leaving: Vec<u64> = self.indexes.queues[queue]
            .order
            .iter()
            .map(|(_, call_number)| call_number)
            .filter(|call_number| {
                self.state.calls[call_number].is_live_waiting() && !self.caller_site_unreachable(*call_number)
            })
            .collect();
        for call_number in leaving {
            let position = self.position_of_no(call_number).unwrap_or(0);
            let call = self.take_call(call_number);
            let wait_ms = self.state.now_ms.saturating_sub(call.joined_at_ms);
            self.log(
                Some(call.id.clone()),
                Some(call.queue.clone()),
                call.gate.clone(),
                None,
                QueueLogVerb::ExitEmpty,
                vec![position.to_string(), call.orig_position.to_string(), secs(wait_ms)],
            );
            self.bump_stats(queue, call.gate.as_ref(), |s| s.empty += 1);
            self.follow_target(call, Outcome::Empty, target.clone());
        }
    }

    /// Raises an alarm at its level; clears it only at or below the policy's lower clear
    /// level and once it has been raised for the policy's hold, so a queue hovering at the
    /// level raises once instead of flapping.
    fn check_alarms(&mut self, queue_id: &QueueId) {
        let now = self.state.now_ms;
        let queue_index = &self.indexes.queues[queue_id];
        let longest = queue_index.live_by_joined.first().map_or(0, |(joined, _)| now.saturating_sub(*joined));
        let depth = queue_index.order.len() as u64;
        let q = &self.state.queues[queue_id];
        let policy = &self.state.alarms.policy;
        let at = self.state.alarms.raised_at.get(queue_id).cloned().unwrap_or_default();
        let longest_wait = q.config.alarm_longest_wait_ms.map(|raise| AlarmCheck {
            kind: AlarmKind::LongestWait,
            raised: q.alarm_longest_wait_raised,
            raised_at_ms: at.longest_wait_ms,
            value: longest,
            raise,
            clear: policy.longest_wait_clear_ms(queue_id, raise),
        });
        let depth = q.config.alarm_depth.map(|raise| AlarmCheck {
            kind: AlarmKind::Depth,
            raised: q.alarm_depth_raised,
            raised_at_ms: at.depth_ms,
            value: depth,
            raise: u64::from(raise),
            clear: policy.depth_clear(queue_id, raise),
        });
        let hold_ms = policy.hold_ms;
        for check in [longest_wait, depth].into_iter().flatten() {
            if let Some(threshold) = check.flips(now, hold_ms) {
                self.set_alarm(queue_id, check.kind, !check.raised);
                let (kind, raised, value) = (check.kind, !check.raised, check.value);
                self.scratch.out.push(Effect::Alarm { queue: queue_id.clone(), kind, raised, value, threshold });
            }
        }
    }

    fn set_alarm(&mut self, queue_id: &QueueId, kind: AlarmKind, raised: bool) {
        let now = self.state.now_ms;
        let q = self.state.queues.get_mut(queue_id).expect("queue exists");
        let at = self.state.alarms.raised_at.entry(queue_id.clone()).or_default();
        let raised_at = raised.then_some(now);
        match kind {
            AlarmKind::LongestWait => (q.alarm_longest_wait_raised, at.longest_wait_ms) = (raised, raised_at),
            AlarmKind::Depth => (q.alarm_depth_raised, at.depth_ms) = (raised, raised_at),
        }
        if at.longest_wait_ms.is_none() && at.depth_ms.is_none() {
            self.state.alarms.raised_at.remove(queue_id);
        }
    }

    /// Raise times of queues that no longer exist (deleted while an alarm was raised).
    fn forget_deleted_queue_alarms(&mut self) {
        let queues = &self.state.queues;
        self.state.alarms.raised_at.retain(|q, _| queues.contains_key(q));
    }
}

/// One alarm of one queue, as `check_alarms` weighs it.
struct AlarmCheck {
    kind: AlarmKind,
    raised: bool,
    raised_at_ms: Option<u64>,
    value: u64,
    raise: u64,
    clear: u64,
}

impl AlarmCheck {
    /// The level crossed when the alarm flips now (raise or clear level), else None.
    fn flips(&self, now: u64, hold_ms: u64) -> Option<u64> {
        if !self.raised {
            return (self.value >= self.raise).then_some(self.raise);
        }
        let held = self.raised_at_ms.is_none_or(|at| now.saturating_sub(at) >= hold_ms);
        (held && self.value <= self.clear).then_some(self.clear)
    }
}
