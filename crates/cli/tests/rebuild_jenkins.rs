//! The `jenkins` executor end to end: `freshen rebuild` starts each image's
//! job on a Jenkins double (basic auth with an API token from `${ENV}`, a
//! required CSRF crumb), follows the queue item to the build and waits for
//! its result. The double's job really builds: it runs buildah on the
//! image's Dockerfile and pushes `TARGET` to a real registry, so the
//! cascade sees a real new digest, promotes it and scans it. A failed
//! build fails its image and skips the images built on it; a cancelled
//! queue item and a build that never ends fail with the reason.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{Buildah, Env, Run, base_digests, golden_base, item, item_detail, write};
use freshen_testkit::{Db, Jenkins, JenkinsOptions, Registry, both_stores};

/// golden/base FROM the upstream tag (job `images/base`), and two apps
/// found by discovery FROM golden/base (jobs `apps/{app}`). Returns each
/// image's build directory, which is what its job checks out.
fn tree(d: &Path, host: &str) -> BTreeMap<String, PathBuf> {
    golden_base(d, host);
    let mut dirs = BTreeMap::new();
    dirs.insert(format!("{host}/golden/base:1"), d.join("images/base"));
    for app in ["api", "web"] {
        let dir = d.join(format!("apps/{app}/1.0"));
        write(
            &dir.join("Dockerfile"),
            &format!("FROM {host}/golden/base:1\nCOPY app.txt /{app}.txt\n"),
        );
        write(&dir.join("app.txt"), &format!("{app}\n"));
        dirs.insert(format!("{host}/apps/{app}:1.0"), dir);
    }
    dirs
}

fn config(host: &str, jenkins: &Jenkins, extra: &str) -> String {
    format!(
        "builds:\n  - {{image: {host}/golden/base:1, context: images/base, executor: jenkins, job: images/base, promote: [\"{{tag}}\", latest]}}\n\
         discover:\n  - {{root: apps, image: \"{host}/apps/{{app}}:{{version}}\", executor: jenkins, job: \"apps/{{app}}\", parameters: {{APP: \"{{app}}\"}}}}\n\
         builders:\n  jenkins:\n    url: {url}\n    user: {user}\n    token: \"${{JENKINS_TOKEN}}\"\n    poll_interval: 100ms\n{extra}",
        url = jenkins.url(),
        user = jenkins.user(),
    )
}

/// The upstream OS at `stable`, built by buildah.
async fn upstream(buildah: &Buildah, d: &Path, host: &str) {
    let ctx = d.join("upstream");
    write(&ctx.join("etc/os-release"), "VERSION=1\n");
    buildah
        .build_push(
            &ctx,
            "FROM scratch\nCOPY etc /etc\n",
            &format!("{host}/upstream/os:stable"),
            &[],
        )
        .await;
}

/// Jenkins with CSRF protection that insists on the crumb.
async fn jenkins() -> Jenkins {
    Jenkins::start(JenkinsOptions {
        require_crumb: true,
        queue_delay: Duration::from_millis(300),
        ..JenkinsOptions::default()
    })
    .await
}

async fn env_for(db: Db, jenkins: &Jenkins) -> Env {
    let mut env = Env::new(db).await;
    env.env("JENKINS_TOKEN", &jenkins.api_token());
    env
}

/// A registry (and its host), the Jenkins double, and an env on SQLite
/// with the token and the tree written.
async fn sqlite_setup() -> (Registry, String, Jenkins, Env) {
    let reg = Registry::start().await;
    let host = reg.host();
    let jenkins = jenkins().await;
    let env = env_for(Db::Sqlite, &jenkins).await;
    tree(env.path(), &host);
    (reg, host, jenkins, env)
}

/// `rebuild --config CONFIG --all --json`.
async fn rebuild_all(env: &Env, config: &Path) -> Run {
    env.rebuild(config.to_str().unwrap(), &["--all"]).await
}

fn no_token(run: &Run, jenkins: &Jenkins) {
    let shown = run.to_string();
    assert!(
        !shown.contains(&jenkins.api_token()),
        "the token leaked: {shown}"
    );
}

