//! Readable scenarios, one per feature of the routing core.

mod common;
use common::*;
use lineup_core::*;

fn id(s: &str) -> CallId {
    CallId::new(s)
}

#[test]
fn caller_at_one_site_is_offered_to_an_operator_at_another_and_completes() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.operator("carol", SITE_C, &[("sales", 0)], &[]);
    h.login("carol", SITE_C);
    let effects = h.enqueue("c1", "sales", SITE_A);
    let offer = Harness::offers(&effects).remove(0);
    assert_eq!((offer.caller_site, offer.operator_site), (SITE_A, SITE_C));
    assert!(Effect::Offer(offer.clone()).is_for(SITE_A) && Effect::Offer(offer.clone()).is_for(SITE_C));
    assert!(!Effect::Offer(offer.clone()).is_for(SITE_B));
    assert_eq!(offer.operator_channel.as_deref(), Some("op-carol"));
    h.now_ms += 2_000;
    h.connect("c1", "carol", offer.fence);
    assert!(matches!(h.status("carol"), OperatorStatus::Busy { .. }));
    h.now_ms += 60_000;
    h.complete("c1", offer.fence, HungUpBy::Operator);
    assert_eq!(h.status("carol"), OperatorStatus::Available);
    assert_eq!(h.outcome_of("c1"), Some(Outcome::Completed { by: HungUpBy::Operator }));
    let lines = h.log_lines();
    assert!(lines.iter().any(|l| l.ends_with("|c1|sales|NONE|ENTERQUEUE||5551234|1")), "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains("|c1|sales|carol|CONNECT|2|op-carol|2")), "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains("|c1|sales|carol|COMPLETEAGENT|2|60|1")), "{lines:#?}");
    let summary = h.routing.queue_summary(&QueueId::new("sales")).unwrap();
    assert_eq!((summary.stats.offered, summary.stats.answered, summary.stats.handled), (1, 1, 1));
    assert_eq!(summary.stats.service_level_permille(), Some(1000));
}

#[test]
fn priority_classes_then_arrival_decide_who_is_served_first() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.operator("alice", SITE_A, &[("sales", 0)], &[]);
    for (call, priority) in
        [("low", PRIORITY_LOW), ("normal1", PRIORITY_NORMAL), ("vip", PRIORITY_VIP), ("normal2", PRIORITY_NORMAL)]
    {
        h.enqueue_full(call, "sales", None, Some(priority), SITE_A, &[]).0.unwrap();
    }
    assert_eq!(h.routing.position(&id("vip")), Some(1));
    assert_eq!(h.routing.position(&id("normal1")), Some(2));
    assert_eq!(h.routing.position(&id("normal2")), Some(3));
    assert_eq!(h.routing.position(&id("low")), Some(4));
    let effects = h.login("alice", SITE_A);
    let (call, _, fence) = Harness::the_offer(&effects);
    assert_eq!(call, "vip");
    h.connect("vip", "alice", fence);
    let effects = h.complete("vip", fence, HungUpBy::Caller);
    assert_eq!(Harness::the_offer(&effects).0, "normal1");
}

#[test]
fn gates_share_one_order_carry_whisper_and_keep_their_own_stats() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.gate("web", "sales", Some("sales-web-whisper"), None);
    h.gate("phone", "sales", None, Some(PRIORITY_VIP));
    h.operator("alice", SITE_A, &[("sales", 0)], &[]);
    h.enqueue_full("w1", "sales", Some("web"), None, SITE_A, &[]).0.unwrap();
    h.enqueue_full("p1", "sales", Some("phone"), None, SITE_B, &[]).0.unwrap();
    // The phone gate carries VIP priority: p1 is ahead of the earlier web caller.
    assert_eq!(h.routing.position(&id("p1")), Some(1));
    let effects = h.login("alice", SITE_A);
    let offer = Harness::offers(&effects).remove(0);
    assert_eq!(offer.call, id("p1"));
    assert_eq!(offer.whisper, None);
    h.connect("p1", "alice", offer.fence);
    let effects = h.complete("p1", offer.fence, HungUpBy::Caller);
    let offer = Harness::offers(&effects).remove(0);
    assert_eq!((offer.call.as_str(), offer.whisper.as_deref()), ("w1", Some("sales-web-whisper")));
    let web = h.routing.gate_summary(&GateId::new("web")).unwrap();
    let phone = h.routing.gate_summary(&GateId::new("phone")).unwrap();
    assert_eq!((web.stats.offered, phone.stats.offered, phone.stats.answered), (1, 1, 1));
    assert!(h.log_lines().iter().any(|l| l.contains("|w1|sales|NONE|ENTERQUEUE|web|")));
    // A gate of another queue is refused.
    h.simple_queue("support");
    let (r, _) = h.enqueue_full("x", "support", Some("web"), None, SITE_A, &[]);
    assert!(matches!(r, Err(CoreError::GateNotInQueue { .. })));
}

#[test]
fn skills_with_levels_are_required() {
    let mut h = Harness::new();
    h.queue(QueueConfig {
        id: QueueId::new("support"),
        required_skills: [(Skill::new("billing"), 50)].into_iter().collect(),
        ..Default::default()
    });
    h.operator("junior", SITE_A, &[("support", 0)], &[("billing", 30)]);
    h.operator("senior", SITE_B, &[("support", 0)], &[("billing", 80), ("french", 90)]);
    h.login("junior", SITE_A);
    // Needs billing 50 (queue) and french 60 (entry): only senior qualifies, and is offline.
    let (r, effects) = h.enqueue_full("fr", "support", None, None, SITE_A, &[("french", 60)]);
    r.unwrap();
    Harness::no_offer(&effects);
    let effects = h.login("senior", SITE_B);
    assert_eq!(Harness::the_offer(&effects).1, "senior");
    // An ordinary billing call still skips junior (level 30 < 50).
    let effects = h.enqueue("b1", "support", SITE_A);
    Harness::no_offer(&effects);
}

#[test]
fn operator_choice_is_lowest_tier_then_longest_idle_then_same_site() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.operator("backup", SITE_A, &[("sales", 1)], &[]);
    h.operator("far", SITE_B, &[("sales", 0)], &[]);
    h.operator("near", SITE_A, &[("sales", 0)], &[]);
    h.login("backup", SITE_A);
    // far and near log in at the same instant: equally idle; the caller's site decides.
    h.login("far", SITE_B);
    h.login("near", SITE_A);
    let effects = h.enqueue("c1", "sales", SITE_A);
    assert_eq!(Harness::the_offer(&effects).1, "near");
    let effects = h.enqueue("c2", "sales", SITE_A);
    assert_eq!(Harness::the_offer(&effects).1, "far", "tier 0 before tier 1");
    let effects = h.enqueue("c3", "sales", SITE_B);
    assert_eq!(Harness::the_offer(&effects).1, "backup");
}

#[test]
fn longest_idle_operator_wins_and_time_never_runs_backwards() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.operator("first", SITE_B, &[("sales", 0)], &[]);
    h.operator("second", SITE_A, &[("sales", 0)], &[]);
    h.login("first", SITE_B);
    h.now_ms += 5_000;
    h.login("second", SITE_A);
    // A command stamped earlier (a site with a slow clock) does not move time back.
    h.now_ms -= 60_000;
    let effects = h.enqueue("c1", "sales", SITE_A);
    assert_eq!(h.routing.now_ms(), 1_005_000);
    assert_eq!(Harness::the_offer(&effects).1, "first", "idle longest, even at another site");
}

#[test]
fn tiers_widen_with_the_callers_wait_without_losing_its_place() {
    let mut h = Harness::new();
    h.queue(QueueConfig {
        id: QueueId::new("sales"),
        tier_rules: vec![
            TierRule { after_wait_ms: 0, max_penalty: 0 },
            TierRule { after_wait_ms: 30_000, max_penalty: 5 },
        ],
        ..Default::default()
    });
    h.operator("overflow-team", SITE_B, &[("sales", 5)], &[]);
    h.login("overflow-team", SITE_B);
    let effects = h.enqueue("c1", "sales", SITE_A);
    Harness::no_offer(&effects);
    let effects = h.advance(29_000);
    Harness::no_offer(&effects);
    let effects = h.advance(1_000);
    assert_eq!(Harness::the_offer(&effects).0, "c1");
}

