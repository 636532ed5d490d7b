//! Judging a base change before it is recorded: which images are built on
//! the old digest, what the new digest fixes in each of them, and what each
//! image's policy says of that.
//!
//! A vulnerability counts as fixed for an image when the image holds it
//! through a package the new base also ships, at a version the
//! vulnerability no longer affects. So the old base need not be readable:
//! only the new one is scanned (once; its layers are cached by digest).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use freshen_reference::{Platform, Reference};
use freshen_store::{Decision, Judgement, PlatformChange};
use freshen_vuln::{Finding, Index, PolicySet};

use freshen_inventory::{Queries, ScanOptions, Scanner};

use crate::vulns::index;
use crate::{JudgeError, Vulns};

/// Judges base changes with the config's policies.
#[derive(Clone)]
pub struct Judge {
    scanner: Scanner,
    vulns: Vulns,
    policies: Arc<PolicySet>,
}

/// One image built on the old base, as judged.
struct Subject {
    digest: String,
    label: String,
    references: Vec<String>,
}

impl Judge {
    /// A judge reading images with `scanner` and the inventory through `queries`.
    pub fn new(scanner: Scanner, queries: Queries, policies: Arc<PolicySet>) -> Judge {
        Judge {
            scanner,
            vulns: Vulns::from_queries(queries),
            policies,
        }
    }

    /// False when a change needs no judgement: the watch's policy (or, when
    /// it names none, every policy) is `always`. Then nothing is scanned.
    pub fn needed(&self, explicit: Option<&str>) -> bool {
        match explicit {
            Some(name) => self
                .policies
                .get(name)
                .is_some_and(|p| p.mode() != freshen_vuln::Mode::Always),
            None => !self.policies.all_always(),
        }
    }

    /// Judges the moves of a watched tag's platforms. Each image built on
    /// an old digest (or, by name, on the tag, and not yet on the new
    /// digest) is judged by the watch's policy, or else its own group's;
    /// when no image is known to be built on the tag at all, the old image
    /// itself is. The change acts when any image's decision does.
    pub async fn judge(
        &self,
        tag: &Reference,
        explicit: Option<&str>,
        changes: &[PlatformChange],
    ) -> Result<Judgement, JudgeError> {
        let store = self.vulns.store();
        let index = index(store).await?;
        let snapshot = serde_json::json!({
            "vuln_import": store.vuln_snapshot().await?,
            "records": index.len(),
        });
        let now = chrono::Utc::now();
        let today = now.format("%Y-%m-%d").to_string();
        let mut decisions = Vec::new();
        let mut labels = Vec::new();
        for ch in changes {
            let fixes = self.fixes_of(tag, ch, &index).await?;
            for subject in self.subjects(tag, ch).await? {
                let fixed = fixes.fixed_in(&self.vulns, &index, &subject.digest).await?;
                let refs: Vec<&str> = subject.references.iter().map(String::as_str).collect();
                let (name, policy) = match explicit {
                    Some(n) => (
                        n,
                        self.policies
                            .get(n)
                            .ok_or_else(|| JudgeError::Invalid(format!("no policy named {n:?}")))?,
                    ),
                    None => self.policies.for_image(&refs),
                };
                let verdict = policy.evaluate_change(&fixed, &today);
                store
                    .remember_policy(policy.version(), &policy.spec_json(), now)
                    .await?;
                crate::telemetry::decided("change", verdict.act);
                labels.push((subject.label.clone(), verdict.act, verdict.reason.clone()));
                decisions.push(Decision {
                    id: uuid::Uuid::now_v7().to_string(),
                    subject: subject.label,
                    image_digest: Some(subject.digest),
                    event_id: None,
                    policy: name.to_string(),
                    policy_version: verdict.policy_version,
                    snapshot: snapshot.clone(),
                    act: verdict.act,
                    reason: change_reason(ch, &verdict.reason),
                    counts: serde_json::to_value(&verdict.counts).expect("counts serialise"),
                    decided_at: now,
                });
            }
        }
        let acting: Vec<_> = labels.iter().filter(|(_, act, _)| *act).collect();
        let shown = |l: &[&(String, bool, String)]| {
            let mut parts: Vec<String> = l
                .iter()
                .take(3)
                .map(|(who, _, why)| format!("{who}: {why}"))
                .collect();
            if l.len() > 3 {
                parts.push(format!("and {} more", l.len() - 3));
            }
            parts.join("; ")
        };
        let (act, reason) = if labels.is_empty() {
            (
                false,
                format!("every image built on {tag} is on the new digest already: nothing to do"),
            )
        } else if acting.is_empty() {
            let all: Vec<_> = labels.iter().collect();
            (
                false,
                format!(
                    "no image built on the old digest calls for action ({} judged): {}",
                    labels.len(),
                    shown(&all)
                ),
            )
        } else {
            (
                true,
                format!(
                    "{} of {} image(s) built on the old digest call for action: {}",
                    acting.len(),
                    labels.len(),
                    shown(&acting)
                ),
            )
        };
        Ok(Judgement {
            act,
            reason,
            decisions,
        })
    }

