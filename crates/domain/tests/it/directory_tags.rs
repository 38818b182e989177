//! WeCom tags mirrored into tag roles, on SQLite (and PostgreSQL when configured): after the directory sync,
//! `sync_tags` makes every simulator tag a `wecom_tag` role holding exactly the tag's users (memberships) and
//! departments (inclusions, so the expanded members include everyone in them); a second run writes nothing;
//! a simulator tag change pushes an `update_tag` event whose tag `apply_tag_change` re-reads so local equals
//! upstream again, and a replay writes nothing; a tag gone upstream is archived (never deleted) and comes
//! back un-archived; failed reads remove nothing; a dry run writes nothing.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::support::{ContactsPush, SimClock, tenant};
use domain::Db;
use domain::directory::{
    CallBudget, ChangeAction, IncrementalOptions, SyncOptions, TagSyncOptions, TagSyncReport,
    apply_contact_change, apply_tag_change, run_full_sync, sync_tags,
};
use store::RoleOrigin;
use wx_api::clock::Clock;
use wx_api::token::{MemoryTokenStore, TokenManager};
use wx_api::wecom::{AppCredentials, WecomApp, WecomClient};
use wx_crypto::{CallbackMessage, ChangeType};
use wx_sim::{RunningSim, SimConfig, Simulator, TagUpdate};

const FIXTURE: &str = include_str!("../../../wx-sim/fixtures/example.toml");

struct Env {
    sim: Simulator,
    _running: RunningSim,
    /// The contacts secret.
    app: WecomApp,
    clock: Arc<dyn Clock>,
    corpid: String,
    push: ContactsPush,
}

impl Env {
    async fn generated(cfg: SimConfig) -> Env {
        Env::start(Simulator::generate(cfg)).await
    }

    async fn fixture(toml: &str) -> Env {
        Env::start(Simulator::from_fixture_str(toml).unwrap()).await
    }

    /// Serve `sim`, and register the contacts-sync callback URL on a tiny receiver.
    async fn start(sim: Simulator) -> Env {
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
            app,
            clock,
            corpid: corp.corpid,
            push,
        }
    }

    /// The change_contact messages pushed since the last call, decrypted and verified, in order.
    async fn take_events(&self) -> Vec<CallbackMessage> {
        self.push.take(&self.sim).await
    }
}

/// Keeps the SQLite file alive and drops the throwaway PostgreSQL database when the test ends, also when
/// it panics (a shared database would carry other branches' migration state).
struct Databases {
    _dir: tempfile::TempDir,
    /// (server URL, database name)
    pg: Option<(String, String)>,
}

impl Drop for Databases {
    fn drop(&mut self) {
        if let Some((server, name)) = self.pg.take() {
            // Drop runs outside async context: a short-lived runtime on its own thread.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let admin = Db::connect(&server).await.unwrap();
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(admin.postgres().unwrap())
                        .await
                        .unwrap();
                    admin.close().await;
                });
            })
            .join();
        }
    }
}

/// A migrated SQLite file, and a fresh PostgreSQL database on the WXBRIDGE_TEST_POSTGRES_URL server when
/// it is set (required under CI=true).
async fn databases() -> (Vec<(&'static str, Db)>, Databases) {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Db::connect(&format!("sqlite://{}/wx.db", dir.path().display()))
        .await
        .unwrap();
    sqlite.migrate().await.unwrap();
    let mut dbs = vec![("sqlite", sqlite)];
    let mut guard = Databases {
        _dir: dir,
        pg: None,
    };
    match std::env::var("WXBRIDGE_TEST_POSTGRES_URL") {
        Ok(server) => {
            let name = tenant("wxb_tags").replace('-', "_");
            let admin = Db::connect(&server).await.unwrap();
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(admin.postgres().unwrap())
                .await
                .unwrap();
            admin.close().await;
            guard.pg = Some((server.clone(), name.clone()));
            let mut url = url::Url::parse(&server).unwrap();
            url.set_path(&name);
            let pg = Db::connect(url.as_str()).await.unwrap();
            pg.migrate().await.unwrap();
            dbs.push(("postgres", pg));
        }
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but WXBRIDGE_TEST_POSTGRES_URL is not set")
        }
        Err(_) => eprintln!("WXBRIDGE_TEST_POSTGRES_URL unset: tag mirror tested on SQLite only"),
    }
    (dbs, guard)
}

