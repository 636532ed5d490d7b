//! Vulnerability data (OSV records, by id, imported incrementally) and the
//! policy decisions made on it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::inventory::{PackageRecord, PackageRow};
use crate::sql::{Tx, from_ms, query_err, to_ms, with_pool, with_tx};
use crate::{Store, StoreError};

/// One record to import: its id, `modified` time, and JSON text.
#[derive(Clone, Debug)]
pub struct AdvisoryInput {
    /// The record id.
    pub id: String,
    /// RFC 3339, compared as text (OSV writes UTC `…Z` times, which sort).
    pub modified: String,
    /// The record as JSON.
    pub record: String,
}

/// What an import changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportSummary {
    /// The import's id: the data snapshot decisions name.
    pub import_id: i64,
    /// Records read.
    pub records: u64,
    /// Ids not stored before.
    pub added: u64,
    /// Ids stored with an older `modified`.
    pub updated: u64,
    /// Ids already stored as new or newer.
    pub unchanged: u64,
}

/// A policy decision and what made it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// UUID v7.
    pub id: String,
    /// The image reference decided on.
    pub subject: String,
    /// Its manifest digest, when known.
    pub image_digest: Option<String>,
    /// The change event decided on, if any.
    pub event_id: Option<String>,
    /// The policy's name.
    pub policy: String,
    /// The policy's version (a digest of its rules).
    pub policy_version: String,
    /// The data it was made on, e.g. `{"vuln_import": 3}`.
    pub snapshot: serde_json::Value,
    /// True when the policy said act.
    pub act: bool,
    /// Why, in one line.
    pub reason: String,
    /// Findings per severity.
    pub counts: serde_json::Value,
    /// When.
    pub decided_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct DecisionRow {
    id: String,
    subject: String,
    image_digest: Option<String>,
    event_id: Option<String>,
    policy: String,
    policy_version: String,
    snapshot: String,
    act: bool,
    reason: String,
    counts: String,
    decided_at: i64,
}

impl DecisionRow {
    fn into_decision(self) -> Result<Decision, StoreError> {
        let json = |s: &str, what: &'static str| {
            serde_json::from_str(s).map_err(|e| StoreError::Corrupt {
                context: what,
                detail: e.to_string(),
            })
        };
        Ok(Decision {
            snapshot: json(&self.snapshot, "policy_decisions.snapshot")?,
            counts: json(&self.counts, "policy_decisions.counts")?,
            decided_at: from_ms(self.decided_at, "policy_decisions.decided_at")?,
            id: self.id,
            subject: self.subject,
            image_digest: self.image_digest,
            event_id: self.event_id,
            policy: self.policy,
            policy_version: self.policy_version,
            act: self.act,
            reason: self.reason,
        })
    }
}

/// Inserts a decision inside a transaction (with the event it decided on).
pub(crate) async fn insert_decision(tx: &mut Tx, d: &Decision) -> Result<(), StoreError> {
    with_tx!(tx, conn => sqlx::query(
        "INSERT INTO policy_decisions (id, subject, image_digest, event_id, policy, policy_version, \
         snapshot, act, reason, counts, decided_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
        .bind(&d.id)
        .bind(&d.subject)
        .bind(&d.image_digest)
        .bind(&d.event_id)
        .bind(&d.policy)
        .bind(&d.policy_version)
        .bind(d.snapshot.to_string())
        .bind(d.act)
        .bind(&d.reason)
        .bind(d.counts.to_string())
        .bind(to_ms(d.decided_at))
        .execute(conn)
        .await
        .map(|x| x.rows_affected()))
    .map_err(query_err("record a decision"))?;
    Ok(())
}

/// A package with the image that holds it and that image's distribution:
/// what matching needs, for the whole fleet at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetPackage {
    /// The image's manifest digest.
    pub image_digest: String,
    /// `os/arch[/variant]`.
    pub platform: String,
    /// The image's OSV ecosystem (`Debian:12`).
    pub os_ecosystem: Option<String>,
    /// The package.
    pub package: PackageRecord,
}

