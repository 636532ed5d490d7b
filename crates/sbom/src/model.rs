//! The data this crate produces: per-layer findings and the merged inventory.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The package ecosystem a [`Package`] belongs to.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Ecosystem {
    /// Debian and Ubuntu packages (dpkg).
    Deb,
    /// Alpine (and Wolfi) packages (apk).
    Apk,
    /// RPM packages (Red Hat, Fedora, SUSE, Rocky, Alma, ...).
    Rpm,
    /// Python distributions (`*.dist-info`, `*.egg-info`).
    #[serde(rename = "pypi")]
    PyPI,
    /// npm packages (`node_modules/**/package.json`).
    Npm,
    /// Go modules (and the Go standard library) from a binary's build info.
    Go,
    /// Rust crates from a binary's cargo-auditable data.
    Cargo,
}

impl Ecosystem {
    /// The lower-case name used in JSON and purls' type where they agree.
    pub fn as_str(self) -> &'static str {
        match self {
            Ecosystem::Deb => "deb",
            Ecosystem::Apk => "apk",
            Ecosystem::Rpm => "rpm",
            Ecosystem::PyPI => "pypi",
            Ecosystem::Npm => "npm",
            Ecosystem::Go => "go",
            Ecosystem::Cargo => "cargo",
        }
    }
}

impl fmt::Display for Ecosystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One installed package.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Package {
    /// The ecosystem.
    pub ecosystem: Ecosystem,
    /// The package name as its database spells it (binary package name for
    /// dpkg/apk/rpm, module path for Go, crate name for Rust).
    pub name: String,
    /// The version as its database spells it. RPM: `[epoch:]version-release`;
    /// dpkg: with its epoch, as in the status file.
    pub version: String,
    /// The architecture, where the database records one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// The source package: dpkg `Source:` (or the package itself), apk origin
    /// (`o:`), the name part of rpm's `SOURCERPM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_name: Option<String>,
    /// The source package's version (dpkg `Source: name (version)` or the
    /// package's own version; rpm's `SOURCERPM` version-release).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_version: Option<String>,
    /// The package URL. Empty in [`crate::scan_layer`]'s output: the
    /// distribution is only known once all layers are merged, so
    /// [`crate::merge`] fills it in.
    #[serde(default)]
    pub purl: String,
    /// Where it was found: the database file or binary, as an absolute path
    /// inside the image (`/var/lib/dpkg/status`).
    pub location: String,
    /// The digest of the layer that introduced it (see [`crate::merge`]);
    /// `None` in a single layer's findings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
}

/// Which kind of database or file a [`FileFinding::Packages`] came from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum DbKind {
    /// `var/lib/dpkg/status`.
    DpkgStatus,
    /// One file of `var/lib/dpkg/status.d/` (distroless images).
    DpkgStatusD,
    /// `lib/apk/db/installed`.
    ApkInstalled,
    /// An rpm database in SQLite format (`rpmdb.sqlite`).
    RpmSqlite,
    /// An rpm database in Berkeley DB hash format (`Packages`).
    RpmBdb,
    /// An rpm database in NDB format (`Packages.db`).
    RpmNdb,
    /// A Python `METADATA` / `PKG-INFO` file.
    PythonMetadata,
    /// An npm `package.json`.
    NpmPackageJson,
    /// A Go binary's embedded build info.
    GoBinary,
    /// A Rust binary's cargo-auditable `.dep-v0` section.
    RustAuditable,
}

/// What was found in one file of a layer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum FileFinding {
    /// A package database or binary, and the packages it lists.
    Packages {
        /// Where the packages came from.
        kind: DbKind,
        /// The packages, in file order.
        packages: Vec<Package>,
    },
    /// An `os-release` file.
    OsRelease(OsRelease),
    /// A file at a path of interest that could not be used (too large,
    /// unreadable). It is kept so that it still hides what lower layers had
    /// at that path.
    Skipped {
        /// Why it was not used.
        reason: String,
    },
}

/// A whiteout: a path that a layer deletes from the layers below it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deletion {
    /// The deleted path (normalized), or for an opaque whiteout the directory
    /// whose lower contents are hidden.
    pub path: String,
    /// `true` for `.wh..wh..opq`: everything the lower layers had under
    /// `path` is hidden, the directory itself stays.
    #[serde(default)]
    pub opaque: bool,
}

