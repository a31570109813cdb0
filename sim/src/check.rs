//! The invariant checkers. Ground truth is the stand-in's view
//! (who hears whom, which channels are left); the committed log is checked against itself
//! across nodes.
//!
//! - I1: no operator hears two callers, no caller hears two operators, no operator hears
//!   another operator (stand-in audio paths, after every step that changed a bridge or a
//!   channel's state), plus the core's own self-check on every node every `CHECK_EVERY_MS`.
//! - I2: every call that entered the queue ends exactly once; after the heal and drain no
//!   caller channel is left and no site tracks a caller.
//! - I3: when an offer is made, no waiting caller eligible for that operator has an earlier
//!   order key (checked right after the command that made it, on the first node to apply
//!   it). Explicit exceptions: callback promises still inside their retry delay, and callers
//!   of a site that is unreachable (nothing is offered across it).
//! - I4: every committed callback promise ends (served, or failed after bounded attempts).
//! - I5: at most one leader per term; every node applies the same entry (digest of commands,
//!   results and offers) at every index; snapshots taken at one index are byte-identical;
//!   no committed entry is ever overwritten.
//! - I7: after the heal a leader exists and every node catches up within a bound; no queue
//!   keeps a waiting caller next to an idle eligible operator beyond a bound.
//! - I8: pending events, log entries, proposals per site and the stand-in's buffers stay
//!   under their limits.

use lineup_ari::{ChannelId, EventKind};
use lineup_core::{Applied, CallId, CallStatus, CommandBody, Effect, OperatorId, Response, Routing};
use lineup_pbx_sim::{AudioPath, BoxIndex, PbxWorld};
use std::collections::{BTreeMap, BTreeSet};

use crate::applied::AppliedEntry;
use crate::report::CallStats;

/// Violations a run keeps (the count goes on).
pub const VIOLATIONS_KEPT_MAX: usize = 20;

fn is_caller_name(name: &str) -> bool {
    name.starts_with("PJSIP/c") || name.starts_with("PJSIP/+")
}

fn is_operator_name(name: &str) -> bool {
    name.starts_with("PJSIP/desk-") || name.starts_with("PJSIP/phone-")
}

/// The operator id in an operator channel's name (`PJSIP/desk-3001-00000001`: `3001`).
fn operator_of_channel(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("PJSIP/desk-").or_else(|| name.strip_prefix("PJSIP/phone-"))?;
    Some(rest.rsplit_once('-').map_or(rest, |(id, _)| id))
}

/// The callers a channel hears in the stand-in (through bridges and trunks).
fn callers_heard(world: &PbxWorld, site: usize, channel: &ChannelId) -> Vec<String> {
    match world.audio_path(BoxIndex(site), channel) {
        Some(AudioPath::Connected { parties }) => {
            parties.into_iter().map(|(_, name)| name).filter(|name| is_caller_name(name)).collect()
        }
        _ => Vec::new(),
    }
}

/// The operators a channel hears in the stand-in.
fn operators_heard(world: &PbxWorld, site: usize, channel: &ChannelId) -> Vec<String> {
    match world.audio_path(BoxIndex(site), channel) {
        Some(AudioPath::Connected { parties }) => {
            parties.into_iter().map(|(_, name)| name).filter(|name| is_operator_name(name)).collect()
        }
        _ => Vec::new(),
    }
}

pub struct Checker {
    stop_first: bool,
    pub violations: Vec<String>,
    violation_count: u64,
    leaders: BTreeMap<u64, usize>,
    digests: BTreeMap<u64, u64>,
    snapshots: BTreeMap<u64, u64>,
    connected: BTreeSet<CallId>,
    callback_offers: BTreeSet<CallId>,
    enqueued: BTreeSet<CallId>,
    ended: BTreeMap<CallId, u32>,
    open_calls: usize,
    promised: BTreeMap<CallId, u64>,
    waits: BTreeMap<CallId, u64>,
    operator_channels: BTreeSet<(usize, ChannelId)>,
    /// The same channels by operator id (desk and ring-mode phone legs).
    operator_legs: BTreeMap<String, BTreeSet<(usize, ChannelId)>>,
    /// Offers the core cancelled, by call (until the call ends): see
    /// `Coverage::double_bookings_after_cancel`.
    cancelled_offers: BTreeMap<CallId, BTreeSet<OperatorId>>,
    /// Double bookings of that known kind seen so far.
    pub double_bookings_after_cancel: u64,
    callers_in_stasis: BTreeSet<(usize, ChannelId)>,
    bridges_changed: bool,
    starving_since: BTreeMap<String, u64>,
    pub calls: CallStats,
}

