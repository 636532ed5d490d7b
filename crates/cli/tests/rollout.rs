//! `freshen rollout` against the Kubernetes API double (testkit
//! `KubeApi`, which implements apps/v1 and batch/v1 as documented and is
//! driven by the real kubectl in testkit's own tests), over TLS with the
//! kubeconfig's CA and bearer token, on SQLite and PostgreSQL:
//! - an image pushed to a real registry: `--plan` lists the Deployments,
//!   StatefulSets and CronJobs (containers and init containers) that run it
//!   by tag or by an old digest, in the selected namespaces and labels, and
//!   patches nothing; the roll-out patches them, waits for each rollout and
//!   records it; a write conflict is read again and retried; a rollout the
//!   cluster fails is put back to the old image;
//! - a rebuild run's images in its waves: the second wave starts after the
//!   first is healthy; a held (not promoted) image is not rolled out; a
//!   failed first wave skips the second; a roll-out killed with `kill -9`
//!   while it waits is resumed by running it again.

mod common;

use std::time::{Duration, Instant};

use common::{Env, Run};
use freshen_testkit::{Db, KubeApi, Pusher, Registry, Rollout, both_stores};
use serde_json::{Value, json};

fn pod_template(containers: &[(&str, &str)], init: &[(&str, &str)]) -> Value {
    let list = |cs: &[(&str, &str)]| -> Vec<Value> {
        cs.iter()
            .map(|(n, i)| json!({"name": n, "image": i}))
            .collect()
    };
    json!({
        "metadata": {"labels": {"app": "x"}},
        "spec": {"containers": list(containers), "initContainers": list(init)}
    })
}

fn workload(
    kind: &str,
    ns: &str,
    name: &str,
    labels: Value,
    containers: &[(&str, &str)],
    init: &[(&str, &str)],
) -> Value {
    let template = pod_template(containers, init);
    let (api_version, spec) = match kind {
        "CronJob" => (
            "batch/v1",
            json!({"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template}}}),
        ),
        _ => (
            "apps/v1",
            json!({"replicas": 2, "selector": {"matchLabels": {"app": "x"}}, "template": template}),
        ),
    };
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": spec
    })
}

fn image_of(api: &KubeApi, kind: &str, ns: &str, name: &str, container: &str) -> String {
    let o = api
        .get(kind, ns, name)
        .unwrap_or_else(|| panic!("{kind} {ns}/{name} is gone"));
    let spec = if kind == "CronJob" {
        &o["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    } else {
        &o["spec"]["template"]["spec"]
    };
    for list in ["containers", "initContainers"] {
        for c in spec[list].as_array().into_iter().flatten() {
            if c["name"] == container {
                return c["image"].as_str().unwrap().to_string();
            }
        }
    }
    panic!("{kind} {ns}/{name} has no container {container}: {o}")
}

/// The config: one cluster, namespaces `apps` and `data`, label
/// `freshen=on`, quick polls and a short timeout.
fn config(env: &Env, api: &KubeApi, timeout: &str) -> String {
    let kubeconfig = api.kubeconfig_https(env.path(), "prod", "apps");
    let c = env.config(&format!(
        "rollout:\n  parallel: 2\n  timeout: {timeout}\n  poll_interval: 100ms\n  lease: 2s\n  clusters:\n    prod:\n      kubeconfig: {}\n      namespaces: [apps, data]\n      selector: freshen=on\n",
        kubeconfig.display()
    ));
    c.to_str().unwrap().to_string()
}

async fn rollout(env: &Env, config: &str, args: &[&str]) -> Run {
    let mut a = vec!["rollout", "--config", config, "--json"];
    a.extend_from_slice(args);
    env.run(&a).await
}

fn item<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no workload {name} in {report}"))
}

