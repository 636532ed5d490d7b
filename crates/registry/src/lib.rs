//! A registry client for the OCI Distribution API, built for polling many
//! tags cheaply and correctly.
//!
//! - `HEAD` for digests; `GET` only when the digest is missing or an index
//!   must be read.
//! - Bearer tokens from `WWW-Authenticate` challenges, cached per scope until
//!   expiry, and basic auth; credentials from the config or `~/.docker/config.json`.
//! - Retries with backoff on 5xx and transport errors, `Retry-After` on 429,
//!   a concurrency limit per registry, mirrors tried before the registry.
//! - Every body that is hashed is checked against its digest.
//! - Writes go to the registry itself, never a mirror: manifests pushed as
//!   their exact bytes, blobs mounted across repositories (or streamed
//!   when a mount is refused, or between registries), and `copy` of a tag
//!   or index to other tags and repositories without pulling layers.
//!
//! Knows [`freshen_reference`] and nothing else of freshen.

mod auth;
mod error;
mod manifest;
mod push;
mod settings;
pub mod telemetry;
mod transport;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use freshen_reference::{Platform, Reference};
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, LINK};
use sha2::{Digest as _, Sha256};

pub use auth::{Challenge, Credential, docker_config_credential};
pub use error::RegistryError;
pub use manifest::{
    ConfigDoc, DOCKER_LIST, DOCKER_MANIFEST, Descriptor, ImageDoc, IndexDoc, MANIFEST_ACCEPT,
    Manifest, ManifestHead, OCI_INDEX, OCI_MANIFEST, PlatformField, PlatformManifest, Resolved,
    RootFs, RuntimeConfig, is_attestation, is_index_type,
};
pub use push::{BlobTransfer, CopyReport};
pub use settings::{ClientOptions, RegistrySettings, RetryPolicy};

use transport::{Target, Transport, describe_reqwest};

/// Largest image config blob read to learn a single manifest's platform.
const MAX_CONFIG_BYTES: usize = 8 * 1024 * 1024;

/// A registry client. Cheap to clone; clones share connections, tokens and limits.
#[derive(Clone)]
pub struct Client {
    transport: Arc<Transport>,
}

impl Client {
    /// A client with these options.
    pub fn new(options: ClientOptions) -> Client {
        Client {
            transport: Arc::new(Transport::new(options)),
        }
    }

    /// HTTP requests sent so far (token requests included): for benchmarks and tests.
    pub fn requests_sent(&self) -> u64 {
        self.transport.requests.load(Ordering::Relaxed)
    }

    /// The last `RateLimit-Remaining` a registry sent, if any (Docker Hub: `76;w=21600`).
    pub fn rate_limit_remaining(&self, registry: &str) -> Option<String> {
        let host = self.transport.host(registry).ok()?;
        host.rate_limit_remaining.lock().ok()?.clone()
    }

    /// `HEAD` of a tag or digest: its digest and media type, in one request.
    pub async fn head_manifest(&self, r: &Reference) -> Result<ManifestHead, RegistryError> {
        let image = r.to_string();
        let resp = self
            .transport
            .send(
                &target(r, &image),
                Method::HEAD,
                &format!("manifests/{}", r.manifest_reference()),
                Some(MANIFEST_ACCEPT),
            )
            .await?;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Ok(ManifestHead {
            digest: header("docker-content-digest").filter(|d| !d.is_empty()),
            media_type: header(CONTENT_TYPE.as_str()),
        })
    }

    /// `GET` of a manifest: its exact bytes, checked against the digest the
    /// registry claims and the one the reference pins.
    pub async fn get_manifest(&self, r: &Reference) -> Result<Manifest, RegistryError> {
        let image = r.to_string();
        let resp = self
            .transport
            .send(
                &target(r, &image),
                Method::GET,
                &format!("manifests/{}", r.manifest_reference()),
                Some(MANIFEST_ACCEPT),
            )
            .await?;
        self.read_manifest(r, resp).await
    }

