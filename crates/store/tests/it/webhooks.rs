//! The webhook outbox on SQLite and PostgreSQL: one row per (tenant, event id), claims with leases that
//! come back, fencing by attempt, retry / delivered / dead, replay of dead letters, counts per status,
//! concurrent claimers never sharing a row; and the subscribe state of WeChat identities.

use std::collections::BTreeSet;

use store::{
    AppKind, Db, Error, NewWebhookDelivery, NewWechatIdentity, UserFields, UserStatus,
    WebhookEnqueue, WebhookFinish, WebhookStatus,
};

fn event<'a>(id: &'a str) -> NewWebhookDelivery<'a> {
    NewWebhookDelivery {
        event_id: id,
        event_type: "message.received",
        payload: r#"{"type":"message.received"}"#,
    }
}

async fn behaviour(db: &Db) {
    let t = "acme";
    let WebhookEnqueue::Created(id) = db.enqueue_webhook(t, &event("e1"), 1_000).await.unwrap()
    else {
        panic!("first enqueue did not create")
    };
    // The same event again is stored once; another tenant's e1 is another row.
    assert_eq!(
        db.enqueue_webhook(t, &event("e1"), 1_100).await.unwrap(),
        WebhookEnqueue::Existing(id)
    );
    let other = db
        .enqueue_webhook("other", &event("e1"), 1_000)
        .await
        .unwrap();
    assert!(matches!(other, WebhookEnqueue::Created(o) if o != id));
    let WebhookEnqueue::Created(id2) = db.enqueue_webhook(t, &event("e2"), 1_000).await.unwrap()
    else {
        panic!("e2")
    };

    // Claim: oldest first, leased, one attempt more; a second claimer gets the rest only.
    let a = db.claim_webhooks(t, "w1", 2_000, 500, 1).await.unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(
        (a[0].id, a[0].status, a[0].attempts, a[0].available_at_ms),
        (id, WebhookStatus::Processing, 1, 2_500)
    );
    assert_eq!(a[0].lease_owner.as_deref(), Some("w1"));
    let b = db.claim_webhooks(t, "w2", 2_100, 500, 10).await.unwrap();
    assert_eq!(b.iter().map(|d| d.id).collect::<Vec<_>>(), vec![id2]);

    // w2 fails e2: pending again at 9_000 with the status code and error kept.
    assert!(
        db.finish_webhook(
            id2,
            "w2",
            1,
            &WebhookFinish::Retry {
                error: "HTTP 500",
                status_code: Some(500),
                retry_at_ms: 9_000
            },
            2_200
        )
        .await
        .unwrap()
    );
    assert!(
        db.claim_webhooks(t, "w2", 2_400, 500, 10)
            .await
            .unwrap()
            .is_empty(),
        "e2 not due before its retry time, e1 leased"
    );

    // w1's lease runs out; w3 claims e1 again (attempt 2) and w1 can no longer finish it.
    let c = db.claim_webhooks(t, "w3", 3_000, 500, 1).await.unwrap();
    assert_eq!((c[0].id, c[0].attempts), (id, 2));
    assert!(
        !db.finish_webhook(
            id,
            "w1",
            1,
            &WebhookFinish::Delivered { status_code: 200 },
            3_100
        )
        .await
        .unwrap()
    );
    assert!(
        db.finish_webhook(
            id,
            "w3",
            2,
            &WebhookFinish::Delivered { status_code: 204 },
            3_200
        )
        .await
        .unwrap()
    );
    let done = db.webhook_delivery(t, id).await.unwrap().unwrap();
    assert_eq!(done.status, WebhookStatus::Delivered);
    assert_eq!(done.last_status_code, Some(204));
    assert_eq!(done.delivered_at_ms, Some(3_200));
    assert_eq!(done.lease_owner, None);
    // Finishing twice writes nothing.
    assert!(
        !db.finish_webhook(
            id,
            "w3",
            2,
            &WebhookFinish::Delivered { status_code: 200 },
            3_300
        )
        .await
        .unwrap()
    );

    // e2's second attempt dies.
    let d = db.claim_webhooks(t, "w2", 9_000, 500, 10).await.unwrap();
    assert_eq!((d[0].id, d[0].attempts), (id2, 2));
    assert!(
        db.finish_webhook(
            id2,
            "w2",
            2,
            &WebhookFinish::Dead {
                error: "timed out",
                status_code: None
            },
            9_100
        )
        .await
        .unwrap()
    );
    let dead = db
        .webhook_deliveries(t, Some(WebhookStatus::Dead), 10)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("timed out"));
    assert_eq!(dead[0].last_status_code, None);
    assert_eq!(dead[0].attempts, 2);
    // A dead row is never claimed.
    assert!(
        db.claim_webhooks(t, "w2", 99_000, 500, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Newest first; another tenant's rows are invisible.
    let all = db.webhook_deliveries(t, None, 10).await.unwrap();
    assert_eq!(all.iter().map(|d| d.id).collect::<Vec<_>>(), vec![id2, id]);
    assert!(db.webhook_delivery("other", id).await.unwrap().is_none());
    let mut counts = db.webhook_counts(t).await.unwrap();
    counts.sort();
    assert_eq!(
        counts,
        vec![(WebhookStatus::Delivered, 1), (WebhookStatus::Dead, 1)]
    );

    // Replay: only a dead row of this tenant; attempts reset, due at once.
    assert!(!db.replay_dead_webhook(t, id, 10_000).await.unwrap());
    assert!(!db.replay_dead_webhook("other", id2, 10_000).await.unwrap());
    assert!(db.replay_dead_webhook(t, id2, 10_000).await.unwrap());
    let again = db.webhook_delivery(t, id2).await.unwrap().unwrap();
    assert_eq!(
        (again.status, again.attempts, again.available_at_ms),
        (WebhookStatus::Pending, 0, 10_000)
    );
    let e = db.claim_webhooks(t, "w4", 10_000, 500, 10).await.unwrap();
    assert_eq!((e[0].id, e[0].attempts), (id2, 1));
    assert!(
        db.finish_webhook(
            id2,
            "w4",
            1,
            &WebhookFinish::Dead {
                error: "HTTP 410",
                status_code: Some(410)
            },
            10_100
        )
        .await
        .unwrap()
    );
    let WebhookEnqueue::Created(id3) = db.enqueue_webhook(t, &event("e3"), 10_000).await.unwrap()
    else {
        panic!("e3")
    };
    let f = db.claim_webhooks(t, "w4", 10_200, 500, 10).await.unwrap();
    assert!(
        db.finish_webhook(
            id3,
            "w4",
            f[0].attempts,
            &WebhookFinish::Dead {
                error: "HTTP 500",
                status_code: Some(500)
            },
            10_300
        )
        .await
        .unwrap()
    );
    assert_eq!(db.replay_dead_webhooks("other", 11_000).await.unwrap(), 0);
    assert_eq!(db.replay_dead_webhooks(t, 11_000).await.unwrap(), 2);
    assert_eq!(db.replay_dead_webhooks(t, 11_000).await.unwrap(), 0);
    let pending = db
        .webhook_deliveries(t, Some(WebhookStatus::Pending), 10)
        .await
        .unwrap();
    assert_eq!(
        pending.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![id3, id2]
    );
}

/// Many claimers at once over 150 rows: each row is handed to exactly one of them.
async fn concurrent_claims(db: &Db) {
    for i in 0..150 {
        db.enqueue_webhook("race", &event(&format!("r{i}")), 1_000)
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..6 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = db
                    .claim_webhooks("race", &format!("w{w}"), 5_000, 60_000, 7)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch.into_iter().map(|d| d.id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: BTreeSet<_> = all.iter().copied().collect();
    assert_eq!(all.len(), unique.len(), "a row was claimed twice");
    assert_eq!(unique.len(), 150);
}

async fn subscriptions(db: &Db) {
    let t = "subs";
    let fields = UserFields {
        name: "Follower".to_owned(),
        mobile: None,
        email: None,
        avatar: None,
        position: None,
        gender: None,
        status: UserStatus::Active,
    };
    let ident = NewWechatIdentity {
        appid: "wxoa".to_owned(),
        app_kind: AppKind::OfficialAccount,
        openid: "oF1".to_owned(),
        unionid: None,
        nickname: None,
        avatar: None,
    };
    let i = db
        .create_wechat_user(t, &fields, &ident, 1_000)
        .await
        .unwrap();
    let s = db.wechat_subscription(t, i.id).await.unwrap().unwrap();
    assert_eq!((s.subscribed, s.changed_at_ms), (None, None));
    assert!(
        db.set_wechat_subscription(t, i.id, true, 5_000)
            .await
            .unwrap()
    );
    assert!(
        db.set_wechat_subscription(t, i.id, false, 7_000)
            .await
            .unwrap()
    );
    // A subscribe older than the recorded unsubscribe arrives late: nothing changes.
    assert!(
        !db.set_wechat_subscription(t, i.id, true, 6_000)
            .await
            .unwrap()
    );
    let s = db.wechat_subscription(t, i.id).await.unwrap().unwrap();
    assert_eq!((s.subscribed, s.changed_at_ms), (Some(false), Some(7_000)));
    // Another tenant cannot see or touch it.
    assert!(
        db.wechat_subscription("other", i.id)
            .await
            .unwrap()
            .is_none()
    );
    let err = db.set_wechat_subscription("other", i.id, true, 9_000).await;
    assert!(matches!(err, Err(Error::NotFound { .. })), "{err:?}");
}

#[tokio::test]
async fn webhooks_on_sqlite() {
    let (db, _url, _dir) = crate::support::sqlite_file().await;
    behaviour(&db).await;
    concurrent_claims(&db).await;
    subscriptions(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_on_postgres() {
    crate::support::with_postgres(|url| async move {
        let db = Db::connect(&url).await.unwrap();
        db.migrate().await.unwrap();
        behaviour(&db).await;
        concurrent_claims(&db).await;
        subscriptions(&db).await;
        db.close().await;
    })
    .await;
}
