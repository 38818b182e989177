//! Two `SqlTokenStore`s with their own pools on one database behave as two replicas: they see each
//! other's tokens and only one of them gets a lease.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use store::{Db, SqlTokenStore};
use wx_api::token::{CachedToken, TokenKey, TokenKind, TokenStore};

use crate::support::{self, prefix, with_postgres};

const TASKS: usize = 20;

fn key(tenant: String) -> TokenKey {
    TokenKey {
        tenant,
        owner: "wwcorp".to_owned(),
        secret_id: "s1".to_owned(),
        kind: TokenKind::WecomAccessToken,
    }
}

/// `TASKS` tasks on several threads, alternating between the two replicas, race for one lease.
async fn two_replicas_one_lease(url: &str) {
    let a = Arc::new(SqlTokenStore::new(Db::connect(url).await.unwrap()));
    let b = Arc::new(SqlTokenStore::new(Db::connect(url).await.unwrap()));
    let k = key(prefix("replicas"));
    let now = 1_700_000_000_000;

    let mut handles = Vec::new();
    for i in 0..TASKS {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let k = k.clone();
        handles.push(tokio::spawn(async move {
            store
                .try_lease(
                    &k,
                    &format!("replica-{}-task-{i}", i % 2),
                    now,
                    Duration::from_secs(60),
                )
                .await
        }));
    }
    let mut winners = 0;
    for h in handles {
        if h.await.unwrap().unwrap() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1, "{winners} of {TASKS} tasks got the lease");

    // What one replica stores, the other reads; what one invalidates is gone for both.
    let token = CachedToken {
        value: SecretString::from("shared".to_owned()),
        expires_at_ms: 5,
    };
    a.put(&k, &token).await.unwrap();
    assert_eq!(b.get(&k).await.unwrap().unwrap().value(), "shared");
    assert!(b.invalidate(&k, "shared").await.unwrap());
    assert!(a.get(&k).await.unwrap().is_none());

    a.db().close().await;
    b.db().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_file_two_replicas() {
    let (db, url, _dir) = support::sqlite_file().await;
    db.close().await;
    two_replicas_one_lease(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_two_replicas() {
    with_postgres(|url| async move {
        let db = Db::connect(&url).await.unwrap();
        db.migrate().await.unwrap();
        db.close().await;
        two_replicas_one_lease(&url).await;
    })
    .await;
}
