//! Scanning: an image's manifests, configs and layers read from the registry
//! into the inventory. Each layer is read once ever: its findings are kept
//! by layer digest, so a thousand images on one base read the base once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use freshen_lineage::{Dockerfile, Evidence, annotated_base, longest_prefix};
use freshen_reference::{Defaults, Platform, Reference};
use freshen_registry::{Client, DigestCheck, Image};
use freshen_sbom::{LayerFindings, Limits};
use freshen_store::{ImageRecord, ImageRef, LineageEdge, PackageRecord, PlatformDigest, Store};
use serde::Serialize;

use crate::InventoryError;

/// A Dockerfile given with `--dockerfile`, and how it is built.
#[derive(Debug, Clone, Default)]
pub struct DockerfileInput {
    /// Where it was read from (for the edge's evidence).
    pub path: String,
    /// The Dockerfile's content.
    pub text: String,
    /// `--build-arg` values: override the `ARG` defaults `FROM` lines use.
    pub build_args: BTreeMap<String, String>,
    /// `--target` stage, if any.
    pub target: Option<String>,
}

/// What to scan of a reference.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Platforms to scan; empty: every platform the tag holds.
    pub platforms: Vec<Platform>,
    /// The Dockerfile it was built from: records a `dockerfile` lineage
    /// edge to the base of its last (or `target`) stage.
    pub dockerfile: Option<DockerfileInput>,
}

/// The outcome of scanning one platform of an image.
#[derive(Debug, Clone, Serialize)]
pub struct ScanReport {
    /// The reference scanned, normalised.
    pub reference: String,
    /// `os/arch[/variant]`.
    pub platform: String,
    /// The platform manifest's digest.
    pub digest: String,
    /// The distribution's OSV ecosystem (`Debian:12`), else its os-release
    /// `ID`; `None` when not found.
    pub os: Option<String>,
    /// How many packages were found.
    pub packages: usize,
    /// Layers read now.
    pub layers_read: usize,
    /// Layers whose findings were already known (not read again).
    pub layers_cached: usize,
    /// Lineage edges recorded, strongest first.
    pub base: Vec<LineageEdge>,
    /// What the layer scan skipped or found odd (a path escaping the root,
    /// a truncated archive, ...), one line each.
    pub warnings: Vec<String>,
}

/// What [`Scanner::follow`] did to keep a tag's inventory entry current.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Followed {
    /// Platforms whose new digest the inventory held already: only the
    /// tag was pointed at it (no registry request).
    pub pointed: Vec<String>,
    /// Platforms scanned now (the tag pointed at them by the scan).
    pub scanned: Vec<ScanReport>,
}

/// Reads images into the inventory.
#[derive(Clone)]
pub struct Scanner {
    client: Client,
    store: Store,
    defaults: Defaults,
    limits: Limits,
    /// Layers being read right now: concurrent scans of images on one base
    /// wait for the same read instead of starting their own.
    inflight: Arc<Mutex<HashMap<String, Arc<tokio::sync::OnceCell<LayerFindings>>>>>,
}

impl Scanner {
    /// A scanner with the default layer limits.
    pub fn new(client: Client, store: Store, defaults: Defaults) -> Scanner {
        Scanner {
            client,
            store,
            defaults,
            limits: Limits::default(),
            inflight: Arc::default(),
        }
    }

    /// Uses other limits for reading layers.
    pub fn with_limits(mut self, limits: Limits) -> Scanner {
        self.limits = limits;
        self
    }

    /// Scans a reference (each wanted platform) and records the result.
    pub async fn scan(
        &self,
        r: &Reference,
        opts: &ScanOptions,
    ) -> Result<Vec<ScanReport>, InventoryError> {
        Ok(self
            .scan_sbom(r, opts)
            .await?
            .into_iter()
            .map(|(report, _)| report)
            .collect())
    }

    /// Like [`Scanner::scan`], also returning each platform's package inventory
    /// (for SBOM documents).
    pub async fn scan_sbom(
        &self,
        r: &Reference,
        opts: &ScanOptions,
    ) -> Result<Vec<(ScanReport, freshen_sbom::Inventory)>, InventoryError> {
        let started = std::time::Instant::now();
        let scanned = self.scan_platforms(r, opts).await;
        crate::telemetry::scanned(scanned.as_ref().ok().map(Vec::len), started.elapsed());
        scanned
    }

