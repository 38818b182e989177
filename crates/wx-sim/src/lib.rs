//! A simulator of the WeCom (企业微信) and WeChat servers for tests and demos: the real API paths, shapes and
//! errcodes, a deterministic organisation or an exact fixture, visibility scopes, token lifetimes under a
//! test-controlled clock, rate and concurrency limits, login pages, mini-program codes, change_contact
//! callbacks and call statistics. It depends on wx-crypto only, so any WeCom integration can test against it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), wx_sim::SimError> {
//! let sim = wx_sim::Simulator::generate(wx_sim::SimConfig::new(7, 1000, 50));
//! let running = sim.serve("127.0.0.1:0".parse().map_err(|_| wx_sim::SimError::Config("addr".into()))?).await?;
//! println!("{}", running.base_url); // point the client's WeCom/WeChat base URL here
//! # Ok(()) }
//! ```

mod callbacks;
mod changes;
mod config;
mod control;
mod error;
mod fixture;
mod generate;
mod info;
mod login;
mod model;
mod names;
mod state;
mod wechat;
mod wecom;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{oneshot, watch};

pub use callbacks::{AgentRef, CallbackRequest};
pub use changes::{DepartmentUpdate, MemberUpdate, TagUpdate};
pub use config::{RateLimit, SimConfig, Switches};
pub use error::SimError;
pub use info::{
    AppInfo, CorpInfo, DirectorySnapshot, OfficialAccountInfo, SimInfo, WechatAppInfo, WechatInfo,
    WecomMiniProgramInfo,
};
pub use model::{
    App, Department, Member, Scope, Tag, WechatApp, WechatKind, WechatUser, WecomMiniProgram,
};
pub use state::{
    Attempt, CallbackRegistration, CallbackTarget, Delivery, Fault, SentMessage, Stats,
};

use crate::state::{CodeSubject, MpCode, MpSubject, PhoneCode, Shared, State, TokenOwner};

/// Who an OAuth code is for (`POST /_sim/oauth/code`): a WeCom member (`userid`, optionally `corpid`,
/// `agentid`) or a WeChat user (`appid` + `openid`). `scope` defaults to snsapi_base (snsapi_login for the
/// website app); `redirect_uri` is what the trusted-domain check at code exchange compares.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthCodeRequest {
    #[serde(default)]
    pub corpid: Option<String>,
    #[serde(default)]
    pub agentid: Option<u32>,
    #[serde(default)]
    pub userid: Option<String>,
    #[serde(default)]
    pub appid: Option<String>,
    #[serde(default)]
    pub openid: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub redirect_uri: Option<String>,
}

/// Who a mini-program login (or phone / encrypted data) is for: a WeChat mini program's `appid` with an
/// `openid`, or a WeCom mini program's `appid` with a member `userid`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MiniProgramRequest {
    pub appid: String,
    #[serde(default)]
    pub openid: Option<String>,
    #[serde(default)]
    pub userid: Option<String>,
    /// For encrypted data: "phone" (default) or "userinfo".
    #[serde(default)]
    pub kind: Option<String>,
}

/// encryptedData as the mini-program client would receive it, made with the current session_key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptedData {
    pub encrypted_data: String,
    pub iv: String,
    /// For user info: the rawData and its signature sha1(rawData + session_key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// A simulated WeCom + WeChat. Cheap to clone (all clones share one state).
#[derive(Debug, Clone)]
pub struct Simulator {
    inner: Arc<Shared>,
}

/// A simulator serving HTTP. Stops on drop or with [`RunningSim::shutdown`].
#[derive(Debug)]
pub struct RunningSim {
    /// `http://127.0.0.1:PORT`: use it as the WeCom, WeChat, OAuth and login base URL.
    pub base_url: String,
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl RunningSim {
    /// Stops accepting connections and waits for the server task to end.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn http_client() -> reqwest::Client {
    // Callback receivers are local test servers: never go through a proxy from the environment.
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_default()
}

impl Simulator {
    fn from_state(st: State) -> Simulator {
        Simulator {
            inner: Arc::new(Shared {
                state: Mutex::new(st),
                http: http_client(),
            }),
        }
    }

    /// A deterministic organisation from (seed, members, departments) and the default apps.
    pub fn generate(cfg: SimConfig) -> Simulator {
        let world = generate::generate(&cfg);
        Simulator::from_state(State::new(world, cfg))
    }

