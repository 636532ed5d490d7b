//! A cascade the watcher starts rolls out what it rebuilt, end to end with
//! real parts, on SQLite and PostgreSQL: an upstream base in a real
//! registry, `golden/base` and `apps/web` built on it by buildah, and the
//! Kubernetes API double (over TLS) running them. The upstream tag moves
//! and `freshen check` rebuilds the tree, promotes it, then rolls it out:
//! the Deployment on golden/base in wave 0 (a slow rollout), the
//! Deployment and the CronJob on apps/web in wave 1, once wave 0 is
//! healthy; each pinned to the digest the rebuild pushed and the tag now
//! points at. A sidecar and a namespace not configured are left alone; the
//! cascade's delivery says what was rolled out. A check with no change
//! rolls out nothing, and `rollout --run` answers the same roll-out
//! without patching. With `rollout.after_cascade: false` the cascade
//! rebuilds and nothing is rolled out. With `approve: [rollout]` on the
//! watch the cascade rebuilds and promotes, then its roll-out waits for a
//! person (nothing patched, nothing built again while it waits); approved,
//! the next check rolls it out; rejected, nothing is rolled out.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{Buildah, Env, golden_base, holding_buildah, item, rig, upstream_v1_v2, write};
use freshen_testkit::{Db, KubeApi, Pusher, Registry, Rollout, both_stores};
use serde_json::{Value, json};

/// A Deployment or CronJob in `ns` with these containers.
fn workload(kind: &str, ns: &str, name: &str, containers: &[(&str, &str)]) -> Value {
    let containers: Vec<Value> = containers
        .iter()
        .map(|(n, i)| json!({"name": n, "image": i}))
        .collect();
    let template = json!({
        "metadata": {"labels": {"app": name}},
        "spec": {"containers": containers}
    });
    let (api_version, spec) = match kind {
        "CronJob" => (
            "batch/v1",
            json!({"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template}}}),
        ),
        _ => (
            "apps/v1",
            json!({"replicas": 2, "selector": {"matchLabels": {"app": name}}, "template": template}),
        ),
    };
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": ns},
        "spec": spec
    })
}

/// The image of `container` in a workload of the double.
fn image_of(api: &KubeApi, kind: &str, ns: &str, name: &str, container: &str) -> String {
    let o = api
        .get(kind, ns, name)
        .unwrap_or_else(|| panic!("{kind} {ns}/{name} is gone"));
    let spec = if kind == "CronJob" {
        &o["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    } else {
        &o["spec"]["template"]["spec"]
    };
    spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == container)
        .and_then(|c| c["image"].as_str())
        .unwrap_or_else(|| panic!("{kind} {ns}/{name} has no container {container}: {o}"))
        .to_string()
}

/// The paths (without their query) of the PATCH requests so far.
fn patched(api: &KubeApi) -> Vec<String> {
    api.writes()
        .iter()
        .filter(|w| w.method == "PATCH")
        .map(|w| w.path.split('?').next().unwrap().to_string())
        .collect()
}

/// A workload of a roll-out (`rollouts ID --json`), by name.
fn workload_of<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no workload {name} in {report}"))
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap_or_else(|e| panic!("not a time ({e}): {v}"))
}

/// Every rebuild run, newest first.
async fn runs(env: &Env) -> Vec<Value> {
    let r = env.run(&["rebuilds", "--json"]).await;
    r.expect(0);
    r.json().as_array().unwrap().clone()
}

/// Every roll-out, newest first.
async fn rollouts(env: &Env) -> Vec<Value> {
    let r = env.run(&["rollouts", "--json"]).await;
    r.expect(0);
    r.json().as_array().unwrap().clone()
}

/// `check --config CONFIG --json`, with its stderr.
async fn check(env: &Env, config: &str) -> (Value, String) {
    let r = env.run(&["check", "--config", config, "--json"]).await;
    r.expect(0);
    (r.json(), r.stderr.clone())
}

/// The one delivery of a check, asserted to be the delivered cascade; its
/// detail (the stored response).
fn cascade_detail(c: &Value, stderr: &str) -> String {
    let deliveries = c["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{c}\n{stderr}");
    let d = &deliveries[0];
    assert_eq!(
        (d["trigger"].as_str(), d["state"].as_str()),
        (Some("cascade"), Some("delivered")),
        "{c}\n{stderr}"
    );
    d["detail"].as_str().unwrap().to_string()
}

