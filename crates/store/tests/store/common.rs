//! Test harness: every scenario runs against a fresh SQLite file and a fresh
//! PostgreSQL database (server at 127.0.0.1:5432, trust auth, user postgres).

use std::future::Future;

use chrono::{DateTime, TimeZone, Utc};
use freshen_store::{Observation, PlatformDigest, Store};
use sqlx::Connection;

/// Server URL without a database; override with FRESHEN_TEST_PG_URL.
pub fn pg_server_url() -> String {
    std::env::var("FRESHEN_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string())
}

/// URL of database `name` on the test server. TLS is off: the server is on
/// loopback, and a rustls handshake per connection in a debug build would
/// dominate the tests' run time.
pub fn pg_db_url(name: &str) -> String {
    format!("{}/{name}?sslmode=disable", pg_server_url())
}

/// Which database a scenario runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// What a scenario gets: the store, and the raw URL to open more stores
/// (other "replicas") or raw connections on the same database.
#[derive(Clone)]
pub struct Ctx {
    pub store: Store,
    pub url: String,
    pub kind: Kind,
}

impl Ctx {
    /// Another store on the same database, with its own pool, as a second
    /// process or replica would have.
    pub async fn another_store(&self) -> Store {
        Store::open(&self.url).await.expect("open a second store")
    }

    /// Runs raw SQL (possibly several statements) on the test database,
    /// outside the store, to set up failure injection.
    pub async fn exec_raw(&self, sql: &'static str) {
        match self.kind {
            Kind::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
                c.close().await.unwrap();
            }
            Kind::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
                c.close().await.unwrap();
            }
        }
    }
}

/// A fresh, empty database of `kind`; the guard removes it.
pub async fn fresh_db(kind: Kind) -> (String, Guard) {
    match kind {
        Kind::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            // A nested path also checks that missing parent dirs get created.
            let url = format!("sqlite://{}/data/freshen.db", dir.path().display());
            (url, Guard::Sqlite(dir))
        }
        Kind::Postgres => {
            let name = format!("freshen_t_{}", uuid::Uuid::new_v4().simple());
            let mut admin = admin_connection().await;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await
                .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
            admin.close().await.ok();
            (pg_db_url(&name), Guard::Postgres(name))
        }
    }
}

async fn admin_connection() -> sqlx::PgConnection {
    let url = pg_db_url("postgres");
    match sqlx::PgConnection::connect(&url).await {
        Ok(c) => c,
        Err(e) => panic!(
            "PostgreSQL is required for these tests and is not reachable at {url}: {e}\n\
             start it with `pg_ctlcluster 15 main start` (or `.ci/run`), \
             or point FRESHEN_TEST_PG_URL at a server with trust auth"
        ),
    }
}

/// Removes a test database when the scenario is done.
pub enum Guard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres(String),
}

impl Guard {
    pub async fn cleanup(self) {
        if let Guard::Postgres(name) = self {
            // Best effort: FORCE ends connections a failed test left behind.
            let mut admin = admin_connection().await;
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await;
            admin.close().await.ok();
        }
    }
}

/// Runs `scenario` on a fresh database of `kind`, then removes the database,
/// also when the scenario panics (the panic is re-raised afterwards).
pub async fn run_on<F, Fut>(kind: Kind, scenario: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (url, guard) = fresh_db(kind).await;
    let store = Store::open(&url)
        .await
        .unwrap_or_else(|e| panic!("open {url}: {e}"));
    let ctx = Ctx {
        store: store.clone(),
        url,
        kind,
    };
    let outcome = tokio::spawn(scenario(ctx)).await;
    store.close().await;
    guard.cleanup().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Declares `mod $name { sqlite, postgres }` tests running `$name(ctx)` on each backend.
macro_rules! both {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                crate::common::run_on(crate::common::Kind::Sqlite, super::$name).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                crate::common::run_on(crate::common::Kind::Postgres, super::$name).await
            }
        }
    )+};
}
pub(crate) use both;

/// A fixed instant plus `secs` seconds, for readable expectations.
pub fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::seconds(secs)
}

/// An observation of `reference` at `t(secs)`: top digest, then (platform, digest) pairs.
pub fn obs(
    reference: &str,
    secs: i64,
    top: &str,
    platforms: &[(&str, &str)],
    triggers: &[&str],
) -> Observation {
    Observation {
        reference: reference.to_string(),
        top_digest: top.to_string(),
        manifests: platforms
            .iter()
            .map(|(p, d)| PlatformDigest {
                platform: p.to_string(),
                digest: d.to_string(),
            })
            .collect(),
        source: "poll".to_string(),
        seen_at: t(secs),
        triggers: triggers.iter().map(|s| s.to_string()).collect(),
        first_sight_fires: false,
        with_event: Vec::new(),
        judgement: None,
    }
}

/// Stores one change event for `reference` (baseline, then a change of
/// linux/amd64) with `triggers`; returns the event id.
pub async fn make_event(store: &Store, reference: &str, secs: i64, triggers: &[&str]) -> String {
    store
        .record(&obs(
            reference,
            secs,
            "sha256:i1",
            &[("linux/amd64", "sha256:a1")],
            &[],
        ))
        .await
        .unwrap();
    let recorded = store
        .record(&obs(
            reference,
            secs,
            "sha256:i2",
            &[("linux/amd64", "sha256:a2")],
            triggers,
        ))
        .await
        .unwrap();
    recorded.event.expect("a change event").id
}
