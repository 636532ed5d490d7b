//! Approvals (`approve: [cascade]` on a watch), end to end on SQLite and
//! PostgreSQL with a real registry: a change's cascade waits; the request
//! is listed and announced through the outbox (a real webhook POST with a
//! link); the daemon is killed with `kill -9` while it waits and started
//! again, and nothing is lost; approving lets the cascade run at once;
//! a request nobody decides expires and the cascade is not run; deciding
//! an expired or decided request is refused with a clear error; a
//! rejection through the API (token required) stops the cascade.

mod common;

use std::time::{Duration, Instant};

use common::Env;
use freshen_testkit::{Db, Registry, WebhookReceiver, both_stores};
use serde_json::Value;

fn config(env: &Env, name: &str, watched: &str, hook: &str, expire: &str) -> String {
    env.config_file(
        name,
        &format!(
            "jitter: 0s\n\
             outbox: {{initial_backoff: 200ms, max_backoff: 1s, lease: 4s}}\n\
             watches:\n  - ref: {watched}\n    schedule: 1s\n    on_change: [cascade]\n    approve: [cascade]\n\
             triggers:\n  chat:\n    webhook: {{url: \"{hook}\", secret: \"k\", timeout: 5s}}\n\
             approvals: {{expire: {expire}, recheck: 300ms, announce: [chat], url: \"https://freshen.example/\"}}\n\
             server: {{write_tokens: [\"t0ken-for-approvals\"]}}\n"
        ),
    )
    .to_str()
    .unwrap()
    .to_string()
}

async fn approvals(env: &Env, all: bool) -> Vec<Value> {
    let mut args = vec!["approvals", "--json"];
    if all {
        args.push("--all");
    }
    let r = env.run(&args).await;
    r.expect(0);
    r.json().as_array().unwrap().clone()
}

/// The cascade delivery of `event`, as `outbox list` shows it.
async fn cascade_of(env: &Env, event: &str) -> Value {
    let r = env.run(&["outbox", "list", "--json"]).await;
    r.expect(0);
    r.json()
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["event_id"] == event && d["trigger"] == "cascade")
        .cloned()
        .unwrap_or_else(|| panic!("no cascade delivery of {event}: {}", r.stdout))
}

