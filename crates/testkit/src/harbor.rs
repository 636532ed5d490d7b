//! A loopback HTTP server answering the Harbor v2.0 API calls freshen
//! makes, as Harbor documents them (swagger `api/v2.0/swagger.yaml`):
//! repositories of a project and artifacts of a repository, paged with
//! `page`/`page_size`, `X-Total-Count` and `Link` headers; artifacts with
//! tags and `scan_overview` keyed by the report mime type the client
//! accepts (`X-Accept-Vulnerabilities`); and each artifact's full report at
//! `…/artifacts/{reference}/additions/vulnerabilities`. Repository names in
//! paths are the name within the project, URL-encoded twice. Every call
//! needs HTTP basic auth with the configured account (401 with Harbor's
//! `{"errors": [...]}` body otherwise).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::http::{basic_credentials, percent_decode};
use crate::random::random_hex;

/// Options for [`Harbor::start`].
#[derive(Debug, Clone)]
pub struct HarborOptions {
    /// The robot account's name.
    pub user: String,
    /// Its secret.
    pub password: String,
}

impl Default for HarborOptions {
    /// `robot$freshen` with a random secret.
    fn default() -> Self {
        HarborOptions {
            user: "robot$freshen".to_string(),
            password: random_hex(16),
        }
    }
}

/// An artifact to serve.
#[derive(Debug, Clone)]
pub struct HarborArtifact {
    /// Its manifest digest.
    pub digest: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its scan report as `additions/vulnerabilities` returns it (an object
    /// keyed by report mime type); `None` when it was never scanned.
    pub report: Option<Value>,
}

/// A request the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HarborRequest {
    /// The path as sent (still percent-encoded).
    pub path: String,
    /// Query parameters.
    pub query: BTreeMap<String, String>,
    /// The basic-auth user sent, if any.
    pub user: Option<String>,
    /// True when the credentials were right.
    pub authorized: bool,
    /// The `X-Accept-Vulnerabilities` header, if sent.
    pub accept_vulnerabilities: Option<String>,
}

#[derive(Default)]
struct Data {
    /// project -> repository full name -> artifacts.
    projects: BTreeMap<String, BTreeMap<String, Vec<Stored>>>,
    requests: Vec<HarborRequest>,
}

#[derive(Clone)]
struct Stored {
    artifact: HarborArtifact,
    /// Children of an index: (os/arch, digest); they are stored (unlisted)
    /// in the same repository.
    references: Vec<(String, String)>,
    /// A child of an index: not listed, but readable by digest.
    listed: bool,
}

struct Shared {
    opts: HarborOptions,
    data: Mutex<Data>,
}

/// The Harbor API double. Stops when dropped.
pub struct Harbor {
    shared: Arc<Shared>,
    url: String,
    task: JoinHandle<()>,
}

