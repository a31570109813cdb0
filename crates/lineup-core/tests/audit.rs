//! `CommandBody::Audited`: a wrapped write applies exactly like the plain one, plus one
//! `Effect::Audit` appended last; bad actors, nested wrappers and refused inner commands
//! change nothing and record nothing.

mod common;

use common::*;
use lineup_core::*;

fn admin(name: &str) -> AuditActor {
    AuditActor { token_name: name.into(), role: AuditRole::Admin }
}

fn audited(name: &str, body: CommandBody) -> CommandBody {
    CommandBody::Audited { actor: admin(name), body: Box::new(body) }
}

/// Two queues, one logged-in operator (busy with c1), two more callers waiting.
fn busy_centre() -> Harness {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.simple_queue("support");
    h.operator("alice", SITE_A, &[("sales", 0), ("support", 0)], &[]);
    h.login("alice", SITE_A);
    let effects = h.enqueue("c1", "sales", SITE_A);
    let (_, _, fence) = Harness::the_offer(&effects);
    h.connect("c1", "alice", fence);
    h.enqueue("c2", "sales", SITE_A);
    h.enqueue("c3", "sales", SITE_B);
    h
}

fn supervisor_writes() -> Vec<CommandBody> {
    vec![
        CommandBody::Reassign { call: CallId::new("c2"), queue: QueueId::new("support"), keep_age: true },
        CommandBody::ChangePriority { call: CallId::new("c3"), priority: PRIORITY_VIP },
        CommandBody::OperatorState {
            operator: OperatorId::new("alice"),
            state: RequestedState::Break { reason: "lunch".into() },
        },
        CommandBody::OperatorLogout { operator: OperatorId::new("alice") },
        CommandBody::DeleteQueue { queue: QueueId::new("nope") },
    ]
}

#[test]
fn an_audited_write_applies_like_the_plain_one_plus_one_audit_effect() {
    let (mut plain, mut wrapped) = (busy_centre(), busy_centre());
    let mut audited_count = 0;
    for body in supervisor_writes() {
        let (plain_result, plain_effects) = plain.apply(body.clone());
        let (result, mut effects) = wrapped.apply(audited("ops-alice", body.clone()));
        assert_eq!(result, plain_result, "{}", body.kind());
        if plain_result.is_err() {
            assert!(effects.is_empty(), "a refused write records nothing");
            continue;
        }
        audited_count += 1;
        let Some(Effect::Audit(record)) = effects.pop() else { panic!("no audit effect last: {effects:?}") };
        assert_eq!(effects, plain_effects, "{}", body.kind());
        assert_eq!(record.actor, admin("ops-alice"));
        assert_eq!(record.action, body.kind());
        assert_eq!(record.at_ms, wrapped.routing.now_ms());
        assert!(!record.outcome.is_empty());
    }
    assert_eq!(audited_count, 4);
    // Same state, same remembered results: the snapshots are byte for byte the same.
    assert_eq!(plain.routing.snapshot_bytes(), wrapped.routing.snapshot_bytes());
}

#[test]
fn audit_records_name_the_target_and_the_outcome() {
    let mut h = busy_centre();
    let reassign = CommandBody::Reassign { call: CallId::new("c2"), queue: QueueId::new("support"), keep_age: true };
    let (_, effects) = h.ok(audited("ops", reassign));
    let Some(Effect::Audit(record)) = effects.last() else { panic!("no audit effect") };
    assert_eq!((record.target.as_str(), record.outcome.as_str()), ("call:c2 queue:support", "enqueued"));
    let brk = RequestedState::Break { reason: "lunch".into() };
    let (_, effects) =
        h.ok(audited("ops", CommandBody::OperatorState { operator: OperatorId::new("alice"), state: brk }));
    let Some(Effect::Audit(record)) = effects.last() else { panic!("no audit effect") };
    assert_eq!((record.target.as_str(), record.outcome.as_str()), ("operator:alice", "after_current_call"));
}

#[test]
fn bad_actors_and_nested_or_clock_wrappers_are_refused_and_change_nothing() {
    let mut h = busy_centre();
    let write = || CommandBody::ChangePriority { call: CallId::new("c3"), priority: PRIORITY_VIP };
    let long = "x".repeat(AUDIT_ACTOR_NAME_MAX_BYTES + 1);
    let refused = [
        audited("", write()),
        audited(&long, write()),
        audited("ops\nroot", write()),
        audited("ops", audited("ops", write())),
        audited("ops", CommandBody::Tick { now_ms: h.now_ms + 60_000 }),
    ];
    for body in refused {
        let checked = h.routing.check_command(&body);
        let cmd = h.command(body);
        h.index += 1;
        let applied = h.routing.apply(h.index, &cmd);
        assert!(matches!(applied.result, Err(CoreError::InvalidField { .. })), "{:?}", applied.result);
        assert_eq!(checked, applied.result.clone().map(|_| ()));
        assert!(applied.effects.is_empty());
    }
    // Only the deduplication window remembers the refusals.
    let fresh = busy_centre();
    assert_eq!(h.routing.waiting_calls(), fresh.routing.waiting_calls());
    assert_eq!(h.routing.config_set(), fresh.routing.config_set());
    let alice = OperatorId::new("alice");
    assert_eq!(h.routing.operator_view(&alice), fresh.routing.operator_view(&alice));
    assert_eq!(h.routing.now_ms(), fresh.routing.now_ms());
}
