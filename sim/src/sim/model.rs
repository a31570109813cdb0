//! The Raft model (`raft::Node`) as the federation's replication: its messages, timers and
//! disk syncs are simulator events, its network (delay, loss, duplication, cuts) is drawn
//! here from the seed's network stream, and what a handler returns (`raft::Out`) is acted
//! on in `after_node`.

use lineup_core::{Command, Routing};
use std::cell::Cell;
use std::collections::BTreeSet;
use std::rc::Rc;

use super::events::Ev;
use super::replication::{Advance, Replication};
use super::Sim;
use crate::config::{PlantedBug, SimConfig, EPOCH_MS};
use crate::raft::{Msg, Node, Out, RaftTiming};
use crate::rng::Dice;

/// The leader proposes `Tick` this often (the core's timer resolution in the sim).
pub const TICK_MS: u64 = 1_000;
pub const DISK_SYNC_MIN_MS: u64 = 1;
pub const DISK_SYNC_MAX_MS: u64 = 4;
/// One-way WAN delay between sites.
pub const NET_DELAY_MIN_MS: u64 = 5;
pub const NET_DELAY_MAX_MS: u64 = 40;

/// A node's disk: whether a sync or a flush is already scheduled.
#[derive(Default)]
struct Disk {
    sync_scheduled: bool,
    flush_scheduled: bool,
}

pub(crate) struct Model {
    nodes: Vec<Node>,
    timing: RaftTiming,
    /// Per node: its process generation (a crash ends the timers of the one before).
    node_gen: Vec<u64>,
    disks: Vec<Disk>,
    net_dice: Dice,
    raft_dice: Dice,
    /// Whether the run has faults (the network delay is drawn, else fixed).
    faults: bool,
    // network faults
    blocked: Vec<Vec<bool>>,
    loss: f64,
    /// Per site: the share of its messages (either way) dropped in a slow reconnect's lossy
    /// spell (0: none, and then no draw is made).
    site_loss: Vec<f64>,
    duplicate: f64,
    // planted bug NoDedupTable
    seen_ids: BTreeSet<lineup_core::CommandId>,
    dedup_breaker: u64,
}

impl Model {
    /// Planted bug NoDedupTable: a command id the leader has seen before comes in under a
    /// fresh id, so the core's duplicate table cannot recognise it.
    fn break_dedup(&mut self, command: &mut Command) {
        if !self.seen_ids.insert(command.id) {
            self.dedup_breaker += 1;
            command.id.serial = (1 << 62) | self.dedup_breaker;
        }
    }
}

impl Replication for Model {
    const SHORT_FAULT_KINDS: usize = 9;

    fn build(cfg: &SimConfig, bootstrap: Rc<Vec<Command>>, net: Dice, raft: Dice) -> Result<Model, String> {
        let n = cfg.sites;
        let timing = RaftTiming::default();
        let first_applier = Rc::new(Cell::new(0));
        let bug = cfg.bug == PlantedBug::AckBeforeCommit;
        let nodes = (0..n).map(|i| Node::new(i, n, timing, bootstrap.clone(), bug, first_applier.clone())).collect();
        Ok(Model {
            nodes,
            timing,
            node_gen: vec![0; n],
            disks: (0..n).map(|_| Disk::default()).collect(),
            net_dice: net,
            raft_dice: raft,
            faults: cfg.faults,
            blocked: vec![vec![false; n]; n],
            loss: 0.0,
            site_loss: vec![0.0; n],
            duplicate: 0.0,
            seen_ids: BTreeSet::new(),
            dedup_breaker: 0,
        })
    }

    fn read<T>(&self, node: usize, read: impl FnOnce(&Routing) -> T) -> T {
        read(&self.nodes[node].routing)
    }

    fn leads(&self, node: usize) -> bool {
        self.nodes[node].is_leader()
    }

    fn applied(&self, node: usize) -> u64 {
        self.nodes[node].applied
    }

    fn commit(&self, leader: usize) -> u64 {
        self.nodes[leader].commit
    }

    fn log_entries(&self, node: usize) -> usize {
        self.nodes[node].log_len()
    }

    fn set_loss(&mut self, drop_percent: u8, duplicate_percent: u8) {
        self.loss = f64::from(drop_percent) / 100.0;
        self.duplicate = f64::from(duplicate_percent) / 100.0;
    }

    fn set_site_loss(&mut self, node: usize, drop_percent: u8) {
        self.site_loss[node] = f64::from(drop_percent) / 100.0;
    }

    fn cut(&mut self, from: usize, to: usize) {
        self.blocked[from][to] = true;
    }

    fn mend(&mut self, from: usize, to: usize) {
        self.blocked[from][to] = false;
    }

