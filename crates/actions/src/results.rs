//! The payloads of results the outbox carries besides events: a rebuild
//! run's end and a roll-out's end (`notify.rebuilds`, `notify.rollouts`).
//! Written with the run's final state (`Store::finish_rebuild_telling`),
//! they are delivered like any other payload.

use chrono::{DateTime, Utc};
use freshen_settings::message::{self, Markup, Part};
use freshen_store::{
    ItemState, Notice, RebuildItem, RebuildRun, RolloutItem, RolloutRecord, RolloutState, RunState,
};
use serde_json::{Value, json};

/// A payload's `text`: the built-in message, in plain text, for the
/// triggers that send the payload as it is (webhook, command).
fn with_text(mut payload: Value) -> Value {
    payload["text"] = json!(message::render(None, Part::Body, &payload, Markup::Plain).text);
    payload
}

/// What the triggers told of runs get when run `run` ends in `state` at
/// `at`, with its `items` as they ended. `reference` is the image whose
/// change the run cascades from (none for a run by hand). The `id` is
/// `<run id>:<state>`: the same on every retry of the delivery.
pub fn rebuild_result(
    run: &RebuildRun,
    items: &[RebuildItem],
    state: RunState,
    at: DateTime<Utc>,
    reference: Option<&str>,
) -> Value {
    let count = |s: ItemState| items.iter().filter(|i| i.state == s).count();
    with_text(json!({
        "kind": "rebuild",
        "id": format!("{}:{}", run.id, state.as_str()),
        "reference": reference,
        "run": {
            "id": run.id,
            "state": state.as_str(),
            "event_id": run.event_id,
            "trigger": run.trigger,
            "created_at": run.created_at,
            "finished_at": at,
        },
        "items": items.iter().map(|i| json!({
            "image": i.image, "wave": i.wave, "state": i.state.as_str(),
            "version": i.version, "digest": i.digest, "detail": i.detail,
        })).collect::<Vec<_>>(),
        "counts": {
            "total": items.len(),
            "done": count(ItemState::Done),
            "failed": count(ItemState::Failed),
            "skipped": count(ItemState::Skipped),
        },
    }))
}

/// What the triggers told of roll-outs get when `rollout` ends in
/// `state` at `at`, with its workloads `items`. `event_id` is the change
/// event behind it, when there is one. The `id` is `<roll-out id>:<state>`.
pub fn rollout_result(
    rollout: &RolloutRecord,
    items: &[RolloutItem],
    state: RunState,
    at: DateTime<Utc>,
    event_id: Option<&str>,
) -> Value {
    let count = |s: RolloutState| items.iter().filter(|i| i.state == s).count();
    with_text(json!({
        "kind": "rollout",
        "id": format!("{}:{}", rollout.id, state.as_str()),
        "event_id": event_id,
        "rollout": {
            "id": rollout.id,
            "state": state.as_str(),
            "run_id": rollout.run_id,
            "trigger": rollout.trigger,
            "created_at": rollout.created_at,
            "finished_at": at,
        },
        "items": items.iter().map(|i| json!({
            "workload": i.workload, "cluster": i.cluster, "kind": i.kind,
            "namespace": i.namespace, "name": i.name, "wave": i.wave,
            "state": i.state.as_str(), "detail": i.detail,
        })).collect::<Vec<_>>(),
        "counts": {
            "total": items.len(),
            "done": count(RolloutState::Done),
            "rolled_back": count(RolloutState::RolledBack),
            "failed": count(RolloutState::Failed),
            "skipped": count(RolloutState::Skipped),
        },
    }))
}

