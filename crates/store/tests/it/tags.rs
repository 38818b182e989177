//! The tag mirror's repository suite, on SQLite and PostgreSQL: tag roles with their users (memberships)
//! and departments (inclusions), only differences written, previews that write nothing, archives that keep
//! rows, the department sync leaving tag memberships alone, tenant isolation, and migration 0003 keeping
//! every row of a populated 0002 database (SQLite rebuilds `roles` and the tables referencing it).

use std::collections::BTreeSet;

use store::{
    Db, DepartmentUpsert, DirectoryChanges, MemberUpsert, MembershipSpec, RoleOrigin, TagChanges,
    TagUpsert, UserFields, UserId, UserStatus,
};

const T: &str = "acme";
const CORP: &str = "wwcorp1";

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (db, _url, _dir) = crate::support::sqlite_file().await;
                    super::$name(db.clone()).await;
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
                        super::$name(db.clone()).await;
                        db.close().await;
                    })
                    .await;
                }
            )*
        }
    };
}

on_both_backends!(
    tag_roles_hold_users_and_include_departments,
    the_department_sync_leaves_tag_memberships_alone,
    archived_tags_keep_their_rows_and_come_back,
    tags_of_tenants_do_not_mix,
);

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

fn member(userid: &str, departments: &[i64]) -> MemberUpsert {
    MemberUpsert {
        userid: userid.to_owned(),
        open_userid: None,
        fields: fields(userid),
        memberships: Some(
            departments
                .iter()
                .map(|d| MembershipSpec {
                    department_id: *d,
                    is_leader: false,
                    sort_order: 0,
                    is_main: *d == departments[0],
                })
                .collect(),
        ),
    }
}

fn department(id: i64, parent: Option<i64>) -> DepartmentUpsert {
    DepartmentUpsert {
        department_id: id,
        name: format!("dept {id}"),
        parent_department_id: parent,
        sort_order: 0,
    }
}

/// Departments 1 > 2 > 3; Alice in 2, bob in 3, carol in 1.
async fn seed(db: &Db, tenant: &str) {
    let changes = DirectoryChanges {
        departments: vec![
            department(1, None),
            department(2, Some(1)),
            department(3, Some(2)),
        ],
        members: vec![
            member("Alice", &[2]),
            member("bob", &[3]),
            member("carol", &[1]),
        ],
        ..DirectoryChanges::default()
    };
    db.apply_directory_changes(tenant, CORP, &changes, 1_000)
        .await
        .unwrap();
}

async fn user_id(db: &Db, tenant: &str, userid: &str) -> UserId {
    db.user_by_wecom_userid(tenant, CORP, userid)
        .await
        .unwrap()
        .unwrap()
        .id
}

fn tag(tagid: i64, name: &str, userids: &[&str], departments: &[i64]) -> TagChanges {
    TagChanges {
        tags: vec![TagUpsert {
            tagid,
            name: Some(name.to_owned()),
            userids: Some(userids.iter().map(|u| (*u).to_owned()).collect()),
            department_ids: Some(departments.to_vec()),
        }],
        archived_tagids: Vec::new(),
    }
}

async fn tag_role_members(db: &Db, role: store::RoleId, expanded: bool) -> Vec<(UserId, i64)> {
    let rows = if expanded {
        db.role_members_expanded(T, role).await.unwrap()
    } else {
        db.role_members(T, role, false).await.unwrap()
    };
    let mut out: Vec<_> = rows
        .into_iter()
        .map(|m| (m.user.id, m.membership.role_id.get()))
        .collect();
    out.sort();
    out
}

