//! Running the `freshen` binary as a user would, in a scratch directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use freshen_testkit::Db;

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

    /// Writes `freshen.yaml` and returns its path.
    pub fn config(&self, yaml: &str) -> PathBuf {
        let p = self.dir.path().join("freshen.yaml");
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
