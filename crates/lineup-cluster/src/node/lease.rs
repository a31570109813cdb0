//! The majority's lease on each site (island mode, `docs/rfcs/island-mode.md` §1.3): pure
//! rules, tested without a cluster; `proposer.rs` applies them to every batch it appends.
//!
//! A site is leased while the leader's monotonic clock shows less than
//! `site_unreachable_after_ms` since it *sent* the last request that site accepted in the
//! leader's term. A batch may treat a site as reachable only while the site is leased: an
//! unleased site that is not already down at the end of the log gets `SiteUnreachable`
//! prepended, and a `SiteBack` for it is held back. A cut-off site waits out a longer time
//! (`island_after_ms`, [`check_island_bound`]) before it decides anything alone, so the two
//! sides never decide about the same party at once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use lineup_core::{CommandBody, SiteId};
use tokio::time::Instant;

use crate::ClusterError;

/// How long a new leader holds client batches so that its first heartbeat round can bring
/// leases in: two heartbeats ([`super::HEARTBEAT_INTERVAL_MS`]).
pub const LEASE_ACQUIRE_WAIT_MS: u64 = 300;
/// The longest time between the lease check and the append that §1.4's inequality budgets
/// for; a longer hand-over is reported (see `proposer.rs`).
pub const LEASE_CHECK_TO_APPEND_MAX_MS: u64 = 200;
/// Defaults of the island settings that the inequality needs (§1.4).
pub const CLOCK_RATE_DRIFT_MAX_PPM: u64 = 1_000;
pub const PAUSE_MARGIN_MS: u64 = 1_500;
pub const ISLAND_AFTER_MS: u64 = 6_000;

const _: () = assert!(LEASE_ACQUIRE_WAIT_MS == 2 * super::HEARTBEAT_INTERVAL_MS);

/// The send time and term of the last request a peer accepted (an AppendEntries answered
/// with success, or a granted vote).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseFrom {
    pub term: u64,
    pub sent_at: Instant,
}

impl LeaseFrom {
    /// Whether `self` is a later acceptance than `other` (a slow answer to an older request
    /// must not move the lease back).
    pub fn newer_than(&self, other: &LeaseFrom) -> bool {
        (self.term, self.sent_at) > (other.term, other.sent_at)
    }
}

/// The member sites the leader (site `leader`, in `term`) holds a lease on at `now`.
pub fn leased_sites(
    members: &BTreeSet<u64>,
    leader: u64,
    term: u64,
    now: Instant,
    lease_from: &BTreeMap<u64, LeaseFrom>,
    unreachable_after: Duration,
) -> BTreeSet<u64> {
    let leased = |site: &u64| {
        *site == leader
            || lease_from.get(site).is_some_and(|l| l.term == term && now.duration_since(l.sent_at) < unreachable_after)
    };
    members.iter().copied().filter(leased).collect()
}

/// What the lease makes of a batch: the sites to prepend `SiteUnreachable` for, and the
/// positions of commands held back (answered "not committed").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchPlan {
    pub prepend_unreachable: Vec<SiteId>,
    pub held_back: Vec<usize>,
}

/// The plan for a batch of `bodies`, given the leased sites and the sites down (unreachable
/// or lost) at the end of the leader's log.
pub fn plan_batch(
    members: &BTreeSet<u64>,
    leased: &BTreeSet<u64>,
    down_at_log_end: &BTreeSet<u64>,
    bodies: &[&CommandBody],
) -> BatchPlan {
    let unleased = |site: u64| members.contains(&site) && !leased.contains(&site);
    let prepend_unreachable =
        members.iter().filter(|s| unleased(**s) && !down_at_log_end.contains(s)).map(|s| SiteId(*s)).collect();
    let held_back = bodies
        .iter()
        .enumerate()
        .filter(|(_, body)| matches!(body, CommandBody::SiteBack { site } if unleased(site.0)))
        .map(|(position, _)| position)
        .collect();
    BatchPlan { prepend_unreachable, held_back }
}

/// How a site-health command changes a site's "down" mark at the end of the log, if it does.
pub fn health_change(body: &CommandBody) -> Option<(u64, bool)> {
    match body {
        CommandBody::SiteUnreachable { site } | CommandBody::SiteLost { site } => Some((site.0, true)),
        CommandBody::SiteBack { site } => Some((site.0, false)),
        _ => None,
    }
}

