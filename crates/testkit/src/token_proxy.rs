//! A loopback reverse proxy that puts Docker/OCI token authentication in
//! front of a real registry.
//!
//! It speaks the protocol as the CNCF Distribution documents it
//! (<https://distribution.github.io/distribution/spec/auth/token/> and
//! `.../spec/auth/oauth/`):
//!
//! - A request to `/v2/...` without a valid `Authorization: Bearer <token>`
//!   is answered `401` with
//!   `WWW-Authenticate: Bearer realm="http://<proxy>/token",service="<service>",scope="repository:<name>:pull"`
//!   (no `scope` for `/v2/` itself, `registry:catalog:*` for `/v2/_catalog`,
//!   `pull,push` for writes, `delete` for `DELETE`; a cross-repository
//!   mount, `POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<other>`,
//!   also needs `repository:<other>:pull`, and its challenge names both
//!   scopes, space-separated, as Distribution does), an
//!   `error="invalid_token"` / `error="insufficient_scope"` parameter when a
//!   token was sent but is unknown, expired, or for another scope, and an
//!   OCI `UNAUTHORIZED` error body naming the access needed.
//! - `GET /token?service=...&scope=...[&scope=...][&offline_token=true]`,
//!   optionally with HTTP basic auth, answers
//!   `{"token","access_token","expires_in","issued_at"}` (plus
//!   `refresh_token` for a logged-in `offline_token=true`).
//! - `POST /token` with an `application/x-www-form-urlencoded` body
//!   (`grant_type=password` with `username`/`password`, or
//!   `grant_type=refresh_token` with `refresh_token`; `service` and
//!   `client_id` required) answers the OAuth2 form
//!   `{"access_token","scope","expires_in","issued_at"}` (plus
//!   `refresh_token` for `access_type=offline`).
//!
//! Tokens are random and opaque, bound to the access they were issued for,
//! and expire after `expires_in` seconds. Anonymous clients and the
//! read-only account ([`TokenAuthOptions::read_only`]) are granted `pull`
//! only, whatever they ask: their writes are refused with `401`
//! `insufficient_scope`, as a registry refuses them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use tokio::task::JoinHandle;

use crate::http::{basic_credentials, http_client};
use crate::random::random_hex;

/// Options for [`TokenAuthProxy::start_with`].
#[derive(Clone)]
pub struct TokenAuthOptions {
    /// The `service` named in challenges and required at the token endpoint.
    /// Default `freshen-test`.
    pub service: String,
    /// The one account the token endpoint knows, as `(user, password)`.
    /// Wrong credentials (or any credentials when this is `None`) get `401`.
    pub credentials: Option<(String, String)>,
    /// Refuse anonymous token requests (`401`). When `false` (the default),
    /// anonymous clients get tokens, for `pull` only.
    pub require_login: bool,
    /// A second account, `(user, password)`, that is granted `pull` only
    /// (a read-only robot account): its pushes are refused.
    pub read_only: Option<(String, String)>,
    /// Lifetime of issued tokens, in seconds (default 300). The spec asks
    /// servers for at least 60; tests use 1-2 to see expiry happen.
    pub expires_in: u64,
    /// HTTP basic credentials the proxy sends upstream (for a registry
    /// started with [`crate::Registry::start_with_auth`]); `None` sends none.
    pub upstream_auth: Option<(String, String)>,
}

impl Default for TokenAuthOptions {
    fn default() -> Self {
        TokenAuthOptions {
            service: "freshen-test".into(),
            credentials: None,
            require_login: false,
            read_only: None,
            expires_in: 300,
            upstream_auth: None,
        }
    }
}

impl std::fmt::Debug for TokenAuthOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAuthOptions")
            .field("service", &self.service)
            .field("credentials", &self.credentials.as_ref().map(|(u, _)| u))
            .field("require_login", &self.require_login)
            .field("read_only", &self.read_only.as_ref().map(|(u, _)| u))
            .field("expires_in", &self.expires_in)
            .field(
                "upstream_auth",
                &self.upstream_auth.as_ref().map(|(u, _)| u),
            )
            .finish()
    }
}

/// One request seen by a [`TokenAuthProxy`].
#[derive(Debug, Clone)]
pub struct TokenProxyRequest {
    /// HTTP method, e.g. `"HEAD"`.
    pub method: String,
    /// Path without the query, e.g. `"/v2/app/manifests/1"` or `"/token"`.
    pub path: String,
    /// Query string without `?`, if any (token requests carry no secret in it).
    pub query: Option<String>,
    /// For `/v2/...`: the access the request needs (`repository:app:pull`;
    /// `None` for `/v2/`). For `/token`: the scopes asked for, space-separated.
    pub scope: Option<String>,
    /// For `/token`: the user name presented (basic auth or OAuth2 form),
    /// never the password.
    pub user: Option<String>,
    /// Whether an `Authorization: Bearer` header came with the request.
    pub bearer: bool,
    /// Status answered; `None` while in flight.
    pub status: Option<u16>,
    /// When the request arrived.
    pub at: Instant,
}

