//! The "plan" and "execute" actions: the plan a change calls for, a
//! rebuild run (started or resumed), the stored runs, and the deliverer of
//! the cascades watches ask for.

use std::collections::BTreeMap;
use std::sync::Arc;

use freshen_judge::FindingOutcome;
use freshen_vuln::Finding;

use freshen_actions::{Deliverer, DeliveryError, Local, LocalTarget};
use freshen_rebuild::{
    Build, BuildError, Cascader, GateVerdict, Plan, Progress, PromoteGate, RunReport, Runner,
    Trigger,
};
use freshen_store::{RebuildRun, Store};

use crate::{App, AppError};

/// What to plan (or rebuild).
#[derive(Debug, Clone)]
pub enum PlanRequest {
    /// What is built on a base that changed.
    Base(String),
    /// An image, with what is built on it.
    Image(String),
    /// What a change event calls for (nothing if its policy said quiet).
    Event(String),
    /// The images vulnerable now, with what is built on them: those
    /// affected by this vulnerability (an id or alias), or with `None`
    /// every image whose policy acts on its findings.
    Vulnerable(Option<String>),
    /// Every build, parents first.
    All,
}

/// A plan, with what a run of it needs.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The builds in waves, with the images nothing here can build.
    pub plan: Plan,
    /// The build definitions it was made from.
    pub builds: Vec<Build>,
    /// What to store with a run as its cause (the event and its decisions).
    pub cause: serde_json::Value,
    /// Why the event's policy kept the change quiet, when it did (the
    /// plan is then empty).
    pub quiet: Option<String>,
}

/// A vulnerable image rebuilt, and what became of its findings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verified {
    /// The image.
    pub image: String,
    /// Its new digest.
    pub digest: Option<String>,
    /// Each finding its policy acted on: `fixed`, or `not fixed` and why.
    pub findings: Vec<FindingOutcome>,
}

/// What a rebuild reports as it goes, in order.
#[derive(Debug, Clone)]
pub enum RebuildProgress {
    /// The event's policy kept the change quiet: nothing will be built.
    Quiet {
        /// The policy's reason.
        reason: String,
    },
    /// The plan is empty; an empty run is stored all the same.
    Nothing,
    /// The run's own progress.
    Run(Progress),
}

/// Where a rebuild's progress goes.
pub type OnRebuildProgress = Arc<dyn Fn(RebuildProgress) + Send + Sync>;

impl App {
    /// The config's build definitions (`builds:` and `discover:`).
    fn load_builds(&self) -> Result<Vec<Build>, freshen_rebuild::BuildError> {
        let loaded = &self.loaded;
        freshen_rebuild::load(
            &loaded.config.builds,
            &loaded.config.discover,
            &loaded.base_dir,
            &loaded.defaults,
            &loaded.default_platforms,
        )
    }

    fn runner(&self, store: &Store, parallel: usize) -> Runner {
        let runner = Runner::new(
            self.client.clone(),
            store.clone(),
            self.scanner(store),
            self.loaded.config.builders.clone(),
            parallel,
        );
        match self.run_results(store) {
            Some(r) => runner.on_end(r),
            None => runner,
        }
    }

    /// The deliverer of the rebuild cascades watches and receivers ask for
    /// (`on_change: [cascade]`); `None` when none does, so a config without
    /// cascades never reads its build definitions here.
    pub(crate) fn cascades(&self, store: &Store) -> Result<Option<Deliverer>, AppError> {
        let loaded = &self.loaded;
        let cascade = |t: &String| t == freshen_actions::CASCADE;
        let wanted = loaded
            .watches
            .iter()
            .any(|w| w.triggers.iter().any(cascade))
            || loaded
                .config
                .receivers
                .values()
                .any(|r| r.on_change.iter().any(cascade))
            || loaded.policies.names().iter().any(|n| {
                loaded
                    .policies
                    .get(n)
                    .and_then(|p| p.on_vulnerable())
                    .is_some_and(|on| on.iter().any(cascade))
            });
        if !wanted {
            return Ok(None);
        }
        let builds = self.load_builds().map_err(AppError::CascadeBuilds)?;
        // A client of its own: a long cascade's registry traffic must not
        // take the checks' per-registry request slots.
        let client = crate::new_client(loaded);
        let scanner =
            freshen_inventory::Scanner::new(client.clone(), store.clone(), loaded.defaults.clone());
        let mut runner = Runner::new(
            client,
            store.clone(),
            scanner.clone(),
            loaded.config.builders.clone(),
            loaded.config.cascade.parallel,
        );
        if let Some(r) = self.run_results(store) {
            runner = runner.on_end(r);
        }
        // Images with vulnerability events in force are verified before
        // promotion (and held, with `promote_unfixed: false`).
        runner = runner.with_gate(Arc::new(UnfixedGate {
            hold_unfixed: !loaded.config.cascade.promote_unfixed,
            store: store.clone(),
            scanner,
            vulns: freshen_judge::Vulns::new(store.clone(), loaded.defaults.clone()),
            acted_on: BTreeMap::new(),
        }));
        let cascader = Cascader::new(
            store.clone(),
            runner,
            freshen_inventory::Queries::new(store.clone(), loaded.defaults.clone()),
            builds,
        );
        Ok(Some(Deliverer::cascades(
            store.clone(),
            Arc::new(CascadeTarget {
                cascader,
                rollouts: self.rolls_out_cascades().then(|| self.rollouts_over(store)),
                approvals: self.approvals_over(store),
                wake: self.wake.clone(),
            }),
            loaded.config.outbox.clone(),
        )))
    }

