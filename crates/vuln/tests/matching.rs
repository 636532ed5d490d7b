//! OSV matching on fixtures in the real schema, hand-written from the
//! published advisories (real ids, packages and fixed versions).

use std::path::{Path, PathBuf};

use freshen_vuln::{Finding, Index, Installed, Record, Severity, VulnError, load_path};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/osv")
}

fn index() -> Index {
    let loaded = load_path(&fixtures()).unwrap();
    assert_eq!(loaded.files, 5);
    Index::new(loaded.records)
}

fn deb<'a>(name: &'a str, source: &'a str, version: &'a str, os: &'a str) -> Installed<'a> {
    Installed {
        package_type: "deb",
        name,
        version,
        source_name: Some(source),
        source_version: Some(version),
        os_ecosystem: Some(os),
    }
}

fn ids(found: &[Finding]) -> Vec<&str> {
    found.iter().map(|f| f.id.as_str()).collect()
}

#[test]
fn debian_binary_package_matches_its_source_and_aliases_merge() {
    let idx = index();
    let found = idx.matches(&deb("libssl3", "openssl", "3.0.11-1~deb12u1", "Debian:12"));
    assert_eq!(ids(&found), ["CVE-2023-5363"], "{found:#?}");
    let f = &found[0];
    assert_eq!(f.package, "libssl3");
    assert_eq!(f.aliases, ["DEBIAN-CVE-2023-5363", "DSA-5532-1"]);
    assert_eq!(f.matched, ["DEBIAN-CVE-2023-5363", "DSA-5532-1"]);
    assert_eq!(f.fixed.as_deref(), Some("3.0.11-1~deb12u2"));
    assert_eq!(f.severity, Severity::High);
    assert_eq!(f.score, Some(7.5));

    // The fixed version, and a later one, are not affected.
    for v in ["3.0.11-1~deb12u2", "3.0.13-1~deb12u1"] {
        assert!(
            idx.matches(&deb("libssl3", "openssl", v, "Debian:12"))
                .is_empty(),
            "{v}"
        );
    }
    // "~" sorts before everything: 3.0.11-1~deb12u1 < 3.0.11-1 — the
    // unpatched unstable upload is affected on bookworm too.
    assert_eq!(
        ids(&idx.matches(&deb("openssl", "openssl", "3.0.11-1~deb12u1", "Debian:12"))),
        ["CVE-2023-5363"]
    );
}

#[test]
fn distribution_records_stay_in_their_release() {
    let idx = index();
    // bullseye's openssl: only the bullseye advisory, never bookworm's.
    let found = idx.matches(&deb(
        "libssl1.1",
        "openssl",
        "1.1.1n-0+deb11u4",
        "Debian:11",
    ));
    // DSA-5417-1 fixes four CVEs: four findings, each naming the DSA,
    // not one finding standing for all four.
    assert_eq!(
        ids(&found),
        [
            "CVE-2023-0464",
            "CVE-2023-0465",
            "CVE-2023-0466",
            "CVE-2023-2650"
        ],
        "{found:#?}"
    );
    for f in &found {
        assert_eq!(f.matched, ["DSA-5417-1"]);
        assert_eq!(f.aliases, ["DSA-5417-1"]);
        assert_eq!(f.fixed.as_deref(), Some("1.1.1n-0+deb11u5"));
    }
    // The same version string on bookworm matches bookworm's records only.
    let found = idx.matches(&deb(
        "libssl1.1",
        "openssl",
        "1.1.1n-0+deb11u4",
        "Debian:12",
    ));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, "CVE-2023-5363");
    // No OS known: distribution records can't be scoped, so none match.
    let mut unscoped = deb("libssl3", "openssl", "3.0.11-1~deb12u1", "Debian:12");
    unscoped.os_ecosystem = None;
    assert!(idx.matches(&unscoped).is_empty());
}

#[test]
fn alpine_by_origin_and_release() {
    let idx = index();
    let apk = |os: &'static str, v: &'static str| Installed {
        package_type: "apk",
        name: "libcrypto3",
        version: v,
        source_name: Some("openssl"),
        source_version: None,
        os_ecosystem: Some(os),
    };
    let found = idx.matches(&apk("Alpine:v3.18", "3.1.3-r0"));
    assert_eq!(ids(&found), ["CVE-2023-5363"]);
    assert_eq!(found[0].fixed.as_deref(), Some("3.1.4-r0"));
    assert_eq!(
        found[0].severity,
        Severity::Unknown,
        "the Alpine record has no score"
    );
    assert!(idx.matches(&apk("Alpine:v3.18", "3.1.4-r0")).is_empty());
    assert!(idx.matches(&apk("Alpine:v3.19", "3.1.3-r0")).is_empty());
}

