//! Backend plumbing: the pool enum, write transactions, and conversions
//! shared by the query modules.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};

use crate::StoreError;

/// The connection pool of whichever backend the URL named.
#[derive(Clone, Debug)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A write transaction on either backend.
pub(crate) enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// Runs `$body` with `$conn` bound to the backend's pool. The body is expanded
/// once per backend, so one query text (with `$N` placeholders, which both
/// backends accept) is type-checked against each driver.
macro_rules! with_pool {
    ($db:expr, $conn:ident => $body:expr) => {
        match $db {
            $crate::sql::Db::Sqlite($conn) => $body,
            $crate::sql::Db::Postgres($conn) => $body,
        }
    };
}

/// Like `with_pool!`, for a `&mut Tx`: `$conn` is the transaction's
/// connection, for one query per call.
macro_rules! with_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::sql::Tx::Sqlite(tx) => {
                let $conn = &mut **tx;
                $body
            }
            $crate::sql::Tx::Postgres(tx) => {
                let $conn = &mut **tx;
                $body
            }
        }
    };
}

pub(crate) use {with_pool, with_tx};

impl Db {
    /// Starts a write transaction. SQLite takes the write lock up front
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads and then writes
    /// can fail with SQLITE_BUSY without waiting when another connection or
    /// process wrote in between, which `busy_timeout` cannot help with.
    pub(crate) async fn begin_write(&self, context: &'static str) -> Result<Tx, StoreError> {
        match self {
            Db::Sqlite(pool) => pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map(Tx::Sqlite)
                .map_err(query_err(context)),
            Db::Postgres(pool) => pool
                .begin()
                .await
                .map(Tx::Postgres)
                .map_err(query_err(context)),
        }
    }
}

impl Tx {
    /// Commits the transaction.
    pub(crate) async fn commit(self, context: &'static str) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        }
        .map_err(query_err(context))
    }

    /// True on PostgreSQL, where row locks (`FOR UPDATE`) are needed; SQLite's
    /// `BEGIN IMMEDIATE` already serialises writers.
    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self, Tx::Postgres(_))
    }
}

/// Maps a driver error to [`StoreError::Query`] naming the operation.
pub(crate) fn query_err(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { context, source }
}

/// Unix milliseconds, the stored form of every timestamp.
pub(crate) fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Reads back a stored timestamp.
pub(crate) fn from_ms(ms: i64, column: &'static str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| StoreError::Corrupt {
        context: column,
        detail: format!("timestamp {ms} ms is out of range"),
    })
}

/// `now + lease` in milliseconds, saturating instead of overflowing on absurd leases.
pub(crate) fn lease_until(now: DateTime<Utc>, lease: std::time::Duration) -> i64 {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    to_ms(now).saturating_add(lease_ms)
}

/// A negative LIMIT means "no limit" to SQLite but is an error on PostgreSQL;
/// treat it as zero on both.
pub(crate) fn clamp_limit(n: i64) -> i64 {
    n.max(0)
}
