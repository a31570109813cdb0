//! Interval reports over a scripted morning, on SQLite and on the real PostgreSQL: the
//! history rows are written as the node writes them (ended calls, operator state changes,
//! the config mirror), and every expected figure is worked out by hand below.
//!
//! The morning, 2026-12-01 UTC. Queue `sales` (service level 20 s), `support` (30 s).
//! | call | queue   | gate | entered  | wait | end                     | talk | operator | wrap |
//! | c0   | sales   |      | 07:59:00 | 10   | answered                | 50   | alice    | -    |
//! | c1   | sales   |      | 08:05:00 | 10   | answered                | 120  | alice    | 30   |
//! | c2   | sales   |      | 08:10:00 | 40   | answered                | 200  | bob      | 20   |
//! | c3   | sales   |      | 08:20:00 | 5    | abandoned               |      |          |      |
//! | c4   | sales   |      | 08:25:00 | 50   | abandoned               |      |          |      |
//! | c5   | sales   |      | 08:30:00 | 300  | timed out               |      |          |      |
//! | c6   | sales   |      | 08:40:00 | 0    | full                    |      |          |      |
//! | c7   | sales   |      | 08:59:59 | 20   | answered                | 60   | alice    | 10   |
//! | c8   | sales   | web  | 09:10:00 | 0    | closed                  |      |          |      |
//! | c9   | sales   | web  | 09:15:00 | 600  | callback, 1 failed, ans.| 90   | bob      | -    |
//! | c10  | sales   | web  | 09:30:00 | 900  | callback, 2 failed, out |      |          |      |
//! | c11  | support |      | 09:05:00 | 25   | answered                | 100  | alice    | -    |

mod common;

use std::collections::BTreeMap;

use common::*;
use lineup_core::*;
use lineup_store::{ConfigMirror, HistoryStore, OperatorReportRow, QueueReportRow, ReportInterval, ReportQuery};

const DAY_MS: u64 = 1_796_083_200_000;
const HOUR_MS: u64 = 3_600_000;

/// `hh:mm:ss` of the scripted day, Unix ms.
fn at(h: u64, m: u64, s: u64) -> u64 {
    DAY_MS + ((h * 60 + m) * 60 + s) * 1_000
}

struct Call {
    id: &'static str,
    queue: &'static str,
    gate: Option<&'static str>,
    entered: u64,
    wait_s: u64,
    outcome: Outcome,
    talk_s: Option<u64>,
    operator: Option<&'static str>,
    callback_failed: Option<u8>,
}

fn answered(id: &'static str, queue: &'static str, entered: u64, wait_s: u64, talk_s: u64, op: &'static str) -> Call {
    let outcome = Outcome::Completed { by: HungUpBy::Caller };
    Call {
        id,
        queue,
        gate: None,
        entered,
        wait_s,
        outcome,
        talk_s: Some(talk_s),
        operator: Some(op),
        callback_failed: None,
    }
}

fn unanswered(id: &'static str, entered: u64, wait_s: u64, outcome: Outcome) -> Call {
    Call {
        id,
        queue: "sales",
        gate: None,
        entered,
        wait_s,
        outcome,
        talk_s: None,
        operator: None,
        callback_failed: None,
    }
}

fn calls() -> Vec<Call> {
    vec![
        answered("c0", "sales", at(7, 59, 0), 10, 50, "alice"),
        answered("c1", "sales", at(8, 5, 0), 10, 120, "alice"),
        answered("c2", "sales", at(8, 10, 0), 40, 200, "bob"),
        unanswered("c3", at(8, 20, 0), 5, Outcome::Abandoned),
        unanswered("c4", at(8, 25, 0), 50, Outcome::Abandoned),
        unanswered("c5", at(8, 30, 0), 300, Outcome::TimedOut),
        unanswered("c6", at(8, 40, 0), 0, Outcome::Full),
        answered("c7", "sales", at(8, 59, 59), 20, 60, "alice"),
        Call { gate: Some("web"), ..unanswered("c8", at(9, 10, 0), 0, Outcome::Closed) },
        Call { gate: Some("web"), callback_failed: Some(1), ..answered("c9", "sales", at(9, 15, 0), 600, 90, "bob") },
        Call {
            gate: Some("web"),
            callback_failed: Some(2),
            ..unanswered("c10", at(9, 30, 0), 900, Outcome::CallbackFailed)
        },
        answered("c11", "support", at(9, 5, 0), 25, 100, "alice"),
    ]
}

