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
        let mut names: Vec<String> = store
            .all_refs()
            .await?
            .into_iter()
            .map(|r| r.reference)
            .collect();
        names.dedup();
        let now = Utc::now();
        let today = now.format("%Y-%m-%d").to_string();
        let mut events = Vec::new();
        for name in &names {
            let (policy_name, policy) = policies.for_image(&[name.as_str()]);
            let Some(triggers) = policy.on_vulnerable() else {
                continue;
            };
            let r = self.parse(name)?;
            store
                .remember_policy(policy.version(), &policy.spec_json(), now)
                .await?;
            for v in self.vulnerabilities_with(&index, &r).await? {
                let verdict = policy.evaluate(&v.findings, &today);
                let (counted, _) = policy.counted(&v.findings, &today);
                if !verdict.act || counted.is_empty() {
                    store.clear_vulnerable(name, &v.digest).await?;
                    continue;
                }
                let key: BTreeSet<String> = counted
                    .iter()
                    .map(|f| format!("{} {}", f.id, f.package))
                    .collect();
                let event = ChangeEvent {
                    id: uuid::Uuid::now_v7().to_string(),
                    reference: name.clone(),
                    old_digest: Some(v.digest.clone()),
                    new_digest: v.digest.clone(),
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
                        platform: v.platform.clone(),
                        findings: serde_json::to_value(&counted).expect("findings serialise"),
                    }),
                };
                let decision = Decision {
                    id: uuid::Uuid::now_v7().to_string(),
                    subject: name.clone(),
                    image_digest: Some(v.digest.clone()),
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
                            findings_key: key.into_iter().collect::<Vec<_>>().join(","),
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
        }
        Ok(events)
    }
}
