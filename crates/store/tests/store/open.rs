//! Opening databases: URL forms, errors, and the `$N` placeholder behaviour
//! every query relies on.

use freshen_store::{Backend, Store, StoreError};
use sqlx::Connection;

use freshen_testkit::{FreshDb, postgres_server_url};

use crate::common::{Ctx, Db, both, obs};

both!(reopen_keeps_data, dollar_placeholders_bind_by_number);

async fn reopen_keeps_data(ctx: Ctx) {
    let expected = match ctx.kind {
        Db::Sqlite => Backend::Sqlite,
        Db::Postgres => Backend::Postgres,
    };
    assert_eq!(ctx.store.backend(), expected);
    ctx.store
        .record(&obs("docker.io/library/busybox:1", 0, "sha256:b", &[], &[]))
        .await
        .unwrap();
    // A second open runs the (already applied) migrations again: a no-op.
    let again = ctx.another_store().await;
    assert_eq!(again.current_all().await.unwrap().len(), 1);
    assert_eq!(again.redacted_url(), ctx.url);
    again.close().await;
}

/// sqlx-sqlite binds `$N` to the N-th argument, so one query text serves both
/// backends even when a placeholder is reused or appears out of order.
async fn dollar_placeholders_bind_by_number(ctx: Ctx) {
    const SQL: &str = "SELECT $2 || '-' || $1 || '-' || $2 || '-' || $3";
    let got: String = match ctx.kind {
        Db::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&ctx.url).await.unwrap();
            sqlx::query_scalar(SQL)
                .bind("one")
                .bind("two")
                .bind("three")
                .fetch_one(&mut c)
                .await
                .unwrap()
        }
        Db::Postgres => {
            let mut c = sqlx::PgConnection::connect(&ctx.url).await.unwrap();
            sqlx::query_scalar(SQL)
                .bind("one")
                .bind("two")
                .bind("three")
                .fetch_one(&mut c)
                .await
                .unwrap()
        }
    };
    assert_eq!(got, "two-one-two-three");
}

#[tokio::test]
async fn unsupported_url_names_it_without_password() {
    for url in [
        "mysql://freshen:hunter2@db:3306/freshen",
        "freshen.db",
        "sqlite://",
    ] {
        let err = Store::open(url).await.unwrap_err();
        assert!(
            matches!(err, StoreError::UnsupportedUrl { .. }),
            "{url}: {err}"
        );
        let msg = err.to_string();
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(msg.contains("sqlite:///"), "says what is accepted: {msg}");
    }
    let err = Store::open("mysql://freshen:hunter2@db:3306/freshen")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("mysql://freshen:***@db:3306/freshen"),
        "{err}"
    );
}

#[tokio::test]
async fn postgres_open_error_redacts_password() {
    let fresh = FreshDb::create(Db::Postgres).await;
    let base = fresh.url().to_string();
    fresh.remove().await;
    // The server is up (FreshDb::create checked) but the database is gone.
    let server = postgres_server_url();
    let with_password = server.replacen("postgres@", "postgres:hunter2@", 1);
    assert_ne!(with_password, server, "test URL has a user part");
    let url = base.replacen(&server, &with_password, 1);
    let err = Store::open(&url).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Open { .. }), "{msg}");
    assert!(
        msg.starts_with("cannot open database postgres://postgres:***@"),
        "{msg}"
    );
    assert!(!msg.contains("hunter2"), "{msg}");
}

#[tokio::test]
async fn sqlite_open_error_names_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let url = format!("sqlite://{}/freshen.db", blocker.display());
    let err = Store::open(&url).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Open { .. }), "{msg}");
    assert_eq!(
        msg,
        format!(
            "cannot open database {url}: {} is not a directory",
            blocker.display()
        )
    );
}

#[tokio::test]
async fn a_sqlite_file_in_a_missing_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such");
    let url = format!("sqlite://{}/freshen.db", missing.display());
    let msg = Store::open(&url).await.unwrap_err().to_string();
    assert_eq!(
        msg,
        format!(
            "cannot open database {url}: directory {} does not exist",
            missing.display()
        )
    );
    assert!(!dir.path().join("no").exists(), "nothing is created");
}

#[tokio::test]
async fn sqlite_memory_and_relative_forms() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    let r = store
        .record(&obs("docker.io/library/busybox:1", 0, "sha256:b", &[], &[]))
        .await
        .unwrap();
    assert_eq!(r.top, freshen_store::Status::New);
    assert_eq!(store.current_all().await.unwrap().len(), 1);
    store.close().await;

    // sqlite://relative resolves against the working directory: use a
    // relative path from here into a temp dir under target/ (cwd is the crate).
    let dir = tempfile::Builder::new()
        .prefix("store-rel-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let cwd = std::env::current_dir().unwrap();
    let rel = pathdiff(dir.path(), &cwd);
    std::fs::create_dir(dir.path().join("nested")).unwrap();
    let url = format!("sqlite://{}/nested/rel.db", rel.display());
    let store = Store::open(&url)
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    store.close().await;
    assert!(dir.path().join("nested/rel.db").is_file(), "{url}");
}

/// `to` relative to `from` (both absolute), with `..` as needed.
fn pathdiff(to: &std::path::Path, from: &std::path::Path) -> std::path::PathBuf {
    let to: Vec<_> = to.components().collect();
    let from: Vec<_> = from.components().collect();
    let common = to.iter().zip(&from).take_while(|(a, b)| a == b).count();
    let mut out = std::path::PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in &to[common..] {
        out.push(c);
    }
    out
}