impl Harbor {
    /// Starts a server on a free loopback port.
    pub async fn start(opts: HarborOptions) -> Harbor {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the Harbor server failed");
        let addr = listener.local_addr().expect("local_addr");
        let shared = Arc::new(Shared {
            opts,
            data: Mutex::new(Data::default()),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Harbor {
            shared,
            url: format!("http://{addr}"),
            task,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The account's name.
    pub fn user(&self) -> String {
        self.shared.opts.user.clone()
    }

    /// The account's secret.
    pub fn password(&self) -> String {
        self.shared.opts.password.clone()
    }

    /// Adds a project (with no repositories).
    pub fn add_project(&self, project: &str) {
        let mut d = self.shared.data.lock().unwrap();
        d.projects.entry(project.to_string()).or_default();
    }

    /// Adds an artifact to a repository (`project/name`, created if new).
    pub fn add_artifact(&self, repository: &str, artifact: HarborArtifact) {
        self.store(
            repository,
            Stored {
                artifact,
                references: Vec::new(),
                listed: true,
            },
        );
    }

    /// Adds an index (`digest`, `tags`) whose children are `(os/arch,
    /// artifact)`: Harbor lists the index with `references` and scans each
    /// child, readable by its digest.
    pub fn add_index(
        &self,
        repository: &str,
        digest: &str,
        tags: &[&str],
        children: Vec<(&str, HarborArtifact)>,
    ) {
        let references = children
            .iter()
            .map(|(p, a)| (p.to_string(), a.digest.clone()))
            .collect();
        self.store(
            repository,
            Stored {
                artifact: HarborArtifact {
                    digest: digest.to_string(),
                    tags: tags.iter().map(|t| t.to_string()).collect(),
                    report: None,
                },
                references,
                listed: true,
            },
        );
        for (_, artifact) in children {
            self.store(
                repository,
                Stored {
                    artifact,
                    references: Vec::new(),
                    listed: false,
                },
            );
        }
    }

    fn store(&self, repository: &str, s: Stored) {
        let project = repository
            .split_once('/')
            .expect("a repository name is project/name")
            .0;
        let mut d = self.shared.data.lock().unwrap();
        d.projects
            .entry(project.to_string())
            .or_default()
            .entry(repository.to_string())
            .or_default()
            .push(s);
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<HarborRequest> {
        self.shared.data.lock().unwrap().requests.clone()
    }
}

impl Drop for Harbor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn json_response(status: StatusCode, body: &Value, headers: &[(String, String)]) -> Response {
    let mut b = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json");
    for (k, v) in headers {
        b = b.header(k.as_str(), v.as_str());
    }
    b.body(Body::from(body.to_string())).expect("response")
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        &json!({"errors": [{"code": code, "message": message}]}),
        &[],
    )
}

fn query_of(uri: &axum::http::Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(&v.replace('+', " ")))
        })
        .collect()
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let uri = req.uri().clone();
    let headers: HeaderMap = req.headers().clone();
    let query = query_of(&uri);
    let creds = basic_credentials(&headers);
    let authorized = creds
        .as_ref()
        .is_some_and(|(u, p)| *u == shared.opts.user && *p == shared.opts.password);
    let accept = headers
        .get("X-Accept-Vulnerabilities")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    shared.data.lock().unwrap().requests.push(HarborRequest {
        path: uri.path().to_string(),
        query: query.clone(),
        user: creds.as_ref().map(|(u, _)| u.clone()),
        authorized,
        accept_vulnerabilities: accept.clone(),
    });
    if req.method() != axum::http::Method::GET {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "method not allowed",
        );
    }
    if !authorized {
        return error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "unauthorized");
    }
    let Some(rest) = uri.path().strip_prefix("/api/v2.0/projects/") else {
        return error(StatusCode::NOT_FOUND, "NOT_FOUND", "not found");
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let d = shared.data.lock().unwrap();
    let project = percent_decode(parts[0]);
    let Some(repos) = d.projects.get(&project) else {
        return error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("project {project} not found"),
        );
    };
    match parts.as_slice() {
        [_, "repositories"] => {
            let items: Vec<Value> = repos
                .iter()
                .enumerate()
                .map(|(i, (name, arts))| {
                    json!({
                        "id": i + 1,
                        "project_id": 1,
                        "name": name,
                        "description": "",
                        "artifact_count": arts.iter().filter(|a| a.listed).count(),
                        "pull_count": 0,
                        "creation_time": "2026-11-30T09:00:00.000Z",
                        "update_time": "2026-11-30T09:00:00.000Z"
                    })
                })
                .collect();
            paged(uri.path(), &query, items)
        }
        [_, "repositories", repo, "artifacts", rest @ ..] => {
            // The name within the project, URL-encoded twice.
            let name = format!("{project}/{}", percent_decode(&percent_decode(repo)));
            let Some(arts) = repos.get(&name) else {
                return error(
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    &format!("repository {name} not found"),
                );
            };
            match rest {
                [] => {
                    let items: Vec<Value> = arts
                        .iter()
                        .enumerate()
                        .filter(|(_, a)| a.listed)
                        .map(|(i, a)| artifact_json(i, a, &query, accept.as_deref()))
                        .collect();
                    paged(uri.path(), &query, items)
                }
                [reference] => {
                    let reference = percent_decode(reference);
                    match arts.iter().enumerate().find(|(_, a)| {
                        a.artifact.digest == reference || a.artifact.tags.contains(&reference)
                    }) {
                        Some((i, a)) => json_response(
                            StatusCode::OK,
                            &artifact_json(i, a, &query, accept.as_deref()),
                            &[],
                        ),
                        None => error(
                            StatusCode::NOT_FOUND,
                            "NOT_FOUND",
                            &format!("artifact {name}@{reference} not found"),
                        ),
                    }
                }
                [reference, "additions", "vulnerabilities"] => {
                    let reference = percent_decode(reference);
                    let Some(a) = arts
                        .iter()
                        .map(|s| &s.artifact)
                        .find(|a| a.digest == reference || a.tags.contains(&reference))
                    else {
                        return error(
                            StatusCode::NOT_FOUND,
                            "NOT_FOUND",
                            &format!("artifact {name}@{reference} not found"),
                        );
                    };
                    let body = match (&a.report, accepted_mime(a, accept.as_deref())) {
                        (Some(r), Some(m)) => json!({ m.clone(): r[&m] }),
                        _ => json!({}),
                    };
                    json_response(StatusCode::OK, &body, &[])
                }
                _ => error(StatusCode::NOT_FOUND, "NOT_FOUND", "not found"),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "NOT_FOUND", "not found"),
    }
}