fn call_effect(c: &Call) -> (u64, Effect) {
    let connected = c.entered + c.wait_s * 1_000;
    let ended = connected + c.talk_s.unwrap_or(0) * 1_000;
    let record = CallRecord {
        call: CallId::new(c.id),
        queue: QueueId::new(c.queue),
        gate: c.gate.map(GateId::new),
        priority: 5,
        entry_site: SITE_A,
        caller_number: "5550100".into(),
        caller_name: String::new(),
        outcome: c.outcome.clone(),
        entered_at_ms: c.entered,
        ended_at_ms: ended,
        wait_ms: c.wait_s * 1_000,
        handle_ms: c.talk_s.map(|t| t * 1_000),
        operator: c.operator.map(OperatorId::new),
        operator_site: c.operator.map(|_| SITE_A),
        callback_number: c.callback_failed.map(|_| "5550100".into()),
        callback_attempts: c.callback_failed.unwrap_or(0),
    };
    (ended, Effect::CallEnded(record))
}

fn status(operator: &str, at_ms: u64, status: OperatorStatus) -> (u64, Effect) {
    let view = OperatorView {
        operator: OperatorId::new(operator),
        status,
        site: Some(SITE_A),
        channel: None,
        since_ms: at_ms,
        rest_until_ms: None,
        queues: vec![],
    };
    (at_ms, Effect::OperatorChanged(view))
}

fn busy(call: &str) -> OperatorStatus {
    OperatorStatus::Busy { call: CallId::new(call), fence: 1 }
}

fn on_break(reason: &str) -> OperatorStatus {
    OperatorStatus::Break { reason: reason.into() }
}

fn operator_changes() -> Vec<(u64, Effect)> {
    use OperatorStatus::{Available, Offline};
    let wrap = OperatorStatus::WrapUp { until_ms: 0 };
    let mut changes = vec![status("carol", at(7, 0, 0), Offline)];
    let alice = [
        (at(7, 50, 0), Available),
        (at(7, 59, 10), busy("c0")),
        (at(8, 0, 0), Available),
        (at(8, 5, 10), busy("c1")),
        (at(8, 7, 10), wrap.clone()),
        (at(8, 7, 40), Available),
        (at(8, 30, 0), on_break("lunch")),
        (at(8, 50, 0), Available),
        (at(9, 0, 19), busy("c7")),
        (at(9, 1, 19), wrap.clone()),
        (at(9, 1, 29), Available),
        (at(9, 5, 25), busy("c11")),
        (at(9, 7, 5), Available),
        (at(9, 45, 0), Offline),
    ];
    let bob = [
        (at(8, 10, 0), Available),
        (at(8, 10, 40), busy("c2")),
        (at(8, 14, 0), wrap),
        (at(8, 14, 20), Available),
        (at(8, 40, 0), on_break("coffee")),
        (at(8, 45, 0), Available),
        (at(9, 10, 0), on_break("training")),
        (at(9, 20, 0), Available),
        (at(9, 25, 0), busy("c9")),
        (at(9, 26, 30), Available),
        (at(9, 50, 0), Offline),
        (at(9, 55, 0), Available),
    ];
    changes.extend(alice.into_iter().map(|(t, s)| status("alice", t, s)));
    changes.extend(bob.into_iter().map(|(t, s)| status("bob", t, s)));
    changes
}

