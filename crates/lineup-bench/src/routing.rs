//! `lineup bench core`: the routing core alone — apply latency with an idle operator and
//! behind 100k waiting callers, completed → next offer, position lookups, live heap per
//! waiting call (from the counting allocator) and the snapshot's size and times.

use crate::alloc_count::live_bytes;
use crate::BenchError;
use lineup_core::{
    CallId, Command, CommandBody, CommandId, Effect, Enqueue, HungUpBy, OperatorConfig, OperatorId, QueueConfig,
    QueueId, Routing, SiteId,
};
use lineup_util::percentile;
use serde::Serialize;
use std::time::Instant;

/// The benchmark's clock (it never moves: no timer fires while measuring).
const BENCH_CLOCK_MS: u64 = 1_800_000_000_000;
/// Seed of the sample picker.
const PICK_SEED: u64 = 7;

/// What `lineup bench core` measures over.
#[derive(Debug, Clone)]
pub struct CoreBenchOptions {
    /// Waiting calls held in the state while measuring.
    pub waiting: u64,
    /// Queues the waiting calls are spread over.
    pub queues: u64,
    /// Operators in the state (all busy except a small idle team of `idle_operators`).
    pub operators: u64,
    pub idle_operators: u64,
    /// Samples per measured operation.
    pub samples: usize,
}

#[derive(Serialize)]
pub struct CoreBenchReport {
    waiting_calls: u64,
    queues: u64,
    operators: u64,
    /// Enqueue that produces an Offer in the same apply (an idle operator is waiting).
    enqueue_offer_ns_p50: u64,
    enqueue_offer_ns_p99: u64,
    /// Enqueue behind 100k waiting callers (no operator free).
    enqueue_ns_p50: u64,
    enqueue_ns_p99: u64,
    /// Completed → the operator is free → Offer of the globally first caller over 10 queues.
    complete_to_offer_ns_p50: u64,
    complete_to_offer_ns_p99: u64,
    position_ns_p50: u64,
    position_ns_p99: u64,
    /// Live heap bytes per waiting call (state + indexes), from a counting allocator.
    bytes_per_waiting_call: u64,
    /// Encoded snapshot bytes per waiting call.
    snapshot_bytes_per_waiting_call: u64,
    snapshot_encode_ms: u64,
    snapshot_restore_ms: u64,
}

struct Driver {
    routing: Routing,
    index: u64,
    now_ms: u64,
}

impl Driver {
    fn apply(&mut self, body: CommandBody) -> Vec<Effect> {
        self.index += 1;
        let cmd = Command { id: CommandId { origin: 1, serial: self.index }, at_ms: self.now_ms, body };
        let applied = self.routing.apply(self.index, &cmd);
        if let Err(e) = &applied.result {
            panic!("benchmark command {} refused: {e}", cmd.body.kind());
        }
        applied.effects
    }

    /// Applies `body` as the next command, timing the apply alone.
    fn timed_apply(&mut self, body: CommandBody) -> (u64, lineup_core::Applied) {
        self.index += 1;
        let cmd = Command { id: CommandId { origin: 1, serial: self.index }, at_ms: self.now_ms, body };
        let t = Instant::now();
        let applied = self.routing.apply(self.index, &cmd);
        (t.elapsed().as_nanos() as u64, applied)
    }

    fn enqueue_body(call: String, queue: String) -> CommandBody {
        CommandBody::Enqueue(Enqueue {
            channel: Some(format!("ch-{call}")),
            call: CallId(call),
            queue: QueueId(queue),
            gate: None,
            priority: None,
            caller_number: "+33123456789".into(),
            caller_name: "Bench Caller".into(),
            site: SiteId(1 + 1),
            skills: Default::default(),
            callback_number: None,
        })
    }

    fn log_in(&mut self, o: u64) {
        self.apply(CommandBody::OperatorLogin {
            operator: OperatorId(format!("op{o}")),
            site: SiteId(1 + o % 3),
            channel: Some(format!("hold-{o}")),
        });
    }
}

fn offer_of(effects: &[Effect]) -> Option<(CallId, OperatorId, u64)> {
    effects.iter().find_map(|e| match e {
        Effect::Offer(o) => Some((o.call.clone(), o.operator.clone(), o.fence)),
        _ => None,
    })
}

