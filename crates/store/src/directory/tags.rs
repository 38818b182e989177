//! WeCom tags mirrored as roles: the tag's role (origin [`super::RoleOrigin::WecomTag`], top-level, linked by
//! `(tenant, corpid, tagid)`), its users as plain memberships (never leader, never main), and its
//! departments as role inclusions ("this role includes the members of that role and its sub-roles").
//! Inclusions, like memberships, are closed instead of deleted; a tag gone upstream is archived with its
//! memberships and inclusions closed.
//!
//! How a tag sync uses it: read each tag upstream, send what it should be as a [`TagUpsert`] (lists that
//! could not be read are `None`, so nothing is removed for them), archive tags gone upstream, all in
//! [`Db::apply_tag_changes`] (one transaction). Only differences are written, so re-sending an unchanged
//! tag writes nothing; [`Db::preview_tag_changes`] runs the same code and rolls back (dry run).
//!
//! The SQL is in `tags_ops.rs`, written once and included into one module per backend like `ops.rs`.

use serde::{Deserialize, Serialize};

use super::RoleMember;
use super::types::{Role, RoleId, RoleLinkKind};
use crate::db::{Db, Pool};
use crate::error::Error;

mod sqlite_tag_ops {
    use super::super::types::*;
    use super::{LocalTag, TagApplyReport, TagChanges};
    use crate::db::Backend;
    use crate::error::Error;
    type DB = sqlx::Sqlite;
    const BACKEND: Backend = Backend::Sqlite;
    include!("tags_ops.rs");
}

mod postgres_tag_ops {
    use super::super::types::*;
    use super::{LocalTag, TagApplyReport, TagChanges};
    use crate::db::Backend;
    use crate::error::Error;
    type DB = sqlx::Postgres;
    const BACKEND: Backend = Backend::Postgres;
    include!("tags_ops.rs");
}

/// Calls the same function of the backend's tag ops module with the backend's pool.
macro_rules! dispatch_tags {
    ($db:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match &$db.pool {
            Pool::Sqlite(pool) => sqlite_tag_ops::$f(pool, $($arg),*).await,
            Pool::Postgres(pool) => postgres_tag_ops::$f(pool, $($arg),*).await,
        }
    };
}

/// A WeCom tag linked to its local role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagLink {
    pub corpid: String,
    pub tagid: i64,
    pub role_id: RoleId,
}

/// A linked tag as stored: its role (archived or not) and what it holds now, by WeCom ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTag {
    pub tagid: i64,
    pub role: Role,
    /// Userids (the spelling of their links) with an open membership in the tag's role, sorted by the
    /// normalised userid.
    pub userids: Vec<String>,
    /// Departments the tag's role includes (open inclusions), sorted.
    pub department_ids: Vec<i64>,
}

/// What one tag should be after the change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagUpsert {
    pub tagid: i64,
    /// `None` keeps the stored name (a new tag is then called "tag <id>").
    pub name: Option<String>,
    /// `Some`: exactly these members (matched case-insensitively to linked userids; userids with no link
    /// in this corp, or whose user is marked left, are skipped and reported). `None`: members left as
    /// they are.
    pub userids: Option<Vec<String>>,
    /// `Some`: exactly these departments (departments with no role yet are skipped and reported).
    /// `None`: left as they are.
    pub department_ids: Option<Vec<i64>>,
}

/// A batch of tag changes to one (tenant, corpid), applied in ONE transaction: upserts (which also
/// un-archive a tag that came back), then archives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagChanges {
    pub tags: Vec<TagUpsert>,
    /// Tags gone upstream: role archived, its memberships and inclusions closed. Rows are kept. Tagids
    /// with no link are ignored.
    pub archived_tagids: Vec<i64>,
}

impl TagChanges {
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.archived_tagids.is_empty()
    }
}

/// What a [`TagChanges`] batch wrote (or, previewed, would write), in rows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagApplyReport {
    pub roles_created: u64,
    /// Renamed or un-archived.
    pub roles_updated: u64,
    pub roles_archived: u64,
    pub memberships_opened: u64,
    pub memberships_closed: u64,
    pub inclusions_opened: u64,
    pub inclusions_closed: u64,
    /// Listed members with no link in this corp (outside what the directory sync sees) or marked left,
    /// sorted.
    pub unknown_userids: Vec<String>,
    /// Listed departments with no role in this corp, sorted.
    pub unknown_departments: Vec<i64>,
}

