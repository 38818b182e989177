//! Run-time state of a simulator behind one lock: the world, the simulated clock, tokens and tickets,
//! OAuth and mini-program codes, rate/concurrency limits, fault injection, stats and callback registrations,
//! plus the reply helpers that give errors the real errmsg suffix shapes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Json;
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::watch;

use crate::config::{RateLimit, SimConfig};
use crate::generate::{rand_alnum, rand_hex};
use crate::model::{Visibility, World};

/// Which platform's reply conventions an API follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    Wecom,
    Wechat,
}

/// An errcode answer. `extra` carries fields that real servers send alongside some errors (81013 keeps
/// `invaliduser`).
#[derive(Debug, Clone)]
pub(crate) struct ApiErr {
    pub code: i64,
    pub msg: String,
    pub extra: Option<Map<String, Value>>,
}

impl ApiErr {
    pub fn new(code: i64, msg: impl Into<String>) -> Self {
        ApiErr {
            code,
            msg: msg.into(),
            extra: None,
        }
    }
    pub fn no_token() -> Self {
        Self::new(41001, "access_token missing")
    }
    pub fn bad_token() -> Self {
        Self::new(40014, "invalid access_token")
    }
    pub fn expired_token() -> Self {
        Self::new(42001, "access_token expired")
    }
    pub fn forbidden() -> Self {
        Self::new(48002, "api forbidden")
    }
    pub fn no_privilege() -> Self {
        Self::new(60011, "no privilege to access/modify contact/party/agent")
    }
    pub fn bad_code() -> Self {
        Self::new(40029, "invalid code")
    }
    pub fn bad_param(what: &str) -> Self {
        Self::new(40058, format!("invalid Request Parameter: {what}"))
    }
    pub fn bad_json() -> Self {
        Self::new(47001, "data format error")
    }
}

