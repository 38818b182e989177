//! The directory repository's behaviour suite, run on SQLite (a file, several connections) and on
//! PostgreSQL (a throwaway database per test): schema, batches, memberships, lookups, tenant isolation,
//! sync runs with events, and the sync lease.

use std::time::Duration;

use store::{
    Db, DepartmentUpsert, DirectoryChanges, Error, Gender, MemberUpsert, MembershipSpec,
    NewSyncRun, RoleOrigin, SyncCounters, SyncKind, SyncStatus, UserFields, UserId, UserStatus,
    UseridRename,
};

use crate::support::with_postgres;

const T: &str = "acme";
const CORP: &str = "wwcorp1";

/// One `#[tokio::test]` per backend for each behaviour function `fn(Db, Option<String>)`: the Db is
/// migrated; the URL lets a test open a second handle on the same database.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (db, url, _dir) = crate::support::sqlite_file().await;
                    super::$name(db.clone(), url).await;
                    db.close().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::support::with_postgres(|url| async move {
                        let db = store::Db::connect(&url).await.unwrap();
                        db.migrate().await.unwrap();
                        super::$name(db.clone(), url).await;
                        db.close().await;
                    })
                    .await;
                }
            )*
        }
    };
}

on_both_backends!(
    create_and_load_round_trip,
    moves_and_renames_update_the_same_role,
    userids_match_case_insensitively_and_links_are_unique_both_ways,
    a_failing_item_rolls_back_the_whole_batch,
    memberships_are_closed_not_deleted,
    left_users_and_archived_roles_keep_their_rows,
    userid_rename_keeps_the_user,
    role_members_directly_and_with_sub_roles,
    lookups,
    tenants_do_not_mix,
    sync_run_and_event_replay,
    sync_lease_is_exclusive_across_handles,
    a_big_batch_and_a_member_twice_in_one_batch,
);

// ---- builders ----

fn dept(id: i64, name: &str, parent: Option<i64>, order: i64) -> DepartmentUpsert {
    DepartmentUpsert {
        department_id: id,
        name: name.to_owned(),
        parent_department_id: parent,
        sort_order: order,
    }
}

fn fields(name: &str) -> UserFields {
    UserFields {
        name: name.to_owned(),
        mobile: None,
        email: None,
        avatar: None,
        position: None,
        gender: None,
        status: UserStatus::Active,
    }
}

fn in_dept(department_id: i64) -> MembershipSpec {
    MembershipSpec {
        department_id,
        is_leader: false,
        sort_order: 0,
        is_main: false,
    }
}

fn member(userid: &str, name: &str, depts: &[MembershipSpec]) -> MemberUpsert {
    MemberUpsert {
        userid: userid.to_owned(),
        open_userid: None,
        fields: fields(name),
        memberships: Some(depts.to_vec()),
    }
}

/// Root 1 with children 2 and 3; 4 under 2.
fn tree() -> Vec<DepartmentUpsert> {
    vec![
        // Child before parent on purpose: a batch may come in any order.
        dept(4, "Backend", Some(2), 10),
        dept(1, "Acme", None, 0),
        dept(2, "Engineering", Some(1), 100),
        dept(3, "Sales", Some(1), 200),
    ]
}

async fn seed(db: &Db, tenant: &str) {
    let changes = DirectoryChanges {
        departments: tree(),
        members: vec![
            MemberUpsert {
                userid: "Alice".to_owned(),
                open_userid: Some("woAlice".to_owned()),
                fields: UserFields {
                    mobile: Some("13800000001".to_owned()),
                    email: Some("Alice@Example.com".to_owned()),
                    avatar: Some("https://a/1.png".to_owned()),
                    position: Some("CTO".to_owned()),
                    gender: Some(Gender::Female),
                    ..fields("Alice Wang")
                },
                memberships: Some(vec![
                    MembershipSpec {
                        department_id: 2,
                        is_leader: true,
                        sort_order: 5,
                        is_main: true,
                    },
                    in_dept(1),
                ]),
            },
            member("bob", "Bob Li", &[in_dept(4)]),
            MemberUpsert {
                fields: UserFields {
                    status: UserStatus::Inactive,
                    mobile: Some("13800000003".to_owned()),
                    ..fields("Carol 100%_Zhang")
                },
                ..member("carol", "", &[in_dept(3)])
            },
        ],
        ..Default::default()
    };
    let report = db
        .apply_directory_changes(tenant, CORP, &changes, 1_000)
        .await
        .unwrap();
    assert_eq!(report.roles_created, 4);
    assert_eq!(report.users_created, 3);
    assert_eq!(report.memberships_opened, 4);
}

