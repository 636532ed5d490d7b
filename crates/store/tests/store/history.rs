//! Digest history, change detection and events.

use freshen_store::{
    Decision, DeliveryState, EventDecision, Judgement, PlatformChange, PlatformDigest, Status,
    StoreError,
};

use crate::common::{Ctx, Db, both, obs, t};

const REF: &str = "docker.io/library/debian:bookworm";

both!(
    baseline_then_unchanged,
    a_b_a_keeps_three_runs,
    top_change_alone_is_history_only,
    event_and_outbox_rows,
    event_and_outbox_roll_back_together,
    concurrent_records_make_one_event,
    invalid_observations_are_refused,
    judged_changes_fire_or_record_why,
    pushed_first_sights_and_deliveries_with_the_event,
);

async fn baseline_then_unchanged(ctx: Ctx) {
    let s = &ctx.store;
    assert!(s.current(REF).await.unwrap().is_empty());

    let platforms = [
        ("linux/amd64", "sha256:a1"),
        ("linux/arm64/v8", "sha256:b1"),
    ];
    let first = s
        .record(&obs(REF, 0, "sha256:i1", &platforms, &["jenkins"]))
        .await
        .unwrap();
    assert_eq!(first.top, Status::New);
    assert_eq!(
        first.platforms,
        vec![
            ("linux/amd64".to_string(), Status::New),
            ("linux/arm64/v8".to_string(), Status::New)
        ]
    );
    assert!(first.event.is_none(), "first sight is a baseline");

    let again = s
        .record(&obs(REF, 60, "sha256:i1", &platforms, &["jenkins"]))
        .await
        .unwrap();
    assert_eq!(again.top, Status::Unchanged);
    assert!(
        again
            .platforms
            .iter()
            .all(|(_, st)| *st == Status::Unchanged)
    );
    assert!(again.event.is_none());

    let pd = |p: &str, d: &str| PlatformDigest {
        platform: p.into(),
        digest: d.into(),
    };
    let current = vec![
        pd("", "sha256:i1"),
        pd("linux/amd64", "sha256:a1"),
        pd("linux/arm64/v8", "sha256:b1"),
    ];
    assert_eq!(s.current(REF).await.unwrap(), current);

    s.record(&obs("ghcr.io/o/x:1", 0, "sha256:x", &[], &[]))
        .await
        .unwrap();
    let all = s.current_all().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[REF], current);
    assert_eq!(all["ghcr.io/o/x:1"], vec![pd("", "sha256:x")]);

    let history = s.history(REF).await.unwrap();
    assert_eq!(history.len(), 3, "one run per platform");
    for h in &history {
        assert_eq!((h.first_seen, h.last_seen), (t(0), t(60)), "{h:?}");
    }
    assert!(s.events(None, 10).await.unwrap().is_empty());
    assert!(s.deliveries(None, 10).await.unwrap().is_empty());
}

