//! The `podman` executor with real parts: `freshen rebuild` runs podman
//! (chroot isolation, vfs storage) on a two-level tree and pushes to a
//! real registry: a two-platform base as an index, an app on it as one
//! manifest; the digests freshen records are the registry's, the versions
//! are promoted, and the inventory has the app on the new base.

mod common;

use common::{base_digests, golden_base, item, rig, write};
use freshen_testkit::{Db, both_stores};
use serde_json::Value;

async fn podman_builds_and_pushes(db: Db) {
    let ok = std::process::Command::new("podman")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "podman is needed for this test: apt-get install podman");
    // `_reg`: the registry runs until the test ends.
    let (_reg, host, push, buildah, env, d) = rig(db).await;
    let both = ["linux/amd64", "linux/arm64"];
    // The upstream OS, for both platforms (made by buildah: not what is tested).
    let up = d.join("upstream");
    write(&up.join("etc/os-release"), "VERSION=1\n");
    buildah
        .build_push_index(
            &up,
            "FROM scratch\nCOPY etc /etc\n",
            &format!("{host}/upstream/os:stable"),
            &both,
        )
        .await;
    golden_base(&d, &host);
    write(
        &d.join("images/api/Dockerfile"),
        &format!("ARG REG={host}\nFROM ${{REG}}/golden/base:1\nCOPY app.txt /srv/app.txt\n"),
    );
    write(&d.join("images/api/app.txt"), "api\n");
    let root = tempfile::tempdir().unwrap();
    let cfg = env.config(&format!(
        "builds:\n  - {{image: {host}/golden/base:1, context: images/base, executor: podman, platforms: [linux/amd64, linux/arm64], promote: [\"{{tag}}\", latest]}}\n  - {{image: {host}/apps/api:1, context: images/api, executor: podman}}\n\
         builders:\n  podman:\n    root: {root}/root\n    runroot: {root}/run\n    storage_driver: vfs\n",
        root = root.path().display(),
    ));
    let run = env.rebuild(cfg.to_str().unwrap(), &["--all"]).await;
    run.expect(0);
    let r = run.json();
    assert_eq!(r["run"]["state"], "done", "{r}");

    // The base: an index of both platforms, under its version and promoted.
    let base = item(&r, &format!("{host}/golden/base:1"));
    let version = base["version"].as_str().unwrap();
    let digest = base["digest"].as_str().unwrap().to_string();
    assert_eq!(
        push.head_digest("golden/base", version).await.unwrap(),
        digest
    );
    assert_eq!(push.head_digest("golden/base", "1").await.unwrap(), digest);
    assert_eq!(
        push.head_digest("golden/base", "latest").await.unwrap(),
        digest
    );
    let (media_type, body) = push.get_manifest("golden/base", &digest).await.unwrap();
    let index: Value = serde_json::from_slice(&body).unwrap();
    let mut platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("not an index ({media_type}): {index}"))
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    platforms.sort();
    assert_eq!(platforms, both);

    // The app: one manifest, on the base podman just pushed.
    let api = item(&r, &format!("{host}/apps/api:1"));
    let api_digest = api["digest"].as_str().unwrap();
    assert_eq!(push.head_digest("apps/api", "1").await.unwrap(), api_digest);
    let (bases, show) = base_digests(&env, &format!("{host}/apps/api:1")).await;
    let amd64 = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "amd64")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        bases.contains(&digest) || bases.contains(&amd64),
        "the app on the new base {digest}: {show}"
    );
}

both_stores!(podman_builds_and_pushes);