/// What these tests run on: the upstream base (v1 at the watched tag for
/// now), `golden/base:1` on it and `apps/web:1` on that, to be built by
/// buildah; and the cluster (the Kubernetes API double): a Deployment on
/// the base (slow to roll out), the app as a Deployment (with a sidecar)
/// and a CronJob, and the app in a namespace not configured.
struct Tree {
    _reg: Registry,
    push: Pusher,
    _buildah: Buildah,
    env: Env,
    api: KubeApi,
    /// The upstream digests, v1 and v2.
    up: Vec<String>,
    watched: String,
    base: String,
    web: String,
    wrapper: PathBuf,
    buildah_root: tempfile::TempDir,
    kubeconfig: PathBuf,
}

/// The sidecar of the app's Deployment.
const SIDECAR: &str = "envoy:1.31";

impl Tree {
    async fn new(db: Db) -> Tree {
        let (reg, host, push, buildah, env, d) = rig(db).await;
        let up = upstream_v1_v2(&buildah, &d, &host).await;
        let watched = format!("{host}/upstream/os:stable");
        push.tag("upstream/os", &up[0], "stable").await;
        golden_base(&d, &host);
        let (base, web) = (
            format!("{host}/golden/base:1"),
            format!("{host}/apps/web:1"),
        );
        write(
            &d.join("apps/web/Dockerfile"),
            &format!("FROM {base}\nCOPY app.txt /web.txt\n"),
        );
        write(&d.join("apps/web/app.txt"), "web\n");

        let api = KubeApi::start().await;
        for o in [
            workload("Deployment", "apps", "base-user", &[("main", &base)]),
            workload(
                "Deployment",
                "apps",
                "web",
                &[("web", &web), ("proxy", SIDECAR)],
            ),
            workload("CronJob", "apps", "nightly", &[("job", &web)]),
            workload("Deployment", "elsewhere", "web", &[("web", &web)]),
        ] {
            api.create(o);
        }
        // The base's users take a while to roll out.
        api.on_image(
            "golden/base",
            Rollout::Complete {
                after: Duration::from_millis(1500),
            },
        );
        let wrapper = holding_buildah(&d);
        let kubeconfig = api.kubeconfig_https(env.path(), "prod", "apps");
        Tree {
            _reg: reg,
            push,
            _buildah: buildah,
            env,
            api,
            up,
            watched,
            base,
            web,
            wrapper,
            buildah_root: tempfile::tempdir().unwrap(),
            kubeconfig,
        }
    }

    /// Writes config `name` and returns its path: the watch (with `watch`
    /// lines after its own) cascades, the cascade rolls out (or not, by
    /// `after_cascade`) to the cluster's `apps` namespace; `more` ends it.
    fn config(&self, name: &str, after_cascade: bool, watch: &str, more: &str) -> String {
        let yaml = format!(
            "jitter: 0s\n\
             outbox: {{initial_backoff: 200ms, max_backoff: 1s, lease: 4s}}\n\
             watches:\n  - ref: {watched}\n    on_change: [cascade]\n{watch}\
             policy: {{mode: always}}\n\
             cascade: {{parallel: 1}}\n\
             builds:\n  - {{image: {base}, context: images/base}}\n  - {{image: {web}, context: apps/web}}\n\
             builders:\n  buildah:\n    command: {wrapper}\n    root: {root}/root\n    runroot: {root}/run\n    storage_driver: vfs\n\
             rollout:\n  timeout: 60s\n  poll_interval: 100ms\n  after_cascade: {after_cascade}\n  clusters:\n    prod:\n      kubeconfig: {kubeconfig}\n      namespaces: [apps]\n\
             {more}",
            watched = self.watched,
            base = self.base,
            web = self.web,
            wrapper = self.wrapper.display(),
            root = self.buildah_root.path().display(),
            kubeconfig = self.kubeconfig.display(),
        );
        let path = self.env.config_file(name, &yaml);
        path.to_str().unwrap().to_string()
    }

