//! The directory's plain data: typed ids, users, roles, memberships, links, the batch of changes a sync
//! applies, and sync runs with their events. No SQL here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

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
    /// A local user, issued by the database.
    UserId
);
surrogate_id!(
    /// A local role (a WeCom department or a role created in wxbridge), issued by the database.
    RoleId
);
surrogate_id!(
    /// One sync run, issued by the database.
    SyncRunId
);

/// Declares a closed set of values stored as lower-case text, with `as_str` and a checked parse.
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident, $column:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub(crate) fn parse_stored(value: &str) -> Result<Self, Error> {
                match value {
                    $($text => Ok($name::$variant),)+
                    other => Err(Error::InvalidStored {
                        column: $column,
                        value: other.to_owned(),
                    }),
                }
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
    /// Where a user stands. `Inactive` is WeCom's "not yet activated" (member status 4); `Left` means
    /// the member is gone from the corp and the row is kept for history.
    UserStatus, "users.status" {
        Active => "active",
        Disabled => "disabled",
        Inactive => "inactive",
        Left => "left",
    }
);

text_enum!(
    /// A user's gender as the directory reports it.
    Gender, "users.gender" {
        Male => "male",
        Female => "female",
        Unspecified => "unspecified",
    }
);

text_enum!(
    /// Whether a role mirrors a WeCom department, mirrors a WeCom tag (`WecomTag`), or was made in
    /// wxbridge.
    RoleOrigin, "roles.origin" {
        Wecom => "wecom",
        Local => "local",
        WecomTag => "wecom_tag",
    }
);

text_enum!(
    /// A full sync walks the whole directory; an incremental one applies change events.
    SyncKind, "sync_runs.kind" {
        Full => "full",
        Incremental => "incremental",
    }
);

text_enum!(
    /// Where a sync run stands. `Partial`: some fetch failed so nothing was removed; `Refused`: the
    /// removal guard stopped the run.
    SyncStatus, "sync_runs.status" {
        Running => "running",
        Succeeded => "succeeded",
        Partial => "partial",
        Failed => "failed",
        Refused => "refused",
    }
);

/// A local user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub tenant: String,
    pub name: String,
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub avatar: Option<String>,
    pub position: Option<String>,
    pub gender: Option<Gender>,
    pub status: UserStatus,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A local role: a node of the role tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub id: RoleId,
    pub tenant: String,
    pub name: String,
    pub parent_id: Option<RoleId>,
    pub sort_order: i64,
    pub origin: RoleOrigin,
    /// Set when the role's department disappeared upstream; archived roles are kept, never deleted.
    pub archived_at_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A user's place in a role. Closed (`ended_at_ms` set) instead of deleted when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub id: i64,
    pub user_id: UserId,
    pub role_id: RoleId,
    pub is_leader: bool,
    pub sort_order: i64,
    pub is_main: bool,
    pub started_at_ms: i64,
    pub ended_at_ms: Option<i64>,
}

/// A WeCom member linked to a local user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberLink {
    pub corpid: String,
    /// The spelling WeCom returned; matching is case-insensitive.
    pub userid: String,
    pub open_userid: Option<String>,
    pub user_id: UserId,
}

/// The upstream objects a role can mirror, each linked by its own table (unique both ways per corp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoleLinkKind {
    /// `wecom_department_links.department_id`.
    Department,
    /// `wecom_tag_links.tagid`.
    Tag,
}

impl RoleLinkKind {
    /// The link table and its upstream id column.
    pub(crate) fn table_and_column(self) -> (&'static str, &'static str) {
        match self {
            RoleLinkKind::Department => ("wecom_department_links", "department_id"),
            RoleLinkKind::Tag => ("wecom_tag_links", "tagid"),
        }
    }
}

/// A WeCom department linked to a local role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepartmentLink {
    pub corpid: String,
    pub department_id: i64,
    pub role_id: RoleId,
}

/// A linked department with its role, as loaded for diffing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDepartment {
    pub department_id: i64,
    pub role: Role,
}

/// A linked member with its user, as loaded for diffing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMember {
    pub userid: String,
    pub open_userid: Option<String>,
    pub user: User,
}