async fn tag_roles_hold_users_and_include_departments(db: Db) {
    seed(&db, T).await;
    // Userids match case-insensitively; unknown ones are reported, not invented.
    let changes = tag(10, "Managers", &["alice", "BOB", "nobody"], &[2, 99]);
    let preview = db
        .preview_tag_changes(T, CORP, &changes, 2_000)
        .await
        .unwrap();
    assert_eq!(preview.roles_created, 1);
    assert!(
        db.role_by_tag(T, CORP, 10).await.unwrap().is_none(),
        "a preview writes nothing"
    );

    let report = db
        .apply_tag_changes(T, CORP, &changes, 2_000)
        .await
        .unwrap();
    assert_eq!(
        report, preview,
        "the preview said exactly what the apply did"
    );
    assert_eq!(report.roles_created, 1);
    assert_eq!(report.memberships_opened, 2);
    assert_eq!(report.inclusions_opened, 1);
    assert_eq!(report.unknown_userids, ["nobody"]);
    assert_eq!(report.unknown_departments, [99]);

    let role = db.role_by_tag(T, CORP, 10).await.unwrap().unwrap();
    assert_eq!(role.name, "Managers");
    assert_eq!(role.origin, RoleOrigin::WecomTag);
    assert_eq!(role.parent_id, None);
    assert_eq!(role.created_at_ms, 2_000);
    let link = db.tag_of_role(T, role.id).await.unwrap().unwrap();
    assert_eq!(
        (link.corpid.as_str(), link.tagid, link.role_id),
        (CORP, 10, role.id)
    );
    assert_eq!(db.department_of_role(T, role.id).await.unwrap(), None);
    let dept2 = db.role_by_department(T, CORP, 2).await.unwrap().unwrap();
    assert_eq!(db.tag_of_role(T, dept2.id).await.unwrap(), None);
    let included: Vec<_> = db
        .included_roles(T, role.id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(included, [dept2.id]);

    let local = db.wecom_tag(T, CORP, 10).await.unwrap().unwrap();
    assert_eq!(local.userids, ["Alice", "bob"], "the links' spelling");
    assert_eq!(local.department_ids, [2]);
    assert_eq!(db.load_tags(T, CORP).await.unwrap(), [local]);

    // A user's roles show the tag role with its origin, as a plain membership.
    let alice = user_id(&db, T, "Alice").await;
    let bob = user_id(&db, T, "bob").await;
    let roles = db.user_roles(T, alice).await.unwrap();
    let r = roles.iter().find(|r| r.role.id == role.id).unwrap();
    assert_eq!(r.role.origin, RoleOrigin::WecomTag);
    assert!(!r.membership.is_leader && !r.membership.is_main);
    assert_eq!(
        roles[0].role.origin,
        RoleOrigin::Wecom,
        "the main department first"
    );

    // Direct members: the tag's users. Expanded: plus everyone in department 2 and below (2 > 3).
    let direct = tag_role_members(&db, role.id, false).await;
    assert_eq!(direct, [(alice, role.id.get()), (bob, role.id.get())]);
    let dept3 = db.role_by_department(T, CORP, 3).await.unwrap().unwrap();
    let mut want = vec![
        (alice, role.id.get()),
        (bob, role.id.get()),
        (alice, dept2.id.get()),
        (bob, dept3.id.get()),
    ];
    want.sort();
    assert_eq!(tag_role_members(&db, role.id, true).await, want);
    // "With sub-roles" means the same for a tag role: its departments' members are its members.
    let mut with_sub: Vec<_> = db
        .role_members(T, role.id, true)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.user.id, m.membership.role_id.get()))
        .collect();
    with_sub.sort();
    assert_eq!(with_sub, want);

    // The directory sync never sees the tag: not a department, its memberships not loaded.
    let dir = db.load_directory(T, CORP).await.unwrap();
    assert!(dir.departments.iter().all(|d| d.role.id != role.id));
    assert!(dir.memberships.iter().all(|m| m.role_id != role.id));

    // Re-sending the same tag writes nothing; a change writes only the difference.
    let again = db
        .apply_tag_changes(T, CORP, &changes, 3_000)
        .await
        .unwrap();
    assert_eq!(again.rows_written(), 0, "{again:?}");
    let changed = tag(10, "Leads", &["bob", "carol"], &[3]);
    let report = db
        .apply_tag_changes(T, CORP, &changed, 4_000)
        .await
        .unwrap();
    assert_eq!(report.roles_updated, 1);
    assert_eq!(
        (report.memberships_opened, report.memberships_closed),
        (1, 1)
    );
    assert_eq!((report.inclusions_opened, report.inclusions_closed), (1, 1));
    let local = db.wecom_tag(T, CORP, 10).await.unwrap().unwrap();
    assert_eq!(local.role.name, "Leads");
    assert_eq!(local.userids, ["bob", "carol"]);
    assert_eq!(local.department_ids, [3]);
    // `None` lists leave the tag's members and departments as they are.
    let name_only = TagChanges {
        tags: vec![TagUpsert {
            tagid: 10,
            name: None,
            userids: None,
            department_ids: None,
        }],
        archived_tagids: Vec::new(),
    };
    let report = db
        .apply_tag_changes(T, CORP, &name_only, 5_000)
        .await
        .unwrap();
    assert_eq!(report.rows_written(), 0);
    assert_eq!(
        db.wecom_tag(T, CORP, 10).await.unwrap().unwrap().userids,
        ["bob", "carol"]
    );
}

