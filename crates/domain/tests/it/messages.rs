//! Message push against the simulator, on SQLite (and PostgreSQL when configured): a message to a role
//! reaches exactly the department's members (expanded) or its subtree (`toparty`), invalid recipients come
//! back as local ids (resolution and WeCom's `invaliduser`), an idempotency key replays and conflicts,
//! 1,200 users go out in two calls, recall reaches the simulator, 45009 gives the message back without
//! counting an attempt, and two workers never claim the same message.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::support::{SimEnv, databases, tenant as unique};
use domain::Db;
use domain::messages::{
    self, MessageContent, MessageError, OutboxWorker, Recipients, RoleTarget, SendRequest,
    WorkerOptions,
};
use store::{AppKind, NewWechatIdentity, UserFields, UserStatus};
use wx_api::clock::SystemClock;
use wx_sim::{SimConfig, Simulator};

/// The simulator serving, and a configuration for it whose tenant has a name no other run uses (a shared
/// PostgreSQL database then needs no cleanup).
async fn env(members: usize, departments: usize) -> SimEnv {
    let sim = Simulator::generate(SimConfig::new(11, members, departments));
    SimEnv::start(sim, "msg", Arc::new(SystemClock), |_| {}).await
}

fn text(key: &str, to: Recipients, content: &str) -> SendRequest {
    SendRequest {
        app: "main".into(),
        idempotency_key: key.into(),
        to,
        message: MessageContent::Text {
            content: content.into(),
        },
        safe: None,
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Run a worker until nothing is due.
async fn drain(e: &SimEnv, db: &Db) {
    let worker = OutboxWorker::new(db.clone(), e.tenants.clone(), WorkerOptions::default());
    while worker.run_once().await.unwrap() > 0 {}
}

async fn local_user(e: &SimEnv, db: &Db, userid: &str) -> i64 {
    db.user_by_wecom_userid(&e.key, &e.corpid, userid)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{userid} not synced"))
        .id
        .get()
}

/// A department with members and sub-departments that themselves have members.
fn department_with_subtree(sim: &Simulator) -> (u32, BTreeSet<String>, BTreeSet<String>) {
    let snap = sim.directory();
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for d in &snap.departments {
        if d.id != 1 {
            children.entry(d.parentid).or_default().push(d.id);
        }
    }
    let direct = |id: u32| -> BTreeSet<String> {
        snap.members
            .iter()
            .filter(|m| m.department.contains(&id))
            .map(|m| m.userid.clone())
            .collect()
    };
    for d in snap.departments.iter().filter(|d| d.id != 1) {
        let mut subtree = vec![d.id];
        let mut i = 0;
        while i < subtree.len() {
            subtree.extend(children.get(&subtree[i]).cloned().unwrap_or_default());
            i += 1;
        }
        let own = direct(d.id);
        let all: BTreeSet<String> = subtree.iter().flat_map(|id| direct(*id)).collect();
        if !own.is_empty() && all.len() > own.len() {
            return (d.id, own, all);
        }
    }
    panic!("no department with members below it");
}

fn last_sent(sim: &Simulator) -> wx_sim::SentMessage {
    sim.stats().messages.last().cloned().expect("nothing sent")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_message_reaches_the_departments_members_or_its_subtree() {
    let e = env(80, 12).await;
    let (dept, own, subtree) = department_with_subtree(&e.sim);
    let (dbs, _dir) = databases("messages").await;
    for (name, db) in &dbs {
        e.sync(db).await;
        let role = db
            .role_by_department(&e.key, &e.corpid, i64::from(dept))
            .await
            .unwrap()
            .unwrap();

        // Without sub-roles: expanded to the role's own members, sent as touser.
        let to = Recipients {
            roles: vec![RoleTarget {
                id: role.id.get(),
                sub_roles: false,
            }],
            ..Recipients::default()
        };
        let accepted = messages::accept(db, e.tenant(), &text(&unique("own"), to, "hi"), now())
            .await
            .unwrap();
        assert!(accepted.created);
        drain(&e, db).await;
        let sent = last_sent(&e.sim);
        let got: BTreeSet<String> = sent.recipients.iter().cloned().collect();
        assert_eq!(got, own, "{name}: direct members only");
        assert!(sent.body.get("toparty").is_none(), "{name}");
        let view = messages::view(
            db,
            db.outbox_message(&e.key, accepted.id)
                .await
                .unwrap()
                .unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(view.status, "sent", "{name}: {view:?}");
        assert_eq!(view.calls.len(), 1);
        assert_eq!(view.calls[0].msgid.as_deref(), Some(sent.msgid.as_str()));
        assert!(view.invalid_recipients.is_empty(), "{name}: {view:?}");

        // With sub-roles: the department itself as toparty; WeCom delivers to the subtree.
        let to = Recipients {
            roles: vec![RoleTarget {
                id: role.id.get(),
                sub_roles: true,
            }],
            ..Recipients::default()
        };
        messages::accept(
            db,
            e.tenant(),
            &text(&unique("sub"), to, "all of you"),
            now(),
        )
        .await
        .unwrap();
        drain(&e, db).await;
        let sent = last_sent(&e.sim);
        assert_eq!(
            sent.body.get("toparty").and_then(|v| v.as_str()),
            Some(dept.to_string().as_str()),
            "{name}"
        );
        let got: BTreeSet<String> = sent.recipients.iter().cloned().collect();
        assert_eq!(got, subtree, "{name}: the whole subtree");

        // An unknown role is refused before anything is stored.
        let to = Recipients {
            roles: vec![RoleTarget {
                id: 987_654_321,
                sub_roles: false,
            }],
            ..Recipients::default()
        };
        let err = messages::accept(db, e.tenant(), &text(&unique("x"), to, "x"), now())
            .await
            .unwrap_err();
        assert!(
            matches!(err, MessageError::UnknownRole(987_654_321)),
            "{err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_recipients_come_back_as_local_ids() {
    let e = env(40, 6).await;
    let (dbs, _dir) = databases("messages").await;
    let members: Vec<String> = e
        .sim
        .directory()
        .members
        .iter()
        .map(|m| m.userid.clone())
        .collect();
    for (i, (name, db)) in dbs.iter().enumerate() {
        e.sync(db).await;
        let good = local_user(&e, db, &members[0]).await;
        // Synced, then gone upstream: still linked locally, so WeCom answers invaliduser.
        let gone_userid = members[1 + i].clone();
        let gone = local_user(&e, db, &gone_userid).await;
        e.sim.remove_member(&gone_userid).unwrap();
        // A WeChat-only user has no WeCom link at all.
        let wechat_only = db
            .create_wechat_user(
                &e.key,
                &UserFields {
                    name: "Visitor".into(),
                    mobile: None,
                    email: None,
                    avatar: None,
                    position: None,
                    gender: None,
                    status: UserStatus::Active,
                },
                &NewWechatIdentity {
                    appid: "wxappid".into(),
                    app_kind: AppKind::OfficialAccount,
                    openid: unique("openid"),
                    unionid: None,
                    nickname: None,
                    avatar: None,
                },
                now(),
            )
            .await
            .unwrap()
            .user_id
            .get();
        let unknown = 987_654_321;
        let to = Recipients {
            users: vec![good, gone, wechat_only, unknown],
            ..Recipients::default()
        };
        let accepted = messages::accept(db, e.tenant(), &text(&unique("inv"), to, "hello"), now())
            .await
            .unwrap();
        drain(&e, db).await;
        let sent = last_sent(&e.sim);
        assert_eq!(sent.recipients, vec![members[0].clone()], "{name}");
        assert_eq!(sent.invaliduser, vec![gone_userid.to_lowercase()], "{name}");

        let view = messages::view(
            db,
            db.outbox_message(&e.key, accepted.id)
                .await
                .unwrap()
                .unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(view.status, "partial", "{name}: {view:?}");
        let invalid: BTreeSet<(String, i64, String)> = view
            .invalid_recipients
            .iter()
            .map(|r| (r.kind.clone(), r.id, r.reason.clone()))
            .collect();
        let expected: BTreeSet<(String, i64, String)> = [
            ("user".to_owned(), gone, "invaliduser".to_owned()),
            ("user".to_owned(), wechat_only, "no_wecom_link".to_owned()),
            ("user".to_owned(), unknown, "unknown_user".to_owned()),
        ]
        .into_iter()
        .collect();
        assert_eq!(invalid, expected, "{name}");

        // Every recipient invalid upstream (81013): the call is `invalid`, the message failed, and the
        // targets still map back.
        let to = Recipients {
            users: vec![gone],
            ..Recipients::default()
        };
        let accepted = messages::accept(db, e.tenant(), &text(&unique("none"), to, "x"), now())
            .await
            .unwrap();
        drain(&e, db).await;
        let view = messages::view(
            db,
            db.outbox_message(&e.key, accepted.id)
                .await
                .unwrap()
                .unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(view.status, "failed", "{name}: {view:?}");
        assert_eq!(view.calls[0].status, "invalid");
        assert_eq!(view.invalid_recipients.len(), 1);
        assert_eq!(view.invalid_recipients[0].id, gone);
        assert!(
            view.error.as_deref().unwrap_or("").contains("81013"),
            "{view:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_replays_the_same_request_and_refuses_another() {
    let e = env(20, 4).await;
    let (dbs, _dir) = databases("messages").await;
    let userid = e.sim.directory().members[0].userid.clone();
    for (name, db) in &dbs {
        e.sync(db).await;
        let user = local_user(&e, db, &userid).await;
        let key = unique("idem");
        let to = Recipients {
            users: vec![user],
            ..Recipients::default()
        };
        let first = messages::accept(db, e.tenant(), &text(&key, to.clone(), "once"), now())
            .await
            .unwrap();
        let again = messages::accept(db, e.tenant(), &text(&key, to.clone(), "once"), now())
            .await
            .unwrap();
        assert_eq!(again.id, first.id, "{name}");
        assert!(first.created && !again.created, "{name}");
        let err = messages::accept(db, e.tenant(), &text(&key, to.clone(), "changed"), now())
            .await
            .unwrap_err();
        assert!(
            matches!(err, MessageError::KeyReused { id } if id == first.id),
            "{name}: {err}"
        );
        let before = e.sim.stats().messages.len();
        drain(&e, db).await;
        // A replay after sending still answers the same id, and nothing is sent twice.
        let late = messages::accept(db, e.tenant(), &text(&key, to, "once"), now())
            .await
            .unwrap();
        assert_eq!(late.id, first.id);
        drain(&e, db).await;
        assert_eq!(e.sim.stats().messages.len(), before + 1, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twelve_hundred_users_go_out_in_two_calls_and_are_recalled() {
    let e = env(1200, 10).await;
    let (dbs, _dir) = databases("messages").await;
    let userids: Vec<String> = e
        .sim
        .directory()
        .members
        .iter()
        .map(|m| m.userid.clone())
        .collect();
    assert_eq!(userids.len(), 1200);
    for (name, db) in &dbs {
        e.sync(db).await;
        let mut users = Vec::new();
        for u in &userids {
            users.push(local_user(&e, db, u).await);
        }
        let to = Recipients {
            users,
            ..Recipients::default()
        };
        let before = e.sim.stats().messages.len();
        let accepted = messages::accept(db, e.tenant(), &text(&unique("big"), to, "all"), now())
            .await
            .unwrap();
        drain(&e, db).await;
        let sent: Vec<wx_sim::SentMessage> = e.sim.stats().messages[before..].to_vec();
        let sizes: Vec<usize> = sent.iter().map(|m| m.recipients.len()).collect();
        assert_eq!(sizes, vec![1000, 200], "{name}");
        let reached: BTreeSet<String> = sent
            .iter()
            .flat_map(|m| m.recipients.iter().cloned())
            .collect();
        assert_eq!(reached, userids.iter().cloned().collect(), "{name}");
        let view = messages::view(
            db,
            db.outbox_message(&e.key, accepted.id)
                .await
                .unwrap()
                .unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(view.status, "sent", "{name}");
        assert_eq!(view.calls.len(), 2);

        let recalled = messages::recall(db, e.tenant(), accepted.id, now())
            .await
            .unwrap();
        assert_eq!(recalled.len(), 2, "{name}");
        assert!(
            recalled.iter().all(|r| r.result == "recalled"),
            "{recalled:?}"
        );
        let stats = e.sim.stats();
        for m in &sent {
            let now_m = stats.messages.iter().find(|x| x.msgid == m.msgid).unwrap();
            assert!(now_m.recalled, "{name}: {} not recalled", m.msgid);
        }
        let again = messages::recall(db, e.tenant(), accepted.id, now())
            .await
            .unwrap();
        assert!(
            again.iter().all(|r| r.result == "already_recalled"),
            "{again:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_gives_the_message_back_and_claims_never_overlap() {
    let e = env(10, 3).await;
    let (dbs, _dir) = databases("messages").await;
    let userid = e.sim.directory().members[0].userid.clone();
    for (name, db) in &dbs {
        e.sync(db).await;
        let user = local_user(&e, db, &userid).await;
        let to = Recipients {
            users: vec![user],
            ..Recipients::default()
        };
        // 45009: nothing sent, the message queued again for after the window, no attempt counted.
        e.sim.inject_fault("/cgi-bin/message/send", 45009, Some(1));
        let before = e.sim.stats().messages.len();
        let accepted = messages::accept(db, e.tenant(), &text(&unique("rl"), to, "later"), now())
            .await
            .unwrap();
        let worker = OutboxWorker::new(db.clone(), e.tenants.clone(), WorkerOptions::default());
        assert!(worker.run_once().await.unwrap() >= 1);
        let row = db
            .outbox_message(&e.key, accepted.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.status, store::OutboxStatus::Queued, "{name}");
        assert_eq!(row.attempts, 0, "{name}");
        assert!(row.next_attempt_at_ms > now() + 30_000, "{name}: {row:?}");
        // 45009 itself, or (PostgreSQL pass) the block window the SQLite pass opened on this client.
        let error = row.error.clone().unwrap_or_default();
        assert!(
            error.contains("45009") || error.contains("rate limited"),
            "{row:?}"
        );
        assert_eq!(e.sim.stats().messages.len(), before, "{name}");
        // Not due yet: a second pass claims nothing of it.
        worker.run_once().await.unwrap();
        let row = db
            .outbox_message(&e.key, accepted.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.status, store::OutboxStatus::Queued, "{name}");

        // Claims: two owners split the due messages; an expired lease hands them to a third.
        let mut ids = Vec::new();
        for i in 0..6 {
            let to = Recipients {
                users: vec![user],
                ..Recipients::default()
            };
            let a = messages::accept(
                db,
                e.tenant(),
                &text(&unique(&format!("c{i}")), to, "c"),
                now(),
            )
            .await
            .unwrap();
            ids.push(a.id);
        }
        let t = now() + 1;
        let a = db
            .claim_outbox_messages(&e.key, "owner-a", t, t + 60_000, 3)
            .await
            .unwrap();
        let b = db
            .claim_outbox_messages(&e.key, "owner-b", t, t + 60_000, 100)
            .await
            .unwrap();
        let a_ids: BTreeSet<i64> = a.iter().map(|m| m.id).collect();
        let b_ids: BTreeSet<i64> = b.iter().map(|m| m.id).collect();
        assert!(a_ids.is_disjoint(&b_ids), "{name}");
        for id in &ids {
            assert!(
                a_ids.contains(id) || b_ids.contains(id),
                "{name}: {id} unclaimed"
            );
        }
        let c = db
            .claim_outbox_messages(&e.key, "owner-c", t + 60_001, t + 120_000, 100)
            .await
            .unwrap();
        let c_ids: BTreeSet<i64> = c.iter().map(|m| m.id).collect();
        for id in &ids {
            assert!(
                c_ids.contains(id),
                "{name}: {id} not reclaimed after the lease"
            );
        }
        // The old owner can no longer extend (or record under) its lease.
        for id in &a_ids {
            assert!(
                !db.renew_outbox_lease(*id, "owner-a", t + 200_000, t + 60_002)
                    .await
                    .unwrap(),
                "{name}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_workers_and_a_dead_claim_send_every_message_exactly_once() {
    let e = env(30, 4).await;
    let (dbs, _dir) = databases("messages").await;
    let userids: Vec<String> = e
        .sim
        .directory()
        .members
        .iter()
        .map(|m| m.userid.clone())
        .collect();
    for (name, db) in &dbs {
        e.sync(db).await;
        let mut users = Vec::new();
        for u in &userids {
            users.push(local_user(&e, db, u).await);
        }
        let before = e.sim.stats().messages.len();
        let mut ids = Vec::new();
        for (i, user) in users.iter().enumerate() {
            let to = Recipients {
                users: vec![*user],
                ..Recipients::default()
            };
            let body = format!("burst {i}");
            let a = messages::accept(db, e.tenant(), &text(&unique("burst"), to, &body), now())
                .await
                .unwrap();
            ids.push(a.id);
        }
        // A worker that claimed five messages and died: its lease (1 ms) runs out and they come back.
        let t = now();
        let dead = db
            .claim_outbox_messages(&e.key, "dead-worker", t, t + 1, 5)
            .await
            .unwrap();
        assert_eq!(dead.len(), 5, "{name}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;

        // Three workers (as three replicas would) drain the rest concurrently.
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let w = OutboxWorker::new(
                db.clone(),
                e.tenants.clone(),
                WorkerOptions {
                    batch: 2,
                    ..WorkerOptions::default()
                },
            );
            tasks.push(tokio::spawn(async move {
                while w.run_once().await.unwrap() > 0 {}
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let sent = e.sim.stats().messages[before..].to_vec();
        let mut bodies: Vec<String> = sent
            .iter()
            .map(|m| m.body["text"]["content"].as_str().unwrap().to_owned())
            .collect();
        bodies.sort();
        let mut expected: Vec<String> = (0..users.len()).map(|i| format!("burst {i}")).collect();
        expected.sort();
        assert_eq!(bodies, expected, "{name}: each message sent exactly once");
        for id in ids {
            let row = db.outbox_message(&e.key, id).await.unwrap().unwrap();
            assert_eq!(row.status, store::OutboxStatus::Sent, "{name}: {row:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_stored_message_fails_instead_of_coming_back_forever() {
    let e = env(5, 2).await;
    let (dbs, _dir) = databases("messages").await;
    for (name, db) in &dbs {
        let new = store::NewOutboxMessage {
            app: "main".into(),
            idempotency_key: unique("corrupt"),
            request_hash: "0".repeat(64),
            request: "{ not json".into(),
            msgtype: "text".into(),
            status: store::OutboxStatus::Queued,
            error: None,
            invalid: "[]".into(),
            calls: vec!["{}".into()],
        };
        let store::EnqueueOutcome::Created(id) = db
            .enqueue_outbox_message(&e.key, &new, now())
            .await
            .unwrap()
        else {
            panic!("{name}: not created");
        };
        let before = e.sim.stats().messages.len();
        drain(&e, db).await;
        let row = db.outbox_message(&e.key, id).await.unwrap().unwrap();
        assert_eq!(row.status, store::OutboxStatus::Failed, "{name}: {row:?}");
        assert!(
            row.error.as_deref().unwrap_or("").contains("MS006"),
            "{row:?}"
        );
        assert_eq!(e.sim.stats().messages.len(), before, "{name}: nothing sent");
    }
}

async fn wechat_user(e: &SimEnv, db: &Db, appid: &str, kind: AppKind, openid: &str) -> i64 {
    db.create_wechat_user(
        &e.key,
        &UserFields {
            name: "Follower".into(),
            mobile: None,
            email: None,
            avatar: None,
            position: None,
            gender: None,
            status: UserStatus::Active,
        },
        &NewWechatIdentity {
            appid: appid.into(),
            app_kind: kind,
            openid: openid.into(),
            unionid: None,
            nickname: None,
            avatar: None,
        },
        now(),
    )
    .await
    .unwrap()
    .user_id
    .get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechat_template_and_subscribe_messages_reach_openids_and_map_refusals_back() {
    let e = env(5, 2).await;
    let (dbs, _dir) = databases("messages").await;
    let info = e.sim.info();
    let oa = &info.wechat.official_accounts[0];
    let mp = &info.wechat.mini_programs[0];
    let openids = e.sim.wechat_openids(&oa.appid);
    let followers: Vec<&String> = openids.iter().filter(|(_, f)| *f).map(|(o, _)| o).collect();
    let strangers: Vec<&String> = openids
        .iter()
        .filter(|(_, f)| !*f)
        .map(|(o, _)| o)
        .collect();
    assert!(followers.len() >= 2 && strangers.len() >= 2, "{openids:?}");
    let mp_openid = e.sim.wechat_openids(&mp.appid)[0].0.clone();
    for (i, (name, db)) in dbs.iter().enumerate() {
        let follower = wechat_user(&e, db, &oa.appid, AppKind::OfficialAccount, followers[i]).await;
        let stranger = wechat_user(&e, db, &oa.appid, AppKind::OfficialAccount, strangers[i]).await;
        let elsewhere = wechat_user(
            &e,
            db,
            "wxelsewhere",
            AppKind::OfficialAccount,
            &unique("o"),
        )
        .await;
        let request = SendRequest {
            app: oa.name.clone(),
            idempotency_key: unique("tpl"),
            to: Recipients {
                users: vec![follower, stranger, elsewhere],
                ..Recipients::default()
            },
            message: MessageContent::WechatTemplate {
                template_id: "TPL-1".into(),
                url: Some("https://example.com/order/1".into()),
                miniprogram: None,
                data: serde_json::json!({ "first": { "value": "Your order shipped" } }),
            },
            safe: None,
        };
        let before = e.sim.stats().messages.len();
        let accepted = messages::accept(db, e.tenant(), &request, now())
            .await
            .unwrap();
        drain(&e, db).await;
        let sent: Vec<wx_sim::SentMessage> = e.sim.stats().messages[before..].to_vec();
        assert_eq!(sent.len(), 1, "{name}: {sent:?}");
        assert_eq!(sent[0].msgtype, "template");
        assert_eq!(sent[0].recipients, vec![followers[i].clone()]);
        assert_eq!(sent[0].body["template_id"], "TPL-1");
        assert_eq!(sent[0].body["url"], "https://example.com/order/1");
        let view = messages::view(
            db,
            db.outbox_message(&e.key, accepted.id)
                .await
                .unwrap()
                .unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(view.status, "partial", "{name}: {view:?}");
        let invalid: BTreeSet<(i64, String)> = view
            .invalid_recipients
            .iter()
            .map(|r| (r.id, r.reason.clone()))
            .collect();
        let expected: BTreeSet<(i64, String)> = [
            (stranger, "not_following".to_owned()),
            (elsewhere, "no_wechat_identity".to_owned()),
        ]
        .into_iter()
        .collect();
        assert_eq!(invalid, expected, "{name}");
        let sent_call = view.calls.iter().find(|c| c.status == "sent").unwrap();
        assert_eq!(sent_call.msgid.as_deref(), Some(sent[0].msgid.as_str()));
        let err = messages::recall(db, e.tenant(), accepted.id, now())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("cannot be recalled"), "{err}");

        // A mini-program subscribe message.
        let user = wechat_user(&e, db, &mp.appid, AppKind::MiniProgram, &mp_openid).await;
        let request = SendRequest {
            app: mp.name.clone(),
            idempotency_key: unique("sub"),
            to: Recipients {
                users: vec![user],
                ..Recipients::default()
            },
            message: MessageContent::WechatSubscribe {
                template_id: "SUB-1".into(),
                page: Some("pages/index".into()),
                data: serde_json::json!({ "thing1": { "value": "hi" } }),
            },
            safe: None,
        };
        let accepted = messages::accept(db, e.tenant(), &request, now())
            .await
            .unwrap();
        drain(&e, db).await;
        let last = last_sent(&e.sim);
        assert_eq!(last.msgtype, "subscribe", "{name}");
        assert_eq!(last.recipients, vec![mp_openid.clone()]);
        assert_eq!(last.body["page"], "pages/index");
        let row = db
            .outbox_message(&e.key, accepted.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.status, store::OutboxStatus::Sent, "{name}");

        // `all` has no WeChat form.
        let mut all = request.clone();
        all.idempotency_key = unique("all");
        all.to = Recipients {
            all: true,
            ..Recipients::default()
        };
        let err = messages::accept(db, e.tenant(), &all, now())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("to.all"), "{err}");
    }
}
