//! Build definitions read from real files, discovery of an
//! `app/version/Dockerfile` tree, and plans over them.

use std::path::Path;

use freshen_rebuild::{BuildSpec, DiscoverSpec, Executor, Trigger, load, plan};
use freshen_reference::{Defaults, Platform};

fn write(p: &Path, text: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn defaults() -> Defaults {
    Defaults {
        registry: "docker.io".into(),
    }
}

fn amd64() -> Vec<Platform> {
    vec![Platform::new("linux", "amd64", None)]
}

fn spec(image: &str, context: &str) -> BuildSpec {
    BuildSpec {
        image: image.into(),
        context: context.into(),
        dockerfile: None,
        args: Default::default(),
        target: None,
        platforms: vec![],
        executor: Executor::Buildah,
        fallback: None,
        job: None,
        parameters: Default::default(),
        version: None,
        promote: vec![],
    }
}

#[test]
fn a_three_level_tree_in_waves() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        &d.join("base/Dockerfile"),
        "FROM debian:bookworm\nRUN true\n",
    );
    write(
        &d.join("mid/Dockerfile"),
        "ARG REG=localhost:5000\nFROM ${REG}/golden/base:1 AS build\nRUN make\nFROM ${REG}/golden/base:1\nCOPY --from=build /out /\n",
    );
    // The users' layout: app/version/Dockerfile.
    for (app, from) in [
        ("api", "localhost:5000/golden/mid:1"),
        ("web", "localhost:5000/golden/mid:1"),
        ("worker", "golang:1.22"),
    ] {
        write(
            &d.join(format!("apps/{app}/2.0/Dockerfile")),
            &format!("FROM golang:1.22 AS build\nFROM {from}\n"),
        );
    }
    write(&d.join("apps/.git/x/Dockerfile"), "FROM nothing\n");
    let builds = load(
        &[
            spec("localhost:5000/golden/base:1", "base"),
            spec("localhost:5000/golden/mid:1", "mid"),
        ],
        &[DiscoverSpec {
            root: "apps".into(),
            image: "localhost:5000/apps/{app}:{version}".into(),
            args: Default::default(),
            platforms: vec![],
            executor: Executor::Rebase,
            fallback: None,
            job: None,
            parameters: Default::default(),
            version: Some("{tag}-{date}.{build}".into()),
            promote: vec!["{tag}".into(), "latest".into()],
        }],
        d,
        &defaults(),
        &amd64(),
    )
    .unwrap();
    assert_eq!(builds.len(), 5);
    assert_eq!(builds[1].bases, ["localhost:5000/golden/base:1"]);
    assert_eq!(builds[2].origin, "discover[0] api/2.0");
    assert_eq!(
        builds[2].bases,
        [
            "docker.io/library/golang:1.22",
            "localhost:5000/golden/mid:1"
        ]
    );
    assert_eq!(
        builds[2].final_base.as_deref(),
        Some("localhost:5000/golden/mid:1")
    );

    let p = plan(
        &builds,
        Trigger::Base {
            reference: "docker.io/library/debian:bookworm".into(),
        },
    )
    .unwrap();
    let waves: Vec<Vec<&str>> = p
        .waves
        .iter()
        .map(|w| w.iter().map(|b| b.image.as_str()).collect())
        .collect();
    assert_eq!(
        waves,
        [
            vec!["localhost:5000/golden/base:1"],
            vec!["localhost:5000/golden/mid:1"],
            vec!["localhost:5000/apps/api:2.0", "localhost:5000/apps/web:2.0"],
        ]
    );
    assert_eq!(
        p.waves[0][0].reason,
        "FROM docker.io/library/debian:bookworm (changed)"
    );
    assert_eq!(
        p.waves[2][0].reason,
        "FROM localhost:5000/golden/mid:1 (rebuilt in wave 2)"
    );
    assert_eq!(p.waves[2][0].executor, "rebase");
    assert!(
        p.dot()
            .contains("\"localhost:5000/golden/mid:1\" -> \"localhost:5000/apps/api:2.0\"")
    );

    // A builder stage's image counts: golang moves api, web and worker.
    let g = plan(
        &builds,
        Trigger::Base {
            reference: "docker.io/library/golang:1.22".into(),
        },
    )
    .unwrap();
    assert_eq!(g.len(), 3);
    // By name: mid, then its children.
    let m = plan(
        &builds,
        Trigger::Image {
            reference: "localhost:5000/golden/mid:1".into(),
        },
    )
    .unwrap();
    assert_eq!(m.waves[0][0].reason, "asked for");
    assert_eq!(m.len(), 3);
    assert_eq!(plan(&builds, Trigger::All).unwrap().len(), 5);
    let unknown = plan(
        &builds,
        Trigger::Image {
            reference: "localhost:5000/nope:1".into(),
        },
    )
    .unwrap_err();
    assert!(
        unknown
            .to_string()
            .contains("no build produces localhost:5000/nope:1")
    );
}

