//! The pieces of the browser logins (WeCom OAuth / PC QR, official-account OAuth, website QR) that are
//! not HTTP: the OAuth `state`, the `return_to` allow-list, and resolving a WeCom member to a local user.
//!
//! **State.** WeChat and WeCom carry `state` back unchanged but allow only 128 characters of
//! `[a-zA-Z0-9]`, too little for a return_to URL. So a login start stores a [`PendingLogin`] (provider,
//! app, return_to, flow) in the database under a random 128-bit nonce for [`STATE_TTL`], and the `state`
//! sent upstream is `hex(nonce) ‖ hex(HMAC-SHA256(secret, tenant ‖ nonce))` (96 hex digits). The
//! callback checks the MAC in constant time before touching the database (a forged or altered state
//! costs no query), then marks the pending login consumed; a second use, an expired or an unknown state
//! is refused. The secret is generated once (256 random bits) and kept in the database
//! (`server_secrets`, name `oauth_state`), so every replica on one database signs and verifies alike
//! and nothing has to be configured.
//!
//! **return_to.** An absolute URL is allowed only when its origin (scheme, host, port) equals an entry
//! of the tenant's `return_to_allow` and its path lies under that entry's path (segment-wise, so
//! `https://app.example.com.evil.com/` and `https://app.example.com/appx` do not match
//! `https://app.example.com/app`). A path on the bridge itself (`/x`, not `//x` or `/\x`) is allowed.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use store::{Db, User, UserStatus};
use url::Url;
use wx_api::clock::Clock;
use wx_api::wecom::WecomApp;

use crate::directory::incremental::{IncrementalOptions, apply_contact_change};

/// How long a login may take from start to callback.
pub const STATE_TTL: Duration = Duration::from_secs(10 * 60);
/// The `server_secrets` row holding the state key.
const SECRET_NAME: &str = "oauth_state";
const NONCE_BYTES: usize = 16;
const MAC_HEX: usize = 64;
/// Expired states are deleted this long after expiry; until then a late callback hears "expired".
const PRUNE_AFTER_MS: i64 = 24 * 3600 * 1000;

/// What a login needs after the callback. Stored as JSON; never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLogin {
    /// `wecom`, `wechat_official_account` or `wechat_website` (see [`super::Provider`]).
    pub provider: String,
    /// The app's local name (WeCom app, official-account key) or `website`.
    pub app: String,
    /// Where the browser goes after the login (already checked against the allow-list).
    pub return_to: String,
    /// Which variant: `oauth`, `qr`, `consent` (WeCom snsapi_privateinfo), `base` / `userinfo`
    /// (official account), `login` (website).
    pub flow: String,
}

/// Why a login step was refused. Messages are for the person at the browser and the log; they never
/// carry a code, token or secret.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("LG001 the login state is missing or malformed; start the login again")]
    StateMalformed,
    #[error("LG002 the login state was altered (signature mismatch); start the login again")]
    StateTampered,
    #[error("LG003 the login state is unknown here (or expired long ago); start the login again")]
    StateUnknown,
    #[error("LG004 the login state expired; start the login again")]
    StateExpired,
    #[error("LG005 the login state was already used; start the login again")]
    StateReplayed,
    #[error("LG006 the login state was issued for another provider or app")]
    StateMismatch,
    #[error("LG007 return_to `{return_to}` is not allowed: {reason}")]
    ReturnToNotAllowed {
        return_to: String,
        reason: &'static str,
    },
    #[error(
        "LG008 WeCom member `{userid}` is not in this tenant's directory and could not be read: {message}"
    )]
    MemberUnknown { userid: String, message: String },
    #[error("LG009 user {user_id} is {status} and may not log in")]
    UserNotActive { user_id: i64, status: UserStatus },
    #[error("LG010 store: {0}")]
    Store(#[from] store::Error),
    #[error("LG011 stored login state does not parse: {0}")]
    Payload(String),
}

