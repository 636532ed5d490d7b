//! Carrying out a plan: wave after wave, a wave's images in parallel (up to
//! a bound), each built and pushed under a new version, promoted to its
//! tags, and scanned into the inventory. Progress is stored per image, so a
//! run that was killed resumes without redoing finished images; a failure
//! skips the images built on the failed one and nothing else.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::Utc;
use freshen_inventory::{DockerfileInput, ScanOptions, Scanner};
use freshen_reference::{Platform, Reference};
use freshen_registry::Client;
use freshen_store::{ItemState, RebuildItem, RebuildRun, RunState, Store};
use futures::StreamExt as _;
use serde::Serialize;

use crate::{Build, BuildError, BuilderSettings, Executor, Plan, PushTarget};
// The builders' methods: their settings types are `freshen-settings`'.
use crate::{BuildPush as _, ContainersBuildPush as _, JenkinsBuildPush as _};

/// What a runner reports as it goes (for a progress display).
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Progress {
    /// A wave starts.
    Wave {
        /// From 0.
        index: usize,
        /// Images to do in it.
        images: usize,
    },
    /// An image starts.
    Started {
        /// The build's image.
        image: String,
        /// The version it will be pushed as.
        version: String,
    },
    /// An image ended.
    Finished {
        /// The item as stored.
        item: RebuildItem,
    },
}

/// Asked before a rebuilt image is promoted to its tags. The
/// application's: e.g. what a vulnerable image's rebuild fixed.
pub trait PromoteGate: Send + Sync {
    /// Whether `build`, pushed as `pushed` (pinned by digest), may be
    /// promoted, and a note for the image's detail.
    fn check<'a>(
        &'a self,
        build: &'a Build,
        pushed: &'a Reference,
    ) -> futures::future::BoxFuture<'a, Result<GateVerdict, BuildError>>;
}

/// Asked as a run ends, for what to tell of it: the outbox rows written in
/// the transaction that stores the run's final state (the application's:
/// the run's result, for the triggers told of runs).
pub trait RunEnd: Send + Sync {
    /// The notices of `run` ending in `state` at `at`, with its `items`.
    fn notices<'a>(
        &'a self,
        run: &'a RebuildRun,
        items: &'a [RebuildItem],
        state: RunState,
        at: chrono::DateTime<Utc>,
    ) -> futures::future::BoxFuture<'a, Vec<freshen_store::Notice>>;
}

/// A [`PromoteGate`]'s answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GateVerdict {
    /// False: the version stays pushed, the tags don't move.
    pub hold: bool,
    /// What the gate found (`verified: CVE-… fixed`), for the detail.
    pub note: Option<String>,
}

/// Carries out plans.
pub struct Runner {
    client: Client,
    store: Store,
    scanner: Scanner,
    builders: BuilderSettings,
    parallel: usize,
    on_progress: Option<Arc<dyn Fn(Progress) + Send + Sync>>,
    gate: Option<Arc<dyn PromoteGate>>,
    on_end: Option<Arc<dyn RunEnd>>,
}

/// The outcome of a run.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// The run as stored.
    pub run: RebuildRun,
    /// Its images.
    pub items: Vec<RebuildItem>,
}

impl Runner {
    /// A runner; `parallel` bounds the builds of one wave in flight at once.
    pub fn new(
        client: Client,
        store: Store,
        scanner: Scanner,
        builders: BuilderSettings,
        parallel: usize,
    ) -> Runner {
        Runner {
            client,
            store,
            scanner,
            builders,
            parallel: parallel.max(1),
            on_progress: None,
            gate: None,
            on_end: None,
        }
    }

    /// Asks `on_end` what to tell as each run ends.
    pub fn on_end(mut self, on_end: Arc<dyn RunEnd>) -> Runner {
        self.on_end = Some(on_end);
        self
    }

    /// Asks `gate` before promoting each image.
    pub fn with_gate(mut self, gate: Arc<dyn PromoteGate>) -> Runner {
        self.gate = Some(gate);
        self
    }

    /// Calls `f` as the run goes.
    pub fn on_progress(mut self, f: Arc<dyn Fn(Progress) + Send + Sync>) -> Runner {
        self.on_progress = Some(f);
        self
    }

    fn report(&self, p: Progress) {
        if let Some(f) = &self.on_progress {
            f(p);
        }
    }

    /// Stores `plan` as a new run, with `cause`, and carries it out.
    /// `event_id` names the change event whose cascade this is (at most one
    /// run per event); `None` for a run started by hand.
    pub async fn start(
        &self,
        plan: &Plan,
        builds: &[Build],
        cause: serde_json::Value,
        event_id: Option<&str>,
    ) -> Result<RunReport, BuildError> {
        let run = self.create(plan, cause, event_id).await?;
        self.resume(&run.id, builds).await
    }

