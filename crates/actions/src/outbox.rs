//! The outbox: deliveries stored with their event, leased, sent, and retried
//! with exponential backoff until the receiver acknowledges, across restarts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use freshen_store::{Delivery, Store, StoreError};
use futures::StreamExt as _;
use serde::Deserialize;

use crate::targets::{self, DeliveryError, TriggerSpec};

/// Outbox behaviour, as written under `outbox:` in the config.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxSettings {
    /// How long a worker owns a delivery it took; after that another may take it.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// Wait before the first retry; doubled each time.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Longest wait between retries.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Attempts before a delivery is marked failed (`freshen outbox retry` revives it).
    pub max_attempts: u32,
    /// Deliveries in flight at once.
    pub concurrency: usize,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        OutboxSettings {
            lease: Duration::from_secs(300),
            initial_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(3600),
            max_attempts: 30,
            concurrency: 4,
        }
    }
}

/// One delivery's outcome in a pass.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub delivery_id: i64,
    pub event_id: String,
    pub trigger: String,
    /// `delivered`, `retrying` or `failed`.
    pub state: &'static str,
    /// The receiver's answer (queue item URL) or the error.
    pub detail: Option<String>,
}

/// Sends due deliveries to their triggers.
#[derive(Clone)]
pub struct Deliverer {
    store: Store,
    triggers: Arc<BTreeMap<String, TriggerSpec>>,
    settings: OutboxSettings,
    /// Identifies this process's leases.
    owner: String,
    /// Where commands run (the config file's directory).
    workdir: PathBuf,
}

impl Deliverer {
    /// A deliverer for the configured triggers.
    pub fn new(
        store: Store,
        triggers: BTreeMap<String, TriggerSpec>,
        settings: OutboxSettings,
        workdir: PathBuf,
    ) -> Deliverer {
        Deliverer {
            store,
            triggers: Arc::new(triggers),
            settings,
            owner: format!("{}-{}", hostname(), uuid::Uuid::new_v4().simple()),
            workdir,
        }
    }

    /// Takes every due delivery and attempts it once; returns what happened.
    pub async fn deliver_due(&self) -> Result<Vec<Outcome>, StoreError> {
        let mut outcomes = Vec::new();
        // Only what was due when the pass began: a delivery that fails now
        // waits for a later pass, however short its backoff.
        let started = Utc::now();
        loop {
            let batch = self
                .store
                .claim_deliveries(
                    &self.owner,
                    started,
                    self.settings.lease,
                    (self.settings.concurrency * 4) as i64,
                )
                .await?;
            if batch.is_empty() {
                return Ok(outcomes);
            }
            let results: Vec<Result<Outcome, StoreError>> = futures::stream::iter(batch)
                .map(|d| self.attempt(d))
                .buffer_unordered(self.settings.concurrency.max(1))
                .collect()
                .await;
            for r in results {
                outcomes.push(r?);
            }
        }
    }

    async fn attempt(&self, d: Delivery) -> Result<Outcome, StoreError> {
        let result = match self.triggers.get(&d.trigger) {
            None => Err(DeliveryError {
                message: format!("trigger {:?} is no longer in the config", d.trigger),
                retryable: false,
            }),
            Some(TriggerSpec::Jenkins(j)) => targets::deliver_jenkins(j, &d.payload).await,
            Some(TriggerSpec::Webhook(w)) => targets::deliver_webhook(w, &d.payload).await,
            Some(TriggerSpec::Command(c)) => {
                targets::deliver_command(c, &d.payload, &self.workdir).await
            }
        };
        let base = |state, detail| Outcome {
            delivery_id: d.id,
            event_id: d.event_id.clone(),
            trigger: d.trigger.clone(),
            state,
            detail,
        };
        match result {
            Ok(ack) => {
                let kept = self
                    .store
                    .delivery_succeeded(d.id, &self.owner, Utc::now(), ack.as_deref())
                    .await?;
                if !kept {
                    tracing::warn!(delivery = d.id, trigger = %d.trigger, "lease expired while delivering; the receiver may see this event twice (same event id)");
                }
                tracing::info!(delivery = d.id, event = %d.event_id, trigger = %d.trigger, "delivered");
                Ok(base("delivered", ack))
            }
            Err(e) => {
                let attempts = d.attempts as u32 + 1;
                let next = (e.retryable && attempts < self.settings.max_attempts).then(|| {
                    Utc::now()
                        + chrono::Duration::from_std(self.backoff(attempts)).unwrap_or_default()
                });
                self.store
                    .delivery_failed(d.id, &self.owner, &e.message, next)
                    .await?;
                let state = if next.is_some() { "retrying" } else { "failed" };
                tracing::warn!(delivery = d.id, event = %d.event_id, trigger = %d.trigger, attempts, error = %e.message, state, "delivery failed");
                Ok(base(state, Some(e.message)))
            }
        }
    }

    /// The wait after `attempts` failures: doubling from `initial_backoff`, capped, ±20 %.
    fn backoff(&self, attempts: u32) -> Duration {
        let exp = self
            .settings
            .initial_backoff
            .saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
        exp.min(self.settings.max_backoff)
            .mul_f64(0.8 + rand::random::<f64>() * 0.4)
    }

    /// The store this deliverer works on.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "freshen".into())
}