    /// The rebuild `request` calls for, without running it: the affected
    /// builds in waves (parents first), and the images built on the base
    /// that no definition builds.
    pub async fn plan(&self, request: PlanRequest) -> Result<Planned, AppError> {
        let store = self.store().await?;
        self.plan_with(store, request).await
    }

    async fn plan_with(&self, store: &Store, request: PlanRequest) -> Result<Planned, AppError> {
        let builds = self.load_builds()?;
        let queries = freshen_inventory::Queries::new(store.clone(), self.loaded.defaults.clone());
        let trigger = match request {
            PlanRequest::Base(b) => Trigger::Base {
                reference: self.reference(&b)?.to_string(),
            },
            PlanRequest::Image(i) => Trigger::Image {
                reference: self.reference(&i)?.to_string(),
            },
            PlanRequest::Event(id) => {
                // The same plan the event's cascade makes.
                let p = freshen_rebuild::plan_cascade(store, &builds, &queries, &id).await?;
                return Ok(Planned {
                    plan: p.plan,
                    builds,
                    cause: p.cause,
                    quiet: p.quiet,
                });
            }
            PlanRequest::Vulnerable(id) => Trigger::Vulnerable {
                images: self.vulnerable_now(id.as_deref()).await?,
            },
            PlanRequest::All => Trigger::All,
        };
        let mut plan = freshen_rebuild::plan(&builds, trigger)?;
        freshen_rebuild::mark_not_buildable(&mut plan, &builds, &queries).await?;
        Ok(Planned {
            plan,
            builds,
            cause: serde_json::json!({}),
            quiet: None,
        })
    }

    /// The images vulnerable now, each with why: those `id` affects, or
    /// every image whose policy acts on its findings.
    async fn vulnerable_now(&self, id: Option<&str>) -> Result<BTreeMap<String, String>, AppError> {
        Ok(self
            .vulnerable_findings(id)
            .await?
            .into_iter()
            .map(|(r, (why, _))| (r, why))
            .collect())
    }

    /// [`App::vulnerable_now`], with the findings that make each image
    /// vulnerable (every platform's).
    async fn vulnerable_findings(
        &self,
        id: Option<&str>,
    ) -> Result<BTreeMap<String, (String, Vec<Finding>)>, AppError> {
        let mut out: BTreeMap<String, (String, Vec<Finding>)> = BTreeMap::new();
        match id {
            Some(id) => {
                for a in self.vulnerable_images(id).await? {
                    let mut ids: Vec<&str> = a.findings.iter().map(|f| f.id.as_str()).collect();
                    ids.dedup();
                    let why = format!("{} ({})", ids.join(", "), a.platform);
                    for r in a.references {
                        let e = out.entry(r).or_insert_with(|| (why.clone(), Vec::new()));
                        e.1.extend(a.findings.iter().cloned());
                    }
                }
            }
            None => {
                let vulns = self.vulns().await?;
                for j in vulns.acting(&self.loaded.policies).await? {
                    let why = format!("{} ({})", j.ids(), j.platform);
                    let e = out
                        .entry(j.reference.clone())
                        .or_insert_with(|| (why, Vec::new()));
                    e.1.extend(j.counted);
                }
            }
        }
        Ok(out)
    }

