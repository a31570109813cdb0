//! Property tests of an island's merge: a random day runs on the global state, a random
//! site forks, the majority (which marks the site unreachable at once, as its lease makes
//! it) and the island then run independent random streams, each sending only what its own
//! sites could report, and the island's merge plan is applied to the majority's state.
//! Checked, with `check_invariants` after every command (by the harness):
//!
//! - every merge command is accepted, applied once, twice, or interrupted and resent from
//!   its start;
//! - applied twice, or interrupted then resent, the state is byte for byte the state after
//!   one merge (the comparison run applies a command that changes nothing, with the same
//!   ids and indexes, where the other applies a resent one);
//! - one ended record per call over the whole day: each call the island ended has exactly
//!   one, and none is still held by the global state;
//! - every queue's stats are the majority's plus what the island counted beyond the fork;
//! - before the End, every call of the island the plan carries is held as the island held
//!   it (waiting, or offered or connected with its fork fence and operator), unless the
//!   global state had ended it; and, where every other waiting caller's place is its entry
//!   (no reassignment or overflow moved one), each caller born on the island and still
//!   waiting is ahead of every caller of the same queue and priority who arrived later, and
//!   behind every one who arrived earlier or at once;
//! - a restarted island (its fork restored from the snapshot at the fork, the same commands
//!   replayed at the same indexes, as its journal does) plans the same merge.

mod common;
use common::days::*;
use common::*;
use lineup_core::island::{fork_apply_index, owner};
use lineup_core::island_merge::add_stats;
use lineup_core::stats::Stats;
use lineup_core::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const CASES: u32 = 1_000;
const MEMBERS: [SiteId; 3] = [SiteId(1), SiteId(2), SiteId(3)];
/// A site no day names: `SiteBack` of it is answered done and changes nothing.
const NOBODYS_SITE: SiteId = SiteId(99);

/// Which side sends a command: the island's site, or the majority's sites.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sender {
    Island,
    Majority,
}

/// The state at the fork and the island's site, which decide who may send what.
struct Split {
    at_fork: Routing,
    site: SiteId,
}

impl Split {
    /// Whose is this call now: the island's if it owns the caller or one of its operators
    /// holds the call (its site holds a leg and reports on it).
    fn call_side(&self, routing: &Routing, call: &CallId) -> Sender {
        let Some(view) = routing.call_view(call) else { return Sender::Majority };
        let held_here = view
            .operator
            .as_ref()
            .and_then(|op| routing.operator_view(op))
            .is_some_and(|op| op.site == Some(self.site));
        let party = Party::Caller { call, entry_site: view.entry_site };
        if held_here || owner(&self.at_fork, self.site, party) == Side::Island {
            Sender::Island
        } else {
            Sender::Majority
        }
    }

    fn operator_side(&self, operator: &OperatorId) -> Sender {
        match owner(&self.at_fork, self.site, Party::Operator(operator)) {
            Side::Island => Sender::Island,
            Side::Majority => Sender::Majority,
        }
    }

    fn site_side(&self, site: SiteId) -> Sender {
        if site == self.site {
            Sender::Island
        } else {
            Sender::Majority
        }
    }

    /// May `sender` send `body` (every party it names is its own)?
    fn may_send(&self, routing: &Routing, sender: Sender, body: &CommandBody) -> bool {
        let call = |c: &CallId| self.call_side(routing, c) == sender;
        let operator = |o: &OperatorId| self.operator_side(o) == sender;
        match body {
            CommandBody::Enqueue(e) => self.site_side(e.site) == sender,
            CommandBody::OperatorLogin { operator: o, site, .. }
            | CommandBody::OperatorLoginFrom { operator: o, site, .. } => {
                operator(o) && self.site_side(*site) == sender
            }
            CommandBody::OperatorLogout { operator: o }
            | CommandBody::OperatorState { operator: o, .. }
            | CommandBody::PinRejected { operator: o } => operator(o),
            CommandBody::Pull { operator: o, call: c } => operator(o) && c.as_ref().is_none_or(call),
            CommandBody::Connected { call: c, .. }
            | CommandBody::OfferFailed { call: c, .. }
            | CommandBody::RingNoAnswer { call: c, .. }
            | CommandBody::Completed { call: c, .. }
            | CommandBody::Abandoned { call: c }
            | CommandBody::ExitWithKey { call: c, .. }
            | CommandBody::RequestCallback { call: c, .. }
            | CommandBody::CallbackResult { call: c, .. }
            | CommandBody::Reassign { call: c, .. }
            | CommandBody::ChangePriority { call: c, .. } => call(c),
            CommandBody::SiteLost { site } | CommandBody::SiteUnreachable { site } | CommandBody::SiteBack { site } => {
                sender == Sender::Majority && *site != self.site
            }
            CommandBody::Tick { .. } => true,
            _ => false,
        }
    }
}

