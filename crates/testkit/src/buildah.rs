//! Real `buildah` builds for tests: images and manifest lists built from a
//! Dockerfile and pushed to a test registry, in a private storage dir.

use std::path::{Path, PathBuf};

use crate::files::write_file;

/// Real `buildah` builds (`--isolation chroot --storage-driver vfs`) in a
/// private storage dir (removed when dropped), pushed to a test registry
/// over plain HTTP.
pub struct Buildah {
    root: tempfile::TempDir,
}

impl Buildah {
    /// Checks that buildah runs (panics with the install command when it is
    /// missing) and makes the private storage dir.
    pub fn new() -> Buildah {
        let ok = std::process::Command::new("buildah")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            ok,
            "buildah is needed for this test: apt-get install buildah"
        );
        Buildah {
            root: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// `buildah` with this storage dir: for steps the helpers here don't
    /// take (`from`, `mount`, `run`, `inspect`, builds with volumes).
    pub fn command(&self) -> tokio::process::Command {
        self.cmd()
    }

    fn cmd(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("buildah");
        c.arg("--root")
            .arg(self.root.path().join("root"))
            .arg("--runroot")
            .arg(self.root.path().join("run"))
            .arg("--storage-driver")
            .arg("vfs");
        c
    }

    /// Builds `dockerfile` (text) in `context` and pushes it as `push_to`
    /// (`host:port/repo:tag`); returns the pushed manifest digest.
    pub async fn build_push(
        &self,
        context: &Path,
        dockerfile: &str,
        push_to: &str,
        build_args: &[(&str, &str)],
    ) -> String {
        let df = context.join(format!("Dockerfile.{}", push_to.replace(['/', ':'], "_")));
        std::fs::write(&df, dockerfile).expect("write Dockerfile");
        let local = format!(
            "localhost/freshen-test/{}",
            push_to.rsplit('/').next().unwrap().replace(':', "-")
        );
        let mut c = self.cmd();
        c.args([
            "bud",
            "-q",
            "--isolation",
            "chroot",
            "--tls-verify=false",
            "-f",
        ])
        .arg(&df)
        .args(["-t", &local]);
        for (k, v) in build_args {
            c.arg("--build-arg").arg(format!("{k}={v}"));
        }
        let out = c.arg(context).output().await.expect("run buildah bud");
        assert!(
            out.status.success(),
            "buildah bud failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let digest_file = self.root.path().join("digest");
        let out = self
            .cmd()
            .args(["push", "-q", "--tls-verify=false", "--digestfile"])
            .arg(&digest_file)
            .arg(&local)
            .arg(format!("docker://{push_to}"))
            .output()
            .await
            .expect("run buildah push");
        assert!(
            out.status.success(),
            "buildah push failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(&digest_file)
            .expect("digest file")
            .trim()
            .to_string()
    }

    /// Builds `dockerfile` for several platforms into a manifest list and
    /// pushes it (every image, then the index) as `push_to`.
    pub async fn build_push_index(
        &self,
        context: &Path,
        dockerfile: &str,
        push_to: &str,
        platforms: &[&str],
    ) {
        let df = context.join(format!("Dockerfile.{}", push_to.replace(['/', ':'], "_")));
        std::fs::write(&df, dockerfile).expect("write Dockerfile");
        let local = format!(
            "localhost/freshen-test/list-{}",
            push_to.rsplit('/').next().unwrap().replace(':', "-")
        );
        let out = self
            .cmd()
            .args([
                "bud",
                "-q",
                "--isolation",
                "chroot",
                "--tls-verify=false",
                "--platform",
                &platforms.join(","),
                "--manifest",
                &local,
                "-f",
            ])
            .arg(&df)
            .arg(context)
            .output()
            .await
            .expect("run buildah bud");
        assert!(
            out.status.success(),
            "buildah bud --manifest failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = self
            .cmd()
            .args(["manifest", "push", "-q", "--all", "--tls-verify=false"])
            .arg(&local)
            .arg(format!("docker://{push_to}"))
            .output()
            .await
            .expect("run buildah manifest push");
        assert!(
            out.status.success(),
            "buildah manifest push failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = self.cmd().args(["manifest", "rm", &local]).output().await;
    }
}

impl Default for Buildah {
    /// [`Buildah::new`].
    fn default() -> Buildah {
        Buildah::new()
    }
}

/// A `buildah` wrapper script at `<dir>/buildah-wrapper.sh` that holds
/// pushes of `apps/` images while `<dir>/hold` exists, so a test can stop a
/// run in the middle of its apps' wave.
pub fn holding_buildah(dir: &Path) -> PathBuf {
    let wrapper = dir.join("buildah-wrapper.sh");
    write_file(
        &wrapper,
        &format!(
            "#!/bin/sh\ncase \"$*\" in *push*/apps/*) while [ -e {hold} ]; do sleep 0.1; done;; esac\nexec buildah \"$@\"\n",
            hold = dir.join("hold").display()
        ),
    );
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod wrapper");
    wrapper
}