impl Checker {
    pub fn new(stop_first: bool) -> Checker {
        Checker {
            stop_first,
            violations: Vec::new(),
            violation_count: 0,
            leaders: BTreeMap::new(),
            digests: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            connected: BTreeSet::new(),
            callback_offers: BTreeSet::new(),
            enqueued: BTreeSet::new(),
            ended: BTreeMap::new(),
            open_calls: 0,
            promised: BTreeMap::new(),
            waits: BTreeMap::new(),
            operator_channels: BTreeSet::new(),
            operator_legs: BTreeMap::new(),
            cancelled_offers: BTreeMap::new(),
            double_bookings_after_cancel: 0,
            callers_in_stasis: BTreeSet::new(),
            bridges_changed: false,
            starving_since: BTreeMap::new(),
            calls: CallStats::default(),
        }
    }

    pub fn violation(&mut self, now_ms: u64, what: String) {
        self.violation_count += 1;
        if self.violations.len() < VIOLATIONS_KEPT_MAX {
            self.violations.push(format!("t={now_ms}ms {what}"));
        }
    }

    pub fn stop(&self) -> bool {
        self.stop_first && self.violation_count > 0
    }

    pub fn is_connected(&self, call: &CallId) -> bool {
        self.connected.contains(call)
    }

    /// True the first time a call is seen connected.
    pub fn mark_connected(&mut self, call: &CallId) -> bool {
        self.connected.insert(call.clone())
    }

    /// When the promise of a callback now connected was committed.
    pub fn callback_promised_at(&self, call: &CallId) -> Option<u64> {
        self.promised.get(call).copied()
    }

    pub fn first_callback_offer(&mut self, call: &CallId) -> bool {
        self.callback_offers.insert(call.clone())
    }

    pub fn leader_elected(&mut self, now_ms: u64, term: u64, node: usize) {
        if let Some(other) = self.leaders.insert(term, node) {
            if other != node {
                self.violation(now_ms, format!("I5 two leaders in term {term}: nodes {other} and {node}"));
            }
        }
    }

    /// Compares an applied entry with what the first node applied at that index; returns
    /// whether this is the first application (then the history checks run on it).
    pub fn entry_applied(&mut self, now_ms: u64, node: usize, entry: &AppliedEntry) -> bool {
        for issue in &entry.order_issues {
            self.violation(now_ms, issue.clone());
        }
        match self.digests.get(&entry.log_index) {
            Some(d) if *d == entry.digest => false,
            Some(_) => {
                self.violation(
                    now_ms,
                    format!(
                        "I5 node {node} applied a different entry at index {} (term {})",
                        entry.log_index, entry.term
                    ),
                );
                false
            }
            None => {
                self.digests.insert(entry.log_index, entry.digest);
                for (cmd, applied) in entry.commands.iter().zip(&entry.applied) {
                    self.history(now_ms, &cmd.body, applied);
                }
                true
            }
        }
    }

