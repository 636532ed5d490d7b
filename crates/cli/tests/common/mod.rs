//! Running the `freshen` binary as a user would, in a scratch directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use freshen_testkit::{Db, Pusher, Registry};
use serde_json::Value;

/// A scratch directory with a database URL and a config file path.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub database: String,
    pub extra_env: Vec<(String, String)>,
}

impl Env {
    pub async fn new(db: Db) -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = db.url(dir.path()).await;
        Env {
            dir,
            database,
            extra_env: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `freshen.yaml` (which freshen also reads by default, from
    /// its working directory) and returns its path.
    pub fn config(&self, yaml: &str) -> PathBuf {
        self.config_file("freshen.yaml", yaml)
    }

    /// Writes a config file of another name and returns its path.
    #[allow(dead_code)]
    pub fn config_file(&self, name: &str, yaml: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, yaml).expect("write config");
        p
    }

    pub fn env(&mut self, k: &str, v: &str) {
        self.extra_env.push((k.into(), v.into()));
    }

    /// The command, ready to run or spawn.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_freshen"));
        c.args(args)
            .env("FRESHEN_DATABASE", &self.database)
            .env("FRESHEN_DATA_DIR", self.dir.path())
            .env("DOCKER_CONFIG", self.dir.path().join("docker"))
            .env_remove("FRESHEN_CONFIG")
            .env_remove("FRESHEN_LOG")
            .current_dir(self.dir.path())
            .kill_on_drop(true);
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        c
    }

    /// Starts a long-running `freshen args...` (the daemon) with its stderr
    /// in `<dir>/<log>`, which [`Env::log`] reads back for failure messages.
    pub fn spawn(&self, args: &[&str], log: &str) -> tokio::process::Child {
        let file = std::fs::File::create(self.dir.path().join(log)).expect("log file");
        self.command(args)
            .stderr(std::process::Stdio::from(file))
            .spawn()
            .expect("spawn freshen")
    }

    /// A log written by a spawned process.
    pub fn log(&self, log: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(log)).unwrap_or_default()
    }

    /// Runs `freshen args...` to completion.
    pub async fn run(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().await.expect("run freshen");
        Run::from(out)
    }

    /// Runs `freshen rebuild --config CONFIG what... --json` (`what`:
    /// `--all`, `--base REF`, `--resume`) to completion.
    pub async fn rebuild(&self, config: &str, what: &[&str]) -> Run {
        let mut args = vec!["rebuild", "--config", config];
        args.extend_from_slice(what);
        args.push("--json");
        self.run(&args).await
    }

    /// Runs `freshen plan --config CONFIG --base BASE more...` to completion.
    pub async fn plan(&self, config: &str, base: &str, more: &[&str]) -> Run {
        let mut args = vec!["plan", "--config", config, "--base", base];
        args.extend_from_slice(more);
        self.run(&args).await
    }
}

/// What the tests that build real images start with: a real registry,
/// its `host:port` and a pusher to it, buildah, and an [`Env`] with its
/// scratch dir, as `(reg, host, push, buildah, env, d)`.
pub async fn rig(db: Db) -> (Registry, String, Pusher, Buildah, Env, PathBuf) {
    let reg = Registry::start().await;
    let host = reg.host();
    let push = reg.pusher();
    let buildah = Buildah::new();
    let env = Env::new(db).await;
    let d = env.path().to_path_buf();
    (reg, host, push, buildah, env, d)
}

/// A finished run: exit code and output.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Parses stdout as JSON, with the whole run in the panic message.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self}"))
    }

    /// Asserts the exit code, showing the output otherwise.
    pub fn expect(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "unexpected exit code: {self}");
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The item for `image` in a rebuild run (`rebuild --json`,
/// `rebuilds ID --json`).
pub fn item<'a>(run: &'a Value, image: &str) -> &'a Value {
    run["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["image"] == image)
        .unwrap_or_else(|| panic!("{image} not in {run}"))
}

/// The detail of `image`'s item in a rebuild run.
pub fn item_detail(run: &Value, image: &str) -> String {
    item(run, image)["detail"].as_str().unwrap().to_string()
}

/// The base digests `images show` gives `image` (its first platform), and
/// the run for failure messages.
pub async fn base_digests(env: &Env, image: &str) -> (Vec<String>, Run) {
    let show = env.run(&["images", "show", image, "--json"]).await;
    show.expect(0);
    let bases = show.json()["platforms"][0]["base"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["base_digest"].as_str().map(str::to_string))
        .collect();
    (bases, show)
}

