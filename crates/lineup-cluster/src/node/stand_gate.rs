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

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::network::call_peer;
use super::{ClusterNode, PeerContact};
use crate::rpc::PeerRequest;
use crate::transport::PeerTransport;

/// Whether a member may stand: it heard (within `window` of `now`) from enough of the other
/// `voters` to make a quorum with itself.
pub fn may_stand(now: Instant, answered: &BTreeMap<u64, Instant>, voters: &[u64], window: Duration) -> bool {
    let heard = voters.iter().filter(|v| answered.get(v).is_some_and(|at| now.duration_since(*at) < window)).count();
    (heard + 1) * 2 > voters.len() + 1
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
    loop {
        interval.tick().await;
        let Some(node) = node.upgrade() else { return };
        let voters = other_voters(&node);
        probe(&node, &voters, period * 2, &mut answered).await;
        // The node's own Raft requests that were answered count as well.
        for (site, at) in contact.last_contact.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let known = answered.entry(*site).or_insert(*at);
            *known = (*known).max(*at);
        }
        let ids: Vec<u64> = voters.iter().map(|(id, _)| *id).collect();
        let now_open = may_stand(Instant::now(), &answered, &ids, window);
        if now_open != open {
            open = now_open;
            node.raft.runtime_config().elect(open);
            if open {
                tracing::info!(site = node.site, "a quorum answers again: standing for election allowed");
            } else {
                tracing::warn!(site = node.site, "no quorum answers: not standing for election");
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
    fn five_voters_need_two_other_answers() {
        let now = Instant::now();
        let one = BTreeMap::from([(2, now)]);
        assert!(!may_stand(now, &one, &[2, 3, 4, 5], WINDOW));
        let two = BTreeMap::from([(2, now), (4, now)]);
        assert!(may_stand(now, &two, &[2, 3, 4, 5], WINDOW));
    }
}