    /// The images a move concerns: those built on the old digest (or on
    /// the tag by name, but not on the new digest). When no image at all
    /// is known to be built on the tag, the old image itself.
    async fn subjects(
        &self,
        tag: &Reference,
        ch: &PlatformChange,
    ) -> Result<Vec<Subject>, JudgeError> {
        // A first sight has no old image: nothing was built on it.
        let Some(old_digest) = &ch.old_digest else {
            return Ok(Vec::new());
        };
        let built = self
            .vulns
            .queries()
            .built_on(tag, std::slice::from_ref(old_digest))
            .await?;
        if built.is_empty() {
            // Nothing of ours is known to be built on the tag: the image
            // watched is the one that runs.
            let old = tag.with_digest(old_digest)?;
            self.ensure_scanned(&old, &ch.platform).await?;
            return Ok(vec![Subject {
                digest: old_digest.clone(),
                label: format!("{tag} (old digest)"),
                references: vec![tag.to_string()],
            }]);
        }
        let out = built
            .into_iter()
            .filter(|c| c.platform == ch.platform || c.platform.is_empty())
            .filter(|c| !(c.depth == 1 && c.base_digest.as_deref() == Some(&ch.new_digest)))
            .map(|c| Subject {
                label: c.references.first().cloned().unwrap_or(c.digest.clone()),
                digest: c.digest,
                references: c.references,
            })
            .collect();
        Ok(out)
    }

    /// The new image (scanned if need be): what it ships and still has.
    async fn fixes_of(
        &self,
        tag: &Reference,
        ch: &PlatformChange,
        index: &Index,
    ) -> Result<Fixes, JudgeError> {
        let new = tag.with_digest(&ch.new_digest)?;
        self.ensure_scanned(&new, &ch.platform).await?;
        Fixes::of(&self.vulns, index, &ch.new_digest).await
    }

    /// Scans `pinned` unless the inventory already has that digest.
    async fn ensure_scanned(&self, pinned: &Reference, platform: &str) -> Result<(), JudgeError> {
        let digest = pinned.digest().unwrap_or_default();
        if self.vulns.store().image(digest).await?.is_some() {
            return Ok(());
        }
        let platforms = Platform::parse(platform)
            .map(|p| vec![p])
            .unwrap_or_default();
        self.scanner
            .scan(
                pinned,
                &ScanOptions {
                    platforms,
                    ..ScanOptions::default()
                },
            )
            .await?;
        Ok(())
    }
}

/// A change decision's reason: the move, then the policy's words.
pub(crate) fn change_reason(ch: &PlatformChange, reason: &str) -> String {
    let old = ch.old_digest.as_deref().unwrap_or("(first sight)");
    format!("{old} -> {}: {reason}", ch.new_digest)
}

/// What the new base ships, and what of it is still vulnerable.
pub(crate) struct Fixes {
    /// Version of every package it ships, by `(package type, name)`.
    shipped: HashMap<(String, String), String>,
    /// `(vulnerability id, package)` it still has.
    findings: HashSet<(String, String)>,
}

impl Fixes {
    /// Of the new base `digest`, which must be in the inventory: its
    /// packages, and its findings (OSV matches and stored scanner reports).
    pub(crate) async fn of(
        vulns: &Vulns,
        index: &Index,
        digest: &str,
    ) -> Result<Fixes, JudgeError> {
        let store = vulns.store();
        let img = store
            .image(digest)
            .await?
            .ok_or_else(|| JudgeError::unknown_image(digest.to_string()))?;
        let findings = vulns
            .findings_of(index, digest, img.os_ecosystem.as_deref())
            .await?
            .into_iter()
            .map(|f| (f.id, f.package))
            .collect();
        Ok(Fixes {
            shipped: store
                .packages_of(digest)
                .await?
                .into_iter()
                .map(|p| ((p.ecosystem, p.name), p.version))
                .collect(),
            findings,
        })
    }

    /// The findings of an image that the new base fixes: held through a
    /// package the new base ships at another version, which is at or above
    /// the known fixed version and no longer has the vulnerability. (The
    /// version checks matter for scanner reports, which the new base has
    /// none of yet.)
    pub(crate) async fn fixed_in(
        &self,
        vulns: &Vulns,
        index: &Index,
        digest: &str,
    ) -> Result<Vec<Finding>, JudgeError> {
        let store = vulns.store();
        let Some(img) = store.image(digest).await? else {
            return Ok(Vec::new());
        };
        Ok(vulns
            .findings_of(index, digest, img.os_ecosystem.as_deref())
            .await?
            .into_iter()
            .filter(|f| {
                let Some(shipped) = self
                    .shipped
                    .get(&(f.package_type.clone(), f.package.clone()))
                else {
                    return false;
                };
                let scheme = freshen_version::Scheme::for_package_type(&f.package_type);
                let at_or_above = |v: &str| {
                    freshen_version::compare(scheme, shipped, v)
                        .is_ok_and(|o| o != std::cmp::Ordering::Less)
                };
                *shipped != f.version
                    && f.fixed.as_deref().is_none_or(at_or_above)
                    && !self.findings.contains(&(f.id.clone(), f.package.clone()))
            })
            .collect())
    }
}
