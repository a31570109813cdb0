//! Property tests of the island fork (docs/rfcs/island-mode.md §2.1): a random day runs on
//! the global state, a random site forks at a random point, and a random stream of commands
//! runs on the fork (`check_invariants` after every one, by the harness). Checked:
//!
//! - no offer made in the fork involves an operator at another site, a caller of another
//!   site, or a promise parked at the fork; every offered caller is the island's by
//!   `island::owner`;
//! - every offer's fence, and the place of every caller born in the fork, is the apply index
//!   that made it, in the fork band;
//! - a fork restored from its snapshot (a restarted island) gives the same results and
//!   effects;
//! - forking leaves the global state as it was.
//!
//! And on the global state, over random days with sites going unreachable and back: a
//! supervisor's write (`Audited`) about a party of an unreachable site is refused with
//! `SiteUnreachable` and changes nothing, and no other write is refused so.

mod common;
use common::days::*;
use common::*;
use lineup_core::island::{caller_site, fork_apply_index, is_fork_apply_index, operator_site, owner};
use lineup_core::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

const CASES: u32 = 1_000;
const MEMBERS: [SiteId; 3] = [SiteId(1), SiteId(2), SiteId(3)];

/// Applies `actions` as the global property tests do (duplicates left out: the fork's own
/// dedup is the global one's, tested there).
fn run_day(
    h: &mut Harness,
    actions: &[Action],
    calls_made: &mut u64,
    mut each: impl FnMut(&Harness, &Command, &[Effect]),
) {
    for action in actions {
        if let Action::Tick { dt_ms } = action {
            h.now_ms += dt_ms;
        }
        let Some(body) = command_for(h, action, calls_made) else { continue };
        let cmd = h.command(body);
        let (_, effects) = h.apply_cmd(&cmd);
        each(h, &cmd, &effects);
    }
}

/// What the fork checks need from the state at the fork.
struct AtFork {
    routing: Routing,
    site: SiteId,
    parked: BTreeSet<CallId>,
    calls: BTreeSet<CallId>,
}

fn offer_violations(at: &AtFork, h: &Harness, effects: &[Effect]) -> Vec<String> {
    let mut out = Vec::new();
    for effect in effects {
        let (Effect::Offer(o) | Effect::DialCallback(o)) = effect else { continue };
        let op_site = h.routing.operator_view(&o.operator).and_then(|v| v.site);
        if op_site != Some(at.site) || o.operator_site != at.site {
            out.push(format!("{} offered to {} at {op_site:?}", o.call, o.operator));
        }
        if at.parked.contains(&o.call) {
            out.push(format!("parked promise {} offered to {}", o.call, o.operator));
        }
        let live = matches!(effect, Effect::Offer(_)) && o.callback_number.is_none();
        if live && o.caller_site != at.site {
            out.push(format!("caller {} of {} offered on the island", o.call, o.caller_site));
        }
        let party = Party::Caller { call: &o.call, entry_site: o.caller_site };
        if owner(&at.routing, at.site, party) != Side::Island {
            out.push(format!("{} is not the island's to offer", o.call));
        }
        if o.fence != h.index || !is_fork_apply_index(o.fence) {
            out.push(format!("fence {} of {} is not the fork apply index {}", o.fence, o.call, h.index));
        }
    }
    for view in h.routing.calls() {
        if !at.calls.contains(&view.call) && !is_fork_apply_index(view.order_seq) {
            out.push(format!("{} born in the fork has place {} outside the band", view.call, view.order_seq));
        }
    }
    out
}

/// Runs `before` on the global state, forks at `site`, runs `after` on the fork.
fn run(specs: &[OperatorSpec], before: &[Action], site: SiteId, after: &[Action]) -> Vec<String> {
    let mut h = Harness::new();
    setup(&mut h, specs);
    let mut calls_made = 0;
    run_day(&mut h, before, &mut calls_made, |_, _, _| {});
    let global = h.routing.snapshot_bytes();
    let epoch = IslandEpoch { site, seq: 1, fork_index: h.index };
    let fork = h.routing.fork_island(epoch, &MEMBERS, h.now_ms);
    let mut violations = Vec::new();
    if h.routing.snapshot_bytes() != global || h.routing.island().is_some() {
        violations.push("forking changed the global state".to_string());
    }
    let promise = |v: &CallView| matches!(v.status, CallStatus::CallbackWaiting | CallStatus::CallbackOffered);
    let at = AtFork {
        parked: h
            .routing
            .calls()
            .filter(|v| promise(v) || v.status == CallStatus::CallbackConnected)
            .map(|v| v.call)
            .collect(),
        calls: h.routing.calls().map(|v| v.call).collect(),
        routing: h.routing.clone(),
        site,
    };
    fork.check_invariants().unwrap_or_else(|e| violations.push(format!("the fork contradicts itself: {e}")));
    h.routing = fork;
    h.index = fork_apply_index(0, 0).expect("the band's first index") - 1;
    let mut twin = Routing::restore(&h.routing.snapshot_bytes()).expect("a fork's snapshot restores");
    run_day(&mut h, after, &mut calls_made, |h, cmd, effects| {
        violations.extend(offer_violations(&at, h, effects));
        let again = twin.apply(h.index, cmd);
        if again.effects != effects {
            violations.push(format!("the restored fork diverged at {:?}", cmd.body));
        }
    });
    violations
}

