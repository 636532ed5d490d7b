//! Layers end to end: compression by magic, whiteouts, opaque directories,
//! os-release through a symlink, the layer that introduced each package,
//! language packages, a Go binary built by the Go toolchain and a Rust
//! binary carrying cargo-auditable data.

mod common;

use std::io::Write;
use std::process::Command;

use common::{DEBIAN_OS_RELEASE, Layer, fixture, gzip, require, run, scan, zstd};
use freshen_sbom::{
    DbKind, Deletion, Ecosystem, FileFinding, Inventory, LayerFindings, Package, merge,
};

fn dpkg_status(pkgs: &[(&str, &str)]) -> Vec<u8> {
    let mut s = String::new();
    for (name, version) in pkgs {
        s.push_str(&format!(
            "Package: {name}\nStatus: install ok installed\nPriority: optional\nArchitecture: amd64\nVersion: {version}\nDescription: test\n multi-line\n\n"
        ));
    }
    s.into_bytes()
}

fn find<'a>(inv: &'a Inventory, eco: Ecosystem, name: &str) -> Option<&'a Package> {
    inv.packages
        .iter()
        .find(|p| p.ecosystem == eco && p.name == name)
}

fn names(inv: &Inventory, eco: Ecosystem) -> Vec<String> {
    let mut v: Vec<String> = inv
        .packages
        .iter()
        .filter(|p| p.ecosystem == eco)
        .map(|p| format!("{}@{}", p.name, p.version))
        .collect();
    v.sort();
    v
}

#[test]
fn three_layers_whiteouts_opaque_and_attribution() {
    // Layer 1, gzip: the base.
    let l1 = Layer::new()
        .dir("etc")
        .symlink("etc/os-release", "../usr/lib/os-release")
        .file("usr/lib/os-release", DEBIAN_OS_RELEASE)
        .file(
            "var/lib/dpkg/status",
            &dpkg_status(&[("libc6", "2.36-9+deb12u4"), ("bash", "5.2.15-2+b2")]),
        )
        .file(
            "usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA",
            b"Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\n\nBody: not a header\n",
        )
        .file(
            "usr/lib/python3/dist-packages/Zope.Interface-5.5.2.egg-info",
            b"Metadata-Version: 1.1\nName: Zope.Interface\nVersion: 5.5.2\n",
        )
        .file(
            "app/node_modules/left-pad/package.json",
            br#"{"name":"left-pad","version":"1.3.0"}"#,
        )
        .file(
            "app/node_modules/@types/node/package.json",
            br#"{"name":"@types/node","version":"20.11.5","private":false}"#,
        )
        .file(
            "app/node_modules/left-pad/test/package.json",
            br#"{"name":"fixture","version":"0.0.0"}"#,
        )
        .file(
            "usr/lib/node_modules/npm/package.json",
            br#"{"name":"npm","version":"10.2.4"}"#,
        )
        .tar();
    // Layer 2, zstd: apt-get upgrade of bash and install of curl; the six
    // distribution is removed.
    let l2 = Layer::new()
        .file(
            "var/lib/dpkg/status",
            &dpkg_status(&[
                ("libc6", "2.36-9+deb12u4"),
                ("bash", "5.2.15-2+b7"),
                ("curl", "7.88.1-10+deb12u5"),
            ]),
        )
        .file(
            "usr/lib/python3/dist-packages/.wh.six-1.16.0.dist-info",
            b"",
        )
        .tar();
    // Layer 3, plain tar: node_modules replaced wholesale.
    let l3 = Layer::new()
        .file("app/node_modules/.wh..wh..opq", b"")
        .file(
            "app/node_modules/lodash/package.json",
            br#"{"name":"lodash","version":"4.17.21"}"#,
        )
        .tar();

    let f1 = scan("sha256:l1", &gzip(&l1));
    let f2 = scan("sha256:l2", &zstd(&l2));
    let f3 = scan("sha256:l3", &l3);
    assert_eq!(
        f2.deletions,
        [Deletion {
            path: "usr/lib/python3/dist-packages/six-1.16.0.dist-info".into(),
            opaque: false
        }]
    );
    assert_eq!(
        f3.deletions,
        [Deletion {
            path: "app/node_modules".into(),
            opaque: true
        }]
    );
    assert!(f1.links.contains_key("etc/os-release"));
    assert_eq!(f1.entries, 10);
    assert!(f1.bytes >= l1.len() as u64 - 1024);

    // Findings survive a JSON round trip (they are kept by layer digest).
    let f1: LayerFindings = serde_json::from_str(&serde_json::to_string(&f1).unwrap()).unwrap();

    let inv = merge(&[
        ("sha256:l1".into(), f1),
        ("sha256:l2".into(), f2),
        ("sha256:l3".into(), f3),
    ]);
    let os = inv.os.as_ref().expect("os-release through the symlink");
    assert_eq!(os.osv_ecosystem().as_deref(), Some("Debian:12"));

    assert_eq!(
        names(&inv, Ecosystem::Deb),
        [
            "bash@5.2.15-2+b7",
            "curl@7.88.1-10+deb12u5",
            "libc6@2.36-9+deb12u4"
        ]
    );
    let layer = |eco, name| {
        find(&inv, eco, name)
            .unwrap()
            .layer
            .as_deref()
            .unwrap()
            .to_string()
    };
    assert_eq!(layer(Ecosystem::Deb, "libc6"), "sha256:l1");
    assert_eq!(layer(Ecosystem::Deb, "bash"), "sha256:l2");
    assert_eq!(layer(Ecosystem::Deb, "curl"), "sha256:l2");
    assert_eq!(
        find(&inv, Ecosystem::Deb, "libc6").unwrap().purl,
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12"
    );

    assert_eq!(names(&inv, Ecosystem::PyPI), ["Zope.Interface@5.5.2"]);
    assert_eq!(
        find(&inv, Ecosystem::PyPI, "Zope.Interface").unwrap().purl,
        "pkg:pypi/zope-interface@5.5.2"
    );
    assert_eq!(
        names(&inv, Ecosystem::Npm),
        ["lodash@4.17.21", "npm@10.2.4"]
    );
    assert_eq!(layer(Ecosystem::Npm, "lodash"), "sha256:l3");
    assert_eq!(
        find(&inv, Ecosystem::Npm, "npm").unwrap().location,
        "/usr/lib/node_modules/npm/package.json"
    );
}

