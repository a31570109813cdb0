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

    fn check_alarms(&mut self, queue_id: &QueueId) {
        let now = self.state.now_ms;
        let queue_index = &self.indexes.queues[queue_id];
        let longest = queue_index.live_by_joined.first().map_or(0, |(joined, _)| now.saturating_sub(*joined));
        let depth = queue_index.order.len() as u64;
        let q = self.state.queues.get_mut(queue_id).expect("queue exists");
        let mut raised = Vec::new();
        if let Some(threshold) = q.config.alarm_longest_wait_ms {
            let over = longest >= threshold;
            if over != q.alarm_longest_wait_raised {
                q.alarm_longest_wait_raised = over;
                raised.push((AlarmKind::LongestWait, over, longest, threshold));
            }
        }
        if let Some(threshold) = q.config.alarm_depth {
            let over = depth >= u64::from(threshold);
            if over != q.alarm_depth_raised {
                q.alarm_depth_raised = over;
                raised.push((AlarmKind::Depth, over, depth, u64::from(threshold)));
            }
        }
        for (kind, raised, value, threshold) in raised {
            self.scratch.out.push(Effect::Alarm { queue: queue_id.clone(), kind, raised, value, threshold });
        }
    }
}
