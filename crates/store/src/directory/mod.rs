//! The directory repository: local users and roles, their links to WeCom members and departments, sync
//! runs with persisted progress events, and the per-corp sync lease, as methods on [`Db`].
//!
//! Every method is scoped to a tenant: rows of another tenant are never read or written, whatever ids
//! are passed. Timestamps are milliseconds since the epoch passed in by the caller; the store reads no
//! clock. Writes of a sync go through [`Db::apply_directory_changes`], one transaction per batch.
//!
//! How a sync uses it (the planner in `domain` is pure and only sees plain data):
//! 1. [`Db::try_sync_lease`] for `(tenant, corpid)`; renew it while running, release at the end.
//! 2. [`Db::create_sync_run`]; [`Db::append_sync_event`] for progress (subscribers replay with
//!    [`Db::sync_events_after`]); [`Db::update_sync_run`] for counters and the resume checkpoint.
//! 3. [`Db::load_directory`] once, diff against the upstream fetch, build [`DirectoryChanges`] with only
//!    what differs (complete field values: withheld upstream fields already merged with the local ones).
//! 4. [`Db::apply_directory_changes`] in one batch or several (each batch is atomic; a killed run leaves
//!    whole batches only, and the next run's diff picks up the rest). A dry run skips this step.
//! 5. [`Db::finish_sync_run`] with the final status.
//!
//! Ids are integers issued by the database (`INTEGER PRIMARY KEY` / `BIGINT GENERATED ALWAYS AS
//! IDENTITY`) rather than text UUIDs: 8-byte keys keep the membership and link indexes small and joins
//! cheap at 100k users, and both databases return them with `RETURNING`. They are not secret and not
//! meant to be unguessable: access control is by tenant, not by obscurity.

mod tags;
mod types;

pub use tags::{LocalTag, TagApplyReport, TagChanges, TagLink, TagUpsert};
pub use types::{
    ApplyReport, DepartmentLink, DepartmentUpsert, DirectoryChanges, EntityCounters, Gender,
    LocalDepartment, LocalDirectory, LocalMember, MemberLink, MemberUpsert, Membership,
    MembershipSpec, NewSyncRun, Role, RoleId, RoleOrigin, SyncCounters, SyncEvent, SyncKind,
    SyncRun, SyncRunId, SyncStatus, User, UserFields, UserId, UserStatus, UseridRename,
    normalize_userid,
};

use std::time::Duration;

use crate::db::{Db, Pool};
use crate::error::Error;
use types::RoleLinkKind;

mod sqlite_ops {
    use super::types::*;
    use crate::db::Backend;
    use crate::error::Error;
    type DB = sqlx::Sqlite;
    const BACKEND: Backend = Backend::Sqlite;
    include!("ops.rs");
}

mod postgres_ops {
    use super::types::*;
    use crate::db::Backend;
    use crate::error::Error;
    type DB = sqlx::Postgres;
    const BACKEND: Backend = Backend::Postgres;
    include!("ops.rs");
}

/// Calls the same function of the backend's ops module with the backend's pool.
macro_rules! dispatch {
    ($db:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match &$db.pool {
            Pool::Sqlite(pool) => sqlite_ops::$f(pool, $($arg),*).await,
            Pool::Postgres(pool) => postgres_ops::$f(pool, $($arg),*).await,
        }
    };
}

/// A membership with its role, as [`Db::user_roles`] returns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRole {
    pub membership: Membership,
    pub role: Role,
}

/// A membership with its user, as [`Db::role_members`] returns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleMember {
    pub membership: Membership,
    pub user: User,
}

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

fn limit(n: u32) -> i64 {
    i64::from(n)
}

impl Db {
    // ---- directory ----

    /// Everything stored for `(tenant, corpid)`, for the sync planner to diff against (see
    /// [`LocalDirectory`] for exactly what is included). Three queries on one connection.
    pub async fn load_directory(
        &self,
        tenant: &str,
        corpid: &str,
    ) -> Result<LocalDirectory, Error> {
        dispatch!(self, load(tenant, corpid))
    }

    /// Apply one batch of changes to `(tenant, corpid)` in ONE transaction: if any item fails (an
    /// unknown department or userid, a duplicate link) nothing of the batch is written and the error
    /// names the item. `now_ms` stamps created/updated/ended times. Big batches are fine (a 100k-member
    /// first sync can be one batch or several); each item costs a few prepared statements.
    pub async fn apply_directory_changes(
        &self,
        tenant: &str,
        corpid: &str,
        changes: &DirectoryChanges,
        now_ms: i64,
    ) -> Result<ApplyReport, Error> {
        if changes.is_empty() {
            return Ok(ApplyReport::default());
        }
        dispatch!(self, apply(tenant, corpid, changes, now_ms))
    }