/// Where each call entered: the apply index of its Enqueue (its place, unless moved) and
/// the core time.
type Arrivals = BTreeMap<CallId, (u64, u64)>;

/// Runs `actions` on `h` as `sender` may send them, and each command also on `twin` (a
/// restarted island replaying its journal); returns the ids of the calls ended.
fn drive(
    h: &mut Harness,
    split: &Split,
    sender: Sender,
    actions: &[Action],
    calls_made: &mut u64,
    arrivals: &mut Arrivals,
    mut twin: Option<&mut Routing>,
) -> Vec<CallId> {
    let mut ended = Vec::new();
    for action in actions {
        if let Action::Tick { dt_ms } = action {
            h.now_ms += dt_ms;
        }
        let Some(body) = command_for(h, action, calls_made) else { continue };
        if !split.may_send(&h.routing, sender, &body) {
            continue;
        }
        let mut commands = Vec::new();
        if !matches!(body, CommandBody::Tick { .. }) && h.now_ms > h.ticked_ms {
            commands.push(h.command(CommandBody::Tick { now_ms: h.now_ms }));
        }
        commands.push(h.command(body));
        for command in commands {
            ended.extend(ended_calls(&h.apply_cmd(&command).1));
            if let CommandBody::Enqueue(entry) = &command.body {
                arrivals.entry(entry.call.clone()).or_insert((h.index, h.routing.now_ms()));
            }
            if let Some(twin) = twin.as_deref_mut() {
                twin.apply(h.index, &command);
            }
        }
    }
    ended
}

fn ended_calls(effects: &[Effect]) -> Vec<CallId> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::CallEnded(record) => Some(record.call.clone()),
            _ => None,
        })
        .collect()
}

fn copy(h: &Harness) -> Harness {
    Harness {
        routing: h.routing.clone(),
        index: h.index,
        serial: h.serial,
        now_ms: h.now_ms,
        effects: Vec::new(),
        ticked_ms: h.ticked_ms,
    }
}

/// Applies `bodies` (each under fresh ids); every one must be accepted.
fn apply_all(h: &mut Harness, bodies: &[CommandBody], violations: &mut Vec<String>) -> Vec<Effect> {
    let mut effects = Vec::new();
    for body in bodies {
        let (result, applied) = h.apply(body.clone());
        if let Err(e) = result {
            violations.push(format!("{} refused: {e}", body.kind()));
        }
        effects.extend(applied);
    }
    effects
}

fn fillers(count: usize) -> Vec<CommandBody> {
    vec![CommandBody::SiteBack { site: NOBODYS_SITE }; count]
}

fn stats(routing: &Routing) -> BTreeMap<QueueId, Stats> {
    QUEUES.iter().map(|q| QueueId::new(*q)).filter_map(|q| routing.queue_summary(&q).map(|s| (q, s.stats))).collect()
}

/// The merged state has each call's end once, and the stats of both sides.
fn check_merged(
    merged: &Routing,
    ended_in_order: &[CallId],
    ended_on_island: &BTreeSet<CallId>,
    expected_stats: &BTreeMap<QueueId, Stats>,
) -> Vec<String> {
    let mut violations = Vec::new();
    let mut count: BTreeMap<&CallId, usize> = BTreeMap::new();
    for id in ended_in_order {
        *count.entry(id).or_default() += 1;
    }
    violations.extend(count.iter().filter(|(_, n)| **n > 1).map(|(id, n)| format!("{id} ended {n} times")));
    for id in ended_on_island {
        if !count.contains_key(id) {
            violations.push(format!("{id}, ended on the island, has no record"));
        }
        if merged.call_view(id).is_some() {
            violations.push(format!("{id}, ended on the island, is still held"));
        }
    }
    if stats(merged) != *expected_stats {
        violations.push(format!("stats {:?} are not the union {expected_stats:?}", stats(merged)));
    }
    violations
}

