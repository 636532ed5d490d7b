//! What a registry webhook sets off, once the server has authenticated and
//! read it: each tag pushed is checked like a poll would (one `HEAD`, the
//! same stored baseline), so a webhook and a later poll of one digest make
//! one change event, and a tag pushed three times with one digest fires
//! once. A watched tag fires its watch's triggers; a tag no watch names
//! fires the receiver's own `on_change` (if its `images` match), and its
//! first push is a change, not a baseline. Docker Hub's callback is queued with the event, or posted at once
//! when the push changed nothing.

use std::collections::{BTreeMap, HashMap};

use freshen_actions::{HubCallback, PushedTag};
use freshen_receive::{Notice, ReceiverSpec};
use freshen_reference::{Defaults, Platform, Reference, glob};
use serde::Serialize;

use freshen_watch::{CheckError, CheckResult, Checker, Pushed, Schedule, Watch};

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
    /// Notified when deliveries were queued (the daemon's wake-up).
    queued: Option<std::sync::Arc<tokio::sync::Notify>>,
    /// The policies new reports are judged with (`on_vulnerable`).
    policies: Option<freshen_vuln::PolicySet>,
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
    /// The callback could not be queued.
    #[serde(skip)]
    callback_failed: bool,
}

impl Taken {
    /// True when part of the work failed for a reason a retry may fix (the
    /// registry unreachable or overloaded, the store down): the sender
    /// should try again. A permanent failure (a tag gone, access refused)
    /// is answered as taken, with the reason, so a sender that retries
    /// in order (Distribution) is not stuck on it.
    pub fn retry(&self) -> bool {
        self.pushes.iter().any(|p| p.retry) || self.callback_failed
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
    /// The `vulnerability` events the report made (images whose policy,
    /// with `on_vulnerable`, now acts on its findings).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
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
    /// Why the inventory could not follow the tag to its new digest (the
    /// change was recorded all the same).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inventory_error: Option<String>,
    /// A `failed` check a retry may fix.
    #[serde(skip)]
    pub retry: bool,
}

impl PushOutcome {
    /// What the push came to, for its Docker Hub callback.
    fn tag(&self) -> PushedTag<'_> {
        PushedTag {
            reference: &self.reference,
            digest: self.digest.as_deref(),
            outcome: self.outcome,
            reason: self.reason.as_deref(),
        }
    }
}

