//! One SQL statement in both dialects, the values bound to it, and a transaction on
//! either backend.

use crate::error::StoreError;

/// One SQL statement in both dialects (PostgreSQL `$n`, SQLite `?n`, same argument order).
pub(super) struct Statement {
    pub(super) postgres: &'static str,
    pub(super) sqlite: &'static str,
}

/// A bound value: the history schema only needs 64-bit integers and text.
#[derive(Debug, Clone)]
pub(super) enum Arg {
    Int(i64),
    OptInt(Option<i64>),
    Text(String),
    OptText(Option<String>),
}

macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                Arg::Int(v) => query.bind(*v),
                Arg::OptInt(v) => query.bind(*v),
                Arg::Text(v) => query.bind(v.clone()),
                Arg::OptText(v) => query.bind(v.clone()),
            };
        }
        query
    }};
}

pub(super) enum Tx {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

impl Tx {
    pub(super) async fn execute(&mut self, statement: &Statement, args: &[Arg]) -> Result<u64, StoreError> {
        Ok(match self {
            Tx::Postgres(tx) => {
                bind_args!(sqlx::query(statement.postgres), args).execute(&mut **tx).await?.rows_affected()
            }
            Tx::Sqlite(tx) => bind_args!(sqlx::query(statement.sqlite), args).execute(&mut **tx).await?.rows_affected(),
        })
    }

    pub(super) async fn fetch_i64(&mut self, statement: &Statement) -> Result<i64, StoreError> {
        Ok(match self {
            Tx::Postgres(tx) => sqlx::query_scalar::<_, i64>(statement.postgres).fetch_one(&mut **tx).await?,
            Tx::Sqlite(tx) => sqlx::query_scalar::<_, i64>(statement.sqlite).fetch_one(&mut **tx).await?,
        })
    }

    pub(super) async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Postgres(tx) => tx.commit().await?,
            Tx::Sqlite(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

/// Database integers are signed; log indexes, times and site ids never come near 2^63, and
/// a history writer must not wedge on one absurd value, so out-of-range values saturate.
pub(super) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Encode(e.to_string()))
}