    /// `rebuild --vulnerable`: rebuilds the images vulnerable now (those
    /// `id` affects, or whose policy acts) and what is built on them, then
    /// reads each rebuilt vulnerable image's findings again: each finding
    /// ends `fixed`, or `not fixed` with why.
    pub async fn rebuild_vulnerable(
        &self,
        id: Option<&str>,
        parallel: usize,
        progress: OnRebuildProgress,
    ) -> Result<(RunReport, Vec<Verified>), AppError> {
        let before = self.vulnerable_findings(id).await?;
        let store = self.store().await?;
        let gate: Option<Arc<dyn PromoteGate>> = Some({
            Arc::new(UnfixedGate {
                hold_unfixed: !self.loaded.config.cascade.promote_unfixed,
                store: store.clone(),
                scanner: self.scanner(store),
                vulns: freshen_judge::Vulns::new(store.clone(), self.loaded.defaults.clone()),
                acted_on: before
                    .iter()
                    .map(|(r, (_, f))| (r.clone(), f.clone()))
                    .collect(),
            }) as Arc<dyn PromoteGate>
        });
        let report = self
            .rebuild_gated(
                PlanRequest::Vulnerable(id.map(str::to_string)),
                parallel,
                progress,
                gate,
            )
            .await?;
        let builds = self.load_builds()?;
        let mut verified = Vec::new();
        for item in &report.items {
            let Some((_, acted_on)) = before.get(&item.image) else {
                continue;
            };
            if item.state != freshen_store::ItemState::Done {
                continue;
            }
            let build = builds.iter().find(|b| b.image == item.image);
            let findings = |r: String| async move {
                match self.image_vulns(&r).await {
                    Ok((_, list)) => Ok(list.into_iter().flat_map(|v| v.findings).collect()),
                    // A base the inventory doesn't hold has no known findings.
                    Err(AppError::Judge(freshen_judge::JudgeError::Inventory(
                        freshen_inventory::InventoryError::UnknownImage(_),
                    ))) => Ok(Vec::new()),
                    Err(e) => Err(e),
                }
            };
            let after: Vec<Finding> = findings(item.image.clone()).await?;
            let base = build.and_then(|b| b.final_base.clone());
            let in_base: Vec<Finding> = match &base {
                Some(b) => findings(b.clone()).await?,
                None => Vec::new(),
            };
            let dockerfile = build.and_then(|b| std::fs::read_to_string(&b.dockerfile).ok());
            verified.push(Verified {
                image: item.image.clone(),
                digest: item.digest.clone(),
                findings: freshen_judge::verify(
                    acted_on,
                    &after,
                    base.as_deref(),
                    &in_base,
                    dockerfile.as_deref(),
                ),
            });
        }
        Ok((report, verified))
    }

    /// Plans `request` and runs it, `parallel` builds of a wave at once:
    /// each image built and pushed under a new version, promoted to its
    /// tags, scanned. The run is not keyed by an event (the event's own
    /// cascade is). `progress` is told as it goes.
    pub async fn rebuild(
        &self,
        request: PlanRequest,
        parallel: usize,
        progress: OnRebuildProgress,
    ) -> Result<RunReport, AppError> {
        self.rebuild_gated(request, parallel, progress, None).await
    }

    /// [`App::rebuild`], asking `gate` before each promotion.
    async fn rebuild_gated(
        &self,
        request: PlanRequest,
        parallel: usize,
        progress: OnRebuildProgress,
        gate: Option<Arc<dyn PromoteGate>>,
    ) -> Result<RunReport, AppError> {
        let store = self.store().await?;
        let mut runner = self
            .runner(store, parallel)
            .on_progress(run_progress(&progress));
        if let Some(g) = gate {
            runner = runner.with_gate(g);
        }
        let planned = self.plan_with(store, request).await?;
        if let Some(reason) = &planned.quiet {
            progress(RebuildProgress::Quiet {
                reason: reason.clone(),
            });
        }
        if planned.plan.is_empty() {
            progress(RebuildProgress::Nothing);
        }
        let report = runner
            .start(&planned.plan, &planned.builds, planned.cause, None)
            .await;
        self.deliver_results().await;
        Ok(report?)
    }