async fn a_b_a_keeps_three_runs(ctx: Ctx) {
    let s = &ctx.store;
    let amd = |d: &'static str| [("linux/amd64", d)];
    let r1 = s
        .record(&obs(REF, 0, "sha256:iA", &amd("sha256:A"), &[]))
        .await
        .unwrap();
    s.record(&obs(REF, 10, "sha256:iA", &amd("sha256:A"), &[]))
        .await
        .unwrap();
    let r2 = s
        .record(&obs(REF, 20, "sha256:iB", &amd("sha256:B"), &[]))
        .await
        .unwrap();
    let r3 = s
        .record(&obs(REF, 30, "sha256:iA", &amd("sha256:A"), &[]))
        .await
        .unwrap();
    s.record(&obs(REF, 40, "sha256:iA", &amd("sha256:A"), &[]))
        .await
        .unwrap();

    assert_eq!(r1.platforms[0].1, Status::New);
    assert_eq!(
        r2.top,
        Status::Changed {
            old: "sha256:iA".into()
        }
    );
    assert_eq!(
        r2.platforms[0].1,
        Status::Changed {
            old: "sha256:A".into()
        }
    );
    assert_eq!(
        r3.platforms[0].1,
        Status::Changed {
            old: "sha256:B".into()
        }
    );

    let runs: Vec<_> = s
        .history(REF)
        .await
        .unwrap()
        .into_iter()
        .filter(|h| h.platform == "linux/amd64")
        .map(|h| (h.digest, h.first_seen, h.last_seen))
        .collect();
    assert_eq!(
        runs,
        vec![
            ("sha256:A".to_string(), t(0), t(10)),
            ("sha256:B".to_string(), t(20), t(20)),
            ("sha256:A".to_string(), t(30), t(40)),
        ]
    );

    let events = s.events(Some(REF), 10).await.unwrap();
    assert_eq!(events.len(), 2);
    // Newest first.
    assert_eq!(events[0].id, r3.event.as_ref().unwrap().id);
    assert_eq!(events[1].id, r2.event.as_ref().unwrap().id);
    assert_eq!(events[0].old_digest.as_deref(), Some("sha256:iB"));
    assert_eq!(events[0].new_digest, "sha256:iA");
    assert_eq!(s.events(Some(REF), 1).await.unwrap().len(), 1);
    assert!(
        s.events(Some("docker.io/library/other:1"), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn top_change_alone_is_history_only(ctx: Ctx) {
    let s = &ctx.store;
    let amd = [("linux/amd64", "sha256:a1")];
    s.record(&obs(REF, 0, "sha256:i1", &amd, &["jenkins"]))
        .await
        .unwrap();

    // Another architecture moved: the index changes, our platform does not.
    let r = s
        .record(&obs(REF, 10, "sha256:i2", &amd, &["jenkins"]))
        .await
        .unwrap();
    assert_eq!(
        r.top,
        Status::Changed {
            old: "sha256:i1".into()
        }
    );
    assert_eq!(
        r.platforms,
        vec![("linux/amd64".to_string(), Status::Unchanged)]
    );
    assert!(r.event.is_none());

    // A newly watched platform is a baseline too, even alongside a top change.
    let r = s
        .record(&obs(
            REF,
            20,
            "sha256:i3",
            &[("linux/amd64", "sha256:a1"), ("linux/s390x", "sha256:z1")],
            &["jenkins"],
        ))
        .await
        .unwrap();
    assert_eq!(r.platforms[1], ("linux/s390x".to_string(), Status::New));
    assert!(r.event.is_none());

    let tops: Vec<_> = s
        .history(REF)
        .await
        .unwrap()
        .into_iter()
        .filter(|h| h.platform.is_empty())
        .map(|h| h.digest)
        .collect();
    assert_eq!(tops, ["sha256:i1", "sha256:i2", "sha256:i3"]);
    assert!(s.events(None, 10).await.unwrap().is_empty());
    assert!(s.deliveries(None, 10).await.unwrap().is_empty());
    assert_eq!(s.next_delivery_due().await.unwrap(), None);
}

async fn event_and_outbox_rows(ctx: Ctx) {
    let s = &ctx.store;
    let before = [
        ("linux/amd64", "sha256:a1"),
        ("linux/arm64/v8", "sha256:b1"),
    ];
    s.record(&obs(REF, 0, "sha256:i1", &before, &[]))
        .await
        .unwrap();

    let after = [
        ("linux/amd64", "sha256:a2"),
        ("linux/arm64/v8", "sha256:b1"),
    ];
    let mut o = obs(
        REF,
        100,
        "sha256:i2",
        &after,
        &["jenkins", "hook", "jenkins"],
    );
    o.source = "webhook:registry".into();
    let r = s.record(&o).await.unwrap();

    let event = r.event.expect("amd64 moved");
    assert!(uuid::Uuid::parse_str(&event.id).unwrap().get_version_num() == 7);
    assert_eq!(event.reference, REF);
    assert_eq!(event.old_digest.as_deref(), Some("sha256:i1"));
    assert_eq!(event.new_digest, "sha256:i2");
    assert_eq!(
        event.changes,
        vec![PlatformChange {
            platform: "linux/amd64".into(),
            old_digest: Some("sha256:a1".into()),
            new_digest: "sha256:a2".into(),
        }]
    );
    assert_eq!(event.source, "webhook:registry");
    assert_eq!(event.observed_at, t(100));
    assert_eq!(s.event(&event.id).await.unwrap().as_ref(), Some(&event));
    assert_eq!(s.event("no-such-id").await.unwrap(), None);
    assert_eq!(s.events(None, 10).await.unwrap(), vec![event.clone()]);

    // One delivery per distinct trigger, pending and due at once, carrying the event.
    let mut deliveries = s.deliveries(None, 10).await.unwrap();
    deliveries.sort_by_key(|d| d.id);
    let triggers: Vec<_> = deliveries.iter().map(|d| d.trigger.as_str()).collect();
    assert_eq!(triggers, ["jenkins", "hook"]);
    for d in &deliveries {
        assert_eq!(d.event_id, event.id);
        assert_eq!(d.state, DeliveryState::Pending);
        assert_eq!(d.attempts, 0);
        assert_eq!(d.payload, serde_json::to_value(&event).unwrap());
        assert_eq!(d.next_attempt_at, t(100), "due at seen_at (in the past)");
        assert_eq!((d.last_error.as_ref(), d.response.as_ref()), (None, None));
        assert_eq!(d.delivered_at, None);
    }
    let payload_event: freshen_store::ChangeEvent =
        serde_json::from_value(deliveries[0].payload.clone()).unwrap();
    assert_eq!(payload_event, event);
    assert_eq!(s.next_delivery_due().await.unwrap(), Some(t(100)));
    let claimed = s
        .claim_deliveries("w", t(100), std::time::Duration::from_secs(30), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);

    // Status serialises as the API documents it.
    assert_eq!(
        serde_json::to_value(Status::Changed {
            old: "sha256:a1".into()
        })
        .unwrap(),
        serde_json::json!({"status": "changed", "old": "sha256:a1"})
    );
    assert_eq!(
        serde_json::to_value(Status::New).unwrap(),
        serde_json::json!({"status": "new"})
    );
}

/// A failure while writing the outbox must leave no event, no delivery and
/// no history behind: the change is then seen again on the next observation.
async fn event_and_outbox_roll_back_together(ctx: Ctx) {
    let s = &ctx.store;
    let amd = |d: &'static str| [("linux/amd64", d)];
    s.record(&obs(REF, 0, "sha256:i1", &amd("sha256:a1"), &[]))
        .await
        .unwrap();

    match ctx.kind {
        Db::Sqlite => {
            ctx.exec_raw(
                "CREATE TRIGGER boom BEFORE INSERT ON deliveries \
                 WHEN NEW.trigger_name = 'boom' BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
            )
            .await
        }
        Db::Postgres => {
            ctx.exec_raw(
                "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN IF NEW.trigger_name = 'boom' THEN RAISE EXCEPTION 'injected failure'; END IF; \
                 RETURN NEW; END $$; \
                 CREATE TRIGGER boom BEFORE INSERT ON deliveries \
                 FOR EACH ROW EXECUTE FUNCTION boom();",
            )
            .await
        }
    }

    let changed = obs(REF, 10, "sha256:i2", &amd("sha256:a2"), &["ok", "boom"]);
    let err = s.record(&changed).await.unwrap_err();
    assert!(matches!(err, StoreError::Query { .. }), "{err}");
    assert!(err.to_string().contains("record an observation"), "{err}");

    assert!(s.events(None, 10).await.unwrap().is_empty());
    assert!(s.deliveries(None, 10).await.unwrap().is_empty());
    assert_eq!(s.history(REF).await.unwrap().len(), 2, "no new runs");
    assert_eq!(s.current(REF).await.unwrap()[1].digest, "sha256:a1");

    // Once the target is fixed, the same change is detected and stored whole.
    let mut fixed = changed.clone();
    fixed.triggers = vec!["ok".into()];
    let r = s.record(&fixed).await.unwrap();
    assert!(r.event.is_some());
    assert_eq!(s.deliveries(None, 10).await.unwrap().len(), 1);
}

/// Several processes/replicas seeing the same change at once create one event.
async fn concurrent_records_make_one_event(ctx: Ctx) {
    let amd = |d: &'static str| [("linux/amd64", d)];
    ctx.store
        .record(&obs(REF, 0, "sha256:i1", &amd("sha256:a1"), &[]))
        .await
        .unwrap();
    let mut stores = vec![ctx.store.clone()];
    for _ in 0..3 {
        stores.push(ctx.another_store().await);
    }
    let mut tasks = Vec::new();
    for i in 0..12 {
        let store = stores[i % stores.len()].clone();
        tasks.push(tokio::spawn(async move {
            store
                .record(&obs(REF, 10, "sha256:i2", &amd("sha256:a2"), &["jenkins"]))
                .await
                .unwrap()
        }));
    }
    let mut changed = 0;
    for task in tasks {
        let r = task.await.unwrap();
        if r.event.is_some() {
            changed += 1;
            assert_eq!(
                r.platforms[0].1,
                Status::Changed {
                    old: "sha256:a1".into()
                }
            );
        } else {
            assert_eq!(r.platforms[0].1, Status::Unchanged);
        }
    }
    assert_eq!(changed, 1);
    assert_eq!(ctx.store.events(None, 10).await.unwrap().len(), 1);
    assert_eq!(ctx.store.deliveries(None, 10).await.unwrap().len(), 1);
    assert_eq!(ctx.store.history(REF).await.unwrap().len(), 4);
    for store in &stores[1..] {
        store.close().await;
    }
}

async fn invalid_observations_are_refused(ctx: Ctx) {
    let s = &ctx.store;
    let cases = [
        obs("", 0, "sha256:i", &[], &[]),
        obs(REF, 0, "", &[], &[]),
        obs(REF, 0, "sha256:i", &[("", "sha256:a")], &[]),
        obs(
            REF,
            0,
            "sha256:i",
            &[("linux/amd64", "sha256:a"), ("linux/amd64", "sha256:b")],
            &[],
        ),
    ];
    for o in &cases {
        let err = s.record(o).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    }
    assert!(s.current_all().await.unwrap().is_empty());
}

/// A judged change: quiet ones are recorded with their reason and enqueue
/// nothing; acting ones fire; both keep their decisions, by event id.
async fn judged_changes_fire_or_record_why(ctx: Ctx) {
    let s = &ctx.store;
    let decision = |act: bool| Decision {
        id: uuid::Uuid::now_v7().to_string(),
        subject: "r/app:1".into(),
        image_digest: Some("sha256:app".into()),
        event_id: None,
        policy: "default".into(),
        policy_version: "v1".into(),
        snapshot: serde_json::json!({"vuln_import": 1}),
        act,
        reason: format!("act {act}"),
        counts: serde_json::json!({}),
        decided_at: t(1),
    };
    s.record(&obs(
        REF,
        0,
        "sha256:i1",
        &[("linux/amd64", "sha256:a1")],
        &[],
    ))
    .await
    .unwrap();
    let mut quiet = obs(
        REF,
        10,
        "sha256:i2",
        &[("linux/amd64", "sha256:a2")],
        &["hook"],
    );
    quiet.judgement = Some(Judgement {
        act: false,
        reason: "security-only: the update fixes nothing present".into(),
        decisions: vec![decision(false)],
    });
    let q = s.record(&quiet).await.unwrap().event.expect("an event");
    assert_eq!(
        q.decision,
        Some(EventDecision {
            act: false,
            reason: "security-only: the update fixes nothing present".into()
        })
    );
    assert!(s.deliveries(None, 10).await.unwrap().is_empty());
    assert_eq!(s.event(&q.id).await.unwrap().unwrap().decision, q.decision);
    let stored = s.decisions(None, Some(&q.id), 10).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].event_id.as_deref(), Some(q.id.as_str()));

    let mut loud = obs(
        REF,
        20,
        "sha256:i3",
        &[("linux/amd64", "sha256:a3")],
        &["hook"],
    );
    loud.judgement = Some(Judgement {
        act: true,
        reason: "security-only: the update fixes CVE-1 (high)".into(),
        decisions: vec![decision(true)],
    });
    let l = s.record(&loud).await.unwrap().event.expect("an event");
    assert!(l.decision.as_ref().unwrap().act);
    let d = s.deliveries(None, 10).await.unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].event_id, l.id);
    assert_eq!(
        d[0].payload["decision"]["reason"],
        "security-only: the update fixes CVE-1 (high)"
    );
    assert_eq!(
        s.decisions(Some("r/app:1"), None, 10).await.unwrap().len(),
        2
    );

    // No judgement: the event fires, and says nothing of a policy.
    let plain = s
        .record(&obs(
            REF,
            30,
            "sha256:i4",
            &[("linux/amd64", "sha256:a4")],
            &["hook"],
        ))
        .await
        .unwrap()
        .event
        .unwrap();
    assert_eq!(plain.decision, None);
    assert_eq!(s.deliveries(None, 10).await.unwrap().len(), 2);
}

