//! `docker buildx build --push`: BuildKit builds every platform and pushes
//! the result itself; the digest comes from the metadata file.

use std::path::Path;

use freshen_settings::DockerSettings;
use tokio::process::Command;

use super::{BuildPush, PushTarget, docker_config_dir, run, scratch, write_authfile};
use crate::{Build, BuildError};

impl BuildPush for DockerSettings {
    /// Builds `b` for all its platforms and pushes it as `to`; returns the
    /// digest BuildKit reports (`containerimage.digest`), or an empty
    /// string when it reports none.
    async fn build_push(&self, b: &Build, to: &PushTarget<'_>) -> Result<String, BuildError> {
        let scratch = scratch(&b.image)?;
        let dir = scratch.path();
        // Credentials go into a docker config of the build's own; buildx
        // keeps its builder instances and contexts in the config dir, so
        // the user's are linked in.
        write_authfile(dir, "config.json", to.credentials)
            .map_err(|e| BuildError::Executor(format!("{}: auth file: {e}", b.image)))?;
        if let Some(home) = docker_config_dir() {
            for sub in ["buildx", "contexts", "cli-plugins"] {
                if home.join(sub).exists() {
                    let _ = std::os::unix::fs::symlink(home.join(sub), dir.join(sub));
                }
            }
        }
        let metadata = dir.join("metadata.json");
        let mut c = Command::new(self.command.as_deref().unwrap_or(Path::new("docker")));
        c.env("DOCKER_CONFIG", dir);
        c.args(["buildx", "build"]);
        if let Some(builder) = &self.builder {
            c.arg("--builder").arg(builder);
        }
        c.arg("--platform")
            .arg(b.platforms.join(","))
            .arg("--pull")
            .arg("--no-cache")
            .arg("-f")
            .arg(&b.dockerfile);
        for (k, v) in &b.args {
            c.arg("--build-arg").arg(format!("{k}={v}"));
        }
        if let Some(t) = &b.target {
            c.arg("--target").arg(t);
        }
        if to.target_insecure() {
            // BuildKit has no per-host setting on the command line but this
            // output attribute, for the one destination.
            c.arg("--output").arg(format!(
                "type=image,name={},push=true,registry.insecure=true",
                to.reference
            ));
        } else {
            c.arg("--push").arg("-t").arg(to.reference);
        }
        c.arg("--metadata-file").arg(&metadata).arg(&b.context);
        run(c, &b.image, "docker buildx build").await?;
        let text = std::fs::read_to_string(&metadata).map_err(|e| {
            BuildError::Executor(format!(
                "{}: docker buildx wrote no metadata file: {e}",
                b.image
            ))
        })?;
        let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            BuildError::Executor(format!(
                "{}: docker buildx's metadata file is not JSON: {e}",
                b.image
            ))
        })?;
        Ok(doc["containerimage.digest"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }
}
