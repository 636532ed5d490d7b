//! The "know" station: what every image holds and what it is built on.
//!
//! `scan` reads images from the registry (layers read once ever, by digest)
//! and records packages and lineage; `query` answers the questions users ask
//! of it, for the CLI and the HTTP API alike. Judging images with
//! vulnerability data and policies, scanner reports and Harbor's among
//! them, is `freshen-judge`'s job, on top of this crate.

mod query;
mod scan;
pub mod telemetry;

pub use query::{
    ChildView, Holder, ImageView, PackageVersion, PlatformView, Queries, RegisteredPackage,
    Registration,
};
pub use scan::{DockerfileInput, Followed, ScanOptions, ScanReport, Scanner};

/// Why an inventory operation failed.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The reference (or digest) names no image in the inventory.
    #[error("{0} is not in the inventory (scan it with `freshen scan` or register it)")]
    UnknownImage(String),
    /// A registration without replace (`POST`) of a tag already known.
    #[error("{0}")]
    Conflict(String),
    /// Bad input: a registration body, a Dockerfile, or a scanner report
    /// that does not parse; the message names what.
    #[error("{0}")]
    Invalid(String),
    /// A layer could not be read or unpacked, or its content does not hash
    /// to its digest (scans only).
    #[error("{0}")]
    Layer(String),
    /// A reference or platform that does not parse.
    #[error(transparent)]
    Reference(#[from] freshen_reference::ReferenceError),
    /// The registry failed or refused a request.
    #[error(transparent)]
    Registry(#[from] freshen_registry::RegistryError),
    /// The inventory store failed.
    #[error(transparent)]
    Store(#[from] freshen_store::StoreError),
}
