//! The inventory: images, their tags, packages and lineage edges, and the
//! per-layer findings cache that makes each layer be read once ever.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::sql::{from_ms, query_err, to_ms, with_pool, with_tx};
use crate::{Store, StoreError};

/// One image manifest: what it is and where it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The platform manifest's digest.
    pub digest: String,
    /// `registry/repository` it was read from.
    pub repository: String,
    /// `os/arch[/variant]`.
    pub platform: String,
    /// The image config blob's digest.
    pub config_digest: Option<String>,
    /// Layer diff_ids, base first.
    pub layers: Vec<String>,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
    /// os-release `ID` (`debian`, `alpine`, ...).
    pub os_id: Option<String>,
    /// os-release `VERSION_ID`.
    pub os_version: Option<String>,
    /// OSV ecosystem of the distribution (`Debian:12`).
    pub os_ecosystem: Option<String>,
    /// `scan` or `manual`.
    pub source: String,
    /// When it was scanned or registered.
    pub scanned_at: DateTime<Utc>,
}

/// A package held by an image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageRecord {
    /// `deb`, `apk`, `rpm`, `pypi`, `npm`, `golang`, `cargo`.
    pub ecosystem: String,
    /// Package name.
    pub name: String,
    /// Package version, in its ecosystem's syntax.
    pub version: String,
    /// Architecture, where the ecosystem has one.
    pub arch: Option<String>,
    /// The source package (dpkg `Source`, apk origin, rpm source rpm).
    pub source_name: Option<String>,
    /// The source package's version.
    pub source_version: Option<String>,
    /// Package URL.
    pub purl: String,
    /// Where it was found: a package database or a binary.
    pub location: String,
    /// The layer that introduced it.
    pub layer: Option<String>,
}

/// An image -> base edge and how it was learned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineageEdge {
    /// `manual`, `annotation`, `dockerfile` or `layer-prefix`.
    pub evidence: String,
    /// The base as `registry/repository:tag`, when known.
    pub base_reference: Option<String>,
    /// The base manifest the image was built on, when known.
    pub base_digest: Option<String>,
    /// 0 to 100.
    pub confidence: i32,
    /// Evidence detail: a Dockerfile path and line, a prefix length.
    pub detail: Option<String>,
    /// When the edge was recorded.
    pub recorded_at: DateTime<Utc>,
}

/// A tag pointing at an image, per platform.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    /// `registry/repository:tag`.
    pub reference: String,
    /// `os/arch[/variant]`.
    pub platform: String,
    /// The platform manifest's digest.
    pub digest: String,
    /// The tag's own digest when it points at an index.
    pub index_digest: Option<String>,
    /// When the tag was last seen pointing here.
    pub updated_at: DateTime<Utc>,
}

/// A package and the image that holds it, for "who has package X".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageHolder {
    /// The package.
    pub package: PackageRecord,
    /// The image's manifest digest.
    pub image_digest: String,
    /// `os/arch[/variant]`.
    pub platform: String,
    /// Tags pointing at that image.
    pub references: Vec<String>,
}

/// A child of some base: the child image and the edge that says so.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildEdge {
    /// The image's manifest digest.
    pub image_digest: String,
    /// `os/arch[/variant]`.
    pub platform: String,
    /// Tags pointing at the image.
    pub references: Vec<String>,
    /// The strongest edge naming the base.
    pub edge: LineageEdge,
}

#[derive(sqlx::FromRow)]
struct ImageRow {
    digest: String,
    repository: String,
    platform: String,
    config_digest: Option<String>,
    layers: String,
    annotations: String,
    os_id: Option<String>,
    os_version: Option<String>,
    os_ecosystem: Option<String>,
    source: String,
    scanned_at: i64,
}

