//! A session with one Jenkins: its HTTP client (cookie store, no
//! redirects), credentials and crumb, and the calls freshen makes.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{JenkinsError, NoAnswer};
use crate::job::job_path;
use crate::queue::{BuildState, QueueItem, QueueState};
use freshen_settings::redact_url;

/// How to reach a Jenkins. `Debug` leaves the token out.
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

impl std::fmt::Debug for Endpoint<'_> {
    // The token stays out of Debug output; the URL is cut to its host.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &redact_url(self.url))
            .field("user", &self.user)
            .field("token", &self.token.map(|_| "<redacted>"))
            .field("crumb", &self.crumb)
            .field("timeout", &self.timeout)
            .finish()
    }
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
            .map_err(JenkinsError::Client)?;
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
                .map_err(|e| s.no_answer("crumb issuer".into(), &e))?;
            match resp.status() {
                st if st.is_success() => {
                    #[derive(Deserialize)]
                    #[serde(rename_all = "camelCase")]
                    struct Crumb {
                        crumb: String,
                        crumb_request_field: String,
                    }
                    let c: Crumb = resp.json().await.map_err(|_| JenkinsError::NotACrumb {
                        jenkins: s.shown.clone(),
                    })?;
                    s.crumb = Some((c.crumb_request_field, c.crumb));
                }
                // No crumb issuer: CSRF protection is off.
                StatusCode::NOT_FOUND => {}
                st => {
                    return Err(JenkinsError::CrumbStatus {
                        jenkins: s.shown.clone(),
                        status: st.as_u16(),
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

    /// A request Jenkins never answered: timed out, no connection, or other.
    fn no_answer(&self, call: String, e: &reqwest::Error) -> JenkinsError {
        JenkinsError::NoAnswer {
            jenkins: self.shown.clone(),
            call,
            failure: NoAnswer::of(e),
        }
    }

    /// Jenkins answered `call` with the error `status`.
    fn refused(&self, call: String, status: StatusCode) -> JenkinsError {
        JenkinsError::Status {
            jenkins: self.shown.clone(),
            call,
            status: status.as_u16(),
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
            .map_err(|e| self.no_answer(format!("job {job}"), &e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string));
        }
        Err(self.refused(format!("job {job}"), status))
    }

    /// GETs `<root><path>/api/json`.
    async fn json(&self, path: &str, call: String) -> Result<Value, JenkinsError> {
        let resp = self
            .auth(self.client.get(format!("{}{path}/api/json", self.root)))
            .send()
            .await
            .map_err(|e| self.no_answer(call.clone(), &e))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(self.refused(call, status));
        }
        resp.json().await.map_err(|_| JenkinsError::NotJson {
            jenkins: self.shown.clone(),
            call,
        })
    }

    /// Where a queue item is. Asked of the configured root (not the
    /// `Location`'s host, which is Jenkins' own idea of its URL and may not
    /// be reachable from here).
    pub async fn queue_item(&self, item: &QueueItem) -> Result<QueueState, JenkinsError> {
        let v = self
            .json(
                &format!("/queue/item/{}", item.id),
                format!("queue item {}", item.id),
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
                format!("job {job} build #{number}"),
            )
            .await?;
        Ok(BuildState {
            building: v["building"].as_bool().unwrap_or(true),
            result: v["result"].as_str().map(str::to_string),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Endpoint<'static> {
        Endpoint {
            url: "http://ci:pa55word@127.0.0.1:9/ci?token=q",
            user: Some("freshen"),
            token: Some("11abcdef-secret"),
            crumb: false,
            timeout: Duration::from_secs(1),
        }
    }

    #[tokio::test]
    async fn the_token_is_never_shown() {
        let shown = format!("{:?}", endpoint());
        assert!(!shown.contains("11abcdef-secret"), "{shown}");
        assert!(!shown.contains("pa55word"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        let session = Session::open(endpoint()).await.unwrap();
        let shown = format!("{session:?}");
        assert!(!shown.contains("11abcdef-secret"), "{shown}");
        assert!(!shown.contains("pa55word"), "{shown}");
        assert_eq!(session.shown(), "http://127.0.0.1:9/…");
        // Nothing listens on port 9: the error names the call, not the secret.
        let e = session.start("images/app", &[]).await.unwrap_err();
        let said = format!("{e} {e:?}");
        assert!(!said.contains("11abcdef-secret"), "{said}");
        assert!(!said.contains("pa55word"), "{said}");
        assert!(
            said.starts_with("Jenkins http://127.0.0.1:9/… job images/app: "),
            "{said}"
        );
    }
}
