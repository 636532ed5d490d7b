//! `receivers:` in the config: one entry per webhook endpoint.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::callback::DOCKER_HUB_CALLBACKS;

/// Which sender's format an endpoint reads; the first path segment after
/// `/hooks/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Docker Hub repository webhooks.
    Dockerhub,
    /// CNCF Distribution (`docker-registry`) notifications.
    Registry,
    /// Harbor project webhooks (default or CloudEvents payloads).
    Harbor,
    /// A CloudEvent or `{"ref": ..., "digest": ...}`.
    Generic,
}

impl Kind {
    /// Every kind, in path order.
    pub const ALL: [Kind; 4] = [Kind::Dockerhub, Kind::Registry, Kind::Harbor, Kind::Generic];

    /// The name used in paths, config and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Dockerhub => "dockerhub",
            Kind::Registry => "registry",
            Kind::Harbor => "harbor",
            Kind::Generic => "generic",
        }
    }

    /// The kind named `s`, if any.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One webhook endpoint, `POST /hooks/{kind}/{key}`.
///
/// `Debug` never prints the key, token or HMAC secret.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverSpec {
    /// The sender's format.
    pub kind: Kind,
    /// The path's last segment (from `${ENV}`): URL-safe characters, and
    /// at least 16 of them when it is the only secret.
    pub key: String,
    /// Also require `Authorization: Bearer <token>` (Distribution's
    /// endpoint `headers`, Harbor's "Auth Header").
    #[serde(default)]
    pub token: Option<String>,
    /// Also require `X-Freshen-Signature` or `X-Hub-Signature-256`:
    /// `sha256=<hex HMAC-SHA256 of the body>` (generic receivers).
    #[serde(default)]
    pub hmac_secret: Option<String>,
    /// The registry host freshen reaches the pushed tags at, when it is not
    /// the one the payload names: `docker.io` for Docker Hub (the default
    /// there); a Distribution registry behind a proxy; Harbor's external
    /// name.
    #[serde(default)]
    pub registry: Option<String>,
    /// Patterns (`*` matches anything) over the normalised reference of
    /// pushes to tags no watch names; others are ignored. Default: all.
    #[serde(default)]
    pub images: Vec<String>,
    /// Triggers to fire for a change of a tag no watch names (a watched
    /// tag fires its watch's `on_change`). Empty: such pushes are ignored.
    #[serde(default)]
    pub on_change: Vec<String>,
    /// Platforms compared for tags no watch names; default: the config's
    /// `default_platforms`.
    #[serde(default)]
    pub platforms: Vec<String>,
    /// The policy judging changes of tags no watch names.
    #[serde(default)]
    pub policy: Option<String>,
    /// Docker Hub: where and how outcomes are posted back.
    #[serde(default)]
    pub callback: Option<CallbackSpec>,
    /// Harbor: the API's base URL (`https://harbor.example`) a completed
    /// scan's full report is read from (a robot account in
    /// `FRESHEN_HARBOR_USER` / `FRESHEN_HARBOR_PASSWORD`). Without it,
    /// `SCANNING_COMPLETED` is skipped: its overview counts findings but
    /// does not name them.
    #[serde(default)]
    pub harbor_url: Option<String>,
}

/// How a Docker Hub receiver reports outcomes to `callback_url`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackSpec {
    /// URL prefixes a `callback_url` must start with; default Docker Hub's
    /// own, so a forged payload cannot make freshen call internal addresses.
    #[serde(default = "default_allow")]
    pub allow: Vec<String>,
    /// The `context` posted (shown by Docker Hub); default `freshen`.
    #[serde(default = "default_context")]
    pub context: String,
    /// The `target_url` posted, e.g. this freshen's UI.
    #[serde(default)]
    pub target_url: Option<String>,
    /// Longest wait for the work a push set off (its triggers, a cascade)
    /// before reporting `error`; default 1h.
    #[serde(default = "default_max_wait", with = "humantime_serde")]
    pub max_wait: std::time::Duration,
}

