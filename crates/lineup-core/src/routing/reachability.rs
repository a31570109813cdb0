//! Which calls and offers an unreachable site holds up (see sites.rs): reads of the state
//! that matching and the timers consult.

use super::Routing;
use crate::model::{Call, CallState};

impl Routing {
    /// May this call be offered, as far as its caller's site goes? A callback promise has no
    /// caller leg: the operator's site places the call, so it is always reachable.
    pub(super) fn call_reachable(&self, call: &Call) -> bool {
        call.callback.is_some() || !self.state.outages.unreachable_sites.contains_key(&call.entry_site)
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
