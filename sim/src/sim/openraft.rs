//! lineup-cluster's openraft nodes (`real::RealCluster`) as the federation's replication:
//! the cluster runs in its paused-clock runtime up to the simulator's next event, a slice
//! at a time, and what it applied and restored is taken in before the event. Each site
//! also runs its history side and its Redis projection, fed from its node's apply stream;
//! after the drain both must converge.

use lineup_core::{ApplyIndex, Command, CommandBody, Effect, Routing, SiteId};
use std::collections::BTreeSet;
use std::rc::Rc;

use super::events::Ev;
use super::replication::{Advance, Replication};
use super::Sim;
use crate::applied::{self, AppliedEntry};
use crate::config::{PlantedBug, SimConfig};
use crate::history::SiteHistory;
use crate::projection::{self as live, SiteProjection};
use crate::real::{Observed, RealCluster, Record};
use crate::rng::Dice;

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

pub(crate) struct Openraft {
    cluster: RealCluster,
    sites: usize,
    /// Each site's history side (outbox, drainer, simulated database).
    histories: Vec<SiteHistory>,
    /// Each site's Redis projection.
    projections: Vec<SiteProjection>,
    /// (term, node) leaders already counted.
    leaders_seen: BTreeSet<(u64, usize)>,
    /// The highest log index each node has applied (re-applications after a restart are
    /// replays).
    applied_high: Vec<u64>,
}

impl Openraft {
    /// One applied command reaches its site's history outbox and Redis projection as the
    /// production node hands it over (effects for that site; a config change rebuilds the
    /// projection's memberships).
    fn feed_stores(&mut self, record: &Record) {
        let site_id = SiteId(record.node as u64 + 1);
        let for_site: Vec<Effect> = record.applied.effects.iter().filter(|e| e.is_for(site_id)).cloned().collect();
        if !for_site.is_empty() {
            self.projections[record.node].submit(record.apply_index, &for_site);
            self.histories[record.node].submit(record.apply_index, for_site);
        }
        if matches!(record.command.body, CommandBody::ApplyConfig(_)) {
            self.projections[record.node].request_rebuild();
        }
    }

    /// Each site's history, opened on the cluster's runtime.
    fn open_histories(cluster: &RealCluster, cfg: &SimConfig) -> Result<Vec<SiteHistory>, String> {
        let lossy = cfg.bug == PlantedBug::LossyDatabase;
        cluster.in_runtime(|| {
            (0..cfg.sites)
                .map(|i| SiteHistory::new(cfg.seed.wrapping_mul(31) + i as u64, lossy))
                .collect::<Result<Vec<_>, _>>()
        })
    }

    /// Each site's Redis projection, started on the cluster's runtime.
    fn start_projections(cluster: &RealCluster, cfg: &SimConfig) -> Vec<SiteProjection> {
        cluster.in_runtime(|| {
            (0..cfg.sites)
                .map(|i| {
                    let mut projection = SiteProjection::new(cfg.seed.wrapping_mul(37) + i as u64);
                    projection.redis.set_lossy(cfg.bug == PlantedBug::LossyRedis);
                    projection.start(cluster.state_source(i));
                    projection
                })
                .collect::<Vec<_>>()
        })
    }
}

impl Replication for Openraft {
    const SHORT_FAULT_KINDS: usize = 11;

    fn build(cfg: &SimConfig, bootstrap: Rc<Vec<Command>>, _net: Dice, _raft: Dice) -> Result<Openraft, String> {
        let n = cfg.sites;
        let thresholds = cfg.health_thresholds();
        let cluster = RealCluster::new(cfg.seed, n, cfg.faults, thresholds, &bootstrap)?;
        let histories = Openraft::open_histories(&cluster, cfg)?;
        let projections = Openraft::start_projections(&cluster, cfg);
        Ok(Openraft {
            cluster,
            sites: n,
            histories,
            projections,
            leaders_seen: BTreeSet::new(),
            applied_high: vec![0; n],
        })
    }

    fn read<T>(&self, node: usize, read: impl FnOnce(&Routing) -> T) -> T {
        self.cluster.read(node, read)
    }

    fn leads(&self, node: usize) -> bool {
        self.cluster.view(node).leader
    }

    fn applied(&self, node: usize) -> u64 {
        self.cluster.view(node).last_applied
    }

    /// The leader's applied index stands for its commit index (openraft applies on the
    /// leader as soon as it commits).
    fn commit(&self, leader: usize) -> u64 {
        self.cluster.view(leader).last_applied
    }