    /// The rebuilt digests of golden/base and apps/web in `run` (done),
    /// each asserted to be what its tag now points at.
    async fn promoted(&self, run: &str) -> (String, String) {
        let r = self.env.run(&["rebuilds", run, "--json"]).await;
        r.expect(0);
        let r = r.json();
        let mut digests = Vec::new();
        for (image, repo) in [(&self.base, "golden/base"), (&self.web, "apps/web")] {
            let i = item(&r, image);
            assert_eq!(i["state"], "done", "{r}");
            let digest = i["digest"].as_str().unwrap().to_string();
            // Promoted: the tag the workloads follow points at the rebuild.
            assert_eq!(
                self.push.head_digest(repo, "1").await.as_deref(),
                Some(digest.as_str()),
                "{repo}:1 was not promoted to the rebuild: {r}"
            );
            digests.push(digest);
        }
        let web = digests.pop().unwrap();
        (digests.pop().unwrap(), web)
    }

    /// The cluster: each configured container pinned to the rebuilt
    /// digests, its tag kept; the sidecar and the other namespace
    /// untouched; the three workloads patched once each.
    fn assert_rolled_out(&self, base_digest: &str, web_digest: &str) {
        let (api, base, web) = (&self.api, &self.base, &self.web);
        assert_eq!(
            image_of(api, "Deployment", "apps", "base-user", "main"),
            format!("{base}@{base_digest}")
        );
        assert_eq!(
            image_of(api, "Deployment", "apps", "web", "web"),
            format!("{web}@{web_digest}")
        );
        assert_eq!(
            image_of(api, "CronJob", "apps", "nightly", "job"),
            format!("{web}@{web_digest}")
        );
        assert_eq!(image_of(api, "Deployment", "apps", "web", "proxy"), SIDECAR);
        assert_eq!(
            image_of(api, "Deployment", "elsewhere", "web", "web"),
            web.as_str()
        );
        let mut paths = patched(api);
        paths.sort();
        assert_eq!(
            paths,
            [
                "/apis/apps/v1/namespaces/apps/deployments/base-user",
                "/apis/apps/v1/namespaces/apps/deployments/web",
                "/apis/batch/v1/namespaces/apps/cronjobs/nightly",
            ],
            "{:?}",
            api.writes()
        );
    }
}

/// The cascade delivery of `event`, as `outbox list` shows it.
async fn cascade_of(env: &Env, event: &str) -> Value {
    let outbox = env.run(&["outbox", "list", "--json"]).await;
    outbox.expect(0);
    outbox
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["trigger"] == "cascade" && d["event_id"] == event)
        .cloned()
        .unwrap_or_else(|| panic!("no cascade delivery: {outbox}"))
}

