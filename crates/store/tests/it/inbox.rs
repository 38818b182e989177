//! The callback inbox on SQLite and PostgreSQL: dedup on insert, claims with leases that come back,
//! fencing by attempt, retry and dead letters, and concurrent claimers never sharing a row.

use std::collections::BTreeSet;

use store::{Db, InboxInsert, InboxSettle, InboxSettlement, InboxStatus, NewInboxMessage};

fn msg<'a>(tenant: &'a str, key: &'a str) -> NewInboxMessage<'a> {
    NewInboxMessage {
        tenant,
        source: "wecom_contacts",
        dedup_key: key,
        kind: "change_contact",
        payload: "<xml><Event>change_contact</Event></xml>",
        received_at_ms: 1_000,
        status: InboxStatus::Pending,
    }
}

async fn behaviour(db: &Db) {
    let t = "acme";
    let first = db.insert_inbox(&msg(t, "k1")).await.unwrap();
    let InboxInsert::Inserted(id) = first else {
        panic!("first insert: {first:?}")
    };
    assert_eq!(
        db.insert_inbox(&msg(t, "k1")).await.unwrap(),
        InboxInsert::Duplicate
    );
    // The same key in another tenant or source is another message.
    assert!(matches!(
        db.insert_inbox(&msg("other", "k1")).await.unwrap(),
        InboxInsert::Inserted(_)
    ));
    let mut app = msg(t, "k1");
    app.source = "wecom_app:main";
    assert!(matches!(
        db.insert_inbox(&app).await.unwrap(),
        InboxInsert::Inserted(_)
    ));

    // Claim: the oldest first, leased; a second claim before the lease runs out gets the others only.
    let a = db.claim_inbox(t, "w1", 2_000, 500, 1).await.unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].id, id);
    assert_eq!(a[0].status, InboxStatus::Processing);
    assert_eq!(a[0].attempts, 1);
    assert_eq!(a[0].available_at_ms, 2_500);
    let b = db.claim_inbox(t, "w2", 2_100, 500, 10).await.unwrap();
    assert_eq!(b.len(), 1, "only this tenant's rows: {b:?}");
    assert!(b.iter().all(|m| m.id != id && m.tenant == t));
    let other = db.claim_inbox("other", "w9", 2_100, 500, 10).await.unwrap();
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].tenant, "other");
    for m in &b {
        assert!(
            db.finish_inbox(m.id, "w2", 1, InboxStatus::Done, Some("{}"), None, 2_200)
                .await
                .unwrap()
        );
    }

    // w1 stalls past its lease (w2's still holds); w3 claims the row again, and w1 can no longer finish it.
    let c = db.claim_inbox(t, "w3", 2_550, 500, 10).await.unwrap();
    assert_eq!(c.iter().map(|m| m.id).collect::<Vec<_>>(), vec![id]);
    assert_eq!(c[0].attempts, 2);
    assert!(
        !db.finish_inbox(id, "w1", 1, InboxStatus::Done, None, None, 2_700)
            .await
            .unwrap()
    );
    // w3 fails it: pending again, due later, with the error kept.
    assert!(
        db.retry_inbox(id, "w3", 2, "upstream down", 10_000)
            .await
            .unwrap()
    );
    assert!(
        db.claim_inbox(t, "w4", 9_999, 500, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let d = db.claim_inbox(t, "w4", 10_000, 500, 10).await.unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].last_error.as_deref(), Some("upstream down"));
    assert!(
        db.finish_inbox(
            id,
            "w4",
            3,
            InboxStatus::Dead,
            None,
            Some("gave up"),
            10_100
        )
        .await
        .unwrap()
    );
    let dead = db
        .inbox_messages(t, Some(InboxStatus::Dead), 10)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("gave up"));
    assert_eq!(dead[0].finished_at_ms, Some(10_100));
    // A dead row is never claimed, until an operator requeues it.
    assert!(
        db.claim_inbox(t, "w5", 99_999, 500, 10)
            .await
            .unwrap()
            .iter()
            .all(|m| m.id != id)
    );
    assert!(db.requeue_dead_inbox(t, id, 100_000).await.unwrap());
    assert!(!db.requeue_dead_inbox("other", id, 100_000).await.unwrap());
    let e = db.claim_inbox(t, "w5", 100_000, 500, 10).await.unwrap();
    assert!(e.iter().any(|m| m.id == id && m.attempts == 4));

    let counts = db.inbox_counts(t).await.unwrap();
    assert_eq!(
        counts.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![InboxStatus::Done, InboxStatus::Processing],
        "{counts:?}"
    );
}