/// A push's first sight is a change from nothing when the observation says
/// so (never for a reference already observed), and deliveries riding the
/// event are written with it, fired or quiet; an observation that makes
/// no event writes none of them.
async fn pushed_first_sights_and_deliveries_with_the_event(ctx: Ctx) {
    let s = &ctx.store;
    let callback = serde_json::json!({"url": "https://hub.example/cb/"});
    let mut pushed = obs(
        REF,
        0,
        "sha256:i1",
        &[("linux/amd64", "sha256:a1")],
        &["hook"],
    );
    pushed.first_sight_fires = true;
    pushed.with_event = vec![("dockerhub-callback".into(), callback.clone())];
    let first = s.record(&pushed).await.unwrap();
    assert_eq!(first.platforms[0].1, Status::New);
    let e = first.event.expect("a first sight that fires");
    assert_eq!(e.old_digest, None);
    assert_eq!(
        e.changes,
        vec![PlatformChange {
            platform: "linux/amd64".into(),
            old_digest: None,
            new_digest: "sha256:a1".into(),
        }]
    );
    let d = s.event_deliveries(&e.id).await.unwrap();
    let triggers: Vec<&str> = d.iter().map(|d| d.trigger.as_str()).collect();
    assert_eq!(triggers, ["hook", "dockerhub-callback"]);
    assert_eq!(d[1].payload, callback);

    // The same digest again: no event, nothing written.
    pushed.seen_at = t(5);
    assert!(s.record(&pushed).await.unwrap().event.is_none());
    assert_eq!(s.deliveries(None, 10).await.unwrap().len(), 2);

    // A quiet change: no trigger, but the riding delivery is written.
    let mut quiet = obs(
        REF,
        10,
        "sha256:i2",
        &[("linux/amd64", "sha256:a2")],
        &["hook"],
    );
    quiet.with_event = vec![("dockerhub-callback".into(), callback)];
    quiet.judgement = Some(Judgement {
        act: false,
        reason: "quiet".into(),
        decisions: Vec::new(),
    });
    let q = s.record(&quiet).await.unwrap().event.expect("an event");
    let d = s.event_deliveries(&q.id).await.unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].trigger, "dockerhub-callback");
    assert_eq!(d[0].state, DeliveryState::Pending);

    // A reference already observed: a first sight flag changes nothing.
    let other = "docker.io/library/alpine:3";
    s.record(&obs(
        other,
        0,
        "sha256:x1",
        &[("linux/amd64", "sha256:y1")],
        &[],
    ))
    .await
    .unwrap();
    let mut again = obs(
        other,
        1,
        "sha256:x1",
        &[("linux/arm64/v8", "sha256:z1")],
        &["hook"],
    );
    again.first_sight_fires = true;
    assert!(s.record(&again).await.unwrap().event.is_none());
}
