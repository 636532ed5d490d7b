//! The inventory's vulnerabilities: matching what images hold against the
//! stored OSV data (one image, or the whole fleet), merged with the scanner
//! reports stored for each image (imports are in `reports.rs`); the diff of
//! two images and policy checks.

use std::collections::BTreeMap;

use freshen_inventory::Queries;
use freshen_reference::{Defaults, Reference};
use freshen_store::{PackageRecord, Store};
use freshen_vuln::{Finding, Index, Installed, Record, merge_findings};
use serde::Serialize;

use crate::JudgeError;

/// The judge station's questions and imports, shared by the CLI and the
/// HTTP API: findings per image, images per vulnerability, diffs, policy
/// checks and replays, imports of vulnerability data. What images hold
/// and are built on it asks the inventory's [`Queries`].
#[derive(Clone)]
pub struct Vulns {
    store: Store,
    queries: Queries,
}

impl Vulns {
    /// Over `store`, with references normalised by `defaults`.
    pub fn new(store: Store, defaults: Defaults) -> Vulns {
        Vulns {
            queries: Queries::new(store.clone(), defaults),
            store,
        }
    }

    /// Over the store of `queries`, normalising references as they do.
    pub fn from_queries(queries: Queries) -> Vulns {
        Vulns {
            store: queries.store().clone(),
            queries,
        }
    }

    /// Normalises a user's reference; the error names the input.
    pub fn parse(&self, s: &str) -> Result<Reference, JudgeError> {
        Ok(self.queries.parse(s)?)
    }

    /// The inventory's queries this reads images through.
    pub(crate) fn queries(&self) -> &Queries {
        &self.queries
    }

    /// The store.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }
}

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

