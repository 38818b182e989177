//! Callback endpoints end to end: URL verification by the simulator, a change made in the simulator
//! reaching the local directory through the contacts callback and the dispatch worker, a delivery
//! repeated three times handled once, and the bad-input suite (status, error code and text, nothing in
//! the inbox). SQLite always, PostgreSQL when configured (required under CI=true).

use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::{Db, Tenants};
use serde_json::Value;
use server::AppState;
use store::InboxStatus;
use wx_api::clock::SystemClock;
use wx_api::token::MemoryTokenStore;
use wx_crypto::{CallbackCrypto, EnvelopeFormat, XmlBuilder};
use wx_sim::{AgentRef, CallbackRequest, RunningSim, SimConfig, Simulator};
use wxbridge_config::FileConfig;

use crate::api_env::backends;
use crate::support::config_from;

/// Guards against a hang; not a performance assertion.
const DEADLINE: Duration = Duration::from_secs(60);

pub(crate) struct Env {
    pub(crate) sim: Simulator,
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) tenant: String,
    pub(crate) corpid: String,
    pub(crate) db: Db,
    tenants: Tenants,
    pg_database: Option<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), server::ServerError>>>,
    running: Option<RunningSim>,
    _dir: tempfile::TempDir,
}

async fn create_pg_database() -> (String, String) {
    let server_url = std::env::var("WXBRIDGE_TEST_POSTGRES_URL").unwrap();
    let admin = Db::connect(&server_url).await.unwrap();
    let name = format!("wxb_test_{:016x}", rand::random::<u64>());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(admin.postgres().unwrap())
        .await
        .unwrap();
    admin.close().await;
    let mut url = url::Url::parse(&server_url).unwrap();
    url.set_path(&name);
    (url.to_string(), name)
}

async fn env(backend: &str) -> Env {
    env_with(backend, true).await
}

/// `serve`: run the server (and so its dispatch worker); without it the test drives a `Dispatcher` itself.
async fn env_with(backend: &str, serve: bool) -> Env {
    env_edited(backend, serve, |_| {}).await
}

