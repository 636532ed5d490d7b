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
//! - [`KubeApi`]: a loopback Kubernetes API server (plain HTTP and TLS) for
//!   Deployments, StatefulSets, DaemonSets and CronJobs, with a controller
//!   stand-in whose roll-outs complete, stall or fail per image
//!   ([`Rollout`]); tested with the real `kubectl` ([`kubectl`]).
//! - [`WebhookReceiver`]: records POSTs and checks `X-Freshen-Signature`.
//! - [`SmtpServer`]: a real SMTP server (PyPI `aiosmtpd`) with STARTTLS on a
//!   certificate made by `openssl`, recording each message it accepts.
//! - [`Harbor`]: a loopback server answering the Harbor v2.0 API calls
//!   freshen makes (repositories, artifacts with scan overviews, reports),
//!   paged and behind basic auth, as Harbor documents them.
//! - [`postgres_url`], [`sqlite_url`], [`Db`], [`FreshDb`] and
//!   [`both_stores!`]: fresh databases for tests run on both store back ends.
//! - [`Buildah`] and [`holding_buildah`]: real image builds pushed to a test
//!   registry; [`skopeo_copy`] and [`unpack`]: skopeo against it.
//! - [`write_file`], [`debian_root`], [`golden_base`], [`upstream_v1_v2`]:
//!   the files and image trees tests build from; [`sbom_fixtures`],
//!   [`vuln_fixtures`], [`osv_fixtures`]: the shared fixture directories.
//! - [`require_tool`]: a program on PATH, or a panic naming its install.
//! - [`eventually`]: waiting for another process, with a deadline and a
//!   message; [`http`] and [`free_port`]: plain HTTP plumbing.
//!
//! A missing tool or server makes the test panic with the command that
//! installs or starts it; nothing is skipped silently.

mod buildah;
mod db;
mod files;
mod fixtures;
mod harbor;
mod http;
mod image_tree;
mod jenkins;
mod kubernetes;
mod osv_mirror;
mod poll;
mod proxy;
mod pusher;
mod random;
mod registry;
mod skopeo;
mod smtp;
mod token_proxy;
mod tools;
mod webhook;

pub use buildah::{Buildah, holding_buildah};
pub use db::{
    Db, FreshDb, POSTGRES_BASE_URL, POSTGRES_URL_ENV, postgres_server_url, postgres_url, sqlite_url,
};
pub use files::{DEBIAN_ROOT_DOCKERFILE, debian_root, write_file};
pub use fixtures::{osv_fixtures, sbom_fixtures, vuln_fixtures};
pub use harbor::{Harbor, HarborArtifact, HarborOptions, HarborRequest};
pub use http::{free_port, http};
pub use image_tree::{golden_base, upstream_v1_v2};
pub use jenkins::{BuildHook, BuildRequest, JENKINS_VERSION, Jenkins, JenkinsOptions};
pub use kubernetes::{KUBE_VERSION, KUBECTL_INSTALL, KubeApi, KubeRequest, Rollout, kubectl};
pub use osv_mirror::{MirrorRequest, OsvMirror, zip_records};
pub use poll::eventually;
pub use proxy::{Fault, FaultProxy, ProxiedRequest};
pub use pusher::{
    ACCEPT_ALL_MANIFESTS, DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_LIST, DOCKER_MANIFEST,
    OCI_CONFIG, OCI_INDEX, OCI_LAYER_TAR, OCI_MANIFEST, Pusher, sha256_digest,
};
pub use registry::{Registry, RegistryOptions};
pub use skopeo::{skopeo_copy, unpack};
pub use smtp::{AIOSMTPD_INSTALL, Mail, SmtpOptions, SmtpServer, SmtpTls};
pub use token_proxy::{TokenAuthOptions, TokenAuthProxy, TokenProxyRequest};
pub use tools::require_tool;
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
///
/// With `run = path;` first, each test calls `path(Db::Sqlite, name)` and
/// `path(Db::Postgres, name)` instead: a runner (an `async fn(Db, F)`) that
/// prepares what `name` takes (say a [`FreshDb`] with a store opened on it),
/// calls it and cleans up. Those tests get four worker threads, so that
/// scenarios racing tasks against each other really run them in parallel.
/// The path must resolve from inside the generated module (`crate::…`).
///
/// ```no_run
/// # struct Ctx;
/// async fn run_on<F, Fut>(db: freshen_testkit::Db, scenario: F)
/// where
///     F: FnOnce(Ctx) -> Fut,
///     Fut: std::future::Future<Output = ()>,
/// {
///     let fresh = freshen_testkit::FreshDb::create(db).await;
///     scenario(Ctx).await;
///     fresh.remove().await;
/// }
/// async fn claims_are_disjoint(ctx: Ctx) {}
/// freshen_testkit::both_stores!(run = crate::run_on; claims_are_disjoint);
/// ```
#[macro_export]
macro_rules! both_stores {
    (run = $run:path; $($name:ident),+ $(,)?) => {
        $(
            #[allow(non_snake_case)]
            mod $name {
                #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    $run($crate::Db::Sqlite, super::$name).await
                }

                #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    $run($crate::Db::Postgres, super::$name).await
                }
            }
        )+
    };
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
        shareable::<crate::KubeApi>();
        shareable::<crate::WebhookReceiver>();
        shareable::<crate::Buildah>();
        shareable::<crate::FreshDb>();
    }
}