async fn an_image_rolled_out(db: Db) {
    let reg = Registry::start().await;
    let host = reg.host();
    let push = Pusher::new(&host, None);
    let v0 = push.push_image("apps/web", "1", "linux/amd64", "v0").await;
    let api = KubeApi::start().await;
    let on = json!({"freshen": "on"});
    let web = format!("{host}/apps/web");
    let old = format!("{web}@{v0}");
    for o in [
        // By tag, as written, with a sidecar that stays.
        workload(
            "Deployment",
            "apps",
            "web",
            on.clone(),
            &[("web", &format!("{web}:1")), ("proxy", "envoy:1")],
            &[],
        ),
        // An init container pinned to a digest the tag had before.
        workload(
            "StatefulSet",
            "data",
            "db",
            on.clone(),
            &[("db", "postgres:16")],
            &[("migrate", &old)],
        ),
        workload(
            "CronJob",
            "apps",
            "nightly",
            on.clone(),
            &[("job", &format!("{web}:1"))],
            &[],
        ),
        // Not selected: another namespace, no label, another tag, a
        // digest somebody chose.
        workload(
            "Deployment",
            "elsewhere",
            "web",
            on.clone(),
            &[("web", &format!("{web}:1"))],
            &[],
        ),
        workload(
            "Deployment",
            "apps",
            "unlabelled",
            json!({}),
            &[("web", &format!("{web}:1"))],
            &[],
        ),
        workload(
            "Deployment",
            "apps",
            "v2",
            on.clone(),
            &[("web", &format!("{web}:2"))],
            &[],
        ),
        workload(
            "Deployment",
            "apps",
            "chosen",
            on.clone(),
            &[("web", &format!("{web}@{OTHER}"))],
            &[],
        ),
    ] {
        api.create(o);
    }
    let env = Env::new(db).await;
    let config = config(&env, &api, "20s");
    // The old digest is known: a watch saw the tag on it before v1.
    let watch = env.config_file("watch.yaml", &format!("watches:\n  - ref: {web}:1\n"));
    env.run(&["check", "--config", watch.to_str().unwrap()])
        .await
        .expect(0);
    let v1 = push.push_image("apps/web", "1", "linux/amd64", "v1").await;

    // The plan changes nothing.
    let plan = rollout(&env, &config, &["--plan", &format!("{web}:1")]).await;
    plan.expect(0);
    let plan = plan.json();
    assert_eq!(plan["images"][0]["digest"], v1.as_str(), "{plan}");
    let mut planned: Vec<String> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}/{}/{}",
                c["workload"]["namespace"].as_str().unwrap(),
                c["workload"]["kind"].as_str().unwrap(),
                c["workload"]["name"].as_str().unwrap()
            )
        })
        .collect();
    planned.sort();
    assert_eq!(
        planned,
        [
            "apps/CronJob/nightly",
            "apps/Deployment/web",
            "data/StatefulSet/db"
        ],
        "{plan}"
    );
    assert!(
        api.writes().is_empty(),
        "a plan patched: {:?}",
        api.writes()
    );

    // The roll-out, with one write conflict on the Deployment.
    api.conflict_next("Deployment", "apps", "web", 1);
    let r = rollout(&env, &config, &[&format!("{web}:1")]).await;
    r.expect(0);
    let report = r.json();
    assert_eq!(report["rollout"]["state"], "done", "{report}");
    let pinned = format!("{web}:1@{v1}");
    assert_eq!(image_of(&api, "Deployment", "apps", "web", "web"), pinned);
    assert_eq!(
        image_of(&api, "Deployment", "apps", "web", "proxy"),
        "envoy:1"
    );
    assert_eq!(image_of(&api, "CronJob", "apps", "nightly", "job"), pinned);
    assert_eq!(
        image_of(&api, "StatefulSet", "data", "db", "migrate"),
        format!("{web}@{v1}")
    );
    assert_eq!(
        image_of(&api, "StatefulSet", "data", "db", "db"),
        "postgres:16"
    );
    for (kind, ns, name) in [
        ("Deployment", "elsewhere", "web"),
        ("Deployment", "apps", "unlabelled"),
    ] {
        assert_eq!(image_of(&api, kind, ns, name, "web"), format!("{web}:1"));
    }
    let web_item = item(&report, "web");
    assert_eq!(web_item["state"], "done", "{report}");
    assert!(web_item["started_at"].is_string() && web_item["finished_at"].is_string());
    // The conflict was met and the patch read the workload again.
    let patches = api
        .writes()
        .iter()
        .filter(|w| w.method == "PATCH" && w.path.contains("/deployments/web"))
        .count();
    assert_eq!(patches, 2, "{:?}", api.writes());
    assert!(
        api.writes().iter().all(|w| w.method != "PATCH"
            || w.content_type.as_deref() == Some("application/strategic-merge-patch+json")),
        "{:?}",
        api.writes()
    );

    // Listed, and shown by id, from the CLI and the API.
    let id = report["rollout"]["id"].as_str().unwrap().to_string();
    let list = env.run(&["rollouts", "--json"]).await;
    list.expect(0);
    assert_eq!(list.json()[0]["id"], id.as_str());
    let shown = env.run(&["rollouts", &id]).await;
    shown.expect(0);
    assert!(
        shown.stdout.contains("apps/deployment/web"),
        "{}",
        shown.stdout
    );

    // Again: every workload is on the digest; nothing is patched.
    let before = api.writes().len();
    let again = rollout(&env, &config, &[&format!("{web}:1")]).await;
    again.expect(0);
    assert_eq!(again.json()["items"].as_array().unwrap().len(), 0);
    assert_eq!(api.writes().len(), before);

    // A new digest whose rollout the cluster fails: put back.
    let v2 = push.push_image("apps/web", "1", "linux/amd64", "v2").await;
    api.on_image(
        &v2,
        Rollout::Fail {
            after: Duration::from_millis(300),
        },
    );
    let failed = rollout(&env, &config, &[&format!("{web}:1")]).await;
    assert_eq!(failed.code, 2, "{}\n{}", failed.stdout, failed.stderr);
    let report = failed.json();
    assert_eq!(report["rollout"]["state"], "failed", "{report}");
    let web_item = item(&report, "web");
    assert_eq!(web_item["state"], "rolled_back", "{report}");
    let detail = web_item["detail"].as_str().unwrap();
    assert!(
        detail.contains("progress deadline") && detail.contains(&pinned),
        "{detail}"
    );
    assert_eq!(image_of(&api, "Deployment", "apps", "web", "web"), pinned);
    // The CronJob has no rollout to fail: it moved.
    assert_eq!(
        image_of(&api, "CronJob", "apps", "nightly", "job"),
        format!("{web}:1@{v2}")
    );
    drop(reg);
}