#[test]
fn scoped_npm_purl_and_whiteout_of_a_database() {
    let apk = std::fs::read(fixture("apk/installed")).unwrap();
    let l1 = Layer::new()
        .file("lib/apk/db/installed", &apk)
        .file(
            "node_modules/@types/node/package.json",
            br#"{"name":"@types/node","version":"20.11.5"}"#,
        )
        .tar();
    let l2 = Layer::new().file("lib/apk/db/.wh.installed", b"").tar();
    let l3 = Layer::new().file("lib/apk/db/installed", &apk).tar();
    let (f1, f2, f3) = (
        scan("sha256:a", &gzip(&l1)),
        scan("sha256:b", &gzip(&l2)),
        scan("sha256:c", &gzip(&l3)),
    );

    let inv = merge(&[
        ("sha256:a".into(), f1.clone()),
        ("sha256:b".into(), f2.clone()),
    ]);
    assert!(
        names(&inv, Ecosystem::Apk).is_empty(),
        "the database was deleted"
    );
    assert_eq!(
        find(&inv, Ecosystem::Npm, "@types/node").unwrap().purl,
        "pkg:npm/%40types/node@20.11.5"
    );
    assert!(inv.os.is_none());

    // Put back after a deletion: introduced by the layer that put it back.
    let inv = merge(&[
        ("sha256:a".into(), f1),
        ("sha256:b".into(), f2),
        ("sha256:c".into(), f3),
    ]);
    let musl = find(&inv, Ecosystem::Apk, "musl").unwrap();
    assert_eq!(musl.layer.as_deref(), Some("sha256:c"));
}

