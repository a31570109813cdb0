//! The history store against the real PostgreSQL (a private database per test) and SQLite
//! (a temp file): rows match the effects of a real routing run, replays add nothing.

mod common;

use common::*;
use lineup_core::{Effect, Outcome};
use lineup_store::history::queue_log_columns;
use lineup_store::{ConfigMirror, HistoryStore, StoreError};

/// Every history row agrees with the effect it came from.
async fn rows_match_effects(store: &HistoryStore) {
    let mut h = Harness::new();
    busy_morning(&mut h);
    let outcome = store.write_batch(&h.entries).await.expect("write batch");
    assert_eq!(outcome.entries_written, h.entries.len());
    assert_eq!(outcome.watermark, h.index);
    assert_eq!(store.watermark().await.unwrap(), h.index);

    let records = h.call_records();
    let calls = store.calls().await.unwrap();
    assert_eq!(calls.len(), records.len());
    assert_eq!(calls.len(), 4, "one row per ended call");
    for (row, record) in calls.iter().zip(&records) {
        assert_eq!(row.call_id, record.call.as_str());
        assert_eq!(row.queue, record.queue.as_str());
        assert_eq!(row.gate.as_deref(), record.gate.as_ref().map(|g| g.as_str()));
        assert_eq!(row.priority, i64::from(record.priority));
        assert_eq!(row.entry_site, record.entry_site.0 as i64);
        assert_eq!((row.caller_number.as_str(), row.caller_name.as_str()), ("5551234", "Caller One"));
        assert_eq!(row.entered_at_ms, record.entered_at_ms as i64);
        assert_eq!(row.ended_at_ms, record.ended_at_ms as i64);
        assert_eq!(row.wait_ms, record.wait_ms as i64);
        assert_eq!(row.handle_ms, record.handle_ms.map(|v| v as i64));
        assert_eq!(row.operator.as_deref(), record.operator.as_ref().map(|o| o.as_str()));
        assert_eq!(row.operator_site, record.operator_site.map(|s| s.0 as i64));
        assert_eq!(row.callback_number, record.callback_number);
        assert_eq!(row.callback_attempts, i64::from(record.callback_attempts));
    }
    let outcomes: Vec<(&str, &str, Option<&str>)> =
        calls.iter().map(|c| (c.call_id.as_str(), c.outcome.as_str(), c.outcome_detail.as_deref())).collect();
    assert_eq!(
        outcomes,
        [
            ("a-1.1", "completed", Some("caller")),
            ("b-2.1", "abandoned", None),
            ("a-1.2", "completed", Some("operator")),
            ("c-3.1", "callback_failed", None),
        ]
    );
    // The cross-site call: entered at site A through the web gate, answered at site C.
    assert_eq!((calls[0].entry_site, calls[0].operator_site, calls[0].gate.as_deref()), (1, Some(3), Some("web")));
    assert_eq!((calls[0].wait_ms, calls[0].handle_ms), (2_000, Some(60_000)));

    // queue_log: one row per line, in log order, the same columns as the flat file.
    let lines = h.queue_log();
    let rows = store.queue_log().await.unwrap();
    assert_eq!(rows.len(), lines.len());
    for (row, (index, seq, entry)) in rows.iter().zip(&lines) {
        let c = queue_log_columns(entry);
        assert_eq!((row.log_index, row.seq), (*index as i64, *seq as i64));
        assert_eq!(row.at_ms, entry.at_ms as i64);
        assert_eq!(
            (&row.callid, &row.queuename, &row.agent, &row.event),
            (&c.callid, &c.queuename, &c.agent, &c.event)
        );
        assert_eq!([&row.data1, &row.data2, &row.data3, &row.data4, &row.data5], c.data.each_ref());
    }
    assert!(
        rows.iter().any(|r| r.queuename == "sales" && r.event == "ENTERQUEUE" && r.data1 == "web"),
        "the queue alone in queuename, the gate in ENTERQUEUE's first data field"
    );
    assert_eq!(rows.iter().filter(|r| r.event == "CONNECT").count(), 2);

    // Operator events and the sessions derived from them.
    let changes = h.operator_changes();
    let events = store.operator_events().await.unwrap();
    assert_eq!(events.len(), changes.len());
    for (row, view) in events.iter().zip(&changes) {
        assert_eq!((row.operator.as_str(), row.status.as_str()), (view.operator.as_str(), view.status.name()));
        assert_eq!(row.at_ms, view.since_ms as i64);
        assert_eq!(row.channel, view.channel);
    }
    assert!(events.iter().any(|e| e.status == "break" && e.reason.as_deref() == Some("coffee")));
    assert!(events.iter().any(|e| e.status == "busy" && e.call_id.as_deref() == Some("a-1.1")));
    let sessions = store.operator_sessions().await.unwrap();
    let summary: Vec<(&str, Option<i64>, bool)> =
        sessions.iter().map(|s| (s.operator.as_str(), s.site, s.logout_at_ms.is_some())).collect();
    assert_eq!(summary, [("alice", Some(1), false), ("carol", Some(3), true)]);

    // The callback promise and its two failed attempts.
    let callbacks = store.callback_events().await.unwrap();
    let summary: Vec<(&str, &str, Option<&str>, Option<i64>)> = callbacks
        .iter()
        .map(|c| (c.call_id.as_str(), c.event.as_str(), c.number.as_deref(), c.attempts_left))
        .collect();
    assert_eq!(
        summary,
        [
            ("c-3.1", "request", Some("+33123456789"), None),
            ("c-3.1", "failed", None, Some(1)),
            ("c-3.1", "failed", None, Some(0)),
        ]
    );
    assert_eq!(callbacks[0].position, Some(1));
    assert_eq!(callbacks[1].operator.as_deref(), Some("alice"));
}

