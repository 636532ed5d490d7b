//! Where triggers go: a Jenkins job, a signed webhook, or a local command.
//! Each target turns one event payload into one call and says whether the
//! receiver acknowledged it.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;
use sha2::Sha256;
use tokio::io::AsyncWriteExt;

use crate::template;

/// Defined with the other settings types (`freshen-settings`), so the
/// config layer can read them without this crate's runtime.
pub use freshen_settings::{
    CommandSpec, DiscordSpec, EmailSpec, EmailTls, JenkinsSpec, MattermostSpec, SlackSpec,
    TeamsFormat, TeamsSpec, TriggerSpec, WebhookFormat, WebhookSpec, redact_url,
};

/// The Jenkins a trigger starts jobs on (a method in spirit; here because
/// the spec type is defined in `freshen-settings`, without the client).
pub(crate) trait JenkinsEndpoint {
    /// The Jenkins this trigger starts jobs on; `crumb` only for writes.
    fn endpoint(&self, crumb: bool) -> freshen_jenkins::Endpoint<'_>;
}

impl JenkinsEndpoint for JenkinsSpec {
    fn endpoint(&self, crumb: bool) -> freshen_jenkins::Endpoint<'_> {
        freshen_jenkins::Endpoint {
            url: &self.url,
            user: self.user.as_deref(),
            token: self.token.as_deref(),
            crumb,
            timeout: self.timeout.unwrap_or(DEFAULT_TIMEOUT),
        }
    }
}

/// Why a delivery did not go through.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    /// One line: what was called and how it failed.
    pub message: String,
    /// False when retrying cannot help (the trigger is gone from the config).
    pub retryable: bool,
}

impl DeliveryError {
    fn retry(message: impl Into<String>) -> Self {
        DeliveryError {
            message: message.into(),
            retryable: true,
        }
    }
}

/// What the receiver said when it acknowledged (a Jenkins queue item URL, say).
pub type Ack = Option<String>;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The webhooks' client (Jenkins has its own session, in `freshen-jenkins`).
pub(crate) fn http_client(timeout: Option<Duration>) -> Result<reqwest::Client, DeliveryError> {
    // rustls needs one process-wide crypto provider; ring is the only one built.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("freshen/", env!("CARGO_PKG_VERSION")))
        .timeout(timeout.unwrap_or(DEFAULT_TIMEOUT))
        .connect_timeout(Duration::from_secs(10))
        // A webhook that redirects is misconfigured: say so, don't follow it.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| DeliveryError::retry(format!("HTTP client: {e}")))
}

/// `<what>: timed out`, `could not connect` or `request failed`, for a
/// request that got no answer (webhooks; Jenkins' are in `freshen-jenkins`). The
/// reqwest error itself is left out: it can hold a URL with credentials.
pub(crate) fn send_failure(what: &str, e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    format!("{what}: {kind}")
}

/// Starts a Jenkins build: crumb (with its session cookie) when CSRF
/// protection is on, then `buildWithParameters` (or `build`), expecting
/// `201 Created` with the queue item in `Location`.
pub async fn deliver_jenkins(spec: &JenkinsSpec, payload: &Value) -> Result<Ack, DeliveryError> {
    // A session per delivery: the crumb is bound to this session's cookie.
    let session = freshen_jenkins::Session::open(spec.endpoint(spec.crumb))
        .await
        .map_err(|e| DeliveryError::retry(e.to_string()))?;
    let vars = template::variables(payload);
    let form: Vec<(String, String)> = spec
        .parameters
        .iter()
        .map(|(k, v)| (k.clone(), template::render(v, &vars)))
        .collect();
    session
        .start(&spec.job, &form)
        .await
        .map_err(|e| DeliveryError::retry(e.to_string()))
}

/// The signature header's value: `sha256=<hex HMAC-SHA256(secret, body)>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// POSTs the event; any 2xx acknowledges it.
pub async fn deliver_webhook(spec: &WebhookSpec, payload: &Value) -> Result<Ack, DeliveryError> {
    let client = http_client(spec.timeout)?;
    let shown = redact_url(&spec.url);
    let body = serde_json::to_vec(payload).expect("JSON values serialise");
    let event_id = payload
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut req = client
        .post(&spec.url)
        .header(CONTENT_TYPE, "application/json")
        .header("X-Freshen-Event-Id", event_id);
    if spec.format == WebhookFormat::Cloudevents {
        req = req
            .header("ce-specversion", "1.0")
            .header("ce-id", event_id)
            .header("ce-source", "freshen")
            .header("ce-type", "dev.freshen.image.changed")
            .header(
                "ce-subject",
                payload
                    .get("reference")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            )
            .header(
                "ce-time",
                payload
                    .get("observed_at")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            );
    }
    if let Some(secret) = &spec.secret {
        req = req.header("X-Freshen-Signature", signature(secret, &body));
    }
    let vars = template::variables(payload);
    for (k, v) in &spec.headers {
        req = req.header(k.as_str(), template::render(v, &vars));
    }
    let resp = req
        .body(body)
        .send()
        .await
        .map_err(|e| DeliveryError::retry(send_failure(&format!("webhook {shown}"), &e)))?;
    if resp.status().is_success() {
        Ok(None)
    } else {
        Err(DeliveryError::retry(format!(
            "webhook {shown}: HTTP {}",
            resp.status().as_u16()
        )))
    }
}

/// Runs the program in `dir` with the event as JSON on stdin and as
/// `FRESHEN_*` variables; exit status 0 acknowledges.
pub async fn deliver_command(
    spec: &CommandSpec,
    payload: &Value,
    dir: &Path,
) -> Result<Ack, DeliveryError> {
    let vars = template::variables(payload);
    let argv: Vec<String> = spec
        .argv()
        .iter()
        .map(|a| template::render(a, &vars))
        .collect();
    let program = &argv[0];
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(&argv[1..])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in &vars {
        cmd.env(format!("FRESHEN_{}", k.to_ascii_uppercase()), v);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| DeliveryError::retry(format!("command {program}: cannot start: {e}")))?;
    let body = serde_json::to_vec(payload).expect("JSON values serialise");
    if let Some(mut stdin) = child.stdin.take() {
        // A program that ignores stdin closes the pipe early: that is fine.
        let _ = stdin.write_all(&body).await;
    }
    let timeout = spec.timeout().unwrap_or(Duration::from_secs(600));
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(r) => r.map_err(|e| DeliveryError::retry(format!("command {program}: {e}")))?,
        Err(_) => {
            return Err(DeliveryError::retry(format!(
                "command {program}: still running after {timeout:?}; killed"
            )));
        }
    };
    if out.status.success() {
        return Ok(None);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: String = stderr
        .trim()
        .chars()
        .rev()
        .take(300)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    Err(DeliveryError::retry(format!(
        "command {program}: {}{}",
        out.status,
        if tail.is_empty() {
            String::new()
        } else {
            format!(": {tail}")
        }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_github_style_hmac() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), a published test vector.
        assert_eq!(
            signature("key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }
}
