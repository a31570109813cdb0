//! The state cross-checked against itself (tests and the simulator run it after every step).

use super::state::{Indexes, Scratch};
use super::Routing;
use crate::effect::OperatorStatus;
use crate::ids::{CallId, OperatorId};
use crate::model::CallState;
use std::collections::BTreeMap;

impl Routing {
    /// Cross-checks the state against itself: every offer and connection is held by both
    /// sides with the same fence, no operator or caller is in two, indexes match a rebuild.
    /// Used by tests and the simulator after every step.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.check_offers_held_by_both_sides()?;
        self.check_login_channels_belong_to_logged_in_operators()?;
        self.check_pin_failures_are_bounded()?;
        self.check_merging_sites_stay_unreachable()?;
        self.check_indexes_match_a_rebuild()
    }

    /// A site whose island is merging stays unreachable until its End, and its merge has
    /// taken no more records, calls or operator chunks than its Begin announced.
    fn check_merging_sites_stay_unreachable(&self) -> Result<(), String> {
        for (site, mark) in &self.state.islands.marks {
            if mark.epoch.site != *site || !self.is_site_unreachable(*site) {
                return Err(format!("site {} merges island {} but is not held unreachable", site.0, mark.epoch.seq));
            }
            let (progress, parties) = (&mark.progress, &mark.progress.parties);
            if progress.records_merged > progress.counts.records
                || parties.calls_merged > progress.counts.calls
                || parties.operator_chunks_merged > progress.counts.operator_chunks
            {
                return Err(format!("the merge of site {} took more than its begin announced", site.0));
            }
        }
        Ok(())
    }

    /// Wrong PINs are kept only for configured operators, at most the lockout's count each.
    fn check_pin_failures_are_bounded(&self) -> Result<(), String> {
        for (id, times) in &self.state.phone_logins.pin_failures {
            if !self.state.operators.contains_key(id) || times.is_empty() {
                return Err(format!("wrong PINs kept for operator {id} who is not configured, or none"));
            }
            if times.len() > super::PIN_LOCKOUT_FAILURES_MAX {
                return Err(format!("{} wrong PINs kept for operator {id}", times.len()));
            }
        }
        Ok(())
    }

    /// A login call is remembered only while its operator is logged in (AGENTLOGOFF forgets it).
    fn check_login_channels_belong_to_logged_in_operators(&self) -> Result<(), String> {
        for id in self.state.phone_logins.calls.keys() {
            if !self.state.operators.get(id).is_some_and(|op| op.is_logged_in()) {
                return Err(format!("login channel kept for operator {id}, who is not logged in"));
            }
        }
        Ok(())
    }

    /// Every offer and connection is held by the call and its operator with the same fence,
    /// and no operator holds two calls.
    fn check_offers_held_by_both_sides(&self) -> Result<(), String> {
        let mut operators_in_offers: BTreeMap<&OperatorId, &CallId> = BTreeMap::new();
        for call in self.state.calls.values() {
            if self.state.outages.released_calls.contains_key(&call.call_number) {
                // Its operator was released by its own site; see sites.rs.
                if !matches!(call.state, CallState::Connected { operator_site, .. } if operator_site != call.entry_site)
                {
                    return Err(format!("released call {} is not a connected cross-site call", call.id));
                }
                continue;
            }
            let (operator, fence, busy) = match &call.state {
                CallState::Waiting => continue,
                CallState::Offered { operator, fence, .. } => (operator, *fence, false),
                CallState::Connected { operator, fence, .. } => (operator, *fence, true),
            };
            if let Some(other) = operators_in_offers.insert(operator, &call.id) {
                return Err(format!("operator {operator} holds calls {other} and {}", call.id));
            }
            let op = self
                .state
                .operators
                .get(operator)
                .ok_or_else(|| format!("call {} held by unknown operator", call.id))?;
            let expected = if busy {
                OperatorStatus::Busy { call: call.id.clone(), fence }
            } else {
                OperatorStatus::Offered { call: call.id.clone(), fence }
            };
            if op.status != expected {
                return Err(format!("call {} is {:?} but operator {operator} is {:?}", call.id, call.state, op.status));
            }
        }
        for op in self.state.operators.values() {
            if let OperatorStatus::Offered { call, .. } | OperatorStatus::Busy { call, .. } = &op.status {
                if operators_in_offers.get(&op.config.id) != Some(&call) {
                    return Err(format!("operator {} claims call {call} which does not claim it", op.config.id));
                }
            }
        }
        Ok(())
    }

    /// The derived indexes equal those rebuilt from the state.
    fn check_indexes_match_a_rebuild(&self) -> Result<(), String> {
        // Rebuild from a copy without the id memories (dedup windows, ended calls): no index
        // is derived from them but the ended-call set, and copying them made every check cost
        // as much as tens of thousands of remembered ids.
        let mut rebuilt = Routing {
            state: self.state.without_id_memories(),
            indexes: Indexes::default(),
            scratch: Scratch::default(),
        };
        rebuilt.rebuild_indexes();
        if self.indexes.ended_calls.len() != self.state.ended_calls.len() {
            return Err("the ended-call set differs from the ended-call list".into());
        }
        for (id, queue_index) in &self.indexes.queues {
            let r = &rebuilt.indexes.queues[id];
            let ours: Vec<_> = queue_index.order.iter().collect();
            let theirs: Vec<_> = r.order.iter().collect();
            if ours != theirs
                || queue_index.available != r.available
                || queue_index.live_by_joined != r.live_by_joined
                || (queue_index.logged_in, queue_index.ready, queue_index.active, queue_index.callbacks_waiting)
                    != (r.logged_in, r.ready, r.active, r.callbacks_waiting)
            {
                return Err(format!("index of queue {id} differs from a rebuild"));
            }
        }
        if self.indexes.waiting_total != rebuilt.indexes.waiting_total
            || self.indexes.call_numbers != rebuilt.indexes.call_numbers
        {
            return Err("call indexes differ from a rebuild".into());
        }
        Ok(())
    }
}
