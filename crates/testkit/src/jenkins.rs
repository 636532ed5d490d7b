//! A loopback HTTP server speaking the Jenkins remote access API.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::task::JoinHandle;

use crate::http::{basic_credentials, percent_decode, percent_encode_segment};
use crate::poll::wait_until;
use crate::random::random_hex;

/// The Jenkins version reported in the `X-Jenkins` header.
pub const JENKINS_VERSION: &str = "2.452.3";

/// Options for [`Jenkins::start`].
#[derive(Debug, Clone)]
pub struct JenkinsOptions {
    /// The user name of the API account.
    pub user: String,
    /// The account's API token (HTTP basic auth password).
    pub api_token: String,
    /// CSRF protection on: `GET /crumbIssuer/api/json` issues crumbs (with
    /// it off that endpoint answers 404, as Jenkins does).
    pub csrf: bool,
    /// Reject build requests without a valid crumb with 403 ("No valid
    /// crumb was included in the request"), as Jenkins does for password
    /// (not API token) auth or before 2.96. Off by default: with API token
    /// auth Jenkins does not require a crumb.
    pub require_crumb: bool,
    /// Sleep before answering each accepted build request (the build is
    /// already queued and recorded while the client waits).
    pub delay: Duration,
    /// How long a queued item waits before it becomes a build
    /// (`Queue$WaitingItem` until then, `Queue$LeftItem` after).
    pub queue_delay: Duration,
    /// How long a build runs (`building: true`, `result: null`) once it
    /// left the queue.
    pub build_duration: Duration,
}

impl Default for JenkinsOptions {
    /// User `freshen`, a random API token, CSRF on, crumb not required, no
    /// delay, 100 ms queue delay, builds finish at once.
    fn default() -> Self {
        JenkinsOptions {
            user: "freshen".to_string(),
            api_token: format!("11{}", random_hex(16)),
            csrf: true,
            require_crumb: false,
            delay: Duration::ZERO,
            queue_delay: Duration::from_millis(100),
            build_duration: Duration::ZERO,
        }
    }
}

/// One accepted build request (`POST .../build` or `.../buildWithParameters`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRequest {
    /// The job's full name: `"images/rebuild-app"` for
    /// `/job/images/job/rebuild-app/...`.
    pub job: String,
    /// Parameters from the query string, a form body, or (for `/build`) the
    /// `json` form field; `token`, `delay`, `cause`, `json` and
    /// `Jenkins-Crumb` are not parameters.
    pub params: BTreeMap<String, String>,
    /// A crumb was sent (header or form field `Jenkins-Crumb`) and it is the
    /// one issued to the session whose `JSESSIONID.*` cookie was sent too.
    pub crumb_ok: bool,
    /// `"buildWithParameters"` or `"build"`.
    pub endpoint: String,
    /// The queue item id (`/queue/item/<id>/`).
    pub queue_id: u64,
    /// The build number this request becomes.
    pub number: u64,
    /// When the request was accepted.
    pub at: Instant,
}

struct QueueItem {
    id: u64,
    job: String,
    params: BTreeMap<String, String>,
    submitted: Instant,
    submitted_ms: u64,
    number: u64,
    result: String,
    /// With a hook: the result once the hook returned (building until then).
    outcome: Option<Arc<Mutex<Option<String>>>>,
    /// Cancelled while queued: never becomes a build.
    cancelled: bool,
}

/// What a build of the double does while it runs: given the request, it
/// returns the build's result (`"SUCCESS"`, `"FAILURE"`...). The build is
/// `building: true` until the future resolves; one that never resolves is
/// a build that never finishes.
pub type BuildHook = Arc<
    dyn Fn(BuildRequest) -> std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send>>
        + Send
        + Sync,
>;

struct Inner {
    opts: JenkinsOptions,
    sessions: HashMap<String, String>,
    next_queue_id: u64,
    items: Vec<QueueItem>,
    next_number: HashMap<String, u64>,
    results: HashMap<String, String>,
    builds: Vec<BuildRequest>,
    attempts: usize,
    fail_next: Option<(usize, u16)>,
    hooks: HashMap<String, BuildHook>,
    cancel: std::collections::HashSet<String>,
    fail_polls: Option<(usize, u16)>,
}

