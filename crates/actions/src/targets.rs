//! Where triggers go: a Jenkins job, a signed webhook, or a local command.
//! Each target turns one event payload into one call and says whether the
//! receiver acknowledged it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::header::CONTENT_TYPE;
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;
use tokio::io::AsyncWriteExt;

use crate::template;

/// A configured trigger: exactly one target kind.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum TriggerSpec {
    /// Start a Jenkins job through its remote access API.
    Jenkins(JenkinsSpec),
    /// POST the event as JSON, signed with HMAC-SHA256.
    Webhook(WebhookSpec),
    /// Run a program with the event on stdin and in `FRESHEN_*` variables.
    Command(CommandSpec),
}

impl std::fmt::Debug for TriggerSpec {
    // Specs hold tokens and secrets: show only where they point.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TriggerSpec::Jenkins(j) => write!(f, "Jenkins({}, job {})", redact_url(&j.url), j.job),
            TriggerSpec::Webhook(w) => write!(f, "Webhook({})", redact_url(&w.url)),
            TriggerSpec::Command(c) => write!(f, "Command({:?})", c.argv().first()),
        }
    }
}

/// A Jenkins job to start.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JenkinsSpec {
    /// Jenkins' root URL, e.g. `http://jenkins:8080` (or with a context path).
    pub url: String,
    /// The job's full name with folders: `images/rebuild-app`.
    pub job: String,
    /// The user whose API token is used.
    #[serde(default)]
    pub user: Option<String>,
    /// The user's API token (from `${ENV}`, never written in the file).
    #[serde(default)]
    pub token: Option<String>,
    /// Build parameters, as templates; none means a plain `/build`.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// Ask the crumb issuer for a CSRF crumb first (skipped when Jenkins has none).
    #[serde(default = "yes")]
    pub crumb: bool,
    /// Per-request timeout.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

impl JenkinsSpec {
    /// The Jenkins this trigger starts jobs on; `crumb` only for writes.
    pub(crate) fn endpoint(&self, crumb: bool) -> freshen_jenkins::Endpoint<'_> {
        freshen_jenkins::Endpoint {
            url: &self.url,
            user: self.user.as_deref(),
            token: self.token.as_deref(),
            crumb,
            timeout: self.timeout.unwrap_or(DEFAULT_TIMEOUT),
        }
    }
}

/// A webhook to call.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    pub url: String,
    /// Key for `X-Freshen-Signature: sha256=<hex HMAC-SHA256 of the body>`.
    #[serde(default)]
    pub secret: Option<String>,
    /// Extra headers, as templates.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `json` (the event as the body) or `cloudevents` (binary content mode).
    #[serde(default)]
    pub format: WebhookFormat,
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

/// Body format of a webhook.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    #[default]
    Json,
    Cloudevents,
}

/// A program to run: `["./rebuild.sh", "{{ref}}"]`, or with options.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum CommandSpec {
    /// Program and arguments (templates).
    Argv(Vec<String>),
    /// Program and arguments with a timeout.
    Full {
        argv: Vec<String>,
        #[serde(default, with = "humantime_serde")]
        timeout: Option<Duration>,
    },
}

impl CommandSpec {
    /// Program and arguments.
    pub fn argv(&self) -> &[String] {
        match self {
            CommandSpec::Argv(a) | CommandSpec::Full { argv: a, .. } => a,
        }
    }
    fn timeout(&self) -> Option<Duration> {
        match self {
            CommandSpec::Argv(_) => None,
            CommandSpec::Full { timeout, .. } => *timeout,
        }
    }
}

fn yes() -> bool {
    true
}

impl TriggerSpec {
    /// Checks what can be checked before anything is sent; the message says what to fix.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            TriggerSpec::Jenkins(j) => {
                check_url(&j.url)?;
                if j.job.trim_matches('/').is_empty() {
                    return Err("jenkins.job is empty".into());
                }
                if j.user.is_some() != j.token.is_some() {
                    return Err("jenkins.user and jenkins.token go together".into());
                }
                for (k, v) in &j.parameters {
                    template::validate(v).map_err(|e| format!("jenkins.parameters.{k}: {e}"))?;
                }
                Ok(())
            }
            TriggerSpec::Webhook(w) => {
                check_url(&w.url)?;
                for (k, v) in &w.headers {
                    template::validate(v).map_err(|e| format!("webhook.headers.{k}: {e}"))?;
                }
                Ok(())
            }
            TriggerSpec::Command(c) => {
                if c.argv().is_empty() || c.argv()[0].is_empty() {
                    return Err("command needs at least a program".into());
                }
                for a in c.argv() {
                    template::validate(a).map_err(|e| format!("command: {e}"))?;
                }
                Ok(())
            }
        }
    }
}

fn check_url(u: &str) -> Result<(), String> {
    let parsed = url::Url::parse(u).map_err(|e| format!("url {:?}: {e}", redact_url(u)))?;
    if parsed.scheme() != "http" && parsed.scheme() != "https" {
        return Err(format!("url {:?}: only http and https", redact_url(u)));
    }
    Ok(())
}

/// A URL safe to print: scheme, host and port only (paths and queries of
/// webhook URLs often carry tokens).
pub fn redact_url(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(p) => {
            let host = p.host_str().unwrap_or("");
            match p.port() {
                Some(port) => format!("{}://{host}:{port}/…", p.scheme()),
                None => format!("{}://{host}/…", p.scheme()),
            }
        }
        Err(_) => "<invalid url>".into(),
    }
}

/// Why a delivery did not go through.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
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
    fn parses_every_kind_from_yaml_shapes() {
        let j: TriggerSpec = serde_json::from_value(serde_json::json!({
            "jenkins": {"url": "http://j:8080", "job": "images/app", "user": "ci", "token": "t0ken",
                        "parameters": {"BASE": "{{ref}}"}}
        }))
        .unwrap();
        j.validate().unwrap();
        assert!(!format!("{j:?}").contains("t0ken"));
        let c: TriggerSpec =
            serde_json::from_value(serde_json::json!({"command": ["./x.sh", "{{ref}}"]})).unwrap();
        assert_eq!(
            c,
            TriggerSpec::Command(CommandSpec::Argv(vec!["./x.sh".into(), "{{ref}}".into()]))
        );
        let c: TriggerSpec = serde_json::from_value(
            serde_json::json!({"command": {"argv": ["x"], "timeout": "5s"}}),
        )
        .unwrap();
        c.validate().unwrap();
        let w: TriggerSpec =
            serde_json::from_value(serde_json::json!({"webhook": {"url": "ftp://x"}})).unwrap();
        assert!(w.validate().unwrap_err().contains("only http"));
    }

    #[test]
    fn signature_is_github_style_hmac() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), a published test vector.
        assert_eq!(
            signature("key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(redact_url("http://u:p@h:81/x?token=1"), "http://h:81/…");
    }
}
