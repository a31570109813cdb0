//! Property tests: random call-centre days against a simple reference model.
//!
//! The reference model is deliberately naive and independent of the engine's indexes:
//! - a per-operator/per-call ledger of live offers built only from the effect stream;
//! - a brute-force eligibility predicate over the public read views;
//! - a count of terminal records per call.
//!
//! Properties (each ≥ 1,000 cases): no operator or caller in two offers; global order (no
//! eligible earlier caller overtaken; exceptions: named Pull, queue caps); quiescence (no
//! available operator with an eligible waiting caller after any command); every call ends
//! with exactly one outcome; duplicates are no-ops; snapshot → restore → same effects;
//! apply is deterministic (same commands → byte-identical effects).

mod common;
use common::days::*;
use common::*;
use lineup_core::*;
use proptest::prelude::*;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

const CASES: u32 = 1_000;

/// Brute-force eligibility of a waiting call for an operator, from public views only.
/// Queue caps are left out: they are checked separately (an explicit exception).
fn reference_eligible(h: &Harness, op: &OperatorConfig, call: &CallView, call_skills: &BTreeMap<Skill, u8>) -> bool {
    let Some(queue) = h.routing.queue_config(&call.queue) else { return false };
    let Some(penalty) = op.memberships.get(&call.queue) else { return false };
    if queue.pull_only || call.not_before_ms.is_some_and(|t| t > h.routing.now_ms()) {
        return false;
    }
    // Nothing is offered across an unreachable site (a callback promise has no caller leg).
    let operator_site = h.routing.operator_view(&op.id).and_then(|v| v.site);
    let promise = call.status == CallStatus::CallbackWaiting;
    if operator_site.is_some_and(|s| h.routing.is_site_unreachable(s))
        || (!promise && h.routing.is_site_unreachable(call.entry_site))
    {
        return false;
    }
    let has = |skills: &BTreeMap<Skill, u8>| skills.iter().all(|(s, l)| op.skills.get(s).is_some_and(|have| have >= l));
    if !has(&queue.required_skills) || !has(call_skills) {
        return false;
    }
    match queue.allowed_penalty(h.routing.now_ms().saturating_sub(call.since_ms)) {
        Some(allowed) => *penalty <= allowed,
        None => true,
    }
}

fn global_key(h: &Harness, v: &CallView) -> (Reverse<u8>, u8, u64) {
    (Reverse(h.routing.queue_config(&v.queue).map_or(0, |q| q.weight)), v.priority, v.order_seq)
}

fn queue_at_cap(h: &Harness, queue: &QueueId) -> bool {
    let cap = h.routing.queue_config(queue).and_then(|q| q.max_busy_operators);
    cap.is_some_and(|cap| {
        h.routing
            .calls()
            .filter(|v| &v.queue == queue && !matches!(v.status, CallStatus::Waiting | CallStatus::CallbackWaiting))
            .count() as u32
            >= cap
    })
}

/// What the runner observed.
#[derive(Default)]
struct Observed {
    /// Encoded effects of every command, in order (for determinism and snapshot checks).
    effect_bytes: Vec<Vec<u8>>,
    violations: Vec<String>,
}

/// The reference model: ledgers built from effects only, plus the checks run after every command.
#[derive(Default)]
struct Checker {
    obs: Observed,
    history: Vec<(Command, CommandResult)>,
    call_skills: BTreeMap<CallId, BTreeMap<Skill, u8>>,
    /// Live offers/connections per operator and per call, from the effect stream.
    by_operator: BTreeMap<OperatorId, CallId>,
    by_call: BTreeMap<CallId, OperatorId>,
    ended: BTreeMap<CallId, u32>,
    admitted: BTreeSet<CallId>,
    /// A node restored from a snapshot, fed the same commands.
    twin: Option<(Routing, u64)>,
}