    fn history(&mut self, now_ms: u64, body: &CommandBody, applied: &Applied) {
        if let (CommandBody::Enqueue(e), Ok(Response::Enqueued { .. })) = (body, &applied.result) {
            if self.enqueued.insert(e.call.clone()) {
                self.open_calls += 1;
            }
        }
        for effect in &applied.effects {
            match effect {
                Effect::CallEnded(record) => {
                    let count = self.ended.entry(record.call.clone()).or_insert(0);
                    *count += 1;
                    if *count > 1 {
                        let what = format!("I2 call {} ended twice (now {:?})", record.call, record.outcome);
                        self.violation(now_ms, what);
                        continue;
                    }
                    if self.enqueued.contains(&record.call) {
                        self.open_calls -= 1;
                    }
                    self.cancelled_offers.remove(&record.call);
                    match &record.outcome {
                        lineup_core::Outcome::Completed { .. } => self.calls.completed += 1,
                        lineup_core::Outcome::Abandoned => self.calls.abandoned += 1,
                        lineup_core::Outcome::CallbackFailed => self.calls.callbacks_failed += 1,
                        _ => self.calls.other_outcomes += 1,
                    }
                    if record.handle_ms.is_some() && record.callback_number.is_none() {
                        self.waits.insert(record.call.clone(), record.wait_ms);
                    }
                }
                Effect::CancelOffer { call, operator, .. } => {
                    self.cancelled_offers.entry(call.clone()).or_default().insert(operator.clone());
                }
                Effect::CallChanged(view)
                    if view.status == CallStatus::CallbackWaiting && !self.promised.contains_key(&view.call) =>
                {
                    self.promised.insert(view.call.clone(), now_ms);
                    self.calls.callbacks_promised += 1;
                }
                _ => {}
            }
        }
    }

    pub fn snapshot(&mut self, now_ms: u64, node: usize, index: u64, hash: u64) {
        match self.snapshots.get(&index) {
            Some(h) if *h != hash => self
                .violation(now_ms, format!("I5 node {node}'s snapshot at index {index} differs from another node's")),
            Some(_) => {}
            None => {
                self.snapshots.insert(index, hash);
            }
        }
    }

    pub fn world_event(&mut self, site: usize, kind: &EventKind) {
        if changes_audio(kind) {
            self.bridges_changed = true;
        }
        match kind {
            EventKind::StasisStart { channel, .. } => {
                if is_operator_name(&channel.name) {
                    self.operator_channels.insert((site, channel.id.clone()));
                    if let Some(id) = operator_of_channel(&channel.name) {
                        self.operator_legs.entry(id.to_string()).or_default().insert((site, channel.id.clone()));
                    }
                } else if is_caller_name(&channel.name) {
                    self.callers_in_stasis.insert((site, channel.id.clone()));
                }
            }
            EventKind::StasisEnd { channel } => {
                self.callers_in_stasis.remove(&(site, channel.id.clone()));
            }
            EventKind::ChannelDestroyed { channel, .. } => {
                self.operator_channels.remove(&(site, channel.id.clone()));
                if let Some(id) = operator_of_channel(&channel.name) {
                    if let Some(legs) = self.operator_legs.get_mut(id) {
                        legs.remove(&(site, channel.id.clone()));
                        if legs.is_empty() {
                            self.operator_legs.remove(id);
                        }
                    }
                }
                self.callers_in_stasis.remove(&(site, channel.id.clone()));
            }
            _ => {}
        }
    }

    pub fn bridges_changed(&mut self) -> bool {
        std::mem::take(&mut self.bridges_changed)
    }

    /// Callers still in the system: channels in Stasis plus calls committed and not ended
    /// (a callback promise has no channel while it waits).
    pub fn live_callers(&self) -> usize {
        self.callers_in_stasis.len() + self.open_calls
    }

    /// What is left, for the drain-bound message.
    pub fn leftovers(&self, routing: &Routing) -> String {
        let stasis: Vec<String> = self.callers_in_stasis.iter().take(4).map(|(s, c)| format!("{s}/{c}")).collect();
        let open: Vec<String> = self
            .enqueued
            .iter()
            .filter(|c| !self.ended.contains_key(*c))
            .take(4)
            .map(|c| format!("{c}: {:?}", routing.call_view(c)))
            .collect();
        format!("{} in Stasis {stasis:?}, {} open calls {open:?}", self.callers_in_stasis.len(), self.open_calls)
    }

    pub fn answered_wait(&self, call: &CallId) -> Option<u64> {
        self.waits.get(call).copied()
    }
}

