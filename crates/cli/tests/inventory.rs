//! The inventory end to end: images built by buildah into a real registry,
//! scanned by `freshen scan`, queried with `freshen images` / `packages`, on
//! SQLite and PostgreSQL.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{Buildah, Env, fixtures};
use freshen_testkit::{Db, OCI_MANIFEST, Pusher, Registry, both_stores};
use serde_json::{Value, json};

/// The installed packages of a dpkg status file, as dpkg-query reads it.
fn dpkg_query(status: &Path) -> BTreeSet<String> {
    let admin = tempfile::tempdir().unwrap();
    std::fs::copy(status, admin.path().join("status")).unwrap();
    for d in ["info", "updates", "triggers"] {
        std::fs::create_dir_all(admin.path().join(d)).unwrap();
    }
    let out = std::process::Command::new("dpkg-query")
        .arg(format!("--admindir={}", admin.path().display()))
        .args(["-W", "-f", "${db:Status-Abbrev} ${Package} ${Version}\n"])
        .output()
        .expect("dpkg-query (apt-get install dpkg)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("ii"))
        .map(|l| l[4..].trim().to_string())
        .collect()
}

/// Pushes `base`'s layers plus one more as `repo:tag`, with no annotations:
/// a child only its layers can tell apart.
async fn push_unannotated_child(
    host: &str,
    base_repo: &str,
    base_tag: &str,
    repo: &str,
    tag: &str,
) -> String {
    let http = common::http();
    let get = |path: String, accept: &'static str| {
        let http = http.clone();
        async move {
            http.get(format!("http://{host}/v2/{path}"))
                .header("Accept", accept)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        }
    };
    let manifest: Value = serde_json::from_slice(
        &get(format!("{base_repo}/manifests/{base_tag}"), OCI_MANIFEST).await,
    )
    .unwrap();
    let config: Value = serde_json::from_slice(
        &get(
            format!(
                "{base_repo}/blobs/{}",
                manifest["config"]["digest"].as_str().unwrap()
            ),
            "*/*",
        )
        .await,
    )
    .unwrap();
    let push = Pusher::new(host, None);
    let mut layers = Vec::new();
    for l in manifest["layers"].as_array().unwrap() {
        let bytes = get(
            format!("{base_repo}/blobs/{}", l["digest"].as_str().unwrap()),
            "*/*",
        )
        .await;
        push.push_blob(repo, &bytes).await;
        layers.push(l.clone());
    }
    // One more layer: a tar with one file, uncompressed (its digest is its diff_id).
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    std::fs::write(dir.path().join("app/hello"), "hello").unwrap();
    let tar = std::process::Command::new("tar")
        .arg("-C")
        .arg(dir.path())
        .args(["-cf", "-", "app"])
        .output()
        .unwrap();
    assert!(tar.status.success());
    let layer = push.push_blob(repo, &tar.stdout).await;
    layers.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": tar.stdout.len()}));
    let mut config = config;
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .unwrap()
        .push(json!(layer));
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_digest = push.push_blob(repo, &config_bytes).await;
    let child = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_bytes.len()},
        "layers": layers,
    });
    push.push_manifest(
        repo,
        tag,
        OCI_MANIFEST,
        &serde_json::to_vec(&child).unwrap(),
    )
    .await
}

