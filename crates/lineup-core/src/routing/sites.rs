//! Site health as the routing core sees it.
//!
//! A site the leader cannot hear is **unreachable**, not gone: its Asterisk still carries
//! its calls, and its node may be restarting or cut off by the WAN. So nothing is ended,
//! freed or logged out because of silence. What changes is that nothing is offered across
//! it: its waiting callers are not offered to anyone, its operators are not offered any
//! caller, and timers whose action only that site could carry out (a caller's max wait, an
//! offer's deadline) wait until it is heard again. Only `SiteLost` (an admin's declaration,
//! or silence for the long `site_lost_after_ms`) ends its calls.

use super::refusals::invalid;
use super::{CommandResult, Response, Routing};
use crate::command::HungUpBy;
use crate::effect::{Effect, Outcome, QueueLogVerb, SiteHealth};
use crate::ids::{CallId, OperatorId, SiteId};
use crate::model::CallState;
use crate::CoreError;

/// A timer that a silent site would have to act on is looked at again after this long.
pub const UNREACHABLE_TIMER_RECHECK_MS: u64 = 1_000;

impl Routing {
    pub(super) fn site_unreachable(&mut self, site: SiteId) -> CommandResult {
        if !self.state.lost_sites.contains(&site) && !self.state.outages.unreachable_sites.contains_key(&site) {
            let now = self.state.now_ms;
            self.set_site_unreachable(site, Some(now));
            self.scratch.out.push(Effect::SiteHealthChanged { site, health: SiteHealth::Unreachable });
        }
        Ok(Response::Done)
    }

    /// The operator's site says its side of a connected cross-site call has ended (the
    /// operator hung up, or the trunk call went away) while the caller's site has not
    /// reported: the operator is freed now, the call's outcome waits for the caller's site.
    pub(super) fn operator_leg_ended(&mut self, id: &CallId, operator: &OperatorId, fence: u64) -> CommandResult {
        let call_number = self.call_number_of(id)?;
        let call = &self.state.calls[&call_number];
        let CallState::Connected { operator: holder, fence: current, operator_site, .. } = &call.state else {
            return Err(CoreError::StaleFence { call: id.clone(), got: fence, current: call.offer_fence() });
        };
        if *current != fence || holder != operator {
            return Err(CoreError::StaleFence { call: id.clone(), got: fence, current: Some(*current) });
        }
        if *operator_site == call.entry_site || self.state.outages.released_calls.contains_key(&call_number) {
            return Err(invalid("only the operator's half of a cross-site call is released", id.to_string()));
        }
        let queue = call.queue.clone();
        let now = self.state.now_ms;
        self.state.outages.released_calls.insert(call_number, now);
        self.after_call(operator, &queue);
        Ok(Response::Done)
    }

    pub(super) fn site_back(&mut self, site: SiteId) -> CommandResult {
        // A merging island comes back only through its merge's end, which carries what it
        // did while cut off.
        if let Some(mark) = self.state.islands.marks.get(&site) {
            return Err(CoreError::IslandMergeOpen { site, open_seq: mark.epoch.seq });
        }
        let was_lost = self.state.lost_sites.remove(&site);
        if was_lost && !self.state.outages.unreachable_sites.contains_key(&site) {
            self.scratch.out.push(Effect::SiteHealthChanged { site, health: SiteHealth::Back });
        }
        self.bring_site_back(site);
        Ok(Response::Done)
    }

    /// The site is reachable again: its operators rejoin the offerable index and its
    /// waiting callers may be offered (settle pairs them). Said once to webhooks.
    pub(super) fn bring_site_back(&mut self, site: SiteId) {
        if self.state.outages.unreachable_sites.contains_key(&site) {
            self.scratch.out.push(Effect::SiteHealthChanged { site, health: SiteHealth::Back });
            self.set_site_unreachable(site, None);
            let waiting: Vec<u64> = self
                .state
                .calls
                .values()
                .filter(|c| c.entry_site == site && c.is_waiting())
                .map(|c| c.call_number)
                .collect();
            self.scratch.dirty_calls.extend(waiting);
        }
    }

