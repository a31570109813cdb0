//! The whole federation in virtual time, on one thread: the Asterisk stand-in's model
//! (`PbxWorld`, one box per site, joined by trunks), one real `SiteController` per site, one
//! replication node per site holding a real `Routing` (the Raft model, `raft::Node`, or
//! with `Replication::Openraft` lineup-cluster's `ClusterNode`, see `real.rs`), simulated
//! callers and operators, a faulty network, and the checkers.
//!
//! One loop pops the earliest event (virtual ms, then insertion order), lets the stand-in's
//! own timers run up to that instant, handles the event, and runs the per-step checks. All
//! randomness comes from `Dice` streams forked from the seed; every map is ordered.

use lineup_ari::{AriError, CallerId, ChannelId, EventKind, HangupReason, Media};
use lineup_core::*;
use lineup_pbx_sim::{BoxConfig, BoxIndex, Dialplan, OriginateParams, PbxWorld, PhoneBehaviour, PhoneCall, TrunkRoute};
use lineup_site::{Action, AriFailure, AriRequest, Input, ProposeFailure, SiteConfig, SiteController};
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::rc::Rc;

use crate::check::{self, Checker, NodeEnd};
use crate::config::{PlantedBug, Replication, SimConfig, EPOCH_MS, FAULT_KIND_NAMES, LONG_FAULT_KIND_FIRST};
use crate::erlang;
use crate::history::SiteHistory;
use crate::projection::{self as live, SiteProjection};
use crate::raft::{self, AppliedEntry, Msg, Node, Out, RaftTiming};
use crate::real::{Observed, RealCluster, Record};
use crate::rng::{Dice, TraceHash};

/// The leader proposes `Tick` this often (the core's timer resolution in the sim).
pub const TICK_MS: u64 = 1_000;
/// Site controllers get `Input::Tick` this often (proposal retries, digit timeouts).
pub const SITE_TICK_MS: u64 = 500;
/// A proposal not applied locally by then is read back, then reported not committed (the
/// controller retries with the same command id).
pub const PROPOSE_TIMEOUT_MS: u64 = 2_000;
/// Client (API) proposals are retried this many times.
pub const CLIENT_ATTEMPTS_MAX: u32 = 30;
/// An ARI request's reply, and an ARI event's trip to the controller.
pub const ARI_LATENCY_MS: u64 = 1;
pub const DISK_SYNC_MIN_MS: u64 = 1;
pub const DISK_SYNC_MAX_MS: u64 = 4;
/// One-way WAN delay between sites.
pub const NET_DELAY_MIN_MS: u64 = 5;
pub const NET_DELAY_MAX_MS: u64 = 40;
/// Mean gap between faults in the fault phase.
pub const FAULT_GAP_MEAN_MS: f64 = 12_000.0;
/// Mean gap between long faults (long outages, slow reconnects), drawn on their own stream.
pub const LONG_FAULT_GAP_MEAN_MS: f64 = 45_000.0;
/// The first long fault comes after the operators have logged in and calls connected.
pub const LONG_FAULT_FIRST_AFTER_MS: u64 = 30_000;
/// A long outage outlasts the unreachable threshold by at least this much, and by up to
/// this span more.
pub const LONG_OUTAGE_PAST_UNREACHABLE_MIN_MS: u64 = 1_000;
pub const LONG_OUTAGE_SPAN_MS: u64 = 25_000;
/// Share of long outages that outlast the lost threshold (when the run's threshold is
/// within reach, see `LONG_OUTAGE_MAX_MS`), by up to `LONG_OUTAGE_PAST_LOST_MAX_MS`.
pub const LONG_OUTAGE_PAST_LOST_SHARE: f64 = 0.4;
pub const LONG_OUTAGE_PAST_LOST_MIN_MS: u64 = 1_000;
pub const LONG_OUTAGE_PAST_LOST_MAX_MS: u64 = 15_000;
/// No outage lasts longer: a lost threshold above it (the default 2 h) is never outlasted.
pub const LONG_OUTAGE_MAX_MS: u64 = 120_000;
/// A slow reconnect: the node is down this long (mean, capped), then once restarted its
/// links stay cut, or drop this share of messages, for the reconnect time.
pub const SLOW_RECONNECT_DOWN_MEAN_MS: f64 = 4_000.0;
pub const SLOW_RECONNECT_DOWN_MAX_MS: u64 = 20_000;
pub const SLOW_RECONNECT_MIN_MS: u64 = 1_000;
pub const SLOW_RECONNECT_MAX_MS: u64 = 12_000;
pub const SLOW_RECONNECT_LOSSY_SHARE: f64 = 0.3;
pub const SLOW_RECONNECT_LOSS_PERCENT: u8 = 90;
/// Expensive checks (core self-check on every node, starvation) run this often.
pub const CHECK_EVERY_MS: u64 = 30_000;
/// After the heal: a leader and every node caught up within this bound (I7).
pub const LIVENESS_BOUND_MS: u64 = 15_000;
/// The service level's answer time (the 80/20 convention: answered within 20 s).
pub const SERVICE_LEVEL_ANSWER_MS: u64 = 20_000;
/// After the heal: every caller gone within this bound (I2, I4 "none stuck").
pub const DRAIN_BOUND_MS: u64 = 1_800_000;
/// A waiting caller and an idle eligible operator may coexist this long after the heal.
pub const STARVATION_BOUND_MS: u64 = 45_000;
/// Operator care (re-login, return from a missed-ring break) runs this often.
pub const CARE_EVERY_MS: u64 = 20_000;
/// Bounds checked every step (I8).
pub const EVENTS_PENDING_MAX: usize = 200_000;
pub const LOG_ENTRIES_MAX: usize = 20_000;
pub const SITE_PENDING_PROPOSALS_MAX: usize = 5_000;
/// Effect batches a site remembers for the redelivery fault.
pub const REDELIVERY_WINDOW_BATCHES: usize = 32;
/// Trace lines kept (the tail is written on failure).
pub const TRACE_LINES_MAX: usize = 300_000;
pub const VIOLATIONS_KEPT_MAX: usize = 20;
/// With real nodes: the longest the cluster runs ahead of the simulator's own events, so
/// what it applies reaches the sites within this much virtual time.
pub const REAL_SLICE_MS: u64 = 5;
/// With real nodes, after the run: the history drainers get this long (their longest retry
/// delay and then some) before history must have converged.
pub const HISTORY_SETTLE_MS: u64 = 15_000;
/// Then the reference projections get this long to rebuild before the comparison.
pub const REFERENCE_REBUILD_MS: u64 = 1_000;
/// Slice of the settle phase (what the nodes apply meanwhile still reaches history and
/// the projections).
const SETTLE_SLICE_MS: u64 = 100;
/// Fake PIN for every simulated operator.
const PIN: &str = "2468";

fn fake_phc(pin: &str) -> String {
    format!("$argon2id$v=19$m=8,t=1,p=1$sim${pin}")
}

#[derive(Debug, Clone)]
enum Ev {
    Net { from: usize, to: usize, msg: Msg },
    Election { node: usize, gen: u64 },
    Heartbeat { node: usize, term: u64, gen: u64 },
    TickDuty { node: usize, term: u64, gen: u64 },
    Sync { node: usize, gen: u64 },
    Flush { node: usize, gen: u64 },
    Site { site: usize, gen: u64, input: Input },
    ProposeTimeout { site: usize, gen: u64, id: CommandId },
    SiteTick { site: usize },
    Arrival { site: usize },
    Abandon { caller: u64 },
    Hangup { caller: u64 },
    Press { caller: u64, digits: &'static str },
    Login { op: usize },
    BreakStart { op: usize },
    BreakEnd { op: usize },
    RingMiss { op: usize, missing: bool },
    Care,
    Fault,
    Heal(Heal),
    Clog((usize, usize)),
    Check,
    EndOfHeal,
    LongFault,
}

/// A fault's own end.
#[derive(Debug, Clone)]
enum Heal {
    Links(Vec<(usize, usize)>),
    Restart(usize),
    Unpause(usize),
    Hear(usize),
    Loss,
    Database(usize),
    Redis(usize),
    /// A slow reconnect's restart: the node starts with its links cut (or lossy) for
    /// `cut_for_ms`.
    SlowRestart {
        node: usize,
        cut_for_ms: u64,
        lossy: bool,
    },
    /// The end of a slow reconnect's lossy spell.
    SiteLoss(usize),
}

impl Ev {
    fn tag(&self) -> u64 {
        match self {
            Ev::Net { .. } => 1,
            Ev::Election { .. } => 2,
            Ev::Heartbeat { .. } => 3,
            Ev::TickDuty { .. } => 4,
            Ev::Sync { .. } => 5,
            Ev::Flush { .. } => 6,
            Ev::Site { .. } => 7,
            Ev::ProposeTimeout { .. } => 8,
            Ev::SiteTick { .. } => 9,
            Ev::Arrival { .. } => 10,
            Ev::Abandon { .. } => 11,
            Ev::Hangup { .. } => 12,
            Ev::Press { .. } => 13,
            Ev::Login { .. } => 14,
            Ev::BreakStart { .. } => 15,
            Ev::BreakEnd { .. } => 16,
            Ev::RingMiss { .. } => 17,
            Ev::Care => 18,
            Ev::Fault => 19,
            Ev::Heal(_) => 20,
            Ev::Check => 21,
            Ev::EndOfHeal => 22,
            Ev::Clog(_) => 23,
            Ev::LongFault => 24,
        }
    }
}

struct Scheduled {
    at_ms: u64,
    seq: u64,
    /// Boxed: events are large (ARI events, log entries) and the heap moves its items on
    /// every push and pop.
    ev: Box<Ev>,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.seq) == (other.at_ms, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    // Reversed: BinaryHeap is a max-heap and the earliest (time, seq) must come first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_ms, other.seq).cmp(&(self.at_ms, self.seq))
    }
}

enum Waiter {
    Site { gen: u64, token: u64 },
    Client { command: Command, attempts: u32 },
}