fn mirror() -> ConfigMirror {
    let queue = |id: &str, service_level_ms: u64| QueueConfig {
        id: QueueId::new(id),
        name: id.into(),
        service_level_ms,
        ..Default::default()
    };
    let operator = |id: &str, queues: &[&str]| OperatorConfig {
        id: OperatorId::new(id),
        name: id.into(),
        memberships: queues.iter().map(|q| (QueueId::new(*q), 0)).collect(),
        ..Default::default()
    };
    ConfigMirror {
        apply_index: 1,
        queues: vec![queue("sales", 20_000), queue("support", 30_000)],
        gates: vec![],
        operators: vec![operator("alice", &["sales", "support"]), operator("bob", &["sales"])],
    }
}

/// Writes the morning as the node would: one log entry per change, in time order.
async fn write_morning(store: &HistoryStore) {
    let mut effects: Vec<(u64, Effect)> = calls().iter().map(call_effect).collect();
    effects.extend(operator_changes());
    effects.sort_by_key(|(t, _)| *t);
    let entries: Vec<(u64, Vec<Effect>)> =
        effects.into_iter().enumerate().map(|(i, (_, e))| (i as u64 + 1, vec![e])).collect();
    store.write_batch(&entries).await.expect("write the morning");
    store.mirror_config(&mirror()).await.expect("mirror the config");
}

fn morning(interval: ReportInterval) -> ReportQuery {
    ReportQuery {
        from_ms: at(8, 0, 0),
        to_ms: at(10, 0, 0),
        interval,
        queue: None,
        gate: None,
        service_level_ms: None,
        now_ms: at(10, 30, 0),
    }
}

fn row<'a>(rows: &'a [QueueReportRow], queue: &str, start: u64) -> &'a QueueReportRow {
    rows.iter().find(|r| r.queue == queue && r.interval_start == start).expect("a row for every queue and interval")
}

async fn queue_figures(store: &HistoryStore) {
    let rows = store.queue_report(&morning(ReportInterval::Minutes60)).await.unwrap();
    assert_eq!(rows.len(), 4, "sales and support, two hours each");

    // 08:00: c1..c7. Answered c1 (10 s), c2 (40 s), c7 (20 s: at the threshold is within).
    // Abandoned c3 (5 s, before the threshold), c4 (50 s, after). SL = 2 / (7 - 1).
    let sales_8 = row(&rows, "sales", at(8, 0, 0));
    let counts = (sales_8.offered, sales_8.answered, sales_8.answered_within_sl, sales_8.abandoned);
    assert_eq!(counts, (7, 3, 2, 2));
    assert_eq!((sales_8.abandoned_before_sl, sales_8.abandoned_after_sl), (1, 1));
    assert_eq!((sales_8.timed_out, sales_8.full, sales_8.closed, sales_8.other), (1, 1, 0, 0));
    assert_eq!(sales_8.service_level_threshold_ms, 20_000);
    assert_eq!(sales_8.service_level, Some(0.3333));
    // ASA (10 + 40 + 20) / 3; AHT (120 + 200 + 60 talk, 30 + 20 + 10 wrap-up) / 3.
    assert_eq!((sales_8.asa_s, sales_8.aht_s), (Some(23.3), Some(146.7)));
    assert_eq!((sales_8.talk_s, sales_8.wrap_up_s, sales_8.longest_wait_s), (380.0, 60.0, 300.0));
    assert_eq!((sales_8.callbacks_promised, sales_8.callbacks_made, sales_8.callbacks_answered), (0, 0, 0));

    // 09:00: c8 closed, c9 a callback answered after one failed attempt (wait 600 s), c10 a
    // callback whose two attempts failed. SL = 0 / 3.
    let sales_9 = row(&rows, "sales", at(9, 0, 0));
    assert_eq!((sales_9.offered, sales_9.answered, sales_9.closed, sales_9.other), (3, 1, 1, 1));
    assert_eq!((sales_9.service_level, sales_9.asa_s, sales_9.aht_s), (Some(0.0), Some(600.0), Some(90.0)));
    assert_eq!(sales_9.longest_wait_s, 900.0);
    assert_eq!((sales_9.callbacks_promised, sales_9.callbacks_made, sales_9.callbacks_answered), (2, 4, 1));

    // support: nothing at 08:00 (a mirrored queue still gets its rows); c11 at 09:00 within 30 s.
    let support_8 = row(&rows, "support", at(8, 0, 0));
    assert_eq!((support_8.offered, support_8.service_level, support_8.asa_s), (0, None, None));
    let support_9 = row(&rows, "support", at(9, 0, 0));
    assert_eq!(support_9.service_level_threshold_ms, 30_000);
    assert_eq!(
        (support_9.offered, support_9.service_level, support_9.asa_s, support_9.aht_s),
        (1, Some(1.0), Some(25.0), Some(100.0))
    );
}

