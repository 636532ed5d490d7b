//! The routes. The router is built only from [`table`], which also says
//! which OpenAPI operations each route serves, so a test can check that the
//! document describes every route.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, BodyDataStream, Bytes};
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use freshen_app::App;
use freshen_inventory::Registration;
use futures::StreamExt as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::Deserialize;
use serde_json::json;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

use crate::ServerSettings;
use crate::auth::WriteAuth;
use crate::error::ApiError;
use crate::hooks::Hooks;

#[derive(Clone)]
pub(crate) struct AppState {
    pub app: Arc<App>,
    pub auth: Arc<WriteAuth>,
    openapi: Bytes,
    pub max_body_bytes: usize,
    /// Webhook receivers, when configured.
    pub hooks: Option<Arc<Hooks>>,
}

/// One route: its axum path, the OpenAPI operations (method, path) it
/// serves, and its handlers.
pub(crate) struct Route {
    pub path: &'static str,
    #[cfg_attr(not(test), allow(dead_code))]
    pub operations: &'static [(&'static str, &'static str)],
    service: MethodRouter<AppState>,
}

/// Every route the router serves.
pub(crate) fn table() -> Vec<Route> {
    vec![
        Route {
            path: "/healthz",
            operations: &[("get", "/healthz")],
            service: get(healthz),
        },
        Route {
            path: "/readyz",
            operations: &[("get", "/readyz")],
            service: get(crate::telemetry::readyz),
        },
        Route {
            path: "/openapi.json",
            operations: &[("get", "/openapi.json")],
            service: get(openapi),
        },
        Route {
            path: "/",
            operations: &[("get", "/")],
            service: get(crate::ui::index),
        },
        Route {
            path: "/ui/packages",
            operations: &[("get", "/ui/packages")],
            service: get(crate::ui::packages),
        },
        Route {
            path: "/ui/children",
            operations: &[("get", "/ui/children")],
            service: get(crate::ui::children),
        },
        Route {
            path: "/packages/{*name}",
            operations: &[("get", "/packages/{name}")],
            service: get(package),
        },
        Route {
            path: "/images",
            operations: &[("get", "/images")],
            service: get(image_list),
        },
        Route {
            // Refs may come URL-encoded (canonical) or with raw slashes, so
            // one wildcard takes them all and `images` splits the suffix.
            path: "/images/{*rest}",
            operations: &[
                ("get", "/images/{ref}"),
                ("post", "/images/{ref}"),
                ("put", "/images/{ref}"),
                ("delete", "/images/{ref}"),
                ("get", "/images/{ref}/packages"),
                ("get", "/images/{ref}/children"),
                ("get", "/images/{ref}/vulnerabilities"),
            ],
            service: get(images).post(images).put(images).delete(images),
        },
        Route {
            path: "/events",
            operations: &[("get", "/events")],
            service: get(events),
        },
        Route {
            path: "/events/{id}",
            operations: &[("get", "/events/{id}")],
            service: get(event),
        },
        Route {
            path: "/decisions",
            operations: &[("get", "/decisions")],
            service: get(decisions),
        },
        Route {
            path: "/hooks/{kind}/{key}",
            operations: &[("post", "/hooks/{kind}/{key}")],
            service: axum::routing::post(crate::hooks::receive),
        },
        Route {
            path: "/metrics",
            operations: &[("get", "/metrics")],
            service: get(crate::telemetry::metrics),
        },
        Route {
            path: "/rollouts",
            operations: &[("get", "/rollouts"), ("post", "/rollouts")],
            service: get(crate::rollouts::list).post(crate::rollouts::start),
        },
        Route {
            path: "/rollouts/{id}",
            operations: &[("get", "/rollouts/{id}")],
            service: get(crate::rollouts::show),
        },
        Route {
            path: "/approvals",
            operations: &[("get", "/approvals")],
            service: get(crate::rollouts::approvals),
        },
        Route {
            path: "/approvals/{id}",
            operations: &[("get", "/approvals/{id}")],
            service: get(crate::rollouts::approval),
        },
        Route {
            path: "/approvals/{id}/{action}",
            operations: &[("post", "/approvals/{id}/{action}")],
            service: axum::routing::post(crate::rollouts::decide),
        },
        Route {
            path: "/vulnerabilities/{*rest}",
            operations: &[("get", "/vulnerabilities/{id}/images")],
            service: get(vulnerability_images),
        },
    ]
}