async fn scan_build_query(db: Db) {
    let reg = Registry::start().await;
    let host = reg.host();
    let buildah = Buildah::new();
    let env = Env::new(db).await;
    let ctx = env.path().join("ctx");
    std::fs::create_dir_all(ctx.join("var/lib/dpkg")).unwrap();
    std::fs::create_dir_all(ctx.join("etc")).unwrap();
    let status = fixtures().join("dpkg/status");
    std::fs::copy(&status, ctx.join("var/lib/dpkg/status")).unwrap();
    std::fs::write(
        ctx.join("etc/os-release"),
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n",
    )
    .unwrap();
    std::fs::write(ctx.join("app.txt"), "app").unwrap();

    let base = format!("{host}/golden/base:1");
    let mid = format!("{host}/golden/mid:1");
    let app = format!("{host}/apps/app:1");
    let base_digest = buildah
        .build_push(
            &ctx,
            "FROM scratch\nCOPY var /var\nCOPY etc /etc\n",
            &base,
            &[],
        )
        .await;
    buildah
        .build_push(
            &ctx,
            "ARG BASE\nFROM ${BASE}\nCOPY app.txt /srv/mid.txt\n",
            &mid,
            &[("BASE", &base)],
        )
        .await;
    // Multi-stage: a builder stage on the base, the final stage on mid.
    let app_df = "ARG REG\nFROM ${REG}/golden/base:1 AS build\nCOPY app.txt /build/out\nFROM ${REG}/golden/mid:1\nCOPY --from=build /build/out /srv/app\n";
    std::fs::write(ctx.join("Dockerfile.app"), app_df).unwrap();
    buildah
        .build_push(&ctx, app_df, &app, &[("REG", &host)])
        .await;
    let plain = format!("{host}/apps/plain:1");
    push_unannotated_child(&host, "golden/base", "1", "apps/plain", "1").await;

    // Scan the children first: the base is adopted by layer prefix afterwards.
    env.run(&["scan", &plain, &mid, "--json"]).await.expect(0);
    let run = env
        .run(&[
            "scan",
            &base,
            &app,
            "--dockerfile",
            "ctx/Dockerfile.app",
            "--build-arg",
            &format!("REG={host}"),
            "--json",
        ])
        .await;
    run.expect(0);
    let scanned = run.json();
    let base_report = scanned["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["reference"] == base.as_str())
        .unwrap();
    assert_eq!(base_report["digest"], base_digest.as_str());
    assert_eq!(base_report["os"], "Debian:12");

    // Exactly the packages dpkg itself lists.
    let pk = env.run(&["images", "packages", &base, "--json"]).await;
    pk.expect(0);
    let listed = pk.json()["linux/amd64"].as_array().unwrap().len();
    let got: BTreeSet<String> = pk.json()["linux/amd64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p["name"].as_str().unwrap(),
                p["version"].as_str().unwrap()
            )
        })
        .collect();
    let want = dpkg_query(&status);
    assert!(want.len() > 100, "a real status file");
    assert_eq!(got, want);

    // Lineage and its evidence.
    let show = |r: String| {
        let env = &env;
        async move { env.run(&["images", "show", &r, "--json"]).await.json() }
    };
    let mid_view = show(mid.clone()).await;
    let edge = &mid_view["platforms"][0]["base"][0];
    assert_eq!(edge["evidence"], "annotation", "{mid_view}");
    assert_eq!(edge["base_reference"], base.as_str());
    assert_eq!(edge["base_digest"], base_digest.as_str());
    let app_view = show(app.clone()).await;
    let evidences: BTreeSet<&str> = app_view["platforms"][0]["base"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["evidence"].as_str().unwrap())
        .collect();
    assert!(
        evidences.contains("annotation") && evidences.contains("dockerfile"),
        "{app_view}"
    );
    for e in app_view["platforms"][0]["base"].as_array().unwrap() {
        assert_eq!(
            e["base_reference"],
            mid.as_str(),
            "the final stage's base, not the builder's: {e}"
        );
    }
    let plain_view = show(plain.clone()).await;
    let edge = &plain_view["platforms"][0]["base"][0];
    assert_eq!(edge["evidence"], "layer-prefix", "{plain_view}");
    assert_eq!(edge["base_digest"], base_digest.as_str());

    // The whole tree under the base, with depths.
    let kids = env
        .run(&["images", "children", &base, "--recursive", "--json"])
        .await;
    kids.expect(0);
    let tree: BTreeSet<(u64, String)> = kids
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["depth"].as_u64().unwrap(),
                k["references"][0].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        tree,
        BTreeSet::from([(1, mid.clone()), (1, plain.clone()), (2, app.clone())])
    );
    let direct = env
        .run(&["images", "children", &base, "--json"])
        .await
        .json();
    assert_eq!(
        direct.as_array().unwrap().len(),
        2,
        "without --recursive only depth 1: {direct}"
    );

    // Every holder of a package, found by name and by source name.
    let libc = env.run(&["packages", "libc6", "--json"]).await.json();
    let holders: BTreeSet<&str> = libc["versions"][0]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["references"][0].as_str().unwrap())
        .collect();
    assert_eq!(
        holders,
        BTreeSet::from([base.as_str(), mid.as_str(), app.as_str(), plain.as_str()])
    );
    let by_source = env.run(&["packages", "glibc", "--json"]).await.json();
    assert!(
        by_source["versions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "libc6"),
        "{by_source}"
    );

    // Layers are read once ever: a rescan reads nothing.
    let again = env
        .run(&["scan", &mid, &app, &base, &plain, "--json"])
        .await;
    again.expect(0);
    for i in again.json()["images"].as_array().unwrap() {
        assert_eq!(i["layers_read"], 0, "{i}");
    }

    // SBOM documents.
    let cdx = env.run(&["sbom", &base, "--format", "cyclonedx"]).await;
    cdx.expect(0);
    let doc = cdx.json();
    assert_eq!(doc["bomFormat"], "CycloneDX");
    // One component per package (a multi-arch package counts once per arch),
    // plus the distribution as an operating-system component.
    let components = doc["components"].as_array().unwrap();
    let libraries = components
        .iter()
        .filter(|c| c["type"] != "operating-system")
        .count();
    assert_eq!(libraries, listed);
    assert!(
        components
            .iter()
            .any(|c| c["type"] == "operating-system" && c["name"] == "debian")
    );
    let spdx = env.run(&["sbom", &base, "--format", "spdx"]).await;
    spdx.expect(0);
    assert_eq!(spdx.json()["spdxVersion"], "SPDX-2.3");
}

