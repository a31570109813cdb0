//! Structure-aware command streams into `Routing::apply`, the core's invariants checked
//! after every command. The commands are decoded from the fuzzer's bytes by a small
//! hand-written decoder (no `arbitrary` in the workspace): names come from small pools so
//! commands meet each other, and reports about offers name offers the core really made
//! (sometimes with a stale fence).

use crate::input::ByteReader;
use crate::rigs::{check, STRIDE};
use lineup_core::{
    AlarmPolicy, AuditActor, AuditRole, CallId, Command, CommandBody, CommandId, EmptyRule, Enqueue, GateConfig,
    GateId, HungUpBy, OfferFailure, OperatorConfig, OperatorId, OperatorMode, QueueAlarmClear, QueueConfig, QueueId,
    RequestedState, Routing, SiteId, Skill, Target, TierRule,
};
use std::collections::BTreeMap;

/// Commands applied per input, at most.
pub const COMMANDS_PER_INPUT_MAX: usize = 512;
/// Offers remembered for reports (most recent kept).
const OFFERS_REMEMBERED_MAX: usize = 64;
/// Commands remembered for duplicates.
const HISTORY_MAX: usize = 256;
const START_MS: u64 = crate::rigs::EPOCH_MS;

const QUEUES: [&str; 4] = ["q0", "q1", "q2", "nope"];
const OPERATORS: [&str; 5] = ["op0", "op1", "op2", "op3", "ghost"];
const CALLS: usize = 16;
const SITES: [u64; 4] = [1, 2, 3, 9];
const SKILLS: [&str; 2] = ["fr", "de"];

struct Stream {
    routing: Routing,
    log_index: u64,
    serial: u64,
    now_ms: u64,
    /// (call, operator, fence) of offers and callback dials the core made.
    offers: Vec<(CallId, OperatorId, u64)>,
    history: Vec<Command>,
}

impl Stream {
    fn apply(&mut self, origin: u64, at_ms: u64, body: CommandBody) {
        self.serial += 1;
        let command = Command { id: CommandId { origin, serial: self.serial }, at_ms, body };
        self.apply_command(&command);
        if self.history.len() < HISTORY_MAX {
            self.history.push(command);
        }
    }

    fn apply_command(&mut self, command: &Command) -> lineup_core::Applied {
        self.log_index += 1;
        let applied = self.routing.apply(self.log_index * STRIDE, command);
        check(&self.routing, command.body.kind());
        for effect in &applied.effects {
            if let lineup_core::Effect::Offer(offer) | lineup_core::Effect::DialCallback(offer) = effect {
                if self.offers.len() == OFFERS_REMEMBERED_MAX {
                    self.offers.remove(0);
                }
                self.offers.push((offer.call.clone(), offer.operator.clone(), offer.fence));
            }
        }
        applied
    }
}

fn queue(input: &mut ByteReader<'_>, id: &str, next: &str) -> QueueConfig {
    let option = |input: &mut ByteReader<'_>, scale: u64| match input.u8() {
        0..=127 => None,
        byte => Some(u64::from(byte - 127) * scale),
    };
    QueueConfig {
        id: QueueId::new(id),
        default_priority: input.pick(&[5, 0, 10]),
        weight: input.u8() % 4,
        required_skills: if input.u8() % 4 == 0 { [(Skill::new("fr"), 50)].into() } else { BTreeMap::new() },
        max_wait_ms: option(input, 1_000),
        timeout_target: if input.bool() {
            Target::Queue { queue: QueueId::new(next), keep_order: input.bool() }
        } else {
            Target::Dialplan
        },
        max_waiting: 1 + u32::from(input.u8() % 8),
        join_when_empty: input.pick(&[EmptyRule::Never, EmptyRule::NoneLoggedIn, EmptyRule::NoneReady]),
        leave_when_empty: input.pick(&[EmptyRule::Never, EmptyRule::NoneLoggedIn, EmptyRule::NoneReady]),
        tier_rules: if input.bool() { vec![TierRule { after_wait_ms: 20_000, max_penalty: 2 }] } else { Vec::new() },
        callback_offer_above_eta_ms: option(input, 1_000),
        wrap_up_ms: u64::from(input.u8() % 8) * 1_000,
        ring_timeout_ms: 5_000 + u64::from(input.u8() % 8) * 1_000,
        misses_before_break: input.u8() % 4,
        max_busy_operators: if input.bool() { Some(1 + u32::from(input.u8() % 3)) } else { None },
        announce_every_ms: option(input, 1_000),
        pull_only: input.u8() % 8 == 0,
        alarm_longest_wait_ms: option(input, 1_000),
        alarm_depth: if input.bool() { Some(2) } else { None },
        ..Default::default()
    }
}

