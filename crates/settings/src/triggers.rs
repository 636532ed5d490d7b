//! `triggers:`: where a change goes (a Jenkins job, a signed webhook, a
//! local command), the trigger names freshen reserves, and what can be
//! checked of a trigger before anything is sent.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::template;

/// The reserved trigger name of a rebuild cascade (`on_change: [cascade]`):
/// its deliveries are carried out in-process by the watcher's cascade
/// runner, not sent anywhere. No trigger under `triggers:` may take it.
pub const CASCADE: &str = "cascade";

/// The reserved trigger of Docker Hub callbacks: a push's callback is
/// stored as a delivery under this name, so it survives restarts. No
/// trigger under `triggers:` may take it.
pub const HUB_CALLBACK: &str = "dockerhub-callback";

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

/// A webhook to call.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    /// Where the event is POSTed.
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
    /// Per-request timeout.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

/// Body format of a webhook.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The event as the JSON body.
    #[default]
    Json,
    /// CloudEvents binary content mode: the event as the body, its
    /// attributes in `ce-*` headers.
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
        /// Program and arguments (templates).
        argv: Vec<String>,
        /// How long it may run before it is killed; default 10 minutes.
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
    /// How long it may run, when set.
    pub fn timeout(&self) -> Option<Duration> {
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
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(redact_url("http://u:p@h:81/x?token=1"), "http://h:81/…");
        assert_eq!(
            redact_url("https://jenkins.example/ci"),
            "https://jenkins.example/…"
        );
        assert_eq!(redact_url("not a url"), "<invalid url>");
    }
}
