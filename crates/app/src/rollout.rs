//! The "roll out" actions: the workloads an image (or a rebuild run)
//! moves, the roll-out itself, stored and resumable, and the stored
//! roll-outs.

use std::sync::Arc;

use chrono::Utc;
use freshen_deploy::{Change, Matched, Outcome, Rollout, Sink, Wanted};
use freshen_reference::Reference;
use freshen_store::{ItemState, RolloutItem, RolloutRecord, RolloutState, RunState, Store};
use serde::Serialize;

use crate::{App, AppError};

/// The start of a rebuilt image's detail when its promotion was held
/// (`cascade.promote_unfixed: false`): such an image is not rolled out.
pub(crate) const HELD: &str = "not promoted:";

/// What to roll out.
#[derive(Debug, Clone)]
pub enum RolloutRequest {
    /// What a rebuild run built and promoted, in its waves.
    Run(String),
    /// One image: `repo:tag@sha256:…`, or `repo:tag` (its digest read
    /// from the registry now).
    Image(String),
}

/// An image to roll out, as planned.
#[derive(Debug, Clone, Serialize)]
pub struct WantedImage {
    /// The image (`registry/repo:tag`).
    pub image: String,
    /// The digest it moves to.
    pub digest: String,
    /// Its wave.
    pub wave: usize,
}

/// What a roll-out would do, read from the clusters now.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutPlan {
    /// The images and their new digests.
    pub images: Vec<WantedImage>,
    /// The workloads to move, by wave, and those already moved.
    #[serde(flatten)]
    pub matched: Matched,
    /// The GitOps repositories that get a commit (their files are read
    /// when the roll-out clones them).
    pub gitops: Vec<String>,
}

/// A roll-out as stored, with its workloads.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutReport {
    /// The roll-out.
    pub rollout: RolloutRecord,
    /// Its workloads, by wave.
    pub items: Vec<RolloutItem>,
}

impl RolloutReport {
    /// One line: the roll-out, its state and its workloads' outcomes.
    pub fn summary(&self) -> String {
        let count = |s: RolloutState| self.items.iter().filter(|i| i.state == s).count();
        format!(
            "roll-out {} {}: {} workload(s), {} done, {} rolled back, {} failed, {} skipped",
            self.rollout.id,
            self.rollout.state.as_str(),
            self.items.len(),
            count(RolloutState::Done),
            count(RolloutState::RolledBack),
            count(RolloutState::Failed),
            count(RolloutState::Skipped),
        )
    }
}

/// What a roll-out reports as it goes.
#[derive(Debug, Clone)]
pub enum RolloutProgress {
    /// A workload is being patched.
    Started(Change),
    /// A workload's roll-out ended.
    Finished(Change, Outcome),
}

/// Where a roll-out's progress goes.
pub type OnRolloutProgress = Arc<dyn Fn(RolloutProgress) + Send + Sync>;

/// The roll-out service: what the actions below need, so that a cascade
/// (which outlives any one call) can roll out what it rebuilt too.
#[derive(Clone)]
pub(crate) struct Rollouts {
    store: Store,
    client: freshen_registry::Client,
    defaults: freshen_reference::Defaults,
    settings: freshen_settings::RolloutSettings,
    /// Who is told when a roll-out ends (`notify.rollouts`).
    notify: freshen_settings::NotifySettings,
}

impl App {
    pub(crate) fn rollouts_over(&self, store: &Store) -> Rollouts {
        Rollouts {
            store: store.clone(),
            client: self.client.clone(),
            defaults: self.loaded.defaults.clone(),
            settings: self.loaded.config.rollout.clone(),
            notify: self.loaded.config.notify.clone(),
        }
    }

    async fn rollouts_service(&self) -> Result<Rollouts, AppError> {
        Ok(self.rollouts_over(self.store().await?))
    }

    /// What `request` would change in the configured clusters, read now;
    /// nothing is patched (`freshen rollout --plan`).
    pub async fn rollout_plan(&self, request: &RolloutRequest) -> Result<RolloutPlan, AppError> {
        self.rollouts_service().await?.plan(request).await
    }

