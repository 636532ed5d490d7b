//! A small client of Harbor's v2.0 API, as much as freshen needs to read
//! the scans Harbor made of a project's images (the Harbor recipe: list the
//! images, take each one's scan overview, act on the counts):
//!
//! - `GET /api/v2.0/projects/{project}/repositories` (paged: `page`,
//!   `page_size`, `X-Total-Count` and `Link: <…>; rel="next"`);
//! - `GET /api/v2.0/projects/{project}/repositories/{repository}/artifacts`
//!   with `with_scan_overview=true` and the `X-Accept-Vulnerabilities`
//!   header (paged the same way);
//! - `GET …/artifacts/{digest}/additions/vulnerabilities`: the full report.
//!
//! Repository names with slashes are double-URL-encoded in paths
//! (`team/app` → `team%252Fapp`), as Harbor requires. Basic auth with a
//! robot account; the password is never logged, printed or put in errors.

use std::collections::BTreeMap;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use url::Url;

/// The `X-Accept-Vulnerabilities` value: the report types freshen reads,
/// the current one first.
pub const ACCEPT_VULNERABILITIES: &str = "application/vnd.security.vulnerability.report; version=1.1, application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0";

/// Harbor's largest page size.
pub const MAX_PAGE_SIZE: u32 = 100;

/// The largest answer read (a report of a big image is tens of MiB).
pub const MAX_BODY_BYTES: usize = 128 << 20;

/// A robot account (or user) and its secret. `Debug` hides the secret.
#[derive(Clone)]
pub struct Credentials {
    /// `robot$freshen` (Harbor 2 robot accounts), or a user name.
    pub username: String,
    /// The robot's secret (or the user's password).
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// What went wrong talking to Harbor. URLs in messages carry no credentials.
#[derive(Debug, thiserror::Error)]
pub enum HarborError {
    /// The base URL is not an http(s) URL.
    #[error("Harbor URL {url:?}: {detail}")]
    Url {
        /// What was given.
        url: String,
        /// Why it is refused.
        detail: String,
    },
    /// 401/403: no or wrong credentials, or too few rights.
    #[error("Harbor refused {url} ({status}): {hint}")]
    Unauthorized {
        /// The request.
        url: String,
        /// 401 or 403.
        status: u16,
        /// What to do about it.
        hint: String,
    },
    /// Another error status.
    #[error("Harbor answered {status} to {url}: {message}")]
    Status {
        /// The request.
        url: String,
        /// The status code.
        status: u16,
        /// Harbor's `errors[].message`, or the body's start.
        message: String,
    },
    /// The request could not be made (connection refused, timeout, …).
    #[error("cannot reach Harbor at {url}: {detail}")]
    Transport {
        /// The request.
        url: String,
        /// What failed.
        detail: String,
    },
    /// The answer is not what Harbor documents.
    #[error("unexpected answer from Harbor to {url}: {detail}")]
    Decode {
        /// The request.
        url: String,
        /// What is wrong.
        detail: String,
    },
}

/// A repository of a project (`GET /projects/{p}/repositories`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Repository {
    /// The full name, project included: `library/nginx`, `golden/team/app`.
    pub name: String,
    /// How many artifacts it holds.
    #[serde(default)]
    pub artifact_count: Option<u64>,
}

/// A tag of an artifact.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Tag {
    /// The tag's name.
    pub name: String,
}

/// An artifact of a repository, with its scan overview.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Artifact {
    /// The manifest (or index) digest.
    pub digest: String,
    /// `IMAGE`, `CHART`, …
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Its tags (with `with_tag=true`).
    #[serde(default, deserialize_with = "nullable")]
    pub tags: Vec<Tag>,
    /// Per report mime type, the overview of its latest scan.
    #[serde(default, deserialize_with = "nullable")]
    pub scan_overview: BTreeMap<String, ScanOverview>,
    /// For an index: its per-platform children, which Harbor scans (and
    /// reports on) one by one.
    #[serde(default, deserialize_with = "nullable")]
    pub references: Vec<ArtifactReference>,
}