    /// A paused model node is its events deferred (`Sim::deferred_for_pause`).
    fn hold(&mut self, _node: usize) {}

    fn release(&mut self, _node: usize) {}

    /// The model's runs have no stores (their outages are never drawn).
    fn set_database_up(&mut self, _site: usize, _up: bool) {}

    fn set_redis_up(&mut self, _site: usize, _up: bool) {}

    fn heal(&mut self) {
        self.loss = 0.0;
        self.duplicate = 0.0;
        self.site_loss.iter_mut().for_each(|l| *l = 0.0);
        for row in &mut self.blocked {
            row.iter_mut().for_each(|b| *b = false);
        }
    }

    fn crash(&mut self, node: usize) -> u64 {
        let lost = self.nodes[node].crash();
        self.node_gen[node] += 1;
        self.disks[node] = Disk::default();
        lost
    }

    fn start_node(sim: &mut Sim<Model>, node: usize) {
        let model = &mut sim.repl;
        model.nodes[node].reset_election(0, &mut model.raft_dice);
        let at = model.nodes[node].election_deadline_ms;
        sim.push(at, Ev::Election { node, gen: 0 });
    }

    /// The model runs inside the simulator's own events.
    fn advance(_sim: &mut Sim<Model>, _next_ms: u64) -> Advance {
        Advance::Event
    }

    fn node_event(sim: &mut Sim<Model>, ev: Ev) {
        match ev {
            Ev::Net { from, to, msg } => sim.deliver(from, to, msg),
            Ev::Election { node, gen } => sim.election_timer(node, gen),
            Ev::Heartbeat { node, term, gen } => sim.heartbeat(node, term, gen),
            Ev::TickDuty { node, term, gen } => sim.tick_duty(node, term, gen),
            Ev::Sync { node, gen } => sim.disk_sync(node, gen),
            Ev::Flush { node, gen } => sim.flush(node, gen),
            other => unreachable!("not a model event: {other:?}"),
        }
    }

    fn propose(sim: &mut Sim<Model>, node: usize, mut command: Command) {
        if sim.cfg.bug == PlantedBug::NoDedupTable && sim.repl.nodes[node].is_leader() {
            sim.repl.break_dedup(&mut command);
        }
        let mut out = Out::default();
        sim.repl.nodes[node].propose(command, &mut out);
        sim.after_node(node, out);
    }

    fn restart(sim: &mut Sim<Model>, node: usize) -> bool {
        sim.repl.disks[node] = Disk::default();
        let mut out = Out::default();
        let now = sim.abs_ms();
        let model = &mut sim.repl;
        model.nodes[node].restart(now, &mut model.raft_dice, &mut out);
        let gen = model.node_gen[node];
        let at = model.nodes[node].election_deadline_ms - EPOCH_MS;
        sim.push(at, Ev::Election { node, gen });
        sim.after_node(node, out);
        true
    }

    fn settle(_sim: &mut Sim<Model>) {}
}

impl Sim<Model> {
    fn deliver(&mut self, from: usize, to: usize, msg: Msg) {
        if self.deferred_for_pause(to, Ev::Net { from, to, msg: msg.clone() }) {
            return;
        }
        if !self.sites[to].up {
            return;
        }
        let msg = self.maybe_break_dedup(to, msg);
        let mut out = Out::default();
        let now = self.abs_ms();
        let model = &mut self.repl;
        model.nodes[to].heard(from, now);
        model.nodes[to].handle(now, msg, &mut model.raft_dice, &mut out);
        self.after_node(to, out);
    }

    fn election_timer(&mut self, node: usize, gen: u64) {
        if gen != self.repl.node_gen[node] || !self.sites[node].up {
            return;
        }
        if self.deferred_for_pause(node, Ev::Election { node, gen }) {
            return;
        }
        let mut out = Out::default();
        let now = self.abs_ms();
        let model = &mut self.repl;
        model.nodes[node].on_election_timer(now, &mut model.raft_dice, &mut out);
        self.after_node(node, out);
        let next = if self.repl.nodes[node].is_leader() {
            self.now_ms + self.repl.timing.election_max_ms
        } else {
            self.repl.nodes[node].election_deadline_ms - EPOCH_MS
        };
        self.push(next.max(self.now_ms + 1), Ev::Election { node, gen });
    }

    /// Whether a leader's timer (heartbeat, duty) is still its own: same process, same term.
    fn leads_still(&self, node: usize, term: u64, gen: u64) -> bool {
        gen == self.repl.node_gen[node] && self.repl.nodes[node].is_leader() && self.repl.nodes[node].term == term
    }