    /// Rolls `request` out: every workload running its images patched to
    /// the new digests, wave by wave, watched until healthy and put back if
    /// not. A rebuild run is rolled out once: asked again, its roll-out is
    /// resumed if it was cut short, else answered as it stands.
    pub async fn rollout(
        &self,
        request: &RolloutRequest,
        on_progress: Option<OnRolloutProgress>,
    ) -> Result<RolloutReport, AppError> {
        let report = self
            .rollouts_service()
            .await?
            .run(request, on_progress)
            .await;
        self.deliver_results().await;
        report
    }

    /// A stored roll-out and its workloads.
    pub async fn rollout_report(&self, id: &str) -> Result<RolloutReport, AppError> {
        self.rollouts_service().await?.report(id).await
    }

    /// Stored roll-outs, newest first.
    pub async fn rollouts(&self, limit: i64) -> Result<Vec<RolloutRecord>, AppError> {
        Ok(self.store().await?.rollouts(limit).await?)
    }

    /// Whether cascades roll out what they rebuilt.
    pub(crate) fn rolls_out_cascades(&self) -> bool {
        let r = &self.loaded.config.rollout;
        r.after_cascade && r.has_targets()
    }
}

impl Rollouts {
    /// The configured clusters, connected; `None` when there are none (a
    /// GitOps-only set-up). Nothing at all to roll out to is an error.
    async fn clusters(&self) -> Result<Option<Rollout>, AppError> {
        if self.settings.clusters.is_empty() {
            if self.settings.gitops.is_empty() {
                return Err(freshen_deploy::DeployError::NoClusters.into());
            }
            return Ok(None);
        }
        Ok(Some(Rollout::connect(&self.settings).await?))
    }