/// Applies the plan but its End on a copy of `h` (the state the End would close), checking
/// that the island's calls are held as it held them and that waiting callers born on the
/// island are placed by their arrival among the others.
fn check_calls_before_end(h: &Harness, plan: &[CommandBody], ended: &[CallId], arrivals: &Arrivals) -> Vec<String> {
    let mut violations = Vec::new();
    let mut merging = copy(h);
    let end = plan.len() - 1;
    let first_call = plan.iter().position(|c| matches!(c, CommandBody::IslandMergeCall { .. })).unwrap_or(end);
    apply_all(&mut merging, &plan[..first_call], &mut violations);
    let mut places_are_entries = waiting_in_entry_order(&merging.routing, arrivals);
    apply_all(&mut merging, &plan[first_call..end], &mut violations);
    places_are_entries &= waiting_in_entry_order(&merging.routing, arrivals);
    let r = &merging.routing;
    let mut born_waiting = Vec::new();
    for body in plan {
        let CommandBody::IslandMergeCall { call, .. } = body else { continue };
        let Some(view) = r.call_view(&call.id) else {
            if !ended.contains(&call.id) {
                violations.push(format!("{}, live on the island, is neither merged nor ended", call.id));
            }
            continue;
        };
        let promise = call.callback.is_some();
        let (as_held, fence) = match (&call.state, promise) {
            (model::CallState::Waiting, false) => (CallStatus::Waiting, None),
            (model::CallState::Waiting, true) => (CallStatus::CallbackWaiting, None),
            (model::CallState::Offered { fence, .. }, false) => (CallStatus::Offered, Some(*fence)),
            (model::CallState::Offered { fence, .. }, true) => (CallStatus::CallbackOffered, Some(*fence)),
            (model::CallState::Connected { fence, .. }, false) => (CallStatus::Connected, Some(*fence)),
            (model::CallState::Connected { fence, .. }, true) => (CallStatus::CallbackConnected, Some(*fence)),
        };
        let promise_served_since = promise && matches!(call.state, model::CallState::Waiting);
        if !promise_served_since && (view.status != as_held || view.fence != fence) {
            violations.push(format!(
                "{} merged as {:?} {:?}, held as {as_held:?} {fence:?}",
                call.id, view.status, view.fence
            ));
        }
        if view.status == CallStatus::Waiting && lineup_core::island::is_fork_apply_index(call.fork_number) {
            born_waiting.push((call.id.clone(), call.entered_at_ms, view.queue.clone(), view.priority));
        }
    }
    if !places_are_entries {
        return violations;
    }
    let born: BTreeSet<&CallId> = born_waiting.iter().map(|(id, ..)| id).collect();
    for (id, arrival_ms, queue, priority) in &born_waiting {
        let others = r.calls().filter(|v| v.status == CallStatus::Waiting && !born.contains(&v.call));
        for other in others.filter(|v| v.queue == *queue && v.priority == *priority) {
            let Some((_, other_arrival_ms)) = arrivals.get(&other.call).copied() else { continue };
            let ahead = r.position(id) < r.position(&other.call);
            if ahead != (*arrival_ms < other_arrival_ms) {
                violations.push(format!(
                    "{id}, at the island since {arrival_ms}, is {} {} who arrived at {other_arrival_ms}",
                    if ahead { "ahead of" } else { "behind" },
                    other.call
                ));
            }
        }
    }
    violations
}

/// Is every waiting caller's place the one its entry gave it (none moved by a reassignment
/// or an overflow that renewed it)? Callers born on the island are not in `arrivals`.
fn waiting_in_entry_order(r: &Routing, arrivals: &Arrivals) -> bool {
    r.waiting_calls().iter().all(|w| arrivals.get(&w.call).is_none_or(|(index, _)| *index == w.order_seq))
}

#[derive(Debug)]
struct Day {
    specs: Vec<OperatorSpec>,
    before: Vec<Action>,
    site: u64,
    majority: Vec<Action>,
    island: Vec<Action>,
    cut: usize,
}

