//! Sessions and the WeChat account graph on SQLite, and on PostgreSQL when WXBRIDGE_TEST_POSTGRES_URL is
//! set (required under CI=true): token lifecycle with a manual clock, tokens never stored in clear,
//! convergence of identities sharing a unionid (late unionid included) with its merge record and
//! event, idempotent re-resolution, the WeCom-linked survivor, operator link/unlink, and hostile input.

use std::sync::Arc;
use std::time::Duration;

use crate::support::{databases, tenant};
use domain::identity::{
    AccountGraph, DomainEvent, IdentityError, Provider, SessionConfig, SessionOrigin, Sessions,
    UpstreamWechatUser, WechatLogin, WechatProfile, token_hash,
};
use store::{
    AppKind, AuditAction, Db, DirectoryChanges, MemberUpsert, MergeReason, NewWechatIdentity,
    UserFields, UserStatus,
};
use wx_api::clock::{Clock, ManualClock};

const START_MS: i64 = 1_700_000_000_000;

/// Rows of `sessions` with the token in any text column, and rows with its SHA-256 as token_hash.
async fn raw_token_counts(db: &Db, token: &str) -> (i64, i64) {
    let clear = "SELECT count(*) FROM sessions WHERE token_hash = $1 OR provider = $1 OR app = $1 \
                 OR tenant = $1 OR token_hash LIKE '%' || $2 || '%'";
    let hashed = "SELECT count(*) FROM sessions WHERE token_hash = $1";
    let tail = &token[4..];
    let hash = token_hash(token);
    if let Some(pool) = db.sqlite() {
        let a = sqlx::query_scalar(clear)
            .bind(token)
            .bind(tail)
            .fetch_one(pool)
            .await
            .unwrap();
        let b = sqlx::query_scalar(hashed)
            .bind(&hash)
            .fetch_one(pool)
            .await
            .unwrap();
        (a, b)
    } else {
        let pool = db.postgres().unwrap();
        let a = sqlx::query_scalar(clear)
            .bind(token)
            .bind(tail)
            .fetch_one(pool)
            .await
            .unwrap();
        let b = sqlx::query_scalar(hashed)
            .bind(&hash)
            .fetch_one(pool)
            .await
            .unwrap();
        (a, b)
    }
}

fn login(appid: &str, kind: AppKind, openid: &str, unionid: Option<&str>) -> WechatLogin {
    WechatLogin {
        appid: appid.to_owned(),
        app_kind: kind,
        openid: openid.to_owned(),
        unionid: unionid.map(str::to_owned),
        profile: WechatProfile::default(),
    }
}

