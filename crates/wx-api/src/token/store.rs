//! The token store trait. Implementations: in-memory (this crate), Redis (this crate, feature `redis`),
//! SQL on SQLite and PostgreSQL (the `store` crate). All of them keep the same contract, checked by one
//! behaviour suite.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

/// What a cached value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// WeCom `cgi-bin/gettoken` access token of one app secret.
    WecomAccessToken,
    /// WeCom company jsapi ticket (`get_jsapi_ticket`), for `wx.config`.
    WecomJsapiTicket,
    /// WeCom app ticket (`ticket/get?type=agent_config`), for `wx.agentConfig`.
    WecomAgentTicket,
    /// WeChat base access token (`cgi-bin/stable_token` by default, or classic `cgi-bin/token`).
    WechatAccessToken,
    /// WeChat jsapi ticket (`cgi-bin/ticket/getticket?type=jsapi`).
    WechatJsapiTicket,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::WecomAccessToken => "wecom_access_token",
            TokenKind::WecomJsapiTicket => "wecom_jsapi_ticket",
            TokenKind::WecomAgentTicket => "wecom_agent_ticket",
            TokenKind::WechatAccessToken => "wechat_access_token",
            TokenKind::WechatJsapiTicket => "wechat_jsapi_ticket",
        }
    }
}

/// Identifies one cached token: (tenant, corpid or appid, secret identity, kind).
///
/// `secret_id` is not the secret: it is a short fingerprint of it (see `TokenKey::secret_fingerprint`),
/// so a rotated secret gets a fresh cache entry and no store ever holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenKey {
    pub tenant: String,
    pub owner: String,
    pub secret_id: String,
    pub kind: TokenKind,
}

impl TokenKey {
    /// The key for `secret`'s token of `kind` for `owner` (corpid or appid) in `tenant`.
    pub fn new(
        tenant: impl Into<String>,
        owner: impl Into<String>,
        secret: &SecretString,
        kind: TokenKind,
    ) -> Self {
        TokenKey {
            tenant: tenant.into(),
            owner: owner.into(),
            secret_id: Self::secret_fingerprint(secret),
            kind,
        }
    }

    /// The first 16 hex digits of sha256(secret): enough to tell secrets apart, useless to recover one.
    pub fn secret_fingerprint(secret: &SecretString) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(secret.expose_secret().as_bytes());
        let mut hex = hex::encode(digest);
        hex.truncate(16);
        hex
    }

    /// The same owner and secret, another kind (a ticket fetched with this access token).
    pub fn with_kind(&self, kind: TokenKind) -> Self {
        TokenKey {
            kind,
            ..self.clone()
        }
    }

    /// The flat string form used as a Redis key. Each part is escaped (`%` -> `%25`, `:` -> `%3A`), so two
    /// different keys never flatten to the same string even if a part contains the separator.
    pub fn cache_key(&self) -> String {
        format!(
            "wxbridge:token:{}:{}:{}:{}",
            escape_part(&self.tenant),
            escape_part(&self.owner),
            escape_part(&self.secret_id),
            self.kind.as_str()
        )
    }
}

fn escape_part(part: &str) -> std::borrow::Cow<'_, str> {
    if part.contains(['%', ':']) {
        part.replace('%', "%25").replace(':', "%3A").into()
    } else {
        part.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tenant: &str, owner: &str) -> TokenKey {
        TokenKey {
            tenant: tenant.to_owned(),
            owner: owner.to_owned(),
            secret_id: "s".to_owned(),
            kind: TokenKind::WecomAccessToken,
        }
    }

    #[test]
    fn cache_keys_of_different_keys_differ_even_with_separators_in_parts() {
        assert_ne!(key("a:b", "c").cache_key(), key("a", "b:c").cache_key());
        assert_ne!(key("a%3Ab", "c").cache_key(), key("a:b", "c").cache_key());
        assert_eq!(
            key("demo", "ww1").cache_key(),
            "wxbridge:token:demo:ww1:s:wecom_access_token"
        );
    }
}

/// A cached token value with its absolute expiry (milliseconds since the epoch, from the manager's clock).
#[derive(Clone)]
pub struct CachedToken {
    pub value: SecretString,
    pub expires_at_ms: i64,
}

impl CachedToken {
    pub fn value(&self) -> &str {
        self.value.expose_secret()
    }
}

impl fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedToken")
            .field("value", &"[redacted]")
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

/// A token store failed (connection lost, bad row). Never carries a token value.
#[derive(Debug, Clone, thiserror::Error)]
#[error("token store ({backend}): {message}")]
pub struct StoreError {
    pub backend: &'static str,
    pub message: String,
}

impl StoreError {
    pub fn new(backend: &'static str, message: impl fmt::Display) -> Self {
        StoreError {
            backend,
            message: message.to_string(),
        }
    }
}

/// Where tokens are cached, and how replicas agree on who refreshes.
#[async_trait]
pub trait TokenStore: Send + Sync + fmt::Debug {
    /// The cached token, if any (expired values may be returned; the manager checks expiry).
    async fn get(&self, key: &TokenKey) -> Result<Option<CachedToken>, StoreError>;

    /// Store (replace) the token for `key`.
    async fn put(&self, key: &TokenKey, token: &CachedToken) -> Result<(), StoreError>;

    /// Compare-and-delete: remove the cached token only if its value is still `value`. Returns whether
    /// something was removed. This is how a 40014/42001 invalidates exactly the token that failed and never
    /// a fresher one that another replica already stored.
    async fn invalidate(&self, key: &TokenKey, value: &str) -> Result<bool, StoreError>;

    /// Try to take the refresh lease for `key` as `holder` for `ttl`. `now_ms` is the caller's clock (SQL
    /// stores compare against it; Redis uses its own expiry). Returns whether the lease was taken. The
    /// holder of a live lease may take it again: that renews it (from `now_ms`) instead of refusing.
    async fn try_lease(
        &self,
        key: &TokenKey,
        holder: &str,
        now_ms: i64,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Give the lease back if `holder` still holds it.
    async fn release_lease(&self, key: &TokenKey, holder: &str) -> Result<(), StoreError>;

    /// Wait until the token for `key` may have changed, or `timeout` passes, whichever is first. Stores
    /// with a notification channel (Redis pub/sub) return as soon as the lease holder publishes; others
    /// may simply wait a short poll interval no longer than `timeout`.
    async fn wait_for_update(&self, key: &TokenKey, timeout: Duration) -> Result<(), StoreError>;
}
