//! The operator report read from the per-quarter rollup (`operator_quarters`) gives the
//! same rows as the report cut from every span, on SQLite and PostgreSQL, over a day whose
//! changes fall anywhere (across quarter-hour edges, several in one quarter, breaks and
//! logins spanning hours, operators still logged in at the end), for several periods,
//! intervals and report clocks; and still after history rows are deleted and rewritten
//! (the rollup follows the spans it is kept from).

mod common;

use common::*;
use lineup_core::*;
use lineup_store::{ConfigMirror, HistoryStore, OperatorPath, ReportInterval, ReportQuery};

/// A UTC midnight, Unix ms.
const DAY_MS: u64 = 1_796_083_200_000;
const HOUR_MS: u64 = 3_600_000;
const QUARTER_MS: u64 = 900_000;
/// Operators in the day.
const OPERATORS: u64 = 5;
/// State changes per operator.
const CHANGES_PER_OPERATOR: u64 = 120;

fn status_at(operator: &str, at_ms: u64, status: OperatorStatus) -> Effect {
    Effect::OperatorChanged(OperatorView {
        operator: OperatorId::new(operator),
        status,
        site: Some(SITE_A),
        channel: None,
        since_ms: at_ms,
        rest_until_ms: None,
        queues: vec![],
    })
}

/// Each operator's changes, at gaps of 1 ms to ~2 h (a fixed pseudo-random walk), written
/// one log entry per change in time order.
fn day() -> Vec<(u64, Vec<Effect>)> {
    let mut changes = Vec::new();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |bound: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % bound
    };
    for o in 0..OPERATORS {
        let operator = format!("op{o}");
        // op0 logs in before the periods asked about start.
        let mut at_ms = DAY_MS + o * 1_234_567;
        for c in 0..CHANGES_PER_OPERATOR {
            let gap = match next(4) {
                0 => next(3) + 1,
                1 => next(QUARTER_MS),
                2 => next(3 * QUARTER_MS),
                _ => next(2 * HOUR_MS),
            };
            at_ms += gap / 4;
            let status = match next(7) {
                0 => OperatorStatus::Offline,
                1 => OperatorStatus::Break { reason: ["lunch", "coffee", ""][next(3) as usize].into() },
                2 => OperatorStatus::Busy { call: CallId::new(format!("c{o}_{c}")), fence: 1 },
                3 => OperatorStatus::WrapUp { until_ms: 0 },
                _ => OperatorStatus::Available,
            };
            changes.push((at_ms, status_at(&operator, at_ms, status)));
        }
    }
    changes.sort_by_key(|(at_ms, _)| *at_ms);
    changes.into_iter().enumerate().map(|(i, (_, effect))| (i as u64 + 1, vec![effect])).collect()
}

/// The day's operators, configured (the span path reports an operator's state at the
/// period's start only for configured operators and those with a change in the period; a
/// removed operator is logged out first).
fn mirror() -> ConfigMirror {
    let operator =
        |o: u64| OperatorConfig { id: OperatorId::new(format!("op{o}")), name: format!("op{o}"), ..Default::default() };
    ConfigMirror { apply_index: 1, queues: vec![], gates: vec![], operators: (0..OPERATORS).map(operator).collect() }
}

/// Periods starting on quarter hours (the rollup's), with clocks before, inside and after
/// their end, some off any quarter edge.
fn queries() -> Vec<ReportQuery> {
    let mut queries = Vec::new();
    let periods = [
        (DAY_MS, DAY_MS + 24 * HOUR_MS),
        (DAY_MS + 7 * HOUR_MS + 3 * QUARTER_MS, DAY_MS + 13 * HOUR_MS + 12_345),
        (DAY_MS + 16 * HOUR_MS, DAY_MS + 40 * HOUR_MS),
    ];
    let intervals =
        [ReportInterval::Minutes15, ReportInterval::Minutes30, ReportInterval::Minutes60, ReportInterval::Day];
    for (from_ms, to_ms) in periods {
        let clocks = [from_ms + 1, from_ms + 2 * HOUR_MS + 7_777, from_ms + 3 * HOUR_MS, to_ms + HOUR_MS];
        for interval in intervals {
            for now_ms in clocks {
                let query =
                    ReportQuery { from_ms, to_ms, interval, queue: None, gate: None, service_level_ms: None, now_ms };
                queries.push(query);
            }
        }
    }
    queries
}

async fn same_rows_both_ways(store: &HistoryStore, when: &str) {
    let mut with_rows = 0;
    for query in queries() {
        let spans = store.operator_report_by(&query, OperatorPath::Spans).await.unwrap();
        let quarters = store.operator_report_by(&query, OperatorPath::Quarters).await.unwrap();
        with_rows += usize::from(spans.iter().any(|row| row.logged_in_s > 0.0));
        assert_eq!(quarters, spans, "{when}: {query:?}");
    }
    // Only reports asked 1 ms into their period may be empty.
    assert!(with_rows >= queries().len() * 3 / 4, "{when}: {with_rows} reports with time logged in");
}

macro_rules! rollup_matches_spans {
    ($store:expr, $pool:expr) => {{
        let (store, pool) = (&$store, &$pool);
        store.write_batch(&day()).await.expect("write the day");
        store.mirror_config(&mirror()).await.expect("mirror the config");
        same_rows_both_ways(store, "written").await;
        // Rows removed from the middle of operators' histories, and one rewritten.
        let removed = "DELETE FROM operator_events WHERE log_index % 17 = 3";
        sqlx::query(removed).execute(pool).await.unwrap();
        same_rows_both_ways(store, "after deletes").await;
        let rewritten = "UPDATE operator_events SET status = 'break', reason = 'training' WHERE log_index = 100";
        sqlx::query(rewritten).execute(pool).await.unwrap();
        same_rows_both_ways(store, "after an update").await;
    }};
}

#[tokio::test]
async fn sqlite_rollup_matches_spans() {
    let dir = TempDir::new();
    let store = HistoryStore::open(&dir.sqlite_url()).await.unwrap();
    let pool = sqlx::SqlitePool::connect(&dir.sqlite_url()).await.unwrap();
    rollup_matches_spans!(store, pool);
    pool.close().await;
    store.close().await;
}

#[tokio::test]
async fn postgres_rollup_matches_spans() {
    let db = PgDatabase::create().await;
    let store = HistoryStore::open(&db.url()).await.unwrap();
    let pool = sqlx::PgPool::connect(&db.url()).await.unwrap();
    rollup_matches_spans!(store, pool);
    pool.close().await;
    store.close().await;
    db.drop_database().await;
}
