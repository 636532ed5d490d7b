//! Syncing vulnerability feeds: each archive of a feed is asked for with
//! the validators of the copy imported last; a new copy is read whole
//! (a truncated, corrupt or oversized one fails here, before anything is
//! written) and imported incrementally by `modified`. A failure is stored
//! beside the archive and leaves its data as it was.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::Utc;
use freshen_feeds::{Fetched, Fetcher, Validators, shown_url};
use freshen_settings::{Feed, FeedSource};
use freshen_store::{ImportSummary, Store};

use crate::reports::advisory_inputs;
use serde::Serialize;

use crate::JudgeError;

/// One feed's sync.
#[derive(Debug, Clone, Serialize)]
pub struct FeedSync {
    /// The feed's name.
    pub feed: String,
    /// Each archive (or path) it read, in order.
    pub archives: Vec<ArchiveSync>,
    /// Set when there was nothing to ask for (no ecosystems).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl FeedSync {
    /// The imports that stored new or changed records.
    pub fn changed(&self) -> impl Iterator<Item = &ImportSummary> {
        self.archives.iter().filter_map(|a| match &a.outcome {
            ArchiveOutcome::Imported { summary, .. } if summary.added + summary.updated > 0 => {
                Some(summary)
            }
            _ => None,
        })
    }

    /// The archives that failed.
    pub fn failed(&self) -> impl Iterator<Item = (&str, &str)> {
        self.archives.iter().filter_map(|a| match &a.outcome {
            ArchiveOutcome::Failed { error } => Some((a.source.as_str(), error.as_str())),
            _ => None,
        })
    }
}

/// One archive's part of a sync.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveSync {
    /// The archive's URL (without secrets) or path.
    pub source: String,
    /// What happened.
    #[serde(flatten)]
    pub outcome: ArchiveOutcome,
}

/// What syncing an archive did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ArchiveOutcome {
    /// The server said the copy imported last is current (`304`).
    Unchanged,
    /// A copy was read and imported.
    Imported {
        /// Bytes downloaded (0 for a local path).
        bytes: u64,
        /// What the import changed.
        summary: ImportSummary,
    },
    /// It failed; the data imported before stays in force.
    Failed {
        /// Why, in one line.
        error: String,
    },
}

/// The OSV ecosystems (archive directory names) of what the inventory
/// holds: each image's distribution without its release (`Debian:12` ->
/// `Debian`) and each language package type (`npm`, `pypi` -> `PyPI`).
pub async fn inventory_ecosystems(store: &Store) -> Result<Vec<String>, JudgeError> {
    let held = store.inventory_ecosystems().await?;
    let mut out = BTreeSet::new();
    for os in &held.os {
        let name = os.split(':').next().unwrap_or(os);
        if !name.is_empty() {
            out.insert(name.to_string());
        }
    }
    for t in &held.package_types {
        if let Some(e) = freshen_vuln::osv_ecosystem(t) {
            out.insert(e.to_string());
        }
    }
    Ok(out.into_iter().collect())
}

/// Syncs `feed` once: downloads into `scratch`, imports what changed, and
/// stores each archive's outcome. Only the store failing is an error; an
/// archive that fails is reported in the result.
pub async fn sync_feed(
    store: &Store,
    fetcher: &Fetcher,
    feed: &Feed,
    scratch: &Path,
) -> Result<FeedSync, JudgeError> {
    let mut out = FeedSync {
        feed: feed.name.clone(),
        archives: Vec::new(),
        note: None,
    };
    match &feed.source {
        FeedSource::Path(p) => {
            let source = p.display().to_string();
            let outcome = import_local(store, &feed.name, p, &source, feed.max_size).await?;
            out.archives.push(ArchiveSync { source, outcome });
        }
        FeedSource::Osv(base) => {
            let ecosystems = if feed.ecosystems.is_empty() {
                inventory_ecosystems(store).await?
            } else {
                feed.ecosystems.clone()
            };
            if ecosystems.is_empty() {
                out.note = Some(
                    "the inventory holds no packages yet, so no ecosystem to read: scan images first, or list `ecosystems` for this feed".into(),
                );
            }
            for eco in ecosystems {
                let url = format!("{base}/{}/all.zip", encode_segment(&eco));
                let outcome = fetch_and_import(store, fetcher, feed, &url, scratch).await?;
                out.archives.push(ArchiveSync {
                    source: shown_url(&url),
                    outcome,
                });
            }
        }
    }
    Ok(out)
}