struct Shared {
    root: String,
    cookie_name: String,
    inner: Mutex<Inner>,
}

/// A loopback server implementing the Jenkins remote access API calls
/// freshen makes: `GET /crumbIssuer/api/json` (crumb bound to a
/// `JSESSIONID.<x>` session cookie), `POST /job/<a>/job/<b>/buildWithParameters`
/// and `.../build` (201 + `Location: <url>/queue/item/<n>/`),
/// `GET /queue/item/<n>/api/json`, `GET /queue/api/json`,
/// `GET /job/.../api/json` (builds with their parameters, newest first;
/// `tree=` is accepted and the full objects returned) and
/// `GET /job/.../<k>/api/json` or `.../lastBuild/api/json`.
///
/// Every endpoint requires HTTP basic auth `user:api_token` (401
/// otherwise). Every job exists. Stops when dropped.
///
/// The server runs as a task on the tokio runtime that called `start`, so
/// it stops with that runtime: start one per test (each `#[tokio::test]`
/// has its own runtime) rather than sharing one through a `static`.
pub struct Jenkins {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Jenkins {
    /// Starts the server on `127.0.0.1:<free port>`.
    pub async fn start(opts: JenkinsOptions) -> Jenkins {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the Jenkins server failed");
        let addr = listener.local_addr().expect("local_addr");
        let shared = Arc::new(Shared {
            root: format!("http://{addr}"),
            cookie_name: format!("JSESSIONID.{}", random_hex(4)),
            inner: Mutex::new(Inner {
                opts,
                sessions: HashMap::new(),
                next_queue_id: 101,
                items: Vec::new(),
                next_number: HashMap::new(),
                results: HashMap::new(),
                builds: Vec::new(),
                attempts: 0,
                fail_next: None,
                hooks: HashMap::new(),
                cancel: Default::default(),
                fail_polls: None,
            }),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Jenkins { shared, task }
    }

    /// The root URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        self.shared.root.clone()
    }

    /// The API user name.
    pub fn user(&self) -> String {
        self.lock().opts.user.clone()
    }

    /// The API token.
    pub fn api_token(&self) -> String {
        self.lock().opts.api_token.clone()
    }

    /// The session cookie's name, `JSESSIONID.<8 hex>`.
    pub fn cookie_name(&self) -> String {
        self.shared.cookie_name.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.inner.lock().expect("lock")
    }

    /// Every accepted build request, in order.
    pub fn builds(&self) -> Vec<BuildRequest> {
        self.lock().builds.clone()
    }

    /// How many build POSTs arrived, rejected ones included.
    pub fn build_attempts(&self) -> usize {
        self.lock().attempts
    }

    /// Sets the result (`"SUCCESS"`, `"FAILURE"`, `"UNSTABLE"`,
    /// `"ABORTED"`...) of builds of `job_path` (`"images/rebuild-app"`)
    /// requested from now on.
    pub fn set_result(&self, job_path: &str, result: &str) {
        self.lock()
            .results
            .insert(job_path.to_string(), result.to_string());
    }

    /// Runs `hook` for each build of `job_path` requested from now on: the
    /// build runs (`building: true`) until the hook's future resolves, and
    /// ends with the result it returns. The hook is where a test's job does
    /// its work (pushes an image, say).
    pub fn on_build<F, Fut>(&self, job_path: &str, hook: F)
    where
        F: Fn(BuildRequest) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = String> + Send + 'static,
    {
        let hook: BuildHook = Arc::new(move |req| Box::pin(hook(req)));
        self.lock().hooks.insert(job_path.to_string(), hook);
    }

    /// Cancels builds of `job_path` requested from now on while they are
    /// queued (`Queue$LeftItem` with `cancelled: true` and no executable,
    /// as Jenkins shows an item cancelled from the queue).
    pub fn cancel_queued(&self, job_path: &str) {
        self.lock().cancel.insert(job_path.to_string());
    }

    /// Answers the next `n` polls (`GET` of a queue item's or a build's
    /// `api/json`) with `status` (an error page), before any other check:
    /// Jenkins restarting, or a proxy in front of it failing.
    pub fn fail_polls(&self, n: usize, status: u16) {
        self.lock().fail_polls = Some((n, status));
    }

    /// Answers the next `n` build POSTs with `status` (empty body), before
    /// any other check.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.lock().fail_next = Some((n, status));
    }