/// Everything wxbridge holds about one (tenant, corpid), loaded in one go for the sync planner: every
/// linked department (archived ones included) with its role, every linked member (left ones included)
/// with its user, and the OPEN memberships of those users in roles linked to this corp. Memberships in
/// local roles and closed memberships are not included: a sync never touches them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalDirectory {
    pub departments: Vec<LocalDepartment>,
    pub members: Vec<LocalMember>,
    pub memberships: Vec<Membership>,
}

/// A user's values as they should be after the change. These are complete values, written as given:
/// the planner merges fields the upstream withholds with what the store already has before sending
/// them, so the store never has to guess whether an empty value means "cleared" or "withheld".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFields {
    pub name: String,
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub avatar: Option<String>,
    pub position: Option<String>,
    pub gender: Option<Gender>,
    pub status: UserStatus,
}

/// Create or update the role of a WeCom department (renames and moves update the same role).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepartmentUpsert {
    pub department_id: i64,
    pub name: String,
    /// `None` for a top-level department. The parent must be linked already or upserted in the same
    /// batch (in any order).
    pub parent_department_id: Option<i64>,
    pub sort_order: i64,
}

/// One membership a member should have, by WeCom department.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipSpec {
    pub department_id: i64,
    pub is_leader: bool,
    pub sort_order: i64,
    pub is_main: bool,
}

/// Create or update a WeCom member's user and link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberUpsert {
    /// Matched case-insensitively against existing links; stored with this spelling when created.
    pub userid: String,
    /// `None` keeps the stored open_userid (WeCom often withholds it).
    pub open_userid: Option<String>,
    pub fields: UserFields,
    /// `Some`: replace the member's open memberships in this corp's departments with exactly these
    /// (ones no longer listed are closed, new ones opened, changed flags updated in place). List each
    /// department once: a repeat is a [`crate::Error::Conflict`]. `None`: leave memberships alone.
    pub memberships: Option<Vec<MembershipSpec>>,
}

/// A WeCom userid change (NewUserID): the link takes the new userid, the user stays the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseridRename {
    pub from: String,
    pub to: String,
}

/// A batch of changes to one (tenant, corpid), applied in ONE transaction: all or nothing. Applied in
/// this order: renames, departments, members, left members, archived departments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryChanges {
    pub renames: Vec<UseridRename>,
    pub departments: Vec<DepartmentUpsert>,
    pub members: Vec<MemberUpsert>,
    /// Members gone upstream: status `left`, all their open memberships closed. Rows are kept.
    pub left_userids: Vec<String>,
    /// Departments gone upstream: role archived, its open memberships closed. Rows are kept.
    pub archived_departments: Vec<i64>,
}

impl DirectoryChanges {
    pub fn is_empty(&self) -> bool {
        self.renames.is_empty()
            && self.departments.is_empty()
            && self.members.is_empty()
            && self.left_userids.is_empty()
            && self.archived_departments.is_empty()
    }
}

/// What one [`DirectoryChanges`] batch wrote, in rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyReport {
    pub users_created: u64,
    pub users_updated: u64,
    pub users_left: u64,
    pub userids_renamed: u64,
    pub roles_created: u64,
    pub roles_updated: u64,
    pub roles_archived: u64,
    pub memberships_opened: u64,
    pub memberships_updated: u64,
    pub memberships_closed: u64,
}

/// Created / updated / removed / unchanged for one kind of entity in a sync run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityCounters {
    pub created: u64,
    pub updated: u64,
    pub removed: u64,
    pub unchanged: u64,
}

/// A sync run's counters, stored as one JSON document.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncCounters {
    pub users: EntityCounters,
    pub roles: EntityCounters,
    pub memberships: EntityCounters,
}

/// What [`crate::Db::create_sync_run`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSyncRun {
    pub corpid: String,
    pub kind: SyncKind,
    pub dry_run: bool,
    pub started_at_ms: i64,
}

/// One sync run as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncRun {
    pub id: SyncRunId,
    pub tenant: String,
    pub corpid: String,
    pub kind: SyncKind,
    pub dry_run: bool,
    pub status: SyncStatus,
    pub counters: SyncCounters,
    pub error: Option<String>,
    /// Free-form resume state owned by the sync code.
    pub checkpoint: Option<serde_json::Value>,
    pub started_at_ms: i64,
    pub updated_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