#[test]
fn per_queue_cap_limits_busy_operators() {
    let mut h = Harness::new();
    h.queue(QueueConfig { id: QueueId::new("sales"), max_busy_operators: Some(1), ..Default::default() });
    h.operator("a", SITE_A, &[("sales", 0)], &[]);
    h.operator("b", SITE_A, &[("sales", 0)], &[]);
    h.login("a", SITE_A);
    h.login("b", SITE_A);
    let (c1, op1, fence) = Harness::the_offer(&h.enqueue("c1", "sales", SITE_A));
    Harness::no_offer(&h.enqueue("c2", "sales", SITE_A));
    h.connect(&c1, &op1, fence);
    h.now_ms += 1_000;
    let effects = h.complete(&c1, fence, HungUpBy::Caller);
    // The cap freed: c2 goes to the operator idle longest (the one who did not take c1).
    let (c2, op2, _) = Harness::the_offer(&effects);
    assert_eq!(c2, "c2");
    assert_ne!(op2, op1);
}

#[test]
fn timeout_overflows_into_the_next_queue_keeping_age() {
    let mut h = Harness::new();
    h.queue(QueueConfig {
        id: QueueId::new("sales"),
        max_wait_ms: Some(60_000),
        timeout_target: Target::Queue { queue: QueueId::new("overflow"), keep_order: true },
        ..Default::default()
    });
    h.simple_queue("overflow");
    h.enqueue("old", "sales", SITE_A);
    h.enqueue("new", "overflow", SITE_B);
    let effects = h.advance(60_000);
    assert!(h.log_lines().iter().any(|l| l.contains("|old|sales|NONE|EXITWITHTIMEOUT|1|1|60")));
    assert!(effects.iter().all(|e| !matches!(e, Effect::Exit { .. })));
    // Kept its original order key: ahead of the caller who entered overflow directly.
    assert_eq!(h.routing.position(&id("old")), Some(1));
    assert_eq!(h.routing.position(&id("new")), Some(2));
    assert_eq!(h.routing.queue_summary(&QueueId::new("sales")).unwrap().stats.timed_out, 1);
    // Without a target: back to the dialplan with TIMEOUT.
    h.queue(QueueConfig { id: QueueId::new("overflow"), max_wait_ms: Some(10_000), ..Default::default() });
    let effects = h.advance(10_000);
    let exits: Vec<_> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Exit { call, outcome, .. } => Some((call.to_string(), outcome.dialplan_result())),
            _ => None,
        })
        .collect();
    // Deadlines fire in order: "new" has been in this queue longer than "old".
    assert_eq!(exits, vec![("new".to_string(), "TIMEOUT"), ("old".to_string(), "TIMEOUT")]);
    assert_eq!(h.outcome_of("old"), Some(Outcome::TimedOut));
}

#[test]
fn callers_timing_out_together_all_wait_in_the_overflow_queue() {
    // Found by fuzzing (core_commands): callers moved in one apply without keeping their
    // order take that apply's index as their place, all the same key; each must still be
    // in line, in arrival order.
    let mut h = Harness::new();
    h.queue(QueueConfig {
        id: QueueId::new("sales"),
        max_wait_ms: Some(60_000),
        timeout_target: Target::Queue { queue: QueueId::new("overflow"), keep_order: false },
        ..Default::default()
    });
    h.simple_queue("overflow");
    h.enqueue("first", "sales", SITE_A);
    h.enqueue("second", "sales", SITE_B);
    h.advance(60_000);
    assert_eq!(h.routing.position(&id("first")), Some(1));
    assert_eq!(h.routing.position(&id("second")), Some(2));
    h.operator("alice", SITE_A, &[("overflow", 0)], &[]);
    let (call, operator, _) = Harness::the_offer(&h.login("alice", SITE_A));
    assert_eq!((call.as_str(), operator.as_str()), ("first", "alice"));
    assert_eq!(h.routing.position(&id("second")), Some(1));
}

#[test]
fn full_and_join_empty_refuse_at_entry_and_leave_empty_clears_the_queue() {
    let mut h = Harness::new();
    h.queue(QueueConfig {
        id: QueueId::new("sales"),
        max_waiting: 1,
        join_when_empty: EmptyRule::NoneLoggedIn,
        leave_when_empty: EmptyRule::NoneReady,
        ..Default::default()
    });
    h.operator("a", SITE_A, &[("sales", 0)], &[]);
    let (r, _) = h.enqueue_full("c0", "sales", None, None, SITE_A, &[]);
    assert!(matches!(r, Ok(Response::Enqueued { exit: Some(Outcome::Empty), .. })));
    h.login("a", SITE_A);
    h.ok(CommandBody::OperatorState {
        operator: OperatorId::new("a"),
        state: RequestedState::Break { reason: "lunch".into() },
    });
    let (r, _) = h.enqueue_full("c1", "sales", None, None, SITE_A, &[]);
    assert!(matches!(r, Ok(Response::Enqueued { exit: None, position: Some(1), .. })));
    let (r, _) = h.enqueue_full("c2", "sales", None, None, SITE_A, &[]);
    assert!(matches!(r, Ok(Response::Enqueued { exit: Some(Outcome::Full), .. })));
    assert!(h.log_lines().iter().any(|l| l.contains("|c2|sales|NONE|FULL|")));
    let effects = h.advance(1_000);
    assert!(effects.iter().any(|e| matches!(e, Effect::Exit { outcome: Outcome::Empty, .. })));
    assert_eq!(h.outcome_of("c1"), Some(Outcome::Empty));
    let stats = h.routing.queue_summary(&QueueId::new("sales")).unwrap().stats;
    assert_eq!((stats.full, stats.empty), (1, 2));
}

#[test]
fn schedules_close_the_queue_outside_opening_hours() {
    let mut h = Harness::new();
    h.ok(CommandBody::PutSchedule(ScheduleConfig {
        id: ScheduleId::new("office"),
        time_zone: "Europe/Paris".into(),
        weekly: vec![OpeningHours { days: vec![1, 2, 3, 4, 5], open_minute: 9 * 60, close_minute: 18 * 60 }],
        holidays: vec![],
    }));
    h.simple_queue("night");
    h.queue(QueueConfig {
        id: QueueId::new("sales"),
        schedule: Some(ScheduleId::new("office")),
        after_hours_target: Target::Queue { queue: QueueId::new("night"), keep_order: true },
        ..Default::default()
    });
    // Monday 2026-11-23 07:30 UTC = 08:30 in Paris: closed, goes to the night queue.
    h.now_ms = 1_795_419_000_000;
    h.advance(0);
    let (r, _) = h.enqueue_full("early", "sales", None, None, SITE_A, &[]);
    assert!(matches!(r, Ok(Response::Enqueued { ref queue, exit: None, .. }) if queue.as_str() == "night"), "{r:?}");
    assert!(h.log_lines().iter().any(|l| l.contains("|early|sales|NONE|CLOSED|")));
    // One hour later it is open.
    h.advance(3_600_000);
    let (r, _) = h.enqueue_full("open", "sales", None, None, SITE_A, &[]);
    assert!(matches!(r, Ok(Response::Enqueued { ref queue, .. }) if queue.as_str() == "sales"), "{r:?}");
}