    /// An exact world from a fixture (TOML, or JSON when it starts with `{`); see `fixtures/example.toml`.
    pub fn from_fixture_str(toml_or_json: &str) -> Result<Simulator, SimError> {
        let (world, cfg) = fixture::parse(toml_or_json)?;
        Ok(Simulator::from_state(State::new(world, cfg)))
    }

    pub fn from_fixture_file(path: &Path) -> Result<Simulator, SimError> {
        let text = std::fs::read_to_string(path).map_err(|source| SimError::FixtureIo {
            path: path.to_owned(),
            source,
        })?;
        Simulator::from_fixture_str(&text)
    }

    /// The HTTP surface (real API paths, login pages, `/_sim/` control API) for in-process tests.
    pub fn router(&self) -> Router {
        Router::new()
            // WeCom
            .route("/cgi-bin/gettoken", get(wecom::gettoken))
            .route("/cgi-bin/get_jsapi_ticket", get(wecom::get_jsapi_ticket))
            .route("/cgi-bin/ticket/get", get(wecom::ticket_get))
            .route("/cgi-bin/department/list", get(wecom::department_list))
            .route(
                "/cgi-bin/department/simplelist",
                get(wecom::department_simplelist),
            )
            .route("/cgi-bin/department/get", get(wecom::department_get))
            // WeCom (`userid`: one member) and WeChat (`next_openid`: follower list) share this path.
            .route("/cgi-bin/user/get", get(wechat::user_get_either))
            .route("/cgi-bin/user/simplelist", get(wecom::user_simplelist))
            .route("/cgi-bin/user/list", get(wecom::user_list))
            .route("/cgi-bin/user/list_id", post(wecom::user_list_id))
            .route("/cgi-bin/tag/list", get(wecom::tag_list))
            .route("/cgi-bin/tag/get", get(wecom::tag_get))
            .route("/cgi-bin/agent/get", get(wecom::agent_get))
            .route("/cgi-bin/message/send", post(wecom::message_send))
            .route("/cgi-bin/message/recall", post(wecom::message_recall))
            .route("/cgi-bin/auth/getuserinfo", get(wecom::auth_getuserinfo))
            .route(
                "/cgi-bin/auth/getuserdetail",
                post(wecom::auth_getuserdetail),
            )
            .route(
                "/cgi-bin/miniprogram/jscode2session",
                get(wecom::miniprogram_jscode2session),
            )
            // WeChat
            .route("/cgi-bin/token", get(wechat::token))
            .route("/cgi-bin/stable_token", post(wechat::stable_token))
            .route("/cgi-bin/ticket/getticket", get(wechat::getticket))
            .route("/sns/oauth2/access_token", get(wechat::sns_access_token))
            .route("/sns/userinfo", get(wechat::sns_userinfo))
            .route("/sns/jscode2session", get(wechat::jscode2session))
            .route("/cgi-bin/user/info", get(wechat::user_info))
            .route(
                "/cgi-bin/message/template/send",
                post(wechat::message_template_send),
            )
            .route(
                "/cgi-bin/message/subscribe/send",
                post(wechat::message_subscribe_send),
            )
            .route(
                "/cgi-bin/user/info/batchget",
                post(wechat::user_info_batchget),
            )
            .route(
                "/wxa/business/getuserphonenumber",
                post(wechat::getuserphonenumber),
            )
            // Browser login pages
            .route(
                "/connect/oauth2/authorize",
                get(login::page).post(login::submit),
            )
            .route("/wwlogin/sso/login", get(login::page).post(login::submit))
            .route(
                "/wwopen/sso/qrConnect",
                get(login::page).post(login::submit),
            )
            .route("/connect/qrconnect", get(login::page).post(login::submit))
            .merge(control::routes())
            .fallback(control::unknown_path)
            .with_state(self.inner.clone())
    }