/// A receiver that cannot be used: the field and why.
#[derive(Debug, thiserror::Error)]
#[error("receivers.{name}.{field}: {reason}")]
pub struct ReceiverError {
    /// The receiver's name in the config (`receivers.<name>`).
    pub name: String,
    /// The offending field, as in the config.
    pub field: &'static str,
    /// What is wrong with it.
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
            queued: None,
            policies: None,
        })
    }

    /// Notifies `queued` whenever a request queued deliveries, so a
    /// [`freshen_watch::Daemon`] in this process delivers them at once.
    pub fn with_wake(mut self, queued: std::sync::Arc<tokio::sync::Notify>) -> Intake {
        self.queued = Some(queued);
        self
    }

    /// Judges the inventory again with `policies` after a completed scan's
    /// report is imported, so an image whose policy has `on_vulnerable`
    /// gets its `vulnerability` event.
    pub fn with_policies(mut self, policies: freshen_vuln::PolicySet) -> Intake {
        self.policies = Some(policies);
        self
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
                callback_failed: false,
            };
        };
        let source = format!("webhook:{receiver}");
        // Docker Hub's callback rides the push's change event, written in
        // its transaction (Docker Hub names one tag per call).
        let mut hub_callback = HubCallback::requested(&r.spec, &notice);
        let mut pushes = Vec::with_capacity(notice.pushes.len());
        for push in &notice.pushes {
            let with_event = hub_callback
                .as_ref()
                .map(|c| c.rider(&push.reference))
                .unwrap_or_default();
            let carried = !with_event.is_empty();
            let outcome = self
                .push(r, &source, &push.reference, &push.digest, with_event)
                .await;
            if carried && let (Some(c), Some(id)) = (hub_callback.as_mut(), &outcome.event_id) {
                c.rode(id);
            }
            pushes.push(outcome);
        }
        let mut scans = Vec::with_capacity(notice.scans.len());
        for scan in &notice.scans {
            scans.push(self.scan(r, scan).await);
        }
        let (callback, callback_failed) = match hub_callback {
            Some(c) => {
                let tags: Vec<PushedTag<'_>> = pushes.iter().map(PushOutcome::tag).collect();
                let settled = c.settle(self.checker.store(), &tags).await;
                (Some(settled.said), settled.retry)
            }
            None => (None, false),
        };
        if let Some(q) = &self.queued
            && (pushes.iter().any(|p| p.outcome == "fired")
                || callback.as_deref().is_some_and(|c| c.starts_with("queued")))
        {
            q.notify_one();
        }
        Taken {
            receiver: receiver.to_string(),
            pushes,
            scans,
            skipped: notice.skipped,
            callback,
            callback_failed,
        }
    }

    async fn push(
        &self,
        r: &Receiver,
        source: &str,
        raw: &str,
        pushed_digest: &Option<String>,
        with_event: Vec<(String, serde_json::Value)>,
    ) -> PushOutcome {
        let mut out = PushOutcome {
            reference: raw.to_string(),
            pushed_digest: pushed_digest.clone(),
            digest: None,
            outcome: "ignored",
            event_id: None,
            reason: None,
            inventory_error: None,
            retry: false,
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
                    approve: Vec::new(),
                };
                (&adhoc, true)
            }
        };
        if let Some(pushed) = pushed_digest {
            self.settled(&watch.reference, pushed).await;
        }
        let checked = self
            .checker
            .check_pushed(
                watch,
                source,
                Pushed {
                    first_sight_fires,
                    with_event,
                },
            )
            .await;
        match checked {
            Ok(result) => describe(&mut out, &result),
            Err(e) => {
                tracing::warn!(reference = %out.reference, error = %e, source, "checking a pushed tag failed");
                out.outcome = "failed";
                out.retry = e.retryable();
                // The store's detail is for the log, not for the sender.
                out.reason = Some(match e {
                    CheckError::Store(_) => {
                        "the store failed (the server log has the detail)".into()
                    }
                    e => e.to_string(),
                });
            }
        }
        if out.outcome != "failed" {
            tracing::info!(reference = %out.reference, outcome = out.outcome, event = out.event_id.as_deref().map(tracing::field::display), source, "push received");
        }
        out
    }

    /// Waits (3 s at most) until the tag reads as the digest the payload
    /// says was pushed. Distribution notifies before it moves the tag, so
    /// a check at once can read the old digest (or no tag yet) and miss
    /// the push. If the
    /// tag never reads so (pushed over again meanwhile), the check goes on
    /// with what the registry says.
    async fn settled(&self, reference: &Reference, pushed: &str) {
        for wait_ms in [0u64, 50, 150, 300, 500, 1000, 1000] {
            tokio::time::sleep(std::time::Duration::from_millis(wait_ms)).await;
            match self.checker.client().head_manifest(reference).await {
                Ok(h) if h.digest.as_deref() == Some(pushed) => return,
                // Not yet: the old digest, or no tag at all (404) for a
                // new one. Other errors are reported by the check.
                Ok(_) | Err(_) => {}
            }
        }
        tracing::info!(%reference, pushed, "the tag never read as the pushed digest; checking what it reads now");
    }

    /// Imports a completed scan's full report from Harbor.
    async fn scan(&self, r: &Receiver, scan: &freshen_receive::Scan) -> ScanOutcome {
        let mut out = ScanOutcome {
            reference: scan.reference.clone(),
            outcome: "skipped",
            reports: 0,
            findings: 0,
            reason: None,
            events: Vec::new(),
        };
        if !r.spec.images.is_empty() && !r.spec.images.iter().any(|p| glob(p, &scan.reference)) {
            out.reason = Some("matches none of the receiver's images patterns".into());
            return out;
        }
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
            freshen_judge::import_harbor(
                self.checker.store(),
                &client,
                project,
                freshen_judge::HarborScope::Artifact {
                    repository: &scan.repository,
                    digest: &scan.digest,
                },
                |_| {},
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
                if let Some(policies) = &self.policies {
                    let vulns = freshen_judge::Vulns::new(
                        self.checker.store().clone(),
                        self.defaults.clone(),
                    );
                    match vulns.rejudge(policies).await {
                        Ok(events) => {
                            if !events.is_empty()
                                && let Some(q) = &self.queued
                            {
                                q.notify_one();
                            }
                            out.events = events.into_iter().map(|e| e.id).collect();
                        }
                        Err(e) => {
                            tracing::warn!(reference = %scan.reference, error = %e, "judging the imported scan failed")
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(reference = %scan.reference, error = %e, "importing a Harbor scan failed");
                out.outcome = "failed";
                out.reason = Some(e.to_string());
            }
        }
        out
    }
}

/// Fills an outcome from a check's result.
fn describe(out: &mut PushOutcome, result: &CheckResult) {
    out.digest = Some(result.digest.clone());
    out.event_id = result.event_id.clone();
    out.inventory_error = result.inventory_error.clone();
    out.outcome = match (&result.event_id, &result.decision) {
        (None, _) => "unchanged",
        (Some(_), Some(d)) if !d.act => {
            out.reason = Some(d.reason.clone());
            "quiet"
        }
        (Some(_), _) => "fired",
    };
}
