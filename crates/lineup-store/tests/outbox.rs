//! The outbox between the apply stream and history: a PostgreSQL outage (a cut loopback
//! relay, or a port where nothing listens) delays history, loses no row, and never makes
//! submit wait; restarts deliver everything exactly once, to the database and the
//! queue_log file.

mod common;

use std::time::{Duration, Instant};

use common::*;
use lineup_core::{Effect, QueueLogEntry, QueueLogVerb};
use lineup_store::{
    queue_log::SIDECAR_SUFFIX, ConfigMirror, HistorySink, HistoryStore, Outbox, QueueLogFile, QueueLogSink, Submitted,
    SINK_HISTORY, SINK_QUEUE_LOG,
};

/// Polls for longer than [`poll`]: a delivery attempt against a dead server may take a
/// pool acquire timeout before the drainer retries.
const OUTAGE_POLL_MAX_ITERATIONS: u32 = 1_600;

async fn poll_long<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..OUTAGE_POLL_MAX_ITERATIONS {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
    }
    panic!("gave up waiting for: {what}");
}

/// Longest a submit may take: it touches memory only (or, with a full queue, the local
/// disk), never the database.
const SUBMIT_MAX_MS: u128 = 200;

fn submit_all(outbox: &Outbox, entries: &[(u64, Vec<Effect>)]) {
    for (index, effects) in entries {
        let started = Instant::now();
        let submitted = outbox.submit(*index, effects.clone()).expect("submit");
        assert!(started.elapsed().as_millis() < SUBMIT_MAX_MS, "submit of {index} waited");
        assert_ne!(submitted, Submitted::AlreadyAccepted);
    }
}

fn file_lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
}

