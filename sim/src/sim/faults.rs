//! Fault injection: the short faults (partitions, swizzle-clog, crashes, leader pauses, ARI
//! drops, loss, effect redelivery, store outages) on the fault stream, the long faults
//! (long outages, slow reconnects) on their own, each fault's heal, crash and restart, and
//! the end of the fault phase.

use lineup_core::{CallStatus, Effect};
use lineup_site::Input;

use super::events::{Ev, Heal};
use super::replication::Replication;
use super::sites::{new_controller, SiteRt};
use super::{Sim, LIVENESS_BOUND_MS};
use crate::config::{FAULT_KIND_NAMES, LONG_FAULT_KIND_FIRST};

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

impl<R: Replication> Sim<R> {
    /// Whether any long fault kind is enabled (none: their stream is never scheduled, and
    /// the run is the one from before they existed).
    pub(super) fn long_faults_on(&self) -> bool {
        (LONG_FAULT_KIND_FIRST..FAULT_KIND_NAMES.len()).any(|k| self.cfg.fault_kinds & (1 << k) != 0)
    }

    pub(super) fn fault_tick(&mut self) {
        if self.faults_on {
            self.fault();
            let at = self.now_ms + self.fault_dice.exponential_ms(FAULT_GAP_MEAN_MS);
            self.push(at, Ev::Fault);
        }
    }

    pub(super) fn long_fault_tick(&mut self) {
        if self.faults_on {
            self.long_fault();
            let at = self.now_ms + self.long_dice.exponential_ms(LONG_FAULT_GAP_MEAN_MS);
            self.push(at, Ev::LongFault);
        }
    }

    /// One short fault: its kind, victim and length are drawn, then it starts (and its heal
    /// is scheduled).
    fn fault(&mut self) {
        let n = self.cfg.sites;
        let d = &mut self.fault_dice;
        let kind = d.pick(R::SHORT_FAULT_KINDS);
        if self.cfg.fault_kinds & (1 << kind) == 0 {
            return;
        }
        let victim = d.pick(n);
        let len = 1_000 + d.exponential_ms(6_000.0).min(30_000);
        match kind {
            0 => self.isolate(victim, len),
            1 => self.one_way_partition(victim, len),
            2 => self.swizzle_clog(len),
            3 => {
                // A process crash (node and site control), restarted later; a majority stays.
                let down = self.sites.iter().filter(|s| !s.up).count();
                if self.sites[victim].up && (down + 1) * 2 < n + 1 {
                    self.crash(victim);
                    self.push(self.now_ms + len, Ev::Heal(Heal::Restart(victim)));
                }
            }
            4 => self.pause_leader(len),
            5 => {
                // The ARI events socket drops; events are lost until it reconnects.
                if self.sites[victim].up && !self.sites[victim].deaf {
                    self.sites[victim].deaf = true;
                    self.push(self.now_ms + len, Ev::Heal(Heal::Hear(victim)));
                }
            }
            6 => {
                self.repl.set_loss(20, 5);
                self.push(self.now_ms + len, Ev::Heal(Heal::Loss));
            }
            7 => self.redeliver_effects(victim),
            9 => {
                // The site's history database stops answering (a PostgreSQL outage).
                self.repl.set_database_up(victim, false);
                self.coverage.database_outages += 1;
                self.push(self.now_ms + len, Ev::Heal(Heal::Database(victim)));
            }
            10 => {
                // The site's Redis stops answering.
                self.repl.set_redis_up(victim, false);
                self.coverage.redis_outages += 1;
                self.push(self.now_ms + len, Ev::Heal(Heal::Redis(victim)));
            }
            _ => self.crash_leader(len),
        }
        let kind_copy = kind;
        self.note(|| format!("fault kind {kind_copy} victim {victim} for {len} ms"));
    }

    /// Symmetric: isolate one site.
    fn isolate(&mut self, victim: usize, len: u64) {
        let links = all_links_of(victim, self.cfg.sites);
        self.block(&links);
        self.coverage.partitions += 1;
        self.push(self.now_ms + len, Ev::Heal(Heal::Links(links)));
    }

    /// One-way: the victim hears but is not heard, or the reverse.
    fn one_way_partition(&mut self, victim: usize, len: u64) {
        let out_only = self.fault_dice.chance(0.5);
        let links: Vec<(usize, usize)> = (0..self.cfg.sites)
            .filter(|o| *o != victim)
            .map(|o| if out_only { (victim, o) } else { (o, victim) })
            .collect();
        self.block(&links);
        self.coverage.one_way_partitions += 1;
        self.push(self.now_ms + len, Ev::Heal(Heal::Links(links)));
    }