async fn full_sync(e: &Env, app: &WecomApp, db: &Db, t: &str) {
    let out = run_full_sync(db, t, app, e.clock.clone(), SyncOptions::default())
        .await
        .unwrap();
    assert_eq!(out.status, domain::progress::SyncStatus::Succeeded);
}

async fn tags(e: &Env, app: &WecomApp, db: &Db, t: &str, dry_run: bool) -> TagSyncReport {
    sync_tags(
        db,
        t,
        app,
        e.clock.as_ref(),
        &TagSyncOptions::default(),
        dry_run,
    )
    .await
    .unwrap()
}

fn norm(s: &str) -> String {
    s.to_lowercase()
}

/// The store's tag roles are exactly the simulator's tags: name, origin, no parent, not archived; exactly
/// the tag's users as memberships (no leader, no main) and its departments as inclusions; the expanded
/// members are the users plus everyone in those departments and below; lookups work both ways.
async fn assert_tags_match(db: &Db, t: &str, e: &Env, name: &str) {
    let snap = e.sim.directory();
    let stored = db.load_tags(t, &e.corpid).await.unwrap();
    let live: BTreeSet<i64> = stored
        .iter()
        .filter(|s| s.role.archived_at_ms.is_none())
        .map(|s| s.tagid)
        .collect();
    let want: BTreeSet<i64> = snap.tags.iter().map(|t| i64::from(t.tagid)).collect();
    assert_eq!(live, want, "{name}: live tag roles");
    assert!(!snap.tags.is_empty(), "{name}: the simulator has tags");

    for tag in &snap.tags {
        let tagid = i64::from(tag.tagid);
        let role = db
            .role_by_tag(t, &e.corpid, tagid)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{name}: no role for tag {tagid}"));
        assert_eq!(role.name, tag.tagname, "{name}: tag {tagid}");
        assert_eq!(role.origin, RoleOrigin::WecomTag);
        assert_eq!(role.parent_id, None);
        assert!(role.archived_at_ms.is_none());
        let link = db.tag_of_role(t, role.id).await.unwrap().unwrap();
        assert_eq!(
            (link.corpid.as_str(), link.tagid),
            (e.corpid.as_str(), tagid)
        );
        assert_eq!(db.department_of_role(t, role.id).await.unwrap(), None);

        let local = db.wecom_tag(t, &e.corpid, tagid).await.unwrap().unwrap();
        // Members marked left hold no memberships, tag ones included.
        let active: Vec<&String> = tag
            .users
            .iter()
            .filter(|u| {
                snap.members
                    .iter()
                    .any(|m| norm(&m.userid) == norm(u) && m.status != 5)
            })
            .collect();
        let got: BTreeSet<String> = local.userids.iter().map(|u| norm(u)).collect();
        let want: BTreeSet<String> = active.iter().map(|u| norm(u)).collect();
        assert_eq!(got, want, "{name}: users of tag {tagid}");
        let want_deps: BTreeSet<i64> = tag.departments.iter().map(|d| i64::from(*d)).collect();
        let got_deps: BTreeSet<i64> = local.department_ids.iter().copied().collect();
        assert_eq!(got_deps, want_deps, "{name}: departments of tag {tagid}");

        // The role's own members are the tag's users, as plain memberships.
        let members = db.role_members(t, role.id, false).await.unwrap();
        let mut own = BTreeSet::new();
        for m in &members {
            assert!(!m.membership.is_leader && !m.membership.is_main);
            own.insert(m.user.id);
        }
        let mut want_ids = BTreeSet::new();
        for u in active {
            let user = db
                .user_by_wecom_userid(t, &e.corpid, u)
                .await
                .unwrap()
                .unwrap();
            want_ids.insert(user.id);
            // The user's roles show the tag role with its origin.
            let roles = db.user_roles(t, user.id).await.unwrap();
            let r = roles
                .iter()
                .find(|r| r.role.id == role.id)
                .unwrap_or_else(|| panic!("{name}: {u} lacks tag {tagid} in user_roles"));
            assert_eq!(r.role.origin, RoleOrigin::WecomTag);
        }
        assert_eq!(own, want_ids, "{name}: role members of tag {tagid}");

        // Expanded: the users plus every member of the tag's departments and their sub-departments.
        let mut subtree: BTreeSet<u32> = tag.departments.iter().copied().collect();
        loop {
            let more: Vec<u32> = snap
                .departments
                .iter()
                .filter(|d| subtree.contains(&d.parentid) && !subtree.contains(&d.id))
                .map(|d| d.id)
                .collect();
            if more.is_empty() {
                break;
            }
            subtree.extend(more);
        }
        for m in &snap.members {
            if m.status != 5 && m.department.iter().any(|d| subtree.contains(d)) {
                let user = db
                    .user_by_wecom_userid(t, &e.corpid, &m.userid)
                    .await
                    .unwrap()
                    .unwrap();
                want_ids.insert(user.id);
            }
        }
        let expanded: BTreeSet<_> = db
            .role_members_expanded(t, role.id)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.user.id)
            .collect();
        assert_eq!(
            expanded, want_ids,
            "{name}: expanded members of tag {tagid}"
        );
    }
}

