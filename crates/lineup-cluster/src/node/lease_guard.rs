//! The lease applied to each batch the leader's proposer appends: reads the leases, the
//! membership and the end of the log, runs `lease.rs`'s rules and builds the entry.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lineup_core::{Command, CommandBody, CommandId, SiteId};
use openraft::{RaftMetrics, ServerState};
use tokio::time::Instant;

use super::config::WallClock;
use super::lease::{health_change, leased_sites, plan_batch, BatchPlan, LeaseFrom, LEASE_ACQUIRE_WAIT_MS};
use super::site_state::Store;
use super::PeerContact;
use crate::raft_types::LineupRaftHandle;

/// Command ids of this node's own proposals (API writes, the leader's duty, the lease's
/// prepended `SiteUnreachable`): one origin per node run, one serial counter.
#[derive(Clone)]
pub(crate) struct CommandIds {
    origin: u64,
    next_serial: Arc<AtomicU64>,
}

impl CommandIds {
    pub(crate) fn new(origin: u64) -> Self {
        Self { origin, next_serial: Arc::new(AtomicU64::new(1)) }
    }

    pub(crate) fn next(&self) -> CommandId {
        CommandId { origin: self.origin, serial: self.next_serial.fetch_add(1, Ordering::Relaxed) }
    }
}

/// What the proposer needs to lease-check a batch.
pub(crate) struct LeaseGuard {
    pub(crate) site: u64,
    pub(crate) contact: PeerContact,
    pub(crate) store: Store,
    pub(crate) unreachable_after: Duration,
    pub(crate) ids: CommandIds,
    pub(crate) clock: WallClock,
}

/// The site-health marks at the end of this leader's log: what the proposer appended in
/// the current term (the applied state may lag behind it).
#[derive(Default)]
pub(crate) struct LogEnd {
    term: u64,
    leader_since: Option<Instant>,
    down: BTreeMap<u64, bool>,
}

impl LogEnd {
    /// Follows the node's Raft state: a new term as leader starts a new record.
    pub(crate) fn observe(&mut self, metrics: &RaftMetrics<u64, openraft::BasicNode>) {
        self.follow(metrics.state == ServerState::Leader, metrics.current_term, Instant::now());
    }

    /// A node leads in a term it was candidate in first: the record starts when it leads,
    /// not when the term does.
    fn follow(&mut self, leading: bool, term: u64, now: Instant) {
        if !leading {
            *self = LogEnd { term, ..LogEnd::default() };
        } else if self.leader_since.is_none() || term != self.term {
            *self = LogEnd { term, leader_since: Some(now), ..LogEnd::default() };
        }
    }
}

/// A batch as the lease shapes it: the commands to append, and which of the caller's
/// commands were held back.
pub(crate) struct Shaped {
    pub(crate) commands: Vec<Command>,
    pub(crate) prepended: usize,
    pub(crate) held_back: Vec<usize>,
    pub(crate) checked_at: Instant,
}

impl LeaseGuard {
    /// Shapes `commands` for appending, or `None` when this node does not lead (Raft then
    /// refuses the write itself). A new leader first waits up to [`LEASE_ACQUIRE_WAIT_MS`]
    /// for leases from its first heartbeat round.
    pub(crate) async fn shape(
        &self,
        raft: &LineupRaftHandle,
        log_end: &mut LogEnd,
        commands: &[Command],
    ) -> Option<Shaped> {
        let metrics = raft.metrics().borrow().clone();
        log_end.observe(&metrics);
        let since = log_end.leader_since?;
        let members: BTreeSet<u64> = metrics.membership_config.membership().voter_ids().collect();
        self.acquire(&members, metrics.current_term, since).await;
        let checked_at = Instant::now();
        let leased = self.leased(&members, metrics.current_term, checked_at);
        let applied_this_term = metrics.last_applied.is_some_and(|l| l.leader_id.term == metrics.current_term);
        let down = self.down_at_log_end(&members, log_end, applied_this_term);
        let bodies: Vec<&CommandBody> = commands.iter().map(|c| &c.body).collect();
        let plan = plan_batch(&members, &leased, &down, &bodies);
        let shaped = self.build(plan, commands, checked_at);
        log_end.down.extend(shaped.commands.iter().filter_map(|c| health_change(&c.body)));
        Some(shaped)
    }

