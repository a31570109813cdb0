//! How a caller enters a queue's line: entry checks (closed, full, empty), overflow
//! targets, joining, and position announcements.

use super::Routing;
use crate::config::{Target, OVERFLOW_HOPS_MAX};
use crate::effect::{Announcement, Effect, Outcome, QueueLogVerb};
use crate::ids::QueueId;
use crate::model::{Call, CallState};

impl Routing {
    /// Entry checks (closed, full, empty), then join; a refusal follows the queue's target,
    /// which may be another queue. Returns (final queue, position if joined, outcome if left).
    pub(super) fn admit(&mut self, mut call: Call, queue_id: QueueId) -> (QueueId, Option<u32>, Option<Outcome>) {
        let Some(queue) = self.state.queues.get(&queue_id) else {
            // Unreachable: Enqueue checks the queue and follow_target checks overflow targets.
            // Never lose the caller anyway: back to the dialplan.
            let outcome = Outcome::Full;
            self.end_call(call, outcome.clone(), None);
            return (queue_id, None, Some(outcome));
        };
        let cfg = &queue.config;
        let now = self.state.now_ms;
        let closed = cfg
            .schedule
            .as_ref()
            .and_then(|s| self.state.schedules.get(s))
            .is_some_and(|s| !crate::schedule::is_open(s, now));
        let qidx = self.indexes.queues.get(&queue_id);
        let depth = qidx.map_or(0, |q| q.order.len());
        let refusal = if closed {
            Some((Outcome::Closed, QueueLogVerb::Closed, cfg.after_hours_target.clone()))
        } else if depth >= cfg.max_waiting as usize {
            Some((Outcome::Full, QueueLogVerb::Full, cfg.full_target.clone()))
        } else if self.is_empty_by(&queue_id, cfg.join_when_empty) && call.callback.is_none() {
            Some((Outcome::Empty, QueueLogVerb::JoinEmpty, cfg.empty_target.clone()))
        } else {
            None
        };
        if let Some((outcome, verb, target)) = refusal {
            self.bump_stats(&queue_id, call.gate.as_ref(), |s| match outcome {
                Outcome::Closed => s.closed += 1,
                Outcome::Full => s.full += 1,
                _ => s.empty += 1,
            });
            self.log(
                Some(call.id.clone()),
                Some(queue_id.clone()),
                call.gate.clone(),
                None,
                verb,
                vec![String::new(), call.caller_number.clone()],
            );
            return self.follow_target(call, outcome, target);
        }
        call.queue = queue_id.clone();
        call.joined_at_ms = now;
        let call_number = call.call_number;
        self.join(call);
        let position = self.position_of_no(call_number);
        (queue_id, position, None)
    }

    /// Leaves with `outcome`: either into the target queue (overflow) or back to the dialplan.
    pub(super) fn follow_target(
        &mut self,
        mut call: Call,
        outcome: Outcome,
        target: Target,
    ) -> (QueueId, Option<u32>, Option<Outcome>) {
        match target {
            Target::Queue { queue, keep_order }
                if call.overflow_hops < OVERFLOW_HOPS_MAX && self.state.queues.contains_key(&queue) =>
            {
                call.overflow_hops += 1;
                if !keep_order {
                    call.key.seq = self.scratch.index;
                }
                let from = call.queue.clone();
                self.bump_stats(&from, call.gate.as_ref(), |s| s.overflowed += 1);
                self.admit(call, queue)
            }
            _ => {
                let queue = call.queue.clone();
                self.end_call(call, outcome.clone(), None);
                (queue, None, Some(outcome))
            }
        }
    }

    /// Puts a call into its queue's line (it must not be indexed yet).
    pub(super) fn join(&mut self, mut call: Call) {
        let now = self.state.now_ms;
        let cfg = &self.state.queues[&call.queue].config;
        call.state = CallState::Waiting;
        call.max_wait_due_ms = cfg.max_wait_ms.map(|w| now.saturating_add(w));
        call.next_widen_ms = cfg.next_widening_after(0).map(|after| now.saturating_add(after));
        let live = call.callback.is_none();
        call.next_announce_ms = cfg.announce_every_ms.filter(|_| live).map(|every| now.saturating_add(every));
        call.next_periodic_ms = cfg
            .periodic_every_ms
            .filter(|_| live && !cfg.periodic_messages.is_empty())
            .map(|every| now.saturating_add(every));
        let announce_now = live && cfg.announce_every_ms.is_some();
        let call_number = call.call_number;
        let queue_id = call.queue.clone();
        let gate = call.gate.clone();
        self.insert_call(call);
        let position = self.position_of_no(call_number).unwrap_or(0);
        if let Some(c) = self.state.calls.get_mut(&call_number) {
            c.orig_position = position;
        }
        self.bump_stats(&queue_id, gate.as_ref(), |s| s.offered += 1);
        let c = &self.state.calls[&call_number];
        self.log(
            Some(c.id.clone()),
            Some(queue_id),
            gate,
            None,
            QueueLogVerb::EnterQueue,
            vec![String::new(), c.caller_number.clone(), position.to_string()],
        );
        if live {
            self.announce_position(call_number, announce_now);
        }
        self.scratch.dirty_calls.insert(call_number);
    }

    /// Position and ETA announcement (when `speak`), plus the callback offer when the ETA is
    /// above the queue's threshold (once per call).
    pub(super) fn announce_position(&mut self, call_number: u64, speak: bool) {
        let Some(call) = self.state.calls.get(&call_number) else { return };
        let (Some(channel), Some(position)) = (call.channel.clone(), self.position_of_no(call_number)) else { return };
        let eta_ms = self.eta_ms(&call.queue, position);
        let (id, site) = (call.id.clone(), call.entry_site);
        if speak {
            self.scratch.out.push(Effect::Announce {
                call: id.clone(),
                site,
                channel: channel.clone(),
                announcement: Announcement::Position { position, eta_ms },
            });
        }
        let threshold = self.state.queues[&call.queue].config.callback_offer_above_eta_ms;
        if let (Some(threshold), Some(eta)) = (threshold, eta_ms) {
            if eta > threshold && !call.callback_offered {
                self.scratch.out.push(Effect::OfferCallback { call: id, site, channel, eta_ms: eta });
                if let Some(c) = self.state.calls.get_mut(&call_number) {
                    c.callback_offered = true;
                }
            }
        }
    }
}
