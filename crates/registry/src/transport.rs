//! Sending requests to a registry: endpoints and mirrors, authentication,
//! retries with backoff, `Retry-After`, per-registry concurrency limits.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use freshen_reference::{DOCKER_HUB, DOCKER_HUB_HOST};
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode};
use tokio::sync::{OnceCell, Semaphore};

use crate::auth::{
    Challenge, Credential, Token, TokenResponse, docker_config_credential, pull_scope, push_scope,
};
use crate::error::RegistryError;
use crate::settings::{ClientOptions, RegistrySettings, RetryPolicy};

/// One place a registry's API can be reached: the registry itself or a mirror.
pub(crate) struct Endpoint {
    /// `https://host[:port]`.
    pub base: String,
    /// Path prefix for repositories (a Harbor proxy project, say), with a trailing `/`.
    pub prefix: String,
    pub is_mirror: bool,
    /// Key for docker-config credentials: the endpoint's host.
    cred_key: String,
    credential: OnceCell<Option<Credential>>,
    auth: Mutex<AuthState>,
    /// Set from a 429's `Retry-After`: no request to this endpoint before
    /// then. Per endpoint, not per registry: a mirror's rate limit must not
    /// hold back the fallback to the registry (nor the reverse).
    not_before: Mutex<Option<Instant>>,
}

#[derive(Default)]
struct AuthState {
    /// The last challenge this endpoint sent, so later requests authenticate up front.
    challenge: Option<Challenge>,
    tokens: HashMap<String, Token>,
}

/// Per-registry state shared by every request to it.
pub(crate) struct Host {
    pub name: String,
    pub endpoints: Vec<Endpoint>,
    http: reqwest::Client,
    limit: Semaphore,
    pub rate_limit_remaining: Mutex<Option<String>>,
    settings: RegistrySettings,
}

/// The transport shared by all clones of a [`crate::Client`].
pub(crate) struct Transport {
    pub options: ClientOptions,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
    pub requests: AtomicU64,
}

/// What a request is about, for error messages (`image`) and auth scope (`repository`).
pub(crate) struct Target<'a> {
    pub registry: &'a str,
    pub repository: &'a str,
    pub image: &'a str,
}

/// What a request needs a bearer token to allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Access<'a> {
    /// Read the target repository.
    #[default]
    Pull,
    /// Read and write the target repository.
    Push,
    /// Read and write the target repository, and read another one of the
    /// same registry (a cross-repository mount).
    PushFrom(&'a str),
}

impl Access<'_> {
    /// For error messages: what was refused.
    fn describe(&self) -> String {
        match self {
            Access::Pull => "pull".into(),
            Access::Push => "push".into(),
            Access::PushFrom(from) => format!("push (mounting from {from})"),
        }
    }
}

/// A request body.
pub(crate) struct Payload {
    pub content_type: String,
    pub data: Data,
}

/// A body's bytes: in memory, sent again on retry, or a stream sent once.
pub(crate) enum Data {
    Bytes(bytes::Bytes),
    Once {
        body: Mutex<Option<reqwest::Body>>,
        len: u64,
    },
}

/// One request, apart from where it goes.
#[derive(Default)]
pub(crate) struct Req<'a> {
    pub method: Method,
    pub accept: Option<&'a str>,
    pub access: Access<'a>,
    pub body: Option<Payload>,
}

