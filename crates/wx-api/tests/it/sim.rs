//! The client and token manager against the real simulator over HTTP: token single flight, the retry rules,
//! stable_token, and every typed endpoint once, counted through the simulator's stats.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use wx_api::clock::{Clock, ManualClock};
use wx_api::token::{MemoryTokenStore, TokenManager, TokenStore};
use wx_api::wechat::{self, TokenEndpoint, WechatApp, WechatClient, WechatCredentials};
use wx_api::wecom::types::{AppMessage, Gender};
use wx_api::wecom::{self, AppCredentials, WecomApp, WecomClient, api};
use wx_api::{ApiError, ErrCode};
use wx_sim::{MiniProgramRequest, OAuthCodeRequest, RunningSim, Simulator};

pub const CORPID: &str = "ww0000000000000001";
pub const MAIN_AGENTID: i64 = 1_000_002;
pub const MAIN_SECRET: &str = "main-app-secret-0001";
pub const CONTACTS_SECRET: &str = "contacts-secret-0001";
const OA_APPID: &str = "wx0000000000000001";
const OA_SECRET: &str = "oa-secret-0001";
const OA_OPENID: &str = "oOA00000000000000000000001";
const MP_APPID: &str = "wx0000000000000002";
const MP_SECRET: &str = "shop-secret-0001";
const MP_OPENID: &str = "oMP00000000000000000000001";
const WEB_APPID: &str = "wx0000000000000003";
const WEB_SECRET: &str = "web-secret-0001";
const WEB_OPENID: &str = "oWEB0000000000000000000001";
const UNIONID: &str = "oUnion000000000000000000001";

/// The simulator (serving the exact example fixture) and clients on a manual clock in step with it.
pub struct Env {
    pub sim: Simulator,
    /// Kept only to keep the server alive: dropping it stops the simulator.
    _running: RunningSim,
    pub clock: ManualClock,
    pub wecom: WecomClient,
    pub wechat: WechatClient,
}

pub fn http() -> reqwest::Client {
    // Never through a proxy: the simulator is on loopback.
    reqwest::Client::builder().no_proxy().build().unwrap()
}

pub fn fixture_sim() -> Simulator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wx-sim/fixtures/example.toml");
    Simulator::from_fixture_file(&path).unwrap()
}

impl Env {
    pub async fn start() -> Env {
        Env::with_store(Arc::new(MemoryTokenStore::new())).await
    }

    pub async fn with_store(store: Arc<dyn TokenStore>) -> Env {
        let sim = fixture_sim();
        let running = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let clock = ManualClock::new(sim.now_ms());
        let tokens = Arc::new(TokenManager::new(store, Arc::new(clock.clone())));
        let wecom = WecomClient::new(http(), &running.base_url, tokens.clone()).unwrap();
        let wechat = WechatClient::new(http(), &running.base_url, tokens).unwrap();
        Env {
            sim,
            _running: running,
            clock,
            wecom,
            wechat,
        }
    }

    /// Moves the simulator's clock and ours together.
    pub fn advance(&self, d: Duration) {
        self.sim.advance_clock(d);
        self.clock.advance(d);
    }

    pub fn main_app(&self) -> WecomApp {
        app(&self.wecom, Some(MAIN_AGENTID), MAIN_SECRET)
    }

    pub fn contacts_app(&self) -> WecomApp {
        app(&self.wecom, None, CONTACTS_SECRET)
    }

    fn wechat_app(&self, appid: &str, secret: &str) -> WechatApp {
        self.wechat.app(WechatCredentials {
            tenant: "acme".into(),
            appid: appid.into(),
            secret: SecretString::from(secret.to_owned()),
        })
    }
}

