//! wx-api's `TokenManager` on the SQL store: two managers ("replicas"), each with its own pool on one
//! database, and many concurrent callers fetch the upstream token exactly once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;
use tokio::sync::{Notify, Semaphore};
use wx_api::clock::ManualClock;
use wx_api::token::{
    CachedToken, FetchedToken, StoreError, TokenKey, TokenKind, TokenManager, TokenStore,
};

use crate::support::{self, prefix, with_postgres};

const START_MS: i64 = 1_700_000_000_000;
const CALLERS_PER_REPLICA: usize = 10;
/// Bound on waiting for the other replica to reach the lease; never reached when things work.
pub const STEP_LIMIT: Duration = Duration::from_secs(10);

/// Passes everything to the SQL store and tells the test when a lease was refused, so the test can
/// hold the upstream fetch open until the other replica has really tried and failed to take the lease.
#[derive(Debug)]
pub struct Observed {
    inner: store::SqlTokenStore,
    refused: Arc<Notify>,
}

impl Observed {
    pub fn new(inner: store::SqlTokenStore, refused: Arc<Notify>) -> Self {
        Observed { inner, refused }
    }
}

#[async_trait]
impl TokenStore for Observed {
    async fn get(&self, key: &TokenKey) -> Result<Option<CachedToken>, StoreError> {
        self.inner.get(key).await
    }
    async fn put(&self, key: &TokenKey, token: &CachedToken) -> Result<(), StoreError> {
        self.inner.put(key, token).await
    }
    async fn invalidate(&self, key: &TokenKey, value: &str) -> Result<bool, StoreError> {
        self.inner.invalidate(key, value).await
    }
    async fn try_lease(
        &self,
        key: &TokenKey,
        holder: &str,
        now_ms: i64,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let taken = self.inner.try_lease(key, holder, now_ms, ttl).await?;
        if !taken {
            self.refused.notify_one();
        }
        Ok(taken)
    }
    async fn release_lease(&self, key: &TokenKey, holder: &str) -> Result<(), StoreError> {
        self.inner.release_lease(key, holder).await
    }
    async fn wait_for_update(&self, key: &TokenKey, timeout: Duration) -> Result<(), StoreError> {
        self.inner.wait_for_update(key, timeout).await
    }
}

async fn two_managers_fetch_once(url: &str) {
    let clock = ManualClock::new(START_MS);
    let refused = Arc::new(Notify::new());
    let mut managers = Vec::new();
    for _ in 0..2 {
        let db = store::Db::connect(url).await.unwrap();
        let observed = Observed {
            inner: store::SqlTokenStore::new(db),
            refused: refused.clone(),
        };
        managers.push(Arc::new(TokenManager::new(
            Arc::new(observed),
            Arc::new(clock.clone()),
        )));
    }
    let key = TokenKey::new(
        prefix("manager"),
        "wwcorp",
        &SecretString::from("corp-secret".to_owned()),
        TokenKind::WecomAccessToken,
    );

    let fetches = Arc::new(AtomicUsize::new(0));
    // The upstream answer is held until the test opens this gate.
    let gate = Arc::new(Semaphore::new(0));
    let mut tasks = Vec::new();
    for manager in &managers {
        for _ in 0..CALLERS_PER_REPLICA {
            let (manager, key, fetches, gate) =
                (manager.clone(), key.clone(), fetches.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                let fetch = || async move {
                    let n = fetches.fetch_add(1, Ordering::SeqCst) + 1;
                    let _permit = gate.acquire().await.unwrap();
                    Ok(FetchedToken {
                        value: SecretString::from(format!("token-{n}")),
                        expires_in: Duration::from_secs(7200),
                    })
                };
                manager
                    .get_or_refresh(&key, fetch)
                    .await
                    .map(|t| t.value().to_owned())
            }));
        }
    }
    // One replica holds the lease and sits in the fetch; wait until the other has been refused.
    tokio::time::timeout(STEP_LIMIT, refused.notified())
        .await
        .unwrap();
    gate.add_permits(CALLERS_PER_REPLICA * 2);

    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), "token-1");
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "upstream token fetches");
    for m in &managers {
        m.store().release_lease(&key, m.holder_id()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_two_managers_fetch_once() {
    let (db, url, _dir) = support::sqlite_file().await;
    db.close().await;
    two_managers_fetch_once(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_two_managers_fetch_once() {
    with_postgres(|url| async move {
        let db = store::Db::connect(&url).await.unwrap();
        db.migrate().await.unwrap();
        db.close().await;
        two_managers_fetch_once(&url).await;
    })
    .await;
}
