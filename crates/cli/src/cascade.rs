//! `freshen plan` and `freshen rebuild`: build definitions loaded, the plan
//! a change calls for, and (for `rebuild`) its run.

use anyhow::{Context as _, Result};
use freshen_build::{Build, Plan, Trigger};
use freshen_config::Loaded;
use freshen_inventory::Queries;
use freshen_store::Store;

use crate::parse_ref;

/// Loads the build definitions and plans what the options ask for: a base
/// that changed, an image to rebuild, a change event, or every build.
/// Returns the plan, the builds, and the cause (event and policy decision)
/// to store with a run.
pub async fn plan(
    loaded: &Loaded,
    store: &Store,
    base: Option<String>,
    image: Option<String>,
    event: Option<String>,
) -> Result<(Plan, Vec<Build>, serde_json::Value)> {
    let builds = freshen_build::load(
        &loaded.config.builds,
        &loaded.config.discover,
        &loaded.base_dir,
        &loaded.defaults,
        &loaded.default_platforms,
    )?;
    let mut quiet = None;
    let mut cause = serde_json::json!({});
    let trigger = match (base, image, event) {
        (Some(b), _, _) => Trigger::Base {
            reference: parse_ref(loaded, &b)?.to_string(),
        },
        (_, Some(i), _) => Trigger::Image {
            reference: parse_ref(loaded, &i)?.to_string(),
        },
        (_, _, Some(id)) => {
            let e = store
                .event(&id)
                .await?
                .with_context(|| format!("no change event {id:?} (see `freshen events`)"))?;
            cause = serde_json::json!({
                "event": e.id,
                "decision": e.decision,
                "decisions": store.decisions(None, Some(&e.id), 1000).await?
                    .into_iter()
                    .map(|d| serde_json::json!({"id": d.id, "subject": d.subject, "act": d.act, "snapshot": d.snapshot, "policy_version": d.policy_version}))
                    .collect::<Vec<_>>(),
            });
            quiet = e.decision.filter(|d| !d.act).map(|d| d.reason);
            Trigger::Base {
                reference: e.reference,
            }
        }
        _ => Trigger::All,
    };
    let mut plan = freshen_build::plan(&builds, trigger)?;
    if let Some(reason) = &quiet {
        // The policy judged this change and said not to act.
        plan.waves.clear();
        eprintln!("the policy kept this change quiet: {reason}");
    }
    if let Trigger::Base { reference } = &plan.trigger {
        let q = Queries::new(store.clone(), loaded.defaults.clone());
        let known = q.built_on(&parse_ref(loaded, reference)?, &[]).await?;
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
    }
    Ok((plan, builds, cause))
}

/// What `freshen rebuild` was asked.
pub struct RebuildArgs {
    pub base: Option<String>,
    pub image: Option<String>,
    pub event: Option<String>,
    pub all: bool,
    pub resume: Option<String>,
    pub parallel: usize,
}

/// Plans and runs a rebuild, or resumes one.
pub async fn rebuild(
    loaded: &Loaded,
    store: &Store,
    args: RebuildArgs,
    client: freshen_registry::Client,
) -> Result<freshen_build::RunReport> {
    let scanner =
        freshen_inventory::Scanner::new(client.clone(), store.clone(), loaded.defaults.clone());
    let runner = freshen_build::Runner::new(
        client,
        store.clone(),
        scanner,
        loaded.config.builders.clone(),
        args.parallel,
    )
    .on_progress(std::sync::Arc::new(crate::output::rebuild_progress));
    if let Some(id) = args.resume {
        let builds = freshen_build::load(
            &loaded.config.builds,
            &loaded.config.discover,
            &loaded.base_dir,
            &loaded.defaults,
            &loaded.default_platforms,
        )?;
        let id = if id.is_empty() {
            store
                .rebuilds(true, 1)
                .await?
                .into_iter()
                .next()
                .map(|r| r.id)
                .context("no unfinished rebuild run to resume (see `freshen rebuilds`)")?
        } else {
            id
        };
        return Ok(runner.resume(&id, &builds).await?);
    }
    if args.base.is_none() && args.image.is_none() && args.event.is_none() && !args.all {
        anyhow::bail!(
            "say what to rebuild: --base REF, --image REF, --event ID, --all, or --resume (`freshen plan` shows it first)"
        );
    }
    let (plan, builds, cause) = plan(loaded, store, args.base, args.image, args.event).await?;
    if plan.is_empty() {
        eprintln!("nothing to rebuild");
    }
    Ok(runner.start(&plan, &builds, cause).await?)
}
