//! `triggers:`: where a change goes (a Jenkins job, a signed webhook, a
//! local command, a chat's incoming webhook, an email), the trigger names
//! freshen reserves, and what can be checked of a trigger before
//! anything is sent.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::message::{self, MessageTemplate};
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
    /// Post a message to a Slack incoming webhook.
    Slack(SlackSpec),
    /// Post a card to a Microsoft Teams webhook (Workflows, or a legacy
    /// connector).
    Teams(TeamsSpec),
    /// Post a message to a Mattermost incoming webhook.
    Mattermost(MattermostSpec),
    /// Post a message to a Discord webhook.
    Discord(DiscordSpec),
    /// Send an email over SMTP (STARTTLS by default).
    Email(EmailSpec),
}

impl std::fmt::Debug for TriggerSpec {
    // Specs hold tokens and secrets: show only where they point.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TriggerSpec::Jenkins(j) => write!(f, "Jenkins({}, job {})", redact_url(&j.url), j.job),
            TriggerSpec::Webhook(w) => write!(f, "Webhook({})", redact_url(&w.url)),
            TriggerSpec::Command(c) => write!(f, "Command({:?})", c.argv().first()),
            TriggerSpec::Slack(c) => write!(f, "Slack({})", redact_url(&c.url)),
            TriggerSpec::Teams(c) => write!(f, "Teams({}, {:?})", redact_url(&c.url), c.format),
            TriggerSpec::Mattermost(c) => write!(f, "Mattermost({})", redact_url(&c.url)),
            TriggerSpec::Discord(c) => write!(f, "Discord({})", redact_url(&c.url)),
            TriggerSpec::Email(e) => write!(
                f,
                "Email({}:{}, {:?}, {} recipient(s))",
                e.host,
                e.port(),
                e.tls,
                e.to.len()
            ),
        }
    }
}

/// A Slack incoming webhook (`https://hooks.slack.com/services/…`: the
/// path is the secret). The body has `text` (the notification's
/// fallback) and Block Kit `blocks`: a header, the message, the facts.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlackSpec {
    /// The webhook URL (from `${ENV}`: it carries the token).
    pub url: String,
    /// The message, in Slack `mrkdwn`; default: the built-in one per kind.
    #[serde(default)]
    pub template: Option<MessageTemplate>,
    /// The header; default: the built-in title per kind.
    #[serde(default)]
    pub title: Option<MessageTemplate>,
    /// Add the payload's key facts as fields.
    #[serde(default = "yes")]
    pub fields: bool,
    /// Who the message appears from (legacy webhooks; a Slack app's
    /// webhook posts as the app).
    #[serde(default)]
    pub username: Option<String>,
    /// The sender's icon (legacy webhooks).
    #[serde(default)]
    pub icon_url: Option<String>,
    /// Per-request timeout.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

/// The body a Teams webhook takes.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TeamsFormat {
    /// An Adaptive Card in a message (`type: message`, `attachments`):
    /// what Workflows ("Post to a channel when a webhook request is
    /// received") webhooks take.
    #[default]
    Workflows,
    /// A legacy `MessageCard`, for an Office 365 connector's incoming
    /// webhook (being retired by Microsoft).
    Messagecard,
}