fn origin(provider: Provider, app: &str) -> SessionOrigin {
    SessionOrigin {
        provider,
        app: app.to_owned(),
        identity: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_lifecycle_with_a_manual_clock() {
    let (dbs, _dir) = databases("identity").await;
    for (backend, db) in dbs {
        let t = tenant("sess");
        let clock = Arc::new(ManualClock::new(START_MS));
        let graph = AccountGraph::new(db.clone(), clock.clone());
        let sessions = Sessions::new(
            db.clone(),
            clock.clone(),
            SessionConfig {
                ttl: Duration::from_secs(3600),
                idle_timeout: None,
                touch_every: Duration::from_secs(60),
            },
        );
        let who = graph
            .resolve_wechat_identity(&t, &login("wxmp", AppKind::MiniProgram, "oA", None))
            .await
            .unwrap();

        let (token, session) = sessions
            .create(
                &t,
                who.user_id,
                &SessionOrigin {
                    identity: Some(who.identity.id),
                    ..origin(Provider::WechatMiniProgram, "shop")
                },
            )
            .await
            .unwrap();
        let text = token.expose().to_owned();
        assert!(text.starts_with("wxs_"), "{backend}");
        assert_eq!(text.len(), 4 + 64, "{backend}: 256 bits as hex");
        assert!(!format!("{token:?} {token} {session:?}").contains(&text[4..]));
        assert_eq!(session.expires_at_ms, START_MS + 3_600_000);

        // Stored only as its hash: no column of the row holds the token.
        let rows = db.sessions_of_user(&t, who.user_id).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].token_hash, token_hash(&text));
        assert_ne!(rows[0].token_hash, text);
        let row_text = format!("{:?}", rows[0]);
        assert!(!row_text.contains(&text[4..]), "{backend}: {row_text}");
        assert!(db.session_by_token_hash(&t, &text).await.unwrap().is_none());
        // And straight from the table: no text column holds the token, the hash is there once.
        let (in_clear, hashed) = raw_token_counts(&db, &text).await;
        assert_eq!((in_clear, hashed), (0, 1), "{backend}");

        // Verify: the user comes back; last_seen moves at most once a minute.
        let ok = sessions.verify(&t, &text).await.unwrap();
        assert_eq!(ok.user.id, who.user_id);
        assert_eq!(ok.session.provider, "wechat_mini_program");
        assert_eq!(ok.session.app, "shop");
        assert_eq!(ok.session.identity, Some(who.identity.id));
        clock.advance(Duration::from_secs(30));
        assert_eq!(
            sessions
                .verify(&t, &text)
                .await
                .unwrap()
                .session
                .last_seen_at_ms,
            START_MS
        );
        clock.advance(Duration::from_secs(31));
        assert_eq!(
            sessions
                .verify(&t, &text)
                .await
                .unwrap()
                .session
                .last_seen_at_ms,
            START_MS + 61_000
        );

        // Unknown, malformed, other tenant.
        let unknown = format!("wxs_{}", "0".repeat(64));
        assert!(matches!(
            sessions.verify(&t, &unknown).await,
            Err(IdentityError::SessionUnknown)
        ));
        for bad in [
            "",
            "wxs_",
            "Bearer x",
            &text.to_uppercase(),
            &format!("{text}0"),
        ] {
            assert!(
                matches!(
                    sessions.verify(&t, bad).await,
                    Err(IdentityError::SessionMalformed)
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            sessions.verify("another-tenant", &text).await,
            Err(IdentityError::SessionUnknown)
        ));

        // Expiry at the absolute lifetime.
        clock.set_ms(START_MS + 3_600_000);
        let err = sessions.verify(&t, &text).await.unwrap_err();
        assert!(
            matches!(err, IdentityError::SessionExpired { at_ms } if at_ms == START_MS + 3_600_000),
            "{err}"
        );
        assert!(err.is_unauthenticated());
        assert!(err.to_string().contains("expired"), "{err}");

        // Revocation.
        clock.set_ms(START_MS);
        let (token2, _) = sessions
            .create(
                &t,
                who.user_id,
                &origin(Provider::WechatMiniProgram, "shop"),
            )
            .await
            .unwrap();
        assert!(sessions.revoke(&t, token2.expose()).await.unwrap());
        assert!(!sessions.revoke(&t, token2.expose()).await.unwrap());
        let err = sessions.verify(&t, token2.expose()).await.unwrap_err();
        assert!(matches!(err, IdentityError::SessionRevoked { at_ms } if at_ms == START_MS));
        assert!(err.to_string().contains("revoked"), "{err}");

        // An empty app is refused; a user of another tenant cannot get a session.
        assert!(matches!(
            sessions
                .create(&t, who.user_id, &origin(Provider::Wecom, " "))
                .await,
            Err(IdentityError::InvalidInput { field: "app", .. })
        ));
        assert!(matches!(
            sessions
                .create(
                    "another-tenant",
                    who.user_id,
                    &origin(Provider::Wecom, "hr")
                )
                .await,
            Err(IdentityError::UserNotFound { .. })
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_and_disabled_users() {
    let (dbs, _dir) = databases("identity").await;
    for (_backend, db) in dbs {
        let t = tenant("idle");
        let clock = Arc::new(ManualClock::new(START_MS));
        let sessions = Sessions::new(
            db.clone(),
            clock.clone(),
            SessionConfig {
                ttl: Duration::from_secs(86_400),
                idle_timeout: Some(Duration::from_secs(600)),
                touch_every: Duration::from_secs(60),
            },
        );
        // A WeCom member, disabled later by a sync.
        let mut member = MemberUpsert {
            userid: "zhangsan".to_owned(),
            open_userid: None,
            fields: UserFields {
                name: "Zhang San".to_owned(),
                mobile: None,
                email: None,
                avatar: None,
                position: None,
                gender: None,
                status: UserStatus::Active,
            },
            memberships: None,
        };
        let changes = DirectoryChanges {
            members: vec![member.clone()],
            ..DirectoryChanges::default()
        };
        db.apply_directory_changes(&t, "wwcorp", &changes, START_MS)
            .await
            .unwrap();
        let user = db
            .user_by_wecom_userid(&t, "wwcorp", "zhangsan")
            .await
            .unwrap()
            .unwrap();
        let (token, _) = sessions
            .create(&t, user.id, &origin(Provider::Wecom, "hr-portal"))
            .await
            .unwrap();

        // Used every 9 minutes it stays alive past the 10-minute idle timeout.
        for _ in 0..3 {
            clock.advance(Duration::from_secs(540));
            sessions.verify(&t, token.expose()).await.unwrap();
        }
        clock.advance(Duration::from_secs(600));
        assert!(matches!(
            sessions.verify(&t, token.expose()).await,
            Err(IdentityError::SessionExpired { .. })
        ));

        let (token, _) = sessions
            .create(&t, user.id, &origin(Provider::Wecom, "hr-portal"))
            .await
            .unwrap();
        member.fields.status = UserStatus::Disabled;
        let changes = DirectoryChanges {
            members: vec![member],
            ..DirectoryChanges::default()
        };
        db.apply_directory_changes(&t, "wwcorp", &changes, clock.now_ms())
            .await
            .unwrap();
        let err = sessions.verify(&t, token.expose()).await.unwrap_err();
        assert!(
            matches!(
                err,
                IdentityError::UserNotActive {
                    status: UserStatus::Disabled,
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_mini_programs_and_an_official_account_converge_when_the_unionid_appears() {
    let (dbs, _dir) = databases("identity").await;
    for (backend, db) in dbs {
        let t = tenant("converge");
        let clock = Arc::new(ManualClock::new(START_MS));
        let graph = AccountGraph::new(db.clone(), clock.clone());
        let sessions = Sessions::new(db.clone(), clock.clone(), SessionConfig::default());

        // 1. Official account, snsapi_base: an openid and no unionid. A new user.
        let oa_base = login("wxoa", AppKind::OfficialAccount, "oOA-1", None);
        let oa = graph.resolve_wechat_identity(&t, &oa_base).await.unwrap();
        assert!(oa.created_user && oa.created_identity && oa.events.is_empty());

        // 2. Mini program 1 with the unionid: nobody holds it yet, so another new user.
        clock.advance(Duration::from_secs(10));
        let mp1_login = login("wxmp1", AppKind::MiniProgram, "oMP1-1", Some("uPerson"));
        let mp1 = graph.resolve_wechat_identity(&t, &mp1_login).await.unwrap();
        assert!(mp1.created_user);
        assert_ne!(mp1.user_id, oa.user_id);
        let (mp_token, _) = sessions
            .create(&t, mp1.user_id, &origin(Provider::WechatMiniProgram, "mp1"))
            .await
            .unwrap();

        // 3. Mini program 2, same unionid (decrypted data spells it unionId): joins mini program 1's user.
        clock.advance(Duration::from_secs(10));
        let decrypted: UpstreamWechatUser = serde_json::from_str(
            r#"{"openId":"oMP2-1","unionId":"uPerson","nickName":"Lee","avatarUrl":"https://x/a.png","watermark":{"appid":"wxmp2"}}"#,
        )
        .unwrap();
        let mp2_login = decrypted.into_login("wxmp2", AppKind::MiniProgram);
        let mp2 = graph.resolve_wechat_identity(&t, &mp2_login).await.unwrap();
        assert!(!mp2.created_user && mp2.created_identity && mp2.events.is_empty());
        assert_eq!(mp2.user_id, mp1.user_id);
        assert_eq!(mp2.identity.nickname.as_deref(), Some("Lee"));

        // 4. The official account learns the unionid late (snsapi_userinfo): the two users converge
        //    into the older one, the official account's.
        clock.advance(Duration::from_secs(10));
        let oa_info: UpstreamWechatUser = serde_json::from_str(
            r#"{"openid":"oOA-1","unionid":"uPerson","nickname":"Lee","headimgurl":"https://x/b.png"}"#,
        )
        .unwrap();
        let late = graph
            .resolve_wechat_identity(&t, &oa_info.into_login("wxoa", AppKind::OfficialAccount))
            .await
            .unwrap();
        assert!(late.learned_unionid, "{backend}");
        assert_eq!(late.user_id, oa.user_id);
        assert_eq!(late.identity.unionid.as_deref(), Some("uPerson"));
        assert_eq!(late.events.len(), 1, "{backend}: one merged event");
        let DomainEvent::UserMerged(ev) = &late.events[0];
        assert_eq!(late.events[0].kind(), "user.merged");
        assert_eq!((ev.from_user, ev.into_user), (mp1.user_id, oa.user_id));
        assert_eq!(ev.reason, MergeReason::Unionid);
        assert_eq!(ev.actor, "system");
        assert_eq!(ev.identities, vec![mp1.identity.id, mp2.identity.id]);
        assert_eq!(ev.at_ms, START_MS + 30_000);
        let json = serde_json::to_value(&late.events[0]).unwrap();
        assert_eq!(json["type"], "user.merged");

        // Exactly one merge record, saying who/when/why/which.
        let merges = db.user_merges(&t, oa.user_id).await.unwrap();
        assert_eq!(merges.len(), 1, "{backend}");
        assert_eq!(merges[0].from_user, mp1.user_id);
        assert_eq!(merges[0].unionid.as_deref(), Some("uPerson"));
        assert_eq!(merges[0].identities, ev.identities);
        assert_eq!(merges[0].sessions_moved, 1);

        // All three identities are on one user, and the mini program's session now opens that user.
        let profile = graph.profile(&t, oa.user_id).await.unwrap();
        let mut openids: Vec<_> = profile.wechat.iter().map(|i| i.openid.as_str()).collect();
        openids.sort();
        assert_eq!(openids, ["oMP1-1", "oMP2-1", "oOA-1"]);
        assert!(
            db.wechat_identities_of_user(&t, mp1.user_id)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            sessions
                .verify(&t, mp_token.expose())
                .await
                .unwrap()
                .user
                .id,
            oa.user_id
        );

        // Re-resolving any of them is idempotent: same user, no event, no new merge.
        for l in [&oa_base, &mp1_login, &mp2_login] {
            let again = graph.resolve_wechat_identity(&t, l).await.unwrap();
            assert_eq!(again.user_id, oa.user_id, "{backend}: {l:?}");
            assert!(again.events.is_empty() && !again.created_identity && !again.learned_unionid);
        }
        let again = graph
            .resolve_wechat_identity(&t, &oa_info_login())
            .await
            .unwrap();
        assert!(again.events.is_empty());
        assert_eq!(db.user_merges(&t, oa.user_id).await.unwrap().len(), 1);

        // A fourth app with the unionid joins directly.
        let web = graph
            .resolve_wechat_identity(
                &t,
                &login("wxweb", AppKind::Website, "oWEB-1", Some("uPerson")),
            )
            .await
            .unwrap();
        assert_eq!(web.user_id, oa.user_id);
        assert!(web.events.is_empty());
    }
}

fn oa_info_login() -> WechatLogin {
    login("wxoa", AppKind::OfficialAccount, "oOA-1", Some("uPerson"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wecom_linked_user_survives_even_when_younger() {
    let (dbs, _dir) = databases("identity").await;
    for (backend, db) in dbs {
        let t = tenant("survivor");
        let clock = Arc::new(ManualClock::new(START_MS));
        let graph = AccountGraph::new(db.clone(), clock.clone());

        // Older: a WeChat-only user from a mini program without the unionid yet.
        let wechat_only = graph
            .resolve_wechat_identity(&t, &login("wxmp", AppKind::MiniProgram, "oMP", None))
            .await
            .unwrap();

        // Younger: a WeCom member who also has an official-account identity with the unionid.
        clock.advance(Duration::from_secs(60));
        let changes = DirectoryChanges {
            members: vec![MemberUpsert {
                userid: "lisi".to_owned(),
                open_userid: None,
                fields: UserFields {
                    name: "Li Si".to_owned(),
                    mobile: None,
                    email: None,
                    avatar: None,
                    position: None,
                    gender: None,
                    status: UserStatus::Active,
                },
                memberships: None,
            }],
            ..DirectoryChanges::default()
        };
        db.apply_directory_changes(&t, "wwcorp", &changes, START_MS + 60_000)
            .await
            .unwrap();
        let wecom_user = db
            .user_by_wecom_userid(&t, "wwcorp", "lisi")
            .await
            .unwrap()
            .unwrap();
        db.insert_wechat_identity(
            &t,
            wecom_user.id,
            &NewWechatIdentity {
                appid: "wxoa".to_owned(),
                app_kind: AppKind::OfficialAccount,
                openid: "oOA".to_owned(),
                unionid: Some("uLi".to_owned()),
                nickname: None,
                avatar: None,
            },
            START_MS + 60_000,
        )
        .await
        .unwrap();

        clock.advance(Duration::from_secs(60));
        let late = graph
            .resolve_wechat_identity(&t, &login("wxmp", AppKind::MiniProgram, "oMP", Some("uLi")))
            .await
            .unwrap();
        assert_eq!(late.user_id, wecom_user.id, "{backend}");
        assert_eq!(late.events.len(), 1);
        let DomainEvent::UserMerged(ev) = &late.events[0];
        assert_eq!(
            (ev.from_user, ev.into_user),
            (wechat_only.user_id, wecom_user.id)
        );
        assert_eq!(ev.identities, vec![wechat_only.identity.id]);
        let profile = graph.profile(&t, wecom_user.id).await.unwrap();
        assert_eq!(profile.wecom.len(), 1);
        assert_eq!(profile.wechat.len(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_link_and_unlink_by_hand_audited_and_convergence_respects_it() {
    let (dbs, _dir) = databases("identity").await;
    for (backend, db) in dbs {
        let t = tenant("manual");
        let clock = Arc::new(ManualClock::new(START_MS));
        let graph = AccountGraph::new(db.clone(), clock.clone());
        let sessions = Sessions::new(db.clone(), clock.clone(), SessionConfig::default());

        let a = graph
            .resolve_wechat_identity(
                &t,
                &login("wxoa", AppKind::OfficialAccount, "oA", Some("uA")),
            )
            .await
            .unwrap();
        let b = graph
            .resolve_wechat_identity(&t, &login("wxmp", AppKind::MiniProgram, "oB", None))
            .await
            .unwrap();
        let (b_token, _) = sessions
            .create(
                &t,
                b.user_id,
                &SessionOrigin {
                    identity: Some(b.identity.id),
                    ..origin(Provider::WechatMiniProgram, "mp")
                },
            )
            .await
            .unwrap();

        // An operator says B's identity is A's person.
        assert!(matches!(
            graph
                .link_identity(&t, b.identity.id, a.user_id, "  ", None)
                .await,
            Err(IdentityError::InvalidInput { field: "actor", .. })
        ));
        clock.advance(Duration::from_secs(5));
        let link = graph
            .link_identity(
                &t,
                b.identity.id,
                a.user_id,
                "operator:alice",
                Some("ticket 42"),
            )
            .await
            .unwrap();
        assert_eq!(link.action, AuditAction::Link);
        assert_eq!(link.at_ms, START_MS + 5_000);
        assert_eq!(
            db.wechat_identity(&t, b.identity.id)
                .await
                .unwrap()
                .unwrap()
                .user_id,
            a.user_id
        );
        // The session opened through the moved identity no longer verifies.
        assert!(matches!(
            sessions.verify(&t, b_token.expose()).await,
            Err(IdentityError::SessionRevoked { .. })
        ));

        // Then unlinks it again: it gets a user of its own.
        clock.advance(Duration::from_secs(5));
        let unlink = graph
            .unlink_identity(&t, b.identity.id, "operator:bob", None)
            .await
            .unwrap();
        assert_eq!(unlink.action, AuditAction::Unlink);
        assert_eq!(unlink.from_user, a.user_id);
        let own = unlink.to_user;
        assert_ne!(own, a.user_id);
        let audit = db.identity_audit(&t, b.identity.id).await.unwrap();
        assert_eq!(audit.len(), 2, "{backend}");
        assert_eq!(audit[0].actor, "operator:alice");
        assert_eq!(audit[0].note.as_deref(), Some("ticket 42"));
        assert_eq!(audit[1].actor, "operator:bob");

        // A later login of B carrying A's unionid records it but does not undo the operator.
        let again = graph
            .resolve_wechat_identity(&t, &login("wxmp", AppKind::MiniProgram, "oB", Some("uA")))
            .await
            .unwrap();
        assert_eq!(again.user_id, own, "{backend}");
        assert!(again.events.is_empty());
        assert_eq!(again.identity.unionid.as_deref(), Some("uA"));
        assert!(db.user_merges(&t, a.user_id).await.unwrap().is_empty());

        // Unknown identity: a clear not-found, nothing audited.
        let missing = graph
            .unlink_identity(&t, store::IdentityId::from_raw(987_654_321), "op", None)
            .await;
        assert!(
            matches!(
                missing,
                Err(IdentityError::IdentityNotFound { id: 987_654_321 })
            ),
            "{missing:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injection_like_input_is_stored_literally_and_bad_input_refused() {
    let (dbs, _dir) = databases("identity").await;
    for (backend, db) in dbs {
        let t = tenant("inject");
        let clock = Arc::new(ManualClock::new(START_MS));
        let graph = AccountGraph::new(db.clone(), clock.clone());
        let hostile = WechatLogin {
            appid: "wx' OR 1=1 --".to_owned(),
            app_kind: AppKind::Website,
            openid: "o'; DELETE FROM users; --".to_owned(),
            unionid: Some("u\" OR \"\"=\"".to_owned()),
            profile: WechatProfile {
                nickname: Some("Robert'); DROP TABLE sessions;--".to_owned()),
                avatar: None,
            },
        };
        let first = graph.resolve_wechat_identity(&t, &hostile).await.unwrap();
        assert_eq!(first.identity.openid, hostile.openid);
        assert_eq!(first.identity.appid, hostile.appid);
        let user = db.user(&t, first.user_id).await.unwrap().unwrap();
        assert_eq!(user.name, "Robert'); DROP TABLE sessions;--", "{backend}");
        let again = graph.resolve_wechat_identity(&t, &hostile).await.unwrap();
        assert_eq!(again.identity.id, first.identity.id);
        assert!(!again.created_identity);

        // openids are case-sensitive: another casing is another identity.
        let upper = WechatLogin {
            openid: hostile.openid.to_uppercase(),
            unionid: None,
            ..hostile.clone()
        };
        let other = graph.resolve_wechat_identity(&t, &upper).await.unwrap();
        assert_ne!(other.identity.id, first.identity.id);

        for (field, bad) in [
            ("openid", login("wxmp", AppKind::MiniProgram, " ", None)),
            ("appid", login("", AppKind::MiniProgram, "oX", None)),
        ] {
            let err = graph.resolve_wechat_identity(&t, &bad).await.unwrap_err();
            assert!(
                matches!(err, IdentityError::InvalidInput { field: f, .. } if f == field),
                "{err}"
            );
        }
        // An empty unionid counts as none.
        let empty = graph
            .resolve_wechat_identity(&t, &login("wxmp", AppKind::MiniProgram, "oE", Some("")))
            .await
            .unwrap();
        assert_eq!(empty.identity.unionid, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_logins_end_in_one_identity_and_one_user() {
    let (dbs, _dir) = databases("identity").await;
    for (backend, db) in dbs {
        let t = tenant("race");
        let clock = Arc::new(ManualClock::new(START_MS));
        let graph = AccountGraph::new(db.clone(), clock.clone());

        // The same first login eight times at once: one identity, one user.
        let same = login("wxmp", AppKind::MiniProgram, "oSame", Some("uSame"));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (g, t, l) = (graph.clone(), t.clone(), same.clone());
            tasks.push(tokio::spawn(async move {
                g.resolve_wechat_identity(&t, &l).await
            }));
        }
        let mut ids = std::collections::BTreeSet::new();
        for task in tasks {
            ids.insert(task.await.unwrap().unwrap().identity.id);
        }
        assert_eq!(ids.len(), 1, "{backend}");

        // Two apps' first logins with one unionid at once may each make a user; the next login of
        // either joins them, with one merge.
        let a = login("wxa", AppKind::MiniProgram, "oA", Some("uRace"));
        let b = login("wxb", AppKind::OfficialAccount, "oB", Some("uRace"));
        let (ra, rb) = tokio::join!(
            graph.resolve_wechat_identity(&t, &a),
            graph.resolve_wechat_identity(&t, &b)
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let again = graph.resolve_wechat_identity(&t, &a).await.unwrap();
        let again_b = graph.resolve_wechat_identity(&t, &b).await.unwrap();
        assert_eq!(again.user_id, again_b.user_id, "{backend}");
        let merges = ra.events.len() + rb.events.len() + again.events.len() + again_b.events.len();
        assert_eq!(
            merges,
            usize::from(ra.user_id != rb.user_id),
            "{backend}: one merge exactly when the race made two users"
        );
    }
}
