//! How to reach each registry: transport, mirrors, limits, credentials.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Settings for one registry, as written under `registries:` in the config.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegistrySettings {
    /// The registry name as it appears in references: `docker.io`, `localhost:5000`.
    pub host: String,
    /// Speak plain HTTP instead of HTTPS. Default: true for loopback hosts
    /// (`localhost`, `127.0.0.0/8`, `::1`), as docker does, false elsewhere.
    #[serde(default)]
    pub insecure: Option<bool>,
    /// A PEM file with extra CA certificates to trust for this registry.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Hosts (optionally `host/path-prefix`) to read from first; the registry
    /// itself is asked when every mirror fails.
    #[serde(default)]
    pub mirrors: Vec<String>,
    /// At most this many requests in flight to this registry.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    /// Credentials for this registry; when absent `~/.docker/config.json` is used.
    #[serde(default)]
    pub username: Option<String>,
    /// Password or token that goes with `username`.
    #[serde(default)]
    pub password: Option<String>,
    /// Per-request timeout, e.g. `30s`.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

impl RegistrySettings {
    /// Whether to speak plain HTTP: as configured, else only on loopback.
    pub fn plain_http(&self) -> bool {
        self.insecure.unwrap_or_else(|| is_loopback(&self.host))
    }
}

/// `localhost`, `127.x.x.x` or `[::1]`, with or without a port.
fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name == "localhost"
        || name == "::1"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl std::fmt::Debug for RegistrySettings {
    // The password must not reach logs through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrySettings")
            .field("host", &self.host)
            .field("insecure", &self.insecure)
            .field("ca_file", &self.ca_file)
            .field("mirrors", &self.mirrors)
            .field("max_concurrency", &self.max_concurrency)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn default_concurrency() -> usize {
    8
}

impl RegistrySettings {
    /// Settings with every default for `host`.
    pub fn for_host(host: &str) -> RegistrySettings {
        RegistrySettings {
            host: host.to_string(),
            insecure: None,
            ca_file: None,
            mirrors: Vec::new(),
            max_concurrency: default_concurrency(),
            username: None,
            password: None,
            timeout: None,
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let mut s = RegistrySettings::for_host("r.example");
        s.username = Some("ci".into());
        s.password = Some("hunter2".into());
        let shown = format!("{s:?}");
        assert!(
            shown.contains("ci") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
