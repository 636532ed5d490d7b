//! `builders:`: how each builder is run (buildah, podman, docker buildx,
//! kaniko) and the Jenkins that runs `executor: jenkins` builds. Running
//! them is the rebuild layer's.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// `builders:` in the config: how each builder is run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuilderSettings {
    /// buildah.
    #[serde(default)]
    pub buildah: BuildahSettings,
    /// podman (the same settings as buildah).
    #[serde(default)]
    pub podman: PodmanSettings,
    /// `docker buildx`.
    #[serde(default)]
    pub docker: DockerSettings,
    /// kaniko's executor.
    #[serde(default)]
    pub kaniko: KanikoSettings,
    /// The Jenkins that runs `executor: jenkins` builds; required by them.
    #[serde(default)]
    pub jenkins: Option<JenkinsSettings>,
}

/// How buildah or podman is run (`builders.buildah`, `builders.podman`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainersSettings {
    /// The command; default `buildah` or `podman`.
    #[serde(default)]
    pub command: Option<PathBuf>,
    /// `--root` (image storage); default: the tool's own.
    #[serde(default)]
    pub root: Option<PathBuf>,
    /// `--runroot`.
    #[serde(default)]
    pub runroot: Option<PathBuf>,
    /// `--storage-driver` (`vfs` where overlay is unavailable).
    #[serde(default)]
    pub storage_driver: Option<String>,
    /// `--isolation`: `oci`, `rootless` or `chroot`; default `chroot`,
    /// which works inside containers and CI runners.
    #[serde(default)]
    pub isolation: Option<String>,
}

/// `builders.buildah`.
pub type BuildahSettings = ContainersSettings;
/// `builders.podman`.
pub type PodmanSettings = ContainersSettings;

/// How docker buildx is run (`builders.docker`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerSettings {
    /// The command; default `docker`.
    #[serde(default)]
    pub command: Option<PathBuf>,
    /// `--builder`: the buildx builder instance; default: the current one.
    #[serde(default)]
    pub builder: Option<String>,
}

/// How kaniko is run (`builders.kaniko`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KanikoSettings {
    /// The command; default `/kaniko/executor`, where kaniko's image has it.
    #[serde(default)]
    pub command: Option<PathBuf>,
}

/// `builders.jenkins`: the Jenkins that runs `executor: jenkins` builds.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JenkinsSettings {
    /// Jenkins' root URL, e.g. `https://jenkins.example:8080/ci`.
    pub url: String,
    /// The user whose API token is used.
    #[serde(default)]
    pub user: Option<String>,
    /// The user's API token: a secret, written as `${ENV}` in the file;
    /// never logged nor shown.
    #[serde(default)]
    pub token: Option<String>,
    /// Ask the crumb issuer for a CSRF crumb first (skipped when Jenkins
    /// has none); default true.
    #[serde(default = "yes")]
    pub crumb: bool,
    /// How long a build may take, queue included; default 1h.
    #[serde(default = "hour", with = "humantime_serde")]
    pub timeout: Duration,
    /// How often the queue item and the build are polled; default 5s.
    #[serde(default = "five_seconds", with = "humantime_serde")]
    pub poll_interval: Duration,
}

fn yes() -> bool {
    true
}

fn hour() -> Duration {
    Duration::from_secs(3600)
}

fn five_seconds() -> Duration {
    Duration::from_secs(5)
}

impl std::fmt::Debug for JenkinsSettings {
    // The token never shows: only whether there is one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JenkinsSettings")
            .field("url", &crate::redact_url(&self.url))
            .field("user", &self.user)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("crumb", &self.crumb)
            .field("timeout", &self.timeout)
            .field("poll_interval", &self.poll_interval)
            .finish()
    }
}

impl JenkinsSettings {
    /// Checks what can be checked before a run; the message says what to fix.
    pub fn validate(&self) -> Result<(), String> {
        let u = url::Url::parse(&self.url)
            .map_err(|e| format!("url {:?}: {e}", crate::redact_url(&self.url)))?;
        if u.scheme() != "http" && u.scheme() != "https" {
            return Err("url: only http and https".into());
        }
        if self.user.is_some() != self.token.is_some() {
            return Err("user and token go together".into());
        }
        if self.poll_interval.is_zero() {
            return Err("poll_interval must be more than 0".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_default_and_never_show_the_token() {
        let s: JenkinsSettings = serde_json::from_value(serde_json::json!({
            "url": "https://jenkins.example/ci", "user": "freshen", "token": "11abcdef-secret"
        }))
        .unwrap();
        s.validate().unwrap();
        assert!(s.crumb);
        assert_eq!(s.timeout, Duration::from_secs(3600));
        assert_eq!(s.poll_interval, Duration::from_secs(5));
        let shown = format!("{s:?}");
        assert!(!shown.contains("11abcdef-secret"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");

        let s: JenkinsSettings = serde_json::from_value(serde_json::json!({
            "url": "http://j:8080", "token": "t", "timeout": "90s", "poll_interval": "250ms"
        }))
        .unwrap();
        assert_eq!(s.timeout, Duration::from_secs(90));
        assert_eq!(s.poll_interval, Duration::from_millis(250));
        assert_eq!(s.validate().unwrap_err(), "user and token go together");
        let bad: Result<JenkinsSettings, _> =
            serde_json::from_value(serde_json::json!({"url": "http://j", "jobs": "x"}));
        assert!(
            bad.unwrap_err()
                .to_string()
                .contains("unknown field `jobs`")
        );
        let s: JenkinsSettings =
            serde_json::from_value(serde_json::json!({"url": "ftp://j"})).unwrap();
        assert_eq!(s.validate().unwrap_err(), "url: only http and https");
    }
}