/// `payload` for each of `triggers`, unless `failures_only` and the run
/// did not fail.
pub fn notices(
    triggers: &[String],
    failures_only: bool,
    state: RunState,
    payload: &Value,
) -> Vec<Notice> {
    if failures_only && state != RunState::Failed {
        return Vec::new();
    }
    triggers
        .iter()
        .map(|t| Notice {
            trigger: t.clone(),
            payload: payload.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use freshen_settings::message::{Kind, VARIABLES, sample};

    fn run() -> RebuildRun {
        RebuildRun {
            id: "r1".into(),
            trigger: json!({"base": "localhost:5000/base:1"}),
            cause: json!({}),
            plan: json!({}),
            state: RunState::Running,
            created_at: Utc::now(),
            finished_at: None,
            event_id: Some("e1".into()),
        }
    }

    fn item(image: &str, state: ItemState) -> RebuildItem {
        RebuildItem {
            image: image.into(),
            wave: 0,
            state,
            version: (state == ItemState::Done).then(|| "2024.1.1".into()),
            digest: None,
            detail: (state == ItemState::Failed).then(|| "exit 1".into()),
            started_at: None,
            finished_at: None,
        }
    }

    /// The payloads have the shape the templates' samples (and the
    /// documented variables) describe.
    #[test]
    fn results_match_the_documented_shapes() {
        let p = rebuild_result(
            &run(),
            &[item("a:1", ItemState::Done), item("b:1", ItemState::Failed)],
            RunState::Failed,
            Utc::now(),
            Some("localhost:5000/base:1"),
        );
        assert_eq!(Kind::of(&p), Kind::Rebuild);
        let keys = |v: &Value| {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(keys(&p), keys(&sample(Kind::Rebuild)));
        assert_eq!(keys(&p["run"]), keys(&sample(Kind::Rebuild)["run"]));
        assert_eq!(
            keys(&p["items"][0]),
            keys(&sample(Kind::Rebuild)["items"][0])
        );
        assert_eq!(p["id"], "r1:failed");
        assert_eq!(
            p["counts"],
            json!({"total": 2, "done": 1, "failed": 1, "skipped": 0})
        );
        assert!(
            p["text"].as_str().unwrap().starts_with("Rebuild run r1 failed after a change of localhost:5000/base:1: 1 of 2 image(s) rebuilt, 1 failed."),
            "{p}"
        );
        let record = RolloutRecord {
            id: "o1".into(),
            trigger: json!({"run": "r1"}),
            run_id: Some("r1".into()),
            state: RunState::Running,
            created_at: Utc::now(),
            finished_at: None,
        };
        let p = rollout_result(&record, &[], RunState::Done, Utc::now(), Some("e1"));
        assert_eq!(keys(&p), keys(&sample(Kind::Rollout)));
        assert_eq!(keys(&p["rollout"]), keys(&sample(Kind::Rollout)["rollout"]));
        assert_eq!(p["text"], "Roll-out o1 done: 0 workload(s), 0 done.");
        // Every top-level key of every kind is a documented variable,
        // a stored change event's too.
        let event = freshen_store::ChangeEvent {
            id: "e1".into(),
            reference: "localhost:5000/base:1".into(),
            old_digest: None,
            new_digest: "sha256:1".into(),
            changes: Vec::new(),
            source: "vulnerability".into(),
            observed_at: Utc::now(),
            decision: Some(freshen_store::EventDecision {
                act: true,
                reason: "r".into(),
            }),
            vulnerability: Some(freshen_store::VulnerabilityCause {
                policy: "p".into(),
                policy_version: "v".into(),
                snapshot: json!({}),
                platform: "linux/amd64".into(),
                findings: json!([]),
            }),
        };
        let event = serde_json::to_value(&event).unwrap();
        assert_eq!(keys(&event), keys(&sample(Kind::Vulnerability)));
        assert_eq!(
            keys(&event["vulnerability"]),
            keys(&sample(Kind::Vulnerability)["vulnerability"])
        );
        for k in Kind::ALL {
            for key in keys(&sample(k)) {
                assert!(VARIABLES.iter().any(|(v, _)| *v == key), "{key}");
            }
        }
        assert!(notices(&["chat".into()], true, RunState::Done, &p).is_empty());
        assert_eq!(
            notices(&["chat".into()], false, RunState::Done, &p).len(),
            1
        );
    }
}
