//! buildah and podman: the same containers/storage tools, so one argument
//! model: build into local storage (`--manifest` for several platforms),
//! push to the version tag with a digest file, drop the local image.

use std::path::Path;

use freshen_settings::ContainersSettings;
use tokio::process::Command;

use super::{BuildPush, PushTarget, read_digest, run, scratch, uuid_like, write_authfile};
use crate::{Build, BuildError};

/// Which of the two tools runs a build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainersTool {
    /// `buildah bud`, `buildah push`.
    Buildah,
    /// `podman build`, `podman push`.
    Podman,
}

impl ContainersTool {
    fn name(self) -> &'static str {
        match self {
            ContainersTool::Buildah => "buildah",
            ContainersTool::Podman => "podman",
        }
    }
}

/// The `buildah`/`podman` command with the settings' global options and
/// this build's `registries.conf`.
fn tool_command(s: &ContainersSettings, tool: ContainersTool, scratch: &Path) -> Command {
    let mut c = Command::new(s.command.as_deref().unwrap_or(Path::new(tool.name())));
    if let Some(r) = &s.root {
        c.arg("--root").arg(r);
    }
    if let Some(r) = &s.runroot {
        c.arg("--runroot").arg(r);
    }
    if let Some(d) = &s.storage_driver {
        c.arg("--storage-driver").arg(d);
    }
    c.env(
        "CONTAINERS_REGISTRIES_CONF",
        scratch.join("registries.conf"),
    );
    c.kill_on_drop(true);
    c
}

impl BuildPush for ContainersSettings {
    /// Builds `b` with buildah and pushes it as `to`; returns the digest
    /// pushed (a manifest, or an index for several platforms), or an empty
    /// string when buildah wrote none.
    async fn build_push(&self, b: &Build, to: &PushTarget<'_>) -> Result<String, BuildError> {
        self.build_push_with(ContainersTool::Buildah, b, to).await
    }
}

/// buildah or podman, chosen per build (`builders.buildah` and
/// `builders.podman` share one settings type).
pub trait ContainersBuildPush {
    /// [`BuildPush::build_push`], with buildah or podman.
    fn build_push_with(
        &self,
        tool: ContainersTool,
        b: &Build,
        to: &PushTarget<'_>,
    ) -> impl Future<Output = Result<String, BuildError>> + Send;
}

impl ContainersBuildPush for ContainersSettings {
    async fn build_push_with(
        &self,
        tool: ContainersTool,
        b: &Build,
        to: &PushTarget<'_>,
    ) -> Result<String, BuildError> {
        let name = tool.name();
        let scratch = scratch(&b.image)?;
        // Plain-HTTP registries are named one by one, never `--tls-verify=false` for all.
        let mut conf = String::from("unqualified-search-registries = []\n");
        for host in to.insecure {
            conf.push_str(&format!(
                "\n[[registry]]\nlocation = \"{host}\"\ninsecure = true\n"
            ));
        }
        std::fs::write(scratch.path().join("registries.conf"), conf)
            .map_err(|e| BuildError::Executor(format!("{}: registries.conf: {e}", b.image)))?;
        let authfile = write_authfile(scratch.path(), "auth.json", to.credentials)
            .map_err(|e| BuildError::Executor(format!("{}: auth file: {e}", b.image)))?;
        let local = format!("localhost/freshen-build/{}", uuid_like());
        let several = b.platforms.len() > 1;
        let mut bud = tool_command(self, tool, scratch.path());
        match tool {
            ContainersTool::Buildah => bud.arg("bud"),
            // podman caches layers by default; a rebuild must not reuse them.
            ContainersTool::Podman => bud.arg("build").arg("--layers=false"),
        };
        bud.arg("--pull=always")
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
        run(bud, &b.image, &format!("{name} build")).await?;
        let digestfile = scratch.path().join("digest");
        let mut push = tool_command(self, tool, scratch.path());
        if several {
            push.args(["manifest", "push", "--all"]);
            // buildah 1.28's `manifest push` ignores registries.conf's
            // `insecure` (it then fails on TLS and still exits 0): say it
            // for the one destination, when that is a plain-HTTP registry.
            if to.target_insecure() {
                push.arg("--tls-verify=false");
            }
        } else {
            push.arg("push");
            // podman does read registries.conf here; saying it for the one
            // destination too costs nothing and does not depend on it.
            if tool == ContainersTool::Podman && to.target_insecure() {
                push.arg("--tls-verify=false");
            }
        }
        push.arg("--digestfile").arg(&digestfile);
        push.arg("--authfile").arg(&authfile);
        push.arg(&local).arg(format!("docker://{}", to.reference));
        let pushed = run(push, &b.image, &format!("{name} push")).await;
        // The local image is only a means to push: drop it either way.
        let mut rmi = tool_command(self, tool, scratch.path());
        if several {
            rmi.args(["manifest", "rm"]);
        } else {
            rmi.arg("rmi");
        }
        let _ = rmi.arg(&local).output().await;
        pushed?;
        read_digest(&digestfile, &b.image, name)
    }
}
