//! Translation between the store's directory rows and the planner's plain types: the store's
//! `LocalDirectory` (roles and users by surrogate id) becomes the planner's (keyed by WeCom ids), and a
//! `SyncPlan` becomes `store::DirectoryChanges` with complete field values, withheld upstream fields merged
//! with what the bridge already holds so nothing is blanked.

use std::collections::HashMap;

use wx_api::wecom::types::Gender;

use super::local::{self, LocalStatus, MemberFields};
use super::plan::{Change, SyncPlan, UserCreate, UserUpdate};
use super::upstream::{UpstreamDirectory, UpstreamMember};

/// The store's gender as the planner sees it (`Unspecified` is "no value", as the planner treats it).
fn gender_from_store(g: Option<store::Gender>) -> Option<Gender> {
    match g? {
        store::Gender::Male => Some(Gender::Male),
        store::Gender::Female => Some(Gender::Female),
        store::Gender::Unspecified => None,
    }
}

fn gender_to_store(g: Option<Gender>) -> Option<store::Gender> {
    match g? {
        Gender::Male => Some(store::Gender::Male),
        Gender::Female => Some(store::Gender::Female),
        _ => None,
    }
}

fn status_from_store(s: store::UserStatus) -> LocalStatus {
    match s {
        store::UserStatus::Active => LocalStatus::Active,
        store::UserStatus::Disabled => LocalStatus::Disabled,
        store::UserStatus::Inactive => LocalStatus::Inactive,
        store::UserStatus::Left => LocalStatus::Left,
    }
}

fn status_to_store(s: LocalStatus) -> store::UserStatus {
    match s {
        LocalStatus::Active => store::UserStatus::Active,
        LocalStatus::Disabled => store::UserStatus::Disabled,
        LocalStatus::Inactive => store::UserStatus::Inactive,
        LocalStatus::Left => store::UserStatus::Left,
    }
}

/// The store's snapshot as the planner's [`local::LocalDirectory`]. Parents are WeCom department ids (0 for
/// a top-level role); a member's main department is the membership flagged main.
pub fn to_plan_local(stored: &store::LocalDirectory) -> local::LocalDirectory {
    into_plan_local(stored.clone())
}

/// [`to_plan_local`] consuming the store's snapshot: strings are moved, not copied, so the two snapshots
/// never both hold every value (at 100k members that is a whole copy of the directory less at the peak).
pub fn into_plan_local(stored: store::LocalDirectory) -> local::LocalDirectory {
    let store::LocalDirectory {
        departments: stored_departments,
        members: stored_members,
        memberships: stored_memberships,
    } = stored;
    let dept_of_role: HashMap<i64, i64> = stored_departments
        .iter()
        .map(|d| (d.role.id.get(), d.department_id))
        .collect();
    let mut memberships: HashMap<i64, (Vec<local::LocalMembership>, Option<i64>)> =
        HashMap::with_capacity(stored_members.len());
    for m in stored_memberships {
        let Some(dept) = dept_of_role.get(&m.role_id.get()).copied() else {
            continue;
        };
        let entry = memberships.entry(m.user_id.get()).or_default();
        entry.0.push(local::LocalMembership {
            department_id: dept,
            is_leader: m.is_leader,
            order: m.sort_order,
        });
        if m.is_main {
            entry.1 = Some(dept);
        }
    }
    let departments: Vec<local::LocalDepartment> = stored_departments
        .into_iter()
        .map(|d| local::LocalDepartment {
            role_id: local::RoleId::new(d.role.id.get()),
            department_id: d.department_id,
            parent_id: d
                .role
                .parent_id
                .and_then(|p| dept_of_role.get(&p.get()).copied())
                .unwrap_or(0),
            order: d.role.sort_order,
            archived: d.role.archived_at_ms.is_some(),
            name: d.role.name,
        })
        .collect();
    let members = stored_members.into_iter().map(|m| {
        let u = m.user;
        let (mut ms, main) = memberships.remove(&u.id.get()).unwrap_or_default();
        ms.sort_by_key(|x| x.department_id);
        ms.dedup_by_key(|x| x.department_id);
        local::LocalMember {
            user_id: local::UserId::new(u.id.get()),
            userid: m.userid,
            fields: MemberFields {
                name: Some(u.name).filter(|n| !n.is_empty()),
                mobile: u.mobile,
                email: u.email,
                avatar: u.avatar,
                position: u.position,
                gender: gender_from_store(u.gender),
            },
            status: status_from_store(u.status),
            memberships: ms,
            main_department: main,
        }
    });
    local::LocalDirectory::new(departments, members)
}

/// Departments whose parent is neither fetched nor held locally (the top of a limited visible scope)
/// are treated as top-level, so the store gets no dangling parent and the next plan sees no change.
pub fn detach_unknown_parents(upstream: &mut UpstreamDirectory, local: &local::LocalDirectory) {
    let known: Vec<i64> = upstream.departments.keys().copied().collect();
    for d in upstream.departments.values_mut() {
        if d.parent_id != 0
            && known.binary_search(&d.parent_id).is_err()
            && !local.departments.contains_key(&d.parent_id)
        {
            d.parent_id = 0;
        }
    }
}

/// A main department outside the member's visible memberships cannot be stored (main is a flag on a
/// membership), so it is dropped before planning; otherwise every run would plan the same change again.
pub fn drop_unstorable_main_departments(upstream: &mut UpstreamDirectory) {
    for m in upstream.members.values_mut() {
        if let Some(main) = m.main_department
            && !m.memberships.iter().any(|x| x.department_id == main)
        {
            m.main_department = None;
        }
    }
}

