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
use common::*;
use lineup_core::*;
use proptest::prelude::*;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

const CASES: u32 = 1_000;
const QUEUES: [&str; 4] = ["q0", "q1", "capped", "pull"];
const SKILLS: [&str; 2] = ["fr", "de"];
const OPERATORS: usize = 5;

#[derive(Debug, Clone)]
enum Action {
    Enqueue {
        queue: usize,
        priority: u8,
        skill: Option<usize>,
        site: u64,
        callback: bool,
    },
    Login {
        op: usize,
        site: u64,
    },
    /// A PIN login from a phone call (kept for queue_log until the logoff).
    PinLogin {
        op: usize,
        site: u64,
    },
    PinRejected {
        op: usize,
    },
    Logout {
        op: usize,
    },
    Break {
        op: usize,
    },
    Available {
        op: usize,
    },
    Connect {
        pick: usize,
    },
    StaleConnect {
        pick: usize,
    },
    FailOffer {
        pick: usize,
        unreachable: bool,
    },
    NoAnswer {
        pick: usize,
    },
    Complete {
        pick: usize,
        by_operator: bool,
    },
    Abandon {
        pick: usize,
    },
    ExitKey {
        pick: usize,
    },
    Callback {
        pick: usize,
    },
    CallbackResult {
        pick: usize,
        answered: bool,
    },
    Reassign {
        pick: usize,
        queue: usize,
        keep_age: bool,
    },
    ChangePriority {
        pick: usize,
        priority: u8,
    },
    Pull {
        op: usize,
        pick: Option<usize>,
    },
    Tick {
        dt_ms: u64,
    },
    SiteLost {
        site: u64,
    },
    SiteUnreachable {
        site: u64,
    },
    SiteBack {
        site: u64,
    },
    Duplicate {
        pick: usize,
    },
}

fn action() -> impl Strategy<Value = Action> {
    let op = 0..OPERATORS;
    let pick = 0usize..64;
    let site = 1u64..=3;
    prop_oneof![
        6 => (0..QUEUES.len(), prop::sample::select(vec![0u8, 5, 10]), prop::option::of(0..SKILLS.len()), site.clone(), prop::bool::weighted(0.1))
            .prop_map(|(queue, priority, skill, site, callback)| Action::Enqueue { queue, priority, skill, site, callback }),
        3 => (op.clone(), site.clone()).prop_map(|(op, site)| Action::Login { op, site }),
        1 => (op.clone(), site.clone()).prop_map(|(op, site)| Action::PinLogin { op, site }),
        1 => op.clone().prop_map(|op| Action::PinRejected { op }),
        1 => op.clone().prop_map(|op| Action::Logout { op }),
        1 => op.clone().prop_map(|op| Action::Break { op }),
        2 => op.clone().prop_map(|op| Action::Available { op }),
        5 => pick.clone().prop_map(|pick| Action::Connect { pick }),
        1 => pick.clone().prop_map(|pick| Action::StaleConnect { pick }),
        1 => (pick.clone(), any::<bool>()).prop_map(|(pick, unreachable)| Action::FailOffer { pick, unreachable }),
        1 => pick.clone().prop_map(|pick| Action::NoAnswer { pick }),
        4 => (pick.clone(), any::<bool>()).prop_map(|(pick, by_operator)| Action::Complete { pick, by_operator }),
        2 => pick.clone().prop_map(|pick| Action::Abandon { pick }),
        1 => pick.clone().prop_map(|pick| Action::ExitKey { pick }),
        1 => pick.clone().prop_map(|pick| Action::Callback { pick }),
        1 => (pick.clone(), any::<bool>()).prop_map(|(pick, answered)| Action::CallbackResult { pick, answered }),
        1 => (pick.clone(), 0..QUEUES.len(), any::<bool>()).prop_map(|(pick, queue, keep_age)| Action::Reassign { pick, queue, keep_age }),
        1 => (pick.clone(), prop::sample::select(vec![0u8, 5, 10])).prop_map(|(pick, priority)| Action::ChangePriority { pick, priority }),
        1 => (op.clone(), prop::option::of(pick.clone())).prop_map(|(op, pick)| Action::Pull { op, pick }),
        4 => (0u64..40_000).prop_map(|dt_ms| Action::Tick { dt_ms }),
        1 => site.clone().prop_map(|site| Action::SiteLost { site }),
        2 => site.clone().prop_map(|site| Action::SiteUnreachable { site }),
        2 => site.prop_map(|site| Action::SiteBack { site }),
        1 => pick.prop_map(|pick| Action::Duplicate { pick }),
    ]
}

