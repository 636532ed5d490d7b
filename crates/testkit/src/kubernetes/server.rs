//! The HTTP side: authentication, routing, and each verb's handler,
//! answering errors as `Status` objects.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::resources::{self, Resource};
use super::selector::{FieldSelector, LabelSelector};
use super::{
    Data, KUBE_VERSION, Key, KubeRequest, Shared, openapi, patch, watch, with_type, without_type,
};
use crate::http::percent_decode;

/// An API error: a `Status` object with its HTTP code.
pub(super) struct ApiError {
    code: StatusCode,
    reason: &'static str,
    message: String,
    details: Option<Value>,
}

impl ApiError {
    pub(super) fn new(
        code: StatusCode,
        reason: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub(super) fn for_object(mut self, res: &Resource, name: &str) -> ApiError {
        self.details = Some(json!({"name": name, "group": res.group, "kind": res.plural}));
        self
    }

    pub(super) fn not_found(res: &Resource, name: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{} \"{name}\" not found", res.group_resource()),
        )
        .for_object(res, name)
    }

    pub(super) fn conflict(res: &Resource, name: &str) -> ApiError {
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

    pub(super) fn invalid(res: &Resource, name: &str, why: &str) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{}.{} \"{name}\" is invalid: {why}", res.kind, res.group),
        )
        .for_object(res, name)
    }

    pub(super) fn response(self) -> Response {
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

/// Reads the query string into a map (the last value of a repeated key).
fn query_map(query: Option<&str>) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub(super) async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
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

pub(super) struct Ctx<'a> {
    pub(super) shared: &'a Arc<Shared>,
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

    pub(super) fn param(&self, k: &str) -> Option<&str> {
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
        return Ok(watch::watch(ctx, res, ns, labels, fields));
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
        let merged = patch::apply(&old, &without_type(&applied)).map_err(ApiError::bad_request)?;
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