/// Who a valid access token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenOwner {
    /// A WeCom token: `agentid` None is the contacts-sync secret.
    Wecom { corp: usize, agentid: Option<u32> },
    /// A WeChat base token (cgi-bin/token or stable_token).
    Wechat { appid: String, stable: bool },
    /// A WeChat web-authorisation token from sns/oauth2/access_token.
    Sns {
        appid: String,
        openid: String,
        scope: String,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct TokenEntry {
    pub owner: TokenOwner,
    pub expires_ms: i64,
    pub revoked: bool,
}

/// State of one appid's stable_token.
#[derive(Debug, Clone, Default)]
pub(crate) struct StableState {
    pub current: Option<String>,
    pub last_force_ms: Option<i64>,
    /// (day number, force refreshes that day).
    pub forced_today: (i64, u32),
}

/// An OAuth / QR-login code.
#[derive(Debug, Clone)]
pub(crate) enum CodeSubject {
    Wecom {
        corp: usize,
        agentid: Option<u32>,
        userid: String,
        privateinfo: bool,
    },
    Wechat {
        appid: String,
        openid: String,
        scope: String,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct OAuthCode {
    pub subject: CodeSubject,
    /// host[:port] of the redirect_uri the code was issued for (checked against the trusted domain).
    pub redirect_host: Option<String>,
    pub expires_ms: i64,
    pub used: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct UserTicket {
    pub corp: usize,
    pub userid: String,
    pub expires_ms: i64,
}

/// A mini-program login code.
#[derive(Debug, Clone)]
pub(crate) enum MpSubject {
    Wechat {
        appid: String,
        openid: String,
    },
    Wecom {
        corp: usize,
        appid: String,
        userid: String,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct MpCode {
    pub subject: MpSubject,
    pub expires_ms: i64,
    pub used: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct PhoneCode {
    pub appid: String,
    pub openid: String,
    pub expires_ms: i64,
    pub used: bool,
}

/// A message accepted by message/send, for "did it reach these userids" assertions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SentMessage {
    pub msgid: String,
    pub corpid: String,
    pub agentid: u32,
    pub msgtype: String,
    /// Userids (as stored in the directory) that received it, sorted.
    pub recipients: Vec<String>,
    pub invaliduser: Vec<String>,
    pub invalidparty: Vec<String>,
    pub invalidtag: Vec<String>,
    /// The request body as sent.
    pub body: Value,
    pub sent_at: i64,
    pub recalled: bool,
}

/// Counters of API calls by path and errcode, plus messages sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// API path -> errcode -> number of calls.
    pub calls: BTreeMap<String, BTreeMap<i64, u64>>,
    pub messages: Vec<SentMessage>,
}

impl Stats {
    /// All calls to `api` (e.g. "/cgi-bin/gettoken"), whatever their errcode.
    pub fn calls(&self, api: &str) -> u64 {
        self.calls.get(api).map(|m| m.values().sum()).unwrap_or(0)
    }

    /// Calls to `api` that answered `errcode` (0 for success).
    pub fn calls_with(&self, api: &str, errcode: i64) -> u64 {
        self.calls
            .get(api)
            .and_then(|m| m.get(&errcode))
            .copied()
            .unwrap_or(0)
    }

    /// Every userid that received a message, sorted and deduplicated.
    pub fn message_recipients(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .messages
            .iter()
            .flat_map(|m| m.recipients.iter().cloned())
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Window {
    pub start_ms: i64,
    pub count: u32,
    pub blocked_until_ms: i64,
}

/// An injected fault: the next `remaining` calls (None = every call) to an API answer `errcode`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Fault {
    pub errcode: i64,
    #[serde(default)]
    pub remaining: Option<u32>,
}

#[derive(Debug, Default)]
pub(crate) struct Limits {
    pub rate: HashMap<String, RateLimit>,
    /// (owner, api) overrides: owner is a corpid or WeChat appid.
    pub rate_for: HashMap<(String, String), RateLimit>,
    pub windows: HashMap<(String, String), Window>,
    pub concurrency: HashMap<String, u32>,
    pub inflight: HashMap<(String, String), u32>,
    /// Held APIs: requests wait until the sender flips to false (used to test concurrency limits).
    pub holds: HashMap<String, watch::Sender<bool>>,
    pub latency: HashMap<String, Duration>,
    pub faults: HashMap<String, Fault>,
}

/// Where callbacks of one registration come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CallbackTarget {
    /// The contacts-sync assistant of a corp.
    Contacts { corpid: String },
    /// A self-built app.
    App { corpid: String, agentid: u32 },
    /// A WeChat official account (safe mode).
    OfficialAccount { appid: String },
}

/// A registered callback URL.
#[derive(Debug, Clone, Serialize)]
pub struct CallbackRegistration {
    pub id: u64,
    pub target: CallbackTarget,
    pub url: String,
    #[serde(skip)]
    pub token: String,
    #[serde(skip)]
    pub encoding_aes_key: String,
}

/// One attempt to deliver a callback.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Attempt {
    /// HTTP status, when the receiver answered.
    pub status: Option<u16>,
    /// Transport error or timeout, when it did not.
    pub error: Option<String>,
    /// The receiver's body (first 200 bytes).
    pub body: String,
}

/// The delivery log of one pushed callback.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub id: u64,
    pub registration: u64,
    pub url: String,
    /// ChangeType for change_contact, else Event or MsgType.
    pub kind: String,
    /// The plaintext XML before encryption.
    pub plaintext: String,
    pub timestamp: String,
    pub nonce: String,
    pub attempts: Vec<Attempt>,
    pub delivered: bool,
    pub finished: bool,
}

/// Everything behind the lock.
#[derive(Debug)]
pub(crate) struct State {
    pub world: World,
    pub cfg: SimConfig,
    pub offset_ms: i64,
    pub rng: ChaCha8Rng,
    pub tokens: HashMap<String, TokenEntry>,
    /// (corp, agentid or None for contacts) -> the current WeCom token.
    pub wecom_current: HashMap<(usize, Option<u32>), String>,
    /// appid -> the newest classic WeChat token.
    pub wechat_classic: HashMap<String, String>,
    pub wechat_stable: HashMap<String, StableState>,
    pub tickets: HashMap<String, (String, i64)>,
    pub oauth_codes: HashMap<String, OAuthCode>,
    pub user_tickets: HashMap<String, UserTicket>,
    pub mp_codes: HashMap<String, MpCode>,
    /// (appid, openid or userid) -> current session_key.
    pub sessions: HashMap<(String, String), String>,
    pub phone_codes: HashMap<String, PhoneCode>,
    pub limits: Limits,
    pub stats: Stats,
    pub callbacks: Vec<CallbackRegistration>,
    pub deliveries: Vec<Delivery>,
    pub visibility: HashMap<(usize, u32), (u64, Arc<Visibility>)>,
    pub base_url: Option<String>,
    pub seq: u64,
    /// Registration id -> its delivery worker's queue.
    pub queues: HashMap<u64, tokio::sync::mpsc::UnboundedSender<crate::callbacks::Job>>,
    /// Number of callback deliveries still running; tests wait for 0.
    pub pending: Arc<watch::Sender<usize>>,
}

impl State {
    pub fn new(world: World, cfg: SimConfig) -> State {
        use rand::SeedableRng;
        // Runtime randomness (tokens, codes, nonces) is seeded too, so a scripted run is repeatable.
        let rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5EED_F00D);
        let mut limits = Limits::default();
        for (api, l) in &cfg.rate_limits {
            limits.rate.insert(api.clone(), *l);
        }
        for (api, n) in &cfg.concurrency_limits {
            limits.concurrency.insert(api.clone(), *n);
        }
        State {
            world,
            cfg,
            offset_ms: 0,
            rng,
            tokens: HashMap::new(),
            wecom_current: HashMap::new(),
            wechat_classic: HashMap::new(),
            wechat_stable: HashMap::new(),
            tickets: HashMap::new(),
            oauth_codes: HashMap::new(),
            user_tickets: HashMap::new(),
            mp_codes: HashMap::new(),
            sessions: HashMap::new(),
            phone_codes: HashMap::new(),
            limits,
            stats: Stats::default(),
            callbacks: Vec::new(),
            deliveries: Vec::new(),
            visibility: HashMap::new(),
            base_url: None,
            seq: 0,
            queues: HashMap::new(),
            pending: Arc::new(watch::Sender::new(0)),
        }
    }

    /// Simulated now: real time plus the offset tests advance.
    pub fn now_ms(&self) -> i64 {
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        real.saturating_add(self.offset_ms)
    }

    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub fn lifetime_ms(&self) -> i64 {
        i64::try_from(self.cfg.token_lifetime.as_millis()).unwrap_or(i64::MAX)
    }

    pub fn random_token(&mut self, len: usize) -> String {
        rand_alnum(&mut self.rng, len)
    }

    pub fn new_token(&mut self, owner: TokenOwner, lifetime_ms: i64) -> String {
        let token = loop {
            let t = self.random_token(64);
            if !self.tokens.contains_key(&t) {
                break t;
            }
        };
        let expires_ms = self.now_ms().saturating_add(lifetime_ms);
        self.tokens.insert(
            token.clone(),
            TokenEntry {
                owner,
                expires_ms,
                revoked: false,
            },
        );
        token
    }

    /// Checks a token from `?access_token=`: 41001 missing, 40014 unknown/revoked, 42001 expired.
    pub fn check_token(&self, token: Option<&str>) -> Result<TokenOwner, ApiErr> {
        let token = match token {
            Some(t) if !t.is_empty() => t,
            _ => return Err(ApiErr::no_token()),
        };
        let entry = self.tokens.get(token).ok_or_else(ApiErr::bad_token)?;
        if entry.revoked {
            return Err(ApiErr::bad_token());
        }
        if self.now_ms() >= entry.expires_ms {
            return Err(ApiErr::expired_token());
        }
        Ok(entry.owner.clone())
    }

    /// A WeCom token: (corp, agentid; None = contacts-sync).
    pub fn wecom_caller(&self, token: Option<&str>) -> Result<(usize, Option<u32>), ApiErr> {
        match self.check_token(token)? {
            TokenOwner::Wecom { corp, agentid } => Ok((corp, agentid)),
            _ => Err(ApiErr::bad_token()),
        }
    }

    /// A WeChat base token: the appid.
    pub fn wechat_caller(&self, token: Option<&str>) -> Result<String, ApiErr> {
        match self.check_token(token)? {
            TokenOwner::Wechat { appid, .. } => Ok(appid),
            _ => Err(ApiErr::bad_token()),
        }
    }

    pub fn corpid(&self, corp: usize) -> String {
        self.world
            .corps
            .get(corp)
            .map(|c| c.corpid.clone())
            .unwrap_or_default()
    }

    /// What a caller may see; the contacts-sync secret (None) sees everything.
    pub fn vis(&mut self, corp: usize, agentid: Option<u32>) -> Arc<Visibility> {
        let Some(agentid) = agentid else {
            return Visibility::whole();
        };
        let Some(c) = self.world.corps.get(corp) else {
            return Arc::new(Visibility::default());
        };
        if let Some((v, vis)) = self.visibility.get(&(corp, agentid))
            && *v == c.dir.version
        {
            return vis.clone();
        }
        let vis = match c.app(agentid) {
            Some(app) => Arc::new(Visibility::compute(&c.dir, &app.scope)),
            None => Arc::new(Visibility::default()),
        };
        self.visibility
            .insert((corp, agentid), (c.dir.version, vis.clone()));
        vis
    }

    /// Admission of one call: fault injection, rate limit (45009 + block window), concurrency (45033).
    /// Returns the in-flight key to release when a concurrency limit applies.
    pub fn admit(&mut self, api: &str, owner: &str) -> Result<Option<(String, String)>, ApiErr> {
        if let Some(f) = self.limits.faults.get_mut(api) {
            let code = f.errcode;
            match &mut f.remaining {
                Some(0) => {
                    self.limits.faults.remove(api);
                }
                Some(n) => {
                    *n -= 1;
                    if *n == 0 {
                        self.limits.faults.remove(api);
                    }
                    return Err(fault_err(code));
                }
                None => return Err(fault_err(code)),
            }
        }
        let key = (owner.to_owned(), api.to_owned());
        let limit = self
            .limits
            .rate_for
            .get(&key)
            .or_else(|| self.limits.rate.get(api))
            .copied();
        if let Some(limit) = limit {
            let now = self.now_ms();
            let window_ms = i64::try_from(limit.window.as_millis())
                .unwrap_or(i64::MAX)
                .max(1);
            let w = self.limits.windows.entry(key.clone()).or_default();
            if now < w.blocked_until_ms {
                return Err(ApiErr::new(45009, "api freq out of limit"));
            }
            if now >= w.start_ms.saturating_add(window_ms) {
                w.start_ms = now;
                w.count = 0;
            }
            if w.count >= limit.per_window {
                // Interception lasts as long as the window (a per-minute limit blocks for 60 s).
                w.blocked_until_ms = now.saturating_add(window_ms);
                w.start_ms = w.blocked_until_ms;
                w.count = 0;
                return Err(ApiErr::new(45009, "api freq out of limit"));
            }
            w.count += 1;
        }
        if let Some(max) = self.limits.concurrency.get(api).copied() {
            let n = self.limits.inflight.entry(key.clone()).or_default();
            if *n >= max {
                return Err(ApiErr::new(45033, "api concurrent out of limit"));
            }
            *n += 1;
            return Ok(Some(key));
        }
        Ok(None)
    }

    /// Records the call and turns the result into the HTTP answer (always 200).
    pub fn finish(&mut self, flavor: Flavor, api: &str, result: Result<Value, ApiErr>) -> Response {
        match result {
            Ok(mut v) => {
                let code = v.get("errcode").and_then(Value::as_i64).unwrap_or(0);
                if flavor == Flavor::Wecom
                    && let Some(obj) = v.as_object_mut()
                {
                    obj.entry("errcode").or_insert(json!(0));
                    obj.entry("errmsg").or_insert(json!("ok"));
                }
                self.count(api, code);
                Json(v).into_response()
            }
            Err(e) => {
                self.count(api, e.code);
                let errmsg = match flavor {
                    Flavor::Wecom => {
                        let hint = format!(
                            "{}{:06}{}",
                            self.now_ms() / 1000,
                            self.next_seq() % 1_000_000,
                            rand_digits(&mut self.rng, 6)
                        );
                        format!(
                            "{}, hint: [{hint}], from ip: 127.0.0.1, more info at https://open.work.weixin.qq.com/devtool/query?e={}",
                            e.msg, e.code
                        )
                    }
                    Flavor::Wechat => {
                        let rid = format!(
                            "{}-{}-{}",
                            rand_hex(&mut self.rng, 8),
                            rand_hex(&mut self.rng, 8),
                            rand_hex(&mut self.rng, 8)
                        );
                        format!("{} rid: {rid}", e.msg)
                    }
                };
                let mut obj = Map::new();
                obj.insert("errcode".to_owned(), json!(e.code));
                obj.insert("errmsg".to_owned(), json!(errmsg));
                if let Some(extra) = e.extra {
                    obj.extend(extra);
                }
                Json(Value::Object(obj)).into_response()
            }
        }
    }

    pub fn count(&mut self, api: &str, code: i64) {
        *self
            .stats
            .calls
            .entry(api.to_owned())
            .or_default()
            .entry(code)
            .or_default() += 1;
    }
}

fn fault_err(code: i64) -> ApiErr {
    let msg = match code {
        -1 => "system busy",
        45009 => "api freq out of limit",
        45033 => "api concurrent out of limit",
        40014 => "invalid access_token",
        42001 => "access_token expired",
        _ => "injected fault",
    };
    ApiErr::new(code, msg)
}

fn rand_digits(rng: &mut ChaCha8Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + (rng.next_u32() % 10) as u8))
        .collect()
}

