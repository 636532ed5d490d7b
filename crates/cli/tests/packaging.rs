//! freshen packaged the ways people run it, each checked with the real
//! tool: the Containerfile built by buildah and run, the Kubernetes
//! manifests rendered by `kubectl kustomize`, the systemd unit verified by
//! `systemd-analyze`, shell completions loaded by bash, man pages rendered
//! by groff and man.

use std::path::{Path, PathBuf};
use std::process::Output;

use freshen_testkit::{Buildah, kubectl, require_tool};
use serde_json::Value;

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

async fn ok(mut c: tokio::process::Command, what: &str) -> Output {
    let out = c.output().await.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The target directory this test's `freshen` was built in.
fn target_dir() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_freshen"));
    bin.parent() // debug
        .and_then(Path::parent)
        .expect("the binary sits in <target>/<profile>/")
        .to_path_buf()
}

/// The builder image for the `BUILDER_IMAGE` argument: this machine's
/// userland (`/usr`, `/etc`: gcc, the C library's headers, a shell), its
/// Rust toolchain and its cargo home, mounted into the build by `buildah
/// build --volume` rather than copied. The image itself is `scratch` with
/// the root's symbolic links (`bin -> usr/bin`...) and the environment:
/// cargo's home and target directory at this machine's paths, so what the
/// test run compiled already (dependencies, same toolchain, same paths) is
/// fresh in the container, and no network.
async fn builder_image(buildah: &Buildah, name: &str, sysroot: &Path, cargo_home: &Path) {
    let out = ok(
        {
            let mut c = buildah.command();
            c.args(["from", "scratch"]);
            c
        },
        "buildah from scratch",
    )
    .await;
    let ctr = text(&out.stdout).trim().to_string();
    let out = ok(
        {
            let mut c = buildah.command();
            c.args(["mount", &ctr]);
            c
        },
        "buildah mount",
    )
    .await;
    let root = PathBuf::from(text(&out.stdout).trim());
    for entry in std::fs::read_dir("/").unwrap() {
        let path = entry.unwrap().path();
        if let Ok(link) = std::fs::read_link(&path) {
            std::os::unix::fs::symlink(link, root.join(path.file_name().unwrap())).unwrap();
        }
    }
    for dir in ["usr", "etc", "root", "dev", "proc", "sys"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::set_permissions(
        root.join("tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    let mut c = buildah.command();
    c.args(["config"])
        .arg("--env")
        .arg(format!(
            "PATH={}/bin:/usr/local/bin:/usr/bin:/bin",
            sysroot.display()
        ))
        .arg("--env")
        .arg(format!("CARGO_HOME={}", cargo_home.display()))
        .arg("--env")
        .arg(format!("CARGO_TARGET_DIR={}", target_dir().display()))
        .args(["--env", "CARGO_NET_OFFLINE=true", &ctr]);
    ok(c, "buildah config").await;
    let mut c = buildah.command();
    c.args(["commit", "-q", &ctr, name]);
    ok(c, "buildah commit").await;
    let mut c = buildah.command();
    c.args(["rm", &ctr]);
    ok(c, "buildah rm").await;
}

/// The runtime image for the `RUNTIME_IMAGE` argument, made as distroless
/// is: nothing but the shared libraries `ldd` says the binary loads, CA
/// certificates, `/etc/passwd` with the nonroot user 65532, and `/tmp`.
/// A library the binary needs and the default runtime image lacks would
/// fail `freshen --version` in the result.
async fn runtime_image(buildah: &Buildah, name: &str, dir: &Path) {
    let ldd = require_tool("ldd", "apt-get install libc-bin");
    let out = ok(
        {
            let mut c = tokio::process::Command::new(ldd);
            c.arg(env!("CARGO_BIN_EXE_freshen"));
            c
        },
        "ldd freshen",
    )
    .await;
    let mut libraries = Vec::new();
    for line in text(&out.stdout).lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or
        // `/lib64/ld-linux-x86-64.so.2 (0x…)`; the vDSO has no file.
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libraries.push(p.to_string());
        }
    }
    assert!(
        libraries.iter().any(|l| l.contains("libc.so")),
        "ldd found no C library: {}",
        text(&out.stdout)
    );
    // rustls (TLS to registries) needs nothing else: no libssl.
    assert!(
        !libraries.iter().any(|l| l.contains("libssl")),
        "{libraries:?}"
    );
    let ctx = dir.join("runtime");
    for lib in &libraries {
        let to = ctx.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(lib, &to).unwrap_or_else(|e| panic!("copy {lib}: {e}"));
    }
    let certs = Path::new("/etc/ssl/certs/ca-certificates.crt");
    assert!(
        certs.is_file(),
        "CA certificates are needed: apt-get install ca-certificates"
    );
    std::fs::create_dir_all(ctx.join("etc/ssl/certs")).unwrap();
    std::fs::copy(certs, ctx.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    std::fs::write(
        ctx.join("etc/passwd"),
        "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
    )
    .unwrap();
    std::fs::write(ctx.join("etc/group"), "root:x:0:\nnonroot:x:65532:\n").unwrap();
    std::fs::create_dir_all(ctx.join("tmp")).unwrap();
    std::fs::set_permissions(
        ctx.join("tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    let containerfile = dir.join("Runtime.Containerfile");
    std::fs::write(&containerfile, "FROM scratch\nCOPY . /\n").unwrap();
    let mut c = buildah.command();
    c.args(["bud", "-q", "--isolation", "chroot", "-f"])
        .arg(&containerfile)
        .args(["-t", name])
        .arg(&ctx);
    ok(c, "buildah bud (runtime image)").await;
}

/// The build context: the repository as a fresh clone has it (its
/// `.dockerignore` picks what goes in), with the binary crate's source
/// touched so the build stage compiles and links `freshen` for real.
async fn context(dir: &Path) -> PathBuf {
    let ctx = dir.join("context");
    std::fs::create_dir_all(&ctx).unwrap();
    for entry in std::fs::read_dir(repo()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if ["target", ".git"].contains(&name.as_str()) {
            continue;
        }
        let mut c = tokio::process::Command::new("cp");
        c.arg("-a").arg(&path).arg(&ctx);
        ok(c, "cp -a").await;
    }
    std::fs::File::options()
        .write(true)
        .open(ctx.join("crates/cli/src/main.rs"))
        .unwrap()
        .set_modified(std::time::SystemTime::now())
        .unwrap();
    ctx
}

/// The Containerfile, unchanged, built by buildah with local images for
/// its two base-image arguments (nothing else is reachable here) and the
/// dev profile, then run: `freshen --version` through its entrypoint, as
/// user 65532, with the database in its volume directory.
#[tokio::test(flavor = "multi_thread")]
async fn the_containerfile_builds_an_image_that_runs() {
    let containerfile = read("Containerfile");
    // What a user on a connected machine gets by default.
    assert!(
        containerfile.contains("ARG BUILDER_IMAGE=docker.io/library/rust:1-bookworm\n"),
        "{containerfile}"
    );
    assert!(
        containerfile.contains("ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot\n"),
        "{containerfile}"
    );
    let buildah = Buildah::new();
    let dir = tempfile::tempdir().unwrap();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = ok(
        {
            let mut c = tokio::process::Command::new(&rustc);
            c.args(["--print", "sysroot"]);
            c
        },
        "rustc --print sysroot",
    )
    .await;
    let sysroot = PathBuf::from(text(&out.stdout).trim());
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
    assert!(
        cargo_home.join("registry").is_dir(),
        "no cargo registry at {}",
        cargo_home.display()
    );
    let target = target_dir();
    let bin = Path::new(env!("CARGO_BIN_EXE_freshen"));
    let built_before = std::fs::metadata(bin).unwrap().modified().unwrap();

    let started = std::time::Instant::now();
    builder_image(
        &buildah,
        "localhost/freshen-test/builder",
        &sysroot,
        &cargo_home,
    )
    .await;
    runtime_image(&buildah, "localhost/freshen-test/runtime", dir.path()).await;
    let ctx = context(dir.path()).await;

    let mut c = buildah.command();
    c.args(["bud", "--isolation", "chroot"])
        .args([
            "--build-arg",
            "BUILDER_IMAGE=localhost/freshen-test/builder",
            "--build-arg",
            "RUNTIME_IMAGE=localhost/freshen-test/runtime",
            "--build-arg",
            "PROFILE=dev",
        ])
        // Copy-on-write (`:O`): the build may write there (cargo's locks,
        // the freshly compiled crate), and nothing of it reaches the host.
        .args(["--volume", "/usr:/usr:O", "--volume", "/etc:/etc:ro"]);
    if !sysroot.starts_with("/usr") {
        c.arg("--volume")
            .arg(format!("{0}:{0}:ro", sysroot.display()));
    }
    c.arg("--volume")
        .arg(format!("{0}:{0}:O", cargo_home.display()))
        .arg("--volume")
        .arg(format!("{0}:{0}:O", target.display()))
        .args(["-t", "localhost/freshen-test/freshen", "-f"])
        .arg(ctx.join("Containerfile"))
        .arg(&ctx);
    let out = ok(c, "buildah bud Containerfile").await;
    let log = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        log.contains("Compiling freshen v"),
        "the build stage compiled freshen:\n{log}"
    );
    let took = started.elapsed();

    // The image's configuration.
    let mut c = buildah.command();
    c.args([
        "inspect",
        "--type",
        "image",
        "localhost/freshen-test/freshen",
    ]);
    let inspected: Value = serde_json::from_slice(&ok(c, "buildah inspect").await.stdout).unwrap();
    let config = inspected["OCIv1"]["config"].clone();
    assert_eq!(config["User"], "65532:65532", "{config}");
    assert_eq!(config["Entrypoint"], serde_json::json!(["freshen"]));
    assert!(
        config["Volumes"].get("/var/lib/freshen").is_some(),
        "{config}"
    );
    let labels = &config["Labels"];
    assert_eq!(labels["org.opencontainers.image.title"], "freshen");
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(labels["org.opencontainers.image.licenses"], "Apache-2.0");
    assert!(
        config["Env"]
            .as_array()
            .unwrap()
            .contains(&Value::from("FRESHEN_DATA_DIR=/var/lib/freshen")),
        "{config}"
    );

    // Run it: the entrypoint with --version, then a command that opens the
    // default database in the volume directory as the image's user.
    let out = ok(
        {
            let mut c = buildah.command();
            c.args(["from", "localhost/freshen-test/freshen"]);
            c
        },
        "buildah from",
    )
    .await;
    let ctr = text(&out.stdout).trim().to_string();
    let entrypoint: Vec<String> = config["Entrypoint"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let mut c = buildah.command();
    c.args(["run", "--isolation", "chroot", &ctr, "--"])
        .args(&entrypoint)
        .arg("--version");
    let version = ok(c, "freshen --version in the image").await;
    assert_eq!(
        text(&version.stdout),
        format!("freshen {}\n", env!("CARGO_PKG_VERSION"))
    );
    let mut c = buildah.command();
    c.args(["run", "--isolation", "chroot", &ctr, "--"])
        .args(&entrypoint)
        .args(["events", "--json"]);
    let events = ok(c, "freshen events in the image").await;
    assert_eq!(text(&events.stdout).trim(), "[]");
    // The image's user is not root: where only root may write, it can't.
    let mut c = buildah.command();
    c.args(["run", "--isolation", "chroot", &ctr, "--"])
        .args(&entrypoint)
        .args(["events", "--database", "sqlite:///usr/local/bin/x.db"]);
    let refused = c.output().await.unwrap();
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(
        text(&refused.stderr).contains("cannot open database sqlite:///usr/local/bin/x.db"),
        "{}",
        text(&refused.stderr)
    );
    let mut c = buildah.command();
    c.args(["mount", &ctr]);
    let root = PathBuf::from(text(&ok(c, "buildah mount").await.stdout).trim());
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let data = std::fs::metadata(root.join("var/lib/freshen")).unwrap();
    assert_eq!(
        (data.uid(), data.gid()),
        (65532, 65532),
        "the data directory is the user's"
    );
    assert_eq!(data.permissions().mode() & 0o700, 0o700);
    let binary = std::fs::metadata(root.join("usr/local/bin/freshen")).unwrap();
    assert_eq!(binary.uid(), 0, "the binary is not the user's to change");
    let mut c = buildah.command();
    c.args(["rm", &ctr]);
    ok(c, "buildah rm").await;

    // The host's target directory was only read.
    assert_eq!(
        std::fs::metadata(bin).unwrap().modified().unwrap(),
        built_before
    );
    eprintln!("container build and run: {took:?}");
}

/// Multi-document YAML as JSON values.
fn documents(yaml: &str) -> Vec<Value> {
    use serde::Deserialize as _;
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).expect("YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

async fn kustomize(dir: &str) -> Vec<Value> {
    let mut c = tokio::process::Command::new(kubectl());
    c.arg("kustomize").arg(repo().join(dir));
    documents(&text(&ok(c, "kubectl kustomize").await.stdout))
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

fn kinds(docs: &[Value]) -> Vec<String> {
    let mut k: Vec<String> = docs
        .iter()
        .map(|d| d["kind"].as_str().unwrap().to_string())
        .collect();
    k.sort();
    k
}

/// What both renderings share: a non-root, read-only container that serves
/// on 8080 with probes on /healthz and /readyz, its config from the
/// generated ConfigMap, secrets from a Secret.
fn check_deployment(docs: &[Value]) -> &Value {
    let d = kind(docs, "Deployment");
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{pod}");
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(pod["serviceAccountName"], "freshen");
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "registry.example.com/freshen:0.1.0");
    assert_eq!(
        c["args"],
        serde_json::json!(["watch", "--serve", "0.0.0.0:8080"])
    );
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        c["securityContext"]["capabilities"]["drop"],
        serde_json::json!(["ALL"])
    );
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["startupProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    assert_eq!(c["envFrom"][0]["secretRef"]["name"], "freshen-secrets");
    let config_map = kind(docs, "ConfigMap");
    let name = config_map["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("freshen-config-"), "hashed: {name}");
    let volume = |n: &str| {
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == n)
            .unwrap_or_else(|| panic!("no volume {n}: {pod}"))
            .clone()
    };
    assert_eq!(volume("config")["configMap"]["name"], name);
    let mounts = c["volumeMounts"].as_array().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m["name"] == "data" && m["mountPath"] == "/var/lib/freshen")
    );
    // The config the ConfigMap carries is one freshen loads.
    let yaml = config_map["data"]["freshen.yaml"].as_str().unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), yaml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_freshen"))
        .args(["events", "--database", "sqlite::memory:", "--config"])
        .arg(file.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let service = kind(docs, "Service");
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);
    assert_eq!(
        service["spec"]["selector"],
        d["spec"]["selector"]["matchLabels"]
    );
    d
}

/// The kustomize base (SQLite on a volume) and its PostgreSQL overlay,
/// rendered by the real `kubectl kustomize`.
#[tokio::test(flavor = "multi_thread")]
async fn the_kubernetes_manifests_render() {
    let base = kustomize("deploy/kubernetes/base").await;
    assert_eq!(
        kinds(&base),
        [
            "ConfigMap",
            "Deployment",
            "PersistentVolumeClaim",
            "Service",
            "ServiceAccount"
        ]
    );
    let d = check_deployment(&base);
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(
        d["spec"]["strategy"]["type"], "Recreate",
        "one SQLite writer"
    );
    let pod = &d["spec"]["template"]["spec"];
    let data = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "data")
        .unwrap();
    let pvc = kind(&base, "PersistentVolumeClaim");
    assert_eq!(
        data["persistentVolumeClaim"]["claimName"],
        pvc["metadata"]["name"]
    );
    assert_eq!(
        pod["securityContext"]["fsGroup"], 65532,
        "the volume is writable"
    );
    let env = pod["containers"][0]["env"].as_array().unwrap();
    assert!(!env.iter().any(|e| e["name"] == "FRESHEN_DATABASE"));

    let pg = kustomize("deploy/kubernetes/overlays/postgres").await;
    assert_eq!(
        kinds(&pg),
        ["ConfigMap", "Deployment", "Service", "ServiceAccount"],
        "no PVC"
    );
    let d = check_deployment(&pg);
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    let pod = &d["spec"]["template"]["spec"];
    let data = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "data")
        .unwrap();
    assert_eq!(data, &serde_json::json!({"name": "data", "emptyDir": {}}));
    let database = pod["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "FRESHEN_DATABASE")
        .expect("FRESHEN_DATABASE");
    assert_eq!(
        database["valueFrom"]["secretKeyRef"],
        serde_json::json!({"name": "freshen-database", "key": "url"})
    );
}

/// The systemd unit, checked by `systemd-analyze verify` (with ExecStart
/// pointed at this build's binary: verify wants it to exist) and scored by
/// `systemd-analyze security`. Running it needs systemd as PID 1, which
/// this test doesn't have.
#[tokio::test(flavor = "multi_thread")]
async fn the_systemd_unit_verifies() {
    let analyze = require_tool("systemd-analyze", "apt-get install systemd");
    let unit = read("deploy/systemd/freshen.service");
    let exec = "ExecStart=/usr/local/bin/freshen watch --serve\n";
    assert!(unit.contains(exec), "{unit}");
    for line in [
        "DynamicUser=yes",
        "StateDirectory=freshen",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "Environment=FRESHEN_DATA_DIR=/var/lib/freshen",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("freshen.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/freshen", env!("CARGO_BIN_EXE_freshen")),
    )
    .unwrap();
    let mut c = tokio::process::Command::new(&analyze);
    c.arg("verify").arg(&path);
    let out = ok(c, "systemd-analyze verify").await;
    assert_eq!(text(&out.stderr), "", "no warnings (unknown keys...)");

    let mut c = tokio::process::Command::new(&analyze);
    c.args(["security", "--offline=yes"]).arg(&path);
    let out = ok(c, "systemd-analyze security").await;
    let report = text(&out.stdout);
    let score: f64 = report
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for freshen.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level:\n{report}"));
    assert!(score <= 2.0, "exposure {score}:\n{report}");
}

async fn freshen(args: &[&str]) -> Output {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_freshen"));
    c.args(args).env_remove("FRESHEN_CONFIG");
    ok(c, &format!("freshen {}", args.join(" "))).await
}

/// Completion scripts for every shell clap knows; bash's loads in a real
/// bash and completes a command name.
#[tokio::test(flavor = "multi_thread")]
async fn completions_load_in_bash() {
    let bash = require_tool("bash", "apt-get install bash");
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = freshen(&["completions", shell]).await;
        assert!(out.stdout.len() > 1000, "{shell}");
        std::fs::write(dir.path().join(shell), &out.stdout).unwrap();
    }
    let script = dir.path().join("bash");
    let mut c = tokio::process::Command::new(&bash);
    c.arg("-c")
        .arg(
            r#"source "$0" && complete -p freshen && COMP_WORDS=(freshen ima) && COMP_CWORD=1 && _freshen freshen ima freshen && echo "${COMPREPLY[@]}" && COMP_WORDS=(freshen images sh) && COMP_CWORD=2 && _freshen freshen sh images && echo "${COMPREPLY[@]}""#,
        )
        .arg(&script);
    let out = ok(c, "bash: source the completions").await;
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(
        lines[0],
        "complete -o bashdefault -o default -o nosort -F _freshen freshen"
    );
    assert_eq!(lines[1], "images", "{lines:?}");
    assert_eq!(lines[2], "show", "{lines:?}");
}