/// The stored records as a matching index.
pub async fn index(store: &Store) -> Result<Index, JudgeError> {
    let texts = store.advisories().await?;
    let records = tokio::task::spawn_blocking(move || {
        texts
            .iter()
            .map(|t| Record::parse(t.as_bytes()))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| JudgeError::Invalid(format!("index task failed: {e}")))?
    .map_err(|e| JudgeError::Invalid(format!("a stored advisory is corrupt: {e}")))?;
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

impl Vulns {
    /// The vulnerabilities of each platform of an image.
    pub async fn vulnerabilities(&self, r: &Reference) -> Result<Vec<ImageVulns>, JudgeError> {
        let index = index(self.store()).await?;
        self.vulnerabilities_with(&index, r).await
    }

    /// Like [`Vulns::vulnerabilities`], with an index already built.
    pub async fn vulnerabilities_with(
        &self,
        index: &Index,
        r: &Reference,
    ) -> Result<Vec<ImageVulns>, JudgeError> {
        let mut out = Vec::new();
        for t in self.queries.known(r).await? {
            let Some(img) = self.store().image(&t.digest).await? else {
                continue;
            };
            let findings = self
                .findings_of(index, &img.digest, img.os_ecosystem.as_deref())
                .await?;
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

    /// An image's findings: its packages matched against the OSV index,
    /// merged with the findings of the scanner reports stored for it (one
    /// finding per vulnerability and package, with its sources).
    pub async fn findings_of(
        &self,
        index: &Index,
        digest: &str,
        os: Option<&str>,
    ) -> Result<Vec<Finding>, JudgeError> {
        let packages = self.store().packages_of(digest).await?;
        let osv = match_packages(index, os, &packages);
        let reported = crate::reports::report_findings(self.store(), digest).await?;
        Ok(merge_findings(osv.into_iter().chain(reported)))
    }

    /// Every image, fleet-wide, affected by a vulnerability (by its id or
    /// any alias: a CVE finds the images its DSA matched), from OSV matches
    /// and stored scanner reports.
    pub async fn affected_by(&self, id: &str) -> Result<Vec<AffectedImage>, JudgeError> {
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
        for report in self.store().all_reports().await? {
            let hits: Vec<Finding> = crate::reports::parse_stored(&report)?
                .into_iter()
                .filter(|f| f.id == id || f.aliases.iter().any(|a| a == id))
                .collect();
            if hits.is_empty() {
                continue;
            }
            let entry = match by_image.entry(report.image_digest.clone()) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let platform = self
                        .store()
                        .image(&report.image_digest)
                        .await?
                        .map(|i| i.platform)
                        .unwrap_or_default();
                    e.insert(AffectedImage {
                        digest: report.image_digest.clone(),
                        platform,
                        references: Vec::new(),
                        findings: Vec::new(),
                    })
                }
            };
            entry.findings.extend(hits);
        }
        let mut out = Vec::with_capacity(by_image.len());
        for (digest, mut a) in by_image {
            a.findings = merge_findings(std::mem::take(&mut a.findings));
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

/// A package whose version differs between two images.
#[derive(Debug, Clone, Serialize)]
pub struct Upgrade {
    /// Package type.
    pub ecosystem: String,
    /// Package name.
    pub name: String,
    /// Version in the old image.
    pub from: String,
    /// Version in the new image.
    pub to: String,
    /// `upgrade`, `downgrade`, or `equivalent` (different text, same version).
    pub direction: String,
}

/// A descendant of the old base and the fixed vulnerabilities it holds.
#[derive(Debug, Clone, Serialize)]
pub struct ChildFixes {
    /// The child's manifest digest.
    pub digest: String,
    /// Its tags.
    pub references: Vec<String>,
    /// 1 for a direct child, 2 for its children, …
    pub depth: usize,
    /// Ids of vulnerabilities the new base fixes that the child holds.
    pub fixed: Vec<String>,
}

/// What changed from one base image to another, for one platform: the
/// packages, the vulnerabilities fixed and introduced, and which children
/// of the old base hold something the new one fixes.
#[derive(Debug, Clone, Serialize)]
pub struct BaseDiff {
    /// `os/arch[/variant]`.
    pub platform: String,
    /// The old image's digest.
    pub old_digest: String,
    /// The new image's digest.
    pub new_digest: String,
    /// Packages only in the new image.
    pub added: Vec<PackageRecord>,
    /// Packages only in the old image.
    pub removed: Vec<PackageRecord>,
    /// Packages in both, at another version.
    pub upgraded: Vec<Upgrade>,
    /// Findings of the old image gone from the new one.
    pub fixed: Vec<Finding>,
    /// Findings of the new image the old one didn't have.
    pub introduced: Vec<Finding>,
    /// Children of the old base holding a fixed vulnerability.
    pub children: Vec<ChildFixes>,
}

fn package_key(p: &PackageRecord) -> (String, String, String) {
    (
        p.ecosystem.clone(),
        p.name.clone(),
        p.arch.clone().unwrap_or_default(),
    )
}

fn finding_keys(f: &[Finding]) -> std::collections::BTreeSet<(String, String)> {
    f.iter()
        .map(|f| (f.id.clone(), f.package.clone()))
        .collect()
}

impl Vulns {
    /// Diffs two images (typically a base's old and new digest), platform
    /// by platform where both have it.
    pub async fn diff(
        &self,
        old: &Reference,
        new: &Reference,
    ) -> Result<Vec<BaseDiff>, JudgeError> {
        let index = index(self.store()).await?;
        let old_v = self.vulnerabilities_with(&index, old).await?;
        let new_v = self.vulnerabilities_with(&index, new).await?;
        let children = self.queries.children(old, true).await?;
        let mut out = Vec::new();
        for o in &old_v {
            let Some(n) = new_v.iter().find(|n| n.platform == o.platform) else {
                continue;
            };
            let old_pkgs = self.store().packages_of(&o.digest).await?;
            let new_pkgs = self.store().packages_of(&n.digest).await?;
            let old_by: BTreeMap<_, _> = old_pkgs.iter().map(|p| (package_key(p), p)).collect();
            let new_by: BTreeMap<_, _> = new_pkgs.iter().map(|p| (package_key(p), p)).collect();
            let added = new_by
                .iter()
                .filter(|(k, _)| !old_by.contains_key(*k))
                .map(|(_, p)| (*p).clone())
                .collect();
            let removed = old_by
                .iter()
                .filter(|(k, _)| !new_by.contains_key(*k))
                .map(|(_, p)| (*p).clone())
                .collect();
            let upgraded = old_by
                .iter()
                .filter_map(|(k, op)| {
                    let np = new_by.get(k)?;
                    (op.version != np.version).then(|| {
                        let scheme = freshen_version::Scheme::for_package_type(&op.ecosystem);
                        let direction =
                            match freshen_version::compare(scheme, &op.version, &np.version) {
                                Ok(std::cmp::Ordering::Less) => "upgrade",
                                Ok(std::cmp::Ordering::Greater) => "downgrade",
                                Ok(std::cmp::Ordering::Equal) => "equivalent",
                                Err(_) => "unknown",
                            };
                        Upgrade {
                            ecosystem: op.ecosystem.clone(),
                            name: op.name.clone(),
                            from: op.version.clone(),
                            to: np.version.clone(),
                            direction: direction.into(),
                        }
                    })
                })
                .collect();
            let (ok, nk) = (finding_keys(&o.findings), finding_keys(&n.findings));
            let fixed: Vec<Finding> = o
                .findings
                .iter()
                .filter(|f| !nk.contains(&(f.id.clone(), f.package.clone())))
                .cloned()
                .collect();
            let introduced = n
                .findings
                .iter()
                .filter(|f| !ok.contains(&(f.id.clone(), f.package.clone())))
                .cloned()
                .collect();
            let fixed_ids: std::collections::BTreeSet<&str> =
                fixed.iter().map(|f| f.id.as_str()).collect();
            let mut child_fixes = Vec::new();
            for c in children.iter().filter(|c| c.platform == o.platform) {
                let Some(img) = self.store().image(&c.digest).await? else {
                    continue;
                };
                let held: std::collections::BTreeSet<String> = self
                    .findings_of(&index, &c.digest, img.os_ecosystem.as_deref())
                    .await?
                    .into_iter()
                    .map(|f| f.id)
                    .filter(|id| fixed_ids.contains(id.as_str()))
                    .collect();
                child_fixes.push(ChildFixes {
                    digest: c.digest.clone(),
                    references: c.references.clone(),
                    depth: c.depth,
                    fixed: held.into_iter().collect(),
                });
            }
            out.push(BaseDiff {
                platform: o.platform.clone(),
                old_digest: o.digest.clone(),
                new_digest: n.digest.clone(),
                added,
                removed,
                upgraded,
                fixed,
                introduced,
                children: child_fixes,
            });
        }
        if out.is_empty() {
            return Err(JudgeError::Invalid(format!(
                "{old} and {new} have no platform in common"
            )));
        }
        Ok(out)
    }

    /// Evaluates on each platform of each reference (every tag in the
    /// inventory when `refs` is empty) the policy named `explicit`, or else
    /// the one of the reference's group, and stores every decision with
    /// the policy's version and the vulnerability data snapshot.
    pub async fn policy_check(
        &self,
        policies: &freshen_vuln::PolicySet,
        explicit: Option<&str>,
        refs: &[Reference],
    ) -> Result<Vec<PolicyCheck>, JudgeError> {
        let chosen = match explicit {
            Some(n) => Some(policies.get(n).ok_or_else(|| {
                JudgeError::Invalid(format!(
                    "no policy named {n:?} (defined: {})",
                    policies.names().join(", ")
                ))
            })?),
            None => None,
        };
        let index = index(self.store()).await?;
        let snapshot = serde_json::json!({ "vuln_import": self.store().vuln_snapshot().await?, "records": index.len() });
        let refs: Vec<Reference> = if refs.is_empty() {
            self.store()
                .tags()
                .await?
                .iter()
                .map(|n| self.parse(n))
                .collect::<Result<_, _>>()?
        } else {
            refs.to_vec()
        };
        let now = chrono::Utc::now();
        let today = now.format("%Y-%m-%d").to_string();
        let mut out = Vec::new();
        for r in &refs {
            let shown = r.to_string();
            let (policy_name, policy) = match (explicit, chosen) {
                (Some(n), Some(p)) => (n, p),
                _ => policies.for_image(&[shown.as_str()]),
            };
            self.store()
                .remember_policy(policy.version(), &policy.spec_json(), now)
                .await?;
            for v in self.vulnerabilities_with(&index, r).await? {
                let verdict = policy.evaluate(&v.findings, &today);
                let decision = freshen_store::Decision {
                    id: uuid::Uuid::now_v7().to_string(),
                    subject: r.to_string(),
                    image_digest: Some(v.digest.clone()),
                    event_id: None,
                    policy: policy_name.to_string(),
                    policy_version: verdict.policy_version.clone(),
                    snapshot: snapshot.clone(),
                    act: verdict.act,
                    reason: verdict.reason.clone(),
                    counts: serde_json::to_value(&verdict.counts).expect("counts serialise"),
                    decided_at: now,
                };
                self.store().record_decision(&decision).await?;
                crate::telemetry::decided("check", decision.act);
                out.push(PolicyCheck {
                    reference: r.to_string(),
                    policy: policy_name.to_string(),
                    platform: v.platform,
                    digest: v.digest,
                    decision_id: decision.id,
                    verdict,
                });
            }
        }
        Ok(out)
    }
}

/// One policy decision on one platform of an image.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyCheck {
    /// The reference checked.
    pub reference: String,
    /// The policy that decided.
    pub policy: String,
    /// `os/arch[/variant]`.
    pub platform: String,
    /// The platform manifest's digest.
    pub digest: String,
    /// The stored decision's id.
    pub decision_id: String,
    /// The outcome.
    #[serde(flatten)]
    pub verdict: freshen_vuln::Verdict,
}