async fn user_id(db: &Db, tenant: &str, userid: &str) -> UserId {
    db.user_by_wecom_userid(tenant, CORP, userid)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{userid} is linked"))
        .id
}

/// Rows in `table` for a tenant, with an optional extra condition, on either backend.
async fn count(db: &Db, table: &str, tenant: &str, extra: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table} WHERE tenant = $1 {extra}");
    match (db.sqlite(), db.postgres()) {
        (Some(p), _) => sqlx::query_scalar(&sql).bind(tenant).fetch_one(p).await,
        (_, Some(p)) => sqlx::query_scalar(&sql).bind(tenant).fetch_one(p).await,
        _ => unreachable!(),
    }
    .unwrap()
}

// ---- migrations ----

async fn migrate_twice(db: &Db) {
    let first = db.migrate().await.unwrap();
    let versions: Vec<i64> = first.applied.iter().map(|m| m.version).collect();
    let every: Vec<i64> = (1..=i64::try_from(first.total).unwrap()).collect();
    assert_eq!(versions, every, "an empty database gets every migration");
    assert_eq!(first.applied[1].description, "directory");
    assert_eq!(first.applied[2].description, "tags");
    let second = db.migrate().await.unwrap();
    assert!(second.applied.is_empty());
    assert_eq!(second.total, first.total);
    // The schema is usable after migrating.
    assert_eq!(count(db, "users", T, "").await, 0);
    assert_eq!(count(db, "sync_leases", T, "").await, 0);
}

#[tokio::test]
async fn sqlite_migrates_empty_to_latest_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}/wx.db", dir.path().display()))
        .await
        .unwrap();
    migrate_twice(&db).await;
    db.close().await;
}

#[tokio::test]
async fn postgres_migrates_empty_to_latest_twice() {
    with_postgres(|url| async move {
        let db = Db::connect(&url).await.unwrap();
        migrate_twice(&db).await;
        db.close().await;
    })
    .await;
}

// ---- behaviour ----

async fn create_and_load_round_trip(db: Db, _url: String) {
    seed(&db, T).await;
    let dir = db.load_directory(T, CORP).await.unwrap();

    let ids: Vec<i64> = dir.departments.iter().map(|d| d.department_id).collect();
    assert_eq!(ids, [1, 2, 3, 4]);
    let role_of = |dep: i64| {
        dir.departments
            .iter()
            .find(|d| d.department_id == dep)
            .unwrap()
            .role
            .clone()
    };
    assert_eq!(role_of(1).parent_id, None);
    assert_eq!(role_of(2).parent_id, Some(role_of(1).id));
    assert_eq!(role_of(4).parent_id, Some(role_of(2).id));
    assert_eq!(role_of(3).sort_order, 200);
    assert_eq!(role_of(2).name, "Engineering");
    assert_eq!(role_of(2).origin, RoleOrigin::Wecom);
    assert_eq!(role_of(2).tenant, T);
    assert_eq!(role_of(2).created_at_ms, 1_000);

    let userids: Vec<&str> = dir.members.iter().map(|m| m.userid.as_str()).collect();
    assert_eq!(userids, ["Alice", "bob", "carol"], "spelling kept as given");
    let alice = &dir.members[0];
    assert_eq!(alice.open_userid.as_deref(), Some("woAlice"));
    assert_eq!(alice.user.name, "Alice Wang");
    assert_eq!(alice.user.mobile.as_deref(), Some("13800000001"));
    assert_eq!(alice.user.email.as_deref(), Some("Alice@Example.com"));
    assert_eq!(alice.user.avatar.as_deref(), Some("https://a/1.png"));
    assert_eq!(alice.user.position.as_deref(), Some("CTO"));
    assert_eq!(alice.user.gender, Some(Gender::Female));
    assert_eq!(alice.user.status, UserStatus::Active);
    assert_eq!(dir.members[2].user.status, UserStatus::Inactive);
    assert_eq!(dir.members[1].user.gender, None);

    assert_eq!(dir.memberships.len(), 4);
    let alice_in_2 = dir
        .memberships
        .iter()
        .find(|m| m.user_id == alice.user.id && m.role_id == role_of(2).id)
        .unwrap();
    assert!(alice_in_2.is_leader && alice_in_2.is_main);
    assert_eq!(alice_in_2.sort_order, 5);
    assert_eq!(alice_in_2.ended_at_ms, None);
    assert_eq!(alice_in_2.started_at_ms, 1_000);

    // Another corp of the same tenant is empty.
    let other = db.load_directory(T, "wwother").await.unwrap();
    assert!(other.departments.is_empty() && other.members.is_empty());

    // Re-applying the same memberships opens, updates and closes nothing.
    let same = DirectoryChanges {
        members: vec![member("bob", "Bob Li", &[in_dept(4)])],
        ..Default::default()
    };
    let report = db
        .apply_directory_changes(T, CORP, &same, 2_000)
        .await
        .unwrap();
    assert_eq!(
        report,
        store::ApplyReport::default(),
        "nothing changed, nothing written"
    );
    let bob = db
        .user_by_wecom_userid(T, CORP, "bob")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bob.updated_at_ms, 1_000);
    let unchanged_roles = DirectoryChanges {
        departments: tree(),
        ..Default::default()
    };
    let report = db
        .apply_directory_changes(T, CORP, &unchanged_roles, 2_000)
        .await
        .unwrap();
    assert_eq!(report, store::ApplyReport::default());
    assert_eq!(
        db.role_by_department(T, CORP, 2)
            .await
            .unwrap()
            .unwrap()
            .updated_at_ms,
        1_000
    );
}