/// One `type:name:actions` access entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Access {
    kind: String,
    name: String,
    actions: Vec<String>,
}

impl Access {
    /// Parses `repository:app/x:pull,push` (the name may hold `:`; the type
    /// may carry a class, `repository(plugin)`).
    fn parse(scope: &str) -> Option<Access> {
        let (kind, rest) = scope.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        if kind.is_empty() || name.is_empty() {
            return None;
        }
        let kind = kind.split('(').next().unwrap_or(kind);
        Some(Access {
            kind: kind.to_string(),
            name: name.to_string(),
            actions: actions
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }

    fn to_scope(&self) -> String {
        format!("{}:{}:{}", self.kind, self.name, self.actions.join(","))
    }

    fn allows(&self, need: &Access) -> bool {
        self.kind == need.kind
            && self.name == need.name
            && need
                .actions
                .iter()
                .all(|a| self.actions.iter().any(|g| g == a || g == "*"))
    }
}

struct Issued {
    access: Vec<Access>,
    expires: Instant,
}

struct TokenState {
    upstream: String,
    realm: String,
    opts: TokenAuthOptions,
    client: reqwest::Client,
    tokens: Mutex<HashMap<String, Issued>>,
    /// Refresh token -> the user it was issued to.
    refresh_tokens: Mutex<HashMap<String, String>>,
    issued: AtomicUsize,
    challenges: AtomicUsize,
    log: Mutex<Vec<TokenProxyRequest>>,
}

/// A loopback reverse proxy in front of a registry (`host:port`, plain HTTP)
/// that requires Docker/OCI bearer tokens, with its own token endpoint at
/// `/token` (see the module docs for the exact protocol).
///
/// Requests with a valid token are forwarded without their `Authorization`
/// header (or with [`TokenAuthOptions::upstream_auth`]); other headers pass
/// through both ways (hop-by-hop ones excepted), the client's `Host`
/// included, so the upstream's absolute `Location`s point back at the
/// proxy; bodies pass unchanged; HEAD answers keep the upstream
/// `Content-Length`. Every request is recorded. Stops when dropped.
///
/// The server runs as a task on the tokio runtime that called `start`: start
/// one per test rather than sharing one through a `static`.
pub struct TokenAuthProxy {
    host: String,
    state: Arc<TokenState>,
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

impl TokenAuthProxy {
    /// Starts the proxy with default options (anonymous pulls allowed,
    /// 300 s tokens, service `freshen-test`) on `127.0.0.1:<free port>`,
    /// in front of `upstream_host` (e.g. a [`crate::Registry::host`]).
    pub async fn start(upstream_host: &str) -> TokenAuthProxy {
        TokenAuthProxy::start_with(upstream_host, TokenAuthOptions::default()).await
    }

    /// Starts the proxy with `opts` in front of `upstream_host`.
    pub async fn start_with(upstream_host: &str, opts: TokenAuthOptions) -> TokenAuthProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the token auth proxy failed");
        let host = listener.local_addr().expect("local_addr").to_string();
        let state = Arc::new(TokenState {
            upstream: upstream_host.to_string(),
            realm: format!("http://{host}/token"),
            opts,
            client: http_client(Some(Duration::from_secs(60))),
            tokens: Mutex::new(HashMap::new()),
            refresh_tokens: Mutex::new(HashMap::new()),
            issued: AtomicUsize::new(0),
            challenges: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
        });
        let app = Router::new().fallback(handle).with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TokenAuthProxy { host, state, task }
    }

    /// `127.0.0.1:PORT` of the proxy: the registry host for references.
    pub fn host(&self) -> String {
        self.host.clone()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.host)
    }

    /// The token endpoint, `http://127.0.0.1:PORT/token` (the challenges' realm).
    pub fn realm(&self) -> String {
        self.state.realm.clone()
    }

    /// The `service` challenges name.
    pub fn service(&self) -> String {
        self.state.opts.service.clone()
    }

    /// Tokens issued so far (GET and POST), refused requests not counted.
    pub fn tokens_issued(&self) -> usize {
        self.state.issued.load(Ordering::SeqCst)
    }

    /// `401` challenges answered to `/v2/...` requests so far.
    pub fn challenges(&self) -> usize {
        self.state.challenges.load(Ordering::SeqCst)
    }

    /// Forgets every access token issued so far (refresh tokens stay valid):
    /// the next request with one draws a `401` with `error="invalid_token"`.
    pub fn revoke_tokens(&self) {
        self.state.tokens.lock().expect("lock").clear();
    }

    /// Every request so far as `(method, path, arrival)`; the path has no
    /// query (see [`TokenAuthProxy::request_log`]).
    pub fn requests(&self) -> Vec<(String, String, Instant)> {
        self.request_log()
            .into_iter()
            .map(|r| (r.method, r.path, r.at))
            .collect()
    }

    /// Every request so far, in arrival order.
    pub fn request_log(&self) -> Vec<TokenProxyRequest> {
        self.state.log.lock().expect("lock").clone()
    }

    /// How many requests used `method` (case-insensitive), token requests included.
    pub fn count(&self, method: &str) -> usize {
        self.state
            .log
            .lock()
            .expect("lock")
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method))
            .count()
    }

    /// How many requests went to the registry API (`/v2/...`), challenged or not.
    pub fn registry_requests(&self) -> usize {
        self.state
            .log
            .lock()
            .expect("lock")
            .iter()
            .filter(|r| r.path == "/v2" || r.path.starts_with("/v2/"))
            .count()
    }

    /// How many requests went to the token endpoint, refused ones included.
    pub fn token_requests(&self) -> usize {
        self.state
            .log
            .lock()
            .expect("lock")
            .iter()
            .filter(|r| r.path == "/token")
            .count()
    }

    /// Forgets the recorded requests (counters stay).
    pub fn clear_requests(&self) {
        self.state.log.lock().expect("lock").clear();
    }
}