struct SiteRt {
    ctl: SiteController,
    gen: u64,
    up: bool,
    deaf: bool,
    paused_until_ms: u64,
    pending: BTreeMap<CommandId, Waiter>,
    recent_effects: VecDeque<(u64, Vec<Effect>)>,
    sync_scheduled: bool,
    flush_scheduled: bool,
}

struct CallerRec {
    site: usize,
    channel: ChannelId,
    call: CallId,
    taker: bool,
    entered_ms: u64,
    /// How long this caller talks once connected (drawn at arrival, so the M/M/c reference
    /// queue can be fed the same sample path).
    talk_ms: u64,
}

struct OperatorRec {
    id: OperatorId,
    site: usize,
    ring: bool,
    login_until_ms: u64,
    on_break: bool,
}

/// Coverage of rare paths (a sweep where these stay zero proves little).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Coverage {
    pub leader_changes: u64,
    pub fenced_offers: u64,
    pub ari_reconnects: u64,
    pub callbacks_served_after_restart: u64,
    pub one_way_partitions: u64,
    pub partitions: u64,
    pub swizzle_clogs: u64,
    pub crashes: u64,
    pub leader_pauses: u64,
    pub snapshots_installed: u64,
    pub effect_redeliveries: u64,
    pub proposals_retried: u64,
    pub forwards_dropped: u64,
    pub database_outages: u64,
    /// History rows the sites' databases hold at the end (real nodes), all checked.
    pub history_rows: u64,
    pub redis_outages: u64,
    /// Keys the sites' Redis instances hold at the end (real nodes), all checked.
    pub redis_keys: u64,
    /// Nodes down past the unreachable threshold (`long-outage`), and of those past the
    /// run's lost threshold.
    pub long_outages: u64,
    pub outages_past_site_lost: u64,
    /// Nodes restarted with their links cut or lossy for a while (`slow-reconnect`).
    pub slow_reconnects: u64,
    /// Calls connected when a long outage or slow reconnect took a node down: with both
    /// legs at its site, and with one leg there and one at another site.
    pub calls_connected_at_an_outage: u64,
    pub calls_connected_across_an_outage: u64,
    /// I1 double bookings of the one known open kind, counted rather than reported (see
    /// `check::effects_against_phones`): an offer cancelled by the core after the sites
    /// bridged it.
    pub double_bookings_after_cancel: u64,
    /// The leader's health commands committed (first application).
    pub sites_unreachable: u64,
    pub sites_back: u64,
    pub sites_lost: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CallStats {
    pub calls: u64,
    pub completed: u64,
    pub abandoned: u64,
    pub callbacks_promised: u64,
    pub callbacks_failed: u64,
    pub other_outcomes: u64,
    /// Callers sent back to the dialplan before any Enqueue committed (explicit failure).
    pub entry_failures: u64,
    /// Answered calls entered after the warm-up: waits for ASA and service level.
    pub answered_waits: u64,
    pub wait_sum_ms: u64,
    pub within_20s: u64,
}

/// The same callers (arrival times and talk times) through an ideal M/M/c queue with the
/// run's operators: what the federation's waits are compared with, call for call. Only for
/// M/M/c workloads (`Workload::is_mmc`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct MmcReference {
    pub operators: usize,
    /// The same calls as `CallStats::answered_waits` (entered after the warm-up).
    pub calls: u64,
    pub wait_sum_ms: u64,
    pub within_20s: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub seed: u64,
    pub ops: u64,
    pub events: u64,
    pub virtual_ms: u64,
    pub trace_hash: String,
    pub violations: Vec<String>,
    pub coverage: Coverage,
    pub calls: CallStats,
    pub mmc_reference: Option<MmcReference>,
    pub bug: PlantedBug,
}

pub struct Sim {
    cfg: SimConfig,
    now_ms: u64,
    seq: u64,
    heap: BinaryHeap<Scheduled>,
    world: PbxWorld,
    sites: Vec<SiteRt>,
    /// The Raft model's nodes (empty with real nodes).
    nodes: Vec<Node>,
    /// The production nodes instead (`Replication::Openraft`).
    real: Option<RealCluster>,
    /// Real nodes: (term, node) leaders already reported to the checker.
    leaders_seen: BTreeSet<(u64, usize)>,
    /// Real nodes: the highest log index each node has applied (re-applications after a
    /// restart are replays).
    applied_high: Vec<u64>,
    /// Real nodes: each site's history side (outbox, drainer, simulated database).
    histories: Vec<SiteHistory>,
    /// Real nodes: each site's Redis projection.
    projections: Vec<SiteProjection>,
    node_gen: Vec<u64>,
    timing: RaftTiming,
    // randomness, one stream per concern
    net_dice: Dice,
    raft_dice: Dice,
    load_dice: Dice,
    fault_dice: Dice,
    /// The long faults' own stream (so adding them left the other faults' draws as they were).
    long_dice: Dice,
    // network
    blocked: Vec<Vec<bool>>,
    loss: f64,
    /// Per site: the share of its messages (either way) dropped in a slow reconnect's lossy
    /// spell (0: none, and then no draw is made).
    site_loss: Vec<f64>,
    duplicate: f64,
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
    pub coverage: Coverage,
    ops: u64,
    events: u64,
    hash: TraceHash,
    trace: VecDeque<String>,
    seen_ids: BTreeSet<CommandId>,
    dedup_breaker: u64,
}

impl Sim {
    pub fn new(cfg: SimConfig) -> Sim {
        let mut root = Dice::new(cfg.seed);
        let n = cfg.sites;
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
        let mut load_dice = root.fork(1);
        let w = &cfg.workload;
        let mut operators = Vec::new();
        for site in 0..n {
            for k in 0..w.operators_per_site {
                let ring = load_dice.chance(w.ring_mode_share);
                operators.push(OperatorRec {
                    id: OperatorId::new(format!("{}{:03}", site + 1, k + 1)),
                    site,
                    ring,
                    login_until_ms: 0,
                    on_break: false,
                });
            }
        }
        let bootstrap = Rc::new(bootstrap_commands(&cfg, &operators));
        let timing = RaftTiming::default();
        let first_applier = Rc::new(std::cell::Cell::new(0));
        let (real, histories, projections, real_failure) = match cfg.replication {
            Replication::Model => (None, Vec::new(), Vec::new(), None),
            Replication::Openraft => {
                let lossy = cfg.bug == PlantedBug::LossyDatabase;
                let thresholds = cfg.health_thresholds();
                let started = RealCluster::new(cfg.seed, n, cfg.faults, thresholds, &bootstrap).and_then(|real| {
                    let histories = real.in_runtime(|| {
                        (0..n)
                            .map(|i| SiteHistory::new(cfg.seed.wrapping_mul(31) + i as u64, lossy))
                            .collect::<Result<Vec<_>, _>>()
                    })?;
                    let projections = real.in_runtime(|| {
                        (0..n)
                            .map(|i| {
                                let mut projection = SiteProjection::new(cfg.seed.wrapping_mul(37) + i as u64);
                                projection.redis.set_lossy(cfg.bug == PlantedBug::LossyRedis);
                                projection.start(real.state_source(i));
                                projection
                            })
                            .collect::<Vec<_>>()
                    });
                    Ok((real, histories, projections))
                });
                match started {
                    Ok((real, histories, projections)) => (Some(real), histories, projections, None),
                    Err(e) => (None, Vec::new(), Vec::new(), Some(e)),
                }
            }
        };
        let nodes: Vec<Node> = match cfg.replication {
            Replication::Openraft => Vec::new(),
            Replication::Model => (0..n)
                .map(|i| {
                    let bug = cfg.bug == PlantedBug::AckBeforeCommit;
                    Node::new(i, n, timing, bootstrap.clone(), bug, first_applier.clone())
                })
                .collect(),
        };
        let sites = (0..n).map(|i| SiteRt::new(new_controller(&cfg, i, 0), 0)).collect();
        let mut sim = Sim {
            faults_on: cfg.faults,
            now_ms: 0,
            seq: 0,
            heap: BinaryHeap::new(),
            world,
            sites,
            nodes,
            real,
            leaders_seen: BTreeSet::new(),
            applied_high: vec![0; n],
            histories,
            projections,
            node_gen: vec![0; n],
            timing,
            net_dice: root.fork(2),
            raft_dice: root.fork(3),
            fault_dice: root.fork(4),
            long_dice: root.fork(5),
            load_dice,
            blocked: vec![vec![false; n]; n],
            loss: 0.0,
            site_loss: vec![0.0; n],
            duplicate: 0.0,
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
            seen_ids: BTreeSet::new(),
            dedup_breaker: 0,
            cfg,
        };
        if let Some(e) = real_failure {
            sim.checker.violation(0, format!("I7 the openraft cluster did not form: {e}"));
            sim.done = true;
            return sim;
        }
        sim.start();
        sim
    }

