//! Builders: commands that build and push (buildah and podman, which share
//! one argument model; docker buildx; kaniko) and a Jenkins job that does
//! it elsewhere. A build is pushed under its new version tag; promotion to
//! other tags is the registry's job, by manifest copy.

mod containers;
mod docker;
mod jenkins;
mod kaniko;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use tokio::process::Command;

use crate::{Build, BuildError};

pub use containers::{ContainersBuildPush, ContainersTool};
/// `builders:` and each builder's settings: defined with the other
/// settings types (`freshen-settings`), so the config layer can read them
/// without this crate's runtime.
pub use freshen_settings::{
    BuildahSettings, BuilderSettings, ContainersSettings, DockerSettings, JenkinsSettings,
    KanikoSettings, PodmanSettings,
};
pub use jenkins::JenkinsBuildPush;

/// A builder run as a command (buildah, podman, docker buildx, kaniko):
/// builds an image and pushes it. A trait because the settings types are
/// defined in `freshen-settings`, which runs nothing.
pub trait BuildPush {
    /// Builds `b` and pushes it as `to`; returns the digest pushed, or an
    /// empty string when the builder reported none (the runner then asks
    /// the registry).
    fn build_push(
        &self,
        b: &Build,
        to: &PushTarget<'_>,
    ) -> impl Future<Output = Result<String, BuildError>> + Send;
}

/// Where a build pushes, and how to reach registries.
pub struct PushTarget<'a> {
    /// `registry/repository:version`.
    pub reference: &'a str,
    /// Registries to reach over plain HTTP (the target's and bases').
    pub insecure: &'a BTreeSet<String>,
    /// Credentials from the config, `(registry, username, password)`:
    /// written with the docker config's own entries into an auth file only
    /// the build can read, never put on a command line.
    pub credentials: &'a [(String, String, String)],
}

impl PushTarget<'_> {
    /// The target's registry host.
    fn host(&self) -> &str {
        self.reference.split('/').next().unwrap_or_default()
    }

    /// The target registry is spoken to over plain HTTP.
    fn target_insecure(&self) -> bool {
        self.insecure.contains(self.host())
    }
}

/// The user's docker config directory: `$DOCKER_CONFIG`, else `~/.docker`.
fn docker_config_dir() -> Option<PathBuf> {
    std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")))
}

/// The docker config's `auths` (and helpers), plus the config's own
/// credentials, as `name` in `dir`, readable by its owner only. Without a
/// docker config, an empty one: buildah fails on a `DOCKER_CONFIG` that
/// names a missing file.
fn write_authfile(
    dir: &Path,
    name: &str,
    credentials: &[(String, String, String)],
) -> std::io::Result<PathBuf> {
    use base64::Engine as _;
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let docker = docker_config_dir().map(|d| d.join("config.json"));
    let mut doc: serde_json::Value = docker
        .filter(|p| p.is_file())
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(serde_json::Value::is_object)
        .unwrap_or_else(|| serde_json::json!({}));
    if !doc["auths"].is_object() {
        doc["auths"] = serde_json::json!({});
    }
    for (host, user, pass) in credentials {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        doc["auths"][host] = serde_json::json!({ "auth": token });
    }
    let path = dir.join(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(doc.to_string().as_bytes())?;
    Ok(path)
}

/// A scratch directory for one build (auth file, digest file), removed
/// when dropped.
fn scratch(image: &str) -> Result<tempfile::TempDir, BuildError> {
    tempfile::tempdir().map_err(|e| BuildError::Executor(format!("{image}: scratch dir: {e}")))
}

/// Runs a builder command; a failure names the image, the step and the
/// end of its stderr.
async fn run(mut c: Command, image: &str, what: &str) -> Result<(), BuildError> {
    c.kill_on_drop(true);
    let out = c
        .output()
        .await
        .map_err(|e| BuildError::Executor(format!("{image}: {what}: cannot run it: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The end of stderr says what went wrong; keep it to a few lines.
    let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(BuildError::Executor(format!(
        "{image}: {what} failed ({}): {}",
        out.status,
        tail.join(" | ")
    )))
}

/// A digest a builder wrote to a file: trimmed; empty when the builder
/// wrote none (the runner then asks the registry).
fn read_digest(path: &Path, image: &str, who: &str) -> Result<String, BuildError> {
    std::fs::read_to_string(path)
        .map(|d| d.trim().to_string())
        .map_err(|e| BuildError::Executor(format!("{image}: {who} wrote no digest: {e}")))
}

/// A name unique enough for a local image (process id and time).
fn uuid_like() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}-{t}", std::process::id())
}
