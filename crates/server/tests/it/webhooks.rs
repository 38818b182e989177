//! Business webhooks end to end, with the server's own workers: a change made in the simulator reaches the
//! local directory through the contacts callback AND a signed `contact.user.updated` reaches a test
//! receiver (then `contact.department.updated` and `contact.tag.updated` with their local roles); a subscribe pushed by the simulator's official account creates the identity and raises
//! `user.subscribed`, a text message `message.received`, an unsubscribe `user.unsubscribed`; a delivery the
//! receiver refuses is a dead letter listed over REST and delivered by a replay; users joined by a
//! unionid learned late (on a second subscribe, or by a follower backfill) raise `user.merged`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use wx_crypto::XmlBuilder;
use wx_sim::{AgentRef, CallbackRequest};
use wxbridge_config::FileSecret;
use wxbridge_config::file::WebhookFile;

use crate::api_env::backends;
use crate::callbacks::{Env, env_edited};

const SECRET: &str = "server-test-webhook-secret-42";
/// Guards against a hang; not a performance assertion.
const DEADLINE: Duration = Duration::from_secs(60);

#[derive(Clone, Default)]
struct Hook {
    /// Statuses to answer, in order; 200 once empty.
    script: Arc<Mutex<VecDeque<u16>>>,
    seen: Arc<Mutex<Vec<(HeaderMap, String)>>>,
}

async fn receive(State(h): State<Hook>, headers: HeaderMap, body: String) -> StatusCode {
    h.seen.lock().unwrap().push((headers, body));
    let code = h.script.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(code).unwrap()
}

