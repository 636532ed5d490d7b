//! Writes: manifests pushed as their exact bytes, blobs mounted from another
//! repository or streamed into a monolithic upload, and [`Client::copy`] of
//! a tag or index to another tag, repository or registry.
//!
//! Every write goes to the registry itself, never to a mirror, and JSON is
//! never re-serialised: a copy has the digest of its source.

use bytes::Bytes;
use freshen_reference::Reference;
use futures::future::BoxFuture;
use futures::{StreamExt as _, TryStreamExt as _};
use reqwest::Method;
use reqwest::StatusCode;
use reqwest::header::LOCATION;

use crate::manifest::{Descriptor, ImageDoc, IndexDoc, is_index_type};
use crate::transport::{Access, Data, Loc, Payload, Req};
use crate::{
    Client, DOCKER_MANIFEST, MANIFEST_ACCEPT, Manifest, OCI_MANIFEST, RegistryError, sha256_digest,
    target,
};

/// Blobs transferred at once during a copy (the registry's concurrency
/// limit applies on top).
const COPY_CONCURRENCY: usize = 4;

/// How deep indexes may nest in a copy (an index of indexes is legal, rare).
const MAX_INDEX_DEPTH: usize = 4;

/// What [`Client::copy_report`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CopyReport {
    /// The digest the target now points at: the source's.
    pub digest: String,
    /// The manifest's media type.
    pub media_type: String,
    /// Manifests pushed: the target's own, and each child of an index the
    /// target repository lacked.
    pub manifests_pushed: usize,
    /// Blobs mounted from the source repository (same registry, no bytes moved).
    pub blobs_mounted: usize,
    /// Blobs streamed from the source into the target (mount refused, or
    /// another registry).
    pub blobs_copied: usize,
    /// Blobs and child manifests the target repository already had.
    pub already_present: usize,
}

/// How a copy moves content.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Same repository: everything is there; only the manifest is pushed.
    SameRepository,
    /// Same registry, another repository: blobs are mounted.
    Mount,
    /// Another registry: blobs are streamed.
    Stream,
}

struct Copying<'a> {
    from: &'a Reference,
    to: &'a Reference,
    mode: Mode,
}

impl Copying<'_> {
    /// The access every request to the target asks for: one token serves
    /// the whole copy.
    fn access(&self) -> Access<'_> {
        match self.mode {
            Mode::Mount => Access::PushFrom(self.from.repository()),
            Mode::SameRepository | Mode::Stream => Access::Push,
        }
    }
}

/// How a copy moves content between two references.
fn mode_of(from: &Reference, to: &Reference) -> Mode {
    if from.registry() != to.registry() {
        Mode::Stream
    } else if from.repository() != to.repository() {
        Mode::Mount
    } else {
        Mode::SameRepository
    }
}

/// What [`Client::transfer_blob`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobTransfer {
    /// Mounted from the source repository (same registry, no bytes moved).
    Mounted,
    /// Streamed from the source.
    Copied,
    /// Already there (or a non-distributable layer, which registries don't hold).
    Present,
}

/// What happened to one blob.
enum Moved {
    Mounted,
    Copied,
    Present,
    Skipped,
}

/// The answer to an upload `POST`.
enum Upload {
    /// `201`: the blob was mounted.
    Mounted,
    /// `202`: an upload session was started at this location.
    Started(String),
}

impl Client {
    /// Pushes a manifest's exact bytes under the reference's tag (or its
    /// digest when it has no tag) and returns their digest, checked against
    /// the `Docker-Content-Digest` the registry answers and the digest the
    /// reference pins, if any.
    pub async fn put_manifest(
        &self,
        r: &Reference,
        media_type: &str,
        bytes: impl Into<Bytes>,
    ) -> Result<String, RegistryError> {
        self.put_manifest_as(r, media_type, bytes.into(), Access::Push)
            .await
    }

