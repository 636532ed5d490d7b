//! Errors of the registry layer. Messages name the registry and image, never a secret.

use std::time::Duration;

/// Everything that can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{image}: not found on {host} ({what})")]
    NotFound {
        host: String,
        image: String,
        what: String,
    },
    #[error(
        "{host}: authentication required for {image}; log in with `docker login {host}` or set credentials for this registry in the config"
    )]
    AuthRequired { host: String, image: String },
    #[error("{host}: credentials were refused for {image} ({detail})")]
    AuthFailed {
        host: String,
        image: String,
        detail: String,
    },
    #[error(
        "{host}: {access} access to {image} was refused; the credentials in use do not grant it (a read-only account or token?)"
    )]
    Denied {
        host: String,
        image: String,
        access: String,
    },
    #[error("{host}: rate limited for {image}; the registry asks to wait {retry_after:?}")]
    RateLimited {
        host: String,
        image: String,
        retry_after: Duration,
    },
    #[error("{host}: {image}: HTTP {status} after {attempts} attempt(s): {detail}")]
    Http {
        host: String,
        image: String,
        status: u16,
        attempts: u32,
        detail: String,
    },
    #[error("{host}: {image}: {detail} after {attempts} attempt(s)")]
    Transport {
        host: String,
        image: String,
        detail: String,
        attempts: u32,
    },
    #[error("{image}: the registry sent digest {claimed} but the content hashes to {actual}")]
    DigestMismatch {
        image: String,
        claimed: String,
        actual: String,
    },
    #[error("{image}: unusable {what}: {detail}")]
    BadContent {
        image: String,
        what: String,
        detail: String,
    },
    #[error("{image}: platform {wanted} is not in the image (it has: {available})")]
    PlatformMissing {
        image: String,
        wanted: String,
        available: String,
    },
    #[error("registry {host}: {detail}")]
    Settings { host: String, detail: String },
    #[error("credentials for {host}: {detail}")]
    Credentials { host: String, detail: String },
}

impl RegistryError {
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
