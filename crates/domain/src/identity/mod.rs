//! Identity: sessions ([`session`]) and the WeChat account graph ([`graph`]).
//!
//! The login flows (WeCom OAuth/QR, official-account OAuth, website QR, mini-program jscode2session)
//! plug in here: each ends by resolving the person to a local user — WeCom through the directory links,
//! WeChat through [`AccountGraph::resolve_wechat_identity`] — and calling [`Sessions::create`] with the
//! provider and app it came through. Business backends then call [`Sessions::verify`].

pub mod backfill;
pub mod graph;
pub mod jssdk;
pub mod miniprogram;
pub mod oauth;
pub mod session;

pub use graph::{
    AccountGraph, DomainEvent, Resolution, UpstreamWechatUser, UserMerged, UserProfile,
    WechatLogin, WechatProfile,
};
pub use session::{
    Provider, Session, SessionConfig, SessionOrigin, SessionToken, Sessions, TOKEN_PREFIX,
    VerifiedSession, looks_like_token, token_hash,
};
/// The stored shapes of the graph, re-exported so callers need not depend on `store`.
pub use store::{
    AppKind, IdentityAuditEntry, IdentityId, MergeReason, UserMergeRecord, WechatIdentity,
};

/// What went wrong in sessions or the account graph. Never carries a token or a session key.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The text is not shaped like a session token at all.
    #[error("ID001 not a wxbridge session token (expected `wxs_` followed by 64 hex digits)")]
    SessionMalformed,
    /// No session with this token in this tenant.
    #[error("ID002 unknown session token")]
    SessionUnknown,
    /// The session's lifetime or idle timeout ended.
    #[error("ID003 the session expired at {at_ms} ms")]
    SessionExpired { at_ms: i64 },
    /// The session was revoked (logout, operator action).
    #[error("ID004 the session was revoked at {at_ms} ms")]
    SessionRevoked { at_ms: i64 },
    /// A user id that does not exist in this tenant.
    #[error("ID005 user {id} not found")]
    UserNotFound { id: i64 },
    /// The session's user was disabled or left the organisation.
    #[error("ID006 user {id} is {status}")]
    UserNotActive { id: i64, status: store::UserStatus },
    /// An identity id that does not exist in this tenant.
    #[error("ID007 WeChat identity {id} not found")]
    IdentityNotFound { id: i64 },
    /// A unionid joins users that are each linked to a WeCom member: they are not merged
    /// automatically; an operator has to decide.
    #[error(
        "ID008 unionid joins users {users:?}, each linked to a WeCom member; not merged automatically, link the identities by hand"
    )]
    MergeConflict { users: Vec<i64> },
    /// A caller-supplied value is unusable.
    #[error("ID009 invalid {field}: {problem}")]
    InvalidInput {
        field: &'static str,
        problem: &'static str,
    },
    /// The database failed.
    #[error("ID010 store: {0}")]
    Store(#[from] store::Error),
}

impl IdentityError {
    /// A store error, with a NotFound turned into this layer's not-found for `what`.
    pub(crate) fn from_store(e: store::Error, what: &'static str, id: i64) -> IdentityError {
        match e {
            store::Error::NotFound { what: w, id: found } => match w {
                "identity" => IdentityError::IdentityNotFound { id: found },
                "user" => IdentityError::UserNotFound { id: found },
                _ if what == "identity" => IdentityError::IdentityNotFound { id },
                _ => IdentityError::UserNotFound { id },
            },
            other => IdentityError::Store(other),
        }
    }

    /// True for the errors that mean "this token does not open a session" (401 at the HTTP layer).
    pub fn is_unauthenticated(&self) -> bool {
        matches!(
            self,
            IdentityError::SessionMalformed
                | IdentityError::SessionUnknown
                | IdentityError::SessionExpired { .. }
                | IdentityError::SessionRevoked { .. }
                | IdentityError::UserNotActive { .. }
        )
    }
}
