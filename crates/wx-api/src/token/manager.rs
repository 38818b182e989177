//! The token manager: one refresh for many callers (a per-key async mutex in process, the store's lease
//! across replicas), a refresh margin before expiry, and compare-and-delete invalidation.
//!
//! Model: crates.io's GitHub app client keeps its token behind an async mutex held during refresh; this adds
//! a shared store and a lease so several replicas never refresh (and, for classic WeChat tokens, invalidate
//! each other) at once.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex as AsyncMutex;

use crate::clock::Clock;
use crate::error::ApiError;
use crate::token::{CachedToken, TokenKey, TokenStore};

/// Refresh this long before the platform's expiry (callers get a token with life left in it).
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// How long a refresh lease is held at most: longer than one token request with its timeout.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(15);
/// How long a caller waits in total for another replica's refresh before giving up.
pub const DEFAULT_WAIT_BUDGET: Duration = Duration::from_secs(10);
/// One wait for a store notification; after it the caller re-reads the store and retries the lease, so a
/// lost notification costs at most this long.
pub const DEFAULT_WAIT_STEP: Duration = Duration::from_millis(500);

/// Token manager tuning.
#[derive(Debug, Clone)]
pub struct TokenManagerConfig {
    pub refresh_margin: Duration,
    pub lease_ttl: Duration,
    pub wait_budget: Duration,
    pub wait_step: Duration,
}

impl Default for TokenManagerConfig {
    fn default() -> Self {
        TokenManagerConfig {
            refresh_margin: DEFAULT_REFRESH_MARGIN,
            lease_ttl: DEFAULT_LEASE_TTL,
            wait_budget: DEFAULT_WAIT_BUDGET,
            wait_step: DEFAULT_WAIT_STEP,
        }
    }
}

/// What a token endpoint answered: the value and its lifetime (`expires_in`).
pub struct FetchedToken {
    pub value: SecretString,
    pub expires_in: Duration,
}

impl fmt::Debug for FetchedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchedToken")
            .field("value", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// The in-process state of one key.
#[derive(Default)]
struct KeyState {
    /// Held while refreshing, so concurrent callers queue behind one upstream call. It guards the last
    /// refresh's failure, shared with callers that queued behind it, so a wrong secret costs one upstream
    /// call and not one per waiting caller.
    refresh: AsyncMutex<Option<ApiError>>,
    /// Bumped after each refresh attempt; a caller that saw an older value queued behind that attempt.
    generation: AtomicU64,
    /// The last token this process saw or fetched, with the time from which it should be refreshed. A
    /// plain mutex held for a clone only, so the fast path never waits for a refresh in progress.
    local: StdMutex<Option<(CachedToken, i64)>>,
}

impl KeyState {
    fn local_fresh(&self, now_ms: i64) -> Option<CachedToken> {
        let local = self
            .local
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match &*local {
            Some((token, refresh_at)) if now_ms < *refresh_at => Some(token.clone()),
            _ => None,
        }
    }

    fn set_local(&self, value: Option<(CachedToken, i64)>) {
        *self
            .local
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = value;
    }

    /// Forget the local token if it is `value`.
    fn forget_local(&self, value: &str) {
        let mut local = self
            .local
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if local
            .as_ref()
            .is_some_and(|(token, _)| token.value.expose_secret() == value)
        {
            *local = None;
        }
    }
}

/// Fetches and caches access tokens and tickets. Share one per process (it is cheap to clone the `Arc`).
pub struct TokenManager {
    store: Arc<dyn TokenStore>,
    clock: Arc<dyn Clock>,
    config: TokenManagerConfig,
    holder_id: String,
    keys: StdMutex<HashMap<TokenKey, Arc<KeyState>>>,
}

impl fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManager")
            .field("store", &self.store)
            .field("config", &self.config)
            .field("holder_id", &self.holder_id)
            .finish_non_exhaustive()
    }
}

impl TokenManager {
    pub fn new(store: Arc<dyn TokenStore>, clock: Arc<dyn Clock>) -> Self {
        Self::with_config(store, clock, TokenManagerConfig::default())
    }