/// One persisted progress event of a run. `seq` starts at 1 and has no gaps within a run.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncEvent {
    pub run_id: SyncRunId,
    pub seq: i64,
    pub at_ms: i64,
    pub payload: serde_json::Value,
}

/// The one lower-case form of a WeCom userid used for uniqueness and lookup (WeCom treats userids
/// case-insensitively).
pub fn normalize_userid(userid: &str) -> String {
    userid.to_lowercase()
}

// ---- row decoding, shared by both backends ----

/// `USER_COLS` in column order.
pub(crate) type UserRow = (
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    i64,
    i64,
);

pub(crate) const USER_COLS: &str = "u.id, u.tenant, u.name, u.mobile, u.email, u.avatar, u.position, \
    u.gender, u.status, u.created_at_ms, u.updated_at_ms";

pub(crate) fn user_from_row(r: UserRow) -> Result<User, Error> {
    Ok(User {
        id: UserId(r.0),
        tenant: r.1,
        name: r.2,
        mobile: r.3,
        email: r.4,
        avatar: r.5,
        position: r.6,
        gender: r.7.as_deref().map(Gender::parse_stored).transpose()?,
        status: UserStatus::parse_stored(&r.8)?,
        created_at_ms: r.9,
        updated_at_ms: r.10,
    })
}

/// `ROLE_COLS` in column order.
pub(crate) type RoleRow = (
    i64,
    String,
    String,
    Option<i64>,
    i64,
    String,
    Option<i64>,
    i64,
    i64,
);

pub(crate) const ROLE_COLS: &str = "r.id, r.tenant, r.name, r.parent_id, r.sort_order, r.origin, \
    r.archived_at_ms, r.created_at_ms, r.updated_at_ms";

pub(crate) fn role_from_row(r: RoleRow) -> Result<Role, Error> {
    Ok(Role {
        id: RoleId(r.0),
        tenant: r.1,
        name: r.2,
        parent_id: r.3.map(RoleId),
        sort_order: r.4,
        origin: RoleOrigin::parse_stored(&r.5)?,
        archived_at_ms: r.6,
        created_at_ms: r.7,
        updated_at_ms: r.8,
    })
}

/// `MEMBERSHIP_COLS` in column order.
pub(crate) type MembershipRow = (i64, i64, i64, bool, i64, bool, i64, Option<i64>);

pub(crate) const MEMBERSHIP_COLS: &str = "m.id, m.user_id, m.role_id, m.is_leader, m.sort_order, \
    m.is_main, m.started_at_ms, m.ended_at_ms";

pub(crate) fn membership_from_row(r: MembershipRow) -> Membership {
    Membership {
        id: r.0,
        user_id: UserId(r.1),
        role_id: RoleId(r.2),
        is_leader: r.3,
        sort_order: r.4,
        is_main: r.5,
        started_at_ms: r.6,
        ended_at_ms: r.7,
    }
}

/// `SYNC_RUN_COLS` in column order.
pub(crate) type SyncRunRow = (
    i64,
    String,
    String,
    String,
    bool,
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
    i64,
    Option<i64>,
);

pub(crate) const SYNC_RUN_COLS: &str = "id, tenant, corpid, kind, dry_run, status, counters, error, \
    checkpoint, started_at_ms, updated_at_ms, finished_at_ms";

pub(crate) fn sync_run_from_row(r: SyncRunRow) -> Result<SyncRun, Error> {
    Ok(SyncRun {
        id: SyncRunId(r.0),
        tenant: r.1,
        corpid: r.2,
        kind: SyncKind::parse_stored(&r.3)?,
        dry_run: r.4,
        status: SyncStatus::parse_stored(&r.5)?,
        counters: serde_json::from_str(&r.6).map_err(|source| Error::StoredJson {
            column: "sync_runs.counters",
            source,
        })?,
        error: r.7,
        checkpoint: r
            .8
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|source| Error::StoredJson {
                column: "sync_runs.checkpoint",
                source,
            })?,
        started_at_ms: r.9,
        updated_at_ms: r.10,
        finished_at_ms: r.11,
    })
}

/// A name fragment as a LIKE pattern matching it anywhere, with LIKE's wildcards escaped (`\`).
pub(crate) fn contains_pattern(fragment: &str) -> String {
    let mut p = String::with_capacity(fragment.len() + 2);
    p.push('%');
    for c in fragment.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}
