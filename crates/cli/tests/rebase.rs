//! The `rebase` executor with real parts: images built by buildah into a
//! real registry, their upstream base moved, and `freshen rebuild` swapping
//! the base layers at the manifest level. The rebased image, unpacked by
//! skopeo and tar, holds the same files as a real rebuild; a two-platform
//! image is rebased per platform under a new index; an unsafe rebase is
//! refused with the reason, and a configured fallback builds instead.

mod common;

use std::path::Path;

use common::{Buildah, base_digests, golden_base, item, item_detail, rig, unpack, write};
use freshen_testkit::{Db, Pusher, Registry, both_stores};
use serde_json::Value;

/// The upstream OS, version `v` (buildah commits each build as one layer).
fn upstream_context(d: &Path, v: &str) -> std::path::PathBuf {
    let ctx = d.join(format!("upstream-{v}"));
    write(&ctx.join("etc/os-release"), &format!("VERSION={v}\n"));
    write(&ctx.join("etc/keep"), "same in every version\n");
    write(&ctx.join("more/new"), &format!("added in {v}\n"));
    ctx
}

fn upstream_dockerfile(v: &str) -> &'static str {
    if v == "1" {
        "FROM scratch\nCOPY etc /etc\n"
    } else {
        // A file changed, one added.
        "FROM scratch\nCOPY etc /etc\nCOPY more /more\n"
    }
}

/// Pushes the upstream OS v1 and v2 as `upstream/os:v1` and `:v2` (one
/// image each, or an index of `platforms` when given) and tags v1
/// `stable`; returns v2's digest.
async fn upstream(
    buildah: &Buildah,
    push: &Pusher,
    d: &Path,
    host: &str,
    platforms: &[&str],
) -> String {
    for v in ["1", "2"] {
        let (ctx, to) = (upstream_context(d, v), format!("{host}/upstream/os:v{v}"));
        if platforms.is_empty() {
            buildah
                .build_push(&ctx, upstream_dockerfile(v), &to, &[])
                .await;
        } else {
            buildah
                .build_push_index(&ctx, upstream_dockerfile(v), &to, platforms)
                .await;
        }
    }
    let v1 = push.head_digest("upstream/os", "v1").await.unwrap();
    let v2 = push.head_digest("upstream/os", "v2").await.unwrap();
    push.tag("upstream/os", &v1, "stable").await;
    v2
}

/// Our tree: golden/base FROM the upstream tag, apps/api FROM golden/base.
fn tree(d: &Path, host: &str) {
    golden_base(d, host);
    write(
        &d.join("images/api/Dockerfile"),
        &format!("FROM {host}/golden/base:1\nCOPY app.txt /srv/app.txt\nCOPY conf /srv/conf\n"),
    );
    write(&d.join("images/api/app.txt"), "api\n");
    write(&d.join("images/api/conf/settings"), "port=80\n");
}

fn config(host: &str, root: &Path, platforms: &str) -> String {
    format!(
        "builds:\n  - {{image: {host}/golden/base:1, context: images/base, executor: rebase, fallback: buildah{platforms}}}\n  - {{image: {host}/apps/api:1, context: images/api, executor: rebase, fallback: buildah{platforms}}}\n\
         builders:\n  buildah:\n    root: {root}/root\n    runroot: {root}/run\n    storage_driver: vfs\n",
        root = root.display(),
    )
}

/// GETs `/v2/<path>` from the registry as JSON, with `accept` if given.
async fn registry_json(reg: &Registry, path: &str, accept: Option<&str>) -> Value {
    let mut req = reqwest::Client::new().get(format!("{}/v2/{path}", reg.url()));
    if let Some(accept) = accept {
        req = req.header("accept", accept);
    }
    req.send().await.unwrap().json().await.unwrap()
}