impl Drop for TokenAuthProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for TokenAuthProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAuthProxy")
            .field("host", &self.host)
            .field("upstream", &self.state.upstream)
            .field("options", &self.state.opts)
            .finish()
    }
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::from(body.to_string()))
        .expect("building a response")
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_response(
        status,
        serde_json::json!({ "error": error, "error_description": description }),
    )
}

fn token_server_error(status: StatusCode, code: &str, message: &str) -> Response {
    let mut r = json_response(
        status,
        serde_json::json!({ "errors": [ { "code": code, "message": message, "detail": null } ] }),
    );
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"freshen-testkit token server\""),
        );
    }
    r
}

async fn handle(State(st): State<Arc<TokenState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let bearer = bearer_token(&parts.headers).is_some();
    let index = {
        let mut log = st.log.lock().expect("lock");
        log.push(TokenProxyRequest {
            method: parts.method.to_string(),
            path: path.clone(),
            query: parts.uri.query().map(str::to_string),
            scope: None,
            user: None,
            bearer,
            status: None,
            at: Instant::now(),
        });
        log.len() - 1
    };
    let mut scope = None;
    let mut user = None;
    let resp = if path == "/token" {
        match parts.method {
            Method::GET => token_get(&st, &parts, &mut scope, &mut user),
            Method::POST => match axum::body::to_bytes(body, 1 << 20).await {
                Ok(b) => token_post(&st, &parts.headers, &b, &mut scope, &mut user),
                Err(e) => oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    &format!("reading the body: {e}"),
                ),
            },
            _ => Response::builder()
                .status(StatusCode::METHOD_NOT_ALLOWED)
                .header(header::ALLOW, "GET, POST")
                .body(Body::empty())
                .expect("building a response"),
        }
    } else if path == "/v2" || path.starts_with("/v2/") {
        let need = required(&parts.method, &path, parts.uri.query());
        scope = (!need.is_empty()).then(|| scopes_string(&need));
        match check_token(&st, &parts.headers, &need) {
            Ok(()) => match axum::body::to_bytes(body, usize::MAX).await {
                Ok(b) => forward(&st, &parts, b).await,
                Err(e) => Response::builder()
                    .status(StatusCode::BAD_REQUEST)
                    .body(Body::from(format!("reading the request body: {e}")))
                    .expect("building a response"),
            },
            Err(error) => {
                st.challenges.fetch_add(1, Ordering::SeqCst);
                challenge(&st, &need, error)
            }
        }
    } else {
        token_server_error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint")
    };
    if let Some(entry) = st.log.lock().expect("lock").get_mut(index) {
        entry.status = Some(resp.status().as_u16());
        entry.scope = scope;
        entry.user = user;
    }
    resp
}

fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// Every access a `/v2/...` request needs (none for the base `/v2/`): its
/// own, and for a cross-repository mount (`POST .../blobs/uploads/` with
/// `mount` and `from`) `pull` on the `from` repository, as Distribution asks.
fn required(method: &Method, path: &str, query: Option<&str>) -> Vec<Access> {
    let Some(own) = required_access(method, path) else {
        return Vec::new();
    };
    let mut need = vec![own];
    if *method == Method::POST && path.trim_end_matches('/').ends_with("/blobs/uploads") {
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let has = |k: &str| pairs.iter().any(|(n, v)| n == k && !v.is_empty());
        if has("mount")
            && let Some((_, from)) = pairs.iter().find(|(n, _)| n == "from")
            && !from.is_empty()
        {
            need.push(Access {
                kind: "repository".into(),
                name: from.clone(),
                actions: vec!["pull".into()],
            });
        }
    }
    need
}

/// Scopes as one space-separated string.
fn scopes_string(access: &[Access]) -> String {
    access
        .iter()
        .map(Access::to_scope)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The access a `/v2/...` request itself needs; `None` for the base `/v2/`.
fn required_access(method: &Method, path: &str) -> Option<Access> {
    let rest = path
        .strip_prefix("/v2")
        .unwrap_or(path)
        .trim_start_matches('/');
    if rest.is_empty() {
        return None;
    }
    if rest.trim_end_matches('/') == "_catalog" {
        return Some(Access {
            kind: "registry".into(),
            name: "catalog".into(),
            actions: vec!["*".into()],
        });
    }
    // The repository name comes before the last route marker: names may hold
    // `/`, tags and digests may not (upload ids follow `blobs/uploads/`).
    let name = if let Some(n) = rest.strip_suffix("/tags/list") {
        n
    } else if let Some(i) = rest.rfind("/blobs/uploads") {
        &rest[..i]
    } else if let Some(i) = ["/manifests/", "/blobs/", "/referrers/"]
        .iter()
        .filter_map(|m| rest.rfind(m))
        .max()
    {
        &rest[..i]
    } else {
        rest.trim_end_matches('/')
    };
    let actions = match *method {
        Method::GET | Method::HEAD => vec!["pull".to_string()],
        Method::DELETE => vec!["delete".to_string()],
        _ => vec!["pull".to_string(), "push".to_string()],
    };
    Some(Access {
        kind: "repository".into(),
        name: name.to_string(),
        actions,
    })
}

/// Why a request's token was not good enough, as RFC 6750 names it.
enum TokenError {
    /// No bearer token at all: a plain challenge.
    Missing,
    /// Unknown or expired.
    Invalid,
    /// Valid, but for other access.
    InsufficientScope,
}

fn check_token(st: &TokenState, headers: &HeaderMap, need: &[Access]) -> Result<(), TokenError> {
    let token = bearer_token(headers).ok_or(TokenError::Missing)?;
    let tokens = st.tokens.lock().expect("lock");
    let issued = tokens.get(&token).ok_or(TokenError::Invalid)?;
    if issued.expires <= Instant::now() {
        return Err(TokenError::Invalid);
    }
    // The base endpoint (nothing needed) only checks that the client holds a valid token.
    if need
        .iter()
        .all(|n| issued.access.iter().any(|a| a.allows(n)))
    {
        Ok(())
    } else {
        Err(TokenError::InsufficientScope)
    }
}

fn challenge(st: &TokenState, need: &[Access], error: TokenError) -> Response {
    let mut value = format!(
        "Bearer realm=\"{}\",service=\"{}\"",
        st.realm, st.opts.service
    );
    if !need.is_empty() {
        value.push_str(&format!(",scope=\"{}\"", scopes_string(need)));
    }
    match error {
        TokenError::Missing => {}
        TokenError::Invalid => value.push_str(",error=\"invalid_token\""),
        TokenError::InsufficientScope => value.push_str(",error=\"insufficient_scope\""),
    }
    let detail = if need.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::Value::Array(
            need.iter()
                .flat_map(|n| {
                    n.actions
                        .iter()
                        .map(|a| serde_json::json!({ "Type": n.kind, "Name": n.name, "Action": a }))
                })
                .collect(),
        )
    };
    let mut r = json_response(
        StatusCode::UNAUTHORIZED,
        serde_json::json!({ "errors": [ {
            "code": "UNAUTHORIZED",
            "message": "authentication required",
            "detail": detail,
        } ] }),
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_str(&value).expect("challenge header"),
    );
    r.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    r
}

/// Who is asking: `Ok(None)` for anonymous, `Ok(Some(user))` for a known
/// account, `Err` (a response to send) for bad or missing credentials.
fn authenticate(
    st: &TokenState,
    presented: Option<(String, String)>,
) -> Result<Option<String>, ()> {
    match presented {
        Some((u, p)) => {
            let known = [&st.opts.credentials, &st.opts.read_only]
                .into_iter()
                .flatten()
                .any(|(cu, cp)| *cu == u && *cp == p);
            if known { Ok(Some(u)) } else { Err(()) }
        }
        None if st.opts.require_login => Err(()),
        None => Ok(None),
    }
}

