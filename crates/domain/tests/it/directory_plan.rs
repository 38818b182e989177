//! The pure planner: first plan creates everything, an identical local directory gives an empty plan,
//! renames and moves keep the role, withheld fields never blank local values, gone members are marked left,
//! an incomplete snapshot removes nothing, and the guard refuses mass removals unless overridden.

use std::collections::{BTreeMap, BTreeSet};

use domain::directory::local::{
    LocalDepartment, LocalDirectory, LocalMember, LocalMembership, LocalStatus, MemberFields,
    RoleId, UserId,
};
use domain::directory::plan::{Change, MembershipChange, PlanOptions, SyncPlan, Withheld, plan};
use domain::directory::upstream::{
    FetchStrategy, ItemError, UpstreamDepartment, UpstreamDirectory, UpstreamMember,
    UpstreamMembership, VisibleScope, WithheldField,
};
use wx_api::wecom::types::Gender;

fn dept(id: i64, name: &str, parent: i64, order: i64) -> UpstreamDepartment {
    UpstreamDepartment {
        id,
        name: Some(name.to_owned()),
        parent_id: parent,
        order,
        leaders: Vec::new(),
    }
}

fn member(userid: &str, depts: &[i64], status: i64) -> UpstreamMember {
    UpstreamMember {
        userid: userid.to_owned(),
        name: Some(format!("Name {userid}")),
        mobile: Some(format!("138{:08}", userid.len())),
        email: Some(format!("{userid}@example.com")),
        avatar: Some(format!("https://img.example.com/{userid}")),
        position: Some("Engineer".to_owned()),
        gender: Some(Gender::Female),
        status,
        memberships: depts
            .iter()
            .map(|d| UpstreamMembership {
                department_id: *d,
                is_leader: false,
                order: 0,
            })
            .collect(),
        main_department: depts.first().copied(),
    }
}

/// Root 1 with children 2 and 3, and `n` members spread over 2 and 3.
fn org(n: usize) -> UpstreamDirectory {
    let departments = [
        dept(1, "Corp", 0, 100),
        dept(2, "R&D", 1, 50),
        dept(3, "Sales", 1, 40),
    ];
    let members = (0..n).map(|i| {
        let d = if i % 2 == 0 { 2 } else { 3 };
        member(&format!("u{i:03}"), &[d], 1)
    });
    UpstreamDirectory {
        corpid: "ww1".into(),
        departments: departments.into_iter().map(|d| (d.id, d)).collect(),
        members: members.map(|m| (m.userid.clone(), m)).collect(),
        strategy: Some(FetchStrategy::UserList),
        scope: VisibleScope {
            whole_company: true,
            ..VisibleScope::default()
        },
        withheld: BTreeSet::new(),
        errors: Vec::new(),
        calls: 0,
        rate_limit_waits: 0,
    }
}

/// What an applier would leave behind after applying the first plan of `up`: local mirrors it exactly.
fn mirror(up: &UpstreamDirectory) -> LocalDirectory {
    let departments = up.departments.values().map(|d| LocalDepartment {
        role_id: RoleId::new(1000 + d.id),
        department_id: d.id,
        name: d.name.clone().unwrap(),
        parent_id: d.parent_id,
        order: d.order,
        archived: false,
    });
    let members = up.members.values().enumerate().map(|(i, m)| LocalMember {
        user_id: UserId::new(i as i64 + 1),
        userid: m.userid.clone(),
        fields: MemberFields {
            name: m.name.clone(),
            mobile: m.mobile.clone(),
            email: m.email.clone(),
            avatar: m.avatar.clone(),
            position: m.position.clone(),
            gender: m.gender,
        },
        status: LocalStatus::Active,
        memberships: m
            .memberships
            .iter()
            .map(|x| LocalMembership {
                department_id: x.department_id,
                is_leader: x.is_leader,
                order: x.order,
            })
            .collect(),
        main_department: m.main_department,
    });
    LocalDirectory::new(departments, members)
}

fn no_removals(p: &SyncPlan) -> bool {
    p.role_archives.is_empty() && p.user_leaves.is_empty()
}

