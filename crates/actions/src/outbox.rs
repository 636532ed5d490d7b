//! The outbox: deliveries stored with their event, leased, sent, and retried
//! with exponential backoff until the receiver acknowledges, across restarts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use freshen_store::{Delivery, Store, StoreError, TriggerFilter};
use futures::StreamExt as _;

use crate::callback::{self, HUB_CALLBACK, Step};
use crate::targets::{self, DeliveryError, TriggerSpec};
use crate::{chat, email};

/// Defined with the other settings types (`freshen-settings`), so the
/// config layer can read it without this crate's runtime.
pub use freshen_settings::OutboxSettings;

/// One delivery's outcome in a pass.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// The outbox row's id.
    pub delivery_id: i64,
    /// What the delivery is about: the change event (for a run's or a
    /// roll-out's result, the run or the roll-out).
    pub event_id: String,
    /// The configured trigger's name (or [`CASCADE`]).
    pub trigger: String,
    /// `delivered`, `retrying`, `failed`, or `waiting` (a callback waiting
    /// for the event's other deliveries).
    pub state: &'static str,
    /// The receiver's answer (queue item URL) or the error.
    pub detail: Option<String>,
}

/// The reserved trigger name of a rebuild cascade (`on_change: [cascade]`):
/// its deliveries are carried out in-process by a [`LocalTarget`] (the
/// watcher's, through [`Deliverer::cascades`]), not sent anywhere; other
/// deliverers leave them queued. Defined with the trigger specs
/// (`freshen-settings`), which the config checks it against.
pub use freshen_settings::CASCADE;

/// A target carried out in this process rather than sent to a receiver
/// (the cascade runner). It may take long: the deliverer renews the
/// delivery's lease while it runs.
pub trait LocalTarget: Send + Sync {
    /// Carries out one delivery. A retryable error is retried with the
    /// outbox's backoff.
    fn deliver<'a>(
        &'a self,
        delivery: &'a Delivery,
    ) -> futures::future::BoxFuture<'a, Result<Local, DeliveryError>>;
}

/// What a local target made of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Local {
    /// Done; what to store as the response.
    Done(Option<String>),
    /// Waiting for something outside (a person's approval): the delivery
    /// goes back to the queue, due at `until`, no attempt counted.
    Wait {
        /// When to look again.
        until: chrono::DateTime<Utc>,
        /// What it waits for, for the log.
        why: String,
    },
}