/// A corrupt layer fails its image cleanly, naming image and layer; the
/// other images of the run are still scanned and nothing half-written stays.
async fn corrupt_layer_fails_cleanly(db: Db) {
    let reg = Registry::start().await;
    let host = reg.host();
    let push = reg.pusher();
    let good = push.push_image("ok", "1", "linux/amd64", "fine").await;
    // A gzip stream cut in the middle, as a layer.
    let mut gz = std::process::Command::new("sh")
        .args(["-c", "head -c 200000 /dev/urandom | gzip -c | head -c 5000"])
        .output()
        .unwrap()
        .stdout;
    gz.truncate(5000);
    let layer = push.push_blob("bad", &gz).await;
    let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [layer]}})).unwrap();
    let config_digest = push.push_blob("bad", &config).await;
    let manifest = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": gz.len()}],
    });
    push.push_manifest(
        "bad",
        "1",
        OCI_MANIFEST,
        &serde_json::to_vec(&manifest).unwrap(),
    )
    .await;
    let env = Env::new(db).await;
    let run = env
        .run(&["scan", &format!("{host}/bad:1"), &format!("{host}/ok:1")])
        .await;
    run.expect(2);
    assert!(
        run.stderr.contains(&format!("{host}/bad:1")) && run.stderr.contains(&layer),
        "{run}"
    );
    assert!(
        run.stdout.contains(&good),
        "the good image is scanned: {run}"
    );
    let show = env.run(&["images", "show", &format!("{host}/bad:1")]).await;
    show.expect(2);
    assert!(show.stderr.contains("is not in the inventory"), "{show}");
}

both_stores!(scan_build_query, corrupt_layer_fails_cleanly);