impl TagApplyReport {
    /// Rows written (zero: the batch changed nothing).
    pub fn rows_written(&self) -> u64 {
        self.roles_created
            + self.roles_updated
            + self.roles_archived
            + self.memberships_opened
            + self.memberships_closed
            + self.inclusions_opened
            + self.inclusions_closed
    }

    /// Add another batch's report to this one.
    pub fn add(&mut self, other: &TagApplyReport) {
        self.roles_created += other.roles_created;
        self.roles_updated += other.roles_updated;
        self.roles_archived += other.roles_archived;
        self.memberships_opened += other.memberships_opened;
        self.memberships_closed += other.memberships_closed;
        self.inclusions_opened += other.inclusions_opened;
        self.inclusions_closed += other.inclusions_closed;
        self.unknown_userids
            .extend(other.unknown_userids.iter().cloned());
        self.unknown_userids.sort();
        self.unknown_userids.dedup();
        self.unknown_departments
            .extend(other.unknown_departments.iter().copied());
        self.unknown_departments.sort_unstable();
        self.unknown_departments.dedup();
    }
}

impl Db {
    /// Every tag linked in `(tenant, corpid)` (archived ones included) with its open members and
    /// departments, by tagid.
    pub async fn load_tags(&self, tenant: &str, corpid: &str) -> Result<Vec<LocalTag>, Error> {
        dispatch_tags!(self, load_tags(tenant, corpid, None))
    }

    /// One linked tag with its open members and departments.
    pub async fn wecom_tag(
        &self,
        tenant: &str,
        corpid: &str,
        tagid: i64,
    ) -> Result<Option<LocalTag>, Error> {
        let tags = dispatch_tags!(self, load_tags(tenant, corpid, Some(tagid)))?;
        Ok(tags.into_iter().next())
    }

    /// Apply one batch of tag changes in ONE transaction (all or nothing). Only differences are written.
    pub async fn apply_tag_changes(
        &self,
        tenant: &str,
        corpid: &str,
        changes: &TagChanges,
        now_ms: i64,
    ) -> Result<TagApplyReport, Error> {
        if changes.is_empty() {
            return Ok(TagApplyReport::default());
        }
        dispatch_tags!(self, apply_tags(tenant, corpid, changes, now_ms, true))
    }

    /// What [`Db::apply_tag_changes`] would write, computed by the same code in a transaction that is
    /// rolled back (a dry run).
    pub async fn preview_tag_changes(
        &self,
        tenant: &str,
        corpid: &str,
        changes: &TagChanges,
        now_ms: i64,
    ) -> Result<TagApplyReport, Error> {
        if changes.is_empty() {
            return Ok(TagApplyReport::default());
        }
        dispatch_tags!(self, apply_tags(tenant, corpid, changes, now_ms, false))
    }

    /// The role of WeCom tag `tagid` in `corpid` (archived or not).
    pub async fn role_by_tag(
        &self,
        tenant: &str,
        corpid: &str,
        tagid: i64,
    ) -> Result<Option<Role>, Error> {
        self.role_by_link(tenant, corpid, RoleLinkKind::Tag, tagid)
            .await
    }

    /// The WeCom tag a role mirrors, `None` for any other role.
    pub async fn tag_of_role(
        &self,
        tenant: &str,
        role_id: RoleId,
    ) -> Result<Option<TagLink>, Error> {
        Ok(self
            .link_of_role(tenant, RoleLinkKind::Tag, role_id)
            .await?
            .map(|(corpid, tagid)| TagLink {
                corpid,
                tagid,
                role_id,
            }))
    }

    /// The roles a role includes through open inclusions (a tag's departments), by role id.
    pub async fn included_roles(&self, tenant: &str, role_id: RoleId) -> Result<Vec<Role>, Error> {
        dispatch_tags!(self, included_roles(tenant, role_id.get()))
    }

    /// A role's open memberships with their users, with sub-roles AND inclusions: the role's own, those
    /// of every non-archived role below it, and those of every non-archived role it includes (a tag's
    /// departments) and of their sub-roles. One row per membership, like [`Db::role_members`]. Inclusions
    /// are followed one level: an included role's own inclusions are not.
    pub async fn role_members_expanded(
        &self,
        tenant: &str,
        role_id: RoleId,
    ) -> Result<Vec<RoleMember>, Error> {
        let rows = dispatch_tags!(self, role_members_expanded(tenant, role_id.get()))?;
        Ok(rows
            .into_iter()
            .map(|(membership, user)| RoleMember { membership, user })
            .collect())
    }
}