async fn jobs_build_and_push(db: Db) {
    let reg = Registry::start().await;
    let host = reg.host();
    let push = reg.pusher();
    let jenkins = jenkins().await;
    let env = env_for(db, &jenkins).await;
    let d = env.path().to_path_buf();
    let buildah = Arc::new(tokio::sync::Mutex::new(Buildah::new()));
    upstream(&*buildah.lock().await, &d, &host).await;
    let dirs = Arc::new(tree(&d, &host));
    // Each job builds the image its IMAGE names from its checkout, and
    // pushes TARGET: what a real job does.
    for job in ["images/base", "apps/api", "apps/web"] {
        let buildah = buildah.clone();
        let dirs = dirs.clone();
        jenkins.on_build(job, move |req| {
            let buildah = buildah.clone();
            let dirs = dirs.clone();
            async move {
                let dir = &dirs[&req.params["IMAGE"]];
                let dockerfile = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
                buildah
                    .lock()
                    .await
                    .build_push(dir, &dockerfile, &req.params["TARGET"], &[])
                    .await;
                "SUCCESS".to_string()
            }
        });
    }
    let cfg = env.config(&config(&host, &jenkins, ""));
    let cfg = cfg.to_str().unwrap();
    let run = env.rebuild(cfg, &["--all"]).await;
    no_token(&run, &jenkins);
    run.expect(0);
    let r = run.json();
    assert_eq!(r["run"]["state"], "done", "{r}");

    // One build per job, with the crumb, IMAGE / VERSION / TARGET and the
    // discovery's templated parameter.
    let builds = jenkins.builds();
    assert_eq!(builds.len(), 3, "{builds:?}");
    assert!(builds.iter().all(|b| b.crumb_ok), "{builds:?}");
    assert!(
        builds.iter().all(|b| b.endpoint == "buildWithParameters"),
        "{builds:?}"
    );
    let base_item = item(&r, &format!("{host}/golden/base:1"));
    let base_version = base_item["version"].as_str().unwrap();
    let base_build = builds.iter().find(|b| b.job == "images/base").unwrap();
    assert_eq!(base_build.params["IMAGE"], format!("{host}/golden/base:1"));
    assert_eq!(base_build.params["VERSION"], base_version);
    assert_eq!(
        base_build.params["TARGET"],
        format!("{host}/golden/base:{base_version}")
    );
    // Told to build without caches, as every local executor does.
    assert_eq!(base_build.params["NO_CACHE"], "true");
    let api_build = builds.iter().find(|b| b.job == "apps/api").unwrap();
    assert_eq!(api_build.params["APP"], "api");
    assert_eq!(api_build.params["IMAGE"], format!("{host}/apps/api:1.0"));
    // Parents first: the base's job ran before the apps'.
    assert!(builds[0].job == "images/base", "{builds:?}");

    // The digest is what the job pushed; the version tag and the
    // promotions point at it.
    let base_digest = base_item["digest"].as_str().unwrap().to_string();
    assert_eq!(
        push.head_digest("golden/base", base_version).await.unwrap(),
        base_digest
    );
    assert_eq!(
        push.head_digest("golden/base", "1").await.unwrap(),
        base_digest
    );
    assert_eq!(
        push.head_digest("golden/base", "latest").await.unwrap(),
        base_digest
    );
    for app in ["api", "web"] {
        let image = format!("{host}/apps/{app}:1.0");
        let it = item(&r, &image);
        assert_eq!(it["state"], "done", "{r}");
        let digest = it["digest"].as_str().unwrap();
        assert_eq!(
            push.head_digest(&format!("apps/{app}"), "1.0")
                .await
                .unwrap(),
            digest
        );
        // Scanned into the inventory, on the base the base job pushed.
        let (bases, show) = base_digests(&env, &image).await;
        assert!(
            bases.contains(&base_digest),
            "{app} on the new base: {show}"
        );
    }
}

both_stores!(jobs_build_and_push);

/// A failed build fails its image and skips its descendants; the message
/// names the job, the build number, the result and the build's URL.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_build_fails_the_image_and_skips_the_apps() {
    let (_reg, host, jenkins, env) = sqlite_setup().await;
    jenkins.on_build("images/base", |_| async { "FAILURE".to_string() });
    let cfg = env.config(&config(&host, &jenkins, ""));
    let run = rebuild_all(&env, &cfg).await;
    no_token(&run, &jenkins);
    assert_ne!(run.code, 0, "{run}");
    let r = run.json();
    assert_eq!(r["run"]["state"], "failed", "{r}");
    let base = item(&r, &format!("{host}/golden/base:1"));
    assert_eq!(base["state"], "failed", "{r}");
    let detail = base["detail"].as_str().unwrap();
    assert!(
        detail.contains("Jenkins job images/base")
            && detail.contains("build #1 ended FAILURE")
            && detail.contains(&format!("{}/job/images/job/base/1/", jenkins.url())),
        "{detail}"
    );
    for app in ["api", "web"] {
        let it = item(&r, &format!("{host}/apps/{app}:1.0"));
        assert_eq!(it["state"], "skipped", "{r}");
    }
    // Only the base's job was started.
    assert_eq!(jenkins.builds().len(), 1);
}

/// A build that never ends fails at the timeout, naming the job and the
/// timeout; a queue item cancelled before it started fails too.
#[tokio::test(flavor = "multi_thread")]
async fn timeouts_and_cancelled_queue_items_fail() {
    let (_reg, host, jenkins, env) = sqlite_setup().await;
    jenkins.on_build("images/base", |_| std::future::pending::<String>());
    let cfg = env.config(&config(&host, &jenkins, "    timeout: 2s\n"));
    let started = std::time::Instant::now();
    let run = rebuild_all(&env, &cfg).await;
    assert_ne!(run.code, 0, "{run}");
    assert!(started.elapsed() < Duration::from_secs(30), "{run}");
    let r = run.json();
    let detail = item_detail(&r, &format!("{host}/golden/base:1"));
    assert!(
        detail.contains("Jenkins job images/base")
            && detail.contains("build #1 still running")
            && detail.contains("after 2s (builders.jenkins.timeout)"),
        "{detail}"
    );

    jenkins.cancel_queued("images/base");
    let run = rebuild_all(&env, &cfg).await;
    assert_ne!(run.code, 0, "{run}");
    let r = run.json();
    let detail = item_detail(&r, &format!("{host}/golden/base:1"));
    assert!(
        detail.contains("Jenkins job images/base") && detail.contains("was cancelled"),
        "{detail}"
    );
}