#[test]
fn first_plan_from_empty_creates_everything() {
    let up = org(10);
    let p = plan(&up, &LocalDirectory::default(), PlanOptions::default());
    assert_eq!(p.role_creates.len(), 3);
    assert_eq!(p.user_creates.len(), 10);
    assert!(p.role_updates.is_empty() && p.user_updates.is_empty() && no_removals(&p));
    assert_eq!(p.counters.roles.created, 3);
    assert_eq!(p.counters.users.created, 10);
    assert_eq!(p.counters.memberships.created, 10);
    // Sorted by ids, so dry-run output is stable.
    let ids: Vec<i64> = p.role_creates.iter().map(|r| r.department_id).collect();
    assert_eq!(ids, vec![1, 2, 3]);
    let userids: Vec<&str> = p.user_creates.iter().map(|u| u.userid.as_str()).collect();
    let mut sorted = userids.clone();
    sorted.sort();
    assert_eq!(userids, sorted);
    let u = &p.user_creates[0];
    assert_eq!(u.status, LocalStatus::Active);
    assert_eq!(u.main_department, Some(2));
    assert_eq!(u.fields.email.as_deref(), Some("u000@example.com"));
    // Same input, same plan.
    assert_eq!(
        p,
        plan(&up, &LocalDirectory::default(), PlanOptions::default())
    );
}

#[test]
fn identical_local_directory_gives_an_empty_plan() {
    let up = org(10);
    let p = plan(&up, &mirror(&up), PlanOptions::default());
    assert!(p.is_empty(), "{p:?}");
    assert_eq!(p.counters.roles.unchanged, 3);
    assert_eq!(p.counters.users.unchanged, 10);
    assert_eq!(p.counters.memberships.unchanged, 10);
    assert_eq!(p.counters.users.created + p.counters.users.updated, 0);
}

#[test]
fn rename_move_and_reorder_update_the_same_role() {
    let up0 = org(4);
    let local = mirror(&up0);
    let mut up = up0.clone();
    up.departments.insert(4, dept(4, "Ops", 1, 10));
    let d3 = up.departments.get_mut(&3).unwrap();
    d3.name = Some("Sales & Marketing".into());
    d3.parent_id = 2;
    d3.order = 7;
    let p = plan(&up, &local, PlanOptions::default());
    assert_eq!(p.role_creates.len(), 1);
    assert_eq!(p.role_creates[0].department_id, 4);
    assert_eq!(p.role_updates.len(), 1);
    let u = &p.role_updates[0];
    assert_eq!(u.role_id, RoleId::new(1003));
    assert_eq!(u.name.as_deref(), Some("Sales & Marketing"));
    assert_eq!(u.parent_id, Some(2));
    assert_eq!(u.order, Some(7));
    assert!(!u.unarchive);
    assert!(no_removals(&p));
    assert_eq!(p.counters.roles.updated, 1);
    assert_eq!(p.counters.roles.unchanged, 2);
}

#[test]
fn a_department_gone_upstream_is_archived_and_comes_back_unarchived() {
    let up0 = org(30);
    let mut local = mirror(&up0);
    let mut up = up0.clone();
    // Nobody is in 3 any more: move its members to 2 first, then drop the department.
    for m in up.members.values_mut() {
        for x in &mut m.memberships {
            x.department_id = 2;
        }
        m.main_department = Some(2);
    }
    up.departments.remove(&3);
    let p = plan(&up, &local, PlanOptions::default());
    assert_eq!(p.role_archives.len(), 1);
    assert_eq!(p.role_archives[0].role_id, RoleId::new(1003));
    assert_eq!(p.counters.roles.removed, 1);
    let moved = p.user_updates.iter().find(|u| u.userid == "u001").unwrap();
    assert_eq!(
        moved.memberships,
        vec![
            MembershipChange::Open {
                department_id: 2,
                is_leader: false,
                order: 0
            },
            MembershipChange::Close { department_id: 3 },
        ]
    );
    assert_eq!(moved.main_department, Some(Some(2)));

    // Archived locally, then back upstream: the same role is unarchived.
    local.departments.get_mut(&3).unwrap().archived = true;
    let p = plan(&up0, &local, PlanOptions::default());
    assert_eq!(p.role_updates.len(), 1);
    assert!(p.role_updates[0].unarchive);
    assert_eq!(p.role_updates[0].role_id, RoleId::new(1003));
}

