//! Matching: phase two of apply pairs dirty operators, callers and queues, and the
//! eligibility rules that decide who may take whom.

use super::{Routing, SETTLE_OFFERS_MAX};
use crate::ids::{OperatorId, QueueId};
use crate::model::{Call, CallState, Operator};
use crate::order::OrderKey;
use std::cmp::Reverse;

impl Routing {
    /// Phase two of apply: pair everything that became eligible. Operators first (each takes
    /// its globally first eligible caller, which may be older than any new caller), then
    /// callers in global order (each takes its best operator), then queues whose cap freed.
    pub(super) fn settle(&mut self) {
        let offers = self.settle_dirty_operators(0);
        let offers = self.settle_dirty_calls(offers);
        self.settle_dirty_queues(offers);
        // Offers never make anything else eligible, so one pass reaches quiescence.
        self.scratch.dirty_calls.clear();
        self.scratch.dirty_operators.clear();
    }

    /// Each dirty operator, longest idle first, is served its globally first eligible
    /// caller. Returns the number of offers made so far.
    fn settle_dirty_operators(&mut self, mut offers: usize) -> usize {
        let mut ops: Vec<(u64, OperatorId)> = std::mem::take(&mut self.scratch.dirty_operators)
            .into_iter()
            .filter_map(|id| self.state.operators.get(&id).map(|op| (op.idle_since_ms, id)))
            .collect();
        ops.sort();
        for (_, id) in ops {
            // The freed operator finds its globally first eligible caller; that caller then
            // goes to *its* best operator, which may be one idle longer (e.g. one that a
            // queue cap held back). Repeat until this operator is served or has nothing.
            while offers < SETTLE_OFFERS_MAX {
                let Some(op) = self.state.operators.get(&id) else { break };
                if !op.is_offerable() || !self.operator_reachable(op) {
                    break;
                }
                let Some(call_number) = self.best_call_for(op, false) else { break };
                // Give it to a better operator only if it is that operator's own first
                // eligible caller too; otherwise that operator would overtake someone.
                let chosen = self
                    .best_operator_for(call_number)
                    .filter(|other| {
                        other == &id
                            || self.state.operators.get(other).and_then(|o| self.best_call_for(o, false))
                                == Some(call_number)
                    })
                    .unwrap_or_else(|| id.clone());
                self.offer_pair(call_number, &chosen);
                offers += 1;
                if chosen == id {
                    break;
                }
            }
        }
        offers
    }

    /// Each dirty caller, in global order, is offered to its best available operator.
    fn settle_dirty_calls(&mut self, mut offers: usize) -> usize {
        let mut calls: Vec<((Reverse<u8>, OrderKey), u64)> = std::mem::take(&mut self.scratch.dirty_calls)
            .into_iter()
            .filter_map(|call_number| {
                let c = self.state.calls.get(&call_number)?;
                let weight = self.state.queues.get(&c.queue)?.config.weight;
                Some(((Reverse(weight), c.key), call_number))
            })
            .collect();
        calls.sort();
        for (_, call_number) in calls {
            if let Some(op) = self.best_operator_for(call_number) {
                self.offer_pair(call_number, &op);
                offers += 1;
            }
        }
        offers
    }

    /// Queues whose cap freed a place pair callers in line order until none can be paired.
    fn settle_dirty_queues(&mut self, mut offers: usize) {
        for q in std::mem::take(&mut self.scratch.dirty_queues) {
            while offers < SETTLE_OFFERS_MAX {
                let Some((call_number, op)) = self.first_pair_in(&q) else { break };
                self.offer_pair(call_number, &op);
                offers += 1;
            }
        }
    }

    /// Offers a pair matching chose. The pair was chosen from the indexes (a waiting caller,
    /// an offerable operator), so the offer is always made.
    fn offer_pair(&mut self, call_number: u64, operator: &OperatorId) {
        self.make_offer(call_number, operator);
        debug_assert!(
            matches!(&self.state.calls[&call_number].state, CallState::Offered { operator: o, .. } if o == operator),
            "matching chose call {call_number} for operator {operator}, but no offer was made"
        );
    }

    pub(super) fn is_capped(&self, queue: &QueueId) -> bool {
        let (Some(q), Some(queue_index)) = (self.state.queues.get(queue), self.indexes.queues.get(queue)) else {
            return true;
        };
        q.config.max_busy_operators.is_some_and(|cap| queue_index.active >= cap)
    }

