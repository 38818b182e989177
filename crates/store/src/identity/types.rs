//! The identity store's plain data: WeChat identities, merges, the operator audit log, sealed
//! mini-program session keys and sessions. No SQL here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::directory::UserId;
use crate::error::Error;

macro_rules! surrogate_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(i64);

        impl $name {
            /// Wrap a raw id read from an API path or a previous answer. It names a row only if the
            /// database issued it for the same tenant; lookups with a foreign id find nothing.
            pub fn from_raw(raw: i64) -> Self {
                $name(raw)
            }

            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }
    };
}

surrogate_id!(
    /// One WeChat identity (tenant, appid, openid), issued by the database.
    IdentityId
);
surrogate_id!(
    /// One user merge record, issued by the database.
    MergeId
);
surrogate_id!(
    /// One session row, issued by the database (not the token: the token is never stored).
    SessionId
);

macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident, $column:literal { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Parse the stored / API spelling.
            pub fn parse(value: &str) -> Option<Self> {
                match value {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }

            pub(crate) fn parse_stored(value: &str) -> Result<Self, Error> {
                Self::parse(value).ok_or_else(|| Error::InvalidStored {
                    column: $column,
                    value: value.to_owned(),
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// What kind of WeChat app an openid belongs to.
    AppKind, "wechat_identities.app_kind" {
        /// An official account (公众号): web OAuth inside WeChat, followers.
        OfficialAccount => "official_account",
        /// A WeChat mini program (sns/jscode2session).
        MiniProgram => "mini_program",
        /// The open platform's website app (snsapi_login QR).
        Website => "website",
        /// A mini program opened inside WeCom that still identifies WeChat users by openid.
        WecomMiniProgram => "wecom_mini_program",
    }
);

text_enum!(
    /// Why two users were merged.
    MergeReason, "user_merges.reason" {
        /// Identities of both users share a unionid.
        Unionid => "unionid",
        /// An operator merged them.
        Manual => "manual",
    }
);

text_enum!(
    /// An operator's action on an identity.
    AuditAction, "identity_audit.action" {
        /// The identity was moved to an existing user.
        Link => "link",
        /// The identity was moved to a new user of its own.
        Unlink => "unlink",
    }
);

/// A WeChat identity as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WechatIdentity {
    pub id: IdentityId,
    pub tenant: String,
    pub appid: String,
    pub app_kind: AppKind,
    /// Exactly as WeChat sent it (openids are case-sensitive).
    pub openid: String,
    pub unionid: Option<String>,
    pub user_id: UserId,
    pub nickname: Option<String>,
    pub avatar: Option<String>,
    /// Placed by an operator: automatic convergence never moves it.
    pub pinned: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A WeChat identity to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWechatIdentity {
    pub appid: String,
    pub app_kind: AppKind,
    pub openid: String,
    pub unionid: Option<String>,
    pub nickname: Option<String>,
    pub avatar: Option<String>,
}

/// One stored merge of `from_user` into `into_user`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserMergeRecord {
    pub id: MergeId,
    pub from_user: UserId,
    pub into_user: UserId,
    pub reason: MergeReason,
    pub unionid: Option<String>,
    /// `system` for automatic convergence, otherwise the operator.
    pub actor: String,
    /// The identities that moved from `from_user` to `into_user`.
    pub identities: Vec<IdentityId>,
    /// How many sessions moved with them.
    pub sessions_moved: u64,
    pub at_ms: i64,
}

/// What [`crate::Db::merge_users`] does, in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserMerge {
    pub from_user: UserId,
    pub into_user: UserId,
    pub reason: MergeReason,
    pub unionid: Option<String>,
    pub actor: String,
    /// Set this identity's unionid in the same transaction (the late-unionid case), before moving.
    pub learn_unionid: Option<(IdentityId, String)>,
}

/// One audited operator action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityAuditEntry {
    pub id: i64,
    pub at_ms: i64,
    pub actor: String,
    pub action: AuditAction,
    pub identity_id: IdentityId,
    pub from_user: UserId,
    pub to_user: UserId,
    pub note: Option<String>,
}

/// A mini program's session_key, sealed by the caller (the store never sees it in clear).
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSessionKey {
    /// Names the key that sealed it, for rotation.
    pub key_id: String,
    /// Nonce, ciphertext and tag, in the caller's format.
    pub sealed: Vec<u8>,
    pub updated_at_ms: i64,
}

impl fmt::Debug for SealedSessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedSessionKey")
            .field("key_id", &self.key_id)
            .field("sealed_len", &self.sealed.len())
            .field("updated_at_ms", &self.updated_at_ms)
            .finish()
    }
}