impl Checker {
    fn step(&mut self, h: &mut Harness, cmd: Command) {
        let is_pull = matches!(cmd.body, CommandBody::Pull { .. });
        let is_dup = self.history.iter().any(|(c, _)| c.id == cmd.id);
        let (result, effects) = h.apply_cmd(&cmd);
        if let Some((twin_routing, _)) = self.twin.as_mut() {
            let twin_effects = twin_routing.apply(h.index, &cmd);
            if twin_effects.effects != effects || twin_effects.result != result {
                self.obs.violations.push(format!("snapshot twin diverged at {:?}", cmd.body));
            }
        }
        self.obs.effect_bytes.push(codec::encode(&(&result, &effects)).unwrap());
        if is_dup {
            let first = &self.history.iter().find(|(c, _)| c.id == cmd.id).unwrap().1;
            if &result != first || !effects.is_empty() {
                self.obs.violations.push(format!("duplicate {:?} was not a no-op", cmd.body));
            }
            return;
        }
        if let (CommandBody::Enqueue(e), Ok(_)) = (&cmd.body, &result) {
            self.admitted.insert(e.call.clone());
            self.call_skills.insert(e.call.clone(), e.skills.clone());
        }
        if result.is_err() && !effects.is_empty() {
            self.obs.violations.push(format!("refused {:?} produced effects", cmd.body));
        }
        for e in &effects {
            match e {
                Effect::Offer(o) | Effect::DialCallback(o) => {
                    if let Some(other) = self.by_operator.insert(o.operator.clone(), o.call.clone()) {
                        self.obs
                            .violations
                            .push(format!("operator {} offered {} while holding {other}", o.operator, o.call));
                    }
                    if let Some(other) = self.by_call.insert(o.call.clone(), o.operator.clone()) {
                        self.obs
                            .violations
                            .push(format!("call {} offered to {} while held by {other}", o.call, o.operator));
                    }
                    if o.fence != h.index {
                        self.obs.violations.push(format!("offer fence {} is not the log index {}", o.fence, h.index));
                    }
                    // Global order: no earlier eligible caller still waiting (Pull and caps excepted).
                    if !is_pull {
                        let cfg = h.routing.operator_config(&o.operator).unwrap().clone();
                        let offered = h.routing.call_view(&o.call).unwrap();
                        for v in h.routing.calls() {
                            let waiting = matches!(v.status, CallStatus::Waiting | CallStatus::CallbackWaiting);
                            let capped =
                                h.routing.queue_config(&v.queue).is_some_and(|q| q.max_busy_operators.is_some());
                            if waiting
                                && !capped
                                && global_key(h, &v) < global_key(h, &offered)
                                && reference_eligible(h, &cfg, &v, &self.call_skills[&v.call])
                            {
                                self.obs
                                    .violations
                                    .push(format!("{} took {} over earlier eligible {}", o.operator, o.call, v.call));
                            }
                        }
                    }
                }
                Effect::CancelOffer { call, operator, .. } if self.by_operator.get(operator) == Some(call) => {
                    self.by_operator.remove(operator);
                    self.by_call.remove(call);
                }
                Effect::CallEnded(r) => {
                    *self.ended.entry(r.call.clone()).or_default() += 1;
                    if let Some(op) = self.by_call.remove(&r.call) {
                        self.by_operator.remove(&op);
                    }
                }
                _ => {}
            }
        }
        // Quiescence: no resting-free available operator has an eligible waiting caller.
        for view in h.routing.operators() {
            if view.status != OperatorStatus::Available || view.rest_until_ms.is_some() {
                continue;
            }
            let cfg = h.routing.operator_config(&view.operator).unwrap().clone();
            for v in h.routing.calls() {
                let waiting = matches!(v.status, CallStatus::Waiting | CallStatus::CallbackWaiting);
                if waiting && !queue_at_cap(h, &v.queue) && reference_eligible(h, &cfg, &v, &self.call_skills[&v.call])
                {
                    self.obs.violations.push(format!(
                        "available {} left eligible {} waiting after {:?}",
                        view.operator, v.call, cmd.body
                    ));
                }
            }
        }
        self.history.push((cmd, result));
    }
}

