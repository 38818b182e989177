//! The identity repository on SQLite and PostgreSQL: WeChat identities, merges (one transaction,
//! pinned identities stay), operator link/unlink with audit, sealed session keys, sessions, tenant
//! isolation and hostile-looking input stored literally.

use store::{
    AppKind, AuditAction, Db, Error, MergeReason, NewSession, NewWechatIdentity, SealedSessionKey,
    UserFields, UserId, UserMerge, UserStatus,
};

const T: &str = "acme";

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
    identities_round_trip,
    merge_moves_identities_and_sessions_in_one_go,
    link_and_unlink_are_audited_and_pinned,
    sessions_store_hashes_touch_forward_and_revoke,
    sealed_session_keys_replace_and_stay_in_their_tenant,
    hostile_input_is_stored_literally,
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

fn ident(appid: &str, kind: AppKind, openid: &str, unionid: Option<&str>) -> NewWechatIdentity {
    NewWechatIdentity {
        appid: appid.to_owned(),
        app_kind: kind,
        openid: openid.to_owned(),
        unionid: unionid.map(str::to_owned),
        nickname: Some("Nick".to_owned()),
        avatar: None,
    }
}

fn session(hash: &str, user: UserId, now: i64) -> NewSession {
    NewSession {
        token_hash: hash.to_owned(),
        user_id: user,
        provider: "wechat_mini_program".to_owned(),
        app: "shop".to_owned(),
        identity_id: None,
        created_at_ms: now,
        expires_at_ms: now + 3_600_000,
    }
}

