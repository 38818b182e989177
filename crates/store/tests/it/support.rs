//! Test databases: SQLite files in temp dirs, in-memory SQLite, and a throwaway PostgreSQL database per
//! test (created from WXBRIDGE_TEST_POSTGRES_URL and dropped afterwards, so parallel runs never collide).

use std::future::Future;

use store::{Db, SqlTokenStore};

/// A migrated SQLite database in a fresh temp dir (kept alive by the returned guard), under a
/// not-yet-existing sub-directory so the directory creation is exercised too.
pub async fn sqlite_file() -> (Db, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/nested/dir/wxbridge.db", dir.path().display());
    let db = Db::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    (db, url, dir)
}

pub async fn sqlite_memory() -> Db {
    let db = Db::connect("sqlite::memory:").await.unwrap();
    db.migrate().await.unwrap();
    db
}

pub fn store(db: &Db) -> SqlTokenStore {
    SqlTokenStore::new(db.clone())
}

/// A prefix unique to this test run, so keys never collide with another run on a shared server.
pub fn prefix(name: &str) -> String {
    format!("{name}-{:016x}", random_u64())
}

fn rand_u32() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    nanos.wrapping_mul(2_654_435_761)
}

/// The PostgreSQL server URL, or `None` (with the reason printed) to skip. Under CI=true a missing URL
/// is a failure: CI must never silently skip the PostgreSQL half of the suite.
pub fn postgres_url() -> Option<String> {
    match std::env::var("WXBRIDGE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but WXBRIDGE_TEST_POSTGRES_URL is not set"
            );
            eprintln!("skipping: WXBRIDGE_TEST_POSTGRES_URL is not set");
            None
        }
    }
}

/// Runs `body` with the URL of a brand-new empty PostgreSQL database, then drops that database even if
/// `body` panicked. Skips (returns) when no server is configured.
pub async fn with_postgres<F, Fut>(body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(server_url) = postgres_url() else {
        return;
    };
    let admin = Db::connect(&server_url).await.unwrap();
    let admin_pool = admin.postgres().unwrap().clone();
    let name = format!("wxb_test_{:016x}", random_u64());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin_pool)
        .await
        .unwrap();

    let mut url = url::Url::parse(&server_url).unwrap();
    url.set_path(&name);
    // Spawned so a panic inside the body is caught here and the database still gets dropped.
    let outcome = tokio::spawn(body(url.to_string())).await;

    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&admin_pool)
        .await
        .unwrap();
    admin.close().await;
    match outcome {
        Ok(()) => {}
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(err) => panic!("test body did not finish: {err}"),
    }
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded randomly per process and per instance: enough for a unique name.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(u64::from(rand_u32()));
    h.finish()
}
