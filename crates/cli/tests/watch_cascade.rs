//! The watcher running cascades on its own (`on_change: [cascade]`), end
//! to end with real parts: an upstream base in a real registry, a
//! two-level tree of buildah builds on it (golden/base, then two apps).
//! The upstream tag moves and `freshen check` rebuilds the tree in order;
//! a check with no change runs nothing; a security-only policy keeps a
//! change that fixes nothing quiet (no cascade, the decision stored);
//! `check --defer-cascades` leaves the cascade to `freshen watch`, which is
//! killed with `kill -9` in the apps' wave and resumes the same run on
//! restart; a failing build is retried with the outbox's backoff and
//! resumes without rebuilding what was done. On SQLite and PostgreSQL.

mod common;

use std::time::{Duration, Instant};

use common::{Env, golden_base, holding_buildah, item, rig, tags, upstream_v1_v2, write};
use freshen_testkit::{Db, Registry, both_stores};
use serde_json::Value;

/// Every rebuild run, newest first.
async fn runs(env: &Env) -> Vec<Value> {
    let r = env.run(&["rebuilds", "--json"]).await;
    r.expect(0);
    r.json().as_array().unwrap().clone()
}

/// A run with its items.
async fn run_of(env: &Env, id: &str) -> Value {
    let r = env.run(&["rebuilds", id, "--json"]).await;
    r.expect(0);
    r.json()
}

/// `check --json` (with `extra` flags): the run and its JSON.
async fn check(env: &Env, config: &str, extra: &[&str]) -> (Value, String) {
    let mut args = vec!["check", "--config", config, "--json"];
    args.extend_from_slice(extra);
    let r = env.run(&args).await;
    r.expect(0);
    (r.json(), r.stderr.clone())
}