async fn moves_and_renames_update_the_same_role(db: Db, _url: String) {
    seed(&db, T).await;
    let before = db.role_by_department(T, CORP, 4).await.unwrap().unwrap();
    let sales = db.role_by_department(T, CORP, 3).await.unwrap().unwrap();
    let changes = DirectoryChanges {
        departments: vec![dept(4, "Platform", Some(3), 7)],
        ..Default::default()
    };
    let report = db
        .apply_directory_changes(T, CORP, &changes, 5_000)
        .await
        .unwrap();
    assert_eq!((report.roles_created, report.roles_updated), (0, 1));
    let after = db.role_by_department(T, CORP, 4).await.unwrap().unwrap();
    assert_eq!(after.id, before.id, "same role");
    assert_eq!(after.name, "Platform");
    assert_eq!(after.parent_id, Some(sales.id));
    assert_eq!(after.sort_order, 7);
    assert_eq!(after.updated_at_ms, 5_000);
    assert_eq!(after.created_at_ms, 1_000);
    // Bob's membership followed the role.
    let bob = user_id(&db, T, "bob").await;
    let roles = db.user_roles(T, bob).await.unwrap();
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0].role.id, before.id);
    assert_eq!(count(&db, "roles", T, "").await, 4);
}

async fn userids_match_case_insensitively_and_links_are_unique_both_ways(db: Db, _url: String) {
    seed(&db, T).await;
    let alice = user_id(&db, T, "alice").await;
    assert_eq!(user_id(&db, T, "ALICE").await, alice);

    // A member sent again with another spelling is the same user, not a second one.
    let again = DirectoryChanges {
        members: vec![member("ALICE", "Alice W.", &[in_dept(2)])],
        ..Default::default()
    };
    let report = db
        .apply_directory_changes(T, CORP, &again, 2_000)
        .await
        .unwrap();
    assert_eq!((report.users_created, report.users_updated), (0, 1));
    assert_eq!(count(&db, "users", T, "").await, 3);
    assert_eq!(db.user(T, alice).await.unwrap().unwrap().name, "Alice W.");

    // Renaming bob onto alice's userid (any case) would give one userid two users: rejected.
    let clash = DirectoryChanges {
        renames: vec![UseridRename {
            from: "bob".to_owned(),
            to: "aLiCe".to_owned(),
        }],
        ..Default::default()
    };
    let err = db
        .apply_directory_changes(T, CORP, &clash, 3_000)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert_eq!(user_id(&db, T, "bob").await, user_id(&db, T, "BOB").await);

    // The other way: one user cannot be linked twice in the same corp, even by direct SQL.
    let sql = "INSERT INTO wecom_member_links (tenant, corpid, userid, userid_norm, open_userid, user_id) \
               VALUES ($1, $2, 'alias', 'alias', NULL, $3)";
    let dup = match (db.sqlite(), db.postgres()) {
        (Some(p), _) => sqlx::query(sql)
            .bind(T)
            .bind(CORP)
            .bind(alice.get())
            .execute(p)
            .await
            .map(|_| ()),
        (_, Some(p)) => sqlx::query(sql)
            .bind(T)
            .bind(CORP)
            .bind(alice.get())
            .execute(p)
            .await
            .map(|_| ()),
        _ => unreachable!(),
    };
    let err = dup.unwrap_err();
    assert!(
        err.as_database_error().unwrap().is_unique_violation(),
        "{err}"
    );
}