/// Every scope asked for: repeated parameters, each possibly space-separated.
fn requested_scopes<'a>(values: impl Iterator<Item = &'a str>) -> Vec<Access> {
    values
        .flat_map(|v| v.split(' '))
        .filter(|s| !s.is_empty())
        .filter_map(Access::parse)
        .collect()
}

/// Whether `user` is the read-only account (granted what anonymous clients are).
fn is_read_only(st: &TokenState, user: &str) -> bool {
    st.opts.read_only.as_ref().is_some_and(|(u, _)| u == user)
}

/// What a client gets of what it asked: everything when logged in, `pull`
/// only when anonymous (or read-only: pass `None`).
fn grant(requested: Vec<Access>, user: Option<&str>) -> Vec<Access> {
    requested
        .into_iter()
        .filter_map(|mut a| {
            if user.is_none() {
                a.actions.retain(|x| x == "pull");
            }
            (!a.actions.is_empty()).then_some(a)
        })
        .collect()
}

fn issue(st: &TokenState, access: Vec<Access>) -> (String, u64, String) {
    let token = random_hex(24);
    let expires_in = st.opts.expires_in;
    st.tokens.lock().expect("lock").insert(
        token.clone(),
        Issued {
            access,
            expires: Instant::now() + Duration::from_secs(expires_in),
        },
    );
    st.issued.fetch_add(1, Ordering::SeqCst);
    (token, expires_in, rfc3339_now())
}

fn token_get(
    st: &TokenState,
    parts: &axum::http::request::Parts,
    scope_log: &mut Option<String>,
    user_log: &mut Option<String>,
) -> Response {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let requested = requested_scopes(
        pairs
            .iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.as_str()),
    );
    *scope_log = Some(
        requested
            .iter()
            .map(Access::to_scope)
            .collect::<Vec<_>>()
            .join(" "),
    );
    let presented = basic_credentials(&parts.headers);
    *user_log = presented.as_ref().map(|(u, _)| u.clone());
    let user = match authenticate(st, presented) {
        Ok(u) => u,
        Err(()) => {
            return token_server_error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "authentication failed",
            );
        }
    };
    if get("service") != Some(st.opts.service.as_str()) {
        return token_server_error(
            StatusCode::BAD_REQUEST,
            "DENIED",
            &format!(
                "unknown service; this server issues tokens for {:?}",
                st.opts.service
            ),
        );
    }
    let granted = grant(requested, user.as_deref().filter(|u| !is_read_only(st, u)));
    let (token, expires_in, issued_at) = issue(st, granted);
    let mut body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": expires_in,
        "issued_at": issued_at,
    });
    if let Some(u) = user.filter(|_| get("offline_token") == Some("true")) {
        let refresh = random_hex(24);
        st.refresh_tokens
            .lock()
            .expect("lock")
            .insert(refresh.clone(), u);
        body["refresh_token"] = serde_json::json!(refresh);
    }
    json_response(StatusCode::OK, body)
}

fn token_post(
    st: &TokenState,
    headers: &HeaderMap,
    body: &Bytes,
    scope_log: &mut Option<String>,
    user_log: &mut Option<String>,
) -> Response {
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    if form_type.as_deref() != Some("application/x-www-form-urlencoded") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        );
    }
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let requested = requested_scopes(
        pairs
            .iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.as_str()),
    );
    *scope_log = Some(
        requested
            .iter()
            .map(Access::to_scope)
            .collect::<Vec<_>>()
            .join(" "),
    );
    for required in ["grant_type", "service", "client_id"] {
        if get(required).is_none_or(str::is_empty) {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("{required} is required"),
            );
        }
    }
    if get("service") != Some(st.opts.service.as_str()) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "unknown service",
        );
    }
    let user = match get("grant_type") {
        Some("password") => {
            let (Some(u), Some(p)) = (get("username"), get("password")) else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "username and password are required",
                );
            };
            *user_log = Some(u.to_string());
            match authenticate(st, Some((u.to_string(), p.to_string()))) {
                Ok(Some(u)) => u,
                // Refused credentials get 401, as registries' token servers
                // answer (RFC 6749 would say 400 invalid_grant).
                _ => {
                    return oauth_error(
                        StatusCode::UNAUTHORIZED,
                        "invalid_grant",
                        "wrong user name or password",
                    );
                }
            }
        }
        Some("refresh_token") => {
            let Some(rt) = get("refresh_token").filter(|t| !t.is_empty()) else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "refresh_token is required",
                );
            };
            match st.refresh_tokens.lock().expect("lock").get(rt) {
                Some(u) => {
                    *user_log = Some(u.clone());
                    u.clone()
                }
                None => {
                    return oauth_error(
                        StatusCode::UNAUTHORIZED,
                        "invalid_grant",
                        "unknown refresh token",
                    );
                }
            }
        }
        Some(other) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("grant_type {other:?} is not supported"),
            );
        }
        None => unreachable!("checked above"),
    };
    let granted = grant(
        requested,
        Some(user.as_str()).filter(|u| !is_read_only(st, u)),
    );
    let scope = granted
        .iter()
        .map(Access::to_scope)
        .collect::<Vec<_>>()
        .join(" ");
    let (token, expires_in, issued_at) = issue(st, granted);
    let mut body = serde_json::json!({
        "access_token": token,
        "scope": scope,
        "expires_in": expires_in,
        "issued_at": issued_at,
    });
    if get("access_type") == Some("offline") {
        let refresh = random_hex(24);
        st.refresh_tokens
            .lock()
            .expect("lock")
            .insert(refresh.clone(), user);
        body["refresh_token"] = serde_json::json!(refresh);
    }
    json_response(StatusCode::OK, body)
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

