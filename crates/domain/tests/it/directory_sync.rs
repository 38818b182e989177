//! The full sync run against the simulator, on SQLite (and PostgreSQL when configured): the store ends up
//! matching `sim.directory()` exactly, a second run writes nothing, renames and moves keep role ids,
//! removals are soft and guarded, failed fetches remove nothing, dry runs write no directory rows, the lease
//! refuses a concurrent run, and a run killed after one chunk is completed by the next.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::support::{SimClock, databases, tenant};
use domain::directory::{PlanOptions, SyncOptions, SyncOutcome, run_full_sync};
use domain::progress::SyncStatus;
use domain::{Db, DomainError};
use wx_api::clock::Clock;
use wx_api::token::{MemoryTokenStore, TokenManager};
use wx_api::wecom::{AppCredentials, WecomApp, WecomClient};
use wx_sim::{RunningSim, SimConfig, Simulator};

/// The simulator's clock: waiting on it moves the simulator forward.
struct Env {
    sim: Simulator,
    _running: RunningSim,
    client: WecomClient,
    app: WecomApp,
    clock: Arc<dyn Clock>,
    corpid: String,
}

impl Env {
    /// One of the simulator's self-built apps by name, with its agentid.
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
}

async fn env(cfg: SimConfig) -> Env {
    let sim = Simulator::generate(cfg);
    let running = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SimClock(sim.clone()));
    let tokens = Arc::new(TokenManager::new(
        Arc::new(MemoryTokenStore::new()),
        clock.clone(),
    ));
    let client =
        WecomClient::new(wx_api::http_client().unwrap(), &running.base_url, tokens).unwrap();
    let corp = &sim.info().corps[0];
    let app = client.app(AppCredentials {
        tenant: "t".into(),
        corpid: corp.corpid.clone(),
        agentid: None,
        secret: corp.contacts_secret.clone().into(),
    });
    Env {
        client,
        corpid: corp.corpid.clone(),
        sim,
        _running: running,
        app,
        clock,
    }
}

async fn sync(e: &Env, db: &Db, tenant: &str, opts: SyncOptions) -> SyncOutcome {
    run_full_sync(db, tenant, &e.app, e.clock.clone(), opts)
        .await
        .unwrap()
}