impl Default for CallbackSpec {
    fn default() -> Self {
        CallbackSpec {
            allow: default_allow(),
            context: default_context(),
            target_url: None,
            max_wait: default_max_wait(),
        }
    }
}

fn default_max_wait() -> std::time::Duration {
    std::time::Duration::from_secs(3600)
}

fn default_allow() -> Vec<String> {
    vec![DOCKER_HUB_CALLBACKS.to_string()]
}

fn default_context() -> String {
    "freshen".into()
}

/// The shortest key accepted when the key is a receiver's only secret.
pub const MIN_KEY_LEN: usize = 16;

impl ReceiverSpec {
    /// Checks what serde cannot; the error names the field and never
    /// contains a secret.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.key.is_empty() {
            return Err(("key", "is empty (an unset ${ENV} variable?)".into()));
        }
        if !self
            .key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        {
            return Err((
                "key",
                "may hold only letters, digits and - . _ ~ (it is a URL path segment)".into(),
            ));
        }
        if self.token.is_none() && self.hmac_secret.is_none() && self.key.len() < MIN_KEY_LEN {
            return Err((
                "key",
                format!(
                    "is the only secret of this receiver: use at least {MIN_KEY_LEN} characters \
                     (e.g. `openssl rand -hex 16`), or add token or hmac_secret"
                ),
            ));
        }
        if let Some(t) = &self.token {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()) {
                return Err((
                    "token",
                    "must be visible ASCII without spaces, not empty (an unset ${ENV} variable?)"
                        .into(),
                ));
            }
            if self.kind == Kind::Dockerhub {
                return Err((
                    "token",
                    "Docker Hub sends no headers: its only secret is the key".into(),
                ));
            }
        }
        if let Some(s) = &self.hmac_secret {
            if s.is_empty() {
                return Err(("hmac_secret", "is empty (an unset ${ENV} variable?)".into()));
            }
            if self.kind != Kind::Generic {
                return Err((
                    "hmac_secret",
                    format!(
                        "{} does not sign its requests: use key (and token where the sender \
                         can send headers)",
                        self.kind
                    ),
                ));
            }
        }
        if let Some(r) = &self.registry
            && (r.is_empty() || r.contains('/') || r.contains(char::is_whitespace))
        {
            return Err(("registry", format!("{r:?} is not a registry host[:port]")));
        }
        if !self.on_change.is_empty()
            && self.kind != Kind::Dockerhub
            && self.registry.is_none()
            && self.images.is_empty()
        {
            // Else the payload (a Host header, a CloudEvent's subject)
            // would choose which host freshen reads the pushed tag from.
            return Err((
                "on_change",
                "needs registry or images patterns naming the hosts pushed tags may come from"
                    .into(),
            ));
        }
        if let Some(i) = self.images.iter().position(|p| p.is_empty()) {
            return Err(("images", format!("[{i}] is an empty pattern")));
        }
        if let Some(u) = &self.harbor_url {
            if self.kind != Kind::Harbor {
                return Err((
                    "harbor_url",
                    format!("only Harbor receivers read scans, not {}", self.kind),
                ));
            }
            match url::Url::parse(u) {
                Ok(p)
                    if matches!(p.scheme(), "http" | "https")
                        && p.username().is_empty()
                        && p.password().is_none() => {}
                _ => {
                    return Err((
                        "harbor_url",
                        "must be an http(s) URL without credentials (they go in FRESHEN_HARBOR_USER and FRESHEN_HARBOR_PASSWORD)".into(),
                    ));
                }
            }
        }
        if let Some(c) = &self.callback {
            if self.kind != Kind::Dockerhub {
                return Err((
                    "callback",
                    format!("only Docker Hub asks for callbacks, not {}", self.kind),
                ));
            }
            if c.allow.is_empty() {
                return Err((
                    "callback.allow",
                    "is empty: no callback_url could be called".into(),
                ));
            }
            for (i, a) in c.allow.iter().enumerate() {
                crate::callback::prefix(a)
                    .map_err(|e| ("callback.allow", format!("[{i}]: {e}")))?;
            }
        }
        Ok(())
    }

    /// The callback settings: configured, or Docker Hub's defaults for a
    /// Docker Hub receiver.
    pub fn callback(&self) -> Option<CallbackSpec> {
        match (&self.callback, self.kind) {
            (Some(c), _) => Some(c.clone()),
            (None, Kind::Dockerhub) => Some(CallbackSpec::default()),
            (None, _) => None,
        }
    }
}