#[tokio::test]
async fn full_sync_mirrors_tags_exactly_and_a_second_run_writes_nothing() {
    let e = Env::generated(SimConfig::default()).await;
    let (dbs, _dir) = databases().await;
    for (name, db) in &dbs {
        let t = tenant("tags-full");
        full_sync(&e, &e.app, db, &t).await;
        let budget = Arc::new(CallBudget::new(600, 10));
        let first = sync_tags(
            db,
            &t,
            &e.app,
            e.clock.as_ref(),
            &TagSyncOptions {
                budget: Some(budget.clone()),
                ..TagSyncOptions::default()
            },
            false,
        )
        .await
        .unwrap();
        assert!(first.is_complete(), "{name}: {:?}", first.errors);
        let n = e.sim.directory().tags.len();
        assert_eq!(first.tags_seen, n);
        assert_eq!(first.tags_read, n);
        // tag/list once, tag/get per tag, every call through the budget.
        assert_eq!(first.calls, 1 + n as u64);
        assert_eq!(budget.calls(), first.calls);
        let left: BTreeSet<String> = e
            .sim
            .directory()
            .members
            .iter()
            .filter(|m| m.status == 5)
            .map(|m| norm(&m.userid))
            .collect();
        assert!(
            first
                .applied
                .unknown_userids
                .iter()
                .all(|u| left.contains(&norm(u))),
            "{name}: {:?}",
            first.applied.unknown_userids
        );
        assert!(first.applied.unknown_departments.is_empty(), "{name}");
        assert_tags_match(db, &t, &e, name).await;

        let again = tags(&e, &e.app, db, &t, false).await;
        assert!(again.is_complete());
        assert_eq!(
            again.applied.rows_written(),
            0,
            "{name}: {:?}",
            again.applied
        );
        assert!(!again.wrote());
        assert_tags_match(db, &t, &e, name).await;
    }
}

