//! Lineage after the watcher cascades (issue 15, 4b): a base and a child
//! built on it are scanned; the base tag moves, the watcher sees it and
//! rebuilds the child; with no manual `freshen scan`, `images children`
//! names the rebuilt child current and the stale one outdated, because the
//! watcher put the base's new digest in the inventory. First through
//! `freshen check` (a digest never seen: scanned), then through the daemon
//! `freshen watch` (the tag moves back to a digest the inventory holds:
//! only the tag is pointed). And when the inventory can't be updated (the
//! registry fails the scan), the change is recorded and fired all the
//! same, and the check says why. Real registry, real buildah builds, both
//! stores.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Env, rig, upstream_v1_v2, write};
use freshen_testkit::{Db, Fault, FaultProxy, Registry, both_stores};
use serde_json::Value;

/// `images children BASE --json`: each child's digest and its `outdated`.
async fn children(env: &Env, base: &str) -> (BTreeMap<String, bool>, Value) {
    let r = env.run(&["images", "children", base, "--json"]).await;
    r.expect(0);
    let json = r.json();
    let kids = json
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["digest"].as_str().unwrap().to_string(),
                k["outdated"].as_bool().unwrap(),
            )
        })
        .collect();
    (kids, json)
}

/// The digest the inventory holds for `reference` (its first platform).
async fn inventory_digest(env: &Env, reference: &str) -> String {
    let r = env.run(&["images", "show", reference, "--json"]).await;
    r.expect(0);
    r.json()["platforms"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn watcher_keeps_lineage_true(db: Db) {
    let (_reg, host, push, buildah, env, d) = rig(db).await;

    // The upstream base, v1 at the watched tag; a child built on the tag.
    let up = upstream_v1_v2(&buildah, &d, &host).await;
    let base = format!("{host}/upstream/os:stable");
    push.tag("upstream/os", &up[0], "stable").await;
    let child = format!("{host}/apps/app:1");
    let dockerfile = format!("FROM {base}\nCOPY app.txt /app.txt\n");
    write(&d.join("apps/app/Dockerfile"), &dockerfile);
    write(&d.join("apps/app/app.txt"), "app\n");
    let first_child = buildah
        .build_push(&d.join("apps/app"), &dockerfile, &child, &[])
        .await;

    // 1. Both scanned; the child is current on the base.
    env.run(&["scan", &base, "--json"]).await.expect(0);
    env.run(&[
        "scan",
        &child,
        "--dockerfile",
        "apps/app/Dockerfile",
        "--json",
    ])
    .await
    .expect(0);
    let (kids, json) = children(&env, &base).await;
    assert_eq!(
        kids,
        BTreeMap::from([(first_child.clone(), false)]),
        "{json}"
    );

    let buildah_root = tempfile::tempdir().unwrap();
    let config = env.config(&format!(
        "jitter: 0s\n\
         outbox: {{initial_backoff: 200ms, max_backoff: 1s, lease: 30s}}\n\
         watches:\n  - ref: {base}\n    schedule: 1s\n    on_change: [cascade]\n\
         builds:\n  - {{image: {child}, context: apps/app}}\n\
         builders:\n  buildah:\n    root: {root}/root\n    runroot: {root}/run\n    storage_driver: vfs\n",
        root = buildah_root.path().display(),
    ));
    let config = config.to_str().unwrap();

    // The first check is a baseline: the inventory already holds the tag
    // at the digest seen, so nothing is scanned.
    let r = env.run(&["check", "--config", config, "--json"]).await;
    r.expect(0);
    assert_eq!(
        r.json()["results"][0]["platforms"][0]["status"],
        "new",
        "{r}"
    );
    assert!(
        r.json()["results"][0].get("inventory_error").is_none(),
        "{r}"
    );

    // 2. The base moves to a digest the inventory never saw; `check`
    //    cascades the child's rebuild.
    push.tag("upstream/os", &up[1], "stable").await;
    let r = env.run(&["check", "--config", config, "--json"]).await;
    r.expect(0);
    let c = r.json();
    assert_eq!(c["results"][0]["platforms"][0]["status"], "changed", "{r}");
    assert!(c["results"][0].get("inventory_error").is_none(), "{r}");
    assert_eq!(
        (
            c["deliveries"][0]["trigger"].as_str(),
            c["deliveries"][0]["state"].as_str()
        ),
        (Some("cascade"), Some("delivered")),
        "{r}"
    );
    let second_child = push.head_digest("apps/app", "1").await.unwrap();
    assert_ne!(second_child, first_child, "the child was rebuilt");

    // 3. No manual scan: the inventory follows the tag, and lineage is true.
    let (kids, json) = children(&env, &base).await;
    assert_eq!(
        kids,
        BTreeMap::from([(first_child.clone(), true), (second_child.clone(), false)]),
        "the rebuilt child is current and the stale one outdated: {json}"
    );
    assert_eq!(
        inventory_digest(&env, &base).await,
        up[1],
        "the inventory holds the base's new digest"
    );
    let text = env.run(&["images", "children", &base]).await;
    text.expect(0);
    let line = |digest: &str| {
        text.stdout
            .lines()
            .find(|l| l.contains(digest))
            .unwrap_or_else(|| panic!("{digest} not in {text}"))
            .to_string()
    };
    assert!(line(&second_child).contains("current"), "{text}");
    assert!(line(&first_child).contains("outdated"), "{text}");

    // 4. The daemon: the tag moves back to v1, which the inventory holds;
    //    `freshen watch` sees it, points the tag there and cascades.
    push.tag("upstream/os", &up[0], "stable").await;
    let mut watch = env.spawn(&["watch", "--config", config], "watch.log");
    let deadline = Instant::now() + Duration::from_secs(240);
    let third_child = loop {
        let now = push.head_digest("apps/app", "1").await.unwrap();
        let runs = env.run(&["rebuilds", "--json"]).await;
        runs.expect(0);
        let done = runs
            .json()
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["state"] == "done")
            .count();
        if now != second_child && done == 2 {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon never rebuilt the child; log:\n{}",
            env.log("watch.log")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    watch.start_kill().unwrap();
    watch.wait().await.unwrap();
    // The log's colours off, to read its fields.
    let log: String = env
        .log("watch.log")
        .split('\x1b')
        .enumerate()
        .map(|(i, part)| match i {
            0 => part,
            _ => part.split_once('m').map_or(part, |(_, rest)| rest),
        })
        .collect();
    assert!(
        log.lines()
            .any(|l| l.contains("inventory follows the tag") && l.contains("pointed=1 scanned=0")),
        "a digest the inventory holds is pointed at, not scanned again: {log}"
    );
    assert_eq!(
        inventory_digest(&env, &base).await,
        up[0],
        "the inventory follows the tag back: {}",
        env.log("watch.log")
    );
    let (kids, json) = children(&env, &base).await;
    assert_eq!(
        kids,
        BTreeMap::from([
            (first_child, false),
            (second_child, true),
            (third_child, false)
        ]),
        "on v1 again: the first and the newest child are current, the one on v2 outdated: {json}\n{}",
        env.log("watch.log")
    );
}

both_stores!(watcher_keeps_lineage_true);

/// The registry fails the scan of the new digest: the event and its
/// delivery are there all the same, the check says why, and the inventory
/// keeps the old digest until the next move.
async fn inventory_failure_keeps_the_change(db: Db) {
    let reg = Registry::start().await;
    let push = reg.pusher();
    let proxy = FaultProxy::start(&reg.host()).await;
    let env = Env::new(db).await;
    let watched = format!("{}/upstream/os:1", proxy.host());
    let old = push
        .push_image("upstream/os", "1", "linux/amd64", "a")
        .await;
    let config = env.config(&format!(
        "watches:\n  - ref: {watched}\n    on_change: [local]\n\
         triggers:\n  local:\n    command: [\"true\"]\n"
    ));
    let config = config.to_str().unwrap();
    env.run(&["scan", &watched, "--json"]).await.expect(0);
    env.run(&["check", "--config", config]).await.expect(0);

    let new = push
        .push_image("upstream/os", "1", "linux/amd64", "b")
        .await;
    // The check's HEAD, manifest and config pass; the scan's GET of the
    // new digest fails.
    proxy.clear_requests();
    for _ in 0..3 {
        proxy.push_fault(Fault::Stall(Duration::ZERO));
    }
    proxy.push_fault(Fault::Status(404));
    let r = env.run(&["check", "--config", config, "--json"]).await;
    assert_eq!(proxy.pending_faults(), 0, "{:?}", proxy.request_log());
    let failed = proxy
        .request_log()
        .into_iter()
        .find(|q| q.status == Some(404))
        .unwrap();
    assert!(
        failed.method == "GET" && failed.path.ends_with(&new),
        "the scan's GET failed: {failed:?}"
    );
    r.expect(0);
    let c = r.json();
    let result = &c["results"][0];
    assert_eq!(result["platforms"][0]["status"], "changed", "{r}");
    let event = result["event_id"].as_str().expect("the event is recorded");
    let why = result["inventory_error"].as_str().unwrap_or_default();
    assert!(
        why.contains("upstream/os"),
        "the error names the image: {r}"
    );
    assert_eq!(
        (
            c["deliveries"][0]["trigger"].as_str(),
            c["deliveries"][0]["state"].as_str(),
            c["deliveries"][0]["event_id"].as_str()
        ),
        (Some("local"), Some("delivered"), Some(event)),
        "{r}"
    );
    let text = env.run(&["events", "--json"]).await;
    assert_eq!(text.json()[0]["id"], event, "{text}");
    assert_eq!(inventory_digest(&env, &watched).await, old);

    // Said on stderr too, in the table form.
    let again = push
        .push_image("upstream/os", "1", "linux/amd64", "c")
        .await;
    for _ in 0..3 {
        proxy.push_fault(Fault::Stall(Duration::ZERO));
    }
    proxy.push_fault(Fault::Status(404));
    let r = env.run(&["check", "--config", config]).await;
    r.expect(0);
    assert!(
        r.stderr.contains(&format!(
            "freshen: warning: {watched}: the change is recorded, but the inventory still has the old digest: "
        )),
        "{r}"
    );
    // The next move that can be read brings the inventory along.
    let last = push
        .push_image("upstream/os", "1", "linux/amd64", "d")
        .await;
    let r = env.run(&["check", "--config", config, "--json"]).await;
    r.expect(0);
    assert!(
        r.json()["results"][0].get("inventory_error").is_none(),
        "{r}"
    );
    assert_ne!(again, last);
    assert_eq!(inventory_digest(&env, &watched).await, last);
}

both_stores!(inventory_failure_keeps_the_change);
