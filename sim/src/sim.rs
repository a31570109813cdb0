//! The whole federation in virtual time, on one thread: the Asterisk stand-in's model
//! (`PbxWorld`, one box per site, joined by trunks), one real `SiteController` per site, one
//! replication node per site holding a real `Routing` (the Raft model, `raft::Node`, or
//! with `Replication::Openraft` lineup-cluster's `ClusterNode`, see `real.rs`), simulated
//! callers and operators, a faulty network, and the checkers.
//!
//! One loop pops the earliest event (virtual ms, then insertion order), lets the stand-in's
//! own timers run up to that instant, handles the event, and runs the per-step checks. All
//! randomness comes from `Dice` streams forked from the seed; every map is ordered.
//!
//! Code map: this file holds the simulator's state, its loop and the event dispatch;
//! - `events.rs`: the event kinds and their order in the queue;
//! - `replication.rs`: the `Replication` trait the nodes are driven through, and what the
//!   federation does with an applied entry;
//! - `model.rs`: the Raft model as a replication (its messages, timers and disks are
//!   simulator events; its network faults are drawn here);
//! - `openraft.rs`: lineup-cluster's nodes as a replication (a paused-clock runtime run in
//!   slices), with each site's history and Redis projection;
//! - `sites.rs`: site control (controller inputs, actions, proposals, the ARI executor);
//! - `workload.rs`: callers, operators and API clients, and the bootstrap configuration;
//! - `faults.rs`: fault injection, its heals, crash and restart;
//! - `checks.rs`: the per-step, periodic and final checks and the run's figures.

mod checks;
mod events;
mod faults;
mod model;
mod openraft;
mod replication;
mod sites;
mod workload;

use lineup_core::CallId;
use lineup_pbx_sim::{BoxConfig, BoxIndex, Dialplan, PbxWorld, TrunkRoute};
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::rc::Rc;

use crate::check::Checker;
use crate::config::{SimConfig, EPOCH_MS};
use crate::report::{Coverage, RunReport};
use crate::rng::{Dice, TraceHash};

pub use crate::check::changes_audio;
pub use checks::{
    CHECK_EVERY_MS, DRAIN_BOUND_MS, EVENTS_PENDING_MAX, LIVENESS_BOUND_MS, LOG_ENTRIES_MAX, SERVICE_LEVEL_ANSWER_MS,
    STARVATION_BOUND_MS,
};
pub use faults::{
    FAULT_GAP_MEAN_MS, LONG_FAULT_FIRST_AFTER_MS, LONG_FAULT_GAP_MEAN_MS, LONG_OUTAGE_MAX_MS,
    LONG_OUTAGE_PAST_LOST_MAX_MS, LONG_OUTAGE_PAST_LOST_MIN_MS, LONG_OUTAGE_PAST_LOST_SHARE,
    LONG_OUTAGE_PAST_UNREACHABLE_MIN_MS, LONG_OUTAGE_SPAN_MS, SLOW_RECONNECT_DOWN_MAX_MS, SLOW_RECONNECT_DOWN_MEAN_MS,
    SLOW_RECONNECT_LOSSY_SHARE, SLOW_RECONNECT_LOSS_PERCENT, SLOW_RECONNECT_MAX_MS, SLOW_RECONNECT_MIN_MS,
};
pub use model::{DISK_SYNC_MAX_MS, DISK_SYNC_MIN_MS, NET_DELAY_MAX_MS, NET_DELAY_MIN_MS, TICK_MS};
pub use openraft::{HISTORY_SETTLE_MS, REAL_SLICE_MS, REFERENCE_REBUILD_MS};
pub use sites::{
    ARI_LATENCY_MS, CLIENT_ATTEMPTS_MAX, PROPOSE_TIMEOUT_MS, REDELIVERY_WINDOW_BATCHES, SITE_PENDING_PROPOSALS_MAX,
    SITE_TICK_MS,
};
pub use workload::CARE_EVERY_MS;