#[test]
fn callback_keeps_the_place_is_dialled_by_the_operators_site_and_retries_bounded() {
    let mut h = Harness::new();
    h.queue(QueueConfig {
        id: QueueId::new("sales"),
        callback_offer_above_eta_ms: Some(60_000),
        callback_max_attempts: 2,
        callback_retry_delay_ms: 30_000,
        default_handle_ms: 300_000,
        ..Default::default()
    });
    h.operator("a", SITE_B, &[("sales", 0)], &[]);
    h.login("a", SITE_B);
    let (_, _, busy_fence) = Harness::the_offer(&h.enqueue("busy", "sales", SITE_A));
    h.connect("busy", "a", busy_fence);
    let effects = h.enqueue("cb", "sales", SITE_A);
    // ETA = ceil(1/1) * 300 s > 60 s: the caller is offered a callback.
    assert!(effects.iter().any(|e| matches!(e, Effect::OfferCallback { eta_ms: 300_000, .. })), "{effects:?}");
    h.enqueue("later", "sales", SITE_A);
    let (r, _) = h.ok(CommandBody::RequestCallback { call: id("cb"), number: "+33123456789".into() });
    assert_eq!(r, Response::CallbackAccepted { position: 1 });
    assert_eq!(h.routing.position(&id("cb")), Some(1), "kept its place");
    let (bad, _) = h.apply(CommandBody::RequestCallback { call: id("later"), number: "12;9".into() });
    assert!(matches!(bad, Err(CoreError::InvalidField { .. })));
    let effects = h.complete("busy", busy_fence, HungUpBy::Caller);
    let dial = effects
        .iter()
        .find_map(|e| match e {
            Effect::DialCallback(o) => Some(o.clone()),
            _ => None,
        })
        .expect("callback dialled");
    assert_eq!(
        (dial.call.as_str(), dial.callback_number.as_deref(), dial.operator_site),
        ("cb", Some("+33123456789"), SITE_B)
    );
    assert!(Effect::DialCallback(dial.clone()).is_for(SITE_B));
    // First attempt fails: back in line (still first), not offered again before the delay.
    let (_, effects) = h.ok(CommandBody::CallbackResult {
        call: id("cb"),
        operator: OperatorId::new("a"),
        fence: dial.fence,
        answered: false,
    });
    assert_eq!(Harness::the_offer(&effects).0, "later", "the next caller is served meanwhile");
    let later_fence = Harness::the_offer(&effects).2;
    h.connect("later", "a", later_fence);
    h.complete("later", later_fence, HungUpBy::Caller);
    let effects = h.advance(30_000);
    let (call, _, fence) = Harness::the_offer(&effects);
    assert_eq!(call, "cb");
    // Second (last) attempt fails: the promise ends with an explicit outcome.
    h.ok(CommandBody::CallbackResult { call: id("cb"), operator: OperatorId::new("a"), fence, answered: false });
    assert_eq!(h.outcome_of("cb"), Some(Outcome::CallbackFailed));
}

#[test]
fn answered_callback_completes_like_a_call() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.operator("a", SITE_A, &[("sales", 0)], &[]);
    h.enqueue("cb", "sales", SITE_A);
    h.ok(CommandBody::RequestCallback { call: id("cb"), number: "5550100".into() });
    let (_, _, fence) = Harness::the_offer(&h.login("a", SITE_A));
    h.ok(CommandBody::CallbackResult { call: id("cb"), operator: OperatorId::new("a"), fence, answered: true });
    h.complete("cb", fence, HungUpBy::Caller);
    assert_eq!(h.outcome_of("cb"), Some(Outcome::Completed { by: HungUpBy::Caller }));
}

#[test]
fn pull_mode_never_auto_offers_and_operators_take_calls() {
    let mut h = Harness::new();
    h.queue(QueueConfig { id: QueueId::new("back-office"), pull_only: true, ..Default::default() });
    h.operator("a", SITE_A, &[("back-office", 0)], &[]);
    h.login("a", SITE_A);
    Harness::no_offer(&h.enqueue("first", "back-office", SITE_A));
    Harness::no_offer(&h.enqueue("second", "back-office", SITE_A));
    // Take a named caller out of order (an explicit, documented exception to global order).
    let (r, effects) = h.ok(CommandBody::Pull { operator: OperatorId::new("a"), call: Some(id("second")) });
    assert!(matches!(r, Response::Pulled { ref call, .. } if call.as_str() == "second"));
    let (_, _, fence) = Harness::the_offer(&effects);
    h.connect("second", "a", fence);
    h.complete("second", fence, HungUpBy::Operator);
    let (r, _) = h.ok(CommandBody::Pull { operator: OperatorId::new("a"), call: None });
    assert!(matches!(r, Response::Pulled { ref call, .. } if call.as_str() == "first"));
    let (r, _) = h.apply(CommandBody::Pull { operator: OperatorId::new("a"), call: None });
    assert!(r.is_err(), "busy operators cannot pull");
}

#[test]
fn pullable_calls_are_exactly_those_pull_would_take_in_global_order() {
    let mut h = Harness::new();
    h.queue(QueueConfig { id: QueueId::new("back-office"), pull_only: true, ..Default::default() });
    h.queue(QueueConfig { id: QueueId::new("other"), pull_only: true, ..Default::default() });
    h.operator("a", SITE_A, &[("back-office", 0)], &[]);
    h.login("a", SITE_A);
    for call in ["first", "elsewhere", "second", "third"] {
        let queue = if call == "elsewhere" { "other" } else { "back-office" };
        Harness::no_offer(&h.enqueue(call, queue, SITE_A));
    }
    let operator = OperatorId::new("a");
    let listed = |h: &Harness, max| -> Vec<String> {
        h.routing.pullable_calls(&operator, max).into_iter().map(|c| c.to_string()).collect()
    };
    // Not a member of "other": never listed, and Pull refuses it too.
    assert_eq!(listed(&h, 10), vec!["first", "second", "third"]);
    assert_eq!(listed(&h, 2), vec!["first", "second"]);
    assert!(h.apply(CommandBody::Pull { operator: operator.clone(), call: Some(id("elsewhere")) }).0.is_err());
    // On a break the operator still sees what it may take (Pull waits for it to be available).
    h.ok(CommandBody::OperatorState {
        operator: operator.clone(),
        state: RequestedState::Break { reason: "lunch".into() },
    });
    assert_eq!(listed(&h, 10), vec!["first", "second", "third"]);
    h.ok(CommandBody::OperatorState { operator: operator.clone(), state: RequestedState::Available });
    h.ok(CommandBody::Pull { operator: operator.clone(), call: Some(id("second")) });
    assert_eq!(listed(&h, 10), vec!["first", "third"], "an offered call is no longer waiting");
    assert!(h.routing.pullable_calls(&OperatorId::new("nobody"), 10).is_empty());
}

#[test]
fn supervisor_reassigns_keeping_age_and_changes_priority() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.simple_queue("support");
    h.enqueue("s-new", "support", SITE_A);
    h.enqueue("x", "sales", SITE_A);
    h.enqueue("s-newer", "support", SITE_A);
    // x entered before s-newer but after s-new.
    h.ok(CommandBody::Reassign { call: id("x"), queue: QueueId::new("support"), keep_age: true });
    assert_eq!(h.routing.position(&id("x")), Some(2));
    assert!(h.log_lines().iter().any(|l| l.contains("|x|sales|NONE|REASSIGN|support|1|1|0")));
    h.ok(CommandBody::ChangePriority { call: id("x"), priority: PRIORITY_VIP });
    assert_eq!(h.routing.position(&id("x")), Some(1));
    h.ok(CommandBody::Reassign { call: id("s-new"), queue: QueueId::new("sales"), keep_age: false });
    let order: Vec<String> = h.routing.waiting_calls().into_iter().map(|w| w.call.to_string()).collect();
    assert_eq!(order, vec!["x", "s-newer", "s-new"]);
}