/// Polls `until` on the run of `event` until it holds, or panics with the log.
async fn wait_run(env: &Env, event: &str, log: &str, until: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        if let Some(r) = runs(env).await.into_iter().find(|r| r["event_id"] == event) {
            let full = run_of(env, r["id"].as_str().unwrap()).await;
            if until(&full) {
                return full;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the cascade of {event} never got there; log:\n{}",
            env.log(log)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn watcher_cascades(db: Db) {
    let (reg, host, push, buildah, env, d) = rig(db).await;

    // The upstream base, two versions; v1 at the watched tag for now.
    let up = upstream_v1_v2(&buildah, &d, &host).await;
    let watched = format!("{host}/upstream/os:stable");
    push.tag("upstream/os", &up[0], "stable").await;

    // Our tree: golden/base on the upstream tag, two apps on golden/base.
    golden_base(&d, &host);
    let app_dockerfile =
        |app: &str| format!("FROM {host}/golden/base:1\nCOPY app.txt /{app}.txt\n");
    for app in ["api", "web"] {
        write(
            &d.join(format!("apps/{app}/Dockerfile")),
            &app_dockerfile(app),
        );
        write(&d.join(format!("apps/{app}/app.txt")), &format!("{app}\n"));
    }
    let (base, api, web) = (
        format!("{host}/golden/base:1"),
        format!("{host}/apps/api:1"),
        format!("{host}/apps/web:1"),
    );
    let buildah_root = tempfile::tempdir().unwrap();
    let wrapper = holding_buildah(&d);
    let config = |policy: &str| {
        format!(
            "jitter: 0s\n\
             outbox: {{initial_backoff: 200ms, max_backoff: 1s, lease: 4s}}\n\
             watches:\n  - ref: {watched}\n    schedule: 1s\n    on_change: [cascade]\n\
             policy: {{mode: {policy}}}\n\
             cascade: {{parallel: 1}}\n\
             builds:\n  - {{image: {base}, context: images/base}}\n  - {{image: {api}, context: apps/api}}\n  - {{image: {web}, context: apps/web}}\n\
             builders:\n  buildah:\n    command: {wrapper}\n    root: {root}/root\n    runroot: {root}/run\n    storage_driver: vfs\n",
            wrapper = wrapper.display(),
            root = buildah_root.path().display(),
        )
    };
    let always = env.config_file("always.yaml", &config("always"));
    let always = always.to_str().unwrap();
    let secure = env.config_file("secure.yaml", &config("security-only"));
    let secure = secure.to_str().unwrap();

    // The first sight is a baseline: no event, no cascade.
    let (c, _) = check(&env, always, &[]).await;
    assert_eq!(c["results"][0]["platforms"][0]["status"], "new", "{c}");
    assert!(runs(&env).await.is_empty());

    // 1. The tag moves: `check` rebuilds golden/base, then both apps.
    push.tag("upstream/os", &up[1], "stable").await;
    let (c, stderr) = check(&env, always, &[]).await;
    let event = c["results"][0]["event_id"].as_str().unwrap().to_string();
    let delivery = &c["deliveries"][0];
    assert_eq!(
        (delivery["trigger"].as_str(), delivery["state"].as_str()),
        (Some("cascade"), Some("delivered")),
        "{c}\n{stderr}"
    );
    assert!(
        delivery["detail"]
            .as_str()
            .unwrap()
            .contains("3 image(s) rebuilt"),
        "{c}"
    );
    assert!(
        stderr.contains("cascade starts") && stderr.contains("cascade ends"),
        "check logs the cascade: {stderr}"
    );
    let listed = runs(&env).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["event_id"], event.as_str());
    assert_eq!(listed[0]["state"], "done");
    let first_run = listed[0]["id"].as_str().unwrap().to_string();
    let table = env.run(&["rebuilds"]).await;
    assert!(
        table.stdout.contains("EVENT") && table.stdout.contains(&event),
        "{table}"
    );
    let r = run_of(&env, &first_run).await;
    let base_done = item(&r, &base)["finished_at"].as_str().unwrap().to_string();
    for app in [&api, &web] {
        let i = item(&r, app);
        assert_eq!(i["state"], "done", "{r}");
        assert!(
            i["started_at"].as_str().unwrap() > base_done.as_str(),
            "parents first: {r}"
        );
        // A new version, and the build's own tag moved to it.
        let version = i["version"].as_str().unwrap();
        let repo = app.split_once('/').unwrap().1.split_once(':').unwrap().0;
        assert_eq!(
            push.head_digest(repo, version).await,
            push.head_digest(repo, "1").await,
            "{r}"
        );
    }

    // 2. No change: nothing is delivered, no run.
    let (c, _) = check(&env, always, &[]).await;
    assert_eq!(c["results"][0]["platforms"][0]["status"], "unchanged");
    assert_eq!(c["deliveries"], Value::Array(vec![]), "{c}");
    assert_eq!(runs(&env).await.len(), 1);

    // 3. Security-only, and the move fixes nothing: quiet, decision stored,
    //    no cascade.
    push.tag("upstream/os", &up[0], "stable").await;
    let (c, _) = check(&env, secure, &[]).await;
    assert_eq!(c["results"][0]["decision"]["act"], false, "{c}");
    let quiet = c["results"][0]["event_id"].as_str().unwrap().to_string();
    assert_eq!(c["deliveries"], Value::Array(vec![]), "{c}");
    let events = env.run(&["events", "--json"]).await;
    assert_eq!(events.json()[0]["id"], quiet.as_str());
    assert_eq!(events.json()[0]["decision"]["act"], false);
    let decisions = env
        .run(&["policy", "decisions", "--event", &quiet, "--json"])
        .await;
    decisions.expect(0);
    assert!(
        !decisions.json().as_array().unwrap().is_empty(),
        "{decisions}"
    );
    assert_eq!(runs(&env).await.len(), 1);

    // 4. Deferred: `check --defer-cascades` leaves the cascade queued...
    push.tag("upstream/os", &up[1], "stable").await;
    let (c, _) = check(&env, always, &["--defer-cascades"]).await;
    let event = c["results"][0]["event_id"].as_str().unwrap().to_string();
    assert_eq!(c["deliveries"], Value::Array(vec![]), "{c}");
    let outbox = env.run(&["outbox", "list", "--json"]).await;
    let queued = &outbox.json()[0];
    assert_eq!(
        (queued["trigger"].as_str(), queued["state"].as_str()),
        (Some("cascade"), Some("pending")),
        "{outbox}"
    );
    assert_eq!(runs(&env).await.len(), 1);
    // ...for `freshen watch`, killed (-9) while the apps are being pushed.
    write(&d.join("hold"), "");
    let mut watch = env.spawn(&["watch", "--config", always], "watch.log");
    let running = wait_run(&env, &event, "watch.log", |r| {
        item(r, &base)["state"] == "done"
            && [&api, &web]
                .iter()
                .any(|a| item(r, a)["state"] == "running")
    })
    .await;
    // The watcher renews the cascade's lease (4 s) while it runs: past it,
    // a `check` finds nothing to take.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (c, _) = tokio::time::timeout(Duration::from_secs(60), check(&env, always, &[]))
        .await
        .expect("check took the running cascade over: its lease was not renewed");
    assert_eq!(c["deliveries"], Value::Array(vec![]), "{c}");
    watch.start_kill().unwrap();
    watch.wait().await.unwrap();
    let run_id = running["run"]["id"].as_str().unwrap().to_string();
    let base_tags = tags(&reg, "golden/base").await;
    let base_digest = push.head_digest("golden/base", "1").await;
    // A restart takes the cascade again once the dead one's lease runs out,
    // and resumes its run: base is not rebuilt.
    std::fs::remove_file(d.join("hold")).unwrap();
    let mut watch = env.spawn(&["watch", "--config", always], "watch2.log");
    let done = wait_run(&env, &event, "watch2.log", |r| r["run"]["state"] == "done").await;
    watch.start_kill().unwrap();
    watch.wait().await.unwrap();
    assert_eq!(done["run"]["id"], run_id.as_str(), "the same run: {done}");
    assert_eq!(
        tags(&reg, "golden/base").await,
        base_tags,
        "base not rebuilt"
    );
    assert_eq!(push.head_digest("golden/base", "1").await, base_digest);
    assert!(
        [&api, &web]
            .iter()
            .all(|a| item(&done, a)["state"] == "done"),
        "{done}"
    );
    assert!(
        env.log("watch2.log").contains("cascade resumes its run"),
        "{}",
        env.log("watch2.log")
    );
    let outbox = env.run(&["outbox", "list", "--json"]).await;
    assert_eq!(outbox.json()[0]["state"], "delivered", "{outbox}");

    // 5. A failing build: the cascade is retried with the outbox's backoff
    //    and resumes its run, rebuilding only what failed.
    write(
        &d.join("apps/web/Dockerfile"),
        &format!("FROM {base}\nCOPY missing.txt /web.txt\n"),
    );
    push.tag("upstream/os", &up[0], "stable").await;
    let (c, _) = check(&env, always, &[]).await;
    let event = c["results"][0]["event_id"].as_str().unwrap().to_string();
    let delivery = &c["deliveries"][0];
    assert_eq!(delivery["state"], "retrying", "{c}");
    let detail = delivery["detail"].as_str().unwrap();
    assert!(
        detail.contains("1 of 3 image(s) not rebuilt") && detail.contains(&web),
        "{detail}"
    );
    let failed = runs(&env)
        .await
        .into_iter()
        .find(|r| r["event_id"] == event.as_str())
        .unwrap();
    assert_eq!(failed["state"], "failed");
    let run_id = failed["id"].as_str().unwrap().to_string();
    let (base_tags, api_tags) = (
        tags(&reg, "golden/base").await,
        tags(&reg, "apps/api").await,
    );
    write(&d.join("apps/web/Dockerfile"), &app_dockerfile("web"));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (c, _) = check(&env, always, &[]).await;
    assert_eq!(c["results"][0]["platforms"][0]["status"], "unchanged");
    let delivery = &c["deliveries"][0];
    assert_eq!(delivery["state"], "delivered", "{c}");
    let r = run_of(&env, &run_id).await;
    assert_eq!(r["run"]["state"], "done", "{r}");
    assert_eq!(item(&r, &web)["state"], "done", "{r}");
    assert_eq!(
        tags(&reg, "golden/base").await,
        base_tags,
        "base not rebuilt"
    );
    assert_eq!(tags(&reg, "apps/api").await, api_tags, "api not rebuilt");
    assert_eq!(
        runs(&env)
            .await
            .iter()
            .filter(|r| r["event_id"] == event.as_str())
            .count(),
        1,
        "one run per event"
    );
}

both_stores!(watcher_cascades);

/// A base no build uses: the cascade completes, saying so, beside the
/// watch's other trigger; no run is made.
async fn empty_cascade_completes(db: Db) {
    let reg = Registry::start().await;
    let push = reg.pusher();
    let env = Env::new(db).await;
    let watched = format!("{}/upstream/lonely:1", reg.host());
    push.push_image("upstream/lonely", "1", "linux/amd64", "a")
        .await;
    let config = env.config(&format!(
        "watches:\n  - ref: {watched}\n    on_change: [cascade, local]\n\
         triggers:\n  local:\n    command: [\"true\"]\n"
    ));
    let config = config.to_str().unwrap();
    check(&env, config, &[]).await;
    push.push_image("upstream/lonely", "1", "linux/amd64", "b")
        .await;
    let (c, stderr) = check(&env, config, &[]).await;
    let mut got: Vec<(String, String, String)> = c["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["trigger"].as_str().unwrap().to_string(),
                d["state"].as_str().unwrap().to_string(),
                d["detail"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got.len(), 2, "{c}");
    assert_eq!(
        (got[0].0.as_str(), got[0].1.as_str()),
        ("cascade", "delivered")
    );
    assert_eq!(
        got[0].2,
        format!("nothing to rebuild: no build is built on {watched}")
    );
    assert_eq!(
        (got[1].0.as_str(), got[1].1.as_str()),
        ("local", "delivered")
    );
    assert!(
        stderr.contains("no build is built on this base; nothing to rebuild"),
        "{stderr}"
    );
    assert!(runs(&env).await.is_empty());
}

both_stores!(empty_cascade_completes);
