//! Images whose policy acts on their findings: the `vulnerability` change
//! event that said so, written with its decision and deliveries in one
//! transaction, and the findings it named, so that judging the same data
//! again makes no second event.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use crate::history::insert_event;
use crate::outbox::insert_delivery;
use crate::sql::{query_err, to_ms, with_tx};
use crate::vulns::insert_decision;
use crate::{ChangeEvent, Decision, Store, StoreError};

/// A policy acting on an image's findings, to record.
#[derive(Clone, Debug)]
pub struct Vulnerable {
    /// The event to write when this is news (its `vulnerability` set).
    pub event: ChangeEvent,
    /// The decision behind it (stored with the event's id).
    pub decision: Decision,
    /// The findings that made it act, as a stable key (sorted ids):
    /// the same key as stored is not news.
    pub findings_key: String,
    /// Triggers to enqueue a delivery for, with the event as payload.
    pub triggers: Vec<String>,
}

impl Store {
    /// Records `v` unless the image (`event.reference`, `event.new_digest`)
    /// already acts on the same findings: then nothing is written and
    /// `None` comes back. Otherwise the event, the decision, one delivery
    /// per trigger and the image's new state, in one transaction.
    pub async fn record_vulnerable(
        &self,
        v: &Vulnerable,
        now: DateTime<Utc>,
    ) -> Result<Option<ChangeEvent>, StoreError> {
        const CTX: &str = "record a vulnerability event";
        let e = &v.event;
        let mut tx = self.db.begin_write(CTX).await?;
        let stored: Option<String> = with_tx!(&mut tx, conn => sqlx::query_scalar(
            "SELECT findings_key FROM vulnerable_images WHERE subject = $1 AND image_digest = $2")
            .bind(&e.reference)
            .bind(&e.new_digest)
            .fetch_optional(conn)
            .await)
        .map_err(query_err(CTX))?;
        if stored.as_deref() == Some(v.findings_key.as_str()) {
            return Ok(None);
        }
        insert_event(&mut tx, e).await?;
        let decision = Decision {
            event_id: Some(e.id.clone()),
            ..v.decision.clone()
        };
        insert_decision(&mut tx, &decision).await?;
        let payload = serde_json::to_value(e).map_err(|err| {
            StoreError::Invalid(format!("change event is not serialisable: {err}"))
        })?;
        let mut seen = HashSet::new();
        for t in &v.triggers {
            if seen.insert(t.as_str()) {
                insert_delivery(&mut tx, &e.id, t, &payload, now, now, CTX).await?;
            }
        }
        with_tx!(&mut tx, conn => sqlx::query(
            "INSERT INTO vulnerable_images (subject, image_digest, policy, findings_key, event_id, since) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (subject, image_digest) DO UPDATE SET policy = excluded.policy, \
             findings_key = excluded.findings_key, event_id = excluded.event_id, since = excluded.since")
            .bind(&e.reference)
            .bind(&e.new_digest)
            .bind(&decision.policy)
            .bind(&v.findings_key)
            .bind(&e.id)
            .bind(to_ms(now))
            .execute(conn)
            .await
            .map(|x| x.rows_affected()))
        .map_err(query_err(CTX))?;
        tx.commit(CTX).await?;
        Ok(Some(e.clone()))
    }

    /// The tags whose policy acts on their findings now (per the last
    /// judging), sorted.
    pub async fn vulnerable_subjects(&self) -> Result<Vec<String>, StoreError> {
        crate::sql::with_pool!(&self.db, pool => sqlx::query_scalar(
            "SELECT DISTINCT subject FROM vulnerable_images ORDER BY subject")
            .fetch_all(pool)
            .await)
        .map_err(query_err("read the vulnerable images"))
    }

    /// The `vulnerability` events in force for `subject` (one per
    /// platform digest its policy acts on now).
    pub async fn vulnerable_events(&self, subject: &str) -> Result<Vec<String>, StoreError> {
        crate::sql::with_pool!(&self.db, pool => sqlx::query_scalar(
            "SELECT event_id FROM vulnerable_images WHERE subject = $1 ORDER BY image_digest")
            .bind(subject)
            .fetch_all(pool)
            .await)
        .map_err(query_err("read an image's vulnerability events"))
    }

    /// Forgets that an image acted (its policy no longer does), so acting
    /// again is news. True when there was something to forget.
    pub async fn clear_vulnerable(&self, subject: &str, digest: &str) -> Result<bool, StoreError> {
        const CTX: &str = "clear a vulnerable image";
        let mut tx = self.db.begin_write(CTX).await?;
        let n = with_tx!(&mut tx, conn => sqlx::query(
            "DELETE FROM vulnerable_images WHERE subject = $1 AND image_digest = $2")
            .bind(subject)
            .bind(digest)
            .execute(conn)
            .await
            .map(|x| x.rows_affected()))
        .map_err(query_err(CTX))?;
        tx.commit(CTX).await?;
        Ok(n > 0)
    }
}
