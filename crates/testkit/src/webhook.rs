//! A loopback webhook receiver that checks freshen's HMAC signatures.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::task::JoinHandle;

use crate::poll::wait_until;

/// Header carrying the event id.
pub const EVENT_ID_HEADER: &str = "X-Freshen-Event-Id";
/// Header carrying `sha256=<hex HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "X-Freshen-Signature";

/// One POST seen by a [`WebhookReceiver`].
#[derive(Debug, Clone)]
pub struct Received {
    /// The `X-Freshen-Event-Id` header, if sent.
    pub event_id: Option<String>,
    /// `X-Freshen-Signature` is `sha256=<hex>` and the HMAC-SHA256 of the
    /// raw body under the receiver's secret matches (constant-time check).
    pub signature_valid: bool,
    /// The body parsed as JSON (`Value::Null` when it is not JSON).
    pub body: serde_json::Value,
    /// The exact body bytes.
    pub raw_body: Vec<u8>,
    /// All request headers.
    pub headers: HeaderMap,
    /// The request path (and query).
    pub path: String,
    /// The status this request was answered with.
    pub status: u16,
    /// When it arrived.
    pub at: Instant,
}

struct Inner {
    received: Vec<Received>,
    fail_next: Option<(usize, u16)>,
    delay: Duration,
}

struct Shared {
    secret: Vec<u8>,
    inner: Mutex<Inner>,
}

/// A loopback HTTP server recording every POST (any path) and checking
/// `X-Freshen-Signature`; answers `200 ok` unless told otherwise. Other
/// methods get 405 and are not recorded. Stops when dropped.
///
/// The server runs as a task on the tokio runtime that called `start`, so
/// it stops with that runtime: start one per test (each `#[tokio::test]`
/// has its own runtime) rather than sharing one through a `static`.
pub struct WebhookReceiver {
    root: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`, the signature freshen sends.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn verify(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(sig) = hex::decode(sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

impl WebhookReceiver {
    /// Starts the receiver on `127.0.0.1:<free port>` checking signatures
    /// made with `secret`.
    pub async fn start(secret: &str) -> WebhookReceiver {
        let shared = Arc::new(Shared {
            secret: secret.as_bytes().to_vec(),
            inner: Mutex::new(Inner {
                received: Vec::new(),
                fail_next: None,
                delay: Duration::ZERO,
            }),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the webhook receiver failed");
        let root = format!("http://{}", listener.local_addr().expect("local_addr"));
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        WebhookReceiver { root, shared, task }
    }

    /// `http://127.0.0.1:PORT/hook` (every path is accepted).
    pub fn url(&self) -> String {
        format!("{}/hook", self.root)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.root.clone()
    }

    /// Every POST so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.inner.lock().expect("lock").received.clone()
    }

    /// Answers the next `k` POSTs with `status` (they are still recorded).
    pub fn fail_next(&self, k: usize, status: u16) {
        self.shared.inner.lock().expect("lock").fail_next = (k > 0).then_some((k, status));
    }

    /// Waits this long before answering each POST (recorded on arrival).
    pub fn set_delay(&self, delay: Duration) {
        self.shared.inner.lock().expect("lock").delay = delay;
    }

    /// Waits until at least `n` POSTs arrived (panics after `timeout`) and
    /// returns all of them.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        wait_until(
            timeout,
            || format!("{n} webhook POST(s); got {}", self.received().len()),
            || {
                let r = self.received();
                (r.len() >= n).then_some(r)
            },
        )
        .await
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for WebhookReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookReceiver")
            .field("url", &self.root)
            .finish()
    }
}

async fn handle(State(sh): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if parts.method != Method::POST {
        return Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header("Allow", "POST")
            .body(Body::empty())
            .expect("building a response");
    }
    let raw = axum::body::to_bytes(body, 16 << 20)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let signature = parts
        .headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    let signature_valid = verify(&sh.secret, &raw, signature);
    let delay;
    let status = {
        let mut inner = sh.inner.lock().expect("lock");
        let status = match inner.fail_next {
            Some((k, status)) => {
                inner.fail_next = (k > 1).then_some((k - 1, status));
                status
            }
            None => 200,
        };
        delay = inner.delay;
        inner.received.push(Received {
            event_id: parts
                .headers
                .get(EVENT_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            signature_valid,
            body: serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null),
            raw_body: raw,
            headers: parts.headers.clone(),
            path: parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default(),
            status,
            at: Instant::now(),
        });
        status
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Response::builder()
        .status(status)
        .header("Content-Type", "text/plain; charset=utf-8")
        .body(Body::from(if status.is_success() {
            "ok"
        } else {
            "failing on purpose"
        }))
        .expect("building a response")
}
