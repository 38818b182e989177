//! Incremental apply of change_contact events, on SQLite (and PostgreSQL when configured): a generated org
//! is fully synced, changed through the simulator's library API, and the encrypted change_contact callbacks
//! the simulator pushes to a registered URL are decrypted and fed one by one to `apply_contact_change`.
//! After that, a full sync must find nothing to do (the local directory is what a fresh full sync would
//! produce), renames keep the local user, deletes are soft, a redelivered event writes nothing, and fields
//! a post-2022 app does not receive keep their values.

use std::sync::Arc;

use crate::support::{ContactsPush, SimClock, databases, tenant};
use domain::Db;
use domain::directory::{
    ChangeAction, IncrementalOptions, IncrementalOutcome, SyncOptions, apply_contact_change,
    run_full_sync,
};
use wx_api::clock::Clock;
use wx_api::token::{MemoryTokenStore, TokenManager};
use wx_api::wecom::{AppCredentials, WecomApp, WecomClient};
use wx_crypto::CallbackMessage;
use wx_sim::{DepartmentUpdate, MemberUpdate, RunningSim, SimConfig, Simulator};

struct Env {
    sim: Simulator,
    _running: RunningSim,
    client: WecomClient,
    /// The contacts secret: what the full sync and most events use.
    app: WecomApp,
    clock: Arc<dyn Clock>,
    corpid: String,
    push: ContactsPush,
}

impl Env {
    async fn start(cfg: SimConfig) -> Env {
        let sim = Simulator::generate(cfg);
        let running = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let clock: Arc<dyn Clock> = Arc::new(SimClock(sim.clone()));
        let tokens = Arc::new(TokenManager::new(
            Arc::new(MemoryTokenStore::new()),
            clock.clone(),
        ));
        let client =
            WecomClient::new(wx_api::http_client().unwrap(), &running.base_url, tokens).unwrap();
        let corp = sim.info().corps[0].clone();
        let app = client.app(AppCredentials {
            tenant: "t".into(),
            corpid: corp.corpid.clone(),
            agentid: None,
            secret: corp.contacts_secret.clone().into(),
        });
        let push = ContactsPush::register(&sim).await;
        Env {
            sim,
            _running: running,
            client,
            app,
            clock,
            corpid: corp.corpid,
            push,
        }
    }

    fn named_app(&self, name: &str) -> (WecomApp, u32) {
        let corp = &self.sim.info().corps[0];
        let app = corp.apps.iter().find(|a| a.name == name).unwrap();
        let handle = self.client.app(AppCredentials {
            tenant: "t".into(),
            corpid: corp.corpid.clone(),
            agentid: Some(i64::from(app.agentid)),
            secret: app.secret.clone().into(),
        });
        (handle, app.agentid)
    }

    /// The change_contact messages pushed since the last call, decrypted and verified, in order.
    async fn take_events(&self) -> Vec<CallbackMessage> {
        let events = self.push.take(&self.sim).await;
        for msg in &events {
            assert_eq!(msg.event(), Some("change_contact"));
        }
        events
    }
}

async fn full_sync(e: &Env, db: &Db, t: &str) -> domain::directory::SyncOutcome {
    run_full_sync(db, t, &e.app, e.clock.clone(), SyncOptions::default())
        .await
        .unwrap()
}

/// A full sync now finds nothing to change: the incremental applies left exactly what it would produce.
async fn assert_full_sync_agrees(e: &Env, db: &Db, t: &str, name: &str) {
    let out = full_sync(e, db, t).await;
    assert!(
        out.plan.is_empty(),
        "{name}: a full sync still plans {:?}",
        out.plan
    );
    assert_eq!(out.applied, store::ApplyReport::default(), "{name}");
    // And the simulator agrees on every department and member that exists upstream.
    let snap = e.sim.directory();
    let stored = db.load_directory(t, &e.corpid).await.unwrap();
    for d in &snap.departments {
        let role = db
            .role_by_department(t, &e.corpid, i64::from(d.id))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{name}: no role for department {}", d.id));
        assert_eq!(role.name, d.name, "{name}: department {}", d.id);
        assert!(role.archived_at_ms.is_none());
    }
    for m in &snap.members {
        let user = db
            .user_by_wecom_userid(t, &e.corpid, &m.userid)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{name}: no user for {}", m.userid));
        assert_eq!(user.name, m.name, "{name}: {}", m.userid);
        // Department roles only: tag roles are the tag mirror's (directory_tags).
        let roles = db.user_roles(t, user.id).await.unwrap();
        let departments = roles
            .iter()
            .filter(|r| r.role.origin == store::RoleOrigin::Wecom)
            .count();
        assert_eq!(departments, m.department.len(), "{name}: {}", m.userid);
    }
    assert!(stored.departments.len() >= snap.departments.len());
}

