//! The identity repository: WeChat identities (the account graph), user merges, the operator audit log,
//! sealed mini-program session keys and sessions, as methods on [`Db`].
//!
//! Users are the directory's [`crate::User`] rows; a person known only through WeChat has a user with no
//! WeCom link. The store holds the graph and makes each change atomic; the rules (which user survives a
//! merge, when identities converge) live in `domain::identity`.
//!
//! Every method is scoped to a tenant. Timestamps are milliseconds since the epoch passed in by the
//! caller. Session tokens never reach the store: it sees only their hashes. Session keys reach it only
//! sealed.

mod types;

pub use types::{
    AppKind, AuditAction, IdentityAuditEntry, IdentityId, MergeId, MergeReason, NewSession,
    NewWechatIdentity, SealedSessionKey, SessionId, SessionRow, UserMerge, UserMergeRecord,
    WechatIdentity,
};

use crate::db::{Db, Pool};
use crate::directory::{UserFields, UserId};
use crate::error::Error;

mod sqlite_ops {
    use super::types::*;
    use crate::db::Backend;
    use crate::directory::{Gender, UserFields, UserId};
    use crate::error::Error;
    type DB = sqlx::Sqlite;
    const BACKEND: Backend = Backend::Sqlite;
    include!("ops.rs");
}

mod postgres_ops {
    use super::types::*;
    use crate::db::Backend;
    use crate::directory::{Gender, UserFields, UserId};
    use crate::error::Error;
    type DB = sqlx::Postgres;
    const BACKEND: Backend = Backend::Postgres;
    include!("ops.rs");
}

macro_rules! dispatch {
    ($db:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match &$db.pool {
            Pool::Sqlite(pool) => sqlite_ops::$f(pool, $($arg),*).await,
            Pool::Postgres(pool) => postgres_ops::$f(pool, $($arg),*).await,
        }
    };
}

impl Db {
    // ---- WeChat identities ----

    pub async fn wechat_identity(
        &self,
        tenant: &str,
        id: IdentityId,
    ) -> Result<Option<WechatIdentity>, Error> {
        dispatch!(self, identity(tenant, id.get()))
    }

    /// The identity of `openid` in app `appid` (matched exactly: openids are case-sensitive).
    pub async fn wechat_identity_by_openid(
        &self,
        tenant: &str,
        appid: &str,
        openid: &str,
    ) -> Result<Option<WechatIdentity>, Error> {
        dispatch!(self, identity_by_openid(tenant, appid, openid))
    }

    /// Every identity carrying `unionid`, oldest first.
    pub async fn wechat_identities_by_unionid(
        &self,
        tenant: &str,
        unionid: &str,
    ) -> Result<Vec<WechatIdentity>, Error> {
        dispatch!(self, identities_by_unionid(tenant, unionid))
    }

    /// A user's WeChat identities, oldest first.
    pub async fn wechat_identities_of_user(
        &self,
        tenant: &str,
        user_id: UserId,
    ) -> Result<Vec<WechatIdentity>, Error> {
        dispatch!(self, identities_of_user(tenant, user_id.get()))
    }

    /// Attach a new identity to an existing user. A second identity with the same (appid, openid) is a
    /// [`Error::Conflict`]; an unknown user is [`Error::NotFound`].
    pub async fn insert_wechat_identity(
        &self,
        tenant: &str,
        user_id: UserId,
        new: &NewWechatIdentity,
        now_ms: i64,
    ) -> Result<WechatIdentity, Error> {
        dispatch!(self, insert_identity(tenant, user_id.get(), new, now_ms))
    }

    /// Create a user (with no WeCom link) and its first identity in one transaction.
    pub async fn create_wechat_user(
        &self,
        tenant: &str,
        fields: &UserFields,
        new: &NewWechatIdentity,
        now_ms: i64,
    ) -> Result<WechatIdentity, Error> {
        dispatch!(self, create_user_with_identity(tenant, fields, new, now_ms))
    }

