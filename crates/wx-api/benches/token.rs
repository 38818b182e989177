//! How much a cached token costs a caller: the manager's in-process hit, and a memory-store read.
//! Run: `cargo bench -p wx-api --bench token`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use secrecy::SecretString;
use wx_api::clock::ManualClock;
use wx_api::token::{
    FetchedToken, MemoryTokenStore, TokenKey, TokenKind, TokenManager, TokenStore,
};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = Arc::new(MemoryTokenStore::new());
    let tokens = TokenManager::new(store.clone(), Arc::new(ManualClock::new(1_700_000_000_000)));
    let key = TokenKey::new(
        "bench",
        "ww1",
        &SecretString::from("s".to_owned()),
        TokenKind::WecomAccessToken,
    );
    let fetch = || async {
        Ok(FetchedToken {
            value: SecretString::from("token".to_owned()),
            expires_in: Duration::from_secs(7200),
        })
    };
    rt.block_on(tokens.get_or_refresh(&key, fetch)).unwrap();

    c.bench_function("token_manager_cached_hit", |b| {
        b.iter(|| rt.block_on(tokens.get_or_refresh(&key, fetch)).unwrap())
    });
    c.bench_function("memory_store_get", |b| {
        b.iter(|| rt.block_on(store.get(&key)).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