    fn heartbeat(&mut self, node: usize, term: u64, gen: u64) {
        if !self.leads_still(node, term, gen) {
            return;
        }
        if self.deferred_for_pause(node, Ev::Heartbeat { node, term, gen }) {
            return;
        }
        let mut out = Out::default();
        self.repl.nodes[node].broadcast(true, &mut out);
        self.after_node(node, out);
        self.push(self.now_ms + self.repl.timing.heartbeat_ms, Ev::Heartbeat { node, term, gen });
    }

    fn tick_duty(&mut self, node: usize, term: u64, gen: u64) {
        if !self.leads_still(node, term, gen) {
            return;
        }
        if self.deferred_for_pause(node, Ev::TickDuty { node, term, gen }) {
            return;
        }
        let mut out = Out::default();
        let now = self.abs_ms();
        self.repl.nodes[node].tick_duty(now, self.cfg.health_thresholds(), &mut out);
        self.after_node(node, out);
        self.push(self.now_ms + TICK_MS, Ev::TickDuty { node, term, gen });
    }

    fn disk_sync(&mut self, node: usize, gen: u64) {
        if gen != self.repl.node_gen[node] {
            return;
        }
        if self.deferred_for_pause(node, Ev::Sync { node, gen }) {
            return;
        }
        self.repl.disks[node].sync_scheduled = false;
        let mut out = Out::default();
        self.repl.nodes[node].on_sync(&mut out);
        self.after_node(node, out);
    }

    fn flush(&mut self, node: usize, gen: u64) {
        if gen != self.repl.node_gen[node] {
            return;
        }
        if self.deferred_for_pause(node, Ev::Flush { node, gen }) {
            return;
        }
        self.repl.disks[node].flush_scheduled = false;
        let mut out = Out::default();
        self.repl.nodes[node].flush(&mut out);
        self.after_node(node, out);
    }

    /// Planted bug NoDedupTable, on a proposal forwarded to the leader.
    fn maybe_break_dedup(&mut self, to: usize, msg: Msg) -> Msg {
        if self.cfg.bug != PlantedBug::NoDedupTable || !self.repl.nodes[to].is_leader() {
            return msg;
        }
        match msg {
            Msg::Forward { mut command, hops } => {
                self.repl.break_dedup(&mut command);
                Msg::Forward { command, hops }
            }
            other => other,
        }
    }

    /// Acts on what one handler of node `node` produced, in this order: counters and
    /// violations, leadership, messages, applied entries, snapshots, disk work.
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
            self.became_leader(node, term);
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
        self.schedule_disk(node, want_sync, want_flush);
    }

    fn became_leader(&mut self, node: usize, term: u64) {
        self.coverage.leader_changes += 1;
        self.checker.leader_elected(self.now_ms, term, node);
        let gen = self.repl.node_gen[node];
        self.push(self.now_ms + self.repl.timing.heartbeat_ms, Ev::Heartbeat { node, term, gen });
        self.push(self.now_ms, Ev::TickDuty { node, term, gen });
    }

    fn schedule_disk(&mut self, node: usize, want_sync: bool, want_flush: bool) {
        let gen = self.repl.node_gen[node];
        if want_sync && !self.repl.disks[node].sync_scheduled {
            self.repl.disks[node].sync_scheduled = true;
            let at = self.now_ms + self.repl.raft_dice.range(DISK_SYNC_MIN_MS, DISK_SYNC_MAX_MS);
            self.push(at, Ev::Sync { node, gen });
        }
        if want_flush && !self.repl.disks[node].flush_scheduled {
            self.repl.disks[node].flush_scheduled = true;
            self.push(self.now_ms, Ev::Flush { node, gen });
        }
    }

    /// A message on the faulty network: hashed, then maybe dropped (cut link, loss, a lossy
    /// spell), delayed, maybe duplicated.
    fn send(&mut self, from: usize, to: usize, msg: Msg) {
        self.hash.u64(((from as u64) << 8) | to as u64);
        self.hash.u64(msg.kind());
        let model = &mut self.repl;
        if model.blocked[from][to] || model.net_dice.chance(model.loss) {
            return;
        }
        let spell = model.site_loss[from].max(model.site_loss[to]);
        if spell > 0.0 && model.net_dice.chance(spell) {
            return;
        }
        let delay = if model.faults {
            model.net_dice.range(NET_DELAY_MIN_MS, NET_DELAY_MAX_MS)
        } else {
            (NET_DELAY_MIN_MS + NET_DELAY_MAX_MS) / 2
        };
        if model.net_dice.chance(model.duplicate) {
            let again = delay + model.net_dice.range(1, 200);
            self.push(self.now_ms + again, Ev::Net { from, to, msg: msg.clone() });
        }
        self.push(self.now_ms + delay, Ev::Net { from, to, msg });
    }
}
