//! Vulnerability feed archives: the validators of the copy last imported
//! (for conditional requests) and each sync's outcome.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::sql::{from_ms, query_err, to_ms, with_pool};
use crate::{Store, StoreError};

/// One archive of a feed as the store knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FeedArchive {
    /// The archive's URL (or local path).
    pub source: String,
    /// The feed it belongs to (its name in the config).
    pub feed: String,
    /// `ETag` of the copy last imported.
    pub etag: Option<String>,
    /// `Last-Modified` of the copy last imported.
    pub last_modified: Option<String>,
    /// The import that stored its data last (the data snapshot).
    pub import_id: Option<i64>,
    /// When it was last asked for.
    pub checked_at: DateTime<Utc>,
    /// When a new copy was last imported.
    pub changed_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed; `None` when it succeeded.
    pub error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Row {
    source: String,
    feed: String,
    etag: Option<String>,
    last_modified: Option<String>,
    import_id: Option<i64>,
    checked_at: i64,
    changed_at: Option<i64>,
    error: Option<String>,
}

impl Row {
    fn into_archive(self) -> Result<FeedArchive, StoreError> {
        Ok(FeedArchive {
            checked_at: from_ms(self.checked_at, "feed_archives.checked_at")?,
            changed_at: self
                .changed_at
                .map(|t| from_ms(t, "feed_archives.changed_at"))
                .transpose()?,
            source: self.source,
            feed: self.feed,
            etag: self.etag,
            last_modified: self.last_modified,
            import_id: self.import_id,
            error: self.error,
        })
    }
}

impl Store {
    /// The stored state of archive `source`, if it was ever asked for.
    pub async fn feed_archive(&self, source: &str) -> Result<Option<FeedArchive>, StoreError> {
        let row: Option<Row> = with_pool!(&self.db, pool => sqlx::query_as(
            "SELECT source, feed, etag, last_modified, import_id, checked_at, changed_at, error \
             FROM feed_archives WHERE source = $1")
            .bind(source)
            .fetch_optional(pool)
            .await)
        .map_err(query_err("read a feed archive"))?;
        row.map(Row::into_archive).transpose()
    }

    /// Every archive of every feed, by feed then source.
    pub async fn feed_archives(&self) -> Result<Vec<FeedArchive>, StoreError> {
        let rows: Vec<Row> = with_pool!(&self.db, pool => sqlx::query_as(
            "SELECT source, feed, etag, last_modified, import_id, checked_at, changed_at, error \
             FROM feed_archives ORDER BY feed, source")
            .fetch_all(pool)
            .await)
        .map_err(query_err("read the feed archives"))?;
        rows.into_iter().map(Row::into_archive).collect()
    }

    /// Records a new copy of `source` imported as `import_id`, with the
    /// validators it came with; clears any earlier error.
    pub async fn feed_imported(
        &self,
        feed: &str,
        source: &str,
        etag: Option<&str>,
        last_modified: Option<&str>,
        import_id: i64,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        with_pool!(&self.db, pool => sqlx::query(
            "INSERT INTO feed_archives (source, feed, etag, last_modified, import_id, checked_at, changed_at, error) \
             VALUES ($1, $2, $3, $4, $5, $6, $6, NULL) \
             ON CONFLICT (source) DO UPDATE SET feed = excluded.feed, etag = excluded.etag, \
             last_modified = excluded.last_modified, import_id = excluded.import_id, \
             checked_at = excluded.checked_at, changed_at = excluded.changed_at, error = NULL")
            .bind(source)
            .bind(feed)
            .bind(etag)
            .bind(last_modified)
            .bind(import_id)
            .bind(to_ms(at))
            .execute(pool)
            .await
            .map(|x| x.rows_affected()))
        .map_err(query_err("record a feed import"))?;
        Ok(())
    }

    /// Records that `source` was asked for at `at` and was either
    /// unchanged (`error` `None`) or failed with `error`. The validators
    /// and data of the last good copy stay as they are.
    pub async fn feed_checked(
        &self,
        feed: &str,
        source: &str,
        error: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        with_pool!(&self.db, pool => sqlx::query(
            "INSERT INTO feed_archives (source, feed, checked_at, error) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (source) DO UPDATE SET feed = excluded.feed, \
             checked_at = excluded.checked_at, error = excluded.error")
            .bind(source)
            .bind(feed)
            .bind(to_ms(at))
            .bind(error)
            .execute(pool)
            .await
            .map(|x| x.rows_affected()))
        .map_err(query_err("record a feed check"))?;
        Ok(())
    }

    /// The ecosystems the inventory holds: each image's distribution
    /// (`Debian:12`) and each package type (`deb`, `npm`, …), sorted.
    pub async fn inventory_ecosystems(&self) -> Result<InventoryEcosystems, StoreError> {
        let os: Vec<String> = with_pool!(&self.db, pool => sqlx::query_scalar(
            "SELECT DISTINCT os_ecosystem FROM images WHERE os_ecosystem IS NOT NULL ORDER BY os_ecosystem")
            .fetch_all(pool)
            .await)
        .map_err(query_err("read the inventory's distributions"))?;
        let package_types: Vec<String> = with_pool!(&self.db, pool => sqlx::query_scalar(
            "SELECT DISTINCT ecosystem FROM image_packages ORDER BY ecosystem")
            .fetch_all(pool)
            .await)
        .map_err(query_err("read the inventory's package types"))?;
        Ok(InventoryEcosystems { os, package_types })
    }
}

/// What kinds of packages the inventory holds (see
/// [`Store::inventory_ecosystems`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InventoryEcosystems {
    /// Images' OSV distributions, e.g. `Debian:12`, `Alpine:v3.20`.
    pub os: Vec<String>,
    /// Package types, e.g. `deb`, `apk`, `npm`, `pypi`.
    pub package_types: Vec<String>,
}