fn operator(input: &mut ByteReader<'_>, id: &str) -> OperatorConfig {
    let mode = input.pick(&[OperatorMode::Persistent, OperatorMode::Ring]);
    let mut memberships = BTreeMap::new();
    for queue in &QUEUES[..3] {
        if input.bool() {
            memberships.insert(QueueId::new(*queue), input.u8() % 3);
        }
    }
    OperatorConfig {
        id: OperatorId::new(id),
        site: SiteId(input.pick(&SITES[..3])),
        pin_hash: crate::rigs::fake_phc(crate::rigs::PIN),
        mode,
        endpoint: (mode == OperatorMode::Ring).then(|| format!("PJSIP/{id}")),
        skills: if input.bool() { [(Skill::new(input.pick(&SKILLS)), 80)].into() } else { BTreeMap::new() },
        memberships,
        ..Default::default()
    }
}

/// Input: the settings of three queues, a gate and four operators, then one command per
/// step (a selector byte and its fields).
pub fn core_commands(data: &[u8]) {
    let mut input = ByteReader::new(data);
    let mut stream = Stream {
        routing: Routing::new(),
        log_index: 0,
        serial: 0,
        now_ms: START_MS,
        offers: Vec::new(),
        history: Vec::new(),
    };
    stream.apply(0, START_MS, CommandBody::Tick { now_ms: START_MS });
    for (i, id) in QUEUES[..3].iter().enumerate() {
        let config = queue(&mut input, id, QUEUES[(i + 1) % 3]);
        stream.apply(0, START_MS, CommandBody::PutQueue(config));
    }
    let gate = GateConfig {
        id: GateId::new("g0"),
        queue: QueueId::new("q0"),
        priority: input.pick(&[None, Some(0), Some(10)]),
        ..Default::default()
    };
    stream.apply(0, START_MS, CommandBody::PutGate(gate));
    for id in &OPERATORS[..4] {
        let config = operator(&mut input, id);
        stream.apply(0, START_MS, CommandBody::PutOperator(config));
    }
    for _ in 0..COMMANDS_PER_INPUT_MAX {
        if input.is_empty() {
            break;
        }
        step(&mut stream, &mut input);
    }
}

fn call(input: &mut ByteReader<'_>) -> CallId {
    CallId::new(format!("c{}", input.u8() as usize % CALLS))
}

fn site(input: &mut ByteReader<'_>) -> SiteId {
    SiteId(input.pick(&SITES))
}

/// An offer the core made (its fence sometimes made stale), or a made-up one.
fn offer(stream: &Stream, input: &mut ByteReader<'_>) -> (CallId, OperatorId, u64) {
    let pick = usize::from(input.u8());
    let stale = input.u8() % 8 == 0;
    match stream.offers.get(stream.offers.len().saturating_sub(1 + pick % 8)) {
        Some((call, operator, fence)) if !stale => (call.clone(), operator.clone(), *fence),
        Some((call, operator, fence)) => (call.clone(), operator.clone(), fence.saturating_sub(STRIDE)),
        None => (CallId::new("c0"), OperatorId::new("op0"), STRIDE),
    }
}

