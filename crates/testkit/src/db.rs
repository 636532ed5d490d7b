//! Fresh databases for store tests: SQLite files and PostgreSQL databases.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::{AssertSqlSafe, Connection as _, Executor as _, PgConnection};

/// Where the tests' PostgreSQL server listens (trust auth, user `postgres`).
pub const POSTGRES_BASE_URL: &str = "postgres://postgres@127.0.0.1:5432";

const UNREACHABLE: &str = "PostgreSQL is not reachable at 127.0.0.1:5432: start it with `pg_ctlcluster 15 main start` (install: apt-get install postgresql)";

/// Test databases older than this are dropped by the next [`postgres_url`]
/// call in any later test process (their names carry a UUIDv7 timestamp).
const STALE_AFTER: Duration = Duration::from_secs(6 * 3600);

static CLEANED: AtomicBool = AtomicBool::new(false);

/// Creates a fresh, empty database `freshen_t_<uuid simple>` on the
/// PostgreSQL server at 127.0.0.1:5432 (user `postgres`, trust auth) and
/// returns its URL, `postgres://postgres@127.0.0.1:5432/freshen_t_<...>`.
///
/// Panics when the server is unreachable, naming the command that starts
/// it. Databases are left behind for inspection; the first call in a
/// process drops the `freshen_t_*` databases older than six hours.
pub async fn postgres_url() -> String {
    create_database(POSTGRES_BASE_URL).await
}

async fn create_database(base: &str) -> String {
    let admin = format!("{base}/postgres");
    let mut conn =
        match tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(&admin)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => panic!("{UNREACHABLE} ({e})"),
            Err(_) => panic!("{UNREACHABLE} (connect timed out after 10 s)"),
        };
    if !CLEANED.swap(true, Ordering::SeqCst) {
        drop_stale(&mut conn).await;
    }
    let name = format!("freshen_t_{}", uuid::Uuid::now_v7().simple());
    conn.execute(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .await
        .unwrap_or_else(|e| panic!("freshen-testkit: CREATE DATABASE {name} failed: {e}"));
    let _ = conn.close().await;
    format!("{base}/{name}")
}

async fn drop_stale(conn: &mut PgConnection) {
    let names: Vec<(String,)> = match sqlx::query_as(
        "SELECT datname FROM pg_database WHERE datname LIKE 'freshen\\_t\\_%'",
    )
    .fetch_all(&mut *conn)
    .await
    {
        Ok(n) => n,
        Err(_) => return,
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    for (name,) in names {
        let Some(uuid) = name
            .strip_prefix("freshen_t_")
            .and_then(|s| uuid::Uuid::try_parse(s).ok())
        else {
            continue;
        };
        let Some((secs, nanos)) = uuid.get_timestamp().map(|t| t.to_unix()) else {
            continue;
        };
        let created = Duration::new(secs, nanos);
        if now.saturating_sub(created) > STALE_AFTER {
            // Without FORCE: a database still in use is left alone.
            let _ = conn
                .execute(AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\"")))
                .await;
        }
    }
}

/// `sqlite://<dir>/freshen.db` (the file is not created here: connect with
/// `create_if_missing`, or append `?mode=rwc`).
pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}/freshen.db", dir.display())
}

/// The two store back ends, for tests run against both (see
/// [`crate::both_stores!`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// A SQLite file in the test's directory ([`sqlite_url`]).
    Sqlite,
    /// A fresh PostgreSQL database ([`postgres_url`]).
    Postgres,
}

impl Db {
    /// A URL for a fresh, empty database of this kind; `dir` is used by
    /// SQLite only.
    pub async fn url(&self, dir: &Path) -> String {
        match self {
            Db::Sqlite => sqlite_url(dir),
            Db::Postgres => postgres_url().await,
        }
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn name(&self) -> &'static str {
        match self {
            Db::Sqlite => "sqlite",
            Db::Postgres => "postgres",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    #[should_panic(
        expected = "start it with `pg_ctlcluster 15 main start` (install: apt-get install postgresql)"
    )]
    async fn unreachable_server_panics_with_the_start_command() {
        create_database("postgres://postgres@127.0.0.1:1").await;
    }

    #[test]
    fn urls() {
        assert_eq!(sqlite_url(Path::new("/d")), "sqlite:///d/freshen.db");
        assert_eq!(Db::Postgres.name(), "postgres");
    }
}
