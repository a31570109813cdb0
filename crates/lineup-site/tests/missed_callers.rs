//! Callers who arrive while the box's node is down: the deploy dialplan retries, then falls
//! back to the box's own queue, and its hangup handler leaves an AstDB record for each. When
//! the node is back, the site books each such caller once and deletes its record. The
//! records are read as the driver reads them (`lineup_testkit::read_missed_records`): on a
//! reader channel of the site's own, whose `StasisStart` the site must not route.

mod common;
use common::*;
use lineup_core::*;

/// The deploy dialplan gives up after 15 tries of 2 s.
const RETRIES_SPAN_MS: u64 = 31_000;

fn rig_with_sales() -> Rig {
    let mut rig = Rig::new();
    rig.queue(QueueConfig { id: QueueId::new("sales"), ..Default::default() });
    rig.gate("main", "sales", None);
    rig.gate("vip", "sales", None);
    rig
}

/// The node stops: Stasis(lineup) fails, and the site hears nothing.
fn node_down(rig: &mut Rig) {
    rig.world.unregister_application(BOX, "lineup");
    rig.deaf[0] = true;
}

/// The node starts again: the application is registered and a fresh controller reconciles.
fn node_up(rig: &mut Rig) {
    rig.world.register_application(BOX, "lineup");
    rig.restart(0);
}

fn records(rig: &Rig) -> Vec<(String, String)> {
    rig.world.astdb_family(BOX, lineup_site::MISSED_FAMILY)
}

fn ended(rig: &Rig, call: &CallId) -> Vec<CallRecord> {
    rig.effects
        .iter()
        .filter_map(|e| match e {
            Effect::CallEnded(r) if &r.call == call => Some(r.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn callers_missed_while_the_node_was_down_reach_the_history_once() {
    let mut rig = rig_with_sales();
    node_down(&mut rig);
    let hung_up = rig.caller("impatient", "5000", Some(7_000));
    let fell_back = rig.caller("patient", "5001", None);
    rig.run_for(RETRIES_SPAN_MS + 2_000);
    assert!(rig.world.ended_channel(BOX, &hung_up).is_some() && rig.world.ended_channel(BOX, &fell_back).is_some());
    assert_eq!(records(&rig).len(), 2, "one record per caller: {:?}", records(&rig));
    assert!(rig.effects.iter().all(|e| !matches!(e, Effect::CallEnded(_))), "nothing booked while down");

    node_up(&mut rig);
    // A second reconcile before the first one's proposals have their results (a reconnect
    // right after the restart) reads the same records again.
    rig.reconnect(0);
    assert!(rig.run_until(10_000, |r| records(r).is_empty()), "records left: {:?}", records(&rig));

    let (hung_up_call, fell_back_call) = (rig.call_id(&hung_up), rig.call_id(&fell_back));
    let abandoned = ended(&rig, &hung_up_call);
    assert_eq!(abandoned.len(), 1, "{abandoned:?}");
    assert_eq!(abandoned[0].outcome, Outcome::AbandonedNodeDown);
    assert_eq!(
        (abandoned[0].gate.clone(), abandoned[0].caller_number.as_str()),
        (Some(GateId::new("main")), "+15551230000")
    );
    assert_eq!(abandoned[0].ended_at_ms - abandoned[0].entered_at_ms, 7_000);
    let fallback = ended(&rig, &fell_back_call);
    assert_eq!(fallback.len(), 1, "{fallback:?}");
    assert_eq!(
        (fallback[0].outcome.clone(), fallback[0].gate.clone()),
        (Outcome::LocalFallback, Some(GateId::new("vip")))
    );
    let lines: Vec<String> = rig
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::QueueLog(l) if l.call.as_ref() == Some(&hung_up_call) => Some(l.to_line()),
            _ => None,
        })
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("|ENTERQUEUE|main|+15551230000|1") && lines[1].ends_with("|ABANDON|1|1|7"), "{lines:?}");
    assert_eq!(rig.site().counters.missed_records_booked, 2);
    assert_eq!(rig.site().counters.missed_records_bad, 0);
    // Every read's reader channel reached the site, which routed none of them.
    assert!(rig.site().counters.missed_readers_ignored >= 2, "{:?}", rig.site().counters);
    assert_eq!(rig.site().counters.callers_invalid, 0);
    assert!(no_reader_left(&rig));

    // Another restart finds nothing more to book.
    let booked = rig.effects.iter().filter(|e| matches!(e, Effect::CallEnded(_))).count();
    rig.restart(0);
    rig.run_for(5_000);
    assert_eq!(rig.effects.iter().filter(|e| matches!(e, Effect::CallEnded(_))).count(), booked);
}

#[test]
fn bad_records_are_dropped_with_a_warning_and_do_not_block_the_others() {
    let mut rig = rig_with_sales();
    node_down(&mut rig);
    let caller = rig.caller("impatient", "5000", Some(3_000));
    rig.run_for(5_000);
    // Records the dialplan would never write: garbage, and a queue Lineup does not have.
    write_record(&mut rig, "not-a-record");
    write_record(&mut rig, "nosuch::1795400001:1795400002:abandoned::1795400001.901");
    node_up(&mut rig);
    assert!(rig.run_until(10_000, |r| records(r).is_empty()), "records left: {:?}", records(&rig));
    assert_eq!(ended(&rig, &rig.call_id(&caller)).len(), 1);
    assert_eq!(rig.site().counters.missed_records_bad, 2);
    let warnings: Vec<&String> = rig
        .ari_log
        .iter()
        .filter_map(|r| match r {
            lineup_site::AriRequest::DeleteMissedRecord { warning: Some(w), .. } => Some(w),
            _ => None,
        })
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings.iter().any(|w| w.contains("unknown queue nosuch")), "{warnings:?}");
}

