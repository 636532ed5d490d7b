//! Replaying a stored policy decision: the same image, the policy version
//! that decided (its rules are kept by version), and the vulnerability data
//! as it stood at the decision's snapshot (replaced OSV records are kept),
//! on the day it was made (ignore entries expire). Scanner reports are
//! kept only in their latest version per image and scanner, so a replay
//! uses the stored ones. Or, with the config's policies and today's data,
//! what the policy would say now.

use freshen_store::Decision;
use freshen_vuln::{Index, Policy, PolicySet, PolicySpec, Record, Verdict};
use serde::Serialize;

use crate::judge::{Fixes, change_reason};
use crate::vulns::index;
use crate::{JudgeError, Vulns};

/// A stored decision, made again.
#[derive(Debug, Clone, Serialize)]
pub struct Replay {
    /// The decision as stored.
    pub decision: Decision,
    /// `as-of-snapshot`, or `now` (the config's policy, today's data).
    pub mode: String,
    /// The data used: `{"vuln_import": N, "records": n, "policy_version": v, "day": d}`.
    pub data: serde_json::Value,
    /// The outcome of the replay.
    pub verdict: Verdict,
    /// Its reason as the decision would word it.
    pub reason: String,
    /// True when the replay acts as the decision did, for the same reason.
    pub same: bool,
}

impl Vulns {
    /// Replays decision `id` as it was made, or with `now` (the config's
    /// policies and the data stored today).
    pub async fn replay(&self, id: &str, now: Option<&PolicySet>) -> Result<Replay, JudgeError> {
        let store = self.store();
        let d = store
            .decision(id)
            .await?
            .ok_or_else(|| JudgeError::Invalid(format!("no policy decision {id:?}")))?;
        let (policy, index, import, day) = match now {
            Some(set) => {
                let policy = set.get(&d.policy).cloned().ok_or_else(|| {
                    JudgeError::Invalid(format!(
                        "decision {id} was made by policy {:?}, which the config no longer has (defined: {})",
                        d.policy,
                        set.names().join(", ")
                    ))
                })?;
                let day = chrono::Utc::now().format("%Y-%m-%d").to_string();
                (
                    policy,
                    index(store).await?,
                    store.vuln_snapshot().await?,
                    day,
                )
            }
            None => {
                let spec = store.policy_spec(&d.policy_version).await?.ok_or_else(|| {
                    JudgeError::Invalid(format!(
                        "the rules of policy version {} were not kept, so decision {id} can't be replayed as made (try --now)",
                        d.policy_version
                    ))
                })?;
                let spec: PolicySpec = serde_json::from_value(spec).map_err(|e| {
                    JudgeError::Invalid(format!(
                        "policy version {} as stored: {e}",
                        d.policy_version
                    ))
                })?;
                let policy = Policy::from_stored(spec).map_err(|e| {
                    JudgeError::Invalid(format!("policy version {}: {e}", d.policy_version))
                })?;
                let import = d.snapshot["vuln_import"].as_i64();
                let texts = match import {
                    Some(n) => store.advisories_as_of(n).await?,
                    None => Vec::new(),
                };
                let records = texts
                    .iter()
                    .map(|t| Record::parse(t.as_bytes()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| {
                        JudgeError::Invalid(format!("a stored advisory is corrupt: {e}"))
                    })?;
                let day = d.decided_at.format("%Y-%m-%d").to_string();
                (policy, Index::new(records), import, day)
            }
        };
        let digest = d
            .image_digest
            .clone()
            .ok_or_else(|| JudgeError::Invalid(format!("decision {id} names no image digest")))?;
        let img = store
            .image(&digest)
            .await?
            .ok_or_else(|| JudgeError::unknown_image(format!("{} ({digest})", d.subject)))?;
        let event = match &d.event_id {
            Some(event_id) => Some(store.event(event_id).await?.ok_or_else(|| {
                JudgeError::Invalid(format!("decision {id}: change event {event_id} is gone"))
            })?),
            None => None,
        };
        // A `vulnerability` event's decision was made on the image's own
        // findings, as a `policy check` decision is.
        let event = event.filter(|e| e.vulnerability.is_none());
        let (verdict, reason) = match &event {
            // A change decision: what the new base fixes in the image.
            Some(event) => {
                let event_id = &event.id;
                let ch = event
                    .changes
                    .iter()
                    .find(|c| c.platform == img.platform)
                    .or(event.changes.first())
                    .ok_or_else(|| {
                        JudgeError::Invalid(format!("event {event_id} records no change"))
                    })?;
                let fixes = Fixes::of(self, &index, &ch.new_digest).await?;
                let fixed = fixes.fixed_in(self, &index, &digest).await?;
                let v = policy.evaluate_change(&fixed, &day);
                let reason = change_reason(ch, &v.reason);
                (v, reason)
            }
            // A `policy check` (or `vulnerability`) decision: the image's findings.
            None => {
                let findings = self
                    .findings_of(&index, &digest, img.os_ecosystem.as_deref())
                    .await?;
                let v = policy.evaluate(&findings, &day);
                let reason = v.reason.clone();
                (v, reason)
            }
        };
        Ok(Replay {
            same: verdict.act == d.act && reason == d.reason,
            mode: if now.is_some() {
                "now"
            } else {
                "as-of-snapshot"
            }
            .into(),
            data: serde_json::json!({
                "vuln_import": import,
                "records": index.len(),
                "policy_version": policy.version(),
                "day": day,
            }),
            reason,
            verdict,
            decision: d,
        })
    }
}
