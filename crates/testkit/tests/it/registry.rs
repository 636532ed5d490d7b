use std::process::Command;
use std::time::Duration;

use freshen_testkit::{
    ACCEPT_ALL_MANIFESTS, DOCKER_LIST, DOCKER_MANIFEST, FaultProxy, OCI_INDEX, OCI_MANIFEST,
    Registry, RegistryOptions, WebhookReceiver, sha256_digest,
};
use serde_json::Value;

use crate::client;

fn skopeo() -> &'static str {
    let ok = Command::new("skopeo").arg("--version").output().is_ok();
    assert!(
        ok,
        "skopeo is not installed: install it with `apt-get install skopeo`"
    );
    "skopeo"
}

/// `skopeo [global...] inspect --tls-verify=false [args...]` as JSON.
fn skopeo_inspect(global: &[&str], args: &[&str]) -> Value {
    let out = Command::new(skopeo())
        .args(global)
        .arg("inspect")
        .arg("--tls-verify=false")
        .args(args)
        .output()
        .expect("running skopeo");
    assert!(
        out.status.success(),
        "skopeo inspect {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("skopeo JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn push_image_is_a_real_image() {
    let reg = Registry::start().await;
    assert!(reg.host().starts_with("127.0.0.1:"));
    let p = reg.pusher();
    let d = p.push_image("team/app", "1", "linux/arm/v7", "s1").await;
    assert!(d.starts_with("sha256:") && d.len() == 71, "{d}");
    // Same seed and platform: same digest; another seed: another digest.
    assert_eq!(
        p.push_image("team/app", "1b", "linux/arm/v7", "s1").await,
        d
    );
    let d2 = p.push_image("team/app", "2", "linux/arm/v7", "s2").await;
    assert_ne!(d, d2);

    let c = client();
    let resp = c
        .get(format!("{}/v2/team/app/manifests/1", reg.url()))
        .header("Accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["docker-content-digest"], d.as_str());
    assert_eq!(resp.headers()["content-type"], OCI_MANIFEST);
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(sha256_digest(&bytes), d);
    let m: Value = serde_json::from_slice(&bytes).unwrap();
    let config_digest = m["config"]["digest"].as_str().unwrap();
    let config: Value = c
        .get(format!("{}/v2/team/app/blobs/{config_digest}", reg.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["architecture"], "arm");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["variant"], "v7");
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);

    // A real client agrees.
    let inspected = skopeo_inspect(&[], &[&format!("docker://{}/team/app:1", reg.host())]);
    assert_eq!(inspected["Digest"], d.as_str());
    assert_eq!(inspected["Architecture"], "arm");
    let config = skopeo_inspect(
        &[],
        &["--config", &format!("docker://{}/team/app:1", reg.host())],
    );
    assert_eq!(config["variant"], "v7");

    // HEAD answers the digest; tag() moves a tag with the exact bytes.
    assert_eq!(
        p.head_digest("team/app", "2").await.as_deref(),
        Some(d2.as_str())
    );
    p.tag("team/app", &d, "2").await;
    assert_eq!(
        p.head_digest("team/app", "2").await.as_deref(),
        Some(d.as_str())
    );
    assert_eq!(p.head_digest("team/app", "nope").await, None);
    p.delete_manifest("team/app", &d).await;
    assert_eq!(p.head_digest("team/app", "1").await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn push_index_with_attestation_and_docker_list() {
    let reg = Registry::start().await;
    let p = reg.pusher();
    let amd = p.push_image_untagged("multi", "linux/amd64", "v1").await;
    let arm = p.push_image_untagged("multi", "linux/arm/v7", "v1").await;
    // Untagged: no tags yet.
    let tags: Value = client()
        .get(format!("{}/v2/multi/tags/list", reg.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        tags["tags"].is_null() || tags["tags"].as_array().unwrap().is_empty(),
        "{tags}"
    );

    let idx = p
        .push_index(
            "multi",
            "latest",
            &[("linux/amd64", &amd), ("linux/arm/v7", &arm)],
            true,
        )
        .await;
    let (mt, bytes) = p.get_manifest("multi", "latest").await.unwrap();
    assert_eq!(mt, OCI_INDEX);
    assert_eq!(sha256_digest(&bytes), idx);
    let index: Value = serde_json::from_slice(&bytes).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0]["platform"]["architecture"], "amd64");
    assert_eq!(entries[1]["platform"]["variant"], "v7");
    assert_eq!(entries[2]["platform"]["os"], "unknown");
    assert_eq!(
        entries[2]["annotations"]["vnd.docker.reference.type"],
        "attestation-manifest"
    );
    assert_eq!(
        entries[2]["annotations"]["vnd.docker.reference.digest"],
        amd.as_str()
    );
    let att = entries[2]["digest"].as_str().unwrap();
    assert!(p.get_manifest("multi", att).await.is_some());

    // skopeo picks the platform's image from the index (its `Digest` is
    // the index's, the rest is the chosen image's).
    let arm_ref = format!("docker://{}/multi:latest", reg.host());
    let global = ["--override-arch", "arm", "--override-variant", "v7"];
    let inspected = skopeo_inspect(&global, &[&arm_ref]);
    assert_eq!(inspected["Digest"], idx.as_str());
    assert_eq!(inspected["Architecture"], "arm");
    let config = skopeo_inspect(&global, &["--config", &arm_ref]);
    assert_eq!(config["variant"], "v7");
    let config = skopeo_inspect(&["--override-arch", "amd64"], &["--config", &arm_ref]);
    assert_eq!(config["architecture"], "amd64");
    let raw = skopeo_inspect(
        &[],
        &["--raw", &format!("docker://{}/multi:latest", reg.host())],
    );
    assert_eq!(raw["mediaType"], OCI_INDEX);

    // Docker media types, and a gzip layer a real client can copy.
    let da = p
        .push_docker_image_untagged("dock", "linux/amd64", "d")
        .await;
    let db = p
        .push_docker_image_untagged("dock", "linux/arm64", "d")
        .await;
    let list = p
        .push_docker_list("dock", "v1", &[("linux/amd64", &da), ("linux/arm64", &db)])
        .await;
    let (mt, _) = p.get_manifest("dock", "v1").await.unwrap();
    assert_eq!(mt, DOCKER_LIST);
    assert_eq!(
        p.head_digest("dock", "v1").await.as_deref(),
        Some(list.as_str())
    );
    let (mt, _) = p.get_manifest("dock", &da).await.unwrap();
    assert_eq!(mt, DOCKER_MANIFEST);
    let out_dir = tempfile::tempdir().unwrap();
    let out = Command::new(skopeo())
        .args(["--override-arch", "amd64", "copy", "--src-tls-verify=false"])
        .arg(format!("docker://{}/dock:v1", reg.host()))
        .arg(format!("dir:{}", out_dir.path().display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gz = std::fs::read_dir(out_dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            std::fs::read(p)
                .map(|b| b.starts_with(&[0x1f, 0x8b]))
                .unwrap_or(false)
        })
        .expect("a gzip layer");
    let listed = Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -dc < '{}' | tar -tf -", gz.display()))
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout).trim(),
        "freshen/seed.txt"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn many_tags_and_pagination() {
    let reg = Registry::start().await;
    let p = reg.pusher();
    let d = p.push_image("many", "base", "linux/amd64", "m").await;
    let tags = p.create_tags("many", 45, &d).await;
    assert_eq!(tags.len(), 45);
    assert_eq!(tags[0], "t00000");

    let c = client();
    // Distribution 2.8 ignores `n` on tags/list: one page with all 46 tags.
    let all: Value = c
        .get(format!("{}/v2/many/tags/list?n=10", reg.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["tags"].as_array().unwrap().len(), 46);

    // Through the proxy's spec pagination, follow Link headers.
    let proxy = FaultProxy::start(&reg.host()).await;
    proxy.set_tag_page_size(Some(100));
    let mut next = Some("/v2/many/tags/list?n=10".to_string());
    let mut seen = Vec::new();
    let mut pages = 0;
    while let Some(path) = next.take() {
        let resp = c
            .get(format!("{}{path}", proxy.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        next = resp.headers().get("link").map(|l| {
            let l = l.to_str().unwrap();
            assert!(l.ends_with("; rel=\"next\""), "{l}");
            l[l.find('<').unwrap() + 1..l.find('>').unwrap()].to_string()
        });
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["name"], "many");
        let page: Vec<String> = body["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        assert!(page.len() <= 10);
        seen.extend(page);
        pages += 1;
    }
    assert_eq!(pages, 5);
    let mut expected = tags.clone();
    expected.push("base".to_string());
    expected.sort();
    assert_eq!(seen, expected);

    // The real registry paginates the catalog itself.
    for r in ["cat/a", "cat/b", "cat/c"] {
        p.push_image(r, "1", "linux/amd64", "c").await;
    }
    let resp = c
        .get(format!("{}/v2/_catalog?n=2", reg.url()))
        .send()
        .await
        .unwrap();
    let link = resp.headers()["link"].to_str().unwrap().to_string();
    assert!(link.contains("rel=\"next\""), "{link}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["repositories"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth_registry() {
    let reg = Registry::start_with_auth("alice", "s3cret").await;
    assert_eq!(
        reg.credentials(),
        Some(("alice".to_string(), "s3cret".to_string()))
    );
    let c = client();
    let resp = c.get(format!("{}/v2/", reg.url())).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Basic realm="), "{challenge}");
    let bad = c
        .get(format!("{}/v2/", reg.url()))
        .basic_auth("alice", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let ok = c
        .get(format!("{}/v2/", reg.url()))
        .basic_auth("alice", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);

    let d = reg
        .pusher()
        .push_image("private/app", "1", "linux/amd64", "a")
        .await;
    let anon = c
        .head(format!("{}/v2/private/app/manifests/1", reg.url()))
        .header("Accept", ACCEPT_ALL_MANIFESTS)
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    let authed = c
        .head(format!("{}/v2/private/app/manifests/1", reg.url()))
        .header("Accept", ACCEPT_ALL_MANIFESTS)
        .basic_auth("alice", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(authed.headers()["docker-content-digest"], d.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn notifications_reach_the_endpoint() {
    let hook = WebhookReceiver::start("unused").await;
    let reg = Registry::start_with(RegistryOptions {
        auth: None,
        notifications_url: Some(format!("{}/registry-events", hook.base_url())),
        ..RegistryOptions::default()
    })
    .await;
    let d = reg
        .pusher()
        .push_image("notify/app", "v1", "linux/amd64", "n")
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let pushed = hook.received().into_iter().any(|r| {
            r.path == "/registry-events"
                && r.body["events"].as_array().is_some_and(|evs| {
                    evs.iter().any(|e| {
                        e["action"] == "push"
                            && e["target"]["digest"] == d.as_str()
                            && e["target"]["tag"] == "v1"
                            && e["target"]["repository"] == "notify/app"
                    })
                })
        });
        if pushed {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no push event for {d}; got {:?}; registry log:\n{}",
            hook.received()
                .iter()
                .map(|r| r.body.clone())
                .collect::<Vec<_>>(),
            reg.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_the_registry_stops_it() {
    let reg = Registry::start().await;
    let url = format!("{}/v2/", reg.url());
    let storage = reg.storage_dir();
    assert!(storage.exists());
    drop(reg);
    assert!(!storage.exists());
    let res = client()
        .get(&url)
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(res.is_err(), "registry still answering after drop");
}
