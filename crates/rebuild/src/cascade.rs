//! The plan a change event calls for, as `freshen rebuild --event` and the
//! watcher's own cascades (`on_change: [cascade]`) make it: one code path,
//! so a cascade rebuilds exactly what `freshen plan --event` shows.

use freshen_inventory::Queries;
use freshen_store::Store;

use crate::{Build, BuildError, Plan, Trigger};

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
    let quiet = e.decision.filter(|d| !d.act).map(|d| d.reason);
    let mut plan = crate::plan(
        builds,
        Trigger::Base {
            reference: e.reference.clone(),
        },
    )?;
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

/// Fills `plan.not_buildable` for a plan that starts from a base: images
/// the inventory knows are built on it that no build definition produces.
pub async fn mark_not_buildable(
    plan: &mut Plan,
    builds: &[Build],
    queries: &Queries,
) -> Result<(), BuildError> {
    let Trigger::Base { reference } = &plan.trigger else {
        return Ok(());
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