/// A symbolic or hard link at a path of interest. Links are recorded as
/// path strings inside the image; nothing is ever resolved on the host.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// The link's target as written in the tar header (a symlink target may
    /// be relative to the link's directory; a hard link's is a path from the
    /// image root).
    pub target: String,
    /// `true` for a hard link.
    #[serde(default)]
    pub hard: bool,
}

/// What one layer holds, as far as packages are concerned. Serializable so a
/// caller can keep it by layer digest and never read that layer again.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct LayerFindings {
    /// Findings by normalized path (no leading `/` or `./`).
    pub files: BTreeMap<String, FileFinding>,
    /// Links at paths of interest, by normalized path.
    #[serde(default)]
    pub links: BTreeMap<String, Link>,
    /// Whiteouts, in tar order.
    pub deletions: Vec<Deletion>,
    /// Tar entries read.
    pub entries: u64,
    /// Decompressed bytes read.
    pub bytes: u64,
    /// Problems that did not stop the scan (a malformed database, a skipped
    /// file), each naming its path.
    pub warnings: Vec<String>,
}

/// An image's packages after all its layers were applied in order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Inventory {
    /// The distribution, from `etc/os-release` (or `usr/lib/os-release`).
    pub os: Option<OsRelease>,
    /// The packages, ordered by location, then file order.
    pub packages: Vec<Package>,
    /// The layers' warnings (each prefixed with its layer digest) and any
    /// found while merging.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// The fields of `os-release(5)` that matter for vulnerability matching.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct OsRelease {
    /// `ID`: `debian`, `ubuntu`, `alpine`, `rhel`, `rocky`, ...
    pub id: String,
    /// `ID_LIKE`, split on spaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub id_like: Vec<String>,
    /// `VERSION_ID`: `12`, `22.04`, `3.20.1`, `9.4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// `VERSION`: `22.04.4 LTS (Jammy Jellyfish)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `VERSION_CODENAME`: `bookworm`, `jammy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_codename: Option<String>,
    /// `PRETTY_NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretty_name: Option<String>,
}

impl OsRelease {
    /// The OSV ecosystem string for this distribution's packages, as the OSV
    /// schema names them: `Debian:12`, `Ubuntu:22.04:LTS`, `Ubuntu:23.10`,
    /// `Alpine:v3.20`, `Rocky Linux:9`, `AlmaLinux:9`, `Red Hat` (its
    /// `:<CPE>` suffix depends on each package's repository, which an image
    /// does not record), `SUSE:<PRETTY_NAME>`, `openSUSE:<PRETTY_NAME>`,
    /// `Mageia:9`, `Photon OS:5.0`, `Wolfi`, `Chainguard`. `None` for a
    /// distribution OSV does not cover.
    pub fn osv_ecosystem(&self) -> Option<String> {
        let major = || {
            self.version_id
                .as_deref()
                .and_then(|v| v.split('.').next())
                .filter(|m| !m.is_empty())
        };
        let with = |name: &str, release: Option<&str>| match release {
            Some(r) => format!("{name}:{r}"),
            None => name.to_string(),
        };
        match self.id.as_str() {
            "debian" => Some(with("Debian", major())),
            "ubuntu" => {
                let v = self.version_id.as_deref()?;
                let lts = [self.version.as_deref(), self.pretty_name.as_deref()]
                    .into_iter()
                    .flatten()
                    .any(|s| {
                        s.split(|c: char| !c.is_ascii_alphanumeric())
                            .any(|w| w == "LTS")
                    });
                Some(if lts {
                    format!("Ubuntu:{v}:LTS")
                } else {
                    format!("Ubuntu:{v}")
                })
            }
            "alpine" => {
                let v = self.version_id.as_deref()?;
                let mut parts = v.split('.');
                let (maj, min) = (parts.next()?, parts.next()?);
                Some(format!("Alpine:v{maj}.{min}"))
            }
            "rocky" => Some(with("Rocky Linux", major())),
            "almalinux" => Some(with("AlmaLinux", major())),
            "rhel" => Some("Red Hat".to_string()),
            "mageia" => Some(with("Mageia", major())),
            "photon" => Some(with("Photon OS", self.version_id.as_deref())),
            "wolfi" => Some("Wolfi".to_string()),
            "chainguard" => Some("Chainguard".to_string()),
            "sles" | "sled" | "sle-micro" => Some(with("SUSE", self.pretty_name.as_deref())),
            id if id.starts_with("opensuse") => Some(with("openSUSE", self.pretty_name.as_deref())),
            _ => None,
        }
    }
}
