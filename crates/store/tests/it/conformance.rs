//! The wx-api token-store behaviour suite on every SQL backend, plus what only the SQL store promises
//! (the version column, Debug without values).

use secrecy::SecretString;
use wx_api::token::conformance::{self, LeaseClock};
use wx_api::token::{CachedToken, TokenKey, TokenKind, TokenStore};

use crate::support::{self, prefix, store, with_postgres};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_on_sqlite_file() {
    let (db, _url, _dir) = support::sqlite_file().await;
    conformance::run_all_with(&store(&db), &prefix("sqlite-file"), LeaseClock::Caller)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_on_sqlite_memory() {
    let db = support::sqlite_memory().await;
    conformance::run_all_with(&store(&db), &prefix("sqlite-mem"), LeaseClock::Caller)
        .await
        .unwrap();
}

/// The conservative variant (real wait for lease expiry) must hold for SQL stores too, since it is
/// what an unknown store gets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conservative_suite_on_sqlite_memory() {
    let db = support::sqlite_memory().await;
    conformance::run_all(&store(&db), &prefix("sqlite-mem-real"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_on_postgres() {
    with_postgres(|url| async move {
        let db = store::Db::connect(&url).await.unwrap();
        db.migrate().await.unwrap();
        conformance::run_all_with(&store(&db), &prefix("pg"), LeaseClock::Caller)
            .await
            .unwrap();
        db.close().await;
    })
    .await;
}

fn key(tenant: &str) -> TokenKey {
    TokenKey {
        tenant: tenant.to_owned(),
        owner: "wwcorp".to_owned(),
        secret_id: "s1".to_owned(),
        kind: TokenKind::WecomAccessToken,
    }
}

fn token(value: &str) -> CachedToken {
    CachedToken {
        value: SecretString::from(value.to_owned()),
        expires_at_ms: 1_000,
    }
}

async fn version_is_bumped_by_put_and_reset_by_invalidate(db: &store::Db) {
    let s = store(db);
    let k = key(&prefix("version"));
    assert_eq!(s.version(&k).await.unwrap(), None);
    s.put(&k, &token("a")).await.unwrap();
    assert_eq!(s.version(&k).await.unwrap(), Some(1));
    s.put(&k, &token("b")).await.unwrap();
    s.put(&k, &token("c")).await.unwrap();
    assert_eq!(s.version(&k).await.unwrap(), Some(3));
    assert!(s.invalidate(&k, "c").await.unwrap());
    assert_eq!(s.version(&k).await.unwrap(), None);
    s.put(&k, &token("d")).await.unwrap();
    assert_eq!(s.version(&k).await.unwrap(), Some(1));
}

#[tokio::test]
async fn version_on_sqlite() {
    version_is_bumped_by_put_and_reset_by_invalidate(&support::sqlite_memory().await).await;
}

#[tokio::test]
async fn version_on_postgres() {
    with_postgres(|url| async move {
        let db = store::Db::connect(&url).await.unwrap();
        db.migrate().await.unwrap();
        version_is_bumped_by_put_and_reset_by_invalidate(&db).await;
        db.close().await;
    })
    .await;
}

/// ("a:b", "c") and ("a", "b:c") are different keys: the flat `cache_key()` escapes its ':' separator
/// (since 6de608a) and the SQL store keys on the separate columns; both keep them apart.
#[tokio::test]
async fn keys_whose_parts_contain_the_separator_do_not_collide() {
    let s = store(&support::sqlite_memory().await);
    let p = prefix("sep");
    let one = TokenKey {
        tenant: format!("{p}:x"),
        owner: "y".to_owned(),
        ..key("")
    };
    let two = TokenKey {
        tenant: p.clone(),
        owner: "x:y".to_owned(),
        ..key("")
    };
    assert_ne!(one.cache_key(), two.cache_key(), "flat keys stay apart");
    s.put(&one, &token("one")).await.unwrap();
    assert!(s.get(&two).await.unwrap().is_none());
}

#[tokio::test]
async fn debug_never_shows_values() {
    let s = store(&support::sqlite_memory().await);
    let k = key(&prefix("debug"));
    s.put(&k, &token("SECRET-TOKEN-VALUE")).await.unwrap();
    let got = s.get(&k).await.unwrap().unwrap();
    let printed = format!("{s:?} {got:?} {:?}", s.db());
    assert!(!printed.contains("SECRET-TOKEN-VALUE"), "{printed}");
    assert!(printed.contains("Sqlite"), "{printed}");
}

#[tokio::test]
async fn postgres_debug_and_errors_never_show_the_password() {
    with_postgres(|url| async move {
        // Local test servers use trust auth, so a password in the URL is accepted and ignored.
        let mut with_password = url::Url::parse(&url).unwrap();
        with_password
            .set_password(Some("hunter2-not-shown"))
            .unwrap();
        let db = store::Db::connect(with_password.as_str()).await.unwrap();
        let printed = format!("{db:?} {:?}", store(&db));
        assert!(!printed.contains("hunter2"), "{printed}");
        // Querying before migrating fails; the error names the problem, not the URL.
        let err = store(&db).get(&key("t")).await.unwrap_err();
        let msg = format!("{err} {err:?}");
        assert!(msg.contains("token_cache"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        db.close().await;
    })
    .await;
}
