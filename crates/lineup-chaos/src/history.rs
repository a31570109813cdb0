//! Every site's history (the `calls` table of its SQLite file, migrations/sqlite), read-only.

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::collections::BTreeMap;
use std::path::Path;

/// One `calls` row: outcome and `outcome_detail` (who hung up, for `completed`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutcomeRow {
    pub outcome: String,
    pub detail: Option<String>,
}

/// call id → its rows (exactly one is right).
pub type CallRows = BTreeMap<String, Vec<OutcomeRow>>;

/// Reads every `calls` row of the SQLite file at `path`.
pub async fn read_calls(path: &Path) -> anyhow::Result<CallRows> {
    let mut connection = SqliteConnectOptions::new().filename(path).read_only(true).connect().await?;
    let rows: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT call_id, outcome, outcome_detail FROM calls").fetch_all(&mut connection).await?;
    let _ = connection.close().await;
    let mut calls = CallRows::new();
    for (call_id, outcome, detail) in rows {
        calls.entry(call_id).or_default().push(OutcomeRow { outcome, detail });
    }
    Ok(calls)
}
