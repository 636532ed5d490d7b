//! The outbox's metrics, through the `metrics` facade (a no-op until a
//! long-running command installs a recorder). Labels: the trigger's name
//! (from the config, or `cascade`, `hub_callback`) and the outcome; never
//! an event id.

use std::time::Duration;

/// Delivery attempts: `trigger`, `result` (`delivered`, `retrying`,
/// `failed`, `waiting`).
pub const DELIVERIES: &str = "freshen_deliveries_total";
/// How long one delivery attempt took: `trigger`.
pub const DELIVERY_DURATION: &str = "freshen_delivery_duration_seconds";
/// From the event's delivery being queued to its acknowledgement: `trigger`.
pub const DELIVERY_LATENCY: &str = "freshen_delivery_latency_seconds";
/// Outbox rows by `state` (`pending`, `failed`), read from the store when
/// scraped: the shared database's, so every replica reports the same.
pub const OUTBOX: &str = "freshen_outbox_deliveries";

/// Describes this crate's metrics to the installed recorder, and registers
/// the series whose labels are known in advance at zero, so that a
/// dashboard and `rate()` see them before the first event.
pub fn register() {
    metrics::describe_counter!(
        DELIVERIES,
        "Delivery attempts, by trigger and result (delivered, retrying, failed, waiting)."
    );
    metrics::describe_histogram!(
        DELIVERY_DURATION,
        metrics::Unit::Seconds,
        "How long one delivery attempt took, by trigger."
    );
    metrics::describe_histogram!(
        DELIVERY_LATENCY,
        metrics::Unit::Seconds,
        "From a delivery being queued to its acknowledgement, by trigger."
    );
    metrics::describe_gauge!(
        OUTBOX,
        "Outbox rows by state (pending, failed), read from the store at scrape time."
    );
}

/// One attempt at a delivery to `trigger` ended `result` after `took`;
/// `queued_for` is set when it was acknowledged.
pub(crate) fn attempted(
    trigger: &str,
    result: &'static str,
    took: Duration,
    queued_for: Option<Duration>,
) {
    metrics::counter!(DELIVERIES, "trigger" => trigger.to_string(), "result" => result)
        .increment(1);
    metrics::histogram!(DELIVERY_DURATION, "trigger" => trigger.to_string()).record(took);
    if let Some(latency) = queued_for {
        metrics::histogram!(DELIVERY_LATENCY, "trigger" => trigger.to_string()).record(latency);
    }
}

/// The outbox holds `rows` deliveries in `state`.
pub fn outbox_depth(state: &'static str, rows: u64) {
    metrics::gauge!(OUTBOX, "state" => state).set(rows as f64);
}
