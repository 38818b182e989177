//! The Redis token store for several replicas: values as JSON with a PX expiry, compare-and-delete and lease
//! release as Lua scripts, the lease as `SET NX PX`, and waiters woken by pub/sub on a per-key channel.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::clock::{Clock, SystemClock};
use crate::token::{CachedToken, StoreError, TokenKey, TokenStore};

const BACKEND: &str = "redis";

/// Redis keeps a value at least this long past now, whatever the caller's clock says: the expiry in Redis
/// only collects garbage, the manager decides freshness from `expires_at_ms`.
const MIN_KEEP: Duration = Duration::from_secs(60);
const MAX_KEEP: Duration = Duration::from_secs(24 * 3600);

/// Removes the token only while it is still the value that failed upstream.
const INVALIDATE_SCRIPT: &str = r#"
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local ok, decoded = pcall(cjson.decode, raw)
if ok and type(decoded) == 'table' and decoded['value'] == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"#;

/// Takes a free lease, or renews it for the holder that already has it (the trait's contract).
const LEASE_SCRIPT: &str = r#"
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"#;

/// Releases the lease only for its holder, and wakes waiters either way it ends.
const RELEASE_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', KEYS[2], 'released')
  return 1
end
return 0
"#;

#[derive(Serialize, Deserialize)]
struct StoredToken {
    value: String,
    expires_at_ms: i64,
}

/// Tokens in Redis, shared by every replica pointing at the same server and prefix.
#[derive(Clone)]
pub struct RedisTokenStore {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
    invalidate: redis::Script,
    lease: redis::Script,
    release: redis::Script,
}

impl std::fmt::Debug for RedisTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection info may carry a password, so only the prefix is shown.
        f.debug_struct("RedisTokenStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn store_err(err: impl std::fmt::Display) -> StoreError {
    StoreError::new(BACKEND, err)
}

impl RedisTokenStore {
    /// Connect to `url` (`redis://host:port/db`). The connection manager reconnects by itself after a drop.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with_prefix(url, "").await
    }

    /// Like `connect`, with every key and channel prefixed (to share one Redis between deployments or tests).
    pub async fn connect_with_prefix(url: &str, prefix: &str) -> Result<Self, StoreError> {
        // The URL may hold a password: report only the kind of failure, not the URL.
        let client = redis::Client::open(url)
            .map_err(|e| store_err(format!("bad Redis URL ({:?})", e.kind())))?;
        let conn = ConnectionManager::new(client.clone())
            .await
            .map_err(store_err)?;
        Ok(RedisTokenStore {
            client,
            conn,
            prefix: prefix.to_owned(),
            invalidate: redis::Script::new(INVALIDATE_SCRIPT),
            lease: redis::Script::new(LEASE_SCRIPT),
            release: redis::Script::new(RELEASE_SCRIPT),
        })
    }

    fn value_key(&self, key: &TokenKey) -> String {
        format!("{}{}", self.prefix, key.cache_key())
    }

    fn lease_key(&self, key: &TokenKey) -> String {
        format!("{}{}:lease", self.prefix, key.cache_key())
    }

    fn channel(&self, key: &TokenKey) -> String {
        format!("{}{}:updated", self.prefix, key.cache_key())
    }
}

fn clamp_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[async_trait]
impl TokenStore for RedisTokenStore {
    async fn get(&self, key: &TokenKey) -> Result<Option<CachedToken>, StoreError> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = conn.get(self.value_key(key)).await.map_err(store_err)?;
        let Some(raw) = raw else { return Ok(None) };
        // serde_json's message could quote the value; say only that the row is unreadable.
        let stored: StoredToken = serde_json::from_str(&raw)
            .map_err(|e| store_err(format!("unreadable cached token ({:?})", e.classify())))?;
        Ok(Some(CachedToken {
            value: SecretString::from(stored.value),
            expires_at_ms: stored.expires_at_ms,
        }))
    }

    async fn put(&self, key: &TokenKey, token: &CachedToken) -> Result<(), StoreError> {
        let body = serde_json::to_string(&StoredToken {
            value: token.value.expose_secret().to_owned(),
            expires_at_ms: token.expires_at_ms,
        })
        .map_err(|e| store_err(format!("cannot encode token ({:?})", e.classify())))?;
        let remaining = token.expires_at_ms.saturating_sub(SystemClock.now_ms());
        let keep =
            Duration::from_millis(u64::try_from(remaining).unwrap_or(0)).clamp(MIN_KEEP, MAX_KEEP);
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(self.value_key(key))
            .arg(body)
            .arg("PX")
            .arg(clamp_ms(keep))
            .ignore()
            .cmd("PUBLISH")
            .arg(self.channel(key))
            .arg("put")
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(store_err)
    }

    async fn invalidate(&self, key: &TokenKey, value: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let removed: i64 = self
            .invalidate
            .key(self.value_key(key))
            .arg(value)
            .invoke_async(&mut conn)
            .await
            .map_err(store_err)?;
        Ok(removed == 1)
    }

    async fn try_lease(
        &self,
        key: &TokenKey,
        holder: &str,
        _now_ms: i64,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        // Redis expires the lease on its own clock, so a crashed holder's lease lapses without anyone's help.
        let mut conn = self.conn.clone();
        let taken: i64 = self
            .lease
            .key(self.lease_key(key))
            .arg(holder)
            .arg(clamp_ms(ttl).max(1))
            .invoke_async(&mut conn)
            .await
            .map_err(store_err)?;
        Ok(taken == 1)
    }

    async fn release_lease(&self, key: &TokenKey, holder: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .release
            .key(self.lease_key(key))
            .key(self.channel(key))
            .arg(holder)
            .invoke_async(&mut conn)
            .await
            .map_err(store_err)?;
        Ok(())
    }

    async fn wait_for_update(&self, key: &TokenKey, timeout: Duration) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let wait = async {
            let mut pubsub = self.client.get_async_pubsub().await.map_err(store_err)?;
            pubsub
                .subscribe(self.channel(key))
                .await
                .map_err(store_err)?;
            // Subscribed first, then checked: a holder that finished (put + release) before we subscribed
            // has already removed its lease, so we return at once instead of waiting for a lost message.
            let mut conn = self.conn.clone();
            let leased: bool = conn.exists(self.lease_key(key)).await.map_err(store_err)?;
            if leased {
                let mut messages = pubsub.on_message();
                let _ = tokio::time::timeout_at(deadline, messages.next()).await;
            }
            Ok::<(), StoreError>(())
        };
        match tokio::time::timeout_at(deadline, wait).await {
            Ok(result) => result,
            // The timeout is an upper bound on the wait, not a failure.
            Err(_) => Ok(()),
        }
    }
}
