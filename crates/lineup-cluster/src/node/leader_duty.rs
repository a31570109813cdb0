//! What the leader says about its members' health: a pure decision, so it is tested
//! without a cluster and the simulator's Raft model can run the same rules.
//!
//! A member the leader has not heard for `site_unreachable_after_ms` becomes unreachable
//! (`SiteUnreachable`): its calls go on, nothing is offered across it. Only after the long
//! `site_lost_after_ms` of silence is it declared lost (`SiteLost`), which ends its calls
//! and logs its operators out. Heard again within the unreachable threshold, it is back
//! (`SiteBack`) — unless it may be an island (docs/rfcs/island-mode.md §2.2): a site heard
//! again is asked for its island status first, and brought back only when it answers that it
//! has none. An island comes back through its own merge.
//!
//! `leader_duty` is the async loop that runs it on the leader, with the Tick and the
//! going-quiet rule.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use lineup_core::{Command, CommandBody, IslandEpoch, SiteId};
use openraft::ServerState;
use tokio::time::Instant;

use super::island_watch::IslandPhase;
use super::leader_clock::LeaderClock;
use super::network::call_peer;
use super::{ClusterNode, PeerContact};
use crate::rpc::{PeerRequest, PeerResponse, UNDECODABLE_REQUEST};
use crate::transport::PeerTransport;

/// Bound on asking a site heard again for its island status; unanswered, it is asked again
/// at the next heartbeat.
pub const ISLAND_STATUS_ASK_TIMEOUT_MS: u64 = 500;

/// What a member said about being an island.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IslandAnswer {
    /// Not asked, no answer, or cut off without an epoch yet: it may be about to fork.
    Unknown,
    /// No island: it may be brought back.
    None,
    /// It has this island epoch open: it comes back only through its merge.
    Open(IslandEpoch),
}

impl IslandAnswer {
    /// The answer to `PeerRequest::IslandStatus` (or this node's own status).
    pub fn from_status(epoch: Option<IslandEpoch>, state: IslandPhase) -> IslandAnswer {
        match (epoch, state) {
            (Some(epoch), _) => IslandAnswer::Open(epoch),
            // Healed without an epoch: it forked nothing, so it has nothing to merge.
            (None, IslandPhase::None | IslandPhase::Healed) => IslandAnswer::None,
            (None, IslandPhase::Island) => IslandAnswer::Unknown,
        }
    }
}

/// What the leader knows about one member right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberHealth {
    /// Time since the leader last heard it (or since it became leader, if never).
    pub silent_for_ms: u64,
    /// Whether the leader has heard it at all since becoming leader.
    pub heard: bool,
    /// The routing state's view.
    pub unreachable: bool,
    pub lost: bool,
    /// Its island status, asked only of a member that would otherwise be brought back.
    pub island: IslandAnswer,
}

impl MemberHealth {
    /// The leader's own site: always heard. A site marked unreachable by an earlier leader
    /// that now leads is back.
    pub fn leader_itself(unreachable: bool, lost: bool) -> MemberHealth {
        MemberHealth { silent_for_ms: 0, heard: true, unreachable, lost, island: IslandAnswer::None }
    }
}

/// The two thresholds, chosen together with the peer transport's timeouts (see
/// [`crate::node::SITE_UNREACHABLE_AFTER_MS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthThresholds {
    pub unreachable_after_ms: u64,
    /// 0: never declared lost by silence (only by an admin).
    pub lost_after_ms: u64,
}

/// The health commands for `members` (site id → health), in site order.
pub fn decide(members: &BTreeMap<u64, MemberHealth>, thresholds: HealthThresholds) -> Vec<CommandBody> {
    members.iter().filter_map(|(site, health)| decide_one(SiteId(*site), *health, thresholds)).collect()
}

fn decide_one(site: SiteId, h: MemberHealth, t: HealthThresholds) -> Option<CommandBody> {
    let silent_long = t.lost_after_ms > 0 && h.silent_for_ms >= t.lost_after_ms;
    if silent_long && !h.lost {
        return Some(CommandBody::SiteLost { site });
    }
    let silent = h.silent_for_ms >= t.unreachable_after_ms;
    if silent && !h.unreachable && !h.lost {
        return Some(CommandBody::SiteUnreachable { site });
    }
    if heard_again(h, t) && h.island == IslandAnswer::None {
        return Some(CommandBody::SiteBack { site });
    }
    None
}

