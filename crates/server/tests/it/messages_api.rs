//! Message push over HTTP, on SQLite and PostgreSQL: POST answers 202 and the worker started by
//! `serve_on` delivers to the simulator; the status shows the call's msgid and invalid recipients as local
//! ids; an idempotency key replays (same id) and conflicts (409); bad bodies, unknown apps and missing keys
//! are refused; recall reaches the simulator; two replicas on one database send a burst exactly once.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use wx_sim::SimConfig;

use crate::api_env::{ApiEnv, PATIENCE, api_env, backends};
use crate::support::send;

async fn post(env: &ApiEnv, key: Option<&str>, rest: &str, body: &Value) -> (u16, Value) {
    let req = env
        .http
        .post(env.url(&env.tenant, rest))
        .header("content-type", "application/json")
        .body(body.to_string());
    send(req, key).await
}

/// Poll the message until the worker has finished with it.
async fn finished(env: &ApiEnv, id: i64) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let view = env.ok(&format!("/messages/{id}")).await;
        let status = view["status"].as_str().unwrap().to_owned();
        if !matches!(status.as_str(), "queued" | "sending") {
            return view;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "message {id} never finished: {view}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_accepted_sent_reported_and_recalled_over_http() {
    for backend in backends() {
        let env = api_env(backend, SimConfig::new(21, 30, 5)).await;
        env.sync_to_end("").await;
        let snap = env.sim.directory();
        let member = &snap.members[0];
        let gone = &snap.members[1];
        let user = env.ok(&format!("/wecom/users/{}", member.userid)).await["id"]
            .as_i64()
            .unwrap();
        let gone_user = env.ok(&format!("/wecom/users/{}", gone.userid)).await["id"]
            .as_i64()
            .unwrap();
        env.sim.remove_member(&gone.userid).unwrap();
        let dept = member.department[0];
        let role = env.ok(&format!("/wecom/departments/{dept}")).await["id"]
            .as_i64()
            .unwrap();

        let key = unique("http");
        let body = json!({
            "app": "main",
            "idempotency_key": key,
            "to": { "users": [user, gone_user], "roles": [{ "id": role, "sub_roles": false }] },
            "message": { "kind": "markdown", "content": "**hello**" }
        });
        let (status, accepted) = post(&env, Some(&env.key), "/messages", &body).await;
        assert_eq!(status, 202, "{backend}: {accepted}");
        let id = accepted["message_id"].as_i64().unwrap();
        assert_eq!(accepted["replayed"], false);

        // Replay: same id; another body with the key: 409.
        let (status, again) = post(&env, Some(&env.key), "/messages", &body).await;
        assert_eq!((status, again["message_id"].as_i64()), (202, Some(id)));
        assert_eq!(again["replayed"], true);
        let mut other = body.clone();
        other["message"]["content"] = json!("changed");
        let (status, err) = post(&env, Some(&env.key), "/messages", &other).await;
        assert_eq!(status, 409, "{err}");
        assert_eq!(err["error"]["code"], "idempotency_key_reused");

        let view = finished(&env, id).await;
        assert_eq!(view["status"], "partial", "{backend}: {view}");
        let msgid = view["calls"][0]["msgid"].as_str().unwrap().to_owned();
        let stats = env.sim.stats();
        let sent = stats.messages.iter().find(|m| m.msgid == msgid).unwrap();
        assert_eq!(sent.msgtype, "markdown");
        let expected: BTreeSet<String> = snap
            .members
            .iter()
            .filter(|m| m.department.contains(&dept) && m.userid != gone.userid)
            .map(|m| m.userid.clone())
            .chain([member.userid.clone()])
            .collect();
        let got: BTreeSet<String> = sent.recipients.iter().cloned().collect();
        assert_eq!(got, expected, "{backend}");
        let invalid: Vec<(i64, &str)> = view["invalid_recipients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["id"].as_i64().unwrap(), r["reason"].as_str().unwrap()))
            .collect();
        assert_eq!(
            invalid,
            vec![(gone_user, "invaliduser")],
            "{backend}: {view}"
        );
        assert_eq!(
            stats
                .messages
                .iter()
                .filter(|m| m.body["markdown"]["content"] == "**hello**")
                .count(),
            1,
            "{backend}: sent once"
        );

        // The list shows it; recall reaches the simulator.
        let list = env.ok("/messages?limit=5").await;
        assert_eq!(list["messages"][0]["id"].as_i64(), Some(id));
        let (status, recalled) = post(
            &env,
            Some(&env.key),
            &format!("/messages/{id}/recall"),
            &json!({}),
        )
        .await;
        assert_eq!(status, 200, "{recalled}");
        assert_eq!(recalled["results"][0]["result"], "recalled");
        let stats = env.sim.stats();
        assert!(
            stats
                .messages
                .iter()
                .find(|m| m.msgid == msgid)
                .unwrap()
                .recalled
        );

        // Refusals.
        let (status, err) = post(&env, None, "/messages", &body).await;
        assert_eq!(status, 401, "{err}");
        let mut no_one = body.clone();
        no_one["idempotency_key"] = json!(unique("x"));
        no_one["to"] = json!({});
        let (status, err) = post(&env, Some(&env.key), "/messages", &no_one).await;
        assert_eq!(status, 400, "{err}");
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no recipients")
        );
        let mut bad_app = body.clone();
        bad_app["idempotency_key"] = json!(unique("x"));
        bad_app["app"] = json!("nope");
        let (status, err) = post(&env, Some(&env.key), "/messages", &bad_app).await;
        assert_eq!(status, 400, "{err}");
        assert!(err["error"]["message"].as_str().unwrap().contains("`nope`"));
        let (status, err) = post(&env, Some(&env.key), "/messages", &json!([1])).await;
        assert_eq!(status, 400, "{err}");
        let mut bad_kind = body.clone();
        bad_kind["idempotency_key"] = json!(unique("x"));
        bad_kind["message"] = json!({ "kind": "voice", "media_id": "m" });
        let (status, err) = post(&env, Some(&env.key), "/messages", &bad_kind).await;
        assert_eq!(status, 400, "{err}");
        let (status, _) = env.get("/messages/987654321").await;
        assert_eq!(status, 404);
        let (status, _) = env
            .get_as(Some(&env.beta_key), &env.beta, &format!("/messages/{id}"))
            .await;
        assert_eq!(status, 404, "another tenant does not see it");

        env.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_send_a_burst_exactly_once() {
    for backend in backends() {
        let env = api_env(backend, SimConfig::new(22, 20, 4)).await;
        env.sync_to_end("").await;
        let replica = env.replica().await;
        let userid = env.sim.directory().members[0].userid.clone();
        let user = env.ok(&format!("/wecom/users/{userid}")).await["id"]
            .as_i64()
            .unwrap();
        let mut ids = Vec::new();
        for i in 0..40 {
            // Accepted through either replica.
            let target = if i % 2 == 0 { &env } else { &replica };
            let body = json!({
                "app": "main",
                "idempotency_key": unique("burst"),
                "to": { "users": [user] },
                "message": { "kind": "text", "content": format!("burst {i}") }
            });
            let (status, accepted) = post(target, Some(&env.key), "/messages", &body).await;
            assert_eq!(status, 202, "{accepted}");
            ids.push(accepted["message_id"].as_i64().unwrap());
        }
        for id in &ids {
            let view = finished(&env, *id).await;
            assert_eq!(view["status"], "sent", "{backend}: {view}");
        }
        let mut bodies: Vec<String> = env
            .sim
            .stats()
            .messages
            .iter()
            .filter_map(|m| m.body["text"]["content"].as_str().map(str::to_owned))
            .filter(|c| c.starts_with("burst "))
            .collect();
        bodies.sort();
        let mut expected: Vec<String> = (0..40).map(|i| format!("burst {i}")).collect();
        expected.sort();
        assert_eq!(bodies, expected, "{backend}: every message exactly once");
        replica.shutdown().await;
        env.shutdown().await;
    }
}

/// `/api/v1/messages...` with the tenant taken from the API key.
async fn by_key(
    env: &ApiEnv,
    method: &str,
    key: Option<&str>,
    rest: &str,
    body: &Value,
) -> (u16, Value) {
    let url = format!("{}/api/v1/messages{rest}", env.base);
    let req = match method {
        "GET" => env.http.get(url),
        _ => env
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string()),
    };
    send(req, key).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_only_routes_use_the_keys_tenant_and_hide_other_tenants_messages() {
    for backend in backends() {
        let env = api_env(backend, SimConfig::new(24, 12, 3)).await;
        env.sync_to_end("").await;
        let userid = env.sim.directory().members[0].userid.clone();
        let user = env.ok(&format!("/wecom/users/{userid}")).await["id"]
            .as_i64()
            .unwrap();
        let body = json!({
            "app": "main",
            "idempotency_key": unique("alias"),
            "to": { "users": [user] },
            "message": { "kind": "text", "content": "by key" }
        });
        let (status, accepted) = by_key(&env, "POST", Some(&env.key), "", &body).await;
        assert_eq!(status, 202, "{backend}: {accepted}");
        let id = accepted["message_id"].as_i64().unwrap();
        assert_eq!(accepted["status_url"], format!("/api/v1/messages/{id}"));
        // It is in the key's tenant's outbox, seen through both routes.
        let view = finished(&env, id).await;
        assert_eq!(view["status"], "sent", "{backend}: {view}");
        let (status, same) =
            by_key(&env, "GET", Some(&env.key), &format!("/{id}"), &Value::Null).await;
        assert_eq!(status, 200, "{same}");
        assert_eq!(
            (same["id"].as_i64(), &same["status"]),
            (Some(id), &view["status"])
        );
        let sent = env.sim.stats();
        let sent: Vec<_> = sent
            .messages
            .iter()
            .filter(|m| m.body["text"]["content"] == "by key")
            .collect();
        assert_eq!(sent.len(), 1, "{backend}");
        assert_eq!(sent[0].recipients, vec![userid.clone()]);

        // The other tenant's key: its own tenant has no message `id`, for reading or recalling.
        let (status, err) = by_key(
            &env,
            "GET",
            Some(&env.beta_key),
            &format!("/{id}"),
            &Value::Null,
        )
        .await;
        assert_eq!(status, 404, "{backend}: {err}");
        let (status, err) = by_key(
            &env,
            "POST",
            Some(&env.beta_key),
            &format!("/{id}/recall"),
            &json!({}),
        )
        .await;
        assert_eq!(status, 404, "{backend}: {err}");
        assert!(
            !env.sim.stats().messages.iter().any(|m| m.recalled),
            "{backend}: nothing recalled"
        );
        // A key of no tenant, or none: 401, nothing stored.
        let mut other = body.clone();
        other["idempotency_key"] = json!(unique("alias"));
        for key in [Some("wxb_not_a_key_of_anyone_0123456789"), None] {
            let (status, err) = by_key(&env, "POST", key, "", &other).await;
            assert_eq!(status, 401, "{backend}: {err}");
            assert_eq!(err["error"]["code"], "unauthorized", "{err}");
            let (status, _) = by_key(&env, "GET", key, &format!("/{id}"), &Value::Null).await;
            assert_eq!(status, 401);
        }
        let list = env.ok("/messages?limit=10").await;
        assert_eq!(
            list["messages"].as_array().unwrap().len(),
            1,
            "{backend}: {list}"
        );

        // Recall through the key's route reaches the simulator.
        let (status, recalled) = by_key(
            &env,
            "POST",
            Some(&env.key),
            &format!("/{id}/recall"),
            &json!({}),
        )
        .await;
        assert_eq!(status, 200, "{backend}: {recalled}");
        assert_eq!(recalled["results"][0]["result"], "recalled");
        env.shutdown().await;
    }
}
