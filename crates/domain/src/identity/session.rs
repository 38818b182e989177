//! Sessions a business system can trust: opaque random tokens (`wxs_` + 256 bits as 64 hex digits),
//! stored only as their SHA-256, with an absolute lifetime, an optional idle timeout, revocation, and a
//! last-seen time that moves forward as the session is used.
//!
//! The token exists in clear only in the [`SessionToken`] returned by [`Sessions::create`] (its Debug
//! and Display print a redacted form) and in what the client sends back; everything stored and logged
//! is the hash or the session id.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};
use store::{Db, IdentityId, NewSession, SessionId, SessionRow, User, UserId, UserStatus};
use wx_api::clock::Clock;

use super::IdentityError;

/// Every session token starts with this, so a leaked one is recognisable (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "wxs_";
/// Random bytes in a token: 256 bits.
const TOKEN_BYTES: usize = 32;

/// A session token in clear. Hand it to the client once (cookie or bearer); never log it.
#[derive(Clone)]
pub struct SessionToken(SecretString);

impl SessionToken {
    /// A fresh token from the operating system's CSPRNG (through rand's thread generator, which is
    /// seeded from it and reseeds itself).
    fn generate() -> SessionToken {
        let mut bytes = [0u8; TOKEN_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        SessionToken(SecretString::from(format!(
            "{TOKEN_PREFIX}{}",
            hex::encode(bytes)
        )))
    }

    /// The token text, for the one place it is handed to the client.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The hex SHA-256 stored for this token.
    pub fn hash(&self) -> String {
        token_hash(self.expose())
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionToken({TOKEN_PREFIX}<redacted>)")
    }
}

impl fmt::Display for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{TOKEN_PREFIX}<redacted>")
    }
}

/// The hex SHA-256 of a token's text: what the store keeps. A token has 256 random bits, so a plain
/// hash (no salt, no slow KDF) cannot be reversed and lets the store look it up by equality.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// True when `token` has the shape of a session token (prefix and 64 lower-case hex digits). Checked
/// before any lookup so junk never reaches the database.
pub fn looks_like_token(token: &str) -> bool {
    token.strip_prefix(TOKEN_PREFIX).is_some_and(|rest| {
        rest.len() == TOKEN_BYTES * 2
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// How a person logged in. Stored as text with the session so business APIs can require a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// WeCom web login (in-app OAuth or PC QR) through a WeCom app.
    Wecom,
    /// A mini program opened in WeCom (miniprogram/jscode2session).
    WecomMiniProgram,
    /// Official-account OAuth inside WeChat.
    WechatOfficialAccount,
    /// The open platform's website QR login.
    WechatWebsite,
    /// A WeChat mini program (sns/jscode2session).
    WechatMiniProgram,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Wecom => "wecom",
            Provider::WecomMiniProgram => "wecom_mini_program",
            Provider::WechatOfficialAccount => "wechat_official_account",
            Provider::WechatWebsite => "wechat_website",
            Provider::WechatMiniProgram => "wechat_mini_program",
        }
    }

    pub fn parse(s: &str) -> Option<Provider> {
        [
            Provider::Wecom,
            Provider::WecomMiniProgram,
            Provider::WechatOfficialAccount,
            Provider::WechatWebsite,
            Provider::WechatMiniProgram,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a session came from: the provider and the app (a WeCom app name, a WeChat appid, a
/// mini-program key), and the WeChat identity when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOrigin {
    pub provider: Provider,
    pub app: String,
    pub identity: Option<IdentityId>,
}

/// Session lifetimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// Absolute lifetime from creation; a session is never valid after it.
    pub ttl: Duration,
    /// When set, a session unused for this long is expired even before `ttl`.
    pub idle_timeout: Option<Duration>,
    /// last_seen is written at most this often per session, so verifying on every request does not
    /// write on every request.
    pub touch_every: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            ttl: Duration::from_secs(7 * 24 * 3600),
            idle_timeout: None,
            touch_every: Duration::from_secs(60),
        }
    }
}

/// A live session (never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    /// The provider's text (see [`Provider`]); kept as text so a newer wxbridge's provider still reads.
    pub provider: String,
    pub app: String,
    pub identity: Option<IdentityId>,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub last_seen_at_ms: i64,
}

impl Session {
    fn from_row(r: SessionRow) -> Session {
        Session {
            id: r.id,
            user_id: r.user_id,
            provider: r.provider,
            app: r.app,
            identity: r.identity_id,
            created_at_ms: r.created_at_ms,
            expires_at_ms: r.expires_at_ms,
            last_seen_at_ms: r.last_seen_at_ms,
        }
    }
}

