//! Embedded migrations from an empty database to the latest, twice (the second run applies nothing),
//! and the SQLite connection settings the store relies on.

use store::{Backend, Db, MigrationReport};

use crate::support::{self, with_postgres};

fn assert_first_run(report: &MigrationReport, backend: Backend) {
    assert_eq!(report.backend, backend);
    assert!(report.total >= 1);
    assert_eq!(
        report.applied.len(),
        report.total,
        "an empty database gets every migration"
    );
    assert_eq!(report.applied[0].version, 1);
    assert_eq!(report.applied[0].description, "token cache");
}

fn assert_second_run(report: &MigrationReport, first: &MigrationReport) {
    assert!(
        report.applied.is_empty(),
        "second run applied {:?}",
        report.applied
    );
    assert_eq!(report.total, first.total);
}

#[tokio::test]
async fn sqlite_file_from_empty_to_latest_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not/yet/there/wx.db");
    let url = format!("sqlite://{}", path.display());

    let db = Db::connect(&url).await.unwrap();
    assert!(path.exists(), "the file and its directories are created");
    let first = db.migrate().await.unwrap();
    assert_first_run(&first, Backend::Sqlite);
    db.close().await;

    // A fresh pool on the same file, as after a restart.
    let db = Db::connect(&url).await.unwrap();
    let second = db.migrate().await.unwrap();
    assert_second_run(&second, &first);

    let pool = db.sqlite().unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'token_%' ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(tables, ["token_cache", "token_lease"]);
}

#[tokio::test]
async fn sqlite_file_connections_use_wal_busy_timeout_and_foreign_keys() {
    let (db, _url, _dir) = support::sqlite_file().await;
    let pool = db.sqlite().unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(mode.to_lowercase(), "wal");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(fk, 1);
    let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(busy >= 1000, "busy_timeout {busy} ms");
}

#[tokio::test]
async fn sqlite_memory_from_empty_to_latest_twice() {
    let db = Db::connect("sqlite::memory:").await.unwrap();
    let first = db.migrate().await.unwrap();
    assert_first_run(&first, Backend::Sqlite);
    // Same pool: the single connection keeps the in-memory database (and its migrations) alive.
    let second = db.migrate().await.unwrap();
    assert_second_run(&second, &first);
}

#[tokio::test]
async fn postgres_from_empty_to_latest_twice() {
    with_postgres(|url| async move {
        let db = Db::connect(&url).await.unwrap();
        let first = db.migrate().await.unwrap();
        assert_first_run(&first, Backend::Postgres);
        db.close().await;

        let db = Db::connect(&url).await.unwrap();
        let second = db.migrate().await.unwrap();
        assert_second_run(&second, &first);
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name LIKE 'token_%' ORDER BY 1",
        )
        .fetch_all(db.postgres().unwrap())
        .await
        .unwrap();
        assert_eq!(tables, ["token_cache", "token_lease"]);
        db.close().await;
    })
    .await;
}

#[tokio::test]
async fn unknown_schemes_are_refused_without_echoing_the_url() {
    let err = Db::connect("mysql://root:hunter2@localhost/wx")
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, store::Error::UnsupportedUrl { .. }), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
}
