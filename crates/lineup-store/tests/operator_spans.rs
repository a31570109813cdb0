//! `operator_spans` (each operator state change with the operator's change before it and
//! the time of the one after it, which the interval reports read) stays exactly what LAG and
//! LEAD over `operator_events` say, on SQLite and PostgreSQL, whatever the order rows are
//! written in, when a write is replayed, and when rows are deleted or rewritten; and so do
//! `operator_quarters` (the per-quarter rollup kept from the spans) and `calls.wrap_up_ms`
//! (each call's closed wrap-ups, kept from the spans and written before or after the call).

mod common;

use common::*;
use lineup_store::HistoryStore;

/// Log entries written, three changes each.
const ENTRIES: i64 = 60;
/// Operators the changes are spread over (few, so neighbours move often).
const OPERATORS: i64 = 4;

const INSERT: &str = "INSERT INTO operator_events (log_index, seq, operator, status, call_id, site, at_ms) \
     VALUES ($1, $2, $3, $4, $5, 1, $6) ON CONFLICT DO NOTHING";

// Rows in one and not the other, both ways; 0 when the spans are exactly the window's.
const DIFFERENCE: &str = "WITH expected AS ( \
       SELECT log_index, seq, operator, status, reason, call_id, at_ms, LAG(status) OVER w AS previous_status, \
         LAG(call_id) OVER w AS previous_call_id, LAG(at_ms) OVER w AS previous_at_ms, LEAD(at_ms) OVER w AS next_at_ms \
       FROM operator_events WINDOW w AS (PARTITION BY operator ORDER BY log_index, seq)), \
     kept AS (SELECT log_index, seq, operator, status, reason, call_id, at_ms, previous_status, \
       previous_call_id, previous_at_ms, next_at_ms FROM operator_spans) \
     SELECT CAST((SELECT COUNT(*) FROM (SELECT * FROM expected EXCEPT SELECT * FROM kept) missing) \
       + (SELECT COUNT(*) FROM (SELECT * FROM kept EXCEPT SELECT * FROM expected) extra) AS BIGINT)";

// The same for `operator_quarters` (each closed span's time per quarter hour and its login,
// kept by triggers on operator_spans) against the sums computed from the spans.
const QUARTERS_DIFFERENCE: &str = "WITH RECURSIVE k (n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM k WHERE n < 1000), \
     expected AS ( \
       SELECT s.operator AS operator, CAST((s.at_ms / 900000 + k.n) * 900000 AS BIGINT) AS quarter_start_ms, \
         s.status AS status, CASE WHEN s.status = 'break' THEN COALESCE(s.reason, '') ELSE '' END AS reason, \
         CAST(SUM(CASE WHEN s.next_at_ms <= s.at_ms THEN 0 \
           ELSE (CASE WHEN s.next_at_ms < (s.at_ms / 900000 + k.n + 1) * 900000 THEN s.next_at_ms \
             ELSE (s.at_ms / 900000 + k.n + 1) * 900000 END) \
           - (CASE WHEN s.at_ms > (s.at_ms / 900000 + k.n) * 900000 THEN s.at_ms \
             ELSE (s.at_ms / 900000 + k.n) * 900000 END) END) AS BIGINT) AS state_ms, \
         CAST(SUM(CASE WHEN k.n = 0 AND (s.previous_status IS NULL OR s.previous_status = 'offline') \
           THEN 1 ELSE 0 END) AS BIGINT) AS logins \
       FROM operator_spans s JOIN k ON k.n <= CASE WHEN s.next_at_ms > s.at_ms \
         THEN (s.next_at_ms - 1) / 900000 - s.at_ms / 900000 ELSE 0 END \
       WHERE s.status <> 'offline' AND s.next_at_ms IS NOT NULL \
       GROUP BY 1, 2, 3, 4), \
     wanted AS (SELECT * FROM expected WHERE state_ms <> 0 OR logins <> 0), \
     kept AS (SELECT operator, quarter_start_ms, status, reason, state_ms, logins FROM operator_quarters) \
     SELECT CAST((SELECT COUNT(*) FROM (SELECT * FROM wanted EXCEPT SELECT * FROM kept) missing) \
       + (SELECT COUNT(*) FROM (SELECT * FROM kept EXCEPT SELECT * FROM wanted) extra) AS BIGINT)";

// The same for `calls.wrap_up_ms` against the closed wrap-ups after a `busy` on each call id.
const WRAP_UPS_DIFFERENCE: &str = "WITH expected AS ( \
       SELECT previous_call_id AS call_id, CAST(SUM(next_at_ms - at_ms) AS BIGINT) AS wrap_up_ms \
       FROM operator_spans WHERE status = 'wrap_up' AND previous_status = 'busy' AND next_at_ms IS NOT NULL \
       GROUP BY previous_call_id) \
     SELECT CAST(COUNT(*) AS BIGINT) FROM calls c LEFT JOIN expected e ON e.call_id = c.call_id \
     WHERE COALESCE(c.wrap_up_ms, -1) <> COALESCE(e.wrap_up_ms, -1)";

// Calls with a wrap-up (a closed `wrap_up` right after a `busy` on the call) written before
// ($1 = 1) or after ($1 = 0) the changes: those up to log index $2 were written first.
const CALLS_WITH_WRAP_UP: &str = "SELECT CAST(COUNT(*) AS BIGINT) FROM calls WHERE wrap_up_ms IS NOT NULL \
     AND (CASE WHEN log_index <= $2 THEN 1 ELSE 0 END) = $1";

