//! Approvals: a cascade (before it rebuilds) or a roll-out (before it
//! moves workloads) held until a person decides, as a watch's or a
//! policy's `approve: [cascade, rollout]` asks. The stored request is the
//! waiting: the held delivery goes back to the outbox without counting an
//! attempt and looks again, so a restart loses nothing.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use freshen_settings::{ApprovalSettings, Stage, Watch};
use freshen_store::{Approval, ApprovalState, ChangeEvent, Store};
use freshen_vuln::PolicySet;
use tokio::sync::Notify;

use crate::{App, AppError};

/// What a held stage may do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Go on: nobody asks for approval, or it was given.
    Go,
    /// Wait: look again at `0`; `1` says why.
    Wait(DateTime<Utc>, String),
    /// Don't: rejected or expired; why.
    Stop(String),
}

/// The approval gate the cascades' deliverer asks.
#[derive(Clone)]
pub(crate) struct Approvals {
    store: Store,
    settings: ApprovalSettings,
    watches: Vec<Watch>,
    policies: PolicySet,
}

impl Approvals {
    /// Who asks for approval of `stage` after `event`: the watch of its
    /// tag, the policy the watch names, the policy that judged a
    /// vulnerability event, or the policy governing its tag. `None`: nobody.
    fn required(&self, event: &ChangeEvent, stage: Stage) -> Option<String> {
        let watch = self
            .watches
            .iter()
            .find(|w| w.reference.to_string() == event.reference);
        if let Some(w) = watch
            && w.approve.contains(&stage)
        {
            return Some(format!("watch {}", w.reference));
        }
        let (name, policy) = match (
            &event.vulnerability,
            watch.and_then(|w| w.policy.as_deref()),
        ) {
            (Some(v), _) => match self.policies.get(&v.policy) {
                Some(p) => (v.policy.as_str(), p),
                None => return None,
            },
            (None, Some(named)) => match self.policies.get(named) {
                Some(p) => (named, p),
                None => return None,
            },
            (None, None) => self.policies.for_image(&[event.reference.as_str()]),
        };
        policy
            .approve()
            .iter()
            .any(|s| s == stage.as_str())
            .then(|| format!("policy {name}"))
    }

    /// Whether `stage` of `subject` (after event `event_id`) may go on;
    /// the first time approval is needed, the request is stored and
    /// announced.
    pub(crate) async fn gate(
        &self,
        stage: Stage,
        subject: &str,
        event_id: &str,
    ) -> Result<Gate, AppError> {
        let now = Utc::now();
        self.store.expire_approvals(now).await?;
        let existing = self.store.approval_for(stage.as_str(), subject).await?;
        let approval = match existing {
            Some(a) => a,
            None => {
                let Some(event) = self.store.event(event_id).await? else {
                    return Ok(Gate::Go);
                };
                let Some(reason) = self.required(&event, stage) else {
                    return Ok(Gate::Go);
                };
                let request = Approval {
                    id: uuid::Uuid::now_v7().to_string(),
                    stage: stage.as_str().into(),
                    subject: subject.into(),
                    event_id: event_id.into(),
                    reference: event.reference.clone(),
                    reason,
                    state: ApprovalState::Pending,
                    requested_at: now,
                    expires_at: now
                        + chrono::Duration::from_std(self.settings.expire)
                            .unwrap_or(chrono::Duration::days(1)),
                    decided_at: None,
                    decided_by: None,
                    comment: None,
                };
                let payload = self.announcement(&request);
                let stored = self
                    .store
                    .request_approval(&request, &self.settings.announce, &payload)
                    .await?;
                tracing::info!(approval = %stored.id, stage = stage.as_str(), subject, reference = %stored.reference, reason = %stored.reason, "waiting for approval");
                stored
            }
        };
        Ok(match approval.state {
            ApprovalState::Approved => Gate::Go,
            ApprovalState::Pending => {
                let recheck = now
                    + chrono::Duration::from_std(self.settings.recheck)
                        .unwrap_or(chrono::Duration::seconds(30));
                Gate::Wait(
                    recheck.min(approval.expires_at),
                    format!(
                        "waiting for approval {} ({} asks; `freshen approve {}`)",
                        approval.id, approval.reason, approval.id
                    ),
                )
            }
            ApprovalState::Rejected => Gate::Stop(format!(
                "approval {} rejected by {}{}",
                approval.id,
                approval.decided_by.as_deref().unwrap_or("someone"),
                approval
                    .comment
                    .as_deref()
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default()
            )),
            ApprovalState::Expired => Gate::Stop(format!(
                "approval {} expired at {} with no decision",
                approval.id,
                approval
                    .expires_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )),
        })
    }