/// A Microsoft Teams webhook (the URL carries its signature).
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TeamsSpec {
    /// The webhook URL (from `${ENV}`).
    pub url: String,
    /// `workflows` (an Adaptive Card, the default) or `messagecard`.
    #[serde(default)]
    pub format: TeamsFormat,
    /// The message (Markdown); default: the built-in one per kind.
    #[serde(default)]
    pub template: Option<MessageTemplate>,
    /// The card's title; default: the built-in title per kind.
    #[serde(default)]
    pub title: Option<MessageTemplate>,
    /// Add the payload's key facts (a FactSet).
    #[serde(default = "yes")]
    pub fields: bool,
    /// Per-request timeout.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

/// A Mattermost incoming webhook (`https://chat.example/hooks/<key>`).
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MattermostSpec {
    /// The webhook URL (from `${ENV}`: the key is the secret).
    pub url: String,
    /// The message (Markdown); default: the built-in one per kind.
    #[serde(default)]
    pub template: Option<MessageTemplate>,
    /// The attachment's title; default: the built-in title per kind.
    #[serde(default)]
    pub title: Option<MessageTemplate>,
    /// Add the payload's key facts as attachment fields.
    #[serde(default = "yes")]
    pub fields: bool,
    /// Post in this channel instead of the webhook's own (when allowed).
    #[serde(default)]
    pub channel: Option<String>,
    /// Who the message appears from (when the server allows overrides).
    #[serde(default)]
    pub username: Option<String>,
    /// The sender's icon.
    #[serde(default)]
    pub icon_url: Option<String>,
    /// Per-request timeout.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

/// A Discord webhook (`https://discord.com/api/webhooks/<id>/<token>`).
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DiscordSpec {
    /// The webhook URL (from `${ENV}`: it carries the token).
    pub url: String,
    /// The message (Markdown) in an embed; default: the built-in one per kind.
    #[serde(default)]
    pub template: Option<MessageTemplate>,
    /// The embed's title; default: the built-in title per kind.
    #[serde(default)]
    pub title: Option<MessageTemplate>,
    /// Add the payload's key facts as embed fields.
    #[serde(default = "yes")]
    pub fields: bool,
    /// Who to mention, in `content`: `@here`, `@everyone`, `<@user id>`,
    /// `<@&role id>`. Only these ping: values in the message never do.
    #[serde(default)]
    pub mentions: Vec<String>,
    /// Who the message appears from.
    #[serde(default)]
    pub username: Option<String>,
    /// The sender's avatar.
    #[serde(default)]
    pub avatar_url: Option<String>,
    /// Per-request timeout.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

/// How the connection to an SMTP server is protected.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EmailTls {
    /// Plain connection upgraded with STARTTLS, which the server must
    /// offer (port 587 by default).
    #[default]
    Starttls,
    /// TLS from the first byte, "SMTPS" (port 465 by default).
    Tls,
    /// No TLS (port 25 by default): only for a relay on this host or
    /// network, and never with credentials.
    None,
}

/// An email sent over SMTP.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EmailSpec {
    /// The SMTP server's host name (checked against its certificate).
    pub host: String,
    /// Its port; default by `tls`: 587, 465 or 25.
    #[serde(default)]
    pub port: Option<u16>,
    /// `starttls` (default), `tls` or `none`.
    #[serde(default)]
    pub tls: EmailTls,
    /// The SMTP user, when the server asks for one.
    #[serde(default)]
    pub username: Option<String>,
    /// Its password (from `${ENV}`, never written in the file).
    #[serde(default)]
    pub password: Option<String>,
    /// The sender: `freshen@example.com` or `freshen <freshen@example.com>`.
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
    /// The subject; default: `[freshen] ` and the built-in title per kind.
    #[serde(default)]
    pub subject: Option<MessageTemplate>,
    /// The body (plain text); default: the built-in message per kind.
    #[serde(default)]
    pub body: Option<MessageTemplate>,
    /// Extra CA certificates (PEM) to trust besides the system's, relative
    /// to the config file: for a server with a private CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The name freshen gives in `EHLO`; default `localhost`.
    #[serde(default)]
    pub helo_name: Option<String>,
    /// Per-connection and per-command timeout.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

impl EmailSpec {
    /// The port to connect to: the configured one, else `tls`'s usual one.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            EmailTls::Starttls => 587,
            EmailTls::Tls => 465,
            EmailTls::None => 25,
        })
    }

    fn validate(&self) -> Result<(), String> {
        if self.host.trim().is_empty() || self.host.contains(['/', ' ']) {
            return Err(format!("email.host {:?} is not a host name", self.host));
        }
        if self.port == Some(0) {
            return Err("email.port must not be 0".into());
        }
        if self.username.is_some() != self.password.is_some() {
            return Err("email.username and email.password go together".into());
        }
        if self.tls == EmailTls::None && self.password.is_some() {
            return Err(
                "email.tls: none would send the password in clear; use starttls or tls".into(),
            );
        }
        check_address(&self.from).map_err(|e| format!("email.from: {e}"))?;
        if self.to.is_empty() {
            return Err("email.to needs at least one recipient".into());
        }
        for (i, a) in self.to.iter().enumerate() {
            check_address(a).map_err(|e| format!("email.to[{i}]: {e}"))?;
        }
        if let Some(t) = &self.subject {
            message::check(t).map_err(|e| format!("email.subject: {e}"))?;
        }
        if let Some(t) = &self.body {
            message::check(t).map_err(|e| format!("email.body: {e}"))?;
        }
        Ok(())
    }
}

