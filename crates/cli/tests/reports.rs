//! Scanner reports end to end: a Debian image built by buildah into a real
//! registry and scanned; Trivy and Grype reports of it (their real JSON
//! formats, the vuln crate's fixtures with the image's digest) imported,
//! merged with OSV findings, and seen by `freshen vulns`, `vulns images`,
//! `policy check` and the API, on SQLite and PostgreSQL.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{Buildah, Env, fixtures};
use freshen_testkit::{Db, Pusher, Registry, both_stores};
use serde_json::Value;

/// The image digest the report fixtures name (replaced by the built one's).
const FIXTURE_DIGEST: &str =
    "sha256:45359232780cb2e777e9ce27d87c001dd67e2fb2f00d0742fce54ee68328c2bc";

fn vuln_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../vuln/tests/fixtures")
}

/// A report fixture naming `host`'s image `digest`, written into the env.
fn report(env: &Env, name: &str, host: &str, digest: &str) -> PathBuf {
    let text = std::fs::read_to_string(vuln_fixtures().join("reports").join(name)).unwrap();
    let text = text
        .replace(FIXTURE_DIGEST, digest)
        .replace("localhost:5000/", &format!("{host}/"));
    let p = env.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// `(id, package) -> finding` of the image's one platform.
fn findings(v: &Value) -> BTreeMap<(String, String), Value> {
    v["platforms"][0]["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings in {v}"))
        .iter()
        .map(|f| {
            (
                (
                    f["id"].as_str().unwrap().to_string(),
                    f["package"].as_str().unwrap().to_string(),
                ),
                f.clone(),
            )
        })
        .collect()
}

fn key(id: &str, package: &str) -> (String, String) {
    (id.to_string(), package.to_string())
}