    async fn scan_platforms(
        &self,
        r: &Reference,
        opts: &ScanOptions,
    ) -> Result<Vec<(ScanReport, freshen_sbom::Inventory)>, InventoryError> {
        let (resolved, single) = self.client.resolve_image(r).await?;
        let manifests = if opts.platforms.is_empty() {
            resolved.manifests.clone()
        } else {
            self.client
                .select_platforms(r, &resolved, &opts.platforms)?
        };
        let index_digest = resolved.is_index.then(|| resolved.digest.clone());
        let mut reports = Vec::new();
        for m in manifests {
            let pinned = r.with_digest(&m.digest)?;
            // A single manifest was read whole by `resolve_image`.
            let image = match single.as_ref().filter(|i| i.digest == m.digest) {
                Some(i) => i.clone(),
                None => self.client.image(&pinned).await?,
            };
            reports.push(
                self.scan_image(r, &pinned, &image, index_digest.clone(), opts)
                    .await?,
            );
        }
        Ok(reports)
    }

    /// Points `tag` at `manifests` (each watched platform's manifest
    /// digest), with `top` the tag's own digest (an index, or the single
    /// manifest): what a watcher calls when it sees the tag move, so that
    /// lineage follows the tag without a manual scan. A digest the
    /// inventory holds already is pointed at without a request; the others
    /// are scanned (`tag@top`, those platforms; layers already read are
    /// not read again). A reference without a tag has nothing to point.
    pub async fn follow(
        &self,
        tag: &Reference,
        top: &str,
        manifests: &[PlatformDigest],
    ) -> Result<Followed, InventoryError> {
        let Some(name) = tag.tag() else {
            return Ok(Followed::default());
        };
        let tag = tag.with_tag(name)?;
        let index_digest = manifests
            .iter()
            .all(|m| m.digest != top)
            .then(|| top.to_string());
        let now = Utc::now();
        let mut pointed = Vec::new();
        let mut refs = Vec::new();
        let mut unknown = Vec::new();
        for m in manifests {
            match self.store.image(&m.digest).await? {
                Some(img) => {
                    pointed.push(m.platform.clone());
                    refs.push(ImageRef {
                        reference: tag.to_string(),
                        // As the scan recorded it, so the tag's platforms
                        // stay one row each.
                        platform: img.platform,
                        digest: m.digest.clone(),
                        index_digest: index_digest.clone(),
                        updated_at: now,
                    });
                }
                None => unknown.push(Platform::parse(&m.platform)?),
            }
        }
        self.store.point_refs(&refs).await?;
        let scanned = if unknown.is_empty() {
            Vec::new()
        } else {
            self.scan(
                &tag.with_digest(top)?,
                &ScanOptions {
                    platforms: unknown,
                    dockerfile: None,
                },
            )
            .await?
        };
        Ok(Followed { pointed, scanned })
    }

