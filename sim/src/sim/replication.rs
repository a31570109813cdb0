//! The replication under the federation: the nodes that hold the routing core, driven
//! through one trait whichever kind they are — the Raft model (`model.rs`), whose messages
//! and timers are simulator events, or lineup-cluster's openraft nodes (`openraft.rs`),
//! which run in their own paused-clock runtime — and what the federation does with each
//! entry a node applies.

use lineup_core::{ApplyIndex, Command, CommandBody, Effect, Routing, SiteId};
use lineup_site::Input;
use std::rc::Rc;

use super::events::Ev;
use super::sites::{Waiter, REDELIVERY_WINDOW_BATCHES};
use super::workload::caller_of_channel_name;
use super::Sim;
use crate::applied::AppliedEntry;
use crate::check;
use crate::config::SimConfig;
use crate::rng::Dice;

/// What the run loop does after the replication ran ahead.
pub(crate) enum Advance {
    /// The run ends (a violation with stop-at-first).
    Stop,
    /// Look at the queue again before handling anything.
    Again,
    /// Handle the next event or stand-in timer.
    Event,
}

/// The nodes that hold the routing core, one per site. Methods taking `sim` drive the
/// simulator (they schedule events, report to the checkers, feed the sites); the others
/// read or change the nodes' own world.
pub(crate) trait Replication: Sized {
    /// Short fault kinds the fault die picks from: kinds 9 and 10 (the history database's
    /// and Redis's outages) need the stores, which run with openraft only, and the model's
    /// runs keep their draws.
    const SHORT_FAULT_KINDS: usize;

    /// The nodes of `cfg.sites` sites, formed and holding `bootstrap`; `net` and `raft` are
    /// the seed's network and Raft streams (only the model draws from them).
    fn build(cfg: &SimConfig, bootstrap: Rc<Vec<Command>>, net: Dice, raft: Dice) -> Result<Self, String>;

    /// Reads node `node`'s applied state.
    fn read<T>(&self, node: usize, read: impl FnOnce(&Routing) -> T) -> T;
    /// Whether the node believes it leads (the caller checks that it is up).
    fn leads(&self, node: usize) -> bool;
    /// The node's last applied log index.
    fn applied(&self, node: usize) -> u64;
    /// The commit index as the leader `leader` knows it.
    fn commit(&self, leader: usize) -> u64;
    /// Log entries the node holds.
    fn log_entries(&self, node: usize) -> usize;

    /// Every message is dropped with `drop_percent` and duplicated with
    /// `duplicate_percent` (0, 0: a clean network).
    fn set_loss(&mut self, drop_percent: u8, duplicate_percent: u8);
    /// Messages from and to `node` are dropped with `drop_percent` (0: its spell ends).
    fn set_site_loss(&mut self, node: usize, drop_percent: u8);
    /// Cuts the directed link `from → to`.
    fn cut(&mut self, from: usize, to: usize);
    fn mend(&mut self, from: usize, to: usize);
    /// A leader pause starts: whatever the node cannot do while frozen.
    fn hold(&mut self, node: usize);
    fn release(&mut self, node: usize);
    fn set_database_up(&mut self, site: usize, up: bool);
    fn set_redis_up(&mut self, site: usize, up: bool);
    /// The fault phase ends: links, loss and stores all mended.
    fn heal(&mut self);
    /// The node's process dies; answers how many appended log entries it lost (appended,
    /// not synced yet).
    fn crash(&mut self, node: usize) -> u64;