/// An image config's diff_ids, read through the registry API.
async fn diff_ids(reg: &Registry, repo: &str, reference: &str) -> Vec<String> {
    let m = registry_json(
        reg,
        &format!("{repo}/manifests/{reference}"),
        Some("application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"),
    )
    .await;
    let c = registry_json(
        reg,
        &format!("{repo}/blobs/{}", m["config"]["digest"].as_str().unwrap()),
        None,
    )
    .await;
    c["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// A manifest or an index, through the registry API.
async fn manifest(reg: &Registry, repo: &str, reference: &str) -> Value {
    registry_json(
        reg,
        &format!("{repo}/manifests/{reference}"),
        Some("application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"),
    )
    .await
}

async fn rebase_matches_a_real_rebuild(db: Db) {
    let (reg, host, push, buildah, env, d) = rig(db).await;
    let v2 = upstream(&buildah, &push, &d, &host, &[]).await;
    tree(&d, &host);
    let root = tempfile::tempdir().unwrap();
    let cfg = env.config(&config(&host, root.path(), ""));
    let cfg = cfg.to_str().unwrap();
    let base = format!("{host}/golden/base:1");
    let api = format!("{host}/apps/api:1");

    // Nothing exists yet: a rebase is refused, and the fallback builds.
    let first = env.rebuild(cfg, &["--all"]).await;
    first.expect(0);
    let first = first.json();
    assert_eq!(first["run"]["state"], "done", "{first}");
    let detail = item_detail(&first, &api);
    assert!(
        detail.contains("rebase refused") && detail.contains("does not exist yet"),
        "{detail}"
    );
    assert!(detail.ends_with("built by buildah"), "{detail}");
    let base1 = push.head_digest("golden/base", "1").await.unwrap();
    let api1 = push.head_digest("apps/api", "1").await.unwrap();

    // The upstream tag moves: both images are rebased, parents first.
    push.tag("upstream/os", &v2, "stable").await;
    let plan = env
        .plan(cfg, &format!("{host}/upstream/os:stable"), &[])
        .await;
    plan.expect(0);
    assert!(
        plan.stdout.contains("rebase, else buildah"),
        "{}",
        plan.stdout
    );
    let run = env
        .rebuild(cfg, &["--base", &format!("{host}/upstream/os:stable")])
        .await;
    run.expect(0);
    let run = run.json();
    assert_eq!(run["run"]["state"], "done", "{run}");
    assert_eq!(
        item(&run, &base)["detail"],
        "rebased (linux/amd64: 1 base layer(s) -> 1)",
        "{run}"
    );
    assert_eq!(
        item(&run, &api)["detail"],
        "rebased (linux/amd64: 2 base layer(s) -> 2)",
        "{run}"
    );
    let base2 = push.head_digest("golden/base", "1").await.unwrap();
    let api2 = push.head_digest("apps/api", "1").await.unwrap();
    assert_ne!(base2, base1);
    assert_ne!(api2, api1);

    // Layers: the new upstream's, then base's own, then api's own.
    let up = diff_ids(&reg, "upstream/os", "v2").await;
    let old_api = diff_ids(&reg, "apps/api", &api1).await;
    let new_api = diff_ids(&reg, "apps/api", &api2).await;
    assert_eq!(new_api.len(), up.len() + 2);
    assert_eq!(new_api[..up.len()], up[..]);
    assert_ne!(old_api[0], up[0]);
    assert_eq!(
        new_api[up.len()..],
        old_api[1..],
        "base's and api's own layers kept"
    );
    // The base annotations name the new base.
    let m = manifest(&reg, "apps/api", &api2).await;
    assert_eq!(
        m["annotations"]["org.opencontainers.image.base.name"],
        base.as_str()
    );
    assert_eq!(
        m["annotations"]["org.opencontainers.image.base.digest"],
        base2.as_str()
    );
    // History follows the layers: one non-empty step per layer.
    let api_config: Value = reqwest::get(format!(
        "{}/v2/apps/api/blobs/{}",
        reg.url(),
        m["config"]["digest"].as_str().unwrap()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let steps = api_config["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["empty_layer"] != true)
        .count();
    assert_eq!(steps, new_api.len(), "{api_config}");

    // The same tree really rebuilt on v2, by buildah directly.
    buildah
        .build_push(
            &d.join("images/base"),
            &format!("FROM {host}/upstream/os:v2\nCOPY base.txt /base.txt\n"),
            &format!("{host}/real/base:1"),
            &[],
        )
        .await;
    buildah
        .build_push(
            &d.join("images/api"),
            &format!("FROM {host}/real/base:1\nCOPY app.txt /srv/app.txt\nCOPY conf /srv/conf\n"),
            &format!("{host}/real/api:1"),
            &[],
        )
        .await;
    let rebased = unpack(&format!("{host}/apps/api@{api2}"), "linux/amd64").await;
    let rebuilt = unpack(&format!("{host}/real/api:1"), "linux/amd64").await;
    assert_eq!(
        rebased.keys().collect::<Vec<_>>(),
        rebuilt.keys().collect::<Vec<_>>()
    );
    assert_eq!(rebased, rebuilt);
    assert_eq!(rebased["etc/os-release"], b"VERSION=2\n");
    assert!(rebased.contains_key("more/new"));

    // The inventory shows the rebased api on the rebased base.
    let (bases, show) = base_digests(&env, &api).await;
    assert!(bases.contains(&base2), "{show}");

    // The upstream changes its architecture: a rebase is unsafe. Without
    // a fallback the image fails with the reason and its child is skipped.
    let v3 = upstream_context(&d, "3");
    buildah
        .build_push_index(
            &v3,
            upstream_dockerfile("3"),
            &format!("{host}/upstream/os:v3"),
            &["linux/arm64"],
        )
        .await;
    let v3 = push.head_digest("upstream/os", "v3").await.unwrap();
    push.tag("upstream/os", &v3, "stable").await;
    let strict = env.config_file(
        "strict.yaml",
        &config(&host, root.path(), "").replace(", fallback: buildah", ""),
    );
    let refused = env
        .rebuild(
            strict.to_str().unwrap(),
            &["--base", &format!("{host}/upstream/os:stable")],
        )
        .await;
    assert_ne!(refused.code, 0, "{refused}");
    let refused = refused.json();
    let why = item_detail(&refused, &base);
    assert_eq!(item(&refused, &base)["state"], "failed");
    assert!(
        why.contains("rebase refused") && why.contains("has no linux/amd64 image"),
        "{why}"
    );
    assert_eq!(item(&refused, &api)["state"], "skipped", "{refused}");
    assert_eq!(push.head_digest("golden/base", "1").await.unwrap(), base2);
}

both_stores!(rebase_matches_a_real_rebuild);

/// A two-platform image: each platform rebased onto the new base's image
/// for it, under a new index.
#[tokio::test]
async fn two_platform_rebase() {
    let (reg, host, push, buildah, env, d) = rig(Db::Sqlite).await;
    let both = ["linux/amd64", "linux/arm64"];
    let v2 = upstream(&buildah, &push, &d, &host, &both).await;
    tree(&d, &host);
    let root = tempfile::tempdir().unwrap();
    let cfg = env.config(&config(
        &host,
        root.path(),
        ", platforms: [linux/amd64, linux/arm64]",
    ));
    let cfg = cfg.to_str().unwrap();
    env.run(&["rebuild", "--config", cfg, "--all"])
        .await
        .expect(0);
    let api1 = push.head_digest("apps/api", "1").await.unwrap();
    push.tag("upstream/os", &v2, "stable").await;
    let run = env
        .rebuild(cfg, &["--base", &format!("{host}/upstream/os:stable")])
        .await;
    run.expect(0);
    let run = run.json();
    let api = format!("{host}/apps/api:1");
    assert_eq!(
        item(&run, &api)["detail"],
        "rebased (linux/amd64: 2 base layer(s) -> 2, linux/arm64: 2 base layer(s) -> 2)",
        "{run}"
    );
    let api2 = push.head_digest("apps/api", "1").await.unwrap();
    assert_ne!(api2, api1);
    let index = manifest(&reg, "apps/api", &api2).await;
    let children = index["manifests"].as_array().unwrap();
    assert_eq!(children.len(), 2, "{index}");
    let upstream = manifest(&reg, "upstream/os", &v2).await;
    for p in both {
        let arch = p.split('/').nth(1).unwrap();
        let pick = |m: &Value| {
            m["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["platform"]["architecture"] == arch)
                .unwrap()["digest"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let ours = diff_ids(&reg, "apps/api", &pick(&index)).await;
        let theirs = diff_ids(&reg, "upstream/os", &pick(&upstream)).await;
        assert_eq!(ours[..theirs.len()], theirs[..], "{p}");
        let files = unpack(&format!("{host}/apps/api@{api2}"), p).await;
        assert_eq!(files["etc/os-release"], b"VERSION=2\n", "{p}");
        assert_eq!(files["srv/app.txt"], b"api\n", "{p}");
        assert_eq!(files["base.txt"], b"base\n", "{p}");
    }
}