/// As a supervisor sends it through the API: wrapped with its actor.
fn supervised(body: CommandBody) -> CommandBody {
    let actor = AuditActor { token_name: "sup".into(), role: AuditRole::Supervisor };
    CommandBody::Audited { actor, body: Box::new(body) }
}

/// The unreachable site owning the party a supervisor's write is about, if any.
fn cut_off_owner(routing: &Routing, body: &CommandBody) -> Option<SiteId> {
    let cut = |site: Option<SiteId>| site.filter(|s| routing.is_site_unreachable(*s));
    let of_caller = |call: &CallId| cut(routing.call_view(call).and_then(|v| caller_site(&v.status, v.entry_site)));
    match body {
        CommandBody::OperatorLogout { operator } | CommandBody::OperatorState { operator, .. } => {
            cut(operator_site(routing, operator))
        }
        CommandBody::Pull { operator, call } => {
            cut(operator_site(routing, operator)).or_else(|| call.as_ref().and_then(of_caller))
        }
        CommandBody::Reassign { call, .. } | CommandBody::ChangePriority { call, .. } => of_caller(call),
        _ => None,
    }
}

/// Runs a day on the global state, sending supervisors' writes wrapped.
fn run_supervised_day(specs: &[OperatorSpec], actions: &[Action]) -> Vec<String> {
    let mut h = Harness::new();
    setup(&mut h, specs);
    let mut calls_made = 0;
    let mut violations = Vec::new();
    for action in actions {
        if let Action::Tick { dt_ms } = action {
            h.now_ms += dt_ms;
        }
        let Some(body) = command_for(&h, action, &mut calls_made) else { continue };
        let supervisor_write = matches!(
            body,
            CommandBody::OperatorLogout { .. }
                | CommandBody::OperatorState { .. }
                | CommandBody::Pull { .. }
                | CommandBody::Reassign { .. }
                | CommandBody::ChangePriority { .. }
        );
        let expected = cut_off_owner(&h.routing, &body).filter(|_| supervisor_write);
        let body = if supervisor_write { supervised(body) } else { body };
        let views = |r: &Routing| (r.calls().collect::<Vec<_>>(), r.operators().collect::<Vec<_>>(), r.now_ms());
        let before = views(&h.routing);
        let (result, effects) = h.apply(body.clone());
        match (expected, &result) {
            (Some(site), Err(CoreError::SiteUnreachable(refused))) if *refused == site => {
                if !effects.is_empty() || views(&h.routing) != before {
                    violations.push(format!("refused {body:?} changed something"));
                }
            }
            (Some(site), _) => violations.push(format!("{body:?} about a party of {site} answered {result:?}")),
            (None, Err(CoreError::SiteUnreachable(site))) => {
                violations.push(format!("{body:?} refused for {site}, whose party it is not about"))
            }
            (None, _) => {}
        }
    }
    violations
}

fn fork_case() -> impl Strategy<Value = (Vec<OperatorSpec>, Vec<Action>, u64, Vec<Action>)> {
    (scenario(), 1u64..=3, prop::collection::vec(action(), 1..80)).prop_map(|((specs, before), site, after)| {
        let after = after.into_iter().map(|a| toward(site, a)).collect();
        (specs, before, site, after)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, max_shrink_iters: 2_000, ..ProptestConfig::default() })]

    /// The island offers only its own parties, under fork fences, and survives a restart.
    #[test]
    fn an_island_offers_only_its_own_parties((specs, before, site, after) in fork_case()) {
        let violations = run(&specs, &before, SiteId(site), &after);
        prop_assert!(violations.is_empty(), "{:#?}", violations);
    }

    /// The majority refuses supervisors' writes about an unreachable site's parties, and only those.
    #[test]
    fn the_majority_leaves_a_cut_off_sites_parties_alone((specs, actions) in scenario()) {
        let violations = run_supervised_day(&specs, &actions);
        prop_assert!(violations.is_empty(), "{:#?}", violations);
    }
}
