//! Scanner reports (Trivy, Grype, Harbor): the latest report of each
//! scanner for each image digest, with its findings as JSON.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::sql::{from_ms, query_err, to_ms, with_pool, with_tx};
use crate::{Store, StoreError};

/// A report to store.
#[derive(Clone, Debug)]
pub struct ReportInput {
    /// The image's manifest digest.
    pub image_digest: String,
    /// `trivy`, `grype`, `harbor`.
    pub scanner: String,
    /// The scanner's version, if the report states it.
    pub scanner_version: Option<String>,
    /// `sha256:…` of the report's bytes.
    pub report_digest: String,
    /// Where it was read from (a path or URL; no credentials).
    pub source: String,
    /// When the scan ran, if the report states it.
    pub scanned_at: Option<DateTime<Utc>>,
    /// The findings, a JSON array.
    pub findings: String,
    /// How many findings.
    pub finding_count: u64,
}

/// What importing a report did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportOutcome {
    /// The first report of this scanner for the image.
    Added,
    /// It replaced an older report of this scanner for the image.
    Replaced,
    /// The very same report was stored already: nothing changed.
    Unchanged,
    /// A newer report of this scanner is stored: this one was not kept.
    Older,
}

impl ReportOutcome {
    /// `added`, `replaced`, `unchanged`, `older`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportOutcome::Added => "added",
            ReportOutcome::Replaced => "replaced",
            ReportOutcome::Unchanged => "unchanged",
            ReportOutcome::Older => "older",
        }
    }
}

/// The result of [`Store::import_report`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportImport {
    /// The import that stored the report now in force for this image and
    /// scanner (a new one when it was added or replaced).
    pub import_id: i64,
    /// What happened.
    pub outcome: ReportOutcome,
}

/// A stored report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredReport {
    /// The image's manifest digest.
    pub image_digest: String,
    /// `trivy`, `grype`, `harbor`.
    pub scanner: String,
    /// The scanner's version, if known.
    pub scanner_version: Option<String>,
    /// `sha256:…` of the report's bytes.
    pub report_digest: String,
    /// Where it was read from.
    pub source: String,
    /// When the scan ran, if known.
    pub scanned_at: Option<DateTime<Utc>>,
    /// The findings, a JSON array.
    pub findings: String,
    /// How many findings.
    pub finding_count: u64,
    /// The import that stored it.
    pub import_id: i64,
    /// When it was imported.
    pub imported_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ReportRow {
    image_digest: String,
    scanner: String,
    scanner_version: Option<String>,
    report_digest: String,
    source: String,
    scanned_at: Option<i64>,
    findings: String,
    finding_count: i64,
    import_id: i64,
    imported_at: i64,
}

impl ReportRow {
    fn into_report(self) -> Result<StoredReport, StoreError> {
        Ok(StoredReport {
            scanned_at: self
                .scanned_at
                .map(|ms| from_ms(ms, "scanner_reports.scanned_at"))
                .transpose()?,
            imported_at: from_ms(self.imported_at, "scanner_reports.imported_at")?,
            image_digest: self.image_digest,
            scanner: self.scanner,
            scanner_version: self.scanner_version,
            report_digest: self.report_digest,
            source: self.source,
            findings: self.findings,
            finding_count: u64::try_from(self.finding_count).unwrap_or(0),
            import_id: self.import_id,
        })
    }
}

macro_rules! select_reports {
    ($rest:literal) => {
        concat!(
            "SELECT image_digest, scanner, scanner_version, report_digest, source, scanned_at, ",
            "findings, finding_count, import_id, imported_at FROM scanner_reports ",
            $rest
        )
    };
}

macro_rules! select_current_sql {
    ($suffix:literal) => {
        concat!(
            "SELECT report_digest, scanned_at, import_id FROM scanner_reports ",
            "WHERE image_digest = $1 AND scanner = $2",
            $suffix
        )
    };
}

