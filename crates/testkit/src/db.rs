//! Fresh databases for tests: SQLite files and PostgreSQL databases, and
//! [`FreshDb`], one that a test removes when it is done.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::{AssertSqlSafe, Connection as _, Executor as _, PgConnection, SqliteConnection};
use tempfile::TempDir;

/// Where the tests' PostgreSQL server listens (trust auth, user `postgres`),
/// unless [`POSTGRES_URL_ENV`] names another server.
pub const POSTGRES_BASE_URL: &str = "postgres://postgres@127.0.0.1:5432";

/// The environment variable that points the tests at another PostgreSQL
/// server (a URL without a database, trust auth).
pub const POSTGRES_URL_ENV: &str = "FRESHEN_TEST_PG_URL";

/// Test databases older than this are dropped by the next [`postgres_url`]
/// call in any later test process (their names carry a UUIDv7 timestamp).
const STALE_AFTER: Duration = Duration::from_secs(6 * 3600);

static CLEANED: AtomicBool = AtomicBool::new(false);

/// The tests' PostgreSQL server, without a database: [`POSTGRES_URL_ENV`]
/// when set, else [`POSTGRES_BASE_URL`].
pub fn postgres_server_url() -> String {
    std::env::var(POSTGRES_URL_ENV).unwrap_or_else(|_| POSTGRES_BASE_URL.to_string())
}

/// Creates a fresh, empty database `freshen_t_<uuid simple>` on the
/// PostgreSQL server at 127.0.0.1:5432 (user `postgres`, trust auth) and
/// returns its URL, `postgres://postgres@127.0.0.1:5432/freshen_t_<...>`.
///
/// Panics when the server is unreachable, naming the command that starts
/// it. Databases are left behind for inspection; the first call in a
/// process drops the `freshen_t_*` databases older than six hours. The
/// server is [`postgres_server_url`]. For a database the test removes
/// again, use [`FreshDb`].
pub async fn postgres_url() -> String {
    let base = postgres_server_url();
    let name = create_database(&base).await;
    format!("{base}/{name}")
}

/// A connection to the server's `postgres` database, or a panic naming the
/// command that starts the server.
async fn admin_connection(base: &str) -> PgConnection {
    // Plain TCP: the server is on loopback, and a TLS handshake per
    // connection would dominate a debug build's test time.
    let admin = format!("{base}/postgres?sslmode=disable");
    let unreachable = format!(
        "PostgreSQL is not reachable at {base}: start it with `pg_ctlcluster 15 main start` \
         (install: apt-get install postgresql), or point {POSTGRES_URL_ENV} at a server with trust auth"
    );
    match tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(&admin)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => panic!("{unreachable} ({e})"),
        Err(_) => panic!("{unreachable} (connect timed out after 10 s)"),
    }
}

