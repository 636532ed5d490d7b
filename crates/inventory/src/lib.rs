//! The "know" station: what every image holds and what it is built on.
//!
//! `scan` reads images from the registry (layers read once ever, by digest)
//! and records packages and lineage; `query` answers the questions users ask
//! of it, for the CLI and the HTTP API alike. Judging images with
//! vulnerability data and policies is `freshen-judge`'s job, on top of this
//! crate; only the storing of a scanner report (`scanner_report`) and the
//! Harbor import that calls it (`harbor`) are still here, until they move
//! there too.

mod harbor;
mod query;
mod scan;
mod scanner_report;

pub use harbor::{HarborImport, HarborScope, import_harbor, import_harbor_artifacts};
pub use query::{
    ChildView, Holder, ImageView, PackageVersion, PlatformView, Queries, RegisteredPackage,
    Registration,
};
pub use scan::{DockerfileInput, ScanOptions, ScanReport, Scanner};
pub use scanner_report::{Imported, ImportedReport, import_report, import_report_bytes};

/// Why an inventory operation failed.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("{0} is not in the inventory (scan it with `freshen scan` or register it)")]
    UnknownImage(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Layer(String),
    #[error(transparent)]
    Reference(#[from] freshen_reference::ReferenceError),
    #[error(transparent)]
    Registry(#[from] freshen_registry::RegistryError),
    #[error(transparent)]
    Store(#[from] freshen_store::StoreError),
    #[error(transparent)]
    Harbor(#[from] freshen_harbor::HarborError),
}