async fn cascade_rolls_out(db: Db) {
    let t = Tree::new(db).await;
    let (push, env, api, up) = (&t.push, &t.env, &t.api, &t.up);
    let web = &t.web;
    let rolls = &t.config("rolls.yaml", true, "", "");
    let stays = &t.config("stays.yaml", false, "", "");

    // The first sight is a baseline: no cascade, nothing rolled out.
    let (c, _) = check(env, rolls).await;
    assert_eq!(c["results"][0]["platforms"][0]["status"], "new", "{c}");
    assert!(runs(env).await.is_empty());
    assert!(api.writes().is_empty(), "{:?}", api.writes());

    // 1. The tag moves: `check` rebuilds golden/base then apps/web,
    //    promotes them, and rolls them out.
    push.tag("upstream/os", &up[1], "stable").await;
    let started = std::time::Instant::now();
    let (c, stderr) = check(env, rolls).await;
    eprintln!("check with cascade and roll-out: {:?}", started.elapsed());
    let event = c["results"][0]["event_id"].as_str().unwrap().to_string();
    let detail = cascade_detail(&c, &stderr);

    // The run: done, keyed by the event.
    let listed = runs(env).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["event_id"], event.as_str());
    assert_eq!(listed[0]["state"], "done", "{listed:?}\n{stderr}");
    let run = listed[0]["id"].as_str().unwrap().to_string();
    let (base_digest, web_digest) = t.promoted(&run).await;

    // One roll-out, of that run, done.
    let list = rollouts(env).await;
    assert_eq!(list.len(), 1, "{list:?}\n{stderr}");
    assert_eq!(list[0]["run_id"], run.as_str(), "{list:?}");
    assert_eq!(list[0]["state"], "done", "{list:?}\n{stderr}");
    assert_eq!(list[0]["trigger"]["event"], event.as_str(), "{list:?}");
    let id = list[0]["id"].as_str().unwrap().to_string();

    // Its workloads: the base's user in wave 0, the app's in wave 1, which
    // started once wave 0 was healthy.
    let shown = env.run(&["rollouts", &id, "--json"]).await;
    shown.expect(0);
    let report = shown.json();
    assert_eq!(report["items"].as_array().unwrap().len(), 3, "{report}");
    for (name, wave) in [("base-user", 0), ("web", 1), ("nightly", 1)] {
        let w = workload_of(&report, name);
        assert_eq!(w["namespace"], "apps", "{report}");
        assert_eq!(w["wave"], wave, "{name}: {report}");
        assert_eq!(w["state"], "done", "{name}: {report}");
    }
    let b = workload_of(&report, "base-user");
    let base_done = time(&b["finished_at"]);
    assert!(
        base_done - time(&b["started_at"]) >= chrono::Duration::milliseconds(1400),
        "the base's slow rollout was not waited for: {report}"
    );
    for name in ["web", "nightly"] {
        assert!(
            time(&workload_of(&report, name)["started_at"]) >= base_done,
            "wave 1 ({name}) started before wave 0 was healthy: {report}"
        );
    }

    // The cluster: each container pinned to the rebuilt, promoted digest,
    // its tag kept; the sidecar and the other namespace untouched.
    t.assert_rolled_out(&base_digest, &web_digest);

    // The cascade's delivery says what was rolled out, in `check` and in
    // the outbox.
    let summary = format!("roll-out {id} done: 3 workload(s), 3 done");
    assert!(
        detail.contains("2 image(s) rebuilt") && detail.contains(&summary),
        "{detail}"
    );
    let row = cascade_of(env, &event).await;
    assert_eq!(row["state"], "delivered", "{row}");
    assert!(
        row["response"]
            .as_str()
            .unwrap_or_default()
            .contains(&summary),
        "{row}"
    );

    // 2. No change: no cascade, no new roll-out, nothing patched; asked
    //    for the run's roll-out, the same one is answered as it stands.
    let writes = api.writes().len();
    let (c, _) = check(env, rolls).await;
    assert_eq!(c["results"][0]["platforms"][0]["status"], "unchanged");
    assert_eq!(c["deliveries"], Value::Array(vec![]), "{c}");
    assert_eq!(rollouts(env).await.len(), 1);
    let again = env
        .run(&["rollout", "--config", rolls, "--run", &run, "--json"])
        .await;
    again.expect(0);
    assert_eq!(again.json()["rollout"]["id"], id.as_str(), "{again}");
    assert_eq!(again.json()["rollout"]["state"], "done", "{again}");
    assert_eq!(rollouts(env).await.len(), 1);
    assert_eq!(api.writes().len(), writes, "{:?}", api.writes());

    // 3. `rollout.after_cascade: false`: the tag moves back, the cascade
    //    rebuilds both images, and nothing is rolled out.
    push.tag("upstream/os", &up[0], "stable").await;
    let (c, stderr) = check(env, stays).await;
    let detail = cascade_detail(&c, &stderr);
    assert!(
        detail.contains("2 image(s) rebuilt") && !detail.contains("roll-out"),
        "{detail}"
    );
    let listed = runs(env).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0]["state"], "done", "{listed:?}");
    let second = listed[0]["id"].as_str().unwrap().to_string();
    assert_ne!(second, run);
    let r = env.run(&["rebuilds", &second, "--json"]).await;
    r.expect(0);
    let r = r.json();
    let moved = item(&r, web)["digest"].as_str().unwrap().to_string();
    assert_ne!(moved, web_digest, "{r}");
    assert_eq!(push.head_digest("apps/web", "1").await, Some(moved));
    assert_eq!(rollouts(env).await.len(), 1, "a roll-out was made");
    assert_eq!(api.writes().len(), writes, "{:?}", api.writes());
    assert_eq!(
        image_of(api, "Deployment", "apps", "web", "web"),
        format!("{web}@{web_digest}")
    );
    drop(t);
}