    /// A manifest answer's exact bytes, checked against the digest the
    /// registry claims and the one the reference pins.
    async fn read_manifest(
        &self,
        r: &Reference,
        resp: reqwest::Response,
    ) -> Result<Manifest, RegistryError> {
        let image = r.to_string();
        let claimed = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let ctype = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let max = self.transport.options.max_manifest_bytes;
        let bytes = read_limited(resp, max, &image, "manifest").await?;
        let digest = sha256_digest(&bytes);
        for expected in [claimed.as_deref(), r.digest()].into_iter().flatten() {
            // Only sha256 is computed; other algorithms are taken on trust.
            if expected.starts_with("sha256:") && expected != digest {
                return Err(RegistryError::DigestMismatch {
                    image,
                    claimed: expected.to_string(),
                    actual: digest,
                });
            }
        }
        let media_type = manifest::media_type_of(ctype.as_deref(), &bytes);
        Ok(Manifest {
            digest,
            media_type,
            bytes,
        })
    }

    /// A blob's bytes, at most `max` of them, checked against its digest.
    pub async fn get_blob(
        &self,
        r: &Reference,
        digest: &str,
        max: usize,
    ) -> Result<Vec<u8>, RegistryError> {
        let image = r.to_string();
        let resp = self
            .transport
            .send(
                &target(r, &image),
                Method::GET,
                &format!("blobs/{digest}"),
                None,
            )
            .await?;
        let bytes = read_limited(resp, max, &image, "blob").await?;
        let actual = sha256_digest(&bytes);
        if digest.starts_with("sha256:") && actual != digest {
            return Err(RegistryError::DigestMismatch {
                image,
                claimed: digest.to_string(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Reads a tag: its digest, and the manifest of every platform it holds.
    /// An index costs one request; a single manifest two (it and its config,
    /// where the platform is written).
    pub async fn resolve(&self, r: &Reference) -> Result<Resolved, RegistryError> {
        Ok(self.resolve_image(r).await?.0)
    }

    /// Like [`Client::resolve`], also handing back the image itself when the
    /// tag is a single manifest: its config was read to learn the platform,
    /// so a caller that needs the image (a scan) doesn't fetch both again.
    pub async fn resolve_image(
        &self,
        r: &Reference,
    ) -> Result<(Resolved, Option<Image>), RegistryError> {
        let m = self.get_manifest(r).await?;
        let image = r.to_string();
        let bad = |what: &str, e: serde_json::Error| RegistryError::BadContent {
            image: image.clone(),
            what: what.to_string(),
            detail: e.to_string(),
        };
        if is_index_type(&m.media_type) {
            let idx: IndexDoc = serde_json::from_slice(&m.bytes).map_err(|e| bad("index", e))?;
            let manifests = idx
                .manifests
                .iter()
                .filter(|d| !is_attestation(d))
                .filter_map(|d| {
                    Some(PlatformManifest {
                        platform: d.platform.as_ref()?.platform(),
                        digest: d.digest.clone(),
                        media_type: d.media_type.clone(),
                    })
                })
                .collect();
            let resolved = Resolved {
                digest: m.digest,
                media_type: m.media_type,
                is_index: true,
                manifests,
            };
            return Ok((resolved, None));
        }
        if m.media_type != OCI_MANIFEST && m.media_type != DOCKER_MANIFEST {
            return Err(RegistryError::BadContent {
                image,
                what: "manifest".into(),
                detail: format!(
                    "media type {} is not supported (schema 1 manifests are deprecated: push the image again with a current client)",
                    m.media_type
                ),
            });
        }
        let doc: ImageDoc = serde_json::from_slice(&m.bytes).map_err(|e| bad("manifest", e))?;
        let config = self
            .get_blob(r, &doc.config.digest, MAX_CONFIG_BYTES)
            .await?;
        let p: PlatformField =
            serde_json::from_slice(&config).map_err(|e| bad("image config", e))?;
        // The fuller parse is a bonus: where it fails, `image()` reports it.
        let image = serde_json::from_slice::<ConfigDoc>(&config)
            .ok()
            .map(|config| Image {
                digest: m.digest.clone(),
                manifest: doc,
                config,
            });
        let resolved = Resolved {
            manifests: vec![PlatformManifest {
                platform: p.platform(),
                digest: m.digest.clone(),
                media_type: m.media_type.clone(),
            }],
            digest: m.digest,
            media_type: m.media_type,
            is_index: false,
        };
        Ok((resolved, image))
    }

    /// An image manifest (by digest or tag) with its parsed fields and config.
    pub async fn image(&self, r: &Reference) -> Result<Image, RegistryError> {
        let m = self.get_manifest(r).await?;
        let image = r.to_string();
        if m.media_type != OCI_MANIFEST && m.media_type != DOCKER_MANIFEST {
            return Err(RegistryError::BadContent {
                image,
                what: "manifest".into(),
                detail: format!("expected an image manifest, got {}", m.media_type),
            });
        }
        let doc: ImageDoc =
            serde_json::from_slice(&m.bytes).map_err(|e| RegistryError::BadContent {
                image: image.clone(),
                what: "manifest".into(),
                detail: e.to_string(),
            })?;
        let config_bytes = self
            .get_blob(r, &doc.config.digest, MAX_CONFIG_BYTES)
            .await?;
        let config: ConfigDoc =
            serde_json::from_slice(&config_bytes).map_err(|e| RegistryError::BadContent {
                image,
                what: "image config".into(),
                detail: e.to_string(),
            })?;
        Ok(Image {
            digest: m.digest,
            manifest: doc,
            config,
        })
    }

    /// A blob as a stream of bytes, for layers too big to hold in memory.
    /// The caller checks the digest (see [`DigestCheck`]).
    pub async fn blob_reader(
        &self,
        r: &Reference,
        digest: &str,
    ) -> Result<impl tokio::io::AsyncRead + Send + Unpin + 'static, RegistryError> {
        use futures::TryStreamExt as _;
        let image = r.to_string();
        let resp = self
            .transport
            .send(
                &target(r, &image),
                Method::GET,
                &format!("blobs/{digest}"),
                None,
            )
            .await?;
        let stream = resp.bytes_stream().map_err(std::io::Error::other);
        Ok(tokio_util::io::StreamReader::new(stream))
    }

    /// Picks the manifests for `wanted` out of a resolved tag; a platform the
    /// tag does not hold is an error naming what it does hold.
    pub fn select_platforms(
        &self,
        r: &Reference,
        resolved: &Resolved,
        wanted: &[Platform],
    ) -> Result<Vec<PlatformManifest>, RegistryError> {
        wanted
            .iter()
            .map(|w| {
                resolved
                    .select(w)
                    .map(|m| PlatformManifest {
                        platform: w.clone(),
                        ..m.clone()
                    })
                    .ok_or_else(|| RegistryError::PlatformMissing {
                        image: r.to_string(),
                        wanted: w.to_string(),
                        available: resolved.available(),
                    })
            })
            .collect()
    }

    /// Every tag of the reference's repository, following `Link` pagination
    /// with `page_size` tags per request.
    pub async fn list_tags(
        &self,
        r: &Reference,
        page_size: usize,
    ) -> Result<Vec<String>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let image = r.name();
        let first = format!("/v2/{}/tags/list?n={}", r.repository(), page_size.max(1));
        self.paged(&target(r, &image), first, "tag list", |page: TagList| {
            page.tags
        })
        .await
    }

    /// Every repository a registry lists in `/v2/_catalog`, following `Link`
    /// pagination with `page_size` names per request.
    pub async fn catalog(
        &self,
        registry: &str,
        page_size: usize,
    ) -> Result<Vec<String>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct Catalog {
            #[serde(default)]
            repositories: Option<Vec<String>>,
        }
        let image = format!("{registry} catalog");
        let t = Target {
            registry,
            repository: "",
            image: &image,
        };
        let first = format!("/v2/_catalog?n={}", page_size.max(1));
        self.paged(&t, first, "catalog", |page: Catalog| page.repositories)
            .await
    }

    /// Follows `rel="next"` links from `first` on the registry itself,
    /// collecting each page's names (at most 100,000 pages).
    async fn paged<P: serde::de::DeserializeOwned>(
        &self,
        t: &Target<'_>,
        first: String,
        what: &str,
        names: impl Fn(P) -> Option<Vec<String>>,
    ) -> Result<Vec<String>, RegistryError> {
        let mut path = first;
        let mut out = Vec::new();
        for _ in 0..100_000 {
            let resp = self.transport.get_upstream(t, &path, None).await?;
            let next = resp
                .headers()
                .get(LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
            let body = read_limited(resp, 16 * 1024 * 1024, t.image, what).await?;
            let page: P = serde_json::from_slice(&body).map_err(|e| RegistryError::BadContent {
                image: t.image.to_string(),
                what: what.to_string(),
                detail: e.to_string(),
            })?;
            out.extend(names(page).unwrap_or_default());
            match next {
                Some(n) => path = n,
                None => break,
            }
        }
        Ok(out)
    }

    /// The settings in force for a registry (defaults when not configured).
    pub fn settings(&self, registry: &str) -> Result<RegistrySettings, RegistryError> {
        Ok(self.transport.host(registry)?.settings().clone())
    }
}

/// An image manifest with its config.
#[derive(Debug, Clone)]
pub struct Image {
    /// The manifest's digest.
    pub digest: String,
    /// The manifest's fields: config and layer descriptors, annotations.
    pub manifest: ImageDoc,
    /// The image config the manifest points at (platform, diff_ids, labels).
    pub config: ConfigDoc,
}

/// Hashes bytes as they are read, to check a streamed blob against its digest.
pub struct DigestCheck<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
}

impl<R: std::io::Read> DigestCheck<R> {
    /// Wraps a reader.
    pub fn new(inner: R) -> Self {
        DigestCheck {
            inner,
            hasher: Sha256::new(),
            read: 0,
        }
    }

    /// Reads what is left (a consumer may stop early), then compares.
    pub fn verify(mut self, expected: &str) -> std::io::Result<bool> {
        std::io::copy(&mut self, &mut std::io::sink())?;
        let actual = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        Ok(!expected.starts_with("sha256:") || actual == expected)
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }
}

impl<R: std::io::Read> std::io::Read for DigestCheck<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

fn target<'a>(r: &'a Reference, image: &'a str) -> Target<'a> {
    Target {
        registry: r.registry(),
        repository: r.repository(),
        image,
    }
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The path of a `rel="next"` link: `</v2/x/tags/list?last=a&n=5>; rel="next"`.
/// Absolute URLs keep only their path and query (the host is ours already).
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        if !params.contains("rel=\"next\"") && !params.contains("rel=next") {
            return None;
        }
        let url = url.trim().trim_start_matches('<').trim_end_matches('>');
        if url.starts_with('/') {
            return Some(url.to_string());
        }
        let parsed = url::Url::parse(url).ok()?;
        Some(match parsed.query() {
            Some(q) => format!("{}?{}", parsed.path(), q),
            None => parsed.path().to_string(),
        })
    })
}

/// Reads a body, failing once it passes `max` bytes.
async fn read_limited(
    mut resp: reqwest::Response,
    max: usize,
    image: &str,
    what: &str,
) -> Result<Vec<u8>, RegistryError> {
    let too_big = || RegistryError::BadContent {
        image: image.to_string(),
        what: what.to_string(),
        detail: format!("larger than the limit of {max} bytes"),
    };
    if resp.content_length().is_some_and(|l| l > max as u64) {
        return Err(too_big());
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| RegistryError::BadContent {
        image: image.to_string(),
        what: what.to_string(),
        detail: describe_reqwest(&e),
    })? {
        if out.len() + chunk.len() > max {
            return Err(too_big());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header() {
        assert_eq!(
            next_link(r#"</v2/app/tags/list?last=t5&n=5>; rel="next""#).as_deref(),
            Some("/v2/app/tags/list?last=t5&n=5")
        );
        assert_eq!(
            next_link(r#"<https://r.example/v2/app/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/app/tags/list?last=b&n=2")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
    }
}
