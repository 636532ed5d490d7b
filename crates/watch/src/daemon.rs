//! The watch daemon: checks each watch on its schedule (with jitter), drains
//! the outbox, and on shutdown finishes what is in flight.
//!
//! Schedules live in the store as leased rows, so replicas sharing a
//! PostgreSQL database split the polling instead of repeating it, and a
//! restart resumes where the last process left off.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use freshen_actions::Deliverer;
use futures::StreamExt as _;
use tokio::sync::watch as signal;

use crate::{Checker, Watch};

/// Delivery passes in flight at once: one may be held by a long cascade
/// while the other keeps sending.
const MAX_PASSES: usize = 2;

/// One pass over the due deliveries.
async fn deliver(deliverer: &Deliverer) -> Result<(), freshen_store::StoreError> {
    for o in deliverer.deliver_due().await? {
        tracing::debug!(
            delivery = o.delivery_id,
            state = o.state,
            "delivery attempt"
        );
    }
    Ok(())
}

/// A finished pass's outcome; a panicked pass is reported, not propagated.
fn flatten(
    done: Result<Result<(), freshen_store::StoreError>, tokio::task::JoinError>,
) -> Result<(), freshen_store::StoreError> {
    match done {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "a delivery pass panicked");
            Ok(())
        }
    }
}

/// Daemon tuning.
#[derive(Debug, Clone)]
pub struct DaemonSettings {
    /// Random delay up to this much added to each next check, so watches
    /// sharing a schedule do not hit a registry in the same second.
    pub jitter: Duration,
    /// Longest sleep between looks at the store (other replicas may have
    /// queued deliveries).
    pub idle: Duration,
    /// How long a daemon owns a watch it is checking.
    pub lease: Duration,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        DaemonSettings {
            jitter: Duration::from_secs(30),
            idle: Duration::from_secs(5),
            lease: Duration::from_secs(300),
        }
    }
}

/// The long-running watcher.
pub struct Daemon {
    checker: Checker,
    deliverer: Deliverer,
    watches: HashMap<String, Watch>,
    settings: DaemonSettings,
    owner: String,
}

impl Daemon {
    /// A daemon over these watches.
    pub fn new(
        checker: Checker,
        deliverer: Deliverer,
        watches: Vec<Watch>,
        settings: DaemonSettings,
    ) -> Daemon {
        Daemon {
            checker,
            deliverer,
            watches: watches.into_iter().map(|w| (w.key(), w)).collect(),
            settings,
            owner: format!("watch-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// Runs until `shutdown` turns true, then returns once in-flight checks
    /// and deliveries are done.
    pub async fn run(
        &self,
        mut shutdown: signal::Receiver<bool>,
    ) -> Result<(), freshen_store::StoreError> {
        let store = self.checker.store();
        let now = Utc::now();
        // A new watch is checked at once; known ones keep their stored schedule.
        let keys: Vec<(String, chrono::DateTime<Utc>)> =
            self.watches.keys().map(|k| (k.clone(), now)).collect();
        store.sync_schedule(&keys).await?;
        tracing::info!(watches = keys.len(), backend = ?store.backend(), "watching");
        // Delivery passes run beside the checks: a cascade of builds can take
        // long, and must hold up neither the schedule nor other deliveries
        // (a second pass takes what the first hasn't leased).
        let mut passes = tokio::task::JoinSet::new();
        let result = loop {
            if *shutdown.borrow() {
                break Ok(());
            }
            if let Err(e) = self.tick().await {
                break Err(e);
            }
            let mut failed = None;
            while let Some(done) = passes.try_join_next() {
                failed = failed.or(flatten(done).err());
            }
            if let Some(e) = failed {
                break Err(e);
            }
            // Right after the tick: a change event's triggers go out at once.
            // A pass starts only for something due and not leased, so a
            // running cascade (its lease renewed) doesn't spin the loop.
            let due = match self.deliverer.next_due().await {
                Ok(t) => t.is_some_and(|t| t <= Utc::now()),
                Err(e) => break Err(e),
            };
            if due && passes.len() < MAX_PASSES {
                let deliverer = self.deliverer.clone();
                passes.spawn(async move { deliver(&deliverer).await });
            }
            // With every pass busy, a due delivery can't be taken sooner
            // than a pass ends (which wakes the loop): wait for watches only.
            let wait = match self.until_next(passes.len() < MAX_PASSES).await {
                Ok(w) => w,
                Err(e) => break Err(e),
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
                Some(done) = passes.join_next() => {
                    if let Err(e) = flatten(done) {
                        break Err(e);
                    }
                }
            }
        };
        // In-flight deliveries finish (a cascade's progress is stored, and a
        // run cut short by a harder stop resumes on the next start).
        while let Some(done) = passes.join_next().await {
            if let Err(e) = flatten(done) {
                tracing::warn!(error = %e, "a delivery pass failed while shutting down");
            }
        }
        result?;
        tracing::info!("shutting down: in-flight work finished");
        Ok(())
    }

    /// Checks every due watch this process can lease.
    async fn tick(&self) -> Result<(), freshen_store::StoreError> {
        let store = self.checker.store();
        loop {
            let due = store
                .claim_due_watches(&self.owner, Utc::now(), self.settings.lease, 256)
                .await?;
            if due.is_empty() {
                return Ok(());
            }
            let current = store.current_all().await?;
            let results: Vec<Result<(), freshen_store::StoreError>> = futures::stream::iter(due)
                .map(|key| {
                    let current = &current;
                    async move {
                        let Some(watch) = self.watches.get(&key) else {
                            // Another replica's config has it; leave it to them.
                            return store
                                .finish_watch(
                                    &key,
                                    &self.owner,
                                    Utc::now() + chrono::Duration::minutes(5),
                                )
                                .await;
                        };
                        match self
                            .checker
                            .check(watch, current.get(&key).map(Vec::as_slice), "poll")
                            .await
                        {
                            Ok(r) if r.changed() => {
                                tracing::info!(reference = %key, event = ?r.event_id, "changed")
                            }
                            Ok(_) => tracing::debug!(reference = %key, "checked"),
                            Err(e) => tracing::warn!(reference = %key, error = %e, "check failed"),
                        }
                        let next = watch.schedule.next_after(Utc::now()) + self.jitter();
                        store.finish_watch(&key, &self.owner, next).await
                    }
                })
                .buffer_unordered(32)
                .collect()
                .await;
            for r in results {
                r?;
            }
        }
    }

    /// Sleep until the next due watch or (with `deliveries`) delivery, at
    /// most `idle`.
    async fn until_next(&self, deliveries: bool) -> Result<Duration, freshen_store::StoreError> {
        let store = self.checker.store();
        let now = Utc::now();
        let next = [
            store.next_watch_due().await?,
            if deliveries {
                self.deliverer.next_due().await?
            } else {
                None
            },
        ]
        .into_iter()
        .flatten()
        .min();
        let wait = next
            .map(|t| (t - now).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(self.settings.idle);
        Ok(wait.min(self.settings.idle).max(Duration::from_millis(50)))
    }

    fn jitter(&self) -> chrono::Duration {
        let ms = self.settings.jitter.as_millis() as u64;
        if ms == 0 {
            return chrono::Duration::zero();
        }
        chrono::Duration::milliseconds(rand::random_range(0..ms) as i64)
    }
}