/// A session as stored: only the token's hash, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id: SessionId,
    pub tenant: String,
    /// Hex SHA-256 of the token text.
    pub token_hash: String,
    pub user_id: UserId,
    /// How the person logged in (`wecom`, `wechat_official_account`, `wechat_mini_program`, ...).
    pub provider: String,
    /// Through which app (a WeCom app name, a WeChat appid, a mini-program key).
    pub app: String,
    pub identity_id: Option<IdentityId>,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub last_seen_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

/// A session to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub token_hash: String,
    pub user_id: UserId,
    pub provider: String,
    pub app: String,
    pub identity_id: Option<IdentityId>,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

// ---- row decoding, shared by both backends ----

pub(crate) type IdentityRow = (
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    Option<String>,
    Option<String>,
    bool,
    i64,
    i64,
);

pub(crate) const IDENTITY_COLS: &str = "i.id, i.tenant, i.appid, i.app_kind, i.openid, i.unionid, \
    i.user_id, i.nickname, i.avatar, i.pinned, i.created_at_ms, i.updated_at_ms";

/// [`IDENTITY_COLS`] without the table alias, for RETURNING.
pub(crate) const IDENTITY_COLS_BARE: &str = "id, tenant, appid, app_kind, openid, unionid, user_id, \
    nickname, avatar, pinned, created_at_ms, updated_at_ms";

pub(crate) fn identity_from_row(r: IdentityRow) -> Result<WechatIdentity, Error> {
    Ok(WechatIdentity {
        id: IdentityId(r.0),
        tenant: r.1,
        appid: r.2,
        app_kind: AppKind::parse_stored(&r.3)?,
        openid: r.4,
        unionid: r.5,
        user_id: UserId::from_raw(r.6),
        nickname: r.7,
        avatar: r.8,
        pinned: r.9,
        created_at_ms: r.10,
        updated_at_ms: r.11,
    })
}

pub(crate) type SessionRowTuple = (
    i64,
    String,
    String,
    i64,
    String,
    String,
    Option<i64>,
    i64,
    i64,
    i64,
    Option<i64>,
);

pub(crate) const SESSION_COLS: &str = "s.id, s.tenant, s.token_hash, s.user_id, s.provider, s.app, \
    s.identity_id, s.created_at_ms, s.expires_at_ms, s.last_seen_at_ms, s.revoked_at_ms";

/// [`SESSION_COLS`] without the table alias, for RETURNING.
pub(crate) const SESSION_COLS_BARE: &str = "id, tenant, token_hash, user_id, provider, app, \
    identity_id, created_at_ms, expires_at_ms, last_seen_at_ms, revoked_at_ms";

pub(crate) fn session_from_row(r: SessionRowTuple) -> SessionRow {
    SessionRow {
        id: SessionId(r.0),
        tenant: r.1,
        token_hash: r.2,
        user_id: UserId::from_raw(r.3),
        provider: r.4,
        app: r.5,
        identity_id: r.6.map(IdentityId),
        created_at_ms: r.7,
        expires_at_ms: r.8,
        last_seen_at_ms: r.9,
        revoked_at_ms: r.10,
    }
}

pub(crate) type MergeRowTuple = (i64, i64, i64, String, Option<String>, String, String, i64);

pub(crate) const MERGE_COLS: &str =
    "id, from_user_id, into_user_id, reason, unionid, actor, identities, at_ms";

/// The JSON document in `user_merges.identities`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct MergeDetail {
    pub identities: Vec<IdentityId>,
    pub sessions_moved: u64,
}

pub(crate) fn merge_from_row(r: MergeRowTuple) -> Result<UserMergeRecord, Error> {
    let detail: MergeDetail = serde_json::from_str(&r.6).map_err(|source| Error::StoredJson {
        column: "user_merges.identities",
        source,
    })?;
    Ok(UserMergeRecord {
        id: MergeId(r.0),
        from_user: UserId::from_raw(r.1),
        into_user: UserId::from_raw(r.2),
        reason: MergeReason::parse_stored(&r.3)?,
        unionid: r.4,
        actor: r.5,
        identities: detail.identities,
        sessions_moved: detail.sessions_moved,
        at_ms: r.7,
    })
}

pub(crate) type AuditRowTuple = (i64, i64, String, String, i64, i64, i64, Option<String>);

pub(crate) const AUDIT_COLS: &str =
    "id, at_ms, actor, action, identity_id, from_user_id, to_user_id, note";

pub(crate) fn audit_from_row(r: AuditRowTuple) -> Result<IdentityAuditEntry, Error> {
    Ok(IdentityAuditEntry {
        id: r.0,
        at_ms: r.1,
        actor: r.2,
        action: AuditAction::parse_stored(&r.3)?,
        identity_id: IdentityId(r.4),
        from_user: UserId::from_raw(r.5),
        to_user: UserId::from_raw(r.6),
        note: r.7,
    })
}
