//! Vulnerabilities end to end: Debian images built by buildah into a real
//! registry and scanned, OSV records (real schema, real advisories) imported,
//! findings listed per image and fleet-wide from the CLI and the API, on
//! SQLite and PostgreSQL.

mod common;

use std::collections::BTreeSet;

use common::{Buildah, Env, fixtures};
use freshen_testkit::{Db, Registry, both_stores};
use serde_json::Value;

/// The OSV fixtures of the vuln crate.
fn osv_fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../vuln/tests/fixtures/osv")
}

/// `(id, package)` of every finding of the image's one platform.
fn findings(v: &Value) -> BTreeSet<(String, String)> {
    v["platforms"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_string(),
                f["package"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn vulns_end_to_end(db: Db) {
    let reg = Registry::start().await;
    let host = reg.host();
    let buildah = Buildah::new();
    let env = Env::new(db).await;

    // Two bookworm bases: "old" carries the openssl of October 2023
    // (3.0.11-1~deb12u1, before DSA-5532-1), "new" the fixture's current one.
    let status = std::fs::read_to_string(fixtures().join("dpkg/status")).unwrap();
    assert!(status.contains("Version: 3.0.19-1~deb12u2"));
    let os_release = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n";
    let mut digests = Vec::new();
    for (tag, text) in [
        (
            "old",
            status.replace("Version: 3.0.19-1~deb12u2", "Version: 3.0.11-1~deb12u1"),
        ),
        ("new", status.clone()),
    ] {
        let ctx = env.path().join(format!("ctx-{tag}"));
        std::fs::create_dir_all(ctx.join("var/lib/dpkg")).unwrap();
        std::fs::create_dir_all(ctx.join("etc")).unwrap();
        std::fs::write(ctx.join("var/lib/dpkg/status"), text).unwrap();
        std::fs::write(ctx.join("etc/os-release"), os_release).unwrap();
        digests.push(
            buildah
                .build_push(
                    &ctx,
                    "FROM scratch\nCOPY var /var\nCOPY etc /etc\n",
                    &format!("{host}/golden/base:{tag}"),
                    &[],
                )
                .await,
        );
    }
    let old = format!("{host}/golden/base:old");
    let new = format!("{host}/golden/base:new");
    let app = format!("{host}/apps/app:1");
    let ctx = env.path().join("ctx-old");
    std::fs::write(ctx.join("app.txt"), "app").unwrap();
    buildah
        .build_push(
            &ctx,
            "ARG BASE\nFROM ${BASE}\nCOPY app.txt /srv/app.txt\n",
            &app,
            &[("BASE", &old)],
        )
        .await;
    env.run(&["scan", &old, &new, &app]).await.expect(0);

    // Before any import: no findings, and it says so.
    let none = env.run(&["vulns", &old, "--json"]).await;
    none.expect(0);
    assert!(findings(&none.json()).is_empty());

    let osv = osv_fixtures();
    let imported = env
        .run(&["vulns", "import", osv.to_str().unwrap(), "--json"])
        .await;
    imported.expect(0);
    let summary = &imported.json()[0];
    assert_eq!(
        (summary["records"].as_u64(), summary["added"].as_u64()),
        (Some(5), Some(5))
    );

    // The old base: CVE-2023-5363 once per openssl binary package, its DSA
    // and Debian record merged into it; nothing from bullseye's DSA-5417-1.
    let v = env.run(&["vulns", &old, "--json"]).await;
    v.expect(0);
    let v = v.json();
    let got = findings(&v);
    let packages: BTreeSet<&str> = got.iter().map(|(_, p)| p.as_str()).collect();
    assert!(got.iter().all(|(id, _)| id == "CVE-2023-5363"), "{got:?}");
    assert!(
        packages.contains("libssl3") && packages.contains("openssl"),
        "{got:?}"
    );
    let f = v["platforms"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["package"] == "libssl3")
        .unwrap();
    assert_eq!(
        f["aliases"],
        serde_json::json!(["DEBIAN-CVE-2023-5363", "DSA-5532-1"])
    );
    assert_eq!(f["fixed"], "3.0.11-1~deb12u2");
    assert_eq!(f["severity"], "high");
    assert_eq!(v["platforms"][0]["os"], "Debian:12");
    assert_eq!(
        v["platforms"][0]["counts"]["high"].as_u64(),
        Some(got.len() as u64)
    );
    assert!(
        !v.to_string().contains("DSA-5417-1"),
        "no bullseye record on bookworm"
    );

    // The new base has the fix; the child of the old base has the finding.
    let nv = env.run(&["vulns", &new, "--json"]).await;
    nv.expect(0);
    assert!(findings(&nv.json()).is_empty(), "{}", nv.json());
    let table = env.run(&["vulns", &app]).await;
    table.expect(0);
    assert!(
        table.stdout.contains("CVE-2023-5363") && table.stdout.contains("3.0.11-1~deb12u2"),
        "{table}"
    );

    // Fleet-wide, by the CVE or by its DSA alias.
    for id in ["CVE-2023-5363", "DSA-5532-1"] {
        let who = env.run(&["vulns", "images", id, "--json"]).await;
        who.expect(0);
        let refs: BTreeSet<String> = who
            .json()
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|i| i["references"].as_array().unwrap().clone())
            .map(|r| r.as_str().unwrap().to_string())
            .collect();
        assert_eq!(refs, BTreeSet::from([old.clone(), app.clone()]), "{id}");
    }

    // Importing again changes nothing; a bad file fails naming it and
    // leaves what is stored as it was.
    let again = env
        .run(&["vulns", "import", osv.to_str().unwrap(), "--json"])
        .await;
    again.expect(0);
    assert_eq!(again.json()[0]["unchanged"].as_u64(), Some(5));
    let bad = env.path().join("bad.json");
    std::fs::write(&bad, "{\"id\": \"X\"").unwrap();
    let failed = env.run(&["vulns", "import", bad.to_str().unwrap()]).await;
    failed.expect(2);
    assert!(failed.stderr.contains("bad.json"), "{failed}");
    assert_eq!(
        findings(&env.run(&["vulns", &old, "--json"]).await.json()),
        got
    );

    // The base update, diffed: openssl upgraded, CVE-2023-5363 fixed, and
    // the app (a child of the old base) holds it.
    let d = env.run(&["diff", &old, &new, "--json"]).await;
    d.expect(0);
    let d = &d.json()[0];
    let up = d["upgraded"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "libssl3")
        .unwrap();
    assert_eq!(
        (
            up["from"].as_str(),
            up["to"].as_str(),
            up["direction"].as_str()
        ),
        (
            Some("3.0.11-1~deb12u1"),
            Some("3.0.19-1~deb12u2"),
            Some("upgrade")
        )
    );
    assert_eq!(
        findings(&serde_json::json!({"platforms": [{"findings": d["fixed"]}]})),
        got
    );
    assert!(d["introduced"].as_array().unwrap().is_empty());
    let kids = d["children"].as_array().unwrap();
    assert_eq!(kids.len(), 1, "{d}");
    assert_eq!(kids[0]["references"], serde_json::json!([app]));
    assert_eq!(kids[0]["fixed"], serde_json::json!(["CVE-2023-5363"]));

    // A threshold policy acts on the old base and its child, not the new one.
    let policy =
        env.config("policy:\n  mode: thresholds\n  thresholds: \"medium >= 3 || high > 0\"\n");
    let cfg = policy.to_str().unwrap();
    let check = env
        .run(&[
            "policy",
            "check",
            "--config",
            cfg,
            &old,
            &new,
            &app,
            "--json",
            "--exit-code",
        ])
        .await;
    check.expect(1);
    let acts: Vec<(String, bool)> = check
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["reference"].as_str().unwrap().to_string(),
                c["act"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        acts,
        [
            (old.clone(), true),
            (new.clone(), false),
            (app.clone(), true)
        ]
    );
    let reason = check.json()[1]["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("not met"), "{reason}");
    let quiet = env
        .run(&["policy", "check", "--config", cfg, &new, "--exit-code"])
        .await;
    quiet.expect(0);
    // An ignore entry with a reason silences it.
    let ignoring = env.config("policy:\n  mode: thresholds\n  thresholds: \"high > 0\"\n  ignore:\n    - id: DSA-5532-1\n      reason: not reachable in our images\n");
    let ig = env
        .run(&[
            "policy",
            "check",
            "--config",
            ignoring.to_str().unwrap(),
            &old,
            "--json",
            "--exit-code",
        ])
        .await;
    ig.expect(0);
    assert_eq!(ig.json()[0]["ignored"][0][1], "not reachable in our images");
    let typo = env.config("policy:\n  mode: thresholds\n  thresholds: \"moderate > 1\"\n");
    let bad = env
        .run(&["policy", "check", "--config", typo.to_str().unwrap()])
        .await;
    bad.expect(2);
    assert!(
        bad.stderr.contains("policy") && bad.stderr.contains("moderate"),
        "{bad}"
    );

    // The same answers over HTTP.
    let config = env.config("server:\n  listen: 127.0.0.1:0\n");
    let server = common::serve(&env, &config).await;
    let base_url = server.url.clone();
    let http = common::http();
    let enc = |r: &str| r.replace('/', "%2F").replace(':', "%3A");
    let body: Value = http
        .get(format!("{base_url}/images/{}/vulnerabilities", enc(&old)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(findings(&body), got);
    let resp = http
        .get(format!("{base_url}/vulnerabilities/DSA-5532-1/images"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let digests_found: BTreeSet<&str> = body["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["digest"].as_str().unwrap())
        .collect();
    assert!(digests_found.contains(digests[0].as_str()), "{body}");
    assert!(!digests_found.contains(digests[1].as_str()), "{body}");
    let resp = http
        .get(format!(
            "{base_url}/images/{}/vulnerabilities",
            enc("nope/none:1")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

both_stores!(vulns_end_to_end);