#[test]
fn distroless_status_d_and_rpm_in_a_layer() {
    let l = Layer::new()
        .file(
            "var/lib/dpkg/status.d/base-files",
            b"Package: base-files\nVersion: 12.4+deb12u5\nArchitecture: amd64\n",
        )
        .file(
            "var/lib/dpkg/status.d/base-files.md5sums",
            b"0123 etc/debian_version\n",
        )
        .file(
            "var/lib/dpkg/status.d/libssl3",
            b"Package: libssl3\nVersion: 3.0.11-1~deb12u2\nArchitecture: amd64\nSource: openssl\n",
        )
        .file("etc/os-release", DEBIAN_OS_RELEASE)
        .tar();
    let inv = merge(&[("sha256:d".into(), scan("sha256:d", &gzip(&l)))]);
    assert_eq!(
        names(&inv, Ecosystem::Deb),
        ["base-files@12.4+deb12u5", "libssl3@3.0.11-1~deb12u2"]
    );
    assert_eq!(
        find(&inv, Ecosystem::Deb, "libssl3")
            .unwrap()
            .source_name
            .as_deref(),
        Some("openssl")
    );

    let db = std::fs::read(fixture("rpm/rpmdb.sqlite")).unwrap();
    let rocky = b"NAME=\"Rocky Linux\"\nVERSION=\"9.4 (Blue Onyx)\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.4\"\n";
    let l = Layer::new()
        .file("usr/lib/os-release", rocky)
        .symlink("etc/os-release", "/usr/lib/os-release")
        .dir("usr/lib/sysimage/rpm")
        .file("usr/lib/sysimage/rpm/rpmdb.sqlite", &db)
        .symlink("var/lib/rpm", "../../usr/lib/sysimage/rpm")
        .tar();
    let inv = merge(&[("sha256:r".into(), scan("sha256:r", &zstd(&l)))]);
    assert_eq!(
        inv.os.as_ref().unwrap().osv_ecosystem().as_deref(),
        Some("Rocky Linux:9")
    );
    assert_eq!(inv.packages.len(), 4);
    assert_eq!(
        find(&inv, Ecosystem::Rpm, "freshen-epoch").unwrap().purl,
        "pkg:rpm/rocky/freshen-epoch@0.9-1.fc40?arch=noarch&distro=rocky-9.4&epoch=2"
    );
}

#[test]
fn go_binary_built_by_the_go_toolchain() {
    require("go", "golang-go");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let w = |p: &str, s: &str| {
        let p = d.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, s).unwrap();
    };
    w(
        "go.mod",
        "module example.com/hello\n\ngo 1.19\n\nrequire (\n\texample.com/greet v1.2.3\n\texample.com/shout v0.1.0\n)\n\nreplace example.com/shout v0.1.0 => ./local/shout\n",
    );
    w(
        "main.go",
        "package main\n\nimport (\n\t\"example.com/greet\"\n\t\"example.com/shout\"\n)\n\nfunc main() { println(shout.Up(greet.Hello())) }\n",
    );
    w(
        "vendor/example.com/greet/greet.go",
        "package greet\n\nfunc Hello() string { return \"hello\" }\n",
    );
    w(
        "local/shout/go.mod",
        "module example.com/shout\n\ngo 1.19\n",
    );
    let shout = "package shout\n\nfunc Up(s string) string { return s + \"!\" }\n";
    w("local/shout/shout.go", shout);
    w("vendor/example.com/shout/shout.go", shout);
    w(
        "vendor/modules.txt",
        "# example.com/greet v1.2.3\n## explicit\nexample.com/greet\n# example.com/shout v0.1.0 => ./local/shout\n## explicit\nexample.com/shout\n# example.com/shout v0.1.0 => ./local/shout\n",
    );
    // A Go build cache that survives between runs keeps this test fast.
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-build-cache");
    run(Command::new("go")
        .args(["build", "-trimpath", "-o", "hello", "."])
        .current_dir(d)
        .env("GOFLAGS", "-mod=vendor")
        .env("GOPROXY", "off")
        .env("GOCACHE", &cache)
        .env("CGO_ENABLED", "0"));
    let bin = std::fs::read(d.join("hello")).unwrap();
    let go_version = run(Command::new("go").arg("env").arg("GOVERSION"))
        .trim()
        .to_string();

    let layer = Layer::new()
        .file("usr/local/bin/hello", &bin)
        .file(
            "usr/local/bin/script",
            b"#!/bin/sh\necho not elf, long enough to be looked at................\n",
        )
        .tar();
    let f = scan("sha256:go", &gzip(&layer));
    assert!(f.warnings.is_empty(), "{:?}", f.warnings);
    let Some(FileFinding::Packages { kind, packages }) = f.files.get("usr/local/bin/hello") else {
        panic!(
            "no Go build info found: {:?}",
            f.files.keys().collect::<Vec<_>>()
        );
    };
    assert_eq!(*kind, DbKind::GoBinary);
    let got: Vec<String> = packages
        .iter()
        .map(|p| format!("{} {}", p.name, p.version))
        .collect();
    assert_eq!(
        got,
        [
            "example.com/hello (devel)".to_string(),
            "example.com/greet v1.2.3".to_string(),
            "example.com/shout v0.1.0".to_string(),
            format!("stdlib {go_version}"),
        ]
    );
    let inv = merge(&[("sha256:go".into(), f)]);
    assert_eq!(
        find(&inv, Ecosystem::Go, "example.com/greet").unwrap().purl,
        "pkg:golang/example.com/greet@v1.2.3"
    );
    assert_eq!(
        find(&inv, Ecosystem::Go, "stdlib").unwrap().purl,
        format!("pkg:golang/stdlib@{go_version}")
    );
}

