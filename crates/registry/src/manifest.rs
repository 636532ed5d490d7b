//! Manifests and indexes: media types, the few fields freshen reads, and
//! per-platform resolution.

use std::collections::BTreeMap;

use freshen_reference::Platform;
use serde::Deserialize;

/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker manifest list (multi-platform).
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The `Accept` header for manifest requests: every type freshen can read.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// True for the media types of multi-platform indexes.
pub fn is_index_type(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// What a `HEAD` on a manifest says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    /// `Docker-Content-Digest`, when the registry sent one.
    pub digest: Option<String>,
    /// `Content-Type`.
    pub media_type: Option<String>,
}

/// A manifest's exact bytes, with the digest they hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// `sha256:<hex>` of `bytes`.
    pub digest: String,
    /// The `Content-Type` it was served (or is pushed) with.
    pub media_type: String,
    /// The document exactly as served: re-serialising would change its digest.
    pub bytes: Vec<u8>,
}

/// A content descriptor, as found in an index or manifest.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The content's media type (empty when the document leaves it out).
    #[serde(default)]
    pub media_type: String,
    /// The content's digest (`sha256:<hex>`).
    pub digest: String,
    /// The content's length in bytes (0 when absent).
    #[serde(default)]
    pub size: i64,
    /// For an index entry: the platform the manifest runs on.
    #[serde(default)]
    pub platform: Option<PlatformField>,
    /// The descriptor's annotations (attestation entries are told by them).
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The platform object of an index entry or image config.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct PlatformField {
    /// CPU architecture as written (`amd64`, `x86_64`, ...), not yet normalised.
    #[serde(default)]
    pub architecture: String,
    /// Operating system as written (`linux`).
    #[serde(default)]
    pub os: String,
    /// CPU variant (`v7`), if any.
    #[serde(default)]
    pub variant: Option<String>,
}

impl PlatformField {
    /// The normalised platform.
    pub fn platform(&self) -> Platform {
        Platform::new(&self.os, &self.architecture, self.variant.as_deref())
    }
}

/// The fields of an index freshen reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexDoc {
    /// The index's own `mediaType` field, when it has one.
    #[serde(default)]
    pub media_type: Option<String>,
    /// One descriptor per platform manifest (or attestation).
    pub manifests: Vec<Descriptor>,
}

/// The fields of an image manifest freshen reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageDoc {
    /// The manifest's own `mediaType` field, when it has one.
    #[serde(default)]
    pub media_type: Option<String>,
    /// The image config blob.
    pub config: Descriptor,
    /// The layer blobs, base first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// Manifest annotations (`org.opencontainers.image.base.name`, ...).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// The fields of an image config freshen reads.
#[derive(Debug, Clone, Deserialize)]
pub struct ConfigDoc {
    /// CPU architecture as written, not yet normalised.
    #[serde(default)]
    pub architecture: String,
    /// Operating system as written.
    #[serde(default)]
    pub os: String,
    /// CPU variant, if any.
    #[serde(default)]
    pub variant: Option<String>,
    /// The layers' uncompressed digests.
    #[serde(default)]
    pub rootfs: RootFs,
    /// The runtime settings (`config` in the JSON), if present.
    #[serde(default)]
    pub config: Option<RuntimeConfig>,
}

/// `rootfs` of an image config: the uncompressed layer digests, base first.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RootFs {
    /// `sha256:<hex>` of each uncompressed layer tar, base first.
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// The runtime part of an image config (labels are read for base hints).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuntimeConfig {
    /// `Labels`: the image's labels, if any.
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

impl ConfigDoc {
    /// The normalised platform the config declares.
    pub fn platform(&self) -> Platform {
        Platform::new(&self.os, &self.architecture, self.variant.as_deref())
    }
}

/// One platform's manifest inside a tag.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlatformManifest {
    /// The normalised platform (serialised as `os/arch[/variant]`).
    #[serde(serialize_with = "display")]
    pub platform: Platform,
    /// The platform manifest's digest.
    pub digest: String,
    /// The platform manifest's media type.
    pub media_type: String,
}

fn display<S: serde::Serializer>(p: &Platform, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(p)
}

/// A tag resolved: its own digest and the manifest of every platform it holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Resolved {
    /// The digest the tag points at (an index or a single manifest).
    pub digest: String,
    /// The media type of what the tag points at.
    pub media_type: String,
    /// Whether the tag points at a multi-platform index.
    pub is_index: bool,
    /// Every runnable platform (attestation entries left out).
    pub manifests: Vec<PlatformManifest>,
}

impl Resolved {
    /// The manifest for `want`: an exact variant match first, then any match.
    pub fn select(&self, want: &Platform) -> Option<&PlatformManifest> {
        self.manifests
            .iter()
            .find(|m| &m.platform == want)
            .or_else(|| self.manifests.iter().find(|m| want.matches(&m.platform)))
    }

    /// The platforms on offer, for error messages.
    pub fn available(&self) -> String {
        let v: Vec<String> = self
            .manifests
            .iter()
            .map(|m| m.platform.to_string())
            .collect();
        if v.is_empty() {
            "none".into()
        } else {
            v.join(", ")
        }
    }
}

/// Whether an index entry is an attestation or other non-runnable artifact
/// (BuildKit marks them `unknown/unknown` with a reference-type annotation).
pub fn is_attestation(d: &Descriptor) -> bool {
    let annotated = d
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("vnd.docker.reference.type"));
    let unknown = d
        .platform
        .as_ref()
        .is_none_or(|p| p.platform().is_unknown());
    annotated || unknown
}

/// The media type of a manifest body, from the header or else the document.
pub fn media_type_of(header: Option<&str>, bytes: &[u8]) -> String {
    // Registries may add parameters (`; charset=utf-8`).
    if let Some(h) = header.map(|h| h.split(';').next().unwrap_or("").trim())
        && !h.is_empty()
        && h != "application/json"
        && h != "application/octet-stream"
    {
        return h.to_string();
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        #[serde(default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
        #[serde(default)]
        schema_version: Option<i64>,
    }
    match serde_json::from_slice::<Probe>(bytes) {
        Ok(Probe {
            media_type: Some(m),
            ..
        }) => m,
        Ok(Probe {
            manifests: Some(_), ..
        }) => OCI_INDEX.to_string(),
        Ok(Probe {
            schema_version: Some(1),
            ..
        }) => "application/vnd.docker.distribution.manifest.v1+json".to_string(),
        _ => OCI_MANIFEST.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attestations_are_not_platforms() {
        let idx: IndexDoc = serde_json::from_str(
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:a","size":1,"platform":{"architecture":"amd64","os":"linux"}},
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:b","size":1,"platform":{"architecture":"unknown","os":"unknown"},
               "annotations":{"vnd.docker.reference.digest":"sha256:a","vnd.docker.reference.type":"attestation-manifest"}}]}"#,
        )
        .unwrap();
        let kept: Vec<_> = idx
            .manifests
            .iter()
            .filter(|d| !is_attestation(d))
            .collect();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].digest, "sha256:a");
    }

    #[test]
    fn media_type_detection() {
        assert_eq!(
            media_type_of(
                Some("application/vnd.oci.image.index.v1+json; charset=utf-8"),
                b""
            ),
            OCI_INDEX
        );
        assert_eq!(
            media_type_of(Some("application/json"), br#"{"manifests":[]}"#),
            OCI_INDEX
        );
        assert_eq!(media_type_of(None, br#"{"mediaType":"x"}"#), "x");
    }
}