    /// The entry `plan` makes of `commands`.
    fn build(&self, plan: BatchPlan, commands: &[Command], checked_at: Instant) -> Shaped {
        let BatchPlan { prepend_unreachable, held_back } = plan;
        let prepended = prepend_unreachable.len();
        let mut shaped: Vec<Command> = prepend_unreachable.into_iter().map(|site| self.unreachable(site)).collect();
        shaped.extend(commands.iter().enumerate().filter(|(i, _)| !held_back.contains(i)).map(|(_, c)| c.clone()));
        Shaped { commands: shaped, prepended, held_back, checked_at }
    }

    /// Holds a new leader until every member is leased or [`LEASE_ACQUIRE_WAIT_MS`] passed.
    async fn acquire(&self, members: &BTreeSet<u64>, term: u64, since: Instant) {
        let deadline = since + Duration::from_millis(LEASE_ACQUIRE_WAIT_MS);
        loop {
            // Registered before the check, so a lease noted in between still wakes us.
            let noted = self.contact.lease_noted.notified();
            tokio::pin!(noted);
            noted.as_mut().enable();
            if Instant::now() >= deadline || self.leased(members, term, Instant::now()).len() == members.len() {
                return;
            }
            let _ = tokio::time::timeout_at(deadline, noted).await;
        }
    }

    fn leased(&self, members: &BTreeSet<u64>, term: u64, now: Instant) -> BTreeSet<u64> {
        let leases: BTreeMap<u64, LeaseFrom> =
            self.contact.lease_from.lock().unwrap_or_else(|p| p.into_inner()).clone();
        leased_sites(members, self.site, term, now, &leases, self.unreachable_after)
    }

    /// Members unreachable or lost at the end of the log: as this leader appended, else as
    /// applied once the applied state has reached this term (before that, an earlier
    /// leader's entry may still change it, so the site counts as not down and is re-marked).
    fn down_at_log_end(&self, members: &BTreeSet<u64>, log_end: &LogEnd, applied_this_term: bool) -> BTreeSet<u64> {
        let store = self.store.read();
        let routing = store.app.routing();
        let applied_down = |s: u64| routing.is_site_unreachable(SiteId(s)) || routing.is_site_lost(SiteId(s));
        let down = |s: &u64| match log_end.down.get(s) {
            Some(down) => *down,
            None => applied_this_term && applied_down(*s),
        };
        members.iter().copied().filter(down).collect()
    }

    /// `SiteUnreachable` built as the leader duty builds its health commands.
    fn unreachable(&self, site: SiteId) -> Command {
        Command { id: self.ids.next(), at_ms: self.clock.now_unix_ms(), body: CommandBody::SiteUnreachable { site } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leadership_is_dated_from_winning_even_in_the_term_it_stood_in() {
        let (t0, later) = (Instant::now(), Instant::now() + Duration::from_millis(50));
        let mut log_end = LogEnd::default();
        log_end.follow(false, 7, t0);
        log_end.down.insert(2, true);
        log_end.follow(true, 7, later);
        assert_eq!((log_end.term, log_end.leader_since), (7, Some(later)));
        assert!(log_end.down.is_empty());
        log_end.down.insert(2, true);
        log_end.follow(true, 7, later + Duration::from_millis(50));
        assert_eq!(log_end.leader_since, Some(later), "the same leadership keeps its record");
        assert_eq!(log_end.down.get(&2), Some(&true));
        log_end.follow(true, 8, later);
        assert!(log_end.down.is_empty(), "a new term starts afresh");
    }
}
