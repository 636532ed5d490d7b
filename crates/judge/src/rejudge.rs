//! Judging the inventory again after new vulnerability data: each image
//! governed by a policy with `on_vulnerable` whose policy now acts on its
//! findings gets a `vulnerability` change event (with its decision and
//! deliveries, in one transaction), once per set of findings.

use std::collections::BTreeSet;

use chrono::Utc;
use freshen_store::{ChangeEvent, Decision, EventDecision, VulnerabilityCause, Vulnerable};
use freshen_vuln::PolicySet;

use crate::vulns::index;
use crate::{JudgeError, Vulns};

/// The event source of changes made by new vulnerability data.
pub const VULNERABILITY_SOURCE: &str = "vulnerability";

impl Vulns {
    /// Judges every image in the inventory again with the stored data.
    /// Returns the `vulnerability` events made: one per image whose
    /// policy (with `on_vulnerable`) now acts on findings it did not act
    /// on before. The same data judged twice makes no second event; an
    /// image its policy stops acting on is forgotten, so acting again is
    /// news.
    pub async fn rejudge(&self, policies: &PolicySet) -> Result<Vec<ChangeEvent>, JudgeError> {
        let store = self.store();
        // Nothing can make an event: skip reading the data.
        if policies
            .names()
            .iter()
            .all(|n| policies.get(n).is_none_or(|p| p.on_vulnerable().is_none()))
        {
            return Ok(Vec::new());
        }
        let index = index(store).await?;
        let snapshot = serde_json::json!({
            "vuln_import": store.vuln_snapshot().await?,
            "records": index.len(),
        });
        let now = Utc::now();
        let mut events = Vec::new();
        let judged = self
            .judge_all(&index, policies, |p| p.on_vulnerable().is_some())
            .await?;
        for j in judged {
            let (policy_name, policy) = policies.for_image(&[j.reference.as_str()]);
            let triggers = policy.on_vulnerable().unwrap_or_default();
            crate::telemetry::decided("vulnerability", j.acts());
            if !j.acts() {
                store.clear_vulnerable(&j.reference, &j.digest).await?;
                continue;
            }
            store
                .remember_policy(policy.version(), &policy.spec_json(), now)
                .await?;
            let verdict = &j.verdict;
            let event = ChangeEvent {
                id: uuid::Uuid::now_v7().to_string(),
                reference: j.reference.clone(),
                old_digest: Some(j.digest.clone()),
                new_digest: j.digest.clone(),
                changes: Vec::new(),
                source: VULNERABILITY_SOURCE.into(),
                observed_at: now,
                decision: Some(EventDecision {
                    act: true,
                    reason: verdict.reason.clone(),
                }),
                vulnerability: Some(VulnerabilityCause {
                    policy: policy_name.to_string(),
                    policy_version: verdict.policy_version.clone(),
                    snapshot: snapshot.clone(),
                    platform: j.platform.clone(),
                    findings: serde_json::to_value(&j.counted).expect("findings serialise"),
                }),
            };
            let decision = Decision {
                id: uuid::Uuid::now_v7().to_string(),
                subject: j.reference.clone(),
                image_digest: Some(j.digest.clone()),
                event_id: None,
                policy: policy_name.to_string(),
                policy_version: verdict.policy_version.clone(),
                snapshot: snapshot.clone(),
                act: true,
                reason: verdict.reason.clone(),
                counts: serde_json::to_value(&verdict.counts).expect("counts serialise"),
                decided_at: now,
            };
            let recorded = store
                .record_vulnerable(
                    &Vulnerable {
                        event,
                        decision,
                        findings_key: j.findings_key(),
                        triggers: triggers.to_vec(),
                    },
                    now,
                )
                .await?;
            if let Some(e) = recorded {
                tracing::info!(event = %e.id, reference = %e.reference, "vulnerability event");
                events.push(e);
            }
        }
        crate::telemetry::vulnerability_events(events.len());
        Ok(events)
    }
}

/// One platform of an inventory image, judged with the stored data.
#[derive(Debug, Clone)]
pub struct Judged {
    /// The tag.
    pub reference: String,
    /// `os/arch[/variant]`.
    pub platform: String,
    /// The platform manifest's digest.
    pub digest: String,
    /// What its policy said.
    pub verdict: freshen_vuln::Verdict,
    /// The findings the policy counted.
    pub counted: Vec<freshen_vuln::Finding>,
}

impl Judged {
    /// The policy acts on findings (an `always` policy on none doesn't).
    pub fn acts(&self) -> bool {
        self.verdict.act && !self.counted.is_empty()
    }

    /// The counted findings as a stable key: sorted `id package` pairs.
    pub fn findings_key(&self) -> String {
        let key: BTreeSet<String> = self
            .counted
            .iter()
            .map(|f| format!("{} {}", f.id, f.package))
            .collect();
        key.into_iter().collect::<Vec<_>>().join(",")
    }

    /// The counted findings' ids, each once, for a line.
    pub fn ids(&self) -> String {
        let ids: BTreeSet<&str> = self.counted.iter().map(|f| f.id.as_str()).collect();
        ids.into_iter().collect::<Vec<_>>().join(", ")
    }
}

impl Vulns {
    /// Every inventory image whose policy acts on its findings now, by
    /// the stored data; nothing is stored.
    pub async fn acting(&self, policies: &PolicySet) -> Result<Vec<Judged>, JudgeError> {
        let index = index(self.store()).await?;
        let all = self.judge_all(&index, policies, |_| true).await?;
        Ok(all.into_iter().filter(Judged::acts).collect())
    }

    /// Judges each platform of every inventory tag whose policy `wanted`.
    async fn judge_all(
        &self,
        index: &freshen_vuln::Index,
        policies: &PolicySet,
        wanted: impl Fn(&freshen_vuln::Policy) -> bool,
    ) -> Result<Vec<Judged>, JudgeError> {
        let names = self.store().tags().await?;
        let today = Utc::now().format("%Y-%m-%d").to_string();
        let mut out = Vec::new();
        let mut severities = Vec::new();
        for name in names {
            let (_, policy) = policies.for_image(&[name.as_str()]);
            if !wanted(policy) {
                continue;
            }
            let r = self.parse(&name)?;
            for v in self.vulnerabilities_with(index, &r).await? {
                severities.extend(v.findings.iter().map(|f| f.severity));
                let verdict = policy.evaluate(&v.findings, &today);
                let counted = policy
                    .counted(&v.findings, &today)
                    .0
                    .into_iter()
                    .cloned()
                    .collect();
                out.push(Judged {
                    reference: name.clone(),
                    platform: v.platform,
                    digest: v.digest,
                    verdict,
                    counted,
                });
            }
        }
        crate::telemetry::findings(severities.into_iter());
        Ok(out)
    }
}
