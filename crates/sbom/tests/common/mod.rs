//! Helpers shared by the integration tests: layer tarballs built with the
//! `tar` crate (or raw headers, for names `tar` refuses to write), gzip and
//! zstd, and a check for external tools that fails with the install command.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use freshen_sbom::{LayerFindings, Limits, scan_layer};

/// A layer under construction.
pub struct Layer {
    b: tar::Builder<Vec<u8>>,
}

impl Default for Layer {
    fn default() -> Self {
        Self::new()
    }
}

impl Layer {
    pub fn new() -> Self {
        Layer {
            b: tar::Builder::new(Vec::new()),
        }
    }

    /// A regular file (long names through the `tar` crate's GNU headers).
    pub fn file(mut self, path: &str, data: &[u8]) -> Self {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        self.b.append_data(&mut h, path, data).unwrap();
        self
    }

    /// A directory.
    pub fn dir(mut self, path: &str) -> Self {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o755);
        h.set_entry_type(tar::EntryType::Directory);
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    /// An entry with a raw name and link name, written byte for byte (the
    /// `tar` crate refuses `..` and absolute names, which hostile layers
    /// have).
    pub fn raw(mut self, kind: tar::EntryType, name: &str, link: &str, data: &[u8]) -> Self {
        let mut h = tar::Header::new_old();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_entry_type(kind);
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    pub fn symlink(self, name: &str, target: &str) -> Self {
        self.raw(tar::EntryType::Symlink, name, target, &[])
    }

    pub fn hardlink(self, name: &str, target: &str) -> Self {
        self.raw(tar::EntryType::Link, name, target, &[])
    }

    /// The finished, uncompressed tarball.
    pub fn tar(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 1).unwrap()
}

/// Scans with default limits and panics on error.
pub fn scan(digest: &str, blob: &[u8]) -> LayerFindings {
    scan_layer(digest, blob, &Limits::default()).unwrap_or_else(|e| panic!("{e}"))
}

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// Fails (never skips) when `tool` is missing, naming the install command.
pub fn require(tool: &str, debian_package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "this test needs `{tool}`: install it with `apt-get install -y {debian_package}`"
    );
}

/// Runs a command and returns its stdout, panicking with stderr on failure.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub const DEBIAN_OS_RELEASE: &[u8] = b"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n";
