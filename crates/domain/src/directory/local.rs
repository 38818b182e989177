//! What the bridge already holds for one corp, as plain data: departments with the role each maps to, and
//! members with the user each maps to. The planner reads only this, so it stays pure; the store layer builds
//! it from its tables.

use std::collections::BTreeMap;

use serde::Serialize;
use wx_api::wecom::types::Gender;

/// A local role id (the store's primary key of the role linked to a department).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RoleId(i64);

impl RoleId {
    pub fn new(id: i64) -> Self {
        RoleId(id)
    }
    pub fn get(self) -> i64 {
        self.0
    }
}

/// A local user id (the store's primary key of the user linked to a WeCom member).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct UserId(i64);

impl UserId {
    pub fn new(id: i64) -> Self {
        UserId(id)
    }
    pub fn get(self) -> i64 {
        self.0
    }
}

/// A local user's status. WeCom 1 → active, 2 → disabled, 4 → inactive (not yet activated), 5 → left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalStatus {
    Active,
    Disabled,
    Inactive,
    Left,
}

/// A department as mirrored locally by a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDepartment {
    pub role_id: RoleId,
    pub department_id: i64,
    pub name: String,
    /// WeCom parent department id (0 for the root).
    pub parent_id: i64,
    pub order: i64,
    pub archived: bool,
}

/// An open membership of a local user in a department's role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMembership {
    pub department_id: i64,
    pub is_leader: bool,
    pub order: i64,
}

/// The member fields the bridge keeps. `None` means the bridge has no value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberFields {
    pub name: Option<String>,
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub avatar: Option<String>,
    pub position: Option<String>,
    pub gender: Option<Gender>,
}

/// A member as mirrored locally by a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMember {
    pub user_id: UserId,
    pub userid: String,
    pub fields: MemberFields,
    pub status: LocalStatus,
    /// Open memberships only (closed ones are history, not compared).
    pub memberships: Vec<LocalMembership>,
    pub main_department: Option<i64>,
}

/// The local snapshot of one corp, keyed by WeCom ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalDirectory {
    pub departments: BTreeMap<i64, LocalDepartment>,
    pub members: BTreeMap<String, LocalMember>,
}

impl LocalDirectory {
    pub fn new(
        departments: impl IntoIterator<Item = LocalDepartment>,
        members: impl IntoIterator<Item = LocalMember>,
    ) -> Self {
        LocalDirectory {
            departments: departments
                .into_iter()
                .map(|d| (d.department_id, d))
                .collect(),
            members: members.into_iter().map(|m| (m.userid.clone(), m)).collect(),
        }
    }

    /// Members that are not marked left.
    pub fn active_members(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.status != LocalStatus::Left)
            .count()
    }
}
