//! Scanner reports in their real formats (Trivy JSON schema 2, Grype JSON),
//! written after what `trivy image -f json` and `grype -o json` print for a
//! bookworm image with the openssl of October 2023: real ids, packages and
//! fixed versions. Malformed input fails naming the file and the field.

use std::path::{Path, PathBuf};

use freshen_vuln::{
    Document, Format, Severity, VulnError, detect, load_document, merge_findings, parse_report,
};

/// The image digest the fixtures name.
const DIGEST: &str = "sha256:45359232780cb2e777e9ce27d87c001dd67e2fb2f00d0742fce54ee68328c2bc";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/reports")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

#[test]
fn trivy_report() {
    let r = parse_report(&read("trivy-debian12.json"), "trivy-debian12.json").unwrap();
    assert_eq!(r.format, Format::Trivy);
    assert_eq!(r.scanner_version.as_deref(), Some("0.69.1"));
    assert_eq!(r.image_digests, [DIGEST]);
    assert_eq!(r.platform.as_deref(), Some("linux/amd64"));
    assert_eq!(r.os.as_deref(), Some("debian 12.2"));
    assert_eq!(r.created.as_deref(), Some("2026-11-30T10:12:44.318271204Z"));
    assert!(r.digest.starts_with("sha256:") && r.digest.len() == 71);
    let got: Vec<(&str, &str)> = r
        .findings
        .iter()
        .map(|f| (f.id.as_str(), f.package.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("CVE-2011-3374", "apt"),
            ("CVE-2023-5363", "libssl3"),
            ("CVE-2023-5363", "openssl")
        ]
    );
    let ssl = &r.findings[1];
    assert_eq!(ssl.aliases, ["DSA-5532-1"]);
    assert_eq!(ssl.version, "3.0.11-1~deb12u1");
    assert_eq!(ssl.package_type, "deb");
    assert_eq!(ssl.fixed.as_deref(), Some("3.0.11-1~deb12u2"));
    assert_eq!(ssl.severity, Severity::High);
    assert_eq!(ssl.score, Some(7.5));
    assert_eq!(ssl.sources, ["trivy"]);
    assert_eq!(
        ssl.summary.as_deref(),
        Some("openssl: Incorrect cipher key and IV length processing")
    );
    // Debian rates it low; the score is the rater's (the NVD here).
    let apt = &r.findings[0];
    assert_eq!(
        (apt.severity, apt.score, apt.fixed.as_deref()),
        (Severity::Low, Some(3.7), None)
    );
}

#[test]
fn grype_report() {
    let r = parse_report(&read("grype-debian12.json"), "grype-debian12.json").unwrap();
    assert_eq!(r.format, Format::Grype);
    assert_eq!(r.scanner_version.as_deref(), Some("0.87.0"));
    assert_eq!(r.image_digests, [DIGEST]);
    assert_eq!(r.platform.as_deref(), Some("linux/amd64"));
    assert_eq!(r.os.as_deref(), Some("debian 12"));
    assert_eq!(
        r.artifact.as_deref(),
        Some("localhost:5000/golden/base:old")
    );
    let got: Vec<(&str, &str, Severity)> = r
        .findings
        .iter()
        .map(|f| (f.id.as_str(), f.package.as_str(), f.severity))
        .collect();
    assert_eq!(
        got,
        [
            ("CVE-2011-3374", "apt", Severity::Negligible),
            ("CVE-2022-0563", "bsdutils", Severity::Negligible),
            ("CVE-2023-5363", "libssl3", Severity::High),
            ("CVE-2023-5363", "openssl", Severity::High)
        ]
    );
    let ssl = &r.findings[2];
    assert_eq!(ssl.fixed.as_deref(), Some("3.0.11-1~deb12u2"));
    // The score comes from the related NVD record.
    assert_eq!(ssl.score, Some(7.5));
    assert_eq!(ssl.sources, ["grype"]);
    assert!(ssl.summary.as_deref().unwrap().starts_with("Issue summary"));
    // "wont-fix" is not a fix.
    assert_eq!(r.findings[1].fixed, None);
    assert_eq!(r.findings[1].version, "1:2.38.1-5+deb12u3");
}

