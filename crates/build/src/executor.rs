//! Builders that run a command: buildah (and the same arguments model for
//! the others as they come). A build is pushed under its new version tag;
//! promotion to other tags is the registry's job, by manifest copy.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tokio::process::Command;

use crate::{Build, BuildError};

/// `builders:` in the config: how builder commands are run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuilderSettings {
    /// buildah.
    #[serde(default)]
    pub buildah: BuildahSettings,
}

/// How buildah is run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildahSettings {
    /// The command; default `buildah`.
    #[serde(default)]
    pub command: Option<PathBuf>,
    /// `--root` (image storage); default: buildah's own.
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

impl BuildahSettings {
    fn command(&self, scratch: &Path) -> Command {
        let mut c = Command::new(self.command.as_deref().unwrap_or(Path::new("buildah")));
        if let Some(r) = &self.root {
            c.arg("--root").arg(r);
        }
        if let Some(r) = &self.runroot {
            c.arg("--runroot").arg(r);
        }
        if let Some(d) = &self.storage_driver {
            c.arg("--storage-driver").arg(d);
        }
        c.env(
            "CONTAINERS_REGISTRIES_CONF",
            scratch.join("registries.conf"),
        );
        c.kill_on_drop(true);
        c
    }

    /// Builds `b` and pushes it as `to`; returns the digest pushed (a
    /// manifest, or an index for several platforms).
    pub async fn build_push(&self, b: &Build, to: &PushTarget<'_>) -> Result<String, BuildError> {
        let scratch = tempfile::tempdir()
            .map_err(|e| BuildError::Executor(format!("{}: scratch dir: {e}", b.image)))?;
        // Plain-HTTP registries are named one by one, never `--tls-verify=false` for all.
        let mut conf = String::from("unqualified-search-registries = []\n");
        for host in to.insecure {
            conf.push_str(&format!(
                "\n[[registry]]\nlocation = \"{host}\"\ninsecure = true\n"
            ));
        }
        std::fs::write(scratch.path().join("registries.conf"), conf)
            .map_err(|e| BuildError::Executor(format!("{}: registries.conf: {e}", b.image)))?;
        let authfile = write_authfile(scratch.path(), to.credentials)
            .map_err(|e| BuildError::Executor(format!("{}: auth file: {e}", b.image)))?;
        let local = format!("localhost/freshen-build/{}", uuid_like());
        let several = b.platforms.len() > 1;
        let mut bud = self.command(scratch.path());
        bud.arg("bud")
            .arg("--pull=always")
            .arg(format!(
                "--isolation={}",
                self.isolation.as_deref().unwrap_or("chroot")
            ))
            .arg("-f")
            .arg(&b.dockerfile);
        if several {
            bud.arg("--manifest").arg(&local);
        } else {
            bud.arg("-t").arg(&local);
        }
        bud.arg("--platform").arg(b.platforms.join(","));
        for (k, v) in &b.args {
            bud.arg("--build-arg").arg(format!("{k}={v}"));
        }
        if let Some(t) = &b.target {
            bud.arg("--target").arg(t);
        }
        bud.arg("--authfile").arg(&authfile);
        bud.arg(&b.context);
        run(bud, &b.image, "buildah bud").await?;
        let digestfile = scratch.path().join("digest");
        let mut push = self.command(scratch.path());
        if several {
            push.args(["manifest", "push", "--all"]);
            // buildah 1.28's `manifest push` ignores registries.conf's
            // `insecure` (it then fails on TLS and still exits 0): say it
            // for the one destination, when that is a plain-HTTP registry.
            let host = to.reference.split('/').next().unwrap_or_default();
            if to.insecure.contains(host) {
                push.arg("--tls-verify=false");
            }
        } else {
            push.arg("push");
        }
        push.arg("--digestfile").arg(&digestfile);
        push.arg("--authfile").arg(&authfile);
        push.arg(&local).arg(format!("docker://{}", to.reference));
        let pushed = run(push, &b.image, "buildah push").await;
        // The local image is only a means to push: drop it either way.
        let mut rmi = self.command(scratch.path());
        if several {
            rmi.args(["manifest", "rm"]);
        } else {
            rmi.arg("rmi");
        }
        let _ = rmi.arg(&local).output().await;
        pushed?;
        let digest = std::fs::read_to_string(&digestfile).map_err(|e| {
            BuildError::Executor(format!("{}: buildah wrote no digest: {e}", b.image))
        })?;
        Ok(digest.trim().to_string())
    }
}

/// The docker config's `auths` (and helpers), plus the config's own
/// credentials, as an auth file readable by its owner only. Without a
/// docker config, an empty one: buildah fails on a `DOCKER_CONFIG` that
/// names a missing file.
fn write_authfile(
    dir: &Path,
    credentials: &[(String, String, String)],
) -> std::io::Result<PathBuf> {
    use base64::Engine as _;
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let docker = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")))
        .map(|d| d.join("config.json"));
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
    let path = dir.join("auth.json");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(doc.to_string().as_bytes())?;
    Ok(path)
}

async fn run(mut c: Command, image: &str, what: &str) -> Result<(), BuildError> {
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

/// A name unique enough for a local image (process id and time).
fn uuid_like() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}-{t}", std::process::id())
}
