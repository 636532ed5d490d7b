//! The vulnerability feeds: syncing them (by hand or on the daemon's
//! schedule) and their archives' state.

use std::sync::Arc;
use std::time::Duration;

use freshen_judge::FeedSync;
use freshen_settings::Feed;
use freshen_store::{ChangeEvent, FeedArchive, Store};
use freshen_watch::{Job, JobFn};

use crate::{App, AppError};

/// What `sync_feeds` did: each feed's archives, and the `vulnerability`
/// events the new data made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FeedsSynced {
    /// Each feed synced, in the config's order.
    pub feeds: Vec<FeedSync>,
    /// The events made by judging the images again (none when no data changed).
    pub events: Vec<ChangeEvent>,
}

/// The longest one archive's download may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(30 * 60);

impl App {
    /// Syncs every feed of the config, or only the one named `only`:
    /// each archive asked for conditionally, what changed imported. An
    /// archive that fails keeps its earlier data and is reported in the
    /// answer; only the store failing is an error.
    pub async fn sync_feeds(&self, only: Option<&str>) -> Result<FeedsSynced, AppError> {
        let feeds = &self.loaded.feeds;
        if feeds.is_empty() {
            return Err(AppError::Refused(
                "no feeds in the config: add one under `feeds:` (e.g. `feeds: {osv: {url: https://osv-vulnerabilities.storage.googleapis.com}}`), or import files with `freshen vulns import`".into(),
            ));
        }
        let chosen: Vec<_> = match only {
            Some(name) => {
                let f = feeds.iter().find(|f| f.name == name).ok_or_else(|| {
                    let known: Vec<&str> = feeds.iter().map(|f| f.name.as_str()).collect();
                    AppError::Refused(format!(
                        "no feed named {name:?} (defined: {})",
                        known.join(", ")
                    ))
                })?;
                vec![f]
            }
            None => feeds.iter().collect(),
        };
        let store = self.store().await?;
        let mut feeds = Vec::with_capacity(chosen.len());
        for feed in chosen {
            feeds.push(sync(store, feed).await?);
        }
        let events = if feeds.iter().any(|f| f.changed().next().is_some()) {
            self.rejudge().await?
        } else {
            Vec::new()
        };
        Ok(FeedsSynced { feeds, events })
    }

    /// Judges every image again with the stored data: the `vulnerability`
    /// events this made (images whose policy has `on_vulnerable` and now
    /// acts on findings it did not act on before), their deliveries
    /// queued and the daemon in this process woken to send them.
    pub async fn rejudge(&self) -> Result<Vec<ChangeEvent>, AppError> {
        let events = self.vulns().await?.rejudge(&self.loaded.policies).await?;
        if !events.is_empty() {
            self.wake.notify_one();
        }
        Ok(events)
    }

    /// The daemon's jobs that sync each feed on its schedule.
    pub(crate) fn feed_jobs(&self, store: &Store) -> Vec<Job> {
        self.loaded
            .feeds
            .iter()
            .map(|feed| {
                let vulns = freshen_judge::Vulns::new(store.clone(), self.loaded.defaults.clone());
                let (store, feed) = (store.clone(), Arc::new(feed.clone()));
                let policies = Arc::new(self.loaded.policies.clone());
                let wake = self.wake.clone();
                let name = format!("feed:{}", feed.name);
                let schedule = feed.schedule.clone();
                let run: JobFn = Arc::new(move || {
                    let (store, feed, vulns) = (store.clone(), feed.clone(), vulns.clone());
                    let (policies, wake) = (policies.clone(), wake.clone());
                    Box::pin(async move {
                        let done = match sync(&store, &feed).await {
                            Ok(done) => done,
                            Err(e) => {
                                tracing::warn!(feed = %feed.name, error = %e, "feed sync failed");
                                return;
                            }
                        };
                        let changed = done.changed().count();
                        let failed = done.failed().count();
                        tracing::info!(feed = %feed.name, changed, failed, "feed synced");
                        if changed == 0 {
                            return;
                        }
                        match vulns.rejudge(&policies).await {
                            Ok(events) if !events.is_empty() => {
                                tracing::info!(feed = %feed.name, events = events.len(), "new data made images act");
                                wake.notify_one();
                            }
                            Ok(_) => {}
                            Err(e) => tracing::warn!(feed = %feed.name, error = %e, "judging the new data failed"),
                        }
                    })
                });
                Job::new(&name, schedule, run)
            })
            .collect()
    }

    /// Every feed archive freshen has asked for: validators, the import
    /// in force, and the last attempt's error.
    pub async fn feed_archives(&self) -> Result<Vec<FeedArchive>, AppError> {
        Ok(self.store().await?.feed_archives().await?)
    }
}

/// Syncs one feed: downloads into a private scratch directory (removed
/// after), imports what changed.
async fn sync(store: &Store, feed: &Feed) -> Result<FeedSync, AppError> {
    let fetcher = freshen_feeds::Fetcher::new(DOWNLOAD_TIMEOUT)?;
    let scratch = tempfile::Builder::new()
        .prefix("freshen-feeds-")
        .tempdir()
        .map_err(|e| AppError::Refused(format!("cannot make a scratch directory: {e}")))?;
    Ok(freshen_judge::sync_feed(store, &fetcher, feed, scratch.path()).await?)
}
