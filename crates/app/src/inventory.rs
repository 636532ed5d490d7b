//! The "know" actions: scanning images into the inventory (many at once,
//! or a whole registry), SBOM documents, and the inventory's questions.

use std::collections::BTreeMap;
use std::path::PathBuf;

use freshen_inventory::{
    ChildView, DockerfileInput, ImageView, PackageVersion, Registration, ScanOptions, ScanReport,
};
use freshen_reference::{Platform, Reference};
use freshen_registry::Client;
use freshen_store::{ImageFilter, ImageSummary, PackageRecord, Page};
use futures::StreamExt as _;

use crate::{App, AppError, parse_platforms};

/// What `scan` is asked.
#[derive(Debug, Clone, Default)]
pub struct ScanRequest {
    /// Image references (tags or digests).
    pub references: Vec<String>,
    /// Only these platforms; every platform of the tag when empty.
    pub platforms: Vec<String>,
    /// The Dockerfile the images were built from (lineage evidence).
    pub dockerfile: Option<PathBuf>,
    /// `NAME=VALUE` values for the Dockerfile's ARGs.
    pub build_args: Vec<String>,
    /// The Dockerfile stage that was built.
    pub target: Option<String>,
    /// Scan every repository and tag of this registry instead.
    pub registry: Option<String>,
    /// With `registry`: only repositories whose names start with this.
    pub repo_prefix: Option<String>,
    /// Scan every tag the inventory holds again instead (a nightly
    /// rescan: tags that moved are read anew).
    pub inventory: bool,
    /// Images scanned at once.
    pub concurrency: usize,
}

/// Told how a scan of many images goes (the CLI's progress bar).
pub trait ScanObserver: Sync {
    /// `total` images are about to be scanned.
    fn started(&self, _total: usize) {}
    /// One image is done (scanned or failed).
    fn scanned(&self, _reference: &Reference) {}
}

/// An observer that wants to know nothing.
impl ScanObserver for () {}

/// The outcome of a scan of many images.
#[derive(Debug)]
pub struct Scanned {
    /// What was recorded, by reference and platform.
    pub reports: Vec<ScanReport>,
    /// The images that failed: the reference and why.
    pub errors: Vec<(String, String)>,
    /// The `vulnerability` events judging the inventory again made.
    pub events: Vec<freshen_store::ChangeEvent>,
}

/// The SBOM formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SbomFormat {
    /// CycloneDX JSON.
    Cyclonedx,
    /// SPDX JSON.
    Spdx,
}

impl App {
    /// Reads images' layers into the inventory, `concurrency` at a time:
    /// the references given, or every tag of a registry. Failures are
    /// collected per image, not returned as an error.
    pub async fn scan(
        &self,
        request: ScanRequest,
        observer: &dyn ScanObserver,
    ) -> Result<Scanned, AppError> {
        let store = self.store().await?;
        let opts = ScanOptions {
            platforms: parse_platforms(&request.platforms)?,
            dockerfile: request
                .dockerfile
                .map(|p| read_dockerfile(&p, &request.build_args, request.target))
                .transpose()?,
        };
        let scanner = self.scanner(store);
        let refs = match (request.registry, request.inventory) {
            (Some(_), true) => {
                return Err(AppError::Refused(
                    "give --registry HOST --all or --inventory, not both".into(),
                ));
            }
            (None, true) if !request.references.is_empty() => {
                return Err(AppError::Refused(
                    "give references or --inventory, not both".into(),
                ));
            }
            (None, true) => inventory_refs(store).await?,
            (Some(host), false) => {
                if !request.references.is_empty() {
                    return Err(AppError::Refused(
                        "give references or --registry HOST --all, not both".into(),
                    ));
                }
                list_registry(&self.client, &host, request.repo_prefix.as_deref()).await?
            }
            (None, false) if request.references.is_empty() => {
                return Err(AppError::Refused(
                    "nothing to scan: name references, --inventory, or --registry HOST --all"
                        .into(),
                ));
            }
            (None, false) => request
                .references
                .iter()
                .map(|s| self.reference(s))
                .collect::<Result<_, _>>()?,
        };
        let mut scanned = scan_all(&scanner, refs, &opts, request.concurrency, observer).await;
        // What the images hold may have changed what their policies say.
        scanned.events = self.rejudge().await?;
        Ok(scanned)
    }

