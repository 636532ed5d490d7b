//! What a registry webhook sets off, once the server has authenticated and
//! read it: each tag pushed is checked like a poll would (one `HEAD`, the
//! same stored baseline), so a webhook and a later poll of one digest make
//! one change event, and a tag pushed three times with one digest fires
//! once. A watched tag fires its watch's triggers; a tag no watch names
//! fires the receiver's own `on_change` (if its `images` match), and its
//! first push is a change, not a baseline. Docker Hub's callback is queued with the event, or posted at once
//! when the push changed nothing.

use std::collections::{BTreeMap, HashMap};

use chrono::Utc;
use freshen_actions::{CallbackPayload, HUB_CALLBACK};
use freshen_receive::{CallbackBody, Kind, Notice, ReceiverSpec, allowed_callback};
use freshen_reference::{Defaults, Platform, Reference, glob};
use serde::Serialize;

use crate::{CheckResult, Checker, Schedule, Watch};

/// A receiver, validated: its spec and the watch used for tags no watch names.
#[derive(Debug, Clone)]
struct Receiver {
    spec: ReceiverSpec,
    platforms: Vec<Platform>,
}

/// Turns authenticated webhook notices into checks.
#[derive(Clone)]
pub struct Intake {
    checker: Checker,
    watches: HashMap<String, Watch>,
    receivers: BTreeMap<String, Receiver>,
    defaults: Defaults,
    /// The Harbor robot account completed scans' reports are read with.
    harbor_credentials: Option<freshen_harbor::Credentials>,
}

/// What became of one request.
#[derive(Debug, Clone, Serialize)]
pub struct Taken {
    /// The receiver's name.
    pub receiver: String,
    /// One entry per tag pushed.
    pub pushes: Vec<PushOutcome>,
    /// One entry per completed scan (Harbor).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scans: Vec<ScanOutcome>,
    /// Payload items not acted on, each with why.
    pub skipped: Vec<String>,
    /// What became of Docker Hub's callback: `queued` (after the event's
    /// deliveries), `posted <state>`, or why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback: Option<String>,
}

impl Taken {
    /// True when a tag could not be checked (the registry failed): the
    /// sender should try again.
    pub fn failed(&self) -> bool {
        self.pushes.iter().any(|p| p.outcome == "failed")
            || self.scans.iter().any(|s| s.outcome == "failed")
    }
}

/// One completed scan's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct ScanOutcome {
    /// `registry/repository@digest`.
    pub reference: String,
    /// `imported` (the report is stored), `skipped` or `failed`.
    pub outcome: &'static str,
    /// Reports stored (one per platform manifest of an index).
    pub reports: usize,
    /// Findings in them.
    pub findings: usize,
    /// Why, for `skipped` and `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One pushed tag's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct PushOutcome {
    /// The normalised reference.
    pub reference: String,
    /// The digest the payload named, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pushed_digest: Option<String>,
    /// The tag's digest as read from the registry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// `fired` (a change event, triggers queued), `quiet` (a change event
    /// the policy kept quiet), `unchanged` (the digest was known: no
    /// event), `ignored` (no watch and no receiver trigger wants it) or
    /// `failed`.
    pub outcome: &'static str,
    /// The change event recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// Why, for `quiet`, `ignored` and `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A receiver that cannot be used: the field and why.
#[derive(Debug, thiserror::Error)]
#[error("receivers.{name}.{field}: {reason}")]
pub struct ReceiverError {
    pub name: String,
    pub field: &'static str,
    pub reason: String,
}

impl Intake {
    /// An intake checking with `checker`; pushes of the `watches`' tags fire
    /// the watches' triggers, others the receiver's `on_change`.
    pub fn new(
        checker: Checker,
        watches: &[Watch],
        receivers: &BTreeMap<String, ReceiverSpec>,
        defaults: Defaults,
        default_platforms: &[Platform],
    ) -> Result<Intake, ReceiverError> {
        let mut rs = BTreeMap::new();
        for (name, spec) in receivers {
            let err = |field, reason| ReceiverError {
                name: name.clone(),
                field,
                reason,
            };
            spec.validate().map_err(|(f, r)| err(f, r))?;
            let platforms = if spec.platforms.is_empty() {
                default_platforms.to_vec()
            } else {
                spec.platforms
                    .iter()
                    .map(|p| Platform::parse(p).map_err(|e| err("platforms", e.to_string())))
                    .collect::<Result<_, _>>()?
            };
            rs.insert(
                name.clone(),
                Receiver {
                    spec: spec.clone(),
                    platforms,
                },
            );
        }
        Ok(Intake {
            checker,
            watches: watches.iter().map(|w| (w.key(), w.clone())).collect(),
            receivers: rs,
            defaults,
            harbor_credentials: None,
        })
    }