fn sources(f: &Value) -> Vec<&str> {
    f["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

async fn vulns_of(env: &Env, r: &str) -> BTreeMap<(String, String), Value> {
    let run = env.run(&["vulns", r, "--json"]).await;
    run.expect(0);
    findings(&run.json())
}

async fn reports_end_to_end(db: Db) {
    let reg = Registry::start().await;
    let host = reg.host();
    let buildah = Buildah::new();
    let env = Env::new(db).await;

    // A bookworm image with the openssl of October 2023 (before DSA-5532-1).
    let status = std::fs::read_to_string(fixtures().join("dpkg/status")).unwrap();
    assert!(status.contains("Version: 3.0.19-1~deb12u2"));
    let ctx = env.path().join("ctx");
    std::fs::create_dir_all(ctx.join("var/lib/dpkg")).unwrap();
    std::fs::create_dir_all(ctx.join("etc")).unwrap();
    std::fs::write(
        ctx.join("var/lib/dpkg/status"),
        status.replace("Version: 3.0.19-1~deb12u2", "Version: 3.0.11-1~deb12u1"),
    )
    .unwrap();
    std::fs::write(
        ctx.join("etc/os-release"),
        "NAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n",
    )
    .unwrap();
    let image = format!("{host}/golden/base:old");
    let digest = buildah
        .build_push(
            &ctx,
            "FROM scratch\nCOPY var /var\nCOPY etc /etc\n",
            &image,
            &[],
        )
        .await;
    env.run(&["scan", &image]).await.expect(0);
    assert!(vulns_of(&env, &image).await.is_empty());

    // Trivy's report, naming the image by its RepoDigests.
    let trivy = report(&env, "trivy-debian12.json", &host, &digest);
    let imp = env
        .run(&["vulns", "import", trivy.to_str().unwrap(), "--json"])
        .await;
    imp.expect(0);
    let imp = &imp.json()[0];
    assert_eq!(imp["kind"], "trivy", "{imp}");
    assert_eq!(imp["report"]["image_digest"], digest.as_str());
    assert_eq!(imp["report"]["in_inventory"], true);
    assert_eq!(imp["report"]["outcome"], "added");
    assert_eq!(imp["report"]["scanner_version"], "0.69.1");
    assert_eq!(imp["records"], 3);
    let trivy_import = imp["import_id"].as_i64().unwrap();

    let v = vulns_of(&env, &image).await;
    assert_eq!(
        v.keys().cloned().collect::<Vec<_>>(),
        [
            key("CVE-2011-3374", "apt"),
            key("CVE-2023-5363", "libssl3"),
            key("CVE-2023-5363", "openssl")
        ]
    );
    let ssl = &v[&key("CVE-2023-5363", "libssl3")];
    assert_eq!(sources(ssl), ["trivy"]);
    assert_eq!(ssl["aliases"], serde_json::json!(["DSA-5532-1"]));
    assert_eq!(ssl["fixed"], "3.0.11-1~deb12u2");
    assert_eq!(ssl["severity"], "high");

    // Grype's, naming it by manifestDigest: the same findings merge.
    let grype = report(&env, "grype-debian12.json", &host, &digest);
    env.run(&["vulns", "import", grype.to_str().unwrap()])
        .await
        .expect(0);
    let v = vulns_of(&env, &image).await;
    assert_eq!(v.len(), 4, "{v:#?}");
    assert_eq!(
        sources(&v[&key("CVE-2023-5363", "libssl3")]),
        ["grype", "trivy"]
    );
    assert_eq!(sources(&v[&key("CVE-2022-0563", "bsdutils")]), ["grype"]);
    // Trivy says low (Debian), Grype negligible: the highest stays.
    assert_eq!(v[&key("CVE-2011-3374", "apt")]["severity"], "low");

    // The reports alone make the Harbor recipe's policy act.
    let policy =
        env.config("policy:\n  mode: thresholds\n  thresholds: \"medium >= 3 || high > 0\"\n");
    let check = env
        .run(&[
            "policy",
            "check",
            "--config",
            policy.to_str().unwrap(),
            &image,
            "--json",
            "--exit-code",
        ])
        .await;
    check.expect(1);
    assert_eq!(check.json()[0]["act"], true, "{check}");
    assert_eq!(check.json()[0]["counts"]["high"], 2, "{check}");

    // With the OSV records too: still one finding per vulnerability and
    // package, now from three sources.
    let osv = vuln_fixtures().join("osv");
    env.run(&["vulns", "import", osv.to_str().unwrap()])
        .await
        .expect(0);
    let v = vulns_of(&env, &image).await;
    // OSV also finds libssl-dev (another binary of openssl), which the
    // reports didn't list.
    assert_eq!(v.len(), 5, "{v:#?}");
    assert_eq!(sources(&v[&key("CVE-2023-5363", "libssl-dev")]), ["osv"]);
    let ssl = &v[&key("CVE-2023-5363", "libssl3")];
    assert_eq!(sources(ssl), ["grype", "osv", "trivy"]);
    assert_eq!(
        ssl["aliases"],
        serde_json::json!(["DEBIAN-CVE-2023-5363", "DSA-5532-1"])
    );

    // Fleet-wide, a finding only the reports know.
    let who = env
        .run(&["vulns", "images", "CVE-2011-3374", "--json"])
        .await;
    who.expect(0);
    let who = who.json();
    assert_eq!(who.as_array().unwrap().len(), 1, "{who}");
    assert_eq!(who[0]["digest"], digest.as_str());
    assert_eq!(who[0]["references"], serde_json::json!([image]));
    assert_eq!(sources(&who[0]["findings"][0]), ["grype", "trivy"], "{who}");

    // The same report again changes nothing.
    let again = env
        .run(&["vulns", "import", trivy.to_str().unwrap(), "--json"])
        .await;
    again.expect(0);
    assert_eq!(again.json()[0]["report"]["outcome"], "unchanged");
    assert_eq!(again.json()[0]["import_id"].as_i64(), Some(trivy_import));

    // A later Trivy scan (apt gone) replaces the earlier one's findings.
    let mut later: Value = serde_json::from_slice(&std::fs::read(&trivy).unwrap()).unwrap();
    later["CreatedAt"] = "2026-11-30T10:15:00Z".into();
    later["Results"][0]["Vulnerabilities"]
        .as_array_mut()
        .unwrap()
        .retain(|v| v["PkgName"] != "apt");
    let later_path = env.path().join("trivy-later.json");
    std::fs::write(&later_path, serde_json::to_vec_pretty(&later).unwrap()).unwrap();
    let replaced = env
        .run(&["vulns", "import", later_path.to_str().unwrap(), "--json"])
        .await;
    replaced.expect(0);
    assert_eq!(replaced.json()[0]["report"]["outcome"], "replaced");
    let v = vulns_of(&env, &image).await;
    assert_eq!(sources(&v[&key("CVE-2011-3374", "apt")]), ["grype"]);
    // The earlier scan, imported late, is not kept.
    let older = env
        .run(&["vulns", "import", trivy.to_str().unwrap(), "--json"])
        .await;
    older.expect(0);
    assert_eq!(older.json()[0]["report"]["outcome"], "older");
    assert_eq!(
        sources(&vulns_of(&env, &image).await[&key("CVE-2011-3374", "apt")]),
        ["grype"]
    );

    // A filesystem scan names no image: the error says to give one...
    let rootfs = report(&env, "trivy-rootfs.json", &host, &digest);
    let no_image = env
        .run(&["vulns", "import", rootfs.to_str().unwrap()])
        .await;
    no_image.expect(2);
    assert!(
        no_image.stderr.contains("trivy-rootfs.json") && no_image.stderr.contains("--image"),
        "{no_image}"
    );
    // ... and with --image (a tag, resolved through the inventory) it is
    // that image's (a later scan again: it replaces the earlier one).
    let with_image = env
        .run(&[
            "vulns",
            "import",
            rootfs.to_str().unwrap(),
            "--image",
            &image,
            "--json",
        ])
        .await;
    with_image.expect(0);
    assert_eq!(
        with_image.json()[0]["report"]["image_digest"],
        digest.as_str()
    );
    assert_eq!(
        sources(&vulns_of(&env, &image).await[&key("CVE-2011-3374", "apt")]),
        ["grype", "trivy"]
    );
    let unknown = env
        .run(&[
            "vulns",
            "import",
            rootfs.to_str().unwrap(),
            "--image",
            &format!("{host}/nope/none:1"),
        ])
        .await;
    unknown.expect(2);
    assert!(unknown.stderr.contains("not in the inventory"), "{unknown}");

    // Something that is none of the formats: named, with what is accepted.
    let sbom = env.path().join("sbom.cdx.json");
    std::fs::write(&sbom, r#"{"bomFormat": "CycloneDX", "specVersion": "1.5"}"#).unwrap();
    let bad = env.run(&["vulns", "import", sbom.to_str().unwrap()]).await;
    bad.expect(2);
    assert!(
        bad.stderr.contains("sbom.cdx.json")
            && bad.stderr.contains("Trivy")
            && bad.stderr.contains("Grype"),
        "{bad}"
    );

    // The table shows where each finding came from (Trivy's report in
    // force now is the filesystem scan's: apt only).
    let table = env.run(&["vulns", &image]).await;
    table.expect(0);
    assert!(
        table.stdout.contains("SOURCES")
            && table.stdout.contains("grype,osv")
            && table.stdout.contains("grype,trivy"),
        "{table}"
    );

    // The API answers the same.
    let config = env.config("server:\n  listen: 127.0.0.1:0\n");
    let server = common::serve(&env, &config).await;
    let enc = image.replace('/', "%2F").replace(':', "%3A");
    let body: Value = common::http()
        .get(format!("{}/images/{enc}/vulnerabilities", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let api = findings(&body);
    assert_eq!(
        sources(&api[&key("CVE-2023-5363", "libssl3")]),
        ["grype", "osv"]
    );
    assert_eq!(
        sources(&api[&key("CVE-2011-3374", "apt")]),
        ["grype", "trivy"]
    );
    assert_eq!(sources(&api[&key("CVE-2022-0563", "bsdutils")]), ["grype"]);
}

both_stores!(reports_end_to_end);

/// A report of a multi-platform tag names the index digest (Trivy's
/// `RepoDigests` of a remote image do): the platform it scanned picks the
/// child, through the tag it names.
async fn multiarch_reports(db: Db) {
    let reg = Registry::start().await;
    let host = reg.host();
    let env = Env::new(db).await;
    let push = Pusher::new(&host, None);
    let (index, children) = push
        .push_multiarch(
            "multi/app",
            "1",
            &["linux/amd64", "linux/arm64"],
            "reports",
            false,
        )
        .await;
    let image = format!("{host}/multi/app:1");
    env.run(&["scan", &image]).await.expect(0);

    let mut trivy: Value = serde_json::from_slice(
        &std::fs::read(vuln_fixtures().join("reports/trivy-debian12.json")).unwrap(),
    )
    .unwrap();
    trivy["ArtifactName"] = image.clone().into();
    trivy["Metadata"]["RepoDigests"] = serde_json::json!([format!("{host}/multi/app@{index}")]);
    trivy["Metadata"]["ImageConfig"]["architecture"] = "arm64".into();
    let path = env.path().join("trivy-multi.json");
    std::fs::write(&path, serde_json::to_vec(&trivy).unwrap()).unwrap();
    let imp = env
        .run(&["vulns", "import", path.to_str().unwrap(), "--json"])
        .await;
    imp.expect(0);
    assert_eq!(
        imp.json()[0]["report"]["image_digest"],
        children[1].as_str(),
        "{imp}"
    );
    assert_eq!(imp.json()[0]["report"]["in_inventory"], true);
    let v = env.run(&["vulns", &image, "--json"]).await;
    v.expect(0);
    let v = v.json();
    let by_platform: BTreeMap<&str, usize> = v["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["platform"].as_str().unwrap(),
                p["findings"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        by_platform,
        BTreeMap::from([("linux/amd64", 0), ("linux/arm64", 3)]),
        "{v}"
    );

    // --image with a tag of two platforms and a report that doesn't say
    // which it scanned: the error says to name a digest.
    let rootfs = report(&env, "trivy-rootfs.json", &host, &children[0]);
    let ambiguous = env
        .run(&[
            "vulns",
            "import",
            rootfs.to_str().unwrap(),
            "--image",
            &image,
        ])
        .await;
    ambiguous.expect(2);
    assert!(
        ambiguous.stderr.contains("linux/amd64, linux/arm64")
            && ambiguous.stderr.contains("by digest"),
        "{ambiguous}"
    );
    let pinned = format!("{host}/multi/app@{}", children[0]);
    let ok = env
        .run(&[
            "vulns",
            "import",
            rootfs.to_str().unwrap(),
            "--image",
            &pinned,
            "--json",
        ])
        .await;
    ok.expect(0);
    assert_eq!(ok.json()[0]["report"]["image_digest"], children[0].as_str());
}

both_stores!(multiarch_reports);