    /// Stores `plan` as a new run, every image `pending`, without carrying
    /// it out (that is [`Runner::resume`]); [`Runner::start`] does both.
    pub async fn create(
        &self,
        plan: &Plan,
        cause: serde_json::Value,
        event_id: Option<&str>,
    ) -> Result<RebuildRun, BuildError> {
        let run = RebuildRun {
            id: uuid::Uuid::now_v7().to_string(),
            trigger: serde_json::to_value(&plan.trigger).expect("a trigger serialises"),
            cause,
            plan: serde_json::to_value(plan).expect("a plan serialises"),
            state: RunState::Running,
            created_at: Utc::now(),
            finished_at: None,
            event_id: event_id.map(str::to_string),
        };
        let items: Vec<(String, i32)> = plan
            .waves
            .iter()
            .enumerate()
            .flat_map(|(w, wave)| wave.iter().map(move |b| (b.image.clone(), w as i32)))
            .collect();
        self.store.create_rebuild(&run, &items).await?;
        Ok(run)
    }

    /// Carries out what is left of a stored run: images not `done` are
    /// (re)done; one that was `running` when the run died starts over,
    /// under a new version (versions never repeat).
    pub async fn resume(&self, run_id: &str, builds: &[Build]) -> Result<RunReport, BuildError> {
        let run = self
            .store
            .rebuild(run_id)
            .await?
            .ok_or_else(|| BuildError::Invalid(format!("no rebuild run {run_id:?}")))?;
        if run.state != RunState::Running {
            // A failed run taken up again (a cascade's retry) is running again.
            self.store.reopen_rebuild(run_id).await?;
        }
        let plan: Plan = serde_json::from_value(run.plan.clone()).map_err(|e| {
            BuildError::Invalid(format!(
                "rebuild run {run_id}: its stored plan can't be read: {e}"
            ))
        })?;
        let by_image: BTreeMap<&str, &Build> =
            builds.iter().map(|b| (b.image.as_str(), b)).collect();
        let mut state: BTreeMap<String, RebuildItem> = self
            .store
            .rebuild_items(run_id)
            .await?
            .into_iter()
            .map(|i| (i.image.clone(), i))
            .collect();
        for (w, wave) in plan.waves.iter().enumerate() {
            // Owned, not borrowed: a stream over references makes the run's
            // future not `Send` for every lifetime (rust-lang/rust#102211), and
            // the watcher runs cascades as boxed `Send` futures.
            let todo: Vec<_> = wave
                .iter()
                .filter(|b| {
                    state
                        .get(&b.image)
                        .is_none_or(|i| i.state != ItemState::Done)
                })
                .cloned()
                .collect();
            self.report(Progress::Wave {
                index: w,
                images: todo.len(),
            });
            // Images built on one that failed or was skipped are skipped.
            let broken: BTreeSet<String> = state
                .values()
                .filter(|i| i.state == ItemState::Failed || i.state == ItemState::Skipped)
                .map(|i| i.image.clone())
                .collect();
            let results = futures::stream::iter(todo)
                .map(|planned| {
                    let broken = &broken;
                    let by_image = &by_image;
                    async move {
                        let image = planned.image.clone();
                        let executor = by_image
                            .get(image.as_str())
                            .map_or("unknown", |b| b.executor.as_str());
                        if let Some(bad) = planned.because.iter().find(|b| broken.contains(*b)) {
                            let detail = format!("skipped: its base {bad} was not rebuilt");
                            self.store
                                .set_rebuild_item(
                                    run_id,
                                    &image,
                                    ItemState::Skipped,
                                    None,
                                    None,
                                    Some(&detail),
                                    Utc::now(),
                                )
                                .await?;
                            crate::telemetry::image(executor, "skipped", None);
                            return Ok::<_, BuildError>(image);
                        }
                        let started = std::time::Instant::now();
                        let outcome = match by_image.get(image.as_str()) {
                            Some(b) => self.one(run_id, b).await,
                            None => Err(BuildError::Invalid(format!(
                                "{image} is no longer defined under builds or discover"
                            ))),
                        };
                        crate::telemetry::image(
                            executor,
                            if outcome.is_ok() { "done" } else { "failed" },
                            Some(started.elapsed()),
                        );
                        match outcome {
                            Ok((version, digest, note)) => {
                                self.store
                                    .set_rebuild_item(
                                        run_id,
                                        &image,
                                        ItemState::Done,
                                        Some(&version),
                                        Some(&digest),
                                        note.as_deref(),
                                        Utc::now(),
                                    )
                                    .await?
                            }
                            Err(e) => {
                                tracing::warn!(%image, error = %e, "rebuild failed");
                                self.store
                                    .set_rebuild_item(
                                        run_id,
                                        &image,
                                        ItemState::Failed,
                                        None,
                                        None,
                                        Some(&e.to_string()),
                                        Utc::now(),
                                    )
                                    .await?
                            }
                        }
                        Ok(image)
                    }
                })
                .buffer_unordered(self.parallel)
                .collect::<Vec<_>>()
                .await;
            let mut fresh: BTreeMap<String, RebuildItem> = self
                .store
                .rebuild_items(run_id)
                .await?
                .into_iter()
                .map(|i| (i.image.clone(), i))
                .collect();
            for r in results {
                let image = r?;
                if let Some(item) = fresh.get(&image) {
                    self.report(Progress::Finished { item: item.clone() });
                }
            }
            std::mem::swap(&mut state, &mut fresh);
        }
        let ok = state.values().all(|i| i.state == ItemState::Done);
        let end = if ok { RunState::Done } else { RunState::Failed };
        let at = Utc::now();
        let notices = match &self.on_end {
            Some(f) => {
                let items: Vec<RebuildItem> = state.values().cloned().collect();
                f.notices(&run, &items, end, at).await
            }
            None => Vec::new(),
        };
        self.store
            .finish_rebuild_telling(run_id, end, at, &notices)
            .await?;
        crate::telemetry::run(ok, (at - run.created_at).to_std().unwrap_or_default());
        Ok(RunReport {
            run: self
                .store
                .rebuild(run_id)
                .await?
                .expect("the run was just read"),
            items: state.into_values().collect(),
        })
    }