    /// Reads completed scans' reports from Harbor as this robot account.
    pub fn with_harbor_credentials(
        mut self,
        credentials: Option<freshen_harbor::Credentials>,
    ) -> Intake {
        self.harbor_credentials = credentials;
        self
    }

    /// The receivers' specs, by name (for the server's gate).
    pub fn specs(&self) -> BTreeMap<String, ReceiverSpec> {
        self.receivers
            .iter()
            .map(|(n, r)| (n.clone(), r.spec.clone()))
            .collect()
    }

    /// Checks each tag `notice` reports pushed, then handles the callback.
    pub async fn take(&self, receiver: &str, notice: Notice) -> Taken {
        let Some(r) = self.receivers.get(receiver) else {
            // The gate admits configured receivers only.
            return Taken {
                receiver: receiver.to_string(),
                pushes: Vec::new(),
                scans: Vec::new(),
                skipped: vec![format!("no receiver named {receiver:?}")],
                callback: None,
            };
        };
        let source = format!("webhook:{receiver}");
        let mut pushes = Vec::with_capacity(notice.pushes.len());
        let mut events = Vec::new();
        for push in &notice.pushes {
            let outcome = self.push(r, &source, &push.reference, &push.digest).await;
            if let (Some(id), "fired") = (&outcome.event_id, outcome.outcome) {
                events.push((id.clone(), outcome.reference.clone()));
            }
            pushes.push(outcome);
        }
        let mut scans = Vec::with_capacity(notice.scans.len());
        for scan in &notice.scans {
            scans.push(self.scan(r, scan).await);
        }
        let callback = match (&notice.callback_url, r.spec.callback()) {
            (Some(url), Some(spec)) if r.spec.kind == Kind::Dockerhub => {
                Some(self.callback(url, &spec, &pushes, &events).await)
            }
            _ => None,
        };
        Taken {
            receiver: receiver.to_string(),
            pushes,
            scans,
            skipped: notice.skipped,
            callback,
        }
    }

    async fn push(
        &self,
        r: &Receiver,
        source: &str,
        raw: &str,
        pushed_digest: &Option<String>,
    ) -> PushOutcome {
        let mut out = PushOutcome {
            reference: raw.to_string(),
            pushed_digest: pushed_digest.clone(),
            digest: None,
            outcome: "ignored",
            event_id: None,
            reason: None,
        };
        let reference = match Reference::parse_with(raw, &self.defaults) {
            Ok(reference) if reference.digest().is_none() => reference,
            Ok(_) => {
                out.reason = Some("names a digest, not a tag".into());
                return out;
            }
            Err(e) => {
                out.reason = Some(e.to_string());
                return out;
            }
        };
        out.reference = reference.to_string();
        // A watched tag keeps the watch's semantics (its first sight is a
        // baseline, whoever sees it first); a tag only the receiver wants
        // is news from its first push.
        let adhoc;
        let (watch, first_sight_fires) = match self.watches.get(&out.reference) {
            Some(w) => (w, false),
            None if r.spec.on_change.is_empty() => {
                out.reason = Some(
                    "no watch names this tag, and the receiver has no on_change of its own".into(),
                );
                return out;
            }
            None if !r.spec.images.is_empty()
                && !r.spec.images.iter().any(|p| glob(p, &out.reference)) =>
            {
                out.reason = Some("matches none of the receiver's images patterns".into());
                return out;
            }
            None => {
                adhoc = Watch {
                    reference,
                    platforms: r.platforms.clone(),
                    schedule: Schedule::Every(std::time::Duration::from_secs(900)),
                    triggers: r.spec.on_change.clone(),
                    policy: r.spec.policy.clone(),
                };
                (&adhoc, true)
            }
        };
        let checked = if first_sight_fires {
            self.checker.check_pushed(watch, source).await
        } else {
            self.checker.check(watch, None, source).await
        };
        match checked {
            Ok(result) => describe(&mut out, &result),
            Err(e) => {
                tracing::warn!(reference = %out.reference, error = %e, source, "checking a pushed tag failed");
                out.outcome = "failed";
                out.reason = Some(e.to_string());
            }
        }
        if out.outcome != "failed" {
            tracing::info!(reference = %out.reference, outcome = out.outcome, event = ?out.event_id, source, "push received");
        }
        out
    }