    /// An image's packages as an SBOM document, scanning it first (the
    /// inventory keeps what it read). `platform` defaults to linux/amd64.
    pub async fn sbom(
        &self,
        reference: &str,
        format: SbomFormat,
        platform: Option<&str>,
    ) -> Result<serde_json::Value, AppError> {
        let store = self.store().await?;
        let r = self.reference(reference)?;
        let platform = Platform::parse(platform.unwrap_or("linux/amd64"))?;
        let opts = ScanOptions {
            platforms: vec![platform],
            dockerfile: None,
        };
        let (report, inv) = self
            .scanner(store)
            .scan_sbom(&r, &opts)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| AppError::Refused("the image has no such platform".into()))?;
        let subject = format!("{}@{}", r.name(), report.digest);
        Ok(match format {
            SbomFormat::Cyclonedx => freshen_sbom::cyclonedx(&subject, &inv),
            SbomFormat::Spdx => {
                freshen_sbom::spdx(&subject, &inv, &chrono::Utc::now().to_rfc3339())
            }
        })
    }

    /// The inventory's tags (one row per platform), sorted by reference:
    /// one page of those `filter` keeps, and how many it keeps in all.
    pub async fn images(&self, filter: &ImageFilter, page: Page) -> Result<ImagePage, AppError> {
        if !(1..=MAX_PAGE).contains(&page.limit) {
            return Err(AppError::Refused(format!(
                "limit {}: a page holds 1 to {MAX_PAGE} rows",
                page.limit
            )));
        }
        if page.offset < 0 {
            return Err(AppError::Refused(format!(
                "offset {}: must be 0 or more",
                page.offset
            )));
        }
        let (items, total) = self.store().await?.list_images(filter, page).await?;
        let next =
            (page.offset.saturating_add(items.len() as i64) < total).then(|| page.next().offset);
        Ok(ImagePage {
            items,
            total,
            offset: page.offset,
            next,
        })
    }

    /// An image as the inventory knows it.
    pub async fn image(&self, reference: &str) -> Result<ImageView, AppError> {
        let q = self.queries().await?;
        Ok(q.show(&q.parse(reference)?).await?)
    }

    /// The images built on `reference`; with `recursive`, every
    /// descendant with its depth.
    pub async fn children(
        &self,
        reference: &str,
        recursive: bool,
    ) -> Result<Vec<ChildView>, AppError> {
        let q = self.queries().await?;
        Ok(q.children(&q.parse(reference)?, recursive).await?)
    }

    /// The packages an image holds, per platform.
    pub async fn image_packages(
        &self,
        reference: &str,
    ) -> Result<BTreeMap<String, Vec<PackageRecord>>, AppError> {
        let q = self.queries().await?;
        Ok(q.packages_of(&q.parse(reference)?).await?)
    }

    /// Registers `reference` by hand (an image freshen cannot scan): its
    /// digest, platform and bases as `registration` says. With `replace`,
    /// an existing entry is replaced; without, a known tag is a conflict.
    pub async fn register_image(
        &self,
        reference: &str,
        registration: &Registration,
        replace: bool,
    ) -> Result<ImageView, AppError> {
        let q = self.queries().await?;
        Ok(q.register(&q.parse(reference)?, registration, replace)
            .await?)
    }

    /// Forgets `reference` (the tag, not the images it pointed at); an
    /// unknown tag is an error.
    pub async fn delete_image(&self, reference: &str) -> Result<(), AppError> {
        let q = self.queries().await?;
        Ok(q.delete(&q.parse(reference)?).await?)
    }

    /// How many images (manifests) the inventory holds.
    pub async fn image_count(&self) -> Result<usize, AppError> {
        Ok(self.queries().await?.image_count().await?)
    }

    /// Which images hold a package (by package or source package name).
    pub async fn packages(
        &self,
        name: &str,
        ecosystem: Option<&str>,
        version: Option<&str>,
    ) -> Result<Vec<PackageVersion>, AppError> {
        let q = self.queries().await?;
        Ok(q.package(name, ecosystem, version).await?)
    }
}

fn read_dockerfile(
    path: &std::path::Path,
    build_args: &[String],
    target: Option<String>,
) -> Result<DockerfileInput, AppError> {
    let text = std::fs::read_to_string(path).map_err(|source| AppError::Dockerfile {
        path: path.display().to_string(),
        source,
    })?;
    let mut args = BTreeMap::new();
    for a in build_args {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| AppError::BuildArg(a.clone()))?;
        args.insert(k.to_string(), v.to_string());
    }
    Ok(DockerfileInput {
        path: path.display().to_string(),
        text,
        build_args: args,
        target,
    })
}