impl ImageRow {
    fn into_record(self) -> Result<ImageRecord, StoreError> {
        let corrupt = |what: &'static str| {
            move |e: serde_json::Error| StoreError::Corrupt {
                context: what,
                detail: e.to_string(),
            }
        };
        Ok(ImageRecord {
            layers: serde_json::from_str(&self.layers).map_err(corrupt("images.layers"))?,
            annotations: serde_json::from_str(&self.annotations)
                .map_err(corrupt("images.annotations"))?,
            scanned_at: from_ms(self.scanned_at, "images.scanned_at")?,
            digest: self.digest,
            repository: self.repository,
            platform: self.platform,
            config_digest: self.config_digest,
            os_id: self.os_id,
            os_version: self.os_version,
            os_ecosystem: self.os_ecosystem,
            source: self.source,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct PackageRow {
    ecosystem: String,
    name: String,
    version: String,
    arch: Option<String>,
    source_name: Option<String>,
    source_version: Option<String>,
    purl: String,
    location: String,
    layer: Option<String>,
}

impl From<PackageRow> for PackageRecord {
    fn from(r: PackageRow) -> Self {
        PackageRecord {
            ecosystem: r.ecosystem,
            name: r.name,
            version: r.version,
            arch: r.arch,
            source_name: r.source_name,
            source_version: r.source_version,
            purl: r.purl,
            location: r.location,
            layer: r.layer,
        }
    }
}

#[derive(sqlx::FromRow)]
struct EdgeRow {
    image_digest: String,
    evidence: String,
    base_reference: Option<String>,
    base_digest: Option<String>,
    confidence: i32,
    detail: Option<String>,
    recorded_at: i64,
}

impl EdgeRow {
    fn edge(&self) -> Result<LineageEdge, StoreError> {
        Ok(LineageEdge {
            evidence: self.evidence.clone(),
            base_reference: self.base_reference.clone(),
            base_digest: self.base_digest.clone(),
            confidence: self.confidence,
            detail: self.detail.clone(),
            recorded_at: from_ms(self.recorded_at, "lineage.recorded_at")?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct RefRow {
    reference: String,
    platform: String,
    digest: String,
    index_digest: Option<String>,
    updated_at: i64,
}

impl RefRow {
    fn into_ref(self) -> Result<ImageRef, StoreError> {
        Ok(ImageRef {
            updated_at: from_ms(self.updated_at, "image_refs.updated_at")?,
            reference: self.reference,
            platform: self.platform,
            digest: self.digest,
            index_digest: self.index_digest,
        })
    }
}

// Column lists as macros: sqlx only takes SQL it can see is literal.
macro_rules! image_columns {
    () => {
        "digest, repository, platform, config_digest, layers, annotations, \
         os_id, os_version, os_ecosystem, source, scanned_at"
    };
}
macro_rules! ref_select {
    () => {
        "SELECT reference, platform, digest, index_digest, updated_at FROM image_refs WHERE "
    };
}
macro_rules! package_columns {
    () => {
        "ecosystem, name, version, arch, source_name, source_version, purl, location, layer"
    };
}

impl Store {
    /// Saves an image with its packages and lineage edges, and points `refs`
    /// at it, in one transaction. Its packages are replaced; its edges are
    /// replaced for the evidence kinds given (so a scan keeps a manual edge).
    pub async fn save_image(
        &self,
        image: &ImageRecord,
        packages: &[PackageRecord],
        edges: &[LineageEdge],
        refs: &[ImageRef],
    ) -> Result<(), StoreError> {
        const CTX: &str = "save an image";
        let layers = serde_json::to_string(&image.layers).expect("strings serialise");
        let annotations = serde_json::to_string(&image.annotations).expect("strings serialise");
        let mut tx = self.db.begin_write(CTX).await?;
        let upsert = concat!(
            "INSERT INTO images (",
            image_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (digest) DO UPDATE SET repository = excluded.repository, platform = excluded.platform, \
             config_digest = excluded.config_digest, layers = excluded.layers, annotations = excluded.annotations, \
             os_id = excluded.os_id, os_version = excluded.os_version, os_ecosystem = excluded.os_ecosystem, \
             source = excluded.source, scanned_at = excluded.scanned_at"
        );
        with_tx!(&mut tx, conn => sqlx::query(upsert)
            .bind(&image.digest)
            .bind(&image.repository)
            .bind(&image.platform)
            .bind(&image.config_digest)
            .bind(&layers)
            .bind(&annotations)
            .bind(&image.os_id)
            .bind(&image.os_version)
            .bind(&image.os_ecosystem)
            .bind(&image.source)
            .bind(to_ms(image.scanned_at))
            .execute(conn)
            .await
            .map(|r| r.rows_affected()))
        .map_err(query_err(CTX))?;
        with_tx!(&mut tx, conn => sqlx::query("DELETE FROM image_packages WHERE image_digest = $1")
            .bind(&image.digest)
            .execute(conn)
            .await
            .map(|r| r.rows_affected()))
        .map_err(query_err(CTX))?;
        let insert_pkg = concat!(
            "INSERT INTO image_packages (image_digest, ",
            package_columns!(),
            ") \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        );
        for p in packages {
            with_tx!(&mut tx, conn => sqlx::query(insert_pkg)
                .bind(&image.digest)
                .bind(&p.ecosystem)
                .bind(&p.name)
                .bind(&p.version)
                .bind(&p.arch)
                .bind(&p.source_name)
                .bind(&p.source_version)
                .bind(&p.purl)
                .bind(&p.location)
                .bind(&p.layer)
                .execute(conn)
                .await
                .map(|r| r.rows_affected()))
            .map_err(query_err(CTX))?;
        }
        for e in edges {
            with_tx!(&mut tx, conn => sqlx::query(
                "INSERT INTO lineage (image_digest, evidence, base_reference, base_digest, confidence, detail, recorded_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (image_digest, evidence) DO UPDATE SET base_reference = excluded.base_reference, \
                 base_digest = excluded.base_digest, confidence = excluded.confidence, detail = excluded.detail, \
                 recorded_at = excluded.recorded_at")
                .bind(&image.digest)
                .bind(&e.evidence)
                .bind(&e.base_reference)
                .bind(&e.base_digest)
                .bind(e.confidence)
                .bind(&e.detail)
                .bind(to_ms(e.recorded_at))
                .execute(conn)
                .await
                .map(|r| r.rows_affected()))
            .map_err(query_err(CTX))?;
        }
        for r in refs {
            upsert_ref(&mut tx, r, CTX).await?;
        }
        tx.commit(CTX).await
    }

    /// Points tags (per platform) at images the inventory holds already,
    /// in one transaction: a watched tag moving to a digest it knows needs
    /// no rescan. Refused by the database (a foreign key) for an image it
    /// doesn't hold.
    pub async fn point_refs(&self, refs: &[ImageRef]) -> Result<(), StoreError> {
        const CTX: &str = "point a tag at an image";
        if refs.is_empty() {
            return Ok(());
        }
        let mut tx = self.db.begin_write(CTX).await?;
        for r in refs {
            upsert_ref(&mut tx, r, CTX).await?;
        }
        tx.commit(CTX).await
    }

    /// Removes lineage edges of an image for one kind of evidence.
    pub async fn delete_edge(&self, digest: &str, evidence: &str) -> Result<(), StoreError> {
        with_pool!(&self.db, pool => sqlx::query("DELETE FROM lineage WHERE image_digest = $1 AND evidence = $2")
            .bind(digest)
            .bind(evidence)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(query_err("delete a lineage edge"))?;
        Ok(())
    }

    /// An image by manifest digest.
    pub async fn image(&self, digest: &str) -> Result<Option<ImageRecord>, StoreError> {
        let sql = concat!(
            "SELECT ",
            image_columns!(),
            " FROM images WHERE digest = $1"
        );
        let row: Option<ImageRow> = with_pool!(&self.db, pool => sqlx::query_as(sql)
            .bind(digest)
            .fetch_optional(pool)
            .await)
        .map_err(query_err("read an image"))?;
        row.map(ImageRow::into_record).transpose()
    }

    /// Every image's digest, reference names and layers: the candidates for
    /// layer-prefix matching.
    pub async fn image_layers(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        let rows: Vec<(String, String)> = with_pool!(&self.db, pool => sqlx::query_as(
            "SELECT digest, layers FROM images ORDER BY digest")
            .fetch_all(pool)
            .await)
        .map_err(query_err("read image layers"))?;
        rows.into_iter()
            .map(|(d, l)| {
                serde_json::from_str(&l)
                    .map(|layers| (d, layers))
                    .map_err(|e| StoreError::Corrupt {
                        context: "images.layers",
                        detail: e.to_string(),
                    })
            })
            .collect()
    }

    /// The tags (per platform) of a reference `registry/repository:tag`.
    pub async fn resolve_ref(&self, reference: &str) -> Result<Vec<ImageRef>, StoreError> {
        let sql = concat!(ref_select!(), "reference = $1 ORDER BY platform");
        self.refs_where(sql, reference).await
    }

    /// The tags pointing at an image.
    pub async fn refs_of(&self, digest: &str) -> Result<Vec<ImageRef>, StoreError> {
        let sql = concat!(ref_select!(), "digest = $1 ORDER BY reference, platform");
        self.refs_where(sql, digest).await
    }

    async fn refs_where(&self, sql: &'static str, arg: &str) -> Result<Vec<ImageRef>, StoreError> {
        let rows: Vec<RefRow> = with_pool!(&self.db, pool => sqlx::query_as(sql)
            .bind(arg)
            .fetch_all(pool)
            .await)
        .map_err(query_err("read image tags"))?;
        rows.into_iter().map(RefRow::into_ref).collect()
    }

    /// The packages of an image, by ecosystem and name.
    pub async fn packages_of(&self, digest: &str) -> Result<Vec<PackageRecord>, StoreError> {
        let sql = concat!(
            "SELECT ",
            package_columns!(),
            " FROM image_packages WHERE image_digest = $1 ORDER BY ecosystem, name, version"
        );
        let rows: Vec<PackageRow> = with_pool!(&self.db, pool => sqlx::query_as(sql)
            .bind(digest)
            .fetch_all(pool)
            .await)
        .map_err(query_err("read an image's packages"))?;
        Ok(rows.into_iter().map(PackageRecord::from).collect())
    }

    /// The lineage edges of an image, strongest evidence first.
    pub async fn lineage_of(&self, digest: &str) -> Result<Vec<LineageEdge>, StoreError> {
        let rows: Vec<EdgeRow> = with_pool!(&self.db, pool => sqlx::query_as(
            "SELECT image_digest, evidence, base_reference, base_digest, confidence, detail, recorded_at \
             FROM lineage WHERE image_digest = $1 ORDER BY confidence DESC, evidence")
            .bind(digest)
            .fetch_all(pool)
            .await)
        .map_err(query_err("read lineage"))?;
        rows.iter().map(EdgeRow::edge).collect()
    }

    /// Every image holding a package named `name` (binary or source name),
    /// optionally of one ecosystem and version.
    pub async fn find_packages(
        &self,
        name: &str,
        ecosystem: Option<&str>,
        version: Option<&str>,
    ) -> Result<Vec<PackageHolder>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            image_digest: String,
            platform: String,
            #[sqlx(flatten)]
            package: PackageRow,
        }
        let sql = "SELECT p.image_digest, i.platform, p.ecosystem, p.name, p.version, p.arch, p.source_name, \
                   p.source_version, p.purl, p.location, p.layer \
                   FROM image_packages p JOIN images i ON i.digest = p.image_digest \
                   WHERE (p.name = $1 OR p.source_name = $1) \
                   AND ($2 = '' OR p.ecosystem = $2) AND ($3 = '' OR p.version = $3) \
                   ORDER BY p.ecosystem, p.name, p.version, p.image_digest";
        let rows: Vec<Row> = with_pool!(&self.db, pool => sqlx::query_as(sql)
            .bind(name)
            .bind(ecosystem.unwrap_or(""))
            .bind(version.unwrap_or(""))
            .fetch_all(pool)
            .await)
        .map_err(query_err("find a package"))?;
        let mut refs: HashMap<String, Vec<String>> = HashMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            if !refs.contains_key(&r.image_digest) {
                let names = self
                    .refs_of(&r.image_digest)
                    .await?
                    .into_iter()
                    .map(|x| x.reference)
                    .collect();
                refs.insert(r.image_digest.clone(), names);
            }
            out.push(PackageHolder {
                references: refs[&r.image_digest].clone(),
                package: r.package.into(),
                image_digest: r.image_digest,
                platform: r.platform,
            });
        }
        Ok(out)
    }

    /// Images whose lineage names `base_reference` or one of `base_digests`
    /// as their base; one entry per child, with its strongest edge.
    pub async fn children(
        &self,
        base_reference: Option<&str>,
        base_digests: &[String],
    ) -> Result<Vec<ChildEdge>, StoreError> {
        let mut rows: Vec<EdgeRow> = Vec::new();
        let by_ref = "SELECT image_digest, evidence, base_reference, base_digest, confidence, detail, recorded_at \
                      FROM lineage WHERE base_reference = $1";
        let by_digest = "SELECT image_digest, evidence, base_reference, base_digest, confidence, detail, recorded_at \
                         FROM lineage WHERE base_digest = $1";
        if let Some(r) = base_reference {
            let found: Vec<EdgeRow> = with_pool!(&self.db, pool => sqlx::query_as(by_ref)
                .bind(r)
                .fetch_all(pool)
                .await)
            .map_err(query_err("find children"))?;
            rows.extend(found);
        }
        for d in base_digests {
            let found: Vec<EdgeRow> = with_pool!(&self.db, pool => sqlx::query_as(by_digest)
                .bind(d)
                .fetch_all(pool)
                .await)
            .map_err(query_err("find children"))?;
            rows.extend(found);
        }
        // Strongest edge per child.
        let mut best: BTreeMap<String, EdgeRow> = BTreeMap::new();
        for r in rows {
            match best.get(&r.image_digest) {
                Some(b) if b.confidence >= r.confidence => {}
                _ => {
                    best.insert(r.image_digest.clone(), r);
                }
            }
        }
        let mut out = Vec::with_capacity(best.len());
        for (digest, row) in best {
            let Some(image) = self.image(&digest).await? else {
                continue;
            };
            let references = self
                .refs_of(&digest)
                .await?
                .into_iter()
                .map(|r| r.reference)
                .collect();
            out.push(ChildEdge {
                edge: row.edge()?,
                image_digest: digest,
                platform: image.platform,
                references,
            });
        }
        Ok(out)
    }

    /// Removes a tag; images no tag points at any more are removed with their
    /// packages and edges. Returns false when the tag was unknown.
    pub async fn delete_ref(&self, reference: &str) -> Result<bool, StoreError> {
        const CTX: &str = "delete an image";
        let mut tx = self.db.begin_write(CTX).await?;
        let deleted =
            with_tx!(&mut tx, conn => sqlx::query("DELETE FROM image_refs WHERE reference = $1")
            .bind(reference)
            .execute(conn)
            .await
            .map(|r| r.rows_affected()))
            .map_err(query_err(CTX))?;
        with_tx!(&mut tx, conn => sqlx::query(
            "DELETE FROM images WHERE NOT EXISTS (SELECT 1 FROM image_refs r WHERE r.digest = images.digest)")
            .execute(conn)
            .await
            .map(|r| r.rows_affected()))
        .map_err(query_err(CTX))?;
        tx.commit(CTX).await?;
        Ok(deleted > 0)
    }

    /// Cached findings (JSON) of the layers already read, by layer digest.
    pub async fn layer_findings(
        &self,
        digests: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        let mut out = HashMap::new();
        for d in digests {
            let row: Option<(String,)> = with_pool!(&self.db, pool => sqlx::query_as(
                "SELECT findings FROM layer_findings WHERE layer_digest = $1")
                .bind(d)
                .fetch_optional(pool)
                .await)
            .map_err(query_err("read layer findings"))?;
            if let Some((f,)) = row {
                out.insert(d.clone(), f);
            }
        }
        Ok(out)
    }

    /// Keeps what a layer holds, so no image on it reads it again.
    pub async fn put_layer_findings(
        &self,
        digest: &str,
        findings: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        with_pool!(&self.db, pool => sqlx::query(
            "INSERT INTO layer_findings (layer_digest, findings, scanned_at) VALUES ($1, $2, $3) \
             ON CONFLICT (layer_digest) DO UPDATE SET findings = excluded.findings, scanned_at = excluded.scanned_at")
            .bind(digest)
            .bind(findings)
            .bind(to_ms(at))
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(query_err("save layer findings"))?;
        Ok(())
    }
}

/// What `Store::list_images` keeps: every filter set must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageFilter {
    /// Part of the reference, any case (`alpine`, `apps/web:1`).
    pub search: Option<String>,
    /// Only images built on a digest their base tag no longer points at.
    pub outdated: bool,
    /// Only images a policy acts on now for their vulnerabilities.
    pub vulnerable: bool,
}

/// One tag on one platform in the inventory, with what a list shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSummary {
    /// `registry/repository:tag`.
    pub reference: String,
    /// `os/arch[/variant]`.
    pub platform: String,
    /// The platform manifest's digest.
    pub digest: String,
    /// os-release `ID` and `VERSION_ID`, e.g. `debian 12`.
    pub os: Option<String>,
    /// Packages found in it.
    pub packages: i64,
    /// The base of its strongest lineage edge, when known.
    pub base: Option<String>,
    /// True when it was built on a digest its base tag no longer points at.
    pub outdated: bool,
    /// True when a policy acts on its findings now.
    pub vulnerable: bool,
    /// `scan` or `manual`.
    pub source: String,
    /// When it was scanned or registered.
    pub scanned_at: DateTime<Utc>,
}

/// Whether image `r` (an `image_refs` row) was built on a digest its
/// base tag, known to the inventory, no longer points at.
macro_rules! image_outdated {
    () => {
        "EXISTS (SELECT 1 FROM lineage l WHERE l.image_digest = r.digest \
         AND l.base_reference IS NOT NULL AND l.base_digest IS NOT NULL \
         AND EXISTS (SELECT 1 FROM image_refs b WHERE b.reference = l.base_reference) \
         AND NOT EXISTS (SELECT 1 FROM image_refs b WHERE b.reference = l.base_reference AND b.digest = l.base_digest))"
    };
}

/// Whether image `r` is one a policy acts on now for its findings.
macro_rules! image_vulnerable {
    () => {
        "EXISTS (SELECT 1 FROM vulnerable_images v WHERE v.image_digest = r.digest)"
    };
}

/// The filter part of the list query, shared by the page and the count.
/// `$1`: lowered search pattern or '', `$2`: outdated only, `$3`: vulnerable only.
macro_rules! image_list_where {
    () => {
        concat!(
            " FROM image_refs r JOIN images i ON i.digest = r.digest \
             WHERE ($1 = '' OR LOWER(r.reference) LIKE $1 ESCAPE '\\') AND ($2 = FALSE OR ",
            image_outdated!(),
            ") AND ($3 = FALSE OR ",
            image_vulnerable!(),
            ")"
        )
    };
}

/// `%part%` for LIKE, lowered, with LIKE's own characters escaped.
fn like_pattern(search: Option<&str>) -> String {
    let Some(s) = search.map(str::trim).filter(|s| !s.is_empty()) else {
        return String::new();
    };
    let mut p = String::from("%");
    for c in s.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

impl Store {
    /// The inventory's tags, one row per tag and platform, sorted by
    /// reference; one page of those `filter` keeps, and how many it keeps
    /// in all.
    pub async fn list_images(
        &self,
        filter: &ImageFilter,
        page: impl Into<crate::Page>,
    ) -> Result<(Vec<ImageSummary>, i64), StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            reference: String,
            platform: String,
            digest: String,
            os_id: Option<String>,
            os_version: Option<String>,
            packages: i64,
            base: Option<String>,
            outdated: bool,
            vulnerable: bool,
            source: String,
            scanned_at: i64,
        }
        let page = page.into();
        let pattern = like_pattern(filter.search.as_deref());
        let sql = concat!(
            "SELECT r.reference, r.platform, r.digest, i.os_id, i.os_version, i.source, i.scanned_at, \
             (SELECT COUNT(*) FROM image_packages p WHERE p.image_digest = r.digest) AS packages, \
             (SELECT l.base_reference FROM lineage l WHERE l.image_digest = r.digest \
              ORDER BY l.confidence DESC, l.evidence LIMIT 1) AS base, \
             ",
            image_outdated!(),
            " AS outdated, ",
            image_vulnerable!(),
            " AS vulnerable",
            image_list_where!(),
            " ORDER BY r.reference, r.platform LIMIT $4 OFFSET $5"
        );
        let rows: Vec<Row> = with_pool!(&self.db, pool => sqlx::query_as(sql)
            .bind(&pattern)
            .bind(filter.outdated)
            .bind(filter.vulnerable)
            .bind(page.sql_limit())
            .bind(page.sql_offset())
            .fetch_all(pool)
            .await)
        .map_err(query_err("list images"))?;
        let total: i64 = with_pool!(&self.db, pool => sqlx::query_scalar(
            concat!("SELECT COUNT(*)", image_list_where!()))
            .bind(&pattern)
            .bind(filter.outdated)
            .bind(filter.vulnerable)
            .fetch_one(pool)
            .await)
        .map_err(query_err("count images"))?;
        let items = rows
            .into_iter()
            .map(|r| {
                Ok(ImageSummary {
                    os: match (r.os_id, r.os_version) {
                        (Some(id), Some(v)) => Some(format!("{id} {v}")),
                        (id, _) => id,
                    },
                    reference: r.reference,
                    platform: r.platform,
                    digest: r.digest,
                    packages: r.packages,
                    base: r.base,
                    outdated: r.outdated,
                    vulnerable: r.vulnerable,
                    source: r.source,
                    scanned_at: from_ms(r.scanned_at, "images.scanned_at")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((items, total))
    }

    /// Every tag the inventory holds, once each, sorted.
    pub async fn tags(&self) -> Result<Vec<String>, StoreError> {
        with_pool!(&self.db, pool => sqlx::query_scalar(
            "SELECT DISTINCT reference FROM image_refs ORDER BY reference")
            .fetch_all(pool)
            .await)
        .map_err(query_err("read the inventory's tags"))
    }

    /// Every tag in the inventory, per platform, by reference.
    pub async fn all_refs(&self) -> Result<Vec<ImageRef>, StoreError> {
        let rows: Vec<RefRow> = with_pool!(&self.db, pool => sqlx::query_as(
            "SELECT reference, platform, digest, index_digest, updated_at FROM image_refs ORDER BY reference, platform")
            .fetch_all(pool)
            .await)
        .map_err(query_err("read image tags"))?;
        rows.into_iter().map(RefRow::into_ref).collect()
    }
}

/// Points `r.reference` (on `r.platform`) at `r.digest`, inside a write
/// transaction.
async fn upsert_ref(
    tx: &mut crate::sql::Tx,
    r: &ImageRef,
    context: &'static str,
) -> Result<(), StoreError> {
    with_tx!(tx, conn => sqlx::query(
        "INSERT INTO image_refs (reference, platform, digest, index_digest, updated_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (reference, platform) DO UPDATE SET \
         digest = excluded.digest, index_digest = excluded.index_digest, updated_at = excluded.updated_at")
        .bind(&r.reference)
        .bind(&r.platform)
        .bind(&r.digest)
        .bind(&r.index_digest)
        .bind(to_ms(r.updated_at))
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))
    .map_err(query_err(context))?;
    Ok(())
}
