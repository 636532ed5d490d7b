//! The command lines of the builders that can't run here (docker buildx
//! needs a daemon, kaniko its own container) and of podman, checked
//! against a recording fake: a script that writes down its arguments, its
//! `DOCKER_CONFIG` and auth file, and writes the metadata or digest file
//! the real tool would.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use freshen_rebuild::{
    Build, BuildPush as _, BuildSpec, ContainersBuildPush as _, ContainersSettings, ContainersTool,
    DockerSettings, Executor, KanikoSettings, PushTarget, load,
};
use freshen_reference::{Defaults, Platform};

const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn write(p: &Path, text: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A fake builder in `dir`: each call appends `---` and its arguments,
/// one a line, to `calls`; copies `$DOCKER_CONFIG/config.json` to
/// `auth`; writes the file after `--metadata-file`, `--digest-file` or
/// `--digestfile`; exits `exit` (with a message on stderr when not 0).
fn fake(dir: &Path, exit: i32) -> PathBuf {
    let script = dir.join("fake-builder");
    write(
        &script,
        &format!(
            r#"#!/bin/sh
rec={rec}
echo --- >> $rec
prev=
for a in "$@"; do
  printf '%s\n' "$a" >> $rec
  case "$prev" in
    --metadata-file) printf '{{"containerimage.digest":"{DIGEST}","image.name":"x"}}' > "$a";;
    --digest-file|--digestfile) printf '{DIGEST}\n' > "$a";;
  esac
  prev=$a
done
if [ -n "$DOCKER_CONFIG" ]; then cp "$DOCKER_CONFIG/config.json" {auth}; fi
if [ {exit} -ne 0 ]; then echo "step 1/2: something broke" >&2; echo "error: no space left" >&2; fi
exit {exit}
"#,
            rec = dir.join("calls").display(),
            auth = dir.join("auth").display(),
        ),
    );
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script
}

/// The recorded calls, each its arguments, with scratch paths (which
/// change per run) replaced by `<scratch>/<name>`.
fn calls(dir: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(dir.join("calls")).unwrap_or_default();
    let mut out: Vec<Vec<String>> = Vec::new();
    for line in text.lines() {
        if line == "---" {
            out.push(Vec::new());
            continue;
        }
        let tmp = std::env::temp_dir().display().to_string();
        let shown = match line.strip_prefix(&tmp) {
            Some(rest) if !line.starts_with(&dir.display().to_string()) => {
                let name = Path::new(rest).file_name().unwrap().to_string_lossy();
                format!("<scratch>/{name}")
            }
            _ => line.replace(&dir.display().to_string(), "<dir>"),
        };
        out.last_mut().unwrap().push(shown);
    }
    out
}

fn build(dir: &Path, executor: Executor, platforms: &[&str]) -> Build {
    write(
        &dir.join("ctx/Dockerfile"),
        "ARG BASE=localhost:5000/golden/base:1\nFROM ${BASE} AS build\nFROM ${BASE}\n",
    );
    let spec = BuildSpec {
        image: "reg.example/apps/api:1".into(),
        context: "ctx".into(),
        dockerfile: None,
        args: [(
            "BASE".to_string(),
            "localhost:5000/golden/base:1".to_string(),
        )]
        .into(),
        target: None,
        platforms: platforms.iter().map(|p| p.to_string()).collect(),
        executor,
        fallback: None,
        job: None,
        parameters: Default::default(),
        version: None,
        promote: vec![],
    };
    load(
        &[spec],
        &[],
        dir,
        &Defaults {
            registry: "docker.io".into(),
        },
        &[Platform::new("linux", "amd64", None)],
    )
    .unwrap()
    .remove(0)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn creds() -> Vec<(String, String, String)> {
    vec![(
        "reg.example".to_string(),
        "ci".to_string(),
        "s3cret-pass".to_string(),
    )]
}

/// A push of `reg.example/apps/api:2026.49.1`, the version the builders' tests push.
fn target<'a>(
    insecure: &'a BTreeSet<String>,
    credentials: &'a [(String, String, String)],
) -> PushTarget<'a> {
    PushTarget {
        reference: "reg.example/apps/api:2026.49.1",
        insecure,
        credentials,
    }
}

#[tokio::test]
async fn docker_buildx_builds_every_platform_and_pushes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let b = build(d, Executor::Docker, &["linux/amd64", "linux/arm64"]);
    let settings = DockerSettings {
        command: Some(fake(d, 0)),
        builder: Some("multi".into()),
    };
    let insecure = BTreeSet::from(["localhost:5000".to_string()]);
    let credentials = creds();
    let digest = settings
        .build_push(&b, &target(&insecure, &credentials))
        .await
        .unwrap();
    assert_eq!(digest, DIGEST);
    assert_eq!(
        calls(d),
        vec![strings(&[
            "buildx",
            "build",
            "--builder",
            "multi",
            "--platform",
            "linux/amd64,linux/arm64",
            "--pull",
            "--no-cache",
            "-f",
            "<dir>/ctx/Dockerfile",
            "--build-arg",
            "BASE=localhost:5000/golden/base:1",
            "--push",
            "-t",
            "reg.example/apps/api:2026.49.1",
            "--metadata-file",
            "<scratch>/metadata.json",
            "<dir>/ctx",
        ])]
    );
    // Credentials go to the build's own docker config, not the command line.
    let auth = std::fs::read_to_string(d.join("auth")).unwrap();
    assert!(auth.contains("reg.example"), "{auth}");
    assert!(
        !calls(d).concat().iter().any(|a| a.contains("s3cret")),
        "a secret on the command line"
    );

    // A plain-HTTP target: BuildKit's per-output insecure attribute.
    std::fs::remove_file(d.join("calls")).unwrap();
    let insecure = BTreeSet::from(["reg.example".to_string()]);
    settings
        .build_push(&b, &target(&insecure, &[]))
        .await
        .unwrap();
    let args = &calls(d)[0];
    assert!(
        args.windows(2).any(|w| w
            == [
                "--output",
                "type=image,name=reg.example/apps/api:2026.49.1,push=true,registry.insecure=true"
            ]),
        "{args:?}"
    );
    assert!(!args.contains(&"--push".to_string()), "{args:?}");
}