/// Runs a scenario, checking the properties after every command.
fn run(specs: &[OperatorSpec], actions: &[Action], snapshot_at: Option<usize>) -> Observed {
    let mut h = Harness::new();
    setup(&mut h, specs);
    let mut checker = Checker::default();
    let mut calls_made = 0u64;

    for (i, action) in actions.iter().enumerate() {
        if snapshot_at == Some(i) {
            let restored = Routing::restore(&h.routing.snapshot_bytes()).expect("snapshot restores");
            checker.twin = Some((restored, h.index));
        }
        if let Action::Tick { dt_ms } = action {
            h.now_ms += dt_ms;
        }
        let cmd = if let Action::Duplicate { pick } = action {
            if checker.history.is_empty() {
                continue;
            }
            checker.history[pick % checker.history.len()].0.clone()
        } else {
            match command_for(&h, action, &mut calls_made) {
                Some(body) => h.command(body),
                None => continue,
            }
        };
        checker.step(&mut h, cmd);
    }
    // Drain: end every call so each must show exactly one outcome.
    for site in 1..=3 {
        let cmd = h.command(CommandBody::SiteBack { site: SiteId(site) });
        checker.step(&mut h, cmd);
    }
    for _round in 0..4 {
        let views: Vec<CallView> = h.routing.calls().collect();
        for v in views {
            let body = match (v.status, v.fence, v.operator.clone()) {
                (CallStatus::Offered | CallStatus::CallbackOffered, Some(fence), Some(operator)) => {
                    CommandBody::Connected { call: v.call.clone(), operator, fence }
                }
                (CallStatus::Connected | CallStatus::CallbackConnected, Some(fence), _) => {
                    CommandBody::Completed { call: v.call.clone(), fence, by: HungUpBy::Caller }
                }
                _ => CommandBody::Abandoned { call: v.call.clone() },
            };
            if h.routing.call_view(&v.call).is_some() {
                let cmd = h.command(body);
                checker.step(&mut h, cmd);
            }
        }
    }
    if h.routing.call_count() != 0 {
        checker.obs.violations.push(format!("{} calls left after draining", h.routing.call_count()));
    }
    for call in &checker.admitted {
        match checker.ended.get(call) {
            Some(1) => {}
            n => checker.obs.violations.push(format!("call {call} ended {} times", n.copied().unwrap_or(0))),
        }
    }
    for call in checker.ended.keys() {
        if !checker.admitted.contains(call) {
            checker.obs.violations.push(format!("call {call} ended but was never admitted"));
        }
    }
    checker.obs
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, max_shrink_iters: 2_000, ..ProptestConfig::default() })]

    /// No operator or caller in two offers; global order; quiescence; exactly one outcome;
    /// duplicates are no-ops (all checked by the runner after every command).
    #[test]
    fn routing_invariants_hold((specs, actions) in scenario()) {
        let obs = run(&specs, &actions, None);
        prop_assert!(obs.violations.is_empty(), "{:#?}", obs.violations);
    }

    /// A node restored from a snapshot taken at any point produces the same results and
    /// effects as the node that never stopped.
    #[test]
    fn snapshot_restore_gives_the_same_future((specs, actions) in scenario(), at in 0usize..80) {
        let obs = run(&specs, &actions, Some(at.min(actions.len().saturating_sub(1))));
        prop_assert!(obs.violations.is_empty(), "{:#?}", obs.violations);
    }

    /// The same commands give byte-identical effects.
    #[test]
    fn apply_is_deterministic((specs, actions) in scenario()) {
        let first = run(&specs, &actions, None);
        let second = run(&specs, &actions, None);
        prop_assert_eq!(first.effect_bytes, second.effect_bytes);
    }
}
