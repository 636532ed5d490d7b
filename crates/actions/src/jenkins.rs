//! A session with Jenkins' remote access API, shared by the Jenkins trigger
//! (start a job, don't wait) and the Jenkins build executor (start a job
//! and follow it to its result): basic auth with an API token, a CSRF
//! crumb bound to the session cookie, redirects treated as failures.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde::Deserialize;
use serde_json::Value;

use crate::targets::{redact_url, send_failure};

/// Why a call to Jenkins failed; the message names Jenkins (its URL
/// redacted), the call and what to check. It never holds the token.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct JenkinsError {
    /// What went wrong.
    pub message: String,
    /// The HTTP status Jenkins answered, if it answered.
    pub status: Option<u16>,
}

impl JenkinsError {
    fn new(message: String) -> Self {
        JenkinsError {
            message,
            status: None,
        }
    }
}

/// How to reach a Jenkins.
#[derive(Clone, Copy)]
pub struct Endpoint<'a> {
    /// Jenkins' root URL (with its context path, if any).
    pub url: &'a str,
    /// The API user, with `token`.
    pub user: Option<&'a str>,
    /// The user's API token (a secret: sent, never shown).
    pub token: Option<&'a str>,
    /// Ask the crumb issuer for a CSRF crumb first.
    pub crumb: bool,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// One session: the crumb is bound to this session's cookie, so every
/// call of a delivery or a build goes through the same session.
pub struct Session {
    client: reqwest::Client,
    root: String,
    shown: String,
    user: Option<String>,
    token: Option<String>,
    crumb: Option<(String, String)>,
}

impl std::fmt::Debug for Session {
    // The token stays out of Debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("url", &self.shown).finish()
    }
}

/// A started build's place in the queue: `<root>/queue/item/<id>/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueItem {
    /// The queue item id.
    pub id: u64,
}

/// Where a queue item is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueState {
    /// Still waiting (quiet period, blocked, no executor); Jenkins' reason.
    Waiting(Option<String>),
    /// Cancelled before it started.
    Cancelled,
    /// Became build `number`, at `url`.
    Started {
        /// The build number.
        number: u64,
        /// The build's page, as Jenkins names it.
        url: String,
    },
}

/// A build's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildState {
    /// Still running.
    pub building: bool,
    /// `SUCCESS`, `UNSTABLE`, `FAILURE`, `ABORTED`, ... once finished.
    pub result: Option<String>,
}

/// `/job/a/job/b` for the job `a/b` (folders), each name percent-encoded.
pub fn job_path(job: &str) -> String {
    job.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| format!("/job/{}", urlencode(s)))
        .collect()
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// What to check, for a status Jenkins answered.
pub fn auth_hint(s: StatusCode) -> &'static str {
    match s.as_u16() {
        401 => " (check jenkins.user and jenkins.token)",
        403 => " (the user lacks Job/Build permission, or the crumb was refused)",
        404 => " (no such job)",
        302 | 303 => " (redirected: Jenkins wants a login; set jenkins.user and jenkins.token)",
        _ => "",
    }
}

/// A request Jenkins never answered: timed out, no connection, or other.
fn send_error(what: &str, e: &reqwest::Error) -> JenkinsError {
    JenkinsError::new(send_failure(what, e))
}

impl Session {
    /// Opens a session: an HTTP client with a cookie store, and the crumb
    /// when asked for (none when Jenkins has no crumb issuer).
    pub async fn open(ep: Endpoint<'_>) -> Result<Session, JenkinsError> {
        // rustls needs one process-wide crypto provider; ring is the only one built.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .user_agent(concat!("freshen/", env!("CARGO_PKG_VERSION")))
            .timeout(ep.timeout)
            .connect_timeout(Duration::from_secs(10))
            // A redirect from Jenkins means a login page: it must fail, not be followed.
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .build()
            .map_err(|e| JenkinsError::new(format!("HTTP client: {e}")))?;
        let mut s = Session {
            client,
            root: ep.url.trim_end_matches('/').to_string(),
            shown: redact_url(ep.url),
            user: ep.user.map(str::to_string),
            token: ep.token.map(str::to_string),
            crumb: None,
        };
        if ep.crumb {
            let resp = s
                .auth(s.client.get(format!("{}/crumbIssuer/api/json", s.root)))
                .send()
                .await
                .map_err(|e| send_error(&format!("Jenkins {} crumb issuer", s.shown), &e))?;
            match resp.status() {
                st if st.is_success() => {
                    #[derive(Deserialize)]
                    #[serde(rename_all = "camelCase")]
                    struct Crumb {
                        crumb: String,
                        crumb_request_field: String,
                    }
                    let c: Crumb = resp.json().await.map_err(|_| {
                        JenkinsError::new(format!(
                            "Jenkins {}: the crumb issuer's answer is not a crumb",
                            s.shown
                        ))
                    })?;
                    s.crumb = Some((c.crumb_request_field, c.crumb));
                }
                // No crumb issuer: CSRF protection is off.
                StatusCode::NOT_FOUND => {}
                st => {
                    return Err(JenkinsError {
                        message: format!(
                            "Jenkins {}: crumb issuer answered HTTP {}{}",
                            s.shown,
                            st.as_u16(),
                            auth_hint(st)
                        ),
                        status: Some(st.as_u16()),
                    });
                }
            }
        }
        Ok(s)
    }