async fn queue_filters_and_intervals(store: &HistoryStore) {
    let sales = ReportQuery { queue: Some("sales".into()), ..morning(ReportInterval::Minutes30) };
    let offered: Vec<u64> = store.queue_report(&sales).await.unwrap().iter().map(|r| r.offered).collect();
    assert_eq!(offered, [4, 3, 2, 1], "c1-c4, c5-c7, c8-c9, c10");

    let web = ReportQuery { gate: Some("web".into()), ..morning(ReportInterval::Minutes60) };
    let web = store.queue_report(&web).await.unwrap();
    let summary: Vec<(&str, Option<&str>, u64, u64)> =
        web.iter().map(|r| (r.queue.as_str(), r.gate.as_deref(), r.offered, r.answered)).collect();
    assert_eq!(summary, [("sales", Some("web"), 0, 0), ("sales", Some("web"), 3, 1)]);

    // A threshold of 40 s for every queue: c2 is answered within it; SL = 3 / (7 - 1).
    let forty = ReportQuery { service_level_ms: Some(40_000), ..morning(ReportInterval::Minutes60) };
    let rows = store.queue_report(&forty).await.unwrap();
    let sales_8 = row(&rows, "sales", at(8, 0, 0));
    assert_eq!((sales_8.answered_within_sl, sales_8.abandoned_before_sl, sales_8.service_level), (3, 1, Some(0.5)));

    // The whole day: c0 counts too.
    let day = ReportQuery { from_ms: DAY_MS, to_ms: DAY_MS + 24 * HOUR_MS, ..morning(ReportInterval::Day) };
    let rows = store.queue_report(&day).await.unwrap();
    let sales = row(&rows, "sales", DAY_MS);
    assert_eq!((rows.len(), sales.offered, sales.answered), (2, 11, 5));
}

fn operator_row<'a>(rows: &'a [OperatorReportRow], operator: &str, start: u64) -> &'a OperatorReportRow {
    rows.iter().find(|r| r.operator == operator && r.interval_start == start).expect("a row")
}

fn breaks(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(reason, s)| (reason.to_string(), *s)).collect()
}

