//! A real CNCF Distribution registry (`docker-registry`) on a loopback port.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::http::{free_port, http_client};
use crate::pusher::Pusher;
use crate::random::random_hex;
use crate::tools::require_tool;

/// How long [`Registry::start_with`] waits for `GET /v2/` to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Options for [`Registry::start_with`].
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// `(user, password)`: turns on htpasswd (HTTP basic) auth with this one
    /// account; the bcrypt file is made with `htpasswd -Bbn`.
    pub auth: Option<(String, String)>,
    /// Adds a `notifications.endpoints` entry (name `freshen`, timeout 5s,
    /// threshold 3, backoff 1s) that POSTs registry events to this URL.
    pub notifications_url: Option<String>,
    /// Sent with each notification as `Authorization: Bearer <token>`
    /// (the endpoint's `headers`).
    pub notifications_token: Option<String>,
}

/// A running `docker-registry serve` (CNCF Distribution 2.8) on
/// `127.0.0.1:<free port>`, storing into a temporary directory (filesystem
/// driver, deletes enabled, log level warn, no debug server).
///
/// The process is killed when the value is dropped. It is started under a
/// small `sh` watchdog holding a pipe from this process, so the registry is
/// also killed if the test process dies without dropping it (for instance
/// when a `Registry` lives in a `static`). The process does not depend on
/// any tokio runtime, so one registry can serve every test of a binary.
///
/// Known behaviour of Distribution 2.8 worth knowing in tests: `tags/list`
/// ignores `n`/`last` (no pagination, unsorted order; see
/// [`crate::FaultProxy::set_tag_page_size`]), `_catalog` does paginate, and
/// OCI manifests are only served (GET/HEAD) when the request's `Accept`
/// header names their media type (404 otherwise).
pub struct Registry {
    host: String,
    auth: Option<(String, String)>,
    child: Option<Child>,
    watchdog_pipe: Option<ChildStdin>,
    stderr_path: PathBuf,
    dir: TempDir,
}

enum Startup {
    Ready,
    Exited(String),
    TimedOut(String),
}

impl Registry {
    /// Starts a registry without auth or notifications.
    pub async fn start() -> Registry {
        Registry::start_with(RegistryOptions::default()).await
    }

    /// Starts a registry that requires HTTP basic auth as `user`/`pass`
    /// (htpasswd auth: panics naming `apt-get install apache2-utils` when
    /// `htpasswd` is missing).
    pub async fn start_with_auth(user: &str, pass: &str) -> Registry {
        Registry::start_with(RegistryOptions {
            auth: Some((user.to_string(), pass.to_string())),
            ..RegistryOptions::default()
        })
        .await
    }

    /// Starts a registry with the given options; waits (10 s at most) until
    /// `GET /v2/` answers 200 or 401, else panics with the registry's stderr.
    /// Panics naming `apt-get install docker-registry` when the binary is
    /// missing.
    pub async fn start_with(opts: RegistryOptions) -> Registry {
        let bin = require_tool("docker-registry", "apt-get install docker-registry");
        let mut dir = tempfile::Builder::new()
            .prefix("freshen-registry-")
            .tempdir()
            .expect("creating the registry temp dir failed");
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).expect("creating the registry storage dir failed");

        let htpasswd_path = opts
            .auth
            .as_ref()
            .map(|(user, pass)| write_htpasswd(dir.path(), user, pass));

