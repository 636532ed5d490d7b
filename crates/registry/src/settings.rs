//! How to reach each registry: transport, mirrors, limits, credentials,
//! and how requests are retried.

use std::time::Duration;

/// Defined with the other settings types (`freshen-settings`), so the
/// config layer can read it without this crate's runtime.
pub use freshen_settings::RegistrySettings;

/// How requests are retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Delay before the first retry; doubled for each further one.
    pub initial_backoff: Duration,
    /// Longest wait between attempts, and the longest `Retry-After` honoured
    /// by sleeping; a longer one fails the request as rate limited.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// Everything a [`crate::Client`] needs to know.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Per-registry settings; registries not listed get the defaults.
    pub registries: Vec<RegistrySettings>,
    /// Retry behaviour for every request.
    pub retry: RetryPolicy,
    /// Default per-request timeout.
    pub timeout: Duration,
    /// Read credentials from the docker config (`DOCKER_CONFIG` or `~/.docker`).
    pub docker_config: bool,
    /// Largest manifest accepted, in bytes (the distribution spec suggests 4 MiB).
    pub max_manifest_bytes: usize,
    /// Largest blob streamed from one repository or registry into another
    /// when it cannot be mounted, in bytes (default 10 GiB). Nothing is
    /// held in memory: the limit only guards against a runaway source.
    pub max_blob_copy_bytes: u64,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            registries: Vec::new(),
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(30),
            docker_config: true,
            max_manifest_bytes: 4 * 1024 * 1024,
            max_blob_copy_bytes: 10 * 1024 * 1024 * 1024,
        }
    }
}
