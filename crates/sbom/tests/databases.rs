//! Package databases against the tools that own them: a real dpkg status
//! file against `dpkg-query`, rpm databases written by rpm against
//! `rpm -qa`, an apk-tools installed db.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::{Layer, fixture, gzip, require, run, scan};
use freshen_sbom::{DbKind, Ecosystem, FileFinding, LayerFindings, Package, merge};

fn packages<'a>(f: &'a LayerFindings, path: &str) -> (&'a DbKind, &'a [Package]) {
    match f.files.get(path) {
        Some(FileFinding::Packages { kind, packages }) => (kind, packages),
        other => panic!("{path}: {other:?}; warnings {:?}", f.warnings),
    }
}

#[test]
fn dpkg_status_matches_dpkg_query() {
    require("dpkg-query", "dpkg");
    let status = std::fs::read(fixture("dpkg/status")).unwrap();
    let findings = scan(
        "sha256:dpkg",
        &gzip(&Layer::new().file("var/lib/dpkg/status", &status).tar()),
    );
    let (kind, pkgs) = packages(&findings, "var/lib/dpkg/status");
    assert_eq!(*kind, DbKind::DpkgStatus);
    assert!(findings.warnings.is_empty(), "{:?}", findings.warnings);

    let admin = tempfile::tempdir().unwrap();
    std::fs::write(admin.path().join("status"), &status).unwrap();
    let out = run(Command::new("dpkg-query")
        .arg(format!("--admindir={}", admin.path().display()))
        .arg("-W")
        .arg("-f=${db:Status-Status}\\t${Package}\\t${Version}\\t${Architecture}\\t${source:Package}\\t${source:Version}\\n"));
    let mut expected: Vec<(String, String, String, String, String)> = out
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            // Packages whose files are on disk: every state but these two.
            (f[0] != "not-installed" && f[0] != "config-files").then(|| {
                (
                    f[1].into(),
                    f[2].into(),
                    f[3].into(),
                    f[4].into(),
                    f[5].into(),
                )
            })
        })
        .collect();
    let mut got: Vec<(String, String, String, String, String)> = pkgs
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                p.version.clone(),
                p.arch.clone().unwrap_or_default(),
                p.source_name.clone().unwrap_or_default(),
                p.source_version.clone().unwrap_or_default(),
            )
        })
        .collect();
    expected.sort();
    got.sort();
    assert!(
        expected.len() > 100,
        "fixture too small: {}",
        expected.len()
    );
    assert_eq!(got, expected);
}

fn rpm_qa(dbpath: &std::path::Path, backend: &str) -> Vec<String> {
    let out = run(Command::new("rpm")
        .arg("--dbpath")
        .arg(dbpath)
        .arg("--define")
        .arg(format!("_db_backend {backend}"))
        .arg("-qa")
        .arg("--qf")
        .arg("%{NAME} %{EPOCHNUM}:%{VERSION}-%{RELEASE} %{SOURCERPM} %{ARCH}\\n")
        .stderr(std::process::Stdio::null()));
    let mut v: Vec<String> = out.lines().map(str::to_string).collect();
    v.sort();
    v
}

