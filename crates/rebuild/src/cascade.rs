//! The plan a change event calls for, and the cascades that carry it out.
//!
//! `freshen plan --event`, `freshen rebuild --event` and the watcher's own
//! cascades (`on_change: [cascade]`) all plan with [`plan_cascade`]: one
//! code path, so a cascade rebuilds exactly what `freshen plan --event`
//! shows.
//!
//! A cascade's delivery is the durable part: it was written with the
//! event, in one transaction, and the run is stored with the event's id. A
//! cascade taken again (after a crash, or a failed image) resumes that run,
//! so finished images are not rebuilt.

use std::sync::Arc;

use freshen_inventory::Queries;
use freshen_store::{ItemState, RunState, Store};

use crate::{Build, BuildError, Plan, Progress, RunReport, Runner, Trigger};

/// A plan made for a change event, with what to store as the run's cause.
#[derive(Clone, Debug)]
pub struct EventPlan {
    /// The tag that moved (normalised): what the plan starts from.
    pub base: String,
    /// What to rebuild; empty when the policy kept the change quiet.
    pub plan: Plan,
    /// The event, its policy decision and the per-image decisions (stored
    /// with a run as its cause).
    pub cause: serde_json::Value,
    /// Why the policy said not to act, when it did.
    pub quiet: Option<String>,
}

/// The plan for the change event `event_id`: what is built on the tag that
/// moved, or nothing when the event's policy decision said not to act.
pub async fn plan_event(
    store: &Store,
    builds: &[Build],
    event_id: &str,
) -> Result<EventPlan, BuildError> {
    let e = store.event(event_id).await?.ok_or_else(|| {
        BuildError::Invalid(format!(
            "no change event {event_id:?} (see `freshen events`)"
        ))
    })?;
    let decisions = store.decisions(None, Some(&e.id), 1000).await?;
    let cause = serde_json::json!({
        "event": e.id,
        "decision": e.decision,
        "decisions": decisions
            .into_iter()
            .map(|d| serde_json::json!({"id": d.id, "subject": d.subject, "act": d.act, "snapshot": d.snapshot, "policy_version": d.policy_version}))
            .collect::<Vec<_>>(),
    });
    let mut quiet = e.decision.clone().filter(|d| !d.act).map(|d| d.reason);
    let trigger = match &e.vulnerability {
        // New data made this image vulnerable: rebuild it (and what is
        // built on it), not what is built on it alone.
        Some(v) => {
            let mut ids: Vec<&str> = v
                .findings
                .as_array()
                .map(|fs| fs.iter().filter_map(|f| f["id"].as_str()).collect())
                .unwrap_or_default();
            ids.dedup();
            if let Some(base) = vulnerable_ancestor(store, builds, &e.reference).await? {
                quiet = Some(format!(
                    "its base {base} is vulnerable too and its own cascade rebuilds it, then this image"
                ));
            }
            Trigger::Vulnerable {
                images: [(
                    e.reference.clone(),
                    format!("{} ({})", ids.join(", "), v.platform),
                )]
                .into(),
            }
        }
        None => Trigger::Base {
            reference: e.reference.clone(),
        },
    };
    let mut plan = crate::plan(builds, trigger)?;
    if quiet.is_some() {
        // The policy judged this change and said not to act.
        plan.waves.clear();
    }
    Ok(EventPlan {
        base: e.reference,
        plan,
        cause,
        quiet,
    })
}

/// A base of `image`, among the builds (transitively), that is itself
/// vulnerable now: its cascade rebuilds `image` too, after it.
async fn vulnerable_ancestor(
    store: &Store,
    builds: &[Build],
    image: &str,
) -> Result<Option<String>, BuildError> {
    let vulnerable: std::collections::BTreeSet<String> =
        store.vulnerable_subjects().await?.into_iter().collect();
    let by_image: std::collections::BTreeMap<&str, &Build> =
        builds.iter().map(|b| (b.image.as_str(), b)).collect();
    let mut seen = std::collections::BTreeSet::new();
    let mut todo: Vec<&str> = by_image
        .get(image)
        .map(|b| b.bases.iter().map(String::as_str).collect())
        .unwrap_or_default();
    while let Some(base) = todo.pop() {
        if !seen.insert(base) {
            continue;
        }
        if let Some(b) = by_image.get(base) {
            if vulnerable.contains(base) {
                return Ok(Some(base.to_string()));
            }
            todo.extend(b.bases.iter().map(String::as_str));
        }
    }
    Ok(None)
}