/// The node settings of §1.4 that bound the majority's lease against the island's wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IslandTiming {
    pub island_after_ms: u64,
    pub clock_rate_drift_max_ppm: u64,
    pub pause_margin_ms: u64,
}

impl Default for IslandTiming {
    fn default() -> Self {
        Self {
            island_after_ms: ISLAND_AFTER_MS,
            clock_rate_drift_max_ppm: CLOCK_RATE_DRIFT_MAX_PPM,
            pause_margin_ms: PAUSE_MARGIN_MS,
        }
    }
}

/// §1.4's inequality: `island_after_ms / (1 + ρ) > site_unreachable_after_ms / (1 − ρ) +
/// LEASE_CHECK_TO_APPEND_MAX_MS + pause_margin_ms`, with `ρ = clock_rate_drift_max_ppm × 10⁻⁶`.
/// Computed exactly in integers (both sides multiplied by `(1 + ρ)(1 − ρ) × 10¹⁸`).
pub fn check_island_bound(site_unreachable_after_ms: u64, island: &IslandTiming) -> Result<(), ClusterError> {
    const MILLION: u128 = 1_000_000;
    let ppm = u128::from(island.clock_rate_drift_max_ppm);
    if ppm >= MILLION {
        return Err(refusal(format!("clock_rate_drift_max_ppm = {ppm} must be below 1,000,000")));
    }
    let (slow, fast) = (MILLION - ppm, MILLION + ppm);
    let margin_ms = u128::from(LEASE_CHECK_TO_APPEND_MAX_MS) + u128::from(island.pause_margin_ms);
    let island_side = u128::from(island.island_after_ms) * slow * MILLION;
    let lease_side = u128::from(site_unreachable_after_ms) * fast * MILLION + margin_ms * slow * fast;
    if island_side > lease_side {
        return Ok(());
    }
    Err(refusal(format!(
        "island_after_ms = {} must exceed (site_unreachable_after_ms = {site_unreachable_after_ms}) / (1 − ρ) + \
         LEASE_CHECK_TO_APPEND_MAX_MS ({LEASE_CHECK_TO_APPEND_MAX_MS}) + pause_margin_ms = {}, all times (1 + ρ), \
         with ρ = clock_rate_drift_max_ppm = {ppm} ppm",
        island.island_after_ms, island.pause_margin_ms
    )))
}