#[test]
fn ring_mode_misses_rest_the_operator_then_put_it_on_break() {
    let mut h = Harness::new();
    h.queue(QueueConfig {
        id: QueueId::new("sales"),
        misses_before_break: 2,
        miss_backoff_ms: 5_000,
        ring_timeout_ms: 15_000,
        ..Default::default()
    });
    h.ring_operator("r", SITE_B, &[("sales", 0)]);
    h.login("r", SITE_B);
    let offer = Harness::offers(&h.enqueue("c1", "sales", SITE_A)).remove(0);
    assert_eq!(
        (offer.mode, offer.endpoint.as_deref(), offer.ring_timeout_ms),
        (OperatorMode::Ring, Some("PJSIP/r"), 15_000)
    );
    h.now_ms += 15_000;
    let (_, effects) =
        h.ok(CommandBody::RingNoAnswer { call: id("c1"), operator: OperatorId::new("r"), fence: offer.fence });
    Harness::no_offer(&effects);
    assert!(effects.iter().any(|e| matches!(e, Effect::CancelOffer { .. })));
    assert_eq!(h.routing.position(&id("c1")), Some(1), "caller back at the head");
    // The operator rests 5 s, then gets the caller again; the core's own deadline counts as a miss.
    let effects = h.advance(5_000);
    let (_, _, fence2) = Harness::the_offer(&effects);
    assert!(fence2 > offer.fence);
    let effects = h.advance(15_000 + routing::OFFER_RING_GRACE_MS);
    assert!(effects.iter().any(|e| matches!(e, Effect::CancelOffer { .. })));
    assert_eq!(h.status("r"), OperatorStatus::Break { reason: "missed-offers".into() });
    assert!(h.log_lines().iter().filter(|l| l.contains("RINGNOANSWER")).count() == 2);
    // A stale Connected for an expired offer is refused by its fence and changes nothing.
    let (r, _) = h.apply(CommandBody::Connected { call: id("c1"), operator: OperatorId::new("r"), fence: fence2 });
    assert!(matches!(r, Err(CoreError::StaleFence { .. })));
}

#[test]
fn abandon_while_offered_releases_the_operator_and_withdraws_the_offer() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.operator("a", SITE_B, &[("sales", 0)], &[]);
    h.login("a", SITE_B);
    let (_, _, fence) = Harness::the_offer(&h.enqueue("c1", "sales", SITE_A));
    let (_, effects) = h.ok(CommandBody::Abandoned { call: id("c1") });
    assert!(effects.iter().any(|e| matches!(e, Effect::CancelOffer { fence: f, .. } if *f == fence)));
    assert_eq!(h.status("a"), OperatorStatus::Available);
    assert_eq!(h.outcome_of("c1"), Some(Outcome::Abandoned));
    assert!(h.log_lines().iter().any(|l| l.contains("|c1|sales|a|RINGCANCELED|")));
    assert!(h.log_lines().iter().any(|l| l.contains("|c1|sales|NONE|ABANDON|1|1|0")));
}

#[test]
fn exit_key_returns_the_caller_to_the_dialplan() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.enqueue("c1", "sales", SITE_A);
    let (_, effects) = h.ok(CommandBody::ExitWithKey { call: id("c1"), key: '0' });
    assert!(effects.iter().any(|e| matches!(e, Effect::Exit { outcome: Outcome::ExitWithKey { key: '0' }, .. })));
    assert!(h.log_lines().iter().any(|l| l.contains("|c1|sales|NONE|EXITWITHKEY|0|1|1|0")));
    let (r, _) = h.apply(CommandBody::ExitWithKey { call: id("c1"), key: '0' });
    assert!(matches!(r, Err(CoreError::UnknownCall(_))));
}

#[test]
fn wrap_up_then_available_and_break_requested_during_a_call_waits_for_its_end() {
    let mut h = Harness::new();
    h.queue(QueueConfig { id: QueueId::new("sales"), wrap_up_ms: 30_000, ..Default::default() });
    h.operator("a", SITE_A, &[("sales", 0)], &[]);
    h.login("a", SITE_A);
    let (_, _, fence) = Harness::the_offer(&h.enqueue("c1", "sales", SITE_A));
    h.connect("c1", "a", fence);
    h.enqueue("c2", "sales", SITE_A);
    h.complete("c1", fence, HungUpBy::Caller);
    assert!(matches!(h.status("a"), OperatorStatus::WrapUp { .. }));
    Harness::no_offer(&h.advance(29_000));
    let (_, _, fence2) = Harness::the_offer(&h.advance(1_000));
    h.connect("c2", "a", fence2);
    let (r, _) = h.ok(CommandBody::OperatorState {
        operator: OperatorId::new("a"),
        state: RequestedState::Break { reason: "lunch".into() },
    });
    assert_eq!(r, Response::AfterCurrentCall);
    h.complete("c2", fence2, HungUpBy::Caller);
    assert_eq!(h.status("a"), OperatorStatus::Break { reason: "lunch".into() });
    assert!(h.log_lines().iter().any(|l| l.ends_with("|NONE|sales|a|PAUSE|lunch")));
}

#[test]
fn operator_in_several_queues_takes_the_globally_first_caller_and_weights_apply() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.simple_queue("support");
    h.operator("a", SITE_A, &[("sales", 0), ("support", 0)], &[]);
    h.enqueue("support-old", "support", SITE_A);
    h.enqueue("sales-new", "sales", SITE_B);
    assert_eq!(Harness::the_offer(&h.login("a", SITE_A)).0, "support-old");
    // A heavier queue is served first whatever the arrival.
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.queue(QueueConfig { id: QueueId::new("vip-line"), weight: 10, ..Default::default() });
    h.operator("a", SITE_A, &[("sales", 0), ("vip-line", 0)], &[]);
    h.enqueue("sales-old", "sales", SITE_A);
    h.enqueue("vip-new", "vip-line", SITE_A);
    assert_eq!(Harness::the_offer(&h.login("a", SITE_A)).0, "vip-new");
}

#[test]
fn site_lost_ends_its_callers_frees_offers_and_keeps_callback_promises() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.operator("b", SITE_B, &[("sales", 0)], &[]);
    h.operator("a", SITE_A, &[("sales", 0)], &[]);
    h.login("b", SITE_B);
    let (_, _, fence) = Harness::the_offer(&h.enqueue("on-a-offered", "sales", SITE_A));
    h.enqueue("on-a-waiting", "sales", SITE_A);
    h.enqueue("on-b", "sales", SITE_B);
    h.enqueue("promise", "sales", SITE_A);
    h.ok(CommandBody::RequestCallback { call: id("promise"), number: "5550100".into() });
    let _ = fence;
    h.login("a", SITE_A);
    let effects = h.ok(CommandBody::SiteLost { site: SITE_A }).1;
    assert_eq!(h.outcome_of("on-a-offered"), Some(Outcome::SiteLost));
    assert_eq!(h.outcome_of("on-a-waiting"), Some(Outcome::SiteLost));
    assert_eq!(h.status("a"), OperatorStatus::Offline);
    // b was released and took the next caller that still exists.
    assert_eq!(Harness::the_offer(&effects).0, "on-b");
    assert!(h.routing.position(&id("promise")).is_some(), "callback promise kept, served elsewhere");
    let (r, _) = h.enqueue_full("new-on-a", "sales", None, None, SITE_A, &[]);
    assert_eq!(r, Err(CoreError::SiteDown(SITE_A)));
    h.ok(CommandBody::SiteBack { site: SITE_A });
    h.enqueue("new-on-a", "sales", SITE_A);
}

/// The double booking seen on real Asterisk boxes: a silent caller's site was declared lost,
/// which freed its connected operator at another site for a second caller while both boxes
/// still carried the first call. Silence makes a site unreachable, which ends nothing.
#[test]
fn an_unreachable_site_keeps_its_calls_and_nothing_is_offered_across_it() {
    let mut h = Harness::new();
    h.queue(QueueConfig { id: QueueId::new("sales"), max_wait_ms: Some(300_000), ..Default::default() });
    h.operator("b", SITE_B, &[("sales", 0)], &[]);
    h.operator("b2", SITE_B, &[("sales", 0)], &[]);
    h.operator("a", SITE_A, &[("sales", 0)], &[]);
    h.login("b", SITE_B);
    let (_, _, fence) = Harness::the_offer(&h.enqueue("talking", "sales", SITE_A));
    h.connect("talking", "b", fence);
    h.enqueue("on-a-waiting", "sales", SITE_A);
    let (_, _, offer_to_a) = Harness::the_offer(&h.login("a", SITE_A));
    h.enqueue("on-b-waiting", "sales", SITE_B);

    h.ok(CommandBody::SiteUnreachable { site: SITE_A });
    assert!(h.routing.is_site_unreachable(SITE_A));
    assert_eq!(h.status("b"), OperatorStatus::Busy { call: id("talking"), fence });
    // Nothing ends however long the silence, and the offer to a's operator stands.
    let effects = h.advance(120_000);
    assert!(h.outcomes().is_empty(), "silence ended calls: {:?}", h.outcomes());
    assert!(matches!(h.status("a"), OperatorStatus::Offered { .. }));
    Harness::no_offer(&effects);
    // Nothing is offered across it: b2 at site B does not get site A's caller, only B's own.
    let effects = h.login("b2", SITE_B);
    assert_eq!(Harness::the_offer(&effects).0, "on-b-waiting");
    h.routing.check_invariants().unwrap();

    // The site is heard again: its timers run again (the offer it never answered is taken
    // back), and its caller is offered again.
    h.ok(CommandBody::SiteBack { site: SITE_A });
    assert!(!h.routing.is_site_unreachable(SITE_A));
    h.complete("talking", fence, HungUpBy::Caller);
    let effects = h.advance(2_000);
    assert!(!matches!(h.status("a"), OperatorStatus::Offered { fence, .. } if fence == offer_to_a));
    assert_eq!(Harness::the_offer(&effects).0, "on-a-waiting");
    h.routing.check_invariants().unwrap();
}