async fn the_department_sync_leaves_tag_memberships_alone(db: Db) {
    seed(&db, T).await;
    db.apply_tag_changes(T, CORP, &tag(10, "Managers", &["Alice", "bob"], &[]), 2_000)
        .await
        .unwrap();
    // Alice moves department: her tag membership stays open.
    let changes = DirectoryChanges {
        members: vec![member("Alice", &[3])],
        ..DirectoryChanges::default()
    };
    let report = db
        .apply_directory_changes(T, CORP, &changes, 3_000)
        .await
        .unwrap();
    assert_eq!(
        (report.memberships_opened, report.memberships_closed),
        (1, 1)
    );
    assert_eq!(
        db.wecom_tag(T, CORP, 10).await.unwrap().unwrap().userids,
        ["Alice", "bob"]
    );
    // bob leaves the corp: every membership closed, the tag's too; a tag listing him does not reopen it.
    let changes = DirectoryChanges {
        left_userids: vec!["bob".to_owned()],
        ..DirectoryChanges::default()
    };
    db.apply_directory_changes(T, CORP, &changes, 4_000)
        .await
        .unwrap();
    assert_eq!(
        db.wecom_tag(T, CORP, 10).await.unwrap().unwrap().userids,
        ["Alice"]
    );
    let report = db
        .apply_tag_changes(T, CORP, &tag(10, "Managers", &["Alice", "bob"], &[]), 5_000)
        .await
        .unwrap();
    assert_eq!(report.rows_written(), 0, "{report:?}");
    assert_eq!(report.unknown_userids, ["bob"]);
}

async fn archived_tags_keep_their_rows_and_come_back(db: Db) {
    seed(&db, T).await;
    db.apply_tag_changes(T, CORP, &tag(10, "Managers", &["Alice"], &[2]), 2_000)
        .await
        .unwrap();
    let role = db.role_by_tag(T, CORP, 10).await.unwrap().unwrap();
    let archive = TagChanges {
        tags: Vec::new(),
        archived_tagids: vec![10, 77],
    };
    let report = db
        .apply_tag_changes(T, CORP, &archive, 3_000)
        .await
        .unwrap();
    assert_eq!(report.roles_archived, 1, "unknown tag 77 is ignored");
    assert_eq!(report.memberships_closed, 1);
    assert_eq!(report.inclusions_closed, 1);
    let archived = db.role_by_tag(T, CORP, 10).await.unwrap().unwrap();
    assert_eq!(archived.id, role.id);
    assert_eq!(archived.archived_at_ms, Some(3_000));
    assert!(
        db.role_members_expanded(T, role.id)
            .await
            .unwrap()
            .is_empty()
    );
    let again = db
        .apply_tag_changes(T, CORP, &archive, 4_000)
        .await
        .unwrap();
    assert_eq!(again.rows_written(), 0);

    // Back upstream: the same role, un-archived, with new memberships (the closed rows stay closed).
    let report = db
        .apply_tag_changes(T, CORP, &tag(10, "Managers", &["Alice"], &[2]), 5_000)
        .await
        .unwrap();
    assert_eq!(report.roles_updated, 1);
    assert_eq!(report.roles_created, 0);
    assert_eq!(
        (report.memberships_opened, report.inclusions_opened),
        (1, 1)
    );
    let back = db.role_by_tag(T, CORP, 10).await.unwrap().unwrap();
    assert_eq!((back.id, back.archived_at_ms), (role.id, None));
}

