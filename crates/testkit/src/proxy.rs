//! A loopback reverse proxy that injects faults in front of a real server.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use tokio::task::JoinHandle;

use crate::http::http_client;

/// One injected fault; [`FaultProxy::push_fault`] queues them and each
/// request consumes the next one (then requests pass through).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer `429 Too Many Requests` with `Retry-After: <secs>` and an OCI
    /// `TOOMANYREQUESTS` error body, without forwarding.
    TooMany {
        /// Value of the `Retry-After` header, in seconds.
        retry_after_secs: u64,
    },
    /// Answer `503 Service Unavailable` without forwarding.
    Unavailable,
    /// Answer this status (with an OCI error body) without forwarding.
    Status(u16),
    /// Wait this long, then forward as usual (a client with a shorter
    /// timeout gives up first).
    Stall(Duration),
    /// Forward, and add `RateLimit-Remaining: <value>` to the response.
    RateLimitHeader(String),
}

/// One request seen by a [`FaultProxy`].
#[derive(Debug, Clone)]
pub struct ProxiedRequest {
    /// HTTP method, e.g. `"GET"`.
    pub method: String,
    /// Path without the query, e.g. `"/v2/app/manifests/1"`.
    pub path: String,
    /// Query string without `?`, if any.
    pub query: Option<String>,
    /// The fault applied to this request, if one was queued.
    pub fault: Option<Fault>,
    /// Status answered to the client; `None` while in flight or when the
    /// client went away first (e.g. during a stall).
    pub status: Option<u16>,
    /// When the request arrived.
    pub at: Instant,
}

struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    faults: Mutex<VecDeque<Fault>>,
    log: Mutex<Vec<ProxiedRequest>>,
    tag_page_size: Mutex<Option<usize>>,
    refuse_mounts: std::sync::atomic::AtomicBool,
}

/// A loopback HTTP reverse proxy in front of `upstream` (`host:port`,
/// plain HTTP) that can inject [`Fault`]s and records every request.
///
/// Headers pass through both ways (hop-by-hop ones excepted), the client's
/// `Host` header included, so absolute `Location`s the upstream builds
/// point back at the proxy; bodies pass through unchanged; HEAD answers
/// keep the upstream `Content-Length`. Stops when dropped.
///
/// The server runs as a task on the tokio runtime that called `start`, so
/// it stops with that runtime: start one per test (each `#[tokio::test]`
/// has its own runtime) rather than sharing one through a `static`.
pub struct FaultProxy {
    host: String,
    state: Arc<ProxyState>,
    task: JoinHandle<()>,
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

impl FaultProxy {
    /// Starts the proxy on `127.0.0.1:<free port>` forwarding to
    /// `upstream_host` (e.g. a [`crate::Registry::host`]).
    pub async fn start(upstream_host: &str) -> FaultProxy {
        let state = Arc::new(ProxyState {
            upstream: upstream_host.to_string(),
            client: http_client(Some(Duration::from_secs(60))),
            faults: Mutex::new(VecDeque::new()),
            log: Mutex::new(Vec::new()),
            tag_page_size: Mutex::new(None),
            refuse_mounts: std::sync::atomic::AtomicBool::new(false),
        });
        let app = Router::new().fallback(handle).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the fault proxy failed");
        let host = listener.local_addr().expect("local_addr").to_string();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FaultProxy { host, state, task }
    }

    /// `127.0.0.1:PORT` of the proxy.
    pub fn host(&self) -> String {
        self.host.clone()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.host)
    }

    /// Queues `fault` for a coming request (one fault per request, in order).
    pub fn push_fault(&self, fault: Fault) {
        self.state.faults.lock().expect("lock").push_back(fault);
    }

    /// Faults still queued.
    pub fn pending_faults(&self) -> usize {
        self.state.faults.lock().expect("lock").len()
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        self.state.faults.lock().expect("lock").clear();
    }