/// Writes an AstDB record as `database put` on the box's CLI would.
fn write_record(rig: &mut Rig, key: &str) {
    rig.world.astdb_put(BOX, &format!("{}/{key}", lineup_site::MISSED_FAMILY), "1");
}

fn no_reader_left(rig: &Rig) -> bool {
    let channels = rig.world.list_channels(BOX).expect("channels");
    channels.iter().all(|c| !lineup_site::is_missed_reader(&c.id))
}

/// A reader channel left behind by a run that died between creating it and hanging it up:
/// the next run's reconcile hangs it up and routes nothing.
#[test]
fn a_reader_left_by_a_dead_run_is_hung_up_by_the_reconcile() {
    let mut rig = rig_with_sales();
    node_down(&mut rig);
    // The node was up long enough to create its reader, then died (the site hears nothing).
    rig.world.register_application(BOX, "lineup");
    let reader = lineup_site::missed_reader_channel_id(1, 0);
    let request = lineup_testkit::missed_reader_request(&reader);
    rig.world.create_channel(BOX, &request).expect("reader created");
    rig.run_for(1_000);
    assert!(!no_reader_left(&rig));
    node_up(&mut rig);
    assert!(rig.run_until(5_000, no_reader_left), "the reader is still up");
    let counters = &rig.site().counters;
    assert!(counters.missed_readers_hung_up >= 1, "{counters:?}");
    assert_eq!((counters.callers_invalid, counters.channels_adopted), (0, 0), "{counters:?}");
    assert!(rig.effects.iter().all(|e| !matches!(e, Effect::CallEnded(_))), "nothing booked");
}

/// A reader's `StasisStart` is nothing to route, even when the site is full.
#[test]
fn a_reader_stasis_start_is_ignored() {
    let mut rig = rig_with_sales();
    rig.run_for(1_000);
    let before = rig.site().counters.missed_readers_ignored;
    let keys = lineup_testkit::read_missed_records(&mut rig.world, BOX, 10).expect("read");
    assert!(keys.is_empty());
    rig.run_for(1_000);
    let counters = &rig.site().counters;
    assert_eq!(counters.missed_readers_ignored, before + 1, "{counters:?}");
    assert_eq!(counters.callers_invalid, 0);
    assert!(rig.ari_log.iter().all(|r| !format!("{r:?}").contains("missed-reader")), "{:?}", rig.ari_log);
    assert!(no_reader_left(&rig));
}