/// Whether `a` looks like `user@host` or `Name <user@host>`; the full
/// parse is the sender's, when it sends.
fn check_address(a: &str) -> Result<(), String> {
    let addr = match (a.find('<'), a.rfind('>')) {
        (Some(open), Some(close)) if open < close && a[close + 1..].trim().is_empty() => {
            &a[open + 1..close]
        }
        (None, None) => a.trim(),
        _ => {
            return Err(format!(
                "{a:?} is not an address (user@host or Name <user@host>)"
            ));
        }
    };
    match addr.split_once('@') {
        Some((user, host))
            if !user.is_empty()
                && !host.is_empty()
                && !addr.contains(char::is_whitespace)
                && !a.contains(['\r', '\n']) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "{a:?} is not an address (user@host or Name <user@host>)"
        )),
    }
}

/// Checks what the chat kinds share: the URL and the templates.
fn check_chat(
    kind: &str,
    url: &str,
    template: Option<&MessageTemplate>,
    title: Option<&MessageTemplate>,
) -> Result<(), String> {
    check_url(url).map_err(|e| format!("{kind}.{e}"))?;
    if let Some(t) = template {
        message::check(t).map_err(|e| format!("{kind}.template: {e}"))?;
    }
    if let Some(t) = title {
        message::check(t).map_err(|e| format!("{kind}.title: {e}"))?;
    }
    Ok(())
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
            TriggerSpec::Slack(c) => {
                check_chat("slack", &c.url, c.template.as_ref(), c.title.as_ref())
            }
            TriggerSpec::Teams(c) => {
                check_chat("teams", &c.url, c.template.as_ref(), c.title.as_ref())
            }
            TriggerSpec::Mattermost(c) => {
                check_chat("mattermost", &c.url, c.template.as_ref(), c.title.as_ref())
            }
            TriggerSpec::Discord(c) => {
                check_chat("discord", &c.url, c.template.as_ref(), c.title.as_ref())?;
                for (i, m) in c.mentions.iter().enumerate() {
                    if !(m == "@here" || m == "@everyone" || mention_id(m).is_some()) {
                        return Err(format!(
                            "discord.mentions[{i}]: {m:?} is not @here, @everyone, <@user id> or <@&role id>"
                        ));
                    }
                }
                Ok(())
            }
            TriggerSpec::Email(e) => e.validate(),
        }
    }
}

/// What a Discord mention names: `(is a role, id)` of `<@id>`, `<@!id>`
/// or `<@&id>`.
pub fn mention_id(m: &str) -> Option<(bool, &str)> {
    let inner = m.strip_prefix("<@")?.strip_suffix('>')?;
    let (role, id) = match inner.strip_prefix('&') {
        Some(id) => (true, id),
        None => (false, inner.strip_prefix('!').unwrap_or(inner)),
    };
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit())).then_some((role, id))
}

/// Whether `u` is an http or https URL; the message shows it redacted.
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
    fn chat_and_email_debug_shows_no_secret() {
        let specs = [
            serde_json::json!({"slack": {"url": "https://hooks.slack.com/services/T0/B0/s3cret"}}),
            serde_json::json!({"teams": {"url": "https://x.logic.azure.com/workflows/w?sig=s3cret"}}),
            serde_json::json!({"mattermost": {"url": "https://chat.example/hooks/s3cret"}}),
            serde_json::json!({"discord": {"url": "https://discord.com/api/webhooks/1/s3cret"}}),
            serde_json::json!({"email": {"host": "smtp.example", "username": "u", "password": "s3cret",
                                         "from": "a@example.com", "to": ["b@example.com"]}}),
        ];
        let mut shown = Vec::new();
        for v in specs {
            let t: TriggerSpec = serde_json::from_value(v).unwrap();
            t.validate().unwrap();
            let d = format!("{t:?}");
            assert!(!d.contains("s3cret"), "{d}");
            shown.push(d);
        }
        assert_eq!(shown[0], "Slack(https://hooks.slack.com/…)");
        assert_eq!(
            shown[4],
            "Email(smtp.example:587, Starttls, 1 recipient(s))"
        );
        assert_eq!(mention_id("<@&42>"), Some((true, "42")));
        assert_eq!(mention_id("<@!7>"), Some((false, "7")));
        assert_eq!(mention_id("<@x>"), None);
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