/// The status of one platform in `freshen check --json` output.
pub fn status_of(check: &serde_json::Value, reference: &str, platform: &str) -> String {
    check["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|r| r["reference"] == reference)
        .unwrap_or_else(|| panic!("{reference} not in {check}"))["platforms"]
        .as_array()
        .expect("platforms")
        .iter()
        .find(|p| p["platform"] == platform)
        .unwrap_or_else(|| panic!("{platform} not in {check}"))["status"]
        .as_str()
        .expect("status")
        .to_string()
}

/// Real `buildah` builds (`--isolation chroot --storage-driver vfs`) in a
/// private storage dir, pushed to a test registry.
pub struct Buildah {
    root: tempfile::TempDir,
}

impl Buildah {
    /// Panics with the install command when buildah is missing.
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
}

impl Buildah {
    /// Builds `dockerfile` for several platforms into a manifest list and
    /// pushes it (every image, then the index) as `push_to`.
    #[allow(dead_code)]
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

/// An image's files, unpacked by skopeo and tar (not by freshen): path ->
/// contents (directories as empty), for comparing two images' trees.
#[allow(dead_code)]
pub async fn unpack(
    reference: &str,
    platform: &str,
) -> std::collections::BTreeMap<String, Vec<u8>> {
    let (os, rest) = platform.split_once('/').unwrap();
    let arch = rest.split('/').next().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().join("image");
    let out = tokio::process::Command::new("skopeo")
        .args([
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--override-os",
            os,
            "--override-arch",
            arch,
            &format!("docker://{reference}"),
        ])
        .arg(format!("dir:{}", blobs.display()))
        .output()
        .await
        .expect("skopeo is needed for this test: apt-get install skopeo");
    assert!(
        out.status.success(),
        "skopeo copy {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blobs.join("manifest.json")).unwrap()).unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    for layer in manifest["layers"].as_array().unwrap() {
        let hex = layer["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        let out = std::process::Command::new("tar")
            .arg("-xf")
            .arg(blobs.join(hex))
            .arg("-C")
            .arg(&root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "untar a layer of {reference}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut files = std::collections::BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(&root).unwrap().display().to_string();
            if p.is_dir() {
                files.insert(format!("{rel}/"), Vec::new());
                stack.push(p);
            } else {
                files.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    files
}

/// The repository's fixtures directory (`crates/sbom/tests/fixtures`).
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sbom/tests/fixtures")
}

/// An HTTP client for tests (rustls needs its crypto provider installed first).
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A running `freshen serve`.
#[allow(dead_code)]
pub struct Served {
    /// The server process (killed when dropped).
    pub child: tokio::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// What the server writes to stderr after its address, returned once it exits.
    pub stderr: tokio::task::JoinHandle<String>,
}

/// Starts `freshen serve --config CONFIG` and waits for its address.
#[allow(dead_code)]
pub async fn serve(env: &Env, config: &Path) -> Served {
    use tokio::io::AsyncBufReadExt as _;
    let mut child = env
        .command(&["serve", "--config", config.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
            .await
            .expect("serve starts")
            .unwrap()
            .expect("serve printed its address");
        if let Some(url) = line.strip_prefix("freshen: serving on ") {
            // Keep reading, so the server never blocks on a full pipe.
            let stderr = tokio::spawn(async move {
                let mut rest = String::new();
                while let Ok(Some(l)) = lines.next_line().await {
                    rest.push_str(&l);
                    rest.push('\n');
                }
                rest
            });
            return Served {
                child,
                url: url.to_string(),
                stderr,
            };
        }
    }
}

/// Writes a file, creating its directory.
pub fn write(p: &Path, text: &str) {
    std::fs::create_dir_all(p.parent().expect("a file in a directory")).expect("create dir");
    std::fs::write(p, text).expect("write file");
}

/// golden/base in `<d>/images/base`: `FROM <host>/upstream/os:stable`,
/// adding `base.txt`.
pub fn golden_base(d: &Path, host: &str) {
    write(
        &d.join("images/base/Dockerfile"),
        &format!("FROM {host}/upstream/os:stable\nCOPY base.txt /base.txt\n"),
    );
    write(&d.join("images/base/base.txt"), "base\n");
}

/// The upstream OS, built by buildah and pushed as `upstream/os:v1` and
/// `:v2` (`etc/upstream` says which); returns their digests.
pub async fn upstream_v1_v2(buildah: &Buildah, d: &Path, host: &str) -> Vec<String> {
    let mut digests = Vec::new();
    for v in ["1", "2"] {
        let ctx = d.join(format!("upstream-{v}"));
        write(&ctx.join("etc/upstream"), &format!("upstream {v}\n"));
        digests.push(
            buildah
                .build_push(
                    &ctx,
                    "FROM scratch\nCOPY etc /etc\n",
                    &format!("{host}/upstream/os:v{v}"),
                    &[],
                )
                .await,
        );
    }
    digests
}

/// Tags of a repository, sorted, through the registry API.
pub async fn tags(reg: &freshen_testkit::Registry, repo: &str) -> Vec<String> {
    let body: serde_json::Value = reqwest::get(format!("{}/v2/{repo}/tags/list", reg.url()))
        .await
        .expect("list tags")
        .json()
        .await
        .expect("tags JSON");
    let mut t: Vec<String> = body["tags"]
        .as_array()
        .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    t.sort();
    t
}

/// A `buildah` wrapper script at `<dir>/buildah-wrapper.sh` that holds
/// pushes of `apps/` images while `<dir>/hold` exists, so a test can stop a
/// run in the middle of its apps' wave.
pub fn holding_buildah(dir: &Path) -> PathBuf {
    let wrapper = dir.join("buildah-wrapper.sh");
    write(
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