#[test]
fn both_reports_merge_into_one_finding_per_vulnerability_and_package() {
    let t = parse_report(&read("trivy-debian12.json"), "t").unwrap();
    let g = parse_report(&read("grype-debian12.json"), "g").unwrap();
    let merged = merge_findings(t.findings.into_iter().chain(g.findings));
    assert_eq!(merged.len(), 4, "{merged:#?}");
    let apt = &merged[0];
    assert_eq!(apt.sources, ["grype", "trivy"]);
    // The highest severity of the two.
    assert_eq!(apt.severity, Severity::Low);
    assert_eq!(merged[1].sources, ["grype"]);
}

#[test]
fn a_filesystem_scan_names_no_image() {
    let r = parse_report(&read("trivy-rootfs.json"), "trivy-rootfs.json").unwrap();
    assert!(r.image_digests.is_empty());
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.platform, None);
    let g = parse_report(
        br#"{"matches": [], "source": {"type": "directory", "target": "/tmp/rootfs"}, "distro": {"name": "debian", "version": "12"}, "descriptor": {"name": "grype", "version": "0.87.0"}}"#,
        "dir.json",
    )
    .unwrap();
    assert!(g.image_digests.is_empty());
    assert_eq!(g.artifact.as_deref(), Some("/tmp/rootfs"));
}