    /// Imports a completed scan's full report from Harbor.
    async fn scan(&self, r: &Receiver, scan: &freshen_receive::Scan) -> ScanOutcome {
        let mut out = ScanOutcome {
            reference: scan.reference.clone(),
            outcome: "skipped",
            reports: 0,
            findings: 0,
            reason: None,
        };
        let Some(url) = &r.spec.harbor_url else {
            out.reason = Some(
                "the receiver has no harbor_url to read the report from (the overview counts findings but does not name them)"
                    .into(),
            );
            return out;
        };
        let project = scan.repository.split('/').next().unwrap_or_default();
        let done = async {
            let client = freshen_harbor::Client::new(url, self.harbor_credentials.clone())?;
            let artifact = client
                .artifact(project, &scan.repository, &scan.digest)
                .await?;
            freshen_inventory::import_harbor_artifacts(
                self.checker.store(),
                &client,
                project,
                &scan.repository,
                vec![artifact],
            )
            .await
        }
        .await;
        match done {
            Ok(done) if done.imported.is_empty() => {
                out.reason = Some(done.skipped.join("; "));
            }
            Ok(done) => {
                out.outcome = "imported";
                out.reports = done.imported.len();
                out.findings = done
                    .imported
                    .iter()
                    .filter_map(|i| i.report.as_ref())
                    .map(|r| r.findings)
                    .sum();
                tracing::info!(reference = %scan.reference, reports = out.reports, findings = out.findings, "Harbor scan imported");
            }
            Err(e) => {
                tracing::warn!(reference = %scan.reference, error = %e, "importing a Harbor scan failed");
                out.outcome = "failed";
                out.reason = Some(e.to_string());
            }
        }
        out
    }

    /// Queues the callback after the events' deliveries, or posts it now
    /// when there is nothing to wait for. Returns what was done.
    async fn callback(
        &self,
        url: &str,
        spec: &freshen_receive::CallbackSpec,
        pushes: &[PushOutcome],
        events: &[(String, String)],
    ) -> String {
        if let Err(why) = allowed_callback(url, &spec.allow) {
            tracing::warn!(reason = %why, "refused to call a callback_url");
            return format!("refused: {why}");
        }
        if let Some((event, reference)) = events.first() {
            let payload = CallbackPayload {
                url: url.to_string(),
                context: spec.context.clone(),
                target_url: spec.target_url.clone(),
                deadline: Utc::now()
                    + chrono::Duration::from_std(spec.max_wait).unwrap_or(chrono::Duration::MAX),
                reference: reference.clone(),
            };
            let value = serde_json::to_value(&payload).expect("the payload serialises");
            return match self
                .checker
                .store()
                .enqueue(event, &[HUB_CALLBACK.to_string()], &value, Utc::now())
                .await
            {
                Ok(()) => "queued: posted once the event's deliveries end".into(),
                Err(e) => {
                    tracing::warn!(event = %event, error = %e, "could not queue the callback");
                    format!("not queued: {e}")
                }
            };
        }
        let body = immediate(pushes, spec);
        match freshen_actions::callback::post(url, &body).await {
            Ok(()) => format!("posted {}", body.state),
            Err(e) => {
                tracing::warn!(error = %e.message, "posting the callback failed");
                format!("not posted: {}", e.message)
            }
        }
    }
}

/// Fills an outcome from a check's result.
fn describe(out: &mut PushOutcome, result: &CheckResult) {
    out.digest = Some(result.digest.clone());
    out.event_id = result.event_id.clone();
    out.outcome = match (&result.event_id, &result.decision) {
        (None, _) => "unchanged",
        (Some(_), Some(d)) if !d.act => {
            out.reason = Some(d.reason.clone());
            "quiet"
        }
        (Some(_), _) => "fired",
    };
}

/// The callback for a push that set nothing off.
fn immediate(pushes: &[PushOutcome], spec: &freshen_receive::CallbackSpec) -> CallbackBody {
    let failed: Vec<&PushOutcome> = pushes.iter().filter(|p| p.outcome == "failed").collect();
    let (state, description) = if let Some(f) = failed.first() {
        (
            "error",
            format!(
                "{}: {}",
                f.reference,
                f.reason.as_deref().unwrap_or("failed")
            ),
        )
    } else {
        let parts: Vec<String> = pushes
            .iter()
            .map(|p| match p.outcome {
                "unchanged" => format!("{}: digest already known, nothing to do", p.reference),
                other => format!(
                    "{}: {other}{}",
                    p.reference,
                    p.reason
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                ),
            })
            .collect();
        (
            "success",
            if parts.is_empty() {
                "no tag pushed".into()
            } else {
                parts.join("; ")
            },
        )
    };
    CallbackBody {
        state,
        description: freshen_actions::callback::shorten(description, 250),
        context: spec.context.clone(),
        target_url: spec.target_url.clone(),
    }
}