    async fn put_manifest_as(
        &self,
        r: &Reference,
        media_type: &str,
        bytes: Bytes,
        access: Access<'_>,
    ) -> Result<String, RegistryError> {
        let image = r.to_string();
        let digest = sha256_digest(&bytes);
        let max = self.transport.options.max_manifest_bytes;
        if bytes.len() > max {
            return Err(RegistryError::BadContent {
                image,
                what: "manifest".into(),
                detail: format!("larger than the limit of {max} bytes"),
            });
        }
        if let Some(pinned) = r.digest()
            && pinned.starts_with("sha256:")
            && pinned != digest
        {
            return Err(RegistryError::DigestMismatch {
                image,
                claimed: pinned.to_string(),
                actual: digest,
            });
        }
        let reference = r.tag().unwrap_or(&digest).to_string();
        let req = Req {
            method: Method::PUT,
            access,
            body: Some(Payload {
                content_type: media_type.to_string(),
                data: Data::Bytes(bytes),
            }),
            ..Req::default()
        };
        let resp = self
            .transport
            .upstream(
                &target(r, &image),
                req,
                Loc::Repo(&format!("manifests/{reference}")),
            )
            .await?;
        let answered = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok());
        if let Some(a) = answered
            && a.starts_with("sha256:")
            && a != digest
        {
            return Err(RegistryError::DigestMismatch {
                image,
                claimed: a.to_string(),
                actual: digest,
            });
        }
        Ok(digest)
    }

    /// Whether the reference's repository holds a blob (`HEAD`, on the
    /// registry itself).
    pub async fn blob_exists(&self, r: &Reference, digest: &str) -> Result<bool, RegistryError> {
        self.blob_exists_as(r, digest, Access::Pull).await
    }

    async fn blob_exists_as(
        &self,
        r: &Reference,
        digest: &str,
        access: Access<'_>,
    ) -> Result<bool, RegistryError> {
        let image = r.to_string();
        let req = Req {
            method: Method::HEAD,
            access,
            ..Req::default()
        };
        let loc = format!("blobs/{digest}");
        match self
            .transport
            .upstream(&target(r, &image), req, Loc::Repo(&loc))
            .await
        {
            Ok(_) => Ok(true),
            Err(RegistryError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether a manifest exists, asked of the registry itself.
    async fn manifest_exists_as(
        &self,
        r: &Reference,
        access: Access<'_>,
    ) -> Result<bool, RegistryError> {
        let image = r.to_string();
        let req = Req {
            method: Method::HEAD,
            accept: Some(MANIFEST_ACCEPT),
            access,
            ..Req::default()
        };
        let loc = format!("manifests/{}", r.manifest_reference());
        match self
            .transport
            .upstream(&target(r, &image), req, Loc::Repo(&loc))
            .await
        {
            Ok(_) => Ok(true),
            Err(RegistryError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A manifest's exact bytes from the registry itself, never a mirror:
    /// what is promoted must be what the registry serves now.
    async fn get_manifest_upstream(&self, r: &Reference) -> Result<Manifest, RegistryError> {
        let image = r.to_string();
        let req = Req {
            method: Method::GET,
            accept: Some(MANIFEST_ACCEPT),
            ..Req::default()
        };
        let loc = format!("manifests/{}", r.manifest_reference());
        let resp = self
            .transport
            .upstream(&target(r, &image), req, Loc::Repo(&loc))
            .await?;
        self.read_manifest(r, resp).await
    }

    /// Mounts blob `digest` from repository `from_repo` into `to`'s
    /// repository (same registry): `POST /v2/<to>/blobs/uploads/?mount=&from=`.
    /// `true` when mounted (`201`); `false` when the registry declined and
    /// started an upload instead (`202`), which is cancelled.
    pub async fn mount_blob(
        &self,
        to: &Reference,
        from_repo: &str,
        digest: &str,
    ) -> Result<bool, RegistryError> {
        let access = Access::PushFrom(from_repo);
        match self.mount_or_start(to, from_repo, digest, access).await? {
            Upload::Mounted => Ok(true),
            Upload::Started(location) => {
                self.cancel_upload(to, &location, access).await;
                Ok(false)
            }
        }
    }

    async fn mount_or_start(
        &self,
        to: &Reference,
        from_repo: &str,
        digest: &str,
        access: Access<'_>,
    ) -> Result<Upload, RegistryError> {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("mount", digest)
            .append_pair("from", from_repo)
            .finish();
        self.post_upload(to, &format!("blobs/uploads/?{query}"), access)
            .await
    }

    /// Starts an upload session; its location.
    async fn start_upload(
        &self,
        to: &Reference,
        access: Access<'_>,
    ) -> Result<String, RegistryError> {
        match self.post_upload(to, "blobs/uploads/", access).await? {
            Upload::Started(location) => Ok(location),
            Upload::Mounted => Err(RegistryError::BadContent {
                image: to.to_string(),
                what: "upload".into(),
                detail: "the registry answered 201 to an upload request that asked for no mount"
                    .into(),
            }),
        }
    }

    async fn post_upload(
        &self,
        to: &Reference,
        rest: &str,
        access: Access<'_>,
    ) -> Result<Upload, RegistryError> {
        let image = to.to_string();
        let req = Req {
            method: Method::POST,
            access,
            // An explicit empty body: some registries want `Content-Length: 0`.
            body: Some(Payload {
                content_type: "application/octet-stream".into(),
                data: Data::Bytes(Bytes::new()),
            }),
            ..Req::default()
        };
        let resp = self
            .transport
            .upstream(&target(to, &image), req, Loc::Repo(rest))
            .await?;
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match (resp.status(), location) {
            (StatusCode::CREATED, _) => Ok(Upload::Mounted),
            (StatusCode::ACCEPTED, Some(l)) => Ok(Upload::Started(l)),
            (s, _) => Err(RegistryError::BadContent {
                image,
                what: "upload".into(),
                detail: format!(
                    "the registry answered HTTP {} without an upload location",
                    s.as_u16()
                ),
            }),
        }
    }

    /// Cancels an upload session, best effort (the registry expires it anyway).
    async fn cancel_upload(&self, to: &Reference, location: &str, access: Access<'_>) {
        let image = to.to_string();
        let req = Req {
            method: Method::DELETE,
            access,
            ..Req::default()
        };
        if let Err(e) = self
            .transport
            .upstream(&target(to, &image), req, Loc::Location(location))
            .await
        {
            tracing::debug!(image = %image, error = %e, "cancelling an upload failed");
        }
    }

    /// Streams blob `d` from `from` into the upload session at `location`
    /// of `to` (one monolithic `PUT <location>?digest=`); the registry checks
    /// the digest. At most [`crate::ClientOptions::max_blob_copy_bytes`].
    async fn stream_blob(
        &self,
        from: &Reference,
        to: &Reference,
        d: &Descriptor,
        location: &str,
        access: Access<'_>,
    ) -> Result<(), RegistryError> {
        let max = self.transport.options.max_blob_copy_bytes;
        let from_image = from.to_string();
        let too_big = |len: u64| RegistryError::BadContent {
            image: from_image.clone(),
            what: format!("blob {}", d.digest),
            detail: format!("{len} bytes is more than the copy limit of {max} bytes"),
        };
        if d.size > 0 && d.size as u64 > max {
            return Err(too_big(d.size as u64));
        }
        let resp = self
            .transport
            .send(
                &target(from, &from_image),
                Method::GET,
                &format!("blobs/{}", d.digest),
                None,
            )
            .await?;
        let len = match (resp.content_length(), u64::try_from(d.size).ok()) {
            (Some(a), Some(b)) if b > 0 && a != b => {
                return Err(RegistryError::BadContent {
                    image: from_image,
                    what: format!("blob {}", d.digest),
                    detail: format!("the registry sent {a} bytes, the manifest says {b}"),
                });
            }
            (Some(a), _) => a,
            (None, Some(b)) if b > 0 => b,
            _ => {
                return Err(RegistryError::BadContent {
                    image: from_image,
                    what: format!("blob {}", d.digest),
                    detail: "its size is unknown (no Content-Length and no size in the manifest)"
                        .into(),
                });
            }
        };
        if len > max {
            return Err(too_big(len));
        }
        // The stream stops with an error past `len` bytes: Content-Length
        // is promised to the target.
        let mut sent = 0u64;
        let stream = resp.bytes_stream().map(move |chunk| {
            let chunk = chunk.map_err(std::io::Error::other)?;
            sent += chunk.len() as u64;
            if sent > len {
                return Err(std::io::Error::other("the blob is longer than announced"));
            }
            Ok::<_, std::io::Error>(chunk)
        });
        let sep = if location.contains('?') { '&' } else { '?' };
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("digest", &d.digest)
            .finish();
        let put = format!("{location}{sep}{query}");
        let req = Req {
            method: Method::PUT,
            access,
            body: Some(Payload {
                content_type: "application/octet-stream".into(),
                data: Data::Once {
                    body: std::sync::Mutex::new(Some(reqwest::Body::wrap_stream(stream))),
                    len,
                },
            }),
            ..Req::default()
        };
        let image = to.to_string();
        let resp = self
            .transport
            .upstream(&target(to, &image), req, Loc::Location(&put))
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(RegistryError::BadContent {
                image,
                what: format!("blob {}", d.digest),
                detail: format!(
                    "the registry answered HTTP {} to the upload",
                    resp.status().as_u16()
                ),
            });
        }
        Ok(())
    }

    /// Pushes `bytes` as a blob into the reference's repository (one
    /// monolithic upload) unless it is there already; returns its digest.
    /// For small blobs built in memory: an image config, say.
    pub async fn push_blob(
        &self,
        to: &Reference,
        bytes: impl Into<Bytes>,
    ) -> Result<String, RegistryError> {
        let bytes: Bytes = bytes.into();
        let digest = sha256_digest(&bytes);
        let access = Access::Push;
        if self.blob_exists_as(to, &digest, access).await? {
            return Ok(digest);
        }
        let location = self.start_upload(to, access).await?;
        let sep = if location.contains('?') { '&' } else { '?' };
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("digest", &digest)
            .finish();
        let req = Req {
            method: Method::PUT,
            access,
            body: Some(Payload {
                content_type: "application/octet-stream".into(),
                data: Data::Bytes(bytes),
            }),
            ..Req::default()
        };
        let image = to.to_string();
        let put = format!("{location}{sep}{query}");
        let resp = match self
            .transport
            .upstream(&target(to, &image), req, Loc::Location(&put))
            .await
        {
            Ok(r) => r,
            Err(e) => {
                self.cancel_upload(to, &location, access).await;
                return Err(e);
            }
        };
        if resp.status() != StatusCode::CREATED {
            return Err(RegistryError::BadContent {
                image,
                what: format!("blob {digest}"),
                detail: format!(
                    "the registry answered HTTP {} to the upload",
                    resp.status().as_u16()
                ),
            });
        }
        Ok(digest)
    }

    /// Puts blob `d` of `from`'s repository into `to`'s: nothing when they
    /// are one repository or `to` has it, a cross-repository mount on one
    /// registry (streamed when the mount is refused), streamed between
    /// registries. Never held in memory or on disk.
    pub async fn transfer_blob(
        &self,
        from: &Reference,
        to: &Reference,
        d: &Descriptor,
    ) -> Result<BlobTransfer, RegistryError> {
        let c = Copying {
            from,
            to,
            mode: mode_of(from, to),
        };
        Ok(match self.transfer_blob_in(&c, d).await? {
            Moved::Mounted => BlobTransfer::Mounted,
            Moved::Copied => BlobTransfer::Copied,
            Moved::Present | Moved::Skipped => BlobTransfer::Present,
        })
    }

    /// Copies the manifest `from` points at to `to`, as its exact bytes:
    /// the target gets the source's digest, which is returned.
    ///
    /// - Same repository: one `PUT` of the manifest under the new tag.
    /// - Another repository of the same registry: every blob (config and
    ///   layers; for an index, each child manifest's, and the children
    ///   themselves by digest, first) is mounted from the source
    ///   repository, or streamed when the registry refuses the mount.
    /// - Another registry: blobs the target lacks are streamed.
    ///
    /// Layers are never pulled into memory or onto disk.
    pub async fn copy(&self, from: &Reference, to: &Reference) -> Result<String, RegistryError> {
        Ok(self.copy_report(from, to).await?.digest)
    }

    /// [`Client::copy`], telling what it did.
    pub async fn copy_report(
        &self,
        from: &Reference,
        to: &Reference,
    ) -> Result<CopyReport, RegistryError> {
        let mode = mode_of(from, to);
        let c = Copying { from, to, mode };
        let source = self.get_manifest_upstream(from).await?;
        let mut report = CopyReport {
            digest: source.digest.clone(),
            media_type: source.media_type.clone(),
            ..CopyReport::default()
        };
        if mode != Mode::SameRepository {
            self.copy_content(&c, &source, &mut report, 0).await?;
        }
        let pushed = self
            .put_manifest_as(
                to,
                &source.media_type,
                Bytes::from(source.bytes),
                c.access(),
            )
            .await?;
        report.manifests_pushed += 1;
        if pushed != source.digest {
            return Err(RegistryError::DigestMismatch {
                image: to.to_string(),
                claimed: source.digest,
                actual: pushed,
            });
        }
        Ok(report)
    }

    /// Puts into the target repository everything manifest `m` refers to:
    /// its blobs, or for an index its children (each with its blobs, then
    /// itself by digest).
    fn copy_content<'a>(
        &'a self,
        c: &'a Copying<'a>,
        m: &'a Manifest,
        report: &'a mut CopyReport,
        depth: usize,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let image = if depth == 0 {
                c.from.to_string()
            } else {
                format!("{}@{}", c.from.name(), m.digest)
            };
            let bad = |detail: String| RegistryError::BadContent {
                image: image.clone(),
                what: "manifest".into(),
                detail,
            };
            if is_index_type(&m.media_type) {
                if depth >= MAX_INDEX_DEPTH {
                    return Err(bad(format!(
                        "indexes nest deeper than {MAX_INDEX_DEPTH} levels"
                    )));
                }
                let idx: IndexDoc =
                    serde_json::from_slice(&m.bytes).map_err(|e| bad(e.to_string()))?;
                for d in &idx.manifests {
                    let pin = |r: &Reference| {
                        Reference::from_parts(r.registry(), r.repository(), None, Some(&d.digest))
                            .map_err(|e| bad(format!("child {}: {e}", d.digest)))
                    };
                    let (child_from, child_to) = (pin(c.from)?, pin(c.to)?);
                    if self.manifest_exists_as(&child_to, c.access()).await? {
                        report.already_present += 1;
                        continue;
                    }
                    let child = self.get_manifest_upstream(&child_from).await?;
                    self.copy_content(c, &child, report, depth + 1).await?;
                    self.put_manifest_as(
                        &child_to,
                        &child.media_type,
                        Bytes::from(child.bytes),
                        c.access(),
                    )
                    .await?;
                    report.manifests_pushed += 1;
                }
                return Ok(());
            }
            if m.media_type
                .starts_with("application/vnd.docker.distribution.manifest.v1")
            {
                return Err(bad(format!(
                    "media type {} (schema 1) cannot be copied: push the image again with a current client",
                    m.media_type
                )));
            }
            let doc: ImageDoc = serde_json::from_slice(&m.bytes).map_err(|e| {
                bad(format!(
                    "{} is neither an index nor an image manifest ({e})",
                    m.media_type
                ))
            })?;
            if m.media_type != OCI_MANIFEST && m.media_type != DOCKER_MANIFEST {
                tracing::debug!(media_type = %m.media_type, "copying a manifest of another type by its config and layers");
            }
            let mut blobs: Vec<&Descriptor> = Vec::new();
            for d in std::iter::once(&doc.config).chain(&doc.layers) {
                if !blobs.iter().any(|b| b.digest == d.digest) {
                    blobs.push(d);
                }
            }
            // The first blob alone: its request fetches the token the others
            // then share, instead of each racing for one.
            let mut moved = Vec::with_capacity(blobs.len());
            let mut rest = blobs.into_iter();
            if let Some(first) = rest.next() {
                moved.push(self.transfer_blob_in(c, first).await?);
            }
            // Futures made up front: a closure inside the stream would not
            // be provably general enough for a boxed `Send` future.
            let pending: Vec<_> = rest.map(|d| self.transfer_blob_in(c, d)).collect();
            let others: Vec<Moved> = futures::stream::iter(pending)
                .buffer_unordered(COPY_CONCURRENCY)
                .try_collect()
                .await?;
            moved.extend(others);
            for m in moved {
                match m {
                    Moved::Mounted => report.blobs_mounted += 1,
                    Moved::Copied => report.blobs_copied += 1,
                    Moved::Present => report.already_present += 1,
                    Moved::Skipped => {}
                }
            }
            Ok(())
        })
    }

    /// Puts one blob into the target repository: mounted, else streamed.
    async fn transfer_blob_in(
        &self,
        c: &Copying<'_>,
        d: &Descriptor,
    ) -> Result<Moved, RegistryError> {
        // Non-distributable (foreign) layers live elsewhere: registries
        // neither hold nor require them.
        if d.media_type.contains("foreign") || d.media_type.contains("nondistributable") {
            return Ok(Moved::Skipped);
        }
        let access = c.access();
        let location = match c.mode {
            Mode::SameRepository => return Ok(Moved::Present),
            Mode::Mount => {
                match self
                    .mount_or_start(c.to, c.from.repository(), &d.digest, access)
                    .await?
                {
                    Upload::Mounted => return Ok(Moved::Mounted),
                    Upload::Started(location) => {
                        tracing::debug!(digest = %d.digest, "mount refused; streaming the blob");
                        location
                    }
                }
            }
            Mode::Stream => {
                if self.blob_exists_as(c.to, &d.digest, access).await? {
                    return Ok(Moved::Present);
                }
                self.start_upload(c.to, access).await?
            }
        };
        match self.stream_blob(c.from, c.to, d, &location, access).await {
            Ok(()) => Ok(Moved::Copied),
            Err(e) => {
                self.cancel_upload(c.to, &location, access).await;
                Err(e)
            }
        }
    }
}
