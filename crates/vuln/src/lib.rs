//! freshen's vulnerability data: OSV records read from files, directories
//! and the bulk `all.zip` exports, and an [`Index`] that matches installed
//! packages against them; scanner reports (Trivy and Grype JSON, Harbor
//! vulnerability reports) read into findings for one image ([`Report`]), documents recognised by content
//! ([`load_document`]), and [`merge_findings`], which makes one finding per
//! vulnerability and package of all of them.
//!
//! Matching is where scanners go wrong, so the rules are explicit:
//! - versions are ordered by the ecosystem's own rules (`freshen-version`);
//! - distribution records are scoped to the image's release: a package of an
//!   image whose OS is `Debian:12` only matches records for `Debian:12`;
//! - distribution records name *source* packages (dpkg `Source`, apk origin),
//!   so those are matched on the source name and version;
//! - a record and its aliases (a CVE and its DSA) are one finding.

mod error;
mod index;
mod load;
mod merge;
mod osv;
mod policy;
mod report;
mod severity;

pub use error::VulnError;
pub use index::{Finding, Index, Installed, osv_ecosystem};
pub use load::{Loaded, MAX_LOAD_BYTES, load_path, load_path_within};
pub use merge::merge_findings;
pub use osv::{Affected, Event, OsvPackage, Range, Record, SeverityEntry};
pub use policy::{
    Counting, Counts, DEFAULT_POLICY, Expr, GroupSpec, Ignore, Mode, Op, Policy, PolicySet,
    PolicySpec, Verdict,
};
pub use report::{
    ACCEPTED, Document, Format, HARBOR_REPORT_MIME_TYPES, MAX_REPORT_BYTES, Report, detect,
    load_document, parse_report,
};
pub use severity::Severity;
