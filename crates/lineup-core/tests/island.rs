//! Island mode in the core (docs/rfcs/island-mode.md §1.5, §2.1): who owns which party
//! during a split (`island::owner`, one test per row of the RFC's table), the fork an
//! island routes on, and what each side refuses about the other's parties.

mod common;

use common::*;
use lineup_core::island::{fork_apply_index, owner};
use lineup_core::*;

const ISLAND: SiteId = SITE_C;
const MEMBERS: [SiteId; 3] = [SITE_A, SITE_B, SITE_C];

fn call(id: &str) -> CallId {
    CallId::new(id)
}

fn op(id: &str) -> OperatorId {
    OperatorId::new(id)
}

fn caller<'a>(id: &'a CallId, entry_site: SiteId) -> Party<'a> {
    Party::Caller { call: id, entry_site }
}

fn supervisor(body: CommandBody) -> CommandBody {
    let actor = AuditActor { token_name: "sup".into(), role: AuditRole::Supervisor };
    CommandBody::Audited { actor, body: Box::new(body) }
}

/// Site C will be the island. A queue with operators at every site; callers of C and of
/// A waiting (nobody logged in yet), a promise of C, and `far` (home C) logged in at A.
fn centre() -> Harness {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.operator("home", ISLAND, &[("sales", 0)], &[]);
    h.operator("away", SITE_A, &[("sales", 0)], &[]);
    h.operator("far", ISLAND, &[("sales", 0)], &[]);
    h.operator("idle", SITE_A, &[("sales", 0)], &[]);
    h.enqueue("c-island", "sales", ISLAND);
    h.enqueue("c-promise", "sales", ISLAND);
    h.ok(CommandBody::RequestCallback { call: call("c-promise"), number: "5550100".into() });
    h.enqueue("c-away", "sales", SITE_A);
    h
}

/// The fork of `h` at the island, applied from the start of the fork band.
fn fork(h: &mut Harness) {
    let epoch = IslandEpoch { site: ISLAND, seq: 1, fork_index: h.index };
    h.routing = h.routing.fork_island(epoch, &MEMBERS, h.now_ms);
    h.index = fork_apply_index(0, 0).expect("in the band") - 1;
}

#[test]
fn a_live_caller_belongs_to_its_entry_sites_island() {
    let h = centre();
    assert_eq!(owner(&h.routing, ISLAND, caller(&call("c-island"), ISLAND)), Side::Island);
}

#[test]
fn a_caller_of_another_site_belongs_to_the_majority() {
    let h = centre();
    assert_eq!(owner(&h.routing, ISLAND, caller(&call("c-away"), SITE_A)), Side::Majority);
    assert_eq!(owner(&h.routing, SITE_A, caller(&call("c-island"), ISLAND)), Side::Majority);
}

#[test]
fn a_promise_existing_at_the_fork_belongs_to_the_majority_whatever_its_site() {
    let h = centre();
    assert_eq!(owner(&h.routing, ISLAND, caller(&call("c-promise"), ISLAND)), Side::Majority);
}

#[test]
fn a_promise_created_on_the_island_belongs_to_the_island() {
    let h = centre();
    // Born after the fork (a callback-only entry at the island): unknown at the fork.
    assert_eq!(owner(&h.routing, ISLAND, caller(&call("c-new"), ISLAND)), Side::Island);
    assert_eq!(owner(&h.routing, ISLAND, caller(&call("c-new"), SITE_A)), Side::Majority);
    // A caller of the island who asks for a callback on the island was the island's at the fork.
    let mut fork_h = centre();
    fork(&mut fork_h);
    fork_h.ok(CommandBody::RequestCallback { call: call("c-island"), number: "5550101".into() });
    assert_eq!(owner(&h.routing, ISLAND, caller(&call("c-island"), ISLAND)), Side::Island);
}

#[test]
fn an_operator_logged_in_at_the_island_belongs_to_it() {
    let mut h = centre();
    h.login("away", ISLAND);
    assert_eq!(owner(&h.routing, ISLAND, Party::Operator(&op("away"))), Side::Island);
}

