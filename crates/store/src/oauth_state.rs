//! Login support (migration 0005): server secrets shared through the database, pending OAuth logins
//! (each `state` usable once), and filling a user's contact fields from a consent login without blanking them.

use crate::db::{Db, on_pool};
use crate::directory::UserId;
use crate::error::Error;

/// A stored pending login (see migration 0005).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthStateRow {
    /// What the login needs after the callback, as the domain layer wrote it (JSON).
    pub payload: String,
    pub expires_at_ms: i64,
    pub consumed_at_ms: Option<i64>,
}

const SECRET_GET: &str = "SELECT value FROM server_secrets WHERE name = $1";
const SECRET_INSERT: &str = "INSERT INTO server_secrets (name, value, created_at_ms) VALUES ($1, $2, $3) \
    ON CONFLICT (name) DO NOTHING";
const STATE_PRUNE: &str = "DELETE FROM oauth_states WHERE expires_at_ms < $1";
const STATE_INSERT: &str = "INSERT INTO oauth_states (tenant, nonce, payload, created_at_ms, expires_at_ms) \
    VALUES ($1, $2, $3, $4, $5)";
const STATE_GET: &str = "SELECT payload, expires_at_ms, consumed_at_ms FROM oauth_states \
    WHERE tenant = $1 AND nonce = $2";
const STATE_CONSUME: &str = "UPDATE oauth_states SET consumed_at_ms = $3 \
    WHERE tenant = $1 AND nonce = $2 AND consumed_at_ms IS NULL";
const FILL_CONTACT: &str = "UPDATE users SET mobile = COALESCE($3, mobile), email = COALESCE($4, email), \
    avatar = COALESCE($5, avatar), updated_at_ms = $6 WHERE tenant = $1 AND id = $2";

impl Db {
    fn query_failed(&self, source: sqlx::Error) -> Error {
        Error::Query {
            backend: self.backend(),
            source,
        }
    }

    /// The secret stored under `name`, storing `candidate` first when there is none. Replicas racing
    /// on a fresh database all end up with the one value that was inserted first.
    pub async fn server_secret_or_insert(
        &self,
        name: &str,
        candidate: &str,
        now_ms: i64,
    ) -> Result<String, Error> {
        let found: Option<String> = on_pool!(self, |pool| {
            sqlx::query_scalar(SECRET_GET)
                .bind(name)
                .fetch_optional(pool)
                .await
        })
        .map_err(|e| self.query_failed(e))?;
        if let Some(v) = found {
            return Ok(v);
        }
        on_pool!(self, |pool| {
            sqlx::query(SECRET_INSERT)
                .bind(name)
                .bind(candidate)
                .bind(now_ms)
                .execute(pool)
                .await
                .map(|_| ())
        })
        .map_err(|e| self.query_failed(e))?;
        on_pool!(self, |pool| {
            sqlx::query_scalar(SECRET_GET)
                .bind(name)
                .fetch_one(pool)
                .await
        })
        .map_err(|e| self.query_failed(e))
    }

    /// Store a pending login under `nonce`, pruning states that expired before `prune_before_ms`
    /// (kept a while after expiry so a late callback is told "expired", not "unknown").
    pub async fn insert_oauth_state(
        &self,
        tenant: &str,
        nonce: &str,
        payload: &str,
        now_ms: i64,
        expires_at_ms: i64,
        prune_before_ms: i64,
    ) -> Result<(), Error> {
        on_pool!(self, |pool| {
            sqlx::query(STATE_PRUNE)
                .bind(prune_before_ms)
                .execute(pool)
                .await
                .map(|_| ())
        })
        .map_err(|e| self.query_failed(e))?;
        on_pool!(self, |pool| {
            sqlx::query(STATE_INSERT)
                .bind(tenant)
                .bind(nonce)
                .bind(payload)
                .bind(now_ms)
                .bind(expires_at_ms)
                .execute(pool)
                .await
                .map(|_| ())
        })
        .map_err(|e| self.query_failed(e))
    }

    /// The pending login under `nonce`, if it exists (consumed or not, expired or not).
    pub async fn oauth_state(
        &self,
        tenant: &str,
        nonce: &str,
    ) -> Result<Option<OAuthStateRow>, Error> {
        let row: Option<(String, i64, Option<i64>)> = on_pool!(self, |pool| {
            sqlx::query_as(STATE_GET)
                .bind(tenant)
                .bind(nonce)
                .fetch_optional(pool)
                .await
        })
        .map_err(|e| self.query_failed(e))?;
        Ok(
            row.map(|(payload, expires_at_ms, consumed_at_ms)| OAuthStateRow {
                payload,
                expires_at_ms,
                consumed_at_ms,
            }),
        )
    }

    /// Mark the state used. True for the one caller that did; false when it was already consumed
    /// (a replay, or a concurrent callback that won).
    pub async fn consume_oauth_state(
        &self,
        tenant: &str,
        nonce: &str,
        now_ms: i64,
    ) -> Result<bool, Error> {
        let n = on_pool!(self, |pool| {
            sqlx::query(STATE_CONSUME)
                .bind(tenant)
                .bind(nonce)
                .bind(now_ms)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(|e| self.query_failed(e))?;
        Ok(n == 1)
    }

    /// Set a user's mobile, email and avatar where a value is given; `None` keeps the stored value, so
    /// a consent login never blanks what the directory holds. False when the user does not exist.
    pub async fn fill_user_contact(
        &self,
        tenant: &str,
        user_id: UserId,
        mobile: Option<&str>,
        email: Option<&str>,
        avatar: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, Error> {
        let n = on_pool!(self, |pool| {
            sqlx::query(FILL_CONTACT)
                .bind(tenant)
                .bind(user_id.get())
                .bind(mobile)
                .bind(email)
                .bind(avatar)
                .bind(now_ms)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(|e| self.query_failed(e))?;
        Ok(n == 1)
    }
}
