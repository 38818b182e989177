//! The token manager with a fake fetch: single flight, refresh margin, shared failures, compare-and-delete,
//! and two managers ("processes") sharing one store through its lease.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use secrecy::SecretString;
use tokio::sync::Notify;
use wx_api::clock::{Clock, ManualClock};
use wx_api::token::{
    FetchedToken, MemoryTokenStore, TokenKey, TokenKind, TokenManager, TokenManagerConfig,
    TokenStore,
};
use wx_api::{ApiError, ErrCode};

const START_MS: i64 = 1_700_000_000_000;

fn key(tenant: &str) -> TokenKey {
    TokenKey::new(
        tenant,
        "ww-corp",
        &SecretString::from("s3cret".to_owned()),
        TokenKind::WecomAccessToken,
    )
}

fn manager(store: Arc<dyn TokenStore>, clock: &ManualClock) -> Arc<TokenManager> {
    Arc::new(TokenManager::new(store, Arc::new(clock.clone())))
}

/// A fetch that counts its calls and hands out "token-1", "token-2"... valid 7200 s.
#[derive(Clone, Default)]
struct Upstream {
    calls: Arc<AtomicUsize>,
}

impl Upstream {
    async fn fetch(&self) -> Result<FetchedToken, ApiError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        // Let other callers pile up behind this refresh.
        tokio::task::yield_now().await;
        Ok(FetchedToken {
            value: SecretString::from(format!("token-{n}")),
            expires_in: Duration::from_secs(7200),
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[test]
fn key_uses_a_secret_fingerprint_not_the_secret() {
    let k = key("t1");
    assert_eq!(k.secret_id.len(), 16);
    assert!(k.secret_id.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(!k.cache_key().contains("s3cret"));
    let other = TokenKey::new(
        "t1",
        "ww-corp",
        &SecretString::from("rotated".to_owned()),
        TokenKind::WecomAccessToken,
    );
    assert_ne!(
        k.secret_id, other.secret_id,
        "a rotated secret gets its own cache entry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_callers_after_expiry_fetch_once() {
    let clock = ManualClock::new(START_MS);
    let tokens = manager(Arc::new(MemoryTokenStore::new()), &clock);
    let upstream = Upstream::default();
    let k = key("thousand");

    let first = tokens
        .get_or_refresh(&k, || upstream.fetch())
        .await
        .unwrap();
    assert_eq!(first.value(), "token-1");
    clock.advance(Duration::from_secs(7200));

    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let (tokens, upstream, k) = (tokens.clone(), upstream.clone(), k.clone());
        tasks.push(tokio::spawn(async move {
            tokens
                .get_or_refresh(&k, || upstream.fetch())
                .await
                .map(|t| t.value().to_owned())
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), "token-2");
    }
    assert_eq!(
        upstream.calls(),
        2,
        "one fetch at start, exactly one after expiry"
    );
}

#[tokio::test]
async fn refreshes_inside_the_margin_not_before() {
    let clock = ManualClock::new(START_MS);
    let tokens = manager(Arc::new(MemoryTokenStore::new()), &clock);
    let upstream = Upstream::default();
    let k = key("margin");
    tokens
        .get_or_refresh(&k, || upstream.fetch())
        .await
        .unwrap();
    // 7200 s lifetime, 5 min margin: still fresh one second before the margin starts.
    clock.advance(Duration::from_secs(7200 - 300 - 1));
    assert_eq!(
        tokens
            .get_or_refresh(&k, || upstream.fetch())
            .await
            .unwrap()
            .value(),
        "token-1"
    );
    assert_eq!(upstream.calls(), 1);
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        tokens
            .get_or_refresh(&k, || upstream.fetch())
            .await
            .unwrap()
            .value(),
        "token-2"
    );
    assert_eq!(upstream.calls(), 2);
}

#[tokio::test]
async fn short_lived_token_is_not_refetched_on_every_call() {
    let clock = ManualClock::new(START_MS);
    let tokens = manager(Arc::new(MemoryTokenStore::new()), &clock);
    let calls = AtomicUsize::new(0);
    let k = key("short");
    let fetch = || async {
        calls.fetch_add(1, Ordering::SeqCst);
        // stable_token near its renewal answers with as little as 300 s, equal to the margin.
        Ok(FetchedToken {
            value: SecretString::from("short".to_owned()),
            expires_in: Duration::from_secs(300),
        })
    };
    tokens.get_or_refresh(&k, fetch).await.unwrap();
    clock.advance(Duration::from_secs(60));
    tokens.get_or_refresh(&k, fetch).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_failed_refresh_is_shared_with_queued_callers() {
    let clock = ManualClock::new(START_MS);
    let tokens = manager(Arc::new(MemoryTokenStore::new()), &clock);
    let calls = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Notify::new());
    let k = key("fail");
    let mut tasks = Vec::new();
    // Current-thread runtime: each task runs until it blocks, so all 50 are queued behind the first
    // caller's fetch (held at the gate) before the gate opens.
    for _ in 0..50 {
        let (tokens, calls, gate, k) = (tokens.clone(), calls.clone(), gate.clone(), k.clone());
        tasks.push(tokio::spawn(async move {
            tokens
                .get_or_refresh(&k, || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    gate.notified().await;
                    Err::<FetchedToken, _>(ApiError::Upstream {
                        api: "/cgi-bin/gettoken",
                        code: ErrCode::InvalidCredential,
                        errmsg: "invalid credential".into(),
                    })
                })
                .await
        }));
    }
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    gate.notify_waiters();
    for task in tasks {
        let err = task.await.unwrap().unwrap_err();
        assert_eq!(err.errcode(), Some(ErrCode::InvalidCredential));
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "a wrong secret must cost one upstream call, not one per caller"
    );
}

#[tokio::test]
async fn invalidate_is_compare_and_delete() {
    let clock = ManualClock::new(START_MS);
    let store = Arc::new(MemoryTokenStore::new());
    let tokens = manager(store.clone(), &clock);
    let upstream = Upstream::default();
    let k = key("cad");
    tokens
        .get_or_refresh(&k, || upstream.fetch())
        .await
        .unwrap();
    assert!(!tokens.invalidate(&k, "some-older-token").await.unwrap());
    assert_eq!(
        tokens
            .get_or_refresh(&k, || upstream.fetch())
            .await
            .unwrap()
            .value(),
        "token-1"
    );
    assert!(tokens.invalidate(&k, "token-1").await.unwrap());
    assert!(store.get(&k).await.unwrap().is_none());
    assert_eq!(
        tokens
            .get_or_refresh(&k, || upstream.fetch())
            .await
            .unwrap()
            .value(),
        "token-2"
    );
    assert_eq!(upstream.calls(), 2);
}

#[tokio::test]
async fn two_managers_sharing_a_store_fetch_once() {
    let clock = ManualClock::new(START_MS);
    let store: Arc<dyn TokenStore> = Arc::new(MemoryTokenStore::new());
    let a = manager(store.clone(), &clock);
    let b = manager(store.clone(), &clock);
    assert_ne!(a.holder_id(), b.holder_id());
    let calls = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Notify::new());
    let k = key("two-managers");

    let fetch = |calls: Arc<AtomicUsize>, gate: Arc<Notify>| async move {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        gate.notified().await;
        Ok(FetchedToken {
            value: SecretString::from(format!("token-{n}")),
            expires_in: Duration::from_secs(7200),
        })
    };
    let (ka, kb) = (k.clone(), k.clone());
    let (ca, ga, cb, gb) = (calls.clone(), gate.clone(), calls.clone(), gate.clone());
    let ta = tokio::spawn(async move {
        a.get_or_refresh(&ka, || fetch(ca, ga))
            .await
            .map(|t| t.value().to_owned())
    });
    let tb = tokio::spawn(async move {
        b.get_or_refresh(&kb, || fetch(cb, gb))
            .await
            .map(|t| t.value().to_owned())
    });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    gate.notify_waiters();
    assert_eq!(ta.await.unwrap().unwrap(), "token-1");
    assert_eq!(tb.await.unwrap().unwrap(), "token-1");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// Paused tokio time: the manager's bounded real-time waits advance instantly.
#[tokio::test(start_paused = true)]
async fn waits_bounded_then_takes_over_an_expired_lease() {
    let clock = ManualClock::new(START_MS);
    let store: Arc<dyn TokenStore> = Arc::new(MemoryTokenStore::new());
    let config = TokenManagerConfig {
        lease_ttl: Duration::from_secs(15),
        ..TokenManagerConfig::default()
    };
    let tokens = Arc::new(TokenManager::with_config(
        store.clone(),
        Arc::new(clock.clone()),
        config,
    ));
    let upstream = Upstream::default();
    let k = key("crashed-holder");
    // Another replica took the lease and died without releasing it.
    assert!(
        store
            .try_lease(&k, "dead-replica", clock.now_ms(), Duration::from_secs(15))
            .await
            .unwrap()
    );

    let err = tokens
        .get_or_refresh(&k, || upstream.fetch())
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::TokenWaitTimeout { .. }), "{err:?}");
    assert_eq!(
        upstream.calls(),
        0,
        "never refresh while another replica holds a live lease"
    );

    clock.advance(Duration::from_secs(16));
    assert_eq!(
        tokens
            .get_or_refresh(&k, || upstream.fetch())
            .await
            .unwrap()
            .value(),
        "token-1"
    );
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn waiter_returns_as_soon_as_the_holder_stores_a_token() {
    let clock = ManualClock::new(START_MS);
    let store: Arc<dyn TokenStore> = Arc::new(MemoryTokenStore::new());
    let tokens = manager(store.clone(), &clock);
    let upstream = Upstream::default();
    let k = key("holder-finishes");
    assert!(
        store
            .try_lease(&k, "other-replica", clock.now_ms(), Duration::from_secs(15))
            .await
            .unwrap()
    );
    let waiter = {
        let (tokens, upstream, k) = (tokens.clone(), upstream.clone(), k.clone());
        tokio::spawn(async move {
            tokens
                .get_or_refresh(&k, || upstream.fetch())
                .await
                .map(|t| t.value().to_owned())
        })
    };
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let started = tokio::time::Instant::now();
    let theirs = wx_api::token::CachedToken {
        value: SecretString::from("from-other-replica".to_owned()),
        expires_at_ms: clock.now_ms() + 7_200_000,
    };
    store.put(&k, &theirs).await.unwrap();
    store.release_lease(&k, "other-replica").await.unwrap();
    assert_eq!(waiter.await.unwrap().unwrap(), "from-other-replica");
    assert_eq!(upstream.calls(), 0);
    // Paused time only moves when everything is idle on a timer, so this shows the waiter was woken by
    // the store, not by sitting out its wait step or the lease TTL.
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "waited {:?}",
        started.elapsed()
    );
}

/// A store whose writes fail (Redis went away between the lease and the put).
#[derive(Debug, Default)]
struct BrokenWrites {
    inner: MemoryTokenStore,
}

#[async_trait::async_trait]
impl TokenStore for BrokenWrites {
    async fn get(
        &self,
        key: &TokenKey,
    ) -> Result<Option<wx_api::token::CachedToken>, wx_api::token::StoreError> {
        self.inner.get(key).await
    }
    async fn put(
        &self,
        _: &TokenKey,
        _: &wx_api::token::CachedToken,
    ) -> Result<(), wx_api::token::StoreError> {
        Err(wx_api::token::StoreError::new("broken", "write refused"))
    }
    async fn invalidate(
        &self,
        key: &TokenKey,
        value: &str,
    ) -> Result<bool, wx_api::token::StoreError> {
        self.inner.invalidate(key, value).await
    }
    async fn try_lease(
        &self,
        key: &TokenKey,
        holder: &str,
        now_ms: i64,
        ttl: Duration,
    ) -> Result<bool, wx_api::token::StoreError> {
        self.inner.try_lease(key, holder, now_ms, ttl).await
    }
    async fn release_lease(&self, _: &TokenKey, _: &str) -> Result<(), wx_api::token::StoreError> {
        Err(wx_api::token::StoreError::new("broken", "write refused"))
    }
    async fn wait_for_update(
        &self,
        key: &TokenKey,
        timeout: Duration,
    ) -> Result<(), wx_api::token::StoreError> {
        self.inner.wait_for_update(key, timeout).await
    }
}

#[tokio::test]
async fn a_fetched_token_is_used_even_if_the_store_cannot_keep_it() {
    let clock = ManualClock::new(START_MS);
    let tokens = manager(Arc::new(BrokenWrites::default()), &clock);
    let upstream = Upstream::default();
    let k = key("broken-store");
    assert_eq!(
        tokens
            .get_or_refresh(&k, || upstream.fetch())
            .await
            .unwrap()
            .value(),
        "token-1"
    );
    // Kept in process: the next call does not fetch again.
    assert_eq!(
        tokens
            .get_or_refresh(&k, || upstream.fetch())
            .await
            .unwrap()
            .value(),
        "token-1"
    );
    assert_eq!(upstream.calls(), 1);
}
