//! Turning a database URL into a migrated connection pool.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Connection;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::sql::Db;
use crate::{Store, StoreError};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a SQLite writer waits for another connection's or process's write lock.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections per SQLite file: WAL lets readers run beside the one writer.
const SQLITE_MAX_CONNECTIONS: u32 = 8;
/// Connections per PostgreSQL replica.
const POSTGRES_MAX_CONNECTIONS: u32 = 10;
/// How long to wait for a pooled connection; also bounds how long `open`
/// keeps retrying an unreachable server.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

enum Kind {
    SqliteFile,
    SqliteMemory,
    Postgres,
}

fn classify(url: &str) -> Option<Kind> {
    if url == "sqlite::memory:" || url.starts_with("sqlite::memory:?") {
        Some(Kind::SqliteMemory)
    } else if let Some(rest) = url.strip_prefix("sqlite://") {
        match rest {
            "" => None,
            ":memory:" => Some(Kind::SqliteMemory),
            _ if rest.starts_with('?') => None,
            _ => Some(Kind::SqliteFile),
        }
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Some(Kind::Postgres)
    } else {
        None
    }
}

pub(crate) async fn open(url: &str) -> Result<Store, StoreError> {
    let redacted = redact_url(url);
    let secrets = url_secrets(url);
    let clean = |message: String| scrub(message, &secrets);
    let open_err = |reason: String| StoreError::Open {
        url: redacted.clone(),
        reason: clean(reason),
    };

    let kind = classify(url).ok_or_else(|| StoreError::UnsupportedUrl {
        url: redacted.clone(),
    })?;
    // SQLite files: processes opening one at once take turns migrating it.
    let mut migrate_lock: Option<std::path::PathBuf> = None;
    let db = match kind {
        Kind::SqliteFile | Kind::SqliteMemory => {
            let memory = matches!(kind, Kind::SqliteMemory);
            let mut options = SqliteConnectOptions::from_str(url)
                .map_err(|e| open_err(e.to_string()))?
                .create_if_missing(true)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true)
                .synchronous(SqliteSynchronous::Normal);
            let mut pool = SqlitePoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT);
            if memory {
                // An in-memory database lives as long as a connection to it:
                // keep exactly one, forever.
                pool = pool
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None);
            } else {
                options = options.journal_mode(SqliteJournalMode::Wal);
                pool = pool.max_connections(SQLITE_MAX_CONNECTIONS);
                require_parent_dir(options.get_filename()).map_err(open_err)?;
                let mut lock = options.get_filename().as_os_str().to_owned();
                lock.push(".migrate-lock");
                migrate_lock = Some(lock.into());
            }
            // Turning a new file to WAL takes a lock busy_timeout can't wait
            // for (sqlx's `journal_mode` note): two processes opening a
            // fresh database at once can see "database is locked" here.
            // Retry that, as the busy timeout would.
            let started = std::time::Instant::now();
            let pool = loop {
                match pool.clone().connect_with(options.clone()).await {
                    Err(sqlx::Error::Database(e))
                        if e.code().as_deref() == Some("5")
                            && started.elapsed() < SQLITE_BUSY_TIMEOUT =>
                    {
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                    other => break other.map_err(|e| open_err(e.to_string()))?,
                }
            };
            Db::Sqlite(pool)
        }
        Kind::Postgres => {
            let options = PgConnectOptions::from_str(url).map_err(|e| open_err(e.to_string()))?;
            let pool = match PgPoolOptions::new()
                .max_connections(POSTGRES_MAX_CONNECTIONS)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options.clone())
                .await
            {
                Ok(pool) => pool,
                // The pool retries a refused connection until its timeout and
                // then only says "timed out"; one direct attempt tells why.
                Err(sqlx::Error::PoolTimedOut) => {
                    let why = match PgConnection::connect_with(&options).await {
                        Ok(_) => "the server accepted a connection only after the timeout".into(),
                        Err(e) => e.to_string(),
                    };
                    return Err(open_err(format!(
                        "no connection within {}s: {why}",
                        ACQUIRE_TIMEOUT.as_secs()
                    )));
                }
                Err(e) => return Err(open_err(e.to_string())),
            };
            Db::Postgres(pool)
        }
    };

    // Held until migrated; dropping the file releases the lock.
    let _guard = match migrate_lock {
        Some(path) => Some(
            tokio::task::spawn_blocking(move || lock_file(&path))
                .await
                .map_err(|e| open_err(format!("migration lock task failed: {e}")))?
                .map_err(open_err)?,
        ),
        None => None,
    };
    migrate(&db).await.map_err(|e| StoreError::Migrate {
        url: redacted.clone(),
        reason: clean(e.to_string()),
    })?;
    tracing::debug!(url = %redacted, "database open and migrated");
    Ok(Store {
        db,
        redacted_url: Arc::from(redacted),
    })
}

/// The newest migration this build holds for the backend (PostgreSQL or SQLite).
pub(crate) fn latest_migration(postgres: bool) -> i64 {
    let m = if postgres {
        &POSTGRES_MIGRATIONS
    } else {
        &SQLITE_MIGRATIONS
    };
    m.iter().map(|m| m.version).max().unwrap_or(0)
}