    /// Can `op` (with `penalty` in the call's queue) take `call`? Membership, pull mode and
    /// caps are the caller's business; this checks the callback delay, skills and tiers.
    pub(super) fn eligible(&self, op: &Operator, penalty: u8, call: &Call, respect_tiers: bool) -> bool {
        if !call.callback_ready() || !self.call_reachable(call) {
            return false;
        }
        let queue = &self.state.queues[&call.queue].config;
        if respect_tiers {
            if let Some(allowed) = queue.allowed_penalty(self.state.now_ms.saturating_sub(call.joined_at_ms)) {
                if penalty > allowed {
                    return false;
                }
            }
        }
        op.has_skills(queue.required_skills.iter()) && op.has_skills(call.extra_skills.iter())
    }

    /// The globally first caller `op` may take: over its queues, by (queue weight, priority,
    /// arrival). `pulling` includes pull-only queues and ignores tier widening.
    pub(super) fn best_call_for(&self, op: &Operator, pulling: bool) -> Option<u64> {
        let mut best: Option<((Reverse<u8>, OrderKey), u64)> = None;
        for (queue_id, penalty) in &op.config.memberships {
            let (Some(queue), Some(queue_index)) = (self.state.queues.get(queue_id), self.indexes.queues.get(queue_id))
            else {
                continue;
            };
            if (queue.config.pull_only && !pulling) || self.is_capped(queue_id) || queue_index.order.is_empty() {
                continue;
            }
            if !op.has_skills(queue.config.required_skills.iter()) {
                continue;
            }
            if !pulling && queue_index.callbacks_waiting == 0 {
                // Tier pruning: allowed penalty only grows with wait, so if even the longest
                // waiting caller may not use this operator yet, nobody in the queue may.
                let oldest = queue_index.live_by_joined.first().map(|(joined, _)| *joined).unwrap_or(self.state.now_ms);
                if queue.config.allowed_penalty(self.state.now_ms.saturating_sub(oldest)).is_some_and(|a| *penalty > a)
                {
                    continue;
                }
            }
            let weight = Reverse(queue.config.weight);
            for (key, call_number) in queue_index.order.iter() {
                if best.as_ref().is_some_and(|(b, _)| (weight, key) >= *b) {
                    break;
                }
                if self.eligible(op, *penalty, &self.state.calls[&call_number], !pulling) {
                    best = Some(((weight, key), call_number));
                    break;
                }
            }
        }
        best.map(|(_, call_number)| call_number)
    }

    /// The best available operator for a waiting caller: lowest penalty tier, then longest
    /// idle, then one at the caller's site, then by id.
    fn best_operator_for(&self, call_number: u64) -> Option<OperatorId> {
        let call = self.state.calls.get(&call_number)?;
        if !call.is_waiting() || !call.callback_ready() || !self.call_reachable(call) {
            return None;
        }
        let queue = self.state.queues.get(&call.queue)?;
        if queue.config.pull_only || self.is_capped(&call.queue) {
            return None;
        }
        let allowed = queue.config.allowed_penalty(self.state.now_ms.saturating_sub(call.joined_at_ms));
        let mut best: Option<(u8, u64, &OperatorId)> = None;
        for (penalty, idle_since, id) in &self.indexes.queues.get(&call.queue)?.available {
            if allowed.is_some_and(|a| *penalty > a) {
                break;
            }
            if best.is_some_and(|(p, i, _)| (p, i) != (*penalty, *idle_since)) {
                break; // past the group of equally good operators
            }
            let op = &self.state.operators[id];
            debug_assert!(op.is_offerable(), "operator {id} is in the available index but not offerable");
            if !self.eligible(op, *penalty, call, false) {
                continue;
            }
            let local = op.site == Some(call.entry_site);
            if best.is_none() || local {
                best = Some((*penalty, *idle_since, id));
                if local {
                    break;
                }
            }
        }
        best.map(|(_, _, id)| id.clone())
    }

    /// First (caller, operator) pair in a queue, scanning callers in line order.
    fn first_pair_in(&self, queue: &QueueId) -> Option<(u64, OperatorId)> {
        let queue_index = self.indexes.queues.get(queue)?;
        if queue_index.available.is_empty() || self.is_capped(queue) {
            return None;
        }
        for (_, call_number) in queue_index.order.iter() {
            if let Some(op) = self.best_operator_for(call_number) {
                return Some((call_number, op));
            }
        }
        None
    }
}