/// Replaying a batch, or a batch overlapping the watermark, writes no duplicate row.
async fn replays_add_nothing(store: &HistoryStore) {
    let mut h = Harness::new();
    busy_morning(&mut h);
    let half = h.entries.len() / 2;
    store.write_batch(&h.entries[..half]).await.unwrap();
    let first = (store.calls().await.unwrap().len(), store.queue_log().await.unwrap().len());

    let again = store.write_batch(&h.entries[..half]).await.unwrap();
    assert_eq!((again.entries_written, again.entries_skipped, again.rows_inserted), (0, half, 0));
    assert_eq!((store.calls().await.unwrap().len(), store.queue_log().await.unwrap().len()), first);

    // Overlap: the old half is skipped, the rest written once.
    let rest = store.write_batch(&h.entries[half / 2..]).await.unwrap();
    assert_eq!(rest.entries_skipped, half - half / 2);
    assert_eq!(rest.entries_written, h.entries.len() - half);
    let everything = store.write_batch(&h.entries).await.unwrap();
    assert_eq!(everything.rows_inserted, 0);
    assert_eq!(store.calls().await.unwrap().len(), h.call_records().len());
    assert_eq!(store.queue_log().await.unwrap().len(), h.queue_log().len());
    assert_eq!(store.operator_events().await.unwrap().len(), h.operator_changes().len());
    assert_eq!(store.watermark().await.unwrap(), h.index);

    // A batch out of log order is refused, not half-written.
    let unordered = vec![(h.index + 2, vec![]), (h.index + 1, vec![])];
    assert!(matches!(store.write_batch(&unordered).await, Err(StoreError::BatchOutOfOrder { .. })));
    assert_eq!(store.watermark().await.unwrap(), h.index);
}

/// The config mirror follows the routing configuration and never holds PIN hashes.
async fn config_mirror_follows_routing(store: &HistoryStore) {
    let mut h = Harness::new();
    busy_morning(&mut h);
    let mirror = ConfigMirror::from_routing(&h.routing);
    assert!(mirror.operators.iter().all(|o| o.pin_hash.is_empty()));
    store.mirror_config(&mirror).await.unwrap();
    assert_eq!(store.config_queue_ids().await.unwrap(), ["sales", "support"]);
    let memberships: Vec<(String, String, i64)> =
        store.config_operator_queues().await.unwrap().into_iter().map(|r| (r.operator, r.queue, r.penalty)).collect();
    assert_eq!(
        memberships,
        [
            ("alice".into(), "sales".into(), 0),
            ("alice".into(), "support".into(), 1),
            ("carol".into(), "sales".into(), 0)
        ]
    );
    // A deleted queue disappears from the mirror.
    h.ok(lineup_core::CommandBody::DeleteQueue { queue: lineup_core::QueueId::new("support") });
    let mirror = ConfigMirror::from_routing(&h.routing);
    store.mirror_config(&mirror).await.unwrap();
    assert_eq!(store.config_queue_ids().await.unwrap(), ["sales"]);
}

#[tokio::test]
async fn sqlite_rows_match_the_effects() {
    let dir = TempDir::new();
    let store = HistoryStore::open(&dir.sqlite_url()).await.unwrap();
    rows_match_effects(&store).await;
    store.close().await;
}

#[tokio::test]
async fn postgres_rows_match_the_effects() {
    let db = PgDatabase::create().await;
    let store = HistoryStore::open(&db.url()).await.unwrap();
    rows_match_effects(&store).await;
    store.close().await;
    db.drop_database().await;
}

#[tokio::test]
async fn sqlite_replays_add_nothing() {
    let dir = TempDir::new();
    let store = HistoryStore::open(&dir.sqlite_url()).await.unwrap();
    replays_add_nothing(&store).await;
    store.close().await;
    // Reopening runs the migrations again (a no-op) and keeps the watermark.
    let reopened = HistoryStore::open(&dir.sqlite_url()).await.unwrap();
    assert!(reopened.watermark().await.unwrap() > 0);
    reopened.close().await;
}