impl Store {
    /// Stores a scanner's report for an image, in one transaction. The same
    /// report (by digest) again changes nothing; a report that states an
    /// earlier scan time than the stored one is not kept; otherwise it
    /// replaces the stored report of that scanner for that image, and an
    /// import row (kind = the scanner) records the new data snapshot.
    pub async fn import_report(
        &self,
        r: &ReportInput,
        at: DateTime<Utc>,
    ) -> Result<ReportImport, StoreError> {
        const CTX: &str = "import a scanner report";
        let mut tx = self.db.begin_write(CTX).await?;
        let select = if tx.is_postgres() {
            select_current_sql!(" FOR UPDATE")
        } else {
            select_current_sql!("")
        };
        let stored: Option<(String, Option<i64>, i64)> =
            with_tx!(&mut tx, conn => sqlx::query_as(select)
            .bind(&r.image_digest)
            .bind(&r.scanner)
            .fetch_optional(conn)
            .await)
            .map_err(query_err(CTX))?;
        let outcome = match &stored {
            None => ReportOutcome::Added,
            Some((digest, _, _)) if *digest == r.report_digest => ReportOutcome::Unchanged,
            Some((_, Some(then), _)) if r.scanned_at.is_some_and(|s| to_ms(s) < *then) => {
                ReportOutcome::Older
            }
            Some(_) => ReportOutcome::Replaced,
        };
        if let (ReportOutcome::Unchanged | ReportOutcome::Older, Some((_, _, id))) =
            (outcome, &stored)
        {
            tx.commit(CTX).await?;
            return Ok(ReportImport {
                import_id: *id,
                outcome,
            });
        }
        let count = i64::try_from(r.finding_count).unwrap_or(i64::MAX);
        let import_id: i64 = with_tx!(&mut tx, conn => sqlx::query_scalar(
            "INSERT INTO vuln_imports (source, kind, records, added, updated, imported_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id")
            .bind(&r.source)
            .bind(&r.scanner)
            .bind(count)
            .bind(i64::from(outcome == ReportOutcome::Added))
            .bind(i64::from(outcome == ReportOutcome::Replaced))
            .bind(to_ms(at))
            .fetch_one(conn)
            .await)
        .map_err(query_err(CTX))?;
        with_tx!(&mut tx, conn => sqlx::query(
            "INSERT INTO scanner_reports (image_digest, scanner, scanner_version, report_digest, source, \
             scanned_at, findings, finding_count, import_id, imported_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (image_digest, scanner) DO UPDATE SET scanner_version = excluded.scanner_version, \
             report_digest = excluded.report_digest, source = excluded.source, scanned_at = excluded.scanned_at, \
             findings = excluded.findings, finding_count = excluded.finding_count, \
             import_id = excluded.import_id, imported_at = excluded.imported_at")
            .bind(&r.image_digest)
            .bind(&r.scanner)
            .bind(&r.scanner_version)
            .bind(&r.report_digest)
            .bind(&r.source)
            .bind(r.scanned_at.map(to_ms))
            .bind(&r.findings)
            .bind(count)
            .bind(import_id)
            .bind(to_ms(at))
            .execute(conn)
            .await
            .map(|x| x.rows_affected()))
        .map_err(query_err(CTX))?;
        tx.commit(CTX).await?;
        Ok(ReportImport { import_id, outcome })
    }

    /// The reports stored for one image, by scanner.
    pub async fn reports_of(&self, image_digest: &str) -> Result<Vec<StoredReport>, StoreError> {
        let rows: Vec<ReportRow> = with_pool!(&self.db, pool => sqlx::query_as(
            select_reports!("WHERE image_digest = $1 ORDER BY scanner"))
            .bind(image_digest)
            .fetch_all(pool)
            .await)
        .map_err(query_err("read an image's scanner reports"))?;
        rows.into_iter().map(ReportRow::into_report).collect()
    }

    /// Every stored report, by image digest then scanner.
    pub async fn all_reports(&self) -> Result<Vec<StoredReport>, StoreError> {
        let rows: Vec<ReportRow> = with_pool!(&self.db, pool => sqlx::query_as(
            select_reports!("ORDER BY image_digest, scanner"))
            .fetch_all(pool)
            .await)
        .map_err(query_err("read scanner reports"))?;
        rows.into_iter().map(ReportRow::into_report).collect()
    }
}