/// A caller in Stasis whose entry never committed (the node lost the cluster, then stopped)
/// and who hung up before the node was back: the cluster never heard of them, the phones
/// did. The handler's record (no LINEUP_QUEUED on the channel) books them once.
#[test]
fn a_caller_whose_entry_never_committed_and_who_left_while_the_node_was_down_is_booked_once() {
    let mut rig = rig_with_sales();
    rig.unheard[0] = true;
    let caller = rig.caller("impatient", "5000", Some(4_000));
    rig.run_for(1_000);
    assert!(!rig.unheard_proposals.is_empty(), "the entry was proposed and lost");
    rig.deaf[0] = true;
    rig.run_for(5_000);
    assert!(rig.world.ended_channel(BOX, &caller).is_some(), "the caller hung up");
    assert_eq!(records(&rig).len(), 1, "the handler wrote a record: {:?}", records(&rig));

    rig.unheard[0] = false;
    node_up(&mut rig);
    assert!(rig.run_until(10_000, |r| records(r).is_empty()), "records left: {:?}", records(&rig));
    let booked = ended(&rig, &rig.call_id(&caller));
    assert_eq!(booked.len(), 1, "{booked:?}");
    assert_eq!(booked[0].outcome, Outcome::AbandonedNodeDown);
}

/// A caller the cluster had in line carries LINEUP_QUEUED, so leaving while the node was
/// down writes no record: the restarted node's reconcile reports the abandon, once.
#[test]
fn a_queued_caller_who_left_while_the_node_was_down_leaves_no_record_and_is_booked_once() {
    let mut rig = rig_with_sales();
    let caller = rig.caller("impatient", "5000", Some(3_000));
    rig.run_for(1_000);
    let call = rig.call_id(&caller);
    assert!(rig.outcome(&call).is_none() && ended(&rig, &call).is_empty(), "waiting");
    node_down(&mut rig);
    rig.run_for(4_000);
    assert!(rig.world.ended_channel(BOX, &caller).is_some(), "the caller hung up");
    assert_eq!(records(&rig), Vec::new(), "no record for a queued caller");

    node_up(&mut rig);
    assert!(rig.run_until(10_000, |r| !ended(r, &call).is_empty()), "the abandon is reported");
    rig.run_for(2_000);
    let booked = ended(&rig, &call);
    assert_eq!(booked.len(), 1, "{booked:?}");
    assert_eq!(booked[0].outcome, Outcome::Abandoned);
}

/// A caller entering while the site's node hears no quorum (a WAN cut longer than the entry's
/// retries) was handed back with INVALID, which the deploy dialplan hangs up: dropped. Now
/// the result is UNAVAILABLE: the gate sends the caller to the box's own fallback, as when
/// the node is down, its hangup handler keeps a record, and the site, which polls the records
/// while such callers may still be in the fallback, books the caller once the cluster hears
/// it again.
#[test]
fn a_caller_whose_entry_never_commits_goes_to_the_fallback_and_is_booked_once_the_cluster_is_back() {
    let mut rig = rig_with_sales();
    rig.no_quorum[0] = true;
    let caller = rig.caller("cut-off", "5000", None);
    let retries_ms = u64::from(lineup_site::PROPOSE_RETRIES_MAX + 1) * lineup_site::PROPOSE_RETRY_DELAY_MS;
    assert!(rig.run_until(retries_ms + 5_000, |r| r.world.ended_channel(BOX, &caller).is_some()), "still waiting");
    let ended_channel = rig.world.ended_channel(BOX, &caller).expect("ended");
    let variable = |name: &str| ended_channel.variables.get(name).cloned().unwrap_or_default();
    assert_eq!(variable("LINEUP_RESULT"), lineup_site::UNAVAILABLE_RESULT);
    assert_eq!(variable("LINEUP_FALLBACK"), "1", "the gate's fallback took the caller");
    assert_eq!(records(&rig).len(), 1, "{:?}", records(&rig));
    assert_eq!(rig.routing.call_count(), 0, "never in line");
    assert_eq!(rig.site().counters.callers_invalid, 1);

    rig.no_quorum[0] = false;
    let poll_ms = lineup_site::MISSED_RECORDS_POLL_INTERVAL_MS;
    assert!(rig.run_until(poll_ms + 5_000, |r| records(r).is_empty()), "records left: {:?}", records(&rig));
    let booked = ended(&rig, &rig.call_id(&caller));
    assert_eq!(booked.len(), 1, "{booked:?}");
    assert_eq!(
        (booked[0].outcome.clone(), booked[0].gate.clone()),
        (Outcome::LocalFallback, Some(GateId::new("main")))
    );
    rig.run_for(2 * poll_ms);
    assert_eq!(ended(&rig, &rig.call_id(&caller)).len(), 1, "booked once");
}