/// Fills `plan.not_buildable` for a plan that starts from a base: images
/// the inventory knows are built on it that no build definition produces.
pub async fn mark_not_buildable(
    plan: &mut Plan,
    builds: &[Build],
    queries: &Queries,
) -> Result<(), BuildError> {
    let reference = match &plan.trigger {
        Trigger::Base { reference } => reference,
        // A vulnerable image no definition builds can't be rebuilt here.
        Trigger::Vulnerable { images } => {
            let buildable: std::collections::BTreeSet<&str> =
                builds.iter().map(|b| b.image.as_str()).collect();
            plan.not_buildable = images
                .keys()
                .filter(|r| !buildable.contains(r.as_str()))
                .cloned()
                .collect();
            return Ok(());
        }
        _ => return Ok(()),
    };
    let known = queries.built_on(&queries.parse(reference)?, &[]).await?;
    let buildable: std::collections::BTreeSet<&str> =
        builds.iter().map(|b| b.image.as_str()).collect();
    let mut missing: Vec<String> = known
        .into_iter()
        .filter(|c| !c.references.iter().any(|r| buildable.contains(r.as_str())))
        .map(|c| c.references.first().cloned().unwrap_or(c.digest))
        .collect();
    missing.sort();
    missing.dedup();
    plan.not_buildable = missing;
    Ok(())
}

/// The plan for the change event `event_id`, as every caller makes it:
/// [`plan_event`], then [`mark_not_buildable`]. Whether to run it (a quiet
/// or an empty plan) is the caller's to say.
pub async fn plan_cascade(
    store: &Store,
    builds: &[Build],
    queries: &Queries,
    event_id: &str,
) -> Result<EventPlan, BuildError> {
    let mut p = plan_event(store, builds, event_id).await?;
    mark_not_buildable(&mut p.plan, builds, queries).await?;
    Ok(p)
}

/// Why a cascade did not complete. Each is retried with the outbox's
/// backoff; a retry resumes the event's run.
#[derive(Debug, thiserror::Error)]
pub enum CascadeError {
    /// Planning or carrying out the run failed outright (the store, the
    /// build definitions).
    #[error("cascade of event {event}: {source}")]
    Build {
        /// The change event.
        event: String,
        /// What failed.
        source: BuildError,
    },
    /// The run ended with images failed (or skipped because a base failed).
    #[error(
        "cascade of event {event}: rebuild run {run}: {failed} of {images} image(s) not rebuilt (first: {first}); a retry resumes the run (`freshen rebuilds {run}`)"
    )]
    Failed {
        /// The change event.
        event: String,
        /// The rebuild run.
        run: String,
        /// Images in the run.
        images: usize,
        /// Images failed or skipped.
        failed: usize,
        /// The first failed image and why.
        first: String,
    },
}

/// How a cascade completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CascadeDone {
    /// Every image was rebuilt (the run may have resumed an earlier attempt).
    Rebuilt {
        /// The rebuild run.
        run: String,
        /// Images in the run.
        images: usize,
    },
    /// No build is built on the base: nothing to do.
    Empty {
        /// The base that moved.
        base: String,
    },
    /// The event's policy decision said not to act. `record` enqueues no
    /// cascade then, but a replayed event (`Store::enqueue`) may carry one.
    Quiet {
        /// The policy's reason.
        reason: String,
    },
}

impl std::fmt::Display for CascadeDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CascadeDone::Rebuilt { run, images } => {
                write!(f, "rebuild run {run}: {images} image(s) rebuilt")
            }
            CascadeDone::Empty { base } => {
                write!(f, "nothing to rebuild: no build is built on {base}")
            }
            CascadeDone::Quiet { reason } => {
                write!(
                    f,
                    "nothing to rebuild: the policy kept this change quiet: {reason}"
                )
            }
        }
    }
}