/// The shared core of a `Simulator`: state, the pending-delivery counter and an HTTP client for callbacks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub http: reqwest::Client,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated in a way that matters to a
        // simulator, so a poisoned lock is simply taken over.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Releases an in-flight slot when the request finishes, however it finishes.
pub(crate) struct InflightGuard {
    pub shared: Arc<Shared>,
    pub key: Option<(String, String)>,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut st = self.shared.lock();
            if let Some(n) = st.limits.inflight.get_mut(&key) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

/// Runs one API call: `auth` identifies the caller and its owner key (corpid/appid) under the lock, then
/// admission (faults, limits), an optional hold or latency outside the lock, then `work` under the lock.
pub(crate) async fn run_api<C, A, W>(
    shared: &Arc<Shared>,
    flavor: Flavor,
    api: &str,
    auth: A,
    work: W,
) -> Response
where
    A: FnOnce(&mut State) -> Result<(C, String), ApiErr>,
    W: FnOnce(&mut State, C) -> Result<Value, ApiErr>,
{
    let admitted = {
        let mut st = shared.lock();
        match auth(&mut st).and_then(|(c, owner)| st.admit(api, &owner).map(|k| (c, k))) {
            Ok((c, key)) => {
                let hold = st.limits.holds.get(api).map(|s| s.subscribe());
                let latency = st.limits.latency.get(api).copied();
                Ok((c, key, hold, latency))
            }
            Err(e) => Err(st.finish(flavor, api, Err(e))),
        }
    };
    let (caller, key, hold, latency) = match admitted {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let _guard = InflightGuard {
        shared: shared.clone(),
        key,
    };
    if let Some(mut rx) = hold {
        // Wait until the test releases the API (or the simulator goes away).
        let _ = rx.wait_for(|held| !*held).await;
    }
    if let Some(d) = latency {
        tokio::time::sleep(d).await;
    }
    let mut st = shared.lock();
    let r = work(&mut st, caller);
    st.finish(flavor, api, r)
}