    fn start(&mut self) {
        if self.cfg.faults {
            self.loss = 0.01;
            self.duplicate = 0.01;
            if let Some(real) = &mut self.real {
                real.set_loss(1, 1);
            }
        }
        for i in 0..self.cfg.sites {
            if self.real.is_none() {
                self.nodes[i].reset_election(0, &mut self.raft_dice);
                let at = self.nodes[i].election_deadline_ms;
                self.push(at, Ev::Election { node: i, gen: 0 });
            }
            self.push(SITE_TICK_MS, Ev::SiteTick { site: i });
            let first = self.load_dice.exponential_ms(self.arrival_mean_ms());
            self.push(5_000 + first, Ev::Arrival { site: i });
        }
        for op in 0..self.operators.len() {
            self.push(200 + 37 * op as u64, Ev::Login { op });
            if let Some(every) = self.cfg.workload.break_every_ms {
                let at = 60_000 + self.load_dice.exponential_ms(every);
                self.push(at, Ev::BreakStart { op });
            }
            if self.operators[op].ring {
                if let Some(every) = self.cfg.workload.ring_miss_every_ms {
                    let at = self.load_dice.exponential_ms(every);
                    self.push(at, Ev::RingMiss { op, missing: true });
                }
            }
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

    /// Whether any long fault kind is enabled (none: their stream is never scheduled, and
    /// the run is the one from before they existed).
    fn long_faults_on(&self) -> bool {
        (LONG_FAULT_KIND_FIRST..FAULT_KIND_NAMES.len()).any(|k| self.cfg.fault_kinds & (1 << k) != 0)
    }

    fn arrival_mean_ms(&self) -> f64 {
        3_600_000.0 / self.cfg.workload.arrivals_per_hour_per_site
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
    pub fn run(mut self) -> (RunReport, Vec<String>) {
        while !self.done {
            let next_ev = self.heap.peek().map(|s| s.at_ms).unwrap_or(u64::MAX);
            let next_world = self.world.next_timer_due_ms().unwrap_or(u64::MAX);
            if let Some(real) = &self.real {
                // The real cluster runs up to the next event, a slice at a time, and what it
                // applied is taken in before the event.
                let target = next_ev.min(next_world).min(self.now_ms + REAL_SLICE_MS);
                real.advance_to(target);
                if target > self.now_ms {
                    self.now_ms = target;
                    self.world.advance_to(self.now_ms);
                }
                if self.absorb_real(None) {
                    self.route_world_outputs();
                    self.step_checks();
                    if self.checker.stop() {
                        break;
                    }
                    continue;
                }
                if target < next_ev.min(next_world) {
                    continue;
                }
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

    fn handle(&mut self, ev: Ev) {
        if self.cfg.trace {
            let text = format!("{ev:?}");
            self.note(|| text.chars().take(4000).collect());
        }
        match ev {
            Ev::Net { from, to, msg } => {
                if self.deferred_for_pause(to, Ev::Net { from, to, msg: msg.clone() }) {
                    return;
                }
                if !self.sites[to].up {
                    return;
                }
                let msg = self.maybe_break_dedup(to, msg);
                let mut out = Out::default();
                let now = self.abs_ms();
                self.nodes[to].heard(from, now);
                self.nodes[to].handle(now, msg, &mut self.raft_dice, &mut out);
                self.after_node(to, out);
            }
            Ev::Election { node, gen } => {
                if gen != self.node_gen[node] || !self.sites[node].up {
                    return;
                }
                if self.deferred_for_pause(node, Ev::Election { node, gen }) {
                    return;
                }
                let mut out = Out::default();
                let now = self.abs_ms();
                self.nodes[node].on_election_timer(now, &mut self.raft_dice, &mut out);
                self.after_node(node, out);
                let next = if self.nodes[node].is_leader() {
                    self.now_ms + self.timing.election_max_ms
                } else {
                    self.nodes[node].election_deadline_ms - EPOCH_MS
                };
                self.push(next.max(self.now_ms + 1), Ev::Election { node, gen });
            }
            Ev::Heartbeat { node, term, gen } => {
                if gen != self.node_gen[node] || !self.nodes[node].is_leader() || self.nodes[node].term != term {
                    return;
                }
                if self.deferred_for_pause(node, Ev::Heartbeat { node, term, gen }) {
                    return;
                }
                let mut out = Out::default();
                self.nodes[node].broadcast(true, &mut out);
                self.after_node(node, out);
                self.push(self.now_ms + self.timing.heartbeat_ms, Ev::Heartbeat { node, term, gen });
            }
            Ev::TickDuty { node, term, gen } => {
                if gen != self.node_gen[node] || !self.nodes[node].is_leader() || self.nodes[node].term != term {
                    return;
                }
                if self.deferred_for_pause(node, Ev::TickDuty { node, term, gen }) {
                    return;
                }
                let mut out = Out::default();
                let now = self.abs_ms();
                self.nodes[node].tick_duty(now, self.cfg.health_thresholds(), &mut out);
                self.after_node(node, out);
                self.push(self.now_ms + TICK_MS, Ev::TickDuty { node, term, gen });
            }
            Ev::Sync { node, gen } => {
                if gen != self.node_gen[node] {
                    return;
                }
                if self.deferred_for_pause(node, Ev::Sync { node, gen }) {
                    return;
                }
                self.sites[node].sync_scheduled = false;
                let mut out = Out::default();
                self.nodes[node].on_sync(&mut out);
                self.after_node(node, out);
            }
            Ev::Flush { node, gen } => {
                if gen != self.node_gen[node] {
                    return;
                }
                if self.deferred_for_pause(node, Ev::Flush { node, gen }) {
                    return;
                }
                self.sites[node].flush_scheduled = false;
                let mut out = Out::default();
                self.nodes[node].flush(&mut out);
                self.after_node(node, out);
            }
            Ev::Site { site, gen, input } => {
                if gen != self.sites[site].gen || !self.sites[site].up {
                    return;
                }
                if self.now_ms < self.sites[site].paused_until_ms {
                    let at = self.sites[site].paused_until_ms;
                    self.push(at, Ev::Site { site, gen, input });
                    return;
                }
                let now = self.abs_ms();
                let ctl = &mut self.sites[site].ctl;
                let actions = match &self.real {
                    Some(real) => real.read(site, |routing| ctl.handle(now, input, routing)),
                    None => ctl.handle(now, input, &self.nodes[site].routing),
                };
                for action in actions {
                    self.execute(site, action);
                }
            }
            Ev::ProposeTimeout { site, gen, id } => self.propose_timeout(site, gen, id),
            Ev::SiteTick { site } => {
                let gen = self.sites[site].gen;
                self.push(self.now_ms, Ev::Site { site, gen, input: Input::Tick });
                self.push(self.now_ms + SITE_TICK_MS, Ev::SiteTick { site });
            }
            Ev::Arrival { site } => self.arrival(site),
            Ev::Abandon { caller } => {
                let Some(rec) = self.callers.get(&caller) else { return };
                if self.checker.is_connected(&rec.call) {
                    return;
                }
                let (b, ch) = (BoxIndex(rec.site), rec.channel.clone());
                self.world.phone_hangup(b, &ch);
            }
            Ev::Hangup { caller } => {
                let Some(rec) = self.callers.get(&caller) else { return };
                let (b, ch) = (BoxIndex(rec.site), rec.channel.clone());
                self.world.phone_hangup(b, &ch);
            }
            Ev::Press { caller, digits } => {
                let Some(rec) = self.callers.get(&caller) else { return };
                let (b, ch) = (BoxIndex(rec.site), rec.channel.clone());
                // The caller may have hung up meanwhile; pressing into nothing is fine.
                let _ = self.world.phone_press(b, &ch, digits);
            }
            Ev::Login { op } => self.login(op),
            Ev::BreakStart { op } => {
                if self.arrivals_on {
                    self.operators[op].on_break = true;
                    self.client_propose(op, RequestedState::Break { reason: "coffee".into() });
                    let len = self.load_dice.exponential_ms(self.cfg.workload.break_mean_ms);
                    self.push(self.now_ms + len, Ev::BreakEnd { op });
                }
            }
            Ev::BreakEnd { op } => {
                self.operators[op].on_break = false;
                self.client_propose(op, RequestedState::Available);
                if let Some(every) = self.cfg.workload.break_every_ms {
                    let at = self.now_ms + self.load_dice.exponential_ms(every);
                    self.push(at, Ev::BreakStart { op });
                }
            }
            Ev::RingMiss { op, missing } => {
                let site = self.operators[op].site;
                let resource = format!("phone-{}", self.operators[op].id);
                let missing = missing && self.arrivals_on;
                let behaviour =
                    PhoneBehaviour { answer_after_ms: if missing { None } else { Some(1_500) }, ..Default::default() };
                let _ = self.world.register_phone(BoxIndex(site), &resource, behaviour);
                if missing {
                    let len = self.load_dice.exponential_ms(60_000.0);
                    self.push(self.now_ms + len, Ev::RingMiss { op, missing: false });
                } else if let Some(every) = self.cfg.workload.ring_miss_every_ms {
                    let at = self.now_ms + self.load_dice.exponential_ms(every);
                    self.push(at, Ev::RingMiss { op, missing: true });
                }
            }
            Ev::Care => {
                self.care();
                self.push(self.now_ms + CARE_EVERY_MS, Ev::Care);
            }
            Ev::Fault => {
                if self.faults_on {
                    self.fault();
                    let at = self.now_ms + self.fault_dice.exponential_ms(FAULT_GAP_MEAN_MS);
                    self.push(at, Ev::Fault);
                }
            }
            Ev::LongFault => {
                if self.faults_on {
                    self.long_fault();
                    let at = self.now_ms + self.long_dice.exponential_ms(LONG_FAULT_GAP_MEAN_MS);
                    self.push(at, Ev::LongFault);
                }
            }
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

    /// Planted bug NoDedupTable: a command id the leader has seen before comes in under a
    /// fresh id, so the core's duplicate table cannot recognise it.
    fn maybe_break_dedup(&mut self, to: usize, msg: Msg) -> Msg {
        if self.cfg.bug != PlantedBug::NoDedupTable || !self.nodes[to].is_leader() {
            return msg;
        }
        match msg {
            Msg::Forward { mut command, hops } => {
                if !self.seen_ids.insert(command.id) {
                    self.dedup_breaker += 1;
                    command.id.serial = (1 << 62) | self.dedup_breaker;
                }
                Msg::Forward { command, hops }
            }
            other => other,
        }
    }

    fn propose_on(&mut self, site: usize, mut command: Command) {
        if let Some(real) = &self.real {
            real.propose(site, command);
            return;
        }
        if self.cfg.bug == PlantedBug::NoDedupTable && self.nodes[site].is_leader() && !self.seen_ids.insert(command.id)
        {
            self.dedup_breaker += 1;
            command.id.serial = (1 << 62) | self.dedup_breaker;
        }
        let mut out = Out::default();
        self.nodes[site].propose(command, &mut out);
        self.after_node(site, out);
    }

    fn after_node(&mut self, node: usize, out: Out) {
        let Out {
            msgs,
            applied,
            want_sync,
            want_flush,
            became_leader,
            snapshots,
            installed_snapshot,
            forwards_dropped,
            violations,
        } = out;
        self.coverage.forwards_dropped += forwards_dropped;
        for v in violations {
            self.checker.violation(self.now_ms, v);
        }
        if let Some(term) = became_leader {
            self.coverage.leader_changes += 1;
            self.checker.leader_elected(self.now_ms, term, node);
            let gen = self.node_gen[node];
            self.push(self.now_ms + self.timing.heartbeat_ms, Ev::Heartbeat { node, term, gen });
            self.push(self.now_ms, Ev::TickDuty { node, term, gen });
        }
        for (to, msg) in msgs {
            self.send(node, to, msg);
        }
        for entry in applied {
            self.on_applied(node, entry);
        }
        for (index, hash) in snapshots {
            self.checker.snapshot(self.now_ms, node, index, hash);
        }
        if installed_snapshot {
            self.coverage.snapshots_installed += 1;
            self.reconcile(node);
        }
        let gen = self.node_gen[node];
        if want_sync && !self.sites[node].sync_scheduled {
            self.sites[node].sync_scheduled = true;
            let at = self.now_ms + self.raft_dice.range(DISK_SYNC_MIN_MS, DISK_SYNC_MAX_MS);
            self.push(at, Ev::Sync { node, gen });
        }
        if want_flush && !self.sites[node].flush_scheduled {
            self.sites[node].flush_scheduled = true;
            self.push(self.now_ms, Ev::Flush { node, gen });
        }
    }

    fn send(&mut self, from: usize, to: usize, msg: Msg) {
        self.hash.u64(((from as u64) << 8) | to as u64);
        self.hash.u64(msg.kind());
        if self.blocked[from][to] || self.net_dice.chance(self.loss) {
            return;
        }
        let spell = self.site_loss[from].max(self.site_loss[to]);
        if spell > 0.0 && self.net_dice.chance(spell) {
            return;
        }
        let delay = if self.cfg.faults {
            self.net_dice.range(NET_DELAY_MIN_MS, NET_DELAY_MAX_MS)
        } else {
            (NET_DELAY_MIN_MS + NET_DELAY_MAX_MS) / 2
        };
        if self.net_dice.chance(self.duplicate) {
            let again = delay + self.net_dice.range(1, 200);
            self.push(self.now_ms + again, Ev::Net { from, to, msg: msg.clone() });
        }
        self.push(self.now_ms + delay, Ev::Net { from, to, msg });
    }

    fn on_applied(&mut self, node: usize, entry: AppliedEntry) {
        let first = self.checker.entry_applied(self.now_ms, node, &entry);
        if first {
            self.hash.u64(entry.log_index);
            self.hash.u64(entry.digest);
            for (cmd, applied) in entry.commands.iter().zip(&entry.applied) {
                if !matches!(cmd.body, CommandBody::Tick { .. }) {
                    self.ops += 1;
                }
                self.observe(cmd, applied);
                let callers = (&self.callers, &self.caller_by_call);
                let caller_leg = |call: &CallId| {
                    let rec = callers.0.get(callers.1.get(call)?)?;
                    Some((rec.site, rec.channel.clone()))
                };
                let call_of = |name: &str| callers.0.get(&caller_of_channel_name(name)?).map(|rec| rec.call.clone());
                check::effects_against_phones(
                    &self.world,
                    &mut self.checker,
                    self.now_ms,
                    applied,
                    caller_leg,
                    call_of,
                );
            }
            if self.ops >= self.cfg.ops && self.healed_at_ms.is_none() {
                self.heal_all();
            }
        }
        if entry.replay {
            return;
        }
        // Results for proposals waiting at this site (read from this node's own apply).
        for (cmd, applied) in entry.commands.iter().zip(&entry.applied) {
            if let Some(waiter) = self.sites[node].pending.remove(&cmd.id) {
                if let Waiter::Site { gen, token } = waiter {
                    let input = Input::Proposed { token, result: Ok(applied.result.clone()) };
                    self.push(self.now_ms, Ev::Site { site: node, gen, input });
                }
            }
        }
        let site_id = SiteId(node as u64 + 1);
        let gen = self.sites[node].gen;
        for (pos, applied) in entry.applied.iter().enumerate() {
            let effects: Vec<Effect> =
                applied.effects.iter().filter(|e| e.is_call_control() && e.is_for(site_id)).cloned().collect();
            if effects.is_empty() {
                continue;
            }
            let log_index = raft::apply_index(entry.log_index, pos);
            let recent = &mut self.sites[node].recent_effects;
            if recent.len() >= REDELIVERY_WINDOW_BATCHES {
                recent.pop_front();
            }
            recent.push_back((log_index, effects.clone()));
            self.push(self.now_ms, Ev::Site { site: node, gen, input: Input::Effects { log_index, effects } });
        }
    }

    /// The simulated humans react to what was committed (once per entry, whoever applied
    /// it first): a connected caller talks, then hangs up; an offered callback is taken.
    fn observe(&mut self, cmd: &Command, applied: &Applied) {
        for effect in &applied.effects {
            match effect {
                Effect::CallChanged(view) if view.status == CallStatus::Connected => {
                    if self.checker.mark_connected(&view.call) {
                        let caller = self.caller_by_call.get(&view.call).copied();
                        if let Some((caller, rec)) = caller.and_then(|c| Some((c, self.callers.get(&c)?))) {
                            let talk = rec.talk_ms;
                            self.push(self.now_ms + talk, Ev::Hangup { caller });
                        }
                    }
                }
                Effect::CallChanged(view) if view.status == CallStatus::CallbackConnected => {
                    let promised = self.checker.callback_promised_at(&view.call);
                    if promised.is_some_and(|at| self.last_restart_ms > at) {
                        self.coverage.callbacks_served_after_restart += 1;
                    }
                }
                Effect::OfferCallback { call, .. } => {
                    if let Some(&caller) = self.caller_by_call.get(call) {
                        if self.callers[&caller].taker && self.checker.first_callback_offer(call) {
                            // "1" accepts, then "1" confirms the caller id as the number.
                            self.push(self.now_ms + 4_000, Ev::Press { caller, digits: "1" });
                            self.push(self.now_ms + 14_000, Ev::Press { caller, digits: "1" });
                        }
                    }
                }
                _ => {}
            }
        }
        match cmd.body {
            CommandBody::SiteUnreachable { .. } => self.coverage.sites_unreachable += 1,
            CommandBody::SiteBack { .. } => self.coverage.sites_back += 1,
            CommandBody::SiteLost { .. } => self.coverage.sites_lost += 1,
            _ => {}
        }
    }

    fn execute(&mut self, site: usize, action: Action) {
        if self.cfg.trace {
            let text = format!("  site {site} -> {action:?}");
            self.note(|| text.chars().take(4000).collect());
        }
        let gen = self.sites[site].gen;
        match action {
            Action::Propose { token, command } => {
                if self.sites[site].pending.len() >= SITE_PENDING_PROPOSALS_MAX {
                    self.checker.violation(self.now_ms, format!("I8 site {} has too many proposals", site + 1));
                    return;
                }
                let id = command.id;
                if self.sites[site].pending.insert(id, Waiter::Site { gen, token }).is_some() {
                    self.coverage.proposals_retried += 1;
                }
                self.push(self.now_ms + PROPOSE_TIMEOUT_MS, Ev::ProposeTimeout { site, gen, id });
                self.propose_on(site, command);
            }
            Action::Reconcile => self.reconcile(site),
            Action::VerifyPin { token, pin, phc } => {
                let input = Input::PinVerified { token, ok: phc == fake_phc(&pin) };
                self.push(self.now_ms + ARI_LATENCY_MS, Ev::Site { site, gen, input });
            }
            Action::Ari { token, request } => {
                let result = ari(&mut self.world, BoxIndex(site), &request).map_err(|e| match e {
                    AriError::NotFound { message } => AriFailure::Gone(message),
                    other => AriFailure::Failed(other.to_string()),
                });
                if let (AriRequest::Continue { variables, .. }, Ok(())) = (&request, &result) {
                    if variables.iter().any(|(k, v)| k == "LINEUP_RESULT" && (v == "FAILED" || v == "INVALID")) {
                        self.checker.calls.entry_failures += 1;
                    }
                }
                self.push(
                    self.now_ms + ARI_LATENCY_MS,
                    Ev::Site { site, gen, input: Input::AriDone { token, result } },
                );
            }
        }
    }

    fn propose_timeout(&mut self, site: usize, gen: u64, id: CommandId) {
        if gen != self.sites[site].gen {
            return;
        }
        let Some(waiter) = self.sites[site].pending.remove(&id) else { return };
        // An unknown outcome is read back, never assumed (DESIGN decision 5).
        let known = self.read(site, |routing| routing.result_of(&id));
        match waiter {
            Waiter::Site { gen, token } => {
                let result = known.ok_or_else(|| ProposeFailure::NotCommitted("timed out".into()));
                self.push(self.now_ms, Ev::Site { site, gen, input: Input::Proposed { token, result } });
            }
            Waiter::Client { command, attempts } => {
                if known.is_some() || attempts >= CLIENT_ATTEMPTS_MAX {
                    return;
                }
                self.sites[site]
                    .pending
                    .insert(id, Waiter::Client { command: command.clone(), attempts: attempts + 1 });
                self.push(self.now_ms + PROPOSE_TIMEOUT_MS, Ev::ProposeTimeout { site, gen, id });
                if self.sites[site].up {
                    self.propose_on(site, command);
                }
            }
        }
    }

    /// An API client at the operator's site asks for a state change (breaks).
    fn client_propose(&mut self, op: usize, state: RequestedState) {
        let site = self.operators[op].site;
        if !self.sites[site].up {
            return;
        }
        self.client_serial += 1;
        let command = Command {
            id: CommandId { origin: 800 + site as u64, serial: self.client_serial },
            at_ms: self.abs_ms(),
            body: CommandBody::OperatorState { operator: self.operators[op].id.clone(), state },
        };
        let gen = self.sites[site].gen;
        self.sites[site].pending.insert(command.id, Waiter::Client { command: command.clone(), attempts: 1 });
        self.push(self.now_ms + PROPOSE_TIMEOUT_MS, Ev::ProposeTimeout { site, gen, id: command.id });
        self.propose_on(site, command);
    }

    fn arrival(&mut self, site: usize) {
        if !self.arrivals_on {
            return;
        }
        let next = self.load_dice.exponential_ms(self.arrival_mean_ms());
        self.push(self.now_ms + next, Ev::Arrival { site });
        let w = &self.cfg.workload;
        let mut pick = self.load_dice.unit();
        let mut exten = w.gates[0].exten;
        for g in &w.gates {
            if pick < g.share {
                exten = g.exten;
                break;
            }
            pick -= g.share;
        }
        let talk = self.load_dice.exponential_ms(w.aht_ms).min((w.aht_ms * w.handle_cap_factor) as u64);
        let taker = self.load_dice.chance(w.callback_takers);
        let patience = w.patience_mean_ms.map(|m| self.load_dice.exponential_ms(m).min(w.patience_max_ms));
        let n = self.next_caller;
        self.next_caller += 1;
        let number = format!("+1555{n:07}");
        if taker {
            // The callback rings this number at the operator's site, whichever that is.
            let no_answer = self.load_dice.chance(w.callback_no_answer);
            let behaviour = PhoneBehaviour {
                answer_after_ms: if no_answer { None } else { Some(3_000) },
                hang_up_after_answer_ms: Some(talk),
                ..Default::default()
            };
            for b in 0..self.cfg.sites {
                let _ = self.world.register_phone(BoxIndex(b), &number, behaviour.clone());
            }
        }
        let call = PhoneCall {
            phone: format!("c{n}"),
            caller: CallerId { name: format!("Caller {n}"), number },
            context: "lineup-gates".into(),
            exten: exten.into(),
            patience_ms: None,
            keys: vec![],
        };
        let Ok(channel) = self.world.place_call(BoxIndex(site), call) else {
            self.checker.violation(self.now_ms, "I8 the stand-in refused a call".into());
            return;
        };
        let call = self.sites[site].ctl.call_id_for(&channel);
        self.caller_by_call.insert(call.clone(), n);
        self.callers.insert(n, CallerRec { site, channel, call, taker, entered_ms: self.now_ms, talk_ms: talk });
        self.checker.calls.calls += 1;
        if let Some(p) = patience {
            self.push(self.now_ms + p, Ev::Abandon { caller: n });
        }
    }

    fn login(&mut self, op: usize) {
        let rec = &self.operators[op];
        let site = rec.site;
        if !self.sites[site].up {
            return;
        }
        let id = rec.id.as_str().to_string();
        if rec.ring {
            let behaviour = PhoneBehaviour { answer_after_ms: Some(1_500), ..Default::default() };
            let _ = self.world.register_phone(BoxIndex(site), &format!("phone-{id}"), behaviour);
        }
        let call = PhoneCall::operator_login(
            &format!("desk-{id}"),
            CallerId { name: id.clone(), number: id.clone() },
            "lineup-operators",
            &format!("*55{id}"),
            PIN,
            3_000,
        );
        let _ = self.world.place_call(BoxIndex(site), call);
        self.operators[op].login_until_ms = self.now_ms + 30_000;
    }

    /// Operators who were logged out (a lost leg, a restart) log in again; those put on
    /// break by missed rings come back.
    fn care(&mut self) {
        for op in 0..self.operators.len() {
            let site = self.operators[op].site;
            if !self.sites[site].up || self.now_ms < self.operators[op].login_until_ms {
                continue;
            }
            let id = &self.operators[op].id;
            let Some(view) = self.read(site, |routing| routing.operator_view(id)) else { continue };
            match view.status {
                OperatorStatus::Offline => self.login(op),
                OperatorStatus::Break { reason } if reason != "coffee" || !self.operators[op].on_break => {
                    self.client_propose(op, RequestedState::Available)
                }
                _ => {}
            }
        }
    }

    fn reconcile(&mut self, site: usize) {
        let (Ok(channels), Ok(bridges)) =
            (self.world.list_channels(BoxIndex(site)), self.world.list_bridges(BoxIndex(site)))
        else {
            return;
        };
        let gen = self.sites[site].gen;
        self.push(self.now_ms, Ev::Site { site, gen, input: Input::Reconcile { channels, bridges } });
    }

    fn route_world_outputs(&mut self) {
        for output in self.world.drain_outputs() {
            let site = output.box_index.0;
            self.checker.world_event(site, &output.event.kind);
            if !self.sites[site].up || self.sites[site].deaf {
                continue;
            }
            let gen = self.sites[site].gen;
            self.push(self.now_ms + ARI_LATENCY_MS, Ev::Site { site, gen, input: Input::Ari(output.event) });
        }
    }

    // ------------------------------------------------------------------ faults

    fn fault(&mut self) {
        let n = self.cfg.sites;
        let d = &mut self.fault_dice;
        // Database and Redis outages need the history pipeline and the projection, which run
        // with real nodes only; the model's runs keep their draws.
        let kind = d.pick(if self.real.is_some() { 11 } else { 9 });
        if self.cfg.fault_kinds & (1 << kind) == 0 {
            return;
        }
        let victim = d.pick(n);
        let len = 1_000 + d.exponential_ms(6_000.0).min(30_000);
        match kind {
            0 => {
                // Symmetric: isolate one site.
                let links: Vec<(usize, usize)> =
                    (0..n).filter(|o| *o != victim).flat_map(|o| [(victim, o), (o, victim)]).collect();
                self.block(&links);
                self.coverage.partitions += 1;
                self.push(self.now_ms + len, Ev::Heal(Heal::Links(links)));
            }
            1 => {
                // One-way: the victim hears but is not heard, or the reverse.
                let out_only = d.chance(0.5);
                let links: Vec<(usize, usize)> =
                    (0..n).filter(|o| *o != victim).map(|o| if out_only { (victim, o) } else { (o, victim) }).collect();
                self.block(&links);
                self.coverage.one_way_partitions += 1;
                self.push(self.now_ms + len, Ev::Heal(Heal::Links(links)));
            }
            2 => {
                // Swizzle-clog: links stop one by one, then return one by one in random order.
                let mut links: Vec<(usize, usize)> =
                    (0..n).flat_map(|a| (0..n).map(move |b| (a, b))).filter(|(a, b)| a != b).collect();
                let keep = 1 + d.pick(links.len());
                links.truncate(keep);
                let mut order = links.clone();
                for i in (1..order.len()).rev() {
                    let j = d.pick(i + 1);
                    order.swap(i, j);
                }
                for (k, link) in links.iter().enumerate() {
                    self.push(self.now_ms + 200 * k as u64, Ev::Clog(*link));
                }
                for (k, link) in order.into_iter().enumerate() {
                    self.push(self.now_ms + len + 300 * k as u64, Ev::Heal(Heal::Links(vec![link])));
                }
                self.coverage.swizzle_clogs += 1;
            }
            3 => {
                // A process crash (node and site control), restarted later; a majority stays.
                let down = self.sites.iter().filter(|s| !s.up).count();
                if self.sites[victim].up && (down + 1) * 2 < n + 1 {
                    self.crash(victim);
                    self.push(self.now_ms + len, Ev::Heal(Heal::Restart(victim)));
                }
            }
            4 => {
                // The leader stops the world for a while (GC, SIGSTOP).
                if let Some(leader) = (0..n).find(|i| self.is_leader(*i) && self.sites[*i].up) {
                    self.sites[leader].paused_until_ms = self.now_ms + len;
                    if let Some(real) = &mut self.real {
                        // A real node cannot be frozen inside the shared runtime: its links
                        // are held instead (nothing in or out until it resumes).
                        for other in (0..n).filter(|o| *o != leader) {
                            real.cut(leader, other);
                            real.cut(other, leader);
                        }
                    }
                    self.coverage.leader_pauses += 1;
                    self.push(self.now_ms + len, Ev::Heal(Heal::Unpause(leader)));
                }
            }
            5 => {
                // The ARI events socket drops; events are lost until it reconnects.
                if self.sites[victim].up && !self.sites[victim].deaf {
                    self.sites[victim].deaf = true;
                    self.push(self.now_ms + len, Ev::Heal(Heal::Hear(victim)));
                }
            }
            6 => {
                self.loss = 0.2;
                self.duplicate = 0.05;
                if let Some(real) = &mut self.real {
                    real.set_loss(20, 5);
                }
                self.push(self.now_ms + len, Ev::Heal(Heal::Loss));
            }
            7 => {
                // At-least-once effect feed: a site gets a recent window of effects again.
                if self.sites[victim].up {
                    let gen = self.sites[victim].gen;
                    let batches: Vec<(u64, Vec<Effect>)> = self.sites[victim].recent_effects.iter().cloned().collect();
                    for (log_index, effects) in batches {
                        let input = Input::Effects { log_index, effects };
                        self.push(self.now_ms, Ev::Site { site: victim, gen, input });
                    }
                    self.coverage.effect_redeliveries += 1;
                }
            }
            9 => {
                // The site's history database stops answering (a PostgreSQL outage).
                self.histories[victim].database.set_up(false);
                self.coverage.database_outages += 1;
                self.push(self.now_ms + len, Ev::Heal(Heal::Database(victim)));
            }
            10 => {
                // The site's Redis stops answering.
                self.projections[victim].redis.set_up(false);
                self.coverage.redis_outages += 1;
                self.push(self.now_ms + len, Ev::Heal(Heal::Redis(victim)));
            }
            _ => {
                // Crash the leader specifically (the most interesting victim).
                let down = self.sites.iter().filter(|s| !s.up).count();
                if let Some(leader) = (0..n).find(|i| self.is_leader(*i) && self.sites[*i].up) {
                    if (down + 1) * 2 < n + 1 {
                        self.crash(leader);
                        self.push(self.now_ms + len, Ev::Heal(Heal::Restart(leader)));
                    }
                }
            }
        }
        let kind_copy = kind;
        self.note(|| format!("fault kind {kind_copy} victim {victim} for {len} ms"));
    }

    /// A long fault, from its own stream: a node (node and site control; its box keeps
    /// carrying its calls) down past the unreachable threshold and sometimes past the lost
    /// one (`long-outage`), or restarted with its links cut or lossy for a while before it
    /// is heard (`slow-reconnect`). The victim is preferably a site with connected calls,
    /// local or across sites. Every draw is made whatever the state, so the stream stays
    /// aligned from seed to seed.
    fn long_fault(&mut self) {
        let n = self.cfg.sites;
        let d = &mut self.long_dice;
        let kind = LONG_FAULT_KIND_FIRST + d.pick(FAULT_KIND_NAMES.len() - LONG_FAULT_KIND_FIRST);
        let pick = d.next();
        let past_lost = d.chance(LONG_OUTAGE_PAST_LOST_SHARE);
        let unit = d.unit();
        let down_ms = d.exponential_ms(SLOW_RECONNECT_DOWN_MEAN_MS).min(SLOW_RECONNECT_DOWN_MAX_MS);
        let cut_for_ms = d.range(SLOW_RECONNECT_MIN_MS, SLOW_RECONNECT_MAX_MS);
        let lossy = d.chance(SLOW_RECONNECT_LOSSY_SHARE);
        if self.cfg.fault_kinds & (1 << kind) == 0 {
            return;
        }
        // A majority stays up: otherwise this fault waits for the next draw.
        let up: Vec<usize> = (0..n).filter(|i| self.sites[*i].up).collect();
        if (n - up.len() + 1) * 2 >= n + 1 {
            return;
        }
        let connected = self.connected_calls_by_site();
        let busy: Vec<usize> = up.iter().copied().filter(|i| connected[*i].0 + connected[*i].1 > 0).collect();
        let among = if busy.is_empty() { &up } else { &busy };
        let victim = among[(pick % among.len() as u64) as usize];
        self.coverage.calls_connected_at_an_outage += connected[victim].0;
        self.coverage.calls_connected_across_an_outage += connected[victim].1;
        let (unreachable, lost) = (self.cfg.site_unreachable_after_ms, self.cfg.site_lost_after_ms);
        if kind == LONG_FAULT_KIND_FIRST {
            let len = long_outage_ms(unreachable, lost, past_lost, unit);
            self.coverage.long_outages += 1;
            if lost > 0 && len >= lost {
                self.coverage.outages_past_site_lost += 1;
            }
            self.crash(victim);
            self.push(self.now_ms + len, Ev::Heal(Heal::Restart(victim)));
            self.note(|| format!("long outage of node {victim} for {len} ms, {connected:?} calls connected"));
        } else {
            self.coverage.slow_reconnects += 1;
            self.crash(victim);
            self.push(self.now_ms + down_ms, Ev::Heal(Heal::SlowRestart { node: victim, cut_for_ms, lossy }));
            self.note(|| {
                format!(
                    "slow reconnect of node {victim}: down {down_ms} ms, then unheard {cut_for_ms} ms (lossy {lossy})"
                )
            });
        }
    }

    /// Per site: connected calls with both legs there, and with one leg there and the
    /// other at another site (from the most advanced live node's view).
    fn connected_calls_by_site(&self) -> Vec<(u64, u64)> {
        let n = self.cfg.sites;
        let mut counts = vec![(0, 0); n];
        let Some(reader) = (0..n).find(|i| self.is_leader(*i)).or_else(|| (0..n).find(|i| self.sites[*i].up)) else {
            return counts;
        };
        let legs: Vec<(usize, usize)> = self.read(reader, |routing| {
            routing
                .calls()
                .filter(|c| c.status == CallStatus::Connected)
                .filter_map(|c| {
                    let operator_site = routing.operator_config(c.operator.as_ref()?)?.site;
                    Some((c.entry_site.0 as usize - 1, operator_site.0 as usize - 1))
                })
                .collect()
        });
        for (caller_site, operator_site) in legs {
            if caller_site == operator_site {
                counts[caller_site].0 += 1;
            } else {
                counts[caller_site].1 += 1;
                counts[operator_site].1 += 1;
            }
        }
        counts
    }

    fn block(&mut self, links: &[(usize, usize)]) {
        for (a, b) in links {
            self.blocked[*a][*b] = true;
            if let Some(real) = &mut self.real {
                real.cut(*a, *b);
            }
        }
    }

    fn crash(&mut self, node: usize) {
        self.coverage.crashes += 1;
        match &self.real {
            Some(real) => {
                real.crash(node);
                self.histories[node].crash();
                if let Some(projection) = self.projections[node].crash() {
                    real.block_on(projection.stop());
                }
            }
            None => self.nodes[node].crash(),
        }
        self.node_gen[node] += 1;
        let s = &mut self.sites[node];
        s.up = false;
        s.gen += 1;
        s.pending.clear();
        s.recent_effects.clear();
        s.sync_scheduled = false;
        s.flush_scheduled = false;
        s.paused_until_ms = 0;
    }

    fn restart(&mut self, node: usize) {
        if self.sites[node].up {
            return;
        }
        self.last_restart_ms = self.now_ms;
        let gen = self.sites[node].gen;
        self.sites[node] = SiteRt::new(new_controller(&self.cfg, node, gen), gen);
        if let Some(real) = &mut self.real {
            let history = &mut self.histories[node];
            if let Err(e) = real.restart(node).and_then(|()| real.in_runtime(|| history.open())) {
                self.checker.violation(self.now_ms, format!("I7 node {node} did not restart: {e}"));
                return;
            }
            let projection = &mut self.projections[node];
            real.in_runtime(|| projection.start(real.state_source(node)));
            // Its own snapshot restore at start is not an install from the leader.
            self.absorb_real(Some(node));
            self.reconcile(node);
            return;
        }
        let mut out = Out::default();
        let now = self.abs_ms();
        self.nodes[node].restart(now, &mut self.raft_dice, &mut out);
        let ngen = self.node_gen[node];
        let at = self.nodes[node].election_deadline_ms - EPOCH_MS;
        self.push(at, Ev::Election { node, gen: ngen });
        self.after_node(node, out);
        self.reconcile(node);
    }

    fn heal_one(&mut self, heal: Heal) {
        match heal {
            Heal::Links(links) => {
                for (a, b) in links {
                    self.blocked[a][b] = false;
                    if let Some(real) = &mut self.real {
                        real.mend(a, b);
                    }
                }
            }
            Heal::Restart(node) => self.restart(node),
            Heal::SlowRestart { node, cut_for_ms, lossy } => {
                if self.faults_on && !self.sites[node].up {
                    if lossy {
                        self.site_loss[node] = f64::from(SLOW_RECONNECT_LOSS_PERCENT) / 100.0;
                        if let Some(real) = &mut self.real {
                            real.set_site_loss(node, SLOW_RECONNECT_LOSS_PERCENT);
                        }
                        self.push(self.now_ms + cut_for_ms, Ev::Heal(Heal::SiteLoss(node)));
                    } else {
                        let links: Vec<(usize, usize)> =
                            (0..self.cfg.sites).filter(|o| *o != node).flat_map(|o| [(node, o), (o, node)]).collect();
                        self.block(&links);
                        self.push(self.now_ms + cut_for_ms, Ev::Heal(Heal::Links(links)));
                    }
                }
                self.restart(node);
            }
            Heal::SiteLoss(node) => {
                self.site_loss[node] = 0.0;
                if let Some(real) = &mut self.real {
                    real.set_site_loss(node, 0);
                }
            }
            Heal::Unpause(node) => {
                self.sites[node].paused_until_ms = 0;
                if let Some(real) = &mut self.real {
                    for other in (0..self.cfg.sites).filter(|o| *o != node) {
                        real.mend(node, other);
                        real.mend(other, node);
                    }
                }
            }
            Heal::Hear(site) => {
                if self.sites[site].deaf {
                    self.sites[site].deaf = false;
                    self.coverage.ari_reconnects += 1;
                    self.reconcile(site);
                }
            }
            Heal::Database(site) => self.histories[site].database.set_up(true),
            Heal::Redis(site) => self.projections[site].redis.set_up(true),
            Heal::Loss => {
                if self.faults_on {
                    self.loss = 0.01;
                    self.duplicate = 0.01;
                    if let Some(real) = &mut self.real {
                        real.set_loss(1, 1);
                    }
                }
            }
        }
    }

    /// The fault phase ends: everything heals, arrivals stop, and the run must make
    /// progress (liveness mode) and drain.
    fn heal_all(&mut self) {
        self.faults_on = false;
        self.arrivals_on = false;
        self.healed_at_ms = Some(self.now_ms);
        self.loss = 0.0;
        self.duplicate = 0.0;
        self.site_loss.iter_mut().for_each(|l| *l = 0.0);
        for row in &mut self.blocked {
            row.iter_mut().for_each(|b| *b = false);
        }
        if let Some(real) = &mut self.real {
            real.mend_all();
            real.set_loss(0, 0);
        }
        for history in &self.histories {
            history.database.set_up(true);
        }
        for projection in &self.projections {
            projection.redis.set_up(true);
        }
        for i in 0..self.cfg.sites {
            self.sites[i].paused_until_ms = 0;
            if !self.sites[i].up {
                self.restart(i);
            }
            if self.sites[i].deaf {
                self.heal_one(Heal::Hear(i));
            }
        }
        for op in 0..self.operators.len() {
            if self.operators[op].on_break {
                self.push(self.now_ms, Ev::BreakEnd { op });
            }
            if self.operators[op].ring {
                self.push(self.now_ms, Ev::RingMiss { op, missing: false });
            }
        }
        self.note(|| "heal: faults stop, arrivals stop".into());
        self.push(self.now_ms + LIVENESS_BOUND_MS, Ev::EndOfHeal);
    }

    // ------------------------------------------------------------------ checks

    fn step_checks(&mut self) {
        if self.heap.len() > EVENTS_PENDING_MAX {
            self.checker.violation(self.now_ms, format!("I8 {} events pending", self.heap.len()));
        }
        if self.checker.bridges_changed() {
            check::ground_truth_i1(&self.world, &mut self.checker, self.now_ms);
        }
        if let Some(healed) = self.healed_at_ms {
            let drained = self.callers_left() == 0 && self.sites.iter().all(|s| s.ctl.tracked_callers() == 0);
            if drained && self.now_ms >= healed + LIVENESS_BOUND_MS {
                self.done = true;
            } else if self.now_ms > healed + DRAIN_BOUND_MS {
                let mut left = self.read(0, |routing| self.checker.leftovers(routing));
                for (i, s) in self.sites.iter().enumerate() {
                    let chans: Vec<String> = s.ctl.tracked_caller_channels().take(4).map(|c| c.to_string()).collect();
                    if !chans.is_empty() {
                        left.push_str(&format!("; site {} tracks {chans:?}", i + 1));
                    }
                }
                self.checker
                    .violation(self.now_ms, format!("I2 callers still in the system after the drain bound: {left}"));
                self.done = true;
            }
        } else if self.now_ms > self.cfg.virtual_max_ms {
            self.checker.violation(self.now_ms, format!("I7 only {} ops by the virtual time limit", self.ops));
            self.done = true;
        }
    }

    fn callers_left(&self) -> usize {
        self.checker.live_callers()
    }

    fn periodic_checks(&mut self) {
        for i in 0..self.cfg.sites {
            let log_len = match &self.real {
                Some(real) => real.view(i).log_entries as usize,
                None => self.nodes[i].log_len(),
            };
            if log_len > LOG_ENTRIES_MAX {
                self.checker.violation(self.now_ms, format!("I8 node {i} holds {log_len} log entries"));
            }
            if !self.sites[i].up {
                continue;
            }
            if let Err(e) = self.read(i, |routing| routing.check_invariants()) {
                self.checker.violation(self.now_ms, format!("I1 core self-check on node {i}: {e}"));
            }
        }
        if self.world.dropped_outputs() > 0 {
            self.checker.violation(self.now_ms, "I8 the stand-in dropped events (output bound)".into());
        }
        if let Some(healed) = self.healed_at_ms {
            if self.now_ms >= healed + LIVENESS_BOUND_MS {
                if let Some(leader) = (0..self.cfg.sites).find(|i| self.is_leader(*i)) {
                    let (checker, now) = (&mut self.checker, self.now_ms);
                    match &self.real {
                        Some(real) => real.read(leader, |r| check::starvation(r, checker, now, STARVATION_BOUND_MS)),
                        None => check::starvation(&self.nodes[leader].routing, checker, now, STARVATION_BOUND_MS),
                    }
                }
            }
        }
    }

    fn liveness_check(&mut self) {
        let leaders: Vec<usize> = (0..self.cfg.sites).filter(|i| self.is_leader(*i)).collect();
        let Some(&leader) = leaders.first() else {
            self.checker.violation(self.now_ms, format!("I7 no leader {LIVENESS_BOUND_MS} ms after the heal"));
            return;
        };
        // The model knows its commit index; with real nodes the leader's applied index
        // stands for it (openraft applies on the leader as soon as it commits).
        let applied: Vec<u64> = (0..self.cfg.sites)
            .map(|i| match &self.real {
                Some(real) => real.view(i).last_applied,
                None => self.nodes[i].applied,
            })
            .collect();
        let commit = match &self.real {
            Some(_) => applied[leader],
            None => self.nodes[leader].commit,
        };
        for (i, applied) in applied.into_iter().enumerate() {
            // Allow the entries of the last few heartbeats to be in flight.
            if applied + 8 < commit {
                self.checker.violation(
                    self.now_ms,
                    format!("I7 node {i} applied {applied} of {commit} {LIVENESS_BOUND_MS} ms after the heal"),
                );
            }
        }
    }

    // ------------------------------------------------------------------ node access

    /// Reads node `node`'s applied state (the model's or the real node's).
    fn read<R>(&self, node: usize, read: impl FnOnce(&Routing) -> R) -> R {
        match &self.real {
            Some(real) => real.read(node, read),
            None => read(&self.nodes[node].routing),
        }
    }

    fn is_leader(&self, node: usize) -> bool {
        match &self.real {
            Some(real) => self.sites[node].up && real.view(node).leader,
            None => self.nodes[node].is_leader(),
        }
    }

    /// Takes in what the real nodes applied and restored since the last call, and the
    /// leaders they report; returns whether anything was applied or restored. A restore on
    /// `starting` is that node's own snapshot at start, not an install from the leader.
    fn absorb_real(&mut self, starting: Option<usize>) -> bool {
        let Some(real) = &self.real else { return false };
        let observed = real.drain();
        if real.overflowed() > 0 {
            self.checker.violation(self.now_ms, format!("I8 {} observations lost (bound)", real.overflowed()));
        }
        let views: Vec<crate::real::RaftView> = (0..self.cfg.sites).map(|i| real.view(i)).collect();
        // Counted, not checked per term: openraft 0.9 (without `single-term-leader`)
        // identifies a leader by (term, node id), so two nodes may lead in one term, each
        // under its own leader id. Safety is checked where it matters: every node applies
        // the same entry at every index (I5 digests) and ends in the same state.
        for (i, view) in views.iter().enumerate() {
            if view.leader && self.sites[i].up && self.leaders_seen.insert((view.term, i)) {
                self.coverage.leader_changes += 1;
            }
        }
        let any = !observed.is_empty();
        // Commands of one entry arrive together (one apply call): group them back.
        // (node, log index, its commands' records)
        let mut entry: Option<(usize, u64, Vec<Record>)> = None;
        for item in observed {
            match item {
                Observed::Applied(record) => {
                    feed_stores(&mut self.histories, &self.projections, &record);
                    let log_index = record.apply_index / raft::ENTRY_COMMANDS_MAX;
                    let same = entry.as_ref().is_some_and(|(n, l, _)| *n == record.node && *l == log_index);
                    if !same {
                        if let Some((node, log_index, records)) = entry.take() {
                            self.real_entry_applied(node, log_index, records);
                        }
                        entry = Some((record.node, log_index, Vec::new()));
                    }
                    if let Some((_, _, records)) = entry.as_mut() {
                        records.push(record);
                    }
                }
                Observed::Restored { node } => {
                    if let Some((node, log_index, records)) = entry.take() {
                        self.real_entry_applied(node, log_index, records);
                    }
                    if starting != Some(node) && self.sites[node].up {
                        self.coverage.snapshots_installed += 1;
                        self.note(|| format!("node {node} installed a snapshot"));
                        // The entries the snapshot covers never reach this site as effects:
                        // the projection rebuilds, as the production node has it do
                        // (lineup/src/node.rs), and site control reconciles.
                        self.projections[node].request_rebuild();
                        self.reconcile(node);
                    }
                }
            }
        }
        if let Some((node, log_index, records)) = entry.take() {
            self.real_entry_applied(node, log_index, records);
        }
        any
    }

    /// With real nodes, after the drain: history and the Redis projections get time to
    /// catch up (what the nodes apply meanwhile still reaches them), then every site's
    /// database must hold exactly its history and every site's Redis must equal a fresh
    /// rebuild from its node's state.
    fn stores_converge(&mut self) {
        let Some(real) = &self.real else { return };
        let settled_ms = self.now_ms + HISTORY_SETTLE_MS;
        let mut at_ms = self.now_ms;
        while at_ms < settled_ms {
            at_ms = (at_ms + SETTLE_SLICE_MS).min(settled_ms);
            real.advance_to(at_ms);
            for item in real.drain() {
                if let Observed::Applied(record) = item {
                    feed_stores(&mut self.histories, &self.projections, &record);
                }
            }
        }
        let references: Vec<live::ReferenceBuild> =
            (0..self.cfg.sites).map(|i| real.in_runtime(|| real.read(i, live::reference))).collect();
        real.advance_to(settled_ms + REFERENCE_REBUILD_MS);
        for (i, history) in self.histories.iter().enumerate() {
            self.coverage.history_rows += history.rows() as u64;
            let problems = history.divergence();
            if !problems.is_empty() {
                self.checker.violation(
                    self.now_ms,
                    format!("I2 site {}'s history has not converged after the drain: {problems:?}", i + 1),
                );
            }
        }
        for (i, (projection, reference)) in self.projections.iter().zip(&references).enumerate() {
            self.coverage.redis_keys += projection.redis.key_count() as u64;
            let problems = reference.differences(&projection.redis);
            if !problems.is_empty() {
                let shown: Vec<&String> = problems.iter().take(3).collect();
                self.checker.violation(
                    self.now_ms,
                    format!(
                        "I2 site {}'s Redis projection has not converged after the drain ({} keys differ): {shown:?}",
                        i + 1,
                        problems.len()
                    ),
                );
            }
        }
    }

    fn real_entry_applied(&mut self, node: usize, log_index: u64, records: Vec<Record>) {
        let mut commands = Vec::with_capacity(records.len());
        let mut applied = Vec::with_capacity(records.len());
        let mut order_issues = Vec::new();
        for record in records {
            commands.push(record.command);
            applied.push(record.applied);
            order_issues.extend(record.order_issue);
        }
        // The term is not visible inside apply; index, commands and results identify the entry.
        let digest = raft::entry_digest(0, log_index, &commands, &applied);
        let replay = log_index <= self.applied_high[node];
        self.applied_high[node] = self.applied_high[node].max(log_index);
        let entry =
            AppliedEntry { log_index, term: 0, commands: Rc::new(commands), applied, digest, replay, order_issues };
        self.on_applied(node, entry);
    }

    fn finish(mut self) -> (RunReport, Vec<String>) {
        if !self.checker.stop() {
            let ends: Vec<NodeEnd> = (0..self.cfg.sites)
                .map(|i| NodeEnd {
                    applied: match &self.real {
                        Some(real) => real.view(i).last_applied,
                        None => self.nodes[i].applied,
                    },
                    invariants: self.read(i, |routing| routing.check_invariants()),
                    state: self.read(i, |routing| routing.snapshot_bytes()),
                })
                .collect();
            check::final_checks(&self.world, &ends, &mut self.checker, self.cfg.sites);
            self.stores_converge();
            for (i, s) in self.sites.iter().enumerate() {
                if s.ctl.tracked_callers() > 0 {
                    self.checker.violation(
                        self.now_ms,
                        format!("I2 site {} still tracks {} callers", i + 1, s.ctl.tracked_callers()),
                    );
                }
            }
        }
        for s in &self.sites {
            self.coverage.fenced_offers += s.ctl.counters.offers_fenced_out;
        }
        self.coverage.double_bookings_after_cancel = self.checker.double_bookings_after_cancel;
        let mut calls = self.checker.calls.clone();
        let mmc = self.cfg.workload.is_mmc();
        // Callers are numbered in arrival order, so this is the reference queue's input.
        let path: Vec<(u64, u64)> =
            if mmc { self.callers.values().map(|rec| (rec.entered_ms, rec.talk_ms)).collect() } else { vec![] };
        let reference_waits = erlang::fifo_waits_ms(self.operators.len(), &path);
        let mut reference = MmcReference { operators: self.operators.len(), ..Default::default() };
        for (i, rec) in self.callers.values().enumerate() {
            if rec.entered_ms < self.cfg.stats_after_ms {
                continue;
            }
            if let Some(wait) = self.checker.answered_wait(&rec.call) {
                calls.answered_waits += 1;
                calls.wait_sum_ms += wait;
                if wait <= SERVICE_LEVEL_ANSWER_MS {
                    calls.within_20s += 1;
                }
                if let Some(&ideal) = reference_waits.get(i) {
                    reference.calls += 1;
                    reference.wait_sum_ms += ideal;
                    if ideal <= SERVICE_LEVEL_ANSWER_MS {
                        reference.within_20s += 1;
                    }
                }
            }
        }
        let report = RunReport {
            seed: self.cfg.seed,
            ops: self.ops,
            events: self.events,
            virtual_ms: self.now_ms,
            trace_hash: format!("{:016x}", self.hash.0),
            violations: self.checker.violations.clone(),
            coverage: self.coverage.clone(),
            calls,
            mmc_reference: mmc.then_some(reference),
            bug: self.cfg.bug,
        };
        (report, self.trace.into_iter().collect())
    }
}

/// The simulated caller behind a caller channel's name: `PJSIP/c12-…` (their own leg) or
/// `PJSIP/+15550000012-…` (a callback to their number).
fn caller_of_channel_name(name: &str) -> Option<u64> {
    let rest = name.strip_prefix("PJSIP/c").or_else(|| name.strip_prefix("PJSIP/+1555"))?;
    rest.split('-').next()?.parse().ok()
}

/// How long a long outage lasts: past the unreachable threshold, and with `past_lost` past
/// the lost threshold too when that is within `LONG_OUTAGE_MAX_MS` (otherwise short of
/// it). `unit` (in [0, 1)) places it in its range, so one draw serves every threshold.
fn long_outage_ms(unreachable_ms: u64, lost_ms: u64, past_lost: bool, unit: f64) -> u64 {
    let lost_in_reach = lost_ms > 0 && lost_ms + LONG_OUTAGE_PAST_LOST_MAX_MS <= LONG_OUTAGE_MAX_MS;
    if past_lost && lost_in_reach {
        let span = LONG_OUTAGE_PAST_LOST_MAX_MS - LONG_OUTAGE_PAST_LOST_MIN_MS;
        return lost_ms + LONG_OUTAGE_PAST_LOST_MIN_MS + (unit * span as f64) as u64;
    }
    let low = unreachable_ms + LONG_OUTAGE_PAST_UNREACHABLE_MIN_MS;
    let mut len = low + (unit * LONG_OUTAGE_SPAN_MS as f64) as u64;
    if lost_in_reach {
        // Short of the lost threshold, however close the two thresholds are.
        len = len.min(lost_ms.saturating_sub(LONG_OUTAGE_PAST_UNREACHABLE_MIN_MS).max(low));
    }
    len.min(LONG_OUTAGE_MAX_MS)
}

/// One applied command reaches its site's history outbox and Redis projection as the
/// production node hands it over (effects for that site; a config change rebuilds the
/// projection's memberships).
fn feed_stores(histories: &mut [SiteHistory], projections: &[SiteProjection], record: &Record) {
    let site_id = SiteId(record.node as u64 + 1);
    let for_site: Vec<Effect> = record.applied.effects.iter().filter(|e| e.is_for(site_id)).cloned().collect();
    if !for_site.is_empty() {
        projections[record.node].submit(record.apply_index, &for_site);
        histories[record.node].submit(record.apply_index, for_site);
    }
    if matches!(record.command.body, CommandBody::ApplyConfig(_)) {
        projections[record.node].request_rebuild();
    }
}

impl SiteRt {
    fn new(ctl: SiteController, gen: u64) -> SiteRt {
        SiteRt {
            ctl,
            gen,
            up: true,
            deaf: false,
            paused_until_ms: 0,
            pending: BTreeMap::new(),
            recent_effects: VecDeque::new(),
            sync_scheduled: false,
            flush_scheduled: false,
        }
    }
}

fn new_controller(cfg: &SimConfig, site: usize, gen: u64) -> SiteController {
    // A restarted site never reuses a serial still in the cluster's dedup window.
    let mut sc = SiteConfig::new(SiteId(site as u64 + 1), 1 + gen * 1_000_000_000);
    sc.callback_endpoint = Some("PJSIP/{number}".into());
    for j in (0..cfg.sites).filter(|j| *j != site) {
        sc.trunk_endpoints.insert(SiteId(j as u64 + 1), format!("PJSIP/lineup-{{call}}@site-{}", j + 1));
    }
    sc.fence_check = cfg.bug != PlantedBug::SkipFenceCheck;
    SiteController::new(sc)
}

fn bootstrap_commands(cfg: &SimConfig, operators: &[OperatorRec]) -> Vec<Command> {
    let w = &cfg.workload;
    let mut bodies = Vec::new();
    for q in ["sales", "support"] {
        bodies.push(CommandBody::PutQueue(QueueConfig {
            id: QueueId::new(q),
            callback_offer_above_eta_ms: w.callback_offer_above_eta_ms,
            callback_max_attempts: 2,
            callback_retry_delay_ms: 15_000,
            wrap_up_ms: w.wrap_up_ms,
            ring_timeout_ms: 12_000,
            announce_every_ms: w.announce_every_ms,
            max_waiting: 5_000,
            default_handle_ms: w.aht_ms as u64,
            ..Default::default()
        }));
    }
    for (gate, queue) in [("main", "sales"), ("vip", "sales"), ("web", "support")] {
        bodies.push(CommandBody::PutGate(GateConfig {
            id: GateId::new(gate),
            queue: QueueId::new(queue),
            ..Default::default()
        }));
    }
    for op in operators {
        let id = op.id.as_str();
        bodies.push(CommandBody::PutOperator(OperatorConfig {
            id: op.id.clone(),
            name: format!("Operator {id}"),
            site: SiteId(op.site as u64 + 1),
            pin_hash: fake_phc(PIN),
            mode: if op.ring { OperatorMode::Ring } else { OperatorMode::Persistent },
            endpoint: op.ring.then(|| format!("PJSIP/phone-{id}")),
            memberships: [(QueueId::new("sales"), 0), (QueueId::new("support"), 0)].into_iter().collect(),
            ..Default::default()
        }));
    }
    bodies.push(CommandBody::Tick { now_ms: EPOCH_MS });
    bodies
        .into_iter()
        .enumerate()
        .map(|(k, body)| Command { id: CommandId { origin: 999, serial: k as u64 + 1 }, at_ms: EPOCH_MS, body })
        .collect()
}

/// Executes one ARI request against the stand-in (the REST face, without HTTP).
fn ari(w: &mut PbxWorld, at: BoxIndex, request: &AriRequest) -> Result<(), AriError> {
    let ids = |channels: &[ChannelId]| channels.iter().map(|c| c.as_str().to_string()).collect::<Vec<_>>();
    match request {
        AriRequest::Answer(c) => w.answer(at, c.as_str()),
        AriRequest::Hangup(c, reason) => {
            let cause = if *reason == HangupReason::Normal { 16 } else { 17 };
            match w.hangup_channel(at, c.as_str(), cause) {
                Err(AriError::NotFound { .. }) => Ok(()),
                other => other,
            }
        }
        AriRequest::StartMoh { channel, class } => w.start_moh(at, channel.as_str(), class.as_deref()),
        AriRequest::StopMoh(c) => w.stop_moh(at, c.as_str()),
        AriRequest::Play { channel, playback, media } => {
            let uris: Vec<String> = media.iter().map(Media::to_string).collect();
            w.play(at, channel.as_str(), Some(playback), &uris).map(|_| ())
        }
        AriRequest::StopPlayback(p) => w.stop_playback(at, p.as_str()),
        AriRequest::Originate(o) => {
            let (app, app_args) = match &o.target {
                lineup_ari::OriginateTarget::Application { app, app_args } => {
                    (Some(app.as_str().to_string()), app_args.clone())
                }
                lineup_ari::OriginateTarget::Dialplan { .. } => (None, vec![]),
            };
            let params = OriginateParams {
                endpoint: o.endpoint.as_str().to_string(),
                app,
                app_args,
                context: None,
                extension: None,
                priority: None,
                channel_id: o.channel_id.clone(),
                other_channel_id: None,
                caller_id: o.caller_id.clone(),
                timeout_s: o.timeout_s.map(i64::from),
                variables: o.variables.clone(),
            };
            w.originate(at, &params).map(|_| ())
        }
        AriRequest::CreateBridge(b) => {
            w.create_bridge(at, Some(b.bridge_type.as_str()), Some(b.bridge_id.as_str()), b.name.as_deref()).map(|_| ())
        }
        AriRequest::AddChannels { bridge, channels } => w.add_channels(at, bridge.as_str(), &ids(channels)),
        AriRequest::RemoveChannels { bridge, channels } => w.remove_channels(at, bridge.as_str(), &ids(channels)),
        AriRequest::DestroyBridge(b) => w.destroy_bridge(at, b.as_str()),
        AriRequest::Continue { channel, variables, target } => {
            for (name, value) in variables {
                w.set_variable(at, channel.as_str(), name, value)?;
            }
            w.continue_in_dialplan(
                at,
                channel.as_str(),
                target.context.clone(),
                target.extension.clone(),
                target.priority,
            )
        }
    }
}

/// Whether a stand-in event can change who hears whom (the ground-truth I1 scan runs then).
pub fn changes_audio(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::ChannelEnteredBridge { .. }
            | EventKind::ChannelLeftBridge { .. }
            | EventKind::ChannelStateChange { .. }
            | EventKind::ChannelDestroyed { .. }
    )
}