/// The store holds exactly the simulator's directory: every department as a role with its name, parent and
/// order; every member as a user with name, position and status; and exactly their memberships with leader
/// and main flags, read back through the store's lookups.
async fn assert_matches(db: &Db, tenant: &str, e: &Env) {
    let snap = e.sim.directory();
    for d in &snap.departments {
        let role = db
            .role_by_department(tenant, &e.corpid, i64::from(d.id))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no role for department {}", d.id));
        assert_eq!(role.name, d.name, "department {}", d.id);
        assert_eq!(role.sort_order, i64::from(d.order), "department {}", d.id);
        assert!(role.archived_at_ms.is_none(), "department {}", d.id);
        let parent = match role.parent_id {
            Some(p) => {
                db.department_of_role(tenant, p)
                    .await
                    .unwrap()
                    .unwrap()
                    .department_id
            }
            None => 0,
        };
        assert_eq!(parent, i64::from(d.parentid), "department {}", d.id);
        let back = db
            .department_of_role(tenant, role.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back.department_id, i64::from(d.id));
    }
    for m in &snap.members {
        let user = db
            .user_by_wecom_userid(tenant, &e.corpid, &m.userid)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no user for {}", m.userid));
        assert_eq!(user.name, m.name, "{}", m.userid);
        assert_eq!(user.position.as_deref().unwrap_or(""), m.position);
        let status = match m.status {
            1 => store::UserStatus::Active,
            2 => store::UserStatus::Disabled,
            4 => store::UserStatus::Inactive,
            _ => store::UserStatus::Left,
        };
        assert_eq!(user.status, status, "{}", m.userid);
        let mut got = BTreeSet::new();
        // Department roles only: tag roles are the tag mirror's (directory_tags).
        let roles = db.user_roles(tenant, user.id).await.unwrap();
        for r in roles
            .into_iter()
            .filter(|r| r.role.origin == store::RoleOrigin::Wecom)
        {
            let dept = db
                .department_of_role(tenant, r.role.id)
                .await
                .unwrap()
                .unwrap()
                .department_id;
            got.insert((
                dept,
                r.membership.is_leader,
                r.membership.sort_order,
                r.membership.is_main,
            ));
        }
        let want: BTreeSet<_> = if m.status == 5 {
            BTreeSet::new()
        } else {
            m.department
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    (
                        i64::from(*d),
                        m.is_leader_in_dept.get(i).copied().unwrap_or(0) == 1,
                        i64::from(m.order.get(i).copied().unwrap_or(0)),
                        m.main_department == *d,
                    )
                })
                .collect()
        };
        assert_eq!(got, want, "memberships of {}", m.userid);
    }
    let stored = db.load_directory(tenant, &e.corpid).await.unwrap();
    assert_eq!(stored.departments.len(), snap.departments.len());
    assert_eq!(stored.members.len(), snap.members.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sync_matches_the_simulator_and_a_second_run_writes_nothing() {
    let e = env(SimConfig::new(31, 120, 12)).await;
    let (dbs, _dir) = databases("directory sync").await;
    for (name, db) in &dbs {
        let t = tenant("full");
        let first = sync(&e, db, &t, SyncOptions::default()).await;
        assert_eq!(first.status, SyncStatus::Succeeded, "{name}");
        assert_eq!(first.applied.users_created, 120, "{name}");
        assert_eq!(first.applied.roles_created, 12, "{name}");
        assert_matches(db, &t, &e).await;

        let run = db.sync_run(&t, first.run_id).await.unwrap().unwrap();
        assert_eq!(run.status, SyncStatus::Succeeded);
        assert!(!run.dry_run);
        assert_eq!(run.counters.users.created, 120);
        let events = db
            .sync_events_after(&t, first.run_id, 0, 10_000)
            .await
            .unwrap();
        assert_eq!(events.first().unwrap().payload["type"], "started");
        // Phases in run order: the fetch's two, then diff and apply.
        let phases: Vec<&str> = events
            .iter()
            .filter(|ev| ev.payload["type"] == "phase")
            .map(|ev| ev.payload["phase"].as_str().unwrap())
            .collect();
        assert_eq!(
            phases,
            ["departments", "members", "diff", "apply"],
            "{name}"
        );
        assert!(first.scope.whole_company);
        assert!(first.strategy.is_some());
        assert!(first.calls > 0);
        let last = &events.last().unwrap().payload;
        assert_eq!(last["type"], "finished", "{name}");
        assert_eq!(last["status"], "succeeded");

        let second = sync(&e, db, &t, SyncOptions::default()).await;
        assert_eq!(second.status, SyncStatus::Succeeded);
        assert!(second.plan.is_empty(), "{name}: {:?}", second.plan);
        assert_eq!(second.applied, store::ApplyReport::default(), "{name}");
        assert_eq!(second.chunks_applied, 0);
        assert_eq!(second.counters.users.unchanged, 120);
        assert_eq!(second.counters.roles.unchanged, 12);
        assert_ne!(second.run_id, first.run_id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renames_and_moves_keep_role_ids_and_a_removed_member_is_marked_left() {
    let (dbs, _dir) = databases("directory sync").await;
    for (name, db) in &dbs {
        // A fresh simulator per database: the changes below are applied to it.
        let e = env(SimConfig::new(32, 60, 10)).await;
        let t = tenant("moves");
        sync(&e, db, &t, SyncOptions::default()).await;
        let snap = e.sim.directory();
        let leaves: Vec<u32> = snap
            .departments
            .iter()
            .filter(|d| d.parentid != 0 && !snap.departments.iter().any(|c| c.parentid == d.id))
            .map(|d| d.id)
            .collect();
        let (renamed, moved) = (leaves[0], leaves[1]);
        let role = |id: u32| {
            let db = db.clone();
            let t = t.clone();
            let corpid = e.corpid.clone();
            async move {
                db.role_by_department(&t, &corpid, i64::from(id))
                    .await
                    .unwrap()
                    .unwrap()
            }
        };
        let (renamed_role, moved_role) = (role(renamed).await.id, role(moved).await.id);
        e.sim
            .update_department(
                renamed,
                wx_sim::DepartmentUpdate {
                    name: Some("改名后的部门".into()),
                    ..wx_sim::DepartmentUpdate::default()
                },
            )
            .unwrap();
        e.sim.move_department(moved, renamed).unwrap();
        let gone = snap.members[1].userid.clone();
        e.sim.remove_member(&gone).unwrap();

        let out = sync(&e, db, &t, SyncOptions::default()).await;
        assert_eq!(
            out.status,
            SyncStatus::Succeeded,
            "{name}: {:?}",
            out.reason
        );
        assert_eq!(out.applied.users_left, 1);
        assert_eq!(out.applied.roles_created, 0);
        assert_eq!(role(renamed).await.id, renamed_role);
        assert_eq!(role(renamed).await.name, "改名后的部门");
        let moved_now = role(moved).await;
        assert_eq!(moved_now.id, moved_role);
        assert_eq!(moved_now.parent_id, Some(renamed_role));

        let left = db
            .user_by_wecom_userid(&t, &e.corpid, &gone)
            .await
            .unwrap()
            .expect("a removed member's user is kept");
        assert_eq!(left.status, store::UserStatus::Left);
        assert!(db.user_roles(&t, left.id).await.unwrap().is_empty());
        // Everyone still upstream matches; the left member is no longer in the snapshot.
        let stored = db.load_directory(&t, &e.corpid).await.unwrap();
        assert_eq!(stored.members.len(), snap.members.len());
        let again = sync(&e, db, &t, SyncOptions::default()).await;
        assert!(again.plan.is_empty(), "{name}: {:?}", again.plan);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fetch_makes_the_run_partial_and_removes_nothing() {
    let (dbs, _dir) = databases("directory sync").await;
    for (name, db) in &dbs {
        let e = env(SimConfig::new(33, 60, 8)).await;
        let t = tenant("partial");
        sync(&e, db, &t, SyncOptions::default()).await;
        let gone = e.sim.directory().members[2].userid.clone();
        e.sim.remove_member(&gone).unwrap();
        e.sim.inject_fault("/cgi-bin/user/list", 60011, Some(1));
        let out = sync(&e, db, &t, SyncOptions::default()).await;
        assert_eq!(out.status, SyncStatus::Partial, "{name}");
        assert!(out.reason.as_deref().unwrap().contains("60011"), "{out:?}");
        assert_eq!(out.applied.users_left, 0);
        let user = db
            .user_by_wecom_userid(&t, &e.corpid, &gone)
            .await
            .unwrap()
            .unwrap();
        assert_ne!(user.status, store::UserStatus::Left);
        let run = db.sync_run(&t, out.run_id).await.unwrap().unwrap();
        assert_eq!(run.status, SyncStatus::Partial);
        assert!(run.error.unwrap().contains("60011"));
        let events = db
            .sync_events_after(&t, out.run_id, 0, 10_000)
            .await
            .unwrap();
        assert!(
            events.iter().any(|ev| ev.payload["type"] == "item_error"),
            "{name}: the failed fetch is an event"
        );
        // Once the fault is gone, the next run completes the removal.
        let next = sync(&e, db, &t, SyncOptions::default()).await;
        assert_eq!(next.status, SyncStatus::Succeeded);
        assert_eq!(next.applied.users_left, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_refuses_removing_more_than_a_tenth_unless_overridden() {
    let (dbs, _dir) = databases("directory sync").await;
    for (name, db) in &dbs {
        let e = env(SimConfig::new(34, 50, 6)).await;
        let t = tenant("guard");
        sync(&e, db, &t, SyncOptions::default()).await;
        let gone: Vec<String> = e.sim.directory().members[..8]
            .iter()
            .map(|m| m.userid.clone())
            .collect();
        for u in &gone {
            e.sim.remove_member(u).unwrap();
        }
        let refused = sync(&e, db, &t, SyncOptions::default()).await;
        assert_eq!(refused.status, SyncStatus::Refused, "{name}");
        assert!(refused.reason.as_deref().unwrap().contains("guard"));
        assert_eq!(refused.applied.users_left, 0);
        for u in &gone {
            let user = db
                .user_by_wecom_userid(&t, &e.corpid, u)
                .await
                .unwrap()
                .unwrap();
            assert_ne!(user.status, store::UserStatus::Left);
        }
        let allowed = sync(
            &e,
            db,
            &t,
            SyncOptions {
                plan: PlanOptions {
                    override_guard: true,
                    ..PlanOptions::default()
                },
                ..SyncOptions::default()
            },
        )
        .await;
        assert_eq!(allowed.status, SyncStatus::Succeeded, "{name}");
        assert_eq!(allowed.applied.users_left, 8);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_records_the_run_and_the_plan_but_writes_no_directory_rows() {
    let e = env(SimConfig::new(35, 40, 5)).await;
    let (dbs, _dir) = databases("directory sync").await;
    for (name, db) in &dbs {
        let t = tenant("dry");
        let out = sync(
            &e,
            db,
            &t,
            SyncOptions {
                dry_run: true,
                ..SyncOptions::default()
            },
        )
        .await;
        assert_eq!(out.status, SyncStatus::Succeeded, "{name}");
        assert!(out.dry_run);
        assert_eq!(out.plan.user_creates.len(), 40);
        assert_eq!(out.plan.role_creates.len(), 5);
        assert_eq!(out.applied, store::ApplyReport::default());
        let stored = db.load_directory(&t, &e.corpid).await.unwrap();
        assert!(
            stored.departments.is_empty() && stored.members.is_empty(),
            "{name}"
        );
        let run = db.sync_run(&t, out.run_id).await.unwrap().unwrap();
        assert!(run.dry_run);
        assert_eq!(run.counters.users.created, 40);
        let events = db
            .sync_events_after(&t, out.run_id, 0, 10_000)
            .await
            .unwrap();
        assert_eq!(events.last().unwrap().payload["type"], "finished");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_while_one_holds_the_lease_is_refused_and_the_lease_is_released_after() {
    let e = env(SimConfig::new(36, 20, 3)).await;
    let (dbs, _dir) = databases("directory sync").await;
    for (name, db) in &dbs {
        let t = tenant("lease");
        let now = e.clock.now_ms();
        assert!(
            db.try_sync_lease(&t, &e.corpid, "other-process", now, Duration::from_secs(60))
                .await
                .unwrap()
        );
        let running = db
            .create_sync_run(
                &t,
                &store::NewSyncRun {
                    corpid: e.corpid.clone(),
                    kind: store::SyncKind::Full,
                    dry_run: false,
                    started_at_ms: now,
                },
            )
            .await
            .unwrap();
        let err = run_full_sync(db, &t, &e.app, e.clock.clone(), SyncOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, DomainError::SyncRunning { .. }),
            "{name}: {err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("a sync of corp {} is already running", e.corpid)),
            "{msg}"
        );
        assert!(msg.contains(&format!("(run {})", running.id)), "{msg}");
        assert!(
            db.load_directory(&t, &e.corpid)
                .await
                .unwrap()
                .members
                .is_empty(),
            "{name}: the refused run wrote nothing"
        );

        assert!(
            db.release_sync_lease(&t, &e.corpid, "other-process")
                .await
                .unwrap()
        );
        let out = sync(&e, db, &t, SyncOptions::default()).await;
        assert_eq!(out.status, SyncStatus::Succeeded);
        // Our run released its lease: someone else can take it at once.
        assert!(
            db.try_sync_lease(
                &t,
                &e.corpid,
                "next",
                e.clock.now_ms(),
                Duration::from_secs(60)
            )
            .await
            .unwrap()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_after_one_chunk_is_completed_by_the_next() {
    let e = env(SimConfig::new(37, 95, 9)).await;
    let (dbs, _dir) = databases("directory sync").await;
    for (name, db) in &dbs {
        let t = tenant("resume");
        let killed = sync(
            &e,
            db,
            &t,
            SyncOptions {
                chunk_size: 20,
                stop_after_chunks: Some(1),
                ..SyncOptions::default()
            },
        )
        .await;
        assert_eq!(killed.status, SyncStatus::Failed, "{name}");
        assert_eq!(killed.chunks_applied, 1);
        assert_eq!(killed.applied.users_created, 20);
        assert_eq!(killed.applied.roles_created, 9);
        let stored = db.load_directory(&t, &e.corpid).await.unwrap();
        assert_eq!(stored.members.len(), 20, "{name}: whole chunks only");

        let resumed = sync(
            &e,
            db,
            &t,
            SyncOptions {
                chunk_size: 20,
                ..SyncOptions::default()
            },
        )
        .await;
        assert_eq!(resumed.status, SyncStatus::Succeeded);
        assert_eq!(resumed.applied.users_created, 75);
        assert_eq!(resumed.counters.users.unchanged, 20);
        assert_eq!(resumed.chunks_applied, 4);
        assert_matches(db, &t, &e).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withheld_fields_keep_the_values_the_bridge_already_has() {
    let e = env(SimConfig::new(38, 40, 5)).await;
    let (main, agentid) = e.named_app("main");
    let (dbs, _dir) = databases("directory sync").await;
    for (name, db) in &dbs {
        e.sim.set_restricted_fields(agentid, false);
        let t = tenant("withheld");
        sync(&e, db, &t, SyncOptions::default()).await;
        let who = e
            .sim
            .directory()
            .members
            .iter()
            .find(|m| !m.mobile.is_empty() && !m.email.is_empty())
            .unwrap()
            .clone();
        let before = db
            .user_by_wecom_userid(&t, &e.corpid, &who.userid)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(before.mobile.as_deref(), Some(who.mobile.as_str()));

        // A post-2022 app: mobile, email, avatar and gender withheld; the sync keeps what it has.
        assert!(e.sim.set_restricted_fields(agentid, true));
        let out = run_full_sync(db, &t, &main, e.clock.clone(), SyncOptions::default())
            .await
            .unwrap();
        assert_eq!(
            out.status,
            SyncStatus::Succeeded,
            "{name}: {:?}",
            out.reason
        );
        assert!(!out.plan.withheld_fields.is_empty());
        assert!(out.plan.is_empty(), "{name}: {:?}", out.plan);
        assert_eq!(out.applied, store::ApplyReport::default());
        let after = db
            .user_by_wecom_userid(&t, &e.corpid, &who.userid)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after, before, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limited_scope_app_syncs_its_view_and_a_second_run_writes_nothing() {
    let e = env(SimConfig::new(39, 150, 14)).await;
    let (limited, _) = e.named_app("limited");
    let (dbs, _dir) = databases("directory sync").await;
    for (name, db) in &dbs {
        let t = tenant("limited");
        let first = run_full_sync(db, &t, &limited, e.clock.clone(), SyncOptions::default())
            .await
            .unwrap();
        assert_eq!(
            first.status,
            SyncStatus::Succeeded,
            "{name}: {:?}",
            first.reason
        );
        assert!(first.applied.users_created > 0);
        let second = run_full_sync(db, &t, &limited, e.clock.clone(), SyncOptions::default())
            .await
            .unwrap();
        assert!(second.plan.is_empty(), "{name}: {:?}", second.plan);
        assert_eq!(second.applied, store::ApplyReport::default());
    }
}

/// Scale run for figures, by hand (nothing here asserts on time):
/// `WXBRIDGE_SYNC_SCALE=100000 cargo test --release -p domain --test it scale_full_sync -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread")]
#[ignore = "scale run for figures; slow in debug"]
async fn scale_full_sync() {
    let members: usize = std::env::var("WXBRIDGE_SYNC_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let departments = (members / 20).max(1);
    let e = env(SimConfig::new(42, members, departments)).await;
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}/wx.db", dir.path().display()))
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let opts = || SyncOptions {
        fetch: domain::directory::FetchOptions {
            calls_per_minute: 0,
            ..domain::directory::FetchOptions::default()
        },
        ..SyncOptions::default()
    };
    let t = std::time::Instant::now();
    let first = sync(&e, &db, "scale", opts()).await;
    let first_time = t.elapsed();
    assert_eq!(first.status, SyncStatus::Succeeded);
    assert_eq!(first.applied.users_created, members as u64);
    let t = std::time::Instant::now();
    let again = sync(&e, &db, "scale", opts()).await;
    let again_time = t.elapsed();
    assert!(again.plan.is_empty());
    let hwm = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .map(str::to_owned)
        })
        .unwrap_or_default();
    println!(
        "members={members} departments={departments} first_sync={first_time:?} rows={:?} chunks={} \
         resync={again_time:?} calls={} {hwm} (includes the in-process simulator)",
        first.applied, first.chunks_applied, first.calls
    );
}

/// One upstream call that outlasts the lease TTL: the run's timer keeps renewing the lease meanwhile, so
/// another holder is refused, and the run completes instead of finding its lease lost.
#[tokio::test(flavor = "multi_thread")]
async fn the_lease_is_renewed_on_a_timer_while_a_call_outlasts_its_ttl() {
    let e = env(SimConfig::new(5, 30, 3)).await;
    let (dbs, _dir) = databases("directory sync").await;
    for (name, db) in dbs {
        let t = tenant("lease-timer");
        e.sim.hold_api("/cgi-bin/user/list");
        // Real time on both sides: the lease expires by the clock the run is given.
        let clock: Arc<dyn Clock> = Arc::new(wx_api::clock::SystemClock);
        let opts = SyncOptions {
            lease_ttl: Duration::from_millis(600),
            fetch: domain::directory::FetchOptions {
                calls_per_minute: 0,
                ..domain::directory::FetchOptions::default()
            },
            ..SyncOptions::default()
        };
        let task = {
            let (db, app, t, clock) = (db.clone(), e.app.clone(), t.clone(), clock.clone());
            tokio::spawn(async move { run_full_sync(&db, &t, &app, clock, opts).await })
        };
        // Three TTLs with the fetch stuck on one call.
        tokio::time::sleep(Duration::from_millis(1_800)).await;
        let taken = db
            .try_sync_lease(
                &t,
                &e.corpid,
                "other-process",
                clock.now_ms(),
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        e.sim.release_api("/cgi-bin/user/list");
        assert!(!taken, "{name}: the lease lapsed while the run was waiting");
        let out = task.await.unwrap().unwrap();
        assert_eq!(out.status, SyncStatus::Succeeded, "{name}");
        assert_eq!(out.applied.users_created, 30, "{name}");
    }
}