    /// Schedules what a node needs at time zero.
    fn start_node(sim: &mut Sim<Self>, node: usize);
    /// Runs the nodes ahead towards `next_ms` (the next event or stand-in timer) and takes
    /// in what they did.
    fn advance(sim: &mut Sim<Self>, next_ms: u64) -> Advance;
    /// One of the model's own events (`Ev::Net` … `Ev::Flush`).
    fn node_event(sim: &mut Sim<Self>, ev: Ev);
    /// Submits `command` at `node`.
    fn propose(sim: &mut Sim<Self>, node: usize, command: Command);
    /// The crashed node starts again (its site is up again already); false if it could
    /// not.
    fn restart(sim: &mut Sim<Self>, node: usize) -> bool;
    /// After the drain, before the final verdict: whatever must converge still does.
    fn settle(sim: &mut Sim<Self>);
}

impl<R: Replication> Sim<R> {
    /// Reads node `node`'s applied state.
    pub(super) fn read<T>(&self, node: usize, read: impl FnOnce(&Routing) -> T) -> T {
        self.repl.read(node, read)
    }

    pub(super) fn is_leader(&self, node: usize) -> bool {
        self.sites[node].up && self.repl.leads(node)
    }

    pub(super) fn propose_on(&mut self, site: usize, command: Command) {
        R::propose(self, site, command);
    }

    /// An entry node `node` applied: checked and acted on by the simulated humans the first
    /// time any node applies it, then answered to the proposals waiting at the node's site
    /// and fed to it as effects (unless it is a replay after a restart).
    pub(super) fn on_applied(&mut self, node: usize, entry: AppliedEntry) {
        let first = self.checker.entry_applied(self.now_ms, node, &entry);
        if first {
            self.first_application(&entry);
        }
        if entry.replay {
            return;
        }
        self.answer_waiters(node, &entry);
        self.feed_site(node, &entry);
    }

    fn first_application(&mut self, entry: &AppliedEntry) {
        self.hash.u64(entry.log_index);
        self.hash.u64(entry.digest);
        for (cmd, applied) in entry.commands.iter().zip(&entry.applied) {
            if !matches!(cmd.body, CommandBody::Tick { .. }) {
                self.ops += 1;
            }
            self.observe(cmd, applied);
            let callers = (&self.callers, &self.caller_by_call);
            let caller_leg = |call: &lineup_core::CallId| {
                let rec = callers.0.get(callers.1.get(call)?)?;
                Some((rec.site, rec.channel.clone()))
            };
            let call_of = |name: &str| callers.0.get(&caller_of_channel_name(name)?).map(|rec| rec.call.clone());
            check::effects_against_phones(&self.world, &mut self.checker, self.now_ms, applied, caller_leg, call_of);
        }
        if self.ops >= self.cfg.ops && self.healed_at_ms.is_none() {
            self.heal_all();
        }
    }

    /// Results for proposals waiting at this site (read from this node's own apply).
    fn answer_waiters(&mut self, node: usize, entry: &AppliedEntry) {
        for (cmd, applied) in entry.commands.iter().zip(&entry.applied) {
            if let Some(Waiter::Site { gen, token }) = self.sites[node].pending.remove(&cmd.id) {
                let input = Input::Proposed { token, result: Ok(applied.result.clone()) };
                self.push(self.now_ms, Ev::Site { site: node, gen, input });
            }
        }
    }

    /// The entry's call-control effects for this site, remembered for redelivery.
    fn feed_site(&mut self, node: usize, entry: &AppliedEntry) {
        let site_id = SiteId(node as u64 + 1);
        let gen = self.sites[node].gen;
        for (pos, applied) in entry.applied.iter().enumerate() {
            let effects: Vec<Effect> =
                applied.effects.iter().filter(|e| e.is_call_control() && e.is_for(site_id)).cloned().collect();
            if effects.is_empty() {
                continue;
            }
            let apply_index = ApplyIndex::new(entry.log_index, pos).get();
            let recent = &mut self.sites[node].recent_effects;
            if recent.len() >= REDELIVERY_WINDOW_BATCHES {
                recent.pop_front();
            }
            recent.push_back((apply_index, effects.clone()));
            self.push(self.now_ms, Ev::Site { site: node, gen, input: Input::Effects { apply_index, effects } });
        }
    }
}
