//! The callback destination policy: emergency and premium numbers are never dialled by
//! default; an admin's allow-list narrows what callers may ask for; a denied request is on
//! record and leaves the caller waiting in its place.

mod common;
use common::*;
use lineup_core::*;

fn id(s: &str) -> CallId {
    CallId::new(s)
}

fn ask(h: &mut Harness, call: &str, number: &str) -> CommandResult {
    h.apply(CommandBody::RequestCallback { call: id(call), number: number.into() }).0
}

#[test]
fn an_emergency_number_is_denied_on_record_and_the_caller_keeps_waiting() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.enqueue("first", "sales", SITE_A);
    h.enqueue("cb", "sales", SITE_A);
    let denied = ask(&mut h, "cb", "911").unwrap();
    assert!(matches!(denied, Response::CallbackDenied { .. }), "{denied:?}");
    assert_eq!(h.routing.position(&id("cb")), Some(2), "still waiting, in its place");
    let view = h.routing.call_view(&id("cb")).unwrap();
    assert_eq!(view.status, CallStatus::Waiting);
    let lines: Vec<String> = h.log_lines().into_iter().filter(|l| l.contains("CALLBACKDENIED")).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("|cb|sales|NONE|CALLBACKDENIED|911|"), "{}", lines[0]);
    // A number the policy allows is still accepted afterwards.
    assert_eq!(ask(&mut h, "cb", "+15551234567").unwrap(), Response::CallbackAccepted { position: 2 });
}

#[test]
fn an_admin_allow_list_narrows_the_numbers_and_a_malformed_policy_changes_nothing() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    let national = CallbackPolicy { allowed_patterns: vec!["_33ZXXXXXXXX".into()], ..CallbackPolicy::default() };
    h.ok(CommandBody::PutCallbackPolicy(national.clone()));
    assert_eq!(h.routing.callback_policy(), &national);
    let malformed = CallbackPolicy { allowed_patterns: vec!["33[".into()], ..CallbackPolicy::default() };
    assert!(matches!(h.apply(CommandBody::PutCallbackPolicy(malformed)).0, Err(CoreError::InvalidField { .. })));
    assert_eq!(h.routing.callback_policy(), &national, "unchanged");
    h.enqueue("a", "sales", SITE_A);
    assert!(matches!(ask(&mut h, "a", "+15551234567").unwrap(), Response::CallbackDenied { .. }));
    assert!(matches!(ask(&mut h, "a", "+33142685300").unwrap(), Response::CallbackAccepted { .. }));
}

#[test]
fn a_callback_only_entry_to_a_denied_number_is_refused() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    let entry = Enqueue {
        call: id("web-1"),
        queue: QueueId::new("sales"),
        gate: None,
        priority: None,
        caller_number: "anonymous".into(),
        caller_name: "Web".into(),
        site: SITE_A,
        channel: None,
        skills: Default::default(),
        callback_number: Some("+19005550100".into()),
    };
    let (result, effects) = h.apply(CommandBody::Enqueue(entry));
    assert!(
        matches!(result, Err(CoreError::InvalidField { ref field, .. }) if field == "callback_number"),
        "{result:?}"
    );
    assert!(effects.is_empty());
    assert!(h.routing.call_view(&id("web-1")).is_none());
}
