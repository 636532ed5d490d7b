//! The long-running parts: the watch daemon (checks on schedule, the
//! outbox, cascades) and the webhook intake, which share the app's wake-up
//! so a webhook's deliveries go out at once.

use std::collections::BTreeMap;

use freshen_intake::{Intake, Taken};
use freshen_receive::{Notice, ReceiverSpec};
use freshen_watch::{Daemon, DaemonSettings};
use tokio::sync::watch;

use crate::{App, AppError, harbor_credentials, new_client};

/// The watch daemon, ready to run.
pub struct Watcher {
    daemon: Daemon,
}

impl Watcher {
    /// Runs until `shutdown` turns true, then returns once in-flight
    /// checks, deliveries and the running cascade are done.
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> Result<(), AppError> {
        Ok(self.daemon.run(shutdown).await?)
    }
}

impl App {
    /// The watch daemon over the config's watches: their checks on
    /// schedule, the outbox, and the cascades they ask for. With
    /// `receiving` (webhooks are served beside it), a config with
    /// receivers and no watches is worth running too.
    pub async fn watcher(&self, receiving: bool) -> Result<Watcher, AppError> {
        let store = self.store().await?;
        let loaded = &self.loaded;
        if loaded.watches.is_empty()
            && loaded.feeds.is_empty()
            && loaded.rescan.is_none()
            && (!receiving || loaded.config.receivers.is_empty())
        {
            return Err(AppError::Refused(
                "nothing to watch: the config has no watches, feeds or rescan (and no receivers to serve)"
                    .into(),
            ));
        }
        let checker = self.checker(
            new_client(loaded),
            store,
            loaded.config.check_concurrency.unwrap_or(32),
        );
        let settings = DaemonSettings {
            jitter: loaded
                .config
                .jitter
                .unwrap_or(DaemonSettings::default().jitter),
            ..DaemonSettings::default()
        };
        let mut daemon = Daemon::new(
            checker,
            self.deliverer(store)?,
            loaded.watches.clone(),
            settings,
        );
        if let Some(c) = self.cascades(store)? {
            daemon = daemon.with_cascades(c);
        }
        for job in self.feed_jobs(store) {
            daemon = daemon.with_job(job);
        }
        if let Some(job) = self.rescan_job(store) {
            daemon = daemon.with_job(job);
        }
        Ok(Watcher {
            daemon: daemon.with_wake(self.wake.clone()),
        })
    }

    /// The webhook intake, built once: pushes of watched tags fire the
    /// watches' triggers, others the receiver's `on_change`.
    async fn intake(&self) -> Result<&Intake, AppError> {
        self.intake
            .get_or_try_init(|| async {
                let store = self.store().await?;
                let loaded = &self.loaded;
                let intake = Intake::new(
                    // One check at a time per request, with a client of its
                    // own (see `new_client`).
                    self.checker(new_client(loaded), store, 1),
                    &loaded.watches,
                    &loaded.config.receivers,
                    loaded.defaults.clone(),
                    &loaded.default_platforms,
                )?
                .with_harbor_credentials(harbor_credentials()?)
                .with_policies(self.loaded.policies.clone())
                .with_wake(self.wake.clone());
                Ok::<_, AppError>(intake)
            })
            .await
    }

    /// The configured webhook receivers, validated (for the server's
    /// gate); empty when the config has none.
    pub async fn receivers(&self) -> Result<BTreeMap<String, ReceiverSpec>, AppError> {
        if self.loaded.config.receivers.is_empty() {
            return Ok(BTreeMap::new());
        }
        Ok(self.intake().await?.specs())
    }

    /// Acts on a webhook's `notice`, which receiver `receiver` admitted:
    /// each pushed tag is checked like a poll, completed scans imported,
    /// Docker Hub's callback queued or posted.
    pub async fn take_notice(&self, receiver: &str, notice: Notice) -> Result<Taken, AppError> {
        Ok(self.intake().await?.take(receiver, notice).await)
    }
}
