//! Scenarios of an island's merge: what it brings back, and the merge steps the global
//! state refuses (each refusal changes nothing).

mod common;
use common::*;
use lineup_core::island::fork_apply_index;
use lineup_core::stats::Stats;
use lineup_core::*;

const ISLAND: SiteId = SITE_A;
const MEMBERS: [SiteId; 3] = [SITE_A, SITE_B, SITE_C];

/// A queue with an operator at the island's site and one at the majority's, a caller of
/// the island waiting (nobody logged in at its site) and one of the majority's: the state
/// at the fork.
fn before_the_cut() -> Harness {
    let mut h = Harness::new();
    h.simple_queue("sales");
    h.operator("ivy", ISLAND, &[("sales", 1)], &[]);
    h.operator("max", SITE_B, &[("sales", 1)], &[]);
    h.enqueue("early", "sales", ISLAND);
    h
}

/// The island's fork of `h`, as a harness applying fork apply indexes.
fn fork_of(h: &Harness, seq: u64) -> (Harness, IslandEpoch) {
    let epoch = IslandEpoch { site: ISLAND, seq, fork_index: h.index };
    let mut island = Harness::new();
    island.routing = h.routing.fork_island(epoch, &MEMBERS, h.now_ms);
    island.index = fork_apply_index(0, 0).unwrap() - 1;
    (island.now_ms, island.ticked_ms, island.serial) = (h.now_ms, h.ticked_ms, h.serial);
    (island, epoch)
}

/// On the island: Ivy logs in and talks to the early caller; a new caller hangs up.
fn island_day(island: &mut Harness) {
    let effects = island.login("ivy", ISLAND);
    let (call, operator, fence) = Harness::the_offer(&effects);
    assert_eq!((call.as_str(), operator.as_str()), ("early", "ivy"));
    island.advance(5_000);
    island.connect("early", "ivy", fence);
    island.advance(60_000);
    island.complete("early", fence, HungUpBy::Caller);
    island.enqueue("born-here", "sales", ISLAND);
    island.advance(1_000);
    island.ok(CommandBody::Abandoned { call: CallId::new("born-here") });
}

/// What a refusal must leave alone: calls, operators, unreachable sites, the island's
/// mark, the queue's stats.
type Views = (Vec<CallView>, Vec<OperatorView>, Vec<(SiteId, u64)>, Option<IslandMark>, Option<Stats>);

fn views(r: &Routing) -> Views {
    (
        r.calls().collect(),
        r.operators().collect(),
        r.unreachable_sites().collect(),
        r.island_mark(ISLAND).cloned(),
        r.queue_summary(&QueueId::new("sales")).map(|s| s.stats),
    )
}

/// An End carrying nothing.
fn empty_end(epoch: IslandEpoch) -> CommandBody {
    CommandBody::IslandMergeEnd {
        epoch,
        stats: StatsDelta::default(),
        handle_samples: Default::default(),
        pin_failures: Default::default(),
    }
}

fn refused(h: &mut Harness, body: CommandBody) -> CoreError {
    let before = views(&h.routing);
    let (result, effects) = h.apply(body);
    assert!(effects.is_empty(), "a refusal has no effects: {effects:?}");
    assert_eq!(views(&h.routing), before, "a refusal changed the state");
    result.expect_err("refused")
}

