//! An in-process token store: the default for a single replica, and the store of most tests. Leases are a
//! map of holder and expiry on the caller's clock; waiters are woken by a per-key `Notify`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use secrecy::ExposeSecret;
use tokio::sync::Notify;

use crate::token::{CachedToken, StoreError, TokenKey, TokenStore};

#[derive(Default)]
struct Inner {
    tokens: HashMap<TokenKey, CachedToken>,
    leases: HashMap<TokenKey, (String, i64)>,
    notifiers: HashMap<TokenKey, Arc<Notify>>,
}

impl Inner {
    fn notifier(&mut self, key: &TokenKey) -> Arc<Notify> {
        self.notifiers.entry(key.clone()).or_default().clone()
    }
}

/// Tokens in a map in this process. Cloning shares the map.
#[derive(Clone, Default)]
pub struct MemoryTokenStore {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for MemoryTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTokenStore").finish_non_exhaustive()
    }
}

impl MemoryTokenStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        // A panic while holding this lock cannot leave the maps half-updated (each update is one insert or
        // remove), so a poisoned lock is safe to keep using.
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut inner)
    }
}

#[async_trait]
impl TokenStore for MemoryTokenStore {
    async fn get(&self, key: &TokenKey) -> Result<Option<CachedToken>, StoreError> {
        Ok(self.with(|inner| inner.tokens.get(key).cloned()))
    }

    async fn put(&self, key: &TokenKey, token: &CachedToken) -> Result<(), StoreError> {
        let notify = self.with(|inner| {
            inner.tokens.insert(key.clone(), token.clone());
            inner.notifier(key)
        });
        notify.notify_waiters();
        Ok(())
    }

    async fn invalidate(&self, key: &TokenKey, value: &str) -> Result<bool, StoreError> {
        Ok(self.with(|inner| {
            let matches = inner
                .tokens
                .get(key)
                .is_some_and(|t| t.value.expose_secret() == value);
            if matches {
                inner.tokens.remove(key);
            }
            matches
        }))
    }

    async fn try_lease(
        &self,
        key: &TokenKey,
        holder: &str,
        now_ms: i64,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        Ok(self.with(|inner| match inner.leases.get(key) {
            Some((current, expires_at)) if current != holder && *expires_at > now_ms => false,
            _ => {
                inner.leases.insert(
                    key.clone(),
                    (holder.to_owned(), now_ms.saturating_add(ttl_ms)),
                );
                true
            }
        }))
    }

    async fn release_lease(&self, key: &TokenKey, holder: &str) -> Result<(), StoreError> {
        let notify = self.with(|inner| {
            if inner
                .leases
                .get(key)
                .is_some_and(|(current, _)| current == holder)
            {
                inner.leases.remove(key);
            }
            inner.notifier(key)
        });
        notify.notify_waiters();
        Ok(())
    }

    async fn wait_for_update(&self, key: &TokenKey, timeout: Duration) -> Result<(), StoreError> {
        let (notify, leased) =
            self.with(|inner| (inner.notifier(key), inner.leases.contains_key(key)));
        let notified = notify.notified();
        tokio::pin!(notified);
        // Register before re-checking, so a release between the caller's read and now is not missed.
        notified.as_mut().enable();
        let still_leased = self.with(|inner| inner.leases.contains_key(key));
        if !leased || !still_leased {
            return Ok(());
        }
        let _ = tokio::time::timeout(timeout, notified).await;
        Ok(())
    }
}