impl fmt::Debug for ReceiverSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceiverSpec")
            .field("kind", &self.kind)
            .field("key", &"[redacted]")
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field(
                "hmac_secret",
                &self.hmac_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("registry", &self.registry)
            .field("images", &self.images)
            .field("on_change", &self.on_change)
            .field("platforms", &self.platforms)
            .field("policy", &self.policy)
            .field("callback", &self.callback)
            .field("harbor_url", &self.harbor_url)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> ReceiverSpec {
        serde_json::from_value(serde_json::from_str::<serde_json::Value>(yaml).unwrap()).unwrap()
    }

    #[test]
    fn keys_must_be_secret_enough_when_alone() {
        let short = spec(r#"{"kind":"registry","key":"abc"}"#);
        let e = short.validate().unwrap_err();
        assert_eq!(e.0, "key");
        assert!(e.1.contains("at least 16"), "{}", e.1);
        assert!(!e.1.contains("abc"));
        let with_token = spec(r#"{"kind":"registry","key":"abc","token":"t0k"}"#);
        with_token.validate().unwrap();
        let bad = spec(r#"{"kind":"registry","key":"a/b?c=0123456789abcdef"}"#);
        assert_eq!(bad.validate().unwrap_err().0, "key");
        assert_eq!(
            spec(r#"{"kind":"registry","key":""}"#)
                .validate()
                .unwrap_err()
                .0,
            "key"
        );
    }

    #[test]
    fn secrets_fit_their_senders() {
        let e = spec(r#"{"kind":"dockerhub","key":"0123456789abcdef","token":"x"}"#)
            .validate()
            .unwrap_err();
        assert_eq!(e.0, "token");
        let e = spec(r#"{"kind":"harbor","key":"0123456789abcdef","hmac_secret":"x"}"#)
            .validate()
            .unwrap_err();
        assert_eq!(e.0, "hmac_secret");
        let e = spec(r#"{"kind":"registry","key":"0123456789abcdef","callback":{}}"#)
            .validate()
            .unwrap_err();
        assert_eq!(e.0, "callback");
        spec(r#"{"kind":"generic","key":"k","hmac_secret":"s"}"#)
            .validate()
            .unwrap();
    }

    #[test]
    fn docker_hub_calls_back_to_docker_hub_by_default() {
        let s = spec(r#"{"kind":"dockerhub","key":"0123456789abcdef"}"#);
        s.validate().unwrap();
        assert_eq!(s.callback().unwrap().allow, [DOCKER_HUB_CALLBACKS]);
        assert!(
            spec(r#"{"kind":"registry","key":"0123456789abcdef"}"#)
                .callback()
                .is_none()
        );
        let e = spec(
            r#"{"kind":"dockerhub","key":"0123456789abcdef","callback":{"allow":["ftp://x/"]}}"#,
        )
        .validate()
        .unwrap_err();
        assert_eq!(e.0, "callback.allow");
    }

    #[test]
    fn debug_redacts_secrets() {
        let s =
            spec(r#"{"kind":"generic","key":"k3y-s3cr3t","token":"t0k3n","hmac_secret":"hm4c"}"#);
        let d = format!("{s:?}");
        for secret in ["k3y-s3cr3t", "t0k3n", "hm4c"] {
            assert!(!d.contains(secret), "{d}");
        }
    }
}