    /// Changes [`JenkinsOptions::delay`].
    pub fn set_delay(&self, delay: Duration) {
        self.lock().opts.delay = delay;
    }

    /// Waits until at least `n` builds were accepted (panics after
    /// `timeout`) and returns all of them.
    pub async fn wait_for_builds(&self, n: usize, timeout: Duration) -> Vec<BuildRequest> {
        wait_until(
            timeout,
            || format!("{n} Jenkins build request(s); got {:?}", self.builds()),
            || {
                let b = self.builds();
                (b.len() >= n).then_some(b)
            },
        )
        .await
    }
}

impl Drop for Jenkins {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for Jenkins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jenkins")
            .field("url", &self.shared.root)
            .finish()
    }
}

fn respond(status: StatusCode, body: impl Into<Body>) -> Response {
    Response::builder()
        .status(status)
        .header("X-Jenkins", JENKINS_VERSION)
        .body(body.into())
        .expect("building a response")
}

fn respond_json(v: Value) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header("X-Jenkins", JENKINS_VERSION)
        .header(header::CONTENT_TYPE, "application/json;charset=utf-8")
        .body(Body::from(v.to_string()))
        .expect("building a response")
}

fn error_page(status: StatusCode, message: &str) -> Response {
    let mut r = respond(
        status,
        format!(
            "<html><head><title>Error {}</title></head><body><h2>HTTP ERROR {}</h2><p>{message}</p></body></html>",
            status.as_u16(),
            status.as_u16()
        ),
    );
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        "text/html;charset=utf-8".parse().expect("header"),
    );
    r
}

fn unauthorized(message: &str) -> Response {
    let mut r = error_page(StatusCode::UNAUTHORIZED, message);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        "Basic realm=\"Jenkins\"".parse().expect("header"),
    );
    r
}

fn session_of(headers: &HeaderMap, cookie_name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == cookie_name)
        .map(|(_, v)| v.to_string())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

fn job_url(root: &str, job: &str) -> String {
    let mut u = root.to_string();
    for name in job.split('/') {
        u.push_str("/job/");
        u.push_str(&percent_encode_segment(name));
    }
    u.push('/');
    u
}

fn params_action(params: &BTreeMap<String, String>) -> Value {
    json!({
        "_class": "hudson.model.ParametersAction",
        "parameters": params.iter().map(|(k, v)| json!({
            "_class": "hudson.model.StringParameterValue",
            "name": k,
            "value": v,
        })).collect::<Vec<_>>(),
    })
}

fn actions(params: &BTreeMap<String, String>, user: &str) -> Value {
    let cause = json!({
        "_class": "hudson.model.CauseAction",
        "causes": [ {
            "_class": "hudson.model.Cause$UserIdCause",
            "shortDescription": format!("Started by user {user}"),
            "userId": user,
            "userName": user,
        } ],
    });
    if params.is_empty() {
        json!([cause])
    } else {
        json!([params_action(params), cause])
    }
}

fn task_json(root: &str, job: &str) -> Value {
    json!({
        "_class": "hudson.model.FreeStyleProject",
        "name": job.rsplit('/').next().unwrap_or(job),
        "url": job_url(root, job),
        "color": "blue",
    })
}

impl Inner {
    fn started(&self, item: &QueueItem) -> bool {
        item.submitted.elapsed() >= self.opts.queue_delay
    }

    /// Left the queue as a build (not cancelled).
    fn is_build(&self, item: &QueueItem) -> bool {
        self.started(item) && !item.cancelled
    }