fn step(stream: &mut Stream, input: &mut ByteReader<'_>) {
    let selector = input.u8() % 28;
    let origin = u64::from(input.u8() % 4);
    let at_ms = stream.now_ms + u64::from(input.u8()) * 20;
    let body = match selector {
        0..=3 => enqueue(input),
        4 | 5 => CommandBody::OperatorLogin {
            operator: OperatorId::new(input.pick(&OPERATORS)),
            site: site(input),
            channel: input.bool().then(|| format!("op-leg-{}", input.u8() % 4)),
        },
        6 => CommandBody::OperatorLogout { operator: OperatorId::new(input.pick(&OPERATORS)) },
        7 => CommandBody::OperatorState {
            operator: OperatorId::new(input.pick(&OPERATORS)),
            state: input.pick(&[
                RequestedState::Available,
                RequestedState::Offline,
                RequestedState::Break { reason: "lunch".into() },
            ]),
        },
        8..=15 => offer_report(stream, input, selector),
        16 => CommandBody::Abandoned { call: call(input) },
        17 => CommandBody::ExitWithKey { call: call(input), key: input.pick(&['0', '1', '#', 'x']) },
        18 => CommandBody::RequestCallback {
            call: call(input),
            number: input.pick(&["5551234", "+15551234567", "12", "55a"]).to_string(),
        },
        19 => CommandBody::Reassign {
            call: call(input),
            queue: QueueId::new(input.pick(&QUEUES)),
            keep_age: input.bool(),
        },
        20 => CommandBody::ChangePriority { call: call(input), priority: input.pick(&[0, 5, 10, 255]) },
        21 => CommandBody::Pull {
            operator: OperatorId::new(input.pick(&OPERATORS)),
            call: input.bool().then(|| call(input)),
        },
        22 | 23 => {
            stream.now_ms += u64::from(input.u16()) * 10;
            CommandBody::Tick { now_ms: stream.now_ms }
        }
        24 => match input.u8() % 3 {
            0 => CommandBody::SiteLost { site: site(input) },
            1 => CommandBody::SiteUnreachable { site: site(input) },
            _ => CommandBody::SiteBack { site: site(input) },
        },
        25 => return duplicate(stream, input),
        26 => return snapshot_round_trip(stream),
        _ => reconfigure(input),
    };
    let body = if matches!(selector, 6 | 7 | 19..=21) { maybe_audited(body, input) } else { body };
    stream.apply(origin, at_ms, body);
}

/// A supervisor's action, now and then wrapped with who made it: good and bad actor names,
/// and sometimes a nested wrapper (both refused).
fn maybe_audited(body: CommandBody, input: &mut ByteReader<'_>) -> CommandBody {
    if input.u8() % 4 != 0 {
        return body;
    }
    let once = audited(body, input);
    if input.u8() % 8 == 0 {
        audited(once, input)
    } else {
        once
    }
}

fn audited(body: CommandBody, input: &mut ByteReader<'_>) -> CommandBody {
    let actor = AuditActor {
        token_name: input.pick(&["ops", "sup", "", "a\nb"]).to_string(),
        role: input.pick(&[AuditRole::Admin, AuditRole::Supervisor]),
    };
    CommandBody::Audited { actor, body: Box::new(body) }
}

fn enqueue(input: &mut ByteReader<'_>) -> CommandBody {
    CommandBody::Enqueue(Enqueue {
        call: call(input),
        queue: QueueId::new(input.pick(&QUEUES)),
        gate: input.pick(&[None, Some(GateId::new("g0")), Some(GateId::new("nope"))]),
        priority: input.pick(&[None, Some(0), Some(5), Some(10)]),
        caller_number: "5551234".into(),
        caller_name: "Caller".into(),
        site: site(input),
        channel: if input.u8() % 8 == 0 { None } else { Some(format!("ch-{}", input.u8() % 32)) },
        skills: if input.u8() % 4 == 0 { [(Skill::new(input.pick(&SKILLS)), 40)].into() } else { BTreeMap::new() },
        callback_number: if input.u8() % 8 == 0 { Some("5559876".into()) } else { None },
    })
}

