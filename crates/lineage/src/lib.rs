//! Lineage: which image is built on which, and how we know.
//!
//! Three kinds of evidence, strongest first: the OCI base annotations an
//! image carries, a Dockerfile's final `FROM`, and layer prefixes (the known
//! image whose layers, by diff_id, are the longest strict prefix of this
//! image's layers).

mod dockerfile;
mod plan;

use std::collections::BTreeMap;

pub use dockerfile::{Dockerfile, Stage, StageBase, substitute};
pub use plan::{Graph, Node, PlanError, Planned};

/// The OCI annotation naming the base image (`docker.io/library/debian:bookworm`).
pub const BASE_NAME_ANNOTATION: &str = "org.opencontainers.image.base.name";
/// The OCI annotation pinning the base image's digest.
pub const BASE_DIGEST_ANNOTATION: &str = "org.opencontainers.image.base.digest";

/// Why lineage could not be worked out.
#[derive(Debug, thiserror::Error)]
pub enum LineageError {
    /// A Dockerfile could not be read for its bases: a parse error, a
    /// `FROM` that names no image, a bad substitution or an unknown
    /// `--target` stage; the text says which (and the line when known).
    #[error("Dockerfile: {0}")]
    Dockerfile(String),
}

/// How an image -> base edge was learned, strongest first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Evidence {
    /// Said by hand through the API (a build pipeline reporting what it built).
    Manual,
    /// The image's own `org.opencontainers.image.base.*` annotations.
    Annotation,
    /// The final `FROM` of the Dockerfile it was built from.
    Dockerfile,
    /// The base's layers are a strict prefix of the image's.
    LayerPrefix,
}

impl Evidence {
    /// How far the edge can be trusted, 0 to 100.
    pub fn confidence(self) -> u8 {
        match self {
            Evidence::Manual => 100,
            Evidence::Annotation => 95,
            // A Dockerfile may have been edited since the image was built.
            Evidence::Dockerfile => 80,
            // Two bases can share a prefix (e.g. a re-tag): likely, not proven.
            Evidence::LayerPrefix => 70,
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Evidence::Manual => "manual",
            Evidence::Annotation => "annotation",
            Evidence::Dockerfile => "dockerfile",
            Evidence::LayerPrefix => "layer-prefix",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Evidence> {
        [
            Evidence::Manual,
            Evidence::Annotation,
            Evidence::Dockerfile,
            Evidence::LayerPrefix,
        ]
        .into_iter()
        .find(|e| e.as_str() == s)
    }
}

/// The base named by an image's annotations: (name, digest), when present.
pub fn annotated_base(
    annotations: &BTreeMap<String, String>,
) -> Option<(Option<String>, Option<String>)> {
    let name = annotations
        .get(BASE_NAME_ANNOTATION)
        .filter(|s| !s.is_empty())
        .cloned();
    let digest = annotations
        .get(BASE_DIGEST_ANNOTATION)
        .filter(|s| !s.is_empty())
        .cloned();
    (name.is_some() || digest.is_some()).then_some((name, digest))
}

/// Among `candidates` (key, layer diff_ids), the one whose layers are the
/// longest *strict* prefix of `layers`; ties go to the first candidate.
/// Returns the key and the prefix length.
pub fn longest_prefix<'a, K>(
    layers: &[String],
    candidates: impl IntoIterator<Item = (&'a K, &'a [String])>,
) -> Option<(&'a K, usize)>
where
    K: 'a + ?Sized,
{
    let mut best: Option<(&'a K, usize)> = None;
    for (key, base) in candidates {
        let n = base.len();
        if n == 0 || n >= layers.len() || layers[..n] != *base {
            continue;
        }
        if best.is_none_or(|(_, m)| n > m) {
            best = Some((key, n));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn longest_strict_prefix_wins() {
        let image = l(&["a", "b", "c", "d"]);
        let debian = l(&["a"]);
        let golden = l(&["a", "b"]);
        let same = l(&["a", "b", "c", "d"]);
        let other = l(&["x", "b"]);
        let cands: Vec<(&str, &[String])> = vec![
            ("debian", debian.as_slice()),
            ("golden", golden.as_slice()),
            ("itself", same.as_slice()),
            ("other", other.as_slice()),
        ];
        let (k, n) = longest_prefix(&image, cands.iter().map(|(k, v)| (k, *v))).unwrap();
        assert_eq!((*k, n), ("golden", 2));
        assert!(longest_prefix::<&str>(&l(&["a"]), cands.iter().map(|(k, v)| (k, *v))).is_none());
    }

    #[test]
    fn evidence_roundtrip() {
        for e in [
            Evidence::Manual,
            Evidence::Annotation,
            Evidence::Dockerfile,
            Evidence::LayerPrefix,
        ] {
            assert_eq!(Evidence::parse(e.as_str()), Some(e));
        }
        assert!(Evidence::Annotation.confidence() > Evidence::LayerPrefix.confidence());
    }
}