fn set<T: Clone>(old: Option<T>, c: &Option<Change<T>>) -> Option<T> {
    match c {
        None => old,
        Some(Change::Set(v)) => Some(v.clone()),
        Some(Change::Clear) => None,
    }
}

/// The memberships a member should have now, from the upstream snapshot (none when upstream says left).
fn membership_specs(m: &UpstreamMember) -> Vec<store::MembershipSpec> {
    if m.status == 5 {
        return Vec::new();
    }
    let mut seen = std::collections::BTreeSet::new();
    m.memberships
        .iter()
        .filter(|x| seen.insert(x.department_id))
        .map(|x| store::MembershipSpec {
            department_id: x.department_id,
            is_leader: x.is_leader,
            sort_order: x.order,
            is_main: m.main_department == Some(x.department_id),
        })
        .collect()
}

/// The department writes of a plan: creates and updates as complete upserts (parents first is not
/// needed: the store accepts a batch in any order).
pub fn department_changes(
    plan: &SyncPlan,
    upstream: &UpstreamDirectory,
    local: &local::LocalDirectory,
) -> Vec<store::DepartmentUpsert> {
    let parent = |p: i64| (p != 0).then_some(p);
    let mut out = Vec::with_capacity(plan.role_creates.len() + plan.role_updates.len());
    for c in &plan.role_creates {
        out.push(store::DepartmentUpsert {
            department_id: c.department_id,
            name: c.name.clone(),
            parent_department_id: parent(c.parent_id),
            sort_order: c.order,
        });
    }
    for u in &plan.role_updates {
        let Some(l) = local.departments.get(&u.department_id) else {
            continue;
        };
        let up = upstream.departments.get(&u.department_id);
        out.push(store::DepartmentUpsert {
            department_id: u.department_id,
            name: u.name.clone().unwrap_or_else(|| l.name.clone()),
            parent_department_id: parent(up.map_or(l.parent_id, |d| d.parent_id)),
            sort_order: u.order.unwrap_or(l.order),
        });
    }
    out
}

/// The member writes of a plan, in plan order (creates, then updates), each complete: fields the plan
/// does not change keep the local value, so a withheld field is never written as empty.
pub fn member_changes(
    plan: &SyncPlan,
    upstream: &UpstreamDirectory,
    local: &local::LocalDirectory,
) -> Vec<store::MemberUpsert> {
    member_changes_iter(plan, upstream, local).collect()
}

/// [`member_changes`] one at a time, so a chunked apply holds one chunk of writes, not all of them.
pub fn member_changes_iter<'a>(
    plan: &'a SyncPlan,
    upstream: &'a UpstreamDirectory,
    local: &'a local::LocalDirectory,
) -> impl Iterator<Item = store::MemberUpsert> + 'a {
    let creates = plan.user_creates.iter().map(|c| member_create(c, upstream));
    let updates = plan
        .user_updates
        .iter()
        .filter_map(|u| member_update(u, upstream, local));
    creates.chain(updates)
}

fn member_create(c: &UserCreate, upstream: &UpstreamDirectory) -> store::MemberUpsert {
    let memberships = match upstream.members.get(&c.userid) {
        Some(m) => membership_specs(m),
        None => Vec::new(),
    };
    store::MemberUpsert {
        userid: c.userid.clone(),
        open_userid: None,
        fields: store::UserFields {
            name: c.fields.name.clone().unwrap_or_else(|| c.userid.clone()),
            mobile: c.fields.mobile.clone(),
            email: c.fields.email.clone(),
            avatar: c.fields.avatar.clone(),
            position: c.fields.position.clone(),
            gender: gender_to_store(c.fields.gender),
            status: status_to_store(c.status),
        },
        memberships: Some(memberships),
    }
}

fn member_update(
    u: &UserUpdate,
    upstream: &UpstreamDirectory,
    local: &local::LocalDirectory,
) -> Option<store::MemberUpsert> {
    let l = local.members.get(&u.userid)?;
    let f = &u.fields;
    let old = &l.fields;
    let memberships = if u.memberships.is_empty() && u.main_department.is_none() {
        None
    } else {
        upstream.members.get(&u.userid).map(membership_specs)
    };
    Some(store::MemberUpsert {
        userid: u.userid.clone(),
        open_userid: None,
        fields: store::UserFields {
            name: set(old.name.clone(), &f.name).unwrap_or_else(|| u.userid.clone()),
            mobile: set(old.mobile.clone(), &f.mobile),
            email: set(old.email.clone(), &f.email),
            avatar: set(old.avatar.clone(), &f.avatar),
            position: set(old.position.clone(), &f.position),
            gender: gender_to_store(set(old.gender, &f.gender)),
            status: status_to_store(u.status.unwrap_or(l.status)),
        },
        memberships,
    })
}

/// A count as the store's u64 counters.
fn n(x: usize) -> u64 {
    u64::try_from(x).unwrap_or(u64::MAX)
}

fn entity(c: super::plan::Counts) -> store::EntityCounters {
    store::EntityCounters {
        created: n(c.created),
        updated: n(c.updated),
        removed: n(c.removed),
        unchanged: n(c.unchanged),
    }
}

/// The plan's counters as the run record stores them.
pub fn counters(plan: &SyncPlan) -> store::SyncCounters {
    store::SyncCounters {
        users: entity(plan.counters.users),
        roles: entity(plan.counters.roles),
        memberships: entity(plan.counters.memberships),
    }
}
