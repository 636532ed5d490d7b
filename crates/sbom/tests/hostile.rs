//! Hostile layers: each fails cleanly (an error naming the layer and the
//! limit) or is read with a warning, and nothing is written to disk.

mod common;

use std::cell::Cell;
use std::io::{Read, Write};
use std::process::Command;
use std::rc::Rc;

use common::{DEBIAN_OS_RELEASE, Layer, gzip, scan, zstd};
use freshen_sbom::{Ecosystem, FileFinding, Limits, SbomError, merge, scan_layer};

const STATUS: &[u8] =
    b"Package: evil\nStatus: install ok installed\nVersion: 6.6.6\nArchitecture: amd64\n\n";

fn small() -> Limits {
    Limits {
        max_layer_bytes: 1024 * 1024,
        max_entries: 10_000,
        max_file_bytes: 64 * 1024,
        max_compression_ratio: None,
    }
}

/// Counts how much of the compressed stream the scanner pulled.
struct Counting<R> {
    inner: R,
    read: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

/// A tar holding one file of `size` zeros, streamed into `enc`.
fn zeros_tar<W: Write>(mut enc: W, size: u64) -> W {
    let mut h = tar::Header::new_gnu();
    h.set_path("zeros").unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    enc.write_all(h.as_bytes()).unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        enc.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    enc.write_all(&[0u8; 1024]).unwrap();
    enc
}

#[test]
fn path_traversal_and_absolute_names() {
    let layer = Layer::new()
        .raw(
            tar::EntryType::Regular,
            "../../var/lib/dpkg/status",
            "",
            STATUS,
        )
        .raw(
            tar::EntryType::Regular,
            "./a/../../etc/os-release",
            "",
            DEBIAN_OS_RELEASE,
        )
        .raw(
            tar::EntryType::Regular,
            "/lib/apk/db/installed",
            "",
            b"P:abs\nV:1.0-r0\n\n",
        )
        .tar();
    let f = scan("sha256:trav", &gzip(&layer));
    assert_eq!(f.files.len(), 1, "{:?}", f.files.keys().collect::<Vec<_>>());
    // The absolute name is a path inside the image, nothing more.
    assert!(f.files.contains_key("lib/apk/db/installed"));
    assert_eq!(f.warnings.len(), 2, "{:?}", f.warnings);
    assert!(f.warnings.iter().all(|w| w.contains("'..'")));
}

#[test]
fn symlinks_and_hardlinks_are_never_followed_on_the_host() {
    // The host's /etc/os-release says what this machine is; a link to it at
    // a path of interest must not make the image look like the host.
    let layer = Layer::new()
        .symlink("etc/os-release", "/etc/os-release")
        .symlink("usr/lib/os-release", "../../../../../../etc/shadow")
        .symlink("var/lib/dpkg/status", "/var/lib/dpkg/status")
        .hardlink("lib/apk/db/installed", "etc/shadow")
        .hardlink("var/lib/rpm/Packages", "../../etc/shadow")
        .tar();
    let f = scan("sha256:links", &layer);
    assert!(f.files.is_empty(), "{:?}", f.files);
    assert_eq!(f.links.len(), 4, "{:?}", f.links);
    assert_eq!(
        f.links["usr/lib/os-release"].target,
        "../../../../../../etc/shadow"
    );
    assert_eq!(f.warnings.len(), 1, "{:?}", f.warnings);
    let inv = merge(&[("sha256:links".into(), f)]);
    // etc/os-release -> /etc/os-release is a loop inside the image: no OS.
    assert!(inv.os.is_none());
    assert!(inv.packages.is_empty());
}

#[test]
fn a_link_in_a_later_layer_hides_the_file_below() {
    let l1 = Layer::new()
        .file("etc/os-release", DEBIAN_OS_RELEASE)
        .file("var/lib/dpkg/status", STATUS)
        .tar();
    let l2 = Layer::new()
        .symlink("etc/os-release", "/nonexistent")
        .symlink("var/lib/dpkg/status", "/etc/shadow")
        .tar();
    let inv = merge(&[
        ("sha256:1".into(), scan("sha256:1", &l1)),
        ("sha256:2".into(), scan("sha256:2", &l2)),
    ]);
    assert!(inv.os.is_none());
    assert!(inv.packages.is_empty());
}

/// An endless layer: a tar header for a 4 GiB file of zeros, then zeros
/// forever, compressed on the fly. A scanner that did not stop at the
/// limit would never return.
fn endless_zeros() -> impl Read {
    let mut h = tar::Header::new_gnu();
    h.set_path("zeros").unwrap();
    h.set_size(1 << 32);
    h.set_mode(0o644);
    h.set_cksum();
    std::io::Cursor::new(h.as_bytes().to_vec()).chain(std::io::repeat(0))
}

#[test]
fn gzip_bomb_stops_at_the_limit_without_reading_further() {
    let read = Rc::new(Cell::new(0));
    let bomb = flate2::read::GzEncoder::new(endless_zeros(), flate2::Compression::best());
    let err = scan_layer(
        "sha256:gzbomb",
        Counting {
            inner: bomb,
            read: read.clone(),
        },
        &small(),
    )
    .unwrap_err();
    assert!(
        matches!(err, SbomError::LayerTooLarge { limit: 1048576, .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "layer sha256:gzbomb: decompressed size passes the limit of 1048576 bytes"
    );
    // 1 MiB of zeros is about 1 KiB of gzip; one read buffer more at most.
    assert!(
        read.get() < 128 * 1024,
        "read {} compressed bytes",
        read.get()
    );
}

#[test]
fn zstd_bomb_stops_at_the_limit() {
    let read = Rc::new(Cell::new(0));
    let bomb = zstd::stream::read::Encoder::new(endless_zeros(), 3).unwrap();
    let err = scan_layer(
        "sha256:zbomb",
        Counting {
            inner: bomb,
            read: read.clone(),
        },
        &small(),
    )
    .unwrap_err();
    assert!(
        matches!(err, SbomError::LayerTooLarge { limit: 1048576, .. }),
        "{err}"
    );
    assert!(err.to_string().starts_with("layer sha256:zbomb: "));
    assert!(
        read.get() < 512 * 1024,
        "read {} compressed bytes",
        read.get()
    );
}

#[test]
fn compression_ratio_limit() {
    let blob = zeros_tar(
        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best()),
        64 << 20,
    )
    .finish()
    .unwrap();
    let limits = Limits {
        max_compression_ratio: Some(100),
        ..Limits::default()
    };
    let err = scan_layer("sha256:ratio", &blob[..], &limits).unwrap_err();
    assert!(
        matches!(err, SbomError::CompressionRatio { limit: 100, .. }),
        "{err}"
    );
}

#[test]
fn too_many_entries() {
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..100_000 {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        b.append_data(&mut h, format!("f/{i}"), &[][..]).unwrap();
    }
    let blob = zstd(&b.into_inner().unwrap());
    let limits = Limits {
        max_entries: 10_000,
        ..Limits::default()
    };
    let err = scan_layer("sha256:many", &blob[..], &limits).unwrap_err();
    assert!(
        matches!(err, SbomError::TooManyEntries { limit: 10_000, .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "layer sha256:many: number of tar entries passes the limit of 10000"
    );
}

#[test]
fn truncated_and_corrupt_streams() {
    let tar = Layer::new()
        .file("var/lib/dpkg/status", &STATUS.repeat(2000))
        .file("etc/os-release", DEBIAN_OS_RELEASE)
        .tar();
    for (name, blob, format) in [("gzip", gzip(&tar), "gzip"), ("zstd", zstd(&tar), "zstd")] {
        let cut = &blob[..blob.len() / 2];
        let err = scan_layer("sha256:cut", cut, &Limits::default()).unwrap_err();
        assert!(
            matches!(&err, SbomError::Decompress { format: f, .. } if *f == format)
                || matches!(&err, SbomError::Tar { .. }),
            "{name}: {err}"
        );
        let msg = err.to_string();
        assert!(msg.starts_with("layer sha256:cut: "), "{msg}");
        assert!(msg.contains("truncated"), "{name}: {msg}");

        // Only the trailer missing: every tar byte is there, the stream is
        // still incomplete.
        let err =
            scan_layer("sha256:tail", &blob[..blob.len() - 4], &Limits::default()).unwrap_err();
        assert!(matches!(err, SbomError::Decompress { .. }), "{name}: {err}");

        let mut bad = blob.clone();
        let mid = bad.len() / 2;
        for b in &mut bad[mid..mid + 64] {
            *b ^= 0x5a;
        }
        let err = scan_layer("sha256:bad", &bad[..], &Limits::default()).unwrap_err();
        assert!(err.to_string().starts_with("layer sha256:bad: "), "{err}");
    }
    // A plain tar cut inside an entry.
    let err = scan_layer("sha256:plain", &tar[..tar.len() / 2], &Limits::default()).unwrap_err();
    assert!(matches!(err, SbomError::Tar { .. }), "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");
    // Not a tar at all.
    let err = scan_layer(
        "sha256:junk",
        &b"hello, this is not a tar file"[..],
        &Limits::default(),
    );
    assert!(err.is_err());
    let err = scan_layer("sha256:junk", &[b'x'; 2048][..], &Limits::default()).unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
    // Other compressions are named.
    let err = scan_layer("sha256:bz", &b"BZh91AY&SY"[..], &Limits::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "layer sha256:bz: unsupported compression bzip2 (layers are gzip, zstd or plain tar)"
    );
}

#[test]
fn oversized_file_of_interest_is_skipped_and_still_hides_the_lower_one() {
    let l1 = Layer::new().file("var/lib/dpkg/status", STATUS).tar();
    let big = STATUS.repeat((100 * 1024) / STATUS.len());
    let l2 = Layer::new().file("var/lib/dpkg/status", &big).tar();
    let f1 = scan_layer("sha256:1", &l1[..], &small()).unwrap();
    let f2 = scan_layer("sha256:2", &l2[..], &small()).unwrap();
    assert!(matches!(
        f2.files.get("var/lib/dpkg/status"),
        Some(FileFinding::Skipped { .. })
    ));
    assert_eq!(f2.warnings.len(), 1);
    assert!(f2.warnings[0].contains("65536"), "{}", f2.warnings[0]);
    let inv = merge(&[("sha256:1".into(), f1), ("sha256:2".into(), f2)]);
    assert!(inv.packages.iter().all(|p| p.ecosystem != Ecosystem::Deb));
    assert_eq!(inv.warnings.len(), 1);
    assert!(inv.warnings[0].starts_with("sha256:2: /var/lib/dpkg/status: "));
}

#[test]
fn huge_metadata_entries_are_refused() {
    // A PAX header declaring 512 MiB: refused before it is read.
    let mut h = tar::Header::new_ustar();
    h.set_path("PaxHeaders/x").unwrap();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_size(512 << 20);
    h.set_mode(0o644);
    h.set_cksum();
    let mut blob = h.as_bytes().to_vec();
    blob.extend_from_slice(&[b'a'; 4096]);
    let err = scan_layer("sha256:pax", &blob[..], &Limits::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("PAX header entry of 536870912 bytes"),
        "{err}"
    );
}

#[test]
fn malformed_databases_are_warnings() {
    let layer = Layer::new()
        .file("var/lib/rpm/rpmdb.sqlite", b"SQLite format 3\0garbage garbage garbage")
        .file("var/lib/rpm/Packages", &[0xffu8; 8192])
        .file("node_modules/x/package.json", b"{not json")
        .file("x.dist-info/METADATA", b"Summary: no name\n")
        .file("var/lib/dpkg/status", b"Status: install ok installed\nPackage: half\n\nPackage: ok\nStatus: install ok installed\nVersion: 1\n")
        .file("usr/bin/fake-go", &[b"\x7fELF".as_slice(), &[0u8; 200]].concat())
        .tar();
    let f = scan("sha256:bad", &gzip(&layer));
    assert_eq!(f.warnings.len(), 5, "{:#?}", f.warnings);
    let inv = merge(&[("sha256:bad".into(), f)]);
    assert_eq!(inv.packages.len(), 1);
    assert_eq!(inv.packages[0].name, "ok");
}

/// Runs every hostile input above in one go; `nothing_is_written_to_disk`
/// runs this in a child process whose temporary and working directories
/// are fresh, and checks they stay empty.
#[test]
fn all_hostile_inputs_in_one_process() {
    path_traversal_and_absolute_names();
    symlinks_and_hardlinks_are_never_followed_on_the_host();
    gzip_bomb_stops_at_the_limit_without_reading_further();
    zstd_bomb_stops_at_the_limit();
    truncated_and_corrupt_streams();
    oversized_file_of_interest_is_skipped_and_still_hides_the_lower_one();
    huge_metadata_entries_are_refused();
    malformed_databases_are_warnings();
    // An rpm database is opened by SQLite: from memory, never from a file.
    let db = std::fs::read(common::fixture("rpm/rpmdb.sqlite")).unwrap();
    let f = scan(
        "sha256:rpm",
        &gzip(&Layer::new().file("var/lib/rpm/rpmdb.sqlite", &db).tar()),
    );
    assert_eq!(merge(&[("sha256:rpm".into(), f)]).packages.len(), 4);
}

#[test]
fn nothing_is_written_to_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "all_hostile_inputs_in_one_process",
            "--test-threads=1",
        ])
        .env("TMPDIR", tmp.path())
        .env("SQLITE_TMPDIR", tmp.path())
        .current_dir(cwd.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for dir in [tmp.path(), cwd.path()] {
        let left: Vec<_> = std::fs::read_dir(dir).unwrap().collect();
        assert!(left.is_empty(), "{} holds {left:?}", dir.display());
    }
}
