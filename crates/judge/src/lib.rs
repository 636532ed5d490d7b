//! The "judge" station: what the inventory's images are exposed to and
//! what the policies say of it.
//!
//! `reports` imports vulnerability data (OSV records, Trivy and Grype
//! reports, stored by `scanner_report`), `feeds` syncs the configured
//! vulnerability feeds, and `harbor` the reports a Harbor holds; `vulns` answers with it: findings per image (OSV matches
//! merged with stored reports), the images a vulnerability affects, the
//! `diff` of two images and `policy_check`, each decision stored; `judge`
//! decides on a base change before it is recorded (what the new digest
//! fixes in each image built on the old one); `replay` makes a stored
//! decision again. What images hold and are built on comes from
//! `freshen-inventory` (the "know" station), through its `Queries` and
//! `Scanner`.

mod feeds;
mod harbor;
mod judge;
mod rejudge;
mod replay;
mod reports;
mod scanner_report;
pub mod telemetry;
mod verify;
mod vulns;

use freshen_inventory::InventoryError;

pub use feeds::{ArchiveOutcome, ArchiveSync, FeedSync, inventory_ecosystems, sync_feed};
pub use harbor::{HarborImport, HarborScope, import_harbor, import_harbor_artifacts};
pub use judge::Judge;
pub use rejudge::{Judged, VULNERABILITY_SOURCE};
pub use replay::Replay;
pub use reports::import;
pub use scanner_report::{Imported, ImportedReport, import_report_bytes};
pub use verify::{FindingOutcome, verify};
pub use vulns::{
    AffectedImage, BaseDiff, ChildFixes, ImageVulns, PolicyCheck, Upgrade, Vulns, counts, index,
    match_packages,
};

/// Why a judge operation failed.
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    /// The inventory failed, or doesn't know an image (`UnknownImage`).
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    /// Bad input (a policy that isn't defined, a report naming no image)
    /// or unreadable stored data; the message says which.
    #[error("{0}")]
    Invalid(String),
    /// A reference could not be formed.
    #[error(transparent)]
    Reference(#[from] freshen_reference::ReferenceError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] freshen_store::StoreError),
    /// The Harbor API failed or refused a request (the Harbor import).
    #[error(transparent)]
    Harbor(#[from] freshen_harbor::HarborError),
}

impl JudgeError {
    /// The inventory's "not in the inventory" error for `what`, which the
    /// API answers with 404.
    pub(crate) fn unknown_image(what: String) -> JudgeError {
        JudgeError::Inventory(InventoryError::UnknownImage(what))
    }
}
