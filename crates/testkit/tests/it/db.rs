use freshen_testkit::{Db, FreshDb, both_stores, postgres_server_url, postgres_url, sqlite_url};
use sqlx::{Connection as _, PgConnection, Row as _};

#[tokio::test(flavor = "multi_thread")]
async fn postgres_url_gives_a_fresh_usable_database() {
    let a = postgres_url().await;
    let b = postgres_url().await;
    assert_ne!(a, b);
    assert!(
        a.starts_with("postgres://postgres@127.0.0.1:5432/freshen_t_"),
        "{a}"
    );
    let name = a.rsplit('/').next().unwrap();
    assert_eq!(name.len(), "freshen_t_".len() + 32);

    let mut conn = PgConnection::connect(&a).await.unwrap();
    let db: String = sqlx::query("SELECT current_database()")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
    assert_eq!(db, name);
    let tables: i64 =
        sqlx::query("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
            .fetch_one(&mut conn)
            .await
            .unwrap()
            .get(0);
    assert_eq!(tables, 0, "a fresh database has no tables");
    sqlx::query("CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT NOT NULL)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO t VALUES (1, 'x')")
        .execute(&mut conn)
        .await
        .unwrap();
    let v: String = sqlx::query("SELECT v FROM t WHERE id = 1")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "x");
}

#[test]
fn sqlite_url_format() {
    assert_eq!(
        sqlite_url(std::path::Path::new("/tmp/x")),
        "sqlite:///tmp/x/freshen.db"
    );
}

async fn store_round_trip(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let url = db.url(dir.path()).await;
    match db {
        Db::Sqlite => {
            assert!(url.starts_with("sqlite://"));
            let opts: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
            let pool = sqlx::SqlitePool::connect_with(opts.create_if_missing(true))
                .await
                .unwrap();
            sqlx::query("CREATE TABLE k (v TEXT)")
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query("INSERT INTO k VALUES ('sqlite')")
                .execute(&pool)
                .await
                .unwrap();
            let v: String = sqlx::query("SELECT v FROM k")
                .fetch_one(&pool)
                .await
                .unwrap()
                .get(0);
            assert_eq!(v, db.name());
            assert!(dir.path().join("freshen.db").exists());
        }
        Db::Postgres => {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            sqlx::query("CREATE TABLE k (v TEXT)")
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query("INSERT INTO k VALUES ('postgres')")
                .execute(&pool)
                .await
                .unwrap();
            let v: String = sqlx::query("SELECT v FROM k")
                .fetch_one(&pool)
                .await
                .unwrap()
                .get(0);
            assert_eq!(v, db.name());
        }
    }
}

both_stores!(store_round_trip);

/// A fresh database takes raw SQL, and `remove` drops it (PostgreSQL) or
/// its directory (SQLite).
async fn fresh_db_is_removed(db: Db) {
    let fresh = FreshDb::create(db).await;
    assert_eq!(fresh.kind(), db);
    let url = fresh.url().to_string();
    let dir = fresh.dir().to_path_buf();
    if db == Db::Sqlite {
        // SQLite creates the file only when asked to; a store would.
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let opts: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
        sqlx::SqliteConnection::connect_with(&opts.create_if_missing(true))
            .await
            .unwrap()
            .close()
            .await
            .unwrap();
    } else {
        assert!(url.starts_with(&format!("{}/freshen_t_", postgres_server_url())));
        assert!(url.ends_with("?sslmode=disable"), "{url}");
    }
    fresh
        .exec_raw("CREATE TABLE k (v TEXT); INSERT INTO k VALUES ('x');")
        .await;
    db.exec_raw(&url, "INSERT INTO k VALUES ('y');").await;
    fresh.remove().await;
    match db {
        Db::Sqlite => assert!(!dir.exists(), "the directory is removed"),
        Db::Postgres => {
            let err = PgConnection::connect(&url).await.unwrap_err();
            assert!(err.to_string().contains("does not exist"), "{err}");
        }
    }
}

both_stores!(fresh_db_is_removed);
