//! Callers who found their site's node down (`MissedWhileDown`): recorded in history at
//! their own times, with queue_log lines as app_queue writes them, never for a call Lineup
//! already knows, and once only.

mod common;
use common::*;
use lineup_core::*;

const ENTERED_MS: u64 = 900_000;
const HUNG_UP_MS: u64 = 917_000;

fn missed(call: &str, fallback: bool) -> CommandBody {
    CommandBody::MissedWhileDown(MissedCall {
        call: CallId::new(call),
        queue: QueueId::new("sales"),
        gate: Some(GateId::new("main")),
        site: SITE_A,
        caller_number: "5551234".into(),
        entered_at_ms: ENTERED_MS,
        ended_at_ms: HUNG_UP_MS,
        fallback,
    })
}

fn setup() -> Harness {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.gate("main", "sales", None, Some(3));
    h
}

fn record_of(effects: &[Effect]) -> &CallRecord {
    let records: Vec<&CallRecord> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::CallEnded(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(records.len(), 1, "one call record: {effects:?}");
    records[0]
}

#[test]
fn a_caller_who_hung_up_during_the_retries_is_an_abandon_at_its_own_times() {
    let mut h = setup();
    let (response, effects) = h.ok(missed("1-1700000000.7", false));
    assert_eq!(response, Response::Done);
    let record = record_of(&effects);
    assert_eq!(record.outcome, Outcome::AbandonedNodeDown);
    assert_eq!((record.entered_at_ms, record.ended_at_ms, record.wait_ms), (ENTERED_MS, HUNG_UP_MS, 17_000));
    assert_eq!((record.priority, record.entry_site, record.handle_ms), (3, SITE_A, None));
    assert_eq!(
        h.log_lines(),
        vec![
            "900|1-1700000000.7|sales|NONE|ENTERQUEUE|main|5551234|1".to_string(),
            "917|1-1700000000.7|sales|NONE|ABANDON|1|1|17".to_string(),
        ]
    );
    let stats = h.routing.queue_summary(&QueueId::new("sales")).expect("queue").stats;
    assert_eq!((stats.offered, stats.abandoned), (1, 1));
    // Nothing waits: the caller never was in Lineup's line.
    assert!(h.routing.waiting_calls().is_empty());
}

#[test]
fn a_caller_served_by_the_local_fallback_leaves_with_a_timeout_line() {
    let mut h = setup();
    let (_, effects) = h.ok(missed("1-1700000000.8", true));
    assert_eq!(record_of(&effects).outcome, Outcome::LocalFallback);
    assert_eq!(h.log_lines()[1], "917|1-1700000000.8|sales|NONE|EXITWITHTIMEOUT|1|1|17");
}

#[test]
fn a_call_lineup_knows_is_refused_and_changes_nothing() {
    let mut h = setup();
    h.enqueue("1-1700000000.9", "sales", SITE_A);
    let stats_before = h.routing.queue_summary(&QueueId::new("sales")).expect("queue").stats;
    let (result, effects) = h.apply(missed("1-1700000000.9", false));
    assert_eq!(result, Err(CoreError::DuplicateCall(CallId::new("1-1700000000.9"))));
    assert!(effects.is_empty());
    // The caller still waits in Lineup, and nothing was counted.
    assert_eq!(h.routing.waiting_calls().len(), 1);
    assert_eq!(h.routing.queue_summary(&QueueId::new("sales")).expect("queue").stats, stats_before);
}

#[test]
fn a_replay_and_a_second_report_of_one_caller_record_it_once() {
    let mut h = setup();
    let command = h.command(missed("1-1700000001.1", false));
    let (first, effects) = h.apply_cmd(&command);
    assert_eq!(first, Ok(Response::Done));
    assert_eq!(record_of(&effects).call, CallId::new("1-1700000001.1"));
    // The same command again (a retried proposal): its first result, nothing written.
    let (again, effects) = h.apply_cmd(&command);
    assert_eq!((again, effects.len()), (Ok(Response::Done), 0));
    // The same record under another command id (a site that read it twice): refused.
    let (other, effects) = h.apply(missed("1-1700000001.1", false));
    assert!(matches!(other, Err(CoreError::DuplicateCall(_))), "{other:?}");
    assert!(effects.is_empty());
    // And the channel can no longer enter as a caller.
    let (entry, _) = h.apply(CommandBody::Enqueue(Enqueue {
        call: CallId::new("1-1700000001.1"),
        queue: QueueId::new("sales"),
        gate: None,
        priority: None,
        caller_number: String::new(),
        caller_name: String::new(),
        site: SITE_A,
        channel: Some("1700000001.1".into()),
        skills: Default::default(),
        callback_number: None,
    }));
    assert!(matches!(entry, Err(CoreError::DuplicateCall(_))), "{entry:?}");
}

#[test]
fn bad_records_are_refused() {
    let mut h = setup();
    let mut unknown_queue = missed("1-1700000002.1", false);
    if let CommandBody::MissedWhileDown(m) = &mut unknown_queue {
        m.queue = QueueId::new("nosuch");
        m.gate = None;
    }
    assert_eq!(h.apply(unknown_queue).0, Err(CoreError::UnknownQueue(QueueId::new("nosuch"))));
    let mut backwards = missed("1-1700000002.2", false);
    if let CommandBody::MissedWhileDown(m) = &mut backwards {
        m.ended_at_ms = m.entered_at_ms - 1_000;
    }
    assert!(matches!(h.apply(backwards).0, Err(CoreError::InvalidField { .. })));
    let mut piped = missed("1-1700000002.3", false);
    if let CommandBody::MissedWhileDown(m) = &mut piped {
        m.caller_number = "555|1".into();
    }
    assert!(matches!(h.apply(piped).0, Err(CoreError::InvalidField { .. })));
    assert!(h.outcomes().is_empty());
}