/// [`env_with`], with the tenant's configuration (as the simulator wrote it) changed by `edit` first.
pub(crate) async fn env_edited(
    backend: &str,
    serve: bool,
    edit: impl FnOnce(&mut wxbridge_config::file::TenantFile),
) -> Env {
    let sim = Simulator::generate(SimConfig::new(5, 30, 4));
    let running = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut file =
        FileConfig::from_toml_str(&sim.info().wxbridge_config("127.0.0.1:0").unwrap()).unwrap();
    let tenant = format!("cb{:x}", rand::random::<u32>());
    let mut t = file.tenants.remove("demo").unwrap();
    edit(&mut t);
    file.tenants.insert(tenant.clone(), t);
    let config = Arc::new(config_from(&file.to_toml_string().unwrap()));

    let dir = tempfile::tempdir().unwrap();
    let (db, pg_database) = match backend {
        "sqlite" => (
            Db::connect(&format!("sqlite://{}/wx.db", dir.path().display()))
                .await
                .unwrap(),
            None,
        ),
        _ => {
            let (url, name) = create_pg_database().await;
            (Db::connect(&url).await.unwrap(), Some(name))
        }
    };
    db.migrate().await.unwrap();
    let tokens = Tenants::token_manager(
        &config,
        Arc::new(MemoryTokenStore::new()),
        Arc::new(SystemClock),
    );
    let tenants = Tenants::build(&config, tokens).unwrap();
    let state = AppState::new(config, tenants.clone(), Some(db.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = serve.then(|| {
        tokio::spawn(server::serve_on(state, listener, async {
            let _ = stopped.await;
        }))
    });
    let corpid = sim.info().corps[0].corpid.clone();
    Env {
        sim,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        base: format!("http://{addr}"),
        tenant,
        corpid,
        db,
        pg_database,
        tenants,
        stop: Some(stop),
        server,
        running: Some(running),
        _dir: dir,
    }
}

impl Env {
    pub(crate) fn contacts_url(&self) -> String {
        format!("{}/callback/{}/wecom/contacts", self.base, self.tenant)
    }

    pub(crate) fn contacts_crypto(&self) -> CallbackCrypto {
        let c = &self.sim.info().corps[0];
        CallbackCrypto::new(
            &c.contacts_callback_token,
            &c.contacts_encoding_aes_key,
            &c.corpid,
        )
        .unwrap()
    }

    pub(crate) async fn inbox(&self) -> Vec<store::InboxMessage> {
        self.db
            .inbox_messages(&self.tenant, None, 1000)
            .await
            .unwrap()
    }

    /// POST `body` to `url` with `query`: status, body text, and the JSON error code (if any).
    pub(crate) async fn post(
        &self,
        url: &str,
        query: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, String) {
        let resp = self
            .http
            .post(url)
            .query(query)
            .body(body)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// Waits until every inbox row of the tenant is finished (not pending / processing).
    pub(crate) async fn wait_inbox_settled(&self) -> Vec<store::InboxMessage> {
        let start = Instant::now();
        loop {
            let rows = self.inbox().await;
            if rows
                .iter()
                .all(|r| !matches!(r.status, InboxStatus::Pending | InboxStatus::Processing))
            {
                return rows;
            }
            assert!(start.elapsed() < DEADLINE, "inbox never settled: {rows:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
        self.db.close().await;
        if let Some(name) = self.pg_database.take() {
            let admin = Db::connect(&std::env::var("WXBRIDGE_TEST_POSTGRES_URL").unwrap())
                .await
                .unwrap();
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(admin.postgres().unwrap())
                .await
                .unwrap();
            admin.close().await;
        }
    }
}

/// (what, url, query, body, status, code, text in the message).
type Case = (
    &'static str,
    String,
    Vec<(String, String)>,
    Vec<u8>,
    u16,
    &'static str,
    &'static str,
);

fn member(userid: &str, name: &str) -> wx_sim::Member {
    serde_json::from_value(serde_json::json!({
        "userid": userid,
        "name": name,
        "department": [1],
        "order": [1],
        "is_leader_in_dept": [0],
        "position": "工程师",
        "mobile": "13900000009",
        "email": "cb.member@example.com",
        "gender": "1",
        "status": 1,
    }))
    .unwrap()
}

/// A signed, encrypted WeCom envelope of `plaintext` and its query.
pub(crate) fn envelope(
    crypto: &CallbackCrypto,
    plaintext: &str,
) -> (Vec<(String, String)>, String) {
    let (ts, nonce) = ("1700000000", "n0nce123");
    let body = crypto
        .encrypt_envelope(plaintext, ts, nonce, [7u8; 16], EnvelopeFormat::Xml)
        .unwrap();
    let encrypt = body
        .split("<Encrypt><![CDATA[")
        .nth(1)
        .and_then(|s| s.split("]]>").next())
        .unwrap()
        .to_owned();
    let sig = crypto.sign(ts, nonce, &encrypt);
    (
        vec![
            ("msg_signature".into(), sig),
            ("timestamp".into(), ts.into()),
            ("nonce".into(), nonce.into()),
        ],
        format!(
            "<xml><ToUserName><![CDATA[x]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        ),
    )
}

pub(crate) fn q(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

pub(crate) fn update_user_event(corpid: &str, userid: &str, create_time: &str) -> String {
    let mut b = XmlBuilder::new();
    b.cdata("ToUserName", corpid)
        .cdata("FromUserName", "sys")
        .text("CreateTime", create_time)
        .cdata("MsgType", "event")
        .cdata("Event", "change_contact")
        .cdata("ChangeType", "update_user")
        .cdata("UserID", userid);
    b.finish()
}

#[tokio::test]
async fn a_change_in_the_simulator_reaches_the_directory_through_the_callback() {
    for backend in backends() {
        let env = env(backend).await;
        // The simulator verifies the URL the way WeCom does before it registers it.
        env.sim
            .register_callback(CallbackRequest {
                agentid: Some(AgentRef::Named("contacts".into())),
                url: env.contacts_url(),
                ..CallbackRequest::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{backend}: URL verification failed: {e}"));

        env.sim.add_member(member("cb.new", "回调新人")).unwrap();
        let start = Instant::now();
        let user = loop {
            if let Some(u) = env
                .db
                .user_by_wecom_userid(&env.tenant, &env.corpid, "cb.new")
                .await
                .unwrap()
            {
                break u;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{backend}: the new member never reached the directory; inbox: {:?}",
                env.inbox().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(user.name, "回调新人");

        env.sim
            .update_member(
                "cb.new",
                wx_sim::MemberUpdate {
                    name: Some("改名了".into()),
                    ..wx_sim::MemberUpdate::default()
                },
            )
            .unwrap();
        let start = Instant::now();
        loop {
            let u = env
                .db
                .user_by_wecom_userid(&env.tenant, &env.corpid, "cb.new")
                .await
                .unwrap()
                .unwrap();
            if u.name == "改名了" {
                assert_eq!(u.id, user.id, "{backend}: an update keeps the local user");
                break;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{backend}: the rename never arrived"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        env.sim.wait_for_deliveries().await;
        for d in env.sim.deliveries() {
            assert!(
                d.delivered,
                "{backend}: delivery {} not acknowledged: {d:?}",
                d.id
            );
            assert_eq!(
                d.attempts.len(),
                1,
                "{backend}: acknowledged at the first attempt"
            );
        }
        let rows = env.wait_inbox_settled().await;
        assert_eq!(rows.len(), 2, "{backend}: create + update: {rows:?}");
        for r in &rows {
            assert_eq!(r.status, InboxStatus::Done, "{backend}: {r:?}");
            assert_eq!(r.kind, "change_contact");
            assert_eq!(r.source, "wecom_contacts");
            assert_eq!(r.attempts, 1);
        }
        env.shutdown().await;
    }
}

#[tokio::test]
async fn a_delivery_repeated_three_times_is_stored_and_applied_once() {
    for backend in backends() {
        let env = env(backend).await;
        let userid = env.sim.directory().members[0].userid.clone();
        let crypto = env.contacts_crypto();
        let (query, body) = envelope(
            &crypto,
            &update_user_event(&env.corpid, &userid, "1700000001"),
        );
        let before = env.sim.stats().calls("/cgi-bin/user/get");
        for i in 0..3 {
            let (status, text) = env
                .post(&env.contacts_url(), &q(&query), body.clone().into_bytes())
                .await;
            assert_eq!(status, 200, "{backend}: delivery {i}: {text}");
            assert_eq!(text, "", "{backend}: WeCom gets an empty answer");
        }
        let rows = env.wait_inbox_settled().await;
        assert_eq!(
            rows.len(),
            1,
            "{backend}: one row for three deliveries: {rows:?}"
        );
        let row = &rows[0];
        assert_eq!(row.status, InboxStatus::Done, "{backend}: {row:?}");
        assert_eq!(row.attempts, 1, "{backend}: claimed once");
        let outcome: Value = serde_json::from_str(row.outcome.as_deref().unwrap()).unwrap();
        assert_eq!(
            outcome["change_type"], "update_user",
            "{backend}: {outcome}"
        );
        // The one apply read the member once; a second apply would have read it again.
        assert_eq!(
            env.sim.stats().calls("/cgi-bin/user/get") - before,
            1,
            "{backend}: one user/get, so one apply ({outcome})"
        );
        assert!(outcome["calls"].as_u64().unwrap() >= 1);
        // The member is now in the local directory, from that one apply.
        assert!(
            env.db
                .user_by_wecom_userid(&env.tenant, &env.corpid, &userid)
                .await
                .unwrap()
                .is_some()
        );
        env.shutdown().await;
    }
}

#[tokio::test]
async fn official_account_url_verification_and_messages_are_dispatched() {
    let env = env("sqlite").await;
    let oa = env.sim.info().wechat.official_accounts[0].clone();
    let url = format!(
        "{}/callback/{}/wechat/official-accounts/{}",
        env.base, env.tenant, oa.name
    );
    env.sim
        .register_callback(CallbackRequest {
            appid: Some(oa.appid.clone()),
            url,
            ..CallbackRequest::default()
        })
        .await
        .unwrap();
    // A self-built app's URL verifies too.
    let app = env.sim.info().corps[0].apps[0].clone();
    env.sim
        .register_callback(CallbackRequest {
            agentid: Some(AgentRef::Agent(app.agentid)),
            url: format!(
                "{}/callback/{}/wecom/apps/{}",
                env.base, env.tenant, app.name
            ),
            ..CallbackRequest::default()
        })
        .await
        .unwrap();

    let mut b = XmlBuilder::new();
    b.cdata("ToUserName", &oa.original_id)
        .cdata("FromUserName", "oUserOpenid1")
        .text("CreateTime", "1700000002")
        .cdata("MsgType", "text")
        .cdata("Content", "你好")
        .text("MsgId", "1234567890");
    env.sim
        .push_callback(
            &CallbackRequest {
                appid: Some(oa.appid.clone()),
                ..CallbackRequest::default()
            },
            &b.finish(),
        )
        .unwrap();
    env.sim.wait_for_deliveries().await;
    let d = env.sim.deliveries().pop().unwrap();
    assert!(d.delivered, "{d:?}");
    assert_eq!(d.attempts[0].body, "success");
    let rows = env.wait_inbox_settled().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].kind, "msg:text");
    assert_eq!(rows[0].source, format!("wechat_oa:{}", oa.name));
    // Claimed by the dispatch worker like every row: a message.received event (this tenant has no
    // webhook, so nothing is queued) and done.
    assert_eq!(rows[0].status, InboxStatus::Done, "{rows:?}");
    let outcome: Value = serde_json::from_str(rows[0].outcome.as_deref().unwrap()).unwrap();
    assert_eq!(outcome["action"], "message.received", "{outcome}");
    assert_eq!(outcome["webhooks"], serde_json::json!([]), "{outcome}");
    assert!(rows[0].payload.contains("你好"));
    env.shutdown().await;
}

#[tokio::test]
async fn bad_callbacks_are_refused_with_a_clear_error_and_nothing_is_stored() {
    for backend in backends() {
        let env = env(backend).await;
        let crypto = env.contacts_crypto();
        let event = update_user_event(&env.corpid, "someone", "1700000003");
        let (query, body) = envelope(&crypto, &event);
        let good = env.contacts_url();

        // Each case: (what, url, query, body, status, code, text in the message).
        let mut cases: Vec<Case> = Vec::new();
        cases.push((
            "unknown tenant",
            format!("{}/callback/nosuch/wecom/contacts", env.base),
            query.clone(),
            body.clone().into_bytes(),
            404,
            "tenant_not_found",
            "unknown tenant `nosuch`",
        ));
        cases.push((
            "unknown app",
            format!("{}/callback/{}/wecom/apps/nosuch", env.base, env.tenant),
            query.clone(),
            body.clone().into_bytes(),
            404,
            "unknown_callback",
            "WeCom app `nosuch`",
        ));
        let mut bad_sig = query.clone();
        bad_sig[0].1 = "0".repeat(40);
        cases.push((
            "bad signature",
            good.clone(),
            bad_sig,
            body.clone().into_bytes(),
            403,
            "bad_signature",
            "signature mismatch",
        ));
        let mut no_sig = query.clone();
        no_sig.remove(0);
        cases.push((
            "missing msg_signature",
            good.clone(),
            no_sig,
            body.clone().into_bytes(),
            400,
            "missing_parameter",
            "msg_signature",
        ));
        // Encrypted for another corp with the right token and key: the receive id does not match.
        let c = &env.sim.info().corps[0];
        let other = CallbackCrypto::new(
            &c.contacts_callback_token,
            &c.contacts_encoding_aes_key,
            "wwSomeOtherCorp",
        )
        .unwrap();
        let (q2, b2) = envelope(&other, &event);
        cases.push((
            "wrong receive id",
            good.clone(),
            q2,
            b2.into_bytes(),
            400,
            "wrong_receive_id",
            "receive id mismatch",
        ));
        // Correctly signed values that are not valid ciphertext.
        let signed = |encrypt: &str| {
            let sig = crypto.sign("1700000000", "n0nce123", encrypt);
            (
                vec![
                    ("msg_signature".to_owned(), sig),
                    ("timestamp".to_owned(), "1700000000".to_owned()),
                    ("nonce".to_owned(), "n0nce123".to_owned()),
                ],
                format!("<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>").into_bytes(),
            )
        };
        let (q3, b3) = signed("!!!not*base64!!!");
        cases.push((
            "broken base64",
            good.clone(),
            q3,
            b3,
            400,
            "bad_base64",
            "not valid base64",
        ));
        let (q4, b4) = signed("QUJDREVGR0hJSktMTU5P"); // 15 bytes: not a whole AES block
        cases.push((
            "truncated ciphertext",
            good.clone(),
            q4,
            b4,
            400,
            "bad_ciphertext",
            "not a non-zero multiple of 16",
        ));
        // A valid ciphertext with its last block cut off: the pad byte is garbage.
        let full = crypto.encrypt(event.as_bytes(), [9u8; 16]).unwrap();
        let raw = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(&full)
                .unwrap()
        };
        let cut = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(&raw[..raw.len() - 16])
        };
        let (q5, b5) = signed(&cut);
        cases.push((
            "broken padding",
            good.clone(),
            q5,
            b5,
            400,
            "bad_ciphertext",
            "-40008",
        ));
        let mut huge = body.clone().into_bytes();
        huge.extend(std::iter::repeat_n(b' ', 70 * 1024));
        cases.push((
            "oversized body",
            good.clone(),
            query.clone(),
            huge,
            413,
            "body_too_large",
            "65536 bytes",
        ));
        let doctype = format!(
            "<!DOCTYPE xml [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;\">]>{body}"
        );
        cases.push((
            "DOCTYPE in the envelope",
            good.clone(),
            query.clone(),
            doctype.into_bytes(),
            400,
            "hostile_xml",
            "DOCTYPE",
        ));
        // Entity expansion inside the encrypted, correctly signed plaintext.
        let (q6, b6) = envelope(
            &crypto,
            "<!DOCTYPE xml [<!ENTITY a \"x\"><!ENTITY b \"&a;&a;&a;&a;\">]><xml><MsgType>&b;</MsgType></xml>",
        );
        cases.push((
            "DOCTYPE in the plaintext",
            good.clone(),
            q6,
            b6.into_bytes(),
            400,
            "hostile_xml",
            "DOCTYPE",
        ));
        let oa = env.sim.info().wechat.official_accounts[0].clone();
        let sig = wx_crypto::signature(&oa.token, "1700000000", "n0nce123");
        cases.push((
            "plaintext to a safe-mode official account",
            format!(
                "{}/callback/{}/wechat/official-accounts/{}",
                env.base, env.tenant, oa.name
            ),
            vec![
                ("signature".into(), sig),
                ("timestamp".into(), "1700000000".into()),
                ("nonce".into(), "n0nce123".into()),
            ],
            b"<xml><MsgType>text</MsgType><MsgId>1</MsgId></xml>".to_vec(),
            400,
            "bad_request",
            "safe mode",
        ));

        for (what, url, query, body, status, code, text) in cases {
            let (got, resp) = env.post(&url, &q(&query), body).await;
            assert_eq!(got, status, "{backend}: {what}: {resp}");
            let json: Value = serde_json::from_str(&resp)
                .unwrap_or_else(|_| panic!("{backend}: {what}: not JSON: {resp}"));
            assert_eq!(json["error"]["code"], code, "{backend}: {what}: {json}");
            let message = json["error"]["message"].as_str().unwrap();
            assert!(
                message.contains(text),
                "{backend}: {what}: {message:?} should mention {text:?}"
            );
        }

        // GET verification with a bad signature.
        let resp = env
            .http
            .get(&good)
            .query(&[
                ("msg_signature", "0000"),
                ("timestamp", "1"),
                ("nonce", "2"),
                ("echostr", "abc"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status().as_u16(),
            403,
            "{backend}: GET with a bad signature"
        );

        assert!(
            env.db.inbox_counts(&env.tenant).await.unwrap().is_empty(),
            "{backend}: nothing stored: {:?}",
            env.inbox().await
        );
        env.shutdown().await;
    }
}

#[tokio::test]
async fn failing_events_are_retried_with_backoff_then_dead_and_can_be_requeued() {
    use domain::callbacks::{CallbackSource, DispatchOptions, Dispatcher, accept};
    for backend in backends() {
        let env = env_with(backend, false).await;
        let dispatcher = Dispatcher::new(
            env.db.clone(),
            env.tenants.clone(),
            DispatchOptions {
                backoff_base: Duration::from_millis(20),
                backoff_max: Duration::from_millis(40),
                max_attempts: 3,
                ..DispatchOptions::default()
            },
        );
        let userid = env.sim.directory().members[0].userid.clone();
        let store_msg = |xml: String| wx_crypto::CallbackMessage::parse_owned(xml).unwrap();
        // 48002 (API forbidden) is never retried inside wx-api: the apply fails with DM008.
        env.sim.inject_fault("/cgi-bin/user/get", 48002, None);
        let failing = store_msg(update_user_event(&env.corpid, &userid, "1700000010"));
        let src = CallbackSource::WecomContacts;
        let id = accept(&env.db, &env.tenant, &src, &failing, 1)
            .await
            .unwrap()
            .id
            .unwrap();
        // A change_contact without its UserID is malformed: dead at once, never retried.
        let mut b = XmlBuilder::new();
        b.cdata("ToUserName", &env.corpid)
            .cdata("FromUserName", "sys")
            .text("CreateTime", "1700000011")
            .cdata("MsgType", "event")
            .cdata("Event", "change_contact")
            .cdata("ChangeType", "update_user");
        let malformed = accept(&env.db, &env.tenant, &src, &store_msg(b.finish()), 1)
            .await
            .unwrap()
            .id
            .unwrap();

        let mut total = domain::callbacks::DispatchReport::default();
        let start = Instant::now();
        loop {
            let r = dispatcher.run_once().await.unwrap();
            total.retried += r.retried;
            total.dead += r.dead;
            total.done += r.done;
            if total.dead == 2 {
                break;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{backend}: never dead: {:?}",
                env.inbox().await
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            total.retried, 2,
            "{backend}: two retries before the third attempt gives up"
        );
        assert_eq!(total.done, 0);
        let dead = env
            .db
            .inbox_messages(&env.tenant, Some(InboxStatus::Dead), 10)
            .await
            .unwrap();
        let row = dead.iter().find(|r| r.id == id).unwrap();
        assert_eq!(row.attempts, 3, "{backend}: {row:?}");
        let err = row.last_error.as_deref().unwrap();
        assert!(
            err.contains("gave up after 3 attempts") && err.contains("DM008"),
            "{err}"
        );
        let bad = dead.iter().find(|r| r.id == malformed).unwrap();
        assert_eq!(
            bad.attempts, 1,
            "{backend}: a malformed event is not retried"
        );
        assert!(
            bad.last_error.as_deref().unwrap().contains("DM007"),
            "{bad:?}"
        );

        // Upstream recovers; the operator requeues the dead row and it is applied.
        env.sim.clear_fault("/cgi-bin/user/get");
        assert!(env.db.requeue_dead_inbox(&env.tenant, id, 0).await.unwrap());
        let r = dispatcher.run_once().await.unwrap();
        assert_eq!((r.claimed, r.done), (1, 1), "{backend}: {r:?}");
        assert!(
            env.db
                .user_by_wecom_userid(&env.tenant, &env.corpid, &userid)
                .await
                .unwrap()
                .is_some()
        );
        env.shutdown().await;
    }
}
