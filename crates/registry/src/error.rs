//! Errors of the registry layer. Messages name the registry and image, never a secret.

use std::time::Duration;

/// Everything that can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// HTTP 404: the manifest, blob, upload or repository is not there.
    #[error("{image}: not found on {host} ({what})")]
    NotFound {
        /// The registry name (as in the reference, e.g. `docker.io`).
        host: String,
        /// The image concerned, as a full reference (or `<registry> catalog`).
        image: String,
        /// The request path that was not found (`/v2/.../manifests/...`).
        what: String,
    },
    /// The registry wants credentials and none are configured (or it asked
    /// for a scheme freshen cannot answer).
    #[error(
        "{host}: authentication required for {image}; log in with `docker login {host}` or set credentials for this registry in the config"
    )]
    AuthRequired {
        /// The registry name (as in the reference, e.g. `docker.io`).
        host: String,
        /// The image concerned, as a full reference (or `<registry> catalog`).
        image: String,
    },
    /// Credentials were sent and refused (HTTP 401/403 on a read, or from
    /// the token endpoint).
    #[error("{host}: credentials were refused for {image} ({detail})")]
    AuthFailed {
        /// The registry name (as in the reference, e.g. `docker.io`).
        host: String,
        /// The image concerned, as a full reference (or `<registry> catalog`).
        image: String,
        /// Which answer refused them (`HTTP 401`, `token endpoint answered HTTP 403`).
        detail: String,
    },
    /// A write was refused although credentials were sent: they do not
    /// grant push (or the mount source's pull).
    #[error(
        "{host}: {access} access to {image} was refused; the credentials in use do not grant it (a read-only account or token?)"
    )]
    Denied {
        /// The registry name (as in the reference, e.g. `docker.io`).
        host: String,
        /// The image concerned, as a full reference (or `<registry> catalog`).
        image: String,
        /// The access asked for: `push`, or `push (mounting from <repo>)`.
        access: String,
    },
    /// HTTP 429 asking for a wait longer than the longest backoff, or with
    /// the attempts used up; also a request not sent because an earlier 429
    /// paused the registry for longer than that.
    #[error("{host}: rate limited for {image}; the registry asks to wait {retry_after:?}")]
    RateLimited {
        /// The registry name (as in the reference, e.g. `docker.io`).
        host: String,
        /// The image concerned, as a full reference (or `<registry> catalog`).
        image: String,
        /// How long the registry asked to wait (`Retry-After`, else the backoff).
        retry_after: Duration,
    },
    /// Any other unsuccessful status, after retries for 5xx and 408.
    #[error("{host}: {image}: HTTP {status} after {attempts} attempt(s): {detail}")]
    Http {
        /// The registry name (as in the reference, e.g. `docker.io`).
        host: String,
        /// The image concerned, as a full reference (or `<registry> catalog`).
        image: String,
        /// The last HTTP status code.
        status: u16,
        /// Requests sent, the last one included.
        attempts: u32,
        /// The registry's error text (its `errors` body), or which endpoint answered.
        detail: String,
    },
    /// No HTTP answer (connect, TLS, timeout), after retries; also a
    /// streamed upload that would have to be sent twice.
    #[error("{host}: {image}: {detail} after {attempts} attempt(s)")]
    Transport {
        /// The registry name (as in the reference, e.g. `docker.io`).
        host: String,
        /// The image concerned, as a full reference (or `<registry> catalog`).
        image: String,
        /// What failed, without the URL (it may carry secrets).
        detail: String,
        /// Requests tried, the last one included.
        attempts: u32,
    },
    /// Content does not hash to the digest it was asked for or announced with.
    #[error("{image}: the registry sent digest {claimed} but the content hashes to {actual}")]
    DigestMismatch {
        /// The image concerned, as a full reference (or `<registry> catalog`).
        image: String,
        /// The digest asked for or sent in `Docker-Content-Digest`.
        claimed: String,
        /// The digest of the bytes received (`sha256:<hex>`).
        actual: String,
    },
    /// A body freshen cannot use: malformed JSON, an unsupported media
    /// type, over a size limit, or a registry answer that breaks the protocol.
    #[error("{image}: unusable {what}: {detail}")]
    BadContent {
        /// The image concerned, as a full reference (or `<registry> catalog`).
        image: String,
        /// Which document or step: `manifest`, `image config`, `blob <digest>`, `upload`, ...
        what: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The index holds no manifest for the platform asked for.
    #[error("{image}: platform {wanted} is not in the image (it has: {available})")]
    PlatformMissing {
        /// The image concerned, as a full reference (or `<registry> catalog`).
        image: String,
        /// The platform asked for (`os/arch[/variant]`).
        wanted: String,
        /// The platforms the index offers, comma-separated.
        available: String,
    },
    /// A registry's settings cannot be used (an unreadable `ca_file`, a bad
    /// mirror URL, no endpoint).
    #[error("registry {host}: {detail}")]
    Settings {
        /// The registry name (as in the reference, e.g. `docker.io`).
        host: String,
        /// What is wrong.
        detail: String,
    },
    /// The docker config or a credential helper failed; helper output is
    /// left out, as it can hold secrets.
    #[error("credentials for {host}: {detail}")]
    Credentials {
        /// The registry name (as in the reference, e.g. `docker.io`).
        host: String,
        /// What failed (the helper's name, or the config error).
        detail: String,
    },
}

impl RegistryError {
    /// A short name for the kind of failure (`not_found`, `rate_limited`,
    /// ...), for metrics' `kind` label.
    pub fn kind(&self) -> &'static str {
        match self {
            RegistryError::NotFound { .. } => "not_found",
            RegistryError::AuthRequired { .. } => "auth_required",
            RegistryError::AuthFailed { .. } => "auth_failed",
            RegistryError::Denied { .. } => "denied",
            RegistryError::RateLimited { .. } => "rate_limited",
            RegistryError::Http { .. } => "http",
            RegistryError::Transport { .. } => "transport",
            RegistryError::DigestMismatch { .. } => "digest_mismatch",
            RegistryError::BadContent { .. } => "bad_content",
            RegistryError::PlatformMissing { .. } => "platform_missing",
            RegistryError::Settings { .. } => "settings",
            RegistryError::Credentials { .. } => "credentials",
        }
    }

    /// True when the error says the registry is overloaded or unreachable, so
    /// a mirror or a later attempt may do better.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::RateLimited { .. } | RegistryError::Transport { .. } => true,
            RegistryError::Http { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}
