//! `plan --vulnerable` and `rebuild --vulnerable` with real parts: a
//! bookworm base whose openssl predates DSA-5532-1 (built by buildah into
//! a real registry, scanned), an app built on it and a child on the app
//! (defined under `builds:`), OSV records imported. The plan rebuilds the
//! vulnerable images freshen can build, then what is built on them, in
//! waves, and names the vulnerable image it can't build; on SQLite and
//! PostgreSQL.

mod common;

use common::{Env, fixtures, write};
use freshen_testkit::{
    Buildah, DEBIAN_ROOT_DOCKERFILE, Db, Registry, both_stores, debian_root, osv_fixtures,
};

/// Bookworm's `/etc/os-release`, as the inventory reads it.
const BOOKWORM: &str =
    "NAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n";
use serde_json::Value;

fn wave_images(plan: &Value) -> Vec<Vec<String>> {
    plan["waves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            w.as_array()
                .unwrap()
                .iter()
                .map(|b| b["image"].as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

/// The tree both tests start from: a base nobody here builds (bookworm
/// with the old openssl, pushed to `host`), an app on it and a child on
/// the app (their contexts under `d/images`). Returns `(base, app, child,
/// the builds: and builders: config lines)`; the builder's storage lives
/// in `root`.
async fn tree(
    d: &std::path::Path,
    host: &str,
    buildah: &Buildah,
    root: &std::path::Path,
) -> (String, String, String, String) {
    let status = std::fs::read_to_string(fixtures().join("dpkg/status"))
        .unwrap()
        .replace("Version: 3.0.19-1~deb12u2", "Version: 3.0.11-1~deb12u1");
    debian_root(&d.join("base"), &status, BOOKWORM);
    let base = format!("{host}/golden/base:old");
    buildah
        .build_push(&d.join("base"), DEBIAN_ROOT_DOCKERFILE, &base, &[])
        .await;
    let app = format!("{host}/apps/app:1");
    let child = format!("{host}/apps/child:1");
    write(
        &d.join("images/app/Dockerfile"),
        &format!("FROM {base}\nCOPY app.txt /app.txt\n"),
    );
    write(&d.join("images/app/app.txt"), "app\n");
    write(
        &d.join("images/child/Dockerfile"),
        &format!("FROM {app}\nCOPY child.txt /child.txt\n"),
    );
    write(&d.join("images/child/child.txt"), "child\n");
    let config = format!(
        "builds:\n  - {{image: {app}, context: images/app}}\n  - {{image: {child}, context: images/child}}\n\
         builders:\n  buildah:\n    root: {r}/root\n    runroot: {r}/run\n    storage_driver: vfs\n",
        r = root.display()
    );
    (base, app, child, config)
}

async fn vulnerable_plan_and_rebuild(db: Db) {
    let reg = Registry::start().await;
    let host = reg.host();
    let env = Env::new(db).await;
    let d = env.path().to_path_buf();
    let buildah = Buildah::new();

    let root = tempfile::tempdir().unwrap();
    let (base, app, child, builds) = tree(&d, &host, &buildah, root.path()).await;
    let cfg = env.config(&format!(
        "{builds}policy:\n  mode: thresholds\n  thresholds: \"high > 0\"\n\
         cascade:\n  promote_unfixed: false\n"
    ));
    let cfg = cfg.to_str().unwrap();
    let first = env.rebuild(cfg, &["--all"]).await;
    first.expect(0);
    env.run(&["scan", &base, &app, &child]).await.expect(0);

    // Nothing is known to be vulnerable yet: an empty plan.
    let none = env
        .run(&["plan", "--config", cfg, "--vulnerable", "--json"])
        .await;
    none.expect(0);
    assert!(wave_images(&none.json()).is_empty(), "{none}");

    let debian = osv_fixtures().join("debian");
    env.run(&["vulns", "import", "--config", cfg, debian.to_str().unwrap()])
        .await
        .expect(0);
    for args in [
        vec!["plan", "--config", cfg, "--vulnerable", "--json"],
        vec![
            "plan",
            "--config",
            cfg,
            "--vulnerable",
            "CVE-2023-5363",
            "--json",
        ],
        vec![
            "plan",
            "--config",
            cfg,
            "--vulnerable",
            "DSA-5532-1",
            "--json",
        ],
    ] {
        let p = env.run(&args).await;
        p.expect(0);
        let plan = p.json();
        // The app and the child both hold the base's openssl; the child
        // waits for the app.
        assert_eq!(
            wave_images(&plan),
            vec![vec![app.clone()], vec![child.clone()]],
            "{args:?}: {plan:#}"
        );
        assert!(
            plan["waves"][0][0]["reason"]
                .as_str()
                .unwrap()
                .contains("CVE-2023-5363"),
            "{plan:#}"
        );
        assert_eq!(plan["not_buildable"], serde_json::json!([base]), "{plan:#}");
    }
    // A vulnerability nothing holds: nothing to do.
    let other = env
        .run(&[
            "plan",
            "--config",
            cfg,
            "--vulnerable",
            "CVE-1999-0001",
            "--json",
        ])
        .await;
    other.expect(0);
    assert!(wave_images(&other.json()).is_empty(), "{other}");

    // The rebuild runs the plan, parents first.
    let push = reg.pusher();
    let app_before = push.head_digest("apps/app", "1").await.unwrap();
    let run = env.rebuild(cfg, &["--vulnerable"]).await;
    run.expect(0);
    let run = run.json();
    assert_eq!(run["run"]["state"], "done", "{run:#}");
    let built: Vec<&str> = run["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["image"].as_str().unwrap())
        .collect();
    assert_eq!(built, [app.as_str(), child.as_str()], "{run:#}");
    // Rebuilt on the same base, the app still holds the base's openssl:
    // not fixed, and why. The child (built on the app, not vulnerable by
    // itself in the plan's first wave) is verified too, as it was judged
    // vulnerable before.
    let verified = run["verified"].as_array().unwrap();
    let app_v = verified
        .iter()
        .find(|v| v["image"] == app.as_str())
        .unwrap();
    let f = &app_v["findings"][0];
    assert_eq!(f["id"], "CVE-2023-5363", "{run:#}");
    assert_eq!(f["outcome"], "not fixed", "{run:#}");
    assert!(
        f["reason"].as_str().unwrap().contains(&format!(
            "comes from the base {base}, which must move first"
        )),
        "{run:#}"
    );
    // It fixed nothing, and `promote_unfixed: false`: the version is
    // pushed, the tag stays where it was.
    let item = &run["items"][0];
    assert!(
        item["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("not promoted: the rebuild fixed none of CVE-2023-5363"),
        "{run:#}"
    );
    assert_eq!(push.head_digest("apps/app", "1").await.unwrap(), app_before);

    // The base moves to the fixed openssl (its upstream published a fix):
    // now the rebuild fixes the finding, and the rescan says so.
    let fixed = std::fs::read_to_string(fixtures().join("dpkg/status")).unwrap();
    write(&d.join("base/var/lib/dpkg/status"), &fixed);
    buildah
        .build_push(&d.join("base"), DEBIAN_ROOT_DOCKERFILE, &base, &[])
        .await;
    env.run(&["scan", &base]).await.expect(0);
    let p = env
        .run(&["plan", "--config", cfg, "--vulnerable", "--json"])
        .await;
    p.expect(0);
    assert_eq!(p.json()["not_buildable"], serde_json::json!([]), "{p}");
    let run = env.rebuild(cfg, &["--vulnerable"]).await;
    run.expect(0);
    let run = run.json();
    let verified = run["verified"].as_array().unwrap();
    let app_v = verified
        .iter()
        .find(|v| v["image"] == app.as_str())
        .unwrap();
    let outcomes: Vec<&str> = app_v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["outcome"].as_str().unwrap())
        .collect();
    assert!(
        !outcomes.is_empty() && outcomes.iter().all(|o| *o == "fixed"),
        "{run:#}"
    );
    // Fixed: promoted.
    assert_ne!(push.head_digest("apps/app", "1").await.unwrap(), app_before);
    // Nothing is vulnerable any more.
    let after = env
        .run(&["plan", "--config", cfg, "--vulnerable", "--json"])
        .await;
    after.expect(0);
    assert!(wave_images(&after.json()).is_empty(), "{after}");
}

both_stores!(vulnerable_plan_and_rebuild);

/// `on_vulnerable: [cascade, alert]`: the daemon syncs a feed, each
/// vulnerable image gets its event and alert, and one cascade rebuilds the
/// app, then its child (the child's own event waits for the app's). The
/// base no one here builds is named, and nothing is built twice.
async fn vulnerability_events_cascade(db: Db) {
    use std::time::Duration;
    let reg = Registry::start().await;
    let host = reg.host();
    let env = Env::new(db).await;
    let d = env.path().to_path_buf();
    let buildah = Buildah::new();
    let mirror = freshen_testkit::OsvMirror::start().await;
    let hook = freshen_testkit::WebhookReceiver::start("k").await;
    let root = tempfile::tempdir().unwrap();
    let (base, app, child, builds) = tree(&d, &host, &buildah, root.path()).await;
    mirror.publish_dir("Debian", &osv_fixtures().join("debian"));
    let cfg = env.config(&format!(
        "jitter: 0s\n{builds}\
         triggers:\n  alert:\n    webhook: {{url: \"{hook}\", secret: \"k\", timeout: 5s}}\n\
         policy:\n  mode: thresholds\n  thresholds: \"high > 0\"\n  on_vulnerable: [cascade, alert]\n\
         feeds:\n  osv:\n    url: {feed}\n    schedule: 1h\n\
         cascade:\n  promote_unfixed: false\n",
        hook = hook.url(),
        feed = mirror.url(),
    ));
    let cfg = cfg.to_str().unwrap();
    let first = env.rebuild(cfg, &["--all"]).await;
    first.expect(0);
    env.run(&["scan", &base, &app, &child]).await.expect(0);

    let mut daemon = env.spawn(&["watch", "--config", cfg], "watch.log");
    // Three vulnerable images: three events, three alerts.
    let got = hook.wait_for(3, Duration::from_secs(60)).await;
    let mut alerted: Vec<&str> = got
        .iter()
        .map(|r| r.body["reference"].as_str().unwrap())
        .collect();
    alerted.sort();
    let mut want = vec![base.as_str(), app.as_str(), child.as_str()];
    want.sort();
    assert_eq!(alerted, want);
    // One run, from the app's event: the app, then the child.
    freshen_testkit::eventually(
        Duration::from_secs(120),
        Duration::from_millis(500),
        || env.log("watch.log"),
        async || {
            let r = env.run(&["rebuilds", "--json"]).await;
            let runs = r.json();
            let done = runs.as_array()?.iter().any(|x| x["state"] == "done");
            done.then_some(())
        },
    )
    .await;
    // The child's and the base's cascades finish too, without a run.
    freshen_testkit::eventually(
        Duration::from_secs(60),
        Duration::from_millis(500),
        || env.log("watch.log"),
        async || {
            let r = env.run(&["outbox", "list", "--json"]).await;
            let done = r
                .json()
                .as_array()?
                .iter()
                .filter(|d| d["trigger"] == "cascade" && d["state"] == "delivered")
                .count();
            (done == 3).then_some(())
        },
    )
    .await;
    let runs = env.run(&["rebuilds", "--json"]).await.json();
    let by_event: Vec<&Value> = runs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !r["event_id"].is_null())
        .collect();
    assert_eq!(by_event.len(), 1, "{runs:#}\n{}", env.log("watch.log"));
    let report = env
        .run(&["rebuilds", by_event[0]["id"].as_str().unwrap(), "--json"])
        .await;
    report.expect(0);
    let report = report.json();
    let built: Vec<&str> = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["image"].as_str().unwrap())
        .collect();
    assert_eq!(built, [app.as_str(), child.as_str()], "{report:#}");
    // Rebuilt on the same vulnerable base, nothing was fixed: with
    // `promote_unfixed: false` the tags stay.
    for item in report["items"].as_array().unwrap() {
        assert!(
            item["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("not promoted: the rebuild fixed none of CVE-2023-5363"),
            "{report:#}"
        );
    }
    std::process::Command::new("kill")
        .args(["-TERM", &daemon.id().unwrap().to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), daemon.wait())
        .await
        .expect("exits within 30 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "clean exit: {status:?}");
}

both_stores!(vulnerability_events_cascade);

/// The path: a feed sync makes the app (built on a base that has
/// since moved to the fixed openssl) and its child vulnerable; one event
/// each, one alert each; the app's cascade rebuilds the app on the fixed
/// base, then the child; each rebuild is read by digest before promotion
/// and the findings are `fixed`; a second sync makes no new event.
async fn vulnerability_cascade_fixes(db: Db) {
    use std::time::Duration;
    let reg = Registry::start().await;
    let host = reg.host();
    let env = Env::new(db).await;
    let d = env.path().to_path_buf();
    let buildah = Buildah::new();
    let mirror = freshen_testkit::OsvMirror::start().await;
    let hook = freshen_testkit::WebhookReceiver::start("k").await;
    let root = tempfile::tempdir().unwrap();
    let (base, app, child, builds) = tree(&d, &host, &buildah, root.path()).await;
    let cfg = env.config(&format!(
        "jitter: 0s\n{builds}\
         triggers:\n  alert:\n    webhook: {{url: \"{hook}\", secret: \"k\", timeout: 5s}}\n\
         policy:\n  mode: thresholds\n  thresholds: \"high > 0\"\n  on_vulnerable: [cascade, alert]\n\
         feeds:\n  osv:\n    url: {feed}\n    schedule: 1h\n",
        hook = hook.url(),
        feed = mirror.url(),
    ));
    let cfg = cfg.to_str().unwrap();
    env.rebuild(cfg, &["--all"]).await.expect(0);
    env.run(&["scan", &base, &app, &child]).await.expect(0);
    // Upstream fixed the base under the same tag; the inventory knows it.
    write(
        &d.join("base/var/lib/dpkg/status"),
        &std::fs::read_to_string(fixtures().join("dpkg/status")).unwrap(),
    );
    buildah
        .build_push(&d.join("base"), DEBIAN_ROOT_DOCKERFILE, &base, &[])
        .await;
    env.run(&["scan", &base]).await.expect(0);

    mirror.publish_dir("Debian", &osv_fixtures().join("debian"));
    let mut daemon = env.spawn(&["watch", "--config", cfg], "watch.log");
    let got = hook.wait_for(2, Duration::from_secs(60)).await;
    let mut alerted: Vec<&str> = got
        .iter()
        .map(|r| r.body["reference"].as_str().unwrap())
        .collect();
    alerted.sort();
    assert_eq!(alerted, [app.as_str(), child.as_str()]);
    assert!(
        got.iter()
            .all(|r| r.body["vulnerability"]["findings"][0]["id"] == "CVE-2023-5363")
    );
    freshen_testkit::eventually(
        Duration::from_secs(120),
        Duration::from_millis(500),
        || env.log("watch.log"),
        async || {
            let r = env.run(&["outbox", "list", "--json"]).await;
            let done = r
                .json()
                .as_array()?
                .iter()
                .filter(|d| d["trigger"] == "cascade" && d["state"] == "delivered")
                .count();
            (done == 2).then_some(())
        },
    )
    .await;
    let runs = env.run(&["rebuilds", "--json"]).await.json();
    let run = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| !r["event_id"].is_null())
        .expect("a cascade run");
    let report = env
        .run(&["rebuilds", run["id"].as_str().unwrap(), "--json"])
        .await;
    report.expect(0);
    let report = report.json();
    for item in report["items"].as_array().unwrap() {
        assert_eq!(item["state"], "done", "{report:#}");
        assert!(
            item["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("verified: CVE-2023-5363 fixed"),
            "{report:#}"
        );
    }
    // The rescan of the promoted app: the finding is gone.
    let v = env.run(&["vulns", &app, "--json"]).await;
    v.expect(0);
    assert_eq!(
        v.json()["platforms"][0]["findings"],
        serde_json::json!([]),
        "{}",
        v.stdout
    );
    // A second sync: no new event, no new alert.
    let again = env.run(&["vulns", "sync", "--config", cfg, "--json"]).await;
    again.expect(0);
    assert_eq!(again.json()["events"], serde_json::json!([]));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(hook.received().len(), 2, "{}", env.log("watch.log"));
    std::process::Command::new("kill")
        .args(["-TERM", &daemon.id().unwrap().to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), daemon.wait())
        .await
        .expect("exits within 30 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "clean exit: {status:?}");
}

both_stores!(vulnerability_cascade_fixes);

/// No fix exists yet (the advisories name no fixed version): the event's
/// findings say so (`fixed: null`), the rebuild can't fix it, and with
/// `promote_unfixed: false` nothing is promoted.
async fn no_fix_yet_is_not_promoted(db: Db) {
    let reg = Registry::start().await;
    let host = reg.host();
    let env = Env::new(db).await;
    let d = env.path().to_path_buf();
    let buildah = Buildah::new();
    let root = tempfile::tempdir().unwrap();
    let (base, app, child, builds) = tree(&d, &host, &buildah, root.path()).await;
    let cfg = env.config(&format!(
        "{builds}\
         triggers:\n  alert:\n    webhook: {{url: \"http://127.0.0.1:9/\", timeout: 1s}}\n\
         policy:\n  mode: thresholds\n  thresholds: \"high > 0\"\n  on_vulnerable: [alert]\n\
         cascade:\n  promote_unfixed: false\n"
    ));
    let cfg = cfg.to_str().unwrap();
    env.rebuild(cfg, &["--all"]).await.expect(0);
    env.run(&["scan", &base, &app, &child]).await.expect(0);
    // The Debian records as published before any fix: no `fixed` event.
    let unfixed = d.join("unfixed");
    std::fs::create_dir_all(&unfixed).unwrap();
    for e in std::fs::read_dir(osv_fixtures().join("debian")).unwrap() {
        let p = e.unwrap().path();
        let mut rec: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        for a in rec["affected"].as_array_mut().unwrap() {
            for r in a["ranges"].as_array_mut().unwrap() {
                r["events"] = serde_json::json!([{"introduced": "0"}]);
            }
        }
        std::fs::write(unfixed.join(p.file_name().unwrap()), rec.to_string()).unwrap();
    }
    env.run(&[
        "vulns",
        "import",
        "--config",
        cfg,
        unfixed.to_str().unwrap(),
    ])
    .await
    .expect(0);
    let events = env.run(&["events", &app, "--json"]).await;
    events.expect(0);
    let events = events.json();
    let e = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["source"] == "vulnerability")
        .expect("a vulnerability event for the app");
    let findings = e["vulnerability"]["findings"].as_array().unwrap();
    assert!(
        findings.iter().all(|f| f["fixed"].is_null()),
        "the event says no fix exists: {e:#}"
    );

    let push = reg.pusher();
    let before = push.head_digest("apps/app", "1").await.unwrap();
    let run = env.rebuild(cfg, &["--vulnerable"]).await;
    run.expect(0);
    let run = run.json();
    let app_v = run["verified"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["image"] == app.as_str())
        .unwrap();
    assert_eq!(app_v["findings"][0]["outcome"], "not fixed", "{run:#}");
    assert_eq!(
        app_v["findings"][0]["reason"], "no fixed version in the distribution yet",
        "{run:#}"
    );
    for item in run["items"].as_array().unwrap() {
        assert!(
            item["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("not promoted"),
            "{run:#}"
        );
    }
    assert_eq!(push.head_digest("apps/app", "1").await.unwrap(), before);
}

both_stores!(no_fix_yet_is_not_promoted);
