//! The pure diff between an upstream snapshot and the local directory: which roles to create, update or
//! archive, which users to create, update or mark left, which memberships to open, change or close. Pure so
//! that dry-run and the real run show the same plan, and deterministic (sorted by ids) so dry-run output is
//! stable. Safety rules live here: an incomplete snapshot removes nothing, and a guard refuses removing more
//! than a share of the active users unless overridden.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use wx_api::wecom::types::Gender;

use super::local::{LocalDirectory, LocalMember, LocalStatus, RoleId, UserId};
use super::upstream::{UpstreamDirectory, UpstreamMember, UpstreamMembership, WithheldField};

/// Planner settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanOptions {
    /// Refuse removals above this share of the active local users. Default 0.10.
    pub max_remove_ratio: f64,
    /// The operator's explicit override of the guard.
    pub override_guard: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            max_remove_ratio: 0.10,
            override_guard: false,
        }
    }
}

/// A new role for a department.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleCreate {
    pub department_id: i64,
    pub name: String,
    pub parent_id: i64,
    pub order: i64,
}

/// Changes to an existing role (same role: renames and moves keep its id). `None` = unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleUpdate {
    pub role_id: RoleId,
    pub department_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<i64>,
    /// The department came back after being archived.
    pub unarchive: bool,
}

/// A role whose department is gone: archived, never deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleArchive {
    pub role_id: RoleId,
    pub department_id: i64,
}

/// A membership as the plan writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Membership {
    pub department_id: i64,
    pub is_leader: bool,
    pub order: i64,
}

/// The fields a user gets; `None` = no value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UserFields {
    pub name: Option<String>,
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub avatar: Option<String>,
    pub position: Option<String>,
    pub gender: Option<Gender>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserCreate {
    pub userid: String,
    pub fields: UserFields,
    pub status: LocalStatus,
    pub memberships: Vec<Membership>,
    pub main_department: Option<i64>,
}

/// A field change: a new value, or clearing a value upstream really removed (never a withheld one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change<T> {
    Set(T),
    Clear,
}

/// Only the changed fields of an existing user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FieldChanges {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Change<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mobile: Option<Change<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<Change<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar: Option<Change<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<Change<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gender: Option<Change<Gender>>,
}

impl FieldChanges {
    pub fn is_empty(&self) -> bool {
        *self == FieldChanges::default()
    }
}

/// One membership change of an existing user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum MembershipChange {
    Open {
        department_id: i64,
        is_leader: bool,
        order: i64,
    },
    Update {
        department_id: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        is_leader: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        order: Option<i64>,
    },
    Close {
        department_id: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserUpdate {
    pub user_id: UserId,
    pub userid: String,
    pub fields: FieldChanges,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<LocalStatus>,
    /// Sorted by department id.
    pub memberships: Vec<MembershipChange>,
    /// `Some(new)` when the main department changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub main_department: Option<Option<i64>>,
}

/// A member gone from upstream: marked left and every open membership closed. Never deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserLeave {
    pub user_id: UserId,
    pub userid: String,
    pub close_departments: Vec<i64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub created: usize,
    pub updated: usize,
    pub removed: usize,
    pub unchanged: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub roles: Counts,
    pub users: Counts,
    pub memberships: Counts,
}

/// Why the plan holds back its removals.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Withheld {
    /// The upstream snapshot is incomplete: not seeing something is not proof it is gone.
    Partial { reasons: Vec<String> },
    /// More than `max_remove_ratio` of the active users would be marked left.
    Refused {
        would_remove: usize,
        active: usize,
        max_remove_ratio: f64,
    },
}

impl Withheld {
    pub fn reason(&self) -> String {
        match self {
            Withheld::Partial { reasons } => format!(
                "partial: the upstream snapshot is incomplete ({} failed fetches), nothing removed: {}",
                reasons.len(),
                reasons.first().map(String::as_str).unwrap_or("")
            ),
            Withheld::Refused {
                would_remove,
                active,
                max_remove_ratio,
            } => format!(
                "refused: {would_remove} of {active} active users would be marked left, above the {:.0}% guard; pass the override to proceed",
                max_remove_ratio * 100.0
            ),
        }
    }
}