/// A child of an index artifact.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ArtifactReference {
    /// The child's manifest digest.
    pub child_digest: String,
    /// Its platform.
    #[serde(default)]
    pub platform: Option<ArtifactPlatform>,
}

/// The platform of an index's child.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ArtifactPlatform {
    /// `amd64`.
    #[serde(default)]
    pub architecture: String,
    /// `linux`.
    #[serde(default)]
    pub os: String,
    /// `v8`, if any.
    #[serde(default)]
    pub variant: Option<String>,
}

/// The overview of one scan (`scan_overview[<mime type>]`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ScanOverview {
    /// The report's id.
    #[serde(default)]
    pub report_id: Option<String>,
    /// `Success`, `Running`, `Pending`, `Error`, `Stopped`, `Not Scanned`.
    #[serde(default)]
    pub scan_status: Option<String>,
    /// The highest severity found.
    #[serde(default)]
    pub severity: Option<String>,
    /// Counts.
    #[serde(default)]
    pub summary: Option<Summary>,
    /// When the scan ended.
    #[serde(default)]
    pub end_time: Option<String>,
    /// Which scanner.
    #[serde(default)]
    pub scanner: Option<Scanner>,
}

/// `summary` of a scan overview.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Summary {
    /// Vulnerabilities found.
    #[serde(default)]
    pub total: u64,
    /// Of which a fix is known for.
    #[serde(default)]
    pub fixable: u64,
    /// Per severity (`Critical`, `High`, `Medium`, `Low`, `None`, `Unknown`).
    #[serde(default, deserialize_with = "nullable")]
    pub summary: BTreeMap<String, u64>,
}

/// The scanner of a scan.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Scanner {
    /// `Trivy`.
    #[serde(default)]
    pub name: Option<String>,
    /// `Aqua Security`.
    #[serde(default)]
    pub vendor: Option<String>,
    /// `v0.58.1`.
    #[serde(default)]
    pub version: Option<String>,
}

impl Artifact {
    /// The overview of a successful scan, in the report type freshen
    /// prefers, if there is one.
    pub fn scanned(&self) -> Option<(&str, &ScanOverview)> {
        let ok = |o: &&ScanOverview| o.scan_status.as_deref() == Some("Success");
        ACCEPT_VULNERABILITIES
            .split(", ")
            .find_map(|m| self.scan_overview.get_key_value(m).filter(|(_, o)| ok(o)))
            .or_else(|| self.scan_overview.iter().find(|(_, o)| ok(o)))
            .map(|(m, o)| (m.as_str(), o))
    }
}

fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Characters escaped in a path segment (everything but unreserved ones).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A Harbor API client for one Harbor.
#[derive(Clone, Debug)]
pub struct Client {
    base: Url,
    credentials: Option<Credentials>,
    http: reqwest::Client,
    page_size: u32,
}

