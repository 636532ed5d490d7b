//! Test harness: every scenario runs against a fresh SQLite file and a fresh
//! PostgreSQL database (testkit's `FreshDb`: server at 127.0.0.1:5432, trust
//! auth, user postgres, or `FRESHEN_TEST_PG_URL`), with a store opened on it.
//! Opening the store stays here, so that the testkit does not depend on the
//! store it tests.

use std::future::Future;

use chrono::{DateTime, TimeZone, Utc};
use freshen_store::{Observation, PlatformDigest, Store};
use freshen_testkit::FreshDb;

/// Which database a scenario runs on.
pub use freshen_testkit::Db;

/// What a scenario gets: the store, and the raw URL to open more stores
/// (other "replicas") or raw connections on the same database.
#[derive(Clone)]
pub struct Ctx {
    pub store: Store,
    pub url: String,
    pub kind: Db,
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
        self.kind.exec_raw(&self.url, sql).await
    }
}

/// Runs `scenario` on a fresh database of `kind` (testkit's [`FreshDb`]),
/// then removes the database, also when the scenario panics (the panic is
/// re-raised afterwards).
pub async fn run_on<F, Fut>(kind: Db, scenario: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let db = FreshDb::create(kind).await;
    let url = db.url().to_string();
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
    db.remove().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Declares `mod $name { sqlite, postgres }` tests running `$name(ctx)` on
/// each backend, through [`run_on`].
macro_rules! both {
    ($($name:ident),+ $(,)?) => {
        freshen_testkit::both_stores!(run = crate::common::run_on; $($name),+);
    };
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