    /// What the announce triggers receive.
    fn announcement(&self, a: &Approval) -> serde_json::Value {
        let link = self
            .settings
            .url
            .as_deref()
            .map(|u| format!("{}/approvals/{}", u.trim_end_matches('/'), a.id));
        serde_json::json!({
            "kind": "approval",
            "text": format!(
                "freshen: approval needed to {} after a change of {} ({} asks); expires {}",
                if a.stage == "cascade" { "rebuild" } else { "roll out" },
                a.reference,
                a.reason,
                a.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            "approval": a,
            "link": link,
            "approve": format!("freshen approve {}", a.id),
            "reject": format!("freshen reject {} --reason TEXT", a.id),
        })
    }
}

impl App {
    /// The approval gate, when any watch or policy asks for approvals.
    pub(crate) fn approvals_over(&self, store: &Store) -> Option<Approvals> {
        let loaded = &self.loaded;
        let asked = loaded.watches.iter().any(|w| !w.approve.is_empty())
            || loaded
                .policies
                .names()
                .iter()
                .filter_map(|n| loaded.policies.get(n))
                .any(|p| !p.approve().is_empty());
        asked.then(|| Approvals {
            store: store.clone(),
            settings: loaded.config.approvals.clone(),
            watches: loaded.watches.clone(),
            policies: loaded.policies.clone(),
        })
    }

    /// Approvals, newest first; with `pending`, only those waiting (expired
    /// ones are marked so first).
    pub async fn approvals(&self, pending: bool, limit: i64) -> Result<Vec<Approval>, AppError> {
        let store = self.store().await?;
        store.expire_approvals(Utc::now()).await?;
        Ok(store.approvals(pending, limit).await?)
    }

    /// One approval by id.
    pub async fn approval(&self, id: &str) -> Result<Option<Approval>, AppError> {
        let store = self.store().await?;
        store.expire_approvals(Utc::now()).await?;
        Ok(store.approval(id).await?)
    }

    /// Approves (`approve`) or rejects a pending approval, as `by`, with a
    /// comment (a rejection's reason). The held cascade or roll-out is due
    /// at once.
    pub async fn decide(
        &self,
        id: &str,
        approve: bool,
        by: &str,
        comment: Option<&str>,
    ) -> Result<Approval, AppError> {
        if !approve && comment.is_none_or(|c| c.trim().is_empty()) {
            return Err(AppError::Refused(
                "a rejection needs a reason: --reason TEXT".into(),
            ));
        }
        let store = self.store().await?;
        let now = Utc::now();
        store.expire_approvals(now).await?;
        let Some(found) = store.approval(id).await? else {
            return Err(AppError::Refused(format!(
                "no approval {id}: `freshen approvals` lists them"
            )));
        };
        if found.state != ApprovalState::Pending {
            return Err(AppError::Refused(format!(
                "approval {id} is {} already{}",
                found.state,
                found
                    .decided_by
                    .as_deref()
                    .map(|b| format!(" (by {b})"))
                    .unwrap_or_default()
            )));
        }
        let state = if approve {
            ApprovalState::Approved
        } else {
            ApprovalState::Rejected
        };
        if !store.decide_approval(id, state, by, comment, now).await? {
            return Err(AppError::Refused(format!(
                "approval {id} was decided or expired meanwhile"
            )));
        }
        store.wake_deliveries(&found.event_id, now).await?;
        wake(&self.wake);
        tracing::info!(
            approval = id,
            state = state.as_str(),
            by,
            "approval decided"
        );
        store
            .approval(id)
            .await?
            .ok_or_else(|| AppError::Refused(format!("approval {id} vanished")))
    }
}

fn wake(n: &Arc<Notify>) {
    n.notify_one();
}
