//! Pre-vote, as far as openraft 0.9 allows: a member stands for election only while it
//! reaches a quorum of voters.
//!
//! openraft 0.9 has no pre-vote. A member cut off from the others, or one that sends but
//! hears nothing, stands again and again and raises its term each time; when the link heals,
//! that higher term makes the leader step down, and the cluster is without a leader for an
//! election it did not need (seen with real processes in `lineup-chaos --scenario nemesis`:
//! 1.2 s after each heal). So every member asks every other voter a cheap question (its
//! wall clock) each heartbeat interval, and openraft's elections are on only while answers
//! from a quorum, itself included, came within the earliest election timeout. Followers of
//! a dead leader still hear each other, so a real failover is not delayed.
//!
//! Nor does a member stand while it hears a leader: elections are on only once no leader's
//! request was accepted for the earliest election timeout. Without that, a member frozen for
//! seconds (SIGSTOP, a paused VM) stood the instant it ran again: openraft's election timer
//! had long expired and the gate's last word, from before the freeze, was "on"; its higher
//! term then deposed a healthy leader (seen with real processes in `lineup-chaos --scenario
//! random`: 2.6 s without a leader after a follower's 5 s pause). A gate that finds itself
//! frozen longer than that timeout counts the leader as heard at that moment, so the leader
//! has a whole timeout to reach it again before it may stand.
//!
//! Nor does a member stand the moment it reaches a quorum again after a partition, having
//! known a leader before it (followed one, or led): its peers answer the gate's question at once, but the leader's
//! next request comes only on openraft's next retry to an unreachable follower (every
//! 500 ms), so the gate stays shut for `QUORUM_REGAINED_WAIT_MS` (seen with real processes
//! in `lineup-chaos --scenario island`: a healed island stood 0.7 s after the heal, deposed
//! the leader, and elections went on for 5 s).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::network::call_peer;
use super::{ClusterNode, PeerContact};
use crate::rpc::PeerRequest;
use crate::transport::PeerTransport;

/// After regaining a quorum, a member that had heard a leader before does not stand for
/// this long: three of openraft's 500 ms retries for the leader to reach it.
pub const QUORUM_REGAINED_WAIT_MS: u64 = 1_500;

/// Whether this turn regains a quorum lost since the last, for a member that knew a leader
/// (heard one, or led itself; a member starting up, before any leader, stands as soon as it
/// may).
pub fn quorum_regained(had_quorum: bool, quorum_now: bool, knew_a_leader: bool) -> bool {
    !had_quorum && quorum_now && knew_a_leader
}

/// Whether a member may stand: it heard (within `window` of `now`) from enough of the other
/// `voters` to make a quorum with itself.
pub fn may_stand(now: Instant, answered: &BTreeMap<u64, Instant>, voters: &[u64], window: Duration) -> bool {
    let heard = voters.iter().filter(|v| answered.get(v).is_some_and(|at| now.duration_since(*at) < window)).count();
    (heard + 1) * 2 > voters.len() + 1
}

/// Whether no leader's request was accepted within `window` of `now` (or ever).
pub fn leader_silent(now: Instant, leader_heard: Option<Instant>, window: Duration) -> bool {
    leader_heard.is_none_or(|at| now.duration_since(at) >= window)
}

/// Whether the gate's loop was frozen: more than `window` since its last turn.
pub fn was_frozen(now: Instant, last_turn: Instant, window: Duration) -> bool {
    now.duration_since(last_turn) > window
}

/// The gate's loop; holds only a weak reference, so it ends with the node.
pub(crate) async fn stand_gate<T: PeerTransport>(node: std::sync::Weak<ClusterNode<T>>, contact: PeerContact) {
    let Some((period, window)) = node.upgrade().map(|n| {
        let timing = &n.timing;
        (Duration::from_millis(timing.heartbeat_interval_ms), Duration::from_millis(timing.election_timeout_min_ms))
    }) else {
        return;
    };
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut answered: BTreeMap<u64, Instant> = BTreeMap::new();
    let mut open = true;
    let mut had_quorum = true;
    let mut shut_until: Option<Instant> = None;
    let mut last_turn = Instant::now();
    loop {
        interval.tick().await;
        let now = Instant::now();
        if was_frozen(now, last_turn, window) {
            contact.note_leader_heard(now);
        }
        last_turn = now;
        let Some(node) = node.upgrade() else { return };
        let voters = other_voters(&node);
        probe(&node, &voters, period * 2, &mut answered).await;
        // The node's own Raft requests that were answered count as well.
        for (site, at) in contact.last_contact.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let known = answered.entry(*site).or_insert(*at);
            *known = (*known).max(*at);
        }
        let ids: Vec<u64> = voters.iter().map(|(id, _)| *id).collect();
        let now = Instant::now();
        let quorum_answers = may_stand(now, &answered, &ids, window);
        let knew_a_leader =
            contact.leader_heard_at().is_some() || node.raft.metrics().borrow().current_leader.is_some();
        if quorum_regained(had_quorum, quorum_answers, knew_a_leader) {
            shut_until = Some(now + Duration::from_millis(QUORUM_REGAINED_WAIT_MS));
        }
        had_quorum = quorum_answers;
        let waiting_for_leader = shut_until.is_some_and(|until| now < until);
        let now_open = quorum_answers && !waiting_for_leader && leader_silent(now, contact.leader_heard_at(), window);
        if now_open != open {
            open = now_open;
            node.raft.runtime_config().elect(open);
            match (open, quorum_answers) {
                (true, _) => tracing::info!(site = node.site, "no leader heard, a quorum answers: may stand"),
                (false, true) => tracing::debug!(site = node.site, "a leader is heard: not standing for election"),
                (false, false) => tracing::warn!(site = node.site, "no quorum answers: not standing for election"),
            }
        }
    }
}