impl LoginError {
    /// Errors the person at the browser caused or can fix by starting again (400), as opposed to
    /// refusals (403) and failures of the bridge (500).
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            LoginError::StateMalformed
                | LoginError::StateTampered
                | LoginError::StateUnknown
                | LoginError::StateExpired
                | LoginError::StateReplayed
                | LoginError::StateMismatch
                | LoginError::ReturnToNotAllowed { .. }
        )
    }
}

/// Issues and consumes login states. Cheap to clone.
#[derive(Clone)]
pub struct LoginStates {
    db: Db,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for LoginStates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginStates").finish_non_exhaustive()
    }
}

fn ttl_ms() -> i64 {
    i64::try_from(STATE_TTL.as_millis()).unwrap_or(i64::MAX)
}

impl LoginStates {
    pub fn new(db: Db, clock: Arc<dyn Clock>) -> LoginStates {
        LoginStates { db, clock }
    }

    async fn mac(&self, tenant: &str, nonce: &str) -> Result<Hmac<Sha256>, LoginError> {
        let mut fresh = [0u8; 32];
        rand::rng().fill_bytes(&mut fresh);
        let stored = self
            .db
            .server_secret_or_insert(SECRET_NAME, &hex::encode(fresh), self.clock.now_ms())
            .await?;
        let key = hex::decode(stored.trim())
            .map_err(|_| LoginError::Payload("server_secrets.oauth_state is not hex".to_owned()))?;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key)
            .map_err(|_| LoginError::Payload("unusable state key".to_owned()))?;
        mac.update(b"wxbridge-oauth-state\0");
        mac.update(tenant.as_bytes());
        mac.update(b"\0");
        mac.update(nonce.as_bytes());
        Ok(mac)
    }

    /// Store `login` and return the `state` to send upstream (96 hex digits).
    pub async fn issue(&self, tenant: &str, login: &PendingLogin) -> Result<String, LoginError> {
        let mut bytes = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        let nonce = hex::encode(bytes);
        let payload =
            serde_json::to_string(login).map_err(|e| LoginError::Payload(e.to_string()))?;
        let now = self.clock.now_ms();
        self.db
            .insert_oauth_state(
                tenant,
                &nonce,
                &payload,
                now,
                now.saturating_add(ttl_ms()),
                now.saturating_sub(PRUNE_AFTER_MS),
            )
            .await?;
        let tag = self.mac(tenant, &nonce).await?.finalize().into_bytes();
        Ok(format!("{nonce}{}", hex::encode(tag)))
    }

    /// Check `state` and mark it used: the signature first (constant time, no query for a forgery),
    /// then that it exists, is unused and unexpired. The login must be for `provider` and `app`.
    pub async fn consume(
        &self,
        tenant: &str,
        state: &str,
        provider: &str,
        app: &str,
    ) -> Result<PendingLogin, LoginError> {
        let shaped = state.len() == NONCE_BYTES * 2 + MAC_HEX
            && state
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !shaped {
            return Err(LoginError::StateMalformed);
        }
        let (nonce, tag) = state.split_at(NONCE_BYTES * 2);
        let tag = hex::decode(tag).map_err(|_| LoginError::StateMalformed)?;
        self.mac(tenant, nonce)
            .await?
            .verify_slice(&tag)
            .map_err(|_| LoginError::StateTampered)?;
        let row = self
            .db
            .oauth_state(tenant, nonce)
            .await?
            .ok_or(LoginError::StateUnknown)?;
        if row.consumed_at_ms.is_some() {
            return Err(LoginError::StateReplayed);
        }
        let now = self.clock.now_ms();
        if now >= row.expires_at_ms {
            return Err(LoginError::StateExpired);
        }
        if !self.db.consume_oauth_state(tenant, nonce, now).await? {
            return Err(LoginError::StateReplayed);
        }
        let login: PendingLogin =
            serde_json::from_str(&row.payload).map_err(|e| LoginError::Payload(e.to_string()))?;
        if login.provider != provider || login.app != app {
            return Err(LoginError::StateMismatch);
        }
        Ok(login)
    }
}