        let stderr_path = dir.path().join("registry.log");
        let config_path = dir.path().join("config.yml");
        let secret = random_hex(16);
        let mut last_failure = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let host = format!("127.0.0.1:{port}");
            let config = render_config(
                &host,
                &storage,
                &secret,
                htpasswd_path.as_deref(),
                opts.notifications_url.as_deref(),
                opts.notifications_token.as_deref(),
            );
            std::fs::write(&config_path, config).expect("writing the registry config failed");
            // Fresh log for each attempt.
            let log = File::create(&stderr_path).expect("creating the registry log failed");
            let log2 = log.try_clone().expect("cloning the registry log handle");
            let mut child = Command::new("sh")
                .arg("-c")
                // fd 3 keeps the read end of our pipe; the watchdog kills the
                // registry when the pipe closes (drop, or this process dying).
                .arg(
                    "exec 3<&0; \"$0\" serve \"$1\" </dev/null & pid=$!; \
                     (read -r line <&3; kill -9 $pid 2>/dev/null) & wait $pid",
                )
                .arg(&bin)
                .arg(&config_path)
                .stdin(Stdio::piped())
                .stdout(Stdio::from(log))
                .stderr(Stdio::from(log2))
                .spawn()
                .expect("spawning docker-registry (via sh) failed");
            let pipe = child.stdin.take();
            let mut registry = Registry {
                host: host.clone(),
                auth: opts.auth.clone(),
                child: Some(child),
                watchdog_pipe: pipe,
                stderr_path: stderr_path.clone(),
                dir,
            };
            match registry.wait_ready().await {
                Startup::Ready => return registry,
                Startup::Exited(log) if log.contains("address already in use") => {
                    last_failure = log;
                    registry.shutdown();
                    dir = registry.take_dir();
                    continue;
                }
                Startup::Exited(log) => {
                    panic!(
                        "freshen-testkit: docker-registry exited during startup; its stderr:\n{log}"
                    )
                }
                Startup::TimedOut(log) => panic!(
                    "freshen-testkit: docker-registry did not answer GET http://{host}/v2/ within {READY_TIMEOUT:?}; its stderr:\n{log}"
                ),
            }
        }
        panic!(
            "freshen-testkit: docker-registry could not bind a free port after 5 attempts; last stderr:\n{last_failure}"
        );
    }

    async fn wait_ready(&mut self) -> Startup {
        let client = http_client(Some(Duration::from_secs(1)));
        let url = format!("http://{}/v2/", self.host);
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(_status)) = child.try_wait()
            {
                return Startup::Exited(self.stderr());
            }
            if let Ok(resp) = client.get(&url).send().await {
                let s = resp.status().as_u16();
                if s == 200 || s == 401 {
                    return Startup::Ready;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Startup::TimedOut(self.stderr());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One registry for the whole test binary, started by the first call:
    /// the process needs no runtime, so it outlives each test's runtime.
    /// Tests sharing it keep apart by using repositories of their own.
    pub async fn shared() -> &'static Registry {
        static SHARED: tokio::sync::OnceCell<Registry> = tokio::sync::OnceCell::const_new();
        SHARED.get_or_init(Registry::start).await
    }

    /// `127.0.0.1:PORT`, the registry's address (the registry host part of
    /// image references such as `127.0.0.1:PORT/app:1`).
    pub fn host(&self) -> String {
        self.host.clone()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.host)
    }

    /// The `(user, password)` the registry requires, if auth is on.
    pub fn credentials(&self) -> Option<(String, String)> {
        self.auth.clone()
    }

    /// A [`Pusher`] for this registry, with its credentials.
    pub fn pusher(&self) -> Pusher {
        let auth = self.auth.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
        Pusher::new(&self.host, auth)
    }

    /// The tags of `repo`, sorted, through the registry API (`tags/list`,
    /// with the registry's credentials if it has any); none when the
    /// repository does not exist.
    pub async fn tags(&self, repo: &str) -> Vec<String> {
        let mut req = http_client(Some(Duration::from_secs(20)))
            .get(format!("{}/v2/{repo}/tags/list", self.url()));
        if let Some((user, pass)) = &self.auth {
            req = req.basic_auth(user, Some(pass));
        }
        let body: serde_json::Value = req
            .send()
            .await
            .expect("list tags")
            .json()
            .await
            .expect("tags JSON");
        let mut tags: Vec<String> = body["tags"]
            .as_array()
            .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        tags.sort();
        tags
    }

    /// The registry's storage root (filesystem driver).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Everything the registry wrote to stdout/stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    fn take_dir(mut self) -> TempDir {
        self.shutdown();
        let placeholder = tempfile::Builder::new()
            .prefix("freshen-registry-x-")
            .tempdir()
            .expect("creating a temp dir failed");
        std::mem::replace(&mut self.dir, placeholder)
    }

    fn shutdown(&mut self) {
        // Closing the pipe makes the watchdog kill the registry; sh exits
        // once the registry is gone.
        drop(self.watchdog_pipe.take());
        if let Some(mut child) = self.child.take() {
            for _ in 0..200 {
                match child.try_wait() {
                    Ok(Some(_)) => return,
                    Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                    Err(_) => break,
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("host", &self.host)
            .field("auth", &self.auth.as_ref().map(|(u, _)| u))
            .finish()
    }
}

fn write_htpasswd(dir: &Path, user: &str, pass: &str) -> PathBuf {
    let tool = require_tool("htpasswd", "apt-get install apache2-utils");
    let out = Command::new(tool)
        .args(["-Bbn", user, pass])
        .output()
        .expect("running htpasswd failed");
    assert!(
        out.status.success(),
        "freshen-testkit: htpasswd -Bbn failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = dir.join("htpasswd");
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .expect("creating the htpasswd file failed");
    f.write_all(&out.stdout)
        .expect("writing the htpasswd file failed");
    path
}

/// YAML double-quoted scalar (JSON string syntax is valid YAML).
fn q(s: &str) -> String {
    serde_json::to_string(s).expect("string to JSON")
}

fn render_config(
    host: &str,
    storage: &Path,
    secret: &str,
    htpasswd: Option<&Path>,
    notifications_url: Option<&str>,
    notifications_token: Option<&str>,
) -> String {
    // `http.debug` is left out on purpose: that is how the debug server stays off.
    let mut y = format!(
        "version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: {}\n  secret: {}\n",
        q(&storage.to_string_lossy()),
        q(host),
        q(secret),
    );
    if let Some(path) = htpasswd {
        y.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: {}\n    path: {}\n",
            q("freshen-test-registry"),
            q(&path.to_string_lossy())
        ));
    }
    if let Some(url) = notifications_url {
        y.push_str(&format!(
            "notifications:\n  endpoints:\n    - name: freshen\n      url: {}\n      timeout: 5s\n      threshold: 3\n      backoff: 1s\n",
            q(url)
        ));
        if let Some(token) = notifications_token {
            y.push_str(&format!(
                "      headers:\n        Authorization: [{}]\n",
                q(&format!("Bearer {token}"))
            ));
        }
    }
    y
}