#[derive(Debug, Clone)]
struct OperatorSpec {
    memberships: Vec<(usize, u8)>,
    skills: Vec<(usize, u8)>,
    ring: bool,
}

fn operator_spec() -> impl Strategy<Value = OperatorSpec> {
    (
        prop::collection::btree_map(0..QUEUES.len(), 0u8..3, 1..=3),
        prop::collection::btree_map(0..SKILLS.len(), 0u8..=100, 0..=2),
        any::<bool>(),
    )
        .prop_map(|(m, s, ring)| OperatorSpec {
            memberships: m.into_iter().collect(),
            skills: s.into_iter().collect(),
            ring,
        })
}

fn scenario() -> impl Strategy<Value = (Vec<OperatorSpec>, Vec<Action>)> {
    (prop::collection::vec(operator_spec(), OPERATORS), prop::collection::vec(action(), 1..80))
}

fn op_name(i: usize) -> OperatorId {
    OperatorId::new(format!("op{i}"))
}

/// The world the scenario runs in: queues of every kind, operators from the spec.
fn setup(h: &mut Harness, specs: &[OperatorSpec]) {
    h.queue(QueueConfig {
        id: QueueId::new("q0"),
        max_wait_ms: Some(90_000),
        timeout_target: Target::Queue { queue: QueueId::new("q1"), keep_order: true },
        wrap_up_ms: 10_000,
        ..Default::default()
    });
    h.queue(QueueConfig {
        id: QueueId::new("q1"),
        weight: 3,
        tier_rules: vec![
            TierRule { after_wait_ms: 0, max_penalty: 0 },
            TierRule { after_wait_ms: 20_000, max_penalty: 2 },
        ],
        required_skills: [(Skill::new("fr"), 10)].into_iter().collect(),
        callback_retry_delay_ms: 15_000,
        ..Default::default()
    });
    h.queue(QueueConfig {
        id: QueueId::new("capped"),
        max_busy_operators: Some(1),
        max_waiting: 4,
        misses_before_break: 2,
        ..Default::default()
    });
    h.queue(QueueConfig { id: QueueId::new("pull"), pull_only: true, ..Default::default() });
    for (i, spec) in specs.iter().enumerate() {
        h.ok(CommandBody::PutOperator(OperatorConfig {
            id: op_name(i),
            name: format!("Operator {i}"),
            site: SiteId(1 + i as u64 % 3),
            mode: if spec.ring { OperatorMode::Ring } else { OperatorMode::Persistent },
            endpoint: spec.ring.then(|| format!("PJSIP/op{i}")),
            skills: spec.skills.iter().map(|(s, l)| (Skill::new(SKILLS[*s]), *l)).collect(),
            memberships: spec.memberships.iter().map(|(q, p)| (QueueId::new(QUEUES[*q]), *p)).collect(),
            ..Default::default()
        }));
    }
}

