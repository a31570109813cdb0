//! An island's fork of the routing state (island mode, docs/rfcs/island-mode.md §2.1): the
//! same state machine, run by one cut-off site over its own journal, seeing every other
//! site as unreachable. No second implementation of routing: the fork differs from the
//! global state only in what `State::islands` holds, which reachability and the staffing
//! counts consult.

use super::state::Scratch;
use super::Routing;
use crate::ids::SiteId;
use crate::island::{IslandEpoch, IslandFork};
use crate::island_merge::StatsDelta;
use std::collections::BTreeSet;

impl Routing {
    /// The island's routing: this state, with every other site unreachable since `now_ms`
    /// (through the outage machinery, so their operators leave the offerable index and
    /// their callers' timers wait), the callback promises that exist now parked (the
    /// majority serves them), and staffing counted from the reachable sites only.
    ///
    /// Other sites are `members` but `epoch.site`, plus any other site an operator is
    /// logged in at or a caller entered at (the island hears none of them). A site already
    /// unreachable keeps its time; a lost site stays lost.
    pub fn fork_island(&self, epoch: IslandEpoch, members: &[SiteId], now_ms: u64) -> Routing {
        let mut fork = self.clone();
        let parked_calls = self.state.calls.values().filter(|c| c.callback.is_some()).map(|c| c.call_number).collect();
        let stats_at_fork = self.stats_now();
        fork.state.islands.fork = Some(IslandFork {
            epoch,
            parked_calls,
            stats_at_fork,
            records: Vec::new(),
            handle_samples: Default::default(),
            pin_failures: Default::default(),
        });
        for site in self.sites_named(members) {
            let known = self.state.lost_sites.contains(&site) || self.is_site_unreachable(site);
            if site != epoch.site && !known {
                fork.set_site_unreachable(site, Some(now_ms));
            }
        }
        // The staffing counts follow the fork's rule now; nothing is paired by forking (it
        // only takes parties away), so the fork starts as quiescent as the state it copies.
        fork.rebuild_indexes();
        fork.scratch = Scratch::default();
        fork
    }

    /// The fork this state is, if it is an island's (None on the global state).
    pub fn island(&self) -> Option<&IslandFork> {
        self.state.islands.fork.as_ref()
    }

    /// Every queue's and gate's stats as they stand.
    pub(super) fn stats_now(&self) -> StatsDelta {
        StatsDelta {
            queues: self.state.queues.iter().map(|(id, q)| (id.clone(), q.stats.clone())).collect(),
            gates: self.state.gates.iter().map(|(id, g)| (id.clone(), g.stats.clone())).collect(),
        }
    }

    /// `members`, and every site a logged-in operator or a caller names.
    fn sites_named(&self, members: &[SiteId]) -> BTreeSet<SiteId> {
        let operators = self.state.operators.values().filter_map(|op| op.site);
        let callers = self.state.calls.values().map(|c| c.entry_site);
        members.iter().copied().chain(operators).chain(callers).collect()
    }
}