    fn log_entries(&self, node: usize) -> usize {
        self.cluster.view(node).log_entries as usize
    }

    fn set_loss(&mut self, drop_percent: u8, duplicate_percent: u8) {
        self.cluster.set_loss(drop_percent, duplicate_percent);
    }

    fn set_site_loss(&mut self, node: usize, drop_percent: u8) {
        self.cluster.set_site_loss(node, drop_percent);
    }

    fn cut(&mut self, from: usize, to: usize) {
        self.cluster.cut(from, to);
    }

    fn mend(&mut self, from: usize, to: usize) {
        self.cluster.mend(from, to);
    }

    /// A real node cannot be frozen inside the shared runtime: its links are held instead
    /// (nothing in or out until it resumes).
    fn hold(&mut self, node: usize) {
        for other in (0..self.sites).filter(|o| *o != node) {
            self.cluster.cut(node, other);
            self.cluster.cut(other, node);
        }
    }

    fn release(&mut self, node: usize) {
        for other in (0..self.sites).filter(|o| *o != node) {
            self.cluster.mend(node, other);
            self.cluster.mend(other, node);
        }
    }

    fn set_database_up(&mut self, site: usize, up: bool) {
        self.histories[site].database.set_up(up);
    }

    fn set_redis_up(&mut self, site: usize, up: bool) {
        self.projections[site].redis.set_up(up);
    }

    fn heal(&mut self) {
        self.cluster.mend_all();
        self.cluster.set_loss(0, 0);
        for history in &self.histories {
            history.database.set_up(true);
        }
        for projection in &self.projections {
            projection.redis.set_up(true);
        }
    }

    fn crash(&mut self, node: usize) -> u64 {
        let lost = self.cluster.crash(node);
        self.histories[node].crash();
        if let Some(projection) = self.projections[node].crash() {
            self.cluster.block_on(projection.stop());
        }
        lost
    }

    /// Openraft's nodes elect on their own.
    fn start_node(_sim: &mut Sim<Openraft>, _node: usize) {}

    fn advance(sim: &mut Sim<Openraft>, next_ms: u64) -> Advance {
        let target = next_ms.min(sim.now_ms + REAL_SLICE_MS);
        sim.repl.cluster.advance_to(target);
        if target > sim.now_ms {
            sim.now_ms = target;
            sim.world.advance_to(sim.now_ms);
        }
        if sim.absorb(None) {
            sim.route_world_outputs();
            sim.step_checks();
            return if sim.checker.stop() { Advance::Stop } else { Advance::Again };
        }
        if target < next_ms {
            Advance::Again
        } else {
            Advance::Event
        }
    }

    fn node_event(_sim: &mut Sim<Openraft>, ev: Ev) {
        unreachable!("openraft's nodes schedule no simulator events: {ev:?}");
    }

    fn propose(sim: &mut Sim<Openraft>, node: usize, command: Command) {
        sim.repl.cluster.propose(node, command);
    }

    fn restart(sim: &mut Sim<Openraft>, node: usize) -> bool {
        let Openraft { cluster, histories, projections, .. } = &mut sim.repl;
        let history = &mut histories[node];
        if let Err(e) = cluster.restart(node).and_then(|()| cluster.in_runtime(|| history.open())) {
            sim.checker.violation(sim.now_ms, format!("I7 node {node} did not restart: {e}"));
            return false;
        }
        let projection = &mut projections[node];
        cluster.in_runtime(|| projection.start(cluster.state_source(node)));
        // Its own snapshot restore at start is not an install from the leader.
        sim.absorb(Some(node));
        true
    }

    fn settle(sim: &mut Sim<Openraft>) {
        sim.stores_converge();
    }
}

impl Sim<Openraft> {
    /// Takes in what the real nodes applied and restored since the last call, and the
    /// leaders they report; returns whether anything was applied or restored. A restore on
    /// `starting` is that node's own snapshot at start, not an install from the leader.
    fn absorb(&mut self, starting: Option<usize>) -> bool {
        let observed = self.repl.cluster.drain();
        if self.repl.cluster.overflowed() > 0 {
            let lost = self.repl.cluster.overflowed();
            self.checker.violation(self.now_ms, format!("I8 {lost} observations lost (bound)"));
        }
        self.count_leaders();
        let any = !observed.is_empty();
        // Commands of one entry arrive together (one apply call): group them back.
        // (node, log index, its commands' records)
        let mut entry: Option<(usize, u64, Vec<Record>)> = None;
        for item in observed {
            match item {
                Observed::Applied(record) => {
                    self.repl.feed_stores(&record);
                    let log_index = ApplyIndex::from_raw(record.apply_index).raft_log_index();
                    let same = entry.as_ref().is_some_and(|(n, l, _)| *n == record.node && *l == log_index);
                    if !same {
                        if let Some((node, log_index, records)) = entry.take() {
                            self.entry_applied(node, log_index, records);
                        }
                        entry = Some((record.node, log_index, Vec::new()));
                    }
                    if let Some((_, _, records)) = entry.as_mut() {
                        records.push(record);
                    }
                }
                Observed::Restored { node } => {
                    if let Some((node, log_index, records)) = entry.take() {
                        self.entry_applied(node, log_index, records);
                    }
                    self.restored(node, starting);
                }
            }
        }
        if let Some((node, log_index, records)) = entry.take() {
            self.entry_applied(node, log_index, records);
        }
        any
    }

