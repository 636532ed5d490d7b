//! Questions asked of the inventory, shared by the CLI and the HTTP API:
//! what an image is, what it holds, what is built on it, who holds a package,
//! and registering an image by hand.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::Utc;
use freshen_lineage::Evidence;
use freshen_reference::{Defaults, Reference};
use freshen_store::{
    ChangeEvent, Decision, ImageRecord, ImageRef, LineageEdge, PackageRecord, Store,
};
use serde::{Deserialize, Serialize};

use crate::InventoryError;

/// One platform of a tag, with what it is built on.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformView {
    /// `os/arch[/variant]`.
    pub platform: String,
    /// The platform manifest's digest (`manual:…` for a registration
    /// given none).
    pub digest: String,
    /// The tag's own digest when it points at an index.
    pub index_digest: Option<String>,
    /// The distribution's OSV ecosystem (`Debian:12`), else its os-release
    /// `ID`; `None` when unknown.
    pub os: Option<String>,
    /// When it was scanned or registered (UTC).
    pub scanned_at: chrono::DateTime<Utc>,
    /// How it got in: `scan` or `manual` (registered).
    pub source: String,
    /// How many packages it holds.
    pub packages: usize,
    /// Lineage edges, strongest evidence first.
    pub base: Vec<LineageEdge>,
}

/// `GET /images/{ref}`.
#[derive(Debug, Clone, Serialize)]
pub struct ImageView {
    /// The reference asked for, normalised.
    pub reference: String,
    /// Each platform the reference stands for in the inventory.
    pub platforms: Vec<PlatformView>,
}

/// One descendant in `children`.
#[derive(Debug, Clone, Serialize)]
pub struct ChildView {
    /// 1 for direct children, 2 for their children, ...
    pub depth: usize,
    /// The child's manifest digest.
    pub digest: String,
    /// `os/arch[/variant]`.
    pub platform: String,
    /// The tags pointing at it (empty for an untagged image).
    pub references: Vec<String>,
    /// The parent it was found under (a reference, or a digest).
    pub parent: String,
    /// How the edge was learned: `manual`, `annotation`, `dockerfile` or
    /// `layer-prefix`.
    pub evidence: String,
    /// The edge's confidence, 0 to 100.
    pub confidence: i32,
    /// The parent digest it was built on, when known.
    pub base_digest: Option<String>,
    /// True when it was built on a digest its base tag no longer points at.
    pub outdated: bool,
}

/// One version of a package and its holders, for `GET /packages/{name}`.
#[derive(Debug, Clone, Serialize)]
pub struct PackageVersion {
    /// `deb`, `apk`, `rpm`, `pypi`, `npm`, `go` or `cargo` when scanned;
    /// as given (default `generic`) when registered.
    pub ecosystem: String,
    /// The binary package's name.
    pub name: String,
    /// The version as the ecosystem spells it.
    pub version: String,
    /// The source package (dpkg `Source`, apk origin, rpm source rpm).
    pub source_name: Option<String>,
    /// Package URL.
    pub purl: String,
    /// The images holding this version, each once.
    pub images: Vec<Holder>,
}

/// An image holding a package version.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Holder {
    /// The image's manifest digest.
    pub digest: String,
    /// `os/arch[/variant]`.
    pub platform: String,
    /// The tags pointing at it.
    pub references: Vec<String>,
}

/// The body of `POST`/`PUT /images/{ref}`: what a build pipeline reports.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// The manifest digest; when absent a stable id is derived from the
    /// reference and platform (prefixed `manual:`, never mistaken for a digest).
    #[serde(default)]
    pub digest: Option<String>,
    /// `os/arch[/variant]`, default `linux/amd64`.
    #[serde(default)]
    pub platform: Option<String>,
    /// The base image reference (`debian:bookworm`).
    #[serde(default)]
    pub base: Option<String>,
    /// The base manifest digest it was built on.
    #[serde(default)]
    pub base_digest: Option<String>,
    /// Packages in the image.
    #[serde(default)]
    pub packages: Vec<RegisteredPackage>,
}