/// Runs the cascades of change events (the outbox's reserved `cascade`
/// target: the application hands it to the outbox).
pub struct Cascader {
    store: Store,
    runner: Runner,
    queries: Queries,
    builds: Vec<Build>,
}

impl Cascader {
    /// A cascader over these build definitions. The runner's progress is
    /// logged (target `freshen_rebuild::cascade`).
    pub fn new(store: Store, runner: Runner, queries: Queries, builds: Vec<Build>) -> Cascader {
        Cascader {
            store,
            runner: runner.on_progress(Arc::new(log_progress)),
            queries,
            builds,
        }
    }

    /// Carries out the cascade of `event_id`: resumes its run if one was
    /// started, else plans it and starts one.
    pub async fn run(&self, event_id: &str) -> Result<CascadeDone, CascadeError> {
        let build = |source| CascadeError::Build {
            event: event_id.to_string(),
            source,
        };
        let run = match self
            .store
            .rebuild_for_event(event_id)
            .await
            .map_err(|e| build(e.into()))?
        {
            Some(run) if run.state == RunState::Done => {
                // Done, but the delivery wasn't acknowledged (the process
                // died in between): nothing left to build.
                let items = self
                    .store
                    .rebuild_items(&run.id)
                    .await
                    .map_err(|e| build(e.into()))?;
                return finished(event_id, RunReport { run, items });
            }
            Some(run) => {
                tracing::info!(run = %run.id, event = event_id, state = %run.state, "cascade resumes its run");
                run
            }
            None => {
                let p = plan_cascade(&self.store, &self.builds, &self.queries, event_id)
                    .await
                    .map_err(build)?;
                if let Some(reason) = p.quiet {
                    tracing::info!(event = event_id, %reason, "cascade: the policy kept this change quiet; nothing to rebuild");
                    return Ok(CascadeDone::Quiet { reason });
                }
                let base = p.base;
                if p.plan.is_empty() {
                    tracing::info!(event = event_id, %base, "cascade: no build is built on this base; nothing to rebuild");
                    return Ok(CascadeDone::Empty { base });
                }
                let plan = p.plan;
                // Keyed by the event: at most one run per event, resumed
                // when the delivery is taken again.
                let run = self
                    .runner
                    .create(&plan, p.cause, Some(event_id))
                    .await
                    .map_err(build)?;
                tracing::info!(run = %run.id, event = event_id, %base, images = plan.len(), waves = plan.waves.len(), not_buildable = %plan.not_buildable.join(", "), "cascade starts");
                run
            }
        };
        let report = self
            .runner
            .resume(&run.id, &self.builds)
            .await
            .map_err(build)?;
        finished(event_id, report)
    }
}

/// The outcome of a finished run, logged.
fn finished(event_id: &str, report: RunReport) -> Result<CascadeDone, CascadeError> {
    let images = report.items.len();
    let bad: Vec<_> = report
        .items
        .iter()
        .filter(|i| i.state != ItemState::Done)
        .collect();
    tracing::info!(run = %report.run.id, event = event_id, state = %report.run.state, images, failed = bad.len(), "cascade ends");
    if bad.is_empty() {
        return Ok(CascadeDone::Rebuilt {
            run: report.run.id,
            images,
        });
    }
    Err(CascadeError::Failed {
        event: event_id.to_string(),
        run: report.run.id.clone(),
        images,
        failed: bad.len(),
        first: format!(
            "{}: {}",
            bad[0].image,
            bad[0].detail.as_deref().unwrap_or(bad[0].state.as_str())
        ),
    })
}

fn log_progress(p: Progress) {
    match p {
        Progress::Wave { index, images } => {
            tracing::info!(wave = index + 1, images, "cascade wave")
        }
        Progress::Started { image, version } => {
            tracing::info!(%image, %version, "cascade builds")
        }
        Progress::Finished { item } => {
            tracing::info!(image = %item.image, state = %item.state, version = item.version.as_deref().map(tracing::field::display), detail = item.detail.as_deref().map(tracing::field::display), "cascade built")
        }
    }
}
