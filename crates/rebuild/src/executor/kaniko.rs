//! kaniko's executor: builds in its own container, without a daemon, and
//! pushes; one platform per run (it builds for the platform it runs on,
//! or the one `--custom-platform` names).

use std::path::Path;

use freshen_settings::KanikoSettings;
use tokio::process::Command;

use super::{BuildPush, PushTarget, read_digest, run, scratch, write_authfile};
use crate::{Build, BuildError};

impl BuildPush for KanikoSettings {
    /// Builds `b` (one platform: the definition is refused with more) and
    /// pushes it as `to`; returns the digest kaniko wrote.
    async fn build_push(&self, b: &Build, to: &PushTarget<'_>) -> Result<String, BuildError> {
        if b.platforms.len() > 1 {
            // `load` refuses this; a definition made another way gets the same answer.
            return Err(BuildError::Invalid(format!(
                "{}: kaniko builds one platform per run; this build has {}",
                b.image,
                b.platforms.join(", ")
            )));
        }
        let scratch = scratch(&b.image)?;
        let dir = scratch.path();
        write_authfile(dir, "config.json", to.credentials)
            .map_err(|e| BuildError::Executor(format!("{}: auth file: {e}", b.image)))?;
        let digestfile = dir.join("digest");
        let mut c = Command::new(
            self.command
                .as_deref()
                .unwrap_or(Path::new("/kaniko/executor")),
        );
        // kaniko reads `$DOCKER_CONFIG/config.json`.
        c.env("DOCKER_CONFIG", dir);
        c.arg("--context")
            .arg(format!("dir://{}", b.context.display()))
            .arg("--dockerfile")
            .arg(&b.dockerfile)
            .arg("--destination")
            .arg(to.reference);
        for (k, v) in &b.args {
            c.arg("--build-arg").arg(format!("{k}={v}"));
        }
        if let Some(t) = &b.target {
            c.arg("--target").arg(t);
        }
        if let Some(p) = b.platforms.first() {
            c.arg("--custom-platform").arg(p);
        }
        if to.target_insecure() {
            c.arg("--insecure");
        }
        // Bases from plain-HTTP registries, named one by one.
        for host in to.insecure {
            c.arg("--insecure-registry").arg(host);
        }
        c.arg("--digest-file").arg(&digestfile);
        run(c, &b.image, "kaniko").await?;
        read_digest(&digestfile, &b.image, "kaniko")
    }
}