use checks::call_figures;
use events::{Ev, Scheduled};
use model::Model;
use openraft::Openraft;
use replication::{Advance, Replication};
use sites::{new_controller, SiteRt};
use workload::{bootstrap_commands, draw_operators, CallerRec, OperatorRec};

/// Trace lines kept (the tail is written on failure).
pub const TRACE_LINES_MAX: usize = 300_000;

/// Runs one seed with the replication `cfg.replication` names; returns the report and the
/// trace (empty unless `cfg.trace`).
pub(crate) fn run_seed(cfg: SimConfig) -> (RunReport, Vec<String>) {
    match cfg.replication {
        crate::config::Replication::Model => run::<Model>(cfg),
        crate::config::Replication::Openraft => run::<Openraft>(cfg),
    }
}

fn run<R: Replication>(cfg: SimConfig) -> (RunReport, Vec<String>) {
    match Sim::<R>::new(cfg) {
        Ok(sim) => sim.run(),
        Err(unformed) => unformed,
    }
}

/// The federation under one replication `R`.
pub(crate) struct Sim<R> {
    cfg: SimConfig,
    now_ms: u64,
    seq: u64,
    heap: BinaryHeap<Scheduled>,
    world: PbxWorld,
    sites: Vec<SiteRt>,
    /// The nodes holding the routing core.
    repl: R,
    // randomness, one stream per concern (the replication holds its own)
    load_dice: Dice,
    fault_dice: Dice,
    /// The long faults' own stream (so adding them left the other faults' draws as they were).
    long_dice: Dice,
    // workload
    callers: BTreeMap<u64, CallerRec>,
    caller_by_call: BTreeMap<CallId, u64>,
    next_caller: u64,
    operators: Vec<OperatorRec>,
    client_serial: u64,
    // phases
    faults_on: bool,
    healed_at_ms: Option<u64>,
    arrivals_on: bool,
    last_restart_ms: u64,
    done: bool,
    // checks
    checker: Checker,
    coverage: Coverage,
    ops: u64,
    events: u64,
    hash: TraceHash,
    trace: VecDeque<String>,
}

impl<R: Replication> Sim<R> {
    /// Builds the federation and schedules its first events; a replication that cannot
    /// form ends the run at once, with its report.
    fn new(cfg: SimConfig) -> Result<Sim<R>, (RunReport, Vec<String>)> {
        let mut root = Dice::from_seed(cfg.seed);
        let n = cfg.sites;
        let world = build_world(n);
        let mut load_dice = root.fork(1);
        let operators = draw_operators(&cfg, &mut load_dice);
        let bootstrap = Rc::new(bootstrap_commands(&cfg, &operators));
        let (net_dice, raft_dice) = (root.fork(2), root.fork(3));
        let (fault_dice, long_dice) = (root.fork(4), root.fork(5));
        let repl = match R::build(&cfg, bootstrap, net_dice, raft_dice) {
            Ok(repl) => repl,
            Err(e) => return Err(unformed(cfg, operators.len(), e)),
        };
        let sites = (0..n).map(|i| SiteRt::new(new_controller(&cfg, i, 0), 0)).collect();
        let mut sim = Sim {
            faults_on: cfg.faults,
            now_ms: 0,
            seq: 0,
            heap: BinaryHeap::new(),
            world,
            sites,
            repl,
            fault_dice,
            long_dice,
            load_dice,
            callers: BTreeMap::new(),
            caller_by_call: BTreeMap::new(),
            next_caller: 0,
            operators,
            client_serial: 0,
            healed_at_ms: None,
            arrivals_on: true,
            last_restart_ms: 0,
            done: false,
            checker: Checker::new(cfg.stop_at_first_violation),
            coverage: Coverage::default(),
            ops: 0,
            events: 0,
            hash: TraceHash::default(),
            trace: VecDeque::new(),
            cfg,
        };
        sim.start();
        Ok(sim)
    }