/// An ecosystem name as one path segment (`Red Hat` -> `Red%20Hat`).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn fetch_and_import(
    store: &Store,
    fetcher: &Fetcher,
    feed: &Feed,
    url: &str,
    scratch: &Path,
) -> Result<ArchiveOutcome, JudgeError> {
    let source = shown_url(url);
    let prior = store
        .feed_archive(&source)
        .await?
        .filter(|a| a.import_id.is_some())
        .map(|a| Validators {
            etag: a.etag,
            last_modified: a.last_modified,
        })
        .unwrap_or_default();
    let fetched = match fetcher.fetch(url, &prior, feed.max_size, scratch).await {
        Ok(f) => f,
        Err(e) => return failed(store, &feed.name, &source, e.to_string()).await,
    };
    let (file, bytes, validators) = match fetched {
        Fetched::NotModified => {
            store
                .feed_checked(&feed.name, &source, None, Utc::now())
                .await?;
            return Ok(ArchiveOutcome::Unchanged);
        }
        Fetched::New {
            file,
            bytes,
            validators,
        } => (file, bytes, validators),
    };
    // Decompressed, an archive may hold several times its size; beyond
    // that it is taken for a bomb.
    let limit = feed.max_size.saturating_mul(16);
    let path = file.path().to_path_buf();
    let loaded = match load(path, limit, &source).await? {
        Ok(l) => l,
        Err(e) => return failed(store, &feed.name, &source, e).await,
    };
    drop(file);
    let summary = store
        .import_advisories(&source, "osv-feed", &advisory_inputs(&loaded), Utc::now())
        .await?;
    store
        .feed_imported(
            &feed.name,
            &source,
            validators.etag.as_deref(),
            validators.last_modified.as_deref(),
            summary.import_id,
            Utc::now(),
        )
        .await?;
    Ok(ArchiveOutcome::Imported { bytes, summary })
}

async fn import_local(
    store: &Store,
    feed: &str,
    path: &Path,
    source: &str,
    max_size: u64,
) -> Result<ArchiveOutcome, JudgeError> {
    let loaded = match load(path.to_path_buf(), max_size.saturating_mul(16), source).await? {
        Ok(l) => l,
        Err(e) => return failed(store, feed, source, e).await,
    };
    let summary = store
        .import_advisories(source, "osv-feed", &advisory_inputs(&loaded), Utc::now())
        .await?;
    store
        .feed_imported(feed, source, None, None, summary.import_id, Utc::now())
        .await?;
    Ok(ArchiveOutcome::Imported { bytes: 0, summary })
}

/// Reads every record of `path` off the async threads; the inner error
/// is the archive's fault (named by `source`), the outer one the task's.
async fn load(
    path: std::path::PathBuf,
    limit: u64,
    source: &str,
) -> Result<Result<freshen_vuln::Loaded, String>, JudgeError> {
    let source = source.to_string();
    tokio::task::spawn_blocking(move || {
        freshen_vuln::load_path_within(&path, limit).map_err(|e| {
            // The scratch file's name means nothing to a user: name the archive.
            e.to_string().replace(&path.display().to_string(), &source)
        })
    })
    .await
    .map_err(|e| JudgeError::Invalid(format!("feed import task failed: {e}")))
}

async fn failed(
    store: &Store,
    feed: &str,
    source: &str,
    error: String,
) -> Result<ArchiveOutcome, JudgeError> {
    tracing::warn!(
        feed,
        source,
        error,
        "feed archive not imported; the data before stays in force"
    );
    store
        .feed_checked(feed, source, Some(&error), Utc::now())
        .await?;
    Ok(ArchiveOutcome::Failed { error })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecosystem_segments() {
        assert_eq!(encode_segment("Debian"), "Debian");
        assert_eq!(encode_segment("crates.io"), "crates.io");
        assert_eq!(encode_segment("Red Hat"), "Red%20Hat");
    }
}