#[test]
fn an_operator_at_an_unreachable_site_is_offered_nothing_until_it_is_back() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.operator("b", SITE_B, &[("sales", 0)], &[]);
    h.login("b", SITE_B);
    h.ok(CommandBody::SiteUnreachable { site: SITE_B });
    Harness::no_offer(&h.enqueue("on-a", "sales", SITE_A));
    assert_eq!(h.status("b"), OperatorStatus::Available);
    let (_, effects) = h.ok(CommandBody::SiteBack { site: SITE_B });
    assert_eq!(Harness::the_offer(&effects).0, "on-a");
    // Unreachable is not lost: a new caller at an unreachable site is still admitted.
    h.ok(CommandBody::SiteUnreachable { site: SITE_A });
    let (r, _) = h.enqueue_full("new-on-a", "sales", None, None, SITE_A, &[]);
    assert!(r.is_ok(), "{r:?}");
    h.routing.check_invariants().unwrap();
}

/// An operator at a silent site who becomes available there (their site's report of the
/// end of a break, committed before the leader marks the site back; or the end of their
/// wrap-up, on the leader's clock) is not offered a caller across the silence: no other site
/// can reach their phone. Found while building the island fork.
#[test]
fn an_operator_coming_free_at_an_unreachable_site_is_offered_nothing_until_it_is_back() {
    let mut h = Harness::new();
    h.queue(QueueConfig { id: QueueId::new("sales"), wrap_up_ms: 30_000, ..Default::default() });
    h.operator("on-break", SITE_B, &[("sales", 0)], &[]);
    h.operator("wrapping", SITE_B, &[("sales", 0)], &[]);
    h.login("on-break", SITE_B);
    let pause = RequestedState::Break { reason: "lunch".into() };
    h.ok(CommandBody::OperatorState { operator: OperatorId::new("on-break"), state: pause });
    h.login("wrapping", SITE_B);
    let (_, _, fence) = Harness::the_offer(&h.enqueue("first", "sales", SITE_B));
    h.connect("first", "wrapping", fence);
    h.complete("first", fence, HungUpBy::Caller);
    h.ok(CommandBody::SiteUnreachable { site: SITE_B });
    Harness::no_offer(&h.enqueue("on-a", "sales", SITE_A));

    let back = CommandBody::OperatorState { operator: OperatorId::new("on-break"), state: RequestedState::Available };
    Harness::no_offer(&h.ok(back).1);
    Harness::no_offer(&h.advance(60_000));
    assert_eq!(h.status("on-break"), OperatorStatus::Available);
    assert_eq!(h.status("wrapping"), OperatorStatus::Available);
    h.routing.check_invariants().unwrap();

    let (_, effects) = h.ok(CommandBody::SiteBack { site: SITE_B });
    assert_eq!(Harness::the_offer(&effects).0, "on-a");
    h.routing.check_invariants().unwrap();
}

#[test]
fn a_refused_trunk_call_gives_the_caller_its_place_and_costs_the_operator_nothing() {
    let mut h = Harness::new();
    h.queue(QueueConfig { id: QueueId::new("sales"), misses_before_break: 1, ..Default::default() });
    h.ring_operator("b", SITE_B, &[("sales", 0)]);
    h.login("b", SITE_B);
    let (_, _, fence) = Harness::the_offer(&h.enqueue("c1", "sales", SITE_A));
    let (_, effects) = h.ok(CommandBody::OfferFailed {
        call: id("c1"),
        operator: OperatorId::new("b"),
        fence,
        reason: OfferFailure::TrunkFailed { cause: 34 },
    });
    // Not a miss (no break, nothing in the log), but a short rest so the same failing trunk
    // is not tried again in a tight loop; then offered again.
    Harness::no_offer(&effects);
    assert_eq!(h.status("b"), OperatorStatus::Available);
    assert!(!h.log_lines().iter().any(|l| l.contains("RINGNOANSWER")));
    let effects = h.advance(routing::TRUNK_FAILURE_REST_MS);
    assert_eq!(Harness::the_offer(&effects).0, "c1");
}

/// The caller's site is silent; the operator hangs up at their own site, which frees them
/// there. The outcome waits for the caller's site, which reports it when it is back.
#[test]
fn an_operator_released_by_its_own_site_takes_calls_while_the_callers_site_is_silent() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.operator("b", SITE_B, &[("sales", 0)], &[]);
    h.login("b", SITE_B);
    let (_, _, fence) = Harness::the_offer(&h.enqueue("across", "sales", SITE_A));
    h.connect("across", "b", fence);
    h.ok(CommandBody::SiteUnreachable { site: SITE_A });
    h.advance(30_000);
    let release =
        |call: &str, fence| CommandBody::OperatorLegEnded { call: id(call), operator: OperatorId::new("b"), fence };
    assert!(h.apply(release("across", fence + 1)).0.is_err(), "a stale fence is refused");
    h.ok(release("across", fence));
    assert_eq!(h.status("b"), OperatorStatus::Available);
    assert!(h.apply(release("across", fence)).0.is_err(), "released once");
    assert_eq!(h.outcome_of("across"), None, "the outcome waits for the caller's site");
    // b takes the next caller at its own site meanwhile.
    let (_, _, next_fence) = Harness::the_offer(&h.enqueue("local-b", "sales", SITE_B));
    h.connect("local-b", "b", next_fence);
    h.routing.check_invariants().unwrap();
    h.advance(60_000);

    // The caller's site is back and reports the end it saw; b's current call is untouched.
    h.ok(CommandBody::SiteBack { site: SITE_A });
    h.complete("across", fence, HungUpBy::Operator);
    assert_eq!(h.outcome_of("across"), Some(Outcome::Completed { by: HungUpBy::Operator }));
    assert_eq!(h.status("b"), OperatorStatus::Busy { call: id("local-b"), fence: next_fence });
    // Talk time ends at the release, not when the caller's site reported 60 s later.
    assert!(h.log_lines().iter().any(|l| l.contains("|across|sales|b|COMPLETEAGENT|") && l.contains("|30|")));
    h.routing.check_invariants().unwrap();
}

#[test]
fn only_the_operators_half_of_a_cross_site_call_is_released() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.operator("b", SITE_B, &[("sales", 0)], &[]);
    h.login("b", SITE_B);
    let (_, _, fence) = Harness::the_offer(&h.enqueue("local", "sales", SITE_B));
    h.connect("local", "b", fence);
    let released = h.apply(CommandBody::OperatorLegEnded { call: id("local"), operator: OperatorId::new("b"), fence });
    assert!(released.0.is_err(), "a local call is ended by the site that holds both legs");
    assert_eq!(h.status("b"), OperatorStatus::Busy { call: id("local"), fence });
}

