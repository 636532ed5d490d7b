//! Results told through the outbox (`notify:`): a rebuild run's end and a
//! roll-out's end, queued with the final state, and delivered right after
//! when a command (not the daemon) ended them.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use freshen_actions::results;
use freshen_rebuild::RunEnd;
use freshen_settings::NotifySettings;
use freshen_store::{Notice, RebuildItem, RebuildRun, RunState, Store};

use crate::App;

/// The rebuild runner's [`RunEnd`]: a run's result for `notify.rebuilds`.
pub(crate) struct RunResults {
    store: Store,
    settings: NotifySettings,
}

impl RunEnd for RunResults {
    fn notices<'a>(
        &'a self,
        run: &'a RebuildRun,
        items: &'a [RebuildItem],
        state: RunState,
        at: DateTime<Utc>,
    ) -> futures::future::BoxFuture<'a, Vec<Notice>> {
        Box::pin(async move {
            // A cascade's run names the image whose change it follows.
            let reference = match &run.event_id {
                Some(id) => match self.store.event(id).await {
                    Ok(e) => e.map(|e| e.reference),
                    Err(e) => {
                        tracing::warn!(run = %run.id, error = %e, "reading the run's event for its result failed; told without it");
                        None
                    }
                },
                None => None,
            };
            let payload = results::rebuild_result(run, items, state, at, reference.as_deref());
            results::notices(
                &self.settings.rebuilds,
                self.settings.failures_only,
                state,
                &payload,
            )
        })
    }
}

impl App {
    /// The runner's [`RunEnd`] when `notify.rebuilds` names triggers.
    pub(crate) fn run_results(&self, store: &Store) -> Option<Arc<dyn RunEnd>> {
        let settings = &self.loaded.config.notify;
        (!settings.rebuilds.is_empty()).then(|| {
            Arc::new(RunResults {
                store: store.clone(),
                settings: settings.clone(),
            }) as Arc<dyn RunEnd>
        })
    }

    /// After a command ended a run or a roll-out: delivers what is due
    /// (its result among it) when `notify:` names triggers, so a result
    /// doesn't wait for a daemon, and wakes this process's daemon. A
    /// failed delivery stays in the outbox; it doesn't fail the command.
    pub(crate) async fn deliver_results(&self) {
        let n = &self.loaded.config.notify;
        if n.rebuilds.is_empty() && n.rollouts.is_empty() {
            return;
        }
        self.wake.notify_one();
        let Ok(store) = self.store().await else {
            return;
        };
        let deliverer = match self.deliverer(store) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "results not delivered now; they stay in the outbox");
                return;
            }
        };
        match deliverer.deliver_due().await {
            Ok(outcomes) => {
                for o in outcomes.iter().filter(|o| o.state != "delivered") {
                    tracing::warn!(delivery = o.delivery_id, trigger = %o.trigger, state = o.state, detail = o.detail.as_deref().unwrap_or(""), "a result was not delivered yet");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "delivering results failed; they stay in the outbox")
            }
        }
    }
}