/// Translates an action into a command against the current state (None: nothing to do).
fn command_for(h: &Harness, action: &Action, calls_made: &mut u64) -> Option<CommandBody> {
    let views: Vec<CallView> = h.routing.calls().collect();
    let pick_call = |pick: usize, want: &dyn Fn(&CallView) -> bool| -> Option<CallView> {
        let matching: Vec<&CallView> = views.iter().filter(|v| want(v)).collect();
        (!matching.is_empty()).then(|| matching[pick % matching.len()].clone())
    };
    let offered = |v: &CallView| matches!(v.status, CallStatus::Offered | CallStatus::CallbackOffered);
    Some(match action {
        Action::Enqueue { queue, priority, skill, site, callback } => {
            *calls_made += 1;
            CommandBody::Enqueue(Enqueue {
                call: CallId::new(format!("c{calls_made}")),
                queue: QueueId::new(QUEUES[*queue]),
                gate: None,
                priority: Some(*priority),
                caller_number: "5550100".into(),
                caller_name: "Caller".into(),
                site: SiteId(*site),
                channel: (!callback).then(|| format!("ch{calls_made}")),
                skills: skill.iter().map(|s| (Skill::new(SKILLS[*s]), 20)).collect(),
                callback_number: callback.then(|| "+15550100".to_string()),
            })
        }
        Action::Login { op, site } => {
            let ring = h.routing.operator_config(&op_name(*op))?.mode == OperatorMode::Ring;
            CommandBody::OperatorLogin {
                operator: op_name(*op),
                site: SiteId(*site),
                channel: (!ring).then(|| format!("hold-{op}")),
            }
        }
        Action::PinLogin { op, site } => {
            let ring = h.routing.operator_config(&op_name(*op))?.mode == OperatorMode::Ring;
            let login = LoginChannel { uniqueid: format!("login-{op}"), name: format!("PJSIP/{op}-0000000{site}") };
            CommandBody::OperatorLoginFrom {
                operator: op_name(*op),
                site: SiteId(*site),
                channel: (!ring).then(|| format!("hold-{op}")),
                login,
            }
        }
        Action::PinRejected { op } => CommandBody::PinRejected { operator: op_name(*op) },
        Action::Logout { op } => CommandBody::OperatorLogout { operator: op_name(*op) },
        Action::Break { op } => CommandBody::OperatorState {
            operator: op_name(*op),
            state: RequestedState::Break { reason: "coffee".into() },
        },
        Action::Available { op } => {
            CommandBody::OperatorState { operator: op_name(*op), state: RequestedState::Available }
        }
        Action::Connect { pick } => {
            let v = pick_call(*pick, &|v| v.status == CallStatus::Offered)?;
            CommandBody::Connected { call: v.call, operator: v.operator?, fence: v.fence? }
        }
        Action::StaleConnect { pick } => {
            let v = pick_call(*pick, &offered)?;
            CommandBody::Connected { call: v.call, operator: v.operator?, fence: v.fence? - 1 }
        }
        Action::FailOffer { pick, unreachable } => {
            let v = pick_call(*pick, &offered)?;
            let reason = if *unreachable { OfferFailure::OperatorUnreachable } else { OfferFailure::BridgeFailed };
            CommandBody::OfferFailed { call: v.call, operator: v.operator?, fence: v.fence?, reason }
        }
        Action::NoAnswer { pick } => {
            let v = pick_call(*pick, &offered)?;
            CommandBody::RingNoAnswer { call: v.call, operator: v.operator?, fence: v.fence? }
        }
        Action::Complete { pick, by_operator } => {
            let v = pick_call(*pick, &|v| matches!(v.status, CallStatus::Connected | CallStatus::CallbackConnected))?;
            CommandBody::Completed {
                call: v.call,
                fence: v.fence?,
                by: if *by_operator { HungUpBy::Operator } else { HungUpBy::Caller },
            }
        }
        Action::Abandon { pick } => CommandBody::Abandoned { call: pick_call(*pick, &|_| true)?.call },
        Action::ExitKey { pick } => {
            CommandBody::ExitWithKey { call: pick_call(*pick, &|v| v.status == CallStatus::Waiting)?.call, key: '5' }
        }
        Action::Callback { pick } => CommandBody::RequestCallback {
            call: pick_call(*pick, &|v| v.status == CallStatus::Waiting)?.call,
            number: "5550199".into(),
        },
        Action::CallbackResult { pick, answered } => {
            let v = pick_call(*pick, &|v| v.status == CallStatus::CallbackOffered)?;
            CommandBody::CallbackResult { call: v.call, operator: v.operator?, fence: v.fence?, answered: *answered }
        }
        Action::Reassign { pick, queue, keep_age } => CommandBody::Reassign {
            call: pick_call(*pick, &|v| matches!(v.status, CallStatus::Waiting | CallStatus::CallbackWaiting))?.call,
            queue: QueueId::new(QUEUES[*queue]),
            keep_age: *keep_age,
        },
        Action::ChangePriority { pick, priority } => CommandBody::ChangePriority {
            call: pick_call(*pick, &|v| matches!(v.status, CallStatus::Waiting | CallStatus::CallbackWaiting))?.call,
            priority: *priority,
        },
        Action::Pull { op, pick } => CommandBody::Pull {
            operator: op_name(*op),
            call: match pick {
                Some(p) => Some(
                    pick_call(*p, &|v| matches!(v.status, CallStatus::Waiting | CallStatus::CallbackWaiting))?.call,
                ),
                None => None,
            },
        },
        Action::Tick { dt_ms } => CommandBody::Tick { now_ms: h.now_ms + dt_ms },
        Action::SiteLost { site } => CommandBody::SiteLost { site: SiteId(*site) },
        Action::SiteUnreachable { site } => CommandBody::SiteUnreachable { site: SiteId(*site) },
        Action::SiteBack { site } => CommandBody::SiteBack { site: SiteId(*site) },
        // Handled by the runner: it re-applies an exact earlier command.
        Action::Duplicate { .. } => return None,
    })
}

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