/// Everything a sync run would write, in a stable order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SyncPlan {
    pub role_creates: Vec<RoleCreate>,
    pub role_updates: Vec<RoleUpdate>,
    pub role_archives: Vec<RoleArchive>,
    pub user_creates: Vec<UserCreate>,
    pub user_updates: Vec<UserUpdate>,
    pub user_leaves: Vec<UserLeave>,
    pub counters: Counters,
    /// Fields withheld upstream, kept as the bridge has them.
    pub withheld_fields: Vec<WithheldField>,
    /// Set when removals were held back (partial snapshot, or refused by the guard).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removals_withheld: Option<Withheld>,
    /// Removals held back (departments + users), so a report can say how many.
    pub removals_skipped: usize,
}

impl SyncPlan {
    /// Whether the plan writes nothing.
    pub fn is_empty(&self) -> bool {
        self.role_creates.is_empty()
            && self.role_updates.is_empty()
            && self.role_archives.is_empty()
            && self.user_creates.is_empty()
            && self.user_updates.is_empty()
            && self.user_leaves.is_empty()
    }

    pub fn is_partial(&self) -> bool {
        matches!(self.removals_withheld, Some(Withheld::Partial { .. }))
    }

    pub fn is_refused(&self) -> bool {
        matches!(self.removals_withheld, Some(Withheld::Refused { .. }))
    }
}

/// WeCom status → local status. Unknown codes map to `None` (left as they are; new users start inactive).
pub fn map_status(code: i64) -> Option<LocalStatus> {
    match code {
        1 => Some(LocalStatus::Active),
        2 => Some(LocalStatus::Disabled),
        4 => Some(LocalStatus::Inactive),
        5 => Some(LocalStatus::Left),
        _ => None,
    }
}

/// Diff `upstream` against `local`.
pub fn plan(upstream: &UpstreamDirectory, local: &LocalDirectory, opts: PlanOptions) -> SyncPlan {
    let mut p = SyncPlan {
        withheld_fields: upstream.withheld.iter().copied().collect(),
        ..SyncPlan::default()
    };
    plan_roles(upstream, local, &mut p);
    plan_users(upstream, local, &mut p);
    apply_safety(upstream, local, opts, &mut p);
    p
}

fn plan_roles(upstream: &UpstreamDirectory, local: &LocalDirectory, p: &mut SyncPlan) {
    for (id, d) in &upstream.departments {
        match local.departments.get(id) {
            None => {
                p.role_creates.push(RoleCreate {
                    department_id: *id,
                    // A withheld name still needs a label; the id is stable and greppable.
                    name: d.name.clone().unwrap_or_else(|| format!("department {id}")),
                    parent_id: d.parent_id,
                    order: d.order,
                });
                p.counters.roles.created += 1;
            }
            Some(l) => {
                let u = RoleUpdate {
                    role_id: l.role_id,
                    department_id: *id,
                    name: d.name.clone().filter(|n| *n != l.name),
                    parent_id: Some(d.parent_id).filter(|x| *x != l.parent_id),
                    order: Some(d.order).filter(|x| *x != l.order),
                    unarchive: l.archived,
                };
                if u.name.is_none() && u.parent_id.is_none() && u.order.is_none() && !u.unarchive {
                    p.counters.roles.unchanged += 1;
                } else {
                    p.role_updates.push(u);
                    p.counters.roles.updated += 1;
                }
            }
        }
    }
    let scoped = scope_departments(upstream, local);
    for (id, l) in &local.departments {
        if l.archived || upstream.departments.contains_key(id) {
            continue;
        }
        if scoped.as_ref().is_some_and(|s| !s.contains(id)) {
            // Outside the credential's visible scope: not seeing it says nothing about it.
            continue;
        }
        p.role_archives.push(RoleArchive {
            role_id: l.role_id,
            department_id: *id,
        });
        p.counters.roles.removed += 1;
    }
}

/// With a limited scope, the local departments the scope covers (the local subtrees under the scope's
/// departments); `None` for the whole company.
fn scope_departments(
    upstream: &UpstreamDirectory,
    local: &LocalDirectory,
) -> Option<BTreeSet<i64>> {
    if upstream.scope.whole_company {
        return None;
    }
    let mut children: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for d in local.departments.values() {
        children
            .entry(d.parent_id)
            .or_default()
            .push(d.department_id);
    }
    let mut out = BTreeSet::new();
    let mut stack: Vec<i64> = upstream.scope.departments.clone();
    stack.extend(upstream.departments.keys().copied());
    while let Some(id) = stack.pop() {
        if out.insert(id)
            && let Some(kids) = children.get(&id)
        {
            stack.extend(kids.iter().copied());
        }
    }
    Some(out)
}

