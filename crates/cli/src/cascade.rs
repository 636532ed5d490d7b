//! `freshen plan` and `freshen rebuild`: build definitions loaded, the plan
//! a change calls for, and (for `rebuild`) its run.

use anyhow::{Context as _, Result};
use freshen_rebuild::{Build, Plan, Trigger};
use freshen_config::Loaded;
use freshen_inventory::Queries;
use freshen_store::Store;

use crate::parse_ref;

/// The config's build definitions (`builds:` and `discover:`).
fn load_builds(loaded: &Loaded) -> Result<Vec<Build>> {
    Ok(freshen_rebuild::load(
        &loaded.config.builds,
        &loaded.config.discover,
        &loaded.base_dir,
        &loaded.defaults,
        &loaded.default_platforms,
    )?)
}

/// The runner of the watcher's own cascades, when a watch asks for them
/// (`on_change: [cascade]`); `None` otherwise, so a config without
/// cascades never reads its build definitions here.
pub fn cascader(
    loaded: &Loaded,
    store: &Store,
    client: freshen_registry::Client,
) -> Result<Option<std::sync::Arc<freshen_watch::Cascader>>> {
    let cascade = |t: &String| t == freshen_actions::CASCADE;
    let wanted = loaded
        .watches
        .iter()
        .any(|w| w.triggers.iter().any(cascade))
        || loaded
            .config
            .receivers
            .values()
            .any(|r| r.on_change.iter().any(cascade));
    if !wanted {
        return Ok(None);
    }
    let builds = load_builds(loaded).context("a watch or receiver has `on_change: [cascade]`")?;
    let scanner =
        freshen_inventory::Scanner::new(client.clone(), store.clone(), loaded.defaults.clone());
    let runner = freshen_rebuild::Runner::new(
        client,
        store.clone(),
        scanner,
        loaded.config.builders.clone(),
        loaded.config.cascade.parallel,
    );
    Ok(Some(std::sync::Arc::new(freshen_watch::Cascader::new(
        store.clone(),
        runner,
        Queries::new(store.clone(), loaded.defaults.clone()),
        builds,
    ))))
}

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
    let builds = load_builds(loaded)?;
    let (mut plan, cause) = match (base, image, event) {
        (Some(b), _, _) => (
            freshen_rebuild::plan(
                &builds,
                Trigger::Base {
                    reference: parse_ref(loaded, &b)?.to_string(),
                },
            )?,
            serde_json::json!({}),
        ),
        (_, Some(i), _) => (
            freshen_rebuild::plan(
                &builds,
                Trigger::Image {
                    reference: parse_ref(loaded, &i)?.to_string(),
                },
            )?,
            serde_json::json!({}),
        ),
        (_, _, Some(id)) => {
            let p = freshen_rebuild::plan_event(store, &builds, &id).await?;
            if let Some(reason) = &p.quiet {
                eprintln!("the policy kept this change quiet: {reason}");
            }
            (p.plan, p.cause)
        }
        _ => (
            freshen_rebuild::plan(&builds, Trigger::All)?,
            serde_json::json!({}),
        ),
    };
    let q = Queries::new(store.clone(), loaded.defaults.clone());
    freshen_rebuild::mark_not_buildable(&mut plan, &builds, &q).await?;
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
) -> Result<freshen_rebuild::RunReport> {
    let scanner =
        freshen_inventory::Scanner::new(client.clone(), store.clone(), loaded.defaults.clone());
    let runner = freshen_rebuild::Runner::new(
        client,
        store.clone(),
        scanner,
        loaded.config.builders.clone(),
        args.parallel,
    )
    .on_progress(std::sync::Arc::new(crate::output::rebuild_progress));
    if let Some(id) = args.resume {
        let builds = load_builds(loaded)?;
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
    Ok(runner.start(&plan, &builds, cause, None).await?)
}