    /// Builds one image: next version, build and push, promote, scan.
    async fn one(
        &self,
        run_id: &str,
        b: &Build,
    ) -> Result<(String, String, Option<String>), BuildError> {
        // A repository not pushed to yet has no tags.
        let tags = match self.client.list_tags(&b.reference, 1000).await {
            Ok(t) => t,
            Err(freshen_registry::RegistryError::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let own = b.reference.tag().unwrap_or("latest").to_string();
        let version = b.scheme.next(&tags, &own, Utc::now())?;
        let versioned = b.reference.with_tag(&version)?;
        self.store
            .set_rebuild_item(
                run_id,
                &b.image,
                ItemState::Running,
                Some(&version),
                None,
                None,
                Utc::now(),
            )
            .await?;
        self.report(Progress::Started {
            image: b.image.clone(),
            version: version.clone(),
        });
        let (digest, note) = match (b.executor, b.fallback) {
            (Executor::Rebase, fallback) => {
                match crate::rebase(&self.client, &self.store, b, &versioned).await {
                    Ok(r) => {
                        let mut swapped: Vec<String> = r
                            .platforms
                            .iter()
                            .map(|(p, old, new)| format!("{p}: {old} base layer(s) -> {new}"))
                            .collect();
                        swapped.sort();
                        (r.digest, Some(format!("rebased ({})", swapped.join(", "))))
                    }
                    Err(BuildError::Refused(why)) if fallback.is_some() => {
                        let f = fallback.expect("matched");
                        tracing::info!(image = %b.image, %why, fallback = f.as_str(), "rebase refused; building");
                        let digest = self.execute(f, b, &versioned).await?;
                        (
                            digest,
                            Some(format!("rebase refused ({why}); built by {}", f.as_str())),
                        )
                    }
                    Err(e) => return Err(e),
                }
            }
            (other, _) => (self.execute(other, b, &versioned).await?, None),
        };
        // Some builders write no digest (buildah 1.28's `manifest push
        // --digestfile` leaves it empty; a Jenkins job tells none): ask
        // the registry what was pushed.
        let digest = if digest.starts_with("sha256:") {
            digest
        } else {
            let head = match self.client.head_manifest(&versioned).await {
                Ok(h) => h,
                // A builder that succeeded without pushing (a Jenkins job
                // that ignored TARGET) is its failure, said as such.
                Err(freshen_registry::RegistryError::NotFound { .. }) => {
                    return Err(BuildError::Executor(format!(
                        "{}: the builder succeeded, but {versioned} is not in the registry{}",
                        b.image,
                        if [Some(b.executor), b.fallback].contains(&Some(Executor::Jenkins)) {
                            " (the Jenkins job must push its TARGET parameter)"
                        } else {
                            ""
                        }
                    )));
                }
                Err(e) => return Err(e.into()),
            };
            head.digest
                .ok_or_else(|| {
                    BuildError::Executor(format!(
                        "{}: pushed {versioned}, but neither the builder nor the registry tells its digest",
                        b.image
                    ))
                })?
        };
        let pinned = versioned.with_digest(&digest)?;
        let mut note = note;
        if let Some(gate) = &self.gate {
            let v = gate.check(b, &pinned).await?;
            if let Some(found) = v.note {
                note = Some(match note {
                    Some(n) => format!("{n}; {found}"),
                    None => found,
                });
            }
            if v.hold {
                return Ok((version, digest, note));
            }
        }
        let targets = b
            .promote
            .iter()
            .map(|t| {
                let tag = t.replace("{tag}", &own).replace("{version}", &version);
                b.reference.with_tag(&tag)
            })
            .collect::<Result<Vec<_>, _>>()?;
        crate::promote(&self.client, &pinned, &targets, |_, _| {})
            .await
            .map_err(|e| match e {
                // The item's detail says what the registry said, as before.
                crate::PromoteError::Copy { error, .. } => BuildError::Registry(error),
                crate::PromoteError::Pin(e) => BuildError::Reference(e),
                e @ crate::PromoteError::Diverged { .. } => BuildError::Executor(e.to_string()),
            })?;
        let dockerfile =
            std::fs::read_to_string(&b.dockerfile).map_err(|e| BuildError::Dockerfile {
                path: b.dockerfile.display().to_string(),
                message: e.to_string(),
            })?;
        let platforms = b
            .platforms
            .iter()
            .filter_map(|p| Platform::parse(p).ok())
            .collect();
        self.scanner
            .scan(
                &b.reference.with_digest(&digest)?,
                &ScanOptions {
                    platforms,
                    dockerfile: Some(DockerfileInput {
                        path: b.dockerfile.display().to_string(),
                        text: dockerfile,
                        build_args: b.args.clone(),
                        target: b.target.clone(),
                    }),
                },
            )
            .await
            .map_err(|e| {
                BuildError::Executor(format!(
                    "{}: pushed as {version}, but scanning it failed: {e}",
                    b.image
                ))
            })?;
        Ok((version, digest, note))
    }

    /// Builds `b` with a builder and pushes it as `versioned`; the digest.
    async fn execute(
        &self,
        executor: Executor,
        b: &Build,
        versioned: &Reference,
    ) -> Result<String, BuildError> {
        let (insecure, credentials) = self.hosts(b);
        let target = versioned.to_string();
        let to = PushTarget {
            reference: &target,
            insecure: &insecure,
            credentials: &credentials,
        };
        match executor {
            Executor::Buildah => self.builders.buildah.build_push(b, &to).await,
            Executor::Podman => {
                self.builders
                    .podman
                    .build_push_with(crate::ContainersTool::Podman, b, &to)
                    .await
            }
            Executor::Docker => self.builders.docker.build_push(b, &to).await,
            Executor::Kaniko => self.builders.kaniko.build_push(b, &to).await,
            Executor::Jenkins => {
                let jenkins = self.builders.jenkins.as_ref().ok_or_else(|| {
                    BuildError::Invalid(format!(
                        "{}: {} is built by Jenkins, and builders.jenkins is not configured",
                        b.image, b.origin
                    ))
                })?;
                let version = versioned.tag().unwrap_or_default();
                jenkins.build_push(b, version, &target).await
            }
            // `load` refuses a rebase falling back to a rebase.
            Executor::Rebase => Err(BuildError::Invalid(format!(
                "{}: a rebase is not a builder",
                b.image
            ))),
        }
    }

    /// Of the registries this build talks to (the target's and its
    /// bases'): those spoken to over plain HTTP (configured insecure, or
    /// loopback, as docker does), and the config's credentials for them.
    #[allow(clippy::type_complexity)]
    fn hosts(&self, b: &Build) -> (BTreeSet<String>, Vec<(String, String, String)>) {
        let hosts: BTreeSet<String> = std::iter::once(b.reference.registry().to_string())
            .chain(
                b.bases
                    .iter()
                    .filter_map(|r| Reference::parse(r).ok().map(|r| r.registry().to_string())),
            )
            .collect();
        let mut insecure = BTreeSet::new();
        let mut credentials = Vec::new();
        for h in hosts {
            let Ok(s) = self.client.settings(&h) else {
                continue;
            };
            if s.plain_http() {
                insecure.insert(h.clone());
            }
            if let (Some(u), Some(p)) = (&s.username, &s.password) {
                credentials.push((h, u.clone(), p.clone()));
            }
        }
        (insecure, credentials)
    }
}