/// The first report mime type of the artifact's report the client accepts.
fn accepted_mime(a: &HarborArtifact, accept: Option<&str>) -> Option<String> {
    let report = a.report.as_ref()?.as_object()?;
    let accept = accept.unwrap_or("application/vnd.security.vulnerability.report; version=1.1");
    accept
        .split(", ")
        .map(str::trim)
        .find(|m| report.contains_key(*m))
        .map(str::to_string)
}

fn artifact_json(
    i: usize,
    stored: &Stored,
    query: &BTreeMap<String, String>,
    accept: Option<&str>,
) -> Value {
    let a = &stored.artifact;
    let references: Vec<Value> = stored
        .references
        .iter()
        .map(|(platform, digest)| {
            let (os, arch) = platform.split_once('/').unwrap_or(("linux", platform));
            json!({"parent_id": i + 1, "child_id": 0, "child_digest": digest,
                   "platform": {"architecture": arch, "os": os}, "annotations": null, "urls": null})
        })
        .collect();
    let mut v = json!({
        "id": i + 1,
        "type": "IMAGE",
        "media_type": if references.is_empty() { "application/vnd.oci.image.config.v1+json" } else { "application/vnd.oci.image.index.v1+json" },
        "manifest_media_type": if references.is_empty() { "application/vnd.oci.image.manifest.v1+json" } else { "application/vnd.oci.image.index.v1+json" },
        "project_id": 1,
        "repository_id": 1,
        "digest": a.digest,
        "size": 12124160,
        "push_time": "2026-11-30T09:50:00.000Z",
        "pull_time": "0001-01-01T00:00:00.000Z",
        "extra_attrs": {"architecture": "amd64", "os": "linux"},
        "annotations": null,
        "references": if references.is_empty() { Value::Null } else { Value::Array(references) },
    });
    if query.get("with_tag").map(String::as_str) != Some("false") {
        v["tags"] = a
            .tags
            .iter()
            .enumerate()
            .map(|(t, name)| {
                json!({"id": t + 1, "repository_id": 1, "artifact_id": i + 1, "name": name,
                       "push_time": "2026-11-30T09:50:00.000Z", "pull_time": "0001-01-01T00:00:00.000Z",
                       "immutable": false})
            })
            .collect();
    }
    if query.get("with_scan_overview").map(String::as_str) == Some("true")
        && let (Some(report), Some(mime)) = (&a.report, accepted_mime(a, accept))
    {
        let r = &report[&mime];
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        let mut fixable = 0;
        let vulns = r["vulnerabilities"].as_array().cloned().unwrap_or_default();
        for x in &vulns {
            *counts
                .entry(x["severity"].as_str().unwrap_or("Unknown").to_string())
                .or_default() += 1;
            if x["fix_version"].as_str().is_some_and(|f| !f.is_empty()) {
                fixable += 1;
            }
        }
        v["scan_overview"] = json!({ mime: {
            "report_id": format!("{:08x}-0000-4000-8000-{:012x}", i + 1, i + 1),
            "scan_status": "Success",
            "severity": r["severity"],
            "duration": 12,
            "summary": {"total": vulns.len(), "fixable": fixable, "summary": counts},
            "start_time": "2026-11-30T09:58:00.000Z",
            "end_time": "2026-11-30T09:58:12.000Z",
            "complete_percent": 100,
            "scanner": r["scanner"],
        }});
    }
    v
}

/// One page of `items`, with Harbor's paging headers.
fn paged(path: &str, query: &BTreeMap<String, String>, items: Vec<Value>) -> Response {
    let page: usize = query
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let size: usize = query
        .get("page_size")
        .and_then(|p| p.parse().ok())
        .unwrap_or(10);
    if size == 0 || size > 100 {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "UNPROCESSABLE_ENTITY",
            "page_size in query should be less than or equal to 100",
        );
    }
    let total = items.len();
    let start = (page - 1).saturating_mul(size).min(total);
    let end = (start + size).min(total);
    let page_items: Vec<Value> = items[start..end].to_vec();
    let link = |p: usize, rel: &str| {
        let mut q: Vec<String> = query
            .iter()
            .filter(|(k, _)| *k != "page" && *k != "page_size")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        q.push(format!("page={p}"));
        q.push(format!("page_size={size}"));
        format!("<{path}?{}>; rel=\"{rel}\"", q.join("&"))
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(link(page - 1, "prev"));
    }
    if end < total {
        links.push(link(page + 1, "next"));
    }
    let mut headers = vec![("X-Total-Count".to_string(), total.to_string())];
    if !links.is_empty() {
        headers.push(("Link".to_string(), links.join(" , ")));
    }
    json_response(StatusCode::OK, &Value::Array(page_items), &headers)
}