/// Tiny deterministic generator for picking samples (no randomness crate needed).
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *state >> 33
}

/// Runs the benchmark: builds the state, then times each operation `samples` times.
pub fn run(options: &CoreBenchOptions) -> Result<CoreBenchReport, BenchError> {
    if options.queues == 0 || options.operators <= options.idle_operators {
        return Err(BenchError::Unfit("need queues and busy operators"));
    }
    let mut d = Driver { routing: Routing::new(), index: 0, now_ms: BENCH_CLOCK_MS };
    d.apply(CommandBody::Tick { now_ms: d.now_ms });
    let queue_names: Vec<String> = (0..options.queues).map(|q| format!("q{q}")).collect();
    put_config(&mut d, options, &queue_names);
    let busy_operators = options.operators - options.idle_operators;
    make_busy(&mut d, options, &queue_names, busy_operators);
    let bytes_per_waiting_call = fill_queues(&mut d, options, &queue_names);
    for o in busy_operators..options.operators {
        d.log_in(o);
    }
    assert_eq!(d.routing.waiting_count() as u64, options.waiting);

    let mut rng = PICK_SEED;
    let mut enqueue_offer = time_enqueue_offer(&mut d, options.samples);
    let (mut complete_to_offer, mut enqueue) =
        time_complete_to_offer(&mut d, options.samples, busy_operators, &queue_names, &mut rng);
    let mut position = time_positions(&mut d, options.samples, &mut rng);
    let snapshot = time_snapshot(&d)?;
    for samples in [&mut enqueue_offer, &mut enqueue, &mut complete_to_offer, &mut position] {
        samples.sort_unstable();
    }
    Ok(CoreBenchReport {
        waiting_calls: options.waiting,
        queues: options.queues,
        operators: options.operators,
        enqueue_offer_ns_p50: percentile(&enqueue_offer, 0.50),
        enqueue_offer_ns_p99: percentile(&enqueue_offer, 0.99),
        enqueue_ns_p50: percentile(&enqueue, 0.50),
        enqueue_ns_p99: percentile(&enqueue, 0.99),
        complete_to_offer_ns_p50: percentile(&complete_to_offer, 0.50),
        complete_to_offer_ns_p99: percentile(&complete_to_offer, 0.99),
        position_ns_p50: percentile(&position, 0.50),
        position_ns_p99: percentile(&position, 0.99),
        bytes_per_waiting_call,
        snapshot_bytes_per_waiting_call: snapshot.bytes as u64 / options.waiting.max(1),
        snapshot_encode_ms: snapshot.encode_ms,
        snapshot_restore_ms: snapshot.restore_ms,
    })
}

/// The measured queues plus `bench` (the idle team's), and every operator: the big team in
/// all measured queues, the idle team in `bench` only.
fn put_config(d: &mut Driver, options: &CoreBenchOptions, queue_names: &[String]) {
    for q in queue_names.iter().chain(std::iter::once(&"bench".to_string())) {
        d.apply(CommandBody::PutQueue(QueueConfig {
            id: QueueId(q.clone()),
            max_waiting: 100_000,
            wrap_up_ms: 0,
            ..Default::default()
        }));
    }
    let busy_operators = options.operators - options.idle_operators;
    for o in 0..options.operators {
        let idle_team = o >= busy_operators;
        let memberships = if idle_team {
            [(QueueId("bench".into()), 0)].into_iter().collect()
        } else {
            queue_names.iter().map(|q| (QueueId(q.clone()), (o % 3) as u8)).collect()
        };
        d.apply(CommandBody::PutOperator(OperatorConfig {
            id: OperatorId(format!("op{o}")),
            name: format!("Operator {o}"),
            site: SiteId(1 + o % 3),
            memberships,
            ..Default::default()
        }));
    }
}

/// Makes the big team busy: one connected call each.
fn make_busy(d: &mut Driver, options: &CoreBenchOptions, queue_names: &[String], busy_operators: u64) {
    for o in 0..busy_operators {
        d.log_in(o);
        let q = &queue_names[(o % options.queues) as usize];
        let effects = d.apply(Driver::enqueue_body(format!("busy{o}"), q.clone()));
        let (call, operator, fence) = offer_of(&effects).expect("an idle operator takes the call");
        d.apply(CommandBody::Connected { call, operator, fence });
    }
}

