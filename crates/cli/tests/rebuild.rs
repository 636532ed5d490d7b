//! The cascade end to end with real parts: a three-level tree (base -> mid
//! -> three apps) built by buildah into a real registry; the base's
//! upstream changes; `freshen rebuild` rebuilds mid before the apps,
//! versions and promotes them, and the inventory shows them on the new
//! base. A run killed in the middle resumes without redoing what was done.

mod common;

use std::time::Duration;

use common::{base_digests, golden_base, holding_buildah, rig, tags, upstream_v1_v2, write};
use freshen_testkit::{Db, both_stores};

async fn cascade_rebuilds_in_order(db: Db) {
    let (reg, host, push, buildah, env, d) = rig(db).await;

    // The upstream base ("debian"), two versions, v1 at the tag for now.
    upstream_v1_v2(&buildah, &d, &host).await;
    let v1 = push.head_digest("upstream/os", "v1").await.unwrap();
    let v2 = push.head_digest("upstream/os", "v2").await.unwrap();
    push.tag("upstream/os", &v1, "stable").await;

    // Our tree: golden/base FROM upstream, golden/mid FROM base, three apps FROM mid.
    golden_base(&d, &host);
    write(
        &d.join("images/mid/Dockerfile"),
        &format!("ARG REG={host}\nFROM ${{REG}}/golden/base:1\nCOPY mid.txt /mid.txt\n"),
    );
    write(&d.join("images/mid/mid.txt"), "mid\n");
    for app in ["api", "web", "worker"] {
        write(
            &d.join(format!("apps/{app}/1.0/Dockerfile")),
            &format!("FROM {host}/golden/mid:1\nCOPY app.txt /{app}.txt\n"),
        );
        write(
            &d.join(format!("apps/{app}/1.0/app.txt")),
            &format!("{app}\n"),
        );
    }
    let buildah_root = tempfile::tempdir().unwrap();
    // A wrapper that holds pushes of apps while `hold` exists: the test
    // kills the run there, in the middle of wave 3.
    let wrapper = holding_buildah(&d);
    let config = env.config(&format!(
        "builds:\n  - {{image: {host}/golden/base:1, context: images/base, promote: [\"{{tag}}\", latest]}}\n  - {{image: {host}/golden/mid:1, context: images/mid}}\n\
         discover:\n  - {{root: apps, image: \"{host}/apps/{{app}}:{{version}}\"}}\n\
         builders:\n  buildah:\n    command: {wrapper}\n    root: {root}/root\n    runroot: {root}/run\n    storage_driver: vfs\n",
        wrapper = wrapper.display(),
        root = buildah_root.path().display(),
    ));
    let cfg = config.to_str().unwrap();

    // First, build everything once (parents first).
    let all = env.rebuild(cfg, &["--all"]).await;
    all.expect(0);
    assert_eq!(all.json()["run"]["state"], "done", "{all}");
    let base1 = push.head_digest("golden/base", "1").await.unwrap();
    let mid1 = push.head_digest("golden/mid", "1").await.unwrap();
    let api1 = push.head_digest("apps/api", "1.0").await.unwrap();

    // The plan for the upstream change: base, then mid, then the three apps.
    push.tag("upstream/os", &v2, "stable").await;
    let plan = env
        .plan(cfg, &format!("{host}/upstream/os:stable"), &["--json"])
        .await;
    plan.expect(0);
    let waves: Vec<usize> = plan.json()["waves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_array().unwrap().len())
        .collect();
    assert_eq!(waves, [1, 1, 3], "{plan}");

    // Rebuild, and kill it while the apps are being pushed.
    write(&d.join("hold"), "");
    let mut child = env.spawn(
        &[
            "rebuild",
            "--config",
            cfg,
            "--base",
            &format!("{host}/upstream/os:stable"),
            "--parallel",
            "1",
        ],
        "rebuild.log",
    );
    // Wait until mid is done and an app is being pushed (held), then kill -9.
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never reached the apps: {}",
            env.log("rebuild.log")
        );
        let runs = env.run(&["rebuilds", "--json"]).await;
        if let Some(id) = runs.json()[0]["id"]
            .as_str()
            .filter(|_| runs.json()[0]["state"] == "running")
        {
            let items = env.run(&["rebuilds", id, "--json"]).await.json();
            let state = |image: &str| {
                items["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|i| i["image"] == image)
                    .map(|i| i["state"].as_str().unwrap().to_string())
                    .unwrap_or_default()
            };
            if state(&format!("{host}/golden/mid:1")) == "done"
                && ["api", "web", "worker"]
                    .iter()
                    .any(|a| state(&format!("{host}/apps/{a}:1.0")) == "running")
            {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let base2 = push.head_digest("golden/base", "1").await.unwrap();
    let mid2 = push.head_digest("golden/mid", "1").await.unwrap();
    assert_ne!(base2, base1);
    assert_ne!(mid2, mid1);
    assert_eq!(
        push.head_digest("golden/base", "latest").await.unwrap(),
        base2,
        "promoted to latest"
    );
    assert_eq!(
        push.head_digest("apps/api", "1.0").await.unwrap(),
        api1,
        "apps not done yet"
    );
    let mid_versions_before = tags(&reg, "golden/mid").await;

    // Resume: the apps only; mid and base are not rebuilt.
    std::fs::remove_file(d.join("hold")).unwrap();
    let resumed = env.rebuild(cfg, &["--resume"]).await;
    resumed.expect(0);
    let r = resumed.json();
    assert_eq!(r["run"]["state"], "done", "{r}");
    assert_eq!(
        tags(&reg, "golden/mid").await,
        mid_versions_before,
        "mid was not rebuilt again"
    );
    assert_eq!(push.head_digest("golden/mid", "1").await.unwrap(), mid2);
    let items = r["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    assert!(items.iter().all(|i| i["state"] == "done"), "{r}");
    // Parents first: mid finished before any app started.
    let at = |image: &str, field: &str| {
        items.iter().find(|i| i["image"] == image).unwrap()[field]
            .as_str()
            .unwrap()
            .to_string()
    };
    let mid_done = at(&format!("{host}/golden/mid:1"), "finished_at");
    for app in ["api", "web", "worker"] {
        assert!(
            at(&format!("{host}/apps/{app}:1.0"), "started_at") > mid_done,
            "{r}"
        );
    }
    // Versions: year.week.build, increasing, never repeated.
    let base_tags = tags(&reg, "golden/base").await;
    let versions: Vec<&String> = base_tags
        .iter()
        .filter(|t| t.matches('.').count() == 2)
        .collect();
    assert_eq!(versions.len(), 2, "{base_tags:?}");
    // Every app moved, and the inventory shows it on the new mid.
    for app in ["api", "web", "worker"] {
        let now = push
            .head_digest(&format!("apps/{app}"), "1.0")
            .await
            .unwrap();
        let (bases, show) = base_digests(&env, &format!("{host}/apps/{app}:1.0")).await;
        assert!(bases.contains(&mid2), "{app} on the new mid: {show}");
        assert_ne!(now, "");
    }
}

both_stores!(cascade_rebuilds_in_order);