async fn a_failing_item_rolls_back_the_whole_batch(db: Db, _url: String) {
    seed(&db, T).await;
    let users_before = count(&db, "users", T, "").await;
    let roles_before = count(&db, "roles", T, "").await;
    let bad = DirectoryChanges {
        departments: vec![
            dept(5, "New dept", Some(1), 0),
            dept(2, "Renamed", Some(1), 1),
        ],
        members: vec![
            member("dave", "Dave", &[in_dept(5)]),
            member("bob", "Bob changed", &[in_dept(3)]),
            // Department 99 exists nowhere: the whole batch must fail.
            member("erin", "Erin", &[in_dept(99)]),
        ],
        left_userids: vec!["carol".to_owned()],
        ..Default::default()
    };
    let err = db
        .apply_directory_changes(T, CORP, &bad, 2_000)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnknownDepartment {
                department_id: 99,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(count(&db, "users", T, "").await, users_before);
    assert_eq!(count(&db, "roles", T, "").await, roles_before);
    assert!(db.role_by_department(T, CORP, 5).await.unwrap().is_none());
    assert_eq!(
        db.role_by_department(T, CORP, 2)
            .await
            .unwrap()
            .unwrap()
            .name,
        "Engineering"
    );
    let bob = db
        .user_by_wecom_userid(T, CORP, "bob")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bob.name, "Bob Li");
    assert_eq!(db.user_roles(T, bob.id).await.unwrap().len(), 1);
    let carol = db
        .user_by_wecom_userid(T, CORP, "carol")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(carol.status, UserStatus::Inactive);

    // An unknown userid to mark left fails the same way.
    let bad = DirectoryChanges {
        members: vec![member("frank", "Frank", &[in_dept(1)])],
        left_userids: vec!["nobody".to_owned()],
        ..Default::default()
    };
    let err = db
        .apply_directory_changes(T, CORP, &bad, 2_000)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownUserid { .. }), "{err:?}");
    assert!(
        db.user_by_wecom_userid(T, CORP, "frank")
            .await
            .unwrap()
            .is_none()
    );
}

async fn memberships_are_closed_not_deleted(db: Db, _url: String) {
    seed(&db, T).await;
    let alice = user_id(&db, T, "alice").await;
    // Alice leaves department 1, stays in 2 (no longer leader), joins 3.
    let changes = DirectoryChanges {
        members: vec![member(
            "alice",
            "Alice Wang",
            &[
                MembershipSpec {
                    department_id: 2,
                    is_leader: false,
                    sort_order: 5,
                    is_main: true,
                },
                in_dept(3),
            ],
        )],
        ..Default::default()
    };
    let report = db
        .apply_directory_changes(T, CORP, &changes, 2_000)
        .await
        .unwrap();
    assert_eq!(
        (
            report.memberships_opened,
            report.memberships_updated,
            report.memberships_closed
        ),
        (1, 1, 1)
    );
    let filter = format!("AND user_id = {}", alice.get());
    assert_eq!(
        count(&db, "memberships", T, &filter).await,
        3,
        "nothing deleted"
    );
    assert_eq!(
        count(
            &db,
            "memberships",
            T,
            &format!("{filter} AND ended_at_ms = 2000")
        )
        .await,
        1
    );
    let roles = db.user_roles(T, alice).await.unwrap();
    let names: Vec<&str> = roles.iter().map(|r| r.role.name.as_str()).collect();
    assert_eq!(names, ["Engineering", "Sales"], "main first");
    assert!(!roles[0].membership.is_leader);

    // Joining department 1 again opens a new membership beside the closed one.
    let back = DirectoryChanges {
        members: vec![member("alice", "Alice Wang", &[in_dept(1)])],
        ..Default::default()
    };
    let report = db
        .apply_directory_changes(T, CORP, &back, 3_000)
        .await
        .unwrap();
    assert_eq!(
        (report.memberships_opened, report.memberships_closed),
        (1, 2)
    );
    assert_eq!(count(&db, "memberships", T, &filter).await, 4);
    let dir = db.load_directory(T, CORP).await.unwrap();
    let open: Vec<_> = dir
        .memberships
        .iter()
        .filter(|m| m.user_id == alice)
        .collect();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].started_at_ms, 3_000);
}