pub(crate) fn build(app: Arc<App>, hooks: Option<Arc<Hooks>>) -> Router {
    let settings: &ServerSettings = &app.loaded().config.server;
    let auth = WriteAuth::new(&settings.write_tokens);
    if !auth.enabled() {
        tracing::info!(
            "no server.write_tokens configured: POST, PUT and DELETE are refused with 403"
        );
    }
    let openapi = Bytes::from(
        serde_json::to_vec_pretty(&crate::openapi::document()).expect("JSON values serialise"),
    );
    let max_body_bytes = settings.max_body_bytes;
    let state = AppState {
        app: app.clone(),
        auth: Arc::new(auth),
        openapi,
        max_body_bytes,
        hooks,
    };
    let mut router = Router::new();
    for r in table() {
        router = router.route(r.path, r.service);
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::map_response(nosniff))
        .layer(
            // The default span shows the URI, and a hook's path holds its key.
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<Body>| {
                tracing::debug_span!(
                    "request",
                    method = %req.method(),
                    path = %crate::hooks::redacted_path(req.uri().path()),
                )
            }),
        )
        // Outermost: anything that prints headers shows `Sensitive`.
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
        ]))
        .with_state(state)
}

async fn nosniff(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no route for {method} {}; the API is described at /openapi.json",
            uri.path()
        ),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "method {method} is not allowed on {}; the API is described at /openapi.json",
            uri.path()
        ),
    )
}

pub(crate) async fn healthz() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

async fn openapi(State(st): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        st.openapi.clone(),
    )
        .into_response()
}

/// Query parameters of `GET /packages/{name}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PackageParams {
    ecosystem: Option<String>,
    version: Option<String>,
}

/// An empty filter (`?ecosystem=`) means no filter, as HTML forms send it.
pub(crate) fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

async fn package(State(st): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    // Decoded by hand, like image refs: names may hold slashes (Go modules, npm scopes).
    let raw = uri.path().strip_prefix("/packages/").unwrap_or_default();
    let name = decode(raw, "package name")?;
    if name.trim().is_empty() {
        return Err(ApiError::bad_request("the package name is empty"));
    }
    let params: PackageParams = query(&uri)?;
    let versions = st
        .app
        .packages(
            &name,
            non_empty(&params.ecosystem),
            non_empty(&params.version),
        )
        .await?;
    Ok(axum::Json(versions).into_response())
}

/// `GET /vulnerabilities/{id}/images`.
async fn vulnerability_images(State(st): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let raw = uri
        .path()
        .strip_prefix("/vulnerabilities/")
        .unwrap_or_default();
    let Some(raw) = raw.strip_suffix("/images") else {
        return Err(not_found(Method::GET, uri.clone()).await);
    };
    let id = decode(raw, "vulnerability id")?;
    if id.trim().is_empty() || id.contains('/') {
        return Err(ApiError::bad_request(format!(
            "{id:?} is not a vulnerability id (e.g. CVE-2023-5363)"
        )));
    }
    let _: NoParams = query(&uri)?;
    let images = st.app.vulnerable_images(&id).await?;
    Ok(axum::Json(json!({ "id": id, "images": images })).into_response())
}

/// Query parameters of `GET /images`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageListParams {
    search: Option<String>,
    #[serde(default)]
    outdated: bool,
    #[serde(default)]
    vulnerable: bool,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// `GET /images`: one page, with a `Link` to the next when there is one.
async fn image_list(State(st): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let p: ImageListParams = query(&uri)?;
    let filter = freshen_app::view::ImageFilter {
        search: non_empty(&p.search).map(str::to_string),
        outdated: p.outdated,
        vulnerable: p.vulnerable,
    };
    let page = freshen_app::view::Page::new(p.limit.unwrap_or(50), p.offset.unwrap_or(0));
    let list = st.app.images(&filter, page).await?;
    let next = list.next.map(|offset| {
        let mut q = Vec::new();
        if let Some(s) = &filter.search {
            q.push(format!(
                "search={}",
                utf8_percent_encode(s, NON_ALPHANUMERIC)
            ));
        }
        if filter.outdated {
            q.push("outdated=true".to_string());
        }
        if filter.vulnerable {
            q.push("vulnerable=true".to_string());
        }
        q.push(format!("limit={}", page.limit));
        q.push(format!("offset={offset}"));
        format!("</images?{}>; rel=\"next\"", q.join("&"))
    });
    let mut resp = axum::Json(list).into_response();
    if let Some(link) = next.and_then(|l| HeaderValue::from_str(&l).ok()) {
        resp.headers_mut().insert(header::LINK, link);
    }
    Ok(resp)
}

/// Query parameters of `GET /events`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventParams {
    reference: Option<String>,
    limit: Option<i64>,
}

/// `GET /events`: change events, newest first, with what the policy said.
async fn events(State(st): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let params: EventParams = query(&uri)?;
    let list = st
        .app
        .events(non_empty(&params.reference), params.limit.unwrap_or(50))
        .await?;
    Ok(axum::Json(list).into_response())
}