    fn queue_item_json(&self, root: &str, item: &QueueItem) -> Value {
        let params_text: String = item
            .params
            .iter()
            .map(|(k, v)| format!("\n{k}={v}"))
            .collect();
        let mut v = json!({
            "actions": actions(&item.params, &self.opts.user),
            "blocked": false,
            "buildable": false,
            "id": item.id,
            "inQueueSince": item.submitted_ms,
            "params": params_text,
            "stuck": false,
            "task": task_json(root, &item.job),
            "url": format!("queue/item/{}/", item.id),
        });
        if self.started(item) && item.cancelled {
            v["_class"] = json!("hudson.model.Queue$LeftItem");
            v["why"] = Value::Null;
            v["cancelled"] = json!(true);
            v["executable"] = Value::Null;
        } else if self.started(item) {
            v["_class"] = json!("hudson.model.Queue$LeftItem");
            v["why"] = Value::Null;
            v["cancelled"] = json!(false);
            v["executable"] = json!({
                "_class": "hudson.model.FreeStyleBuild",
                "number": item.number,
                "url": format!("{}{}/", job_url(root, &item.job), item.number),
            });
        } else {
            let left = self
                .opts
                .queue_delay
                .saturating_sub(item.submitted.elapsed());
            v["_class"] = json!("hudson.model.Queue$WaitingItem");
            v["why"] = json!(format!(
                "In the quiet period. Expires in {:.1} sec",
                left.as_secs_f64()
            ));
            v["timestamp"] = json!(item.submitted_ms + self.opts.queue_delay.as_millis() as u64);
        }
        v
    }

    fn build_json(&self, root: &str, item: &QueueItem) -> Value {
        let since_start = item
            .submitted
            .elapsed()
            .saturating_sub(self.opts.queue_delay);
        let hooked = item
            .outcome
            .as_ref()
            .map(|o| o.lock().expect("lock").clone());
        let building = since_start < self.opts.build_duration || matches!(hooked, Some(None));
        let result = hooked.flatten().unwrap_or_else(|| item.result.clone());
        let job_short = item.job.replace('/', " » ");
        json!({
            "_class": "hudson.model.FreeStyleBuild",
            "actions": actions(&item.params, &self.opts.user),
            "building": building,
            "displayName": format!("#{}", item.number),
            "duration": if building { 0 } else { self.opts.build_duration.as_millis() as u64 },
            "fullDisplayName": format!("{job_short} #{}", item.number),
            "id": item.number.to_string(),
            "number": item.number,
            "queueId": item.id,
            "result": if building { Value::Null } else { json!(result) },
            "timestamp": item.submitted_ms + self.opts.queue_delay.as_millis() as u64,
            "url": format!("{}{}/", job_url(root, &item.job), item.number),
        })
    }
}