    pub fn with_config(
        store: Arc<dyn TokenStore>,
        clock: Arc<dyn Clock>,
        config: TokenManagerConfig,
    ) -> Self {
        let holder_id = format!("wxbridge-{:016x}", rand::random::<u64>());
        TokenManager {
            store,
            clock,
            config,
            holder_id,
            keys: StdMutex::new(HashMap::new()),
        }
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn store(&self) -> &Arc<dyn TokenStore> {
        &self.store
    }

    pub fn config(&self) -> &TokenManagerConfig {
        &self.config
    }

    /// This manager's lease holder id (one per instance, i.e. per process in production).
    pub fn holder_id(&self) -> &str {
        &self.holder_id
    }

    fn state(&self, key: &TokenKey) -> Arc<KeyState> {
        let mut keys = self
            .keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        keys.entry(key.clone()).or_default().clone()
    }

    fn is_fresh(&self, token: &CachedToken, now_ms: i64) -> bool {
        now_ms
            < token
                .expires_at_ms
                .saturating_sub(duration_ms(self.config.refresh_margin))
    }

    /// A fresh token for `key`: from this process's memory, else the store, else `fetch` (run at most once
    /// across all concurrent callers of this process, and once across replicas sharing the store).
    pub async fn get_or_refresh<F, Fut>(
        &self,
        key: &TokenKey,
        fetch: F,
    ) -> Result<CachedToken, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<FetchedToken, ApiError>>,
    {
        let state = self.state(key);
        if let Some(token) = state.local_fresh(self.clock.now_ms()) {
            return Ok(token);
        }
        let seen_generation = state.generation.load(Ordering::SeqCst);
        if let Some(token) = self.store.get(key).await?
            && self.is_fresh(&token, self.clock.now_ms())
        {
            let refresh_at = self.refresh_at(&token, self.clock.now_ms());
            state.set_local(Some((token.clone(), refresh_at)));
            return Ok(token);
        }

        let mut last_error = state.refresh.lock().await;
        // Someone refreshed while we queued: take their result (token or error) instead of calling again.
        let now = self.clock.now_ms();
        if let Some(token) = state.local_fresh(now) {
            return Ok(token);
        }
        if seen_generation != state.generation.load(Ordering::SeqCst)
            && let Some(err) = &*last_error
        {
            return Err(err.clone());
        }
        if let Some(token) = self.store.get(key).await?
            && self.is_fresh(&token, now)
        {
            state.set_local(Some((token.clone(), self.refresh_at(&token, now))));
            return Ok(token);
        }

        let started = tokio::time::Instant::now();
        let outcome = self.refresh_across_replicas(key, fetch).await;
        match &outcome {
            Ok((token, refresh_at)) => {
                *last_error = None;
                state.set_local(Some((token.clone(), *refresh_at)));
                tracing::debug!(
                    tenant.key = %key.tenant,
                    owner = %key.owner,
                    token.kind = key.kind.as_str(),
                    duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "token ready"
                );
            }
            Err(err) => {
                *last_error = Some(err.clone());
                state.set_local(None);
                tracing::warn!(
                    tenant.key = %key.tenant,
                    owner = %key.owner,
                    token.kind = key.kind.as_str(),
                    error = %err,
                    "token refresh failed"
                );
            }
        }
        // Bumped while still holding the lock, after the outcome is recorded, so every queued caller sees it.
        state.generation.fetch_add(1, Ordering::SeqCst);
        drop(last_error);
        outcome.map(|(token, _)| token)
    }

    /// Take the lease (or wait for the replica holding it), fetch, store, release.
    async fn refresh_across_replicas<F, Fut>(
        &self,
        key: &TokenKey,
        fetch: F,
    ) -> Result<(CachedToken, i64), ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<FetchedToken, ApiError>>,
    {
        let started = tokio::time::Instant::now();
        let mut fetch = Some(fetch);
        loop {
            let now = self.clock.now_ms();
            if self
                .store
                .try_lease(key, &self.holder_id, now, self.config.lease_ttl)
                .await?
            {
                let result = self.refresh_holding_lease(key, &mut fetch).await;
                // Release even after a failure so other replicas need not wait out the lease.
                if let Err(err) = self.store.release_lease(key, &self.holder_id).await {
                    // The lease lapses by its TTL anyway; the token we hold is still good to use.
                    tracing::warn!(
                        tenant.key = %key.tenant,
                        owner = %key.owner,
                        token.kind = key.kind.as_str(),
                        error = %err,
                        "could not release the refresh lease"
                    );
                }
                return result;
            }
            // Another replica refreshes. A token that is merely inside the refresh margin is still valid, so
            // a waiter may use it; the store wakes us when the holder stores the new one.
            if let Some(token) = self.store.get(key).await?
                && self.clock.now_ms() < token.expires_at_ms
            {
                let refresh_at = self.refresh_at(&token, self.clock.now_ms());
                return Ok((token, refresh_at));
            }
            let waited = started.elapsed();
            if waited >= self.config.wait_budget {
                return Err(ApiError::TokenWaitTimeout {
                    tenant: key.tenant.clone(),
                    kind: key.kind,
                    waited,
                });
            }
            let step = self.config.wait_step.min(self.config.wait_budget - waited);
            self.store.wait_for_update(key, step).await?;
        }
    }

    async fn refresh_holding_lease<F, Fut>(
        &self,
        key: &TokenKey,
        fetch: &mut Option<F>,
    ) -> Result<(CachedToken, i64), ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<FetchedToken, ApiError>>,
    {
        // The previous holder may have stored a token between our miss and our lease.
        let now = self.clock.now_ms();
        if let Some(token) = self.store.get(key).await?
            && self.is_fresh(&token, now)
        {
            let refresh_at = self.refresh_at(&token, now);
            return Ok((token, refresh_at));
        }
        let Some(fetch) = fetch.take() else {
            // Unreachable in practice: the loop returns after the first lease it holds.
            return Err(ApiError::TokenWaitTimeout {
                tenant: key.tenant.clone(),
                kind: key.kind,
                waited: Duration::ZERO,
            });
        };
        let fetched = fetch().await?;
        let now = self.clock.now_ms();
        let lifetime_ms = duration_ms(fetched.expires_in);
        let token = CachedToken {
            value: fetched.value,
            expires_at_ms: now.saturating_add(lifetime_ms),
        };
        if let Err(err) = self.store.put(key, &token).await {
            // The fetched token is valid (and for classic WeChat tokens, fetching it revoked the previous
            // one), so this process uses it rather than throwing it away; other replicas will fetch their own.
            tracing::warn!(
                tenant.key = %key.tenant,
                owner = %key.owner,
                token.kind = key.kind.as_str(),
                error = %err,
                "could not store the refreshed token"
            );
        }
        // A token issued with less life than twice the margin (stable_token near its renewal) is refreshed
        // halfway instead, so it is not born stale and fetched again on every call.
        let margin = duration_ms(self.config.refresh_margin).min(lifetime_ms / 2);
        Ok((token.clone(), token.expires_at_ms.saturating_sub(margin)))
    }

    fn refresh_at(&self, token: &CachedToken, now_ms: i64) -> i64 {
        let refresh_at = token
            .expires_at_ms
            .saturating_sub(duration_ms(self.config.refresh_margin));
        // Never earlier than now: a token accepted from another replica is used until its margin is reached.
        refresh_at.max(now_ms.min(token.expires_at_ms))
    }

    /// Compare-and-delete: the platform said `value` is invalid (40014/42001). Drops it from this process and
    /// from the store, but never a fresher token another caller or replica already stored.
    pub async fn invalidate(&self, key: &TokenKey, value: &str) -> Result<bool, ApiError> {
        self.state(key).forget_local(value);
        let removed = self.store.invalidate(key, value).await?;
        tracing::info!(
            tenant.key = %key.tenant,
            owner = %key.owner,
            token.kind = key.kind.as_str(),
            removed,
            "token invalidated by upstream"
        );
        Ok(removed)
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
