//! Rebuild runs keyed by the change event of a watcher's cascade, and the
//! outbox calls a cascade relies on: claims that leave a trigger queued,
//! and lease renewal.

use std::time::Duration;

use freshen_store::{Notice, RebuildRun, RolloutRecord, RunState, StoreError, TriggerFilter};

use crate::common::{Ctx, both, make_event, t};

const REF: &str = "docker.io/library/alpine:3";
const LEASE: Duration = Duration::from_secs(30);

both!(
    one_run_per_event,
    claims_leave_a_trigger_queued,
    renewing_keeps_a_lease,
    results_are_told_once_per_state
);

fn run(id: &str, event_id: Option<&str>) -> RebuildRun {
    RebuildRun {
        id: id.into(),
        trigger: serde_json::json!({"kind": "base", "reference": REF}),
        cause: serde_json::json!({}),
        plan: serde_json::json!({"waves": []}),
        state: RunState::Running,
        created_at: t(0),
        finished_at: None,
        event_id: event_id.map(str::to_string),
    }
}

async fn one_run_per_event(ctx: Ctx) {
    let s = &ctx.store;
    let e = make_event(s, REF, 0, &["cascade"]).await;
    // Runs by hand carry no event, as many as wanted.
    s.create_rebuild(&run("m1", None), &[]).await.unwrap();
    s.create_rebuild(&run("m2", None), &[]).await.unwrap();
    assert_eq!(s.rebuild_for_event(&e).await.unwrap(), None);
    s.create_rebuild(&run("c1", Some(&e)), &[("a:1".into(), 0)])
        .await
        .unwrap();
    let got = s.rebuild_for_event(&e).await.unwrap().unwrap();
    assert_eq!(
        (got.id.as_str(), got.event_id.as_deref()),
        ("c1", Some(e.as_str()))
    );
    assert_eq!(s.rebuild("m1").await.unwrap().unwrap().event_id, None);
    // A second run for the same event is refused.
    let dup = s.create_rebuild(&run("c2", Some(&e)), &[]).await;
    assert!(matches!(dup, Err(StoreError::Query { .. })), "{dup:?}");
    // A failed run reopened is running again, unfinished.
    s.finish_rebuild("c1", RunState::Failed, t(5))
        .await
        .unwrap();
    s.reopen_rebuild("c1").await.unwrap();
    let r = s.rebuild("c1").await.unwrap().unwrap();
    assert_eq!((r.state.as_str(), r.finished_at), ("running", None));
}

async fn claims_leave_a_trigger_queued(ctx: Ctx) {
    let s = &ctx.store;
    make_event(s, REF, 0, &["cascade", "hook"]).await;
    let due = |f| async move { s.next_delivery_due_filtered(f).await.unwrap() };
    assert_eq!(due(TriggerFilter::Only("cascade")).await, Some(t(0)));
    assert_eq!(due(TriggerFilter::Except("cascade")).await, Some(t(0)));
    // The cascades' dispatcher takes the cascade alone...
    let got = s
        .claim_deliveries_filtered("c", t(0), LEASE, 10, TriggerFilter::Only("cascade"))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].trigger, "cascade");
    assert_eq!(
        due(TriggerFilter::Only("cascade")).await,
        Some(t(30)),
        "leased"
    );
    // ...and the senders' the rest.
    let got = s
        .claim_deliveries_filtered("a", t(0), LEASE, 10, TriggerFilter::Except("cascade"))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].trigger, "hook");
    assert!(
        s.delivery_succeeded(got[0].id, "a", t(1), None)
            .await
            .unwrap()
    );
    assert_eq!(due(TriggerFilter::Except("cascade")).await, None);
    assert_eq!(due(TriggerFilter::All).await, Some(t(30)));
}

async fn renewing_keeps_a_lease(ctx: Ctx) {
    let s = &ctx.store;
    make_event(s, REF, 0, &["cascade"]).await;
    let a = s.claim_deliveries("a", t(0), LEASE, 10).await.unwrap();
    assert_eq!(a.len(), 1);
    // Renewed at 20 s, the lease runs to 50 s: nobody takes it at 40 s.
    assert!(s.renew_delivery(a[0].id, "a", t(20), LEASE).await.unwrap());
    assert!(
        s.claim_deliveries("b", t(40), LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.next_delivery_due().await.unwrap(), Some(t(50)));
    // Past it, another takes it over, and the old owner can't renew.
    let b = s.claim_deliveries("b", t(50), LEASE, 10).await.unwrap();
    assert_eq!(b.len(), 1);
    assert!(!s.renew_delivery(a[0].id, "a", t(51), LEASE).await.unwrap());
}

/// A run's end is queued to the told triggers with the final state, about
/// the run (no change event: a run by hand has none), once per state and
/// trigger: ending failed again (a retried cascade) tells nothing new, a
/// later success does. A roll-out's the same.
async fn results_are_told_once_per_state(ctx: Ctx) {
    let s = &ctx.store;
    s.create_rebuild(&run("m1", None), &[("a:1".into(), 0)])
        .await
        .unwrap();
    let notice = |trigger: &str, state: &str| Notice {
        trigger: trigger.into(),
        payload: serde_json::json!({"kind": "rebuild", "id": format!("m1:{state}")}),
    };
    let told = [notice("chat", "failed"), notice("mail", "failed")];
    s.finish_rebuild_telling("m1", RunState::Failed, t(5), &told)
        .await
        .unwrap();
    assert_eq!(
        s.rebuild("m1").await.unwrap().unwrap().state,
        RunState::Failed
    );
    let queued = s.event_deliveries("m1").await.unwrap();
    assert_eq!(queued.len(), 2, "{queued:?}");
    assert_eq!(
        (queued[0].trigger.as_str(), queued[0].next_attempt_at),
        ("chat", t(5))
    );
    assert_eq!(queued[0].payload["id"], "m1:failed");
    s.reopen_rebuild("m1").await.unwrap();
    s.finish_rebuild_telling("m1", RunState::Failed, t(9), &told)
        .await
        .unwrap();
    assert_eq!(
        s.event_deliveries("m1").await.unwrap().len(),
        2,
        "failed again: nothing new"
    );
    s.reopen_rebuild("m1").await.unwrap();
    s.finish_rebuild_telling("m1", RunState::Done, t(12), &[notice("chat", "done")])
        .await
        .unwrap();
    let queued = s.event_deliveries("m1").await.unwrap();
    assert_eq!(queued.len(), 3);
    assert_eq!(queued[2].payload["id"], "m1:done");
    // The outbox takes them like any other delivery.
    let got = s.claim_deliveries("x", t(20), LEASE, 10).await.unwrap();
    assert_eq!(got.len(), 3);

    let rollout = RolloutRecord {
        id: "r1".into(),
        trigger: serde_json::json!({"run": "m1"}),
        run_id: Some("m1".into()),
        state: RunState::Running,
        created_at: t(13),
        finished_at: None,
    };
    assert!(s.create_rollout(&rollout, &[], "me", LEASE).await.unwrap());
    let told = [Notice {
        trigger: "chat".into(),
        payload: serde_json::json!({"kind": "rollout"}),
    }];
    for _ in 0..2 {
        s.finish_rollout_telling("r1", RunState::Done, t(14), &told)
            .await
            .unwrap();
    }
    assert_eq!(s.event_deliveries("r1").await.unwrap().len(), 1);
    assert_eq!(
        s.rollout("r1").await.unwrap().unwrap().state,
        RunState::Done
    );
}