/// A verified session with its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSession {
    pub session: Session,
    pub user: User,
}

/// Creates, verifies and revokes sessions. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Sessions {
    db: Db,
    clock: Arc<dyn Clock>,
    config: SessionConfig,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Sessions {
    pub fn new(db: Db, clock: Arc<dyn Clock>, config: SessionConfig) -> Sessions {
        Sessions { db, clock, config }
    }

    pub fn config(&self) -> SessionConfig {
        self.config
    }

    /// Open a session for `user_id`. Returns the token (the only time it exists in clear) and the
    /// session. The user must exist in the tenant.
    pub async fn create(
        &self,
        tenant: &str,
        user_id: UserId,
        origin: &SessionOrigin,
    ) -> Result<(SessionToken, Session), IdentityError> {
        if origin.app.trim().is_empty() {
            return Err(IdentityError::InvalidInput {
                field: "app",
                problem: "is empty",
            });
        }
        let now = self.clock.now_ms();
        let token = SessionToken::generate();
        let row = self
            .db
            .insert_session(
                tenant,
                &NewSession {
                    token_hash: token.hash(),
                    user_id,
                    provider: origin.provider.as_str().to_owned(),
                    app: origin.app.clone(),
                    identity_id: origin.identity,
                    created_at_ms: now,
                    expires_at_ms: now.saturating_add(ms(self.config.ttl)),
                },
            )
            .await
            .map_err(|e| IdentityError::from_store(e, "user", user_id.get()))?;
        tracing::info!(tenant, session.id = row.id.get(), user.id = user_id.get(), provider = %origin.provider, "session created");
        Ok((token, Session::from_row(row)))
    }

    /// Check a token: it must have the token's shape, be known in this tenant, not be revoked, not be
    /// past its lifetime or idle timeout, and belong to a user who is still active. Moves last_seen
    /// forward (at most once per `touch_every`).
    pub async fn verify(
        &self,
        tenant: &str,
        token: &str,
    ) -> Result<VerifiedSession, IdentityError> {
        if !looks_like_token(token) {
            return Err(IdentityError::SessionMalformed);
        }
        let now = self.clock.now_ms();
        let row = self
            .db
            .session_by_token_hash(tenant, &token_hash(token))
            .await?
            .ok_or(IdentityError::SessionUnknown)?;
        if let Some(at_ms) = row.revoked_at_ms {
            return Err(IdentityError::SessionRevoked { at_ms });
        }
        if now >= row.expires_at_ms {
            return Err(IdentityError::SessionExpired {
                at_ms: row.expires_at_ms,
            });
        }
        if let Some(idle) = self.config.idle_timeout {
            let idle_end = row.last_seen_at_ms.saturating_add(ms(idle));
            if now >= idle_end {
                return Err(IdentityError::SessionExpired { at_ms: idle_end });
            }
        }
        let user = self
            .db
            .user(tenant, row.user_id)
            .await?
            .ok_or(IdentityError::UserNotFound {
                id: row.user_id.get(),
            })?;
        if matches!(user.status, UserStatus::Disabled | UserStatus::Left) {
            return Err(IdentityError::UserNotActive {
                id: user.id.get(),
                status: user.status,
            });
        }
        let mut session = Session::from_row(row);
        if now.saturating_sub(session.last_seen_at_ms) >= ms(self.config.touch_every)
            && self.db.touch_session(tenant, session.id, now).await?
        {
            session.last_seen_at_ms = now;
        }
        Ok(VerifiedSession { session, user })
    }

    /// Revoke the session of `token`; false if it was unknown or already revoked (revoking twice is
    /// harmless).
    pub async fn revoke(&self, tenant: &str, token: &str) -> Result<bool, IdentityError> {
        if !looks_like_token(token) {
            return Err(IdentityError::SessionMalformed);
        }
        let now = self.clock.now_ms();
        let done = self
            .db
            .revoke_session(tenant, &token_hash(token), now)
            .await?;
        if done {
            tracing::info!(tenant, "session revoked");
        }
        Ok(done)
    }

    /// Revoke every live session of a user (logout everywhere, a left member); how many.
    pub async fn revoke_user(&self, tenant: &str, user_id: UserId) -> Result<u64, IdentityError> {
        let now = self.clock.now_ms();
        Ok(self.db.revoke_user_sessions(tenant, user_id, now).await?)
    }
}
