//! The callback inbox over the REST API, on SQLite and PostgreSQL: callbacks delivered to the contacts
//! endpoint are listed (newest first, by status, limited), counted by status, and a dead one is requeued
//! for the dispatch worker (409 for one that is not dead, 404 for none of this tenant's); another
//! tenant's key sees nothing of it.

use std::time::Duration;

use serde_json::{Value, json};
use wx_crypto::{CallbackCrypto, XmlBuilder};
use wx_sim::SimConfig;

use crate::api_env::{ApiEnv, PATIENCE, api_env, backends};
use crate::callbacks::{envelope, q, update_user_event};
use crate::support::send;

/// Delivers `plaintext` to the contacts endpoint, which must answer 200.
async fn deliver(env: &ApiEnv, plaintext: &str) {
    let c = &env.sim.info().corps[0];
    let crypto = CallbackCrypto::new(
        &c.contacts_callback_token,
        &c.contacts_encoding_aes_key,
        &c.corpid,
    )
    .unwrap();
    let (query, body) = envelope(&crypto, plaintext);
    let resp = env
        .http
        .post(format!(
            "{}/callback/{}/wecom/contacts",
            env.base, env.tenant
        ))
        .query(&q(&query))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        200,
        "{}",
        resp.text().await.unwrap()
    );
}

/// The inbox once nothing is pending or processing.
async fn settled(env: &ApiEnv) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let list = env.ok("/callbacks/inbox").await;
        let rows = list["messages"].as_array().unwrap().clone();
        if rows
            .iter()
            .all(|r| !matches!(r["status"].as_str(), Some("pending" | "processing")))
        {
            return rows;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never settled: {list}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn post(env: &ApiEnv, key: Option<&str>, tenant: &str, rest: &str) -> (u16, Value) {
    send(env.http.post(env.url(tenant, rest)), key).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_is_listed_counted_and_a_dead_callback_requeued() {
    for backend in backends() {
        let env = api_env(backend, SimConfig::new(25, 12, 3)).await;
        let userid = env.sim.directory().members[0].userid.clone();
        deliver(&env, &update_user_event(&env.corpid, &userid, "1700000500")).await;
        // A change_contact without its UserID: dead at once (DM007).
        let mut b = XmlBuilder::new();
        b.cdata("ToUserName", &env.corpid)
            .cdata("FromUserName", "sys")
            .text("CreateTime", "1700000501")
            .cdata("MsgType", "event")
            .cdata("Event", "change_contact")
            .cdata("ChangeType", "update_user");
        deliver(&env, &b.finish()).await;

        let rows = settled(&env).await;
        assert_eq!(rows.len(), 2, "{backend}: {rows:?}");
        let (dead, done) = (&rows[0], &rows[1]);
        assert!(dead["id"].as_i64() > done["id"].as_i64(), "newest first");
        assert_eq!(dead["status"], "dead", "{backend}: {dead}");
        assert_eq!(dead["attempts"], 1);
        assert!(
            dead["last_error"].as_str().unwrap().contains("DM007"),
            "{dead}"
        );
        assert_eq!(done["status"], "done", "{backend}: {done}");
        assert_eq!(done["source"], "wecom_contacts");
        assert_eq!(done["kind"], "change_contact");
        assert_eq!(done["outcome"]["change_type"], "update_user", "{done}");
        assert!(done["payload"].as_str().unwrap().contains(&userid));
        let dead_id = dead["id"].as_i64().unwrap();
        let done_id = done["id"].as_i64().unwrap();

        // Filters and limits.
        for (status, expected) in [
            ("dead", vec![dead_id]),
            ("done", vec![done_id]),
            ("pending", vec![]),
        ] {
            let list = env.ok(&format!("/callbacks/inbox?status={status}")).await;
            let ids: Vec<i64> = list["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_i64().unwrap())
                .collect();
            assert_eq!(ids, expected, "{backend}: status={status}");
        }
        let list = env.ok("/callbacks/inbox?limit=1").await;
        assert_eq!(list["messages"].as_array().unwrap().len(), 1);
        let (status, err) = env.get("/callbacks/inbox?status=finished").await;
        assert_eq!(status, 400, "{err}");
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap()
                .contains("pending_webhook")
        );

        let stats = env.ok("/callbacks/stats").await;
        assert_eq!(stats["total"], 2, "{stats}");
        let counts: Vec<(String, i64)> = stats["statuses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["status"].as_str().unwrap().to_owned(),
                    s["count"].as_i64().unwrap(),
                )
            })
            .collect();
        let expected: Vec<(String, i64)> = [
            ("pending", 0),
            ("processing", 0),
            ("pending_webhook", 0),
            ("done", 1),
            ("dead", 1),
        ]
        .into_iter()
        .map(|(s, n)| (s.to_owned(), n))
        .collect();
        assert_eq!(
            counts, expected,
            "{backend}: every status listed, zeros included"
        );

        // Another tenant: its key is refused on this tenant, and its own inbox is empty.
        let (status, _) = env
            .get_as(Some(&env.beta_key), &env.tenant, "/callbacks/inbox")
            .await;
        assert_eq!(status, 401);
        let (status, beta) = env
            .get_as(Some(&env.beta_key), &env.beta, "/callbacks/inbox")
            .await;
        assert_eq!(status, 200);
        assert_eq!(beta["messages"], json!([]), "{backend}: {beta}");
        let (status, _) = env.get_as(None, &env.tenant, "/callbacks/stats").await;
        assert_eq!(status, 401);

        // Requeue refusals.
        let requeue = |id: &str| format!("/callbacks/inbox/{id}/requeue");
        let (status, err) = post(
            &env,
            Some(&env.key),
            &env.tenant,
            &requeue(&done_id.to_string()),
        )
        .await;
        assert_eq!(
            (status, &err["error"]["code"]),
            (409, &json!("not_dead")),
            "{err}"
        );
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap()
                .contains("is done"),
            "{err}"
        );
        let (status, err) = post(&env, Some(&env.key), &env.tenant, &requeue("987654321")).await;
        assert_eq!(status, 404, "{err}");
        let (status, _) = post(&env, Some(&env.key), &env.tenant, &requeue("abc")).await;
        assert_eq!(status, 400);
        let (status, _) = post(
            &env,
            Some(&env.beta_key),
            &env.beta,
            &requeue(&dead_id.to_string()),
        )
        .await;
        assert_eq!(status, 404, "{backend}: another tenant's row is not found");
        let (status, _) = post(
            &env,
            Some(&env.beta_key),
            &env.tenant,
            &requeue(&dead_id.to_string()),
        )
        .await;
        assert_eq!(status, 401);
        let (status, _) = post(&env, None, &env.tenant, &requeue(&dead_id.to_string())).await;
        assert_eq!(status, 401);
        let still = env.ok("/callbacks/inbox?status=dead").await;
        assert_eq!(
            still["messages"][0]["attempts"], 1,
            "{backend}: the refusals changed nothing"
        );

        // Requeue: pending now; the worker claims it again (attempt 2) and, still malformed, it is
        // dead again.
        let (status, ok) = post(
            &env,
            Some(&env.key),
            &env.tenant,
            &requeue(&dead_id.to_string()),
        )
        .await;
        assert_eq!(status, 200, "{ok}");
        assert_eq!(ok, json!({ "id": dead_id, "status": "pending" }));
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let rows = settled(&env).await;
            let row = rows.iter().find(|r| r["id"] == dead_id).unwrap();
            if row["attempts"] == 2 {
                assert_eq!(row["status"], "dead", "{row}");
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never re-claimed: {row}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        env.shutdown().await;
    }
}