/// Where a request to the registry itself goes.
pub(crate) enum Loc<'a> {
    /// `/v2/<repository>/<rest>`; `rest` may carry a query.
    Repo(&'a str),
    /// A path from the root: `/v2/...`.
    Absolute(&'a str),
    /// A `Location` the registry sent: absolute, or relative to the endpoint.
    Location(&'a str),
}

/// Resolves an upload `Location` against the endpoint base (`http://host:port`).
fn resolve_location(base: &str, location: &str) -> Option<String> {
    let base = url::Url::parse(&format!("{base}/")).ok()?;
    Some(base.join(location).ok()?.to_string())
}

/// Whether `url` has the scheme, host and port of `base`.
fn same_origin(url: &str, base: &str) -> bool {
    match (url::Url::parse(url), url::Url::parse(base)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

impl Transport {
    pub fn new(options: ClientOptions) -> Transport {
        Transport {
            options,
            hosts: Mutex::new(HashMap::new()),
            requests: AtomicU64::new(0),
        }
    }

    /// The state for a registry, created on first use.
    pub fn host(&self, registry: &str) -> Result<Arc<Host>, RegistryError> {
        let mut hosts = self.hosts.lock().expect("hosts lock");
        if let Some(h) = hosts.get(registry) {
            return Ok(h.clone());
        }
        let settings = self
            .options
            .registries
            .iter()
            .find(|r| r.host == registry)
            .cloned()
            .unwrap_or_else(|| RegistrySettings::for_host(registry));
        let host = Arc::new(build_host(settings, &self.options)?);
        hosts.insert(registry.to_string(), host.clone());
        Ok(host)
    }

    /// Sends `method` to `/v2/<repository>/<rest>` on the registry (mirrors
    /// first), authenticating and retrying as needed. `rest` may carry a query.
    pub async fn send(
        &self,
        target: &Target<'_>,
        method: Method,
        rest: &str,
        accept: Option<&str>,
    ) -> Result<reqwest::Response, RegistryError> {
        let host = self.host(target.registry)?;
        let req = Req {
            method,
            accept,
            ..Req::default()
        };
        let mut last_err = None;
        for endpoint in &host.endpoints {
            let path = format!("/v2/{}{}/{}", endpoint.prefix, target.repository, rest);
            let url = format!("{}{}", endpoint.base, path);
            match self.send_to(&host, endpoint, target, &req, &url).await {
                Ok(r) => return Ok(r),
                Err(e) if endpoint.is_mirror => {
                    tracing::warn!(mirror = %endpoint.base, error = %e, "mirror failed; trying the next endpoint");
                    last_err = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| RegistryError::Settings {
            host: target.registry.to_string(),
            detail: "no endpoint configured".into(),
        }))
    }

    /// GETs an absolute path (`/v2/...`, e.g. from a `Link` header) on the
    /// registry itself, never a mirror: listings must be the registry's own.
    pub async fn get_upstream(
        &self,
        target: &Target<'_>,
        path: &str,
        accept: Option<&str>,
    ) -> Result<reqwest::Response, RegistryError> {
        let req = Req {
            accept,
            ..Req::default()
        };
        self.upstream(target, req, Loc::Absolute(path)).await
    }

    /// Sends `req` to the registry itself, never a mirror: every write goes
    /// here, and so do the reads that must see the registry's own state.
    pub async fn upstream(
        &self,
        target: &Target<'_>,
        req: Req<'_>,
        loc: Loc<'_>,
    ) -> Result<reqwest::Response, RegistryError> {
        let host = self.host(target.registry)?;
        let endpoint = host
            .endpoints
            .last()
            .expect("the registry itself is always an endpoint");
        let url = match loc {
            Loc::Repo(rest) => format!(
                "{}/v2/{}{}/{}",
                endpoint.base, endpoint.prefix, target.repository, rest
            ),
            Loc::Absolute(path) => format!("{}{}", endpoint.base, path),
            Loc::Location(l) => {
                resolve_location(&endpoint.base, l).ok_or_else(|| RegistryError::BadContent {
                    image: target.image.to_string(),
                    what: "upload location".into(),
                    detail: "the registry sent a Location that is not a URL".into(),
                })?
            }
        };
        self.send_to(&host, endpoint, target, &req, &url).await
    }

    async fn send_to(
        &self,
        host: &Host,
        endpoint: &Endpoint,
        target: &Target<'_>,
        req: &Req<'_>,
        url: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        let sent = self.attempts(host, endpoint, target, req, url).await;
        if let Err(e) = &sent {
            crate::telemetry::error(&host.name, e);
        }
        sent
    }

    /// [`Transport::send_to`]'s attempts: authenticating, retrying, waiting
    /// out a `Retry-After`.
    async fn attempts(
        &self,
        host: &Host,
        endpoint: &Endpoint,
        target: &Target<'_>,
        req: &Req<'_>,
        url: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        let retry = &self.options.retry;
        // Only the URL's path goes to logs and errors: an upload location's
        // query is the registry's own state.
        let path = url::Url::parse(url)
            .map(|u| u.path().to_string())
            .unwrap_or_default();
        // Credentials only go to the endpoint itself, not to an upload
        // location on another host (object storage, say).
        let same_origin = same_origin(url, &endpoint.base);
        let scope_repo = format!("{}{}", endpoint.prefix, target.repository);
        let mut attempts = 0u32;
        let mut reauthenticated = false;
        loop {
            attempts += 1;
            if let Some(left) = endpoint.wait_turn(retry.max_backoff).await {
                return Err(RegistryError::RateLimited {
                    host: host.name.clone(),
                    image: target.image.to_string(),
                    retry_after: left,
                });
            }
            let auth = if same_origin {
                self.authorization(host, endpoint, target, &scope_repo, req.access)
                    .await?
            } else {
                None
            };
            let mut builder = host.http.request(req.method.clone(), url);
            if let Some(a) = req.accept {
                builder = builder.header(ACCEPT, a);
            }
            if let Some(a) = &auth {
                builder = builder.header(AUTHORIZATION, a);
            }
            // A streamed body can be sent once: a request that would need it
            // again fails instead of retrying.
            let mut can_resend = true;
            if let Some(body) = &req.body {
                builder = builder.header(CONTENT_TYPE, body.content_type.as_str());
                match &body.data {
                    Data::Bytes(b) => builder = builder.body(b.clone()),
                    Data::Once { body, len } => {
                        can_resend = false;
                        let Some(b) = body.lock().expect("body lock").take() else {
                            return Err(RegistryError::Transport {
                                host: host.name.clone(),
                                image: target.image.to_string(),
                                detail: "a streamed upload cannot be sent twice".into(),
                                attempts,
                            });
                        };
                        builder = builder.header(CONTENT_LENGTH, *len).body(b);
                    }
                }
            }
            let result = {
                let _permit = host.limit.acquire().await.expect("semaphore open");
                self.requests.fetch_add(1, Ordering::Relaxed);
                let sent_at = Instant::now();
                let result = builder.send().await;
                crate::telemetry::request(
                    &host.name,
                    &req.method,
                    result.as_ref().ok().map(|r| r.status().as_u16()),
                    sent_at.elapsed(),
                );
                result
            };
            let resp = match result {
                Ok(r) => r,
                Err(e) => {
                    let detail = describe_reqwest(&e);
                    // A mirror that cannot be reached is skipped at once: the
                    // registry itself is the fallback, not more waiting.
                    if attempts < retry.max_attempts && !endpoint.is_mirror && can_resend {
                        tracing::debug!(%path, %detail, attempts, "request failed; retrying");
                        tokio::time::sleep(backoff(retry, attempts)).await;
                        continue;
                    }
                    return Err(RegistryError::Transport {
                        host: host.name.clone(),
                        image: target.image.to_string(),
                        detail,
                        attempts,
                    });
                }
            };
            host.record_rate_limit(resp.headers());
            let status = resp.status();
            if status.is_success() {
                return Ok(resp);
            }
            match status {
                StatusCode::UNAUTHORIZED if !reauthenticated && can_resend && same_origin => {
                    reauthenticated = true;
                    attempts -= 1; // the auth round trip is not a failed attempt
                    let challenge = resp
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(Challenge::parse);
                    let Some(challenge) = challenge else {
                        return Err(RegistryError::AuthRequired {
                            host: host.name.clone(),
                            image: target.image.to_string(),
                        });
                    };
                    let mut state = endpoint.auth.lock().expect("auth lock");
                    // A fresh challenge invalidates tokens: they were refused.
                    state.tokens.clear();
                    state.challenge = Some(challenge);
                    continue;
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    let has_credential = endpoint_credential(endpoint).await?.is_some();
                    return Err(match req.access {
                        Access::Push | Access::PushFrom(_) if has_credential => {
                            RegistryError::Denied {
                                host: host.name.clone(),
                                image: target.image.to_string(),
                                access: req.access.describe(),
                            }
                        }
                        _ if has_credential => RegistryError::AuthFailed {
                            host: host.name.clone(),
                            image: target.image.to_string(),
                            detail: format!("HTTP {}", status.as_u16()),
                        },
                        _ => RegistryError::AuthRequired {
                            host: host.name.clone(),
                            image: target.image.to_string(),
                        },
                    });
                }
                StatusCode::NOT_FOUND => {
                    return Err(RegistryError::NotFound {
                        host: host.name.clone(),
                        image: target.image.to_string(),
                        what: path,
                    });
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    let wait =
                        retry_after(resp.headers()).unwrap_or_else(|| backoff(retry, attempts));
                    if wait > retry.max_backoff || attempts >= retry.max_attempts || !can_resend {
                        endpoint.pause_until(Instant::now() + wait);
                        return Err(RegistryError::RateLimited {
                            host: host.name.clone(),
                            image: target.image.to_string(),
                            retry_after: wait,
                        });
                    }
                    tracing::info!(registry = %host.name, wait_seconds = wait.as_secs_f64(), "rate limited; waiting as Retry-After asks");
                    endpoint.pause_until(Instant::now() + wait);
                    continue;
                }
                s if (s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT)
                    && attempts < retry.max_attempts
                    && can_resend =>
                {
                    let wait =
                        retry_after(resp.headers()).unwrap_or_else(|| backoff(retry, attempts));
                    tracing::debug!(%path, status = s.as_u16(), attempts, "server error; retrying");
                    tokio::time::sleep(wait.min(retry.max_backoff)).await;
                    continue;
                }
                s => {
                    let detail = error_detail(resp).await;
                    return Err(RegistryError::Http {
                        host: host.name.clone(),
                        image: target.image.to_string(),
                        status: s.as_u16(),
                        attempts,
                        detail,
                    });
                }
            }
        }
    }

    /// The `Authorization` header for a request, fetching a token when the
    /// endpoint asked for bearer auth and none is cached for this scope.
    async fn authorization(
        &self,
        host: &Host,
        endpoint: &Endpoint,
        target: &Target<'_>,
        scope_repo: &str,
        access: Access<'_>,
    ) -> Result<Option<String>, RegistryError> {
        let challenge = endpoint.auth.lock().expect("auth lock").challenge.clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => {
                let cred = endpoint_credential(endpoint).await?;
                match cred.as_ref().and_then(Credential::basic_header) {
                    Some(h) => Ok(Some(h)),
                    None => Err(RegistryError::AuthRequired {
                        host: host.name.clone(),
                        image: target.image.to_string(),
                    }),
                }
            }
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                // The challenge's scope is for the request that drew it; ours
                // may be another repository, or need more than pull. Writes
                // ask for what they need; the key is every scope, space-separated.
                let scope = match (access, scope) {
                    (Access::Push, _) => push_scope(scope_repo),
                    (Access::PushFrom(from), _) => format!(
                        "{} {}",
                        push_scope(scope_repo),
                        pull_scope(&format!("{}{from}", endpoint.prefix))
                    ),
                    (Access::Pull, Some(s))
                        if s.starts_with(&format!("repository:{scope_repo}:")) =>
                    {
                        s
                    }
                    // Registry-wide requests (the catalog) take the scope they are asked for.
                    (Access::Pull, Some(s)) if target.repository.is_empty() => s,
                    (Access::Pull, _) => pull_scope(scope_repo),
                };
                if let Some(t) = endpoint.auth.lock().expect("auth lock").tokens.get(&scope)
                    && t.expires > Instant::now()
                {
                    return Ok(Some(format!("Bearer {}", t.value)));
                }
                let token = self
                    .fetch_token(host, endpoint, target, &realm, service.as_deref(), &scope)
                    .await?;
                let header = format!("Bearer {}", token.value);
                endpoint
                    .auth
                    .lock()
                    .expect("auth lock")
                    .tokens
                    .insert(scope, token);
                Ok(Some(header))
            }
        }
    }

    async fn fetch_token(
        &self,
        host: &Host,
        endpoint: &Endpoint,
        target: &Target<'_>,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<Token, RegistryError> {
        let cred = endpoint_credential(endpoint).await?;
        // The token spec's GET takes one `scope` parameter per scope; the
        // OAuth2 POST form one space-delimited `scope`.
        let mut query: Vec<(&str, &str)> = scope.split(' ').map(|s| ("scope", s)).collect();
        if let Some(s) = service {
            query.push(("service", s));
        }
        let req = match &cred {
            // OAuth2 refresh-token grant, as the docker CLI does with identity tokens.
            Some(Credential::IdentityToken(t)) => {
                let mut form: Vec<(&str, &str)> = vec![("scope", scope)];
                if let Some(s) = service {
                    form.push(("service", s));
                }
                form.extend([
                    ("grant_type", "refresh_token"),
                    ("refresh_token", t.as_str()),
                    ("client_id", "freshen"),
                ]);
                host.http.post(realm).form(&form)
            }
            Some(c @ Credential::Basic { .. }) => host
                .http
                .get(realm)
                .query(&query)
                .header(AUTHORIZATION, c.basic_header().unwrap_or_default()),
            None => host.http.get(realm).query(&query),
        };
        self.requests.fetch_add(1, Ordering::Relaxed);
        let resp = req.send().await.map_err(|e| RegistryError::Transport {
            host: host.name.clone(),
            image: target.image.to_string(),
            detail: format!("token endpoint: {}", describe_reqwest(&e)),
            attempts: 1,
        })?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(if cred.is_some() {
                RegistryError::AuthFailed {
                    host: host.name.clone(),
                    image: target.image.to_string(),
                    detail: format!("token endpoint answered HTTP {}", status.as_u16()),
                }
            } else {
                RegistryError::AuthRequired {
                    host: host.name.clone(),
                    image: target.image.to_string(),
                }
            });
        }
        if !status.is_success() {
            return Err(RegistryError::Http {
                host: host.name.clone(),
                image: target.image.to_string(),
                status: status.as_u16(),
                attempts: 1,
                detail: "token endpoint".into(),
            });
        }
        let body: TokenResponse = resp.json().await.map_err(|e| RegistryError::BadContent {
            image: target.image.to_string(),
            what: "token response".into(),
            detail: describe_reqwest(&e),
        })?;
        body.into_token(Instant::now())
            .ok_or_else(|| RegistryError::BadContent {
                image: target.image.to_string(),
                what: "token response".into(),
                detail: "no token in the answer".into(),
            })
    }
}

impl Endpoint {
    /// Waits out the pause a 429 set on this endpoint. A pause longer than
    /// `max` (the retry policy's `max_backoff`) is not slept: what is left of
    /// it is returned, and the request fails as rate limited at once, as the
    /// 429 that set it did. (Sleeping it here used to stall every later call
    /// for the whole `Retry-After`: hours, with Docker Hub.)
    async fn wait_turn(&self, max: Duration) -> Option<Duration> {
        let until = *self.not_before.lock().expect("not_before lock");
        let left = until?.checked_duration_since(Instant::now())?;
        if left > max {
            return Some(left);
        }
        tokio::time::sleep(left).await;
        None
    }

    fn pause_until(&self, t: Instant) {
        let mut nb = self.not_before.lock().expect("not_before lock");
        if nb.is_none_or(|cur| cur < t) {
            *nb = Some(t);
        }
    }
}

impl Host {
    fn record_rate_limit(&self, headers: &HeaderMap) {
        if let Some(v) = headers
            // Header names are case-insensitive: the IETF draft's
            // `RateLimit-Remaining` and Docker Hub's `ratelimit-remaining`.
            .get("ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
        {
            tracing::debug!(registry = %self.name, remaining = v, "rate limit");
            crate::telemetry::rate_limit_remaining(&self.name, v);
            *self.rate_limit_remaining.lock().expect("rate limit lock") = Some(v.to_string());
        }
    }

    /// The settings this registry runs with.
    pub fn settings(&self) -> &RegistrySettings {
        &self.settings
    }
}

async fn endpoint_credential(endpoint: &Endpoint) -> Result<Option<Credential>, RegistryError> {
    endpoint
        .credential
        .get_or_try_init(|| async {
            let key = endpoint.cred_key.clone();
            tokio::task::spawn_blocking(move || docker_config_credential(&key))
                .await
                .map_err(|e| RegistryError::Credentials {
                    host: endpoint.cred_key.clone(),
                    detail: e.to_string(),
                })?
        })
        .await
        .cloned()
}

fn build_host(settings: RegistrySettings, options: &ClientOptions) -> Result<Host, RegistryError> {
    let err = |detail: String| RegistryError::Settings {
        host: settings.host.clone(),
        detail,
    };
    // rustls needs one process-wide crypto provider; ring is the only one built.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("freshen/", env!("CARGO_PKG_VERSION")))
        .timeout(settings.timeout.unwrap_or(options.timeout))
        .connect_timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(settings.max_concurrency.max(1));
    if let Some(ca) = &settings.ca_file {
        let pem = std::fs::read(ca).map_err(|e| err(format!("ca_file {}: {e}", ca.display())))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| err(format!("ca_file {}: {e}", ca.display())))?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    let http = builder.build().map_err(|e| err(e.to_string()))?;

    let explicit = settings.username.as_ref().map(|u| Credential::Basic {
        username: u.clone(),
        password: settings.password.clone().unwrap_or_default(),
    });
    let docker_config = options.docker_config;
    let endpoint = |spec: &str, is_mirror: bool| -> Result<Endpoint, RegistryError> {
        let (scheme, rest) = match spec.split_once("://") {
            Some((s, r)) if s == "http" || s == "https" => (s, r),
            Some(_) => {
                return Err(err(format!(
                    "mirror {spec:?}: only http:// and https:// are understood"
                )));
            }
            None if settings.plain_http() && !is_mirror => ("http", spec),
            None => ("https", spec),
        };
        let (hostport, prefix) = match rest.trim_end_matches('/').split_once('/') {
            Some((h, p)) => (h, format!("{p}/")),
            None => (rest.trim_end_matches('/'), String::new()),
        };
        if hostport.is_empty() {
            return Err(err(format!("endpoint {spec:?} has no host")));
        }
        let api_host = if hostport == DOCKER_HUB {
            DOCKER_HUB_HOST
        } else {
            hostport
        };
        let credential = OnceCell::new();
        if !is_mirror {
            if let Some(c) = &explicit {
                let _ = credential.set(Some(c.clone()));
            } else if !docker_config {
                let _ = credential.set(None);
            }
        } else if !docker_config {
            let _ = credential.set(None);
        }
        Ok(Endpoint {
            base: format!("{scheme}://{api_host}"),
            prefix,
            is_mirror,
            cred_key: hostport.to_string(),
            credential,
            auth: Mutex::new(AuthState::default()),
            not_before: Mutex::new(None),
        })
    };
    let mut endpoints = Vec::new();
    for m in &settings.mirrors {
        endpoints.push(endpoint(m, true)?);
    }
    endpoints.push(endpoint(&settings.host, false)?);
    Ok(Host {
        name: settings.host.clone(),
        endpoints,
        http,
        limit: Semaphore::new(settings.max_concurrency.max(1)),
        rate_limit_remaining: Mutex::new(None),
        settings,
    })
}

/// Exponential backoff with jitter: attempt 1 waits about `initial`, then doubles.
fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let exp = policy
        .initial_backoff
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let capped = exp.min(policy.max_backoff);
    // ±20 % so that many clients retrying together spread out.
    let factor = 0.8 + rand::random::<f64>() * 0.4;
    capped.mul_f64(factor)
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// The registry's own error message (`errors[0].message`), kept short.
async fn error_detail(resp: reqwest::Response) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let status = resp.status();
    let body = resp.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<Errors>(&body) {
        Ok(e) if !e.errors.is_empty() => {
            let first = &e.errors[0];
            format!("{} {}", first.code, first.message)
                .trim()
                .to_string()
        }
        _ => status.canonical_reason().unwrap_or("error").to_string(),
    }
}

/// A reqwest error without its URL (a URL can carry a token in its query).
pub(crate) fn describe_reqwest(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_decode() {
        "could not decode the answer"
    } else if e.is_body() {
        "the answer's body broke off"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut root = None;
    while let Some(s) = source {
        root = Some(s.to_string());
        source = s.source();
    }
    match root {
        Some(r) if r.contains("InvalidContentType") => {
            format!(
                "{kind} (TLS handshake failed: if this registry speaks plain HTTP, set `insecure: true` for it)"
            )
        }
        Some(r) => format!("{kind} ({r})"),
        None => kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_locations_resolve_against_the_endpoint() {
        let base = "http://127.0.0.1:5000";
        assert_eq!(
            resolve_location(base, "/v2/a/blobs/uploads/u1?_state=x").as_deref(),
            Some("http://127.0.0.1:5000/v2/a/blobs/uploads/u1?_state=x")
        );
        assert_eq!(
            resolve_location(base, "https://blobs.example/up/u1?sig=1").as_deref(),
            Some("https://blobs.example/up/u1?sig=1")
        );
        assert_eq!(
            resolve_location("https://r.example", "v2/a/blobs/uploads/u2").as_deref(),
            Some("https://r.example/v2/a/blobs/uploads/u2")
        );
        assert!(same_origin("http://127.0.0.1:5000/v2/x", base));
        assert!(!same_origin("http://127.0.0.1:5001/v2/x", base));
        assert!(!same_origin("https://blobs.example/up/u1", base));
    }

    #[test]
    fn backoff_grows_and_caps() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        let first = backoff(&p, 1);
        assert!(first >= Duration::from_millis(80) && first <= Duration::from_millis(120));
        let third = backoff(&p, 3);
        assert!(third >= Duration::from_millis(320) && third <= Duration::from_millis(480));
        assert!(backoff(&p, 30) <= Duration::from_millis(1200));
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let later = chrono::Utc::now() + chrono::Duration::seconds(30);
        h.insert(RETRY_AFTER, later.to_rfc2822().parse().unwrap());
        let d = retry_after(&h).unwrap();
        assert!(d > Duration::from_secs(25) && d <= Duration::from_secs(30));
    }

    #[test]
    fn endpoints_for_docker_hub_and_mirrors() {
        let mut s = RegistrySettings::for_host("docker.io");
        s.mirrors = vec![
            "harbor.corp/hub-proxy".into(),
            "http://127.0.0.1:5001".into(),
        ];
        let h = build_host(s, &ClientOptions::default()).unwrap();
        let bases: Vec<_> = h
            .endpoints
            .iter()
            .map(|e| (e.base.as_str(), e.prefix.as_str()))
            .collect();
        assert_eq!(
            bases,
            vec![
                ("https://harbor.corp", "hub-proxy/"),
                ("http://127.0.0.1:5001", ""),
                ("https://registry-1.docker.io", ""),
            ]
        );
        let mut s = RegistrySettings::for_host("localhost:5000");
        s.insecure = Some(false);
        let h = build_host(s, &ClientOptions::default()).unwrap();
        assert_eq!(h.endpoints[0].base, "https://localhost:5000");
        let s = RegistrySettings::for_host("127.0.0.1:5000");
        let h = build_host(s, &ClientOptions::default()).unwrap();
        assert_eq!(
            h.endpoints[0].base, "http://127.0.0.1:5000",
            "loopback is plain HTTP by default"
        );
    }
}