    /// Emulates tag-list pagination as the OCI distribution spec describes
    /// it (and as Distribution 3 and Docker Hub do), which Distribution 2.8
    /// lacks: with `Some(default_n)`, `GET /v2/<name>/tags/list` is answered
    /// from the upstream's full list, sorted, after `last`, at most `n`
    /// (query) or `default_n` tags, plus
    /// `Link: </v2/<name>/tags/list?last=<tag>&n=<n>>; rel="next"` while
    /// more remain. `None` passes tag lists through.
    pub fn set_tag_page_size(&self, default_n: Option<usize>) {
        *self.state.tag_page_size.lock().expect("lock") = default_n;
    }

    /// With `true`, cross-repository mounts are declined as a registry may
    /// decline them: `POST /v2/<name>/blobs/uploads/?mount=...&from=...` is
    /// forwarded without its query, so the upstream starts an ordinary
    /// upload and answers `202` with a `Location` instead of `201`. (The
    /// log keeps the query the client sent.)
    pub fn set_refuse_mounts(&self, refuse: bool) {
        self.state
            .refuse_mounts
            .store(refuse, std::sync::atomic::Ordering::SeqCst);
    }

    /// Every request so far as `(method, path, arrival)`; the path has no
    /// query (see [`FaultProxy::request_log`]).
    pub fn requests(&self) -> Vec<(String, String, Instant)> {
        self.request_log()
            .into_iter()
            .map(|r| (r.method, r.path, r.at))
            .collect()
    }

    /// Every request so far, with query, applied fault and answered status.
    pub fn request_log(&self) -> Vec<ProxiedRequest> {
        self.state.log.lock().expect("lock").clone()
    }

    /// How many requests used `method` (case-insensitive, e.g. `"HEAD"`).
    pub fn count(&self, method: &str) -> usize {
        self.state
            .log
            .lock()
            .expect("lock")
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method))
            .count()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.state.log.lock().expect("lock").clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("host", &self.host)
            .field("upstream", &self.state.upstream)
            .finish()
    }
}

fn oci_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body =
        serde_json::json!({ "errors": [ { "code": code, "message": message, "detail": null } ] });
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::from(body.to_string()))
        .expect("building a response")
}

async fn handle(State(st): State<Arc<ProxyState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let fault = st.faults.lock().expect("lock").pop_front();
    let index = {
        let mut log = st.log.lock().expect("lock");
        log.push(ProxiedRequest {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            query: parts.uri.query().map(str::to_string),
            fault: fault.clone(),
            status: None,
            at: Instant::now(),
        });
        log.len() - 1
    };
    let mut rate_limit = None;
    let early = match fault {
        Some(Fault::TooMany { retry_after_secs }) => {
            let mut r = oci_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TOOMANYREQUESTS",
                "too many requests (injected by freshen-testkit)",
            );
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&retry_after_secs.to_string()).expect("header"),
            );
            Some(r)
        }
        Some(Fault::Unavailable) => Some(oci_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "service unavailable (injected by freshen-testkit)",
        )),
        Some(Fault::Status(code)) => Some(oci_error(
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "UNKNOWN",
            "injected by freshen-testkit",
        )),
        Some(Fault::Stall(d)) => {
            tokio::time::sleep(d).await;
            None
        }
        Some(Fault::RateLimitHeader(v)) => {
            rate_limit = Some(v);
            None
        }
        None => None,
    };
    let mut resp = match early {
        Some(r) => r,
        None => {
            let body = match axum::body::to_bytes(body, usize::MAX).await {
                Ok(b) => b,
                Err(e) => {
                    return Response::builder()
                        .status(StatusCode::BAD_REQUEST)
                        .body(Body::from(format!("reading the request body: {e}")))
                        .expect("building a response");
                }
            };
            let page_size = *st.tag_page_size.lock().expect("lock");
            let tags_repo = parts
                .uri
                .path()
                .strip_prefix("/v2/")
                .and_then(|p| p.strip_suffix("/tags/list"))
                .filter(|_| parts.method == Method::GET)
                .map(str::to_string);
            match (page_size, tags_repo) {
                (Some(default_n), Some(repo)) => {
                    paginated_tags(&st, &parts.headers, &repo, parts.uri.query(), default_n).await
                }
                _ => {
                    let mount = parts.method == Method::POST
                        && parts.uri.path().ends_with("/blobs/uploads/")
                        && parts.uri.query().is_some_and(|q| q.contains("mount="));
                    if mount && st.refuse_mounts.load(std::sync::atomic::Ordering::SeqCst) {
                        forward_to(&st, &parts, parts.uri.path(), body).await
                    } else {
                        forward(&st, &parts, body).await
                    }
                }
            }
        }
    };
    if let Some(v) = rate_limit
        && let Ok(v) = HeaderValue::from_str(&v)
    {
        resp.headers_mut()
            .insert(HeaderName::from_static("ratelimit-remaining"), v);
    }
    if let Some(entry) = st.log.lock().expect("lock").get_mut(index) {
        entry.status = Some(resp.status().as_u16());
    }
    resp
}

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap, skip_length: bool) {
    for (name, value) in from {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n) || (skip_length && n == "content-length") {
            continue;
        }
        to.append(name.clone(), value.clone());
    }
}