    /// The first events: per site its first election (the model), site tick and arrival;
    /// per operator the login, first break and first missed ring; care, checks, faults.
    fn start(&mut self) {
        if self.cfg.faults {
            self.repl.set_loss(1, 1);
        }
        for i in 0..self.cfg.sites {
            R::start_node(self, i);
            self.push(SITE_TICK_MS, Ev::SiteTick { site: i });
            let first = self.load_dice.exponential_ms(self.arrival_mean_ms());
            self.push(5_000 + first, Ev::Arrival { site: i });
        }
        for op in 0..self.operators.len() {
            self.schedule_operator(op);
        }
        self.push(CARE_EVERY_MS, Ev::Care);
        self.push(CHECK_EVERY_MS, Ev::Check);
        if self.cfg.faults {
            let at = 10_000 + self.fault_dice.exponential_ms(FAULT_GAP_MEAN_MS);
            self.push(at, Ev::Fault);
        }
        if self.cfg.faults && self.long_faults_on() {
            let at = LONG_FAULT_FIRST_AFTER_MS + self.long_dice.exponential_ms(LONG_FAULT_GAP_MEAN_MS);
            self.push(at, Ev::LongFault);
        }
    }

    fn push(&mut self, at_ms: u64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Scheduled { at_ms: at_ms.max(self.now_ms), seq: self.seq, ev: Box::new(ev) });
    }

    fn abs_ms(&self) -> u64 {
        EPOCH_MS + self.now_ms
    }

    fn note(&mut self, line: impl FnOnce() -> String) {
        if self.cfg.trace {
            if self.trace.len() >= TRACE_LINES_MAX {
                self.trace.pop_front();
            }
            let text = line();
            self.trace.push_back(format!("{:>10} {text}", self.now_ms));
        }
    }

    /// Runs to the end (ops reached, healed, drained) or the first violation.
    fn run(mut self) -> (RunReport, Vec<String>) {
        while !self.done {
            let next_ev = self.heap.peek().map(|s| s.at_ms).unwrap_or(u64::MAX);
            let next_world = self.world.next_timer_due_ms().unwrap_or(u64::MAX);
            match R::advance(&mut self, next_ev.min(next_world)) {
                Advance::Stop => break,
                Advance::Again => continue,
                Advance::Event => {}
            }
            if next_world <= next_ev && next_world != u64::MAX {
                self.now_ms = self.now_ms.max(next_world);
                self.world.advance_to(self.now_ms);
                self.route_world_outputs();
                continue;
            }
            let Some(item) = self.heap.pop() else { break };
            self.now_ms = item.at_ms;
            self.world.advance_to(self.now_ms);
            self.events += 1;
            self.hash.u64(item.at_ms);
            self.hash.u64(item.ev.tag());
            self.handle(*item.ev);
            self.route_world_outputs();
            self.step_checks();
            if self.checker.stop() {
                break;
            }
        }
        self.finish()
    }

    /// Sends one event to the step that handles it.
    fn handle(&mut self, ev: Ev) {
        if self.cfg.trace {
            let text = format!("{ev:?}");
            self.note(|| text.chars().take(4000).collect());
        }
        match ev {
            Ev::Net { .. }
            | Ev::Election { .. }
            | Ev::Heartbeat { .. }
            | Ev::TickDuty { .. }
            | Ev::Sync { .. }
            | Ev::Flush { .. } => R::node_event(self, ev),
            Ev::Site { site, gen, input } => self.site_input(site, gen, input),
            Ev::ProposeTimeout { site, gen, id } => self.propose_timeout(site, gen, id),
            Ev::SiteTick { site } => self.site_tick(site),
            Ev::Arrival { site } => self.arrival(site),
            Ev::Abandon { caller } => self.abandon(caller),
            Ev::Hangup { caller } => self.hang_up(caller),
            Ev::Press { caller, digits } => self.press(caller, digits),
            Ev::Login { op } => self.login(op),
            Ev::BreakStart { op } => self.break_start(op),
            Ev::BreakEnd { op } => self.break_end(op),
            Ev::RingMiss { op, missing } => self.ring_miss(op, missing),
            Ev::Care => {
                self.care();
                self.push(self.now_ms + CARE_EVERY_MS, Ev::Care);
            }
            Ev::Fault => self.fault_tick(),
            Ev::LongFault => self.long_fault_tick(),
            Ev::Heal(h) => self.heal_one(h),
            Ev::Clog((a, b)) => {
                if self.faults_on {
                    self.block(&[(a, b)]);
                }
            }
            Ev::Check => {
                self.periodic_checks();
                self.push(self.now_ms + CHECK_EVERY_MS, Ev::Check);
            }
            Ev::EndOfHeal => self.liveness_check(),
        }
    }

    /// A paused process handles nothing: its events wait until it resumes.
    fn deferred_for_pause(&mut self, node: usize, ev: Ev) -> bool {
        let until = self.sites[node].paused_until_ms;
        if self.now_ms < until {
            self.push(until, ev);
            return true;
        }
        false
    }

    fn finish(mut self) -> (RunReport, Vec<String>) {
        if !self.checker.stop() {
            self.final_checks();
        }
        for s in &self.sites {
            self.coverage.fenced_offers += s.ctl.counters.offers_fenced_out;
        }
        self.coverage.double_bookings_after_cancel = self.checker.double_bookings_after_cancel;
        let (calls, mmc_reference) = call_figures(&self.cfg, &self.checker, &self.callers, self.operators.len());
        let report = RunReport {
            seed: self.cfg.seed,
            ops: self.ops,
            events: self.events,
            virtual_ms: self.now_ms,
            trace_hash: format!("{:016x}", self.hash.0),
            violations: self.checker.violations.clone(),
            coverage: self.coverage.clone(),
            calls,
            mmc_reference,
            bug: self.cfg.bug,
        };
        (report, self.trace.into_iter().collect())
    }
}

