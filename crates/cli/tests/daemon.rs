//! `freshen watch`, the daemon: scheduled checks, SIGTERM, and a `kill -9`
//! in the middle of deliveries followed by a restart, on SQLite and PostgreSQL.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::Env;
use freshen_testkit::{Db, Registry, WebhookReceiver, both_stores};

fn watch_config(env: &Env, refs: &[String], hook: &str, extra: &str) -> String {
    let mut y = String::from("jitter: 0s\nwatches:\n");
    for r in refs {
        y.push_str(&format!(
            "  - ref: {r}\n    schedule: 1s\n    on_change: [notify]\n"
        ));
    }
    y.push_str(&format!(
        "triggers:\n  notify:\n    webhook: {{url: \"{hook}\", secret: \"k\", timeout: 5s}}\n{extra}"
    ));
    env.config(&y).to_str().unwrap().to_string()
}

/// Polls until every reference has history, i.e. the daemon took its baselines.
async fn wait_for_baselines(env: &Env, refs: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    for r in refs {
        loop {
            if env.run(&["history", r]).await.code == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no baseline for {r}; daemon log:\n{}",
                env.log("watch.log")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A change is seen on schedule and fired; SIGTERM ends the daemon cleanly.
async fn watch_fires_and_stops_on_sigterm(db: Db) {
    let reg = Registry::start().await;
    let push = reg.pusher();
    let hook = WebhookReceiver::start("k").await;
    let env = Env::new(db).await;
    let r = format!("{}/svc:1", reg.host());
    push.push_image("svc", "1", "linux/amd64", "a").await;
    let config = watch_config(&env, std::slice::from_ref(&r), &hook.url(), "");
    let mut child = env.spawn(&["watch", "--config", &config], "watch.log");
    wait_for_baselines(&env, std::slice::from_ref(&r)).await;
    assert!(hook.received().is_empty(), "a baseline fires nothing");

    let new = push.push_image("svc", "1", "linux/amd64", "b").await;
    let got = hook.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body["new_digest"], new.as_str());
    assert!(got[0].signature_valid);

    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits within 10 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(hook.received().len(), 1, "nothing fired twice");
}

/// `kill -9` while deliveries are in flight, then a restart: every trigger
/// arrives, no event is created twice, and the only repeat a receiver can
/// see is the one delivery in flight at the kill, under the same event id.
async fn kill_9_then_restart_delivers_everything_once(db: Db) {
    const N: usize = 8;
    let reg = Registry::start().await;
    let push = reg.pusher();
    let hook = WebhookReceiver::start("k").await;
    // Slow receiver: the kill lands in the middle of the deliveries.
    hook.set_delay(Duration::from_millis(400));
    let env = Env::new(db).await;
    let refs: Vec<String> = (0..N).map(|i| format!("{}/svc{i}:1", reg.host())).collect();
    for i in 0..N {
        push.push_image(&format!("svc{i}"), "1", "linux/amd64", "a")
            .await;
    }
    let config = watch_config(
        &env,
        &refs,
        &hook.url(),
        "outbox:\n  concurrency: 1\n  lease: 2s\n  initial_backoff: 100ms\n",
    );
    let mut first = env.spawn(&["watch", "--config", &config], "watch.log");
    wait_for_baselines(&env, &refs).await;

    for i in 0..N {
        push.push_image(&format!("svc{i}"), "1", "linux/amd64", "b")
            .await;
    }
    hook.wait_for(2, Duration::from_secs(20)).await;
    first.start_kill().unwrap(); // SIGKILL
    first.wait().await.unwrap();
    let before_restart = hook.received().len();
    assert!(
        before_restart < N,
        "the kill came before all deliveries ({before_restart})"
    );

    let mut second = env.spawn(&["watch", "--config", &config], "watch2.log");
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let distinct: BTreeSet<String> = hook
            .received()
            .iter()
            .filter_map(|r| r.event_id.clone())
            .collect();
        if distinct.len() >= N {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {N} events delivered after the restart; logs:\n{}\n{}",
            distinct.len(),
            env.log("watch.log"),
            env.log("watch2.log")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await; // anything late would show now
    second.start_kill().unwrap();
    second.wait().await.unwrap();

    let events = env.run(&["events", "--json", "--limit", "100"]).await;
    events.expect(0);
    let events = events.json();
    let ids: BTreeSet<String> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids.len(),
        N,
        "one event per changed tag, none created twice: {events}"
    );

    let mut per_event: BTreeMap<String, usize> = BTreeMap::new();
    for r in hook.received() {
        assert!(r.signature_valid);
        *per_event
            .entry(r.event_id.expect("event id header"))
            .or_default() += 1;
    }
    assert_eq!(
        per_event.keys().cloned().collect::<BTreeSet<_>>(),
        ids,
        "every event delivered"
    );
    let repeats: usize = per_event.values().map(|n| n - 1).sum();
    assert!(
        repeats <= 1,
        "at most the one in-flight delivery repeats (same event id): {per_event:?}"
    );

    let outbox = env
        .run(&["outbox", "list", "--json", "--limit", "100"])
        .await
        .json();
    assert!(
        outbox
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["state"] == "delivered"),
        "all delivered: {outbox}"
    );
}

both_stores!(
    watch_fires_and_stops_on_sigterm,
    kill_9_then_restart_delivers_everything_once
);

/// Two replicas on one PostgreSQL database split the work: every change is
/// one event and one delivery, however the leases fall.
#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_on_postgres_never_double_fire() {
    const N: usize = 6;
    let reg = Registry::start().await;
    let push = reg.pusher();
    let hook = WebhookReceiver::start("k").await;
    let env = Env::new(Db::Postgres).await;
    let refs: Vec<String> = (0..N).map(|i| format!("{}/rep{i}:1", reg.host())).collect();
    for i in 0..N {
        push.push_image(&format!("rep{i}"), "1", "linux/amd64", "a")
            .await;
    }
    let config = watch_config(&env, &refs, &hook.url(), "");
    let mut a = env.spawn(&["watch", "--config", &config], "a.log");
    let mut b = env.spawn(&["watch", "--config", &config], "b.log");
    wait_for_baselines(&env, &refs).await;
    for i in 0..N {
        push.push_image(&format!("rep{i}"), "1", "linux/amd64", "b")
            .await;
    }
    hook.wait_for(N, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(3)).await; // a double would show now
    a.start_kill().unwrap();
    b.start_kill().unwrap();
    let got = hook.received();
    let ids: BTreeSet<String> = got.iter().filter_map(|r| r.event_id.clone()).collect();
    assert_eq!(
        ids.len(),
        N,
        "every change delivered: {}\n{}",
        env.log("a.log"),
        env.log("b.log")
    );
    assert_eq!(got.len(), N, "no change delivered twice");
    let events = env
        .run(&["events", "--json", "--limit", "100"])
        .await
        .json();
    assert_eq!(
        events.as_array().unwrap().len(),
        N,
        "no event created twice"
    );
}
