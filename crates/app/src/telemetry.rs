//! Metrics and health: every layer's metrics described to the recorder a
//! long-running command installs, the gauges read from the store at scrape
//! time, roll-outs by result, and whether the store is ready.

use std::time::Duration;

use freshen_store::{DeliveryState, RolloutItem, RolloutState, RunState};

use crate::{App, AppError};

/// Roll-outs finished: `result` (`done`, `failed`).
pub const ROLLOUTS: &str = "freshen_rollouts_total";
/// Workloads and repositories a finished roll-out left: `result` (`done`,
/// `rolled_back`, `failed`, `skipped`).
pub const ROLLOUT_ITEMS: &str = "freshen_rollout_items_total";
/// From a roll-out's creation to its end: `result`.
pub const ROLLOUT_DURATION: &str = "freshen_rollout_duration_seconds";

/// Describes every layer's metrics to the installed recorder (their HELP
/// and unit lines) and registers the series whose labels are known in
/// advance at zero; call once, after installing it.
pub fn register_metrics() {
    freshen_registry::telemetry::register();
    freshen_watch::telemetry::register();
    freshen_actions::telemetry::register();
    freshen_inventory::telemetry::register();
    freshen_judge::telemetry::register();
    freshen_rebuild::telemetry::register();
    metrics::describe_counter!(ROLLOUTS, "Roll-outs finished, by result (done, failed).");
    metrics::describe_counter!(
        ROLLOUT_ITEMS,
        "Workloads and repositories of finished roll-outs, by result (done, rolled_back, failed, skipped)."
    );
    metrics::describe_histogram!(
        ROLLOUT_DURATION,
        metrics::Unit::Seconds,
        "From a roll-out's creation to its end, by result."
    );
    for result in [RunState::Done, RunState::Failed] {
        metrics::counter!(ROLLOUTS, "result" => result.as_str()).increment(0);
        let _ = metrics::histogram!(ROLLOUT_DURATION, "result" => result.as_str());
    }
    for state in [
        RolloutState::Done,
        RolloutState::RolledBack,
        RolloutState::Failed,
        RolloutState::Skipped,
    ] {
        metrics::counter!(ROLLOUT_ITEMS, "result" => state.as_str()).increment(0);
    }
}

/// A roll-out ended in `state` with `items`, `took` after its creation.
pub(crate) fn rolled_out(state: RunState, items: &[RolloutItem], took: Duration) {
    let result = state.as_str();
    metrics::counter!(ROLLOUTS, "result" => result).increment(1);
    metrics::histogram!(ROLLOUT_DURATION, "result" => result).record(took);
    for i in items {
        metrics::counter!(ROLLOUT_ITEMS, "result" => i.state.as_str()).increment(1);
    }
}

impl App {
    /// Sets the gauges read from the store (the outbox's depth by state)
    /// before a scrape.
    pub async fn refresh_gauges(&self) -> Result<(), AppError> {
        let depth = self.store().await?.outbox_depth().await?;
        for state in [DeliveryState::Pending, DeliveryState::Failed] {
            let rows = depth
                .iter()
                .find(|(s, _)| *s == state)
                .map_or(0, |(_, n)| *n);
            freshen_actions::telemetry::outbox_depth(state.as_str(), rows);
        }
        Ok(())
    }

    /// Whether the store answers a trivial query and holds every migration
    /// this build knows; the error says why not.
    pub async fn ready(&self) -> Result<(), AppError> {
        Ok(self.store().await?.ready().await?)
    }
}

/// Metric names the recorder gives their own histogram buckets.
pub mod metric_names {
    pub use freshen_actions::telemetry::{DELIVERY_DURATION, DELIVERY_LATENCY};

    /// Histograms of work that takes minutes to hours: rebuilds, runs, roll-outs.
    pub const LONG: &[&str] = &[
        freshen_rebuild::telemetry::IMAGE_DURATION,
        freshen_rebuild::telemetry::RUN_DURATION,
        super::ROLLOUT_DURATION,
    ];
}
