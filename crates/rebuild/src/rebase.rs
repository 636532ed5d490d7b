//! The `rebase` executor: a new image made at the manifest level, with no
//! build. When an image's layers begin with its old base's layers (checked
//! by diff_id), those layers are swapped for the new base's; the config's
//! `rootfs.diff_ids` and `history` are rewritten to match, the base
//! annotations refreshed, and the result pushed: the new base's blobs by
//! cross-repository mount (or streamed), the image's own layers left where
//! they are, the config and manifest as new blobs. A multi-platform image
//! gets each platform rebased and a new index.
//!
//! A rebase that would be unsafe is refused with the reason
//! ([`BuildError::Refused`]), so the runner can fall back to a build: the
//! old base is unknown or not a prefix, the base changed its OS or
//! architecture, the layer media types cannot be expressed in the image's
//! manifest type. What a rebase cannot do, by its nature: it keeps the
//! image's config as it was (a base's new `ENV` or `USER` is not
//! inherited), and nothing in the image's own layers is rebuilt against
//! the new base (the image's `RUN` steps are not run again).

use std::collections::BTreeMap;

use bytes::Bytes;
use freshen_reference::{Platform, Reference};
use freshen_registry::{
    Client, DOCKER_LIST, DOCKER_MANIFEST, Descriptor, IndexDoc, Manifest, OCI_INDEX, OCI_MANIFEST,
    RegistryError, is_attestation, is_index_type, sha256_digest,
};
use freshen_store::Store;
use futures::{StreamExt as _, TryStreamExt as _};
use serde_json::{Value, json};

use crate::{Build, BuildError};

/// Largest image config read (as the scanner's limit).
const MAX_CONFIG_BYTES: usize = 8 * 1024 * 1024;

/// Blobs of the new base put into the image's repository at once.
const BLOB_CONCURRENCY: usize = 4;

const BASE_NAME: &str = "org.opencontainers.image.base.name";
const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";

/// What a rebase did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebased {
    /// The digest pushed (a manifest, or an index for several platforms).
    pub digest: String,
    /// Per platform: how many base layers were replaced by how many.
    pub platforms: Vec<(Platform, usize, usize)>,
}

