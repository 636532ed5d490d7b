//! The durable outbox: one row per (change event, trigger), leased by
//! dispatchers, retried until acknowledged or given up.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use crate::sql::{Tx, clamp_limit, from_ms, lease_until, query_err, to_ms, with_pool, with_tx};
use crate::{Backend, Delivery, DeliveryState, Store, StoreError};

/// Longest `last_error` kept: an error can quote a whole HTML error page, and
/// the first few KiB say what went wrong.
const MAX_ERROR_LEN: usize = 4096;

macro_rules! delivery_columns {
    () => {
        "id, event_id, trigger_name, payload, state, attempts, next_attempt_at, \
         last_error, response, created_at, delivered_at"
    };
}

const INSERT_DELIVERY: &str = "INSERT INTO deliveries \
     (event_id, trigger_name, payload, state, attempts, next_attempt_at, created_at) \
     VALUES ($1, $2, $3, 'pending', 0, $4, $5)";

// $1 = now, reused after $2/$3 on purpose: `$N` binds by number on both backends.
// $5/$6: a trigger filter (see `TriggerFilter::binds`).
macro_rules! claim_deliveries_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE deliveries SET lease_owner = $2, lease_until = $3 \
             WHERE id IN (SELECT id FROM deliveries \
                 WHERE state = 'pending' AND next_attempt_at <= $1 \
                   AND (lease_until IS NULL OR lease_until <= $1) \
                   AND ($5 = '' OR (trigger_name = $5) = $6) \
                 ORDER BY next_attempt_at, id LIMIT $4",
            $lock,
            ") RETURNING ",
            delivery_columns!()
        )
    };
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: i64,
    event_id: String,
    trigger_name: String,
    payload: String,
    state: String,
    attempts: i32,
    next_attempt_at: i64,
    last_error: Option<String>,
    response: Option<String>,
    created_at: i64,
    delivered_at: Option<i64>,
}

impl DeliveryRow {
    fn into_delivery(self) -> Result<Delivery, StoreError> {
        let corrupt = |context, detail: String| StoreError::Corrupt {
            context,
            detail: format!("delivery {}: {detail}", self.id),
        };
        let payload = serde_json::from_str(&self.payload)
            .map_err(|e| corrupt("deliveries.payload", e.to_string()))?;
        let state = DeliveryState::parse(&self.state).ok_or_else(|| {
            corrupt(
                "deliveries.state",
                format!("unknown state {:?}", self.state),
            )
        })?;
        Ok(Delivery {
            id: self.id,
            event_id: self.event_id,
            trigger: self.trigger_name,
            payload,
            state,
            attempts: self.attempts,
            next_attempt_at: from_ms(self.next_attempt_at, "deliveries.next_attempt_at")?,
            last_error: self.last_error,
            response: self.response,
            created_at: from_ms(self.created_at, "deliveries.created_at")?,
            delivered_at: self
                .delivered_at
                .map(|ms| from_ms(ms, "deliveries.delivered_at"))
                .transpose()?,
        })
    }
}