    /// Replace an identity's nickname and avatar; false if no such identity.
    pub async fn update_wechat_identity_profile(
        &self,
        tenant: &str,
        id: IdentityId,
        nickname: Option<&str>,
        avatar: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, Error> {
        dispatch!(
            self,
            update_identity_profile(tenant, id.get(), nickname, avatar, now_ms)
        )
    }

    /// Record an identity's unionid if it has none yet; false if it already had one (a unionid never
    /// changes upstream, so the stored one is kept).
    pub async fn learn_wechat_unionid(
        &self,
        tenant: &str,
        id: IdentityId,
        unionid: &str,
        now_ms: i64,
    ) -> Result<bool, Error> {
        dispatch!(self, learn_unionid(tenant, id.get(), unionid, now_ms))
    }

    // ---- merges ----

    /// Merge `from_user` into `into_user` in ONE transaction: optionally record a learned unionid,
    /// move every identity of `from_user` that is not pinned, move its sessions, and write the merge
    /// record. The from-user row is kept (never deleted). WeCom links are not moved: the caller picks
    /// the surviving user so that the from-user has none.
    pub async fn merge_users(
        &self,
        tenant: &str,
        merge: &UserMerge,
        now_ms: i64,
    ) -> Result<UserMergeRecord, Error> {
        dispatch!(self, merge_users(tenant, merge, now_ms))
    }

    /// Merges a user took part in (from or into), oldest first.
    pub async fn user_merges(
        &self,
        tenant: &str,
        user_id: UserId,
    ) -> Result<Vec<UserMergeRecord>, Error> {
        dispatch!(self, merges_of_user(tenant, user_id.get()))
    }

    // ---- operator link / unlink ----

    /// Move an identity to `to_user` (link), pinned so convergence never moves it back, revoke the
    /// sessions opened through it, and write the audit entry, in one transaction.
    pub async fn link_wechat_identity(
        &self,
        tenant: &str,
        id: IdentityId,
        to_user: UserId,
        actor: &str,
        note: Option<&str>,
        now_ms: i64,
    ) -> Result<IdentityAuditEntry, Error> {
        // The fields are unused on link; an unlink creates the user from them.
        let unused = UserFields {
            name: String::new(),
            mobile: None,
            email: None,
            avatar: None,
            position: None,
            gender: None,
            status: crate::UserStatus::Active,
        };
        dispatch!(
            self,
            relink_identity(
                tenant,
                id.get(),
                Some(to_user.get()),
                &unused,
                actor,
                note,
                now_ms
            )
        )
    }

    /// Move an identity to a new user of its own made from `new_user` (unlink), pinned, revoking the
    /// sessions opened through it, and write the audit entry, in one transaction.
    pub async fn unlink_wechat_identity(
        &self,
        tenant: &str,
        id: IdentityId,
        new_user: &UserFields,
        actor: &str,
        note: Option<&str>,
        now_ms: i64,
    ) -> Result<IdentityAuditEntry, Error> {
        dispatch!(
            self,
            relink_identity(tenant, id.get(), None, new_user, actor, note, now_ms)
        )
    }

    /// The audit trail of one identity, oldest first.
    pub async fn identity_audit(
        &self,
        tenant: &str,
        id: IdentityId,
    ) -> Result<Vec<IdentityAuditEntry>, Error> {
        dispatch!(self, audit_of_identity(tenant, id.get()))
    }

    /// Set a user's name, mobile and avatar (values a login learned: a mini program's phone number or
    /// user info). The caller decides which values to keep; false when the user does not exist.
    pub async fn set_user_profile(
        &self,
        tenant: &str,
        user_id: UserId,
        name: &str,
        mobile: Option<&str>,
        avatar: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, Error> {
        dispatch!(
            self,
            set_user_profile(tenant, user_id.get(), name, mobile, avatar, now_ms)
        )
    }

    // ---- sealed session keys ----

    /// Store (or replace) the sealed session_key of a mini-program identity.
    pub async fn put_wechat_session_key(
        &self,
        tenant: &str,
        identity_id: IdentityId,
        key: &SealedSessionKey,
    ) -> Result<(), Error> {
        dispatch!(self, put_session_key(tenant, identity_id.get(), key))
    }

    pub async fn wechat_session_key(
        &self,
        tenant: &str,
        identity_id: IdentityId,
    ) -> Result<Option<SealedSessionKey>, Error> {
        dispatch!(self, session_key(tenant, identity_id.get()))
    }

    /// Store (or replace) the sealed session_key of WeCom mini program `appid` for member `user_id`
    /// (a WeCom member has no WeChat identity to key it by). An unknown user is [`Error::NotFound`].
    pub async fn put_wecom_session_key(
        &self,
        tenant: &str,
        appid: &str,
        user_id: UserId,
        key: &SealedSessionKey,
    ) -> Result<(), Error> {
        dispatch!(
            self,
            put_wecom_session_key(tenant, appid, user_id.get(), key)
        )
    }

    pub async fn wecom_session_key(
        &self,
        tenant: &str,
        appid: &str,
        user_id: UserId,
    ) -> Result<Option<SealedSessionKey>, Error> {
        dispatch!(self, wecom_session_key(tenant, appid, user_id.get()))
    }

    // ---- sessions ----

    /// Insert a session (its token hash, never the token). An unknown user is [`Error::NotFound`].
    pub async fn insert_session(
        &self,
        tenant: &str,
        new: &NewSession,
    ) -> Result<SessionRow, Error> {
        dispatch!(self, insert_session(tenant, new))
    }

    pub async fn session_by_token_hash(
        &self,
        tenant: &str,
        token_hash: &str,
    ) -> Result<Option<SessionRow>, Error> {
        dispatch!(self, session_by_hash(tenant, token_hash))
    }

    /// Every session of a user (revoked and expired included), oldest first.
    pub async fn sessions_of_user(
        &self,
        tenant: &str,
        user_id: UserId,
    ) -> Result<Vec<SessionRow>, Error> {
        dispatch!(self, sessions_of_user(tenant, user_id.get()))
    }

    /// Move a live session's last_seen forward to `now_ms` (never backwards); false if nothing moved.
    pub async fn touch_session(
        &self,
        tenant: &str,
        id: SessionId,
        now_ms: i64,
    ) -> Result<bool, Error> {
        dispatch!(self, touch_session(tenant, id.get(), now_ms))
    }

    /// Revoke the session with this token hash; false if unknown or already revoked.
    pub async fn revoke_session(
        &self,
        tenant: &str,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<bool, Error> {
        dispatch!(self, revoke_session(tenant, token_hash, now_ms))
    }

    /// Revoke every live session of a user; how many were revoked.
    pub async fn revoke_user_sessions(
        &self,
        tenant: &str,
        user_id: UserId,
        now_ms: i64,
    ) -> Result<u64, Error> {
        dispatch!(self, revoke_user_sessions(tenant, user_id.get(), now_ms))
    }
}