    // ---- lookups ----

    pub async fn user(&self, tenant: &str, id: UserId) -> Result<Option<User>, Error> {
        dispatch!(self, user(tenant, id.get()))
    }

    /// The user linked to WeCom `userid` in `corpid`, matched case-insensitively.
    pub async fn user_by_wecom_userid(
        &self,
        tenant: &str,
        corpid: &str,
        userid: &str,
    ) -> Result<Option<User>, Error> {
        dispatch!(self, user_by_userid(tenant, corpid, userid))
    }

    /// Users with exactly this mobile (not unique: WeCom allows shared numbers), at most `max`.
    pub async fn users_by_mobile(
        &self,
        tenant: &str,
        mobile: &str,
        max: u32,
    ) -> Result<Vec<User>, Error> {
        dispatch!(
            self,
            users_where(tenant, "u.mobile = $2", mobile, limit(max))
        )
    }

    /// Users with this email, compared case-insensitively (ASCII), at most `max`.
    pub async fn users_by_email(
        &self,
        tenant: &str,
        email: &str,
        max: u32,
    ) -> Result<Vec<User>, Error> {
        let email = email.to_lowercase();
        dispatch!(
            self,
            users_where(tenant, "lower(u.email) = $2", &email, limit(max))
        )
    }

    /// Users whose name contains `fragment` (case-insensitive for ASCII; `%` and `_` match literally),
    /// ordered by name, at most `max`. A substring scan: fine for a directory, not a search engine.
    pub async fn search_users_by_name(
        &self,
        tenant: &str,
        fragment: &str,
        max: u32,
    ) -> Result<Vec<User>, Error> {
        let pattern = types::contains_pattern(fragment);
        dispatch!(
            self,
            users_where(
                tenant,
                "lower(u.name) LIKE $2 ESCAPE '\\'",
                &pattern,
                limit(max)
            )
        )
    }

    /// The WeCom members (one per corp) linked to a user.
    pub async fn wecom_links_of_user(
        &self,
        tenant: &str,
        user_id: UserId,
    ) -> Result<Vec<MemberLink>, Error> {
        dispatch!(self, member_links_of_user(tenant, user_id.get()))
    }

    /// A user's roles through their open memberships, main first, with leader flags.
    pub async fn user_roles(&self, tenant: &str, user_id: UserId) -> Result<Vec<UserRole>, Error> {
        let rows = dispatch!(self, user_roles(tenant, user_id.get()))?;
        Ok(rows
            .into_iter()
            .map(|(membership, role)| UserRole { membership, role })
            .collect())
    }

    /// A role's open memberships with their users: the role's own, or with `with_sub_roles` also those
    /// of every non-archived role below it and of the roles it includes (a tag's departments, see
    /// [`Db::role_members_expanded`]); one row per membership, so a user in two sub-roles appears twice,
    /// once for each.
    pub async fn role_members(
        &self,
        tenant: &str,
        role_id: RoleId,
        with_sub_roles: bool,
    ) -> Result<Vec<RoleMember>, Error> {
        if with_sub_roles {
            return self.role_members_expanded(tenant, role_id).await;
        }
        let rows = dispatch!(self, role_members(tenant, role_id.get()))?;
        Ok(rows
            .into_iter()
            .map(|(membership, user)| RoleMember { membership, user })
            .collect())
    }

    pub async fn role(&self, tenant: &str, id: RoleId) -> Result<Option<Role>, Error> {
        dispatch!(self, role(tenant, id.get()))
    }

    /// The role of WeCom department `department_id` in `corpid` (archived or not).
    pub async fn role_by_department(
        &self,
        tenant: &str,
        corpid: &str,
        department_id: i64,
    ) -> Result<Option<Role>, Error> {
        self.role_by_link(tenant, corpid, RoleLinkKind::Department, department_id)
            .await
    }

    /// The role linked to a department or tag (`kind`) of `corpid`, archived or not.
    pub(crate) async fn role_by_link(
        &self,
        tenant: &str,
        corpid: &str,
        kind: RoleLinkKind,
        upstream_id: i64,
    ) -> Result<Option<Role>, Error> {
        dispatch!(self, role_by_link(tenant, corpid, kind, upstream_id))
    }

    /// The (corpid, upstream id) a role mirrors through `kind`'s links.
    pub(crate) async fn link_of_role(
        &self,
        tenant: &str,
        kind: RoleLinkKind,
        role_id: RoleId,
    ) -> Result<Option<(String, i64)>, Error> {
        dispatch!(self, link_of_role(tenant, kind, role_id.get()))
    }

