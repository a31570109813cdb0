//! What the leader says about its members' health: a pure decision, so it is tested
//! without a cluster and the simulator's Raft model can run the same rules.
//!
//! A member the leader has not heard for `site_unreachable_after_ms` becomes unreachable
//! (`SiteUnreachable`): its calls go on, nothing is offered across it. Only after the long
//! `site_lost_after_ms` of silence is it declared lost (`SiteLost`), which ends its calls
//! and logs its operators out. Heard again within the unreachable threshold, it is back
//! (`SiteBack`).

use std::collections::BTreeMap;

use lineup_core::{CommandBody, SiteId};

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
}

impl MemberHealth {
    /// The leader's own site: always heard. A site marked unreachable by an earlier leader
    /// that now leads is back.
    pub fn leader_itself(unreachable: bool, lost: bool) -> MemberHealth {
        MemberHealth { silent_for_ms: 0, heard: true, unreachable, lost }
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
    if !silent && h.heard && (h.unreachable || h.lost) {
        return Some(CommandBody::SiteBack { site });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: HealthThresholds = HealthThresholds { unreachable_after_ms: 3_000, lost_after_ms: 60_000 };

    fn health(silent_for_ms: u64, unreachable: bool, lost: bool) -> MemberHealth {
        MemberHealth { silent_for_ms, heard: silent_for_ms < 3_000, unreachable, lost }
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
        let unheard = MemberHealth { silent_for_ms: 100, heard: false, unreachable: true, lost: false };
        assert_eq!(one(unheard, T), None);
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