#[test]
fn an_operator_offline_with_the_island_as_home_belongs_to_it() {
    let h = centre();
    assert_eq!(owner(&h.routing, ISLAND, Party::Operator(&op("home"))), Side::Island);
}

#[test]
fn any_other_operator_belongs_to_the_majority() {
    let mut h = centre();
    h.login("far", SITE_A);
    // Home is the island, but logged in elsewhere at the fork.
    assert_eq!(owner(&h.routing, ISLAND, Party::Operator(&op("far"))), Side::Majority);
    assert_eq!(owner(&h.routing, ISLAND, Party::Operator(&op("idle"))), Side::Majority);
    assert_eq!(owner(&h.routing, ISLAND, Party::Operator(&op("nobody"))), Side::Majority);
}

/// An offer in progress at the fork has no owner of its own: each party keeps its row.
#[test]
fn an_offer_at_the_fork_leaves_each_party_with_its_own_owner() {
    let mut h = centre();
    h.login("away", SITE_A);
    let offered = h.routing.call_view(&call("c-island")).expect("still there");
    assert_eq!(offered.operator, Some(op("away")), "the island's caller is offered across");
    assert_eq!(owner(&h.routing, ISLAND, caller(&call("c-island"), ISLAND)), Side::Island);
    assert_eq!(owner(&h.routing, ISLAND, Party::Operator(&op("away"))), Side::Majority);
}

#[test]
fn the_fork_sees_every_other_site_unreachable_and_parks_promises() {
    let mut h = centre();
    let global = h.routing.snapshot_bytes();
    fork(&mut h);
    assert_eq!(h.routing.unreachable_sites().map(|(s, _)| s).collect::<Vec<_>>(), vec![SITE_A, SITE_B]);
    let fork_state = h.routing.island().expect("a fork");
    assert_eq!(fork_state.epoch.site, ISLAND);
    assert_eq!(fork_state.parked_calls.len(), 1);
    // The island's operator takes the island's caller, not the parked promise (first in line).
    let effects = h.login("home", ISLAND);
    let (offered, operator, fence) = Harness::the_offer(&effects);
    assert_eq!((offered.as_str(), operator.as_str()), ("c-island", "home"));
    assert!(island::is_fork_apply_index(fence), "fence {fence} in the band");
    h.connect("c-island", "home", fence);
    h.complete("c-island", fence, HungUpBy::Caller);
    assert_eq!(h.status("home"), OperatorStatus::Available, "the promise stays parked");
    // An operator logging in at the island takes nothing parked; an island-born promise is served.
    h.login("away", ISLAND);
    let before = h.routing.call_view(&call("c-promise")).expect("parked, waiting");
    assert_eq!(before.status, CallStatus::CallbackWaiting);
    let (result, effects) = h.apply(CommandBody::Enqueue(Enqueue {
        call: call("c-born"),
        queue: QueueId::new("sales"),
        gate: None,
        priority: None,
        caller_number: "5550102".into(),
        caller_name: "Born".into(),
        site: ISLAND,
        channel: None,
        skills: Default::default(),
        callback_number: Some("5550102".into()),
    }));
    result.expect("a callback-only entry at the island");
    let (offered, _, _) = Harness::the_offer(&effects);
    assert_eq!(offered, "c-born");
    // Forking changed nothing in the global state.
    let again = centre();
    assert_eq!(again.routing.snapshot_bytes(), global);
}

#[test]
fn the_fork_counts_staff_at_reachable_sites_only() {
    let mut h = Harness::new();
    h.queue(QueueConfig { id: QueueId::new("sales"), join_when_empty: EmptyRule::NoneLoggedIn, ..Default::default() });
    h.operator("away", SITE_A, &[("sales", 0)], &[]);
    h.login("away", SITE_A);
    h.ok(CommandBody::OperatorState { operator: op("away"), state: RequestedState::Break { reason: "x".into() } });
    let mut global = Harness { routing: h.routing.clone(), ..Harness::new() };
    (global.index, global.serial, global.now_ms, global.ticked_ms) = (h.index, h.serial, h.now_ms, h.ticked_ms);
    fork(&mut h);
    let summary = h.routing.queue_summary(&QueueId::new("sales")).expect("queue");
    assert_eq!(summary.logged_in, 0, "the operator at A is not the island's staff");
    let (result, _) = h.enqueue_full("c1", "sales", None, None, ISLAND, &[]);
    assert!(matches!(result, Ok(Response::Enqueued { exit: Some(Outcome::Empty), .. })), "{result:?}");
    // The global state still counts the operator at A: the caller joins.
    let (result, _) = global.enqueue_full("c1", "sales", None, None, ISLAND, &[]);
    assert!(matches!(result, Ok(Response::Enqueued { exit: None, .. })), "{result:?}");
}