pub fn app(client: &WecomClient, agentid: Option<i64>, secret: &str) -> WecomApp {
    client.app(AppCredentials {
        tenant: "acme".into(),
        corpid: CORPID.into(),
        agentid,
        secret: SecretString::from(secret.to_owned()),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_callers_after_expiry_one_gettoken() {
    let env = Env::start().await;
    let app = env.main_app();
    app.tag_list().await.unwrap();
    env.advance(Duration::from_secs(7200));
    env.sim.reset_stats();

    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move { app.tag_list().await }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().len(), 2);
    }
    let stats = env.sim.stats();
    assert_eq!(stats.calls(api::GETTOKEN), 1);
    assert_eq!(stats.calls_with(api::TAG_LIST, 0), 1000);
}

#[tokio::test]
async fn revoked_token_gets_40014_refreshes_once_and_succeeds() {
    let env = Env::start().await;
    let app = env.main_app();
    app.tag_list().await.unwrap();
    let token = app.access_token().await.unwrap();
    assert!(env.sim.revoke_token(token.value()));

    assert_eq!(app.tag_list().await.unwrap().len(), 2);
    let stats = env.sim.stats();
    assert_eq!(stats.calls(api::GETTOKEN), 2);
    assert_eq!(stats.calls_with(api::TAG_LIST, 40014), 1);
    assert_eq!(stats.calls_with(api::TAG_LIST, 0), 2);
    assert_ne!(app.access_token().await.unwrap().value(), token.value());
}

#[tokio::test]
async fn expired_token_gets_42001_refreshes_once_and_succeeds() {
    let env = Env::start().await;
    let app = env.main_app();
    app.tag_list().await.unwrap();
    // Both clocks move, ours a little less (skew): we still think the token is fresh, WeCom does not.
    env.sim.advance_clock(Duration::from_secs(7201));
    env.clock.advance(Duration::from_secs(6000));

    assert_eq!(app.tag_list().await.unwrap().len(), 2);
    let stats = env.sim.stats();
    assert_eq!(stats.calls(api::GETTOKEN), 2);
    assert_eq!(stats.calls_with(api::TAG_LIST, 42001), 1);
    assert_eq!(stats.calls_with(api::TAG_LIST, 0), 2);
}

#[tokio::test]
async fn wrong_secret_40001_is_not_retried() {
    let env = Env::start().await;
    let app = app(&env.wecom, Some(MAIN_AGENTID), "not-the-secret");
    let err = app.tag_list().await.unwrap_err();
    assert_eq!(err.errcode(), Some(ErrCode::InvalidCredential));
    let stats = env.sim.stats();
    assert_eq!(stats.calls(api::GETTOKEN), 1);
    assert_eq!(stats.calls(api::TAG_LIST), 0);
}

#[tokio::test]
async fn forbidden_48002_is_not_retried() {
    let env = Env::start().await;
    let app = env.main_app();
    env.sim.inject_fault(api::TAG_LIST, 48002, Some(1));
    let err = app.tag_list().await.unwrap_err();
    assert_eq!(err.errcode(), Some(ErrCode::ApiForbidden));
    assert_eq!(env.sim.stats().calls(api::TAG_LIST), 1);
}

#[tokio::test]
async fn system_busy_is_retried_with_backoff_then_succeeds_or_gives_up() {
    let env = Env::start().await;
    let app = env.main_app();
    app.access_token().await.unwrap();

    env.sim.inject_fault(api::TAG_LIST, -1, Some(2));
    let before = env.clock.now_ms();
    assert_eq!(app.tag_list().await.unwrap().len(), 2);
    let stats = env.sim.stats();
    assert_eq!(stats.calls_with(api::TAG_LIST, -1), 2);
    assert_eq!(stats.calls_with(api::TAG_LIST, 0), 1);
    assert_eq!(
        env.clock.now_ms() - before,
        200 + 400,
        "backoff went through the clock"
    );

    env.sim.reset_stats();
    env.sim.inject_fault(api::TAG_LIST, 45033, None);
    let err = app.tag_list().await.unwrap_err();
    assert!(
        matches!(err, ApiError::BusyRetriesExhausted { attempts: 4, .. }),
        "{err:?}"
    );
    assert_eq!(err.errcode(), Some(ErrCode::ConcurrentOutOfLimit));
    assert_eq!(env.sim.stats().calls_with(api::TAG_LIST, 45033), 4);
    env.sim.clear_fault(api::TAG_LIST);
}

#[tokio::test]
async fn rate_limit_45009_opens_a_block_window_until_it_passes() {
    let env = Env::start().await;
    let app = env.main_app();
    env.sim
        .set_rate_limit(api::TAG_LIST, 2, Duration::from_secs(60));
    app.tag_list().await.unwrap();
    app.tag_list().await.unwrap();
    let err = app.tag_list().await.unwrap_err();
    assert_eq!(err.errcode(), Some(ErrCode::FreqOutOfLimit));
    let calls = env.sim.stats().calls(api::TAG_LIST);

    let err = app.tag_list().await.unwrap_err();
    assert!(matches!(err, ApiError::RateLimited { .. }), "{err:?}");
    assert_eq!(
        env.sim.stats().calls(api::TAG_LIST),
        calls,
        "fail fast without calling WeCom"
    );
    let wait = app.blocked_for(api::TAG_LIST).unwrap();
    assert_eq!(err.retry_after(), Some(wait));
    // Other APIs are not blocked.
    app.department_get(1).await.unwrap();

    env.advance(wait);
    assert_eq!(app.blocked_for(api::TAG_LIST), None);
    assert_eq!(app.tag_list().await.unwrap().len(), 2);
}

#[tokio::test]
async fn wechat_uses_stable_token_by_default_and_classic_on_request() {
    let env = Env::start().await;
    let oa = env.wechat_app(OA_APPID, OA_SECRET);
    oa.user_info(OA_OPENID).await.unwrap();
    let stats = env.sim.stats();
    assert_eq!(stats.calls(wechat::api::STABLE_TOKEN), 1);
    assert_eq!(stats.calls(wechat::api::TOKEN), 0);

    let classic = env
        .wechat
        .clone()
        .with_token_endpoint(TokenEndpoint::Classic);
    let mp = classic.app(WechatCredentials {
        tenant: "acme".into(),
        appid: MP_APPID.into(),
        secret: SecretString::from(MP_SECRET.to_owned()),
    });
    mp.access_token().await.unwrap();
    assert_eq!(env.sim.stats().calls(wechat::api::TOKEN), 1);
}

#[tokio::test]
async fn every_wecom_endpoint_once() {
    let env = Env::start().await;
    let app = env.main_app();

    let tree = app.department_list(None).await.unwrap();
    assert_eq!(tree.len(), 4);
    assert!(tree.iter().any(|d| d.id == 1 && d.parentid == Some(0)));
    let sub = app.department_simplelist(Some(2)).await.unwrap();
    assert_eq!(sub.iter().map(|d| d.id).collect::<Vec<_>>().len(), 2);
    let rd = app.department_get(2).await.unwrap();
    assert_eq!(rd.name_en.as_deref(), Some("R&D"));

    let zhang = app.user_get("ZhangSan").await.unwrap();
    assert_eq!(zhang.department, vec![2, 3]);
    assert_eq!(zhang.gender, Some(Gender::Male));
    assert_eq!(zhang.is_leader_in_dept, vec![1, 0]);
    let simple = app.user_simplelist(3).await.unwrap();
    assert_eq!(simple.len(), 2);
    let detailed = app.user_list(3).await.unwrap();
    assert!(
        detailed
            .iter()
            .any(|u| u.userid.eq_ignore_ascii_case("lisi"))
    );

    let contacts = env.contacts_app();
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = contacts.user_list_id(cursor.as_deref(), 1).await.unwrap();
        rows.extend(page.dept_user);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    // ZhangSan is in two departments: one row each.
    assert_eq!(rows.len(), 4);

    let tags = app.tag_list().await.unwrap();
    assert_eq!(tags.len(), 2);
    let members = app.tag_get(2).await.unwrap();
    assert_eq!(members.partylist, vec![3]);

    let agent = app.agent_get().await.unwrap();
    assert_eq!(agent.agentid, MAIN_AGENTID);
    assert_eq!(agent.allow_partys.partyid, vec![1]);

    let sent = app
        .message_send(&AppMessage::text_to_users(
            ["ZhangSan", "nobody-here"],
            "hello",
        ))
        .await
        .unwrap();
    assert_eq!(sent.invaliduser, vec!["nobody-here"]);
    let msgid = sent.msgid.unwrap();
    app.message_recall(&msgid).await.unwrap();
    assert!(
        env.sim
            .stats()
            .messages
            .iter()
            .any(|m| m.msgid == msgid && m.recalled)
    );

    let code = env
        .sim
        .mint_oauth_code(&OAuthCodeRequest {
            userid: Some("ZhangSan".into()),
            agentid: Some(MAIN_AGENTID as u32),
            scope: Some("snsapi_privateinfo".into()),
            ..OAuthCodeRequest::default()
        })
        .unwrap();
    let who = app.auth_getuserinfo(&code).await.unwrap();
    assert_eq!(who.userid.as_deref(), Some("ZhangSan"));
    let detail = app
        .auth_getuserdetail(who.user_ticket.as_ref().unwrap())
        .await
        .unwrap();
    assert_eq!(detail.mobile.as_deref(), Some("13800000001"));
    let again = app.auth_getuserinfo(&code).await.unwrap_err();
    assert_eq!(
        again.errcode(),
        Some(ErrCode::InvalidCode),
        "codes are single use"
    );

    let js_code = env
        .sim
        .mint_miniprogram_code(&MiniProgramRequest {
            appid: "wx00000000000000a1".into(),
            userid: Some("ZhangSan".into()),
            ..MiniProgramRequest::default()
        })
        .unwrap();
    let session = app.miniprogram_jscode2session(&js_code).await.unwrap();
    assert_eq!(session.corpid.as_deref(), Some(CORPID));
    assert_eq!(session.userid.as_deref(), Some("ZhangSan"));

    let jsapi = app.jsapi_ticket().await.unwrap();
    let agent_ticket = app.agent_ticket().await.unwrap();
    assert_ne!(jsapi.value(), agent_ticket.value());
    // Cached: a second ask does not call again.
    app.jsapi_ticket().await.unwrap();
    let stats = env.sim.stats();
    assert_eq!(stats.calls(wecom::api::GET_JSAPI_TICKET), 1);
    assert_eq!(stats.calls(wecom::api::TICKET_GET), 1);
    assert_eq!(
        stats.calls(api::GETTOKEN),
        2,
        "one token per secret: main app and contacts sync"
    );
}

#[tokio::test]
async fn every_wechat_endpoint_once() {
    let env = Env::start().await;
    let oa = env.wechat_app(OA_APPID, OA_SECRET);
    let mp = env.wechat_app(MP_APPID, MP_SECRET);
    let web = env.wechat_app(WEB_APPID, WEB_SECRET);

    let follower = oa.user_info(OA_OPENID).await.unwrap();
    assert!(follower.is_subscribed());
    assert_eq!(follower.unionid.as_deref(), Some(UNIONID));
    let batch = oa.user_info_batch(&[OA_OPENID]).await.unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].openid, OA_OPENID);
    let ticket = oa.jsapi_ticket().await.unwrap();
    assert!(!ticket.value().is_empty());

    let code = env
        .sim
        .mint_oauth_code(&OAuthCodeRequest {
            appid: Some(WEB_APPID.into()),
            openid: Some(WEB_OPENID.into()),
            ..OAuthCodeRequest::default()
        })
        .unwrap();
    let grant = web.oauth_access_token(&code).await.unwrap();
    assert_eq!(grant.openid, WEB_OPENID);
    let info = web
        .sns_userinfo(&grant.access_token, &grant.openid)
        .await
        .unwrap();
    assert_eq!(info.unionid.as_deref(), Some(UNIONID));
    assert_eq!(info.sex, Some(Gender::Male));

    let req = MiniProgramRequest {
        appid: MP_APPID.into(),
        openid: Some(MP_OPENID.into()),
        ..Default::default()
    };
    let js_code = env.sim.mint_miniprogram_code(&req).unwrap();
    let session = mp.jscode2session(&js_code).await.unwrap();
    assert_eq!(session.openid, MP_OPENID);
    let phone_code = env.sim.mint_phone_code(&req).unwrap();
    let phone = mp.get_user_phone_number(&phone_code).await.unwrap();
    assert_eq!(phone.pure_phone_number, "13900000001");
    assert_eq!(phone.watermark.map(|w| w.appid).as_deref(), Some(MP_APPID));

    let stats = env.sim.stats();
    assert_eq!(
        stats.calls(wechat::api::STABLE_TOKEN),
        2,
        "one base token each for the account and the mini program"
    );
}

/// Captures everything wx-api logs at trace level while a refresh, a 40014 and a 45009 happen, and checks
/// that neither the secret nor any token value appears.
#[tokio::test]
async fn logs_never_contain_tokens_or_secrets() {
    use std::io::Write;
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("wx_api=trace")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let env = Env::start().await;
    let app = env.main_app();
    app.tag_list().await.unwrap();
    let first = app.access_token().await.unwrap();
    env.sim.revoke_token(first.value());
    app.tag_list().await.unwrap();
    let second = app.access_token().await.unwrap();
    let ticket = app.jsapi_ticket().await.unwrap();
    env.sim
        .set_rate_limit(api::TAG_GET, 1, Duration::from_secs(60));
    app.tag_get(1).await.unwrap();
    app.tag_get(1).await.unwrap_err();
    app.tag_get(1).await.unwrap_err();

    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("upstream call"), "the capture works: {logs}");
    assert!(logs.contains("token invalidated by upstream"));
    for secret in [MAIN_SECRET, first.value(), second.value(), ticket.value()] {
        assert!(!logs.contains(secret), "a secret or token reached the logs");
    }
}
