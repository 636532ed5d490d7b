//! Storing one scanner report (Trivy, Grype, Harbor) under the image it
//! scanned: the step shared by file imports (`reports.rs`) and the Harbor
//! import (`harbor.rs`).

use freshen_store::{ImportSummary, ReportInput, ReportOutcome, Store};
use freshen_vuln::Report;
use serde::Serialize;

use crate::JudgeError;

/// The result of importing one path.
#[derive(Debug, Clone, Serialize)]
pub struct Imported {
    /// The path given.
    pub path: String,
    /// What it held: `osv`, `trivy`, `grype`.
    pub kind: String,
    /// What the store took. For a report: `records` is its findings, and
    /// one of `added`, `updated` (it replaced an older report) and
    /// `unchanged` (the same report, or an older scan) is 1.
    #[serde(flatten)]
    pub summary: ImportSummary,
    /// For a scanner report: which image, and what became of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<ImportedReport>,
}

/// A scanner report imported for one image.
#[derive(Debug, Clone, Serialize)]
pub struct ImportedReport {
    /// `trivy`, `grype`.
    pub scanner: String,
    /// The scanner's version, when the report states it.
    pub scanner_version: Option<String>,
    /// The image's manifest digest the report is stored under.
    pub image_digest: String,
    /// True when that image is in the inventory (its findings show now);
    /// false when it isn't scanned yet (they show once it is).
    pub in_inventory: bool,
    /// `sha256:…` of the report file: the data snapshot.
    pub report_digest: String,
    /// Findings (one per vulnerability and package).
    pub findings: usize,
    /// `added`, `replaced`, `unchanged` (the same report again) or `older`
    /// (a later scan of this scanner is stored; this one was not kept).
    pub outcome: ReportOutcome,
}

/// Stores `report`, read from `shown`, for the image `image_digest`
/// (`in_inventory` says whether that image is scanned yet).
pub async fn import_report(
    store: &Store,
    shown: &str,
    report: Report,
    image_digest: String,
    in_inventory: bool,
) -> Result<Imported, JudgeError> {
    let scanned_at = report.created.as_deref().and_then(|c| {
        chrono::DateTime::parse_from_rfc3339(c)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    });
    let findings = serde_json::to_string(&report.findings).expect("findings serialise");
    let input = ReportInput {
        image_digest: image_digest.clone(),
        scanner: report.format.as_str().to_string(),
        scanner_version: report.scanner_version.clone(),
        report_digest: report.digest.clone(),
        source: shown.to_string(),
        scanned_at,
        findings,
        finding_count: report.findings.len() as u64,
    };
    let done = store.import_report(&input, chrono::Utc::now()).await?;
    let n = report.findings.len() as u64;
    let one = |o: ReportOutcome| u64::from(done.outcome == o);
    Ok(Imported {
        path: shown.to_string(),
        kind: report.format.as_str().to_string(),
        summary: ImportSummary {
            import_id: done.import_id,
            records: n,
            added: one(ReportOutcome::Added),
            updated: one(ReportOutcome::Replaced),
            unchanged: one(ReportOutcome::Unchanged) + one(ReportOutcome::Older),
        },
        report: Some(ImportedReport {
            scanner: input.scanner,
            scanner_version: input.scanner_version,
            image_digest,
            in_inventory,
            report_digest: input.report_digest,
            findings: report.findings.len(),
            outcome: done.outcome,
        }),
    })
}

/// Stores a scanner report read elsewhere (fetched from Harbor, say) for
/// the image `image_digest`; `source` names where it came from (no
/// credentials) in errors and in the store.
pub async fn import_report_bytes(
    store: &Store,
    source: &str,
    bytes: &[u8],
    image_digest: &str,
) -> Result<Imported, JudgeError> {
    let report = freshen_vuln::parse_report(bytes, source)
        .map_err(|e| JudgeError::Invalid(e.to_string()))?;
    let known = store.image(image_digest).await?.is_some();
    import_report(store, source, report, image_digest.to_string(), known).await
}
