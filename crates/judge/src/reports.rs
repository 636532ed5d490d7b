//! Importing vulnerability documents recognised by content: OSV records
//! (files, directories, `all.zip`) and scanner reports (Trivy, Grype) for
//! one image each; and reading the stored reports' findings back.

use std::path::{Path, PathBuf};

use freshen_inventory::{InventoryError, Queries};

use crate::scanner_report::{Imported, import_report};
use freshen_reference::Reference;
use freshen_store::{AdvisoryInput, Store};
use freshen_vuln::{Document, Finding, Report};

use crate::{JudgeError, Vulns};

/// Imports each path as one import, recognised by content: OSV records
/// (incremental: only records newer than the stored ones are written) or a
/// Trivy or Grype report, stored for the image it names. A bad file fails
/// its path, naming it, and nothing of that path is stored. Reports that
/// don't name their image need [`Vulns::import`] with an image.
pub async fn import(store: &Store, paths: &[PathBuf]) -> Result<Vec<Imported>, JudgeError> {
    let mut out = Vec::new();
    for path in paths {
        out.push(import_one(store, path, None).await?);
    }
    Ok(out)
}

impl Vulns {
    /// Like [`import`], with `image` (a reference, resolved through the
    /// inventory) as the image of every scanner report among the paths,
    /// whatever the reports say. A digest reference not in the inventory
    /// yet is taken as it is.
    pub async fn import(
        &self,
        paths: &[PathBuf],
        image: Option<&str>,
    ) -> Result<Vec<Imported>, JudgeError> {
        let image = image.map(|s| self.parse(s)).transpose()?;
        let mut out = Vec::new();
        for path in paths {
            out.push(import_one(self.store(), path, Some((self.queries(), image.as_ref()))).await?);
        }
        Ok(out)
    }
}

async fn import_one(
    store: &Store,
    path: &Path,
    queries: Option<(&Queries, Option<&Reference>)>,
) -> Result<Imported, JudgeError> {
    let p = path.to_path_buf();
    let doc = tokio::task::spawn_blocking(move || freshen_vuln::load_document(&p))
        .await
        .map_err(|e| JudgeError::Invalid(format!("import task failed: {e}")))?
        .map_err(|e| JudgeError::Invalid(e.to_string()))?;
    let shown = path.display().to_string();
    match doc {
        Document::Osv(loaded) => {
            let inputs = advisory_inputs(&loaded);
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
            Ok(import_report(store, &shown, *report, digest, in_inventory).await?)
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
) -> Result<(String, bool), JudgeError> {
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
        Err(e) => return Err(e.into()),
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
    Err(JudgeError::Invalid(format!(
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
) -> Result<(String, bool), JudgeError> {
    if report.image_digests.is_empty() {
        let what = report
            .artifact
            .as_deref()
            .map(|a| format!(" (it scanned {a})"))
            .unwrap_or_default();
        return Err(JudgeError::Invalid(format!(
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

/// Loaded OSV records as the store imports them.
pub(crate) fn advisory_inputs(loaded: &freshen_vuln::Loaded) -> Vec<AdvisoryInput> {
    loaded
        .records
        .iter()
        .map(|r| AdvisoryInput {
            id: r.id.clone(),
            modified: r.modified.clone(),
            record: serde_json::to_string(r).expect("a record serialises"),
        })
        .collect()
}

/// The findings of every scanner report stored for an image.
pub(crate) async fn report_findings(
    store: &Store,
    digest: &str,
) -> Result<Vec<Finding>, JudgeError> {
    let mut out = Vec::new();
    for r in store.reports_of(digest).await? {
        out.extend(parse_stored(&r)?);
    }
    Ok(out)
}

/// A stored report's findings.
pub(crate) fn parse_stored(r: &freshen_store::StoredReport) -> Result<Vec<Finding>, JudgeError> {
    serde_json::from_str(&r.findings).map_err(|e| {
        JudgeError::Invalid(format!(
            "the stored {} report of {} is corrupt: {e}",
            r.scanner, r.image_digest
        ))
    })
}