impl Store {
    /// Imports OSV records in one transaction: a record is stored when its
    /// id is new or its `modified` is later than the stored one's.
    pub async fn import_advisories(
        &self,
        source: &str,
        kind: &str,
        records: &[AdvisoryInput],
        at: DateTime<Utc>,
    ) -> Result<ImportSummary, StoreError> {
        const CTX: &str = "import advisories";
        let mut tx = self.db.begin_write(CTX).await?;
        let import_id: i64 = with_tx!(&mut tx, conn => sqlx::query_scalar(
            "INSERT INTO vuln_imports (source, kind, records, added, updated, imported_at) \
             VALUES ($1, $2, $3, 0, 0, $4) RETURNING id")
            .bind(source)
            .bind(kind)
            .bind(records.len() as i64)
            .bind(to_ms(at))
            .fetch_one(conn)
            .await)
        .map_err(query_err(CTX))?;
        let (mut added, mut updated, mut unchanged) = (0u64, 0u64, 0u64);
        // One read of every stored `modified`, not one query per record: a
        // feed's archive holds tens of thousands, most of them unchanged.
        let stored: Vec<(String, String)> = with_tx!(&mut tx, conn => sqlx::query_as(
            "SELECT id, modified FROM advisories")
            .fetch_all(conn)
            .await)
        .map_err(query_err(CTX))?;
        let mut stored: std::collections::HashMap<String, String> = stored.into_iter().collect();
        for r in records {
            match stored.get(&r.id) {
                Some(m) if *m >= r.modified => {
                    unchanged += 1;
                    continue;
                }
                Some(_) => {
                    updated += 1;
                    // Keep the version being replaced, for replays.
                    with_tx!(&mut tx, conn => sqlx::query(
                        "INSERT INTO advisory_versions (id, modified, record, import_id) \
                         SELECT id, modified, record, import_id FROM advisories WHERE id = $1 \
                         ON CONFLICT (id, import_id) DO NOTHING")
                        .bind(&r.id)
                        .execute(conn)
                        .await
                        .map(|x| x.rows_affected()))
                    .map_err(query_err(CTX))?;
                }
                None => added += 1,
            }
            with_tx!(&mut tx, conn => sqlx::query(
                "INSERT INTO advisories (id, modified, record, import_id, imported_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (id) DO UPDATE SET modified = excluded.modified, record = excluded.record, \
                 import_id = excluded.import_id, imported_at = excluded.imported_at")
                .bind(&r.id)
                .bind(&r.modified)
                .bind(&r.record)
                .bind(import_id)
                .bind(to_ms(at))
                .execute(conn)
                .await
                .map(|x| x.rows_affected()))
            .map_err(query_err(CTX))?;
            // A second copy of an id in the same import compares with this one.
            stored.insert(r.id.clone(), r.modified.clone());
        }
        with_tx!(&mut tx, conn => sqlx::query("UPDATE vuln_imports SET added = $2, updated = $3 WHERE id = $1")
            .bind(import_id)
            .bind(added as i64)
            .bind(updated as i64)
            .execute(conn)
            .await
            .map(|x| x.rows_affected()))
        .map_err(query_err(CTX))?;
        tx.commit(CTX).await?;
        Ok(ImportSummary {
            import_id,
            records: records.len() as u64,
            added,
            updated,
            unchanged,
        })
    }

    /// Every stored record's JSON, by id.
    pub async fn advisories(&self) -> Result<Vec<String>, StoreError> {
        with_pool!(&self.db, pool => sqlx::query_scalar("SELECT record FROM advisories ORDER BY id")
            .fetch_all(pool)
            .await)
        .map_err(query_err("read advisories"))
    }