#[test]
fn only_changed_fields_are_updated_and_status_maps() {
    let up0 = org(6);
    let local = mirror(&up0);
    let mut up = up0.clone();
    let m = up.members.get_mut("u000").unwrap();
    m.position = Some("Manager".into());
    m.status = 2;
    m.memberships[0].is_leader = true;
    m.memberships[0].order = 9;
    up.members.get_mut("u001").unwrap().status = 4;
    // A field really emptied upstream (not withheld) is cleared.
    up.members.get_mut("u002").unwrap().email = None;
    let p = plan(&up, &local, PlanOptions::default());
    assert_eq!(p.user_updates.len(), 3);
    let u0 = &p.user_updates[0];
    assert_eq!(u0.userid, "u000");
    assert_eq!(u0.fields.position, Some(Change::Set("Manager".to_owned())));
    assert_eq!(u0.fields.name, None);
    assert_eq!(u0.fields.mobile, None);
    assert_eq!(u0.status, Some(LocalStatus::Disabled));
    assert_eq!(
        u0.memberships,
        vec![MembershipChange::Update {
            department_id: 2,
            is_leader: Some(true),
            order: Some(9)
        }]
    );
    assert_eq!(p.user_updates[1].status, Some(LocalStatus::Inactive));
    assert_eq!(p.user_updates[2].fields.email, Some(Change::Clear));
    assert_eq!(p.counters.users.updated, 3);
    assert_eq!(p.counters.users.unchanged, 3);
    assert_eq!(p.counters.memberships.updated, 1);
}

#[test]
fn withheld_fields_never_blank_local_values() {
    let up0 = org(4);
    let local = mirror(&up0);
    let mut up = up0.clone();
    for m in up.members.values_mut() {
        m.mobile = None;
        m.email = None;
        m.avatar = None;
        m.gender = Some(Gender::Unspecified);
    }
    up.withheld = BTreeSet::from([
        WithheldField::Mobile,
        WithheldField::Email,
        WithheldField::Avatar,
        WithheldField::Gender,
    ]);
    // One real change alongside, which must still come through.
    up.members.get_mut("u003").unwrap().name = Some("Renamed".into());
    let p = plan(&up, &local, PlanOptions::default());
    assert_eq!(p.user_updates.len(), 1, "{:?}", p.user_updates);
    let u = &p.user_updates[0];
    assert_eq!(u.fields.name, Some(Change::Set("Renamed".into())));
    assert_eq!(u.fields.mobile, None);
    assert_eq!(u.fields.email, None);
    assert_eq!(u.fields.avatar, None);
    assert_eq!(u.fields.gender, None);
    assert_eq!(p.withheld_fields.len(), 4);
    // New users simply have no value for a withheld field (never an empty string).
    let p = plan(&up, &LocalDirectory::default(), PlanOptions::default());
    assert!(p.user_creates.iter().all(|u| u.fields.mobile.is_none()
        && u.fields.email.is_none()
        && u.fields.gender.is_none()));
}

#[test]
fn a_member_gone_upstream_is_marked_left_with_memberships_closed() {
    let up0 = org(20);
    let local = mirror(&up0);
    let mut up = up0.clone();
    up.members.remove("u005");
    let p = plan(&up, &local, PlanOptions::default());
    assert_eq!(p.user_leaves.len(), 1);
    assert_eq!(p.user_leaves[0].userid, "u005");
    assert_eq!(p.user_leaves[0].close_departments, vec![3]);
    assert_eq!(p.counters.users.removed, 1);
    assert_eq!(p.counters.memberships.removed, 1);
    assert!(p.removals_withheld.is_none());
    // Once left locally, it is not planned again.
    let mut after = local.clone();
    let l = after.members.get_mut("u005").unwrap();
    l.status = LocalStatus::Left;
    l.memberships.clear();
    assert!(plan(&up, &after, PlanOptions::default()).is_empty());
}