async fn assert_history_complete(store: &HistoryStore, h: &Harness) {
    assert_eq!(store.watermark().await.unwrap(), h.entries.iter().rev().find(|(_, e)| !e.is_empty()).unwrap().0);
    let calls: Vec<String> = store.calls().await.unwrap().into_iter().map(|c| c.call_id).collect();
    let expected: Vec<String> = h.call_records().iter().map(|r| r.call.to_string()).collect();
    assert_eq!(calls, expected, "every call once, in order");
    assert_eq!(store.queue_log().await.unwrap().len(), h.queue_log().len());
    assert_eq!(store.operator_events().await.unwrap().len(), h.operator_changes().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_delays_history_loses_nothing_and_never_blocks_submit() {
    let db = PgDatabase::create().await;
    let dir = TempDir::new();
    let mut relay = Relay::start("127.0.0.1:5432").await;
    let outbox = Outbox::open(dir.path("outbox.redb"), &[SINK_HISTORY, SINK_QUEUE_LOG]).unwrap();
    let (sink, config) = HistorySink::new(db.url_via(relay.port));
    let history = outbox.spawn_drainer(SINK_HISTORY, sink).unwrap();
    let queue_log = outbox
        .spawn_drainer(SINK_QUEUE_LOG, QueueLogSink::new(QueueLogFile::open(dir.path("queue_log")).unwrap()))
        .unwrap();
    let direct = HistoryStore::open(&db.url()).await.unwrap();

    let mut h = Harness::new();
    busy_morning(&mut h);
    config.update(ConfigMirror::from_routing(&h.routing));
    let third = h.entries.len() / 3;
    let (before, during) = h.entries.split_at(third);
    let (during, after) = during.split_at(third);

    submit_all(&outbox, before);
    let through = before.last().unwrap().0;
    poll_long("history before the outage", || async {
        (direct.watermark().await.ok()? >= before.iter().rev().find(|(_, e)| !e.is_empty())?.0).then_some(())
    })
    .await;
    assert!(through > 0);

    // PostgreSQL goes away: submits still return at once, the outbox holds the entries,
    // the queue_log file (another sink) keeps up, the history drainer reports failures.
    relay.cut().await;
    submit_all(&outbox, during);
    let lag = poll_long("history drainer failing", || async {
        let lag = outbox.lag().ok()?;
        (history.status().consecutive_failures > 0 && lag.pending == 0).then_some(lag)
    })
    .await;
    assert!(lag.entries > 0 && lag.oldest_index.is_some(), "{lag:?}");
    assert!(history.status().last_error.is_some());
    poll_long("queue_log file independent of the database", || async {
        (queue_log.status().delivered_through >= during.iter().rev().find(|(_, e)| !e.is_empty())?.0).then_some(())
    })
    .await;
    submit_all(&outbox, after);

    // PostgreSQL is back: history catches up, nothing lost, nothing twice.
    relay.restore().await;
    poll_long("outbox drained after the outage", || async {
        let lag = outbox.lag().ok()?;
        (lag.entries == 0 && lag.pending == 0).then_some(())
    })
    .await;
    assert_eq!(history.status().consecutive_failures, 0);
    assert_history_complete(&direct, &h).await;
    assert_eq!(direct.config_queue_ids().await.unwrap(), ["sales", "support"], "config mirrored too");
    let expected: Vec<String> = h.queue_log().iter().map(|(_, _, e)| e.to_line()).collect();
    assert_eq!(file_lines(&dir.path("queue_log")), expected);

    history.stop().await;
    queue_log.stop().await;
    direct.close().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drainer_pointed_at_a_dead_port_then_the_real_server_delivers_everything_once() {
    let db = PgDatabase::create().await;
    let dir = TempDir::new();
    let outbox = Outbox::open(dir.path("outbox.redb"), &[SINK_HISTORY]).unwrap();
    let (dead, _) = HistorySink::new(format!("postgres://postgres@127.0.0.1:{}/none", closed_port().await));
    let drainer = outbox.spawn_drainer(SINK_HISTORY, dead).unwrap();

    let mut h = Harness::new();
    busy_morning(&mut h);
    submit_all(&outbox, &h.entries);
    poll_long("drainer failing against a dead port", || async {
        (drainer.status().consecutive_failures > 0).then_some(())
    })
    .await;
    let lag = poll("all submitted entries in the outbox file", || async {
        let lag = outbox.lag().ok()?;
        (lag.pending == 0).then_some(lag)
    })
    .await;
    let kept = h.entries.iter().filter(|(_, e)| e.iter().any(Effect::is_history)).count();
    assert_eq!(lag.entries, kept as u64, "{lag:?}");
    drainer.stop().await;

    let (real, _) = HistorySink::new(db.url());
    let drainer = outbox.spawn_drainer(SINK_HISTORY, real).unwrap();
    poll_long("drained into the real server", || async { (outbox.lag().ok()?.entries == 0).then_some(()) }).await;
    let store = HistoryStore::open(&db.url()).await.unwrap();
    assert_history_complete(&store, &h).await;
    assert!(matches!(
        outbox.spawn_drainer("reports", QueueLogSink::new(QueueLogFile::open(dir.path("q")).unwrap())),
        Err(lineup_store::StoreError::UnknownSink { .. })
    ));
    drainer.stop().await;
    store.close().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_deliver_everything_exactly_once_on_sqlite() {
    let dir = TempDir::new();
    let mut h = Harness::new();
    busy_morning(&mut h);
    let half = h.entries.len() / 2;

    // First life: everything submitted, half delivered, then the node stops.
    {
        let outbox = Outbox::open(dir.path("outbox.redb"), &[SINK_HISTORY, SINK_QUEUE_LOG]).unwrap();
        submit_all(&outbox, &h.entries[..half]);
        let (sink, _) = HistorySink::new(dir.sqlite_url());
        let history = outbox.spawn_drainer(SINK_HISTORY, sink).unwrap();
        let queue_log = outbox
            .spawn_drainer(SINK_QUEUE_LOG, QueueLogSink::new(QueueLogFile::open(dir.path("queue_log")).unwrap()))
            .unwrap();
        poll("first half delivered", || async { (outbox.lag().ok()?.entries == 0).then_some(()) }).await;
        history.stop().await;
        queue_log.stop().await;
        // The rest reaches the outbox file but no sink before the stop.
        submit_all(&outbox, &h.entries[half..]);
    }

    // Second life: the node re-applies its log and re-submits from the start.
    let outbox = Outbox::open(dir.path("outbox.redb"), &[SINK_HISTORY, SINK_QUEUE_LOG]).unwrap();
    for (index, effects) in &h.entries {
        let submitted = outbox.submit(*index, effects.clone()).unwrap();
        assert!(matches!(submitted, Submitted::AlreadyAccepted | Submitted::NothingToKeep), "{index}: {submitted:?}");
    }
    let lag = outbox.lag().unwrap();
    assert!(lag.entries > 0, "the undelivered half survived the restart");
    let (sink, _) = HistorySink::new(dir.sqlite_url());
    let history = outbox.spawn_drainer(SINK_HISTORY, sink).unwrap();
    let queue_log = outbox
        .spawn_drainer(SINK_QUEUE_LOG, QueueLogSink::new(QueueLogFile::open(dir.path("queue_log")).unwrap()))
        .unwrap();
    poll("second half delivered", || async { (outbox.lag().ok()?.entries == 0).then_some(()) }).await;
    history.stop().await;
    queue_log.stop().await;

    let store = HistoryStore::open(&dir.sqlite_url()).await.unwrap();
    assert_history_complete(&store, &h).await;
    store.close().await;
    let expected: Vec<String> = h.queue_log().iter().map(|(_, _, e)| e.to_line()).collect();
    assert_eq!(file_lines(&dir.path("queue_log")), expected, "each line once, in order");
}

#[test]
fn queue_log_file_is_exactly_once_across_restarts_and_repairs_a_torn_append() {
    let dir = TempDir::new();
    let path = dir.path("queue_log");
    let mut h = Harness::new();
    busy_morning(&mut h);
    let expected: Vec<String> = h.queue_log().iter().map(|(_, _, e)| e.to_line()).collect();
    assert!(expected.iter().any(|l| l.contains("|sales|NONE|ENTERQUEUE|web|")), "gate in ENTERQUEUE's first field");

    let mut file = QueueLogFile::open(&path).unwrap();
    file.append(&h.entries[..10]).unwrap();
    file.append(&h.entries).unwrap();
    file.append(&h.entries).unwrap();
    assert_eq!(file_lines(&path), expected);
    drop(file);

    // A crash after appending lines but before recording them: the lines are cut off on
    // open and written again by the replay, once.
    let extra = (
        h.index + 1,
        vec![Effect::QueueLog(QueueLogEntry {
            at_ms: 1_732_260_000_000,
            call: None,
            queue: None,
            gate: None,
            agent: Some(lineup_core::OperatorId::new("alice")),
            verb: QueueLogVerb::AgentLogoff,
            data: vec!["op-alice".into(), "3600".into()],
        })],
    );
    std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"1732260000|NONE|NONE|ali").unwrap();
    let mut file = QueueLogFile::open(&path).unwrap();
    assert_eq!(file_lines(&path), expected, "torn line removed");
    file.append(&h.entries).unwrap();
    file.append(std::slice::from_ref(&extra)).unwrap();
    let mut with_extra = expected.clone();
    with_extra.push("1732260000|NONE|NONE|alice|AGENTLOGOFF|op-alice|3600".into());
    assert_eq!(file_lines(&path), with_extra);
    drop(file);

    // Rotated away (logrotate): a new file starts, the index is remembered.
    std::fs::rename(&path, dir.path("queue_log.1")).unwrap();
    let mut file = QueueLogFile::open(&path).unwrap();
    assert_eq!(file.last_index(), extra.0);
    file.append(std::slice::from_ref(&extra)).unwrap();
    assert!(file_lines(&path).is_empty());
}

/// A full disk while the node runs: the lines of a batch reached the file, but recording them
/// in the sidecar failed (here its temporary file cannot be created). The drainer retries the
/// same batch: the file must hold each line once, not the failed attempt's lines again.
#[test]
fn queue_log_append_retried_after_a_failed_record_writes_each_line_once() {
    let dir = TempDir::new();
    let path = dir.path("queue_log");
    let mut h = Harness::new();
    busy_morning(&mut h);
    let expected: Vec<String> = h.queue_log().iter().map(|(_, _, e)| e.to_line()).collect();
    let mut file = QueueLogFile::open(&path).unwrap();
    file.append(&h.entries[..10]).unwrap();

    let blocked_tmp = dir.path(&format!("queue_log{SIDECAR_SUFFIX}.tmp"));
    std::fs::create_dir(&blocked_tmp).unwrap();
    assert!(file.append(&h.entries).is_err(), "the sidecar could not be recorded");
    assert!(file.append(&h.entries).is_err(), "nor on the first retry");
    std::fs::remove_dir(&blocked_tmp).unwrap();

    file.append(&h.entries).unwrap();
    assert_eq!(file_lines(&path), expected, "each line once, in order");
    drop(file);
    let reopened = QueueLogFile::open(&path).unwrap();
    assert_eq!(file_lines(&path), expected, "and a reopen finds nothing to repair");
    assert_eq!(reopened.last_index(), h.entries.last().unwrap().0);
}

use std::io::Write;

/// A burst against a one-entry memory queue: most submits find it full and write the file
/// themselves, racing the writer thread; every entry still lands once, in log order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_beyond_the_memory_queue_is_kept_whole_and_in_order() {
    let dir = TempDir::new();
    let outbox = Outbox::open_with_pending_capacity(dir.path("outbox.redb"), &[SINK_QUEUE_LOG], 1).unwrap();
    let burst = 3_000;
    let line = |i: u64| QueueLogEntry {
        at_ms: 1_732_250_000_000 + i * 1000,
        call: Some(lineup_core::CallId::new(format!("a-{i}"))),
        queue: Some(lineup_core::QueueId::new("sales")),
        gate: None,
        agent: None,
        verb: QueueLogVerb::EnterQueue,
        data: vec![String::new(), "5551234".into(), "1".into()],
    };
    let started = Instant::now();
    for i in 1..=burst as u64 {
        let submitted = outbox.submit(i, vec![Effect::QueueLog(line(i))]).unwrap();
        assert!(matches!(submitted, Submitted::Queued | Submitted::WrittenSynchronously));
    }
    let per_submit_us = started.elapsed().as_micros() / burst as u128;
    // Local disk only: a few fsyncs per submit at worst, on a loaded CI machine.
    assert!(per_submit_us < 20_000, "{per_submit_us} µs per submit");
    poll("burst persisted", || async { (outbox.lag().ok()?.pending == 0).then_some(()) }).await;
    let lag = outbox.lag().unwrap();
    assert_eq!((lag.entries, lag.oldest_index, lag.newest_index), (burst as u64, Some(1), Some(burst as u64)));
    assert!(lag.synchronous_writes > 0, "the full-queue path ran: {lag:?}");

    let sink = QueueLogSink::new(QueueLogFile::open(dir.path("queue_log")).unwrap());
    let drainer = outbox.spawn_drainer(SINK_QUEUE_LOG, sink.clone()).unwrap();
    poll("burst drained", || async { (outbox.lag().ok()?.entries == 0).then_some(()) }).await;
    drainer.stop().await;
    let lines = file_lines(&dir.path("queue_log"));
    assert_eq!(lines.len(), burst);
    assert!(lines.iter().enumerate().all(|(i, l)| *l == line(i as u64 + 1).to_line()), "in log order");
    assert_eq!(sink.last_index(), burst as u64);
}

/// The node's history side in one piece, on the embedded default (SQLite): everything lands
/// in the database and the queue_log file, the config is mirrored, health reads clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pipeline_on_sqlite_delivers_everything_and_reports_health() {
    use lineup_store::{HistoryPipeline, HistoryPipelineConfig};
    let dir = TempDir::new();
    let pipeline = HistoryPipeline::start(HistoryPipelineConfig {
        outbox_path: dir.path("outbox.redb"),
        database_url: dir.sqlite_url(),
        queue_log_path: Some(dir.path("queue_log")),
    })
    .unwrap();
    let mut h = Harness::new();
    busy_morning(&mut h);
    for (index, effects) in &h.entries {
        pipeline.submit(*index, effects.clone()).unwrap();
    }
    pipeline.update_config(ConfigMirror::from_routing(&h.routing));
    let store = HistoryStore::open(&dir.sqlite_url()).await.unwrap();
    let health = poll("pipeline drained and config mirrored", || async {
        let health = pipeline.health().ok()?;
        let mirrored = store.config_queue_ids().await.ok()?.len() == 2;
        (health.lag.entries == 0 && health.lag.pending == 0 && mirrored).then_some(health)
    })
    .await;
    assert!(health.is_healthy(), "{health:?}");
    assert_eq!(health.queue_log.map(|q| q.delivered_through), Some(health.database.delivered_through));
    assert_history_complete(&store, &h).await;
    let expected: Vec<String> = h.queue_log().iter().map(|(_, _, e)| e.to_line()).collect();
    assert_eq!(file_lines(&dir.path("queue_log")), expected);
    pipeline.stop().await;
    store.close().await;
}
