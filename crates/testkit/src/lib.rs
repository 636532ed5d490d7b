//! freshen testkit: real parts for the other crates' integration tests.
//!
//! - [`Registry`]: a real CNCF Distribution (`docker-registry`) process on a
//!   loopback port, optionally with htpasswd auth and notifications.
//! - [`Pusher`]: writes small real OCI/Docker images, indexes and tags over
//!   the registry HTTP API.
//! - [`FaultProxy`]: a loopback reverse proxy injecting 429/503/stalls and
//!   rate-limit headers, recording every request.
//! - [`TokenAuthProxy`]: a loopback reverse proxy requiring Docker/OCI bearer
//!   tokens (`WWW-Authenticate: Bearer` challenges, a `/token` endpoint with
//!   GET and OAuth2 POST forms, scoped and expiring tokens), counting tokens.
//! - [`Jenkins`]: a loopback server implementing the Jenkins remote access
//!   API calls freshen makes (crumb issuer, `buildWithParameters`, queue).
//! - [`WebhookReceiver`]: records POSTs and checks `X-Freshen-Signature`.
//! - [`Harbor`]: a loopback server answering the Harbor v2.0 API calls
//!   freshen makes (repositories, artifacts with scan overviews, reports),
//!   paged and behind basic auth, as Harbor documents them.
//! - [`postgres_url`], [`sqlite_url`], [`Db`] and [`both_stores!`]: fresh
//!   databases for store tests.
//!
//! A missing tool or server makes the test panic with the command that
//! installs or starts it; nothing is skipped silently.

#![warn(missing_docs)]

mod db;
mod harbor;
mod jenkins;
mod proxy;
mod pusher;
mod registry;
mod token_proxy;
mod util;
mod webhook;

pub use db::{Db, POSTGRES_BASE_URL, postgres_url, sqlite_url};
pub use harbor::{Harbor, HarborArtifact, HarborOptions, HarborRequest};
pub use jenkins::{BuildHook, BuildRequest, JENKINS_VERSION, Jenkins, JenkinsOptions};
pub use proxy::{Fault, FaultProxy, ProxiedRequest};
pub use pusher::{
    ACCEPT_ALL_MANIFESTS, DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_LIST, DOCKER_MANIFEST,
    OCI_CONFIG, OCI_INDEX, OCI_LAYER_TAR, OCI_MANIFEST, Pusher, sha256_digest,
};
pub use registry::{Registry, RegistryOptions};
pub use token_proxy::{TokenAuthOptions, TokenAuthProxy, TokenProxyRequest};
pub use util::free_port;
pub use webhook::{EVENT_ID_HEADER, Received, SIGNATURE_HEADER, WebhookReceiver, sign};

/// Turns `async fn name(db: Db)` into two multi-thread `#[tokio::test]`s,
/// `name::sqlite` and `name::postgres` (a module named like the function;
/// `macro_rules!` cannot build the identifiers `name_sqlite`), calling
/// `name(Db::Sqlite)` and `name(Db::Postgres)`. Several names may be given.
/// The calling crate needs `tokio` (with `macros`) as a dev-dependency.
///
/// ```no_run
/// async fn saves_trigger(db: freshen_testkit::Db) {
///     let dir = tempfile::tempdir().unwrap();
///     let url = db.url(dir.path()).await;
///     // ...
/// }
/// freshen_testkit::both_stores!(saves_trigger);
/// ```
#[macro_export]
macro_rules! both_stores {
    ($($name:ident),+ $(,)?) => {
        $(
            #[allow(non_snake_case)]
            mod $name {
                #[::tokio::test(flavor = "multi_thread")]
                async fn sqlite() {
                    super::$name($crate::Db::Sqlite).await
                }

                #[::tokio::test(flavor = "multi_thread")]
                async fn postgres() {
                    super::$name($crate::Db::Postgres).await
                }
            }
        )+
    };
}

#[cfg(test)]
mod tests {
    fn shareable<T: Send + Sync>() {}

    /// Every part can be shared between tasks and threads.
    #[test]
    fn parts_are_send_and_sync() {
        shareable::<crate::Registry>();
        shareable::<crate::Pusher>();
        shareable::<crate::FaultProxy>();
        shareable::<crate::TokenAuthProxy>();
        shareable::<crate::Jenkins>();
        shareable::<crate::WebhookReceiver>();
    }
}