const INSERT_CALL: &str = "INSERT INTO calls (log_index, seq, call_id, queue, priority, entry_site, caller_number, \
     caller_name, outcome, entered_at_ms, ended_at_ms, wait_ms, handle_ms, callback_attempts) \
     VALUES ($1, 0, $2, 'sales', 5, 1, '100', 'A', 'completed', 0, 1, 0, 1, 0) ON CONFLICT DO NOTHING";

/// One ended call per log entry's call id (`c<log index>`), at log indexes after the changes';
/// call ids divisible by 7 twice (a call that ended in one queue and went on in another).
fn call_rows() -> Vec<(i64, String)> {
    let mut rows: Vec<(i64, String)> = (1..=ENTRIES).map(|i| (1_000 + i, format!("c{i}"))).collect();
    rows.extend((1..=ENTRIES).filter(|i| i % 7 == 0).map(|i| (2_000 + i, format!("c{i}"))));
    rows
}

const STATUSES: [&str; 5] = ["available", "busy", "wrap_up", "break", "offline"];

/// Every (log_index, seq) in a fixed shuffled order (a multiplicative walk mod a prime).
fn shuffled_rows() -> Vec<(i64, i64, String, String, String, i64)> {
    let count = ENTRIES * 3;
    let prime = 181; // > count, so i * 67 mod 181 visits each of 0..181 once
    (0..prime)
        .map(|i| i * 67 % prime)
        .filter(|&k| k < count)
        .map(|k| {
            let (log_index, seq) = (k / 3 + 1, k % 3);
            let operator = format!("op{}", (k * 7 + k / 5) % OPERATORS);
            // Runs of four: an operator's `busy` is often followed by its `wrap_up` (calls.wrap_up_ms).
            let status = STATUSES[((k / 4) % 5) as usize].to_string();
            // ~97 s apart: the changes cross quarter-hour edges (operator_quarters).
            (log_index, seq, operator, status, format!("c{log_index}"), log_index * 97_000 + seq)
        })
        .collect()
}

macro_rules! spans_follow_events {
    ($pool:expr) => {{
        let pool = &$pool;
        let difference = || async {
            let spans = sqlx::query_scalar::<_, i64>(DIFFERENCE).fetch_one(pool).await.unwrap();
            let quarters = sqlx::query_scalar::<_, i64>(QUARTERS_DIFFERENCE).fetch_one(pool).await.unwrap();
            let wrap_ups = sqlx::query_scalar::<_, i64>(WRAP_UPS_DIFFERENCE).fetch_one(pool).await.unwrap();
            (spans, quarters, wrap_ups)
        };
        let calls = call_rows();
        // Half the calls are written before the changes, half after (history rows come in any order).
        let (early_calls, late_calls) = calls.split_at(calls.len() / 2);
        for (log_index, call) in early_calls {
            sqlx::query(INSERT_CALL).bind(log_index).bind(call).execute(pool).await.unwrap();
        }
        let rows = shuffled_rows();
        for (log_index, seq, operator, status, call, at_ms) in &rows {
            let query = sqlx::query(INSERT).bind(log_index).bind(seq).bind(operator).bind(status);
            query.bind(call).bind(at_ms).execute(pool).await.unwrap();
        }
        for (log_index, call) in late_calls {
            sqlx::query(INSERT_CALL).bind(log_index).bind(call).execute(pool).await.unwrap();
        }
        assert_eq!(difference().await, (0, 0, 0), "written out of order");
        let last_early = early_calls.last().unwrap().0;
        for early in [1_i64, 0] {
            let query = sqlx::query_scalar::<_, i64>(CALLS_WITH_WRAP_UP).bind(early).bind(last_early);
            let with_wrap_up = query.fetch_one(pool).await.unwrap();
            assert!(with_wrap_up >= 4, "calls written early ({early}) or late hold wrap-ups: {with_wrap_up}");
        }
        for (log_index, seq, operator, status, call, at_ms) in rows.iter().take(40) {
            let query = sqlx::query(INSERT).bind(log_index).bind(seq).bind(operator).bind(status);
            query.bind(call).bind(at_ms).execute(pool).await.unwrap();
        }
        assert_eq!(difference().await, (0, 0, 0), "written again");
        let spans: i64 =
            sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM operator_spans").fetch_one(pool).await.unwrap();
        assert_eq!(spans, ENTRIES * 3);
        for (log_index, seq, ..) in rows.iter().skip(50).take(30) {
            let delete = "DELETE FROM operator_events WHERE log_index = $1 AND seq = $2";
            sqlx::query(delete).bind(log_index).bind(seq).execute(pool).await.unwrap();
        }
        assert_eq!(difference().await, (0, 0, 0), "deleted");
        let moved = "UPDATE operator_events SET operator = 'op9' WHERE log_index < 15";
        sqlx::query(moved).execute(pool).await.unwrap();
        let rewritten =
            "UPDATE operator_events SET at_ms = at_ms + 5, status = 'break' WHERE log_index BETWEEN 30 AND 40";
        sqlx::query(rewritten).execute(pool).await.unwrap();
        assert_eq!(difference().await, (0, 0, 0), "rewritten");
    }};
}

#[tokio::test]
async fn sqlite_spans_follow_operator_events() {
    let dir = TempDir::new();
    let store = HistoryStore::open(&dir.sqlite_url()).await.unwrap();
    let pool = sqlx::SqlitePool::connect(&dir.sqlite_url()).await.unwrap();
    spans_follow_events!(pool);
    pool.close().await;
    store.close().await;
}

#[tokio::test]
async fn postgres_spans_follow_operator_events() {
    let db = PgDatabase::create().await;
    let store = HistoryStore::open(&db.url()).await.unwrap();
    let pool = sqlx::PgPool::connect(&db.url()).await.unwrap();
    spans_follow_events!(pool);
    pool.close().await;
    store.close().await;
    db.drop_database().await;
}
