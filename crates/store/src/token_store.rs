//! `SqlTokenStore`: the wx-api token cache and cross-replica refresh lease on SQLite or PostgreSQL.
//!
//! Token values are stored as given, not encrypted. They are bearer tokens that live two hours at most,
//! the database already holds data at least as sensitive (users, sessions) under the same access
//! control, and encrypting at rest would need a key-management story (where the key lives, how it
//! rotates) that wxbridge does not have yet. It is a later option behind this same trait. Values are
//! never logged and never appear in Debug output or errors.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;
use wx_api::token::{CachedToken, StoreError, TokenKey, TokenStore};

use crate::db::{Db, on_pool};
use crate::error::Error;

/// How often `wait_for_update` looks again. SQL has no cheap portable notification, so waiters poll;
/// 50 ms keeps a waiting replica's extra latency small without loading the database.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

// Every statement below uses `$n` placeholders and `INSERT ... ON CONFLICT ... DO UPDATE`, which both
// SQLite (3.24+) and PostgreSQL accept with identical meaning, so each statement is written once.

const GET: &str = "SELECT value, expires_at_ms FROM token_cache \
    WHERE tenant = $1 AND owner = $2 AND secret_id = $3 AND kind = $4";

const PUT: &str = "INSERT INTO token_cache (tenant, owner, secret_id, kind, value, expires_at_ms, version) \
    VALUES ($1, $2, $3, $4, $5, $6, 1) \
    ON CONFLICT (tenant, owner, secret_id, kind) DO UPDATE \
    SET value = excluded.value, expires_at_ms = excluded.expires_at_ms, version = token_cache.version + 1";

const VERSION: &str = "SELECT version FROM token_cache \
    WHERE tenant = $1 AND owner = $2 AND secret_id = $3 AND kind = $4";

// Compare-and-delete: only the exact value that failed is removed, never a fresher one.
const INVALIDATE: &str = "DELETE FROM token_cache \
    WHERE tenant = $1 AND owner = $2 AND secret_id = $3 AND kind = $4 AND value = $5";

// One atomic statement: insert a lease, or take over an existing one only if it has expired by the
// caller's clock or is already ours (re-taking extends it). When the WHERE fails nothing is written and
// rows_affected is 0. PostgreSQL re-checks the WHERE against the row it locked, so concurrent callers
// cannot both win; SQLite runs one writer at a time.
const TRY_LEASE: &str = "INSERT INTO token_lease (tenant, owner, secret_id, kind, holder, expires_at_ms) \
    VALUES ($1, $2, $3, $4, $5, $6) \
    ON CONFLICT (tenant, owner, secret_id, kind) DO UPDATE \
    SET holder = excluded.holder, expires_at_ms = excluded.expires_at_ms \
    WHERE token_lease.expires_at_ms <= $7 OR token_lease.holder = excluded.holder";

const RELEASE: &str = "DELETE FROM token_lease \
    WHERE tenant = $1 AND owner = $2 AND secret_id = $3 AND kind = $4 AND holder = $5";

/// Binds the four key columns, in the order every statement above uses them ($1..$4).
macro_rules! bind_key {
    ($query:expr, $key:expr) => {
        $query
            .bind(&$key.tenant)
            .bind(&$key.owner)
            .bind(&$key.secret_id)
            .bind($key.kind.as_str())
    };
}

/// The token cache and refresh lease in the wxbridge database. Cloning shares the pool; two stores on
/// the same database behave as two replicas.
#[derive(Clone)]
pub struct SqlTokenStore {
    db: Db,
}

impl fmt::Debug for SqlTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlTokenStore")
            .field("backend", &self.db.backend())
            .finish()
    }
}

impl SqlTokenStore {
    /// A store over `db`. The schema must be migrated (`Db::migrate`).
    pub fn new(db: Db) -> Self {
        SqlTokenStore { db }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// How many times the token for `key` has been stored since it was last absent (1 after the first
    /// put). For operators and tests; the manager does not need it.
    pub async fn version(&self, key: &TokenKey) -> Result<Option<i64>, Error> {
        on_pool!(self.db, |pool| {
            bind_key!(sqlx::query_scalar::<_, i64>(VERSION), key)
                .fetch_optional(pool)
                .await
        })
        .map_err(|source| self.query_error(source))
    }

    fn backend_name(&self) -> &'static str {
        self.db.backend().as_str()
    }

    fn query_error(&self, source: sqlx::Error) -> Error {
        Error::Query {
            backend: self.db.backend(),
            source,
        }
    }

    fn store_error(&self, source: sqlx::Error) -> StoreError {
        // sqlx errors describe the failure, never the bound parameters, so no token value leaks here.
        StoreError::new(self.backend_name(), source)
    }
}

#[async_trait]
impl TokenStore for SqlTokenStore {
    async fn get(&self, key: &TokenKey) -> Result<Option<CachedToken>, StoreError> {
        let row: Option<(String, i64)> = on_pool!(self.db, |pool| {
            bind_key!(sqlx::query_as(GET), key)
                .fetch_optional(pool)
                .await
        })
        .map_err(|e| self.store_error(e))?;
        Ok(row.map(|(value, expires_at_ms)| CachedToken {
            value: SecretString::from(value),
            expires_at_ms,
        }))
    }

    async fn put(&self, key: &TokenKey, token: &CachedToken) -> Result<(), StoreError> {
        on_pool!(self.db, |pool| {
            bind_key!(sqlx::query(PUT), key)
                .bind(token.value())
                .bind(token.expires_at_ms)
                .execute(pool)
                .await
                .map(|_| ())
        })
        .map_err(|e| self.store_error(e))
    }

    async fn invalidate(&self, key: &TokenKey, value: &str) -> Result<bool, StoreError> {
        let removed = on_pool!(self.db, |pool| {
            bind_key!(sqlx::query(INVALIDATE), key)
                .bind(value)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(|e| self.store_error(e))?;
        Ok(removed > 0)
    }

    async fn try_lease(
        &self,
        key: &TokenKey,
        holder: &str,
        now_ms: i64,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let expires_at_ms = now_ms.saturating_add(ttl_ms);
        let taken = on_pool!(self.db, |pool| {
            bind_key!(sqlx::query(TRY_LEASE), key)
                .bind(holder)
                .bind(expires_at_ms)
                .bind(now_ms)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(|e| self.store_error(e))?;
        Ok(taken > 0)
    }

    async fn release_lease(&self, key: &TokenKey, holder: &str) -> Result<(), StoreError> {
        on_pool!(self.db, |pool| {
            bind_key!(sqlx::query(RELEASE), key)
                .bind(holder)
                .execute(pool)
                .await
                .map(|_| ())
        })
        .map_err(|e| self.store_error(e))
    }

    async fn wait_for_update(&self, _key: &TokenKey, timeout: Duration) -> Result<(), StoreError> {
        // A real sleep, not the injected clock: this waits for another replica's I/O to land in the
        // database, which no fake clock can make happen sooner. The caller re-reads the store after.
        tokio::time::sleep(poll_delay(timeout)).await;
        Ok(())
    }
}

/// How long one `wait_for_update` sleeps: the poll interval, never more than the caller's timeout.
fn poll_delay(timeout: Duration) -> Duration {
    timeout.min(POLL_INTERVAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_delay_is_the_shorter_of_timeout_and_interval() {
        assert_eq!(poll_delay(Duration::ZERO), Duration::ZERO);
        assert_eq!(
            poll_delay(Duration::from_millis(10)),
            Duration::from_millis(10)
        );
        assert_eq!(poll_delay(Duration::from_secs(30)), POLL_INTERVAL);
    }
}