/// `GET /events/{id}`: one event and the policy decisions made on it.
async fn event(
    State(st): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let _: NoParams = query(&uri)?;
    let Some((e, decisions)) = st.app.event(&id).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no change event {id:?}"),
        ));
    };
    Ok(axum::Json(json!({ "event": e, "decisions": decisions })).into_response())
}

/// Query parameters of `GET /decisions`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionParams {
    subject: Option<String>,
    event: Option<String>,
    limit: Option<i64>,
}

/// `GET /decisions`: stored policy decisions, newest first.
async fn decisions(State(st): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let params: DecisionParams = query(&uri)?;
    let list = st
        .app
        .decisions(
            non_empty(&params.subject),
            non_empty(&params.event),
            params.limit.unwrap_or(50),
        )
        .await?;
    Ok(axum::Json(list).into_response())
}

/// Parses the query string; unknown parameters are refused so a typo is not
/// silently ignored.
pub(crate) fn query<T: serde::de::DeserializeOwned>(uri: &Uri) -> Result<T, ApiError> {
    Query::<T>::try_from_uri(uri)
        .map(|Query(t)| t)
        .map_err(|e| ApiError::bad_request(format!("bad query string: {}", e.body_text())))
}

fn decode(raw: &str, what: &str) -> Result<String, ApiError> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| {
            ApiError::bad_request(format!(
                "the {what} in the path is not UTF-8 once percent-decoded"
            ))
        })
}

/// What follows the reference in `/images/{ref}...`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Sub {
    Show,
    Packages,
    Children,
    Vulnerabilities,
}

/// Splits `/images/<ref>[/packages|/children]` (on the raw path, so an
/// encoded `%2F` never splits) and percent-decodes the reference.
pub(crate) fn split_image_path(path: &str) -> Result<(String, Sub), ApiError> {
    let raw = path.strip_prefix("/images/").unwrap_or_default();
    let (raw, sub) = if let Some(r) = raw.strip_suffix("/packages") {
        (r, Sub::Packages)
    } else if let Some(r) = raw.strip_suffix("/children") {
        (r, Sub::Children)
    } else if let Some(r) = raw.strip_suffix("/vulnerabilities") {
        (r, Sub::Vulnerabilities)
    } else {
        (raw, Sub::Show)
    };
    Ok((decode(raw, "image reference")?, sub))
}

/// Characters left as they are when a reference goes into a path.
const PATH_SAFE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `/images/<ref, URL-encoded>`.
pub(crate) fn image_path(r: &str) -> String {
    format!("/images/{}", utf8_percent_encode(r, PATH_SAFE))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoParams {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChildrenParams {
    #[serde(default)]
    recursive: bool,
}

async fn images(State(st): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let method = req.method().clone();
    let uri = req.uri().clone();
    match method {
        Method::POST | Method::PUT | Method::DELETE => {
            let (parts, body) = req.into_parts();
            let mut body = Some(body);
            let result = write(&st, &parts, &mut body).await;
            // Not `if let (Err(_), ..) = (&result, ..)`: a `&Response` is not `Send`.
            let unread = if result.is_err() { body.take() } else { None };
            if let Some(unread) = unread {
                drain(
                    unread.into_data_stream(),
                    drain_allowance(st.max_body_bytes),
                )
                .await;
            }
            result
        }
        _ => {
            let (raw_ref, sub) = split_image_path(uri.path())?;
            let r = st.app.reference(&raw_ref)?;
            let reference = r.to_string();
            match sub {
                Sub::Show => {
                    let _: NoParams = query(&uri)?;
                    Ok(axum::Json(st.app.image(&reference).await?).into_response())
                }
                Sub::Packages => {
                    let _: NoParams = query(&uri)?;
                    let platforms = st.app.image_packages(&reference).await?;
                    Ok(
                        axum::Json(json!({ "reference": r.to_string(), "platforms": platforms }))
                            .into_response(),
                    )
                }
                Sub::Vulnerabilities => {
                    let _: NoParams = query(&uri)?;
                    let (r, platforms) = st.app.image_vulns(&reference).await?;
                    Ok(
                        axum::Json(json!({ "reference": r.to_string(), "platforms": platforms }))
                            .into_response(),
                    )
                }
                Sub::Children => {
                    let p: ChildrenParams = query(&uri)?;
                    let children = st.app.children(&reference, p.recursive).await?;
                    Ok(axum::Json(json!({
                        "reference": r.to_string(),
                        "recursive": p.recursive,
                        "children": children,
                    }))
                    .into_response())
                }
            }
        }
    }
}

/// `POST`, `PUT` and `DELETE /images/{ref}`. Takes `body` only to read it,
/// so the caller can drain what is left when answering early.
async fn write(
    st: &AppState,
    parts: &Parts,
    body: &mut Option<Body>,
) -> Result<Response, ApiError> {
    let (raw_ref, sub) = split_image_path(parts.uri.path())?;
    if sub != Sub::Show {
        return Err(ApiError::method_not_allowed(
            &parts.method,
            parts.uri.path(),
            "GET, HEAD",
        ));
    }
    // Authorise before reading the reference or the body.
    st.auth.check(&parts.headers)?;
    let r = st.app.reference(&raw_ref)?;
    if parts.method == Method::DELETE {
        st.app.delete_image(&r.to_string()).await?;
        tracing::info!(reference = %r, "removed through the API");
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    if declared_too_large(&parts.headers, st.max_body_bytes) {
        return Err(too_large(st.max_body_bytes));
    }
    let bytes = read_body(body.take().unwrap_or_default(), st.max_body_bytes).await?;
    let reg = parse_registration(&bytes)?;
    let replace = parts.method == Method::PUT;
    let view = st.app.register_image(&r.to_string(), &reg, replace).await?;
    tracing::info!(reference = %r, replace, "registered through the API");
    if replace {
        Ok(axum::Json(view).into_response())
    } else {
        let location = HeaderValue::from_str(&image_path(&view.reference)).map_err(|_| {
            ApiError::bad_request("the reference cannot be put in a Location header")
        })?;
        Ok((
            StatusCode::CREATED,
            [(header::LOCATION, location)],
            axum::Json(view),
        )
            .into_response())
    }
}

/// True when the request's `Content-Length` is over `max`: answered
/// before anything is read.
pub(crate) fn declared_too_large(headers: &axum::http::HeaderMap, max: usize) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > max as u64)
}

pub(crate) fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the request body is larger than the server's limit of {max} bytes (server.max_body_bytes)"
        ),
    )
}

