//! Every site's history, read-only: the `calls` table of its SQLite file (migrations/sqlite)
//! and its queue_log file.

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One `calls` row: outcome and `outcome_detail` (who hung up, for `completed`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutcomeRow {
    pub outcome: String,
    pub detail: Option<String>,
}

/// call id → its rows (exactly one is right).
pub type CallRows = BTreeMap<String, Vec<OutcomeRow>>;

/// Where a site's history is.
pub enum HistorySource {
    Sqlite(PathBuf),
    /// A PostgreSQL URL.
    Postgres(String),
}

const SELECT_OUTCOMES: &str = "SELECT call_id, outcome, outcome_detail FROM calls";

/// Reads every `calls` row of a site's history.
pub async fn read_calls(source: &HistorySource) -> anyhow::Result<CallRows> {
    let rows: Vec<(String, String, Option<String>)> = match source {
        HistorySource::Sqlite(path) => {
            let mut connection = SqliteConnectOptions::new().filename(path).read_only(true).connect().await?;
            let rows = sqlx::query_as(SELECT_OUTCOMES).fetch_all(&mut connection).await?;
            let _ = connection.close().await;
            rows
        }
        HistorySource::Postgres(url) => {
            let mut connection = sqlx::PgConnection::connect(url).await?;
            let rows = sqlx::query_as(SELECT_OUTCOMES).fetch_all(&mut connection).await?;
            let _ = connection.close().await;
            rows
        }
    };
    let mut calls = CallRows::new();
    for (call_id, outcome, detail) in rows {
        calls.entry(call_id).or_default().push(OutcomeRow { outcome, detail });
    }
    Ok(calls)
}

/// The lines of the queue_log file at `path`, sorted (sites append in the order their
/// pipelines drain, so only the set of lines is compared); empty when there is no file yet.
pub fn read_queue_log(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}