async fn tags_of_tenants_do_not_mix(db: Db) {
    seed(&db, T).await;
    seed(&db, "other").await;
    db.apply_tag_changes(T, CORP, &tag(10, "Managers", &["Alice"], &[2]), 2_000)
        .await
        .unwrap();
    let role = db.role_by_tag(T, CORP, 10).await.unwrap().unwrap();
    assert!(db.role_by_tag("other", CORP, 10).await.unwrap().is_none());
    assert!(db.load_tags("other", CORP).await.unwrap().is_empty());
    assert!(db.tag_of_role("other", role.id).await.unwrap().is_none());
    assert!(
        db.included_roles("other", role.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        db.role_members_expanded("other", role.id)
            .await
            .unwrap()
            .is_empty()
    );
    // The same tagid in the other tenant is its own role.
    db.apply_tag_changes("other", CORP, &tag(10, "Theirs", &["bob"], &[]), 2_000)
        .await
        .unwrap();
    let theirs = db.role_by_tag("other", CORP, 10).await.unwrap().unwrap();
    assert_ne!(theirs.id, role.id);
    assert_eq!(
        db.wecom_tag(T, CORP, 10).await.unwrap().unwrap().userids,
        ["Alice"]
    );
    let ids: BTreeSet<_> = db
        .role_members_expanded("other", theirs.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.user.tenant)
        .collect();
    assert_eq!(ids, BTreeSet::from(["other".to_owned()]));
}

// ---- migration 0003 on a populated database ----

/// A database migrated to 0002 only (the released migrations copied into a temp folder), with departments
/// whose parent ids run both ways, users, memberships (one closed) and links, then migrated to the latest.
async fn populated_0002_then_latest(url: &str, backend: &str) {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let only = tempfile::tempdir().unwrap();
    for f in ["0001_token_cache.sql", "0002_directory.sql"] {
        std::fs::copy(src.join(f), only.path().join(f)).unwrap();
    }
    let old = sqlx::migrate::Migrator::new(only.path()).await.unwrap();
    let db = Db::connect(url).await.unwrap();
    match (db.sqlite(), db.postgres()) {
        (Some(p), _) => old.run(p).await.unwrap(),
        (_, Some(p)) => old.run(p).await.unwrap(),
        _ => unreachable!(),
    }
    // Children listed before parents: department 3's role gets a lower id than its parent's.
    let changes = DirectoryChanges {
        departments: vec![
            department(3, Some(2)),
            department(2, Some(1)),
            department(1, None),
        ],
        members: vec![member("Alice", &[2, 3]), member("bob", &[3])],
        ..DirectoryChanges::default()
    };
    db.apply_directory_changes(T, CORP, &changes, 1_000)
        .await
        .unwrap();
    let changes = DirectoryChanges {
        members: vec![member("Alice", &[2])],
        ..DirectoryChanges::default()
    };
    db.apply_directory_changes(T, CORP, &changes, 2_000)
        .await
        .unwrap();
    let before = db.load_directory(T, CORP).await.unwrap();

    let report = db.migrate().await.unwrap();
    let applied: Vec<i64> = report.applied.iter().map(|m| m.version).collect();
    assert_eq!(applied[0], 3, "{applied:?}");
    assert_eq!(
        db.load_directory(T, CORP).await.unwrap(),
        before,
        "every row kept"
    );
    // The rebuilt tables still enforce their rules: references, the open-membership uniqueness.
    let alice = user_id(&db, T, "Alice").await;
    let dept2 = db.role_by_department(T, CORP, 2).await.unwrap().unwrap();
    let closed: i64 = count(
        &db,
        "SELECT COUNT(*) FROM memberships WHERE tenant = $1 AND ended_at_ms IS NOT NULL",
    )
    .await;
    assert_eq!(closed, 1, "the closed membership is kept");
    let dup = format!(
        "INSERT INTO memberships (tenant, user_id, role_id, is_leader, sort_order, is_main, started_at_ms) \
         VALUES ('{T}', {}, {}, false, 0, false, 1)",
        alice.get(),
        dept2.id.get()
    );
    assert!(exec(&db, &dup).await.is_err(), "a second open membership");
    let dangling = format!(
        "INSERT INTO memberships (tenant, user_id, role_id, is_leader, sort_order, is_main, started_at_ms) \
         VALUES ('{T}', {}, 999999, false, 0, false, 1)",
        alice.get()
    );
    assert!(
        exec(&db, &dangling).await.is_err(),
        "a membership of no role"
    );
    // And tags work on it.
    let report = db
        .apply_tag_changes(T, CORP, &tag(1, "Tagged", &["Alice", "bob"], &[3]), 3_000)
        .await
        .unwrap();
    assert_eq!((report.roles_created, report.memberships_opened), (1, 2));
    db.close().await;
}

async fn count(db: &Db, sql: &str) -> i64 {
    match (db.sqlite(), db.postgres()) {
        (Some(p), _) => sqlx::query_scalar(sql).bind(T).fetch_one(p).await.unwrap(),
        (_, Some(p)) => sqlx::query_scalar(sql).bind(T).fetch_one(p).await.unwrap(),
        _ => unreachable!(),
    }
}

async fn exec(db: &Db, sql: &str) -> Result<(), sqlx::Error> {
    match (db.sqlite(), db.postgres()) {
        (Some(p), _) => sqlx::query(sql).execute(p).await.map(|_| ()),
        (_, Some(p)) => sqlx::query(sql).execute(p).await.map(|_| ()),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn sqlite_migration_0003_keeps_a_populated_directory() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/wx.db", dir.path().display());
    populated_0002_then_latest(&url, "sqlite").await;
}

#[tokio::test]
async fn postgres_migration_0003_keeps_a_populated_directory() {
    crate::support::with_postgres(|url| async move {
        populated_0002_then_latest(&url, "postgres").await;
    })
    .await;
}
