//! The inventory station: what every image holds and what it is built on.
//!
//! `scan` reads images from the registry (layers read once ever, by digest)
//! and records packages and lineage; `query` answers the questions users ask
//! of it, for the CLI and the HTTP API alike.

mod harbor;
mod judge;
mod query;
mod replay;
mod reports;
mod scan;
mod vulns;

pub use harbor::{HarborImport, HarborScope, import_harbor, import_harbor_artifacts};
pub use judge::Judge;
pub use query::{
    ChildView, Holder, ImageView, PackageVersion, PlatformView, Queries, RegisteredPackage,
    Registration,
};
pub use replay::Replay;
pub use reports::{Imported, ImportedReport, import, import_report_bytes};
pub use scan::{DockerfileInput, ScanOptions, ScanReport, Scanner};
pub use vulns::{
    AffectedImage, BaseDiff, ChildFixes, ImageVulns, PolicyCheck, Upgrade, counts, index,
    match_packages,
};

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