/// Man pages: one on stdout, one per command with --dir, each valid roff
/// (groff warns about nothing) and shown by `man -l`.
#[tokio::test(flavor = "multi_thread")]
async fn man_pages_render() {
    let groff = require_tool("groff", "apt-get install groff-base");
    let man = require_tool("man", "apt-get install man-db");
    let page = freshen(&["man"]).await;
    let top = text(&page.stdout);
    assert!(top.starts_with(".ie \\n(.g .ds Aq"), "roff: {}", &top[..80]);
    assert!(top.contains("freshen\\-check(1)"), "names its commands");

    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man/man1");
    freshen(&["man", "--dir", pages.to_str().unwrap()]).await;
    let mut names: Vec<String> = std::fs::read_dir(&pages)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    for want in [
        "freshen.1",
        "freshen-check.1",
        "freshen-watch.1",
        "freshen-images-show.1",
        "freshen-outbox-retry.1",
        "freshen-completions.1",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    assert!(names.len() > 30, "{names:?}");
    for name in &names {
        let mut c = tokio::process::Command::new(&groff);
        // -k: the pages are UTF-8 (preconv), as man reads them.
        c.args(["-k", "-man", "-Tutf8", "-ww", "-z"])
            .arg(pages.join(name));
        let out = ok(c, &format!("groff {name}")).await;
        assert_eq!(text(&out.stderr), "", "{name}: groff warnings");
    }
    let mut c = tokio::process::Command::new(&man);
    c.arg("-l")
        .arg(pages.join("freshen-check.1"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80");
    let shown = text(&ok(c, "man -l freshen-check.1").await.stdout);
    assert!(shown.contains("freshen-check"), "{shown}");
    assert!(shown.contains("--exit-code"), "{shown}");
    assert!(
        shown.contains("FRESHEN_CONFIG"),
        "env vars are listed: {shown}"
    );
}