#[tokio::test]
async fn an_update_tag_event_is_applied_by_re_reading_the_tag_and_a_replay_writes_nothing() {
    let e = Env::generated(SimConfig::default()).await;
    let (dbs, _dir) = databases().await;
    for (name, db) in &dbs {
        let t = tenant("tags-event");
        full_sync(&e, &e.app, db, &t).await;
        tags(&e, &e.app, db, &t, false).await;
        e.take_events().await;

        // Change tag 1 upstream: one user in, one user out, one department in, its departments out.
        let snap = e.sim.directory();
        let tag = snap.tags.iter().find(|t| t.tagid == 1).unwrap().clone();
        let newcomer = snap
            .members
            .iter()
            .find(|m| m.status != 5 && !tag.users.iter().any(|u| norm(u) == norm(&m.userid)))
            .unwrap()
            .userid
            .clone();
        let leaver = tag.users[0].clone();
        let new_dep = snap
            .departments
            .iter()
            .find(|d| d.id != 1 && !tag.departments.contains(&d.id))
            .unwrap()
            .id;
        e.sim
            .update_tag(
                1,
                TagUpdate {
                    add_users: vec![newcomer.clone()],
                    del_users: vec![leaver.clone()],
                    add_parties: vec![new_dep],
                    del_parties: tag.departments.clone(),
                },
            )
            .unwrap();
        let events = e.take_events().await;
        assert_eq!(events.len(), 1, "{name}: one update_tag event");
        let change = events[0].change_contact().unwrap();
        assert_eq!(change.change_type(), ChangeType::UpdateTag);
        let tagid = i64::from(change.tag_id().unwrap().unwrap());
        assert_eq!(tagid, 1);

        // Through the incremental entry point, as the callback endpoint will call it.
        let outcome = apply_contact_change(
            db,
            &t,
            &e.app,
            e.clock.as_ref(),
            &change,
            &IncrementalOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(outcome.calls, 1, "{name}: one tag/get");
        let ChangeAction::Tag {
            tagid: got,
            archived,
            tag_rows: out,
        } = outcome.action.clone()
        else {
            panic!("{name}: {:?}", outcome.action)
        };
        assert_eq!((got, archived), (1, false));
        assert_eq!(out.memberships_opened, 1, "{name}: {out:?}");
        assert_eq!(out.memberships_closed, 1, "{name}: {out:?}");
        assert_eq!(out.inclusions_opened, 1, "{name}: {out:?}");
        assert_eq!(
            out.inclusions_closed,
            tag.departments.len() as u64,
            "{name}"
        );
        assert_eq!(out.roles_created + out.roles_updated, 0);
        assert!(outcome.wrote());
        assert_tags_match(db, &t, &e, name).await;
        // The leaver's membership is closed, not deleted: the user keeps no open tag membership.
        let leaver_user = db
            .user_by_wecom_userid(&t, &e.corpid, &leaver)
            .await
            .unwrap()
            .unwrap();
        let role = db.role_by_tag(&t, &e.corpid, 1).await.unwrap().unwrap();
        assert!(
            !db.user_roles(&t, leaver_user.id)
                .await
                .unwrap()
                .iter()
                .any(|r| r.role.id == role.id)
        );

        // A redelivered event: re-read, nothing differs, nothing written.
        let again = apply_contact_change(
            db,
            &t,
            &e.app,
            e.clock.as_ref(),
            &change,
            &IncrementalOptions::default(),
        )
        .await
        .unwrap();
        assert!(!again.wrote(), "{name}: {:?}", again.action);
        let opts = TagSyncOptions::default();
        let replay = apply_tag_change(db, &t, &e.app, e.clock.as_ref(), tagid, &opts, false)
            .await
            .unwrap();
        assert_eq!(
            replay.applied.rows_written(),
            0,
            "{name}: {:?}",
            replay.applied
        );
        assert!(!replay.wrote());
        // And a full tag run agrees.
        let full = tags(&e, &e.app, db, &t, false).await;
        assert_eq!(full.applied.rows_written(), 0, "{name}: {:?}", full.applied);

        // Put the tag back for the next database.
        e.sim
            .update_tag(
                1,
                TagUpdate {
                    add_users: vec![leaver],
                    del_users: vec![newcomer],
                    add_parties: tag.departments.clone(),
                    del_parties: vec![new_dep],
                },
            )
            .unwrap();
        e.take_events().await;
    }
}

#[tokio::test]
async fn a_tag_gone_upstream_is_archived_never_deleted_and_comes_back() {
    // The same corp (same ids and secrets) served twice: as the fixture says, and without tag 2.
    let start = FIXTURE.find("[[corps.tags]]\ntagid = 2").unwrap();
    let end = start + FIXTURE[start..].find("\n\n").unwrap();
    let without = format!("{}{}", &FIXTURE[..start], &FIXTURE[end + 2..]);
    let full = Env::fixture(FIXTURE).await;
    let gone = Env::fixture(&without).await;
    assert_eq!(gone.sim.directory().tags.len(), 1);
    let (dbs, _dir) = databases().await;
    for (name, db) in &dbs {
        let t = tenant("tags-gone");
        full_sync(&full, &full.app, db, &t).await;
        tags(&full, &full.app, db, &t, false).await;
        assert_tags_match(db, &t, &full, name).await;
        let role = db.role_by_tag(&t, &full.corpid, 2).await.unwrap().unwrap();
        // Tag 2 is department 3 (后端组): its expanded members are that department's.
        assert_eq!(db.included_roles(&t, role.id).await.unwrap().len(), 1);
        assert_eq!(
            db.role_members_expanded(&t, role.id).await.unwrap().len(),
            2,
            "{name}"
        );

        // A dry run shows the archive and writes nothing.
        let dry = tags(&gone, &gone.app, db, &t, true).await;
        assert_eq!(dry.archived_tagids, [2]);
        assert_eq!(dry.applied.roles_archived, 1);
        assert!(!dry.wrote());
        let still = db.role_by_tag(&t, &full.corpid, 2).await.unwrap().unwrap();
        assert!(still.archived_at_ms.is_none(), "{name}: the dry run wrote");

        let out = tags(&gone, &gone.app, db, &t, false).await;
        assert_eq!(out.archived_tagids, [2], "{name}");
        assert_eq!(out.applied.roles_archived, 1);
        assert_eq!(out.applied.inclusions_closed, 1);
        assert_tags_match(db, &t, &gone, name).await;
        let archived = db.role_by_tag(&t, &full.corpid, 2).await.unwrap().unwrap();
        assert_eq!(archived.id, role.id, "{name}: the role is kept");
        assert!(archived.archived_at_ms.is_some());
        assert!(db.included_roles(&t, role.id).await.unwrap().is_empty());
        let kept = db.wecom_tag(&t, &full.corpid, 2).await.unwrap().unwrap();
        assert!(kept.department_ids.is_empty() && kept.userids.is_empty());
        // Archived once: the next run writes nothing.
        let again = tags(&gone, &gone.app, db, &t, false).await;
        assert_eq!(
            again.applied.rows_written(),
            0,
            "{name}: {:?}",
            again.applied
        );
        assert!(again.archived_tagids.is_empty());

        // The tag is back upstream: the same role, un-archived, holding department 3 again.
        let back = tags(&full, &full.app, db, &t, false).await;
        assert_eq!(back.applied.roles_updated, 1, "{name}: {:?}", back.applied);
        assert_eq!(back.applied.roles_created, 0);
        assert_eq!(back.applied.inclusions_opened, 1);
        assert_tags_match(db, &t, &full, name).await;
        assert_eq!(
            db.role_by_tag(&t, &full.corpid, 2)
                .await
                .unwrap()
                .unwrap()
                .id,
            role.id
        );
    }
}

#[tokio::test]
async fn failed_tag_reads_remove_nothing() {
    let e = Env::fixture(FIXTURE).await;
    let (dbs, _dir) = databases().await;
    for (name, db) in &dbs {
        let t = tenant("tags-fail");
        full_sync(&e, &e.app, db, &t).await;
        tags(&e, &e.app, db, &t, false).await;
        let before = db.load_tags(&t, &e.corpid).await.unwrap();

        // Upstream drops ZhangSan from tag 1, but tag/get fails (48009, as for a tag the credential may
        // not read): the tag keeps ZhangSan locally and the run reports the failure.
        e.sim
            .update_tag(
                1,
                TagUpdate {
                    del_users: vec!["ZhangSan".into()],
                    ..TagUpdate::default()
                },
            )
            .unwrap();
        e.take_events().await;
        e.sim.inject_fault("/cgi-bin/tag/get", 48009, Some(1));
        let out = tags(&e, &e.app, db, &t, false).await;
        assert_eq!(out.errors.len(), 1, "{name}: {:?}", out.errors);
        assert_eq!(out.errors[0].errcode, Some(48009));
        assert_eq!(out.applied.rows_written(), 0, "{name}: {:?}", out.applied);
        assert_eq!(db.load_tags(&t, &e.corpid).await.unwrap(), before);

        // The incremental path: a failed read writes nothing (the event can be applied again).
        e.sim.inject_fault("/cgi-bin/tag/get", 48009, Some(1));
        let opts = TagSyncOptions::default();
        let inc = apply_tag_change(db, &t, &e.app, e.clock.as_ref(), 1, &opts, false)
            .await
            .unwrap();
        assert!(!inc.is_complete());
        assert!(!inc.wrote());
        assert_eq!(db.load_tags(&t, &e.corpid).await.unwrap(), before);

        // A failed tag/list archives nothing and writes nothing.
        e.sim.inject_fault("/cgi-bin/tag/list", 48009, Some(1));
        let out = tags(&e, &e.app, db, &t, false).await;
        assert_eq!(out.errors.len(), 1, "{name}");
        assert_eq!(out.applied.rows_written(), 0);
        assert_eq!(db.load_tags(&t, &e.corpid).await.unwrap(), before);

        // Reads work again: ZhangSan leaves the tag locally too.
        let out = tags(&e, &e.app, db, &t, false).await;
        assert!(out.is_complete(), "{name}: {:?}", out.errors);
        assert_eq!(out.applied.memberships_closed, 1);
        assert_tags_match(db, &t, &e, name).await;

        e.sim
            .update_tag(
                1,
                TagUpdate {
                    add_users: vec!["ZhangSan".into()],
                    ..TagUpdate::default()
                },
            )
            .unwrap();
        e.take_events().await;
    }
}

#[tokio::test]
async fn tag_reads_keep_to_the_budget_and_wait_out_45009() {
    // At least three tags; the simulator allows two tag/get calls per minute.
    let e = Env::generated(SimConfig::new(5, 300, 10)).await;
    let n = e.sim.directory().tags.len();
    assert!(n > 2, "{n} tags");
    e.sim
        .set_rate_limit("/cgi-bin/tag/get", 2, Duration::from_secs(60));
    let (dbs, _dir) = databases().await;
    let (name, db) = &dbs[0];
    let t = tenant("tags-rate");
    full_sync(&e, &e.app, db, &t).await;

    // Unmetered: the 45009 block windows are waited out and every tag still read.
    e.sim.reset_stats();
    let unmetered = TagSyncOptions {
        budget: None,
        max_rate_limit_waits: 10,
    };
    let out = sync_tags(db, &t, &e.app, e.clock.as_ref(), &unmetered, false)
        .await
        .unwrap();
    assert!(out.is_complete(), "{name}: {:?}", out.errors);
    assert_eq!(out.tags_read, n);
    assert!(out.rate_limit_waits > 0);
    assert!(e.sim.stats().calls_with("/cgi-bin/tag/get", 45009) > 0);
    assert_tags_match(db, &t, &e, name).await;

    // Under a budget below the simulator's limit (one call a minute): no 45009 at all.
    e.sim
        .set_rate_limit("/cgi-bin/tag/get", 2, Duration::from_secs(60));
    e.sim.reset_stats();
    let budget = TagSyncOptions {
        budget: Some(Arc::new(CallBudget::new(1, 1))),
        max_rate_limit_waits: 0,
    };
    let out = sync_tags(db, &t, &e.app, e.clock.as_ref(), &budget, false)
        .await
        .unwrap();
    assert!(out.is_complete(), "{name}: {:?}", out.errors);
    assert_eq!(out.rate_limit_waits, 0);
    assert_eq!(e.sim.stats().calls_with("/cgi-bin/tag/get", 45009), 0);
    assert_eq!(out.applied.rows_written(), 0);
}

#[tokio::test]
async fn the_full_sync_run_mirrors_tags_at_its_end() {
    let e = Env::generated(SimConfig::default()).await;
    let (dbs, _dir) = databases().await;
    for (name, db) in &dbs {
        let t = tenant("tags-run");
        // A dry run mirrors nothing.
        let dry = run_full_sync(
            db,
            &t,
            &e.app,
            e.clock.clone(),
            SyncOptions {
                dry_run: true,
                ..SyncOptions::default()
            },
        )
        .await
        .unwrap();
        let report = dry.tags.expect("a succeeded dry run previews tags");
        assert!(report.dry_run && !report.wrote());
        assert!(
            db.load_tags(&t, &e.corpid).await.unwrap().is_empty(),
            "{name}"
        );

        let out = run_full_sync(db, &t, &e.app, e.clock.clone(), SyncOptions::default())
            .await
            .unwrap();
        let report = out.tags.expect("a succeeded run mirrors tags");
        assert!(report.is_complete(), "{name}: {:?}", report.errors);
        assert_eq!(
            report.applied.roles_created,
            e.sim.directory().tags.len() as u64
        );
        assert_tags_match(db, &t, &e, name).await;

        let again = run_full_sync(db, &t, &e.app, e.clock.clone(), SyncOptions::default())
            .await
            .unwrap();
        let report = again.tags.expect("tags");
        assert_eq!(
            report.applied.rows_written(),
            0,
            "{name}: {:?}",
            report.applied
        );
        assert_eq!(again.applied, store::ApplyReport::default());
    }
}