/// Found by the simulator: a caller took a callback, the callback was placed and connected
/// while the caller's first leg still heard the confirmation, then that leg hung up. Its
/// Abandoned ended the connected callback and freed the operator, who was offered another
/// caller while still talking to the callee.
#[test]
fn the_first_leg_hanging_up_never_ends_a_callback_promise() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.operator("a", SITE_A, &[("sales", 0)], &[]);
    h.enqueue("promise", "sales", SITE_A);
    h.ok(CommandBody::RequestCallback { call: id("promise"), number: "5550100".into() });
    let effects = h.login("a", SITE_A);
    let offer = Harness::offers(&effects).pop().expect("the callback is dialled");
    h.ok(CommandBody::CallbackResult {
        call: id("promise"),
        operator: OperatorId::new("a"),
        fence: offer.fence,
        answered: true,
    });
    let (refused, effects) = h.apply(CommandBody::Abandoned { call: id("promise") });
    assert!(refused.is_err() && effects.is_empty(), "{refused:?}");
    assert_eq!(h.status("a"), OperatorStatus::Busy { call: id("promise"), fence: offer.fence });
    assert_eq!(h.outcome_of("promise"), None);
    h.routing.check_invariants().unwrap();
}

/// A snapshot written before the unreachable-site set existed still restores.
#[test]
fn a_snapshot_without_the_unreachable_set_restores() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    let empty_policy = CallbackPolicy { allowed_patterns: vec![], denied_numbers: vec![], denied_prefixes: vec![] };
    h.ok(CommandBody::PutCallbackPolicy(empty_policy));
    h.enqueue("c1", "sales", SITE_A);
    let bytes = h.routing.snapshot_bytes();
    // Last comes the DID map, then before it the webhook list: both empty (a zero byte
    // each). Without each the bytes are the layout before it, which restores too.
    assert!(bytes.ends_with(&[0, 0]));
    let bytes = &bytes[..bytes.len() - 1];
    assert_eq!(Routing::restore(bytes).unwrap().snapshot_bytes(), h.routing.snapshot_bytes());
    let bytes = &bytes[..bytes.len() - 1];
    assert_eq!(Routing::restore(bytes).unwrap().snapshot_bytes(), h.routing.snapshot_bytes());
    // Then the island state: no fork, no merge open, none merged (three zero bytes).
    // Without the last two the bytes are the layout before island merges, which restores
    // too; without all three, the layout before islands.
    assert!(bytes.ends_with(&[0, 0, 0]));
    let before_merges = Routing::restore(&bytes[..bytes.len() - 2]).unwrap();
    assert_eq!(before_merges.snapshot_bytes(), h.routing.snapshot_bytes());
    let bytes = &bytes[..bytes.len() - 3];
    // Then the alarms: the default policy (80, 80, 30 000 ms, no queues) and no raise
    // times. Without them the bytes are the layout before alarms, which restores too.
    let alarms = [80, 80, 0xfb, 0x30, 0x75, 0, 0];
    assert!(bytes.ends_with(&alarms));
    let bytes = &bytes[..bytes.len() - alarms.len()];
    let before_alarms = Routing::restore(bytes).unwrap();
    assert_eq!(before_alarms.alarm_policy(), &AlarmPolicy::default());
    // The older layout is that without its last three fields: the outages, the phone
    // logins (two empty maps each) and the callback policy (three empty lists).
    assert!(bytes.ends_with(&[0; 7]));
    let old = &bytes[..bytes.len() - 7];
    let restored = Routing::restore(old).unwrap();
    restored.check_invariants().unwrap();
    assert_eq!(restored.position(&CallId::new("c1")), Some(1));
    assert_eq!(restored.callback_policy(), &CallbackPolicy::default(), "the default policy, not none");
}

#[test]
fn announcements_report_position_and_eta_rounded_up() {
    let mut h = Harness::new();
    h.queue(QueueConfig {
        id: QueueId::new("sales"),
        announce_every_ms: Some(30_000),
        default_handle_ms: 100_000,
        periodic_messages: vec!["queue-periodic-announce".into()],
        periodic_every_ms: Some(45_000),
        ..Default::default()
    });
    h.operator("a", SITE_A, &[("sales", 0)], &[]);
    h.operator("b", SITE_A, &[("sales", 0)], &[]);
    h.login("a", SITE_A);
    h.login("b", SITE_A);
    h.enqueue("busy1", "sales", SITE_A);
    h.enqueue("busy2", "sales", SITE_A);
    let effects = h.enqueue("c1", "sales", SITE_A);
    // position 1, two staffed operators: ceil(1/2) = 1 handle time.
    assert!(
        effects.iter().any(|e| matches!(
            e,
            Effect::Announce { announcement: Announcement::Position { position: 1, eta_ms: Some(100_000) }, .. }
        )),
        "{effects:?}"
    );
    let effects = h.enqueue("c2", "sales", SITE_A);
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Announce { announcement: Announcement::Position { position: 2, eta_ms: Some(100_000) }, .. }
    )));
    let effects = h.enqueue("c3", "sales", SITE_A);
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Announce { announcement: Announcement::Position { position: 3, eta_ms: Some(200_000) }, .. }
    )));
    let effects = h.advance(30_000);
    let announced: Vec<_> = effects
        .iter()
        .filter(|e| matches!(e, Effect::Announce { announcement: Announcement::Position { .. }, .. }))
        .count()
        .to_string()
        .chars()
        .collect();
    assert_eq!(announced, vec!['3']);
    let effects = h.advance(15_000);
    assert!(effects.iter().any(|e| matches!(e, Effect::Announce { announcement: Announcement::Message { .. }, .. })));
    assert_eq!(h.routing.call_position(&id("c3")), Some((3, Some(200_000))));
}

#[test]
fn alarms_raise_and_clear() {
    let mut h = Harness::new();
    h.queue(QueueConfig {
        id: QueueId::new("sales"),
        alarm_depth: Some(2),
        alarm_longest_wait_ms: Some(60_000),
        ..Default::default()
    });
    h.enqueue("c1", "sales", SITE_A);
    h.enqueue("c2", "sales", SITE_A);
    let effects = h.advance(1_000);
    assert!(effects.iter().any(|e| matches!(e, Effect::Alarm { kind: AlarmKind::Depth, raised: true, .. })));
    let effects = h.advance(59_000);
    assert!(effects.iter().any(|e| matches!(e, Effect::Alarm { kind: AlarmKind::LongestWait, raised: true, .. })));
    h.ok(CommandBody::Abandoned { call: id("c1") });
    h.ok(CommandBody::Abandoned { call: id("c2") });
    // Depth was raised a minute ago and clears; the longest wait is held for its 30 s.
    let effects = h.advance(1_000);
    assert_eq!(alarm_flips(&effects), vec![(AlarmKind::Depth, false, 0, 1)]);
    let effects = h.advance(ALARM_HOLD_DEFAULT_MS);
    assert_eq!(alarm_flips(&effects), vec![(AlarmKind::LongestWait, false, 0, 48_000)]);
}

/// (kind, raised, value, level crossed) of each alarm effect, in order.
fn alarm_flips(effects: &[Effect]) -> Vec<(AlarmKind, bool, u64, u64)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Alarm { kind, raised, value, threshold, .. } => Some((*kind, *raised, *value, *threshold)),
            _ => None,
        })
        .collect()
}

/// A depth queue raising at 8 (clear level 6 by default) with callers c0..c{depth-1}.
fn depth_alarm_harness(depth: usize) -> Harness {
    let mut h = Harness::new();
    h.queue(QueueConfig { id: QueueId::new("sales"), alarm_depth: Some(8), ..Default::default() });
    for n in 0..depth {
        h.enqueue(&format!("c{n}"), "sales", SITE_A);
    }
    h
}

#[test]
fn a_depth_hovering_at_its_level_raises_once_and_clears_once() {
    let mut h = depth_alarm_harness(7);
    let mut flips = Vec::new();
    // Depth 8, 7, 8, 7, ... for ten minutes, a change every 3 s.
    for step in 0..200u32 {
        if step % 2 == 0 {
            h.enqueue(&format!("x{step}"), "sales", SITE_A);
        } else {
            h.ok(CommandBody::Abandoned { call: id(&format!("x{}", step - 1)) });
        }
        flips.extend(alarm_flips(&h.advance(3_000)));
    }
    assert_eq!(flips, vec![(AlarmKind::Depth, true, 8, 8)]);
    // Down to the clear level (6): it clears, once.
    h.ok(CommandBody::Abandoned { call: id("c0") });
    flips.extend(alarm_flips(&h.advance(1_000)));
    for _ in 0..10 {
        flips.extend(alarm_flips(&h.advance(3_000)));
    }
    assert_eq!(flips, vec![(AlarmKind::Depth, true, 8, 8), (AlarmKind::Depth, false, 6, 6)]);
    assert!(!h.routing.queue_summary(&QueueId::new("sales")).unwrap().alarm_depth);
}