    /// The roll-out's commit message: what moved, and why (the event, and
    /// the vulnerabilities a `vulnerability` event acted on).
    async fn message(&self, run_event: Option<&str>, wanted: &[Wanted]) -> String {
        let mut why = String::new();
        if let Some(id) = run_event {
            why = format!(" for event {id}");
            if let Ok(Some(e)) = self.store.event(id).await
                && let Some(v) = &e.vulnerability
            {
                let mut ids: Vec<String> = v
                    .findings
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f["id"].as_str().map(String::from))
                    .collect();
                ids.sort();
                ids.dedup();
                if !ids.is_empty() {
                    why = format!(" for {} (event {id})", ids.join(", "));
                }
            }
        }
        let mut m = format!("freshen: roll out {} image(s){why}\n", wanted.len());
        for w in wanted {
            m.push_str(&format!("\n- {}@{}", w.image, w.digest));
        }
        m
    }

    /// Commits the new digests to one GitOps repository.
    async fn write_back(
        &self,
        name: &str,
        wanted: &[Wanted],
        event: &str,
        message: &str,
    ) -> Outcome {
        let Some(spec) = self.settings.gitops.get(name) else {
            return Outcome::Failed(format!("rollout.gitops.{name} is no longer configured"));
        };
        let mut repo = freshen_gitops::RepoSpec::new(spec.url.clone(), spec.branch.clone());
        repo.push_branch = spec.push_branch.clone();
        if !spec.paths.is_empty() {
            repo.paths = spec.paths.clone();
        }
        repo.markers = spec.markers.clone();
        if let Some(a) = &spec.author_name {
            repo.author_name = a.clone();
        }
        if let Some(a) = &spec.author_email {
            repo.author_email = a.clone();
        }
        if let Some(a) = spec.attempts {
            repo.attempts = a;
        }
        repo.credential_helper = spec.credential_helper.clone();
        if let Some(t) = spec.timeout {
            repo.timeout = t;
        }
        let updates: Vec<freshen_gitops::ImageUpdate> = wanted
            .iter()
            .map(|w| freshen_gitops::ImageUpdate {
                image: w.image.clone(),
                tag: w.image.tag().map(String::from),
                digest: w.digest.clone(),
                old_digests: w.old_digests.clone(),
            })
            .collect();
        let scratch = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => return Outcome::Failed(format!("no scratch directory: {e}")),
        };
        match freshen_gitops::write_back(&repo, &updates, event, message, scratch.path()).await {
            Ok(done) => {
                let files: std::collections::BTreeSet<&str> =
                    done.files.iter().map(|f| f.path.as_str()).collect();
                Outcome::Done(match &done.commit {
                    Some(c) => format!(
                        "committed {} to {}: {} field(s) in {} file(s) ({})",
                        &c[..c.len().min(12)],
                        done.branch,
                        done.files.len(),
                        files.len(),
                        files.into_iter().collect::<Vec<_>>().join(", ")
                    ),
                    None => format!("nothing to change on {}", done.branch),
                })
            }
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }

    /// The images `request` rolls out, with what to store as its trigger.
    async fn wanted(
        &self,
        store: &Store,
        request: &RolloutRequest,
    ) -> Result<(serde_json::Value, Option<String>, Vec<Wanted>), AppError> {
        match request {
            RolloutRequest::Run(id) => {
                let Some(run) = store.rebuild(id).await? else {
                    return Err(AppError::Refused(format!(
                        "no rebuild run {id}: `freshen rebuilds` lists them"
                    )));
                };
                if run.state != RunState::Done {
                    return Err(AppError::Refused(format!(
                        "rebuild run {id} is {}: a run is rolled out once it is done (`freshen rebuild --resume {id}` finishes it)",
                        run.state
                    )));
                }
                if let Some(a) = store.approval_for("rollout", &run.id).await?
                    && a.state != freshen_store::ApprovalState::Approved
                {
                    return Err(AppError::Refused(format!(
                        "the roll-out of run {id} {}: approval {} is {}",
                        if a.state == freshen_store::ApprovalState::Pending {
                            "waits for a decision"
                        } else {
                            "was not approved"
                        },
                        a.id,
                        a.state
                    )));
                }
                let mut wanted = Vec::new();
                for item in store.rebuild_items(&run.id).await? {
                    let held = item.detail.as_deref().is_some_and(|d| d.starts_with(HELD));
                    let (ItemState::Done, Some(digest), false) = (item.state, &item.digest, held)
                    else {
                        continue;
                    };
                    let image = Reference::parse(&item.image)?;
                    let old_digests = self.old_digests(store, &image, digest).await?;
                    wanted.push(Wanted {
                        image,
                        digest: digest.clone(),
                        old_digests,
                        wave: usize::try_from(item.wave).unwrap_or(0),
                    });
                }
                let trigger = serde_json::json!({"run": run.id, "event": run.event_id});
                Ok((trigger, Some(run.id), wanted))
            }
            RolloutRequest::Image(s) => {
                let image = Reference::parse_with(s, &self.defaults)?;
                if image.tag().is_none() {
                    return Err(AppError::Refused(format!(
                        "{s}: name the tag the workloads follow, e.g. repo:1@sha256:… (a digest alone matches nothing to move)"
                    )));
                }
                let digest = match image.digest() {
                    Some(d) => d.to_string(),
                    None => self.client.resolve(&image).await?.digest,
                };
                let tagged = match image.tag() {
                    Some(t) => {
                        Reference::from_parts(image.registry(), image.repository(), Some(t), None)?
                    }
                    None => image.clone(),
                };
                let old_digests = self.old_digests(store, &tagged, &digest).await?;
                let trigger = serde_json::json!({"image": tagged.to_string(), "digest": digest});
                Ok((
                    trigger,
                    None,
                    vec![Wanted {
                        image: tagged,
                        digest,
                        old_digests,
                        wave: 0,
                    }],
                ))
            }
        }
    }

    /// The digests `image`'s tag pointed at before (seen by a watch, or
    /// pushed by a rebuild), but `now`.
    async fn old_digests(
        &self,
        store: &Store,
        image: &Reference,
        now: &str,
    ) -> Result<Vec<String>, AppError> {
        let mut out: Vec<String> = store
            .history(&image.to_string())
            .await?
            .into_iter()
            .map(|h| h.digest)
            .collect();
        out.extend(store.rebuilt_digests(&image.to_string()).await?);
        out.extend(store.rolled_out_digests(&image.to_string()).await?);
        out.retain(|d| d != now);
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn plan(&self, request: &RolloutRequest) -> Result<RolloutPlan, AppError> {
        let store = &self.store;
        let (_, _, wanted) = self.wanted(store, request).await?;
        let matched = match self.clusters().await? {
            Some(c) => c.plan(&wanted).await?,
            None => Matched::default(),
        };
        Ok(RolloutPlan {
            gitops: self
                .settings
                .gitops
                .iter()
                .map(|(name, g)| {
                    format!(
                        "{name} ({}, branch {})",
                        freshen_gitops::redact_url(&g.url),
                        g.push_branch.as_deref().unwrap_or(&g.branch)
                    )
                })
                .collect(),
            images: wanted
                .iter()
                .map(|w| WantedImage {
                    image: w.image.to_string(),
                    digest: w.digest.clone(),
                    wave: w.wave,
                })
                .collect(),
            matched,
        })
    }

    pub(crate) async fn run(
        &self,
        request: &RolloutRequest,
        on_progress: Option<OnRolloutProgress>,
    ) -> Result<RolloutReport, AppError> {
        let store = &self.store;
        let (trigger, run_id, wanted) = self.wanted(store, request).await?;
        let run_event = trigger["event"].as_str().map(String::from);
        let owner = format!("{}:{}", std::process::id(), uuid::Uuid::now_v7());
        // A run's roll-out that exists already is answered as it stands
        // (asked again) or resumed (cut short), before any cluster is asked.
        let mut existing = match &run_id {
            Some(r) => store.rollout_for_run(r).await?,
            None => None,
        };
        let clusters = match &existing {
            Some(r) if r.state != RunState::Running => None,
            _ => self.clusters().await?,
        };
        if existing.is_none() {
            let matched = match &clusters {
                Some(c) => c.plan(&wanted).await?,
                None => Matched::default(),
            };
            let record = RolloutRecord {
                id: uuid::Uuid::now_v7().to_string(),
                trigger,
                run_id: run_id.clone(),
                state: RunState::Running,
                created_at: Utc::now(),
                finished_at: None,
            };
            let mut items = matched
                .changes
                .iter()
                .map(item_of)
                .collect::<Result<Vec<_>, _>>()?;
            if !wanted.is_empty() {
                items.extend(self.settings.gitops.keys().map(|n| git_item(n, &wanted)));
            }
            if store
                .create_rollout(&record, &items, &owner, self.settings.lease)
                .await?
            {
                return self
                    .carry_out(
                        record,
                        items,
                        &wanted,
                        run_event,
                        clusters,
                        &owner,
                        on_progress,
                    )
                    .await;
            }
            // Another process made the run's roll-out first.
            existing = match &run_id {
                Some(r) => store.rollout_for_run(r).await?,
                None => None,
            };
        }
        let Some(record) = existing else {
            return Err(AppError::Refused(
                "the roll-out vanished while it was made".into(),
            ));
        };
        if record.state != RunState::Running {
            let items = store.rollout_items(&record.id).await?;
            return Ok(RolloutReport {
                rollout: record,
                items,
            });
        }
        if let Some(holder) = store
            .claim_rollout(&record.id, &owner, Utc::now(), self.settings.lease)
            .await?
        {
            return Err(AppError::Refused(format!(
                "roll-out {} is being carried out by another process ({holder}); `freshen rollouts {}` shows its progress",
                record.id, record.id
            )));
        }
        tracing::info!(rollout = %record.id, "resuming a roll-out that was cut short");
        let items = store.rollout_items(&record.id).await?;
        self.carry_out(
            record,
            items,
            &wanted,
            run_event,
            clusters,
            &owner,
            on_progress,
        )
        .await
    }

    /// Carries out the workloads of `items` not yet final (all of a new
    /// roll-out), renewing its lease meanwhile, and ends it: `done` when no
    /// workload failed or was put back, else `failed`.
    #[allow(clippy::too_many_arguments)]
    async fn carry_out(
        &self,
        record: RolloutRecord,
        items: Vec<RolloutItem>,
        wanted: &[Wanted],
        run_event: Option<String>,
        clusters: Option<Rollout>,
        owner: &str,
        on_progress: Option<OnRolloutProgress>,
    ) -> Result<RolloutReport, AppError> {
        let store = &self.store;
        let sink = StoreSink {
            store: store.clone(),
            rollout: record.id.clone(),
            on_progress,
        };
        let work = async {
            // A wave with a workload that failed (before a crash) skips the
            // waves after it, as it would have without the crash.
            let failed_wave = items
                .iter()
                .filter(|i| {
                    matches!(i.state, RolloutState::RolledBack | RolloutState::Failed)
                        || i.detail
                            .as_deref()
                            .is_some_and(|d| d.starts_with(PUTTING_BACK))
                })
                .map(|i| i.wave)
                .min();
            let mut changes = Vec::new();
            let mut putting_back = Vec::new();
            for i in items
                .iter()
                .filter(|i| !i.state.is_final() && i.kind != GIT)
            {
                if let Some(f) = failed_wave
                    && i.wave > f
                {
                    let why = format!("a workload of wave {} did not roll out", f + 1);
                    sink.mark(&i.workload, RolloutState::Skipped, Some(&why))
                        .await;
                    continue;
                }
                let change = change_of(i)?;
                match i
                    .detail
                    .as_deref()
                    .and_then(|d| d.strip_prefix(PUTTING_BACK))
                {
                    Some(why) => putting_back.push((change, why.to_string())),
                    None => changes.push(change),
                }
            }
            let repos: Vec<String> = items
                .iter()
                .filter(|i| !i.state.is_final() && i.kind == GIT)
                .map(|i| i.name.clone())
                .collect();
            // GitOps first: one commit per repository for the whole
            // roll-out (Argo CD or Flux then apply it); then the clusters.
            if !repos.is_empty() {
                let message = self.message(run_event.as_deref(), wanted).await;
                let event = run_event.clone().unwrap_or_else(|| record.id.clone());
                for name in &repos {
                    let key = format!("{GIT}/{name}");
                    sink.mark(&key, RolloutState::Rolling, None).await;
                    let outcome = self.write_back(name, wanted, &event, &message).await;
                    sink.mark(&key, state_of(&outcome), Some(outcome.detail()))
                        .await;
                }
            }
            if let Some(clusters) = &clusters {
                // Cut short while putting back: finish putting back, never
                // roll the failed digest out again.
                for (change, why) in &putting_back {
                    let outcome = clusters.put_back_after_crash(change, why).await;
                    sink.finished(change, &outcome).await;
                }
                clusters.run(&changes, &sink).await;
            }
            Ok::<(), AppError>(())
        };
        let renew = async {
            loop {
                tokio::time::sleep(self.settings.lease / 3).await;
                match store
                    .claim_rollout(&record.id, owner, Utc::now(), self.settings.lease)
                    .await
                {
                    Ok(None) => {}
                    Ok(Some(other)) => {
                        tracing::warn!(rollout = %record.id, holder = %other, "lost the roll-out's lease")
                    }
                    Err(e) => {
                        tracing::warn!(rollout = %record.id, error = %e, "renewing the roll-out's lease failed")
                    }
                }
            }
        };
        tokio::select! {
            r = work => r?,
            _ = renew => unreachable!("the renewal loop never ends"),
        }
        let stored = store.rollout_items(&record.id).await?;
        let state = if stored.iter().any(|i| {
            matches!(i.state, RolloutState::RolledBack | RolloutState::Failed)
                || !i.state.is_final()
        }) {
            RunState::Failed
        } else {
            RunState::Done
        };
        let at = Utc::now();
        let payload = freshen_actions::results::rollout_result(
            &record,
            &stored,
            state,
            at,
            run_event.as_deref(),
        );
        let notices = freshen_actions::results::notices(
            &self.notify.rollouts,
            self.notify.failures_only,
            state,
            &payload,
        );
        store
            .finish_rollout_telling(&record.id, state, at, &notices)
            .await?;
        crate::telemetry::rolled_out(
            state,
            &stored,
            (at - record.created_at).to_std().unwrap_or_default(),
        );
        self.report(&record.id).await
    }

    async fn report(&self, id: &str) -> Result<RolloutReport, AppError> {
        let store = &self.store;
        let Some(rollout) = store.rollout(id).await? else {
            return Err(AppError::Refused(format!(
                "no roll-out {id}: `freshen rollouts` lists them"
            )));
        };
        let items = store.rollout_items(id).await?;
        Ok(RolloutReport { rollout, items })
    }
}