/// Rebases the image `b` builds (as its own tag points at now) onto what
/// its final base's tag points at now, and pushes it as `to`.
pub async fn rebase(
    client: &Client,
    store: &Store,
    b: &Build,
    to: &Reference,
) -> Result<Rebased, BuildError> {
    let refuse = |why: String| BuildError::Refused(format!("{}: {why}", b.image));
    let base_name = b
        .final_base
        .as_deref()
        .ok_or_else(|| refuse("it builds FROM scratch: there is no base to swap".into()))?;
    let base_ref = Reference::parse(base_name)?;
    let current = &b.reference;
    let image = match client.get_manifest(current).await {
        Ok(m) => m,
        Err(RegistryError::NotFound { .. }) => {
            return Err(refuse(format!(
                "{current} does not exist yet: there is nothing to rebase"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let new_base = client.get_manifest(&base_ref).await?;
    let job = Job {
        client,
        store,
        image: b.image.as_str(),
        current,
        to,
        base_ref: &base_ref,
        new_base: &new_base,
    };
    if !is_index_type(&image.media_type) {
        let one = job.platform(&image, None).await?;
        let digest = client
            .put_manifest(to, &one.media_type, one.bytes.clone())
            .await?;
        return Ok(Rebased {
            digest,
            platforms: vec![(one.platform, one.replaced, one.with)],
        });
    }
    let mut index: Value = serde_json::from_slice(&image.bytes)
        .map_err(|e| BuildError::Executor(format!("{}: its index is not JSON: {e}", b.image)))?;
    let entries = index["manifests"].as_array().cloned().unwrap_or_default();
    let mut kept = Vec::new();
    let mut platforms = Vec::new();
    for entry in entries {
        let d: Descriptor = serde_json::from_value(entry.clone()).map_err(|e| {
            BuildError::Executor(format!("{}: an index entry is malformed: {e}", b.image))
        })?;
        // Attestations describe the old manifests: they would lie about the new ones.
        if is_attestation(&d) {
            continue;
        }
        let child = client
            .get_manifest(&current.with_digest(&d.digest)?)
            .await?;
        let want = d.platform.as_ref().map(|p| p.platform());
        let one = job.platform(&child, want.as_ref()).await?;
        let digest = sha256_digest(&one.bytes);
        let pinned = Reference::from_parts(to.registry(), to.repository(), None, Some(&digest))?;
        client
            .put_manifest(&pinned, &one.media_type, one.bytes.clone())
            .await?;
        let mut entry = entry;
        entry["digest"] = json!(digest);
        entry["size"] = json!(one.bytes.len());
        entry["mediaType"] = json!(one.media_type);
        kept.push(entry);
        platforms.push((one.platform, one.replaced, one.with));
    }
    if kept.is_empty() {
        return Err(refuse("its index holds no image for any platform".into()));
    }
    index["manifests"] = Value::Array(kept);
    let bytes = serde_json::to_vec(&index).expect("JSON serialises");
    let media_type = if image.media_type == DOCKER_LIST {
        DOCKER_LIST
    } else {
        OCI_INDEX
    };
    let digest = client.put_manifest(to, media_type, bytes).await?;
    Ok(Rebased { digest, platforms })
}

/// One rebase: what stays the same for every platform.
struct Job<'a> {
    client: &'a Client,
    store: &'a Store,
    image: &'a str,
    current: &'a Reference,
    to: &'a Reference,
    base_ref: &'a Reference,
    new_base: &'a Manifest,
}

/// One platform's new manifest, pushed blobs and all but itself.
struct Platformed {
    platform: Platform,
    media_type: String,
    bytes: Bytes,
    replaced: usize,
    with: usize,
}

/// An image manifest and its config, both as JSON, read from a registry.
struct Read {
    manifest: Value,
    media_type: String,
    config: Value,
}

impl Read {
    fn platform(&self) -> Platform {
        Platform::new(
            self.config["os"].as_str().unwrap_or_default(),
            self.config["architecture"].as_str().unwrap_or_default(),
            self.config["variant"].as_str(),
        )
    }

    fn diff_ids(&self) -> Vec<String> {
        strings(&self.config["rootfs"]["diff_ids"])
    }

    fn history(&self) -> Vec<Value> {
        self.config["history"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn layers(&self) -> Vec<Value> {
        self.manifest["layers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl Job<'_> {
    fn refuse(&self, why: String) -> BuildError {
        BuildError::Refused(format!("{}: {why}", self.image))
    }

    /// Rebases one platform's manifest; pushes the blobs it needs.
    async fn platform(
        &self,
        m: &Manifest,
        want: Option<&Platform>,
    ) -> Result<Platformed, BuildError> {
        let image = self.read(self.current, m).await?;
        let platform = want.cloned().unwrap_or_else(|| image.platform());
        let (new_base_ref, new_base) = self.new_base_for(&platform).await?;
        if new_base.platform() != image.platform() {
            return Err(self.refuse(format!(
                "the base changed its platform from {} to {}",
                image.platform(),
                new_base.platform()
            )));
        }
        let ids = image.diff_ids();
        let layers = image.layers();
        if layers.len() != ids.len() {
            return Err(self.refuse(format!(
                "its {platform} manifest has {} layers and its config {} diff_ids",
                layers.len(),
                ids.len()
            )));
        }
        let old = self.old_base(m, &image, &platform).await?;
        let k = old.diff_ids().len();
        let (old_history, history) = (old.history(), image.history());
        let h = old_history.len();
        let same_step = |a: &Value, b: &Value| {
            a.get("created_by") == b.get("created_by")
                && a.get("empty_layer")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
                    == b.get("empty_layer")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
        };
        if history.len() < h
            || !old_history
                .iter()
                .zip(&history)
                .all(|(a, b)| same_step(a, b))
        {
            return Err(self.refuse(format!(
                "its {platform} history does not begin with its old base's, so where the base ends is unclear"
            )));
        }
        let family = Family::of(&image.media_type);
        let mut new_layers = Vec::new();
        for l in new_base.layers() {
            new_layers.push(family.convert(l).map_err(|t| {
                self.refuse(format!(
                    "the new base's layer type {t} cannot go into a {} manifest",
                    image.media_type
                ))
            })?);
        }
        let new_ids = new_base.diff_ids();
        let (replaced, with) = (k, new_ids.len());
        new_layers.extend(layers[k..].iter().cloned());
        let mut config = image.config.clone();
        config["rootfs"]["diff_ids"] =
            json!(new_ids.iter().chain(&ids[k..]).cloned().collect::<Vec<_>>());
        if config.get("history").is_some() || !new_base.history().is_empty() {
            let mut hist = new_base.history();
            hist.extend(history[h..].iter().cloned());
            config["history"] = Value::Array(hist);
        }
        // The blobs: the new base's layers into the image's repository.
        let pending: Vec<_> = new_base
            .layers()
            .into_iter()
            .map(|l| {
                let from = new_base_ref.clone();
                async move {
                    let d: Descriptor = serde_json::from_value(l).map_err(|e| {
                        BuildError::Executor(format!(
                            "{}: a layer of the new base is malformed: {e}",
                            self.image
                        ))
                    })?;
                    self.client
                        .transfer_blob(&from, self.to, &d)
                        .await
                        .map_err(BuildError::from)
                }
            })
            .collect();
        futures::stream::iter(pending)
            .buffer_unordered(BLOB_CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await?;
        let config_bytes = serde_json::to_vec(&config).expect("JSON serialises");
        let config_len = config_bytes.len();
        let config_digest = self.client.push_blob(self.to, config_bytes).await?;
        let mut manifest = image.manifest.clone();
        manifest["config"]["digest"] = json!(config_digest);
        manifest["config"]["size"] = json!(config_len);
        manifest["layers"] = Value::Array(new_layers);
        if family == Family::Oci {
            let a = manifest
                .as_object_mut()
                .expect("a manifest is an object")
                .entry("annotations")
                .or_insert_with(|| json!({}));
            a[BASE_NAME] = json!(self.base_ref.to_string());
            // The platform's own manifest, as the inventory's lineage is per platform.
            a[BASE_DIGEST] = json!(new_base_ref.digest().unwrap_or(&self.new_base.digest));
        }
        Ok(Platformed {
            platform,
            media_type: image.media_type.clone(),
            bytes: Bytes::from(serde_json::to_vec(&manifest).expect("JSON serialises")),
            replaced,
            with,
        })
    }

    /// Reads an image manifest and its config from `at`'s repository.
    async fn read(&self, at: &Reference, m: &Manifest) -> Result<Read, BuildError> {
        let bad = |what: &str, e: String| {
            BuildError::Executor(format!("{}: {at}@{}: {what}: {e}", self.image, m.digest))
        };
        if m.media_type != OCI_MANIFEST && m.media_type != DOCKER_MANIFEST {
            return Err(self.refuse(format!(
                "{at}@{} is a {}, not an image manifest",
                m.digest, m.media_type
            )));
        }
        let manifest: Value =
            serde_json::from_slice(&m.bytes).map_err(|e| bad("manifest", e.to_string()))?;
        let cfg = manifest["config"]["digest"]
            .as_str()
            .ok_or_else(|| bad("manifest", "no config digest".into()))?;
        let bytes = self.client.get_blob(at, cfg, MAX_CONFIG_BYTES).await?;
        let config: Value =
            serde_json::from_slice(&bytes).map_err(|e| bad("config", e.to_string()))?;
        Ok(Read {
            manifest,
            media_type: m.media_type.clone(),
            config,
        })
    }

    /// The new base's image for `platform`, and a reference to fetch its blobs by.
    async fn new_base_for(&self, platform: &Platform) -> Result<(Reference, Read), BuildError> {
        let (digest, m) = self
            .pick(self.base_ref, self.new_base, platform)
            .await?
            .ok_or_else(|| {
                self.refuse(format!(
                    "the new base {} has no {platform} image",
                    self.base_ref
                ))
            })?;
        let pinned = self.base_ref.with_digest(&digest)?;
        let read = self.read(&pinned, &m).await?;
        Ok((pinned, read))
    }

    /// The platform's manifest in `m`: itself, or its index's entry.
    async fn pick(
        &self,
        at: &Reference,
        m: &Manifest,
        platform: &Platform,
    ) -> Result<Option<(String, Manifest)>, BuildError> {
        if !is_index_type(&m.media_type) {
            return Ok(Some((m.digest.clone(), m.clone())));
        }
        let idx: IndexDoc = serde_json::from_slice(&m.bytes)
            .map_err(|e| BuildError::Executor(format!("{}: {at}: index: {e}", self.image)))?;
        let entries: Vec<&Descriptor> = idx
            .manifests
            .iter()
            .filter(|d| !is_attestation(d))
            .collect();
        let found = entries
            .iter()
            .find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| &p.platform() == platform)
            })
            .or_else(|| {
                entries.iter().find(|d| {
                    d.platform
                        .as_ref()
                        .is_some_and(|p| platform.matches(&p.platform()))
                })
            });
        let Some(d) = found else {
            return Ok(None);
        };
        let child = self
            .client
            .get_manifest(&at.with_digest(&d.digest)?)
            .await?;
        Ok(Some((d.digest.clone(), child)))
    }

    /// The image the current one was built on: named by its base
    /// annotations, or by the inventory's lineage, and only if its layers
    /// are a prefix of the image's.
    async fn old_base(
        &self,
        m: &Manifest,
        image: &Read,
        platform: &Platform,
    ) -> Result<Read, BuildError> {
        let mut candidates: Vec<(String, String)> = Vec::new();
        let annotations: BTreeMap<String, String> =
            serde_json::from_value(image.manifest["annotations"].clone()).unwrap_or_default();
        if let (Some(n), Some(d)) = (annotations.get(BASE_NAME), annotations.get(BASE_DIGEST)) {
            candidates.push((n.clone(), d.clone()));
        }
        for edge in self.store.lineage_of(&m.digest).await? {
            let Some(d) = edge.base_digest else { continue };
            let name = match edge.base_reference {
                Some(r) => r,
                None => match self.store.image(&d).await? {
                    Some(rec) => rec.repository,
                    None => continue,
                },
            };
            if !candidates.iter().any(|(_, x)| x == &d) {
                candidates.push((name, d));
            }
        }
        if candidates.is_empty() {
            return Err(self.refuse(format!(
                "its old base is unknown: {}@{} has no base annotations and no lineage in the inventory (scan it with its Dockerfile, or let freshen build it once)",
                self.current, m.digest
            )));
        }
        let ids = image.diff_ids();
        let mut why = Vec::new();
        for (name, digest) in candidates {
            let at = match Reference::parse(&name).and_then(|r| r.with_digest(&digest)) {
                Ok(r) => r,
                Err(e) => {
                    why.push(format!("{name}@{digest}: {e}"));
                    continue;
                }
            };
            let found = match self.client.get_manifest(&at).await {
                Ok(base) => self.pick(&at, &base, platform).await?,
                Err(RegistryError::NotFound { .. }) => {
                    why.push(format!("{at} is gone from the registry"));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let Some((d, base)) = found else {
                why.push(format!("{at} has no {platform} image"));
                continue;
            };
            let read = self.read(&at.with_digest(&d)?, &base).await?;
            let base_ids = read.diff_ids();
            if base_ids.len() <= ids.len() && ids[..base_ids.len()] == base_ids[..] {
                return Ok(read);
            }
            why.push(format!("{at}: its layers are not a prefix of the image's"));
        }
        Err(self.refuse(format!(
            "no known old base of {}@{} can be swapped out ({})",
            self.current,
            m.digest,
            why.join("; ")
        )))
    }
}

/// A manifest's media type family: its layers must be of that family.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Oci,
    Docker,
}

/// Layer media types that have a name in both families.
const LAYER_TYPES: [(&str, &str); 2] = [
    (
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
    ),
    (
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    ),
];

impl Family {
    fn of(media_type: &str) -> Family {
        if media_type == DOCKER_MANIFEST {
            Family::Docker
        } else {
            Family::Oci
        }
    }

    /// The layer descriptor with its media type named in this family; the
    /// type that has no name here as the error.
    fn convert(self, mut layer: Value) -> Result<Value, String> {
        let t = layer["mediaType"].as_str().unwrap_or_default().to_string();
        let is_docker = t.starts_with("application/vnd.docker.");
        let ok = match self {
            Family::Oci if !is_docker => return Ok(layer),
            Family::Docker if is_docker => return Ok(layer),
            Family::Oci => LAYER_TYPES.iter().find(|(_, d)| *d == t).map(|(o, _)| *o),
            Family::Docker => LAYER_TYPES.iter().find(|(o, _)| *o == t).map(|(_, d)| *d),
        };
        match ok {
            Some(n) => {
                layer["mediaType"] = json!(n);
                Ok(layer)
            }
            None => Err(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_types_cross_families_where_they_can() {
        let gz = json!({"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": "sha256:a", "size": 1});
        let oci = Family::Oci.convert(gz.clone()).unwrap();
        assert_eq!(
            oci["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert_eq!(Family::Docker.convert(oci).unwrap(), gz);
        let zstd = json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd"});
        assert_eq!(
            Family::Docker.convert(zstd.clone()).unwrap_err(),
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
        assert_eq!(Family::Oci.convert(zstd.clone()).unwrap(), zstd);
    }
}
