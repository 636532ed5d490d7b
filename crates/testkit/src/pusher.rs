//! A tiny image writer speaking the registry HTTP API (OCI distribution spec).

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::http::http_client;

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI uncompressed layer media type (what [`Pusher::push_image`] uploads).
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// Docker image manifest v2 schema 2 media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list media type.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config media type.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer media type (what [`Pusher::push_docker_image`] uploads).
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// The `Accept` value naming every manifest type above.
pub const ACCEPT_ALL_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Writes small but real images, indexes and tags into a registry over HTTP
/// (blob upload: `POST /v2/<repo>/blobs/uploads/` then monolithic
/// `PUT <location>&digest=`; manifests: `PUT /v2/<repo>/manifests/<ref>`).
///
/// Every method panics with the registry's answer when a call fails: it is
/// a test helper. Same `(platform, seed)` gives the same digest.
///
/// Its HTTP client's pooled connections belong to the tokio runtime that
/// used them: make a pusher per test ([`crate::Registry::pusher`] is cheap)
/// instead of sharing one across `#[tokio::test]`s.
#[derive(Clone, Debug)]
pub struct Pusher {
    host: String,
    base: Url,
    client: reqwest::Client,
    auth: Option<(String, String)>,
}

struct Platform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

impl Platform {
    fn parse(platform: &str) -> Platform {
        let mut parts = platform.split('/');
        let os = parts.next().unwrap_or_default();
        let architecture = parts.next().unwrap_or_default();
        let variant = parts.next().map(str::to_string);
        assert!(
            !os.is_empty() && !architecture.is_empty() && parts.next().is_none(),
            "freshen-testkit: bad platform {platform:?}, expected os/arch[/variant]"
        );
        Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant,
        }
    }

    fn to_json(&self) -> Value {
        let mut v = json!({ "architecture": self.architecture, "os": self.os });
        if let Some(variant) = &self.variant {
            v["variant"] = json!(variant);
        }
        v
    }
}

impl Pusher {
    /// A pusher for the registry at `host` (`127.0.0.1:PORT`, plain HTTP),
    /// sending HTTP basic auth on every request when `auth` is given.
    pub fn new(host: &str, auth: Option<(&str, &str)>) -> Pusher {
        let base = Url::parse(&format!("http://{host}/"))
            .unwrap_or_else(|e| panic!("freshen-testkit: bad registry host {host:?}: {e}"));
        Pusher {
            host: host.to_string(),
            base,
            client: http_client(Some(Duration::from_secs(30))),
            auth: auth.map(|(u, p)| (u.to_string(), p.to_string())),
        }
    }

    /// The registry host this pusher writes to.
    pub fn host(&self) -> &str {
        &self.host
    }

    fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        let rb = self.client.request(method, url);
        match &self.auth {
            Some((u, p)) => rb.basic_auth(u, Some(p)),
            None => rb,
        }
    }

    fn url(&self, path: &str) -> Url {
        self.base.join(path).expect("joining a registry URL")
    }

    async fn send(&self, rb: reqwest::RequestBuilder, what: &str) -> reqwest::Response {
        rb.send()
            .await
            .unwrap_or_else(|e| panic!("freshen-testkit: {what} on {}: {e}", self.host))
    }

    /// Uploads `data` as a blob into `repo` (skipped when it already exists)
    /// and returns its digest.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = sha256_digest(data);
        let head = self
            .send(
                self.request(Method::HEAD, self.url(&format!("v2/{repo}/blobs/{digest}"))),
                "HEAD blob",
            )
            .await;
        if head.status() == StatusCode::OK {
            return digest;
        }
        let start = self
            .send(
                self.request(Method::POST, self.url(&format!("v2/{repo}/blobs/uploads/")))
                    .header("Content-Length", "0"),
                "starting a blob upload",
            )
            .await;
        let status = start.status();
        let location = start
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let Some(location) = location.filter(|_| status == StatusCode::ACCEPTED) else {
            let body = start.text().await.unwrap_or_default();
            panic!("freshen-testkit: POST /v2/{repo}/blobs/uploads/ answered {status}: {body}");
        };
        let mut put_url = self
            .base
            .join(&location)
            .expect("resolving the upload Location");
        put_url.query_pairs_mut().append_pair("digest", &digest);
        let put = self
            .send(
                self.request(Method::PUT, put_url)
                    .header("Content-Type", "application/octet-stream")
                    .body(data.to_vec()),
                "uploading a blob",
            )
            .await;
        let status = put.status();
        if status != StatusCode::CREATED {
            let body = put.text().await.unwrap_or_default();
            panic!("freshen-testkit: blob PUT for {repo}@{digest} answered {status}: {body}");
        }
        digest
    }

    /// PUTs manifest `bytes` (with `media_type` as Content-Type) under
    /// `reference` (a tag or the manifest's own digest); returns the digest.
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        let digest = sha256_digest(bytes);
        let resp = self
            .send(
                self.request(
                    Method::PUT,
                    self.url(&format!("v2/{repo}/manifests/{reference}")),
                )
                .header("Content-Type", media_type)
                .body(bytes.to_vec()),
                "PUT manifest",
            )
            .await;
        let status = resp.status();
        let returned = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if status != StatusCode::CREATED {
            let body = resp.text().await.unwrap_or_default();
            panic!(
                "freshen-testkit: PUT /v2/{repo}/manifests/{reference} answered {status}: {body}"
            );
        }
        if let Some(returned) = returned {
            assert_eq!(
                returned, digest,
                "freshen-testkit: registry computed another manifest digest"
            );
        }
        digest
    }

    /// GETs a manifest (any of the four manifest media types); returns
    /// `(Content-Type, exact bytes)`, or `None` on 404.
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Option<(String, Vec<u8>)> {
        let resp = self
            .send(
                self.request(
                    Method::GET,
                    self.url(&format!("v2/{repo}/manifests/{reference}")),
                )
                .header("Accept", ACCEPT_ALL_MANIFESTS),
                "GET manifest",
            )
            .await;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return None;
        }
        let media_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = resp
            .bytes()
            .await
            .expect("reading a manifest body")
            .to_vec();
        assert!(
            status == StatusCode::OK,
            "freshen-testkit: GET /v2/{repo}/manifests/{reference} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        Some((media_type, body))
    }

    /// The digest `HEAD /v2/<repo>/manifests/<reference>` reports
    /// (`Docker-Content-Digest`), or `None` on 404.
    pub async fn head_digest(&self, repo: &str, reference: &str) -> Option<String> {
        let resp = self
            .send(
                self.request(
                    Method::HEAD,
                    self.url(&format!("v2/{repo}/manifests/{reference}")),
                )
                .header("Accept", ACCEPT_ALL_MANIFESTS),
                "HEAD manifest",
            )
            .await;
        match resp.status() {
            StatusCode::NOT_FOUND => None,
            StatusCode::OK => Some(
                resp.headers()
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                    .expect("HEAD manifest without Docker-Content-Digest")
                    .to_string(),
            ),
            s => panic!("freshen-testkit: HEAD /v2/{repo}/manifests/{reference} answered {s}"),
        }
    }

    /// Deletes the manifest `digest` from `repo` (and so every tag on it).
    pub async fn delete_manifest(&self, repo: &str, digest: &str) {
        let resp = self
            .send(
                self.request(
                    Method::DELETE,
                    self.url(&format!("v2/{repo}/manifests/{digest}")),
                ),
                "DELETE manifest",
            )
            .await;
        let status = resp.status();
        assert!(
            status == StatusCode::ACCEPTED,
            "freshen-testkit: DELETE /v2/{repo}/manifests/{digest} answered {status}: {}",
            resp.text().await.unwrap_or_default()
        );
    }

    async fn image_blobs(
        &self,
        repo: &str,
        platform: &str,
        seed: &str,
        docker: bool,
    ) -> (String, Vec<u8>) {
        let p = Platform::parse(platform);
        let tar = layer_tar(platform, seed);
        let diff_id = sha256_digest(&tar);
        let layer = if docker { gzip_stored(&tar) } else { tar };
        let layer_digest = self.push_blob(repo, &layer).await;
        let mut config = json!({
            "architecture": p.architecture,
            "os": p.os,
            "created": "2024-01-01T00:00:00Z",
            "config": { "Labels": { "org.freshen.testkit.seed": seed } },
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
            "history": [ { "created": "2024-01-01T00:00:00Z", "created_by": "freshen-testkit" } ],
        });
        if let Some(v) = &p.variant {
            config["variant"] = json!(v);
        }
        let config = serde_json::to_vec(&config).expect("config to JSON");
        let config_digest = self.push_blob(repo, &config).await;
        let (mt, config_mt, layer_mt) = if docker {
            (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER_GZIP)
        } else {
            (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER_TAR)
        };
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": mt,
            "config": { "mediaType": config_mt, "digest": config_digest, "size": config.len() },
            "layers": [ { "mediaType": layer_mt, "digest": layer_digest, "size": layer.len() } ],
        });
        (
            mt.to_string(),
            serde_json::to_vec(&manifest).expect("manifest to JSON"),
        )
    }

    /// Pushes a one-layer OCI image for `platform` (`"linux/amd64"`,
    /// `"linux/arm/v7"`...) whose layer (an uncompressed tar) and config
    /// derive from `seed`, tagged `tag`; returns the manifest digest.
    pub async fn push_image(&self, repo: &str, tag: &str, platform: &str, seed: &str) -> String {
        let (mt, bytes) = self.image_blobs(repo, platform, seed, false).await;
        self.push_manifest(repo, tag, &mt, &bytes).await
    }

    /// Like [`Pusher::push_image`] but pushed by digest only (no tag), e.g.
    /// as a child of an index.
    pub async fn push_image_untagged(&self, repo: &str, platform: &str, seed: &str) -> String {
        let (mt, bytes) = self.image_blobs(repo, platform, seed, false).await;
        let digest = sha256_digest(&bytes);
        self.push_manifest(repo, &digest, &mt, &bytes).await
    }

    /// Pushes a Docker v2 schema 2 image (gzip layer, Docker media types)
    /// tagged `tag`; returns the manifest digest.
    pub async fn push_docker_image(
        &self,
        repo: &str,
        tag: &str,
        platform: &str,
        seed: &str,
    ) -> String {
        let (mt, bytes) = self.image_blobs(repo, platform, seed, true).await;
        self.push_manifest(repo, tag, &mt, &bytes).await
    }

    /// Like [`Pusher::push_docker_image`] but pushed by digest only.
    pub async fn push_docker_image_untagged(
        &self,
        repo: &str,
        platform: &str,
        seed: &str,
    ) -> String {
        let (mt, bytes) = self.image_blobs(repo, platform, seed, true).await;
        let digest = sha256_digest(&bytes);
        self.push_manifest(repo, &digest, &mt, &bytes).await
    }

    async fn descriptor(&self, repo: &str, digest: &str) -> (String, usize) {
        let (mt, bytes) = self.get_manifest(repo, digest).await.unwrap_or_else(|| {
            panic!("freshen-testkit: manifest {repo}@{digest} is not in the registry")
        });
        assert_eq!(sha256_digest(&bytes), digest, "manifest bytes mismatch");
        (mt, bytes.len())
    }

    /// Pushes an OCI image index tagged `tag` listing `entries`
    /// (`(platform, manifest digest)`; the manifests must already be in
    /// `repo`, see [`Pusher::push_image_untagged`]). With `with_attestation`
    /// a BuildKit-style attestation manifest for the first entry is pushed
    /// and listed too (platform `unknown/unknown`, annotations
    /// `vnd.docker.reference.type: attestation-manifest` and
    /// `vnd.docker.reference.digest`). Returns the index digest.
    pub async fn push_index(
        &self,
        repo: &str,
        tag: &str,
        entries: &[(&str, &str)],
        with_attestation: bool,
    ) -> String {
        let mut manifests = Vec::new();
        for (platform, digest) in entries {
            let (mt, size) = self.descriptor(repo, digest).await;
            manifests.push(json!({
                "mediaType": mt,
                "digest": digest,
                "size": size,
                "platform": Platform::parse(platform).to_json(),
            }));
        }
        if with_attestation {
            let (_, subject) = entries
                .first()
                .expect("freshen-testkit: an attestation needs at least one entry to attest");
            let (digest, size) = self.push_attestation(repo, subject).await;
            manifests.push(json!({
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": size,
                "annotations": {
                    "vnd.docker.reference.digest": subject,
                    "vnd.docker.reference.type": "attestation-manifest",
                },
                "platform": { "architecture": "unknown", "os": "unknown" },
            }));
        }
        let index = json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        });
        let bytes = serde_json::to_vec(&index).expect("index to JSON");
        self.push_manifest(repo, tag, OCI_INDEX, &bytes).await
    }

    async fn push_attestation(&self, repo: &str, subject: &str) -> (String, usize) {
        let statement = json!({
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://spdx.dev/Document",
            "subject": [ { "name": format!("pkg:docker/{repo}"), "digest": { "sha256": subject.trim_start_matches("sha256:") } } ],
            "predicate": { "spdxVersion": "SPDX-2.3", "name": "freshen-testkit", "packages": [] },
        });
        let statement = serde_json::to_vec(&statement).expect("statement to JSON");
        let layer_digest = self.push_blob(repo, &statement).await;
        let config = json!({
            "architecture": "unknown",
            "os": "unknown",
            "config": {},
            "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
        });
        let config = serde_json::to_vec(&config).expect("config to JSON");
        let config_digest = self.push_blob(repo, &config).await;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": { "mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len() },
            "layers": [ {
                "mediaType": "application/vnd.in-toto+json",
                "digest": layer_digest,
                "size": statement.len(),
                "annotations": { "in-toto.io/predicate-type": "https://spdx.dev/Document" },
            } ],
        });
        let bytes = serde_json::to_vec(&manifest).expect("manifest to JSON");
        let digest = sha256_digest(&bytes);
        self.push_manifest(repo, &digest, OCI_MANIFEST, &bytes)
            .await;
        (digest, bytes.len())
    }

    /// Pushes a Docker manifest list tagged `tag` listing `entries`
    /// (`(platform, digest)` of Docker v2 manifests already in `repo`, see
    /// [`Pusher::push_docker_image_untagged`]); returns its digest.
    pub async fn push_docker_list(
        &self,
        repo: &str,
        tag: &str,
        entries: &[(&str, &str)],
    ) -> String {
        let mut manifests = Vec::new();
        for (platform, digest) in entries {
            let (mt, size) = self.descriptor(repo, digest).await;
            manifests.push(json!({
                "mediaType": mt,
                "digest": digest,
                "size": size,
                "platform": Platform::parse(platform).to_json(),
            }));
        }
        let list = json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_LIST,
            "manifests": manifests,
        });
        let bytes = serde_json::to_vec(&list).expect("list to JSON");
        self.push_manifest(repo, tag, DOCKER_LIST, &bytes).await
    }

    /// Pushes one untagged OCI image per platform (from `seed`), then an OCI
    /// index over them tagged `tag`. Returns `(index digest, child digests
    /// in `platforms` order)`.
    pub async fn push_multiarch(
        &self,
        repo: &str,
        tag: &str,
        platforms: &[&str],
        seed: &str,
        with_attestation: bool,
    ) -> (String, Vec<String>) {
        let mut children = Vec::new();
        for platform in platforms {
            children.push(self.push_image_untagged(repo, platform, seed).await);
        }
        let entries: Vec<(&str, &str)> = platforms
            .iter()
            .zip(&children)
            .map(|(p, d)| (*p, d.as_str()))
            .collect();
        let index = self.push_index(repo, tag, &entries, with_attestation).await;
        (index, children)
    }

    /// Points `to_tag` at the manifest `from_digest`: GETs its exact bytes
    /// and PUTs them under the tag with the same media type.
    pub async fn tag(&self, repo: &str, from_digest: &str, to_tag: &str) {
        let (mt, bytes) = self
            .get_manifest(repo, from_digest)
            .await
            .unwrap_or_else(|| panic!("freshen-testkit: {repo}@{from_digest} not found"));
        self.push_manifest(repo, to_tag, &mt, &bytes).await;
    }

    /// Creates `n` tags `t00000`, `t00001`, ... on manifest `digest` (16
    /// PUTs in flight at most); returns the tag names in order.
    pub async fn create_tags(&self, repo: &str, n: usize, digest: &str) -> Vec<String> {
        let (mt, bytes) = self
            .get_manifest(repo, digest)
            .await
            .unwrap_or_else(|| panic!("freshen-testkit: {repo}@{digest} not found"));
        let (mt, bytes) = (Arc::new(mt), Arc::new(bytes));
        let tags: Vec<String> = (0..n).map(|i| format!("t{i:05}")).collect();
        let limit = Arc::new(tokio::sync::Semaphore::new(16));
        let mut set = tokio::task::JoinSet::new();
        for tag in tags.clone() {
            let (this, repo, mt, bytes, limit) = (
                self.clone(),
                repo.to_string(),
                mt.clone(),
                bytes.clone(),
                limit.clone(),
            );
            set.spawn(async move {
                let _permit = limit.acquire_owned().await.expect("semaphore closed");
                this.push_manifest(&repo, &tag, &mt, &bytes).await;
            });
        }
        while let Some(res) = set.join_next().await {
            if let Err(e) = res {
                if e.is_panic() {
                    std::panic::resume_unwind(e.into_panic());
                }
                panic!("freshen-testkit: tag task failed: {e}");
            }
        }
        tags
    }
}

