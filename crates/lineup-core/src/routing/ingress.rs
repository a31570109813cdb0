//! Ingress ranking: the member sites ordered for a new call to a gate (see ingress.rs). A
//! read of the state; nothing changes. Cost: one pass over the queue's offerable operators,
//! its live waiting callers and all operators.

use super::Routing;
use crate::ids::{GateId, QueueId, SiteId, Skill};
use crate::ingress::{IngressReason, IngressSite, INGRESS_SCORE_FREE_BASE, INGRESS_SCORE_STAFFED_SCALE};
use crate::model::Operator;
use std::collections::BTreeMap;

/// What a new call enters by.
#[derive(Debug, Clone, Copy)]
pub enum IngressTarget<'a> {
    Gate(&'a GateId),
    Queue(&'a QueueId),
}

/// What a new call needs from an operator: membership of the queue and these skills.
struct Need<'a> {
    queue: &'a QueueId,
    skills: BTreeMap<&'a Skill, u8>,
}

#[derive(Default, Clone, Copy)]
struct SiteCounts {
    free: u32,
    staffed: u32,
    waiting: u32,
}

impl Routing {
    /// The sites of `members` (distinct) ranked for a new call to `target`: free qualified
    /// operators first (more first), then staffed sites by expected wait (the score), then
    /// unstaffed ones, then unreachable ones; `prefer` breaks ties, then the site number. Lost
    /// sites are left out. None when the gate or queue does not exist.
    pub fn ingress_sites(
        &self,
        target: IngressTarget<'_>,
        members: &[SiteId],
        prefer: &[SiteId],
    ) -> Option<Vec<IngressSite>> {
        let need = self.ingress_need(target)?;
        let queue = self.state.queues.get(need.queue)?;
        let counts = self.ingress_counts(&need);
        let average_ms = queue.handle_times.average_ms().unwrap_or(queue.config.default_handle_ms);
        let mut sites: Vec<IngressSite> = members
            .iter()
            .filter(|site| !self.state.lost_sites.contains(site))
            .map(|site| self.ingress_site(*site, counts.get(site).copied().unwrap_or_default(), average_ms))
            .collect();
        let rank_of = |site: SiteId| prefer.iter().position(|p| *p == site).unwrap_or(prefer.len());
        sites.sort_by_key(|s| (s.reason, std::cmp::Reverse(s.score), rank_of(s.site), s.site));
        Some(sites)
    }

    /// The queue and the skills a call entering by `target` needs (a gate adds its own).
    fn ingress_need<'a>(&'a self, target: IngressTarget<'a>) -> Option<Need<'a>> {
        let (queue_id, gate_skills) = match target {
            IngressTarget::Gate(gate) => {
                let gate = self.state.gates.get(gate)?;
                (&gate.config.queue, Some(&gate.config.required_skills))
            }
            IngressTarget::Queue(queue) => (queue, None),
        };
        let queue = self.state.queues.get(queue_id)?;
        let mut skills: BTreeMap<&Skill, u8> = queue.config.required_skills.iter().map(|(s, l)| (s, *l)).collect();
        for (skill, level) in gate_skills.into_iter().flatten() {
            let entry = skills.entry(skill).or_insert(*level);
            *entry = (*entry).max(*level);
        }
        Some(Need { queue: queue_id, skills })
    }

    fn ingress_counts(&self, need: &Need) -> BTreeMap<SiteId, SiteCounts> {
        let mut counts: BTreeMap<SiteId, SiteCounts> = BTreeMap::new();
        for op in self.state.operators.values() {
            let Some(site) = op.site.filter(|_| self.qualifies(op, need)) else { continue };
            let entry = counts.entry(site).or_default();
            if op.is_ready() {
                entry.staffed += 1;
            }
            if op.is_offerable() && self.operator_reachable(op) {
                entry.free += 1;
            }
        }
        if let Some(queue_index) = self.indexes.queues.get(need.queue) {
            for (_, call_number) in &queue_index.live_by_joined {
                if let Some(call) = self.state.calls.get(call_number) {
                    counts.entry(call.entry_site).or_default().waiting += 1;
                }
            }
        }
        counts
    }

    fn qualifies(&self, op: &Operator, need: &Need) -> bool {
        op.config.memberships.contains_key(need.queue) && op.has_skills(need.skills.iter().map(|(s, l)| (*s, l)))
    }

    fn ingress_site(&self, site: SiteId, counts: SiteCounts, average_ms: u64) -> IngressSite {
        let expected_wait_ms = (counts.staffed > 0)
            .then(|| u64::from(counts.waiting + 1).div_ceil(u64::from(counts.staffed)).saturating_mul(average_ms))
            .map(|wait| if counts.free > 0 { 0 } else { wait });
        let (reason, score) = if self.state.outages.is_unreachable(Some(site)) {
            (IngressReason::Unreachable, 0)
        } else if counts.free > 0 {
            (IngressReason::FreeOperator, INGRESS_SCORE_FREE_BASE.saturating_add(counts.free))
        } else if counts.staffed > 0 {
            let staffed = u64::from(counts.staffed);
            let share = staffed * INGRESS_SCORE_STAFFED_SCALE / (staffed + u64::from(counts.waiting) + 1);
            (IngressReason::Staffed, u32::try_from(share).unwrap_or(u32::MAX))
        } else {
            (IngressReason::Unstaffed, 0)
        };
        debug_assert!(reason != IngressReason::Staffed || score < INGRESS_SCORE_FREE_BASE);
        IngressSite {
            site,
            reason,
            score,
            free_operators: counts.free,
            staffed_operators: counts.staffed,
            waiting_callers: counts.waiting,
            expected_wait_ms,
        }
    }
}