async fn left_users_and_archived_roles_keep_their_rows(db: Db, _url: String) {
    seed(&db, T).await;
    let alice = user_id(&db, T, "alice").await;
    let changes = DirectoryChanges {
        left_userids: vec!["ALICE".to_owned()],
        archived_departments: vec![4],
        ..Default::default()
    };
    let report = db
        .apply_directory_changes(T, CORP, &changes, 9_000)
        .await
        .unwrap();
    assert_eq!(report.users_left, 1);
    assert_eq!(report.roles_archived, 1);
    // Alice's two memberships and Bob's one in department 4.
    assert_eq!(report.memberships_closed, 3);

    let user = db.user(T, alice).await.unwrap().unwrap();
    assert_eq!(user.status, UserStatus::Left);
    assert_eq!(user.updated_at_ms, 9_000);
    assert_eq!(user.email.as_deref(), Some("Alice@Example.com"));
    assert!(db.user_roles(T, alice).await.unwrap().is_empty());
    assert_eq!(user_id(&db, T, "alice").await, alice, "link kept");

    let role = db.role_by_department(T, CORP, 4).await.unwrap().unwrap();
    assert_eq!(role.archived_at_ms, Some(9_000));
    assert_eq!(count(&db, "users", T, "").await, 3);
    assert_eq!(count(&db, "roles", T, "").await, 4);
    assert_eq!(count(&db, "memberships", T, "").await, 4);
    let dir = db.load_directory(T, CORP).await.unwrap();
    assert_eq!(dir.members.len(), 3);
    assert_eq!(dir.departments.len(), 4);
    assert_eq!(dir.memberships.len(), 1, "only carol's stays open");

    // Marking left again changes nothing; a department that reappears is un-archived.
    let again = DirectoryChanges {
        left_userids: vec!["alice".to_owned()],
        departments: vec![dept(4, "Backend", Some(2), 10)],
        ..Default::default()
    };
    let report = db
        .apply_directory_changes(T, CORP, &again, 10_000)
        .await
        .unwrap();
    assert_eq!((report.users_left, report.memberships_closed), (0, 0));
    let role = db.role_by_department(T, CORP, 4).await.unwrap().unwrap();
    assert_eq!(role.archived_at_ms, None);
}

async fn userid_rename_keeps_the_user(db: Db, _url: String) {
    seed(&db, T).await;
    let bob = user_id(&db, T, "bob").await;
    let changes = DirectoryChanges {
        renames: vec![UseridRename {
            from: "BOB".to_owned(),
            to: "Robert".to_owned(),
        }],
        // The same batch can already use the new userid.
        members: vec![member("robert", "Robert Li", &[in_dept(4)])],
        ..Default::default()
    };
    let report = db
        .apply_directory_changes(T, CORP, &changes, 2_000)
        .await
        .unwrap();
    assert_eq!((report.userids_renamed, report.users_created), (1, 0));
    assert_eq!(user_id(&db, T, "robert").await, bob);
    assert!(
        db.user_by_wecom_userid(T, CORP, "bob")
            .await
            .unwrap()
            .is_none()
    );
    let links = db.wecom_links_of_user(T, bob).await.unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].userid, "Robert");
    assert_eq!(db.user(T, bob).await.unwrap().unwrap().name, "Robert Li");
    // An unknown source userid is an error.
    let bad = DirectoryChanges {
        renames: vec![UseridRename {
            from: "ghost".to_owned(),
            to: "x".to_owned(),
        }],
        ..Default::default()
    };
    let err = db
        .apply_directory_changes(T, CORP, &bad, 3_000)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownUserid { .. }), "{err:?}");
}

async fn role_members_directly_and_with_sub_roles(db: Db, _url: String) {
    seed(&db, T).await;
    let root = db.role_by_department(T, CORP, 1).await.unwrap().unwrap().id;
    let eng = db.role_by_department(T, CORP, 2).await.unwrap().unwrap().id;
    let names = |rows: Vec<store::RoleMember>| {
        let mut v: Vec<String> = rows.into_iter().map(|r| r.user.name).collect();
        v.sort();
        v
    };
    assert_eq!(
        names(db.role_members(T, root, false).await.unwrap()),
        ["Alice Wang"]
    );
    assert_eq!(
        names(db.role_members(T, root, true).await.unwrap()),
        ["Alice Wang", "Alice Wang", "Bob Li", "Carol 100%_Zhang"],
        "one row per membership: Alice is in 1 and 2"
    );
    let eng_tree = db.role_members(T, eng, true).await.unwrap();
    assert_eq!(names(eng_tree.clone()), ["Alice Wang", "Bob Li"]);
    let alice_row = eng_tree
        .iter()
        .find(|r| r.user.name == "Alice Wang")
        .unwrap();
    assert!(alice_row.membership.is_leader);
    assert_eq!(alice_row.membership.role_id, eng);

    // An archived sub-role drops out of the tree.
    let archive = DirectoryChanges {
        archived_departments: vec![4],
        ..Default::default()
    };
    db.apply_directory_changes(T, CORP, &archive, 2_000)
        .await
        .unwrap();
    assert_eq!(
        names(db.role_members(T, eng, true).await.unwrap()),
        ["Alice Wang"]
    );
}

