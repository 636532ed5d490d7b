//! Digest history, current digests and change events.

use std::collections::{HashMap, HashSet};

use chrono::Utc;

use crate::outbox::insert_delivery;
use crate::sql::{Tx, from_ms, query_err, to_ms, with_pool, with_tx};
use crate::vulns::insert_decision;
use crate::{
    ChangeEvent, EventDecision, HistoryEntry, Observation, PlatformChange, PlatformDigest,
    Recorded, Status, Store, StoreError,
};

/// Platform name under which the tag's top-level digest is stored.
const TOP: &str = "";

// Upserting the reference row is the per-reference lock on PostgreSQL (ON
// CONFLICT DO UPDATE row-locks it until commit), which also covers the first
// observation, when there are no digest rows to lock yet.
const LOCK_REFERENCE: &str = "INSERT INTO observed_references (reference, first_seen, last_seen) \
     VALUES ($1, $2, $2) \
     ON CONFLICT (reference) DO UPDATE SET last_seen = CASE \
         WHEN excluded.last_seen > observed_references.last_seen THEN excluded.last_seen \
         ELSE observed_references.last_seen END";

macro_rules! select_current_sql {
    ($lock:literal) => {
        concat!(
            "SELECT platform, digest, history_id FROM current_digests WHERE reference = $1",
            $lock
        )
    };
}

const BUMP_LAST_SEEN: &str = "UPDATE digest_history \
     SET last_seen = CASE WHEN $2 > last_seen THEN $2 ELSE last_seen END WHERE id = $1";

const INSERT_HISTORY: &str = "INSERT INTO digest_history \
     (reference, platform, digest, source, first_seen, last_seen) \
     VALUES ($1, $2, $3, $4, $5, $5) RETURNING id";

const UPSERT_CURRENT: &str = "INSERT INTO current_digests (reference, platform, digest, history_id) \
     VALUES ($1, $2, $3, $4) \
     ON CONFLICT (reference, platform) \
     DO UPDATE SET digest = excluded.digest, history_id = excluded.history_id";

const INSERT_EVENT: &str = "INSERT INTO change_events \
     (id, reference, old_digest, new_digest, changes, source, observed_at, acted, reason, vulnerability) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

macro_rules! event_sql {
    ($tail:literal) => {
        concat!(
            "SELECT id, reference, old_digest, new_digest, changes, source, observed_at, acted, reason, \
             vulnerability FROM change_events ",
            $tail
        )
    };
}

#[derive(sqlx::FromRow)]
struct CurrentRow {
    platform: String,
    digest: String,
    history_id: i64,
}

#[derive(sqlx::FromRow)]
struct CurrentAllRow {
    reference: String,
    platform: String,
    digest: String,
}

#[derive(sqlx::FromRow)]
struct HistoryRow {
    platform: String,
    digest: String,
    first_seen: i64,
    last_seen: i64,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: String,
    reference: String,
    old_digest: Option<String>,
    new_digest: String,
    changes: String,
    source: String,
    observed_at: i64,
    acted: Option<bool>,
    reason: Option<String>,
    vulnerability: Option<String>,
}

impl EventRow {
    fn into_event(self) -> Result<ChangeEvent, StoreError> {
        let changes = serde_json::from_str(&self.changes).map_err(|e| StoreError::Corrupt {
            context: "change_events.changes",
            detail: format!("event {}: {e}", self.id),
        })?;
        Ok(ChangeEvent {
            observed_at: from_ms(self.observed_at, "change_events.observed_at")?,
            id: self.id,
            reference: self.reference,
            old_digest: self.old_digest,
            new_digest: self.new_digest,
            changes,
            source: self.source,
            decision: self.acted.map(|act| EventDecision {
                act,
                reason: self.reason.unwrap_or_default(),
            }),
            vulnerability: self
                .vulnerability
                .map(|v| {
                    serde_json::from_str(&v).map_err(|e| StoreError::Corrupt {
                        context: "change_events.vulnerability",
                        detail: e.to_string(),
                    })
                })
                .transpose()?,
        })
    }
}

