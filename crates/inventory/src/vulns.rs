//! The inventory's vulnerabilities: importing OSV data into the store, and
//! matching what images hold against it (one image, or the whole fleet).

use std::collections::BTreeMap;
use std::path::PathBuf;

use freshen_reference::Reference;
use freshen_store::{AdvisoryInput, ImportSummary, PackageRecord, Store};
use freshen_vuln::{Finding, Index, Installed, Record};
use serde::Serialize;

use crate::{InventoryError, Queries};

/// The findings of one platform of an image.
#[derive(Debug, Clone, Serialize)]
pub struct ImageVulns {
    /// `os/arch[/variant]`.
    pub platform: String,
    /// The platform manifest's digest.
    pub digest: String,
    /// The image's distribution (`Debian:12`), which scopes distro records.
    pub os: Option<String>,
    /// Findings, by package then id.
    pub findings: Vec<Finding>,
    /// Findings per severity.
    pub counts: BTreeMap<String, usize>,
}

/// An image affected by one vulnerability.
#[derive(Debug, Clone, Serialize)]
pub struct AffectedImage {
    /// The image's manifest digest.
    pub digest: String,
    /// `os/arch[/variant]`.
    pub platform: String,
    /// Tags pointing at it.
    pub references: Vec<String>,
    /// The finding, per affected package.
    pub findings: Vec<Finding>,
}

/// The result of importing one path.
#[derive(Debug, Clone, Serialize)]
pub struct Imported {
    /// The path given.
    pub path: String,
    /// What it held: `osv`.
    pub kind: String,
    /// What the store took.
    #[serde(flatten)]
    pub summary: ImportSummary,
}

/// Imports OSV records from files, directories or `all.zip` exports, each
/// path as one import (incremental: only records newer than the stored ones
/// are written). A bad file fails its path, naming it, and nothing of that
/// path is stored.
pub async fn import(store: &Store, paths: &[PathBuf]) -> Result<Vec<Imported>, InventoryError> {
    let mut out = Vec::new();
    for path in paths {
        let p = path.clone();
        let loaded = tokio::task::spawn_blocking(move || freshen_vuln::load_path(&p))
            .await
            .map_err(|e| InventoryError::Invalid(format!("import task failed: {e}")))?
            .map_err(|e| InventoryError::Invalid(e.to_string()))?;
        let inputs: Vec<AdvisoryInput> = loaded
            .records
            .iter()
            .map(|r| AdvisoryInput {
                id: r.id.clone(),
                modified: r.modified.clone(),
                record: serde_json::to_string(r).expect("a record serialises"),
            })
            .collect();
        let shown = path.display().to_string();
        let summary = store
            .import_advisories(&shown, "osv", &inputs, chrono::Utc::now())
            .await?;
        out.push(Imported {
            path: shown,
            kind: "osv".into(),
            summary,
        });
    }
    Ok(out)
}

/// The stored records as a matching index.
pub async fn index(store: &Store) -> Result<Index, InventoryError> {
    let texts = store.advisories().await?;
    let records = tokio::task::spawn_blocking(move || {
        texts
            .iter()
            .map(|t| Record::parse(t.as_bytes()))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| InventoryError::Invalid(format!("index task failed: {e}")))?
    .map_err(|e| InventoryError::Invalid(format!("a stored advisory is corrupt: {e}")))?;
    Ok(Index::new(records))
}

/// The findings for a list of packages of one image.
pub fn match_packages(index: &Index, os: Option<&str>, packages: &[PackageRecord]) -> Vec<Finding> {
    let mut out = Vec::new();
    for p in packages {
        out.extend(index.matches(&installed(p, os)));
    }
    out
}

fn installed<'a>(p: &'a PackageRecord, os: Option<&'a str>) -> Installed<'a> {
    Installed {
        package_type: &p.ecosystem,
        name: &p.name,
        version: &p.version,
        source_name: p.source_name.as_deref(),
        source_version: p.source_version.as_deref(),
        os_ecosystem: os,
    }
}

/// Findings per severity name, every level present.
pub fn counts(findings: &[Finding]) -> BTreeMap<String, usize> {
    let mut c: BTreeMap<String, usize> = freshen_vuln::Severity::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), 0))
        .collect();
    for f in findings {
        *c.entry(f.severity.as_str().to_string()).or_default() += 1;
    }
    c
}

impl Queries {
    /// The vulnerabilities of each platform of an image.
    pub async fn vulnerabilities(&self, r: &Reference) -> Result<Vec<ImageVulns>, InventoryError> {
        let index = index(self.store()).await?;
        self.vulnerabilities_with(&index, r).await
    }

    /// Like [`Queries::vulnerabilities`], with an index already built.
    pub async fn vulnerabilities_with(
        &self,
        index: &Index,
        r: &Reference,
    ) -> Result<Vec<ImageVulns>, InventoryError> {
        let mut out = Vec::new();
        for t in self.known(r).await? {
            let Some(img) = self.store().image(&t.digest).await? else {
                continue;
            };
            let packages = self.store().packages_of(&img.digest).await?;
            let findings = match_packages(index, img.os_ecosystem.as_deref(), &packages);
            out.push(ImageVulns {
                counts: counts(&findings),
                platform: img.platform,
                digest: img.digest,
                os: img.os_ecosystem,
                findings,
            });
        }
        Ok(out)
    }

    /// Every image, fleet-wide, affected by a vulnerability (by its id or
    /// any alias: a CVE finds the images its DSA matched).
    pub async fn affected_by(&self, id: &str) -> Result<Vec<AffectedImage>, InventoryError> {
        let index = index(self.store()).await?;
        let fleet = self.store().fleet_packages().await?;
        let mut by_image: BTreeMap<String, AffectedImage> = BTreeMap::new();
        for fp in &fleet {
            for f in index.matches(&installed(&fp.package, fp.os_ecosystem.as_deref())) {
                if f.id != id && !f.aliases.iter().any(|a| a == id) {
                    continue;
                }
                by_image
                    .entry(fp.image_digest.clone())
                    .or_insert_with(|| AffectedImage {
                        digest: fp.image_digest.clone(),
                        platform: fp.platform.clone(),
                        references: Vec::new(),
                        findings: Vec::new(),
                    })
                    .findings
                    .push(f);
            }
        }
        let mut out = Vec::with_capacity(by_image.len());
        for (digest, mut a) in by_image {
            a.references = self
                .store()
                .refs_of(&digest)
                .await?
                .into_iter()
                .map(|r| r.reference)
                .collect();
            out.push(a);
        }
        Ok(out)
    }
}