    /// Finishes a run that died: `run`, or the latest unfinished one.
    pub async fn resume_rebuild(
        &self,
        run: Option<&str>,
        parallel: usize,
        progress: OnRebuildProgress,
    ) -> Result<RunReport, AppError> {
        let store = self.store().await?;
        let runner = self
            .runner(store, parallel)
            .on_progress(run_progress(&progress));
        let builds = self.load_builds()?;
        let id = match run {
            Some(id) => id.to_string(),
            None => store
                .rebuilds(true, 1)
                .await?
                .into_iter()
                .next()
                .map(|r| r.id)
                .ok_or_else(|| {
                    AppError::Refused(
                        "no unfinished rebuild run to resume (see `freshen rebuilds`)".into(),
                    )
                })?,
        };
        let report = runner.resume(&id, &builds).await;
        self.deliver_results().await;
        Ok(report?)
    }

    /// The latest rebuild runs, newest first.
    pub async fn rebuilds(&self, limit: i64) -> Result<Vec<RebuildRun>, AppError> {
        Ok(self.store().await?.rebuilds(false, limit).await?)
    }

    /// One rebuild run and its images.
    pub async fn rebuild_run(&self, id: &str) -> Result<RunReport, AppError> {
        let store = self.store().await?;
        let run = store.rebuild(id).await?.ok_or_else(|| {
            AppError::Refused(format!("no rebuild run {id:?} (see `freshen rebuilds`)"))
        })?;
        let items = store.rebuild_items(id).await?;
        Ok(RunReport { run, items })
    }
}

/// The runner's progress, passed on.
fn run_progress(progress: &OnRebuildProgress) -> Arc<dyn Fn(Progress) + Send + Sync> {
    let progress = progress.clone();
    Arc::new(move |p| progress(RebuildProgress::Run(p)))
}

/// The outbox's reserved `cascade` target: a change event's rebuild, run by
/// the rebuild crate's [`Cascader`] (which knows nothing of the outbox).
/// A cascade: the event's rebuild run, then (with `rollout.clusters` and
/// `after_cascade`) the roll-out of what it rebuilt and promoted. Both
/// are stored and keyed (the run by the event, the roll-out by the run),
/// so a delivery taken again after a crash resumes whichever was cut short.
struct CascadeTarget {
    cascader: Cascader,
    rollouts: Option<crate::rollout::Rollouts>,
    /// Set when a watch or policy asks for approvals: the cascade, and
    /// the roll-out after it, wait for theirs.
    approvals: Option<crate::approvals::Approvals>,
    /// The daemon's: poked when a run or roll-out ended, so that its
    /// result (queued with it) goes out now, not after the idle wait.
    wake: Arc<tokio::sync::Notify>,
}

impl CascadeTarget {
    /// Asks the approval gate about `stage` of `subject`.
    async fn gate(
        &self,
        stage: freshen_settings::Stage,
        subject: &str,
        event_id: &str,
    ) -> Result<crate::approvals::Gate, DeliveryError> {
        match &self.approvals {
            None => Ok(crate::approvals::Gate::Go),
            Some(a) => a
                .gate(stage, subject, event_id)
                .await
                .map_err(|e| DeliveryError {
                    message: format!("asking for approval: {e}"),
                    retryable: true,
                }),
        }
    }
}

impl LocalTarget for CascadeTarget {
    fn deliver<'a>(
        &'a self,
        delivery: &'a freshen_store::Delivery,
    ) -> futures::future::BoxFuture<'a, Result<Local, DeliveryError>> {
        use crate::approvals::Gate;
        use freshen_settings::Stage;
        Box::pin(async move {
            let failed = |message: String| DeliveryError {
                message,
                retryable: true,
            };
            let event = &delivery.event_id;
            match self.gate(Stage::Cascade, event, event).await? {
                Gate::Go => {}
                Gate::Wait(until, why) => return Ok(Local::Wait { until, why }),
                Gate::Stop(why) => return Ok(Local::Done(Some(format!("not rebuilt: {why}")))),
            }
            let done = self.cascader.run(&delivery.event_id).await;
            self.wake.notify_one();
            let done = done.map_err(|e| failed(e.to_string()))?;
            let (Some(rollouts), freshen_rebuild::CascadeDone::Rebuilt { run, .. }) =
                (&self.rollouts, &done)
            else {
                return Ok(Local::Done(Some(done.to_string())));
            };
            match self.gate(Stage::Rollout, run, event).await? {
                Gate::Go => {}
                Gate::Wait(until, why) => {
                    return Ok(Local::Wait {
                        until,
                        why: format!("{done}; roll-out {why}"),
                    });
                }
                Gate::Stop(why) => {
                    return Ok(Local::Done(Some(format!("{done}; not rolled out: {why}"))));
                }
            }
            let report = rollouts
                .run(&crate::RolloutRequest::Run(run.clone()), None)
                .await;
            self.wake.notify_one();
            let report = report.map_err(|e| failed(format!("{done}; roll-out: {e}")))?;
            // A workload that failed its rollout was put back and recorded;
            // building again would not help, so the delivery is done.
            Ok(Local::Done(Some(format!("{done}; {}", report.summary()))))
        })
    }
}