    /// Counted, not checked per term: openraft 0.9 (without `single-term-leader`)
    /// identifies a leader by (term, node id), so two nodes may lead in one term, each
    /// under its own leader id. Safety is checked where it matters: every node applies
    /// the same entry at every index (I5 digests) and ends in the same state.
    fn count_leaders(&mut self) {
        let views: Vec<crate::real::RaftView> = (0..self.cfg.sites).map(|i| self.repl.cluster.view(i)).collect();
        for (i, view) in views.iter().enumerate() {
            if view.leader && self.sites[i].up && self.repl.leaders_seen.insert((view.term, i)) {
                self.coverage.leader_changes += 1;
            }
        }
    }

    /// A node's state was replaced by a snapshot.
    fn restored(&mut self, node: usize, starting: Option<usize>) {
        if starting != Some(node) && self.sites[node].up {
            self.coverage.snapshots_installed += 1;
            self.note(|| format!("node {node} installed a snapshot"));
            // The entries the snapshot covers never reach this site as effects: the
            // projection rebuilds, as the production node has it do (lineup/src/node.rs),
            // and site control reconciles.
            self.repl.projections[node].request_rebuild();
            self.reconcile(node);
        }
    }

    fn entry_applied(&mut self, node: usize, log_index: u64, records: Vec<Record>) {
        let mut commands = Vec::with_capacity(records.len());
        let mut applied = Vec::with_capacity(records.len());
        let mut order_issues = Vec::new();
        for record in records {
            commands.push(record.command);
            applied.push(record.applied);
            order_issues.extend(record.order_issue);
        }
        // The term is not visible inside apply; index, commands and results identify the entry.
        let digest = applied::entry_digest(0, log_index, &commands, &applied);
        let applied_high = &mut self.repl.applied_high[node];
        let replay = log_index <= *applied_high;
        *applied_high = (*applied_high).max(log_index);
        let entry =
            AppliedEntry { log_index, term: 0, commands: Rc::new(commands), applied, digest, replay, order_issues };
        self.on_applied(node, entry);
    }

    /// After the drain: history and the Redis projections get time to catch up (what the
    /// nodes apply meanwhile still reaches them), then every site's database must hold
    /// exactly its history and every site's Redis must equal a fresh rebuild from its
    /// node's state.
    fn stores_converge(&mut self) {
        let settled_ms = self.now_ms + HISTORY_SETTLE_MS;
        let mut at_ms = self.now_ms;
        while at_ms < settled_ms {
            at_ms = (at_ms + SETTLE_SLICE_MS).min(settled_ms);
            self.repl.cluster.advance_to(at_ms);
            for item in self.repl.cluster.drain() {
                if let Observed::Applied(record) = item {
                    self.repl.feed_stores(&record);
                }
            }
        }
        let cluster = &self.repl.cluster;
        let references: Vec<live::ReferenceBuild> =
            (0..self.cfg.sites).map(|i| cluster.in_runtime(|| cluster.read(i, live::reference))).collect();
        cluster.advance_to(settled_ms + REFERENCE_REBUILD_MS);
        self.histories_converged();
        self.projections_converged(&references);
    }

    fn histories_converged(&mut self) {
        for (i, history) in self.repl.histories.iter().enumerate() {
            self.coverage.history_rows += history.rows() as u64;
            let problems = history.divergence();
            if !problems.is_empty() {
                self.checker.violation(
                    self.now_ms,
                    format!("I2 site {}'s history has not converged after the drain: {problems:?}", i + 1),
                );
            }
        }
    }

    fn projections_converged(&mut self, references: &[live::ReferenceBuild]) {
        for (i, (projection, reference)) in self.repl.projections.iter().zip(references).enumerate() {
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
}