    async fn scan_image(
        &self,
        tag: &Reference,
        pinned: &Reference,
        image: &Image,
        index_digest: Option<String>,
        opts: &ScanOptions,
    ) -> Result<(ScanReport, freshen_sbom::Inventory), InventoryError> {
        let platform = image.config.platform().to_string();
        let blobs: Vec<String> = image
            .manifest
            .layers
            .iter()
            .map(|l| l.digest.clone())
            .collect();
        let cached = self.store.layer_findings(&blobs).await?;
        let mut findings: Vec<(String, LayerFindings)> = Vec::with_capacity(blobs.len());
        let mut read = 0;
        let mut read_bytes = 0u64;
        let size = |blob: &str| {
            image
                .manifest
                .layers
                .iter()
                .find(|l| l.digest == blob)
                .map_or(0, |l| u64::try_from(l.size).unwrap_or(0))
        };
        for blob in &blobs {
            let f = match cached.get(blob) {
                Some(json) => match serde_json::from_str(json) {
                    Ok(f) => f,
                    // A cache entry from another version of freshen: read again.
                    Err(_) => {
                        read += 1;
                        read_bytes += size(blob);
                        self.read_layer_once(pinned, blob).await?
                    }
                },
                None => {
                    read += 1;
                    read_bytes += size(blob);
                    self.read_layer_once(pinned, blob).await?
                }
            };
            findings.push((blob.clone(), f));
        }
        crate::telemetry::layers(read, blobs.len() - read, read_bytes);
        let inv = freshen_sbom::merge(&findings);
        let packages: Vec<PackageRecord> = inv
            .packages
            .iter()
            .map(|p| PackageRecord {
                ecosystem: p.ecosystem.as_str().to_string(),
                name: p.name.clone(),
                version: p.version.clone(),
                arch: p.arch.clone(),
                source_name: p.source_name.clone(),
                source_version: p.source_version.clone(),
                purl: p.purl.clone(),
                location: p.location.clone(),
                layer: p.layer.clone(),
            })
            .collect();
        let now = Utc::now();
        let diff_ids = image.config.rootfs.diff_ids.clone();
        let mut edges = Vec::new();
        if let Some((name, digest)) = annotated_base(&image.manifest.annotations) {
            edges.push(LineageEdge {
                evidence: Evidence::Annotation.as_str().into(),
                base_reference: name.as_deref().and_then(|n| self.normalise(n)),
                base_digest: digest,
                confidence: i32::from(Evidence::Annotation.confidence()),
                detail: None,
                recorded_at: now,
            });
        }
        if let Some(df) = &opts.dockerfile {
            let parsed = Dockerfile::parse(&df.text, &df.build_args)
                .map_err(|e| InventoryError::Invalid(format!("{}: {e}", df.path)))?;
            if let Some(base) = parsed
                .final_base(df.target.as_deref())
                .map_err(|e| InventoryError::Invalid(format!("{}: {e}", df.path)))?
            {
                let base_ref = self.normalise(base);
                let base_digest = match &base_ref {
                    Some(b) => self
                        .store
                        .resolve_ref(b)
                        .await?
                        .into_iter()
                        .find(|x| x.platform == platform)
                        .map(|x| x.digest),
                    None => None,
                };
                edges.push(LineageEdge {
                    evidence: Evidence::Dockerfile.as_str().into(),
                    base_reference: base_ref.or_else(|| Some(base.to_string())),
                    base_digest,
                    confidence: i32::from(Evidence::Dockerfile.confidence()),
                    detail: Some(df.path.clone()),
                    recorded_at: now,
                });
            }
        }
        let all_layers = self.store.image_layers().await?;
        let candidates: Vec<(&String, &[String])> = all_layers
            .iter()
            .filter(|(d, _)| d != &image.digest)
            .map(|(d, l)| (d, l.as_slice()))
            .collect();
        if let Some((base, n)) = longest_prefix(&diff_ids, candidates.iter().map(|(d, l)| (*d, *l)))
        {
            edges.push(self.prefix_edge(base, n, now).await?);
        }
        let record = ImageRecord {
            digest: image.digest.clone(),
            repository: tag.name(),
            platform: platform.clone(),
            config_digest: Some(image.manifest.config.digest.clone()),
            layers: diff_ids.clone(),
            annotations: image.manifest.annotations.clone(),
            os_id: inv.os.as_ref().map(|o| o.id.clone()),
            os_version: inv.os.as_ref().and_then(|o| o.version_id.clone()),
            os_ecosystem: inv.os.as_ref().and_then(|o| o.osv_ecosystem()),
            source: "scan".into(),
            scanned_at: now,
        };
        let refs: Vec<ImageRef> = tag
            .tag()
            .map(|_| ImageRef {
                reference: tag
                    .with_tag(tag.tag().unwrap_or_default())
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
                platform: platform.clone(),
                digest: image.digest.clone(),
                index_digest,
                updated_at: now,
            })
            .into_iter()
            .collect();
        if !edges
            .iter()
            .any(|e| e.evidence == Evidence::LayerPrefix.as_str())
        {
            // A stale prefix edge from an earlier scan must not outlive its evidence.
            self.store
                .delete_edge(&image.digest, Evidence::LayerPrefix.as_str())
                .await?;
        }
        self.store
            .save_image(&record, &packages, &edges, &refs)
            .await?;
        self.adopt_children(&image.digest, &diff_ids, &all_layers, now)
            .await?;
        edges.sort_by_key(|e| -e.confidence);
        let report = ScanReport {
            reference: tag.to_string(),
            platform,
            digest: image.digest.clone(),
            os: record.os_ecosystem.clone().or(record.os_id.clone()),
            packages: packages.len(),
            layers_read: read,
            layers_cached: blobs.len() - read,
            base: edges,
            warnings: inv.warnings.clone(),
        };
        Ok((report, inv))
    }