async fn apply(
    e: &Env,
    app: &WecomApp,
    db: &Db,
    t: &str,
    msg: &CallbackMessage,
) -> IncrementalOutcome {
    let change = msg.change_contact().expect("a change_contact event");
    apply_contact_change(
        db,
        t,
        app,
        e.clock.as_ref(),
        &change,
        &IncrementalOptions::default(),
    )
    .await
    .unwrap_or_else(|err| panic!("applying {}: {err}", msg.plaintext()))
}

async fn apply_all(
    e: &Env,
    db: &Db,
    t: &str,
    events: &[CallbackMessage],
) -> Vec<IncrementalOutcome> {
    let mut out = Vec::new();
    for msg in events {
        out.push(apply(e, &e.app, db, t, msg).await);
    }
    out
}

fn member(userid: &str, name: &str, departments: &[u32]) -> wx_sim::Member {
    serde_json::from_value(serde_json::json!({
        "userid": userid,
        "name": name,
        "department": departments,
        "order": departments.iter().map(|_| 7).collect::<Vec<_>>(),
        "is_leader_in_dept": departments.iter().enumerate().map(|(i, _)| u8::from(i == 0)).collect::<Vec<_>>(),
        "position": "工程师",
        "mobile": "13900000001",
        "email": "new.member@example.com",
        "gender": "2",
        "status": 1,
    }))
    .unwrap()
}

fn department(id: u32, name: &str, parentid: u32) -> wx_sim::Department {
    wx_sim::Department {
        id,
        name: name.into(),
        name_en: String::new(),
        parentid,
        order: 3,
        department_leader: Vec::new(),
    }
}

