//! What the demo checks: every effect each node published, by apply index, and a replay of
//! them in log order — no operator or caller in two offers at once, one outcome per call.
//!
//! Each node publishes the same effects for an apply index (the log is one), but a node's
//! feed is a bounded broadcast: a reader that falls behind skips effects. So the effects of
//! an index are kept per node, and the replay uses the longest list seen for it — a complete
//! one — never a union of partial lists, whose order would not be the apply order.

use lineup_core::*;
use std::collections::{BTreeMap, BTreeSet};

/// Every effect each node published, by apply index.
#[derive(Default)]
pub(super) struct Observed {
    by_index: BTreeMap<u64, BTreeMap<u64, Vec<Effect>>>,
    /// Effects a node's reader skipped because it fell behind.
    pub skipped: u64,
}

impl Observed {
    pub fn record(&mut self, site: u64, index: u64, effect: Effect) {
        self.by_index.entry(index).or_default().entry(site).or_default().push(effect);
    }

    /// The effects of every apply index in log order, each from the node that saw most of them.
    pub fn effects(&self) -> impl Iterator<Item = &Effect> {
        self.by_index.values().filter_map(|per_node| per_node.values().max_by_key(|effects| effects.len())).flatten()
    }
}

/// The replay's findings.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Replay {
    pub violations: Vec<String>,
    /// Calls by the site they entered at.
    pub entered: BTreeMap<u64, u64>,
    /// Calls answered (completed or transferred) by the operator's site.
    pub answered: BTreeMap<u64, u64>,
    pub outcomes: BTreeMap<String, u64>,
    pub calls: u64,
    pub calls_without_one_outcome: u64,
}

/// Who holds whom while replaying.
#[derive(Default)]
struct Holds {
    by_operator: BTreeMap<OperatorId, CallId>,
    by_call: BTreeMap<CallId, OperatorId>,
}

impl Holds {
    fn offer(&mut self, call: &CallId, operator: &OperatorId, violations: &mut Vec<String>) {
        if let Some(other) = self.by_operator.insert(operator.clone(), call.clone()) {
            if &other != call {
                violations.push(format!("operator {operator} offered {call} while holding {other}"));
            }
        }
        if let Some(other) = self.by_call.insert(call.clone(), operator.clone()) {
            if &other != operator {
                violations.push(format!("call {call} offered to {operator} while held by {other}"));
            }
        }
    }

    fn cancel(&mut self, call: &CallId, operator: &OperatorId) {
        if self.by_operator.get(operator) == Some(call) {
            self.by_operator.remove(operator);
            self.by_call.remove(call);
        }
    }

    fn end(&mut self, call: &CallId) {
        if let Some(operator) = self.by_call.remove(call) {
            self.by_operator.remove(&operator);
        }
    }
}

/// An outcome's name for the summary (`completed`, `abandoned`, ...).
fn outcome_name(outcome: &Outcome) -> String {
    let value = serde_json::to_value(outcome).unwrap_or_default();
    let name = match &value {
        serde_json::Value::String(name) => Some(name.clone()),
        serde_json::Value::Object(map) => map.keys().next().cloned(),
        _ => None,
    };
    name.unwrap_or_else(|| "unknown".into()).to_lowercase()
}

/// Replays the observed effects in log order.
pub(super) fn replay(observed: &Observed) -> Replay {
    let mut replay = Replay::default();
    let mut holds = Holds::default();
    let mut seen: BTreeSet<CallId> = BTreeSet::new();
    let mut ended: BTreeMap<CallId, u64> = BTreeMap::new();
    for effect in observed.effects() {
        match effect {
            Effect::Offer(o) | Effect::DialCallback(o) => holds.offer(&o.call, &o.operator, &mut replay.violations),
            Effect::CancelOffer { call, operator, .. } => holds.cancel(call, operator),
            Effect::CallChanged(v) if seen.insert(v.call.clone()) => {
                *replay.entered.entry(v.entry_site.0).or_default() += 1;
            }
            Effect::CallEnded(r) => {
                *ended.entry(r.call.clone()).or_default() += 1;
                *replay.outcomes.entry(outcome_name(&r.outcome)).or_default() += 1;
                if let (Outcome::Completed { .. } | Outcome::Transferred { .. }, Some(site)) =
                    (&r.outcome, r.operator_site)
                {
                    *replay.answered.entry(site.0).or_default() += 1;
                }
                holds.end(&r.call);
            }
            _ => {}
        }
    }
    replay.calls = seen.len() as u64;
    replay.calls_without_one_outcome = seen.iter().filter(|c| ended.get(*c).copied() != Some(1)).count() as u64;
    replay
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(call: &str, operator: &str, fence: u64) -> Effect {
        Effect::Offer(Offer {
            call: CallId::new(call),
            operator: OperatorId::new(operator),
            fence,
            queue: QueueId::new("sales"),
            gate: None,
            caller_site: SiteId(1),
            operator_site: SiteId(2),
            caller_channel: None,
            caller_number: "+15550000001".into(),
            caller_name: String::new(),
            mode: OperatorMode::Ring,
            operator_channel: None,
            endpoint: Some("PJSIP/op".into()),
            ring_timeout_ms: 15_000,
            whisper: None,
            callback_number: None,
        })
    }

    fn cancel(call: &str, operator: &str, fence: u64) -> Effect {
        Effect::CancelOffer {
            call: CallId::new(call),
            operator: OperatorId::new(operator),
            fence,
            caller_site: SiteId(1),
            operator_site: SiteId(2),
        }
    }

    /// A failed callback attempt cancels one offer and offers the operator the next caller in
    /// the same apply. A node whose reader fell behind published only the new offer; the
    /// replay must not take that for a double offer.
    #[test]
    fn a_node_that_skipped_a_cancel_is_no_double_offer() {
        let mut observed = Observed::default();
        observed.record(1, 7, offer("c1", "op", 1));
        observed.record(2, 7, offer("c1", "op", 1));
        // Site 2 fell behind and saw only the new offer of index 9; it recorded first.
        observed.record(2, 9, offer("c2", "op", 2));
        observed.record(1, 9, cancel("c1", "op", 1));
        observed.record(1, 9, offer("c2", "op", 2));
        assert_eq!(replay(&observed).violations, Vec::<String>::new());
    }

    #[test]
    fn a_real_double_offer_is_found() {
        let mut observed = Observed::default();
        observed.record(1, 7, offer("c1", "op", 1));
        observed.record(1, 9, offer("c2", "op", 2));
        let violations = replay(&observed).violations;
        assert_eq!(violations, vec!["operator op offered c2 while holding c1".to_string()]);
    }
}
