//! The watch daemon: checks each watch on its schedule (with jitter), drains
//! the outbox, runs rebuild cascades beside both, and on shutdown finishes
//! what is in flight.
//!
//! Schedules live in the store as leased rows, so replicas sharing a
//! PostgreSQL database split the polling instead of repeating it, and a
//! restart resumes where the last process left off.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use freshen_actions::Deliverer;
use futures::StreamExt as _;
use tokio::sync::Notify;
use tokio::sync::watch as signal;

use crate::{Checker, Schedule, Watch};

/// What a [`Job`] runs: a fresh future per run. Its failures are its own
/// to log; the daemon only schedules it.
pub type JobFn = Arc<dyn Fn() -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// Work the daemon runs on a schedule beside the watches: a feed sync, a
/// rescan of the inventory. Its schedule is a leased row like a watch's,
/// so replicas sharing a database run it once between them.
#[derive(Clone)]
pub struct Job {
    /// Its key in the schedule (starts with `@`, which no reference does).
    key: String,
    schedule: Schedule,
    run: JobFn,
}

impl Job {
    /// A job named `name` (e.g. `feed:osv`), run on `schedule`.
    pub fn new(name: &str, schedule: Schedule, run: JobFn) -> Job {
        Job {
            key: format!("@{name}"),
            schedule,
            run,
        }
    }

    /// Its key in the schedule.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// One pass over the due deliveries a deliverer takes.
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

/// A finished cascade pass's outcome; a panic is logged, not propagated
/// (the delivery's lease runs out and it is taken again).
fn joined(
    done: Result<Result<(), freshen_store::StoreError>, tokio::task::JoinError>,
) -> Result<(), freshen_store::StoreError> {
    match done {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "a cascade pass panicked");
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
    /// Carries out cascades ([`Deliverer::cascades`]), in a task of its own.
    cascades: Option<Deliverer>,
    watches: HashMap<String, Watch>,
    /// Scheduled work beside the watches, by key.
    jobs: HashMap<String, Job>,
    /// Jobs running now (each in its own task), by key.
    running: std::sync::Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
    settings: DaemonSettings,
    owner: String,
    /// Poked when work is queued in this process (a webhook's event), so
    /// it is delivered now rather than after the idle wait.
    wake: Arc<Notify>,
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
            cascades: None,
            watches: watches.into_iter().map(|w| (w.key(), w)).collect(),
            jobs: HashMap::new(),
            running: Default::default(),
            settings,
            owner: format!("watch-{}", uuid::Uuid::new_v4().simple()),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Wakes the daemon from its idle wait when `wake` is notified (an
    /// [`crate::Intake`] in the same process queued deliveries).
    pub fn with_wake(mut self, wake: Arc<Notify>) -> Daemon {
        self.wake = wake;
        self
    }

    /// Carries out due cascades with `cascades` (a deliverer made by
    /// [`Deliverer::cascades`]), beside the checks and other deliveries:
    /// a cascade of builds can take long, and must hold up neither.
    pub fn with_cascades(mut self, cascades: Deliverer) -> Daemon {
        self.cascades = Some(cascades);
        self
    }

    /// Runs `job` on its schedule (first at start), in a task of its own,
    /// one run of it at a time.
    pub fn with_job(mut self, job: Job) -> Daemon {
        self.jobs.insert(job.key.clone(), job);
        self
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
        let keys: Vec<(String, chrono::DateTime<Utc>)> = self
            .watches
            .keys()
            .chain(self.jobs.keys())
            .map(|k| (k.clone(), now))
            .collect();
        store.sync_schedule(&keys).await?;
        tracing::info!(watches = keys.len(), backend = %store.backend().as_str(), "watching");
        // At most one cascade pass at a time, in its own task.
        let mut cascading: Option<tokio::task::JoinHandle<Result<(), freshen_store::StoreError>>> =
            None;
        let result = async {
            loop {
                if *shutdown.borrow() {
                    return Ok(());
                }
                self.tick().await?;
                // Deliveries first: a change event's triggers go out in the same tick.
                deliver(&self.deliverer).await?;
                if let Some(done) = cascading.take_if(|h| h.is_finished()) {
                    joined(done.await)?;
                }
                if let Some(c) = &self.cascades
                    && cascading.is_none()
                    && c.next_due().await?.is_some_and(|t| t <= Utc::now())
                {
                    let c = c.clone();
                    cascading = Some(tokio::spawn(async move { deliver(&c).await }));
                }
                let wait = self.until_next(cascading.is_none()).await?;
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = self.wake.notified() => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
        .await;
        // A cascade in flight finishes: its progress is stored, and one cut
        // short by a harder stop resumes its run on the next start.
        if let Some(h) = cascading {
            tracing::info!("waiting for the running cascade to finish");
            if let Err(e) = joined(h.await) {
                tracing::warn!(error = %e, "the cascade pass failed while shutting down");
            }
        }
        let jobs: Vec<_> = self.running.lock().expect("lock").drain().collect();
        for (key, h) in jobs {
            tracing::info!(job = %key, "waiting for the running job to finish");
            let _ = h.await;
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
                        if let Some(job) = self.jobs.get(&key) {
                            return self.start_job(job).await;
                        }
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
                                tracing::info!(reference = %key, event = r.event_id.as_deref().map(tracing::field::display), "changed")
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

    /// Starts a run of `job` (leased to this process) unless one is still
    /// running; its row is finished with the next due time when it ends.
    async fn start_job(&self, job: &Job) -> Result<(), freshen_store::StoreError> {
        let store = self.checker.store().clone();
        let busy = {
            let running = self.running.lock().expect("lock");
            running.get(&job.key).is_some_and(|h| !h.is_finished())
        };
        if busy {
            let next = job.schedule.next_after(Utc::now());
            return store.finish_watch(&job.key, &self.owner, next).await;
        }
        let key = job.key.clone();
        let (job, owner) = (job.clone(), self.owner.clone());
        let jitter = self.jitter();
        let handle = tokio::spawn(async move {
            tracing::info!(job = %job.key, "job started");
            (job.run)().await;
            let next = job.schedule.next_after(Utc::now()) + jitter;
            if let Err(e) = store.finish_watch(&job.key, &owner, next).await {
                tracing::warn!(job = %job.key, error = %e, "could not schedule the job's next run");
            }
        });
        self.running.lock().expect("lock").insert(key, handle);
        Ok(())
    }

    /// Sleep until the next due watch, delivery or (with `cascades`, when
    /// none is running) cascade, at most `idle`.
    async fn until_next(&self, cascades: bool) -> Result<Duration, freshen_store::StoreError> {
        let store = self.checker.store();
        let now = Utc::now();
        let cascade = match &self.cascades {
            Some(c) if cascades => c.next_due().await?,
            _ => None,
        };
        let next = [
            store.next_watch_due().await?,
            self.deliverer.next_due().await?,
            cascade,
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