#[tokio::test]
async fn kaniko_builds_one_platform_and_pushes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let b = build(d, Executor::Kaniko, &["linux/arm64"]);
    let settings = KanikoSettings {
        command: Some(fake(d, 0)),
    };
    let insecure = BTreeSet::from(["localhost:5000".to_string(), "reg.example".to_string()]);
    let credentials = creds();
    let digest = settings
        .build_push(&b, &target(&insecure, &credentials))
        .await
        .unwrap();
    assert_eq!(digest, DIGEST);
    assert_eq!(
        calls(d),
        vec![strings(&[
            "--context",
            &format!("dir://{}/ctx", d.display()),
            "--dockerfile",
            "<dir>/ctx/Dockerfile",
            "--destination",
            "reg.example/apps/api:2026.49.1",
            "--build-arg",
            "BASE=localhost:5000/golden/base:1",
            "--custom-platform",
            "linux/arm64",
            "--insecure",
            "--insecure-registry",
            "localhost:5000",
            "--insecure-registry",
            "reg.example",
            "--digest-file",
            "<scratch>/digest",
        ])]
        .into_iter()
        .map(|c| {
            c.into_iter()
                .map(|a| a.replace(&d.display().to_string(), "<dir>"))
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>()
    );
    let auth = std::fs::read_to_string(d.join("auth")).unwrap();
    assert!(auth.contains("reg.example"), "{auth}");
}

#[tokio::test]
async fn podman_builds_pushes_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let settings = ContainersSettings {
        command: Some(fake(d, 0)),
        root: Some("/var/lib/x".into()),
        runroot: None,
        storage_driver: Some("vfs".into()),
        isolation: None,
    };
    let insecure = BTreeSet::from(["reg.example".to_string()]);
    let to = target(&insecure, &[]);
    // One platform: build, push with a digest file, rmi.
    let b = build(d, Executor::Podman, &["linux/amd64"]);
    let digest = settings
        .build_push_with(ContainersTool::Podman, &b, &to)
        .await
        .unwrap();
    assert_eq!(digest, DIGEST);
    let c = calls(d);
    assert_eq!(c.len(), 3, "{c:?}");
    let local = c[0][c[0].iter().position(|a| a == "-t").unwrap() + 1].clone();
    assert!(local.starts_with("localhost/freshen-build/"), "{local}");
    assert_eq!(
        c[0],
        strings(&[
            "--root",
            "/var/lib/x",
            "--storage-driver",
            "vfs",
            "build",
            "--layers=false",
            "--pull=always",
            "--isolation=chroot",
            "-f",
            "<dir>/ctx/Dockerfile",
            "-t",
            &local,
            "--platform",
            "linux/amd64",
            "--build-arg",
            "BASE=localhost:5000/golden/base:1",
            "--authfile",
            "<scratch>/auth.json",
            "<dir>/ctx",
        ])
    );
    assert_eq!(
        c[1],
        strings(&[
            "--root",
            "/var/lib/x",
            "--storage-driver",
            "vfs",
            "push",
            "--tls-verify=false",
            "--digestfile",
            "<scratch>/digest",
            "--authfile",
            "<scratch>/auth.json",
            &local,
            "docker://reg.example/apps/api:2026.49.1",
        ])
    );
    assert_eq!(c[2][4..], strings(&["rmi", &local])[..]);

    // Several platforms: a manifest list, pushed with --all.
    std::fs::remove_file(d.join("calls")).unwrap();
    let b = build(d, Executor::Podman, &["linux/amd64", "linux/arm64"]);
    settings
        .build_push_with(ContainersTool::Podman, &b, &to)
        .await
        .unwrap();
    let c = calls(d);
    assert!(c[0].contains(&"--manifest".to_string()), "{c:?}");
    assert_eq!(
        c[1][4..9],
        strings(&[
            "manifest",
            "push",
            "--all",
            "--tls-verify=false",
            "--digestfile"
        ])[..]
    );
    assert_eq!(c[2][4..6], strings(&["manifest", "rm"])[..]);
}

#[tokio::test]
async fn a_failing_builder_names_the_image_the_step_and_its_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let b = build(d, Executor::Docker, &["linux/amd64"]);
    let settings = DockerSettings {
        command: Some(fake(d, 3)),
        builder: None,
    };
    let none = BTreeSet::new();
    let to = PushTarget {
        reference: "reg.example/apps/api:2",
        insecure: &none,
        credentials: &[],
    };
    let e = settings.build_push(&b, &to).await.unwrap_err().to_string();
    assert_eq!(
        e,
        "reg.example/apps/api:1: docker buildx build failed (exit status: 3): step 1/2: something broke | error: no space left"
    );
    let missing = KanikoSettings {
        command: Some(d.join("no-such-executor")),
    };
    let e = missing
        .build_push(&build(d, Executor::Kaniko, &["linux/amd64"]), &to)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("reg.example/apps/api:1: kaniko: cannot run it: "),
        "{e}"
    );
}