    /// Swizzle-clog: links stop one by one, then return one by one in random order.
    fn swizzle_clog(&mut self, len: u64) {
        let n = self.cfg.sites;
        let d = &mut self.fault_dice;
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

    /// The leader stops the world for a while (GC, SIGSTOP).
    fn pause_leader(&mut self, len: u64) {
        if let Some(leader) = (0..self.cfg.sites).find(|i| self.is_leader(*i) && self.sites[*i].up) {
            self.sites[leader].paused_until_ms = self.now_ms + len;
            self.repl.hold(leader);
            self.coverage.leader_pauses += 1;
            self.push(self.now_ms + len, Ev::Heal(Heal::Unpause(leader)));
        }
    }

    /// At-least-once effect feed: a site gets a recent window of effects again.
    fn redeliver_effects(&mut self, victim: usize) {
        if self.sites[victim].up {
            let gen = self.sites[victim].gen;
            let batches: Vec<(u64, Vec<Effect>)> = self.sites[victim].recent_effects.iter().cloned().collect();
            for (apply_index, effects) in batches {
                let input = Input::Effects { apply_index, effects };
                self.push(self.now_ms, Ev::Site { site: victim, gen, input });
            }
            self.coverage.effect_redeliveries += 1;
        }
    }

    /// Crash the leader specifically (the most interesting victim).
    fn crash_leader(&mut self, len: u64) {
        let n = self.cfg.sites;
        let down = self.sites.iter().filter(|s| !s.up).count();
        if let Some(leader) = (0..n).find(|i| self.is_leader(*i) && self.sites[*i].up) {
            if (down + 1) * 2 < n + 1 {
                self.crash(leader);
                self.push(self.now_ms + len, Ev::Heal(Heal::Restart(leader)));
            }
        }
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
        let pick = d.next_u64();
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
        if (n - up.len() + 1) * 2 > n {
            return;
        }
        let connected = self.connected_calls_by_site();
        let busy: Vec<usize> = up.iter().copied().filter(|i| connected[*i].0 + connected[*i].1 > 0).collect();
        let among = if busy.is_empty() { &up } else { &busy };
        let victim = among[(pick % among.len() as u64) as usize];
        self.coverage.calls_connected_at_an_outage += connected[victim].0;
        self.coverage.calls_connected_across_an_outage += connected[victim].1;
        if kind == LONG_FAULT_KIND_FIRST {
            let len = long_outage_ms(self.cfg.site_unreachable_after_ms, self.cfg.site_lost_after_ms, past_lost, unit);
            self.long_outage(victim, len, &connected);
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

    fn long_outage(&mut self, victim: usize, len: u64, connected: &[(u64, u64)]) {
        let lost = self.cfg.site_lost_after_ms;
        self.coverage.long_outages += 1;
        if lost > 0 && len >= lost {
            self.coverage.outages_past_site_lost += 1;
        }
        self.crash(victim);
        self.push(self.now_ms + len, Ev::Heal(Heal::Restart(victim)));
        self.note(|| format!("long outage of node {victim} for {len} ms, {connected:?} calls connected"));
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

    pub(super) fn block(&mut self, links: &[(usize, usize)]) {
        for (a, b) in links {
            self.repl.cut(*a, *b);
        }
    }

    fn crash(&mut self, node: usize) {
        self.coverage.crashes += 1;
        self.coverage.log_entries_lost_at_crashes += self.repl.crash(node);
        let s = &mut self.sites[node];
        s.up = false;
        s.gen += 1;
        s.pending.clear();
        s.recent_effects.clear();
        s.paused_until_ms = 0;
    }

    fn restart(&mut self, node: usize) {
        if self.sites[node].up {
            return;
        }
        self.last_restart_ms = self.now_ms;
        let gen = self.sites[node].gen;
        self.sites[node] = SiteRt::new(new_controller(&self.cfg, node, gen), gen);
        if R::restart(self, node) {
            self.reconcile(node);
        }
    }

    pub(super) fn heal_one(&mut self, heal: Heal) {
        match heal {
            Heal::Links(links) => {
                for (a, b) in links {
                    self.repl.mend(a, b);
                }
            }
            Heal::Restart(node) => self.restart(node),
            Heal::SlowRestart { node, cut_for_ms, lossy } => self.slow_restart(node, cut_for_ms, lossy),
            Heal::SiteLoss(node) => self.repl.set_site_loss(node, 0),
            Heal::Unpause(node) => {
                self.sites[node].paused_until_ms = 0;
                self.repl.release(node);
            }
            Heal::Hear(site) => {
                if self.sites[site].deaf {
                    self.sites[site].deaf = false;
                    self.coverage.ari_reconnects += 1;
                    self.reconcile(site);
                }
            }
            Heal::Database(site) => self.repl.set_database_up(site, true),
            Heal::Redis(site) => self.repl.set_redis_up(site, true),
            Heal::Loss => {
                if self.faults_on {
                    self.repl.set_loss(1, 1);
                }
            }
        }
    }

    /// A slow reconnect's restart: the node comes back with its links lossy or cut for
    /// `cut_for_ms` (unless the fault phase is over).
    fn slow_restart(&mut self, node: usize, cut_for_ms: u64, lossy: bool) {
        if self.faults_on && !self.sites[node].up {
            if lossy {
                self.repl.set_site_loss(node, SLOW_RECONNECT_LOSS_PERCENT);
                self.push(self.now_ms + cut_for_ms, Ev::Heal(Heal::SiteLoss(node)));
            } else {
                let links = all_links_of(node, self.cfg.sites);
                self.block(&links);
                self.push(self.now_ms + cut_for_ms, Ev::Heal(Heal::Links(links)));
            }
        }
        self.restart(node);
    }

    /// The fault phase ends: everything heals, arrivals stop, and the run must make
    /// progress (liveness mode) and drain.
    pub(super) fn heal_all(&mut self) {
        self.faults_on = false;
        self.arrivals_on = false;
        self.healed_at_ms = Some(self.now_ms);
        self.repl.heal();
        for i in 0..self.cfg.sites {
            self.sites[i].paused_until_ms = 0;
            if !self.sites[i].up {
                self.restart(i);
            }
            if self.sites[i].deaf {
                self.heal_one(Heal::Hear(i));
            }
        }
        self.operators_return();
        self.note(|| "heal: faults stop, arrivals stop".into());
        self.push(self.now_ms + LIVENESS_BOUND_MS, Ev::EndOfHeal);
    }
}

/// Both directions of every link between `node` and the other sites.
fn all_links_of(node: usize, sites: usize) -> Vec<(usize, usize)> {
    (0..sites).filter(|o| *o != node).flat_map(|o| [(node, o), (o, node)]).collect()
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