/// A package in a [`Registration`].
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegisteredPackage {
    /// Required, non-blank.
    pub name: String,
    /// Required, non-blank.
    pub version: String,
    /// `deb`, `apk`, `rpm`, `pypi`, `npm`, `go`, `cargo`; default `generic`.
    #[serde(default)]
    pub ecosystem: Option<String>,
    /// The source package it was built from.
    #[serde(default)]
    pub source_name: Option<String>,
    /// The source package's version.
    #[serde(default)]
    pub source_version: Option<String>,
    /// Package URL; default `pkg:<ecosystem>/<name>@<version>`.
    #[serde(default)]
    pub purl: Option<String>,
}

/// Queries over a store.
#[derive(Clone)]
pub struct Queries {
    store: Store,
    defaults: Defaults,
}

impl Queries {
    /// Queries with references normalised by `defaults`.
    pub fn new(store: Store, defaults: Defaults) -> Queries {
        Queries { store, defaults }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Recorded change events, newest first; only those of `reference`
    /// (already normalised) when given.
    pub async fn events(
        &self,
        reference: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ChangeEvent>, InventoryError> {
        Ok(self.store.events(reference, limit).await?)
    }

    /// One change event and the policy decisions made on it; `None` when
    /// there is no such event.
    pub async fn event(
        &self,
        id: &str,
    ) -> Result<Option<(ChangeEvent, Vec<Decision>)>, InventoryError> {
        let Some(e) = self.store.event(id).await? else {
            return Ok(None);
        };
        let decisions = self.store.decisions(None, Some(id), 1000).await?;
        Ok(Some((e, decisions)))
    }

    /// Stored policy decisions, newest first: on `subject` (a normalised
    /// reference), on change event `event`, or all.
    pub async fn decisions(
        &self,
        subject: Option<&str>,
        event: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Decision>, InventoryError> {
        Ok(self.store.decisions(subject, event, limit).await?)
    }

    /// How many images (manifests) the inventory holds.
    pub async fn image_count(&self) -> Result<usize, InventoryError> {
        Ok(self.store.image_layers().await?.len())
    }

    /// Normalises a user's reference; the error names the input.
    pub fn parse(&self, s: &str) -> Result<Reference, InventoryError> {
        Ok(Reference::parse_with(s, &self.defaults)?)
    }

    /// The digests a reference stands for: its platforms' manifests, or the pinned digest.
    async fn targets(&self, r: &Reference) -> Result<Vec<ImageRef>, InventoryError> {
        if let Some(d) = r.digest() {
            let refs = self.store.refs_of(d).await?;
            if refs.is_empty() && self.store.image(d).await?.is_some() {
                return Ok(vec![ImageRef {
                    reference: r.to_string(),
                    platform: String::new(),
                    digest: d.to_string(),
                    index_digest: None,
                    updated_at: Utc::now(),
                }]);
            }
            return Ok(refs.into_iter().filter(|x| x.digest == d).collect());
        }
        Ok(self.store.resolve_ref(&r.to_string()).await?)
    }

    /// The digests a reference stands for, or `UnknownImage` when the
    /// inventory has none of them.
    pub async fn known(&self, r: &Reference) -> Result<Vec<ImageRef>, InventoryError> {
        let t = self.targets(r).await?;
        if t.is_empty() {
            return Err(InventoryError::UnknownImage(r.to_string()));
        }
        Ok(t)
    }

    /// What an image is: per platform, its digest, OS, and base edges.
    pub async fn show(&self, r: &Reference) -> Result<ImageView, InventoryError> {
        let mut platforms = Vec::new();
        for t in self.known(r).await? {
            let Some(img) = self.store.image(&t.digest).await? else {
                continue;
            };
            platforms.push(PlatformView {
                platform: img.platform.clone(),
                digest: img.digest.clone(),
                index_digest: t.index_digest.clone(),
                os: img.os_ecosystem.clone().or(img.os_id.clone()),
                scanned_at: img.scanned_at,
                source: img.source.clone(),
                packages: self.store.packages_of(&img.digest).await?.len(),
                base: self.store.lineage_of(&img.digest).await?,
            });
        }
        Ok(ImageView {
            reference: r.to_string(),
            platforms,
        })
    }

    /// The packages of each platform of an image.
    pub async fn packages_of(
        &self,
        r: &Reference,
    ) -> Result<BTreeMap<String, Vec<PackageRecord>>, InventoryError> {
        let mut out = BTreeMap::new();
        for t in self.known(r).await? {
            let img = self.store.image(&t.digest).await?;
            let platform = img.map(|i| i.platform).unwrap_or(t.platform);
            out.insert(platform, self.store.packages_of(&t.digest).await?);
        }
        Ok(out)
    }

    /// Images built on `r`: direct children, or with `recursive` every
    /// descendant with its depth (breadth first, each image once).
    pub async fn children(
        &self,
        r: &Reference,
        recursive: bool,
    ) -> Result<Vec<ChildView>, InventoryError> {
        let roots = self.known(r).await?;
        let roots: Vec<String> = roots.into_iter().map(|t| t.digest).collect();
        self.walk(
            r.digest().is_none().then(|| r.to_string()),
            roots,
            recursive,
        )
        .await
    }

    /// Every image built on `digests` or, by name, on the tag `tag` (at
    /// any digest), with their descendants: what a move of that tag away
    /// from `digests` concerns. The digests need not be in the inventory.
    pub async fn built_on(
        &self,
        tag: &Reference,
        digests: &[String],
    ) -> Result<Vec<ChildView>, InventoryError> {
        self.walk(Some(tag.to_string()), digests.to_vec(), true)
            .await
    }

    /// Breadth-first walk down the lineage edges from `roots`.
    async fn walk(
        &self,
        root_ref: Option<String>,
        roots: Vec<String>,
        recursive: bool,
    ) -> Result<Vec<ChildView>, InventoryError> {
        let mut seen: HashSet<String> = roots.iter().cloned().collect();
        let mut out = Vec::new();
        // Each level: (reference name or None, digests) of the parents.
        let mut level: Vec<(Option<String>, Vec<String>)> = vec![(root_ref, roots)];
        let mut depth = 0;
        while !level.is_empty() {
            depth += 1;
            let mut next = Vec::new();
            for (parent_ref, parent_digests) in &level {
                let current: HashSet<&String> = parent_digests.iter().collect();
                for child in self
                    .store
                    .children(parent_ref.as_deref(), parent_digests)
                    .await?
                {
                    if !seen.insert(child.image_digest.clone()) {
                        continue;
                    }
                    let outdated = child
                        .edge
                        .base_digest
                        .as_ref()
                        .is_some_and(|d| !current.contains(d));
                    out.push(ChildView {
                        depth,
                        digest: child.image_digest.clone(),
                        platform: child.platform.clone(),
                        references: child.references.clone(),
                        parent: parent_ref
                            .clone()
                            .unwrap_or_else(|| parent_digests.join(",")),
                        evidence: child.edge.evidence.clone(),
                        confidence: child.edge.confidence,
                        base_digest: child.edge.base_digest.clone(),
                        outdated,
                    });
                    if recursive {
                        let refs: BTreeSet<String> = child.references.iter().cloned().collect();
                        if refs.is_empty() {
                            next.push((None, vec![child.image_digest.clone()]));
                        }
                        for name in refs {
                            next.push((Some(name), vec![child.image_digest.clone()]));
                        }
                    }
                }
            }
            level = next;
        }
        Ok(out)
    }

    /// Every version of a package (by binary or source name) and the images holding it.
    pub async fn package(
        &self,
        name: &str,
        ecosystem: Option<&str>,
        version: Option<&str>,
    ) -> Result<Vec<PackageVersion>, InventoryError> {
        let mut versions: BTreeMap<(String, String, String), PackageVersion> = BTreeMap::new();
        for h in self.store.find_packages(name, ecosystem, version).await? {
            let p = h.package;
            let entry = versions
                .entry((p.ecosystem.clone(), p.name.clone(), p.version.clone()))
                .or_insert_with(|| PackageVersion {
                    ecosystem: p.ecosystem.clone(),
                    name: p.name.clone(),
                    version: p.version.clone(),
                    source_name: p.source_name.clone(),
                    purl: p.purl.clone(),
                    images: Vec::new(),
                });
            let holder = Holder {
                digest: h.image_digest,
                platform: h.platform,
                references: h.references,
            };
            if !entry.images.contains(&holder) {
                entry.images.push(holder);
            }
        }
        Ok(versions.into_values().collect())
    }

    /// Registers (or with `replace`, replaces) an image by hand. `POST`
    /// refuses a reference that is already known; `PUT` replaces it.
    pub async fn register(
        &self,
        r: &Reference,
        body: &Registration,
        replace: bool,
    ) -> Result<ImageView, InventoryError> {
        if r.tag().is_none() {
            return Err(InventoryError::Invalid(format!(
                "{r}: register a tag (name:tag), not a bare digest"
            )));
        }
        let platform = match &body.platform {
            Some(p) => freshen_reference::Platform::parse(p)?.to_string(),
            None => "linux/amd64".to_string(),
        };
        if let Some(d) = &body.digest {
            freshen_reference::parse_digest(d)
                .map_err(|e| InventoryError::Invalid(format!("digest: {e}")))?;
        }
        if let Some(d) = &body.base_digest {
            freshen_reference::parse_digest(d)
                .map_err(|e| InventoryError::Invalid(format!("base_digest: {e}")))?;
        }
        let key = r.to_string();
        let existing = self.store.resolve_ref(&key).await?;
        if !replace && !existing.is_empty() {
            return Err(InventoryError::Conflict(format!(
                "{key} is already registered; use PUT to replace it"
            )));
        }
        let digest = body.digest.clone().unwrap_or_else(|| {
            use sha2::Digest as _;
            let h = sha2::Sha256::digest(format!("{key}\n{platform}").as_bytes());
            format!("manual:{}", hex::encode(&h[..16]))
        });
        let base = body.base.as_deref().map(|b| self.parse(b)).transpose()?;
        let now = Utc::now();
        let mut packages = Vec::new();
        for (i, p) in body.packages.iter().enumerate() {
            if p.name.trim().is_empty() || p.version.trim().is_empty() {
                return Err(InventoryError::Invalid(format!(
                    "packages[{i}]: name and version are required"
                )));
            }
            let eco = p.ecosystem.clone().unwrap_or_else(|| "generic".into());
            packages.push(PackageRecord {
                purl: p
                    .purl
                    .clone()
                    .unwrap_or_else(|| format!("pkg:{eco}/{}@{}", p.name, p.version)),
                ecosystem: eco,
                name: p.name.clone(),
                version: p.version.clone(),
                arch: None,
                source_name: p.source_name.clone(),
                source_version: p.source_version.clone(),
                location: "registered".into(),
                layer: None,
            });
        }
        let edges: Vec<LineageEdge> = match (&base, &body.base_digest) {
            (None, None) => Vec::new(),
            _ => vec![LineageEdge {
                evidence: Evidence::Manual.as_str().into(),
                base_reference: base.as_ref().map(|b| b.to_string()),
                base_digest: body.base_digest.clone(),
                confidence: i32::from(Evidence::Manual.confidence()),
                detail: Some("registered through the API".into()),
                recorded_at: now,
            }],
        };
        if replace {
            // PUT replaces the whole record: drop the old tag first.
            self.store.delete_ref(&key).await?;
        }
        let image = ImageRecord {
            digest: digest.clone(),
            repository: r.name(),
            platform: platform.clone(),
            config_digest: None,
            layers: Vec::new(),
            annotations: BTreeMap::new(),
            os_id: None,
            os_version: None,
            os_ecosystem: None,
            source: "manual".into(),
            scanned_at: now,
        };
        if edges.is_empty() {
            self.store
                .delete_edge(&digest, Evidence::Manual.as_str())
                .await?;
        }
        self.store
            .save_image(
                &image,
                &packages,
                &edges,
                &[ImageRef {
                    reference: key,
                    platform,
                    digest,
                    index_digest: None,
                    updated_at: now,
                }],
            )
            .await?;
        self.show(r).await
    }

    /// Removes a tag from the inventory (and images nothing else points at).
    pub async fn delete(&self, r: &Reference) -> Result<(), InventoryError> {
        if !self.store.delete_ref(&r.to_string()).await? {
            return Err(InventoryError::UnknownImage(r.to_string()));
        }
        Ok(())
    }
}