async fn lookups(db: Db, _url: String) {
    seed(&db, T).await;
    let alice = user_id(&db, T, "alice").await;
    let user = db.user(T, alice).await.unwrap().unwrap();
    assert_eq!(user.name, "Alice Wang");
    assert!(
        db.user(T, UserId::from_raw(987_654))
            .await
            .unwrap()
            .is_none()
    );

    let by_mobile = db.users_by_mobile(T, "13800000001", 10).await.unwrap();
    assert_eq!(by_mobile.len(), 1);
    assert_eq!(by_mobile[0].id, alice);
    assert!(
        db.users_by_mobile(T, "1380000000", 10)
            .await
            .unwrap()
            .is_empty()
    );
    let by_email = db.users_by_email(T, "alice@EXAMPLE.com", 10).await.unwrap();
    assert_eq!(by_email.len(), 1);
    assert_eq!(by_email[0].id, alice);

    let found = db.search_users_by_name(T, "li", 10).await.unwrap();
    let names: Vec<&str> = found.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(
        names,
        ["Alice Wang", "Bob Li"],
        "substring, case-insensitive, by name"
    );
    assert_eq!(db.search_users_by_name(T, "li", 1).await.unwrap().len(), 1);
    // LIKE wildcards in the fragment match literally.
    let pct = db.search_users_by_name(T, "100%_", 10).await.unwrap();
    assert_eq!(pct.len(), 1);
    assert_eq!(pct[0].name, "Carol 100%_Zhang");
    assert!(db.search_users_by_name(T, "%", 10).await.unwrap().len() == 1);
    assert!(db.search_users_by_name(T, "_", 10).await.unwrap().len() == 1);

    let eng = db.role_by_department(T, CORP, 2).await.unwrap().unwrap();
    let link = db.department_of_role(T, eng.id).await.unwrap().unwrap();
    assert_eq!((link.corpid.as_str(), link.department_id), (CORP, 2));
    assert_eq!(db.role(T, eng.id).await.unwrap().unwrap(), eng);
    assert!(db.role_by_department(T, CORP, 99).await.unwrap().is_none());

    let roles = db.user_roles(T, alice).await.unwrap();
    assert_eq!(roles.len(), 2);
    assert_eq!(roles[0].role.id, eng.id, "main membership first");
    assert!(roles[0].membership.is_leader && roles[0].membership.is_main);
    assert!(!roles[1].membership.is_leader);
}

async fn tenants_do_not_mix(db: Db, _url: String) {
    seed(&db, "t1").await;
    seed(&db, "t2").await;
    let a1 = user_id(&db, "t1", "alice").await;
    let a2 = user_id(&db, "t2", "alice").await;
    assert_ne!(a1, a2);
    assert!(
        db.user("t2", a1).await.unwrap().is_none(),
        "no reading by foreign id"
    );
    let r1 = db
        .role_by_department("t1", CORP, 1)
        .await
        .unwrap()
        .unwrap()
        .id;
    assert!(db.role("t2", r1).await.unwrap().is_none());
    assert!(db.role_members("t2", r1, true).await.unwrap().is_empty());
    assert!(db.user_roles("t2", a1).await.unwrap().is_empty());
    assert!(db.department_of_role("t2", r1).await.unwrap().is_none());
    assert_eq!(
        db.users_by_mobile("t1", "13800000001", 10)
            .await
            .unwrap()
            .len(),
        1
    );

    // Changing t1 leaves t2 untouched.
    let changes = DirectoryChanges {
        left_userids: vec!["alice".to_owned()],
        departments: vec![dept(2, "Renamed in t1", Some(1), 0)],
        ..Default::default()
    };
    db.apply_directory_changes("t1", CORP, &changes, 2_000)
        .await
        .unwrap();
    assert_eq!(
        db.user("t2", a2).await.unwrap().unwrap().status,
        UserStatus::Active
    );
    assert_eq!(
        db.role_by_department("t2", CORP, 2)
            .await
            .unwrap()
            .unwrap()
            .name,
        "Engineering"
    );
    let d2 = db.load_directory("t2", CORP).await.unwrap();
    assert_eq!(d2.memberships.len(), 4);
    assert!(d2.members.iter().all(|m| m.user.tenant == "t2"));
}