#[test]
fn an_incomplete_snapshot_removes_nothing_and_says_why() {
    let up0 = org(20);
    let local = mirror(&up0);
    let mut up = up0.clone();
    up.members.remove("u005");
    up.departments.remove(&3);
    up.members.get_mut("u000").unwrap().position = Some("Lead".into());
    up.errors.push(ItemError {
        api: "/cgi-bin/user/list",
        item: "department 3".into(),
        errcode: Some(60011),
        code: "TK001".into(),
    });
    let p = plan(&up, &local, PlanOptions::default());
    assert!(no_removals(&p));
    assert!(p.is_partial());
    assert_eq!(p.counters.users.removed, 0);
    assert_eq!(p.counters.roles.removed, 0);
    assert_eq!(p.removals_skipped, 2);
    let reason = p.removals_withheld.as_ref().unwrap().reason();
    assert!(reason.contains("60011"), "{reason}");
    // Updates still go through.
    assert!(p.user_updates.iter().any(|u| u.userid == "u000"));
}

#[test]
fn the_guard_refuses_more_than_ten_percent_and_allows_with_override() {
    let up0 = org(20);
    let local = mirror(&up0);
    let mut up = up0.clone();
    // 2 of 20 is exactly 10%: allowed.
    up.members.remove("u000");
    up.members.remove("u001");
    let p = plan(&up, &local, PlanOptions::default());
    assert_eq!(p.user_leaves.len(), 2);
    assert!(!p.is_refused());
    // 3 of 20 is 15%: refused, no removals, the reason says so.
    up.members.remove("u002");
    let p = plan(&up, &local, PlanOptions::default());
    assert!(p.is_refused());
    assert!(no_removals(&p));
    assert_eq!(p.removals_skipped, 3);
    assert_eq!(
        p.removals_withheld,
        Some(Withheld::Refused {
            would_remove: 3,
            active: 20,
            max_remove_ratio: 0.10
        })
    );
    assert!(
        p.removals_withheld
            .as_ref()
            .unwrap()
            .reason()
            .contains("3 of 20")
    );
    // With the operator's override the removals are planned.
    let p = plan(
        &up,
        &local,
        PlanOptions {
            override_guard: true,
            ..PlanOptions::default()
        },
    );
    assert_eq!(p.user_leaves.len(), 3);
    assert!(p.removals_withheld.is_none());
}

#[test]
fn a_limited_scope_does_not_remove_what_it_cannot_see() {
    let up0 = org(20);
    let local = mirror(&up0);
    // The credential sees only department 2 (and its members).
    let mut up = up0.clone();
    up.scope = VisibleScope {
        whole_company: false,
        departments: vec![2],
        users: Vec::new(),
        tags: Vec::new(),
    };
    up.departments = BTreeMap::from([(2, up0.departments[&2].clone())]);
    up.members
        .retain(|_, m| m.memberships.iter().any(|x| x.department_id == 2));
    up.members.remove("u000");
    let p = plan(&up, &local, PlanOptions::default());
    assert!(p.role_archives.is_empty(), "{:?}", p.role_archives);
    let left: Vec<&str> = p.user_leaves.iter().map(|l| l.userid.as_str()).collect();
    assert_eq!(left, vec!["u000"]);
}

#[test]
fn upstream_status_left_closes_memberships_and_maps_to_left() {
    let up0 = org(6);
    let local = mirror(&up0);
    let mut up = up0.clone();
    up.members.get_mut("u004").unwrap().status = 5;
    let p = plan(&up, &local, PlanOptions::default());
    assert_eq!(p.user_updates.len(), 1);
    let u = &p.user_updates[0];
    assert_eq!(u.status, Some(LocalStatus::Left));
    assert_eq!(
        u.memberships,
        vec![MembershipChange::Close { department_id: 2 }]
    );
    assert!(p.user_leaves.is_empty());
}