async fn handle(State(sh): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, 4 << 20).await {
        Ok(b) => b,
        Err(_) => return error_page(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
    };
    let segs: Vec<String> = parts
        .uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let mut job = Vec::new();
    let mut i = 0;
    while i + 1 < segs.len() && segs[i] == "job" {
        job.push(segs[i + 1]);
        i += 2;
    }
    let job = job.join("/");
    let rest = &segs[i..];

    let is_build_post = parts.method == Method::POST
        && !job.is_empty()
        && matches!(rest, ["build"] | ["buildWithParameters"]);
    if is_build_post {
        let mut inner = sh.inner.lock().expect("lock");
        inner.attempts += 1;
        if let Some((n, status)) = inner.fail_next {
            inner.fail_next = (n > 1).then_some((n - 1, status));
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return respond(status, Body::empty());
        }
    }

    let is_poll = parts.method == Method::GET
        && match rest {
            ["queue", "item", _, "api", "json"] => job.is_empty(),
            [_, "api", "json"] => !job.is_empty(),
            _ => false,
        };
    if is_poll {
        let mut inner = sh.inner.lock().expect("lock");
        if let Some((n, status)) = inner.fail_polls {
            inner.fail_polls = (n > 1).then_some((n - 1, status));
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return error_page(status, "Service Unavailable");
        }
    }

    // Authentication, for every endpoint.
    let (user, token) = {
        let inner = sh.inner.lock().expect("lock");
        (inner.opts.user.clone(), inner.opts.api_token.clone())
    };
    match basic_credentials(&parts.headers) {
        Some((u, t)) if u == user && t == token => {}
        Some((u, _)) => return unauthorized(&format!("Invalid password/token for user: {u}")),
        None => return unauthorized("Authentication required"),
    }

    match (&parts.method, rest) {
        (&Method::GET, ["crumbIssuer", "api", "json"]) if job.is_empty() => {
            crumb(&sh, &parts.headers)
        }
        (&Method::GET, ["queue", "api", "json"]) if job.is_empty() => {
            let inner = sh.inner.lock().expect("lock");
            let items: Vec<Value> = inner
                .items
                .iter()
                .filter(|it| !inner.started(it))
                .map(|it| inner.queue_item_json(&sh.root, it))
                .collect();
            respond_json(json!({
                "_class": "hudson.model.Queue",
                "discoverableItems": [],
                "items": items,
            }))
        }
        (&Method::GET, ["queue", "item", id, "api", "json"]) if job.is_empty() => {
            let inner = sh.inner.lock().expect("lock");
            let found = id
                .parse::<u64>()
                .ok()
                .and_then(|id| inner.items.iter().find(|it| it.id == id));
            match found {
                Some(item) => respond_json(inner.queue_item_json(&sh.root, item)),
                None => error_page(StatusCode::NOT_FOUND, "Not Found"),
            }
        }
        (&Method::POST, [endpoint @ ("build" | "buildWithParameters")]) if !job.is_empty() => {
            build(&sh, &parts, &body, &job, endpoint).await
        }
        (&Method::GET, ["api", "json"]) if !job.is_empty() => {
            let inner = sh.inner.lock().expect("lock");
            let mut builds: Vec<&QueueItem> = inner
                .items
                .iter()
                .filter(|it| it.job == job && inner.is_build(it))
                .collect();
            builds.sort_by_key(|it| std::cmp::Reverse(it.number));
            let url = job_url(&sh.root, &job);
            let short = |it: &QueueItem| {
                json!({
                    "_class": "hudson.model.FreeStyleBuild",
                    "number": it.number,
                    "url": format!("{url}{}/", it.number),
                })
            };
            let waiting: Vec<&QueueItem> = inner
                .items
                .iter()
                .filter(|it| it.job == job && !inner.started(it))
                .collect();
            respond_json(json!({
                "_class": "hudson.model.FreeStyleProject",
                "name": job.rsplit('/').next().unwrap_or(&job),
                "fullName": job,
                "displayName": job.rsplit('/').next().unwrap_or(&job),
                "url": url,
                "buildable": true,
                "builds": builds.iter().map(|it| inner.build_json(&sh.root, it)).collect::<Vec<_>>(),
                "lastBuild": builds.first().map(|it| short(it)),
                "nextBuildNumber": inner.next_number.get(&job).copied().unwrap_or(1),
                "inQueue": !waiting.is_empty(),
                "queueItem": waiting.first().map(|it| inner.queue_item_json(&sh.root, it)),
            }))
        }
        (&Method::GET, [number, "api", "json"]) if !job.is_empty() => {
            let inner = sh.inner.lock().expect("lock");
            let started = inner
                .items
                .iter()
                .filter(|it| it.job == job && inner.is_build(it));
            let found = if *number == "lastBuild" {
                started.max_by_key(|it| it.number)
            } else {
                let n = number.parse::<u64>().ok();
                started.into_iter().find(|it| Some(it.number) == n)
            };
            match found {
                Some(item) => respond_json(inner.build_json(&sh.root, item)),
                None => error_page(StatusCode::NOT_FOUND, "Not Found"),
            }
        }
        _ => error_page(StatusCode::NOT_FOUND, "Not Found"),
    }
}