async fn migrate(db: &Db) -> Result<(), MigrateError> {
    match db {
        // PostgreSQL's migrator holds an advisory lock, so replicas starting
        // together take turns.
        Db::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
        // SQLite's migrator has no lock: `open` serialises processes with a
        // file lock beside the database. Should two still collide (a
        // filesystem without locks), each migration is one transaction, so a
        // retry sees it applied and skips it.
        Db::Sqlite(pool) => {
            let mut attempt = 1;
            loop {
                match SQLITE_MIGRATIONS.run(pool).await {
                    Err(MigrateError::Execute(e)) if attempt < 3 => {
                        tracing::debug!(error = %e, attempt, "retrying SQLite migration");
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    other => return other,
                }
            }
        }
    }
}

/// Takes an exclusive lock on `path` (created if missing), waiting for
/// other processes that hold it. SQLite's migrator has no lock of its own,
/// and with several migrations a process that lost the race on one could
/// lose it again on the next.
fn lock_file(path: &Path) -> Result<std::fs::File, String> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| format!("cannot open the migration lock {}: {e}", path.display()))?;
    file.lock()
        .map_err(|e| format!("cannot lock {}: {e}", path.display()))?;
    Ok(file)
}

/// The SQLite file's directory must exist: a mistyped path is said, not
/// made (the caller creates a default data directory it chose itself).
fn require_parent_dir(file: &Path) -> Result<(), String> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(format!("{} is not a directory", dir.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(format!("directory {} does not exist", dir.display()))
            }
            Err(e) => Err(format!("directory {}: {e}", dir.display())),
        },
        _ => Ok(()),
    }
}

/// The URL with any password replaced by `***` (`user:pass@` becomes
/// `user:***@`, and a `password=` query parameter loses its value).
///
/// URLs with an unencoded `@` in the password are still covered: everything up
/// to the *last* `@` counts as user info, so at worst too much is hidden.
pub(crate) fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return redact_query(url);
    };
    let (scheme, rest) = url.split_at(scheme_end);
    let mut out = String::from(scheme);
    let tail = match rest.rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            match userinfo.find(':') {
                Some(colon) => {
                    out.push_str(&userinfo[..colon]);
                    out.push_str(":***");
                }
                None => out.push_str(userinfo),
            }
            &rest[at..]
        }
        None => rest,
    };
    out.push_str(&redact_query(tail));
    out
}

fn redact_query(s: &str) -> String {
    let Some(q) = s.find('?') else {
        return s.to_string();
    };
    let (head, query) = s.split_at(q + 1);
    let params: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => p.to_string(),
        })
        .collect();
    format!("{head}{}", params.join("&"))
}

/// Passwords in the URL (raw and percent-decoded), to scrub from driver
/// messages in case one ever quotes them.
fn url_secrets(url: &str) -> Vec<String> {
    let mut raw = Vec::new();
    if let Some(rest) = url.find("://").map(|i| &url[i + 3..])
        && let Some(at) = rest.rfind('@')
        && let Some((_, password)) = rest[..at].split_once(':')
    {
        raw.push(password.to_string());
    }
    if let Some((_, query)) = url.split_once('?') {
        raw.extend(query.split('&').filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.eq_ignore_ascii_case("password").then(|| v.to_string())
        }));
    }
    let mut secrets: Vec<String> = raw
        .iter()
        .flat_map(|s| [s.clone(), percent_decode(s)])
        .filter(|s| !s.is_empty())
        .collect();
    // Longest first, so a secret containing another is replaced whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    secrets
}

fn scrub(mut message: String, secrets: &[String]) -> String {
    for secret in secrets {
        if message.contains(secret.as_str()) {
            message = message.replace(secret.as_str(), "***");
        }
    }
    message
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h << 4) | l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://freshen:s3cret@db:5432/freshen"),
            "postgres://freshen:***@db:5432/freshen"
        );
        assert_eq!(
            redact_url("postgresql://u:p@ss/w@rd@db/x?sslmode=require&password=hunter2"),
            "postgresql://u:***@db/x?sslmode=require&password=***"
        );
        assert_eq!(
            redact_url("postgres://freshen@db/freshen"),
            "postgres://freshen@db/freshen"
        );
        assert_eq!(
            redact_url("sqlite:///var/lib/freshen/freshen.db"),
            "sqlite:///var/lib/freshen/freshen.db"
        );
        assert_eq!(redact_url("mysql://a:b@h/d"), "mysql://a:***@h/d");
    }

    #[test]
    fn scrubs_decoded_passwords() {
        let secrets = url_secrets("postgres://u:p%40ss@h/d");
        assert_eq!(
            scrub("auth failed for p@ss and p%40ss".into(), &secrets),
            "auth failed for *** and ***"
        );
    }

    #[tokio::test]
    async fn sqlite_connections_are_configured() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/x.db", dir.path().display());
        let store = open(&url).await.unwrap();
        let Db::Sqlite(pool) = &store.db else {
            panic!("not sqlite")
        };
        let mut c = pool.acquire().await.unwrap();
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *c)
            .await
            .unwrap();
        assert_eq!(journal, "wal");
        for (pragma, want) in [
            ("PRAGMA synchronous", 1), // NORMAL
            ("PRAGMA busy_timeout", 10_000),
            ("PRAGMA foreign_keys", 1),
        ] {
            let got: i64 = sqlx::query_scalar(pragma).fetch_one(&mut *c).await.unwrap();
            assert_eq!(got, want, "{pragma}");
        }
        drop(c);
        store.close().await;
        assert!(dir.path().join("x.db").is_file());
    }

    #[test]
    fn classifies_urls() {
        assert!(matches!(
            classify("sqlite::memory:"),
            Some(Kind::SqliteMemory)
        ));
        assert!(matches!(
            classify("sqlite:///a/b.db"),
            Some(Kind::SqliteFile)
        ));
        assert!(matches!(classify("sqlite://b.db"), Some(Kind::SqliteFile)));
        assert!(matches!(classify("postgres://h/d"), Some(Kind::Postgres)));
        assert!(matches!(classify("postgresql://h/d"), Some(Kind::Postgres)));
        assert!(classify("sqlite://").is_none());
        assert!(classify("mysql://h/d").is_none());
        assert!(classify("/tmp/x.db").is_none());
    }
}
