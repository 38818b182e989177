//! Login support (migration 0005): server secrets shared through the database, single-use OAuth state
//! nonces, and filling a user's contact fields from a consent login without blanking them.

use crate::db::{Db, on_pool};
use crate::directory::UserId;
use crate::error::Error;

const SECRET_GET: &str = "SELECT value FROM server_secrets WHERE name = $1";
const SECRET_INSERT: &str = "INSERT INTO server_secrets (name, value, created_at_ms) VALUES ($1, $2, $3) \
    ON CONFLICT (name) DO NOTHING";
const NONCE_PRUNE: &str = "DELETE FROM oauth_state_nonces WHERE expires_at_ms < $1";
const NONCE_INSERT: &str = "INSERT INTO oauth_state_nonces (tenant, nonce, expires_at_ms, consumed_at_ms) \
    VALUES ($1, $2, $3, $4) ON CONFLICT (tenant, nonce) DO NOTHING";
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

    /// Record that the state with `nonce` was used. True the first time, false when it was already
    /// consumed (a replay). Nonces whose states expired before `now_ms` are pruned on the way.
    pub async fn consume_oauth_nonce(
        &self,
        tenant: &str,
        nonce: &str,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> Result<bool, Error> {
        on_pool!(self, |pool| {
            sqlx::query(NONCE_PRUNE)
                .bind(now_ms)
                .execute(pool)
                .await
                .map(|_| ())
        })
        .map_err(|e| self.query_failed(e))?;
        let inserted = on_pool!(self, |pool| {
            sqlx::query(NONCE_INSERT)
                .bind(tenant)
                .bind(nonce)
                .bind(expires_at_ms)
                .bind(now_ms)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(|e| self.query_failed(e))?;
        Ok(inserted == 1)
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