    /// Images scanned before their base: now that `digest` is known, any
    /// image whose layers start with its layers (and with no longer known
    /// prefix) gets a layer-prefix edge to it.
    async fn adopt_children(
        &self,
        digest: &str,
        layers: &[String],
        all: &[(String, Vec<String>)],
        now: chrono::DateTime<Utc>,
    ) -> Result<(), InventoryError> {
        if layers.is_empty() {
            return Ok(());
        }
        let me = digest.to_string();
        for (child, child_layers) in all {
            if child == digest
                || child_layers.len() <= layers.len()
                || child_layers[..layers.len()] != *layers
            {
                continue;
            }
            let candidates = all
                .iter()
                .filter(|(d, _)| d != child && d != digest)
                .map(|(d, l)| (d, l.as_slice()))
                .chain(std::iter::once((&me, layers)))
                .collect::<Vec<_>>();
            let best = longest_prefix(child_layers, candidates.iter().map(|(d, l)| (*d, *l)));
            if let Some((best, n)) = best
                && best == digest
            {
                let edge = self.prefix_edge(best, n, now).await?;
                let Some(img) = self.store.image(child).await? else {
                    continue;
                };
                self.store
                    .save_image(&img, &self.store.packages_of(child).await?, &[edge], &[])
                    .await?;
            }
        }
        Ok(())
    }

    async fn prefix_edge(
        &self,
        base: &str,
        n: usize,
        now: chrono::DateTime<Utc>,
    ) -> Result<LineageEdge, InventoryError> {
        let base_ref = self
            .store
            .refs_of(base)
            .await?
            .into_iter()
            .next()
            .map(|r| r.reference);
        Ok(LineageEdge {
            evidence: Evidence::LayerPrefix.as_str().into(),
            base_reference: base_ref,
            base_digest: Some(base.to_string()),
            confidence: i32::from(Evidence::LayerPrefix.confidence()),
            detail: Some(format!("first {n} layer(s) equal")),
            recorded_at: now,
        })
    }

    fn normalise(&self, name: &str) -> Option<String> {
        Reference::parse_with(name, &self.defaults).ok().map(|r| {
            // A base pinned by digest is still known by its tag for lineage.
            match (r.tag(), r.digest()) {
                (Some(_), Some(_)) => {
                    Reference::from_parts(r.registry(), r.repository(), r.tag(), None)
                        .map(|x| x.to_string())
                        .unwrap_or_else(|_| r.to_string())
                }
                _ => r.to_string(),
            }
        })
    }

    /// Reads a layer, or waits for the read already under way in this process.
    async fn read_layer_once(
        &self,
        pinned: &Reference,
        blob: &str,
    ) -> Result<LayerFindings, InventoryError> {
        let cell = self
            .inflight
            .lock()
            .expect("inflight lock")
            .entry(blob.to_string())
            .or_default()
            .clone();
        let result = cell
            .get_or_try_init(|| self.read_layer(pinned, blob))
            .await
            .cloned();
        self.inflight.lock().expect("inflight lock").remove(blob);
        result
    }

    /// Streams one layer blob through the sbom reader, checks its digest,
    /// and keeps the findings.
    async fn read_layer(
        &self,
        pinned: &Reference,
        blob: &str,
    ) -> Result<LayerFindings, InventoryError> {
        let reader = self.client.blob_reader(pinned, blob).await?;
        let bridge = tokio_util::io::SyncIoBridge::new(reader);
        let limits = self.limits;
        let name = blob.to_string();
        let image = pinned.to_string();
        let findings =
            tokio::task::spawn_blocking(move || -> Result<LayerFindings, InventoryError> {
                let mut check = DigestCheck::new(bridge);
                let findings = freshen_sbom::scan_layer(&name, &mut check, &limits)
                    .map_err(|e| InventoryError::Layer(format!("{image}: {e}")))?;
                let ok = check
                    .verify(&name)
                    .map_err(|e| InventoryError::Layer(format!("{image}: layer {name}: {e}")))?;
                if !ok {
                    return Err(InventoryError::Layer(format!(
                        "{image}: layer {name}: the content does not hash to its digest"
                    )));
                }
                Ok(findings)
            })
            .await
            .map_err(|e| InventoryError::Layer(format!("layer reader stopped: {e}")))??;
        let json = serde_json::to_string(&findings).expect("findings serialise");
        self.store
            .put_layer_findings(blob, &json, Utc::now())
            .await?;
        Ok(findings)
    }
}