fn crumb(sh: &Shared, headers: &HeaderMap) -> Response {
    let mut inner = sh.inner.lock().expect("lock");
    if !inner.opts.csrf {
        return error_page(StatusCode::NOT_FOUND, "Not Found");
    }
    let existing = session_of(headers, &sh.cookie_name).filter(|s| inner.sessions.contains_key(s));
    let (session, new) = match existing {
        Some(s) => (s, false),
        None => (format!("node0{}.node0", random_hex(12)), true),
    };
    let crumb = inner
        .sessions
        .entry(session.clone())
        .or_insert_with(|| hex::encode(Sha256::digest(format!("{session}:{}", random_hex(16)))))
        .clone();
    let mut r = respond_json(json!({
        "_class": "hudson.security.csrf.DefaultCrumbIssuer",
        "crumb": crumb,
        "crumbRequestField": "Jenkins-Crumb",
    }));
    if new {
        r.headers_mut().insert(
            header::SET_COOKIE,
            format!("{}={session}; Path=/; HttpOnly", sh.cookie_name)
                .parse()
                .expect("header"),
        );
    }
    r
}

async fn build(
    sh: &Shared,
    parts: &axum::http::request::Parts,
    body: &[u8],
    job: &str,
    endpoint: &str,
) -> Response {
    let mut fields: Vec<(String, String)> = Vec::new();
    if let Some(q) = parts.uri.query() {
        fields.extend(url::form_urlencoded::parse(q.as_bytes()).into_owned());
    }
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with("application/x-www-form-urlencoded") {
        fields.extend(url::form_urlencoded::parse(body).into_owned());
    }
    let mut params = BTreeMap::new();
    let mut sent_crumb = parts
        .headers
        .get("Jenkins-Crumb")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    for (k, v) in fields {
        match k.as_str() {
            "Jenkins-Crumb" => sent_crumb = Some(v),
            "json" => {
                let parsed: Value = serde_json::from_str(&v).unwrap_or_default();
                let list = match &parsed["parameter"] {
                    Value::Array(a) => a.clone(),
                    Value::Object(_) => vec![parsed["parameter"].clone()],
                    _ => Vec::new(),
                };
                for p in list {
                    if let Some(name) = p["name"].as_str() {
                        let value = match &p["value"] {
                            Value::String(s) => s.clone(),
                            Value::Null => String::new(),
                            other => other.to_string(),
                        };
                        params.insert(name.to_string(), value);
                    }
                }
            }
            "token" | "delay" | "cause" => {}
            _ => {
                params.insert(k, v);
            }
        }
    }

    let delay = {
        let mut inner = sh.inner.lock().expect("lock");
        let crumb_ok = inner.opts.csrf
            && match (session_of(&parts.headers, &sh.cookie_name), &sent_crumb) {
                (Some(session), Some(c)) => inner.sessions.get(&session) == Some(c),
                _ => false,
            };
        if inner.opts.require_crumb && !crumb_ok {
            return error_page(
                StatusCode::FORBIDDEN,
                "No valid crumb was included in the request",
            );
        }
        let id = inner.next_queue_id;
        inner.next_queue_id += 1;
        let number = {
            let n = inner.next_number.entry(job.to_string()).or_insert(1);
            let number = *n;
            *n += 1;
            number
        };
        let result = inner
            .results
            .get(job)
            .cloned()
            .unwrap_or_else(|| "SUCCESS".to_string());
        let at = Instant::now();
        let cancelled = inner.cancel.contains(job);
        let hook = inner.hooks.get(job).cloned().filter(|_| !cancelled);
        let outcome = hook.as_ref().map(|_| Arc::new(Mutex::new(None)));
        let request = BuildRequest {
            job: job.to_string(),
            params: params.clone(),
            crumb_ok,
            endpoint: endpoint.to_string(),
            queue_id: id,
            number,
            at,
        };
        if let (Some(hook), Some(slot)) = (hook, outcome.clone()) {
            let fut = hook(request.clone());
            tokio::spawn(async move {
                let result = fut.await;
                *slot.lock().expect("lock") = Some(result);
            });
        }
        inner.items.push(QueueItem {
            id,
            job: job.to_string(),
            params: params.clone(),
            submitted: at,
            submitted_ms: now_ms(),
            number,
            result,
            outcome,
            cancelled,
        });
        inner.builds.push(request);
        (inner.opts.delay, id)
    };
    let (delay, id) = delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut r = respond(StatusCode::CREATED, Body::empty());
    r.headers_mut().insert(
        header::LOCATION,
        format!("{}/queue/item/{id}/", sh.root)
            .parse()
            .expect("header"),
    );
    r
}