    /// Every record's JSON as it stood after import `import_id` (the data
    /// of a decision's snapshot): replaced versions are kept for this.
    pub async fn advisories_as_of(&self, import_id: i64) -> Result<Vec<String>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            id: String,
            import_id: i64,
            record: String,
        }
        let rows: Vec<Row> = with_pool!(&self.db, pool => sqlx::query_as(
            "SELECT id, import_id, record FROM advisories WHERE import_id <= $1 \
             UNION ALL \
             SELECT v.id, v.import_id, v.record FROM advisory_versions v \
             JOIN advisories a ON a.id = v.id WHERE a.import_id > $1 AND v.import_id <= $1")
            .bind(import_id)
            .fetch_all(pool)
            .await)
        .map_err(query_err("read advisories as of an import"))?;
        // Per id, the version of the latest import at or before the snapshot.
        let mut latest: std::collections::BTreeMap<String, (i64, String)> = Default::default();
        for r in rows {
            match latest.get(&r.id) {
                Some((at, _)) if *at >= r.import_id => {}
                _ => {
                    latest.insert(r.id, (r.import_id, r.record));
                }
            }
        }
        Ok(latest.into_values().map(|(_, record)| record).collect())
    }

    /// Remembers a policy version's rules (once per version).
    pub async fn remember_policy(
        &self,
        version: &str,
        spec: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        with_pool!(&self.db, pool => sqlx::query(
            "INSERT INTO policy_versions (version, spec, first_used) VALUES ($1, $2, $3) \
             ON CONFLICT (version) DO NOTHING")
            .bind(version)
            .bind(spec.to_string())
            .bind(to_ms(at))
            .execute(pool)
            .await
            .map(|x| x.rows_affected()))
        .map_err(query_err("remember a policy version"))?;
        Ok(())
    }

    /// The rules of a policy version, as remembered.
    pub async fn policy_spec(
        &self,
        version: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let text: Option<String> = with_pool!(&self.db, pool => sqlx::query_scalar(
            "SELECT spec FROM policy_versions WHERE version = $1")
            .bind(version)
            .fetch_optional(pool)
            .await)
        .map_err(query_err("read a policy version"))?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| StoreError::Corrupt {
                context: "policy_versions.spec",
                detail: e.to_string(),
            })
        })
        .transpose()
    }

    /// The latest import's id: the snapshot of vulnerability data in force.
    pub async fn vuln_snapshot(&self) -> Result<Option<i64>, StoreError> {
        with_pool!(&self.db, pool => sqlx::query_scalar("SELECT MAX(id) FROM vuln_imports")
            .fetch_one(pool)
            .await)
        .map_err(query_err("read the latest import"))
    }

    /// Every package of every image, with the image's distribution.
    pub async fn fleet_packages(&self) -> Result<Vec<FleetPackage>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            image_digest: String,
            platform: String,
            os_ecosystem: Option<String>,
            #[sqlx(flatten)]
            package: PackageRow,
        }
        let rows: Vec<Row> = with_pool!(&self.db, pool => sqlx::query_as(
            "SELECT p.image_digest, i.platform, i.os_ecosystem, p.ecosystem, p.name, p.version, p.arch, \
             p.source_name, p.source_version, p.purl, p.location, p.layer \
             FROM image_packages p JOIN images i ON i.digest = p.image_digest \
             ORDER BY p.image_digest, p.ecosystem, p.name, p.version")
            .fetch_all(pool)
            .await)
        .map_err(query_err("read the fleet's packages"))?;
        Ok(rows
            .into_iter()
            .map(|r| FleetPackage {
                image_digest: r.image_digest,
                platform: r.platform,
                os_ecosystem: r.os_ecosystem,
                package: r.package.into(),
            })
            .collect())
    }

    /// Stores a policy decision.
    pub async fn record_decision(&self, d: &Decision) -> Result<(), StoreError> {
        const CTX: &str = "record a decision";
        let mut tx = self.db.begin_write(CTX).await?;
        insert_decision(&mut tx, d).await?;
        tx.commit(CTX).await
    }

    /// One decision by id.
    pub async fn decision(&self, id: &str) -> Result<Option<Decision>, StoreError> {
        let row: Option<DecisionRow> = with_pool!(&self.db, pool => sqlx::query_as(
            "SELECT id, subject, image_digest, event_id, policy, policy_version, snapshot, act, reason, counts, decided_at \
             FROM policy_decisions WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await)
        .map_err(query_err("read a decision"))?;
        row.map(DecisionRow::into_decision).transpose()
    }

    /// Decisions, newest first, optionally for one subject and/or one
    /// change event.
    pub async fn decisions(
        &self,
        subject: Option<&str>,
        event_id: Option<&str>,
        page: impl Into<crate::Page>,
    ) -> Result<Vec<Decision>, StoreError> {
        let page = page.into();
        let rows: Vec<DecisionRow> = with_pool!(&self.db, pool => sqlx::query_as(
            "SELECT id, subject, image_digest, event_id, policy, policy_version, snapshot, act, reason, counts, decided_at \
             FROM policy_decisions WHERE ($1 = '' OR subject = $1) AND ($3 = '' OR event_id = $3) \
             ORDER BY decided_at DESC, id DESC LIMIT $2 OFFSET $4")
            .bind(subject.unwrap_or(""))
            .bind(page.sql_limit())
            .bind(event_id.unwrap_or(""))
            .bind(page.sql_offset())
            .fetch_all(pool)
            .await)
        .map_err(query_err("read decisions"))?;
        rows.into_iter().map(DecisionRow::into_decision).collect()
    }
}