#[test]
fn errors_name_the_definition() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(&d.join("a/Dockerfile"), "FROM localhost:5000/b:1\n");
    write(&d.join("b/Dockerfile"), "FROM localhost:5000/a:1\n");
    write(&d.join("bad/Dockerfile"), "RUN true\n");
    let l = |specs: &[BuildSpec]| load(specs, &[], d, &defaults(), &amd64());
    let builds = l(&[
        spec("localhost:5000/a:1", "a"),
        spec("localhost:5000/b:1", "b"),
    ])
    .unwrap();
    let e = plan(&builds, Trigger::All).unwrap_err().to_string();
    assert_eq!(
        e,
        "the builds form a cycle: localhost:5000/a:1 -> localhost:5000/b:1 -> localhost:5000/a:1"
    );
    let e = l(&[spec("localhost:5000/a:1", "missing")])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("builds[0].context: ") && e.contains("not a directory"),
        "{e}"
    );
    let e = l(&[spec("localhost:5000/x:1", "bad")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad/Dockerfile: builds[0]: Dockerfile: "), "{e}");
    let e = l(&[spec("Bad Image", "a")]).unwrap_err().to_string();
    assert!(e.starts_with("builds[0].image: "), "{e}");
    let e = l(&[
        spec("localhost:5000/a:1", "a"),
        spec("localhost:5000/a:1", "a"),
    ])
    .and_then(|b| plan(&b, Trigger::All))
    .unwrap_err()
    .to_string();
    assert_eq!(e, "localhost:5000/a:1 is built by two definitions");
    // Fallbacks belong to rebases, and a rebase needs a base.
    let mut fb = spec("localhost:5000/a:1", "a");
    fb.fallback = Some(Executor::Buildah);
    let e = l(&[fb.clone()]).unwrap_err().to_string();
    assert_eq!(
        e,
        "builds[0].fallback: only a rebase falls back to another executor; this build uses buildah"
    );
    fb.executor = Executor::Rebase;
    fb.fallback = Some(Executor::Rebase);
    let e = l(&[fb.clone()]).unwrap_err().to_string();
    assert!(
        e.starts_with("builds[0].fallback: a rebase cannot fall back to a rebase"),
        "{e}"
    );
    write(&d.join("scratch/Dockerfile"), "FROM scratch\nCOPY x /x\n");
    let mut scratch = spec("localhost:5000/s:1", "scratch");
    scratch.executor = Executor::Rebase;
    let e = l(&[scratch]).unwrap_err().to_string();
    assert_eq!(
        e,
        "builds[0].executor: rebase needs a base, and the final stage builds FROM scratch"
    );
}

#[test]
fn jenkins_jobs_are_named_and_templated() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(&d.join("a/Dockerfile"), "FROM debian:bookworm\n");
    for app in ["api", "web"] {
        write(
            &d.join(format!("apps/{app}/1.0/Dockerfile")),
            "FROM debian:bookworm\n",
        );
    }
    let l = |specs: &[BuildSpec]| load(specs, &[], d, &defaults(), &amd64());
    // A Jenkins build needs its job; only Jenkins builds have one.
    let mut j = spec("localhost:5000/a:1", "a");
    j.executor = Executor::Jenkins;
    let e = l(&[j.clone()]).unwrap_err().to_string();
    assert!(
        e.starts_with("builds[0].job: a Jenkins build needs the job"),
        "{e}"
    );
    j.job = Some("images/a".into());
    j.parameters.insert("IMAGE".into(), "x".into());
    let e = l(&[j.clone()]).unwrap_err().to_string();
    assert_eq!(
        e,
        "builds[0].parameters.IMAGE: freshen sets IMAGE, VERSION and TARGET itself"
    );
    j.parameters.clear();
    j.parameters.insert("BRANCH".into(), "main".into());
    let b = l(&[j.clone()]).unwrap();
    assert_eq!(b[0].job.as_deref(), Some("images/a"));
    let mut not = j.clone();
    not.executor = Executor::Buildah;
    let e = l(&[not]).unwrap_err().to_string();
    assert_eq!(
        e,
        "builds[0].job: only a Jenkins build has a job and parameters; this build uses buildah"
    );
    // A rebase may fall back to Jenkins; the job is then required too.
    let mut rb = j.clone();
    rb.executor = Executor::Rebase;
    rb.fallback = Some(Executor::Jenkins);
    assert!(l(&[rb.clone()]).is_ok());
    rb.job = None;
    rb.parameters.clear();
    assert!(
        l(&[rb])
            .unwrap_err()
            .to_string()
            .starts_with("builds[0].job: ")
    );
    // kaniko builds one platform.
    let mut k = spec("localhost:5000/a:1", "a");
    k.executor = Executor::Kaniko;
    k.platforms = vec!["linux/amd64".into(), "linux/arm64".into()];
    let e = l(&[k]).unwrap_err().to_string();
    assert!(
        e.starts_with("builds[0].platforms: kaniko builds one platform per run; this build has 2"),
        "{e}"
    );
    // Discovery fills {app} and {version} into the job and parameters.
    let spec: DiscoverSpec = serde_json::from_value(serde_json::json!({
        "root": "apps",
        "image": "localhost:5000/apps/{app}:{version}",
        "executor": "jenkins",
        "job": "apps/{app}",
        "parameters": {"APP": "{app}-{version}"},
    }))
    .unwrap();
    let b = load(&[], &[spec], d, &defaults(), &amd64()).unwrap();
    assert_eq!(b[1].job.as_deref(), Some("apps/web"));
    assert_eq!(b[1].parameters["APP"], "web-1.0");
}