/// `freshen serve` as a user runs it: token from the config's ${ENV},
/// a pipeline registering what it built, queries, and SIGTERM.
async fn serve_api_end_to_end(db: Db) {
    let mut env = Env::new(db).await;
    env.env("API_TOKEN", "tok-3f9a");
    let config = env.config("server:\n  listen: 127.0.0.1:0\n  write_tokens: [\"${API_TOKEN}\"]\n");
    let common::Served {
        mut child,
        url: base_url,
        stderr,
    } = common::serve(&env, &config).await;
    let http = common::http();
    let enc = |r: &str| r.replace('/', "%2F").replace(':', "%3A");
    let put = |r: &str, body: Value, token: Option<&str>| {
        let mut req = http
            .post(format!("{base_url}/images/{}", enc(r)))
            .json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let r = put(
        "registry.example/golden/base:1",
        json!({"packages": [{"name": "openssl", "version": "3.0.11-1", "ecosystem": "deb"}]}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 401, "writes need the token");
    let r = put(
        "registry.example/golden/base:1",
        json!({"packages": [{"name": "openssl", "version": "3.0.11-1", "ecosystem": "deb"}]}),
        Some("wrong"),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 401);
    for (image, base) in [
        ("registry.example/golden/base:1", None),
        (
            "registry.example/apps/mid:1",
            Some("registry.example/golden/base:1"),
        ),
        (
            "registry.example/apps/app:1",
            Some("registry.example/apps/mid:1"),
        ),
    ] {
        let mut body =
            json!({"packages": [{"name": "openssl", "version": "3.0.11-1", "ecosystem": "deb"}]});
        if let Some(b) = base {
            body["base"] = json!(b);
        }
        let r = put(image, body, Some("tok-3f9a")).await.unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    let kids: Value = http
        .get(format!(
            "{base_url}/images/{}/children?recursive=true",
            enc("registry.example/golden/base:1")
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let depths: Vec<(u64, String)> = kids["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["depth"].as_u64().unwrap(),
                k["references"][0].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        depths,
        [
            (1, "registry.example/apps/mid:1".to_string()),
            (2, "registry.example/apps/app:1".to_string())
        ]
    );
    let pkgs: Value = http
        .get(format!("{base_url}/packages/openssl"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        pkgs.to_string().matches("registry.example/").count(),
        3,
        "{pkgs}"
    );
    let doc: Value = http
        .get(format!("{base_url}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .any(|p| p.contains("children"))
    );
    // The CLI sees what the API stored.
    let run = env
        .run(&[
            "images",
            "children",
            "registry.example/golden/base:1",
            "--recursive",
            "--json",
        ])
        .await;
    run.expect(0);
    assert_eq!(run.json().as_array().unwrap().len(), 2);

    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    let rest = stderr.await.unwrap();
    assert!(
        !rest.contains("tok-3f9a"),
        "the token never reaches the logs"
    );
}

both_stores!(serve_api_end_to_end);

/// `scan --registry HOST --all` walks the catalog and every tag, keeping to
/// the repository prefix.
async fn whole_registry_scan(db: Db) {
    let reg = Registry::start().await;
    let host = reg.host();
    let push = reg.pusher();
    let mut want = BTreeSet::new();
    for (repo, tags) in [("apps/a", 2), ("apps/b", 1), ("other/c", 1)] {
        for t in 0..tags {
            push.push_image(repo, &format!("v{t}"), "linux/amd64", &format!("{repo}{t}"))
                .await;
            if repo.starts_with("apps/") {
                want.insert(format!("{host}/{repo}:v{t}"));
            }
        }
    }
    let env = Env::new(db).await;
    let run = env
        .run(&[
            "scan",
            "--registry",
            &host,
            "--repo-prefix",
            "apps/",
            "--all",
            "--json",
        ])
        .await;
    run.expect(0);
    let got: BTreeSet<String> = run.json()["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reference"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, want);
    let run = env.run(&["scan", "--registry", &host]).await;
    run.expect(2);
    assert!(run.stderr.contains("--all"), "{run}");
}

both_stores!(whole_registry_scan);

/// What `rpm -qa` lists in a database: `name epoch:version-release arch`.
fn rpm_qa(dbpath: &Path) -> BTreeSet<String> {
    let out = std::process::Command::new("rpm")
        .arg("--dbpath")
        .arg(dbpath)
        .args([
            "-qa",
            "--qf",
            "%{NAME} %{EPOCHNUM}:%{VERSION}-%{RELEASE} %{ARCH}\\n",
        ])
        .output()
        .expect("rpm is needed for this test: apt-get install rpm");
    assert!(
        out.status.success(),
        "rpm -qa: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// An rpm-based image (a Rocky Linux os-release and a sqlite rpmdb that
/// Debian's rpm wrote), built by buildah and scanned by the CLI: the packages
/// are exactly what `rpm -qa` reads from the same database, and a child built
/// on it inherits them and names it as its base.
async fn rpm_image_scan(db: Db) {
    let reg = Registry::start().await;
    let host = reg.host();
    let buildah = Buildah::new();
    let env = Env::new(db).await;
    let ctx = env.path().join("ctx");
    let rpmdir = ctx.join("usr/lib/sysimage/rpm");
    std::fs::create_dir_all(&rpmdir).unwrap();
    std::fs::create_dir_all(ctx.join("etc")).unwrap();
    std::fs::copy(
        fixtures().join("rpm/rpmdb.sqlite"),
        rpmdir.join("rpmdb.sqlite"),
    )
    .unwrap();
    std::fs::write(
        ctx.join("etc/os-release"),
        "NAME=\"Rocky Linux\"\nVERSION=\"9.4 (Blue Onyx)\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.4\"\n",
    )
    .unwrap();
    std::fs::write(ctx.join("app.txt"), "app").unwrap();
    let base = format!("{host}/rocky/base:9");
    let child = format!("{host}/apps/on-rocky:1");
    let base_digest = buildah
        .build_push(
            &ctx,
            "FROM scratch\nCOPY usr /usr\nCOPY etc /etc\n",
            &base,
            &[],
        )
        .await;
    buildah
        .build_push(
            &ctx,
            "ARG BASE\nFROM ${BASE}\nCOPY app.txt /srv/app.txt\n",
            &child,
            &[("BASE", &base)],
        )
        .await;

    let run = env.run(&["scan", &base, &child, "--json"]).await;
    run.expect(0);
    let report = run.json();
    for image in report["images"].as_array().unwrap() {
        assert_eq!(image["os"], "Rocky Linux:9", "{report}");
    }

    let want = rpm_qa(&rpmdir);
    assert!(
        want.len() >= 3,
        "rpm lists the fixture's packages: {want:?}"
    );
    for r in [&base, &child] {
        let pk = env.run(&["images", "packages", r, "--json"]).await;
        pk.expect(0);
        let got: BTreeSet<String> = pk.json()["linux/amd64"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                assert_eq!(p["ecosystem"], "rpm", "{p}");
                let v = p["version"].as_str().unwrap();
                let evr = if v.contains(':') {
                    v.to_string()
                } else {
                    format!("0:{v}")
                };
                format!(
                    "{} {evr} {}",
                    p["name"].as_str().unwrap(),
                    p["arch"].as_str().unwrap_or("")
                )
            })
            .collect();
        assert_eq!(got, want, "packages of {r}");
    }

    let kids = env
        .run(&["images", "children", &base, "--json"])
        .await
        .json();
    let names: Vec<&str> = kids
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|k| k["references"].as_array().unwrap())
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(names, [child.as_str()], "{kids}");
    let view = env.run(&["images", "show", &child, "--json"]).await.json();
    assert_eq!(
        view["platforms"][0]["base"][0]["base_digest"],
        base_digest.as_str(),
        "{view}"
    );

    // Who holds a package: by name, and the source rpm's name.
    let found = env
        .run(&["packages", "freshen-hello", "--ecosystem", "rpm", "--json"])
        .await;
    found.expect(0);
    let text = found.json().to_string();
    assert!(
        text.contains(&base) && text.contains(&child),
        "both images hold freshen-hello: {text}"
    );
}

both_stores!(rpm_image_scan);
