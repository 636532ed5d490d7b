//! Promotion: an image's manifest copied, as its exact bytes, to other tags,
//! repositories or registries. One function for `freshen promote` and for
//! a rebuild's `promote:` tags, so both pin the digest the same way.

use freshen_reference::{Reference, ReferenceError};
use freshen_registry::{Client, CopyReport, RegistryError};

/// Why a promotion stopped. Targets before the failing one were promoted.
#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    /// Copying to a target failed.
    #[error("promoting {from} to {to}")]
    Copy {
        /// The source as given.
        from: String,
        /// The target.
        to: String,
        /// What the registry said.
        #[source]
        error: RegistryError,
    },
    /// A target ended up with another digest than the first copy read.
    #[error("promoting {from} to {to}: the target got {got} but the source is {want}")]
    Diverged {
        /// The source as given.
        from: String,
        /// The target.
        to: String,
        /// The digest the target got.
        got: String,
        /// The source's digest, as the first copy read it.
        want: String,
    },
    /// The digest the first copy read cannot pin the source.
    #[error("pinning the source digest")]
    Pin(#[source] ReferenceError),
}

/// Copies `source` to each of `targets` in order, calling `done` after each
/// copy. The first copy pins the source's digest; the others copy that
/// digest, so every target gets the same manifest even if the source tag
/// moves meanwhile. Returns the reports, one per target.
pub async fn promote(
    client: &Client,
    source: &Reference,
    targets: &[Reference],
    mut done: impl FnMut(&Reference, &CopyReport),
) -> Result<Vec<CopyReport>, PromoteError> {
    let mut pinned: Option<Reference> = None;
    let mut reports: Vec<CopyReport> = Vec::with_capacity(targets.len());
    for to in targets {
        let from = pinned.as_ref().unwrap_or(source);
        let report = client
            .copy_report(from, to)
            .await
            .map_err(|error| PromoteError::Copy {
                from: source.to_string(),
                to: to.to_string(),
                error,
            })?;
        if let Some(first) = reports.first()
            && report.digest != first.digest
        {
            return Err(PromoteError::Diverged {
                from: source.to_string(),
                to: to.to_string(),
                got: report.digest,
                want: first.digest.clone(),
            });
        }
        if pinned.is_none() {
            pinned = Some(
                source
                    .with_digest(&report.digest)
                    .map_err(PromoteError::Pin)?,
            );
        }
        done(to, &report);
        reports.push(report);
    }
    Ok(reports)
}
