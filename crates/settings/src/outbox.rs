//! `outbox:`: how deliveries are leased, retried and run in parallel.

use std::time::Duration;

use serde::Deserialize;

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