const OTHER: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

both_stores!(an_image_rolled_out);

/// A rebuild run as a cascade leaves it: each image done with its digest,
/// in its wave (written to the store as the runner writes it).
async fn stored_run(env: &Env, items: &[(&str, i32, &str, Option<&str>)]) -> String {
    let store = freshen_store::Store::open(&env.database).await.unwrap();
    let id = format!("run-{}", uuid_like());
    let run = freshen_store::RebuildRun {
        id: id.clone(),
        trigger: json!({"base": "fixture"}),
        cause: json!({}),
        plan: json!({}),
        state: freshen_store::RunState::Running,
        created_at: chrono_now(),
        finished_at: None,
        event_id: None,
    };
    let list: Vec<(String, i32)> = items
        .iter()
        .map(|(i, w, _, _)| (i.to_string(), *w))
        .collect();
    store.create_rebuild(&run, &list).await.unwrap();
    for (image, _, digest, detail) in items {
        store
            .set_rebuild_item(
                &id,
                image,
                freshen_store::ItemState::Done,
                Some("2026.49.1"),
                Some(digest),
                *detail,
                chrono_now(),
            )
            .await
            .unwrap();
    }
    store
        .finish_rebuild(&id, freshen_store::RunState::Done, chrono_now())
        .await
        .unwrap();
    id
}

fn chrono_now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

fn digest(n: u8) -> String {
    format!("sha256:{}", format!("{n:x}").repeat(64))
}

