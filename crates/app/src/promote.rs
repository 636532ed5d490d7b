//! `promote`: the manifest a reference points at, copied as its exact
//! bytes (same digest) to other tags of its repository, or to other
//! repositories and registries, without pulling layers.

use freshen_reference::{Defaults, Reference};
use freshen_registry::CopyReport;
use serde::Serialize;

use crate::{App, AppError};

/// One target promoted to.
#[derive(Debug, Clone, Serialize)]
pub struct Promoted {
    /// The target reference.
    pub reference: String,
    /// What the copy did.
    #[serde(flatten)]
    pub report: CopyReport,
}

/// A whole promotion.
#[derive(Debug, Clone, Serialize)]
pub struct Promotion {
    /// The source as given (normalised).
    pub source: String,
    /// The digest every target got.
    pub digest: String,
    /// The manifest's media type.
    pub media_type: String,
    /// The targets, in order.
    pub targets: Vec<Promoted>,
}

/// One `--to`: a bare tag (`latest`, `1.4-rc`) names a tag of the source's
/// repository; anything with `/`, `:` or `@` is a full reference
/// (`registry/repo:tag`), for another repository or registry.
fn target(source: &Reference, to: &str, defaults: &Defaults) -> Result<Reference, AppError> {
    if to.contains(['/', ':', '@']) {
        return Reference::parse_with(to, defaults).map_err(|source| AppError::PromoteReference {
            to: to.to_string(),
            source,
        });
    }
    source.with_tag(to).map_err(|source| AppError::PromoteTag {
        to: to.to_string(),
        source,
    })
}

impl App {
    /// Copies `reference` to each of `to` in order (see
    /// [`freshen_rebuild::promote`]: the first copy pins the digest).
    /// `done` is told each target as it is promoted, so a failure midway
    /// can show what was. Opens no database.
    pub async fn promote(
        &self,
        reference: &str,
        to: &[String],
        done: &mut dyn FnMut(&Reference, &Reference, &CopyReport),
    ) -> Result<Promotion, AppError> {
        let source = self.reference(reference)?;
        let targets = to
            .iter()
            .map(|t| target(&source, t, &self.loaded.defaults))
            .collect::<Result<Vec<_>, _>>()?;
        if targets.is_empty() {
            return Err(AppError::Refused(
                "nothing to promote to: give one or more --to TAG".into(),
            ));
        }
        let reports =
            freshen_rebuild::promote(&self.client, &source, &targets, |t, r| done(&source, t, r))
                .await?;
        let first = reports.first().expect("at least one target");
        Ok(Promotion {
            source: source.to_string(),
            digest: first.digest.clone(),
            media_type: first.media_type.clone(),
            targets: targets
                .iter()
                .zip(reports.iter())
                .map(|(t, r)| Promoted {
                    reference: t.to_string(),
                    report: r.clone(),
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_tags_or_references() {
        let d = Defaults::default();
        let src = Reference::parse("127.0.0.1:5000/team/app:1.4").unwrap();
        assert_eq!(
            target(&src, "1.4-rc", &d).unwrap().to_string(),
            "127.0.0.1:5000/team/app:1.4-rc"
        );
        assert_eq!(
            target(&src, "127.0.0.1:5000/prod/app:1.4", &d)
                .unwrap()
                .to_string(),
            "127.0.0.1:5000/prod/app:1.4"
        );
        assert_eq!(
            target(&src, "ghcr.io/o/app:latest", &d).unwrap().registry(),
            "ghcr.io"
        );
        assert!(target(&src, "-bad", &d).is_err());
        assert!(target(&src, "", &d).is_err());
    }
}