/// The start of a workload's detail while its old images are put back.
const PUTTING_BACK: &str = "putting back: ";

/// The kind of a roll-out item that is a GitOps repository's commit.
const GIT: &str = "git";

fn git_item(name: &str, wanted: &[Wanted]) -> RolloutItem {
    RolloutItem {
        workload: format!("{GIT}/{name}"),
        cluster: String::new(),
        kind: GIT.into(),
        namespace: String::new(),
        name: name.to_string(),
        wave: 0,
        containers: serde_json::Value::Array(
            wanted
                .iter()
                .map(|w| serde_json::json!({"image": w.image.to_string(), "digest": w.digest}))
                .collect(),
        ),
        state: RolloutState::Pending,
        detail: None,
        started_at: None,
        finished_at: None,
    }
}

fn state_of(outcome: &Outcome) -> RolloutState {
    match outcome {
        Outcome::Done(_) => RolloutState::Done,
        Outcome::RolledBack(_) => RolloutState::RolledBack,
        Outcome::Failed(_) => RolloutState::Failed,
        Outcome::Skipped(_) => RolloutState::Skipped,
    }
}

fn item_of(c: &Change) -> Result<RolloutItem, AppError> {
    Ok(RolloutItem {
        workload: c.workload.to_string(),
        cluster: c.workload.cluster.clone(),
        kind: c.workload.kind.to_string(),
        namespace: c.workload.namespace.clone(),
        name: c.workload.name.clone(),
        wave: i32::try_from(c.wave).unwrap_or(i32::MAX),
        containers: serde_json::to_value(&c.containers)
            .map_err(|e| AppError::Refused(format!("roll-out plan: {e}")))?,
        state: RolloutState::Pending,
        detail: None,
        started_at: None,
        finished_at: None,
    })
}

