//! Errors of the vulnerability layer.

/// What went wrong reading or matching vulnerability data. Messages name the
/// file (and the record) so a user can find the bad input.
#[derive(Debug, thiserror::Error)]
pub enum VulnError {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A zip archive is damaged or not a zip.
    #[error("{path}: not a readable zip archive: {detail}")]
    Zip {
        /// The archive.
        path: String,
        /// What the zip reader said.
        detail: String,
    },
    /// A JSON document is not an OSV record.
    #[error("{path}: not an OSV record: {detail}")]
    Record {
        /// The file (and, inside a zip, the member).
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// The data would exceed a limit (a hostile or broken archive).
    #[error("{path}: {detail}")]
    Limit {
        /// The file.
        path: String,
        /// Which limit.
        detail: String,
    },
    /// A scanner report is malformed: the field and what is wrong with it.
    #[error("{path}: not a valid {format} report: {}{detail}", if field.is_empty() { String::new() } else { format!("{field}: ") })]
    Report {
        /// The file.
        path: String,
        /// `trivy` or `grype`.
        format: &'static str,
        /// Where in the document (`Results[0].Vulnerabilities[2].PkgName`).
        field: String,
        /// What is wrong.
        detail: String,
    },
    /// A document is none of the formats freshen reads.
    #[error("{path}: {detail}")]
    Unrecognised {
        /// The file.
        path: String,
        /// What it seems to be, and what is accepted.
        detail: String,
    },
}
