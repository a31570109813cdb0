//! `lineup bench ...`: measured speed, printed as JSON for docs/BENCHMARKS.md and CI.

use crate::alloc_count::live_bytes;
use lineup_core::{
    CallId, Command, CommandBody, CommandId, Effect, Enqueue, HungUpBy, OperatorConfig, OperatorId, QueueConfig,
    QueueId, Routing, SiteId,
};
use lineup_util::percentile;
use serde::Serialize;
use std::time::Instant;

#[derive(clap::Args)]
pub struct CoreBenchArgs {
    /// Waiting calls held in the state while measuring.
    #[arg(long, default_value_t = 100_000)]
    waiting: u64,
    /// Queues the waiting calls are spread over.
    #[arg(long, default_value_t = 10)]
    queues: u64,
    /// Operators in the state (all busy except a small idle team of `--idle-operators`).
    #[arg(long, default_value_t = 1_000)]
    operators: u64,
    #[arg(long, default_value_t = 10)]
    idle_operators: u64,
    /// Samples per measured operation.
    #[arg(long, default_value_t = 20_000)]
    samples: usize,
    /// Print JSON only.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct CoreBenchReport {
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

pub fn core(args: &CoreBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.queues > 0 && args.operators > args.idle_operators, "need queues and busy operators");
    let mut d = Driver { routing: Routing::new(), index: 0, now_ms: 1_800_000_000_000 };
    d.apply(CommandBody::Tick { now_ms: d.now_ms });
    let queue_names: Vec<String> = (0..args.queues).map(|q| format!("q{q}")).collect();
    for q in queue_names.iter().chain(std::iter::once(&"bench".to_string())) {
        d.apply(CommandBody::PutQueue(QueueConfig {
            id: QueueId(q.clone()),
            max_waiting: 100_000,
            wrap_up_ms: 0,
            ..Default::default()
        }));
    }
    let busy_operators = args.operators - args.idle_operators;
    for o in 0..args.operators {
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
    // Make the big team busy: one connected call each.
    for o in 0..busy_operators {
        d.apply(CommandBody::OperatorLogin {
            operator: OperatorId(format!("op{o}")),
            site: SiteId(1 + o % 3),
            channel: Some(format!("hold-{o}")),
        });
        let q = &queue_names[(o % args.queues) as usize];
        let effects = d.apply(Driver::enqueue_body(format!("busy{o}"), q.clone()));
        let (call, operator, fence) = offer_of(&effects).expect("an idle operator takes the call");
        d.apply(CommandBody::Connected { call, operator, fence });
    }
    // Fill the queues.
    let before = live_bytes();
    for i in 0..args.waiting {
        let q = &queue_names[(i % args.queues) as usize];
        d.apply(Driver::enqueue_body(format!("w{i}"), q.clone()));
    }
    let bytes_per_waiting_call = (live_bytes().saturating_sub(before) as u64) / args.waiting.max(1);
    for o in busy_operators..args.operators {
        d.apply(CommandBody::OperatorLogin {
            operator: OperatorId(format!("op{o}")),
            site: SiteId(1 + o % 3),
            channel: Some(format!("hold-{o}")),
        });
    }
    assert_eq!(d.routing.waiting_count() as u64, args.waiting);

    // Enqueue → Offer (idle team), then connect/complete outside the clock to free them again.
    let mut enqueue_offer = Vec::with_capacity(args.samples);
    for i in 0..args.samples {
        d.index += 1;
        let cmd = Command {
            id: CommandId { origin: 1, serial: d.index },
            at_ms: d.now_ms,
            body: Driver::enqueue_body(format!("b{i}"), "bench".into()),
        };
        let t = Instant::now();
        let applied = d.routing.apply(d.index, &cmd);
        enqueue_offer.push(t.elapsed().as_nanos() as u64);
        let (call, operator, fence) = offer_of(&applied.effects).expect("the idle team takes bench calls");
        d.apply(CommandBody::Connected { call: call.clone(), operator, fence });
        d.apply(CommandBody::Completed { call, fence, by: HungUpBy::Caller });
    }

    // Completed on a busy operator → it takes the globally first caller; then a new caller
    // joins so the depth stays constant.
    let mut complete_to_offer = Vec::with_capacity(args.samples);
    let mut enqueue = Vec::with_capacity(args.samples);
    let mut rng = 7u64;
    let mut connected: Vec<(CallId, u64)> = (0..busy_operators)
        .map(|o| {
            let view = d.routing.call_view(&CallId(format!("busy{o}"))).expect("busy call");
            (view.call, view.fence.expect("connected"))
        })
        .collect();
    for i in 0..args.samples {
        let slot = (next(&mut rng) as usize) % connected.len();
        let (call, fence) = connected[slot].clone();
        d.index += 1;
        let cmd = Command {
            id: CommandId { origin: 1, serial: d.index },
            at_ms: d.now_ms,
            body: CommandBody::Completed { call, fence, by: HungUpBy::Operator },
        };
        let t = Instant::now();
        let applied = d.routing.apply(d.index, &cmd);
        complete_to_offer.push(t.elapsed().as_nanos() as u64);
        let (next_call, operator, next_fence) = offer_of(&applied.effects).expect("the freed operator takes a caller");
        d.apply(CommandBody::Connected { call: next_call.clone(), operator, fence: next_fence });
        connected[slot] = (next_call, next_fence);
        let q = &queue_names[i % queue_names.len()];
        d.index += 1;
        let cmd = Command {
            id: CommandId { origin: 1, serial: d.index },
            at_ms: d.now_ms,
            body: Driver::enqueue_body(format!("n{i}"), q.clone()),
        };
        let t = Instant::now();
        let applied = d.routing.apply(d.index, &cmd);
        enqueue.push(t.elapsed().as_nanos() as u64);
        assert!(applied.result.is_ok());
    }

    // Position lookups of random waiting callers.
    let waiting: Vec<CallId> = d.routing.waiting_calls().into_iter().map(|w| w.call).collect();
    let mut position = Vec::with_capacity(args.samples);
    for _ in 0..args.samples {
        let call = &waiting[(next(&mut rng) as usize) % waiting.len()];
        let t = Instant::now();
        let p = d.routing.position(call);
        position.push(t.elapsed().as_nanos() as u64);
        assert!(p.is_some());
    }

    let t = Instant::now();
    let snapshot = d.routing.snapshot_bytes();
    let snapshot_encode_ms = t.elapsed().as_millis() as u64;
    let t = Instant::now();
    let restored = Routing::restore(&snapshot)?;
    let snapshot_restore_ms = t.elapsed().as_millis() as u64;
    anyhow::ensure!(restored.waiting_count() == d.routing.waiting_count(), "restore lost calls");

    for samples in [&mut enqueue_offer, &mut enqueue, &mut complete_to_offer, &mut position] {
        samples.sort_unstable();
    }
    let report = CoreBenchReport {
        waiting_calls: args.waiting,
        queues: args.queues,
        operators: args.operators,
        enqueue_offer_ns_p50: percentile(&enqueue_offer, 0.50),
        enqueue_offer_ns_p99: percentile(&enqueue_offer, 0.99),
        enqueue_ns_p50: percentile(&enqueue, 0.50),
        enqueue_ns_p99: percentile(&enqueue, 0.99),
        complete_to_offer_ns_p50: percentile(&complete_to_offer, 0.50),
        complete_to_offer_ns_p99: percentile(&complete_to_offer, 0.99),
        position_ns_p50: percentile(&position, 0.50),
        position_ns_p99: percentile(&position, 0.99),
        bytes_per_waiting_call,
        snapshot_bytes_per_waiting_call: snapshot.len() as u64 / args.waiting.max(1),
        snapshot_encode_ms,
        snapshot_restore_ms,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "lineup bench core: {} waiting calls in {} queues, {} operators",
            args.waiting, args.queues, args.operators
        );
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