fn refuse(return_to: &str, reason: &'static str) -> LoginError {
    LoginError::ReturnToNotAllowed {
        return_to: return_to.chars().take(200).collect(),
        reason,
    }
}

/// Check `return_to` against the allow-list (see the module doc) and return what to redirect to.
/// An empty `return_to` means `/`, the bridge's root.
pub fn check_return_to(allow: &[Url], return_to: &str) -> Result<String, LoginError> {
    let rt = return_to.trim();
    if rt.is_empty() {
        return Ok("/".to_owned());
    }
    if rt.chars().any(|c| c.is_control() || c == '\\') {
        return Err(refuse(rt, "it contains control characters or backslashes"));
    }
    if rt.starts_with('/') {
        if rt.starts_with("//") {
            return Err(refuse(
                rt,
                "`//` starts a URL on another host; give a path or an allowed absolute URL",
            ));
        }
        return Ok(rt.to_owned());
    }
    let url = Url::parse(rt).map_err(|_| refuse(rt, "it is neither a path nor an absolute URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refuse(rt, "only http and https URLs are allowed"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse(rt, "URLs with user info are not allowed"));
    }
    let allowed = allow.iter().any(|a| {
        a.origin() == url.origin() && {
            let prefix = a.path();
            let path = url.path();
            prefix == "/"
                || path == prefix
                || path
                    .strip_prefix(prefix)
                    .is_some_and(|rest| prefix.ends_with('/') || rest.starts_with('/'))
        }
    });
    if allowed {
        Ok(url.to_string())
    } else {
        Err(refuse(
            rt,
            "its origin and path match no entry of the tenant's return_to_allow",
        ))
    }
}

/// The local user of WeCom member `userid` of `app`'s corp. A member the bridge has not synced yet is
/// read (`user/get`) and applied like a `change_contact` update_user event, through the incremental
/// sync. Disabled and left users are refused.
pub async fn resolve_wecom_member(
    db: &Db,
    tenant: &str,
    app: &WecomApp,
    clock: &dyn Clock,
    userid: &str,
) -> Result<User, LoginError> {
    let corpid = app.credentials().corpid.clone();
    let mut user = db.user_by_wecom_userid(tenant, &corpid, userid).await?;
    if user.is_none() {
        let unknown = |message: String| LoginError::MemberUnknown {
            userid: userid.to_owned(),
            message,
        };
        if !userid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
        {
            return Err(unknown("the userid has unexpected characters".to_owned()));
        }
        let xml = format!(
            "<xml><ToUserName>{corpid}</ToUserName><MsgType>event</MsgType><Event>change_contact</Event>\
             <ChangeType>update_user</ChangeType><UserID>{userid}</UserID></xml>"
        );
        let msg = wx_crypto::message::CallbackMessage::from_xml(&xml)
            .map_err(|e| unknown(e.to_string()))?;
        let change = msg
            .change_contact()
            .ok_or_else(|| unknown("not a change_contact event".to_owned()))?;
        let outcome = apply_contact_change(
            db,
            tenant,
            app,
            clock,
            &change,
            &IncrementalOptions::default(),
        )
        .await
        .map_err(|e| unknown(e.to_string()))?;
        tracing::info!(tenant, applied = outcome.wrote(), "member fetched on login");
        user = db.user_by_wecom_userid(tenant, &corpid, userid).await?;
    }
    let user = user.ok_or_else(|| LoginError::MemberUnknown {
        userid: userid.to_owned(),
        message: "user/get did not return the member".to_owned(),
    })?;
    if matches!(user.status, UserStatus::Disabled | UserStatus::Left) {
        return Err(LoginError::UserNotActive {
            user_id: user.id.get(),
            status: user.status,
        });
    }
    Ok(user)
}