/// I3, right after one command applied: every offer it made went to the caller first in
/// order among those the operator could take.
pub fn order_check(routing: &Routing, applied: &Applied) -> Option<String> {
    let offers: Vec<(&CallId, &OperatorId)> = applied
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::Offer(o) | Effect::DialCallback(o) => Some((&o.call, &o.operator)),
            _ => None,
        })
        .collect();
    if offers.is_empty() {
        return None;
    }
    let waiting = routing.waiting_calls();
    for (call, operator) in offers {
        let view = routing.call_view(call)?;
        let key = (view.priority, view.order_seq);
        let Some(cfg) = routing.operator_config(operator) else { continue };
        for w in &waiting {
            if !cfg.memberships.contains_key(&w.queue) || (w.priority, w.order_seq) >= key {
                continue;
            }
            if !w.callback && routing.is_site_unreachable(w.entry_site) {
                // Exception: nothing is offered across an unreachable site; its callers wait
                // (keeping their place) until it is heard again.
                continue;
            }
            if w.callback && routing.call_view(&w.call).is_some_and(|v| v.not_before_ms.is_some()) {
                // Exception: a promise after a failed attempt waits out its retry delay and
                // becomes eligible again at the first Tick after it.
                continue;
            }
            return Some(format!(
                "I3 operator {operator} was offered {call} (priority {}, seq {}) while {} (priority {}, seq {}) waited: {:?}",
                key.0,
                key.1,
                w.call,
                w.priority,
                w.order_seq,
                routing.call_view(&w.call)
            ));
        }
    }
    None
}

/// I1 against the stand-in: who each operator's channels actually hear.
pub fn ground_truth_i1(world: &PbxWorld, checker: &mut Checker, now_ms: u64) {
    let mut heard_by: BTreeMap<String, String> = BTreeMap::new();
    let mut problems = Vec::new();
    for (site, channel) in &checker.operator_channels {
        let Some(AudioPath::Connected { parties }) = world.audio_path(BoxIndex(*site), channel) else { continue };
        let me = format!("{site}/{channel}");
        let callers: Vec<&String> = parties.iter().map(|(_, n)| n).filter(|n| is_caller_name(n)).collect();
        if parties.iter().any(|(_, n)| is_operator_name(n)) {
            problems.push(format!("I1 operator channel {me} hears another operator: {parties:?}"));
        }
        if callers.len() > 1 {
            problems.push(format!("I1 operator channel {me} hears {} callers: {callers:?}", callers.len()));
        }
        for c in callers {
            if let Some(other) = heard_by.insert(c.clone(), me.clone()) {
                problems.push(format!("I1 caller {c} hears two operators: {other} and {me}"));
            }
        }
    }
    for p in problems {
        checker.violation(now_ms, p);
    }
}

/// I1 and I2 against the phones, when an applied command's effects are first seen: an
/// operator offered a caller while the stand-in still has them talking to another (a
/// double booking, even where the stand-in would then move their channel quietly from one
/// bridge to the other), and a call booked ended while its caller still talks to an
/// operator (a wrong outcome: the cluster ended a call that both boxes still carry).
/// `caller_leg` finds a call's caller channel (site, channel), `call_of` the call of a
/// caller channel's name.
///
/// One case is counted (`double_bookings_after_cancel`) rather than reported: the
/// operator's previous offer was voided by the core (its deadline passed while the sites'
/// `Connected` was held up, e.g. behind a partition) and its bridge is still up when the new
/// offer is applied. The operator's site takes that bridge down when it applies the
/// `CancelOffer`, which comes before the new offer in log order, so the phones agree again;
/// this check, run at apply time, cannot see that yet. Every other double booking is an I1
/// violation.
pub fn effects_against_phones(
    world: &PbxWorld,
    checker: &mut Checker,
    now_ms: u64,
    applied: &Applied,
    caller_leg: impl Fn(&CallId) -> Option<(usize, ChannelId)>,
    call_of: impl Fn(&str) -> Option<CallId>,
) {
    let mut problems = Vec::new();
    let mut known = 0;
    for effect in &applied.effects {
        match effect {
            Effect::Offer(o) | Effect::DialCallback(o) => {
                let offered = caller_leg(&o.call).and_then(|(site, channel)| {
                    world.list_channels(BoxIndex(site)).ok()?.into_iter().find(|c| c.id == channel).map(|c| c.name)
                });
                let Some(legs) = checker.operator_legs.get(o.operator.as_str()) else { continue };
                for (site, channel) in legs {
                    let others: Vec<String> = callers_heard(world, *site, channel)
                        .into_iter()
                        .filter(|c| Some(c) != offered.as_ref())
                        .collect();
                    let after_cancel = |name: &String| {
                        let call = call_of(name);
                        let cancelled = call.and_then(|call| checker.cancelled_offers.get(&call));
                        cancelled.is_some_and(|operators| operators.contains(&o.operator))
                    };
                    if !others.is_empty() && others.iter().all(after_cancel) {
                        known += 1;
                    } else if !others.is_empty() {
                        problems.push(format!(
                            "I1 operator {} was offered {} while their channel {site}/{channel} still talks to {others:?} in the stand-in (double booked)",
                            o.operator, o.call
                        ));
                    }
                }
            }
            Effect::CallEnded(record) => {
                let Some((site, channel)) = caller_leg(&record.call) else { continue };
                let operators = operators_heard(world, site, &channel);
                if !operators.is_empty() {
                    problems.push(format!(
                        "I2 call {} was booked {:?} while its caller {site}/{channel} still talks to {operators:?} in the stand-in",
                        record.call, record.outcome
                    ));
                }
            }
            _ => {}
        }
    }
    checker.double_bookings_after_cancel += known;
    for p in problems {
        checker.violation(now_ms, p);
    }
}

