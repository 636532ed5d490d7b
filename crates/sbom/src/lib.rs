//! Packages from container image layers.
//!
//! [`scan_layer`] reads one layer blob (gzip, zstd or plain tar, told by
//! its magic bytes) as a stream and returns what it holds: package
//! databases (dpkg, apk, rpm), Python and npm metadata, Go and
//! cargo-auditable Rust binaries, `os-release`, whiteouts and links at paths
//! of interest. Findings are serializable, so a caller keeps them by layer
//! digest and reads each layer once ever. [`merge`] applies the layers of an
//! image in order (whiteouts, replacements) and gives its [`Inventory`],
//! with purls and the layer that introduced each package; [`cyclonedx`] and
//! [`spdx`] write it as SBOM documents.
//!
//! The crate does no I/O of its own beyond reading the bytes it is handed:
//! no network, no files (SQLite rpm databases are opened from memory), no
//! link ever followed on the host (links are path strings inside the
//! image). It is synchronous; an async caller wraps it in `spawn_blocking`.
//!
//! Safety against hostile layers: decompressed bytes, entries and the size
//! of any file read into memory are limited ([`Limits`]), checked as the
//! stream is read (a bomb fails as soon as it passes the limit); names are
//! normalized and `..` components skipped; the tar reader caps metadata
//! entries; a malformed database is a warning, not a failure.

mod error;
mod extract;
mod formats;
mod layer;
mod merge;
mod model;
mod purl;
mod tar_stream;

use std::io::Read;

pub use error::SbomError;
pub use formats::{cyclonedx, spdx};
pub use merge::merge;
pub use model::{
    DbKind, Deletion, Ecosystem, FileFinding, Inventory, LayerFindings, Link, OsRelease, Package,
};
pub use purl::purl;

/// Limits for reading one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Decompressed bytes of one layer (default 16 GiB).
    pub max_layer_bytes: u64,
    /// Tar entries of one layer (default 2,000,000).
    pub max_entries: u64,
    /// Bytes of any one file read into memory (default 256 MiB). A larger
    /// file at a path of interest is skipped with a warning.
    pub max_file_bytes: u64,
    /// Decompressed bytes per compressed byte read, checked once more than
    /// 16 MiB were decompressed (default `None`: off; the byte limit bounds
    /// a bomb anyway, this only stops it sooner).
    pub max_compression_ratio: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_layer_bytes: 16 * 1024 * 1024 * 1024,
            max_entries: 2_000_000,
            max_file_bytes: 256 * 1024 * 1024,
            max_compression_ratio: None,
        }
    }
}

/// Reads one layer blob and returns what it holds.
///
/// `layer_digest` names the layer in errors and warnings; `compressed` is
/// the blob as the registry serves it (gzip, zstd or plain tar: told by the
/// magic bytes, not the media type). The stream is read once, front to
/// back, to its end (so that the gzip/zstd trailer is checked). Package
/// purls and layers are left empty: [`merge`] fills them in.
///
/// # Errors
///
/// [`SbomError`] when the blob is not a readable layer (corrupt or
/// truncated stream, unsupported compression, bad tar) or passes one of
/// `limits`; each error names the layer.
pub fn scan_layer(
    layer_digest: &str,
    compressed: impl Read,
    limits: &Limits,
) -> Result<LayerFindings, SbomError> {
    layer::scan(layer_digest, compressed, limits)
}