/// Reads a vulnerable image's rebuild (by digest) before it is promoted:
/// notes which findings its policy acted on are fixed, and holds the
/// promotion when none is and `cascade.promote_unfixed` is false.
struct UnfixedGate {
    /// Hold a rebuild that fixed nothing (`!cascade.promote_unfixed`).
    hold_unfixed: bool,
    store: Store,
    scanner: freshen_inventory::Scanner,
    vulns: freshen_judge::Vulns,
    acted_on: BTreeMap<String, Vec<Finding>>,
}

impl UnfixedGate {
    /// The findings the `vulnerability` events in force for `image` acted on.
    async fn in_force(&self, image: &str) -> Result<Vec<Finding>, BuildError> {
        let mut out = Vec::new();
        for id in self.store.vulnerable_events(image).await? {
            let Some(e) = self.store.event(&id).await? else {
                continue;
            };
            if let Some(v) = e.vulnerability {
                let found: Vec<Finding> = serde_json::from_value(v.findings).map_err(|err| {
                    BuildError::Invalid(format!("event {id}: stored findings are corrupt: {err}"))
                })?;
                out.extend(found);
            }
        }
        Ok(out)
    }
}

impl PromoteGate for UnfixedGate {
    fn check<'a>(
        &'a self,
        build: &'a Build,
        pushed: &'a freshen_reference::Reference,
    ) -> futures::future::BoxFuture<'a, Result<GateVerdict, BuildError>> {
        Box::pin(async move {
            let before = match self.acted_on.get(&build.image) {
                Some(f) => f.clone(),
                // A cascade's image: the findings of its events in force.
                None => self.in_force(&build.image).await?,
            };
            if before.is_empty() {
                return Ok(GateVerdict::default());
            }
            let before = &before;
            let invalid = |e: freshen_judge::JudgeError| BuildError::Invalid(e.to_string());
            // By digest alone: the inventory learns the new image without
            // its tag moving there before the promotion does.
            let digest = pushed.digest().unwrap_or_default();
            let by_digest = freshen_reference::Reference::from_parts(
                pushed.registry(),
                pushed.repository(),
                None,
                Some(digest),
            )?;
            let reports = self
                .scanner
                .scan(&by_digest, &freshen_inventory::ScanOptions::default())
                .await
                .map_err(|e| {
                    BuildError::Executor(format!("{}: scanning {by_digest}: {e}", build.image))
                })?;
            let index = freshen_judge::index(&self.store).await.map_err(invalid)?;
            let mut after = Vec::new();
            for r in &reports {
                after.extend(
                    self.vulns
                        .findings_of(&index, &r.digest, r.os.as_deref())
                        .await
                        .map_err(invalid)?,
                );
            }
            let outcomes = freshen_judge::verify(before, &after, None, &[], None);
            let ids = |outcome: &str| {
                let mut ids: Vec<&str> = outcomes
                    .iter()
                    .filter(|o| o.outcome == outcome)
                    .map(|o| o.id.as_str())
                    .collect();
                ids.dedup();
                ids.join(", ")
            };
            let (fixed, not_fixed) = (ids("fixed"), ids("not fixed"));
            if fixed.is_empty() && self.hold_unfixed {
                return Ok(GateVerdict {
                    hold: true,
                    note: Some(format!(
                        "{} the rebuild fixed none of {not_fixed} (cascade.promote_unfixed is false)",
                        crate::rollout::HELD
                    )),
                });
            }
            let mut found = Vec::new();
            if !fixed.is_empty() {
                found.push(format!("{fixed} fixed"));
            }
            if !not_fixed.is_empty() {
                found.push(format!("{not_fixed} not fixed"));
            }
            Ok(GateVerdict {
                hold: false,
                note: Some(format!("verified: {}", found.join("; "))),
            })
        })
    }
}