#[test]
fn pypi_ranges_names_and_severity() {
    let idx = index();
    let py = |name: &'static str, v: &'static str| Installed {
        package_type: "pypi",
        name,
        version: v,
        source_name: None,
        source_version: None,
        os_ecosystem: Some("Debian:12"),
    };
    let found = idx.matches(&py("Requests", "2.30.0"));
    assert_eq!(ids(&found), ["CVE-2023-32681"]);
    assert_eq!(found[0].aliases, ["GHSA-j8r2-6x86-q33q", "PYSEC-2023-74"]);
    assert_eq!(found[0].severity, Severity::Medium);
    assert_eq!(found[0].fixed.as_deref(), Some("2.31.0"));
    // Before `introduced`, at `fixed`, and PEP 440 forms of the same versions.
    for v in ["2.2.0", "2.31.0", "2.31", "2.31.0.post1"] {
        assert!(idx.matches(&py("requests", v)).is_empty(), "{v}");
    }
    for v in ["2.3", "2.31.0rc1", "2.30.0+local"] {
        assert_eq!(idx.matches(&py("requests", v)).len(), 1, "{v}");
    }
}

fn record(json: &str) -> Record {
    Record::parse(json.as_bytes()).unwrap()
}

#[test]
fn last_affected_limit_and_version_lists() {
    let idx = Index::new([
        record(
            r#"{"id":"T-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"a"},
            "ranges":[{"type":"SEMVER","events":[{"introduced":"1.0.0"},{"last_affected":"1.2.0"}]}]}]}"#,
        ),
        record(
            r#"{"id":"T-2","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"b"},
            "ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"limit":"2.0.0"}]}]}]}"#,
        ),
        record(
            r#"{"id":"T-3","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"c"},
            "versions":["1.0.1","1.0.3"]}]}"#,
        ),
        record(
            r#"{"id":"T-4","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"d"},
            "ranges":[{"type":"SEMVER","events":[{"introduced":"1.0.0"},{"fixed":"1.1.0"},{"introduced":"2.0.0"},{"fixed":"2.0.5"}]}]}]}"#,
        ),
    ]);
    let npm = |name: &'static str, v: &'static str| {
        !idx.matches(&Installed {
            package_type: "npm",
            name,
            version: v,
            source_name: None,
            source_version: None,
            os_ecosystem: None,
        })
        .is_empty()
    };
    assert!(!npm("a", "0.9.9") && npm("a", "1.0.0") && npm("a", "1.2.0") && !npm("a", "1.2.1"));
    assert!(npm("b", "1.9.9") && !npm("b", "2.0.0") && !npm("b", "3.0.0"));
    assert!(!npm("c", "1.0.0") && npm("c", "1.0.1") && !npm("c", "1.0.2") && npm("c", "1.0.3"));
    assert!(npm("d", "1.0.5") && !npm("d", "1.5.0") && npm("d", "2.0.4") && !npm("d", "2.0.5"));
}

#[test]
fn later_modified_wins_and_withdrawn_records_match_nothing() {
    let v1 = r#"{"id":"T-9","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"x"},
        "ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.0.0"}]}]}]}"#;
    let v2 = r#"{"id":"T-9","modified":"2024-02-01T00:00:00Z","withdrawn":"2024-02-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"x"},
        "ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.0.0"}]}]}]}"#;
    let pkg = Installed {
        package_type: "npm",
        name: "x",
        version: "0.5.0",
        source_name: None,
        source_version: None,
        os_ecosystem: None,
    };
    assert_eq!(Index::new([record(v1)]).matches(&pkg).len(), 1);
    assert!(
        Index::new([record(v2), record(v1)])
            .matches(&pkg)
            .is_empty()
    );
}

#[test]
fn a_zip_in_the_bulk_export_layout_loads_like_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("all.zip");
    // Python's zipfile writes the archive, as OSV's exporter (Go's archive/zip) would.
    let status = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile, pathlib\n\
             with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:\n\
             \x20   for p in sorted(pathlib.Path(sys.argv[2]).rglob('*.json')): z.write(p, p.name)\n",
        ])
        .arg(&zip)
        .arg(fixtures())
        .status()
        .expect("python3 is needed for this test: apt-get install python3");
    assert!(status.success());
    let loaded = load_path(&zip).unwrap();
    assert_eq!(loaded.files, 5);
    let idx = Index::new(loaded.records);
    assert_eq!(
        ids(&idx.matches(&deb("libssl3", "openssl", "3.0.11-1~deb12u1", "Debian:12"))),
        ["CVE-2023-5363"]
    );
}

#[test]
fn bad_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.json");
    std::fs::write(&bad, "{\"id\": \"X\"").unwrap();
    let err = load_path(dir.path()).unwrap_err();
    assert!(matches!(err, VulnError::Record { .. }));
    assert!(err.to_string().contains("broken.json"), "{err}");

    std::fs::write(&bad, r#"{"id":"X-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"a"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0","fixed":"1"}]}]}]}"#).unwrap();
    let err = load_path(&bad).unwrap_err().to_string();
    assert!(
        err.contains("broken.json") && err.contains("exactly one"),
        "{err}"
    );

    let zip = dir.path().join("all.zip");
    std::fs::write(&zip, b"PK\x03\x04 but not a zip").unwrap();
    std::fs::remove_file(&bad).unwrap();
    let err = load_path(&zip).unwrap_err().to_string();
    assert!(err.contains("all.zip"), "{err}");
    let err = load_path(&dir.path().join("missing"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing"), "{err}");
}
