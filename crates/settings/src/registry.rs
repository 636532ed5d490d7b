//! `registries:`: how to reach each registry (transport, mirrors, limits,
//! credentials).

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