/// Creates a database `freshen_t_<uuid simple>` on the server at `base`
/// and returns its name.
async fn create_database(base: &str) -> String {
    let mut conn = admin_connection(base).await;
    if !CLEANED.swap(true, Ordering::SeqCst) {
        drop_stale(&mut conn).await;
    }
    let name = format!("freshen_t_{}", uuid::Uuid::now_v7().simple());
    conn.execute(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .await
        .unwrap_or_else(|e| panic!("freshen-testkit: CREATE DATABASE {name} failed: {e}"));
    let _ = conn.close().await;
    name
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

    /// Runs raw SQL (possibly several statements) on the database at
    /// `url`, on a connection of its own outside any store: for setting up
    /// failure injection (triggers that raise) or reading what a store
    /// wrote. Panics on any error.
    pub async fn exec_raw(&self, url: &str, sql: &'static str) {
        match self {
            Db::Sqlite => {
                let mut c = SqliteConnection::connect(url)
                    .await
                    .unwrap_or_else(|e| panic!("freshen-testkit: connect to {url}: {e}"));
                sqlx::raw_sql(sql)
                    .execute(&mut c)
                    .await
                    .unwrap_or_else(|e| panic!("freshen-testkit: raw SQL on {url}: {e}"));
                c.close().await.expect("close the SQLite connection");
            }
            Db::Postgres => {
                let mut c = PgConnection::connect(url)
                    .await
                    .unwrap_or_else(|e| panic!("freshen-testkit: connect to {url}: {e}"));
                sqlx::raw_sql(sql)
                    .execute(&mut c)
                    .await
                    .unwrap_or_else(|e| panic!("freshen-testkit: raw SQL on {url}: {e}"));
                c.close().await.expect("close the PostgreSQL connection");
            }
        }
    }
}

/// A fresh, empty database for one test scenario, which the test removes
/// with [`FreshDb::remove`] when it is done (also after a failure, so a
/// long run leaves no databases behind).
///
/// - SQLite: `sqlite://<temp dir>/data/freshen.db`, its `data` directory
///   made here (the store opens files only in directories that exist).
/// - PostgreSQL: a new database on [`postgres_server_url`], with
///   `?sslmode=disable` (the server is on loopback, and a TLS handshake per
///   connection would dominate a debug build's test time).
///
/// Its temporary directory lives as long as the value, for both kinds.
#[derive(Debug)]
pub struct FreshDb {
    kind: Db,
    url: String,
    /// The PostgreSQL database's name, for `DROP DATABASE`.
    postgres_name: Option<String>,
    dir: TempDir,
}

impl FreshDb {
    /// Creates the database (PostgreSQL) or picks its file (SQLite).
    /// Panics when the PostgreSQL server is unreachable, naming the command
    /// that starts it.
    pub async fn create(kind: Db) -> FreshDb {
        let dir = tempfile::tempdir().expect("freshen-testkit: creating a temp dir failed");
        let (url, postgres_name) = match kind {
            Db::Sqlite => {
                let data = dir.path().join("data");
                std::fs::create_dir(&data).expect("freshen-testkit: creating the data dir failed");
                (sqlite_url(&data), None)
            }
            Db::Postgres => {
                let base = postgres_server_url();
                let name = create_database(&base).await;
                (format!("{base}/{name}?sslmode=disable"), Some(name))
            }
        };
        FreshDb {
            kind,
            url,
            postgres_name,
            dir,
        }
    }

    /// Which back end it is.
    pub fn kind(&self) -> Db {
        self.kind
    }

    /// The database's URL, as a store or the `freshen` binary takes it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The scratch directory that holds the SQLite file (present for
    /// PostgreSQL too, for the test's own files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs raw SQL on this database ([`Db::exec_raw`]).
    pub async fn exec_raw(&self, sql: &'static str) {
        self.kind.exec_raw(&self.url, sql).await
    }

    /// Removes the database: the SQLite file with its directory, or the
    /// PostgreSQL database, ending connections a failed test left open.
    pub async fn remove(self) {
        if let Some(name) = &self.postgres_name {
            // Best effort, as a panic here would hide the test's own outcome;
            // a database left over is dropped as stale by a later run.
            let mut admin = admin_connection(&postgres_server_url()).await;
            let _ = admin
                .execute(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .await;
            let _ = admin.close().await;
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
        admin_connection("postgres://postgres@127.0.0.1:1").await;
    }

    #[test]
    fn urls() {
        assert_eq!(sqlite_url(Path::new("/d")), "sqlite:///d/freshen.db");
        assert_eq!(Db::Postgres.name(), "postgres");
    }

    #[tokio::test]
    async fn fresh_sqlite_is_a_file_in_its_own_directory() {
        let db = FreshDb::create(Db::Sqlite).await;
        assert_eq!(db.kind(), Db::Sqlite);
        assert_eq!(db.url(), sqlite_url(&db.dir().join("data")));
        assert!(db.dir().join("data").is_dir());
        assert!(!db.dir().join("data/freshen.db").exists());
        db.remove().await;
    }
}