async fn waves_failures_and_a_restart(db: Db) {
    let api = KubeApi::start().await;
    let on = json!({"freshen": "on"});
    let base = "registry.example/golden/base:1";
    let app = "registry.example/apps/web:1";
    let held = "registry.example/apps/held:1";
    for (name, image) in [("base-user", base), ("web", app), ("held", held)] {
        api.create(workload(
            "Deployment",
            "apps",
            name,
            on.clone(),
            &[("c", image)],
            &[],
        ));
    }
    let env = Env::new(db).await;
    let config = config(&env, &api, "30s");
    let (d1, d2, d3) = (digest(1), digest(2), digest(3));
    api.on_image(
        &d1,
        Rollout::Complete {
            after: Duration::from_millis(800),
        },
    );

    // 1. Waves in order; the held image stays.
    let run = stored_run(
        &env,
        &[
            (base, 0, &d1, None),
            (app, 1, &d2, Some("verified: CVE-1 fixed")),
            (
                held,
                1,
                &d3,
                Some("not promoted: the rebuild fixed none of CVE-2 (cascade.promote_unfixed is false)"),
            ),
        ],
    )
    .await;
    let r = rollout(&env, &config, &["--run", &run]).await;
    r.expect(0);
    let report = r.json();
    let (b, w) = (item(&report, "base-user"), item(&report, "web"));
    assert_eq!((b["wave"].as_i64(), w["wave"].as_i64()), (Some(0), Some(1)));
    assert!(
        w["started_at"].as_str().unwrap() >= b["finished_at"].as_str().unwrap(),
        "wave 2 started before wave 1 was healthy: {report}"
    );
    assert_eq!(image_of(&api, "Deployment", "apps", "held", "c"), held);
    let order: Vec<String> = api
        .writes()
        .iter()
        .filter(|w| w.method == "PATCH")
        .map(|w| {
            w.path
                .split('?')
                .next()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(order, ["base-user", "web"]);
    // Asked again, the run's roll-out is answered as it stands.
    let again = rollout(&env, &config, &["--run", &run]).await;
    again.expect(0);
    assert_eq!(again.json()["rollout"]["id"], report["rollout"]["id"]);

    // 2. A failed first wave skips the second.
    let (d4, d5) = (digest(4), digest(5));
    api.on_image(
        &d4,
        Rollout::Fail {
            after: Duration::from_millis(200),
        },
    );
    let run = stored_run(&env, &[(base, 0, &d4, None), (app, 1, &d5, None)]).await;
    let r = rollout(&env, &config, &["--run", &run]).await;
    r.expect(2);
    let report = r.json();
    assert_eq!(
        item(&report, "base-user")["state"],
        "rolled_back",
        "{report}"
    );
    let web = item(&report, "web");
    assert_eq!(web["state"], "skipped", "{report}");
    assert!(
        web["detail"].as_str().unwrap().contains("wave 1"),
        "{report}"
    );
    assert_eq!(
        image_of(&api, "Deployment", "apps", "base-user", "c"),
        format!("{base}@{d1}")
    );
    assert_eq!(
        image_of(&api, "Deployment", "apps", "web", "c"),
        format!("{app}@{d2}")
    );

    // 3. Killed while it waits on a slow rollout; run again (once the dead
    // process's lease lapsed), it resumes the wait: the workload's rollout
    // is not started again (its generation stays).
    let (d6, d7) = (digest(6), digest(7));
    api.on_image(
        &d7,
        Rollout::Complete {
            after: Duration::from_secs(6),
        },
    );
    let run = stored_run(&env, &[(base, 0, &d6, None), (app, 1, &d7, None)]).await;
    let mut child = env.spawn(
        &["rollout", "--config", &config, "--run", &run],
        "rollout.log",
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let id = loop {
        let list = env.run(&["rollouts", "--json"]).await.json();
        let found = list
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["run_id"] == run.as_str())
            .map(|r| r["id"].as_str().unwrap().to_string());
        if let Some(id) = found {
            let shown = env.run(&["rollouts", &id, "--json"]).await.json();
            if item(&shown, "web")["state"] == "rolling" {
                break id;
            }
        }
        assert!(
            Instant::now() < deadline,
            "never got to wave 2: {}",
            env.log("rollout.log")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let generation = |name: &str| {
        api.get("Deployment", "apps", name).unwrap()["metadata"]["generation"]
            .as_i64()
            .unwrap()
    };
    let web_generation = generation("web");
    // While the dead process's lease holds, nobody else carries it out.
    let busy = rollout(&env, &config, &["--run", &run]).await;
    busy.expect(2);
    assert!(
        busy.stderr
            .contains("is being carried out by another process"),
        "{}",
        busy.stderr
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let patches_of_base = || {
        api.writes()
            .iter()
            .filter(|w| {
                w.method == "PATCH" && w.path.split('?').next().unwrap().ends_with("/base-user")
            })
            .count()
    };
    let base_patches = patches_of_base();
    let r = rollout(&env, &config, &["--run", &run]).await;
    r.expect(0);
    let report = r.json();
    assert_eq!(report["rollout"]["id"], id.as_str());
    assert_eq!(report["rollout"]["state"], "done", "{report}");
    assert_eq!(item(&report, "web")["state"], "done");
    assert_eq!(
        patches_of_base(),
        base_patches,
        "wave 1 was rolled out twice"
    );
    assert_eq!(
        image_of(&api, "Deployment", "apps", "web", "c"),
        format!("{app}@{d7}")
    );
    assert_eq!(
        generation("web"),
        web_generation,
        "the rollout was started again"
    );

    // 4. Killed while a failed rollout is being put back (the old image's
    // rollout is slow): resumed, it finishes putting back, never rolls the
    // failed digest out again, and the next wave is skipped.
    let (d8, d9) = (digest(8), digest(9));
    api.on_image(
        &d8,
        Rollout::Fail {
            after: Duration::from_millis(200),
        },
    );
    api.on_image(
        &d6,
        Rollout::Complete {
            after: Duration::from_secs(6),
        },
    );
    let run = stored_run(&env, &[(base, 0, &d8, None), (app, 1, &d9, None)]).await;
    let mut child = env.spawn(
        &["rollout", "--config", &config, "--run", &run],
        "rollout4.log",
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = env.run(&["rollouts", "--json"]).await.json();
        let found = list
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["run_id"] == run.as_str())
            .map(|r| r["id"].as_str().unwrap().to_string());
        if let Some(id) = found {
            let shown = env.run(&["rollouts", &id, "--json"]).await.json();
            let b = item(&shown, "base-user");
            if b["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("putting back: "))
                && image_of(&api, "Deployment", "apps", "base-user", "c") == format!("{base}@{d6}")
            {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "never got to putting back: {}",
            env.log("rollout4.log")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let new_patches = || {
        api.writes()
            .iter()
            .filter(|w| w.method == "PATCH" && w.body.contains(d8.as_str()))
            .count()
    };
    let before = new_patches();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = rollout(&env, &config, &["--run", &run]).await;
    r.expect(2);
    let report = r.json();
    assert_eq!(report["rollout"]["state"], "failed", "{report}");
    assert_eq!(
        item(&report, "base-user")["state"],
        "rolled_back",
        "{report}"
    );
    assert_eq!(item(&report, "web")["state"], "skipped", "{report}");
    assert_eq!(
        new_patches(),
        before,
        "the failed digest was rolled out again"
    );
    assert_eq!(
        image_of(&api, "Deployment", "apps", "base-user", "c"),
        format!("{base}@{d6}")
    );
}

both_stores!(waves_failures_and_a_restart);

fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A GitOps repository only (no cluster): the roll-out commits the new
/// digest to a bare remote, once; `kubectl kustomize` renders it.
async fn gitops_only(db: Db) {
    let env = Env::new(db).await;
    let d = env.path();
    let remote = d.join("remote.git");
    std::fs::create_dir_all(&remote).unwrap();
    git(&remote, &["init", "-q", "--bare", "-b", "main"]);
    let work = d.join("work");
    std::fs::create_dir_all(work.join("app")).unwrap();
    std::fs::write(
        work.join("app/kustomization.yaml"),
        "resources:\n  - deployment.yaml\nimages:\n  # pinned by freshen\n  - name: registry.example/apps/web\n    newTag: \"1\"\n",
    )
    .unwrap();
    std::fs::write(
        work.join("app/deployment.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n        - name: web\n          image: registry.example/apps/web\n",
    )
    .unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "."]);
    git(
        &work,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "seed",
        ],
    );
    git(&work, &["push", "-q", remote.to_str().unwrap(), "main"]);
    let url = format!("file://{}", remote.display());
    let config = env.config(&format!(
        "rollout:\n  gitops:\n    infra:\n      url: {url}\n      paths: [app]\n      author_name: freshen-bot\n"
    ));
    let config = config.to_str().unwrap();
    let d9 = digest(9);
    let image = format!("registry.example/apps/web:1@{d9}");
    let r = rollout(&env, config, &[&image]).await;
    r.expect(0);
    let report = r.json();
    let repo = item(&report, "infra");
    assert_eq!(repo["state"], "done", "{report}");
    assert!(
        repo["detail"]
            .as_str()
            .unwrap()
            .contains("app/kustomization.yaml"),
        "{report}"
    );
    // One commit by freshen on the remote; the overlay renders the digest.
    let check = d.join("check");
    git(d, &["clone", "-q", &url, check.to_str().unwrap()]);
    let log = git(&check, &["log", "--format=%an %s"]);
    assert!(
        log.starts_with("freshen-bot freshen: roll out 1 image(s)"),
        "{log}"
    );
    let kustomization = std::fs::read_to_string(check.join("app/kustomization.yaml")).unwrap();
    assert!(
        kustomization.contains("# pinned by freshen"),
        "{kustomization}"
    );
    let rendered = std::process::Command::new(freshen_testkit::kubectl())
        .args(["kustomize", check.join("app").to_str().unwrap()])
        .output()
        .unwrap();
    let rendered = String::from_utf8_lossy(&rendered.stdout);
    assert!(
        rendered.contains(&format!("image: registry.example/apps/web:1@{d9}")),
        "{rendered}"
    );
    // Again: nothing to change, no second commit.
    let again = rollout(&env, config, &[&image]).await;
    again.expect(0);
    assert!(
        item(&again.json(), "infra")["detail"]
            .as_str()
            .unwrap()
            .contains("nothing to change"),
        "{}",
        again.stdout
    );
    git(&check, &["pull", "-q"]);
    assert_eq!(git(&check, &["rev-list", "--count", "HEAD"]).trim(), "2");
}

both_stores!(gitops_only);