fn offer_report(stream: &Stream, input: &mut ByteReader<'_>, selector: u8) -> CommandBody {
    let (call, operator, fence) = offer(stream, input);
    match selector {
        8 | 9 => CommandBody::Connected { call, operator, fence },
        10 => CommandBody::OfferFailed {
            call,
            operator,
            fence,
            reason: input.pick(&[
                OfferFailure::BridgeFailed,
                OfferFailure::OperatorUnreachable,
                OfferFailure::TrunkFailed { cause: 34 },
                OfferFailure::Interrupted,
            ]),
        },
        11 => CommandBody::RingNoAnswer { call, operator, fence },
        12 => CommandBody::Completed {
            call,
            fence,
            by: input.pick(&[HungUpBy::Caller, HungUpBy::Operator, HungUpBy::SiteLost]),
        },
        13 => CommandBody::Transferred { call, fence, target: "sales-desk".into() },
        14 => CommandBody::CallbackResult { call, operator, fence, answered: input.bool() },
        _ => CommandBody::OperatorLegEnded { call, operator, fence },
    }
}

/// The same command again (a proposer's retry): the first result, no effects.
fn duplicate(stream: &mut Stream, input: &mut ByteReader<'_>) {
    if stream.history.is_empty() {
        return;
    }
    let command = stream.history[usize::from(input.u8()) % stream.history.len()].clone();
    let first = stream.routing.result_of(&command.id);
    let again = stream.apply_command(&command);
    if let Some(first) = first {
        assert_eq!(again.result, first, "a duplicate's result differs from the first");
        assert!(again.effects.is_empty(), "a duplicate had effects");
    }
}

/// A snapshot restores to a state whose snapshot is the same bytes; the stream goes on with
/// the restored state.
fn snapshot_round_trip(stream: &mut Stream) {
    let bytes = stream.routing.snapshot_bytes();
    let restored = Routing::restore(&bytes).expect("a snapshot restores");
    assert!(restored.snapshot_bytes() == bytes, "snapshot → restore → snapshot changed the bytes");
    check(&restored, "restore");
    stream.routing = restored;
}

fn reconfigure(input: &mut ByteReader<'_>) -> CommandBody {
    match input.u8() % 5 {
        0 => {
            let id = input.pick(&QUEUES[..3]);
            CommandBody::PutQueue(queue(input, id, "q0"))
        }
        1 => CommandBody::DeleteQueue { queue: QueueId::new(input.pick(&QUEUES)) },
        2 => {
            let id = input.pick(&OPERATORS[..4]);
            CommandBody::PutOperator(operator(input, id))
        }
        3 => CommandBody::DeleteOperator { operator: OperatorId::new(input.pick(&OPERATORS)) },
        _ => CommandBody::PutAlarmPolicy(alarm_policy(input)),
    }
}

/// Clear levels and hold from the input: percentages over 100 and levels at or above a
/// queue's raise level included (the core refuses or caps them).
fn alarm_policy(input: &mut ByteReader<'_>) -> AlarmPolicy {
    let mut policy = AlarmPolicy {
        depth_clear_percent: input.u8(),
        longest_wait_clear_percent: input.u8(),
        hold_ms: input.pick(&[0, 1_000, 60_000, u64::MAX]),
        queues: BTreeMap::new(),
    };
    if input.bool() {
        let clear = QueueAlarmClear {
            depth_clear: input.bool().then(|| u32::from(input.u8())),
            longest_wait_clear_ms: input.bool().then(|| u64::from(input.u16()) * 100),
        };
        policy.queues.insert(QueueId::new(input.pick(&QUEUES)), clear);
    }
    policy
}
