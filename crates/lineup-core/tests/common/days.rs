//! Random call-centre days: the actions a day is made of, their generators, the world
//! they run in, and their translation into commands against the current state. Shared by
//! the property tests (`properties.rs`, `island_properties.rs`).

use super::Harness;
use lineup_core::*;
use proptest::prelude::*;

pub const QUEUES: [&str; 4] = ["q0", "q1", "capped", "pull"];
pub const SKILLS: [&str; 2] = ["fr", "de"];
pub const OPERATORS: usize = 5;

#[derive(Debug, Clone)]
pub enum Action {
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

pub fn action() -> impl Strategy<Value = Action> {
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
pub struct OperatorSpec {
    pub memberships: Vec<(usize, u8)>,
    pub skills: Vec<(usize, u8)>,
    pub ring: bool,
}

pub fn operator_spec() -> impl Strategy<Value = OperatorSpec> {
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

pub fn scenario() -> impl Strategy<Value = (Vec<OperatorSpec>, Vec<Action>)> {
    (prop::collection::vec(operator_spec(), OPERATORS), prop::collection::vec(action(), 1..80))
}

pub fn op_name(i: usize) -> OperatorId {
    OperatorId::new(format!("op{i}"))
}

/// The world the scenario runs in: queues of every kind, operators from the spec.
pub fn setup(h: &mut Harness, specs: &[OperatorSpec]) {
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
pub fn command_for(h: &Harness, action: &Action, calls_made: &mut u64) -> Option<CommandBody> {
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

/// An island's stream: two thirds of its entries and logins at the island (the rest at site
/// 3, which an island at site 1 or 2 refuses), so that the island has callers and operators
/// to pair.
pub fn toward(island: u64, action: Action) -> Action {
    let near = |site: u64| if site == 3 { site } else { island };
    match action {
        Action::Enqueue { queue, priority, skill, site, callback } => {
            Action::Enqueue { queue, priority, skill, site: near(site), callback }
        }
        Action::Login { op, site } => Action::Login { op, site: near(site) },
        Action::PinLogin { op, site } => Action::PinLogin { op, site: near(site) },
        other => other,
    }
}