async fn forward(st: &TokenState, parts: &axum::http::request::Parts, body: Bytes) -> Response {
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let url = format!("http://{}{}", st.upstream, path_and_query);
    let mut headers = HeaderMap::new();
    copy_headers(&parts.headers, &mut headers, true);
    // The token is ours, not the upstream's.
    headers.remove(header::AUTHORIZATION);
    let mut req = st
        .client
        .request(parts.method.clone(), &url)
        .headers(headers)
        .body(body);
    if let Some((u, p)) = &st.opts.upstream_auth {
        req = req.basic_auth(u, Some(p));
    }
    let upstream = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            return Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(Body::from(format!(
                    "freshen-testkit token proxy: upstream error: {e}"
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

/// The current UTC time as RFC 3339 (`2024-01-02T03:04:05Z`).
fn rfc3339_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

/// Seconds since the Unix epoch as RFC 3339 UTC (civil-from-days, proleptic Gregorian).
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_704_067_199), "2023-12-31T23:59:59Z");
        assert_eq!(rfc3339(4_107_542_400), "2100-03-01T00:00:00Z");
    }

    #[test]
    fn scopes_parse_and_match() {
        let a = Access::parse("repository:team/app:pull,push").unwrap();
        assert_eq!(a.name, "team/app");
        assert_eq!(a.actions, ["pull", "push"]);
        assert_eq!(a.to_scope(), "repository:team/app:pull,push");
        let p = Access::parse("repository(plugin):x:pull").unwrap();
        assert_eq!(p.kind, "repository");
        let need = required_access(&Method::HEAD, "/v2/team/app/manifests/1").unwrap();
        assert!(a.allows(&need));
        let other = required_access(&Method::GET, "/v2/team/app2/tags/list").unwrap();
        assert_eq!(other.name, "team/app2");
        assert!(!a.allows(&other));
        let del = required_access(&Method::DELETE, "/v2/team/app/manifests/sha256:ab").unwrap();
        assert!(!a.allows(&del), "delete is its own action");
        let up = required_access(&Method::PATCH, "/v2/a/b/blobs/uploads/0f-1").unwrap();
        assert_eq!(up.to_scope(), "repository:a/b:pull,push");
        let odd = required_access(&Method::GET, "/v2/x/manifests/y/manifests/1").unwrap();
        assert_eq!(odd.name, "x/manifests/y");
        assert_eq!(required_access(&Method::GET, "/v2/"), None);
        let cat = required_access(&Method::GET, "/v2/_catalog").unwrap();
        assert!(Access::parse("registry:catalog:*").unwrap().allows(&cat));
        assert_eq!(Access::parse("nocolon"), None);
        let mount = required(
            &Method::POST,
            "/v2/a/b/blobs/uploads/",
            Some("mount=sha256%3Aab&from=c/d"),
        );
        assert_eq!(
            scopes_string(&mount),
            "repository:a/b:pull,push repository:c/d:pull"
        );
        assert_eq!(
            required(&Method::POST, "/v2/a/b/blobs/uploads/", None).len(),
            1,
            "a plain upload needs only its own repository"
        );
        assert_eq!(
            requested_scopes(["repository:a:pull repository:b:pull", ""].into_iter()).len(),
            2
        );
    }

    #[test]
    fn anonymous_clients_only_pull() {
        let asked = vec![Access::parse("repository:a:pull,push").unwrap()];
        assert_eq!(grant(asked.clone(), None)[0].actions, ["pull"]);
        assert_eq!(grant(asked, Some("ci"))[0].actions, ["pull", "push"]);
        assert!(grant(vec![Access::parse("repository:a:push").unwrap()], None).is_empty());
    }

    async fn token(c: &reqwest::Client, url: &str) -> serde_json::Value {
        let r = c.get(url).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {url}");
        r.json().await.unwrap()
    }

    /// The whole protocol against a real registry, with a raw HTTP client.
    #[tokio::test(flavor = "multi_thread")]
    async fn token_protocol_against_a_real_registry() {
        let reg = crate::Registry::start().await;
        let digest = reg
            .pusher()
            .push_image("tp/a", "1", "linux/amd64", "tp")
            .await;
        let proxy = TokenAuthProxy::start_with(
            &reg.host(),
            TokenAuthOptions {
                credentials: Some(("ci".into(), "pw".into())),
                expires_in: 1,
                ..TokenAuthOptions::default()
            },
        )
        .await;
        let c = http_client(Some(Duration::from_secs(20)));
        let manifest = format!("{}/v2/tp/a/manifests/1", proxy.url());

        // Challenges, exactly as the spec writes them.
        let r = c.head(&manifest).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers()["www-authenticate"],
            format!(
                "Bearer realm=\"http://{}/token\",service=\"freshen-test\",scope=\"repository:tp/a:pull\"",
                proxy.host()
            )
            .as_str()
        );
        let r = c.get(format!("{}/v2/", proxy.url())).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers()["www-authenticate"],
            format!(
                "Bearer realm=\"{}\",service=\"freshen-test\"",
                proxy.realm()
            )
            .as_str()
        );
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
        assert_eq!(proxy.challenges(), 2);

        // Anonymous GET token.
        let t = token(
            &c,
            &format!(
                "{}?service=freshen-test&scope=repository:tp/a:pull",
                proxy.realm()
            ),
        )
        .await;
        let tok = t["token"].as_str().unwrap().to_string();
        assert_eq!(t["access_token"], tok.as_str());
        assert_eq!(tok.len(), 48);
        assert_eq!(t["expires_in"], 1);
        let issued_at = t["issued_at"].as_str().unwrap();
        assert!(
            issued_at.len() == 20 && issued_at.ends_with('Z') && issued_at.as_bytes()[10] == b'T',
            "{issued_at}"
        );
        assert!(t.get("refresh_token").is_none());
        assert_eq!(proxy.tokens_issued(), 1);

        // Forwarded with the token: HEAD keeps Content-Length, GET the bytes.
        let r = c
            .head(&manifest)
            .header("accept", crate::ACCEPT_ALL_MANIFESTS)
            .bearer_auth(&tok)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
        let len: usize = r.headers()["content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            len > 100,
            "HEAD keeps the upstream Content-Length, got {len}"
        );
        let r = c
            .get(&manifest)
            .header("accept", crate::ACCEPT_ALL_MANIFESTS)
            .bearer_auth(&tok)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(crate::sha256_digest(&r.bytes().await.unwrap()), digest);
        // The base endpoint takes any valid token.
        let r = c
            .get(format!("{}/v2/", proxy.url()))
            .bearer_auth(&tok)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);

        // Bound to its scope: refused for another repository, and for push.
        let r = c
            .get(format!("{}/v2/tp/b/tags/list", proxy.url()))
            .bearer_auth(&tok)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let www = r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            www.contains("scope=\"repository:tp/b:pull\"")
                && www.ends_with("error=\"insufficient_scope\""),
            "{www}"
        );
        let r = c
            .post(format!("{}/v2/tp/a/blobs/uploads/", proxy.url()))
            .bearer_auth(&tok)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("scope=\"repository:tp/a:pull,push\"")
        );
        // Anonymous clients get pull only, whatever they ask.
        let t = token(
            &c,
            &format!(
                "{}?service=freshen-test&scope=repository:tp/a:pull,push",
                proxy.realm()
            ),
        )
        .await;
        let r = c
            .post(format!("{}/v2/tp/a/blobs/uploads/", proxy.url()))
            .bearer_auth(t["token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);

        // Logged in, with a refresh token; wrong password and service refused.
        let r = c
            .get(format!(
                "{}?service=freshen-test&scope=repository:tp/a:pull&offline_token=true",
                proxy.realm()
            ))
            .basic_auth("ci", Some("nope"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let r = c
            .get(format!(
                "{}?service=other&scope=repository:tp/a:pull",
                proxy.realm()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let r = c
            .get(format!(
                "{}?service=freshen-test&scope=repository:tp/a:pull&offline_token=true",
                proxy.realm()
            ))
            .basic_auth("ci", Some("pw"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let t: serde_json::Value = r.json().await.unwrap();
        let refresh = t["refresh_token"].as_str().unwrap().to_string();

        // OAuth2 POST: password and refresh_token grants.
        let post = |form: Vec<(&'static str, String)>| {
            let c = c.clone();
            let realm = proxy.realm();
            async move { c.post(realm).form(&form).send().await.unwrap() }
        };
        let base = |grant: &str| {
            vec![
                ("grant_type", grant.to_string()),
                ("service", "freshen-test".to_string()),
                ("client_id", "tests".to_string()),
                ("scope", "repository:tp/a:pull".to_string()),
            ]
        };
        let mut f = base("password");
        f.extend([("username", "ci".into()), ("password", "pw".into())]);
        f.push(("access_type", "offline".into()));
        let r = post(f).await;
        assert_eq!(r.status(), 200);
        let t: serde_json::Value = r.json().await.unwrap();
        assert!(
            t.get("token").is_none(),
            "the OAuth2 form answers access_token only"
        );
        assert_eq!(t["scope"], "repository:tp/a:pull");
        assert!(t["refresh_token"].is_string());
        let oauth_token = t["access_token"].as_str().unwrap().to_string();
        let mut f = base("password");
        f.extend([("username", "ci".into()), ("password", "bad".into())]);
        assert_eq!(post(f).await.status(), 401);
        let mut f = base("refresh_token");
        f.push(("refresh_token", refresh.clone()));
        let r = post(f).await;
        assert_eq!(r.status(), 200);
        let t: serde_json::Value = r.json().await.unwrap();
        assert!(t.get("refresh_token").is_none());
        let refreshed = t["access_token"].as_str().unwrap().to_string();
        let mut f = base("refresh_token");
        f.push(("refresh_token", "bogus".into()));
        assert_eq!(post(f).await.status(), 401);
        let mut f = base("refresh_token");
        f.retain(|(k, _)| *k != "client_id");
        f.push(("refresh_token", refresh));
        assert_eq!(post(f).await.status(), 400, "client_id is required");
        for t in [&oauth_token, &refreshed] {
            let r = c
                .head(&manifest)
                .header("accept", crate::ACCEPT_ALL_MANIFESTS)
                .bearer_auth(t)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
        assert_eq!(proxy.tokens_issued(), 5);

        // Expiry: after expires_in the token is refused as invalid.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let r = c.head(&manifest).bearer_auth(&tok).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .ends_with("error=\"invalid_token\"")
        );

        let log = proxy.request_log();
        let token_reqs: Vec<_> = log.iter().filter(|r| r.path == "/token").collect();
        assert_eq!(token_reqs.len(), proxy.token_requests());
        assert_eq!(token_reqs[0].scope.as_deref(), Some("repository:tp/a:pull"));
        assert_eq!(token_reqs[0].user, None);
        assert!(token_reqs.iter().any(|r| r.user.as_deref() == Some("ci")));
        assert_eq!(
            proxy.registry_requests() + proxy.token_requests(),
            log.len()
        );
        assert_eq!(proxy.count("head"), 5);
        assert_eq!(log[0].scope.as_deref(), Some("repository:tp/a:pull"));
        assert!(!log[0].bearer);
        assert_eq!(log[0].status, Some(401));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn require_login_refuses_anonymous_and_revocation_works() {
        let reg = crate::Registry::start_with_auth("up", "uppw").await;
        reg.pusher()
            .push_image("tp/c", "1", "linux/amd64", "tpc")
            .await;
        let proxy = TokenAuthProxy::start_with(
            &reg.host(),
            TokenAuthOptions {
                credentials: Some(("ci".into(), "pw".into())),
                require_login: true,
                upstream_auth: Some(("up".into(), "uppw".into())),
                ..TokenAuthOptions::default()
            },
        )
        .await;
        let c = http_client(Some(Duration::from_secs(20)));
        let url = format!(
            "{}?service=freshen-test&scope=repository:tp/c:pull",
            proxy.realm()
        );
        assert_eq!(c.get(&url).send().await.unwrap().status(), 401);
        let r = c
            .get(&url)
            .basic_auth("ci", Some("pw"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let t: serde_json::Value = r.json().await.unwrap();
        let tok = t["token"].as_str().unwrap();
        let tags = format!("{}/v2/tp/c/tags/list", proxy.url());
        let r = c.get(&tags).bearer_auth(tok).send().await.unwrap();
        assert_eq!(r.status(), 200, "forwarded with the upstream's basic auth");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["tags"], serde_json::json!(["1"]));
        proxy.revoke_tokens();
        let r = c.get(&tags).bearer_auth(tok).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(proxy.challenges(), 1);
        assert_eq!(proxy.tokens_issued(), 1);
        let r = c
            .delete(format!("{}/token", proxy.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405);
    }
}