async fn identities_round_trip(db: Db) {
    let a = db
        .create_wechat_user(
            T,
            &fields("Nick"),
            &ident("wxmp1", AppKind::MiniProgram, "oOpenA", None),
            1_000,
        )
        .await
        .unwrap();
    assert_eq!(a.app_kind, AppKind::MiniProgram);
    assert!(!a.pinned);
    let user = db.user(T, a.user_id).await.unwrap().unwrap();
    assert_eq!(user.name, "Nick");
    assert!(
        db.wecom_links_of_user(T, a.user_id)
            .await
            .unwrap()
            .is_empty()
    );

    // openids are case-sensitive: another spelling is another identity.
    assert!(
        db.wechat_identity_by_openid(T, "wxmp1", "oopena")
            .await
            .unwrap()
            .is_none()
    );
    let found = db
        .wechat_identity_by_openid(T, "wxmp1", "oOpenA")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, a);

    // The same (appid, openid) twice is a conflict; an unknown user is not found.
    let dup = db
        .insert_wechat_identity(
            T,
            a.user_id,
            &ident("wxmp1", AppKind::MiniProgram, "oOpenA", None),
            2_000,
        )
        .await;
    assert!(matches!(dup, Err(Error::Conflict { .. })), "{dup:?}");
    let orphan = db
        .insert_wechat_identity(
            T,
            UserId::from_raw(999_999),
            &ident("wxmp1", AppKind::MiniProgram, "oOther", None),
            2_000,
        )
        .await;
    assert!(matches!(orphan, Err(Error::NotFound { .. })), "{orphan:?}");

    assert!(
        db.learn_wechat_unionid(T, a.id, "uU1", 3_000)
            .await
            .unwrap()
    );
    // A unionid is learned once; a different one later does not overwrite it.
    assert!(
        !db.learn_wechat_unionid(T, a.id, "uU2", 4_000)
            .await
            .unwrap()
    );
    let by_union = db.wechat_identities_by_unionid(T, "uU1").await.unwrap();
    assert_eq!(by_union.len(), 1);
    assert_eq!(by_union[0].unionid.as_deref(), Some("uU1"));

    assert!(
        db.update_wechat_identity_profile(T, a.id, Some("New"), Some("https://a/b.png"), 5_000)
            .await
            .unwrap()
    );
    let a2 = db.wechat_identity(T, a.id).await.unwrap().unwrap();
    assert_eq!(a2.nickname.as_deref(), Some("New"));
    assert_eq!(a2.updated_at_ms, 5_000);

    // Another tenant sees none of it.
    assert!(db.wechat_identity("other", a.id).await.unwrap().is_none());
    assert!(
        db.wechat_identities_by_unionid("other", "uU1")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn merge_moves_identities_and_sessions_in_one_go(db: Db) {
    let old = db
        .create_wechat_user(
            T,
            &fields("Old"),
            &ident("wxoa", AppKind::OfficialAccount, "oOA", Some("uJoin")),
            1_000,
        )
        .await
        .unwrap();
    let young = db
        .create_wechat_user(
            T,
            &fields("Young"),
            &ident("wxmp1", AppKind::MiniProgram, "oMP1", None),
            2_000,
        )
        .await
        .unwrap();
    let second = db
        .insert_wechat_identity(
            T,
            young.user_id,
            &ident("wxmp2", AppKind::MiniProgram, "oMP2", Some("uJoin")),
            2_500,
        )
        .await
        .unwrap();
    db.insert_session(T, &session("h-young", young.user_id, 2_600))
        .await
        .unwrap();

    let record = db
        .merge_users(
            T,
            &UserMerge {
                from_user: young.user_id,
                into_user: old.user_id,
                reason: MergeReason::Unionid,
                unionid: Some("uJoin".to_owned()),
                actor: "system".to_owned(),
                learn_unionid: Some((young.id, "uJoin".to_owned())),
            },
            3_000,
        )
        .await
        .unwrap();
    assert_eq!(record.from_user, young.user_id);
    assert_eq!(record.into_user, old.user_id);
    assert_eq!(record.identities, vec![young.id, second.id]);
    assert_eq!(record.sessions_moved, 1);

    let of_old = db.wechat_identities_of_user(T, old.user_id).await.unwrap();
    assert_eq!(of_old.len(), 3);
    assert!(of_old.iter().all(|i| i.unionid.as_deref() == Some("uJoin")));
    assert!(
        db.wechat_identities_of_user(T, young.user_id)
            .await
            .unwrap()
            .is_empty()
    );
    // The from-user row is kept.
    assert!(db.user(T, young.user_id).await.unwrap().is_some());
    let s = db
        .session_by_token_hash(T, "h-young")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.user_id, old.user_id);

    let merges = db.user_merges(T, young.user_id).await.unwrap();
    assert_eq!(merges, vec![record.clone()]);
    assert_eq!(db.user_merges(T, old.user_id).await.unwrap(), vec![record]);

    // A merge naming a user of another tenant writes nothing.
    let foreign = db
        .create_wechat_user(
            "other",
            &fields("F"),
            &ident("wxoa", AppKind::OfficialAccount, "oF", None),
            1_000,
        )
        .await
        .unwrap();
    let err = db
        .merge_users(
            T,
            &UserMerge {
                from_user: foreign.user_id,
                into_user: old.user_id,
                reason: MergeReason::Manual,
                unionid: None,
                actor: "ops".to_owned(),
                learn_unionid: None,
            },
            4_000,
        )
        .await;
    assert!(matches!(err, Err(Error::NotFound { .. })), "{err:?}");
    assert_eq!(
        db.wechat_identities_of_user("other", foreign.user_id)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn link_and_unlink_are_audited_and_pinned(db: Db) {
    let a = db
        .create_wechat_user(
            T,
            &fields("A"),
            &ident("wxoa", AppKind::OfficialAccount, "oA", None),
            1_000,
        )
        .await
        .unwrap();
    let b = db
        .create_wechat_user(
            T,
            &fields("B"),
            &ident("wxmp", AppKind::MiniProgram, "oB", None),
            1_000,
        )
        .await
        .unwrap();
    let mut s = session("h-b", b.user_id, 1_100);
    s.identity_id = Some(b.id);
    db.insert_session(T, &s).await.unwrap();

    let link = db
        .link_wechat_identity(
            T,
            b.id,
            a.user_id,
            "operator:alice",
            Some("same person"),
            2_000,
        )
        .await
        .unwrap();
    assert_eq!(link.action, AuditAction::Link);
    assert_eq!((link.from_user, link.to_user), (b.user_id, a.user_id));
    let moved = db.wechat_identity(T, b.id).await.unwrap().unwrap();
    assert_eq!(moved.user_id, a.user_id);
    assert!(moved.pinned);
    // Sessions opened through the moved identity are no longer trusted.
    let s = db.session_by_token_hash(T, "h-b").await.unwrap().unwrap();
    assert_eq!(s.revoked_at_ms, Some(2_000));

    let mut lone = fields("B again");
    lone.name = "B again".to_owned();
    let unlink = db
        .unlink_wechat_identity(T, b.id, &lone, "operator:bob", None, 3_000)
        .await
        .unwrap();
    assert_eq!(unlink.action, AuditAction::Unlink);
    assert_eq!(unlink.from_user, a.user_id);
    assert_ne!(unlink.to_user, a.user_id);
    assert_ne!(unlink.to_user, b.user_id);
    let new_user = db.user(T, unlink.to_user).await.unwrap().unwrap();
    assert_eq!(new_user.name, "B again");

    let trail = db.identity_audit(T, b.id).await.unwrap();
    assert_eq!(trail, vec![link, unlink]);
    assert!(db.identity_audit("other", b.id).await.unwrap().is_empty());

    // A pinned identity stays where the operator put it when its user is merged away.
    let rec = db
        .merge_users(
            T,
            &UserMerge {
                from_user: new_user.id,
                into_user: a.user_id,
                reason: MergeReason::Manual,
                unionid: None,
                actor: "operator:carol".to_owned(),
                learn_unionid: None,
            },
            4_000,
        )
        .await
        .unwrap();
    assert!(rec.identities.is_empty());
    assert_eq!(
        db.wechat_identity(T, b.id).await.unwrap().unwrap().user_id,
        new_user.id
    );

    // Unknown identity or user: NotFound, no audit written.
    let missing = db
        .link_wechat_identity(T, b.id, UserId::from_raw(987_654), "x", None, 5_000)
        .await;
    assert!(
        matches!(missing, Err(Error::NotFound { .. })),
        "{missing:?}"
    );
    assert_eq!(db.identity_audit(T, b.id).await.unwrap().len(), 2);
}

async fn sessions_store_hashes_touch_forward_and_revoke(db: Db) {
    let a = db
        .create_wechat_user(
            T,
            &fields("A"),
            &ident("wxoa", AppKind::OfficialAccount, "oA", None),
            1_000,
        )
        .await
        .unwrap();
    let row = db
        .insert_session(T, &session("hash-1", a.user_id, 10_000))
        .await
        .unwrap();
    assert_eq!(row.last_seen_at_ms, 10_000);
    assert_eq!(row.expires_at_ms, 10_000 + 3_600_000);
    assert!(row.revoked_at_ms.is_none());

    // The same hash twice is a conflict (a token is never reused).
    let dup = db
        .insert_session(T, &session("hash-1", a.user_id, 11_000))
        .await;
    assert!(matches!(dup, Err(Error::Conflict { .. })), "{dup:?}");

    assert!(db.touch_session(T, row.id, 20_000).await.unwrap());
    assert!(!db.touch_session(T, row.id, 15_000).await.unwrap());
    assert_eq!(
        db.session_by_token_hash(T, "hash-1")
            .await
            .unwrap()
            .unwrap()
            .last_seen_at_ms,
        20_000
    );
    assert!(
        db.session_by_token_hash("other", "hash-1")
            .await
            .unwrap()
            .is_none()
    );
    assert!(!db.revoke_session("other", "hash-1", 21_000).await.unwrap());

    assert!(db.revoke_session(T, "hash-1", 30_000).await.unwrap());
    assert!(!db.revoke_session(T, "hash-1", 31_000).await.unwrap());
    assert!(!db.touch_session(T, row.id, 40_000).await.unwrap());

    db.insert_session(T, &session("hash-2", a.user_id, 50_000))
        .await
        .unwrap();
    db.insert_session(T, &session("hash-3", a.user_id, 50_000))
        .await
        .unwrap();
    assert_eq!(
        db.revoke_user_sessions(T, a.user_id, 60_000).await.unwrap(),
        2
    );
    let all = db.sessions_of_user(T, a.user_id).await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|s| s.revoked_at_ms.is_some()));
}

