//! wxbridge persistence on SQLite (the default, one file) and PostgreSQL (many replicas): the database
//! handle, embedded migrations, and the repositories built on them, the token cache and the directory
//! (users, roles, WeCom links, sync runs).
//!
//! Each repository writes its SQL once where the two dialects agree (`$n` placeholders,
//! `INSERT ... ON CONFLICT`) and dispatches on the pool; the schema lives in one migrations folder per
//! database (`migrations/sqlite`, `migrations/postgres`).

mod admin;
mod db;
mod directory;
mod error;
mod identity;
mod inbox;
mod oauth_state;
mod outbox;
mod token_store;
mod webhooks;

pub use admin::{
    AdminIdentityRow, AdminKind, AdminMergeRow, AdminRoleRow, AdminSessionRow, InboxSummary,
    LinkConsume, OutboxSummary,
};
pub use db::{AppliedMigration, Backend, Db, MigrationReport};
pub use directory::{
    ApplyReport, DepartmentLink, DepartmentUpsert, DirectoryChanges, EntityCounters, Gender,
    LocalDepartment, LocalDirectory, LocalMember, MemberLink, MemberUpsert, Membership,
    MembershipSpec, NewSyncRun, Role, RoleId, RoleMember, RoleOrigin, SyncCounters, SyncEvent,
    SyncKind, SyncRun, SyncRunId, SyncStatus, User, UserFields, UserId, UserRole, UserStatus,
    UseridRename, normalize_userid,
};
pub use directory::{LocalTag, TagApplyReport, TagChanges, TagLink, TagUpsert};
pub use error::Error;
pub use identity::{
    AppKind, AuditAction, IdentityAuditEntry, IdentityId, MergeId, MergeReason, NewSession,
    NewWechatIdentity, SealedSessionKey, SessionId, SessionRow, UserMerge, UserMergeRecord,
    WechatIdentity,
};
pub use inbox::{
    InboxInsert, InboxMessage, InboxSettle, InboxSettlement, InboxStatus, NewInboxMessage,
};
pub use oauth_state::OAuthStateRow;
pub use outbox::{
    CallOutcome, CallStatus, EnqueueOutcome, NewOutboxMessage, OutboxCall, OutboxMessage,
    OutboxStatus,
};
pub use token_store::SqlTokenStore;
pub use webhooks::{
    NewWebhookDelivery, Subscription, WebhookDelivery, WebhookEnqueue, WebhookFinish, WebhookStatus,
};
