//! The queue report agrees with what a queue_log reader (QueueMetrics and the like) computes
//! from the same day: a day of calls driven through the real routing core, its effects written
//! to a history database, and the core's queue_log lines read back as a reader of the flat
//! file would (ENTERQUEUE, CONNECT, COMPLETE*, ABANDON, EXITWITHTIMEOUT and their data
//! fields). Offered, answered, abandoned, timed out, ASA and AHT must match per queue.

mod common;

use std::collections::BTreeMap;

use common::*;
use lineup_core::*;
use lineup_store::{ConfigMirror, HistoryStore, ReportInterval, ReportQuery};

/// Calls in the day; each is answered, abandoned or timed out by a fixed pattern.
const DAY_CALLS_COUNT: u64 = 90;
const DAY_MS: u64 = 86_400_000;
/// A caller left waiting this long leaves at the queue's maximum wait.
const MAX_WAIT_MS: u64 = 120_000;
const OPERATORS: [(&str, &[(&str, u8)]); 4] = [
    ("op1", &[("sales", 0)]),
    ("op2", &[("sales", 0)]),
    ("op3", &[("sales", 0), ("support", 0)]),
    ("op4", &[("support", 0)]),
];

/// What a queue_log reader sums per queue.
#[derive(Debug, Default, PartialEq)]
struct ReaderFigures {
    offered: u64,
    answered: u64,
    abandoned: u64,
    timed_out: u64,
    hold_s: u64,
    talk_s: u64,
}

/// Reads the flat file's lines: `epoch|callid|queue|agent|EVENT|data1|data2|...`.
fn read_queue_log(lines: &[String]) -> BTreeMap<String, ReaderFigures> {
    let mut queues: BTreeMap<String, ReaderFigures> = BTreeMap::new();
    for line in lines {
        let fields: Vec<&str> = line.split('|').collect();
        let (queue, event) = (fields[2], fields[4]);
        let data = |n: usize| fields.get(4 + n).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let figures = queues.entry(queue.to_string()).or_default();
        match event {
            "ENTERQUEUE" => figures.offered += 1,
            "CONNECT" => {
                figures.answered += 1;
                figures.hold_s += data(1);
            }
            "COMPLETECALLER" | "COMPLETEAGENT" => figures.talk_s += data(2),
            "ABANDON" => figures.abandoned += 1,
            "EXITWITHTIMEOUT" => figures.timed_out += 1,
            _ => {}
        }
    }
    queues.remove("NONE");
    queues
}

fn set_everyone(h: &mut Harness, state: RequestedState) {
    for (id, _) in OPERATORS {
        h.ok(CommandBody::OperatorState { operator: OperatorId::new(id), state: state.clone() });
    }
}

fn offer_in(effects: &[Effect]) -> Option<Offer> {
    effects.iter().find_map(|e| match e {
        Effect::Offer(o) => Some(o.clone()),
        _ => None,
    })
}

/// One call by the pattern of `n`: answered at once, answered after a wait, abandoned, or
/// left to time out. Waits and talk are whole seconds, as the flat file records them.
fn one_call(h: &mut Harness, n: u64) {
    let queue = if n.is_multiple_of(3) { "support" } else { "sales" };
    let call = format!("a-{n}.1");
    let wait_ms = 1_000 * (5 + n % 40);
    let talk_ms = 1_000 * (30 + (n * 7) % 200);
    let by = if n.is_multiple_of(2) { HungUpBy::Caller } else { HungUpBy::Operator };
    match n % 5 {
        0 | 1 => {
            let offer = offer_in(&h.enqueue(&call, queue, None, SITE_A)).expect("an operator is free");
            h.connect(&offer);
            h.advance(talk_ms);
            h.complete(&offer, by);
        }
        2 | 3 => {
            set_everyone(h, RequestedState::Break { reason: "meeting".into() });
            h.enqueue(&call, queue, None, SITE_A);
            h.advance(wait_ms);
            if n % 5 == 2 {
                let back = h.ok(CommandBody::OperatorState {
                    operator: OperatorId::new("op3"),
                    state: RequestedState::Available,
                });
                let offer = offer_in(&back).expect("op3 takes the waiting caller");
                h.connect(&offer);
                h.advance(talk_ms);
                h.complete(&offer, by);
            } else {
                h.ok(CommandBody::Abandoned { call: CallId::new(&call) });
            }
            set_everyone(h, RequestedState::Available);
        }
        _ => {
            set_everyone(h, RequestedState::Break { reason: "meeting".into() });
            h.enqueue(&call, queue, None, SITE_A);
            h.advance(MAX_WAIT_MS + 1_000);
            set_everyone(h, RequestedState::Available);
        }
    }
    h.advance(10_000);
}