/// A one-file ustar archive (`freshen/seed.txt`) derived from the inputs,
/// a few hundred bytes of pseudo-random text included.
fn layer_tar(platform: &str, seed: &str) -> Vec<u8> {
    let mut content = format!("seed: {seed}\nplatform: {platform}\n").into_bytes();
    let mut h = Sha256::digest(format!("{platform}\0{seed}").as_bytes()).to_vec();
    for _ in 0..8 {
        content.extend_from_slice(hex::encode(&h).as_bytes());
        content.push(b'\n');
        h = Sha256::digest(&h).to_vec();
    }
    let mut header = [0u8; 512];
    let name = b"freshen/seed.txt";
    header[..name.len()].copy_from_slice(name);
    header[100..108].copy_from_slice(b"0000644\0");
    header[108..116].copy_from_slice(b"0000000\0");
    header[116..124].copy_from_slice(b"0000000\0");
    header[124..136].copy_from_slice(format!("{:011o}\0", content.len()).as_bytes());
    header[136..148].copy_from_slice(format!("{:011o}\0", 1_704_067_200u64).as_bytes());
    header[148..156].copy_from_slice(b"        ");
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut tar = header.to_vec();
    tar.extend_from_slice(&content);
    tar.resize(tar.len().div_ceil(512) * 512, 0);
    tar.extend_from_slice(&[0u8; 1024]);
    tar
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// A valid gzip stream holding `data` in stored (uncompressed) deflate blocks.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut chunks = data.chunks(0xFFFF).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        out.push(u8::from(chunks.peek().is_none()));
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_known_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn tar_is_block_aligned_and_deterministic() {
        let a = layer_tar("linux/amd64", "x");
        assert_eq!(a.len() % 512, 0);
        assert_eq!(a, layer_tar("linux/amd64", "x"));
        assert_ne!(a, layer_tar("linux/arm64", "x"));
    }
}