    /// Jenkins' URL, redacted for messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn auth(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match (&self.user, &self.token) {
            (Some(u), Some(t)) => rb.basic_auth(u, Some(t)),
            _ => rb,
        }
    }

    /// Starts `job`: `buildWithParameters` with `parameters` as a form, or
    /// a plain `build` without. Jenkins answers `201 Created` with the
    /// queue item in `Location`, returned as is.
    pub async fn start(
        &self,
        job: &str,
        parameters: &[(String, String)],
    ) -> Result<Option<String>, JenkinsError> {
        let path = job_path(job);
        let mut req = if parameters.is_empty() {
            self.auth(self.client.post(format!("{}{path}/build", self.root)))
        } else {
            self.auth(
                self.client
                    .post(format!("{}{path}/buildWithParameters", self.root)),
            )
            .form(parameters)
        };
        if let Some((field, value)) = &self.crumb {
            req = req.header(field.as_str(), value.as_str());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| send_error(&format!("Jenkins {} job {job}", self.shown), &e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string));
        }
        Err(JenkinsError {
            message: format!(
                "Jenkins {} job {job}: HTTP {}{}",
                self.shown,
                status.as_u16(),
                auth_hint(status)
            ),
            status: Some(status.as_u16()),
        })
    }

    /// GETs `<root><path>/api/json`.
    async fn json(&self, path: &str, what: &str) -> Result<Value, JenkinsError> {
        let resp = self
            .auth(self.client.get(format!("{}{path}/api/json", self.root)))
            .send()
            .await
            .map_err(|e| send_error(&format!("Jenkins {} {what}", self.shown), &e))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(JenkinsError {
                message: format!(
                    "Jenkins {} {what}: HTTP {}{}",
                    self.shown,
                    status.as_u16(),
                    auth_hint(status)
                ),
                status: Some(status.as_u16()),
            });
        }
        resp.json().await.map_err(|_| {
            JenkinsError::new(format!(
                "Jenkins {} {what}: the answer is not JSON",
                self.shown
            ))
        })
    }

    /// Where a queue item is. Asked of the configured root (not the
    /// `Location`'s host, which is Jenkins' own idea of its URL and may not
    /// be reachable from here).
    pub async fn queue_item(&self, item: &QueueItem) -> Result<QueueState, JenkinsError> {
        let v = self
            .json(
                &format!("/queue/item/{}", item.id),
                &format!("queue item {}", item.id),
            )
            .await?;
        if v["cancelled"].as_bool() == Some(true) {
            return Ok(QueueState::Cancelled);
        }
        match (
            v["executable"]["number"].as_u64(),
            v["executable"]["url"].as_str(),
        ) {
            (Some(number), Some(url)) => Ok(QueueState::Started {
                number,
                url: url.to_string(),
            }),
            _ => Ok(QueueState::Waiting(v["why"].as_str().map(str::to_string))),
        }
    }

    /// The state of build `number` of `job`.
    pub async fn build(&self, job: &str, number: u64) -> Result<BuildState, JenkinsError> {
        let v = self
            .json(
                &format!("{}/{number}", job_path(job)),
                &format!("job {job} build #{number}"),
            )
            .await?;
        Ok(BuildState {
            building: v["building"].as_bool().unwrap_or(true),
            result: v["result"].as_str().map(str::to_string),
        })
    }
}

impl QueueItem {
    /// The queue item a `Location` header names: `.../queue/item/<id>/`.
    pub fn from_location(location: &str) -> Option<QueueItem> {
        let mut segs = location.trim_end_matches('/').rsplit('/');
        let id = segs.next()?.parse().ok()?;
        (segs.next()? == "item" && segs.next()? == "queue").then_some(QueueItem { id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_items_from_locations() {
        assert_eq!(
            QueueItem::from_location("http://j:8080/ci/queue/item/39/"),
            Some(QueueItem { id: 39 })
        );
        assert_eq!(
            QueueItem::from_location("http://j/queue/item/7"),
            Some(QueueItem { id: 7 })
        );
        assert_eq!(QueueItem::from_location("http://j/job/x/"), None);
    }

    #[test]
    fn job_paths_cover_folders() {
        assert_eq!(
            job_path("images/rebuild app"),
            "/job/images/job/rebuild%20app"
        );
    }
}
