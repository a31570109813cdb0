//! `Routing::check_command`: what the API asks before proposing. A refusal is decided on a
//! read of the state, with the handler's own checks, and changes nothing.

mod common;

use common::*;
use lineup_core::*;

#[test]
fn a_callback_for_a_call_not_waiting_is_refused_without_changing_anything() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.operator("alice", SITE_A, &[("sales", 0)], &[]);
    h.login("alice", SITE_A);
    h.enqueue("c1", "sales", SITE_A);
    let body = CommandBody::RequestCallback { call: CallId::new("c1"), number: "5551234".into() };
    let before = h.routing.snapshot_bytes();
    let refusal = h.routing.check_command(&body).expect_err("c1 is offered to alice, not waiting");
    assert!(matches!(refusal, CoreError::InvalidState { .. }), "{refusal:?}");
    assert_eq!(h.routing.snapshot_bytes(), before, "a check changes nothing");
    let unknown = CommandBody::RequestCallback { call: CallId::new("nobody"), number: "5551234".into() };
    assert_eq!(h.routing.check_command(&unknown), Err(CoreError::UnknownCall(CallId::new("nobody"))));
    let bad_number = CommandBody::RequestCallback { call: CallId::new("c1"), number: "12".into() };
    assert!(matches!(h.routing.check_command(&bad_number), Err(CoreError::InvalidField { .. })));
    // The harness also holds apply to the same answer for every command it applies.
    let (applied, _) = h.apply(body);
    assert_eq!(applied.err(), Some(refusal));
}

#[test]
fn config_refusals_that_depend_on_live_state_are_found_by_the_check() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.enqueue("c1", "sales", SITE_A);
    let delete = CommandBody::DeleteQueue { queue: QueueId::new("sales") };
    assert!(matches!(h.routing.check_command(&delete), Err(CoreError::InUse { .. })));
    let mut without_sales = h.routing.config_set();
    without_sales.queues.clear();
    let apply = CommandBody::ApplyConfig(Box::new(without_sales));
    assert!(matches!(h.routing.check_command(&apply), Err(CoreError::InvalidConfig(_))));
    let tick = CommandBody::Tick { now_ms: 0 };
    assert_eq!(h.routing.check_command(&tick), Ok(()), "site commands are left to apply");
}