/// Sends due deliveries to their triggers.
#[derive(Clone)]
pub struct Deliverer {
    store: Store,
    triggers: Arc<BTreeMap<String, TriggerSpec>>,
    /// Set for the cascades' deliverer ([`Deliverer::cascades`]), which
    /// takes only [`CASCADE`] deliveries; the others leave them queued.
    cascade: Option<Arc<dyn LocalTarget>>,
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
            cascade: None,
            settings,
            owner: format!("{}-{}", hostname(), uuid::Uuid::new_v4().simple()),
            workdir,
        }
    }

    /// A deliverer of [`CASCADE`] deliveries only, carried out by `target`
    /// one at a time: two cascades at once could build the same image and
    /// pick the same version, and a cascade already runs its waves'
    /// builds in parallel. Backoff and attempts are `settings`'.
    pub fn cascades(
        store: Store,
        target: Arc<dyn LocalTarget>,
        settings: OutboxSettings,
    ) -> Deliverer {
        let mut d = Deliverer::new(
            store,
            BTreeMap::new(),
            OutboxSettings {
                concurrency: 1,
                ..settings
            },
            PathBuf::new(),
        );
        d.cascade = Some(target);
        d
    }

    /// The deliveries this deliverer takes: cascades, or everything else.
    fn filter(&self) -> TriggerFilter<'static> {
        match self.cascade {
            Some(_) => TriggerFilter::Only(CASCADE),
            None => TriggerFilter::Except(CASCADE),
        }
    }

    /// When the next delivery this deliverer can take is due (see
    /// [`Store::next_delivery_due`]); `None` if there is none.
    pub async fn next_due(&self) -> Result<Option<chrono::DateTime<Utc>>, StoreError> {
        self.store.next_delivery_due_filtered(self.filter()).await
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
                .claim_deliveries_filtered(
                    &self.owner,
                    started,
                    self.settings.lease,
                    // A cascade at a time: one claimed ahead would wait
                    // hours with its lease running out.
                    if self.cascade.is_some() {
                        1
                    } else {
                        (self.settings.concurrency * 4) as i64
                    },
                    self.filter(),
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
        let started = std::time::Instant::now();
        let outcome = self.attempt_once(&d).await;
        if let Ok(o) = &outcome {
            let latency = (o.state == "delivered")
                .then(|| (Utc::now() - d.created_at).to_std().unwrap_or_default());
            crate::telemetry::attempted(&d.trigger, o.state, started.elapsed(), latency);
        }
        outcome
    }

    async fn attempt_once(&self, d: &Delivery) -> Result<Outcome, StoreError> {
        let result = match (self.triggers.get(&d.trigger), &self.cascade) {
            (_, Some(local)) if d.trigger == CASCADE => {
                match self.run_local(local.as_ref(), d).await {
                    Ok(Local::Done(ack)) => Ok(ack),
                    Ok(Local::Wait { until, why }) => {
                        self.store
                            .postpone_delivery(d.id, &self.owner, until)
                            .await?;
                        tracing::info!(delivery = d.id, event = %d.event_id, %why, "waiting");
                        return Ok(Outcome {
                            delivery_id: d.id,
                            event_id: d.event_id.clone(),
                            trigger: d.trigger.clone(),
                            state: "waiting",
                            detail: Some(why),
                        });
                    }
                    Err(e) => Err(e),
                }
            }
            _ if d.trigger == HUB_CALLBACK => {
                match callback::attempt(&self.store, &self.triggers, d).await {
                    Ok(Step::Sent(ack)) => Ok(ack),
                    Ok(Step::Wait(at)) => {
                        self.store.postpone_delivery(d.id, &self.owner, at).await?;
                        return Ok(Outcome {
                            delivery_id: d.id,
                            event_id: d.event_id.clone(),
                            trigger: d.trigger.clone(),
                            state: "waiting",
                            detail: None,
                        });
                    }
                    Err(e) => Err(e),
                }
            }
            (None, _) => Err(DeliveryError {
                message: format!("trigger {:?} is no longer in the config", d.trigger),
                retryable: false,
            }),
            (Some(TriggerSpec::Jenkins(j)), _) => targets::deliver_jenkins(j, &d.payload).await,
            (Some(TriggerSpec::Webhook(w)), _) => targets::deliver_webhook(w, &d.payload).await,
            (Some(TriggerSpec::Command(c)), _) => {
                targets::deliver_command(c, &d.payload, &self.workdir).await
            }
            (Some(TriggerSpec::Slack(c)), _) => chat::deliver_slack(c, &d.payload).await,
            (Some(TriggerSpec::Teams(c)), _) => chat::deliver_teams(c, &d.payload).await,
            (Some(TriggerSpec::Mattermost(c)), _) => chat::deliver_mattermost(c, &d.payload).await,
            (Some(TriggerSpec::Discord(c)), _) => chat::deliver_discord(c, &d.payload).await,
            (Some(TriggerSpec::Email(e)), _) => email::deliver_email(e, &d.payload, d.id).await,
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

    /// Carries out a local delivery, renewing its lease every third of the
    /// lease while it runs: a cascade of builds can outlast a lease, and
    /// another dispatcher must not take it meanwhile.
    async fn run_local(
        &self,
        target: &dyn LocalTarget,
        d: &Delivery,
    ) -> Result<Local, DeliveryError> {
        let every = (self.settings.lease / 3).max(Duration::from_millis(100));
        let renew = async {
            loop {
                tokio::time::sleep(every).await;
                match self
                    .store
                    .renew_delivery(d.id, &self.owner, Utc::now(), self.settings.lease)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(delivery = d.id, trigger = %d.trigger, "lost the lease of a running delivery; another dispatcher may take it")
                    }
                    Err(e) => {
                        tracing::warn!(delivery = d.id, error = %e, "renewing a delivery's lease failed")
                    }
                }
            }
        };
        tokio::select! {
            r = target.deliver(d) => r,
            _ = renew => unreachable!("the renewal loop never ends"),
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