fn refusal(reason: String) -> ClusterError {
    ClusterError::Config { what: format!("island timing: {reason}"), source: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: Duration = Duration::from_millis(3_000);

    fn members() -> BTreeSet<u64> {
        BTreeSet::from([1, 2, 3])
    }

    fn lease(term: u64, sent_at: Instant) -> LeaseFrom {
        LeaseFrom { term, sent_at }
    }

    #[test]
    fn a_site_is_leased_below_the_threshold_since_the_send_in_this_term() {
        let t0 = Instant::now();
        let now = t0 + U;
        let just_inside = now - U + Duration::from_millis(1);
        let leases = BTreeMap::from([(2, lease(5, just_inside)), (3, lease(5, t0))]);
        assert_eq!(leased_sites(&members(), 1, 5, now, &leases, U), BTreeSet::from([1, 2]));
    }

    #[test]
    fn a_lease_of_an_earlier_term_or_none_leaves_only_the_leader_leased() {
        let now = Instant::now() + U;
        let leases = BTreeMap::from([(2, lease(4, now))]);
        assert_eq!(leased_sites(&members(), 1, 5, now, &leases, U), BTreeSet::from([1]));
    }

    #[test]
    fn a_later_acceptance_replaces_an_earlier_one_and_not_the_reverse() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_millis(10);
        assert!(lease(5, later).newer_than(&lease(5, t0)));
        assert!(!lease(5, t0).newer_than(&lease(5, later)));
        assert!(lease(6, t0).newer_than(&lease(5, later)));
    }

    #[test]
    fn an_unleased_site_not_yet_down_is_marked_unreachable_first() {
        let plan = plan_batch(&members(), &BTreeSet::from([1, 2]), &BTreeSet::new(), &[]);
        assert_eq!(plan.prepend_unreachable, vec![SiteId(3)]);
        let already_down = plan_batch(&members(), &BTreeSet::from([1, 2]), &BTreeSet::from([3]), &[]);
        assert_eq!(already_down, BatchPlan::default());
    }

    #[test]
    fn site_back_for_an_unleased_site_is_held_back_and_for_a_leased_one_kept() {
        let back_2 = CommandBody::SiteBack { site: SiteId(2) };
        let back_3 = CommandBody::SiteBack { site: SiteId(3) };
        let tick = CommandBody::Tick { now_ms: 1 };
        let down = BTreeSet::from([2, 3]);
        let plan = plan_batch(&members(), &BTreeSet::from([1, 2]), &down, &[&back_2, &tick, &back_3]);
        assert_eq!(plan, BatchPlan { prepend_unreachable: vec![], held_back: vec![2] });
    }

    /// The lease may prepend `SiteUnreachable` for a site the log already marks (the applied
    /// state lags, or a new leader cannot yet tell): the core must take it as a no-op.
    #[test]
    fn a_repeated_site_unreachable_changes_nothing_in_the_core() {
        let mut routing = lineup_core::Routing::new();
        let command = |serial, at_ms, body| lineup_core::Command {
            id: lineup_core::CommandId { origin: 9, serial },
            at_ms,
            body,
        };
        let unreachable = CommandBody::SiteUnreachable { site: SiteId(2) };
        routing.apply(256, &command(1, 1_000, CommandBody::Tick { now_ms: 1_000 }));
        routing.apply(512, &command(2, 1_000, unreachable.clone()));
        let marked: Vec<(SiteId, u64)> = routing.unreachable_sites().collect();
        assert_eq!(marked.len(), 1);
        routing.apply(768, &command(3, 5_000, CommandBody::Tick { now_ms: 5_000 }));
        let again = routing.apply(1_024, &command(4, 5_000, unreachable));
        assert!(again.result.is_ok() && again.effects.is_empty());
        assert_eq!(routing.unreachable_sites().collect::<Vec<_>>(), marked, "still unreachable since the first");
    }

    #[test]
    fn health_commands_move_the_down_mark() {
        assert_eq!(health_change(&CommandBody::SiteUnreachable { site: SiteId(2) }), Some((2, true)));
        assert_eq!(health_change(&CommandBody::SiteLost { site: SiteId(2) }), Some((2, true)));
        assert_eq!(health_change(&CommandBody::SiteBack { site: SiteId(2) }), Some((2, false)));
        assert_eq!(health_change(&CommandBody::Tick { now_ms: 1 }), None);
    }

    #[test]
    fn the_default_island_timing_keeps_the_inequality() {
        assert!(check_island_bound(3_000, &IslandTiming::default()).is_ok());
    }

    /// 3,000 × 1.001 / 0.999 + (200 + 1,500) × 1.001 = 4,707.7 ms.
    #[test]
    fn the_inequality_holds_just_above_its_boundary_and_not_at_it() {
        let at = |island_after_ms| IslandTiming { island_after_ms, ..IslandTiming::default() };
        assert!(check_island_bound(3_000, &at(4_708)).is_ok());
        let refused = check_island_bound(3_000, &at(4_707)).unwrap_err().to_string();
        assert!(refused.contains("island_after_ms = 4707"), "{refused}");
        assert!(refused.contains("site_unreachable_after_ms = 3000"), "{refused}");
        let exact = IslandTiming { island_after_ms: 4_700, clock_rate_drift_max_ppm: 0, pause_margin_ms: 1_500 };
        assert!(check_island_bound(3_000, &exact).is_err(), "equal is not enough");
        assert!(check_island_bound(3_000, &IslandTiming { island_after_ms: 4_701, ..exact }).is_ok());
    }

    #[test]
    fn a_drift_bound_of_a_million_ppm_is_refused() {
        let wild = IslandTiming { clock_rate_drift_max_ppm: 1_000_000, ..IslandTiming::default() };
        assert!(check_island_bound(3_000, &wild).unwrap_err().to_string().contains("clock_rate_drift_max_ppm"));
    }
}
