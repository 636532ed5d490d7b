//! The Harbor recipe end to end: a Debian image built by buildah into a real
//! registry and scanned; a Harbor API double (as Harbor documents it) holds
//! its scan; `freshen vulns import --harbor` reads every artifact's report,
//! and `freshen vulns` and `policy check` (`medium >= 3 || high > 0`) act
//! on it, on SQLite and PostgreSQL.

mod common;

use std::path::Path;

use common::{Buildah, Env, fixtures};
use freshen_testkit::{Db, Harbor, HarborArtifact, HarborOptions, Registry, both_stores};
use serde_json::Value;

/// The image digest the report fixtures name (replaced by the built one's).
const FIXTURE_DIGEST: &str =
    "sha256:45359232780cb2e777e9ce27d87c001dd67e2fb2f00d0742fce54ee68328c2bc";

fn harbor_report(digest: &str) -> Value {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../vuln/tests/fixtures/reports/harbor-debian12.json"),
    )
    .unwrap();
    serde_json::from_str(&text.replace(FIXTURE_DIGEST, digest)).unwrap()
}

async fn harbor_end_to_end(db: Db) {
    let reg = Registry::start().await;
    let host = reg.host();
    let buildah = Buildah::new();
    let mut env = Env::new(db).await;

    let status = std::fs::read_to_string(fixtures().join("dpkg/status")).unwrap();
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
        "NAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n",
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

    // Harbor's project "golden": the scanned image, and a repository whose
    // name has a slash holding an artifact never scanned.
    let harbor = Harbor::start(HarborOptions::default()).await;
    harbor.add_artifact(
        "golden/base",
        HarborArtifact {
            digest: digest.clone(),
            tags: vec!["old".into()],
            report: Some(harbor_report(&digest)),
        },
    );
    let unscanned = format!("sha256:{}", "ab".repeat(32));
    harbor.add_artifact(
        "golden/team/app",
        HarborArtifact {
            digest: unscanned.clone(),
            tags: vec!["1".into()],
            report: None,
        },
    );
    // A multi-platform tag: an index whose amd64 child is the image.
    let index = format!("sha256:{}", "cd".repeat(32));
    harbor.add_index(
        "golden/multi",
        &index,
        &["1"],
        vec![(
            "linux/amd64",
            HarborArtifact {
                digest: digest.clone(),
                tags: vec![],
                report: Some(harbor_report(&digest)),
            },
        )],
    );
    let url = harbor.url();
    let args = [
        "vulns",
        "import",
        "--harbor",
        url.as_str(),
        "--project",
        "golden",
        "--json",
    ];

    // Without credentials, Harbor refuses, and freshen says what to set.
    let refused = env.run(&args).await;
    refused.expect(2);
    assert!(
        refused.stderr.contains("401") && refused.stderr.contains("FRESHEN_HARBOR_USER"),
        "{refused}"
    );
    // A wrong secret: refused, and the secret shows nowhere.
    let mut wrong = Env {
        dir: tempfile::tempdir().unwrap(),
        database: env.database.clone(),
        extra_env: Vec::new(),
    };
    wrong.env("FRESHEN_HARBOR_USER", &harbor.user());
    wrong.env("FRESHEN_HARBOR_PASSWORD", "wrong-secret-7f3a");
    let denied = wrong.run(&args).await;
    denied.expect(2);
    assert!(
        denied.stderr.contains("refused") && !denied.stderr.contains("wrong-secret-7f3a"),
        "{denied}"
    );

    env.env("FRESHEN_HARBOR_USER", &harbor.user());
    env.env("FRESHEN_HARBOR_PASSWORD", &harbor.password());
    let imported = env.run(&args).await;
    imported.expect(0);
    let list = imported.json();
    // golden/base's artifact, and golden/multi's index child (the same
    // image and report: unchanged the second time).
    assert_eq!(list.as_array().unwrap().len(), 2, "{imported}");
    assert_eq!(list[1]["report"]["image_digest"], digest.as_str());
    assert_eq!(list[1]["report"]["outcome"], "unchanged");
    assert!(
        harbor.requests().iter().any(|r| r
            .path
            .ends_with(&format!("/multi/artifacts/{}", digest.replace(':', "%3A")))),
        "the index's child was read by digest"
    );
    assert_eq!(list[0]["kind"], "harbor");
    assert_eq!(list[0]["records"], 3);
    assert_eq!(list[0]["report"]["image_digest"], digest.as_str());
    assert_eq!(list[0]["report"]["in_inventory"], true);
    assert_eq!(list[0]["report"]["scanner_version"], "Trivy v0.58.1");
    assert!(
        imported.stderr.contains(&unscanned) && imported.stderr.contains("skipped"),
        "{imported}"
    );
    assert!(!imported.stdout.contains(&harbor.password()));
    // Every repository and artifact list asked for the scan overview in
    // the report types freshen reads; the name with a slash went encoded twice.
    let requests = harbor.requests();
    assert!(
        requests.iter().any(|r| r.path
            == "/api/v2.0/projects/golden/repositories/team%252Fapp/artifacts"
            && r.query.get("with_scan_overview").map(String::as_str) == Some("true")
            && r.accept_vulnerabilities.as_deref() == Some(freshen_harbor::ACCEPT_VULNERABILITIES)),
        "{requests:#?}"
    );

    let v = env.run(&["vulns", &image, "--json"]).await;
    v.expect(0);
    let v = v.json();
    let ssl = v["platforms"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["package"] == "libssl3" && f["id"] == "CVE-2023-5363")
        .cloned()
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(ssl["sources"], serde_json::json!(["harbor"]));
    assert_eq!(ssl["fixed"], "3.0.11-1~deb12u2");

    // The recipe's rule: medium >= 3 || high > 0.
    let policy =
        env.config("policy:\n  mode: thresholds\n  thresholds: \"medium >= 3 || high > 0\"\n");
    let check = env
        .run(&[
            "policy",
            "check",
            "--config",
            policy.to_str().unwrap(),
            &image,
            "--exit-code",
            "--json",
        ])
        .await;
    check.expect(1);
    assert_eq!(check.json()[0]["act"], true, "{check}");

    // Again: the same reports, nothing changes.
    let again = env.run(&args).await;
    again.expect(0);
    assert_eq!(again.json()[0]["report"]["outcome"], "unchanged");

    // One repository only (by its name within the project).
    let one = env
        .run(&[
            "vulns",
            "import",
            "--harbor",
            url.as_str(),
            "--project",
            "golden",
            "--repository",
            "team/app",
            "--json",
        ])
        .await;
    one.expect(0);
    assert_eq!(one.json(), serde_json::json!([]));
}

both_stores!(harbor_end_to_end);