async fn sealed_session_keys_replace_and_stay_in_their_tenant(db: Db) {
    let a = db
        .create_wechat_user(
            T,
            &fields("A"),
            &ident("wxmp", AppKind::MiniProgram, "oA", None),
            1_000,
        )
        .await
        .unwrap();
    assert!(db.wechat_session_key(T, a.id).await.unwrap().is_none());
    let k1 = SealedSessionKey {
        key_id: "k1".to_owned(),
        sealed: vec![0, 1, 2, 255],
        updated_at_ms: 2_000,
    };
    db.put_wechat_session_key(T, a.id, &k1).await.unwrap();
    let k2 = SealedSessionKey {
        key_id: "k2".to_owned(),
        sealed: vec![9; 48],
        updated_at_ms: 3_000,
    };
    db.put_wechat_session_key(T, a.id, &k2).await.unwrap();
    assert_eq!(
        db.wechat_session_key(T, a.id).await.unwrap(),
        Some(k2.clone())
    );
    assert!(
        db.wechat_session_key("other", a.id)
            .await
            .unwrap()
            .is_none()
    );
    let foreign = db.put_wechat_session_key("other", a.id, &k1).await;
    assert!(
        matches!(foreign, Err(Error::NotFound { .. })),
        "{foreign:?}"
    );
    // Debug shows the length, never the bytes.
    let debug = format!("{k2:?}");
    assert!(debug.contains("sealed_len: 48"), "{debug}");
    assert!(!debug.contains("9, 9"), "{debug}");

    // WeCom members' keys: per (tenant, mini-program appid, user), replaced, never crossing tenants.
    let user = a.user_id;
    assert!(
        db.wecom_session_key(T, "wxqy", user)
            .await
            .unwrap()
            .is_none()
    );
    db.put_wecom_session_key(T, "wxqy", user, &k1)
        .await
        .unwrap();
    db.put_wecom_session_key(T, "wxqy", user, &k2)
        .await
        .unwrap();
    db.put_wecom_session_key(T, "wxqy2", user, &k1)
        .await
        .unwrap();
    assert_eq!(
        db.wecom_session_key(T, "wxqy", user).await.unwrap(),
        Some(k2.clone())
    );
    assert_eq!(
        db.wecom_session_key(T, "wxqy2", user).await.unwrap(),
        Some(k1.clone())
    );
    assert!(
        db.wecom_session_key("other", "wxqy", user)
            .await
            .unwrap()
            .is_none()
    );
    let foreign = db.put_wecom_session_key("other", "wxqy", user, &k1).await;
    assert!(
        matches!(foreign, Err(Error::NotFound { what: "user", .. })),
        "{foreign:?}"
    );
}

async fn hostile_input_is_stored_literally(db: Db) {
    let openid = "o'); DROP TABLE users; --";
    let unionid = "u' OR '1'='1";
    let nick = "Robert'); DROP TABLE wechat_identities;-- \u{1F600} %_\\";
    let mut new = ident("wx'appid", AppKind::Website, openid, Some(unionid));
    new.nickname = Some(nick.to_owned());
    let a = db
        .create_wechat_user(T, &fields(nick), &new, 1_000)
        .await
        .unwrap();
    let back = db
        .wechat_identity_by_openid(T, "wx'appid", openid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.openid, openid);
    assert_eq!(back.unionid.as_deref(), Some(unionid));
    assert_eq!(back.nickname.as_deref(), Some(nick));
    assert_eq!(db.user(T, a.user_id).await.unwrap().unwrap().name, nick);
    // A wildcard-looking unionid matches only itself.
    assert!(
        db.wechat_identities_by_unionid(T, "u%")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        db.wechat_identities_by_unionid(T, unionid)
            .await
            .unwrap()
            .len(),
        1
    );
}