/// The other voters of the current membership, with their addresses.
fn other_voters<T: PeerTransport>(node: &ClusterNode<T>) -> Vec<(u64, String)> {
    let metrics = node.raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    membership
        .voter_ids()
        .filter(|id| *id != node.site)
        .filter_map(|id| membership.get_node(&id).map(|n| (id, n.addr.clone())))
        .collect()
}

/// Asks every voter its wall clock at once; any answer (a refusal too) proves the link
/// works both ways.
async fn probe<T: PeerTransport>(
    node: &ClusterNode<T>,
    voters: &[(u64, String)],
    timeout: Duration,
    answered: &mut BTreeMap<u64, Instant>,
) {
    let mut probes = JoinSet::new();
    for (site, addr) in voters.iter().cloned() {
        let transport = node.transport.clone();
        probes.spawn(async move {
            let answer = call_peer(&*transport, site, &addr, &PeerRequest::WallClock, timeout).await;
            (site, answer.is_ok())
        });
    }
    while let Some(done) = probes.join_next().await {
        if let Ok((site, true)) = done {
            answered.insert(site, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_millis(500);

    #[test]
    fn a_member_alone_in_its_cluster_always_stands() {
        assert!(may_stand(Instant::now(), &BTreeMap::new(), &[], WINDOW));
    }

    #[test]
    fn one_answering_peer_of_two_makes_a_quorum() {
        let now = Instant::now();
        let answered = BTreeMap::from([(2, now)]);
        assert!(may_stand(now, &answered, &[2, 3], WINDOW));
    }

    #[test]
    fn a_member_that_heard_nobody_lately_does_not_stand() {
        let now = Instant::now();
        let stale = BTreeMap::from([(2, now), (3, now)]);
        assert!(!may_stand(now + WINDOW, &stale, &[2, 3], WINDOW));
        assert!(!may_stand(now, &BTreeMap::new(), &[2, 3], WINDOW));
    }

    #[test]
    fn a_member_hearing_its_leader_does_not_stand_until_a_whole_window_of_silence() {
        let now = Instant::now();
        assert!(!leader_silent(now, Some(now), WINDOW));
        assert!(!leader_silent(now + WINDOW - Duration::from_millis(1), Some(now), WINDOW));
        assert!(leader_silent(now + WINDOW, Some(now), WINDOW));
        assert!(leader_silent(now, None, WINDOW), "a member that never heard a leader may stand");
    }

    /// The run seen with real processes: a follower frozen 5 s whose last heard leader and
    /// whose quorum answers are all 5 s old when it runs again. Its gate counts the leader as
    /// heard at the thaw, so the fresh answers of its first probe do not let it stand.
    #[test]
    fn a_member_thawed_after_a_freeze_gives_its_leader_a_window_first() {
        let frozen_at = Instant::now();
        let thawed_at = frozen_at + Duration::from_secs(5);
        assert!(was_frozen(thawed_at, frozen_at, WINDOW));
        assert!(!was_frozen(frozen_at + WINDOW, frozen_at, WINDOW), "a slow turn is no freeze");
        let heard_at_thaw = Some(thawed_at);
        let answered = BTreeMap::from([(2, thawed_at), (3, thawed_at)]);
        let probed = thawed_at + Duration::from_millis(5);
        assert!(may_stand(probed, &answered, &[2, 3], WINDOW));
        assert!(!leader_silent(probed, heard_at_thaw, WINDOW));
        assert!(leader_silent(probed, Some(frozen_at), WINDOW), "without the thaw rule it would stand");
    }

    /// The run seen with real processes: an island's node, which had followed a leader
    /// before the cut, reaches a quorum again at the heal; it gives the leader time to reach
    /// it before it may stand. A member starting up, which never heard a leader, does not
    /// wait, and a member that kept its quorum has nothing to regain.
    #[test]
    fn a_member_regaining_a_quorum_after_a_partition_gives_its_leader_time_first() {
        assert!(quorum_regained(false, true, true));
        assert!(!quorum_regained(false, true, false), "starting up: no leader to wait for");
        assert!(!quorum_regained(true, true, true), "it never lost its quorum");
        assert!(!quorum_regained(false, false, true), "still cut off");
    }

    #[test]
    fn five_voters_need_two_other_answers() {
        let now = Instant::now();
        let one = BTreeMap::from([(2, now)]);
        assert!(!may_stand(now, &one, &[2, 3, 4, 5], WINDOW));
        let two = BTreeMap::from([(2, now), (4, now)]);
        assert!(may_stand(now, &two, &[2, 3, 4, 5], WINDOW));
    }
}
