//! Importing vulnerability documents recognised by content: OSV records
//! (files, directories, `all.zip`) and scanner reports (Trivy, Grype) for
//! one image each.

use std::path::{Path, PathBuf};

use freshen_reference::Reference;
use freshen_store::{AdvisoryInput, ImportSummary, ReportInput, ReportOutcome, Store};
use freshen_vuln::{Document, Finding, Report};
use serde::Serialize;

use crate::{InventoryError, Queries};

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

/// Imports each path as one import, recognised by content: OSV records
/// (incremental: only records newer than the stored ones are written) or a
/// Trivy or Grype report, stored for the image it names. A bad file fails
/// its path, naming it, and nothing of that path is stored. Reports that
/// don't name their image need [`Queries::import`] with an image.
pub async fn import(store: &Store, paths: &[PathBuf]) -> Result<Vec<Imported>, InventoryError> {
    let mut out = Vec::new();
    for path in paths {
        out.push(import_one(store, path, None).await?);
    }
    Ok(out)
}

impl Queries {
    /// Like [`import`], with `image` (a reference, resolved through the
    /// inventory) as the image of every scanner report among the paths,
    /// whatever the reports say. A digest reference not in the inventory
    /// yet is taken as it is.
    pub async fn import(
        &self,
        paths: &[PathBuf],
        image: Option<&str>,
    ) -> Result<Vec<Imported>, InventoryError> {
        let image = image.map(|s| self.parse(s)).transpose()?;
        let mut out = Vec::new();
        for path in paths {
            out.push(import_one(self.store(), path, Some((self, image.as_ref()))).await?);
        }
        Ok(out)
    }
}

async fn import_one(
    store: &Store,
    path: &Path,
    queries: Option<(&Queries, Option<&Reference>)>,
) -> Result<Imported, InventoryError> {
    let p = path.to_path_buf();
    let doc = tokio::task::spawn_blocking(move || freshen_vuln::load_document(&p))
        .await
        .map_err(|e| InventoryError::Invalid(format!("import task failed: {e}")))?
        .map_err(|e| InventoryError::Invalid(e.to_string()))?;
    let shown = path.display().to_string();
    match doc {
        Document::Osv(loaded) => {
            let inputs: Vec<AdvisoryInput> = loaded
                .records
                .iter()
                .map(|r| AdvisoryInput {
                    id: r.id.clone(),
                    modified: r.modified.clone(),
                    record: serde_json::to_string(r).expect("a record serialises"),
                })
                .collect();
            let summary = store
                .import_advisories(&shown, "osv", &inputs, chrono::Utc::now())
                .await?;
            Ok(Imported {
                path: shown,
                kind: "osv".into(),
                summary,
                report: None,
            })
        }
        Document::Report(report) => {
            let (q, image) = match queries {
                Some((q, image)) => (Some(q), image),
                None => (None, None),
            };
            let (digest, in_inventory) = match image {
                Some(r) => image_digest_of(store, q, r, &report).await?,
                None => report_digest_of(store, q, &report, &shown).await?,
            };
            import_report(store, &shown, *report, digest, in_inventory).await
        }
    }
}

/// `--image REF`: the digest it stands for in the inventory (the report's
/// platform picks one of several).
async fn image_digest_of(
    store: &Store,
    q: Option<&Queries>,
    r: &Reference,
    report: &Report,
) -> Result<(String, bool), InventoryError> {
    let known = match q {
        Some(q) => q.known(r).await,
        None => Err(InventoryError::UnknownImage(r.to_string())),
    };
    let targets = match known {
        Ok(t) => t,
        Err(InventoryError::UnknownImage(_)) if r.digest().is_some() => {
            let d = r.digest().expect("checked").to_string();
            let known = store.image(&d).await?.is_some();
            return Ok((d, known));
        }
        Err(e) => return Err(e),
    };
    let mut digests: Vec<(String, String)> = targets
        .into_iter()
        .map(|t| (t.platform, t.digest))
        .collect();
    digests.sort();
    digests.dedup();
    if digests.len() == 1 {
        return Ok((digests.remove(0).1, true));
    }
    if let Some(p) = &report.platform
        && let Some((_, d)) = digests.iter().find(|(plat, _)| plat == p)
    {
        return Ok((d.clone(), true));
    }
    let platforms: Vec<&str> = digests.iter().map(|(p, _)| p.as_str()).collect();
    Err(InventoryError::Invalid(format!(
        "{r} has several platforms ({}) and the report doesn't say which it scanned: name the image by digest (--image {}@sha256:…)",
        platforms.join(", "),
        r.name()
    )))
}

/// The image a report names: a manifest digest in the inventory, else a
/// platform of an index digest it names (through the tag it scanned), else
/// the first digest it names (the image may be scanned later).
async fn report_digest_of(
    store: &Store,
    q: Option<&Queries>,
    report: &Report,
    shown: &str,
) -> Result<(String, bool), InventoryError> {
    if report.image_digests.is_empty() {
        let what = report
            .artifact
            .as_deref()
            .map(|a| format!(" (it scanned {a})"))
            .unwrap_or_default();
        return Err(InventoryError::Invalid(format!(
            "{shown}: the {} report names no image digest{what}: give the image with --image REF",
            report.format.as_str()
        )));
    }
    for d in &report.image_digests {
        if store.image(d).await?.is_some() {
            return Ok((d.clone(), true));
        }
    }
    // A tag that points at an index: the report names the index digest.
    let parsed = report.artifact.as_deref().and_then(|a| match q {
        Some(q) => q.parse(a).ok(),
        None => Reference::parse(a).ok(),
    });
    if let Some(r) = parsed {
        let refs = store.resolve_ref(&r.to_string()).await?;
        let of_index: Vec<_> = refs
            .iter()
            .filter(|t| {
                t.index_digest
                    .as_ref()
                    .is_some_and(|i| report.image_digests.contains(i))
            })
            .collect();
        let pick = match (of_index.as_slice(), &report.platform) {
            ([one], _) => Some(*one),
            (many, Some(p)) => many.iter().find(|t| &t.platform == p).copied(),
            _ => None,
        };
        if let Some(t) = pick {
            return Ok((t.digest.clone(), true));
        }
    }
    Ok((report.image_digests[0].clone(), false))
}

async fn import_report(
    store: &Store,
    shown: &str,
    report: Report,
    image_digest: String,
    in_inventory: bool,
) -> Result<Imported, InventoryError> {
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
) -> Result<Imported, InventoryError> {
    let report = freshen_vuln::parse_report(bytes, source)
        .map_err(|e| InventoryError::Invalid(e.to_string()))?;
    let known = store.image(image_digest).await?.is_some();
    import_report(store, source, report, image_digest.to_string(), known).await
}

/// The findings of every scanner report stored for an image.
pub(crate) async fn report_findings(
    store: &Store,
    digest: &str,
) -> Result<Vec<Finding>, InventoryError> {
    let mut out = Vec::new();
    for r in store.reports_of(digest).await? {
        out.extend(parse_stored(&r)?);
    }
    Ok(out)
}

/// A stored report's findings.
pub(crate) fn parse_stored(
    r: &freshen_store::StoredReport,
) -> Result<Vec<Finding>, InventoryError> {
    serde_json::from_str(&r.findings).map_err(|e| {
        InventoryError::Invalid(format!(
            "the stored {} report of {} is corrupt: {e}",
            r.scanner, r.image_digest
        ))
    })
}