/// Inserts one pending delivery inside a write transaction.
pub(crate) async fn insert_delivery(
    tx: &mut Tx,
    event_id: &str,
    trigger: &str,
    payload: &serde_json::Value,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
    context: &'static str,
) -> Result<(), StoreError> {
    let payload = payload.to_string();
    with_tx!(tx, conn => {
        sqlx::query(INSERT_DELIVERY)
            .bind(event_id)
            .bind(trigger)
            .bind(&payload)
            .bind(to_ms(due))
            .bind(to_ms(now))
            .execute(conn)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(query_err(context))?;
    Ok(())
}

/// A delivery written with the state it reports (a rebuild run's or a
/// roll-out's end): to `trigger`, about `subject` (the run or roll-out),
/// with `payload`.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    /// The trigger told.
    pub trigger: String,
    /// What it is told.
    pub payload: serde_json::Value,
}

/// Inserts a pending delivery, due at `now`, unless one with `key` is
/// stored already (a result is told once per run, state and trigger).
pub(crate) async fn insert_keyed_delivery(
    tx: &mut Tx,
    subject: &str,
    notice: &Notice,
    key: &str,
    now: DateTime<Utc>,
    context: &'static str,
) -> Result<(), StoreError> {
    let payload = notice.payload.to_string();
    with_tx!(tx, conn => {
        sqlx::query(
            "INSERT INTO deliveries \
             (event_id, trigger_name, payload, state, attempts, next_attempt_at, created_at, dedup_key) \
             VALUES ($1, $2, $3, 'pending', 0, $4, $4, $5) ON CONFLICT (dedup_key) DO NOTHING",
        )
        .bind(subject)
        .bind(&notice.trigger)
        .bind(&payload)
        .bind(to_ms(now))
        .bind(key)
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
    })
    .map_err(query_err(context))?;
    Ok(())
}

/// Which deliveries a dispatcher takes, by trigger name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TriggerFilter<'a> {
    /// Every trigger's.
    All,
    /// All but this trigger's (left queued for another dispatcher).
    Except(&'a str),
    /// Only this trigger's.
    Only(&'a str),
}

impl TriggerFilter<'_> {
    /// The SQL binds: a name (`''` for no filter: no trigger is named `''`)
    /// and whether rows must match it (`true`) or not match it (`false`).
    fn binds(&self) -> (&str, bool) {
        match *self {
            TriggerFilter::All => ("", false),
            TriggerFilter::Except(n) => (n, false),
            TriggerFilter::Only(n) => (n, true),
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl Store {
    /// Enqueues one pending delivery, due at `now`, per trigger (duplicates
    /// collapsed) for an event already stored, e.g. to replay it. `record`
    /// enqueues on its own. Fails with [`StoreError::UnknownEvent`] if there
    /// is no such event.
    pub async fn enqueue(
        &self,
        event_id: &str,
        triggers: &[String],
        payload: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const CTX: &str = "enqueue deliveries";
        let mut tx = self.db.begin_write(CTX).await?;
        let exists: Option<i32> = with_tx!(&mut tx, conn => {
            sqlx::query_scalar("SELECT 1 FROM change_events WHERE id = $1")
                .bind(event_id)
                .fetch_optional(conn)
                .await
        })
        .map_err(query_err(CTX))?;
        if exists.is_none() {
            return Err(StoreError::UnknownEvent(event_id.to_string()));
        }
        let mut seen = HashSet::new();
        for trigger in triggers {
            if seen.insert(trigger.as_str()) {
                insert_delivery(&mut tx, event_id, trigger, payload, now, now, CTX).await?;
            }
        }
        tx.commit(CTX).await
    }

    /// Leases up to `limit` due deliveries (pending, `next_attempt_at <= now`,
    /// lease free or expired) to `owner` until `now + lease`, oldest due first.
    /// Concurrent claimers never get the same row (PostgreSQL: `FOR UPDATE
    /// SKIP LOCKED`; SQLite: one writer at a time). A lease that expires
    /// (dispatcher died) makes the row claimable again.
    pub async fn claim_deliveries(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.claim_deliveries_filtered(owner, now, lease, limit, TriggerFilter::All)
            .await
    }

    /// [`Store::claim_deliveries`] of the deliveries `filter` lets through:
    /// the watcher carries out cascades apart from the sends, so each
    /// dispatcher takes only its own kind.
    pub async fn claim_deliveries_filtered(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: i64,
        filter: TriggerFilter<'_>,
    ) -> Result<Vec<Delivery>, StoreError> {
        let (name, only) = filter.binds();
        let sql = match self.backend() {
            Backend::Postgres => claim_deliveries_sql!(" FOR UPDATE SKIP LOCKED"),
            Backend::Sqlite => claim_deliveries_sql!(""),
        };
        let rows: Vec<DeliveryRow> = with_pool!(&self.db, pool => {
            sqlx::query_as(sql)
                .bind(to_ms(now))
                .bind(owner)
                .bind(lease_until(now, lease))
                .bind(clamp_limit(limit))
                .bind(name)
                .bind(only)
                .fetch_all(pool)
                .await
        })
        .map_err(query_err("claim deliveries"))?;
        let mut deliveries = rows
            .into_iter()
            .map(DeliveryRow::into_delivery)
            .collect::<Result<Vec<_>, _>>()?;
        // RETURNING gives no order guarantee.
        deliveries.sort_by_key(|d| (d.next_attempt_at, d.id));
        Ok(deliveries)
    }

    /// Marks a delivery delivered (counting the attempt) and stores the
    /// target's `response`, e.g. a Jenkins queue item URL, if `owner` still
    /// holds it. Returns false if the lease was lost (another dispatcher
    /// claimed the row after this lease expired) or the row is not pending.
    pub async fn delivery_succeeded(
        &self,
        id: i64,
        owner: &str,
        now: DateTime<Utc>,
        response: Option<&str>,
    ) -> Result<bool, StoreError> {
        let result = with_pool!(&self.db, pool => {
            sqlx::query(
                "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, \
                     delivered_at = $3, response = $4, lease_owner = NULL, lease_until = NULL \
                 WHERE id = $1 AND lease_owner = $2 AND state = 'pending'",
            )
            .bind(id)
            .bind(owner)
            .bind(to_ms(now))
            .bind(response)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(query_err("mark a delivery delivered"))?;
        Ok(result == 1)
    }

    /// Extends `owner`'s lease on a delivery it is still carrying out to
    /// `now + lease`, so a long one (a cascade of builds) isn't taken by
    /// another dispatcher meanwhile. Returns false if the lease was lost.
    pub async fn renew_delivery(
        &self,
        id: i64,
        owner: &str,
        now: DateTime<Utc>,
        lease: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let result = with_pool!(&self.db, pool => {
            sqlx::query(
                "UPDATE deliveries SET lease_until = $3 \
                 WHERE id = $1 AND lease_owner = $2 AND state = 'pending'",
            )
            .bind(id)
            .bind(owner)
            .bind(lease_until(now, lease))
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(query_err("renew a delivery's lease"))?;
        Ok(result == 1)
    }

    /// Records a failed attempt by `owner`: `attempts += 1`, `last_error`
    /// (first 4 KiB), lease released. `next_attempt_at = Some(t)` retries at
    /// `t`; `None` gives up (state failed). Returns false if the lease was lost.
    pub async fn delivery_failed(
        &self,
        id: i64,
        owner: &str,
        error: &str,
        next_attempt_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let error = truncate(error, MAX_ERROR_LEN);
        let result = with_pool!(&self.db, pool => {
            match next_attempt_at {
                Some(at) => sqlx::query(
                    "UPDATE deliveries SET attempts = attempts + 1, last_error = $3, \
                         next_attempt_at = $4, lease_owner = NULL, lease_until = NULL \
                     WHERE id = $1 AND lease_owner = $2 AND state = 'pending'",
                )
                .bind(id)
                .bind(owner)
                .bind(error)
                .bind(to_ms(at))
                .execute(pool)
                .await,
                None => sqlx::query(
                    "UPDATE deliveries SET state = 'failed', attempts = attempts + 1, \
                         last_error = $3, lease_owner = NULL, lease_until = NULL \
                     WHERE id = $1 AND lease_owner = $2 AND state = 'pending'",
                )
                .bind(id)
                .bind(owner)
                .bind(error)
                .execute(pool)
                .await,
            }
            .map(|r| r.rows_affected())
        })
        .map_err(query_err("record a failed delivery"))?;
        Ok(result == 1)
    }

    /// Deliveries, newest first, optionally only those in `state`; one page of them.
    pub async fn deliveries(
        &self,
        state: Option<DeliveryState>,
        page: impl Into<crate::Page>,
    ) -> Result<Vec<Delivery>, StoreError> {
        let page = page.into();
        let n = page.sql_limit();
        let offset = page.sql_offset();
        let rows: Vec<DeliveryRow> = match state {
            Some(state) => with_pool!(&self.db, pool => {
                sqlx::query_as(concat!(
                    "SELECT ",
                    delivery_columns!(),
                    " FROM deliveries WHERE state = $2 ORDER BY id DESC LIMIT $1 OFFSET $3"
                ))
                .bind(n)
                .bind(state.as_str())
                .bind(offset)
                .fetch_all(pool)
                .await
            }),
            None => with_pool!(&self.db, pool => {
                sqlx::query_as(concat!(
                    "SELECT ",
                    delivery_columns!(),
                    " FROM deliveries ORDER BY id DESC LIMIT $1 OFFSET $2"
                ))
                .bind(n)
                .bind(offset)
                .fetch_all(pool)
                .await
            }),
        }
        .map_err(query_err("list deliveries"))?;
        rows.into_iter().map(DeliveryRow::into_delivery).collect()
    }

    /// One delivery by id, if there is one.
    pub async fn delivery(&self, id: i64) -> Result<Option<Delivery>, StoreError> {
        let row: Option<DeliveryRow> = with_pool!(&self.db, pool => {
            sqlx::query_as(concat!(
                "SELECT ",
                delivery_columns!(),
                " FROM deliveries WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(pool)
            .await
        })
        .map_err(query_err("read a delivery"))?;
        row.map(DeliveryRow::into_delivery).transpose()
    }

    /// The deliveries of one change event, oldest first.
    pub async fn event_deliveries(&self, event_id: &str) -> Result<Vec<Delivery>, StoreError> {
        let rows: Vec<DeliveryRow> = with_pool!(&self.db, pool => {
            sqlx::query_as(concat!(
                "SELECT ",
                delivery_columns!(),
                " FROM deliveries WHERE event_id = $1 ORDER BY id"
            ))
            .bind(event_id)
            .fetch_all(pool)
            .await
        })
        .map_err(query_err("list an event's deliveries"))?;
        rows.into_iter().map(DeliveryRow::into_delivery).collect()
    }

    /// Hands a delivery `owner` holds back to the queue, due at `at`,
    /// without counting an attempt: it is waiting for something else (a
    /// callback for the event's other deliveries), not failing. Returns
    /// false if the lease was lost.
    pub async fn postpone_delivery(
        &self,
        id: i64,
        owner: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = with_pool!(&self.db, pool => {
            sqlx::query(
                "UPDATE deliveries SET next_attempt_at = $3, lease_owner = NULL, lease_until = NULL \
                 WHERE id = $1 AND lease_owner = $2 AND state = 'pending'",
            )
            .bind(id)
            .bind(owner)
            .bind(to_ms(at))
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(query_err("postpone a delivery"))?;
        Ok(result == 1)
    }

    /// Puts a failed delivery back to pending, due at `now` (attempt count
    /// kept). Returns false if it is not in state failed.
    pub async fn retry_delivery(&self, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let result = with_pool!(&self.db, pool => {
            sqlx::query(
                "UPDATE deliveries SET state = 'pending', next_attempt_at = $2, \
                     lease_owner = NULL, lease_until = NULL \
                 WHERE id = $1 AND state = 'failed'",
            )
            .bind(id)
            .bind(to_ms(now))
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(query_err("retry a delivery"))?;
        Ok(result == 1)
    }

    /// When the next pending delivery can be claimed: the earliest
    /// `next_attempt_at`, or lease expiry for one leased right now, so a
    /// dispatcher sleeping until then never wakes to nothing. `None` if
    /// nothing is pending.
    pub async fn next_delivery_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.next_delivery_due_filtered(TriggerFilter::All).await
    }

    /// [`Store::next_delivery_due`] of the deliveries `filter` lets through.
    pub async fn next_delivery_due_filtered(
        &self,
        filter: TriggerFilter<'_>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let (name, only) = filter.binds();
        let ms: Option<i64> = with_pool!(&self.db, pool => {
            sqlx::query_scalar(
                "SELECT MIN(CASE WHEN lease_until IS NOT NULL AND lease_until > next_attempt_at \
                     THEN lease_until ELSE next_attempt_at END) \
                 FROM deliveries WHERE state = 'pending' \
                   AND ($1 = '' OR (trigger_name = $1) = $2)",
            )
            .bind(name)
            .bind(only)
            .fetch_one(pool)
            .await
        })
        .map_err(query_err("find the next due delivery"))?;
        ms.map(|ms| from_ms(ms, "deliveries.next_attempt_at"))
            .transpose()
    }
}
