//! The token-store behaviour suite on the memory and Redis stores, and two token managers ("two processes")
//! sharing one Redis against the simulator. Redis tests need WXBRIDGE_TEST_REDIS_URL: without it they skip
//! with a printed reason, except under CI=true where a missing URL is a failure.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use wx_api::clock::{Clock, SystemClock};
use wx_api::token::conformance::{self, LeaseClock};
use wx_api::token::{
    CachedToken, MemoryTokenStore, RedisTokenStore, TokenKey, TokenKind, TokenManager, TokenStore,
};
use wx_api::wecom::{WecomClient, api};

use crate::sim::{MAIN_AGENTID, MAIN_SECRET, app, fixture_sim, http};

fn redis_url(test: &str) -> Option<String> {
    match std::env::var("WXBRIDGE_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{test}: WXBRIDGE_TEST_REDIS_URL must be set when CI=true")
        }
        _ => {
            println!("skipping {test}: WXBRIDGE_TEST_REDIS_URL is not set");
            None
        }
    }
}

/// A prefix no other run (or parallel test) shares.
fn unique(name: &str) -> String {
    format!("wxtest-{name}-{:016x}:", rand::random::<u64>())
}

#[tokio::test]
async fn memory_store_passes_the_conformance_suite() {
    let store = MemoryTokenStore::new();
    conformance::run_all_with(&store, "mem", LeaseClock::Caller)
        .await
        .unwrap();
}

#[tokio::test]
async fn redis_store_passes_the_conformance_suite() {
    let Some(url) = redis_url("redis_store_passes_the_conformance_suite") else {
        return;
    };
    let prefix = unique("conformance");
    let store = RedisTokenStore::connect_with_prefix(&url, &prefix)
        .await
        .unwrap();
    conformance::run_all(&store, &prefix).await.unwrap();
}

#[tokio::test]
async fn redis_store_keeps_values_as_json_with_expiry_and_wakes_waiters() {
    let Some(url) = redis_url("redis_store_keeps_values_as_json_with_expiry_and_wakes_waiters")
    else {
        return;
    };
    let prefix = unique("shape");
    let store = RedisTokenStore::connect_with_prefix(&url, &prefix)
        .await
        .unwrap();
    let key = TokenKey::new(
        "t",
        "ww1",
        &SecretString::from("s".to_owned()),
        TokenKind::WecomAccessToken,
    );
    let now = SystemClock.now_ms();
    store
        .put(
            &key,
            &CachedToken {
                value: SecretString::from("tok".to_owned()),
                expires_at_ms: now + 7_200_000,
            },
        )
        .await
        .unwrap();

    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let raw: String = redis::cmd("GET")
        .arg(format!("{prefix}{}", key.cache_key()))
        .query_async(&mut conn)
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(json["value"], "tok");
    assert_eq!(json["expires_at_ms"], now + 7_200_000);
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{prefix}{}", key.cache_key()))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 7_200_000, "PX expiry set ({ttl})");

    // A waiter returns when the lease holder publishes, well before its (long) timeout.
    assert!(
        store
            .try_lease(&key, "holder", now, Duration::from_secs(30))
            .await
            .unwrap()
    );
    let waiter = {
        let (store, key) = (store.clone(), key.clone());
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            store
                .wait_for_update(&key, Duration::from_secs(30))
                .await
                .unwrap();
            started.elapsed()
        })
    };
    // The waiter subscribes before it checks the lease, so releasing at any point wakes it.
    tokio::task::yield_now().await;
    store.release_lease(&key, "holder").await.unwrap();
    let waited = waiter.await.unwrap();
    assert!(
        waited < Duration::from_secs(30),
        "woken by the release, not the timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_managers_sharing_redis_call_gettoken_once() {
    let Some(url) = redis_url("two_managers_sharing_redis_call_gettoken_once") else {
        return;
    };
    let prefix = unique("two-managers");
    let sim = fixture_sim();
    let running = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    // Hold gettoken so the two "processes" overlap: one holds the lease while the other arrives.
    sim.hold_api(api::GETTOKEN);
    // The simulator counts in-flight calls only for APIs with a concurrency limit.
    sim.set_concurrency_limit(api::GETTOKEN, 100);

    let mut tasks = Vec::new();
    for process in 0..2 {
        // Separate connections, managers and clients: nothing shared but Redis.
        let store: Arc<dyn TokenStore> = Arc::new(
            RedisTokenStore::connect_with_prefix(&url, &prefix)
                .await
                .unwrap(),
        );
        let clock = wx_api::clock::ManualClock::new(sim.now_ms());
        let tokens = Arc::new(TokenManager::new(store, Arc::new(clock)));
        let client = WecomClient::new(http(), &running.base_url, tokens).unwrap();
        let app = app(&client, Some(MAIN_AGENTID), MAIN_SECRET);
        for _ in 0..10 {
            let app = app.clone();
            tasks.push(tokio::spawn(async move {
                (
                    process,
                    app.access_token().await.map(|t| t.value().to_owned()),
                )
            }));
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sim.inflight(api::GETTOKEN) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no gettoken reached the simulator"
        );
        tokio::task::yield_now().await;
    }
    sim.release_api(api::GETTOKEN);

    let mut values = Vec::new();
    for task in tasks {
        let (_, value) = task.await.unwrap();
        values.push(value.unwrap());
    }
    values.dedup();
    assert_eq!(values.len(), 1, "both processes use the same token");
    assert_eq!(sim.stats().calls(api::GETTOKEN), 1);
}