both_stores!(cascade_rolls_out);

/// `approvals [--all] --json`.
async fn approvals(env: &Env, all: bool) -> Vec<Value> {
    let mut args = vec!["approvals", "--json"];
    if all {
        args.push("--all");
    }
    let r = env.run(&args).await;
    r.expect(0);
    r.json().as_array().unwrap().clone()
}

/// The cascade outcome of a check (asserted to be its one delivery): its
/// state and detail.
fn cascade_outcome(c: &Value, stderr: &str) -> (String, String) {
    let deliveries = c["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{c}\n{stderr}");
    let d = &deliveries[0];
    assert_eq!(d["trigger"], "cascade", "{c}\n{stderr}");
    (
        d["state"].as_str().unwrap().to_string(),
        d["detail"].as_str().unwrap_or_default().to_string(),
    )
}

/// A watch with `approve: [rollout]`: the cascade rebuilds and promotes at
/// once, but the roll-out of its run waits for a person. Nothing reaches
/// the cluster while it waits, however often `check` looks again, and the
/// images are not built again; once approved the next `check` rolls the
/// run out and the delivery is done. A rejected roll-out ends the
/// delivery with why, nothing rolled out.
async fn rollout_waits_for_approval(db: Db) {
    let t = Tree::new(db).await;
    let (push, env, api, up) = (&t.push, &t.env, &t.api, &t.up);
    let held = &t.config(
        "held.yaml",
        true,
        "    approve: [rollout]\n",
        "approvals: {expire: 1h, recheck: 300ms}\n",
    );

    // The first sight is a baseline.
    let (c, _) = check(env, held).await;
    assert_eq!(c["results"][0]["platforms"][0]["status"], "new", "{c}");
    assert!(runs(env).await.is_empty());
    assert!(approvals(env, true).await.is_empty());

    // 1. The tag moves: the cascade rebuilds and promotes both images,
    //    then its roll-out waits for approval.
    push.tag("upstream/os", &up[1], "stable").await;
    let started = std::time::Instant::now();
    let (c, stderr) = check(env, held).await;
    eprintln!("check with cascade, roll-out held: {:?}", started.elapsed());
    let event = c["results"][0]["event_id"].as_str().unwrap().to_string();
    let (state, detail) = cascade_outcome(&c, &stderr);
    assert_eq!(state, "waiting", "{c}\n{stderr}");
    let listed = runs(env).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["event_id"], event.as_str());
    assert_eq!(listed[0]["state"], "done", "{listed:?}\n{stderr}");
    let run = listed[0]["id"].as_str().unwrap().to_string();
    let (base_digest, web_digest) = t.promoted(&run).await;
    assert!(
        detail.contains(&format!("rebuild run {run}: 2 image(s) rebuilt"))
            && detail.contains("roll-out waiting for approval"),
        "{detail}"
    );

    // Nothing reached the cluster; no roll-out; the delivery waits
    // without counting an attempt; one request, for the run's roll-out.
    assert!(patched(api).is_empty(), "{:?}", api.writes());
    assert!(rollouts(env).await.is_empty());
    let d = cascade_of(env, &event).await;
    assert_eq!(
        (d["state"].as_str(), d["attempts"].as_i64()),
        (Some("pending"), Some(0)),
        "{d}"
    );
    let pending = approvals(env, false).await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    let a = &pending[0];
    assert_eq!(
        (
            a["stage"].as_str(),
            a["state"].as_str(),
            a["subject"].as_str(),
            a["event_id"].as_str()
        ),
        (
            Some("rollout"),
            Some("pending"),
            Some(run.as_str()),
            Some(event.as_str())
        ),
        "{a}"
    );
    assert_eq!(a["reason"], format!("watch {}", t.watched));
    let id = a["id"].as_str().unwrap().to_string();
    assert!(
        detail.contains(&format!("freshen approve {id}")),
        "{detail}"
    );

    // 2. No change, the recheck due: the cascade looks again and still
    //    waits; nothing is built again or patched, no second request.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (c, stderr) = check(env, held).await;
    assert_eq!(
        c["results"][0]["platforms"][0]["status"], "unchanged",
        "{c}"
    );
    let (state, detail) = cascade_outcome(&c, &stderr);
    assert_eq!(state, "waiting", "{c}\n{stderr}");
    assert!(detail.contains(&format!("approval {id}")), "{detail}");
    assert_eq!(runs(env).await.len(), 1, "the images were built again");
    assert_eq!(
        t.promoted(&run).await,
        (base_digest.clone(), web_digest.clone())
    );
    assert!(patched(api).is_empty(), "{:?}", api.writes());
    assert!(rollouts(env).await.is_empty());
    let d = cascade_of(env, &event).await;
    assert_eq!(
        (d["state"].as_str(), d["attempts"].as_i64()),
        (Some("pending"), Some(0)),
        "{d}"
    );
    assert_eq!(approvals(env, true).await.len(), 1);

    // 3. Approved: the next check rolls the run out, and the delivery is
    //    done, saying so; the images are still built once.
    let r = env.run(&["approve", &id, "--by", "carol", "--json"]).await;
    r.expect(0);
    assert_eq!(r.json()[0]["state"], "approved", "{r}");
    let (c, stderr) = check(env, held).await;
    let (state, detail) = cascade_outcome(&c, &stderr);
    assert_eq!(state, "delivered", "{c}\n{stderr}");
    let list = rollouts(env).await;
    assert_eq!(list.len(), 1, "{list:?}\n{stderr}");
    assert_eq!(list[0]["run_id"], run.as_str(), "{list:?}");
    assert_eq!(list[0]["state"], "done", "{list:?}\n{stderr}");
    let rollout = list[0]["id"].as_str().unwrap().to_string();
    t.assert_rolled_out(&base_digest, &web_digest);
    let summary = format!("roll-out {rollout} done: 3 workload(s), 3 done");
    assert!(
        detail.contains("2 image(s) rebuilt") && detail.contains(&summary),
        "{detail}"
    );
    let d = cascade_of(env, &event).await;
    assert_eq!(d["state"], "delivered", "{d}");
    assert!(
        d["response"]
            .as_str()
            .unwrap_or_default()
            .contains(&summary),
        "{d}"
    );
    assert_eq!(runs(env).await.len(), 1);
    let all = approvals(env, true).await;
    assert_eq!(
        (
            all.len(),
            all[0]["state"].as_str(),
            all[0]["decided_by"].as_str()
        ),
        (1, Some("approved"), Some("carol")),
        "{all:?}"
    );

    // 4. The tag moves back: a second run, its roll-out held and rejected;
    //    the delivery ends saying why, and nothing more is patched.
    let writes = api.writes().len();
    push.tag("upstream/os", &up[0], "stable").await;
    let (c, stderr) = check(env, held).await;
    let event = c["results"][0]["event_id"].as_str().unwrap().to_string();
    assert_eq!(cascade_outcome(&c, &stderr).0, "waiting", "{c}\n{stderr}");
    let listed = runs(env).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let second = listed[0]["id"].as_str().unwrap().to_string();
    let pending = approvals(env, false).await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0]["subject"], second.as_str(), "{pending:?}");
    let id = pending[0]["id"].as_str().unwrap().to_string();
    env.run(&["reject", &id, "--by", "dave", "--reason", "not now"])
        .await
        .expect(0);
    let (c, stderr) = check(env, held).await;
    let (state, detail) = cascade_outcome(&c, &stderr);
    assert_eq!(state, "delivered", "{c}\n{stderr}");
    let why = format!("not rolled out: approval {id} rejected by dave: not now");
    assert!(detail.contains(&why), "{detail}");
    let d = cascade_of(env, &event).await;
    assert_eq!(d["state"], "delivered", "{d}");
    assert!(
        d["response"].as_str().unwrap_or_default().contains(&why),
        "{d}"
    );
    assert_eq!(
        rollouts(env).await.len(),
        1,
        "the rejected run was rolled out"
    );
    assert_eq!(api.writes().len(), writes, "{:?}", api.writes());
    t.assert_rolled_out(&base_digest, &web_digest);
    drop(t);
}

both_stores!(rollout_waits_for_approval);