/// How much of an unwanted body is read and dropped before answering, so
/// the client finishes sending and sees the answer instead of a reset.
pub(crate) fn drain_allowance(max: usize) -> usize {
    max.max(1024 * 1024)
}

/// Reads and drops up to `limit` bytes of `body`, for at most two seconds.
/// A body left over is the connection's end (hyper closes it).
pub(crate) async fn drain(mut stream: BodyDataStream, limit: usize) {
    let mut read = 0usize;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while let Some(Ok(chunk)) = stream.next().await {
            read += chunk.len();
            if read > limit {
                break;
            }
        }
    })
    .await;
}

/// Reads a body of at most `max` bytes; past that, drains a little more and
/// answers 413.
pub(crate) async fn read_body(body: Body, max: usize) -> Result<Vec<u8>, ApiError> {
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
        if buf.len() + chunk.len() > max {
            drain(stream, drain_allowance(max)).await;
            return Err(too_large(max));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// Parses a [`Registration`]; errors name the field or JSON's reason.
fn parse_registration(bytes: &[u8]) -> Result<Registration, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let body: Registration = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            ApiError::bad_request(format!("invalid JSON body: {}", e.inner()))
        } else {
            ApiError::bad_request(format!("invalid JSON body at {path}: {}", e.inner()))
        }
    })?;
    // Trailing garbage after the object is an error too.
    de.end()
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_image_paths() {
        let ok = |p: &str| split_image_path(p).unwrap();
        assert_eq!(ok("/images/debian"), ("debian".into(), Sub::Show));
        assert_eq!(
            ok("/images/localhost%3A5000%2Fapp%3A1/children"),
            ("localhost:5000/app:1".into(), Sub::Children)
        );
        assert_eq!(
            ok("/images/localhost:5000/app:1/packages"),
            ("localhost:5000/app:1".into(), Sub::Packages)
        );
        // An encoded slash never splits: the repository `x/children`.
        assert_eq!(ok("/images/x%2Fchildren"), ("x/children".into(), Sub::Show));
        assert_eq!(
            ok("/images/app%40sha256%3Aab"),
            ("app@sha256:ab".into(), Sub::Show)
        );
        // `+` is a plus in a path, not a space.
        assert_eq!(ok("/images/a+b"), ("a+b".into(), Sub::Show));
        assert!(split_image_path("/images/%FF").is_err());
    }

    #[test]
    fn image_paths_encode_everything_but_unreserved() {
        assert_eq!(
            image_path("localhost:5000/app:1"),
            "/images/localhost%3A5000%2Fapp%3A1"
        );
        assert_eq!(image_path("a@sha256:0f"), "/images/a%40sha256%3A0f");
        let (back, _) = split_image_path(&image_path("r.io/a-b_c~d:1.0")).unwrap();
        assert_eq!(back, "r.io/a-b_c~d:1.0");
    }
}