/// I7 after the heal: a queue must not keep callers waiting next to idle operators.
pub fn starvation(routing: &Routing, checker: &mut Checker, now_ms: u64, bound_ms: u64) {
    let queues: Vec<_> = routing.queue_configs().map(|q| q.id.clone()).collect();
    for q in queues {
        let Some(s) = routing.queue_summary(&q) else { continue };
        let key = q.to_string();
        if s.waiting > s.callbacks_waiting && s.available > 0 {
            let since = *checker.starving_since.entry(key.clone()).or_insert(now_ms);
            if now_ms - since > bound_ms {
                checker.violation(
                    now_ms,
                    format!(
                        "I7 queue {q}: {} waiting beside {} available operators for {} ms (unreachable sites {:?}, waiting {:?})",
                        s.waiting,
                        s.available,
                        now_ms - since,
                        routing.unreachable_sites().collect::<Vec<_>>(),
                        routing.waiting_calls().iter().take(4).map(|w| (w.call.to_string(), w.entry_site, w.callback)).collect::<Vec<_>>()
                    ),
                );
            }
        } else {
            checker.starving_since.remove(&key);
        }
    }
}

/// A node at the end of a run: its applied log index, its core's self-check, its state.
pub struct NodeEnd {
    pub applied: u64,
    pub invariants: Result<(), String>,
    pub state: Vec<u8>,
}

/// After the drain: nothing is left anywhere, and every node agrees.
pub fn final_checks(world: &PbxWorld, nodes: &[NodeEnd], checker: &mut Checker, sites: usize) {
    let now = world.now_ms();
    for site in 0..sites {
        let Ok(channels) = world.list_channels(BoxIndex(site)) else { continue };
        let stuck: Vec<String> =
            channels.iter().filter(|c| !is_operator_name(&c.name)).map(|c| c.name.clone()).take(5).collect();
        if !stuck.is_empty() {
            checker.violation(now, format!("I2 site {} still holds channels after the drain: {stuck:?}", site + 1));
        }
    }
    let open: Vec<String> =
        checker.enqueued.iter().filter(|c| !checker.ended.contains_key(*c)).map(|c| c.to_string()).take(5).collect();
    if !open.is_empty() {
        checker.violation(now, format!("I2 calls never ended: {open:?}"));
    }
    let broken: Vec<String> =
        checker.promised.keys().filter(|c| !checker.ended.contains_key(*c)).map(|c| c.to_string()).take(5).collect();
    if !broken.is_empty() {
        checker.violation(now, format!("I4 callback promises neither kept nor failed: {broken:?}"));
    }
    let top = nodes.iter().map(|n| n.applied).max().unwrap_or(0);
    let mut reference: Option<Vec<u8>> = None;
    for (i, node) in nodes.iter().enumerate() {
        if let Err(e) = &node.invariants {
            checker.violation(now, format!("I1 core self-check on node {i} at the end: {e}"));
        }
        if node.applied != top {
            continue;
        }
        let bytes = &node.state;
        match &reference {
            Some(r) if r != bytes => checker.violation(now, format!("I5 node {i}'s state differs at index {top}")),
            Some(_) => {}
            None => reference = Some(bytes.clone()),
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