/// Leaf departments (no sub-department) below the root, in id order.
fn leaves(e: &Env) -> Vec<u32> {
    let snap = e.sim.directory();
    snap.departments
        .iter()
        .filter(|d| d.parentid != 0 && !snap.departments.iter().any(|c| c.parentid == d.id))
        .map(|d| d.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_and_department_events_converge_to_what_a_full_sync_produces() {
    let (dbs, _dir) = databases("incremental apply").await;
    for (name, db) in &dbs {
        let e = Env::start(SimConfig::new(51, 60, 10)).await;
        let t = tenant("incr");
        full_sync(&e, db, &t).await;
        let leaves = leaves(&e);
        let (renamed, moved, target) = (leaves[0], leaves[1], leaves[2]);
        let role = |id: u32| {
            let db = db.clone();
            let t = t.clone();
            let corpid = e.corpid.clone();
            async move {
                db.role_by_department(&t, &corpid, i64::from(id))
                    .await
                    .unwrap()
            }
        };
        let (renamed_role, moved_role) = (
            role(renamed).await.unwrap().id,
            role(moved).await.unwrap().id,
        );

        // Departments: create (under a leaf), rename, move, create-then-delete.
        e.sim
            .add_department(department(9001, "新部门", target))
            .unwrap();
        e.sim
            .update_department(
                renamed,
                DepartmentUpdate {
                    name: Some("改名后的部门".into()),
                    order: Some(42),
                    ..DepartmentUpdate::default()
                },
            )
            .unwrap();
        e.sim.move_department(moved, renamed).unwrap();
        e.sim
            .add_department(department(9002, "临时部门", 1))
            .unwrap();
        let first = e.take_events().await;
        let mut outcomes = apply_all(&e, db, &t, &first).await;
        assert!(role(9002).await.is_some(), "{name}");
        e.sim.remove_department(9002).unwrap();
        // Members: create in the new department (leader there), update fields and memberships, delete.
        e.sim
            .add_member(member("NewMember", "新成员", &[9001, target]))
            .unwrap();
        let snap = e.sim.directory();
        let changed = snap.members[3].userid.clone();
        e.sim
            .update_member(
                &changed,
                MemberUpdate {
                    name: Some("改名的人".into()),
                    position: Some("总监".into()),
                    department: Some(vec![renamed, 9001]),
                    order: Some(vec![5, 6]),
                    is_leader_in_dept: Some(vec![1, 0]),
                    main_department: Some(9001),
                    status: Some(2),
                    ..MemberUpdate::default()
                },
            )
            .unwrap();
        let gone = snap.members[5].userid.clone();
        e.sim.remove_member(&gone).unwrap();

        let second = e.take_events().await;
        outcomes.extend(apply_all(&e, db, &t, &second).await);
        let events: Vec<CallbackMessage> = first.into_iter().chain(second).collect();
        let kinds: Vec<&str> = events.iter().map(|m| m.change_type().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "create_party",
                "update_party",
                "update_party",
                "create_party",
                "delete_party",
                "create_user",
                "update_user",
                "delete_user"
            ],
            "{name}"
        );
        assert_eq!(
            outcomes[0].applied.roles_created, 1,
            "{name}: {:?}",
            outcomes[0]
        );
        assert_eq!(
            outcomes[0].action,
            ChangeAction::Department {
                department_id: 9001
            }
        );
        assert_eq!(outcomes[1].applied.roles_updated, 1, "{name}");
        assert_eq!(
            outcomes[4].action,
            ChangeAction::DepartmentArchived {
                department_id: 9002
            }
        );
        assert_eq!(outcomes[4].applied.roles_archived, 1);
        assert_eq!(
            outcomes[5].applied.users_created, 1,
            "{name}: {:?}",
            outcomes[5]
        );
        assert_eq!(outcomes[5].applied.memberships_opened, 2);
        assert!(outcomes[6].wrote(), "{name}");
        assert!(matches!(
            &outcomes[7].action,
            ChangeAction::MemberLeft { userid, user_id: Some(_) } if *userid == gone
        ));
        assert_eq!(outcomes[7].applied.users_left, 1);

        // Renames and moves keep the role; the deleted department's role is archived, not deleted.
        let r = role(renamed).await.unwrap();
        assert_eq!(
            (r.id, r.name.as_str(), r.sort_order),
            (renamed_role, "改名后的部门", 42)
        );
        let m = role(moved).await.unwrap();
        assert_eq!((m.id, m.parent_id), (moved_role, Some(renamed_role)));
        assert!(role(9002).await.unwrap().archived_at_ms.is_some());
        let left = db
            .user_by_wecom_userid(&t, &e.corpid, &gone)
            .await
            .unwrap()
            .expect("a deleted member's user is kept");
        assert_eq!(left.status, store::UserStatus::Left);
        assert!(db.user_roles(&t, left.id).await.unwrap().is_empty());
        let u = db
            .user_by_wecom_userid(&t, &e.corpid, &changed)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(u.status, store::UserStatus::Disabled);
        let main: Vec<_> = db
            .user_roles(&t, u.id)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.membership.is_main)
            .collect();
        assert_eq!(main.len(), 1);
        assert_eq!(main[0].role.id, role(9001).await.unwrap().id);

        // WeCom retries callbacks: every event again, in order, writes nothing.
        let again = apply_all(&e, db, &t, &events).await;
        for (msg, out) in events.iter().zip(&again) {
            assert!(
                !out.wrote(),
                "{name}: replaying {} wrote {:?}",
                msg.plaintext(),
                out.applied
            );
            assert!(out.plan.is_empty(), "{name}: {:?}", out.plan);
        }
        assert_full_sync_agrees(&e, db, &t, name).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_userid_rename_keeps_the_local_user_and_its_lookups() {
    let (dbs, _dir) = databases("incremental apply").await;
    for (name, db) in &dbs {
        let e = Env::start(SimConfig::new(52, 40, 6)).await;
        let t = tenant("rename");
        full_sync(&e, db, &t).await;
        let who = e
            .sim
            .directory()
            .members
            .iter()
            .find(|m| !m.mobile.is_empty() && m.status == 1)
            .unwrap()
            .clone();
        let before = db
            .user_by_wecom_userid(&t, &e.corpid, &who.userid)
            .await
            .unwrap()
            .unwrap();
        let roles_before = db.user_roles(&t, before.id).await.unwrap();
        e.sim
            .update_member(
                &who.userid,
                MemberUpdate {
                    new_userid: Some("renamed.user".into()),
                    position: Some("改过名的职位".into()),
                    ..MemberUpdate::default()
                },
            )
            .unwrap();
        let events = e.take_events().await;
        assert_eq!(events.len(), 1);
        let change = events[0].change_contact().unwrap();
        assert_eq!(change.new_user_id(), Some("renamed.user"));
        let out = apply(&e, &e.app, db, &t, &events[0]).await;
        assert_eq!(
            out.action,
            ChangeAction::Member {
                userid: "renamed.user".into(),
                user_id: Some(before.id.get()),
                renamed_from: Some(who.userid.clone()),
            },
            "{name}"
        );
        assert_eq!(out.applied.userids_renamed, 1);
        assert_eq!(out.applied.users_created, 0);
        assert_eq!(out.applied.users_updated, 1);

        let after = db
            .user_by_wecom_userid(&t, &e.corpid, "renamed.user")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after.id, before.id, "{name}: the same local user");
        assert_eq!(after.position.as_deref(), Some("改过名的职位"));
        assert!(
            db.user_by_wecom_userid(&t, &e.corpid, &who.userid)
                .await
                .unwrap()
                .is_none()
        );
        let links = db.wecom_links_of_user(&t, after.id).await.unwrap();
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].userid, "renamed.user");
        let by_mobile = db.users_by_mobile(&t, &who.mobile, 10).await.unwrap();
        assert!(by_mobile.iter().any(|u| u.id == before.id));
        assert_eq!(db.user(&t, before.id).await.unwrap().unwrap().id, before.id);
        let roles_after = db.user_roles(&t, after.id).await.unwrap();
        assert_eq!(
            roles_after
                .iter()
                .map(|r| r.membership.id)
                .collect::<Vec<_>>(),
            roles_before
                .iter()
                .map(|r| r.membership.id)
                .collect::<Vec<_>>(),
            "{name}: memberships are the same rows"
        );

        // Redelivered: the link already has the new userid, nothing is written.
        let again = apply(&e, &e.app, db, &t, &events[0]).await;
        assert!(!again.wrote(), "{name}: {:?}", again.applied);
        assert_eq!(
            again.action,
            ChangeAction::Member {
                userid: "renamed.user".into(),
                user_id: Some(before.id.get()),
                renamed_from: None,
            }
        );
        assert_full_sync_agrees(&e, db, &t, name).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withheld_fields_do_not_blank_the_values_the_bridge_has() {
    let (dbs, _dir) = databases("incremental apply").await;
    for (name, db) in &dbs {
        let e = Env::start(SimConfig::new(53, 30, 5)).await;
        let (main, agentid) = e.named_app("main");
        let t = tenant("withheld");
        full_sync(&e, db, &t).await;
        let who = e
            .sim
            .directory()
            .members
            .iter()
            .find(|m| !m.mobile.is_empty() && !m.email.is_empty() && !m.avatar.is_empty())
            .unwrap()
            .clone();
        let before = db
            .user_by_wecom_userid(&t, &e.corpid, &who.userid)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(before.mobile.as_deref(), Some(who.mobile.as_str()));

        // A post-2022 app reads the member: no mobile, email, avatar, gender.
        assert!(e.sim.set_restricted_fields(agentid, true));
        e.sim
            .update_member(
                &who.userid,
                MemberUpdate {
                    position: Some("新职位".into()),
                    ..MemberUpdate::default()
                },
            )
            .unwrap();
        let events = e.take_events().await;
        assert_eq!(events.len(), 1);
        let out = apply(&e, &main, db, &t, &events[0]).await;
        assert!(
            !out.plan.withheld_fields.is_empty(),
            "{name}: {:?}",
            out.plan
        );
        assert_eq!(out.applied.users_updated, 1);
        let after = db
            .user_by_wecom_userid(&t, &e.corpid, &who.userid)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after.position.as_deref(), Some("新职位"));
        assert_eq!(after.mobile, before.mobile, "{name}");
        assert_eq!(after.email, before.email);
        assert_eq!(after.avatar, before.avatar);
        assert_eq!(after.gender, before.gender);
        let again = apply(&e, &main, db, &t, &events[0]).await;
        assert!(!again.wrote(), "{name}: {:?}", again.applied);
        e.sim.set_restricted_fields(agentid, false);
        assert_full_sync_agrees(&e, db, &t, name).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_out_of_order_converge_to_upstream_truth() {
    let (dbs, _dir) = databases("incremental apply").await;
    for (name, db) in &dbs {
        let e = Env::start(SimConfig::new(54, 30, 5)).await;
        let t = tenant("order");
        full_sync(&e, db, &t).await;
        let dept = leaves(&e)[0];
        e.sim
            .add_member(member("Late", "迟到的人", &[dept]))
            .unwrap();
        e.sim
            .update_member(
                "Late",
                MemberUpdate {
                    position: Some("经理".into()),
                    ..MemberUpdate::default()
                },
            )
            .unwrap();
        let events = e.take_events().await;
        assert_eq!(events.len(), 2);
        // The create was lost; the update alone creates the member as upstream has it now.
        let out = apply(&e, &e.app, db, &t, &events[1]).await;
        assert_eq!(out.applied.users_created, 1, "{name}: {:?}", out);
        let late = db
            .user_by_wecom_userid(&t, &e.corpid, "Late")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(late.position.as_deref(), Some("经理"));
        assert_eq!(late.mobile.as_deref(), Some("13900000001"));
        // The create arrives late: nothing left to write.
        let out = apply(&e, &e.app, db, &t, &events[0]).await;
        assert!(!out.wrote(), "{name}: {:?}", out.applied);

        // The member is deleted upstream but the delete is not delivered yet: a stale update re-reads,
        // gets 60111 and marks the member left, as a full sync would.
        e.sim.remove_member("Late").unwrap();
        let delete = e.take_events().await;
        let out = apply(&e, &e.app, db, &t, &events[1]).await;
        assert!(
            matches!(out.action, ChangeAction::MemberLeft { .. }),
            "{name}: {out:?}"
        );
        assert_eq!(out.applied.users_left, 1);
        let out = apply(&e, &e.app, db, &t, &delete[0]).await;
        assert!(!out.wrote());

        // An event about a member the bridge never held and upstream no longer has: ignored.
        e.sim.add_member(member("Ghost", "幽灵", &[dept])).unwrap();
        e.sim.remove_member("Ghost").unwrap();
        let ghost = e.take_events().await;
        let out = apply(&e, &e.app, db, &t, &ghost[0]).await;
        assert!(
            matches!(out.action, ChangeAction::Ignored { .. }),
            "{out:?}"
        );

        // A member event arrives before the create_party events of its department and that department's
        // parent: both are read (the parent chain) and created with the member.
        e.sim
            .add_department(department(9101, "上级新部门", 1))
            .unwrap();
        e.sim
            .add_department(department(9102, "下级新部门", 9101))
            .unwrap();
        e.sim
            .add_member(member("Early", "早到的人", &[9102]))
            .unwrap();
        let early = e.take_events().await;
        assert_eq!(early.len(), 3);
        let out = apply(&e, &e.app, db, &t, &early[2]).await;
        assert_eq!(out.applied.roles_created, 2, "{name}: {out:?}");
        assert_eq!(out.applied.users_created, 1);
        let child = db
            .role_by_department(&t, &e.corpid, 9102)
            .await
            .unwrap()
            .unwrap();
        let parent = db
            .role_by_department(&t, &e.corpid, 9101)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(child.parent_id, Some(parent.id));
        for msg in &early[..2] {
            let out = apply(&e, &e.app, db, &t, msg).await;
            assert!(!out.wrote(), "{name}: {:?}", out.applied);
        }
        assert_full_sync_agrees(&e, db, &t, name).await;
    }
}