async fn until(env: &Env, log: &str, what: &str, ok: impl AsyncFn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok().await {
        assert!(
            Instant::now() < deadline,
            "{what} never happened; log:\n{}",
            env.log(log)
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

async fn a_cascade_waits_for_approval(db: Db) {
    let reg = Registry::start().await;
    let push = reg.pusher();
    let hook = WebhookReceiver::start("k").await;
    let env = Env::new(db).await;
    let watched = format!("{}/upstream/os:stable", reg.host());
    push.push_image("upstream/os", "stable", "linux/amd64", "v1")
        .await;
    let cfg = config(&env, "freshen.yaml", &watched, &hook.url(), "1h");

    // Baseline, then a change: its cascade waits, announced once.
    env.run(&["check", "--config", &cfg]).await.expect(0);
    push.push_image("upstream/os", "stable", "linux/amd64", "v2")
        .await;
    let r = env.run(&["check", "--config", &cfg, "--json"]).await;
    r.expect(0);
    let event = r.json()["results"][0]["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    let d = cascade_of(&env, &event).await;
    assert_eq!(d["state"], "pending", "{d}");
    let pending = approvals(&env, false).await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    let a = &pending[0];
    assert_eq!(
        (
            a["stage"].as_str(),
            a["state"].as_str(),
            a["event_id"].as_str()
        ),
        (Some("cascade"), Some("pending"), Some(event.as_str()))
    );
    assert_eq!(a["reason"], format!("watch {watched}"));
    let id = a["id"].as_str().unwrap().to_string();
    let got = hook.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].body["kind"], "approval", "{:?}", got[0].body);
    assert_eq!(
        got[0].body["link"],
        format!("https://freshen.example/approvals/{id}")
    );
    assert!(got[0].signature_valid);

    // The daemon waits with it; killed and started again, it still waits.
    let mut watch = env.spawn(&["watch", "--config", &cfg], "watch.log");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    watch.start_kill().unwrap();
    watch.wait().await.unwrap();
    assert_eq!(approvals(&env, false).await.len(), 1);
    assert_eq!(cascade_of(&env, &event).await["state"], "pending");
    assert_eq!(cascade_of(&env, &event).await["attempts"], 0);
    let _watch = env.spawn(&["watch", "--config", &cfg], "watch2.log");

    // Approved: the cascade runs (nothing is built on this base).
    let r = env
        .run(&["approve", &id, "--by", "alice", "--comment", "go", "--json"])
        .await;
    r.expect(0);
    assert_eq!(r.json()[0]["state"], "approved");
    until(&env, "watch2.log", "the approved cascade", async || {
        cascade_of(&env, &event).await["state"] == "delivered"
    })
    .await;
    // Deciding again is refused, naming the state.
    let again = env.run(&["reject", &id, "--reason", "late"]).await;
    again.expect(2);
    assert!(
        again.stderr.contains("is approved already (by alice)"),
        "{}",
        again.stderr
    );
    assert_eq!(hook.received().len(), 1, "announced once");
}

both_stores!(a_cascade_waits_for_approval);

async fn expiry_and_rejection(db: Db) {
    let reg = Registry::start().await;
    let push = reg.pusher();
    let hook = WebhookReceiver::start("k").await;
    let env = Env::new(db).await;
    let watched = format!("{}/upstream/os:stable", reg.host());
    push.push_image("upstream/os", "stable", "linux/amd64", "v1")
        .await;
    let cfg = config(&env, "freshen.yaml", &watched, &hook.url(), "1s");

    // Nobody decides: the request expires and the cascade is not run.
    env.run(&["check", "--config", &cfg]).await.expect(0);
    push.push_image("upstream/os", "stable", "linux/amd64", "v2")
        .await;
    let r = env.run(&["check", "--config", &cfg, "--json"]).await;
    let event = r.json()["results"][0]["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    let id = approvals(&env, false).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    env.run(&["check", "--config", &cfg]).await.expect(0);
    let d = cascade_of(&env, &event).await;
    assert_eq!(d["state"], "delivered", "{d}");
    let response = d["response"].as_str().unwrap_or_default();
    assert!(
        response.contains("not rebuilt") && response.contains("expired"),
        "{d}"
    );
    assert!(approvals(&env, false).await.is_empty());
    assert_eq!(approvals(&env, true).await[0]["state"], "expired");
    let late = env.run(&["approve", &id]).await;
    late.expect(2);
    assert!(
        late.stderr.contains("is expired already"),
        "{}",
        late.stderr
    );

    // Rejected through the API: a token is needed; the cascade stops.
    let long = config(&env, "long.yaml", &watched, &hook.url(), "1h");
    push.push_image("upstream/os", "stable", "linux/amd64", "v3")
        .await;
    let r = env.run(&["check", "--config", &long, "--json"]).await;
    let event = r.json()["results"][0]["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    let id = approvals(&env, false).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let port = freshen_testkit::free_port();
    let _serve = env.spawn(
        &[
            "serve",
            "--config",
            &long,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ],
        "serve.log",
    );
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/approvals/{id}/reject");
    let mut status = 0;
    for _ in 0..100 {
        if let Ok(r) = http
            .post(&url)
            .json(&serde_json::json!({"reason": "not now"}))
            .send()
            .await
        {
            status = r.status().as_u16();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 401, "a decision needs a token");
    let r = http
        .post(&url)
        .bearer_auth("t0ken-for-approvals")
        .json(&serde_json::json!({"by": "bob", "reason": "not now"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["state"], "rejected");
    env.run(&["check", "--config", &long]).await.expect(0);
    let d = cascade_of(&env, &event).await;
    let response = d["response"].as_str().unwrap_or_default();
    assert!(response.contains("rejected by bob: not now"), "{d}");
}

both_stores!(expiry_and_rejection);