async fn forward(
    st: &ProxyState,
    parts: &axum::http::request::Parts,
    body: axum::body::Bytes,
) -> Response {
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    forward_to(st, parts, path_and_query, body).await
}

async fn forward_to(
    st: &ProxyState,
    parts: &axum::http::request::Parts,
    path_and_query: &str,
    body: axum::body::Bytes,
) -> Response {
    let url = format!("http://{}{}", st.upstream, path_and_query);
    let mut headers = HeaderMap::new();
    copy_headers(&parts.headers, &mut headers, true);
    let upstream = st
        .client
        .request(parts.method.clone(), &url)
        .headers(headers)
        .body(body)
        .send()
        .await;
    let upstream = match upstream {
        Ok(r) => r,
        Err(e) => {
            return Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(Body::from(format!(
                    "freshen-testkit proxy: upstream error: {e}"
                )))
                .expect("building a response");
        }
    };
    let status = upstream.status();
    let up_headers = upstream.headers().clone();
    let bytes = upstream.bytes().await.unwrap_or_default();
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    // Keep Content-Length for HEAD (no body); otherwise axum sets it from
    // the buffered body, which is the same bytes.
    copy_headers(
        &up_headers,
        resp.headers_mut(),
        parts.method != Method::HEAD,
    );
    resp
}

async fn paginated_tags(
    st: &ProxyState,
    headers: &HeaderMap,
    repo: &str,
    query: Option<&str>,
    default_n: usize,
) -> Response {
    let mut h = HeaderMap::new();
    copy_headers(headers, &mut h, true);
    let url = format!("http://{}/v2/{repo}/tags/list", st.upstream);
    let upstream = match st.client.get(&url).headers(h).send().await {
        Ok(r) => r,
        Err(e) => {
            return Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(Body::from(format!(
                    "freshen-testkit proxy: upstream error: {e}"
                )))
                .expect("building a response");
        }
    };
    let status = upstream.status();
    let up_headers = upstream.headers().clone();
    let bytes = upstream.bytes().await.unwrap_or_default();
    if status != StatusCode::OK {
        let mut resp = Response::new(Body::from(bytes));
        *resp.status_mut() = status;
        copy_headers(&up_headers, resp.headers_mut(), true);
        return resp;
    }
    let list: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let mut tags: Vec<String> = list["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    tags.sort();
    let mut n = default_n;
    let mut last = None;
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*k {
            "n" => n = v.parse().unwrap_or(default_n),
            "last" => last = Some(v.into_owned()),
            _ => {}
        }
    }
    let remaining: Vec<String> = tags
        .into_iter()
        .filter(|t| last.as_ref().is_none_or(|l| t > l))
        .collect();
    let page: Vec<String> = remaining.iter().take(n).cloned().collect();
    let more = remaining.len() > page.len() && !page.is_empty();
    let body = serde_json::json!({ "name": list["name"], "tags": page });
    let mut resp = Response::new(Body::from(body.to_string()));
    copy_headers(&up_headers, resp.headers_mut(), true);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if more {
        let last_tag = page.last().expect("non-empty page");
        let next: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("last", last_tag)
            .append_pair("n", &n.to_string())
            .finish();
        let link = format!("</v2/{repo}/tags/list?{next}>; rel=\"next\"");
        resp.headers_mut().insert(
            header::LINK,
            HeaderValue::from_str(&link).expect("link header"),
        );
    }
    resp
}