    /// The WeCom department a role mirrors, `None` for a local role.
    pub async fn department_of_role(
        &self,
        tenant: &str,
        role_id: RoleId,
    ) -> Result<Option<DepartmentLink>, Error> {
        Ok(self
            .link_of_role(tenant, RoleLinkKind::Department, role_id)
            .await?
            .map(|(corpid, department_id)| DepartmentLink {
                corpid,
                department_id,
                role_id,
            }))
    }

    // ---- sync runs ----

    /// Record a new run in status `running` with zero counters.
    pub async fn create_sync_run(&self, tenant: &str, run: &NewSyncRun) -> Result<SyncRun, Error> {
        dispatch!(self, create_run(tenant, run))
    }

    /// Save a running run's counters and checkpoint (status stays `running`; `None` keeps the stored
    /// checkpoint).
    pub async fn update_sync_run(
        &self,
        tenant: &str,
        id: SyncRunId,
        counters: &SyncCounters,
        checkpoint: Option<&serde_json::Value>,
        now_ms: i64,
    ) -> Result<(), Error> {
        dispatch!(
            self,
            update_run(
                tenant,
                id.get(),
                SyncStatus::Running,
                counters,
                checkpoint,
                None,
                None,
                now_ms
            )
        )
    }

    /// End a run with its final status, counters and error (for partial, failed and refused runs),
    /// keeping its last checkpoint.
    pub async fn finish_sync_run(
        &self,
        tenant: &str,
        id: SyncRunId,
        status: SyncStatus,
        counters: &SyncCounters,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<(), Error> {
        dispatch!(
            self,
            update_run(
                tenant,
                id.get(),
                status,
                counters,
                None,
                error,
                Some(now_ms),
                now_ms
            )
        )
    }

    pub async fn sync_run(&self, tenant: &str, id: SyncRunId) -> Result<Option<SyncRun>, Error> {
        dispatch!(self, get_run(tenant, id.get()))
    }

    /// The latest runs first, of one corp or of the whole tenant, at most `max`.
    pub async fn recent_sync_runs(
        &self,
        tenant: &str,
        corpid: Option<&str>,
        max: u32,
    ) -> Result<Vec<SyncRun>, Error> {
        dispatch!(self, recent_runs(tenant, corpid, limit(max)))
    }

    /// Persist one progress event and return its seq (1, 2, 3... per run, no gaps).
    pub async fn append_sync_event(
        &self,
        tenant: &str,
        run_id: SyncRunId,
        at_ms: i64,
        payload: &serde_json::Value,
    ) -> Result<i64, Error> {
        dispatch!(self, append_event(tenant, run_id.get(), at_ms, payload))
    }

    /// Events of a run with seq greater than `after_seq` (0 for all), oldest first, at most `max`: a
    /// late subscriber replays from 0, a reconnecting one from its last seq.
    pub async fn sync_events_after(
        &self,
        tenant: &str,
        run_id: SyncRunId,
        after_seq: i64,
        max: u32,
    ) -> Result<Vec<SyncEvent>, Error> {
        dispatch!(
            self,
            events_after(tenant, run_id.get(), after_seq, limit(max))
        )
    }

    // ---- sync lease ----

    /// Take the sync lease of `(tenant, corpid)` for `ttl` from `now_ms`: true if free, expired, or
    /// already `holder`'s (which extends it). One atomic statement, so it holds across processes.
    pub async fn try_sync_lease(
        &self,
        tenant: &str,
        corpid: &str,
        holder: &str,
        now_ms: i64,
        ttl: Duration,
    ) -> Result<bool, Error> {
        let expires = now_ms.saturating_add(ttl_ms(ttl));
        dispatch!(self, try_lease(tenant, corpid, holder, now_ms, expires))
    }

    /// Extend `holder`'s lease; false if it is no longer theirs (taken over after expiry or released).
    pub async fn renew_sync_lease(
        &self,
        tenant: &str,
        corpid: &str,
        holder: &str,
        now_ms: i64,
        ttl: Duration,
    ) -> Result<bool, Error> {
        let expires = now_ms.saturating_add(ttl_ms(ttl));
        dispatch!(self, renew_lease(tenant, corpid, holder, expires))
    }

    /// Give the lease up if `holder` has it; true if it did.
    pub async fn release_sync_lease(
        &self,
        tenant: &str,
        corpid: &str,
        holder: &str,
    ) -> Result<bool, Error> {
        dispatch!(self, release_lease(tenant, corpid, holder))
    }
}
