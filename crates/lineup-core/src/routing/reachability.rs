//! Which calls and offers an unreachable site holds up (see sites.rs): reads of the state
//! that matching and the timers consult.

use super::Routing;
use crate::model::{Call, CallState, Operator};

impl Routing {
    /// May this call be offered, as far as its caller's site goes? A callback promise has no
    /// caller leg: the operator's site places the call, so it is reachable, except on an
    /// island's fork for a promise that existed at the fork (the majority serves it).
    pub(super) fn call_reachable(&self, call: &Call) -> bool {
        if self.state.islands.fork.as_ref().is_some_and(|fork| fork.is_parked(call.call_number)) {
            return false;
        }
        call.callback.is_some() || !self.state.outages.unreachable_sites.contains_key(&call.entry_site)
    }

    /// Does this operator count toward its queues' staffing (ETA, join-empty,
    /// leave-when-empty)? Everywhere on the global state, since a silent site's operators
    /// are still staff and will be back; on an island's fork only at a reachable site, since
    /// only those can take the island's callers.
    pub(super) fn counts_as_staff(&self, op: &Operator) -> bool {
        self.state.islands.fork.is_none() || !self.state.outages.is_unreachable(op.site)
    }

    /// May this operator be offered a caller now? Not at an unreachable site, on the global
    /// state or a fork: no other site can reach their phone, whatever made them available
    /// there (their site's report, the end of a wrap-up on the leader's clock).
    pub(super) fn operator_reachable(&self, op: &Operator) -> bool {
        !self.state.outages.is_unreachable(op.site)
    }

    /// Is the site holding this live caller's leg unreachable?
    pub(super) fn caller_site_unreachable(&self, call_number: u64) -> bool {
        self.state.calls.get(&call_number).is_some_and(|c| !self.call_reachable(c))
    }

    /// Does the current offer of this call involve a site that is unreachable?
    pub(super) fn offer_spans_unreachable_site(&self, call_number: u64) -> bool {
        let Some(call) = self.state.calls.get(&call_number) else { return false };
        match &call.state {
            CallState::Offered { operator_site, .. } => {
                self.state.outages.unreachable_sites.contains_key(operator_site) || !self.call_reachable(call)
            }
            _ => false,
        }
    }
}