#[test]
fn the_fork_refuses_what_only_the_majority_may_decide() {
    let mut h = centre();
    h.login("idle", SITE_A);
    fork(&mut h);
    let (refused, effects) = h.apply(CommandBody::SiteBack { site: SITE_A });
    assert!(matches!(refused, Err(CoreError::InvalidState { .. })) && effects.is_empty(), "{refused:?}");
    let (refused, _) = h.enqueue_full("c-other", "sales", None, None, SITE_B, &[]);
    assert_eq!(refused, Err(CoreError::SiteUnreachable(SITE_B)));
    let login = CommandBody::OperatorLogin { operator: op("away"), site: SITE_A, channel: Some("x".into()) };
    assert_eq!(h.apply(login).0, Err(CoreError::SiteUnreachable(SITE_A)));
    let pull = CommandBody::Pull { operator: op("idle"), call: None };
    assert_eq!(h.apply(pull).0, Err(CoreError::SiteUnreachable(SITE_A)));
    assert!(SITE_A.0 != ISLAND.0 && h.routing.is_site_unreachable(SITE_A));
}

#[test]
fn the_majority_refuses_supervisor_changes_of_a_cut_off_sites_parties() {
    let mut h = centre();
    h.login("home", SITE_A);
    h.ok(CommandBody::OperatorLogout { operator: op("home") });
    h.login("far", ISLAND);
    h.ok(CommandBody::SiteUnreachable { site: ISLAND });
    let refused = |body: CommandBody| (body.clone(), Err::<Response, _>(CoreError::SiteUnreachable(ISLAND)));
    let cases = [
        refused(supervisor(CommandBody::OperatorLogout { operator: op("far") })),
        refused(supervisor(CommandBody::OperatorState { operator: op("far"), state: RequestedState::Available })),
        refused(supervisor(CommandBody::Pull { operator: op("far"), call: None })),
        // Offline with the island as home.
        refused(supervisor(CommandBody::OperatorLogin { operator: op("home"), site: SITE_A, channel: None })),
        refused(supervisor(CommandBody::ChangePriority { call: call("c-island"), priority: 0 })),
        refused(supervisor(CommandBody::Reassign { call: call("c-island"), queue: QueueId::new("x"), keep_age: true })),
        refused(supervisor(CommandBody::Pull { operator: op("idle"), call: Some(call("c-island")) })),
        refused(supervisor(CommandBody::DeleteQueue { queue: QueueId::new("sales") })),
        refused(supervisor(CommandBody::ApplyConfig(Box::default()))),
    ];
    for (body, expected) in cases {
        assert_eq!(h.routing.check_command(&body), expected.clone().map(|_| ()), "{body:?}");
        let (result, effects) = h.apply(body.clone());
        assert_eq!(result, expected, "{body:?}");
        assert!(effects.is_empty());
    }
    let message = CoreError::SiteUnreachable(ISLAND).to_string();
    assert_eq!(
        message,
        "site 3 is unreachable: its operators and callers change only there until it is back or declared lost"
    );
    // The majority's own parties, the promise it serves, and config that removes nothing.
    h.ok(supervisor(CommandBody::ChangePriority { call: call("c-promise"), priority: 0 }));
    h.ok(supervisor(CommandBody::ChangePriority { call: call("c-away"), priority: 0 }));
    let same = h.routing.config_set();
    h.ok(supervisor(CommandBody::ApplyConfig(Box::new(same))));
    // The site's own report still applies: it may commit before the leader's SiteBack.
    h.ok(CommandBody::OperatorLogout { operator: op("far") });
    h.ok(CommandBody::SiteBack { site: ISLAND });
    h.ok(supervisor(CommandBody::ChangePriority { call: call("c-island"), priority: 0 }));
}