    pub(super) fn site_lost(&mut self, site: SiteId) -> CommandResult {
        if self.state.lost_sites.contains(&site) {
            return Ok(Response::Done);
        }
        // A lost island's merge is given up: its calls end here, as every lost site's do.
        self.state.islands.marks.remove(&site);
        // A lost site is no longer "unreachable": its operators become indexable again
        // (they are logged out below) and its callers' timers run again.
        self.set_site_unreachable(site, None);
        self.state.lost_sites.insert(site);
        self.scratch.out.push(Effect::SiteHealthChanged { site, health: SiteHealth::Lost });
        let nos: Vec<u64> = self.state.calls.keys().copied().collect();
        for call_number in nos {
            let Some(call) = self.state.calls.get(&call_number) else { continue };
            let caller_lost = call.callback.is_none() && call.entry_site == site;
            match call.state.clone() {
                CallState::Waiting if caller_lost => {
                    self.leave_waiting(call_number, Outcome::SiteLost, QueueLogVerb::SiteLost, None);
                }
                CallState::Waiting => {}
                CallState::Offered { operator, operator_site, .. } => {
                    if caller_lost {
                        self.cancel_offer(call_number);
                        if operator_site != site {
                            self.release_after_offer(&operator, false);
                        }
                        self.leave_waiting(call_number, Outcome::SiteLost, QueueLogVerb::SiteLost, None);
                    } else if operator_site == site {
                        self.cancel_offer(call_number);
                        self.return_to_queue(call_number);
                    }
                }
                CallState::Connected { operator_site, .. } => {
                    if caller_lost || operator_site == site {
                        self.finish_connected(call_number, Outcome::Completed { by: HungUpBy::SiteLost });
                    }
                }
            }
        }
        let lost_operators: Vec<OperatorId> = self
            .state
            .operators
            .values()
            .filter(|op| op.is_logged_in() && op.site == Some(site))
            .map(|op| op.config.id.clone())
            .collect();
        for id in lost_operators {
            self.go_offline(&id);
        }
        // Where acted on: nothing of the lost site is left but callback promises.
        debug_assert!(!self.state.operators.values().any(|op| op.is_logged_in() && op.site == Some(site)));
        debug_assert!(!self.state.calls.values().any(|c| c.callback.is_none() && c.entry_site == site));
        Ok(Response::Done)
    }

    /// Marks the site unreachable since `since_ms`, or reachable (None). The site's operators
    /// leave or rejoin the offerable index, which depends on the set.
    pub(super) fn set_site_unreachable(&mut self, site: SiteId, since_ms: Option<u64>) {
        let at_site: Vec<OperatorId> =
            self.state.operators.values().filter(|op| op.site == Some(site)).map(|op| op.config.id.clone()).collect();
        for id in &at_site {
            self.index_operator(id, false);
        }
        match since_ms {
            Some(at) => self.state.outages.unreachable_sites.insert(site, at),
            None => self.state.outages.unreachable_sites.remove(&site),
        };
        for id in at_site {
            self.index_operator(&id, true);
            self.scratch.dirty_operators.insert(id);
        }
    }

    /// Sites the leader has not heard for a while, with the core time it said so.
    pub fn unreachable_sites(&self) -> impl Iterator<Item = (SiteId, u64)> + '_ {
        self.state.outages.unreachable_sites.iter().map(|(site, since)| (*site, *since))
    }

    pub fn is_site_unreachable(&self, site: SiteId) -> bool {
        self.state.outages.unreachable_sites.contains_key(&site)
    }

    /// A site asked to act on a channel now (hang up, monitor) must be neither lost nor
    /// unreachable.
    pub(super) fn check_site_can_act(&self, site: SiteId) -> Result<(), CoreError> {
        if self.state.lost_sites.contains(&site) {
            return Err(CoreError::SiteDown(site));
        }
        if self.is_site_unreachable(site) {
            return Err(CoreError::SiteUnreachable(site));
        }
        Ok(())
    }
}