/// Our packages in `rpm -qa --qf` form.
fn as_qa(pkgs: &[Package]) -> Vec<String> {
    let mut v: Vec<String> = pkgs
        .iter()
        .map(|p| {
            let evr = if p.version.contains(':') {
                p.version.clone()
            } else {
                format!("0:{}", p.version)
            };
            let src = match (&p.source_name, &p.source_version) {
                (Some(n), Some(v)) => format!("{n}-{v}.src.rpm"),
                _ => "(none)".into(),
            };
            format!("{} {evr} {src} {}", p.name, p.arch.as_deref().unwrap_or(""))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn rpm_sqlite_matches_rpm_qa() {
    require("rpm", "rpm");
    let db = std::fs::read(fixture("rpm/rpmdb.sqlite")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rpmdb.sqlite"), &db).unwrap();
    let expected = rpm_qa(dir.path(), "sqlite");
    assert_eq!(expected.len(), 4);

    for path in [
        "var/lib/rpm/rpmdb.sqlite",
        "usr/lib/sysimage/rpm/rpmdb.sqlite",
    ] {
        let findings = scan("sha256:rpm", &gzip(&Layer::new().file(path, &db).tar()));
        let (kind, pkgs) = packages(&findings, path);
        assert_eq!(*kind, DbKind::RpmSqlite);
        assert_eq!(as_qa(pkgs), expected);
        let epoch = pkgs.iter().find(|p| p.name == "freshen-epoch").unwrap();
        assert_eq!(epoch.version, "2:0.9-1.fc40");
        let cli = pkgs.iter().find(|p| p.name == "freshen-cli").unwrap();
        assert_eq!(cli.source_name.as_deref(), Some("freshen-tools"));
        assert_eq!(cli.source_version.as_deref(), Some("3.0-7.el9"));
    }
    // The committed expectation agrees too (the generator wrote it).
    let committed = std::fs::read_to_string(fixture("rpm/expected.txt")).unwrap();
    assert_eq!(committed.lines().collect::<Vec<_>>(), expected);
}

#[test]
fn rpm_bdb_matches_rpm_qa() {
    require("rpm", "rpm");
    // Overflow pages (4 KiB pages) and inline items (16 KiB pages).
    for name in ["Packages", "Packages-inline"] {
        let db = std::fs::read(fixture(&format!("rpm/{name}"))).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Packages"), &db).unwrap();
        let expected = rpm_qa(dir.path(), "bdb_ro");
        assert_eq!(expected.len(), 4, "{name}");
        let findings = scan(
            "sha256:bdb",
            &gzip(&Layer::new().file("var/lib/rpm/Packages", &db).tar()),
        );
        let (kind, pkgs) = packages(&findings, "var/lib/rpm/Packages");
        assert_eq!(*kind, DbKind::RpmBdb);
        assert!(
            findings.warnings.is_empty(),
            "{name}: {:?}",
            findings.warnings
        );
        assert_eq!(as_qa(pkgs), expected, "{name}");
    }
}

/// No rpm here writes NDB (Debian builds rpm without it), so this database
/// is assembled by the test in the layout of rpm's `backend/ndb/rpmpkg.c`
/// from the header blobs rpm wrote into the sqlite fixture.
#[test]
fn rpm_ndb_layout_from_real_headers() {
    let db = std::fs::read(fixture("rpm/rpmdb.sqlite")).unwrap();
    let conn = rusqlite_blobs(&db);
    let mut file = vec![0u8; 4096];
    file[0..4].copy_from_slice(b"RpmP");
    file[12..16].copy_from_slice(&1u32.to_le_bytes()); // one slot page
    let mut blk = 4096 / 16;
    for (i, blob) in conn.iter().enumerate() {
        let pkg = i as u32 + 1;
        let slot = 32 + 16 * i;
        file[slot..slot + 4].copy_from_slice(b"Slot");
        file[slot + 4..slot + 8].copy_from_slice(&pkg.to_le_bytes());
        file[slot + 8..slot + 12].copy_from_slice(&(blk as u32).to_le_bytes());
        let mut b = Vec::new();
        b.extend_from_slice(b"BlbS");
        b.extend_from_slice(&pkg.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&(blob.len() as u32).to_le_bytes());
        b.extend_from_slice(blob);
        b.resize(b.len().div_ceil(16) * 16 + 16, 0);
        let count = b.len() / 16;
        file[slot + 12..slot + 16].copy_from_slice(&(count as u32).to_le_bytes());
        file.extend_from_slice(&b);
        blk += count;
    }
    // Free slots carry the magic and package index 0.
    for slot in (32 + 16 * conn.len()..4096).step_by(16) {
        file[slot..slot + 4].copy_from_slice(b"Slot");
    }
    let findings = scan(
        "sha256:ndb",
        &Layer::new()
            .file("usr/lib/sysimage/rpm/Packages.db", &file)
            .tar(),
    );
    let (kind, pkgs) = packages(&findings, "usr/lib/sysimage/rpm/Packages.db");
    assert_eq!(*kind, DbKind::RpmNdb);
    let expected: Vec<String> = std::fs::read_to_string(fixture("rpm/expected.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(as_qa(pkgs), expected);
}

/// The header blobs rpm wrote into the sqlite fixture, read with SQLite
/// from a copy on disk.
fn rusqlite_blobs(db: &[u8]) -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpmdb.sqlite");
    std::fs::write(&path, db).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mut stmt = conn
        .prepare("SELECT blob FROM Packages ORDER BY hnum")
        .unwrap();
    stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn apk_installed_db() {
    let db = std::fs::read(fixture("apk/installed")).unwrap();
    let os = b"NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.3\nPRETTY_NAME=\"Alpine Linux v3.20\"\n";
    let layer = Layer::new()
        .file("etc/os-release", os)
        .file("lib/apk/db/installed", &db)
        .tar();
    let findings = scan("sha256:apk", &gzip(&layer));
    let (kind, pkgs) = packages(&findings, "lib/apk/db/installed");
    assert_eq!(*kind, DbKind::ApkInstalled);
    assert!(findings.warnings.is_empty(), "{:?}", findings.warnings);
    let got: BTreeMap<&str, (&str, &str, &str)> = pkgs
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                (
                    p.version.as_str(),
                    p.arch.as_deref().unwrap(),
                    p.source_name.as_deref().unwrap(),
                ),
            )
        })
        .collect();
    let expected: BTreeMap<&str, (&str, &str, &str)> = [
        ("musl", ("1.2.5-r0", "x86_64", "musl")),
        ("busybox", ("1.36.1-r29", "x86_64", "busybox")),
        ("busybox-binsh", ("1.36.1-r29", "x86_64", "busybox")),
        ("libcrypto3", ("3.3.2-r0", "x86_64", "openssl")),
        (
            "ca-certificates-bundle",
            ("20240705-r0", "x86_64", "ca-certificates"),
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, expected);
    let inv = merge(&[("sha256:apk".into(), findings)]);
    assert_eq!(
        inv.os.as_ref().unwrap().osv_ecosystem().as_deref(),
        Some("Alpine:v3.20")
    );
    let musl = inv.packages.iter().find(|p| p.name == "musl").unwrap();
    assert_eq!(musl.ecosystem, Ecosystem::Apk);
    assert_eq!(
        musl.purl,
        "pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64&distro=alpine-3.20.3"
    );
}