fn fields_of(m: &UpstreamMember) -> UserFields {
    UserFields {
        name: m.name.clone(),
        mobile: m.mobile.clone(),
        email: m.email.clone(),
        avatar: m.avatar.clone(),
        position: m.position.clone(),
        gender: m.gender.filter(|g| *g != Gender::Unspecified),
    }
}

fn memberships_of(m: &UpstreamMember) -> Vec<Membership> {
    m.memberships
        .iter()
        .map(|x| Membership {
            department_id: x.department_id,
            is_leader: x.is_leader,
            order: x.order,
        })
        .collect()
}

/// The change of one field: `withheld` fields only ever set a value, never clear one.
fn diff<T: Clone + PartialEq>(
    new: Option<&T>,
    old: Option<&T>,
    withheld: bool,
) -> Option<Change<T>> {
    match (new, old) {
        (Some(n), Some(o)) if n == o => None,
        (Some(n), _) => Some(Change::Set(n.clone())),
        (None, Some(_)) if !withheld => Some(Change::Clear),
        (None, _) => None,
    }
}

fn field_changes(
    up: &UpstreamMember,
    l: &LocalMember,
    withheld: &BTreeSet<WithheldField>,
) -> FieldChanges {
    // Compared by reference: only a changed value is cloned (a no-change re-sync clones nothing).
    let old = &l.fields;
    let gender = up.gender.filter(|g| *g != Gender::Unspecified);
    FieldChanges {
        // A missing name is never taken as "cleared": members always have one.
        name: diff(up.name.as_ref(), old.name.as_ref(), true),
        mobile: diff(
            up.mobile.as_ref(),
            old.mobile.as_ref(),
            withheld.contains(&WithheldField::Mobile),
        ),
        email: diff(
            up.email.as_ref(),
            old.email.as_ref(),
            withheld.contains(&WithheldField::Email),
        ),
        avatar: diff(
            up.avatar.as_ref(),
            old.avatar.as_ref(),
            withheld.contains(&WithheldField::Avatar),
        ),
        position: diff(up.position.as_ref(), old.position.as_ref(), false),
        gender: diff(
            gender.as_ref(),
            old.gender.as_ref(),
            withheld.contains(&WithheldField::Gender),
        ),
    }
}

/// Both sides sorted by department id with no repeats (the fetch and the conversion guarantee it); a
/// merge walk, so an unchanged member costs no allocation.
fn membership_changes(
    up: &[UpstreamMembership],
    l: &LocalMember,
    counts: &mut Counts,
) -> Vec<MembershipChange> {
    let old = &l.memberships;
    let sorted_up = up.is_sorted_by(|a, b| a.department_id < b.department_id);
    let sorted_old = old.is_sorted_by(|a, b| a.department_id < b.department_id);
    if !(sorted_up && sorted_old) {
        // Callers building the inputs by hand: sort (and drop repeats) first.
        let mut up = up.to_vec();
        up.sort_by_key(|m| m.department_id);
        up.dedup_by_key(|m| m.department_id);
        let mut l = l.clone();
        l.memberships.sort_by_key(|m| m.department_id);
        l.memberships.dedup_by_key(|m| m.department_id);
        return membership_changes(&up, &l, counts);
    }
    let same = up.len() == old.len()
        && up.iter().zip(old).all(|(n, o)| {
            n.department_id == o.department_id && n.is_leader == o.is_leader && n.order == o.order
        });
    if same {
        counts.unchanged += up.len();
        return Vec::new();
    }
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    loop {
        let n = up.get(i);
        let o = old.get(j);
        let ord = match (n, o) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(n), Some(o)) => n.department_id.cmp(&o.department_id),
        };
        match (ord, n, o) {
            (std::cmp::Ordering::Less, Some(n), _) => {
                out.push(MembershipChange::Open {
                    department_id: n.department_id,
                    is_leader: n.is_leader,
                    order: n.order,
                });
                counts.created += 1;
                i += 1;
            }
            (std::cmp::Ordering::Greater, _, Some(o)) => {
                out.push(MembershipChange::Close {
                    department_id: o.department_id,
                });
                counts.removed += 1;
                j += 1;
            }
            (_, Some(n), Some(o)) => {
                let is_leader = Some(n.is_leader).filter(|x| *x != o.is_leader);
                let order = Some(n.order).filter(|x| *x != o.order);
                if is_leader.is_none() && order.is_none() {
                    counts.unchanged += 1;
                } else {
                    out.push(MembershipChange::Update {
                        department_id: n.department_id,
                        is_leader,
                        order,
                    });
                    counts.updated += 1;
                }
                i += 1;
                j += 1;
            }
            _ => break,
        }
    }
    out
}