/// Fills the queues with the waiting calls; answers the live heap bytes per waiting call.
fn fill_queues(d: &mut Driver, options: &CoreBenchOptions, queue_names: &[String]) -> u64 {
    let before = live_bytes();
    for i in 0..options.waiting {
        let q = &queue_names[(i % options.queues) as usize];
        d.apply(Driver::enqueue_body(format!("w{i}"), q.clone()));
    }
    (live_bytes().saturating_sub(before) as u64) / options.waiting.max(1)
}

/// Enqueue → Offer (idle team), then connect/complete outside the clock to free them again.
fn time_enqueue_offer(d: &mut Driver, samples: usize) -> Vec<u64> {
    let mut enqueue_offer = Vec::with_capacity(samples);
    for i in 0..samples {
        let (ns, applied) = d.timed_apply(Driver::enqueue_body(format!("b{i}"), "bench".into()));
        enqueue_offer.push(ns);
        let (call, operator, fence) = offer_of(&applied.effects).expect("the idle team takes bench calls");
        d.apply(CommandBody::Connected { call: call.clone(), operator, fence });
        d.apply(CommandBody::Completed { call, fence, by: HungUpBy::Caller });
    }
    enqueue_offer
}

/// Completed on a busy operator → it takes the globally first caller; then a new caller
/// joins so the depth stays constant. Answers (completed → offer, enqueue) samples.
fn time_complete_to_offer(
    d: &mut Driver,
    samples: usize,
    busy_operators: u64,
    queue_names: &[String],
    rng: &mut u64,
) -> (Vec<u64>, Vec<u64>) {
    let mut complete_to_offer = Vec::with_capacity(samples);
    let mut enqueue = Vec::with_capacity(samples);
    let mut connected: Vec<(CallId, u64)> = (0..busy_operators)
        .map(|o| {
            let view = d.routing.call_view(&CallId(format!("busy{o}"))).expect("busy call");
            (view.call, view.fence.expect("connected"))
        })
        .collect();
    for i in 0..samples {
        let slot = (next(rng) as usize) % connected.len();
        let (call, fence) = connected[slot].clone();
        let (ns, applied) = d.timed_apply(CommandBody::Completed { call, fence, by: HungUpBy::Operator });
        complete_to_offer.push(ns);
        let (next_call, operator, next_fence) = offer_of(&applied.effects).expect("the freed operator takes a caller");
        d.apply(CommandBody::Connected { call: next_call.clone(), operator, fence: next_fence });
        connected[slot] = (next_call, next_fence);
        let q = &queue_names[i % queue_names.len()];
        let (ns, applied) = d.timed_apply(Driver::enqueue_body(format!("n{i}"), q.clone()));
        enqueue.push(ns);
        assert!(applied.result.is_ok());
    }
    (complete_to_offer, enqueue)
}

/// Position lookups of random waiting callers.
fn time_positions(d: &mut Driver, samples: usize, rng: &mut u64) -> Vec<u64> {
    let waiting: Vec<CallId> = d.routing.waiting_calls().into_iter().map(|w| w.call).collect();
    let mut position = Vec::with_capacity(samples);
    for _ in 0..samples {
        let call = &waiting[(next(rng) as usize) % waiting.len()];
        let t = Instant::now();
        let p = d.routing.position(call);
        position.push(t.elapsed().as_nanos() as u64);
        assert!(p.is_some());
    }
    position
}

/// The snapshot's size, and how long it takes to encode and to restore.
struct SnapshotFigures {
    bytes: usize,
    encode_ms: u64,
    restore_ms: u64,
}

fn time_snapshot(d: &Driver) -> Result<SnapshotFigures, BenchError> {
    let t = Instant::now();
    let snapshot = d.routing.snapshot_bytes();
    let encode_ms = t.elapsed().as_millis() as u64;
    let t = Instant::now();
    let restored = Routing::restore(&snapshot)?;
    let restore_ms = t.elapsed().as_millis() as u64;
    if restored.waiting_count() != d.routing.waiting_count() {
        return Err(BenchError::Check("restore lost calls"));
    }
    Ok(SnapshotFigures { bytes: snapshot.len(), encode_ms, restore_ms })
}