/// Found by the fork's property test: another site's caller must not become a promise the
/// island serves, and another site's operator is not the island's to put back to work.
#[test]
fn the_fork_keeps_its_hands_off_other_sites_callers_and_operators() {
    let mut h = centre();
    h.login("idle", SITE_A);
    h.ok(CommandBody::OperatorState { operator: op("idle"), state: RequestedState::Break { reason: "x".into() } });
    // `idle` was offered c-island at login; the break gave it back.
    fork(&mut h);
    let ask = CommandBody::RequestCallback { call: call("c-away"), number: "5550103".into() };
    assert_eq!(h.apply(ask).0, Err(CoreError::SiteUnreachable(SITE_A)));
    let reassign = CommandBody::Reassign { call: call("c-promise"), queue: QueueId::new("sales"), keep_age: true };
    assert!(matches!(h.apply(reassign).0, Err(CoreError::InvalidState { .. })), "a parked promise is the majority's");
    let available = CommandBody::OperatorState { operator: op("idle"), state: RequestedState::Available };
    assert_eq!(h.apply(available).0, Err(CoreError::SiteUnreachable(SITE_A)));
    assert_eq!(h.routing.call_view(&call("c-island")).map(|v| v.status), Some(CallStatus::Waiting));
}

/// Found by the fork's property test: another site's operator whose wrap-up ends on the
/// island's Tick is not offered the island's caller (the global state's matching would).
#[test]
fn another_sites_operator_leaving_wrap_up_is_not_offered_on_the_fork() {
    let mut h = Harness::new();
    h.queue(QueueConfig { id: QueueId::new("sales"), wrap_up_ms: 10_000, ..Default::default() });
    h.operator("w", SITE_A, &[("sales", 0)], &[]);
    h.login("w", SITE_A);
    let (_, _, fence) = Harness::the_offer(&h.enqueue("c-a", "sales", SITE_A));
    h.connect("c-a", "w", fence);
    h.complete("c-a", fence, HungUpBy::Caller);
    h.enqueue("c-i", "sales", ISLAND);
    fork(&mut h);
    Harness::no_offer(&h.advance(11_000));
    assert_eq!(h.status("w"), OperatorStatus::Available);
    assert_eq!(h.routing.call_view(&call("c-i")).map(|v| v.status), Some(CallStatus::Waiting));
}

/// ETA and leave-when-empty count the island's own staff: two ready operators at A make a
/// short ETA on the global state, none on the fork; and the island's caller leaves an
/// empty queue on the fork's Tick while the global state keeps it waiting.
#[test]
fn eta_and_leave_when_empty_count_the_islands_staff() {
    let mut h = Harness::new();
    h.queue(QueueConfig {
        id: QueueId::new("sales"),
        leave_when_empty: EmptyRule::NoneReady,
        default_handle_ms: 60_000,
        ..Default::default()
    });
    h.operator("a1", SITE_A, &[("sales", 0)], &[("de", 10)]);
    h.operator("a2", SITE_A, &[("sales", 0)], &[("de", 10)]);
    h.login("a1", SITE_A);
    h.login("a2", SITE_A);
    // Needs a skill nobody has: it waits, with both operators ready.
    let (result, _) = h.enqueue_full("c1", "sales", None, None, ISLAND, &[("fr", 10)]);
    result.expect("joins");
    let queue = QueueId::new("sales");
    assert_eq!(h.routing.eta_ms(&queue, 2), Some(60_000));
    let mut global = Harness { routing: h.routing.clone(), ..Harness::new() };
    (global.index, global.serial, global.now_ms, global.ticked_ms) = (h.index, h.serial, h.now_ms, h.ticked_ms);
    fork(&mut h);
    assert_eq!(h.routing.eta_ms(&queue, 2), None, "nobody at the island");
    h.advance(1_000);
    assert_eq!(h.outcome_of("c1"), Some(Outcome::Empty));
    global.advance(1_000);
    assert_eq!(global.outcome_of("c1"), None, "the global state still counts A's operators");
}
