//! Running the `freshen` binary as a user would, in a scratch directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use freshen_testkit::{Db, Pusher, Registry};
// The image helpers every CLI test uses live in testkit.
#[allow(unused_imports)]
pub use freshen_testkit::{
    Buildah, golden_base, holding_buildah, http, unpack, upstream_v1_v2, write_file as write,
};
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

    /// Writes `freshen.yaml` in the scratch dir and returns its path, for
    /// `--config` (freshen reads no config file unless told).
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

/// The repository's fixtures directory (`crates/sbom/tests/fixtures`).
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sbom/tests/fixtures")
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
