//! The one error type of the crate.

/// What went wrong in the history store, the outbox, the queue_log file or the projection.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL names no backend this crate knows.
    #[error("unsupported database URL scheme in {url:?}: expected postgres://, postgresql:// or sqlite:")]
    UnsupportedUrl { url: String },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A batch handed to `write_batch` is not in increasing log order.
    #[error("history batch out of order: log index {index} after {previous}")]
    BatchOutOfOrder { previous: u64, index: u64 },
    /// A report request the store refuses (an empty or too long period, too many rows).
    #[error("report: {reason}")]
    BadReport { reason: String },
    #[error("outbox file: {0}")]
    Outbox(String),
    /// An outbox entry on disk could not be decoded (a newer format, or damage).
    #[error("outbox entry at log index {index} is unreadable: {reason}")]
    OutboxDecode { index: u64, reason: String },
    #[error("outbox sink {name:?} was not declared when the outbox was opened")]
    UnknownSink { name: String },
    #[error("the outbox is closed")]
    OutboxClosed,
    #[error("queue_log file {path}: {source}")]
    QueueLogFile { path: String, source: std::io::Error },
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("encoding: {0}")]
    Encode(String),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Outbox(e.to_string())
            }
        }
    )*};
}

from_redb!(redb::DatabaseError, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);