#[test]
fn a_raised_alarm_is_held_before_it_clears() {
    let mut h = depth_alarm_harness(8);
    assert_eq!(alarm_flips(&h.advance(1_000)), vec![(AlarmKind::Depth, true, 8, 8)]);
    for n in 0..8 {
        h.ok(CommandBody::Abandoned { call: id(&format!("c{n}")) });
    }
    // Empty at once, but raised 1 s ago: held until 30 s after the raise.
    let mut cleared_after_ms = None;
    for second in 2..=40u64 {
        if !alarm_flips(&h.advance(1_000)).is_empty() {
            cleared_after_ms = Some(second * 1_000);
            break;
        }
    }
    assert_eq!(cleared_after_ms, Some(1_000 + ALARM_HOLD_DEFAULT_MS));
}

#[test]
fn the_alarm_policy_sets_clear_levels_and_hold() {
    let mut h = depth_alarm_harness(8);
    let mut policy = AlarmPolicy { hold_ms: 0, ..Default::default() };
    policy.queues.insert(QueueId::new("sales"), QueueAlarmClear { depth_clear: Some(3), longest_wait_clear_ms: None });
    h.ok(CommandBody::PutAlarmPolicy(policy.clone()));
    assert_eq!(h.routing.alarm_policy(), &policy);
    assert_eq!(alarm_flips(&h.advance(1_000)), vec![(AlarmKind::Depth, true, 8, 8)]);
    for n in 0..4 {
        h.ok(CommandBody::Abandoned { call: id(&format!("c{n}")) });
        assert!(alarm_flips(&h.advance(1_000)).is_empty(), "still above 3 at depth {}", 7 - n);
    }
    h.ok(CommandBody::Abandoned { call: id("c4") });
    assert_eq!(alarm_flips(&h.advance(1_000)), vec![(AlarmKind::Depth, false, 3, 3)]);
    let (refused, _) =
        h.apply(CommandBody::PutAlarmPolicy(AlarmPolicy { depth_clear_percent: 100, ..Default::default() }));
    assert!(refused.unwrap_err().to_string().contains("alarm_policy.depth_clear_percent"));
}

#[test]
fn bad_commands_are_refused_and_change_nothing() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.operator("a", SITE_A, &[("sales", 0)], &[]);
    h.enqueue("c1", "sales", SITE_A);
    let before = h.routing.snapshot_bytes();
    let bad = vec![
        CommandBody::Enqueue(Enqueue {
            call: id("../etc"),
            queue: QueueId::new("sales"),
            gate: None,
            priority: None,
            caller_number: "1".into(),
            caller_name: "x".into(),
            site: SITE_A,
            channel: Some("ch".into()),
            skills: Default::default(),
            callback_number: None,
        }),
        CommandBody::Enqueue(Enqueue {
            call: id("c2"),
            queue: QueueId::new("nope"),
            gate: None,
            priority: None,
            caller_number: "1".into(),
            caller_name: "x".into(),
            site: SITE_A,
            channel: Some("ch".into()),
            skills: Default::default(),
            callback_number: None,
        }),
        CommandBody::Enqueue(Enqueue {
            call: id("c1"),
            queue: QueueId::new("sales"),
            gate: None,
            priority: None,
            caller_number: "1".into(),
            caller_name: "x".into(),
            site: SITE_A,
            channel: Some("ch".into()),
            skills: Default::default(),
            callback_number: None,
        }),
        CommandBody::Enqueue(Enqueue {
            call: id("c3"),
            queue: QueueId::new("sales"),
            gate: None,
            priority: None,
            caller_number: "1|2".into(),
            caller_name: "x".into(),
            site: SITE_A,
            channel: Some("ch".into()),
            skills: Default::default(),
            callback_number: None,
        }),
        CommandBody::OperatorLogout { operator: OperatorId::new("a") },
        CommandBody::OperatorLogin { operator: OperatorId::new("ghost"), site: SITE_A, channel: Some("x".into()) },
        CommandBody::OperatorLogin { operator: OperatorId::new("a"), site: SITE_A, channel: None },
        CommandBody::Connected { call: id("c1"), operator: OperatorId::new("a"), fence: 3 },
        CommandBody::Completed { call: id("c1"), fence: 3, by: HungUpBy::Caller },
        CommandBody::RequestCallback { call: id("c1"), number: "555;1".into() },
        CommandBody::ExitWithKey { call: id("c1"), key: 'x' },
        CommandBody::Reassign { call: id("c1"), queue: QueueId::new("nope"), keep_age: true },
        CommandBody::DeleteQueue { queue: QueueId::new("sales") },
        CommandBody::PutQueue(QueueConfig { id: QueueId::new("bad"), max_waiting: 0, ..Default::default() }),
        CommandBody::PutOperator(OperatorConfig {
            id: OperatorId::new("r"),
            mode: OperatorMode::Ring,
            endpoint: Some("PJSIP/x&Local/y".into()),
            ..Default::default()
        }),
        CommandBody::PutSchedule(ScheduleConfig {
            id: ScheduleId::new("s"),
            time_zone: "Nowhere/Else".into(),
            weekly: vec![],
            holidays: vec![],
        }),
    ];
    for body in bad {
        let kind = body.kind();
        let (r, effects) = h.apply(body);
        assert!(r.is_err(), "{kind} should be refused");
        assert!(effects.is_empty(), "{kind} produced effects");
        assert_eq!(
            h.routing.snapshot_bytes().len(),
            before.len() + (h.routing.snapshot_bytes().len() - before.len()),
            ""
        );
    }
    // Only the dedup window grew: the model is unchanged.
    let mut fresh = Routing::restore(&before).unwrap();
    let cmd = h.command(CommandBody::Tick { now_ms: h.now_ms });
    let a = fresh.apply(100, &cmd).effects;
    let b = h.routing.apply(100, &cmd).effects;
    assert_eq!(a, b);
}

#[test]
fn duplicate_commands_return_the_first_result_and_do_nothing() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    let cmd = h.command(CommandBody::Enqueue(Enqueue {
        call: id("c1"),
        queue: QueueId::new("sales"),
        gate: None,
        priority: None,
        caller_number: "1".into(),
        caller_name: "x".into(),
        site: SITE_A,
        channel: Some("ch".into()),
        skills: Default::default(),
        callback_number: None,
    }));
    let (first, effects) = h.apply_cmd(&cmd);
    assert!(!effects.is_empty());
    let (again, effects) = h.apply_cmd(&cmd);
    assert_eq!(first, again);
    assert!(effects.is_empty());
    assert_eq!(h.routing.result_of(&cmd.id), Some(first));
    assert_eq!(h.routing.call_count(), 1);
}

#[test]
fn a_call_that_ended_is_never_queued_again_even_after_a_restore() {
    // A site that restarts while its caller hears the callback confirmation (or a very
    // late StasisStart) announces the channel again: the call must not get a second outcome.
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.enqueue("c1", "sales", SITE_A);
    h.ok(CommandBody::Abandoned { call: id("c1") });
    let again = |h: &mut Harness| {
        h.apply(CommandBody::Enqueue(Enqueue {
            call: id("c1"),
            queue: QueueId::new("sales"),
            gate: None,
            priority: None,
            caller_number: "1".into(),
            caller_name: "x".into(),
            site: SITE_A,
            channel: Some("ch".into()),
            skills: Default::default(),
            callback_number: None,
        }))
    };
    let (result, effects) = again(&mut h);
    assert_eq!(result, Err(CoreError::DuplicateCall(id("c1"))));
    assert!(effects.is_empty());
    h.routing = Routing::restore(&h.routing.snapshot_bytes()).unwrap();
    let (result, _) = again(&mut h);
    assert_eq!(result, Err(CoreError::DuplicateCall(id("c1"))), "the window survives a snapshot");
    assert_eq!(h.routing.call_count(), 0);
}