impl Store {
    /// Current digest per platform for one reference (`""` platform = the
    /// tag's top-level digest), sorted by platform; empty if never observed.
    pub async fn current(&self, reference: &str) -> Result<Vec<PlatformDigest>, StoreError> {
        let rows: Vec<CurrentRow> = with_pool!(&self.db, pool => {
            sqlx::query_as(select_current_sql!(" ORDER BY platform"))
                .bind(reference)
                .fetch_all(pool)
                .await
        })
        .map_err(query_err("read current digests"))?;
        Ok(rows
            .into_iter()
            .map(|r| PlatformDigest {
                platform: r.platform,
                digest: r.digest,
            })
            .collect())
    }

    /// Current digests of all references, keyed by reference, so a check pass
    /// can load what it compares against in one query and then make one
    /// registry request per tag.
    pub async fn current_all(&self) -> Result<HashMap<String, Vec<PlatformDigest>>, StoreError> {
        let rows: Vec<CurrentAllRow> = with_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT reference, platform, digest FROM current_digests \
                 ORDER BY reference, platform",
            )
            .fetch_all(pool)
            .await
        })
        .map_err(query_err("read current digests"))?;
        let mut all: HashMap<String, Vec<PlatformDigest>> = HashMap::new();
        for r in rows {
            all.entry(r.reference).or_default().push(PlatformDigest {
                platform: r.platform,
                digest: r.digest,
            });
        }
        Ok(all)
    }

    /// Records one observation of a reference in one transaction: history,
    /// current digests, and, if a watched platform changed, the change event
    /// plus one pending delivery per trigger.
    ///
    /// For the top-level digest (platform `""`) and each watched platform:
    /// same digest as current extends the current run's `last_seen`
    /// ([`Status::Unchanged`]); a different one starts a new run
    /// ([`Status::Changed`]); first sight starts the first run
    /// ([`Status::New`], a baseline). A change event is created iff at least
    /// one watched platform is `Changed` (or, with
    /// [`Observation::first_sight_fires`] on a never-observed reference, `New`); a top-level change alone (another
    /// architecture moved) is history only. Deliveries are due at
    /// `min(seen_at, now)`, i.e. at once.
    ///
    /// Concurrent calls for one reference (tasks, processes, replicas) are
    /// serialised, so the same change yields exactly one event.
    pub async fn record(&self, obs: &Observation) -> Result<Recorded, StoreError> {
        const CTX: &str = "record an observation";
        validate(obs)?;
        let seen = to_ms(obs.seen_at);
        let mut tx = self.db.begin_write(CTX).await?;

        with_tx!(&mut tx, conn => {
            sqlx::query(LOCK_REFERENCE)
                .bind(&obs.reference)
                .bind(seen)
                .execute(conn)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(query_err(CTX))?;

        let select_current = if tx.is_postgres() {
            select_current_sql!(" FOR UPDATE")
        } else {
            select_current_sql!("")
        };
        let rows: Vec<CurrentRow> = with_tx!(&mut tx, conn => {
            sqlx::query_as(select_current)
                .bind(&obs.reference)
                .fetch_all(conn)
                .await
        })
        .map_err(query_err(CTX))?;
        let current: HashMap<String, CurrentRow> =
            rows.into_iter().map(|r| (r.platform.clone(), r)).collect();

        let top = record_digest(&mut tx, obs, TOP, &obs.top_digest, current.get(TOP)).await?;
        let mut platforms = Vec::with_capacity(obs.manifests.len());
        let mut changes = Vec::new();
        for m in &obs.manifests {
            let status = record_digest(
                &mut tx,
                obs,
                &m.platform,
                &m.digest,
                current.get(&m.platform),
            )
            .await?;
            match &status {
                Status::Changed { old } => changes.push(PlatformChange {
                    platform: m.platform.clone(),
                    old_digest: Some(old.clone()),
                    new_digest: m.digest.clone(),
                }),
                Status::New if obs.first_sight_fires && current.is_empty() => {
                    changes.push(PlatformChange {
                        platform: m.platform.clone(),
                        old_digest: None,
                        new_digest: m.digest.clone(),
                    })
                }
                _ => {}
            }
            platforms.push((m.platform.clone(), status));
        }

        let event = if changes.is_empty() {
            None
        } else {
            let event = ChangeEvent {
                id: uuid::Uuid::now_v7().to_string(),
                reference: obs.reference.clone(),
                old_digest: current.get(TOP).map(|r| r.digest.clone()),
                new_digest: obs.top_digest.clone(),
                changes,
                source: obs.source.clone(),
                observed_at: obs.seen_at,
                decision: obs.judgement.as_ref().map(|j| EventDecision {
                    act: j.act,
                    reason: j.reason.clone(),
                }),
                vulnerability: None,
            };
            insert_event(&mut tx, &event).await?;
            if let Some(j) = &obs.judgement {
                for d in &j.decisions {
                    let d = crate::Decision {
                        event_id: Some(event.id.clone()),
                        ..d.clone()
                    };
                    insert_decision(&mut tx, &d).await?;
                }
            }
            let fire = obs.judgement.as_ref().is_none_or(|j| j.act);
            let payload = serde_json::to_value(&event).map_err(|e| {
                StoreError::Invalid(format!("change event is not serialisable: {e}"))
            })?;
            let now = Utc::now();
            let due = obs.seen_at.min(now);
            let mut seen_triggers = HashSet::new();
            for trigger in obs.triggers.iter().filter(|_| fire) {
                // A trigger listed twice must still fire once.
                if seen_triggers.insert(trigger.as_str()) {
                    insert_delivery(&mut tx, &event.id, trigger, &payload, due, now, CTX).await?;
                }
            }
            for (trigger, extra) in &obs.with_event {
                insert_delivery(&mut tx, &event.id, trigger, extra, due, now, CTX).await?;
            }
            Some(event)
        };

        tx.commit(CTX).await?;
        if let Some(e) = &event {
            tracing::debug!(
                event = %e.id,
                reference = %e.reference,
                platforms = e.changes.len(),
                "change event recorded"
            );
        }
        Ok(Recorded {
            top,
            platforms,
            event,
        })
    }

    /// All runs of all platforms of one reference: sorted by platform (`""`
    /// first), then oldest run first.
    pub async fn history(&self, reference: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        let rows: Vec<HistoryRow> = with_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT platform, digest, first_seen, last_seen FROM digest_history \
                 WHERE reference = $1 ORDER BY platform, id",
            )
            .bind(reference)
            .fetch_all(pool)
            .await
        })
        .map_err(query_err("read digest history"))?;
        rows.into_iter()
            .map(|r| {
                Ok(HistoryEntry {
                    first_seen: from_ms(r.first_seen, "digest_history.first_seen")?,
                    last_seen: from_ms(r.last_seen, "digest_history.last_seen")?,
                    platform: r.platform,
                    digest: r.digest,
                })
            })
            .collect()
    }

    /// Change events, newest first, of one reference or of all; one page of them.
    pub async fn events(
        &self,
        reference: Option<&str>,
        page: impl Into<crate::Page>,
    ) -> Result<Vec<ChangeEvent>, StoreError> {
        let page = page.into();
        let n = page.sql_limit();
        let offset = page.sql_offset();
        let rows: Vec<EventRow> = match reference {
            Some(reference) => with_pool!(&self.db, pool => {
                sqlx::query_as(event_sql!(
                    "WHERE reference = $2 ORDER BY observed_at DESC, id DESC LIMIT $1 OFFSET $3"
                ))
                .bind(n)
                .bind(reference)
                .bind(offset)
                .fetch_all(pool)
                .await
            }),
            None => with_pool!(&self.db, pool => {
                sqlx::query_as(event_sql!("ORDER BY observed_at DESC, id DESC LIMIT $1 OFFSET $2"))
                    .bind(n)
                    .bind(offset)
                    .fetch_all(pool)
                    .await
            }),
        }
        .map_err(query_err("list change events"))?;
        rows.into_iter().map(EventRow::into_event).collect()
    }

    /// One change event by id.
    pub async fn event(&self, id: &str) -> Result<Option<ChangeEvent>, StoreError> {
        let row: Option<EventRow> = with_pool!(&self.db, pool => {
            sqlx::query_as(event_sql!("WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await
        })
        .map_err(query_err("read a change event"))?;
        row.map(EventRow::into_event).transpose()
    }
}

fn validate(obs: &Observation) -> Result<(), StoreError> {
    let invalid = |what: String| {
        Err(StoreError::Invalid(format!(
            "observation of {:?}: {what}",
            obs.reference
        )))
    };
    if obs.reference.is_empty() {
        return invalid("empty reference".into());
    }
    if obs.top_digest.is_empty() {
        return invalid("empty top-level digest".into());
    }
    let mut platforms = HashSet::new();
    for m in &obs.manifests {
        if m.platform.is_empty() {
            return invalid("a watched platform has an empty name (\"\" is the top level)".into());
        }
        if m.digest.is_empty() {
            return invalid(format!("empty digest for platform {}", m.platform));
        }
        if !platforms.insert(m.platform.as_str()) {
            return invalid(format!("platform {} listed twice", m.platform));
        }
    }
    Ok(())
}

/// Records one digest of an observation against the current run of its platform.
async fn record_digest(
    tx: &mut Tx,
    obs: &Observation,
    platform: &str,
    digest: &str,
    current: Option<&CurrentRow>,
) -> Result<Status, StoreError> {
    const CTX: &str = "record an observation";
    let seen = to_ms(obs.seen_at);
    if let Some(cur) = current
        && cur.digest == digest
    {
        with_tx!(tx, conn => {
            sqlx::query(BUMP_LAST_SEEN)
                .bind(cur.history_id)
                .bind(seen)
                .execute(conn)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(query_err(CTX))?;
        return Ok(Status::Unchanged);
    }
    let history_id: i64 = with_tx!(tx, conn => {
        sqlx::query_scalar(INSERT_HISTORY)
            .bind(&obs.reference)
            .bind(platform)
            .bind(digest)
            .bind(&obs.source)
            .bind(seen)
            .fetch_one(conn)
            .await
    })
    .map_err(query_err(CTX))?;
    with_tx!(tx, conn => {
        sqlx::query(UPSERT_CURRENT)
            .bind(&obs.reference)
            .bind(platform)
            .bind(digest)
            .bind(history_id)
            .execute(conn)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(query_err(CTX))?;
    Ok(match current {
        Some(cur) => Status::Changed {
            old: cur.digest.clone(),
        },
        None => Status::New,
    })
}

pub(crate) async fn insert_event(tx: &mut Tx, event: &ChangeEvent) -> Result<(), StoreError> {
    let changes = serde_json::to_string(&event.changes)
        .map_err(|e| StoreError::Invalid(format!("platform changes are not serialisable: {e}")))?;
    let vulnerability = event
        .vulnerability
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Invalid(format!("the event's cause is not serialisable: {e}")))?;
    with_tx!(tx, conn => {
        sqlx::query(INSERT_EVENT)
            .bind(&event.id)
            .bind(&event.reference)
            .bind(&event.old_digest)
            .bind(&event.new_digest)
            .bind(&changes)
            .bind(&event.source)
            .bind(to_ms(event.observed_at))
            .bind(event.decision.as_ref().map(|d| d.act))
            .bind(event.decision.as_ref().map(|d| d.reason.as_str()))
            .bind(&vulnerability)
            .execute(conn)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(query_err("record a change event"))?;
    Ok(())
}