#[tokio::test]
async fn postgres_replays_add_nothing() {
    let db = PgDatabase::create().await;
    let store = HistoryStore::open(&db.url()).await.unwrap();
    replays_add_nothing(&store).await;
    store.close().await;
    db.drop_database().await;
}

#[tokio::test]
async fn sqlite_config_mirror_follows_routing() {
    let dir = TempDir::new();
    let store = HistoryStore::open(&dir.sqlite_url()).await.unwrap();
    config_mirror_follows_routing(&store).await;
    store.close().await;
}

#[tokio::test]
async fn postgres_config_mirror_follows_routing() {
    let db = PgDatabase::create().await;
    let store = HistoryStore::open(&db.url()).await.unwrap();
    config_mirror_follows_routing(&store).await;
    store.close().await;
    db.drop_database().await;
}

#[tokio::test]
async fn two_sites_sharing_one_database_write_each_row_once() {
    let db = PgDatabase::create().await;
    let (site_a, site_b) = (HistoryStore::open(&db.url()).await.unwrap(), HistoryStore::open(&db.url()).await.unwrap());
    let mut h = Harness::new();
    busy_morning(&mut h);
    // Both sites apply the same log, so they hand over identical entries, in racing batches.
    let (a, b) = tokio::join!(site_a.write_batch(&h.entries), site_b.write_batch(&h.entries));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.entries_written + b.entries_written, h.entries.len());
    assert_eq!(site_a.calls().await.unwrap().len(), h.call_records().len());
    assert!(h.call_records().iter().any(|r| r.outcome == Outcome::Abandoned));
    site_a.close().await;
    site_b.close().await;
    db.drop_database().await;
}

#[tokio::test]
async fn bad_urls_are_errors_not_panics() {
    assert!(matches!(HistoryStore::open("mysql://h/db").await, Err(StoreError::UnsupportedUrl { .. })));
    let port = closed_port().await;
    let refused = HistoryStore::open(&format!("postgres://postgres@127.0.0.1:{port}/none")).await;
    assert!(matches!(refused, Err(StoreError::Database(_))));
    // Effects that are not history are ignored, not refused.
    let dir = TempDir::new();
    let store = HistoryStore::open(&dir.sqlite_url()).await.unwrap();
    let alarm = Effect::Alarm {
        queue: lineup_core::QueueId::new("q"),
        kind: lineup_core::AlarmKind::Depth,
        raised: true,
        value: 3,
        threshold: 2,
    };
    let outcome = store.write_batch(&[(7, vec![alarm])]).await.unwrap();
    assert_eq!((outcome.rows_inserted, outcome.watermark), (0, 7));
    store.close().await;
}

/// Any split of the entry stream into batches, each possibly delivered twice and followed
/// by a replay of an earlier stretch (what a drainer does after a crash), leaves exactly the
/// rows of one clean write.
#[tokio::test]
async fn any_batching_with_replays_leaves_the_rows_of_one_clean_write() {
    const CASES: u64 = 12;
    let mut h = Harness::new();
    busy_morning(&mut h);
    let dir = TempDir::new();
    let reference = HistoryStore::open(&format!("sqlite://{}", dir.path("reference.db").display())).await.unwrap();
    reference.write_batch(&h.entries).await.unwrap();
    let expected = (
        reference.calls().await.unwrap(),
        reference.queue_log().await.unwrap(),
        reference.operator_events().await.unwrap(),
        reference.callback_events().await.unwrap(),
    );
    reference.close().await;

    let mut seed: u64 = 0x5EED_1234_ABCD_0001;
    let mut next = |bound: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % bound as u64) as usize
    };
    for case in 0..CASES {
        let store =
            HistoryStore::open(&format!("sqlite://{}", dir.path(&format!("case{case}.db")).display())).await.unwrap();
        let mut start = 0;
        while start < h.entries.len() {
            let end = (start + 1 + next(12)).min(h.entries.len());
            let batch = &h.entries[start..end];
            store.write_batch(batch).await.unwrap();
            if next(3) == 0 {
                store.write_batch(batch).await.unwrap();
            }
            if next(4) == 0 {
                let from = next(end);
                store.write_batch(&h.entries[from..end]).await.unwrap();
            }
            start = end;
        }
        let actual = (
            store.calls().await.unwrap(),
            store.queue_log().await.unwrap(),
            store.operator_events().await.unwrap(),
            store.callback_events().await.unwrap(),
        );
        assert_eq!(actual, expected, "case {case}");
        store.close().await;
    }
}

/// Several stores opening one new SQLite file at once (a drainer and a report reader) all
/// end up on one migrated schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_opens_of_a_new_sqlite_file_all_succeed() {
    let dir = TempDir::new();
    let url = dir.sqlite_url();
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { HistoryStore::open(&url).await })
        })
        .collect();
    for open in opens {
        let store = open.await.unwrap().expect("open despite the race");
        assert_eq!(store.watermark().await.unwrap(), 0);
        store.close().await;
    }
}