#[test]
fn rust_binary_with_cargo_auditable_data() {
    require("objcopy", "binutils");
    // The JSON cargo-auditable 0.6 embeds, for a binary `hello` depending
    // on `itoa` and `serde` (and `cc` at build time only).
    let json = br#"{"packages":[{"name":"cc","version":"1.0.83","source":"crates.io","kind":"build"},{"name":"hello","version":"0.1.0","source":"local","dependencies":[0,2,3],"root":true},{"name":"itoa","version":"1.0.11","source":"crates.io"},{"name":"serde","version":"1.0.197","source":"crates.io"}]}"#;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(json).unwrap();
    let section = z.finish().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("dep-v0"), &section).unwrap();
    std::fs::copy("/bin/true", d.join("plain")).unwrap();
    run(Command::new("objcopy")
        .arg("--add-section")
        .arg(format!(".dep-v0={}", d.join("dep-v0").display()))
        .args(["--set-section-flags", ".dep-v0=noload,readonly"])
        .arg(d.join("plain"))
        .arg(d.join("hello")));
    let bin = std::fs::read(d.join("hello")).unwrap();
    let plain = std::fs::read(d.join("plain")).unwrap();

    let layer = Layer::new()
        .file("usr/bin/hello", &bin)
        .file("usr/bin/true", &plain)
        .hardlink("usr/bin/hello-again", "usr/bin/hello")
        .tar();
    let f = scan("sha256:rs", &zstd(&layer));
    assert!(
        !f.files.contains_key("usr/bin/true"),
        "a plain ELF has no packages"
    );
    let inv = merge(&[("sha256:rs".into(), f)]);
    let mut got: Vec<String> = inv.packages.iter().map(|p| p.purl.clone()).collect();
    got.sort();
    assert_eq!(
        got,
        [
            "pkg:cargo/hello@0.1.0",
            "pkg:cargo/itoa@1.0.11",
            "pkg:cargo/serde@1.0.197"
        ]
    );
    assert!(inv.packages.iter().all(|p| p.location == "/usr/bin/hello"));
}

#[test]
fn layer_with_pax_and_gnu_long_names() {
    // A path longer than 100 bytes: the tar crate writes a GNU long name;
    // GNU tar in POSIX mode writes a PAX `path` record.
    let deep = format!(
        "srv/{}/node_modules/very-long-package-name-for-testing/package.json",
        "a".repeat(120)
    );
    let layer = Layer::new()
        .file(
            &deep,
            br#"{"name":"very-long-package-name-for-testing","version":"2.0.0"}"#,
        )
        .tar();
    let f = scan("sha256:long", &layer);
    assert!(
        f.files.contains_key(&deep),
        "{:?}",
        f.files.keys().collect::<Vec<_>>()
    );

    require("tar", "tar");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let file = root.join(&deep);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(
        &file,
        br#"{"name":"very-long-package-name-for-testing","version":"2.0.0"}"#,
    )
    .unwrap();
    let out = dir.path().join("layer.tar");
    run(Command::new("tar")
        .arg("--format=posix")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&out)
        .arg("."));
    let f = scan("sha256:pax", &gzip(&std::fs::read(&out).unwrap()));
    assert!(
        f.files.contains_key(&deep),
        "{:?}",
        f.files.keys().collect::<Vec<_>>()
    );
}