/// Every tag of every repository of a registry (optionally under a prefix).
async fn list_registry(
    client: &Client,
    host: &str,
    prefix: Option<&str>,
) -> Result<Vec<Reference>, AppError> {
    let repos = client.catalog(host, 1000).await?;
    let mut refs = Vec::new();
    for repo in repos
        .iter()
        .filter(|r| prefix.is_none_or(|p| r.starts_with(p)))
    {
        let base = Reference::from_parts(host, repo, Some("latest"), None)?;
        for tag in client.list_tags(&base, 1000).await? {
            refs.push(base.with_tag(&tag)?);
        }
    }
    Ok(refs)
}

impl App {
    /// The daemon's job that scans every inventory tag again on
    /// `rescan.schedule`, then judges the inventory again.
    pub(crate) fn rescan_job(&self, store: &freshen_store::Store) -> Option<freshen_watch::Job> {
        let (schedule, concurrency) = self.loaded.rescan.clone()?;
        let scanner = self.scanner(store);
        let vulns = freshen_judge::Vulns::new(store.clone(), self.loaded.defaults.clone());
        let policies = std::sync::Arc::new(self.loaded.policies.clone());
        let (store, wake) = (store.clone(), self.wake.clone());
        let run: freshen_watch::JobFn = std::sync::Arc::new(move || {
            let (scanner, vulns, store) = (scanner.clone(), vulns.clone(), store.clone());
            let (policies, wake) = (policies.clone(), wake.clone());
            Box::pin(async move {
                let refs = match inventory_refs(&store).await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(error = %e, "rescan: cannot list the inventory");
                        return;
                    }
                };
                let opts = ScanOptions::default();
                let scanned = scan_all(&scanner, refs, &opts, concurrency, &()).await;
                for (r, e) in &scanned.errors {
                    tracing::warn!(reference = %r, error = %e, "rescan: image not scanned");
                }
                tracing::info!(
                    images = scanned.reports.len(),
                    failed = scanned.errors.len(),
                    "inventory rescanned"
                );
                match vulns.rejudge(&policies).await {
                    Ok(events) if !events.is_empty() => {
                        tracing::info!(events = events.len(), "the rescan made images act");
                        wake.notify_one();
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "rescan: judging the inventory failed"),
                }
            })
        });
        Some(freshen_watch::Job::new("rescan", schedule, run))
    }
}

/// Every tag the inventory holds, once each.
pub(crate) async fn inventory_refs(
    store: &freshen_store::Store,
) -> Result<Vec<Reference>, AppError> {
    Ok(store
        .tags()
        .await?
        .iter()
        .map(|n| Reference::parse(n))
        .collect::<Result<_, _>>()?)
}

/// Scans `refs`, `concurrency` at a time; failures are collected per image.
pub(crate) async fn scan_all(
    scanner: &freshen_inventory::Scanner,
    refs: Vec<Reference>,
    opts: &ScanOptions,
    concurrency: usize,
    observer: &dyn ScanObserver,
) -> Scanned {
    observer.started(refs.len());
    let results: Vec<(Reference, Result<Vec<ScanReport>, _>)> = futures::stream::iter(refs)
        .map(|r| async move {
            let res = scanner.scan(&r, opts).await;
            observer.scanned(&r);
            (r, res)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    for (r, res) in results {
        match res {
            Ok(mut v) => reports.append(&mut v),
            Err(e) => errors.push((r.to_string(), e.to_string())),
        }
    }
    reports.sort_by(|a, b| (&a.reference, &a.platform).cmp(&(&b.reference, &b.platform)));
    Scanned {
        reports,
        errors,
        events: Vec::new(),
    }
}

/// The most rows one page of a list may hold.
pub const MAX_PAGE: i64 = 1000;

/// One page of `App::images`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImagePage {
    /// The rows of this page.
    pub items: Vec<ImageSummary>,
    /// How many rows the filter keeps in all.
    pub total: i64,
    /// Rows skipped before this page.
    pub offset: i64,
    /// The offset of the next page, when there is one.
    pub next: Option<i64>,
}