impl Hook {
    async fn start(answers: &[u16]) -> (Hook, String) {
        let hook = Hook::default();
        hook.script.lock().unwrap().extend(answers.iter().copied());
        let router = Router::new()
            .route("/hook", post(receive))
            .with_state(hook.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        (hook, format!("http://{addr}/hook"))
    }

    /// Waits for the first POST of event type `kind` (with `n` POSTs of it at least); checks its signature
    /// and headers; its JSON body.
    async fn wait_for(&self, kind: &str, n: usize) -> Value {
        let start = Instant::now();
        loop {
            let seen: Vec<_> = self
                .seen
                .lock()
                .unwrap()
                .iter()
                .filter(|(h, _)| h["x-wxbridge-event"] == kind)
                .cloned()
                .collect();
            if seen.len() >= n {
                let (headers, body) = &seen[n - 1];
                verify(headers, body);
                let json: Value = serde_json::from_str(body).unwrap();
                assert_eq!(json["type"], kind);
                assert_eq!(headers["x-wxbridge-delivery"], json["id"].as_str().unwrap());
                return json;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "no {kind} webhook (#{n}); got {:?}",
                self.seen
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|(_, b)| b.clone())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The receiver's check: HMAC-SHA256(secret, timestamp + "." + body), computed here independently.
fn verify(headers: &HeaderMap, body: &str) {
    let ts = headers["x-wxbridge-timestamp"].to_str().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (ts.parse::<i64>().unwrap() - now).abs() < 300,
        "a fresh timestamp: {ts}"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{ts}.{body}").as_bytes());
    let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(headers["x-wxbridge-signature"].to_str().unwrap(), want);
}

/// A served env whose tenant has a webhook to `url` (every event) and the returned API key.
async fn env(backend: &str, url: &str, max_attempts: u32) -> (Env, String) {
    let (key, hash) = server::auth::generate_api_key();
    let env = env_edited(backend, true, |t| {
        t.api_key_hashes = vec![hash.to_file_string()];
        t.webhook = Some(WebhookFile {
            url: url.to_owned(),
            secret: Some(FileSecret::new(SECRET)),
            max_attempts,
            timeout_secs: 5,
            ..WebhookFile::default()
        });
    })
    .await;
    (env, key)
}

/// The official account's callback, registered (the simulator verifies the URL first).
async fn register_official_account(env: &Env) -> wx_sim::OfficialAccountInfo {
    let oa = env.sim.info().wechat.official_accounts[0].clone();
    env.sim
        .register_callback(CallbackRequest {
            appid: Some(oa.appid.clone()),
            url: format!(
                "{}/callback/{}/wechat/official-accounts/{}",
                env.base, env.tenant, oa.name
            ),
            ..CallbackRequest::default()
        })
        .await
        .unwrap();
    oa
}

/// Have the simulator push `xml` from the official account and wait until it is acknowledged.
async fn push_from(env: &Env, oa: &wx_sim::OfficialAccountInfo, xml: &str) {
    env.sim
        .push_callback(
            &CallbackRequest {
                appid: Some(oa.appid.clone()),
                ..CallbackRequest::default()
            },
            xml,
        )
        .unwrap();
    env.sim.wait_for_deliveries().await;
    let d = env.sim.deliveries().pop().unwrap();
    assert!(d.delivered, "{d:?}");
}

fn oa_event(oa: &wx_sim::OfficialAccountInfo, openid: &str, at: &str, event: &str) -> String {
    let mut b = XmlBuilder::new();
    b.cdata("ToUserName", &oa.original_id)
        .cdata("FromUserName", openid)
        .text("CreateTime", at)
        .cdata("MsgType", "event")
        .cdata("Event", event)
        .cdata("EventKey", "");
    b.finish()
}

#[tokio::test]
async fn a_change_in_the_simulator_reaches_the_directory_and_a_signed_webhook() {
    for backend in backends() {
        let (hook, url) = Hook::start(&[]).await;
        let (env, _key) = env(backend, &url, 3).await;
        env.sim
            .register_callback(CallbackRequest {
                agentid: Some(AgentRef::Named("contacts".into())),
                url: env.contacts_url(),
                ..CallbackRequest::default()
            })
            .await
            .unwrap();
        let userid = env.sim.directory().members[3].userid.clone();
        env.sim
            .update_member(
                &userid,
                wx_sim::MemberUpdate {
                    name: Some("回调改名".into()),
                    ..wx_sim::MemberUpdate::default()
                },
            )
            .unwrap();

        let body = hook.wait_for("contact.user.updated", 1).await;
        assert_eq!(body["tenant"], env.tenant.as_str());
        let data = &body["data"];
        assert_eq!(data["userid"], userid.as_str(), "{backend}: {data}");
        assert_eq!(data["change_type"], "update_user");
        assert_eq!(data["source"], "wecom_contacts");
        assert_eq!(data["corpid"], env.corpid.as_str());
        // The local user as the apply left it: the webhook names it by its local id.
        let user = env
            .db
            .user_by_wecom_userid(&env.tenant, &env.corpid, &userid)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(user.name, "回调改名");
        assert_eq!(data["user_id"], user.id.get(), "{backend}: {data}");
        let rows = env.wait_inbox_settled().await;
        assert_eq!(rows.len(), 1, "{backend}: {rows:?}");
        let outcome: Value = serde_json::from_str(rows[0].outcome.as_deref().unwrap()).unwrap();
        assert_eq!(
            outcome["webhooks"],
            serde_json::json!([format!("inbox:{}:contact.user.updated", rows[0].id)])
        );

        // A department renamed: contact.department.updated with the local role.
        let dept = env.sim.directory().departments[1].id;
        env.sim
            .update_department(
                dept,
                wx_sim::DepartmentUpdate {
                    name: Some("回调部门".into()),
                    ..wx_sim::DepartmentUpdate::default()
                },
            )
            .unwrap();
        let data = hook.wait_for("contact.department.updated", 1).await["data"].clone();
        assert_eq!(data["department_id"], dept, "{backend}: {data}");
        let role = env
            .db
            .role_by_department(&env.tenant, &env.corpid, i64::from(dept))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(role.name, "回调部门");
        assert_eq!(data["role_id"], role.id.get(), "{backend}: {data}");

        // A member added to a tag: contact.tag.updated with the tag's role and the userids.
        let tag = env.sim.directory().tags[0].tagid;
        env.sim
            .update_tag(
                tag,
                wx_sim::TagUpdate {
                    add_users: vec![userid.clone()],
                    ..wx_sim::TagUpdate::default()
                },
            )
            .unwrap();
        let data = hook.wait_for("contact.tag.updated", 1).await["data"].clone();
        assert_eq!(data["tagid"], tag, "{backend}: {data}");
        assert_eq!(data["add_userids"], serde_json::json!([userid]), "{data}");
        let role = env
            .db
            .role_by_tag(&env.tenant, &env.corpid, i64::from(tag))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(data["role_id"], role.id.get(), "{backend}: {data}");
        env.shutdown().await;
    }
}

#[tokio::test]
async fn official_account_subscribe_message_and_unsubscribe_reach_the_graph_and_the_webhook() {
    let (hook, url) = Hook::start(&[]).await;
    let (env, _key) = env("sqlite", &url, 3).await;
    let oa = register_official_account(&env).await;
    let openid = env
        .sim
        .wechat_openids(&oa.appid)
        .into_iter()
        .find(|(_, follows)| *follows)
        .unwrap()
        .0;
    assert!(
        env.db
            .wechat_identity_by_openid(&env.tenant, &oa.appid, &openid)
            .await
            .unwrap()
            .is_none()
    );

    push_from(
        &env,
        &oa,
        &oa_event(&oa, &openid, "1700000200", "subscribe"),
    )
    .await;
    let body = hook.wait_for("user.subscribed", 1).await;
    let data = &body["data"];
    assert_eq!(data["openid"], openid.as_str());
    assert_eq!(data["appid"], oa.appid.as_str());
    assert_eq!(data["created_identity"], true, "{data}");
    // user/info gave the unionid.
    assert!(
        data["unionid"].as_str().is_some_and(|u| !u.is_empty()),
        "{data}"
    );
    let identity = env
        .db
        .wechat_identity_by_openid(&env.tenant, &oa.appid, &openid)
        .await
        .unwrap()
        .expect("the subscribe created the identity");
    assert_eq!(data["user_id"], identity.user_id.get());
    assert_eq!(data["identity_id"], identity.id.get());
    assert_eq!(identity.unionid.as_deref(), data["unionid"].as_str());
    let sub = env
        .db
        .wechat_subscription(&env.tenant, identity.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sub.subscribed, Some(true));
    assert_eq!(sub.changed_at_ms, Some(1_700_000_200_000));

    // A text message from the same follower: message.received, with the local user.
    let mut b = XmlBuilder::new();
    b.cdata("ToUserName", &oa.original_id)
        .cdata("FromUserName", &openid)
        .text("CreateTime", "1700000201")
        .cdata("MsgType", "text")
        .cdata("Content", "订单查询")
        .text("MsgId", "9876543210");
    push_from(&env, &oa, &b.finish()).await;
    let body = hook.wait_for("message.received", 1).await;
    let data = &body["data"];
    assert_eq!(data["from_user"], openid.as_str());
    assert_eq!(data["user_id"], identity.user_id.get());
    assert_eq!(data["msg_type"], "text");
    assert_eq!(data["msg_id"], "9876543210");
    assert_eq!(data["fields"]["Content"], "订单查询");
    assert_eq!(data["source"], format!("wechat_oa:{}", oa.name));

    push_from(
        &env,
        &oa,
        &oa_event(&oa, &openid, "1700000300", "unsubscribe"),
    )
    .await;
    let body = hook.wait_for("user.unsubscribed", 1).await;
    assert_eq!(body["data"]["user_id"], identity.user_id.get());
    assert_eq!(body["data"]["created_identity"], false);
    let sub = env
        .db
        .wechat_subscription(&env.tenant, identity.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sub.subscribed, Some(false));
    for r in env.wait_inbox_settled().await {
        assert_eq!(r.status, store::InboxStatus::Done, "{r:?}");
    }
    env.shutdown().await;
}

#[tokio::test]
async fn dead_letters_are_listed_and_replayed_over_rest() {
    // The receiver refuses the first attempt; with max_attempts = 1 that is a dead letter.
    let (hook, url) = Hook::start(&[500]).await;
    let (env, key) = env("sqlite", &url, 1).await;
    let oa = register_official_account(&env).await;
    let api = |rest: &str| format!("{}/api/v1/tenants/{}/webhooks{rest}", env.base, env.tenant);
    let get = |rest: String| {
        let req = env.http.get(api(&rest)).bearer_auth(&key);
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            assert!(!text.contains(SECRET), "the secret is never answered");
            (status, serde_json::from_str::<Value>(&text).unwrap())
        }
    };
    let post = |rest: String| {
        let req = env.http.post(api(&rest)).bearer_auth(&key);
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap())
        }
    };

    push_from(
        &env,
        &oa,
        &oa_event(&oa, "oSomeoneNew", "1700000400", "CLICK"),
    )
    .await;
    hook.wait_for("event.received", 1).await;
    let start = Instant::now();
    let dead = loop {
        let (status, json) = get("/deliveries?status=dead".into()).await;
        assert_eq!(status, 200, "{json}");
        if let Some(d) = json["deliveries"].as_array().unwrap().first() {
            break d.clone();
        }
        assert!(start.elapsed() < DEADLINE, "never dead: {json}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dead["status"], "dead");
    assert_eq!(dead["attempts"], 1);
    assert_eq!(dead["last_status_code"], 500);
    assert!(
        dead["last_error"].as_str().unwrap().starts_with("HTTP 500"),
        "{dead}"
    );
    assert_eq!(dead["event_type"], "event.received");
    assert_eq!(dead["payload"]["data"]["event"], "CLICK");
    let id = dead["id"].as_i64().unwrap();

    let (_, all) = get("/deliveries".into()).await;
    let counts = all["counts"].as_array().unwrap();
    let count = |s: &str| {
        counts
            .iter()
            .find(|c| c["status"] == s)
            .map(|c| c["count"].as_i64().unwrap())
    };
    assert_eq!(count("dead"), Some(1), "{all}");
    assert_eq!(count("delivered"), Some(0), "{all}");
    let (status, one) = get(format!("/deliveries/{id}")).await;
    assert_eq!((status, &one["id"]), (200, &dead["id"]));
    assert_eq!(get(format!("/deliveries/{}", id + 999)).await.0, 404);
    assert_eq!(get("/deliveries?status=lost".into()).await.0, 400);
    assert_eq!(
        post(format!("/deliveries/{}/replay", id + 999)).await.0,
        404
    );
    let unauthorised = env
        .http
        .get(api("/deliveries"))
        .bearer_auth("wxb_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorised.status().as_u16(), 401);

    let (status, json) = post(format!("/deliveries/{id}/replay")).await;
    assert_eq!(
        (status, &json["status"]),
        (200, &Value::from("pending")),
        "{json}"
    );
    // The receiver now accepts: the replay delivers, with the same delivery id.
    let second = hook.wait_for("event.received", 2).await;
    assert_eq!(second["id"], dead["payload"]["id"]);
    let start = Instant::now();
    loop {
        let (_, d) = get(format!("/deliveries/{id}")).await;
        if d["status"] == "delivered" {
            assert_eq!(d["last_status_code"], 200);
            break;
        }
        assert!(start.elapsed() < DEADLINE, "never delivered: {d}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, json) = post(format!("/deliveries/{id}/replay")).await;
    assert_eq!(status, 409, "{json}");
    assert_eq!(json["error"]["code"], "not_dead");
    let (status, json) = post("/replay-dead".into()).await;
    assert_eq!((status, &json["replayed"]), (200, &Value::from(0)));
    env.shutdown().await;
}

/// What WeChat's `user/info` says the unionid of `openid` is, asked as any client of the account would.
async fn unionid_of(env: &Env, oa: &wx_sim::OfficialAccountInfo, openid: &str) -> String {
    let base = env.sim.info().base_url.unwrap();
    let token: Value = env
        .http
        .get(format!("{base}/cgi-bin/token"))
        .query(&[
            ("grant_type", "client_credential"),
            ("appid", oa.appid.as_str()),
            ("secret", oa.secret.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let info: Value = env
        .http
        .get(format!("{base}/cgi-bin/user/info"))
        .query(&[
            ("access_token", token["access_token"].as_str().unwrap()),
            ("openid", openid),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    info["unionid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn merges_from_a_subscribe_and_from_a_backfill_raise_user_merged() {
    use domain::identity::{AccountGraph, AppKind, WechatLogin, WechatProfile};
    let (hook, url) = Hook::start(&[]).await;
    let (env, key) = env("sqlite", &url, 3).await;
    let oa = register_official_account(&env).await;
    let mp = env.sim.info().wechat.mini_programs[0].clone();
    // Every simulated person has an openid in every app, in the same order.
    let followers: Vec<(String, String)> = env
        .sim
        .wechat_openids(&oa.appid)
        .into_iter()
        .zip(env.sim.wechat_openids(&mp.appid))
        .filter(|((_, follows), _)| *follows)
        .map(|((o, _), (m, _))| (o, m))
        .take(2)
        .collect();
    let graph = AccountGraph::new(env.db.clone(), Arc::new(wx_api::clock::SystemClock));

    // Both people follow while user/info is refused: their identities have no unionid, so each is a
    // user of its own (B). Then each logs in to the mini program (unionid known): another user (A).
    env.sim.inject_fault("/cgi-bin/user/info", 48001, None);
    let mut split = Vec::new();
    for (i, (oa_openid, mp_openid)) in followers.iter().enumerate() {
        let at = format!("17000005{i:02}");
        push_from(&env, &oa, &oa_event(&oa, oa_openid, &at, "subscribe")).await;
        let subscribed = hook.wait_for("user.subscribed", i + 1).await;
        assert_eq!(subscribed["data"]["unionid"], Value::Null, "{subscribed}");
        let b = subscribed["data"]["user_id"].as_i64().unwrap();
        env.sim.clear_fault("/cgi-bin/user/info");
        let unionid = unionid_of(&env, &oa, oa_openid).await;
        env.sim.inject_fault("/cgi-bin/user/info", 48001, None);
        let a = graph
            .resolve_wechat_identity(
                &env.tenant,
                &WechatLogin {
                    appid: mp.appid.clone(),
                    app_kind: AppKind::MiniProgram,
                    openid: mp_openid.clone(),
                    unionid: Some(unionid),
                    profile: WechatProfile::default(),
                },
            )
            .await
            .unwrap();
        assert!(a.created_user);
        split.push((a.user_id.get(), b));
    }
    env.sim.clear_fault("/cgi-bin/user/info");

    // The first person subscribes again: user/info now gives the unionid, the graph joins the two users
    // (the older, B, survives), and the dispatch queues user.merged.
    let (oa_openid, _) = &followers[0];
    push_from(
        &env,
        &oa,
        &oa_event(&oa, oa_openid, "1700000600", "subscribe"),
    )
    .await;
    let merged = hook.wait_for("user.merged", 1).await;
    let (a, b) = split[0];
    assert_eq!(merged["data"]["from_user"], a, "{merged}");
    assert_eq!(merged["data"]["into_user"], b, "{merged}");
    assert_eq!(
        merged["id"],
        format!("user.merged:{}", merged["data"]["merge_id"])
    );
    let resubscribed = hook.wait_for("user.subscribed", 3).await;
    assert_eq!(resubscribed["data"]["user_id"], b);

    // The second person is joined by a follower backfill over REST, which queues user.merged too.
    let resp = env
        .http
        .post(format!(
            "{}/api/v1/tenants/{}/wechat/official-accounts/{}/backfill",
            env.base, env.tenant, oa.name
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let counts: Value = resp.json().await.unwrap();
    assert_eq!(counts["merged"], 1, "{counts}");
    let merged = hook.wait_for("user.merged", 2).await;
    let (a, b) = split[1];
    assert_eq!(merged["data"]["from_user"], a, "{merged}");
    assert_eq!(merged["data"]["into_user"], b, "{merged}");
    env.shutdown().await;
}
