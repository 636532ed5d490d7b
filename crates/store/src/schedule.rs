//! The poll schedule shared by daemon replicas: one row per watch key, leased
//! by whichever replica checks it, so work is neither lost nor done twice.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use crate::sql::{clamp_limit, from_ms, lease_until, query_err, to_ms, with_pool, with_tx};
use crate::{Backend, Store, StoreError};

// $1 = now, reused; see claim_deliveries_sql in outbox.rs.
macro_rules! claim_watches_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE watch_schedule SET lease_owner = $2, lease_until = $3 \
             WHERE watch_key IN (SELECT watch_key FROM watch_schedule \
                 WHERE next_due <= $1 AND (lease_until IS NULL OR lease_until <= $1) \
                 ORDER BY next_due, watch_key LIMIT $4",
            $lock,
            ") RETURNING watch_key, next_due"
        )
    };
}

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    watch_key: String,
    next_due: i64,
}

impl Store {
    /// Makes the schedule match the configured watches: inserts a row, first
    /// due at the given time, for each new key (existing rows, with their due
    /// times and leases, are left alone) and deletes rows whose key is gone.
    pub async fn sync_schedule(&self, keys: &[(String, DateTime<Utc>)]) -> Result<(), StoreError> {
        const CTX: &str = "update the watch schedule";
        let mut tx = self.db.begin_write(CTX).await?;
        let existing: Vec<String> = with_tx!(&mut tx, conn => {
            sqlx::query_scalar("SELECT watch_key FROM watch_schedule")
                .fetch_all(conn)
                .await
        })
        .map_err(query_err(CTX))?;
        let existing: HashSet<String> = existing.into_iter().collect();
        let wanted: HashSet<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
        // Rows are written in key order so that two replicas syncing at once
        // take row locks in the same order and cannot deadlock (PostgreSQL).
        let mut to_insert: Vec<&(String, DateTime<Utc>)> =
            keys.iter().filter(|(k, _)| !existing.contains(k)).collect();
        to_insert.sort_by(|a, b| a.0.cmp(&b.0));
        to_insert.dedup_by(|a, b| a.0 == b.0);
        let mut to_delete: Vec<&String> = existing
            .iter()
            .filter(|k| !wanted.contains(k.as_str()))
            .collect();
        to_delete.sort();

        for (key, first_due) in to_insert {
            // ON CONFLICT: another replica may have inserted it meanwhile.
            with_tx!(&mut tx, conn => {
                sqlx::query(
                    "INSERT INTO watch_schedule (watch_key, next_due) VALUES ($1, $2) \
                     ON CONFLICT (watch_key) DO NOTHING",
                )
                .bind(key)
                .bind(to_ms(*first_due))
                .execute(conn)
                .await
                .map(|r| r.rows_affected())
            })
            .map_err(query_err(CTX))?;
        }
        for key in to_delete {
            with_tx!(&mut tx, conn => {
                sqlx::query("DELETE FROM watch_schedule WHERE watch_key = $1")
                    .bind(key)
                    .execute(conn)
                    .await
                    .map(|r| r.rows_affected())
            })
            .map_err(query_err(CTX))?;
        }
        tx.commit(CTX).await
    }

    /// Leases up to `limit` due watch keys (`next_due <= now`, lease free or
    /// expired) to `owner` until `now + lease`, most overdue first. Concurrent
    /// claimers never get the same key (PostgreSQL: `FOR UPDATE SKIP LOCKED`).
    pub async fn claim_due_watches(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let sql = match self.backend() {
            Backend::Postgres => claim_watches_sql!(" FOR UPDATE SKIP LOCKED"),
            Backend::Sqlite => claim_watches_sql!(""),
        };
        let mut rows: Vec<ClaimedRow> = with_pool!(&self.db, pool => {
            sqlx::query_as(sql)
                .bind(to_ms(now))
                .bind(owner)
                .bind(lease_until(now, lease))
                .bind(clamp_limit(limit))
                .fetch_all(pool)
                .await
        })
        .map_err(query_err("claim due watches"))?;
        // RETURNING gives no order guarantee.
        rows.sort_by(|a, b| (a.next_due, &a.watch_key).cmp(&(b.next_due, &b.watch_key)));
        Ok(rows.into_iter().map(|r| r.watch_key).collect())
    }

    /// Sets the key's next due time and releases its lease, if `owner` still
    /// holds it; otherwise (lease expired and taken over, or key deleted) does
    /// nothing, since the new holder decides.
    pub async fn finish_watch(
        &self,
        key: &str,
        owner: &str,
        next_due: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let affected = with_pool!(&self.db, pool => {
            sqlx::query(
                "UPDATE watch_schedule SET next_due = $3, lease_owner = NULL, lease_until = NULL \
                 WHERE watch_key = $1 AND lease_owner = $2",
            )
            .bind(key)
            .bind(owner)
            .bind(to_ms(next_due))
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(query_err("finish a watch"))?;
        if affected == 0 {
            tracing::debug!(
                key,
                owner,
                "watch lease lost before finish; left to its new holder"
            );
        }
        Ok(())
    }

    /// When the next watch can be claimed: the earliest `next_due`, or lease
    /// expiry for a key leased right now. `None` if the schedule is empty.
    pub async fn next_watch_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let ms: Option<i64> = with_pool!(&self.db, pool => {
            sqlx::query_scalar(
                "SELECT MIN(CASE WHEN lease_until IS NOT NULL AND lease_until > next_due \
                     THEN lease_until ELSE next_due END) FROM watch_schedule",
            )
            .fetch_one(pool)
            .await
        })
        .map_err(query_err("find the next due watch"))?;
        ms.map(|ms| from_ms(ms, "watch_schedule.next_due"))
            .transpose()
    }
}