/// A wrong token is refused with what to check, and never shown.
#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_token_says_what_to_check() {
    let reg = Registry::start().await;
    let host = reg.host();
    let jenkins = jenkins().await;
    let mut env = Env::new(Db::Sqlite).await;
    env.env("JENKINS_TOKEN", "not-the-token-42");
    tree(env.path(), &host);
    let cfg = env.config(&config(&host, &jenkins, ""));
    let run = rebuild_all(&env, &cfg).await;
    assert_ne!(run.code, 0, "{run}");
    assert!(!run.to_string().contains("not-the-token-42"), "{run}");
    let r = run.json();
    let detail = item_detail(&r, &format!("{host}/golden/base:1"));
    assert!(
        detail.contains("HTTP 401") && detail.contains("check jenkins.user and jenkins.token"),
        "{detail}"
    );
    assert!(jenkins.builds().is_empty());
}

/// Pushes a one-layer image to each job's TARGET, as a job would.
fn jobs_push_small_images(jenkins: &Jenkins, reg: &Registry, jobs: &[&str]) {
    let host = reg.host();
    for job in jobs {
        let push = reg.pusher();
        let host = host.clone();
        jenkins.on_build(job, move |req| {
            let push = push.clone();
            let host = host.clone();
            async move {
                let target = req.params["TARGET"]
                    .strip_prefix(&format!("{host}/"))
                    .unwrap();
                let (repo, tag) = target.rsplit_once(':').unwrap();
                push.push_image(repo, tag, "linux/amd64", &req.params["VERSION"])
                    .await;
                "SUCCESS".to_string()
            }
        });
    }
}

/// A rebase that is refused (the image does not exist yet) falls back to
/// the Jenkins job; a job that succeeds without pushing TARGET fails its
/// image with what the job must do.
#[tokio::test(flavor = "multi_thread")]
async fn rebase_falls_back_to_jenkins_and_a_job_must_push() {
    let (reg, host, jenkins, env) = sqlite_setup().await;
    reg.pusher()
        .push_image("upstream/os", "stable", "linux/amd64", "os")
        .await;
    jobs_push_small_images(&jenkins, &reg, &["images/base", "apps/api", "apps/web"]);
    let yaml = config(&host, &jenkins, "").replacen(
        "executor: jenkins, job: images/base",
        "executor: rebase, fallback: jenkins, job: images/base",
        1,
    );
    let cfg = env.config(&yaml);
    let run = rebuild_all(&env, &cfg).await;
    run.expect(0);
    let r = run.json();
    let note = item_detail(&r, &format!("{host}/golden/base:1"));
    assert!(
        note.starts_with("rebase refused (") && note.ends_with("; built by jenkins"),
        "{note}"
    );
    assert_eq!(jenkins.builds()[0].job, "images/base");

    // A job that reports SUCCESS but pushed nothing (now the image exists,
    // a rebase would succeed: the base is a Jenkins build here).
    jenkins.on_build("images/base", |_| async { "SUCCESS".to_string() });
    let cfg = env.config_file("jenkins.yaml", &config(&host, &jenkins, ""));
    let run = rebuild_all(&env, &cfg).await;
    assert_ne!(run.code, 0, "{run}");
    let r = run.json();
    let detail = item_detail(&r, &format!("{host}/golden/base:1"));
    assert!(
        detail.contains("is not in the registry (the Jenkins job must push its TARGET parameter)"),
        "{detail}"
    );
}

/// Polls that fail for a moment (Jenkins restarting: 503) are tried
/// again; one Jenkins answers "not found" fails the image at once.
#[tokio::test(flavor = "multi_thread")]
async fn transient_poll_failures_are_retried_lasting_ones_are_not() {
    let (reg, host, jenkins, env) = sqlite_setup().await;
    jobs_push_small_images(&jenkins, &reg, &["images/base", "apps/api", "apps/web"]);
    jenkins.fail_polls(3, 503);
    let cfg = env.config(&config(&host, &jenkins, ""));
    let run = rebuild_all(&env, &cfg).await;
    run.expect(0);
    assert_eq!(run.json()["run"]["state"], "done", "{run}");

    jenkins.fail_polls(1, 404);
    let run = rebuild_all(&env, &cfg).await;
    assert_ne!(run.code, 0, "{run}");
    let r = run.json();
    let detail = item_detail(&r, &format!("{host}/golden/base:1"));
    assert!(detail.contains("HTTP 404"), "{detail}");
}