async fn sync_run_and_event_replay(db: Db, url: String) {
    let run = db
        .create_sync_run(
            T,
            &NewSyncRun {
                corpid: CORP.to_owned(),
                kind: SyncKind::Full,
                dry_run: true,
                started_at_ms: 1_000,
            },
        )
        .await
        .unwrap();
    assert_eq!(run.status, SyncStatus::Running);
    assert_eq!(db.sync_run(T, run.id).await.unwrap().unwrap(), run);

    let mut counters = SyncCounters::default();
    counters.users.created = 3;
    counters.roles.unchanged = 7;
    let checkpoint = serde_json::json!({"phase": "members", "next_department": 42});
    db.update_sync_run(T, run.id, &counters, Some(&checkpoint), 1_500)
        .await
        .unwrap();
    for (i, phase) in ["departments", "members", "apply"].iter().enumerate() {
        let seq = db
            .append_sync_event(
                T,
                run.id,
                2_000 + i as i64,
                &serde_json::json!({"phase": phase}),
            )
            .await
            .unwrap();
        assert_eq!(seq, i as i64 + 1);
    }
    // A late subscriber replays everything; a reconnecting one resumes after its last seq.
    let all = db.sync_events_after(T, run.id, 0, 100).await.unwrap();
    let seqs: Vec<i64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(all[1].payload, serde_json::json!({"phase": "members"}));
    assert_eq!(all[2].at_ms, 2_002);
    let rest = db.sync_events_after(T, run.id, 2, 100).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].seq, 3);
    assert_eq!(
        db.sync_events_after(T, run.id, 0, 2).await.unwrap().len(),
        2
    );
    assert!(
        db.sync_events_after("other", run.id, 0, 100)
            .await
            .unwrap()
            .is_empty()
    );

    counters.users.removed = 1;
    db.finish_sync_run(
        T,
        run.id,
        SyncStatus::Partial,
        &counters,
        Some("department 7: errcode 60011"),
        3_000,
    )
    .await
    .unwrap();
    let done = db.sync_run(T, run.id).await.unwrap().unwrap();
    assert_eq!(done.status, SyncStatus::Partial);
    assert_eq!(done.counters, counters);
    assert_eq!(
        done.checkpoint,
        Some(checkpoint),
        "finishing keeps the checkpoint"
    );
    assert_eq!(done.error.as_deref(), Some("department 7: errcode 60011"));
    assert_eq!(done.finished_at_ms, Some(3_000));
    assert!(done.dry_run);
    assert_eq!(done.kind, SyncKind::Full);

    let second = db
        .create_sync_run(
            T,
            &NewSyncRun {
                corpid: CORP.to_owned(),
                kind: SyncKind::Incremental,
                dry_run: false,
                started_at_ms: 5_000,
            },
        )
        .await
        .unwrap();
    let recent = db.recent_sync_runs(T, Some(CORP), 10).await.unwrap();
    let ids: Vec<_> = recent.iter().map(|r| r.id).collect();
    assert_eq!(ids, [second.id, run.id], "newest first");
    assert_eq!(db.recent_sync_runs(T, None, 1).await.unwrap().len(), 1);
    assert!(
        db.recent_sync_runs(T, Some("wwother"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        db.recent_sync_runs("other", None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(db.sync_run("other", run.id).await.unwrap().is_none());

    let err = db
        .append_sync_event("other", run.id, 1, &serde_json::json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = db
        .update_sync_run("other", run.id, &counters, None, 1)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");

    // Concurrent appends from two handles (two processes) get distinct, gap-free seqs.
    let other = Db::connect(&url).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..10 {
        let handle = if i % 2 == 0 {
            db.clone()
        } else {
            other.clone()
        };
        let id = second.id;
        tasks.push(tokio::spawn(async move {
            handle
                .append_sync_event(T, id, i, &serde_json::json!({ "i": i }))
                .await
                .unwrap()
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=10).collect::<Vec<i64>>());
    assert_eq!(
        db.sync_events_after(T, second.id, 0, 100)
            .await
            .unwrap()
            .len(),
        10
    );
    other.close().await;
}

async fn sync_lease_is_exclusive_across_handles(db: Db, url: String) {
    // A second pool on the same database stands for a second process.
    let other = Db::connect(&url).await.unwrap();
    let ttl = Duration::from_secs(60);
    assert!(db.try_sync_lease(T, CORP, "a", 1_000, ttl).await.unwrap());
    assert!(
        !other
            .try_sync_lease(T, CORP, "b", 1_000, ttl)
            .await
            .unwrap()
    );
    // Another corp or tenant is a different lease.
    assert!(
        other
            .try_sync_lease(T, "wwother", "b", 1_000, ttl)
            .await
            .unwrap()
    );
    assert!(
        other
            .try_sync_lease("t2", CORP, "b", 1_000, ttl)
            .await
            .unwrap()
    );
    // The holder renews; the other cannot.
    assert!(
        db.renew_sync_lease(T, CORP, "a", 50_000, ttl)
            .await
            .unwrap()
    );
    assert!(
        !other
            .renew_sync_lease(T, CORP, "b", 50_000, ttl)
            .await
            .unwrap()
    );
    // Still held at 100_000 thanks to the renewal (expires 110_000)...
    assert!(
        !other
            .try_sync_lease(T, CORP, "b", 100_000, ttl)
            .await
            .unwrap()
    );
    // ...taken over once expired; the old holder then can neither renew nor release it.
    assert!(
        other
            .try_sync_lease(T, CORP, "b", 110_000, ttl)
            .await
            .unwrap()
    );
    assert!(
        !db.renew_sync_lease(T, CORP, "a", 110_001, ttl)
            .await
            .unwrap()
    );
    assert!(!db.release_sync_lease(T, CORP, "a").await.unwrap());
    assert!(other.release_sync_lease(T, CORP, "b").await.unwrap());
    assert!(db.try_sync_lease(T, CORP, "a", 110_002, ttl).await.unwrap());

    // Racing: of many concurrent takers exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let handle = if i % 2 == 0 {
            db.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            handle
                .try_sync_lease(T, "wwrace", &format!("h{i}"), 1_000, ttl)
                .await
                .unwrap()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        if t.await.unwrap() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    other.close().await;
}

async fn a_big_batch_and_a_member_twice_in_one_batch(db: Db, _url: String) {
    // More members than the store's preload threshold and multi-row chunk (a few hundred each), so
    // both the bulk paths and their chunking run.
    let members: Vec<MemberUpsert> = (0..1_234)
        .map(|i| {
            member(
                &format!("U{i:04}"),
                &format!("User {i}"),
                &[in_dept(1 + i % 4)],
            )
        })
        .collect();
    let mut changes = DirectoryChanges {
        departments: tree(),
        members,
        ..Default::default()
    };
    // U0001 again, now in departments 2 and 3 instead of 2; and a brand-new member listed twice.
    changes
        .members
        .push(member("u0001", "User one", &[in_dept(2), in_dept(3)]));
    changes
        .members
        .push(member("twice", "Twice", &[in_dept(1)]));
    changes
        .members
        .push(member("TWICE", "Twice", &[in_dept(4)]));
    let report = db
        .apply_directory_changes(T, CORP, &changes, 1_000)
        .await
        .unwrap();
    assert_eq!(report.users_created, 1_235);
    assert_eq!(report.users_updated, 1, "u0001 renamed; twice is unchanged");
    assert_eq!(report.memberships_opened, 1_234 + 1 + 2);
    assert_eq!(
        report.memberships_closed, 1,
        "twice left department 1 within the batch"
    );

    let dir = db.load_directory(T, CORP).await.unwrap();
    assert_eq!(dir.members.len(), 1_235);
    assert_eq!(dir.memberships.len(), 1_234 + 1 + 1);
    let u1 = user_id(&db, T, "U0001").await;
    let mut depts: Vec<&str> = Vec::new();
    let roles = db.user_roles(T, u1).await.unwrap();
    for r in &roles {
        depts.push(r.role.name.as_str());
    }
    depts.sort();
    assert_eq!(depts, ["Engineering", "Sales"]);
    let twice = user_id(&db, T, "twice").await;
    let roles = db.user_roles(T, twice).await.unwrap();
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0].role.name, "Backend");
    let u1233 = db
        .user_by_wecom_userid(T, CORP, "u1233")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u1233.name, "User 1233");
    assert_eq!(db.user_roles(T, u1233.id).await.unwrap().len(), 1);
}

#[test]
fn userids_normalise_to_lower_case() {
    assert_eq!(store::normalize_userid("ZhangSan"), "zhangsan");
    assert_eq!(store::normalize_userid("zhangsan"), "zhangsan");
}