/// Whether a member down in the routing state is heard again: it is brought back once it
/// says it is no island.
pub fn heard_again(h: MemberHealth, t: HealthThresholds) -> bool {
    h.silent_for_ms < t.unreachable_after_ms && h.heard && (h.unreachable || h.lost)
}

/// The leader's periodic duty, run every heartbeat interval: propose `Tick` every tick
/// interval, the members' health ([`crate::leader_duty::decide`]), and go quiet when cut off
/// from a quorum. Holds only a weak reference, so it ends with the node.
///
/// Going quiet: openraft 0.9 keeps a leader that can send but not hear (a one-way
/// partition) in office, and its heartbeats and replication retries keep resetting the
/// majority's election timers, so nobody else can lead. A leader that has heard from no
/// quorum for an election timeout therefore stops replicating (its peer clients refuse to
/// send, see `PeerHealth::quiet`) and stops proposing; the majority elects a new leader,
/// and the quiet one steps down as soon as it hears the new term.
pub(crate) async fn leader_duty<T: PeerTransport>(node: std::sync::Weak<ClusterNode<T>>, contact: PeerContact) {
    let Some(timing) = node.upgrade().map(|node| DutyTiming::of(&node)) else { return };
    let mut interval = tokio::time::interval(timing.period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leader_since: Option<Instant> = None;
    let mut last_tick: Option<Instant> = None;
    let mut leader_clock = LeaderClock::default();
    loop {
        interval.tick().await;
        let Some(node) = node.upgrade() else { return };
        let metrics = node.raft.metrics().borrow().clone();
        if metrics.state != ServerState::Leader {
            leader_since = None;
            leader_clock = LeaderClock::default();
            node.set_clock_alarm(None);
            contact.quiet.store(false, Ordering::Relaxed);
            continue;
        }
        if contact.quiet.load(Ordering::Relaxed) {
            continue;
        }
        let now = Instant::now();
        let since = *leader_since.get_or_insert(now);
        let membership = metrics.membership_config.membership().clone();
        let peers: Vec<u64> = membership.voter_ids().filter(|s| *s != node.site).collect();
        let last_contact = last_contact_since(&contact, &peers, since);
        if !hears_quorum(now, since, &last_contact, peers.len() + 1, timing.quorum_window) {
            tracing::warn!(site = node.site, "leader hears no quorum; going quiet so the majority can elect");
            contact.quiet.store(true, Ordering::Relaxed);
            continue;
        }
        contact.note_quorum_contact(now);
        // Bounded by the quorum window: a proposal stuck behind a partition must not keep
        // this loop from noticing the lost quorum and going quiet.
        let write_timeout = timing.quorum_window;
        if last_tick.is_none_or(|at| now.duration_since(at) >= timing.tick_every) {
            last_tick = Some(now);
            leader_clock.propose_tick(&node, &peers, write_timeout).await;
        }
        let mut members = members_health(&node, &peers, &last_contact, now, since);
        ask_island_status(&node, &mut members, timing.thresholds).await;
        for body in decide(&members, timing.thresholds) {
            tracing::info!(site = node.site, kind = body.kind(), "member health change");
            let command = Command { id: node.next_command_id(), at_ms: node.clock.now_unix_ms(), body };
            let _ = tokio::time::timeout(write_timeout, node.propose_as_leader(command)).await;
        }
    }
}

/// The duty's periods and thresholds, read once from the node's timing.
struct DutyTiming {
    period: Duration,
    tick_every: Duration,
    quorum_window: Duration,
    thresholds: HealthThresholds,
}

impl DutyTiming {
    fn of<T: PeerTransport>(node: &ClusterNode<T>) -> Self {
        Self {
            period: Duration::from_millis(node.timing.heartbeat_interval_ms),
            tick_every: Duration::from_millis(node.timing.tick_interval_ms),
            quorum_window: Duration::from_millis(node.timing.election_timeout_max_ms),
            thresholds: HealthThresholds {
                unreachable_after_ms: node.timing.site_unreachable_after_ms,
                lost_after_ms: node.timing.site_lost_after_ms,
            },
        }
    }
}

/// When the leader last heard each of `peers`, counted from no earlier than `since` (when it
/// became leader); a peer never heard is absent.
fn last_contact_since(contact: &PeerContact, peers: &[u64], since: Instant) -> BTreeMap<u64, Instant> {
    let contact = contact.last_contact.lock().unwrap_or_else(|p| p.into_inner());
    peers.iter().filter_map(|s| contact.get(s).map(|at| (*s, (*at).max(since)))).collect()
}

/// Whether the leader still hears a quorum of `voters` (itself included) within `window`;
/// a leader younger than the window is given the benefit of the doubt.
fn hears_quorum(
    now: Instant,
    since: Instant,
    last_contact: &BTreeMap<u64, Instant>,
    voters: usize,
    window: Duration,
) -> bool {
    let heard_recently = last_contact.values().filter(|at| now.duration_since(**at) < window).count();
    now.duration_since(since) < window || (heard_recently + 1) * 2 > voters
}

/// What the leader knows about every voter, itself included, for [`decide`].
fn members_health<T: PeerTransport>(
    node: &ClusterNode<T>,
    peers: &[u64],
    last_contact: &BTreeMap<u64, Instant>,
    now: Instant,
    since: Instant,
) -> BTreeMap<u64, MemberHealth> {
    let mut members: BTreeMap<u64, MemberHealth> = peers
        .iter()
        .map(|site| {
            // Silence counts from when we became leader: a new leader has heard nobody yet.
            let heard_at = last_contact.get(site).copied();
            let silent_for_ms = now.duration_since(heard_at.unwrap_or(since)).as_millis() as u64;
            let (unreachable, lost) =
                node.read_stale(|r| (r.is_site_unreachable(SiteId(*site)), r.is_site_lost(SiteId(*site))));
            let island = IslandAnswer::Unknown;
            (*site, MemberHealth { silent_for_ms, heard: heard_at.is_some(), unreachable, lost, island })
        })
        .collect();
    // The leader hears itself: a site marked unreachable by an earlier leader that now
    // leads must be brought back, or its callers and operators wait forever.
    let (unreachable, lost) =
        node.read_stale(|r| (r.is_site_unreachable(SiteId(node.site)), r.is_site_lost(SiteId(node.site))));
    let island = IslandAnswer::from_status(node.island.epoch(), node.island.state().phase());
    members.insert(node.site, MemberHealth { island, ..MemberHealth::leader_itself(unreachable, lost) });
    members
}

/// Asks every peer heard again while down whether it is an island (§2.2); the others keep
/// `Unknown`, which nothing needs.
async fn ask_island_status<T: PeerTransport>(
    node: &ClusterNode<T>,
    members: &mut BTreeMap<u64, MemberHealth>,
    thresholds: HealthThresholds,
) {
    let membership = node.raft.metrics().borrow().membership_config.membership().clone();
    let timeout = Duration::from_millis(ISLAND_STATUS_ASK_TIMEOUT_MS);
    for (site, health) in members.iter_mut() {
        if *site == node.site || !heard_again(*health, thresholds) {
            continue;
        }
        let Some(addr) = membership.get_node(site).map(|n| n.addr.clone()) else { continue };
        health.island = match call_peer(&*node.transport, *site, &addr, &PeerRequest::IslandStatus, timeout).await {
            Ok(PeerResponse::IslandStatus { epoch, state }) => IslandAnswer::from_status(epoch, state),
            // A node too old to decode the question has no island mode, so it is no island.
            Ok(PeerResponse::Refused(reason)) if reason.starts_with(UNDECODABLE_REQUEST) => IslandAnswer::None,
            Ok(_) | Err(_) => IslandAnswer::Unknown,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: HealthThresholds = HealthThresholds { unreachable_after_ms: 3_000, lost_after_ms: 60_000 };

    fn health(silent_for_ms: u64, unreachable: bool, lost: bool) -> MemberHealth {
        MemberHealth { silent_for_ms, heard: silent_for_ms < 3_000, unreachable, lost, island: IslandAnswer::None }
    }

    fn one(h: MemberHealth, t: HealthThresholds) -> Option<CommandBody> {
        decide_one(SiteId(2), h, t)
    }

    #[test]
    fn a_briefly_silent_member_is_left_alone() {
        assert_eq!(one(health(2_999, false, false), T), None);
    }

    #[test]
    fn silence_makes_a_member_unreachable_not_lost() {
        assert_eq!(one(health(3_000, false, false), T), Some(CommandBody::SiteUnreachable { site: SiteId(2) }));
        assert_eq!(one(health(59_999, true, false), T), None);
    }

    #[test]
    fn only_long_silence_declares_it_lost() {
        assert_eq!(one(health(60_000, true, false), T), Some(CommandBody::SiteLost { site: SiteId(2) }));
        assert_eq!(one(health(600_000, false, true), T), None);
        let never = HealthThresholds { lost_after_ms: 0, ..T };
        assert_eq!(one(health(u64::MAX, true, false), never), None);
    }

    #[test]
    fn a_member_heard_again_is_back() {
        assert_eq!(one(health(100, true, false), T), Some(CommandBody::SiteBack { site: SiteId(2) }));
        assert_eq!(one(health(100, false, true), T), Some(CommandBody::SiteBack { site: SiteId(2) }));
        // Not heard since this leader took office: silence, not a return.
        let unheard = MemberHealth { heard: false, ..health(100, true, false) };
        assert_eq!(one(unheard, T), None);
    }

    #[test]
    fn a_member_heard_again_comes_back_only_when_it_says_it_is_no_island() {
        let epoch = IslandEpoch { site: SiteId(2), seq: 1, fork_index: 40 };
        for island in [IslandAnswer::Unknown, IslandAnswer::Open(epoch)] {
            assert_eq!(one(MemberHealth { island, ..health(100, true, false) }, T), None, "{island:?}");
            assert_eq!(one(MemberHealth { island, ..health(100, false, true) }, T), None, "{island:?}");
        }
        // Silence is judged as before, whatever it said.
        let open = MemberHealth { island: IslandAnswer::Open(epoch), ..health(3_000, false, false) };
        assert_eq!(one(open, T), Some(CommandBody::SiteUnreachable { site: SiteId(2) }));
    }

    #[test]
    fn an_island_status_is_open_with_an_epoch_and_unknown_while_cut_off_without_one_yet() {
        let epoch = IslandEpoch { site: SiteId(2), seq: 1, fork_index: 40 };
        assert_eq!(IslandAnswer::from_status(Some(epoch), IslandPhase::Island), IslandAnswer::Open(epoch));
        assert_eq!(IslandAnswer::from_status(Some(epoch), IslandPhase::None), IslandAnswer::Open(epoch));
        assert_eq!(IslandAnswer::from_status(None, IslandPhase::Island), IslandAnswer::Unknown);
        assert_eq!(IslandAnswer::from_status(None, IslandPhase::Healed), IslandAnswer::None, "it forked nothing");
        assert_eq!(IslandAnswer::from_status(None, IslandPhase::None), IslandAnswer::None);
    }

    /// Found by the simulator: a site marked unreachable that then became leader never
    /// proposed SiteBack for itself (it only judged its peers), so its callers starved.
    #[test]
    fn a_leader_marked_unreachable_brings_itself_back() {
        assert_eq!(one(MemberHealth::leader_itself(true, false), T), Some(CommandBody::SiteBack { site: SiteId(2) }));
        assert_eq!(one(MemberHealth::leader_itself(false, false), T), None);
    }

    #[test]
    fn members_are_decided_in_site_order() {
        let members = BTreeMap::from([(3, health(5_000, false, false)), (2, health(100, true, false))]);
        assert_eq!(
            decide(&members, T),
            vec![CommandBody::SiteBack { site: SiteId(2) }, CommandBody::SiteUnreachable { site: SiteId(3) }]
        );
    }
}