impl Client {
    /// A client of the Harbor at `base` (`https://harbor.example.com`).
    pub fn new(base: &str, credentials: Option<Credentials>) -> Result<Client, HarborError> {
        let bad = |detail: &str| HarborError::Url {
            url: redact(base),
            detail: detail.to_string(),
        };
        let mut url = Url::parse(base).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("not an http(s) URL"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "credentials don't go in the URL: set FRESHEN_HARBOR_USER and FRESHEN_HARBOR_PASSWORD",
            ));
        }
        if !url.path().ends_with('/') {
            let p = format!("{}/", url.path());
            url.set_path(&p);
        }
        // rustls needs one process-wide crypto provider; ring is the one built.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("freshen/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| bad(&format!("HTTP client: {e}")))?;
        Ok(Client {
            base: url,
            credentials,
            http,
            page_size: MAX_PAGE_SIZE,
        })
    }

    /// Asks for pages of `n` items (1 to 100; Harbor's default is 10).
    pub fn with_page_size(mut self, n: u32) -> Client {
        self.page_size = n.clamp(1, MAX_PAGE_SIZE);
        self
    }

    /// The base URL (no credentials).
    pub fn base(&self) -> &str {
        self.base.as_str()
    }

    /// Every repository of a project.
    pub async fn repositories(&self, project: &str) -> Result<Vec<Repository>, HarborError> {
        let path = format!("api/v2.0/projects/{}/repositories", segment(project));
        self.paged(&path, &[]).await
    }

    /// Every artifact of a repository (its full name, `project/repo`, or
    /// the name within the project), with tags and scan overviews.
    pub async fn artifacts(
        &self,
        project: &str,
        repository: &str,
    ) -> Result<Vec<Artifact>, HarborError> {
        let path = format!(
            "api/v2.0/projects/{}/repositories/{}/artifacts",
            segment(project),
            repository_segment(project, repository)
        );
        self.paged(
            &path,
            &[("with_tag", "true"), ("with_scan_overview", "true")],
        )
        .await
    }

    /// One artifact (by digest or tag), with tags and scan overview: how an
    /// index's children are read.
    pub async fn artifact(
        &self,
        project: &str,
        repository: &str,
        reference: &str,
    ) -> Result<Artifact, HarborError> {
        let path = format!(
            "api/v2.0/projects/{}/repositories/{}/artifacts/{}",
            segment(project),
            repository_segment(project, repository),
            segment(reference)
        );
        let url = self.url(
            &path,
            &[("with_tag", "true"), ("with_scan_overview", "true")],
        )?;
        let resp = self.get(&url).await?;
        let bytes = body(resp, &url).await?;
        serde_json::from_slice(&bytes).map_err(|e| HarborError::Decode {
            url: url.to_string(),
            detail: e.to_string(),
        })
    }

    /// The full vulnerability report of an artifact: Harbor's JSON, keyed
    /// by report mime type, as it sent it.
    pub async fn vulnerabilities(
        &self,
        project: &str,
        repository: &str,
        digest: &str,
    ) -> Result<Vec<u8>, HarborError> {
        let path = format!(
            "api/v2.0/projects/{}/repositories/{}/artifacts/{}/additions/vulnerabilities",
            segment(project),
            repository_segment(project, repository),
            segment(digest)
        );
        let url = self.url(&path, &[])?;
        let resp = self.get(&url).await?;
        body(resp, &url).await
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<Url, HarborError> {
        let mut url = self.base.join(path).map_err(|e| HarborError::Url {
            url: self.base.to_string(),
            detail: e.to_string(),
        })?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    async fn get(&self, url: &Url) -> Result<reqwest::Response, HarborError> {
        let mut req = self
            .http
            .get(url.clone())
            .header("Accept", "application/json")
            .header("X-Accept-Vulnerabilities", ACCEPT_VULNERABILITIES);
        if let Some(c) = &self.credentials {
            req = req.basic_auth(&c.username, Some(&c.password));
        }
        tracing::debug!(url = %url, "harbor GET");
        let resp = req.send().await.map_err(|e| transport(url, e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.text().await.unwrap_or_default();
        let message = harbor_message(&body);
        if status.as_u16() == 401 || status.as_u16() == 403 {
            let hint = match (&self.credentials, status.as_u16()) {
                (None, _) => "no credentials: set FRESHEN_HARBOR_USER (a robot account, e.g. robot$freshen) and FRESHEN_HARBOR_PASSWORD".to_string(),
                (Some(c), 401) => format!("the credentials of {} were refused ({message}): check FRESHEN_HARBOR_USER and FRESHEN_HARBOR_PASSWORD", c.username),
                (Some(c), _) => format!("{} may not read this ({message}): give the robot account pull and read-scan rights on the project", c.username),
            };
            return Err(HarborError::Unauthorized {
                url: url.to_string(),
                status: status.as_u16(),
                hint,
            });
        }
        Err(HarborError::Status {
            url: url.to_string(),
            status: status.as_u16(),
            message,
        })
    }

    /// Every item of a paged list: follows `Link: <…>; rel="next"`, else
    /// asks for the next page until `X-Total-Count` items (or a short page)
    /// came.
    async fn paged<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, HarborError> {
        let size = self.page_size.to_string();
        let mut out: Vec<T> = Vec::new();
        let mut page: u32 = 1;
        loop {
            let n = page.to_string();
            let mut q = query.to_vec();
            q.extend([("page", n.as_str()), ("page_size", size.as_str())]);
            let url = self.url(path, &q)?;
            let resp = self.get(&url).await?;
            let total: Option<usize> = resp
                .headers()
                .get("X-Total-Count")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok());
            let next = resp
                .headers()
                .get_all("Link")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| v.split(',').any(|l| l.contains("rel=\"next\"")));
            let bytes = body(resp, &url).await?;
            let items: Vec<T> =
                serde_json::from_slice(&bytes).map_err(|e| HarborError::Decode {
                    url: url.to_string(),
                    detail: e.to_string(),
                })?;
            let got = items.len();
            out.extend(items);
            let more = match total {
                _ if got == 0 => false,
                Some(t) => out.len() < t,
                None => next || got >= self.page_size as usize,
            };
            if !more {
                return Ok(out);
            }
            page += 1;
            if page > 100_000 {
                return Err(HarborError::Decode {
                    url: url.to_string(),
                    detail: "more than 100000 pages".into(),
                });
            }
        }
    }
}

/// The body, at most [`MAX_BODY_BYTES`] of it (a longer one is an error).
async fn body(mut resp: reqwest::Response, url: &Url) -> Result<Vec<u8>, HarborError> {
    let too_big = || HarborError::Decode {
        url: url.to_string(),
        detail: format!("an answer larger than {MAX_BODY_BYTES} bytes"),
    };
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(too_big());
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| transport(url, e))? {
        if out.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_big());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// One path segment, percent-encoded.
fn segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// A repository name as Harbor wants it in a path: without the project
/// prefix, and URL-encoded twice (`team/app` → `team%252Fapp`).
pub fn repository_segment(project: &str, repository: &str) -> String {
    let name = repository
        .strip_prefix(project)
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or(repository);
    segment(&segment(name))
}

fn transport(url: &Url, e: reqwest::Error) -> HarborError {
    let detail = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else {
        // Without the URL (it is in the message already).
        e.without_url().to_string()
    };
    HarborError::Transport {
        url: url.to_string(),
        detail,
    }
}

/// Harbor's `{"errors": [{"code", "message"}]}`, else the body's start.
fn harbor_message(body: &str) -> String {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(Deserialize)]
    struct ErrorItem {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_str::<Errors>(body) {
        return e
            .errors
            .iter()
            .map(|i| format!("{}: {}", i.code, i.message))
            .collect::<Vec<_>>()
            .join("; ");
    }
    body.chars().take(200).collect()
}

fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => url.chars().take(100).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_are_encoded_twice() {
        assert_eq!(repository_segment("golden", "golden/base"), "base");
        assert_eq!(
            repository_segment("golden", "golden/team/app"),
            "team%252Fapp"
        );
        assert_eq!(repository_segment("golden", "team/app"), "team%252Fapp");
    }

    #[test]
    fn secrets_stay_out() {
        let c = Credentials {
            username: "robot$freshen".into(),
            password: "s3cret".into(),
        };
        assert!(!format!("{c:?}").contains("s3cret"));
        let e = Client::new("https://u:s3cret@harbor.example.com", None).unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }

    #[test]
    fn harbor_errors_read() {
        assert_eq!(
            harbor_message(r#"{"errors":[{"code":"UNAUTHORIZED","message":"unauthorized"}]}"#),
            "UNAUTHORIZED: unauthorized"
        );
    }
}