#[test]
fn snapshot_restores_identical_future_behaviour() {
    let mut h = Harness::new();
    h.queue(QueueConfig {
        id: QueueId::new("sales"),
        announce_every_ms: Some(10_000),
        max_wait_ms: Some(100_000),
        wrap_up_ms: 5_000,
        ..Default::default()
    });
    h.operator("a", SITE_A, &[("sales", 0)], &[]);
    h.login("a", SITE_A);
    let (_, _, fence) = Harness::the_offer(&h.enqueue("c1", "sales", SITE_A));
    h.enqueue("c2", "sales", SITE_B);
    h.connect("c1", "a", fence);
    let bytes = h.routing.snapshot_bytes();
    let mut restored = Routing::restore(&bytes).unwrap();
    assert_eq!(restored.snapshot_bytes(), bytes);
    let mut index = h.index;
    for step in 0..30u64 {
        let body = match step % 3 {
            0 => CommandBody::Tick { now_ms: h.now_ms + step * 7_000 },
            1 => CommandBody::Completed { call: id("c1"), fence, by: HungUpBy::Caller },
            _ => CommandBody::Enqueue(Enqueue {
                call: id(&format!("n{step}")),
                queue: QueueId::new("sales"),
                gate: None,
                priority: None,
                caller_number: "1".into(),
                caller_name: "x".into(),
                site: SITE_A,
                channel: Some(format!("ch{step}")),
                skills: Default::default(),
                callback_number: None,
            }),
        };
        let cmd = h.command(body);
        index += 1;
        let a = h.routing.apply(index, &cmd);
        let b = restored.apply(index, &cmd);
        assert_eq!(lineup_core::codec::encode(&a).unwrap(), lineup_core::codec::encode(&b).unwrap(), "step {step}");
    }
}

#[test]
fn a_whole_config_set_applies_all_or_nothing_and_reads_back_equal() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.operator("carol", SITE_C, &[("sales", 0)], &[]);
    h.login("carol", SITE_C);
    let mut set = h.routing.config_set();
    set.operators[0].pin_hash = "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA".into();
    set.queues.push(QueueConfig { id: QueueId::new("support"), name: "Support".into(), ..Default::default() });
    set.gates.push(GateConfig { id: GateId::new("web"), queue: QueueId::new("support"), ..Default::default() });
    set.operators[0].memberships.insert(QueueId::new("support"), 1);
    let changes = set.diff_from(&h.routing.config_set());
    let described: Vec<_> = changes.iter().map(|c| (c.action, c.kind, c.id.as_str())).collect();
    assert_eq!(
        described,
        vec![
            (ChangeAction::Added, ConfigKind::Queue, "support"),
            (ChangeAction::Added, ConfigKind::Gate, "web"),
            (ChangeAction::Changed, ConfigKind::Operator, "carol"),
        ]
    );
    assert_eq!(changes[2].fields, vec!["memberships".to_string(), "pin_hash".to_string()]);
    h.ok(CommandBody::ApplyConfig(Box::new(set.clone())));
    assert_eq!(h.routing.config_set(), set.clone().normalized());

    // Removing a queue a caller waits in is refused, and nothing else in the set lands either.
    h.enqueue("c1", "support", SITE_A);
    let mut shrunk = set.clone();
    shrunk.gates.clear();
    shrunk.queues.retain(|q| q.id.as_str() != "support");
    shrunk.operators[0].memberships.remove(&QueueId::new("support"));
    shrunk.queues[0].name = "Renamed".into();
    let before = h.routing.config_set();
    let (result, effects) = h.apply(CommandBody::ApplyConfig(Box::new(shrunk)));
    match result {
        Err(CoreError::InvalidConfig(p)) => assert_eq!((p.kind, p.id.as_str()), (ConfigKind::Queue, "support")),
        other => panic!("expected a refusal naming queue support, got {other:?}"),
    }
    assert!(effects.is_empty());
    assert_eq!(h.routing.config_set(), before);

    // A dangling reference names the object and the field.
    let mut dangling = before.clone();
    dangling.gates[0].queue = QueueId::new("nowhere");
    match h.apply(CommandBody::ApplyConfig(Box::new(dangling))).0 {
        Err(CoreError::InvalidConfig(p)) => {
            assert_eq!((p.kind, p.id.as_str(), p.field.as_str()), (ConfigKind::Gate, "web", "queue"))
        }
        other => panic!("expected a refusal naming gate web, got {other:?}"),
    }

    // A redacted PIN hash (an export made without the admin role) keeps the current hash.
    let mut redacted = before.clone().without_pin_hashes();
    assert_eq!(redacted.operators[0].pin_hash, lineup_core::config_set::REDACTED_PIN_HASH);
    redacted.queues[0].name = "Renamed".into();
    let hash_before = h.routing.operator_config(&OperatorId::new("carol")).unwrap().pin_hash.clone();
    h.ok(CommandBody::ApplyConfig(Box::new(redacted)));
    assert_eq!(h.routing.operator_config(&OperatorId::new("carol")).unwrap().pin_hash, hash_before);
    assert!(hash_before.starts_with("$argon2id$"));
    assert_eq!(h.routing.queue_config(&QueueId::new("sales")).unwrap().name, "Renamed");
    h.routing.check_invariants().unwrap();
}

/// A caller on the second half of a Local channel originated with `channelId=X` enters Stasis
/// as `X;2` (seen on Asterisk 22): it queues like any other; any other `;` is refused.
#[test]
fn a_caller_on_a_local_channel_half_queues() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    let enqueue = |call: &str, channel: &str| {
        CommandBody::Enqueue(Enqueue {
            call: CallId::new(call),
            queue: QueueId::new("sales"),
            gate: None,
            priority: None,
            caller_number: "5551234".into(),
            caller_name: "Caller".into(),
            site: SITE_A,
            channel: Some(channel.into()),
            skills: Default::default(),
            callback_number: None,
        })
    };
    h.apply(enqueue("local", "test-caller-7;2")).0.unwrap();
    assert!(h.apply(enqueue("odd", "test;caller")).0.is_err());
    assert_eq!(h.routing.position(&CallId::new("local")), Some(1));
}

#[test]
fn a_supervisor_hangs_up_a_caller_through_its_site_and_the_sites_report_ends_the_call() {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.enqueue("c1", "sales", SITE_A);
    let (done, effects) = h.ok(CommandBody::HangUpCall { call: id("c1") });
    assert_eq!(done, Response::Done);
    let hang_up = Effect::HangUp { call: id("c1"), site: SITE_A, channel: "ch-c1".into() };
    assert_eq!(effects, vec![hang_up.clone()], "only the order to the caller's site");
    assert!(hang_up.is_for(SITE_A) && !hang_up.is_for(SITE_B) && hang_up.is_call_control());
    assert!(h.routing.calls().any(|c| c.call == id("c1")), "the call ends by the site's report, not here");
    h.ok(CommandBody::Abandoned { call: id("c1") });
    assert_eq!(h.outcome_of("c1"), Some(Outcome::Abandoned));

    let (refused, effects) = h.apply(CommandBody::HangUpCall { call: id("c1") });
    assert!(matches!(refused, Err(CoreError::UnknownCall(_))), "{refused:?}");
    assert!(effects.is_empty());
    h.enqueue("c2", "sales", SITE_B);
    h.ok(CommandBody::SiteUnreachable { site: SITE_B });
    let (refused, _) = h.apply(CommandBody::HangUpCall { call: id("c2") });
    assert_eq!(refused, Err(CoreError::SiteUnreachable(SITE_B)));

    h.enqueue("c3", "sales", SITE_A);
    h.ok(CommandBody::RequestCallback { call: id("c3"), number: "5550100".into() });
    let (refused, _) = h.apply(CommandBody::HangUpCall { call: id("c3") });
    let refusal = refused.unwrap_err().to_string();
    assert!(refusal.contains("callback promise has no caller on the line"), "{refusal}");
}