fn plan_users(upstream: &UpstreamDirectory, local: &LocalDirectory, p: &mut SyncPlan) {
    for (userid, m) in &upstream.members {
        match local.members.get(userid) {
            None => {
                let memberships = if m.status == 5 {
                    Vec::new()
                } else {
                    memberships_of(m)
                };
                p.counters.memberships.created += memberships.len();
                p.user_creates.push(UserCreate {
                    userid: userid.clone(),
                    fields: fields_of(m),
                    status: map_status(m.status).unwrap_or(LocalStatus::Inactive),
                    memberships,
                    main_department: m.main_department,
                });
                p.counters.users.created += 1;
            }
            Some(l) => {
                let fields = field_changes(m, l, &upstream.withheld);
                let status = map_status(m.status).filter(|s| *s != l.status);
                // A member upstream reports as left (5) keeps no open membership.
                let current: &[UpstreamMembership] =
                    if m.status == 5 { &[] } else { &m.memberships };
                let memberships = membership_changes(current, l, &mut p.counters.memberships);
                let main_department = Some(m.main_department).filter(|x| *x != l.main_department);
                if fields.is_empty()
                    && status.is_none()
                    && memberships.is_empty()
                    && main_department.is_none()
                {
                    p.counters.users.unchanged += 1;
                } else {
                    p.user_updates.push(UserUpdate {
                        user_id: l.user_id,
                        userid: userid.clone(),
                        fields,
                        status,
                        memberships,
                        main_department,
                    });
                    p.counters.users.updated += 1;
                }
            }
        }
    }
    let scoped = scope_departments(upstream, local);
    let scope_users: BTreeSet<&str> = upstream.scope.users.iter().map(String::as_str).collect();
    for (userid, l) in &local.members {
        if l.status == LocalStatus::Left || upstream.members.contains_key(userid) {
            continue;
        }
        if let Some(s) = &scoped {
            // With a limited scope, only members the scope covered can be known to be gone.
            let covered = scope_users.contains(userid.as_str())
                || l.memberships.iter().any(|m| s.contains(&m.department_id));
            if !covered {
                continue;
            }
        }
        p.counters.memberships.removed += l.memberships.len();
        p.user_leaves.push(UserLeave {
            user_id: l.user_id,
            userid: userid.clone(),
            close_departments: l.memberships.iter().map(|m| m.department_id).collect(),
        });
        p.counters.users.removed += 1;
    }
}

fn apply_safety(
    upstream: &UpstreamDirectory,
    local: &LocalDirectory,
    opts: PlanOptions,
    p: &mut SyncPlan,
) {
    let withheld = if !upstream.is_complete() {
        Some(Withheld::Partial {
            reasons: upstream.incomplete_reasons(),
        })
    } else {
        let active = local.active_members();
        let would_remove = p.user_leaves.len();
        let too_many =
            would_remove > 0 && (would_remove as f64) > opts.max_remove_ratio * active as f64;
        (too_many && !opts.override_guard).then_some(Withheld::Refused {
            would_remove,
            active,
            max_remove_ratio: opts.max_remove_ratio,
        })
    };
    if let Some(w) = withheld {
        p.removals_skipped = p.role_archives.len() + p.user_leaves.len();
        p.counters.memberships.removed -= p
            .user_leaves
            .iter()
            .map(|l| l.close_departments.len())
            .sum::<usize>();
        p.role_archives.clear();
        p.user_leaves.clear();
        p.counters.roles.removed = 0;
        p.counters.users.removed = 0;
        p.removals_withheld = Some(w);
    }
}