async fn operator_figures(store: &HistoryStore) {
    let rows = store.operator_report(&morning(ReportInterval::Minutes60)).await.unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r.operator.as_str()).collect();
    assert_eq!(names, ["alice", "alice", "bob", "bob"], "carol stayed offline");

    // alice 08:00: available 310 + 1340 + 600, busy on c1 120, wrap-up 30, lunch 1200;
    // logged in since 07:50 (no login in the period). Occupancy 150 / (3600 - 1200).
    let a8 = operator_row(&rows, "alice", at(8, 0, 0));
    assert_eq!((a8.calls_taken, a8.talk_s, a8.wrap_up_s, a8.break_s), (1, 120.0, 30.0, 1200.0));
    assert_eq!((a8.available_s, a8.logged_in_s, a8.logins, a8.occupancy), (2250.0, 3600.0, 0, Some(0.0625)));
    assert_eq!(a8.breaks, breaks(&[("lunch", 1200.0)]));
    // alice 09:00: c7 (answered 09:00:19) and c11; talk 60 + 100, wrap-up 10, offline at 09:45.
    let a9 = operator_row(&rows, "alice", at(9, 0, 0));
    assert_eq!((a9.calls_taken, a9.talk_s, a9.wrap_up_s, a9.break_s), (2, 160.0, 10.0, 0.0));
    assert_eq!((a9.available_s, a9.logged_in_s, a9.logins, a9.occupancy), (2530.0, 2700.0, 0, Some(0.063)));

    // bob 08:00: logs in at 08:10; c2 200 s, wrap-up 20, coffee 300. Occupancy 220 / 2700.
    let b8 = operator_row(&rows, "bob", at(8, 0, 0));
    assert_eq!((b8.calls_taken, b8.talk_s, b8.wrap_up_s, b8.break_s), (1, 200.0, 20.0, 300.0));
    assert_eq!((b8.available_s, b8.logged_in_s, b8.logins, b8.occupancy), (2480.0, 3000.0, 1, Some(0.0815)));
    // bob 09:00: training 600, c9 90 s, offline 09:50-09:55, back in until the period's end.
    let b9 = operator_row(&rows, "bob", at(9, 0, 0));
    assert_eq!((b9.calls_taken, b9.talk_s, b9.break_s, b9.available_s), (1, 90.0, 600.0, 2610.0));
    assert_eq!((b9.logged_in_s, b9.logins, b9.occupancy), (3300.0, 1, Some(0.0333)));
    assert_eq!(b9.breaks, breaks(&[("training", 600.0)]));

    // Asked at 09:57, bob's open state ends then: 180 s less available.
    let early = ReportQuery { now_ms: at(9, 57, 0), ..morning(ReportInterval::Minutes60) };
    let rows = store.operator_report(&early).await.unwrap();
    assert_eq!(operator_row(&rows, "bob", at(9, 0, 0)).available_s, 2430.0);

    // support: its member alice only, and only its call c11.
    let support = ReportQuery { queue: Some("support".into()), ..morning(ReportInterval::Minutes60) };
    let rows = store.operator_report(&support).await.unwrap();
    let taken: Vec<(&str, u64)> = rows.iter().map(|r| (r.operator.as_str(), r.calls_taken)).collect();
    assert_eq!(taken, [("alice", 0), ("alice", 1)]);
}

async fn refusals(store: &HistoryStore) {
    let backwards = ReportQuery { to_ms: at(8, 0, 0), ..morning(ReportInterval::Minutes15) };
    let error = store.queue_report(&backwards).await.unwrap_err();
    assert_eq!(error.to_string(), "report: `from` must be before `to`");
    let year = ReportQuery { to_ms: at(8, 0, 0) + 365 * 24 * HOUR_MS, ..morning(ReportInterval::Minutes15) };
    let error = store.operator_report(&year).await.unwrap_err();
    assert!(error.to_string().contains("at most 3000"), "{error}");
}

async fn reports_over_the_morning(store: &HistoryStore) {
    write_morning(store).await;
    queue_figures(store).await;
    queue_filters_and_intervals(store).await;
    operator_figures(store).await;
    refusals(store).await;
}

#[tokio::test]
async fn sqlite_reports_over_a_scripted_morning() {
    let dir = TempDir::new();
    let store = HistoryStore::open(&dir.sqlite_url()).await.unwrap();
    reports_over_the_morning(&store).await;
    store.close().await;
}

/// A prepared report statement that PostgreSQL planned once without its values (its generic
/// plan, chosen after five executions) joined a day's calls by nested loop for minutes: the
/// store's connections plan every execution for its values.
#[tokio::test]
async fn postgres_connections_plan_each_report_for_its_values_and_sort_in_memory() {
    let db = PgDatabase::create().await;
    let store = HistoryStore::open(&db.url()).await.unwrap();
    let mode = store.postgres_setting("plan_cache_mode").await.unwrap();
    assert_eq!(mode.as_deref(), Some(lineup_store::history::POSTGRES_PLAN_CACHE_MODE));
    // Sorts of a day's report stay in memory.
    let work_mem = store.postgres_setting("work_mem").await.unwrap();
    assert_eq!(work_mem, Some(format!("{}MB", lineup_store::history::POSTGRES_WORK_MEM_MB)));
    store.close().await;
    db.drop_database().await;
}

#[tokio::test]
async fn postgres_reports_over_a_scripted_morning() {
    let db = PgDatabase::create().await;
    let store = HistoryStore::open(&db.url()).await.unwrap();
    reports_over_the_morning(&store).await;
    store.close().await;
    db.drop_database().await;
}