/// The stand-in: one box per site with the deployed dialplan, trunks to every other box.
fn build_world(n: usize) -> PbxWorld {
    let dialplan =
        Dialplan::parse(include_str!("../../deploy/asterisk/extensions.conf")).expect("deploy dialplan parses");
    let boxes = (0..n)
        .map(|i| BoxConfig {
            name: format!("site-{}", i + 1),
            asterisk_id: format!("02:00:00:00:00:{:02x}", i + 1),
            dialplan: dialplan.clone(),
            trunks: (0..n)
                .filter(|j| *j != i)
                .map(|j| TrunkRoute {
                    technology: "PJSIP".into(),
                    trunk: format!("site-{}", j + 1),
                    target: BoxIndex(j),
                    context: "from-lineup".into(),
                })
                .collect(),
        })
        .collect();
    let mut world = PbxWorld::new(EPOCH_MS, boxes).expect("world");
    for i in 0..n {
        world.register_application(BoxIndex(i), "lineup");
        world.register_application(BoxIndex(i), "lineup-login");
    }
    world
}

/// The report of a run whose replication did not form: that one violation, nothing run.
fn unformed(cfg: SimConfig, operators: usize, error: String) -> (RunReport, Vec<String>) {
    let mut checker = Checker::new(cfg.stop_at_first_violation);
    checker.violation(0, format!("I7 the openraft cluster did not form: {error}"));
    let (calls, mmc_reference) = call_figures(&cfg, &checker, &BTreeMap::new(), operators);
    let report = RunReport {
        seed: cfg.seed,
        ops: 0,
        events: 0,
        virtual_ms: 0,
        trace_hash: format!("{:016x}", TraceHash::default().0),
        violations: checker.violations.clone(),
        coverage: Coverage::default(),
        calls,
        mmc_reference,
        bug: cfg.bug,
    };
    (report, Vec::new())
}