    /// Binds `addr` (port 0 picks a free port) and serves in a spawned task.
    pub async fn serve(&self, addr: SocketAddr) -> Result<RunningSim, SimError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr, source })?;
        let host = if local.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            local.ip().to_string()
        };
        let base_url = if local.is_ipv6() && !local.ip().is_unspecified() {
            format!("http://[{host}]:{}", local.port())
        } else {
            format!("http://{host}:{}", local.port())
        };
        self.inner.lock().base_url = Some(base_url.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let app = self.router();
        let handle = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "wx-sim server stopped with an error");
            }
        });
        Ok(RunningSim {
            base_url,
            addr: local,
            shutdown: Some(tx),
            handle: Some(handle),
        })
    }

    /// Ids and secrets of every corp, app and WeChat app (and the base URL while serving).
    pub fn info(&self) -> SimInfo {
        let st = self.inner.lock();
        SimInfo::from_world(&st.world, st.base_url.clone())
    }

    pub fn stats(&self) -> Stats {
        self.inner.lock().stats.clone()
    }

    /// Clears call counters and the record of sent messages.
    pub fn reset_stats(&self) {
        self.inner.lock().stats = Stats::default();
    }

    /// Moves the simulated clock forward (tokens, tickets, codes, rate windows all follow it).
    pub fn advance_clock(&self, d: Duration) {
        let mut st = self.inner.lock();
        st.offset_ms = st
            .offset_ms
            .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    }

    /// Simulated now, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        self.inner.lock().now_ms()
    }

    /// Invalidates one token early (callers then get 40014). Returns whether it existed.
    pub fn revoke_token(&self, token: &str) -> bool {
        let mut st = self.inner.lock();
        match st.tokens.get_mut(token) {
            Some(e) => {
                e.revoked = true;
                true
            }
            None => false,
        }
    }

    /// Invalidates every token issued so far.
    pub fn revoke_all_tokens(&self) {
        let mut st = self.inner.lock();
        for e in st.tokens.values_mut() {
            e.revoked = true;
        }
    }

    /// Invalidates the tokens of one corp (`agentid` None: all of its apps and the contacts secret; Some(0)
    /// is not an app, use [`Self::revoke_contacts_tokens`]) or of one WeChat appid. Returns how many.
    pub fn revoke_tokens_of(&self, corpid_or_appid: &str, agentid: Option<u32>) -> usize {
        let mut st = self.inner.lock();
        let corp = st.world.corp_index(corpid_or_appid);
        let mut n = 0;
        for e in st.tokens.values_mut() {
            let hit = match (&e.owner, corp) {
                (
                    TokenOwner::Wecom {
                        corp: c,
                        agentid: a,
                    },
                    Some(ci),
                ) => *c == ci && (agentid.is_none() || *a == agentid),
                (TokenOwner::Wechat { appid, .. }, None)
                | (TokenOwner::Sns { appid, .. }, None) => appid == corpid_or_appid,
                _ => false,
            };
            if hit && !e.revoked {
                e.revoked = true;
                n += 1;
            }
        }
        n
    }

    /// Invalidates the contacts-sync tokens of a corp.
    pub fn revoke_contacts_tokens(&self, corpid: &str) -> usize {
        let mut st = self.inner.lock();
        let Some(ci) = st.world.corp_index(corpid) else {
            return 0;
        };
        let mut n = 0;
        for e in st.tokens.values_mut() {
            if e.owner
                == (TokenOwner::Wecom {
                    corp: ci,
                    agentid: None,
                })
                && !e.revoked
            {
                e.revoked = true;
                n += 1;
            }
        }
        n
    }

    /// `per_window` calls per `window` for `api` (a path such as "/cgi-bin/user/get"), counted per corp or
    /// appid. Over the limit: 45009, and the (corp, api) stays blocked for one window. 0 removes the limit.
    pub fn set_rate_limit(&self, api: &str, per_window: u32, window: Duration) {
        let mut st = self.inner.lock();
        if per_window == 0 {
            st.limits.rate.remove(api);
        } else {
            st.limits
                .rate
                .insert(api.to_owned(), RateLimit { per_window, window });
        }
        st.limits.windows.retain(|(_, a), _| a != api);
    }

    /// A rate limit for one corp (or WeChat appid) only, overriding the per-API one.
    pub fn set_rate_limit_for(&self, owner: &str, api: &str, per_window: u32, window: Duration) {
        let mut st = self.inner.lock();
        let key = (owner.to_owned(), api.to_owned());
        if per_window == 0 {
            st.limits.rate_for.remove(&key);
        } else {
            st.limits
                .rate_for
                .insert(key.clone(), RateLimit { per_window, window });
        }
        st.limits.windows.remove(&key);
    }

    /// At most `max` in-flight requests per (corp, api); more get 45033. 0 removes the limit.
    pub fn set_concurrency_limit(&self, api: &str, max: u32) {
        let mut st = self.inner.lock();
        if max == 0 {
            st.limits.concurrency.remove(api);
        } else {
            st.limits.concurrency.insert(api.to_owned(), max);
        }
    }

    /// Holds admitted requests to `api` until [`Self::release_api`], so tests can create concurrency.
    pub fn hold_api(&self, api: &str) {
        let mut st = self.inner.lock();
        match st.limits.holds.get(api) {
            Some(tx) => {
                tx.send_replace(true);
            }
            None => {
                st.limits
                    .holds
                    .insert(api.to_owned(), watch::Sender::new(true));
            }
        }
    }

    pub fn release_api(&self, api: &str) {
        let mut st = self.inner.lock();
        if let Some(tx) = st.limits.holds.remove(api) {
            tx.send_replace(false);
        }
    }

    /// Requests to `api` currently admitted and not finished, over all corps.
    pub fn inflight(&self, api: &str) -> u32 {
        let st = self.inner.lock();
        st.limits
            .inflight
            .iter()
            .filter(|((_, a), _)| a == api)
            .map(|(_, n)| *n)
            .sum()
    }

    /// Adds real latency to every call of `api` (Duration::ZERO removes it).
    pub fn set_latency(&self, api: &str, d: Duration) {
        let mut st = self.inner.lock();
        if d.is_zero() {
            st.limits.latency.remove(api);
        } else {
            st.limits.latency.insert(api.to_owned(), d);
        }
    }

    /// The next `remaining` calls to `api` (every call if None) answer `errcode` (e.g. -1 system busy).
    pub fn inject_fault(&self, api: &str, errcode: i64, remaining: Option<u32>) {
        self.inner
            .lock()
            .limits
            .faults
            .insert(api.to_owned(), Fault { errcode, remaining });
    }

    pub fn clear_fault(&self, api: &str) {
        self.inner.lock().limits.faults.remove(api);
    }

    /// Changes run-time switches (token rotation, withheld fields, 48009, callback options...).
    pub fn set_switches(&self, s: &Switches) {
        self.inner.lock().cfg.apply(s);
    }

    /// Sets (or with None removes) the trusted domain of an app of the first corp, or of a WeChat app when
    /// `agentid_or_appid` is an appid. Returns false if no such app exists.
    pub fn set_trusted_domain(&self, agentid_or_appid: &str, domain: Option<&str>) -> bool {
        let mut st = self.inner.lock();
        let domain = domain.map(str::to_owned);
        if let Ok(agentid) = agentid_or_appid.parse::<u32>() {
            if let Some(app) = st
                .world
                .corps
                .first_mut()
                .and_then(|c| c.apps.iter_mut().find(|a| a.agentid == agentid))
            {
                app.trusted_domain = domain;
                return true;
            }
            return false;
        }
        let w = &mut st.world.wechat;
        for a in w
            .official_accounts
            .iter_mut()
            .chain(w.mini_programs.iter_mut())
            .chain(w.website.iter_mut())
        {
            if a.appid == agentid_or_appid {
                a.trusted_domain = domain;
                return true;
            }
        }
        false
    }

    /// Switches the post-2022 field restrictions of an app of the first corp.
    pub fn set_restricted_fields(&self, agentid: u32, restricted: bool) -> bool {
        let mut st = self.inner.lock();
        match st
            .world
            .corps
            .first_mut()
            .and_then(|c| c.apps.iter_mut().find(|a| a.agentid == agentid))
        {
            Some(app) => {
                app.restricted_fields = restricted;
                true
            }
            None => false,
        }
    }

    /// Mints an OAuth code directly, as if the person had picked themselves on the login page.
    pub fn mint_oauth_code(&self, req: &OAuthCodeRequest) -> Result<String, SimError> {
        let mut st = self.inner.lock();
        let host = req.redirect_uri.as_deref().and_then(wecom::url_host);
        if let Some(userid) = &req.userid {
            let ci = match &req.corpid {
                Some(c) => st
                    .world
                    .corp_index(c)
                    .ok_or_else(|| SimError::UnknownCorp(c.clone()))?,
                None => 0,
            };
            let corp = st
                .world
                .corps
                .get(ci)
                .ok_or_else(|| SimError::UnknownCorp(String::new()))?;
            let m = corp
                .dir
                .member(userid)
                .ok_or_else(|| SimError::UnknownMember(userid.clone()))?;
            if let Some(a) = req.agentid {
                corp.app(a)
                    .ok_or_else(|| SimError::UnknownApp(a.to_string()))?;
            }
            let userid = m.userid.clone();
            let privateinfo =
                req.scope.as_deref() == Some("snsapi_privateinfo") && req.agentid.is_some();
            let subject = CodeSubject::Wecom {
                corp: ci,
                agentid: req.agentid,
                userid,
                privateinfo,
            };
            return Ok(st.mint_code(subject, host, login::CODE_TTL_MS));
        }
        let appid = req
            .appid
            .clone()
            .ok_or_else(|| SimError::InvalidChange("give userid or appid + openid".to_owned()))?;
        let openid = req
            .openid
            .clone()
            .ok_or_else(|| SimError::InvalidChange("give openid".to_owned()))?;
        let (kind, _) = st
            .world
            .wechat
            .app(&appid)
            .ok_or_else(|| SimError::UnknownWechat(appid.clone()))?;
        st.world
            .wechat
            .user(&appid, &openid)
            .ok_or_else(|| SimError::UnknownWechat(format!("{appid}/{openid}")))?;
        let (default_scope, ttl) = match kind {
            WechatKind::Website => ("snsapi_login", login::QR_CODE_TTL_MS),
            _ => ("snsapi_base", login::CODE_TTL_MS),
        };
        let scope = req
            .scope
            .clone()
            .unwrap_or_else(|| default_scope.to_owned());
        Ok(st.mint_code(
            CodeSubject::Wechat {
                appid,
                openid,
                scope,
            },
            host,
            ttl,
        ))
    }

    /// Mints a mini-program login code (wx.login / wx.qy.login) for jscode2session.
    pub fn mint_miniprogram_code(&self, req: &MiniProgramRequest) -> Result<String, SimError> {
        let mut st = self.inner.lock();
        let subject = mp_subject(&st, req)?;
        let code = st.random_token(32);
        let expires_ms = st.now_ms() + login::CODE_TTL_MS;
        st.mp_codes.insert(
            code.clone(),
            MpCode {
                subject,
                expires_ms,
                used: false,
            },
        );
        Ok(code)
    }

    /// Mints a getPhoneNumber code for `/wxa/business/getuserphonenumber` (WeChat mini programs).
    pub fn mint_phone_code(&self, req: &MiniProgramRequest) -> Result<String, SimError> {
        let mut st = self.inner.lock();
        let MpSubject::Wechat { appid, openid } = mp_subject(&st, req)? else {
            return Err(SimError::InvalidChange(
                "phone codes are for WeChat mini programs".to_owned(),
            ));
        };
        let code = st.random_token(32);
        let expires_ms = st.now_ms() + login::CODE_TTL_MS;
        st.phone_codes.insert(
            code.clone(),
            PhoneCode {
                appid,
                openid,
                expires_ms,
                used: false,
            },
        );
        Ok(code)
    }

    /// encryptedData (phone number or user info, with watermark) under the user's current session_key.
    /// Fails if the user has not logged in through jscode2session yet.
    pub fn encrypted_data(&self, req: &MiniProgramRequest) -> Result<EncryptedData, SimError> {
        let mut st = self.inner.lock();
        let subject = mp_subject(&st, req)?;
        let now_s = st.now_ms() / 1000;
        let mut iv = [0u8; 16];
        rand::RngCore::fill_bytes(&mut st.rng, &mut iv);
        let iv = base64::engine::general_purpose::STANDARD.encode(iv);
        let kind = req.kind.as_deref().unwrap_or("phone");
        let (appid, user_key, plaintext, raw) = match &subject {
            MpSubject::Wechat { appid, openid } => {
                let u = st
                    .world
                    .wechat
                    .user(appid, openid)
                    .ok_or_else(|| SimError::UnknownWechat(format!("{appid}/{openid}")))?;
                let watermark = json!({"timestamp": now_s, "appid": appid});
                match kind {
                    "userinfo" => {
                        let raw = json!({
                            "nickName": u.nickname, "gender": u.sex, "language": "zh_CN", "city": u.city,
                            "province": u.province, "country": u.country, "avatarUrl": u.headimgurl,
                        });
                        let full = json!({
                            "openId": openid, "nickName": u.nickname, "gender": u.sex, "language": "zh_CN",
                            "city": u.city, "province": u.province, "country": u.country, "avatarUrl": u.headimgurl,
                            "unionId": u.unionid, "watermark": watermark,
                        });
                        (
                            appid.clone(),
                            openid.clone(),
                            full.to_string(),
                            Some(raw.to_string()),
                        )
                    }
                    _ => {
                        let full = json!({
                            "phoneNumber": u.phone, "purePhoneNumber": u.phone, "countryCode": "86", "watermark": watermark,
                        });
                        (appid.clone(), openid.clone(), full.to_string(), None)
                    }
                }
            }
            MpSubject::Wecom {
                corp,
                appid,
                userid,
            } => {
                let c = &st.world.corps[*corp];
                let m = c
                    .dir
                    .member(userid)
                    .ok_or_else(|| SimError::UnknownMember(userid.clone()))?;
                let watermark = json!({"timestamp": now_s, "appid": appid});
                let full = match kind {
                    "userinfo" => json!({
                        "corpid": c.corpid, "userid": m.userid, "name": m.name, "gender": m.gender, "watermark": watermark,
                    }),
                    _ => json!({"mobile": m.mobile, "watermark": watermark}),
                };
                (appid.clone(), userid.clone(), full.to_string(), None)
            }
        };
        let session_key = st
            .sessions
            .get(&(appid, user_key))
            .cloned()
            .ok_or_else(|| {
                SimError::InvalidChange(
                    "no session_key yet: log in through jscode2session first".to_owned(),
                )
            })?;
        let encrypted_data = wx_crypto::miniprogram::encrypt_data(&session_key, &iv, &plaintext)
            .map_err(|e| SimError::InvalidChange(e.to_string()))?;
        let signature = raw
            .as_deref()
            .map(|r| wx_crypto::miniprogram::raw_data_signature(r, &session_key));
        Ok(EncryptedData {
            encrypted_data,
            iv,
            raw_data: raw,
            signature,
        })
    }

    /// The session_key jscode2session last issued for `user` (openid, or WeCom userid) of mini program
    /// `appid`, if any: for tests proving it never leaves the bridge in clear.
    pub fn current_session_key(&self, appid: &str, user: &str) -> Option<String> {
        let st = self.inner.lock();
        st.sessions
            .get(&(appid.to_owned(), user.to_owned()))
            .cloned()
    }

    /// The WeChat users that have an openid in `appid`: (openid, follows the app), in world order.
    pub fn wechat_openids(&self, appid: &str) -> Vec<(String, bool)> {
        let st = self.inner.lock();
        st.world
            .wechat
            .users
            .iter()
            .filter_map(|u| {
                u.openids
                    .get(appid)
                    .map(|o| (o.clone(), u.subscribed.iter().any(|a| a == appid)))
            })
            .collect()
    }

    /// The directory of the first corp.
    pub fn directory(&self) -> DirectorySnapshot {
        let st = self.inner.lock();
        snapshot(&st, 0)
    }

    /// The directory of one corp.
    pub fn directory_of(&self, corpid: &str) -> Option<DirectorySnapshot> {
        let st = self.inner.lock();
        st.world.corp_index(corpid).map(|ci| snapshot(&st, ci))
    }

    /// Adds a member to the first corp and pushes create_user. Returns the queued delivery ids.
    pub fn add_member(&self, m: Member) -> Result<Vec<u64>, SimError> {
        self.change(|st| st.op_add_member(None, m))
    }

    /// Changes a member (rename with `new_userid`, move with `department`) and pushes update_user.
    pub fn update_member(&self, userid: &str, u: MemberUpdate) -> Result<Vec<u64>, SimError> {
        self.change(|st| st.op_update_member(None, userid, u))
    }

    /// Moves a member to other departments (update_user with Department).
    pub fn move_member(&self, userid: &str, departments: Vec<u32>) -> Result<Vec<u64>, SimError> {
        self.update_member(
            userid,
            MemberUpdate {
                department: Some(departments),
                ..MemberUpdate::default()
            },
        )
    }

    pub fn remove_member(&self, userid: &str) -> Result<Vec<u64>, SimError> {
        self.change(|st| st.op_remove_member(None, userid))
    }

    /// Adds a department (id 0 picks the next free id) and pushes create_party.
    pub fn add_department(&self, d: Department) -> Result<Vec<u64>, SimError> {
        self.change(|st| st.op_add_department(None, d))
    }

    pub fn update_department(&self, id: u32, u: DepartmentUpdate) -> Result<Vec<u64>, SimError> {
        self.change(|st| st.op_update_department(None, id, u))
    }

    pub fn move_department(&self, id: u32, parentid: u32) -> Result<Vec<u64>, SimError> {
        self.update_department(
            id,
            DepartmentUpdate {
                parentid: Some(parentid),
                ..DepartmentUpdate::default()
            },
        )
    }

    /// Removes an empty department (no members, no sub-departments) and pushes delete_party.
    pub fn remove_department(&self, id: u32) -> Result<Vec<u64>, SimError> {
        self.change(|st| st.op_remove_department(None, id))
    }

    /// Changes tag membership and pushes update_tag.
    pub fn update_tag(&self, tagid: u32, u: TagUpdate) -> Result<Vec<u64>, SimError> {
        self.change(|st| st.op_update_tag(None, tagid, u))
    }

    fn change(
        &self,
        op: impl FnOnce(&mut State) -> Result<(usize, Vec<changes::ChangeEvent>), SimError>,
    ) -> Result<Vec<u64>, SimError> {
        let mut st = self.inner.lock();
        let (ci, events) = op(&mut st)?;
        Ok(st.dispatch(ci, &events))
    }

    /// Registers a callback URL after WeCom-style URL verification (refused if it fails).
    pub async fn register_callback(
        &self,
        req: CallbackRequest,
    ) -> Result<CallbackRegistration, SimError> {
        callbacks::register(&self.inner, req).await
    }

    /// Pushes an arbitrary plaintext callback XML to every URL registered for the target of `req`
    /// (`url`, `token` and key in `req` are ignored).
    pub fn push_callback(&self, target: &CallbackRequest, xml: &str) -> Result<Vec<u64>, SimError> {
        self.inner.lock().push_raw(target, xml)
    }

    pub fn callbacks(&self) -> Vec<CallbackRegistration> {
        self.inner.lock().callbacks.clone()
    }

    /// The delivery log: every pushed callback with its attempts.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.inner.lock().deliveries.clone()
    }

    /// Waits until every queued callback delivery has finished (delivered or out of attempts).
    pub async fn wait_for_deliveries(&self) {
        let mut rx = self.inner.lock().pending.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

fn mp_subject(st: &State, req: &MiniProgramRequest) -> Result<MpSubject, SimError> {
    if let Some((kind, _)) = st.world.wechat.app(&req.appid) {
        if kind != WechatKind::MiniProgram {
            return Err(SimError::UnknownWechat(format!(
                "{} is not a mini program",
                req.appid
            )));
        }
        let openid = req
            .openid
            .clone()
            .ok_or_else(|| SimError::InvalidChange("give openid".to_owned()))?;
        st.world
            .wechat
            .user(&req.appid, &openid)
            .ok_or_else(|| SimError::UnknownWechat(format!("{}/{openid}", req.appid)))?;
        return Ok(MpSubject::Wechat {
            appid: req.appid.clone(),
            openid,
        });
    }
    for (ci, c) in st.world.corps.iter().enumerate() {
        if c.mini_programs.iter().any(|m| m.appid == req.appid) {
            let userid = req
                .userid
                .clone()
                .ok_or_else(|| SimError::InvalidChange("give userid".to_owned()))?;
            let m = c
                .dir
                .member(&userid)
                .ok_or_else(|| SimError::UnknownMember(userid.clone()))?;
            return Ok(MpSubject::Wecom {
                corp: ci,
                appid: req.appid.clone(),
                userid: m.userid.clone(),
            });
        }
    }
    Err(SimError::UnknownWechat(req.appid.clone()))
}

fn snapshot(st: &State, ci: usize) -> DirectorySnapshot {
    match st.world.corps.get(ci) {
        Some(c) => DirectorySnapshot {
            corpid: c.corpid.clone(),
            departments: c.dir.departments.values().cloned().collect(),
            members: c.dir.members.values().cloned().collect(),
            tags: c.dir.tags.values().cloned().collect(),
        },
        None => DirectorySnapshot {
            corpid: String::new(),
            departments: Vec::new(),
            members: Vec::new(),
            tags: Vec::new(),
        },
    }
}