/// A group commit: one result per message in order, a repeat inside the batch is a duplicate, and rows
/// stored for the webhook are never claimed by the dispatcher.
async fn batch(db: &Db) {
    let t = "batch";
    let mut webhook = msg(t, "w1");
    webhook.status = InboxStatus::PendingWebhook;
    let got = db
        .insert_inbox_batch(&[msg(t, "b1"), webhook, msg(t, "b1"), msg(t, "b2")])
        .await
        .unwrap();
    assert!(matches!(got[0], InboxInsert::Inserted(_)));
    assert!(matches!(got[1], InboxInsert::Inserted(_)));
    assert_eq!(got[2], InboxInsert::Duplicate);
    assert!(matches!(got[3], InboxInsert::Inserted(_)));
    let claimed = db
        .claim_inbox(t, "wb", i64::MAX / 2, 1, 10_000)
        .await
        .unwrap();
    let claimed: Vec<_> = claimed.iter().filter(|m| m.tenant == t).collect();
    assert_eq!(claimed.len(), 2, "{claimed:?}");
    assert!(claimed.iter().all(|m| m.dedup_key.starts_with('b')));
}

/// Who a batch input's key belongs to when it is not new: an earlier input of the batch, or a row
/// stored before the batch (by its key).
#[derive(Clone, Copy, Debug)]
enum Owner {
    Input(usize),
    Stored(&'static str),
}

/// A group commit of 300 callbacks, written in chunks of 128 (rows 0-127, 128-255, 256-299): repeats
/// inside one chunk, repeats across chunks (row 5 and row 200; 127 and 128 on the boundary), keys stored
/// before the batch, and the same key under another source. Each input gets its exact outcome, and a
/// duplicate's key holds the row of its first occurrence (its payload, its id).
async fn batch_across_chunks(db: &Db) {
    let t = "chunks";
    for k in ["pre0", "pre1", "pre2"] {
        let mut m = msg(t, k);
        let payload = format!("stored-{k}");
        m.payload = &payload;
        assert!(matches!(
            db.insert_inbox(&m).await.unwrap(),
            InboxInsert::Inserted(_)
        ));
    }

    let mut keys: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
    let dups: &[(usize, Owner)] = &[
        // Inside one chunk.
        (20, Owner::Input(10)),
        (131, Owner::Input(130)),
        (150, Owner::Input(140)),
        (160, Owner::Input(140)),
        // Across chunks.
        (200, Owner::Input(5)),
        (128, Owner::Input(127)),
        (256, Owner::Input(255)),
        (299, Owner::Input(0)),
        (290, Owner::Input(140)),
        // Stored before the batch (and one of them repeated inside the last chunk).
        (50, Owner::Stored("pre0")),
        (129, Owner::Stored("pre1")),
        (280, Owner::Stored("pre2")),
        (281, Owner::Stored("pre2")),
    ];
    for &(i, owner) in dups {
        keys[i] = match owner {
            Owner::Input(j) => format!("k{j}"),
            Owner::Stored(k) => k.to_string(),
        };
    }
    let payloads: Vec<String> = (0..300).map(|i| format!("p{i}")).collect();
    let mut msgs: Vec<NewInboxMessage<'_>> = (0..300)
        .map(|i| {
            let mut m = msg(t, &keys[i]);
            m.payload = &payloads[i];
            m.received_at_ms = 1_000 + i as i64;
            m
        })
        .collect();
    // The same key under another source is another message, in the same chunk as its namesake.
    msgs[60].source = "wecom_app:main";
    msgs[60].dedup_key = "k5";
    let distinct_new = 300 - dups.len();

    let got = db.insert_inbox_batch(&msgs).await.unwrap();
    assert_eq!(got.len(), 300);

    let stored = db.inbox_messages(t, None, 10_000).await.unwrap();
    assert_eq!(stored.len(), 3 + distinct_new, "final row count");
    let by_key: std::collections::HashMap<(&str, &str), &store::InboxMessage> = stored
        .iter()
        .map(|m| ((m.source.as_str(), m.dedup_key.as_str()), m))
        .collect();
    assert_eq!(by_key.len(), stored.len(), "a key stored twice");

    for (i, m) in msgs.iter().enumerate() {
        let row = by_key[&(m.source, m.dedup_key)];
        match dups.iter().find(|(d, _)| *d == i).map(|(_, o)| *o) {
            None => {
                assert_eq!(got[i], InboxInsert::Inserted(row.id), "input {i}");
                assert_eq!(row.payload, payloads[i], "input {i}");
                assert_eq!(row.received_at_ms, 1_000 + i as i64, "input {i}");
                assert_eq!(row.status, InboxStatus::Pending, "input {i}");
                let one = db.inbox_message(t, row.id).await.unwrap().unwrap();
                assert_eq!(one.dedup_key, m.dedup_key, "input {i}");
            }
            Some(Owner::Input(j)) => {
                assert_eq!(got[i], InboxInsert::Duplicate, "input {i}");
                assert_eq!(got[j], InboxInsert::Inserted(row.id), "input {i} -> {j}");
                assert_eq!(row.payload, payloads[j], "input {i} -> {j}");
            }
            Some(Owner::Stored(k)) => {
                assert_eq!(got[i], InboxInsert::Duplicate, "input {i}");
                assert_eq!(row.payload, format!("stored-{k}"), "input {i} -> {k}");
                assert_eq!(row.received_at_ms, 1_000, "input {i} -> {k}");
            }
        }
    }
}

/// Many claimers at once over 200 rows: each row is handed to exactly one of them.
async fn concurrent_claims(db: &Db) {
    let t = "race";
    for i in 0..200 {
        db.insert_inbox(&msg(t, &format!("r{i}"))).await.unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..6 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = db
                    .claim_inbox("race", &format!("w{w}"), 5_000, 60_000, 7)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch.into_iter().map(|m| m.id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: BTreeSet<_> = all.iter().copied().collect();
    assert_eq!(all.len(), unique.len(), "a row was claimed twice");
    assert_eq!(unique.len(), 200);
}

/// A whole claim settled at once (more rows than one settle statement takes): each row finished done or
/// dead, or put back for a retry, exactly as asked; a row whose claim moved on is reported false and
/// left as the other worker has it; a retry keeps the outcome and finish time the row already had.
async fn settle_claim(db: &Db) {
    let t = "settle";
    let keys: Vec<String> = (0..300).map(|i| format!("s{i}")).collect();
    let msgs: Vec<_> = keys.iter().map(|k| msg(t, k)).collect();
    db.insert_inbox_batch(&msgs).await.unwrap();
    let rows = db.claim_inbox(t, "w1", 2_000, 1_000, 300).await.unwrap();
    assert_eq!(rows.len(), 300);
    // w1's lease runs out and w2 takes the oldest row over before w1 settles.
    let taken = db.claim_inbox(t, "w2", 3_000, 1_000, 1).await.unwrap();
    assert_eq!(
        taken.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![rows[0].id]
    );
    let stolen = 0;

    let outcomes: Vec<String> = (0..300).map(|i| format!("{{\"n\":{i}}}")).collect();
    let items: Vec<InboxSettlement> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| InboxSettlement {
            id: r.id,
            attempt: r.attempts,
            settle: match i % 3 {
                0 => InboxSettle::Finish {
                    status: InboxStatus::Done,
                    outcome: Some(outcomes[i].clone()),
                    error: None,
                },
                1 => InboxSettle::Finish {
                    status: InboxStatus::Dead,
                    outcome: None,
                    error: Some("bad payload".to_owned()),
                },
                _ => InboxSettle::Retry {
                    error: "upstream down".to_owned(),
                    at_ms: 50_000 + i as i64,
                },
            },
        })
        .collect();
    let written = db.settle_inbox("w1", 2_900, &items).await.unwrap();
    assert_eq!(written.len(), 300);
    for (i, w) in written.iter().enumerate() {
        assert_eq!(*w, i != stolen, "row {i}");
    }
    let all = db.inbox_messages(t, None, 1_000).await.unwrap();
    assert_eq!(all.len(), 300);
    for (i, r) in rows.iter().enumerate() {
        let m = all.iter().find(|m| m.id == r.id).unwrap();
        if i == stolen {
            assert_eq!(m.status, InboxStatus::Processing, "w2 still has it");
            assert_eq!(m.claimed_by.as_deref(), Some("w2"));
            assert_eq!(m.attempts, 2);
            continue;
        }
        match i % 3 {
            0 => {
                assert_eq!(m.status, InboxStatus::Done, "row {i}");
                assert_eq!(m.outcome.as_deref(), Some(outcomes[i].as_str()));
                assert_eq!(m.last_error, None);
                assert_eq!(m.finished_at_ms, Some(2_900));
            }
            1 => {
                assert_eq!(m.status, InboxStatus::Dead, "row {i}");
                assert_eq!(m.last_error.as_deref(), Some("bad payload"));
                assert_eq!(m.finished_at_ms, Some(2_900));
            }
            _ => {
                assert_eq!(m.status, InboxStatus::Pending, "row {i}");
                assert_eq!(m.last_error.as_deref(), Some("upstream down"));
                assert_eq!(m.available_at_ms, 50_000 + i as i64);
                assert_eq!(m.finished_at_ms, None);
            }
        }
    }
    // Nothing to settle writes nothing.
    assert!(db.settle_inbox("w1", 3_000, &[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn inbox_on_sqlite() {
    let (db, _url, _dir) = crate::support::sqlite_file().await;
    behaviour(&db).await;
    concurrent_claims(&db).await;
    batch(&db).await;
    batch_across_chunks(&db).await;
    settle_claim(&db).await;
}

#[tokio::test]
async fn inbox_on_postgres() {
    crate::support::with_postgres(|url| async move {
        let db = Db::connect(&url).await.unwrap();
        db.migrate().await.unwrap();
        behaviour(&db).await;
        concurrent_claims(&db).await;
        batch(&db).await;
        batch_across_chunks(&db).await;
        settle_claim(&db).await;
        db.close().await;
    })
    .await;
}