fn change_of(i: &RolloutItem) -> Result<Change, AppError> {
    let corrupt = |what: String| {
        AppError::Store(freshen_store::StoreError::Invalid(format!(
            "roll-out workload {}: {what}",
            i.workload
        )))
    };
    Ok(Change {
        workload: freshen_deploy::WorkloadId {
            cluster: i.cluster.clone(),
            kind: freshen_settings::WorkloadKind::parse(&i.kind)
                .ok_or_else(|| corrupt(format!("unknown kind {}", i.kind)))?,
            namespace: i.namespace.clone(),
            name: i.name.clone(),
        },
        wave: usize::try_from(i.wave).unwrap_or(0),
        containers: serde_json::from_value(i.containers.clone())
            .map_err(|e| corrupt(e.to_string()))?,
    })
}

/// Stores each workload's progress as the roll-out goes.
struct StoreSink {
    store: Store,
    rollout: String,
    on_progress: Option<OnRolloutProgress>,
}

impl StoreSink {
    async fn set(&self, change: &Change, state: RolloutState, detail: Option<&str>) {
        self.mark(&change.workload.to_string(), state, detail).await;
    }

    async fn mark(&self, workload: &str, state: RolloutState, detail: Option<&str>) {
        if let Err(e) = self
            .store
            .set_rollout_item(&self.rollout, workload, state, detail, Utc::now())
            .await
        {
            // The roll-out goes on; a resumed one reads the cluster again.
            tracing::error!(rollout = %self.rollout, workload, error = %e, "could not record roll-out progress");
        }
    }
}

impl Sink for StoreSink {
    async fn putting_back(&self, change: &Change, why: &str) {
        self.set(
            change,
            RolloutState::Rolling,
            Some(&format!("{PUTTING_BACK}{why}")),
        )
        .await;
    }

    async fn started(&self, change: &Change) {
        self.set(change, RolloutState::Rolling, None).await;
        if let Some(f) = &self.on_progress {
            f(RolloutProgress::Started(change.clone()));
        }
    }

    async fn finished(&self, change: &Change, outcome: &Outcome) {
        self.set(change, state_of(outcome), Some(outcome.detail()))
            .await;
        if let Some(f) = &self.on_progress {
            f(RolloutProgress::Finished(change.clone(), outcome.clone()));
        }
    }
}