#[test]
fn a_merge_brings_back_the_islands_ended_calls_and_stats_once() {
    let mut h = before_the_cut();
    let (mut island, epoch) = fork_of(&h, 1);
    island_day(&mut island);
    h.ok(CommandBody::SiteUnreachable { site: ISLAND });
    h.login("max", SITE_B);
    let stats_before = h.routing.queue_summary(&QueueId::new("sales")).unwrap().stats;
    let eta_before = h.routing.eta_ms(&QueueId::new("sales"), 1);

    let plan = island.routing.merge_plan();
    assert_eq!(plan.live_left_out, 0);
    assert_eq!(plan.commands.len(), 4, "begin, one chunk of records, one of operators, end");
    let CommandBody::IslandMergeEnd { handle_samples, .. } = &plan.commands[3] else { panic!("end last") };
    let talk_ms = 60_000;
    assert_eq!(handle_samples, &[(QueueId::new("sales"), vec![talk_ms])].into_iter().collect());
    let mut merged = Vec::new();
    for body in &plan.commands {
        let (response, effects) = h.ok(body.clone());
        assert_eq!(response, Response::Done);
        assert!(h.routing.is_site_unreachable(ISLAND) || matches!(body, CommandBody::IslandMergeEnd { .. }));
        merged.extend(effects);
    }
    let outcomes: Vec<(String, Outcome)> = merged
        .iter()
        .filter_map(|e| match e {
            Effect::CallEnded(r) => Some((r.call.to_string(), r.outcome.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("early".to_string(), Outcome::Completed { by: HungUpBy::Caller }),
            ("born-here".to_string(), Outcome::Abandoned)
        ]
    );
    assert!(h.routing.call_view(&CallId::new("early")).is_none(), "the global state let go of the early caller");
    let end_index = h.index;
    assert!(merged.contains(&Effect::IslandMerged { site: ISLAND, epoch, end_index }), "{merged:?}");
    assert!(!h.routing.is_site_unreachable(ISLAND) && h.routing.island_mark(ISLAND).is_none());
    assert_eq!(h.routing.island_merged_seq(ISLAND), Some(1));

    let stats = h.routing.queue_summary(&QueueId::new("sales")).unwrap().stats;
    let expected = Stats {
        offered: stats_before.offered + 1,
        answered: stats_before.answered + 1,
        answered_within_service_level: stats_before.answered_within_service_level + 1,
        abandoned: stats_before.abandoned + 1,
        total_wait_ms: stats_before.total_wait_ms + 5_000,
        total_handle_ms: stats_before.total_handle_ms + 60_000,
        handled: stats_before.handled + 1,
        ..stats_before
    };
    assert_eq!(stats, expected);
    // Max alone staffs the queue; its ETA window now holds the island's call.
    assert_ne!(eta_before, Some(60_000));
    assert_eq!(h.routing.eta_ms(&QueueId::new("sales"), 1), Some(60_000));

    // Resent whole, the merge is answered done and changes nothing.
    let bytes = h.routing.snapshot_bytes();
    for body in &plan.commands {
        let (response, effects) = h.ok(body.clone());
        assert_eq!((response, effects), (Response::Done, Vec::new()));
    }
    assert_eq!(views(&h.routing), views(&Routing::restore(&bytes).unwrap()));
}

#[test]
fn records_and_end_before_begin_are_refused() {
    let mut h = before_the_cut();
    let (mut island, epoch) = fork_of(&h, 1);
    island_day(&mut island);
    h.ok(CommandBody::SiteUnreachable { site: ISLAND });
    let plan = island.routing.merge_plan().commands;
    let not_open = CoreError::IslandMergeNotOpen { site: ISLAND, seq: 1 };
    assert_eq!(refused(&mut h, plan[1].clone()), not_open);
    assert_eq!(refused(&mut h, plan[2].clone()), not_open);
    assert_eq!(not_open.to_string(), "island 1 of site 1 is not merging: its merge has not begun");
    // An End before every record is merged.
    h.ok(plan[0].clone());
    let CommandBody::IslandMergeBegin { counts, .. } = &plan[0] else { panic!("begin first") };
    let expected = format!("0 of {} records merged", counts.records);
    let CoreError::IslandMergeIncomplete { detail, .. } = refused(&mut h, empty_end(epoch)) else {
        panic!("not incomplete")
    };
    assert_eq!(detail, expected);
}

#[test]
fn a_plain_site_back_for_a_merging_site_is_refused_until_its_end() {
    let mut h = before_the_cut();
    let (mut island, _) = fork_of(&h, 1);
    island_day(&mut island);
    h.ok(CommandBody::SiteUnreachable { site: ISLAND });
    let plan = island.routing.merge_plan().commands;
    h.ok(plan[0].clone());
    let open = CoreError::IslandMergeOpen { site: ISLAND, open_seq: 1 };
    assert_eq!(refused(&mut h, CommandBody::SiteBack { site: ISLAND }), open);
    assert!(open.to_string().contains("only that merge's end brings it back"), "{open}");
    for body in &plan[1..] {
        h.ok(body.clone());
    }
    assert!(!h.routing.is_site_unreachable(ISLAND));
    assert_eq!(h.ok(CommandBody::SiteBack { site: ISLAND }).0, Response::Done);
}

#[test]
fn merge_steps_of_the_wrong_epoch_or_site_are_refused() {
    let mut h = before_the_cut();
    let (mut island, epoch) = fork_of(&h, 2);
    island_day(&mut island);
    let plan = island.routing.merge_plan().commands;
    // The majority still hears the site: no island to merge.
    let CoreError::InvalidState { what, .. } = refused(&mut h, plan[0].clone()) else { panic!("not invalid") };
    assert_eq!(what, "an island merges only while the majority holds its site unreachable");
    h.ok(CommandBody::SiteUnreachable { site: ISLAND });
    h.ok(plan[0].clone());
    // Another epoch of the same site, or the same seq from another fork index.
    let other = IslandEpoch { seq: 3, ..epoch };
    let open = CoreError::IslandMergeOpen { site: ISLAND, open_seq: 2 };
    assert_eq!(refused(&mut h, empty_end(other)), open);
    let moved = IslandEpoch { fork_index: epoch.fork_index + 1, ..epoch };
    let begin = CommandBody::IslandMergeBegin { epoch: moved, counts: MergeCounts::default(), digest: 0 };
    assert_eq!(refused(&mut h, begin), open);
    // Another site, which no island of is merging.
    let elsewhere = IslandEpoch { site: SITE_B, ..epoch };
    let records = CommandBody::IslandMergeRecords { epoch: elsewhere, first_record: 0, records: Vec::new() };
    assert_eq!(refused(&mut h, records), CoreError::IslandMergeNotOpen { site: SITE_B, seq: 2 });
    // An epoch older than one merged is done, and changes nothing.
    for body in &plan[1..] {
        h.ok(body.clone());
    }
    let older = IslandEpoch { seq: 1, ..epoch };
    let before = views(&h.routing);
    let (response, effects) = h.ok(empty_end(older));
    assert_eq!((response, effects, views(&h.routing)), (Response::Done, Vec::new(), before));
}

#[test]
fn a_chunk_after_a_gap_or_with_other_records_is_refused() {
    let mut h = before_the_cut();
    let (mut island, epoch) = fork_of(&h, 1);
    island_day(&mut island);
    h.ok(CommandBody::SiteUnreachable { site: ISLAND });
    let plan = island.routing.merge_plan().commands;
    h.ok(plan[0].clone());
    let CommandBody::IslandMergeRecords { records, .. } = &plan[1] else { panic!("records second") };
    let gap = CommandBody::IslandMergeRecords { epoch, first_record: 1, records: records[1..].to_vec() };
    let CoreError::IslandMergeIncomplete { detail, .. } = refused(&mut h, gap) else { panic!("not incomplete") };
    assert_eq!(detail, "records from 0 expected, the chunk starts at 1");
    // Records that are not those the Begin announced: accepted one by one, refused at the End.
    let mut swapped = records.clone();
    swapped.swap(0, 1);
    h.ok(CommandBody::IslandMergeRecords { epoch, first_record: 0, records: swapped });
    let end = plan.last().unwrap().clone();
    let CoreError::IslandMergeIncomplete { detail, .. } = refused(&mut h, end.clone()) else {
        panic!("not incomplete")
    };
    assert_eq!(detail, "0 of 1 operator chunks merged");
    h.ok(plan[2].clone());
    let CoreError::IslandMergeIncomplete { detail, .. } = refused(&mut h, end) else { panic!("not incomplete") };
    assert_eq!(detail, "the records, calls and operators merged are not those its begin announced");
    assert!(h.routing.is_site_unreachable(ISLAND), "an incomplete merge keeps its site unreachable");
}

#[test]
fn a_fork_refuses_merge_commands() {
    let h = before_the_cut();
    let (mut island, _) = fork_of(&h, 1);
    island_day(&mut island);
    let plan = island.routing.merge_plan().commands;
    for body in plan {
        let CoreError::InvalidState { what, .. } = refused(&mut island, body) else { panic!("not invalid") };
        assert_eq!(what, "an island's fork does not apply merge commands; the global state does");
    }
    assert!(h.routing.merge_plan().commands.is_empty(), "the global state has nothing to merge");
}

/// The island's merged calls, in the plan's order.
fn merged_calls(plan: &[CommandBody]) -> Vec<&MergedCall> {
    plan.iter()
        .filter_map(|c| match c {
            CommandBody::IslandMergeCall { call, .. } => Some(call),
            _ => None,
        })
        .collect()
}

#[test]
fn a_connected_island_call_completes_after_the_merge_with_its_fork_fence() {
    let mut h = before_the_cut();
    let (mut island, _) = fork_of(&h, 1);
    let (_, _, fence) = Harness::the_offer(&island.login("ivy", ISLAND));
    assert!(lineup_core::island::is_fork_apply_index(fence), "the island offers with a fork fence");
    island.advance(2_000);
    island.connect("early", "ivy", fence);
    h.ok(CommandBody::SiteUnreachable { site: ISLAND });

    let plan = island.routing.merge_plan();
    assert_eq!(plan.live_left_out, 0);
    let calls = merged_calls(&plan.commands);
    assert_eq!(calls.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["early"]);
    assert_eq!(calls[0].operator.as_ref().map(|op| op.id.as_str()), Some("ivy"));
    // The harness checks the invariants after every command: the call and Ivy agree in each.
    for body in &plan.commands {
        assert_eq!(h.ok(body.clone()).0, Response::Done);
    }
    let early = h.routing.call_view(&CallId::new("early")).unwrap();
    assert_eq!(
        (early.status, early.operator, early.fence),
        (CallStatus::Connected, Some(OperatorId::new("ivy")), Some(fence))
    );
    assert_eq!(h.status("ivy"), OperatorStatus::Busy { call: CallId::new("early"), fence });
    assert_eq!(h.routing.operator_view(&OperatorId::new("ivy")).unwrap().site, Some(ISLAND));

    // The island's site reports the hang-up it held back during the merge, with the fork fence.
    h.advance(30_000);
    h.complete("early", fence, HungUpBy::Caller);
    assert_eq!(h.outcome_of("early"), Some(Outcome::Completed { by: HungUpBy::Caller }));
    assert!(!matches!(h.status("ivy"), OperatorStatus::Busy { .. }), "Ivy is free after the call");
}

#[test]
fn a_waiting_island_caller_is_placed_by_arrival_among_the_majoritys_callers() {
    let mut h = before_the_cut();
    let (mut island, epoch) = fork_of(&h, 1);
    h.ok(CommandBody::SiteUnreachable { site: ISLAND });
    h.advance(500);
    h.enqueue("before-b", "sales", SITE_B);
    island.advance(1_000);
    island.enqueue("waited-long", "sales", ISLAND);
    h.advance(40_000);
    h.enqueue("after-b", "sales", SITE_B);

    let plan = island.routing.merge_plan().commands;
    let calls = merged_calls(&plan);
    assert_eq!(calls.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["early", "waited-long"]);
    // A Call before the records are in is refused.
    h.ok(plan[0].clone());
    let CoreError::IslandMergeIncomplete { detail, .. } = refused(&mut h, plan[2].clone()) else {
        panic!("not incomplete")
    };
    assert!(detail.starts_with("calls come after the"), "{detail}");
    for body in &plan[1..] {
        h.ok(body.clone());
    }
    let order: Vec<String> = h.routing.waiting_calls().into_iter().map(|w| w.call.to_string()).collect();
    assert_eq!(order, ["early", "before-b", "waited-long", "after-b"]);
    let seq = |call: &str| h.routing.call_view(&CallId::new(call)).unwrap().order_seq;
    assert_eq!(seq("waited-long"), seq("before-b"), "right after the last caller who arrived before it");
    assert!(seq("waited-long") < lineup_core::ISLAND_APPLY_INDEX_BASE);
    assert_eq!(h.routing.island_merged_seq(epoch.site), Some(1));
    // The first operator of the majority to log in takes the callers in that order.
    let (call, _, _) = Harness::the_offer(&h.login("max", SITE_B));
    assert_eq!(call, "early");
}

/// A web callback request the island's site proposed just before the cut committed on both
/// sides (its answer lost, the island applied it too): the majority holds the promise and
/// serves it; the island's copy is skipped and the merge still ends.
#[test]
fn a_promise_both_sides_hold_stays_the_majoritys_and_the_merge_ends() {
    let mut h = before_the_cut();
    let (mut island, _) = fork_of(&h, 1);
    let request = CommandBody::Enqueue(Enqueue {
        call: CallId::new("widget"),
        queue: QueueId::new("sales"),
        gate: None,
        priority: None,
        caller_number: "5550100".into(),
        caller_name: "Web".into(),
        site: ISLAND,
        channel: None,
        skills: Default::default(),
        callback_number: Some("+15550100".into()),
    });
    island.ok(request.clone());
    h.ok(CommandBody::SiteUnreachable { site: ISLAND });
    h.ok(request);
    let held = h.routing.call_view(&CallId::new("widget")).unwrap();
    let plan = island.routing.merge_plan().commands;
    assert!(merged_calls(&plan).iter().any(|c| c.id.as_str() == "widget"));
    for body in &plan {
        h.ok(body.clone());
    }
    assert_eq!(h.routing.call_view(&CallId::new("widget")), Some(held));
    assert!(!h.routing.is_site_unreachable(ISLAND));
}

#[test]
fn a_call_the_majority_ended_is_not_revived_and_a_resent_call_changes_nothing() {
    let mut h = before_the_cut();
    let (mut island, _) = fork_of(&h, 1);
    island.enqueue("walk-in", "sales", ISLAND);
    h.ok(CommandBody::SiteUnreachable { site: ISLAND });
    // The island's site told the majority the early caller hung up, just before the cut.
    h.ok(CommandBody::Abandoned { call: CallId::new("early") });
    let plan = island.routing.merge_plan().commands;
    assert_eq!(merged_calls(&plan).len(), 2);
    let first_call = plan.iter().position(|c| matches!(c, CommandBody::IslandMergeCall { .. })).unwrap();
    for body in &plan[..=first_call + 1] {
        h.ok(body.clone());
    }
    assert!(h.routing.call_view(&CallId::new("early")).is_none(), "its end is merged already");
    let walk_in = h.routing.call_view(&CallId::new("walk-in")).unwrap();
    let bytes = h.routing.snapshot_bytes();
    let (response, effects) = h.ok(plan[first_call + 1].clone());
    assert_eq!((response, effects), (Response::Done, Vec::new()));
    assert_eq!(h.routing.call_view(&CallId::new("walk-in")), Some(walk_in));
    assert_eq!(views(&h.routing), views(&Routing::restore(&bytes).unwrap()));
}

#[test]
fn a_long_island_merges_in_chunks_and_a_resent_chunk_counts_once() {
    let mut h = before_the_cut();
    let (mut island, _) = fork_of(&h, 1);
    for n in 0..150 {
        let call = format!("walk-in-{n}");
        island.enqueue(&call, "sales", ISLAND);
        island.ok(CommandBody::Abandoned { call: CallId::new(call) });
    }
    h.ok(CommandBody::SiteUnreachable { site: ISLAND });
    let offered_before = h.routing.queue_summary(&QueueId::new("sales")).unwrap().stats.offered;
    let plan = island.routing.merge_plan().commands;
    let chunks = plan.iter().filter(|c| matches!(c, CommandBody::IslandMergeRecords { .. })).count();
    assert_eq!(chunks, 2, "450 records in chunks of at most 256");
    // Interrupted after the first chunk, then everything resent from the start.
    let mut ended = Vec::new();
    for body in plan[..2].iter().chain(&plan) {
        ended.extend(h.ok(body.clone()).1.into_iter().filter_map(|e| match e {
            Effect::CallEnded(r) => Some(r.call),
            _ => None,
        }));
    }
    assert_eq!(ended.len(), 150, "each walk-in ended once");
    let stats = h.routing.queue_summary(&QueueId::new("sales")).unwrap().stats;
    assert_eq!((stats.offered - offered_before, stats.abandoned), (150, 150));
}

#[test]
fn an_offer_the_majority_made_after_the_fork_is_withdrawn_at_begin() {
    let mut h = before_the_cut();
    let place = h.routing.call_view(&CallId::new("early")).unwrap().order_seq;
    // The fork is the whole Raft entry holding the last command so far; the majority's
    // next command is in a later entry.
    let fork_entry = h.index / ApplyIndex::STRIDE;
    let epoch = IslandEpoch { site: ISLAND, seq: 1, fork_index: fork_entry };
    let mut island = Harness::new();
    island.routing = h.routing.fork_island(epoch, &MEMBERS, h.now_ms);
    island.index = fork_apply_index(0, 0).unwrap() - 1;
    h.index = ApplyIndex::last_of(fork_entry).get();
    // Before the majority hears the island's silence, Max (at another site) is offered the
    // island's caller: an orphan the island never sees.
    let (_, _, fence) = Harness::the_offer(&h.login("max", SITE_B));
    h.ok(CommandBody::SiteUnreachable { site: ISLAND });
    let begin = island.routing.merge_plan().commands[0].clone();
    let (_, effects) = h.ok(begin);
    let cancel = Effect::CancelOffer {
        call: CallId::new("early"),
        operator: OperatorId::new("max"),
        fence,
        caller_site: ISLAND,
        operator_site: SITE_B,
    };
    assert!(effects.contains(&cancel), "{effects:?}");
    assert_eq!(h.status("max"), OperatorStatus::Available);
    let early = h.routing.call_view(&CallId::new("early")).unwrap();
    assert_eq!((early.status, early.order_seq), (CallStatus::Waiting, place), "the caller keeps its place");
    // Resent, the Begin withdraws nothing more.
    let begin = island.routing.merge_plan().commands[0].clone();
    assert_eq!(h.ok(begin).1, Vec::new());
}

#[test]
fn wrong_pins_typed_on_the_island_count_towards_the_lockout_after_the_merge() {
    let mut h = before_the_cut();
    let (mut island, _) = fork_of(&h, 1);
    let ivy = OperatorId::new("ivy");
    for _ in 0..3 {
        island.advance(1_000);
        island.ok(CommandBody::PinRejected { operator: ivy.clone() });
    }
    h.ok(CommandBody::SiteUnreachable { site: ISLAND });
    for _ in 0..2 {
        h.advance(1_000);
        h.ok(CommandBody::PinRejected { operator: ivy.clone() });
    }
    assert!(!h.routing.pin_locked_out(&ivy) && !island.routing.pin_locked_out(&ivy));
    for body in island.routing.merge_plan().commands {
        h.ok(body);
    }
    assert!(h.routing.pin_locked_out(&ivy), "five wrong PINs within the window, three on the island");
}

#[test]
fn an_end_carrying_more_samples_than_a_window_is_refused() {
    let mut h = before_the_cut();
    let (island, epoch) = fork_of(&h, 1);
    h.ok(CommandBody::SiteUnreachable { site: ISLAND });
    let plan = island.routing.merge_plan().commands;
    h.ok(plan[0].clone());
    let mut end = empty_end(epoch);
    if let CommandBody::IslandMergeEnd { handle_samples, .. } = &mut end {
        handle_samples.insert(QueueId::new("sales"), vec![1_000; lineup_core::stats::HANDLE_WINDOW_SAMPLES + 1]);
    }
    let CoreError::InvalidField { field, .. } = refused(&mut h, end) else { panic!("not invalid") };
    assert_eq!(field, "handle_samples");
    assert!(h.routing.is_site_unreachable(ISLAND));
}
