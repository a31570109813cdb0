//! What each side of a split refuses about the other side's parties (island mode,
//! docs/rfcs/island-mode.md §1.5), checked before any handler by apply and by
//! `check_command` alike.
//!
//! The majority (the global state) refuses a supervisor's or admin's change of a party an
//! unreachable site owns (`island::owner`'s rule), and config removals while any site is
//! unreachable: the site may be serving that party on its own as an island, and the merge
//! must find it there. Only `Audited` commands are refused: the API proposes every admin's
//! and supervisor's write wrapped, and nothing else is. A site's own reports (an operator's
//! leg hung up, so `OperatorLogout`) are not: they can commit while the leader still marks
//! their site unreachable, since a follower's proposal reaches the leader as a
//! `ClientWrite` whatever the leader heard last, and `SiteBack` waits for the leader's next
//! health round; refusing them would lose what the phone did.
//!
//! An island's fork refuses what it cannot own: site health (only the majority judges it;
//! an island rejoins by merging), entries and logins at another site, a pull, logout or
//! state change of an operator who is not the island's, and a callback request, reassign or priority
//! change of another site's caller or of a promise parked at the fork.

use super::refusals::invalid;
use super::Routing;
use crate::command::CommandBody;
use crate::ids::{CallId, OperatorId, SiteId};
use crate::island::{caller_site, operator_site, IslandFork};
use crate::island_merge::ISLAND_RECORDS_MAX;
use crate::CoreError;
use std::collections::BTreeSet;

impl Routing {
    /// The split's refusal of `body`, if any (an `Audited` wrapper is looked through).
    pub(super) fn check_split(&self, body: &CommandBody) -> Result<(), CoreError> {
        let (inner, audited) = match body {
            CommandBody::Audited { body, .. } => (body.as_ref(), true),
            other => (other, false),
        };
        match &self.state.islands.fork {
            Some(fork) => self.check_fork_command(fork, inner),
            None if audited && !self.state.outages.unreachable_sites.is_empty() => self.check_majority_command(inner),
            None => Ok(()),
        }
    }

    fn check_fork_command(&self, fork: &IslandFork, body: &CommandBody) -> Result<(), CoreError> {
        let island = fork.epoch.site;
        let at = |site: SiteId| if site == island { Ok(()) } else { Err(CoreError::SiteUnreachable(site)) };
        match body {
            CommandBody::SiteBack { site } | CommandBody::SiteLost { site } | CommandBody::SiteUnreachable { site } => {
                Err(invalid("site health is the majority's to judge; an island merges", site.to_string()))
            }
            CommandBody::Enqueue(e) => {
                at(e.site)?;
                // The merge carries every record back: a full record refuses new callers
                // (the site's fallback takes them) while calls in progress still end.
                if fork.records.len() >= ISLAND_RECORDS_MAX {
                    return Err(invalid("the island's history for its merge is full", ISLAND_RECORDS_MAX.to_string()));
                }
                Ok(())
            }
            CommandBody::OperatorLogin { site, .. } | CommandBody::OperatorLoginFrom { site, .. } => at(*site),
            CommandBody::RequestCallback { call, .. }
            | CommandBody::Reassign { call, .. }
            | CommandBody::ChangePriority { call, .. }
            | CommandBody::MonitorCall { call, .. }
            | CommandBody::HangUpCall { call } => self.fork_owns_call(fork, call),
            CommandBody::OperatorLogout { operator } | CommandBody::OperatorState { operator, .. } => {
                match operator_site(self, operator) {
                    Some(site) => at(site),
                    None => Ok(()), // the handler answers an unknown operator
                }
            }
            CommandBody::Pull { operator, .. } => match self.state.operators.get(operator).and_then(|op| op.site) {
                Some(site) => at(site),
                // Unknown or offline: the pull's own checks answer.
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// A supervisor's change or a callback request on the island is about its own callers
    /// only: another site's caller, or a promise parked at the fork, is the majority's.
    fn fork_owns_call(&self, fork: &IslandFork, id: &CallId) -> Result<(), CoreError> {
        let Some(call) = self.indexes.call_numbers.get(id).and_then(|n| self.state.calls.get(n)) else {
            return Ok(()); // the handler answers an unknown call
        };
        if fork.is_parked(call.call_number) {
            return Err(invalid("the majority serves this promise until the merge", id.to_string()));
        }
        if call.callback.is_none() && call.entry_site != fork.epoch.site {
            return Err(CoreError::SiteUnreachable(call.entry_site));
        }
        Ok(())
    }

    fn check_majority_command(&self, body: &CommandBody) -> Result<(), CoreError> {
        match body {
            CommandBody::OperatorLogin { operator, .. }
            | CommandBody::OperatorLoginFrom { operator, .. }
            | CommandBody::OperatorLogout { operator }
            | CommandBody::OperatorState { operator, .. }
            | CommandBody::Pull { operator, call: None } => self.operator_not_cut_off(operator),
            CommandBody::Pull { operator, call: Some(call) } => {
                self.operator_not_cut_off(operator)?;
                self.caller_not_cut_off(call)
            }
            CommandBody::Reassign { call, .. }
            | CommandBody::ChangePriority { call, .. }
            | CommandBody::HangUpCall { call } => self.caller_not_cut_off(call),
            CommandBody::DeleteQueue { .. }
            | CommandBody::DeleteGate { .. }
            | CommandBody::DeleteOperator { .. }
            | CommandBody::DeleteSchedule { .. } => self.no_site_cut_off(),
            CommandBody::ApplyConfig(set) if self.config_removes_anything(set) => self.no_site_cut_off(),
            _ => Ok(()),
        }
    }

    fn operator_not_cut_off(&self, id: &OperatorId) -> Result<(), CoreError> {
        match operator_site(self, id) {
            Some(site) if self.is_site_unreachable(site) => Err(CoreError::SiteUnreachable(site)),
            _ => Ok(()),
        }
    }

    fn caller_not_cut_off(&self, id: &CallId) -> Result<(), CoreError> {
        let site = self.call_view(id).and_then(|view| caller_site(&view.status, view.entry_site));
        match site {
            Some(site) if self.is_site_unreachable(site) => Err(CoreError::SiteUnreachable(site)),
            _ => Ok(()),
        }
    }

    /// A removal could take away what an island's parties stand on (their queue, gate,
    /// operator record or schedule); the first unreachable site is named.
    fn no_site_cut_off(&self) -> Result<(), CoreError> {
        match self.state.outages.unreachable_sites.keys().next() {
            Some(site) => Err(CoreError::SiteUnreachable(*site)),
            None => Ok(()),
        }
    }

    /// Does applying `set` remove a queue, gate, operator or schedule the state has?
    fn config_removes_anything(&self, set: &crate::config_set::RoutingConfigSet) -> bool {
        fn missing<'a, K: Ord + 'a>(have: impl Iterator<Item = &'a K>, keep: BTreeSet<&'a K>) -> bool {
            have.into_iter().any(|id| !keep.contains(id))
        }
        missing(self.state.queues.keys(), set.queues.iter().map(|c| &c.id).collect())
            || missing(self.state.gates.keys(), set.gates.iter().map(|c| &c.id).collect())
            || missing(self.state.operators.keys(), set.operators.iter().map(|c| &c.id).collect())
            || missing(self.state.schedules.keys(), set.schedules.iter().map(|c| &c.id).collect())
    }
}