fn the_day() -> Harness {
    let mut h = Harness::new();
    for queue in ["sales", "support"] {
        h.ok(CommandBody::PutQueue(QueueConfig {
            id: QueueId::new(queue),
            name: queue.into(),
            max_wait_ms: Some(MAX_WAIT_MS),
            ..Default::default()
        }));
    }
    for (id, queues) in OPERATORS {
        h.operator(id, SITE_A, queues);
        h.login(id, SITE_A);
    }
    for n in 0..DAY_CALLS_COUNT {
        one_call(&mut h, n);
    }
    h
}

fn mirror() -> ConfigMirror {
    let queue = |id: &str| QueueConfig { id: QueueId::new(id), name: id.into(), ..Default::default() };
    ConfigMirror { apply_index: 1, queues: vec![queue("sales"), queue("support")], gates: vec![], operators: vec![] }
}

async fn report_agrees_with_the_reader(store: &HistoryStore) {
    let h = the_day();
    store.write_batch(&h.entries).await.expect("write the day");
    store.mirror_config(&mirror()).await.expect("mirror the config");
    let lines: Vec<String> = h.queue_log().iter().map(|(_, _, entry)| entry.to_line()).collect();
    let reader = read_queue_log(&lines);
    let day_start_ms = Harness::new().now_ms / DAY_MS * DAY_MS;
    assert!(h.now_ms < day_start_ms + DAY_MS, "the day fits in one UTC day");
    let query = ReportQuery {
        from_ms: day_start_ms,
        to_ms: day_start_ms + DAY_MS,
        interval: ReportInterval::Day,
        queue: None,
        gate: None,
        service_level_ms: None,
        now_ms: h.now_ms + 1,
    };
    let rows = store.queue_report(&query).await.expect("the day's report");
    for (queue, figures) in &reader {
        let every_kind = figures.answered > 0 && figures.abandoned > 0 && figures.timed_out > 0;
        assert!(every_kind && figures.hold_s > 0, "{queue}: the day holds every kind of end: {figures:?}");
        let queue_rows: Vec<_> = rows.iter().filter(|r| &r.queue == queue).collect();
        let sum = |f: fn(&&lineup_store::QueueReportRow) -> u64| queue_rows.iter().map(f).sum::<u64>();
        let report = (sum(|r| r.offered), sum(|r| r.answered), sum(|r| r.abandoned), sum(|r| r.timed_out));
        let counted = (figures.offered, figures.answered, figures.abandoned, figures.timed_out);
        assert_eq!(report, counted, "{queue}: offered, answered, abandoned, timed out");
        let asa = figures.hold_s as f64 / figures.answered as f64;
        let aht = figures.talk_s as f64 / figures.answered as f64;
        let answered_row = queue_rows.iter().find(|r| r.answered > 0).expect("a row with answered calls");
        assert_eq!(answered_row.asa_s, Some((asa * 10.0).round() / 10.0), "{queue}: ASA");
        assert_eq!(answered_row.aht_s, Some((aht * 10.0).round() / 10.0), "{queue}: AHT (no wrap-up)");
    }
    assert_eq!(reader.keys().collect::<Vec<_>>(), ["sales", "support"], "both queues had calls");
}

#[tokio::test]
async fn sqlite_queue_report_agrees_with_a_queue_log_reader() {
    let dir = TempDir::new();
    let store = HistoryStore::open(&dir.sqlite_url()).await.unwrap();
    report_agrees_with_the_reader(&store).await;
    store.close().await;
}

#[tokio::test]
async fn postgres_queue_report_agrees_with_a_queue_log_reader() {
    let db = PgDatabase::create().await;
    let store = HistoryStore::open(&db.url()).await.unwrap();
    report_agrees_with_the_reader(&store).await;
    store.close().await;
    db.drop_database().await;
}