#[test]
fn documents_are_recognised_by_content() {
    for (name, want) in [
        ("trivy-debian12.json", Format::Trivy),
        ("grype-debian12.json", Format::Grype),
    ] {
        assert_eq!(detect(&read(name)), Some(want));
        match load_document(&fixture(name)).unwrap() {
            Document::Report(r) => assert_eq!(r.format, want),
            Document::Osv(_) => panic!("{name} read as OSV"),
        }
    }
    let osv = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/osv");
    match load_document(&osv.join("debian/DSA-5532-1.json")).unwrap() {
        Document::Osv(l) => assert_eq!(l.records[0].id, "DSA-5532-1"),
        Document::Report(_) => panic!("an OSV record read as a report"),
    }
    match load_document(&osv).unwrap() {
        Document::Osv(l) => assert_eq!(l.files, 5),
        Document::Report(_) => panic!("a directory read as a report"),
    }
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn err(p: &Path) -> String {
    match load_document(p) {
        Ok(d) => panic!("{} loaded: {d:?}", p.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn malformed_reports_name_the_file_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    // A CycloneDX document is none of the accepted formats.
    let p = write(
        &dir,
        "sbom.json",
        r#"{"bomFormat": "CycloneDX", "specVersion": "1.5"}"#,
    );
    let e = err(&p);
    assert!(
        e.contains("sbom.json") && e.contains("Trivy") && e.contains("Grype") && e.contains("OSV"),
        "{e}"
    );
    // Trivy's schema 1 (a bare array) is named as such.
    let p = write(
        &dir,
        "old.json",
        r#"[{"Target": "x", "Vulnerabilities": null}]"#,
    );
    assert!(err(&p).contains("schema version 1"), "{}", err(&p));
    let p = write(&dir, "trunc.json", "{\"SchemaVersion\": 2, \"Results\": [");
    assert!(
        err(&p).contains("trunc.json") && err(&p).contains("not JSON"),
        "{}",
        err(&p)
    );

    // A finding without its package.
    let text = String::from_utf8(read("trivy-debian12.json"))
        .unwrap()
        .replacen("\"PkgName\": \"libssl3\",", "", 1);
    let p = write(&dir, "nopkg.json", &text);
    let e = err(&p);
    assert!(
        e.contains("nopkg.json")
            && e.contains("not a valid trivy report")
            && e.contains("Results[0].Vulnerabilities[1]")
            && e.contains("PkgName"),
        "{e}"
    );
    // A severity of the wrong type.
    let text = String::from_utf8(read("grype-debian12.json"))
        .unwrap()
        .replacen("\"severity\": \"High\"", "\"severity\": 7", 1);
    let p = write(&dir, "sev.json", &text);
    let e = err(&p);
    assert!(
        e.contains("sev.json") && e.contains("matches[2].vulnerability.severity"),
        "{e}"
    );
    // An unknown severity word.
    let text = String::from_utf8(read("trivy-debian12.json"))
        .unwrap()
        .replacen("\"Severity\": \"HIGH\"", "\"Severity\": \"SEVERE\"", 1);
    let p = write(&dir, "word.json", &text);
    let e = err(&p);
    assert!(
        e.contains("Results[0].Vulnerabilities[1].Severity") && e.contains("SEVERE"),
        "{e}"
    );
    // Another schema version.
    let p = write(&dir, "v3.json", r#"{"SchemaVersion": 3, "Results": []}"#);
    assert!(err(&p).contains("SchemaVersion"), "{}", err(&p));
    // A digest-looking image source of the wrong shape.
    let p = write(
        &dir,
        "src.json",
        r#"{"matches": [], "source": {"type": "image", "target": {"repoDigests": "x"}}}"#,
    );
    assert!(err(&p).contains("source.target.repoDigests"), "{}", err(&p));
}

#[test]
fn a_report_inside_an_osv_directory_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("trivy-debian12.json"), dir.path().join("t.json")).unwrap();
    match load_document(dir.path()) {
        Err(e @ VulnError::Record { .. }) => {
            let e = e.to_string();
            assert!(e.contains("t.json") && e.contains("a trivy report"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn reports_over_the_limit_are_refused() {
    // A sparse file: nothing is read before the size is checked.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.json");
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(freshen_vuln::MAX_REPORT_BYTES + 1).unwrap();
    match load_document(&p) {
        Err(VulnError::Limit { path, .. }) => assert!(path.ends_with("big.json")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn harbor_report() {
    let bytes = read("harbor-debian12.json");
    assert_eq!(detect(&bytes), Some(Format::Harbor));
    let r = parse_report(&bytes, "harbor-debian12.json").unwrap();
    assert_eq!(r.format, Format::Harbor);
    assert_eq!(r.scanner_version.as_deref(), Some("Trivy v0.58.1"));
    assert_eq!(r.image_digests, [DIGEST]);
    assert_eq!(r.created.as_deref(), Some("2026-11-30T09:58:12.520349781Z"));
    let got: Vec<(&str, &str, Severity)> = r
        .findings
        .iter()
        .map(|f| (f.id.as_str(), f.package.as_str(), f.severity))
        .collect();
    assert_eq!(
        got,
        [
            ("CVE-2011-3374", "apt", Severity::Low),
            ("CVE-2023-5363", "libssl3", Severity::High),
            ("CVE-2023-5363", "openssl", Severity::High)
        ]
    );
    let ssl = &r.findings[1];
    assert_eq!(ssl.fixed.as_deref(), Some("3.0.11-1~deb12u2"));
    assert_eq!(ssl.score, Some(7.5));
    assert_eq!(ssl.sources, ["harbor"]);
    // An empty fix_version is no fix.
    assert_eq!(r.findings[0].fixed, None);

    let dir = tempfile::tempdir().unwrap();
    let text = String::from_utf8(bytes).unwrap().replacen(
        "\"package\": \"libssl3\",",
        "\"package\": 3,",
        1,
    );
    let p = write(&dir, "harbor.json", &text);
    let e = err(&p);
    assert!(
        e.contains("harbor.json")
            && e.contains("not a valid harbor report")
            && e.contains("vulnerabilities[1].package"),
        "{e}"
    );
}