fn run(day: &Day) -> Vec<String> {
    let site = SiteId(day.site);
    let mut h = Harness::new();
    setup(&mut h, &day.specs);
    let mut calls_made = 0;
    let everyone = Split { at_fork: h.routing.clone(), site: NOBODYS_SITE };
    let mut arrivals = Arrivals::new();
    let mut ended = drive(&mut h, &everyone, Sender::Majority, &day.before, &mut calls_made, &mut arrivals, None);
    if h.routing.is_site_lost(site) {
        return Vec::new(); // a lost site has no island
    }
    // The fork is the Raft entry holding the last command so far; the majority goes on in
    // the next entries.
    let fork_entry = h.index / ApplyIndex::STRIDE;
    let epoch = IslandEpoch { site, seq: 1, fork_index: fork_entry };
    h.index = ApplyIndex::last_of(fork_entry).get();
    let split = Split { at_fork: h.routing.clone(), site };
    let mut island = copy(&h);
    island.routing = h.routing.fork_island(epoch, &MEMBERS, h.now_ms);
    island.index = fork_apply_index(0, 0).expect("the band's first index") - 1;
    let mut island_calls = calls_made + 10_000;
    let mut restarted = Routing::restore(&island.routing.snapshot_bytes()).expect("a fork restores");
    let mut born_on_island = Arrivals::new();
    let island_day = &day.island;
    let ended_on_island: BTreeSet<CallId> = drive(
        &mut island,
        &split,
        Sender::Island,
        island_day,
        &mut island_calls,
        &mut born_on_island,
        Some(&mut restarted),
    )
    .into_iter()
    .collect();
    h.ok(CommandBody::SiteUnreachable { site });
    ended.extend(drive(&mut h, &split, Sender::Majority, &day.majority, &mut calls_made, &mut arrivals, None));

    let plan = island.routing.merge_plan().commands;
    let mut violations = Vec::new();
    if restarted.merge_plan().commands != plan {
        violations.push("a restarted island replaying its journal plans another merge".into());
    }
    let mut expected_stats = stats(&h.routing);
    let at_fork_stats = stats(&split.at_fork);
    for (queue, now) in stats(&island.routing) {
        let delta = lineup_core::island_merge::stats_since(&now, &at_fork_stats[&queue]);
        add_stats(expected_stats.get_mut(&queue).expect("same queues"), &delta);
    }

    violations.extend(check_calls_before_end(&h, &plan, &ended, &arrivals));

    // Once (then commands that change nothing), and twice.
    let mut once = copy(&h);
    let merged = apply_all(&mut once, &plan, &mut violations);
    apply_all(&mut once, &fillers(plan.len()), &mut violations);
    let mut twice = copy(&h);
    apply_all(&mut twice, &plan, &mut violations);
    let again = apply_all(&mut twice, &plan, &mut violations);
    if twice.routing.snapshot_bytes() != once.routing.snapshot_bytes() {
        violations.push("a merge applied twice differs from one applied once".into());
    }
    violations.extend(ended_calls(&again).iter().map(|id| format!("{id} ended again by the resent merge")));
    let mut all_ended = ended.clone();
    all_ended.extend(ended_calls(&merged));
    violations.extend(check_merged(&once.routing, &all_ended, &ended_on_island, &expected_stats));

    // Interrupted after `cut` commands, then the whole plan resent.
    let cut = day.cut % plan.len() + 1;
    let mut reference = copy(&h);
    apply_all(&mut reference, &plan[..cut], &mut violations);
    apply_all(&mut reference, &fillers(cut), &mut violations);
    apply_all(&mut reference, &plan[cut..], &mut violations);
    let mut resumed = copy(&h);
    let mut resumed_effects = apply_all(&mut resumed, &plan[..cut], &mut violations);
    resumed_effects.extend(apply_all(&mut resumed, &plan, &mut violations));
    if resumed.routing.snapshot_bytes() != reference.routing.snapshot_bytes() {
        violations.push(format!("a merge interrupted after {cut} commands and resent differs from one applied once"));
    }
    let mut all_ended = ended;
    all_ended.extend(ended_calls(&resumed_effects));
    violations.extend(check_merged(&resumed.routing, &all_ended, &ended_on_island, &expected_stats));
    if resumed.routing.is_site_unreachable(site) || resumed.routing.island_mark(site).is_some() {
        violations.push(format!("site {} is not back after its merge", site.0));
    }
    violations
}

fn merge_day() -> impl Strategy<Value = Day> {
    (
        scenario(),
        1u64..=3,
        prop::collection::vec(action(), 1..60),
        prop::collection::vec(action(), 1..60),
        any::<usize>(),
    )
        .prop_map(|((specs, before), site, majority, island, cut)| {
            let island = island.into_iter().map(|a| toward(site, a)).collect();
            Day { specs, before, site, majority, island, cut }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, max_shrink_iters: 2_000, ..ProptestConfig::default() })]

    /// A merge counts every ended call and every stat once, however often it is applied.
    #[test]
    fn a_merge_counts_everything_once(day in merge_day()) {
        let violations = run(&day);
        prop_assert!(violations.is_empty(), "{:#?}", violations);
    }
}
