//! Callback pushes, as WeCom and WeChat make them: registration with URL verification (a GET with an
//! encrypted echostr that must come back as bare plaintext within 1 s), then encrypted, signed POSTs with
//! a 5 s timeout and retries (3 deliveries in total by default) that keep timestamp, nonce and ciphertext
//! identical. One worker per registration delivers in order; every attempt is logged.

use std::sync::{Arc, Weak};

use rand::RngCore;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use wx_crypto::{CallbackCrypto, XmlBuilder};

use crate::changes::{ChangeEvent, MINIMAL_FIELDS, SENSITIVE_FIELDS};
use crate::error::SimError;
use crate::state::{Attempt, CallbackRegistration, CallbackTarget, Delivery, Shared, State};

/// `agentid` in a registration: an app's agentid or `"contacts"` for the contacts-sync assistant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AgentRef {
    Agent(u32),
    Named(String),
}

/// A callback registration request (`POST /_sim/callbacks`). Either `corpid` (default: the first corp)
/// with `agentid`, or `appid` of an official account. `token` and `encoding_aes_key` default to the ones
/// the simulator generated for that app.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackRequest {
    #[serde(default)]
    pub corpid: Option<String>,
    #[serde(default)]
    pub agentid: Option<AgentRef>,
    #[serde(default)]
    pub appid: Option<String>,
    pub url: String,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub encoding_aes_key: Option<String>,
}

/// One queued delivery for a registration's worker.
#[derive(Debug)]
pub(crate) struct Job {
    pub delivery: u64,
    pub url: String,
    pub body: String,
}

fn digits(st: &mut State, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + (st.rng.next_u32() % 10) as u8))
        .collect()
}

fn random16(st: &mut State) -> [u8; 16] {
    let mut b = [0u8; 16];
    st.rng.fill_bytes(&mut b);
    b
}

fn with_query(url: &str, pairs: &[(&str, &str)]) -> Result<String, SimError> {
    let mut u = url::Url::parse(url)
        .map_err(|e| SimError::BadRegistration(format!("bad url {url:?}: {e}")))?;
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    Ok(u.to_string())
}

impl State {
    /// Receive id, token and key of a registration's target, checking that it exists.
    fn target_of(
        &self,
        req: &CallbackRequest,
    ) -> Result<(CallbackTarget, String, String, String), SimError> {
        if let Some(appid) = &req.appid {
            let oa = self
                .world
                .wechat
                .official_accounts
                .iter()
                .find(|a| a.appid == *appid)
                .ok_or_else(|| SimError::UnknownWechat(appid.clone()))?;
            return Ok((
                CallbackTarget::OfficialAccount {
                    appid: appid.clone(),
                },
                appid.clone(),
                oa.token.clone(),
                oa.encoding_aes_key.clone(),
            ));
        }
        let ci = match &req.corpid {
            Some(c) => self
                .world
                .corp_index(c)
                .ok_or_else(|| SimError::UnknownCorp(c.clone()))?,
            None => 0,
        };
        let corp = self
            .world
            .corps
            .get(ci)
            .ok_or_else(|| SimError::UnknownCorp(String::new()))?;
        match &req.agentid {
            Some(AgentRef::Agent(a)) => {
                let app = corp
                    .app(*a)
                    .ok_or_else(|| SimError::UnknownApp(a.to_string()))?;
                Ok((
                    CallbackTarget::App {
                        corpid: corp.corpid.clone(),
                        agentid: *a,
                    },
                    corp.corpid.clone(),
                    app.callback_token.clone(),
                    app.encoding_aes_key.clone(),
                ))
            }
            Some(AgentRef::Named(n)) if n == "contacts" => Ok((
                CallbackTarget::Contacts {
                    corpid: corp.corpid.clone(),
                },
                corp.corpid.clone(),
                corp.contacts_callback_token.clone(),
                corp.contacts_encoding_aes_key.clone(),
            )),
            Some(AgentRef::Named(n)) => {
                // An app may also be named by its local name ("main").
                let app = corp
                    .apps
                    .iter()
                    .find(|a| a.name == *n)
                    .ok_or_else(|| SimError::UnknownApp(n.clone()))?;
                Ok((
                    CallbackTarget::App {
                        corpid: corp.corpid.clone(),
                        agentid: app.agentid,
                    },
                    corp.corpid.clone(),
                    app.callback_token.clone(),
                    app.encoding_aes_key.clone(),
                ))
            }
            None => Err(SimError::BadRegistration(
                "give agentid (a number or \"contacts\") or appid".to_owned(),
            )),
        }
    }

    /// Encrypts, signs and queues one callback for one registration.
    fn queue(
        &mut self,
        reg_index: usize,
        plaintext: String,
        kind: String,
        openid: &str,
    ) -> Result<u64, SimError> {
        let reg = self.callbacks[reg_index].clone();
        let timestamp = (self.now_ms() / 1000).to_string();
        let nonce = digits(self, 10);
        let r16 = random16(self);
        let (receive_id, to_user, agent) = match &reg.target {
            CallbackTarget::Contacts { corpid } => (corpid.clone(), corpid.clone(), None),
            CallbackTarget::App { corpid, agentid } => {
                (corpid.clone(), corpid.clone(), Some(*agentid))
            }
            CallbackTarget::OfficialAccount { appid } => {
                let gh = self
                    .world
                    .wechat
                    .app(appid)
                    .map(|(_, a)| a.original_id.clone())
                    .unwrap_or_default();
                (appid.clone(), gh, None)
            }
        };
        let crypto = CallbackCrypto::new(&reg.token, &reg.encoding_aes_key, &receive_id)
            .map_err(|e| SimError::BadRegistration(e.to_string()))?;
        let encrypt = crypto
            .encrypt(plaintext.as_bytes(), r16)
            .map_err(|e| SimError::InvalidChange(e.to_string()))?;
        let msg_signature = crypto.sign(&timestamp, &nonce, &encrypt);
        let mut b = XmlBuilder::new();
        b.cdata("ToUserName", &to_user);
        if let Some(a) = agent {
            b.cdata("AgentID", &a.to_string());
        }
        b.cdata("Encrypt", &encrypt);
        let body = b.finish();
        let url = match &reg.target {
            CallbackTarget::OfficialAccount { .. } => {
                let signature = wx_crypto::signature(&reg.token, &timestamp, &nonce);
                with_query(
                    &reg.url,
                    &[
                        ("signature", &signature),
                        ("timestamp", &timestamp),
                        ("nonce", &nonce),
                        ("openid", openid),
                        ("encrypt_type", "aes"),
                        ("msg_signature", &msg_signature),
                    ],
                )?
            }
            _ => with_query(
                &reg.url,
                &[
                    ("msg_signature", &msg_signature),
                    ("timestamp", &timestamp),
                    ("nonce", &nonce),
                ],
            )?,
        };
        let id = self.deliveries.len() as u64 + 1;
        self.deliveries.push(Delivery {
            id,
            registration: reg.id,
            url: reg.url.clone(),
            kind,
            plaintext,
            timestamp,
            nonce,
            attempts: Vec::new(),
            delivered: false,
            finished: false,
        });
        match self.queues.get(&reg.id) {
            Some(tx)
                if tx
                    .send(Job {
                        delivery: id,
                        url,
                        body,
                    })
                    .is_ok() =>
            {
                self.pending.send_modify(|n| *n += 1);
            }
            _ => {
                if let Some(d) = self.deliveries.last_mut() {
                    d.finished = true;
                    d.attempts.push(Attempt {
                        status: None,
                        error: Some("delivery worker is gone".to_owned()),
                        body: String::new(),
                    });
                }
            }
        }
        Ok(id)
    }

    /// Queues the change_contact callbacks of `events` in corp `ci` to every registration that should get
    /// them: the contacts-sync assistant always, apps when the change touches their scope.
    pub(crate) fn dispatch(&mut self, ci: usize, events: &[ChangeEvent]) -> Vec<u64> {
        let Some(corp) = self.world.corps.get(ci) else {
            return Vec::new();
        };
        let corpid = corp.corpid.clone();
        let mut ids = Vec::new();
        for ev in events {
            for i in 0..self.callbacks.len() {
                let (restricted, minimal) = match &self.callbacks[i].target {
                    CallbackTarget::Contacts { corpid: c } if *c == corpid => {
                        (false, self.cfg.contacts_callback_minimal)
                    }
                    CallbackTarget::App { corpid: c, agentid } if *c == corpid => {
                        if !self.cfg.app_change_contact || !ev.apps.contains(agentid) {
                            continue;
                        }
                        let restricted = self.world.corps[ci]
                            .app(*agentid)
                            .map(|a| a.restricted_fields)
                            .unwrap_or(false);
                        (restricted, false)
                    }
                    _ => continue,
                };
                let member_event = ev.change_type.ends_with("_user");
                let now = (self.now_ms() / 1000).to_string();
                let mut b = XmlBuilder::new();
                b.cdata("ToUserName", &corpid)
                    .cdata("FromUserName", "sys")
                    .text("CreateTime", &now)
                    .cdata("MsgType", "event")
                    .cdata("Event", "change_contact")
                    .cdata("ChangeType", ev.change_type);
                for (name, value) in &ev.fields {
                    if restricted && SENSITIVE_FIELDS.contains(name) {
                        continue;
                    }
                    if minimal && member_event && !MINIMAL_FIELDS.contains(name) {
                        continue;
                    }
                    b.cdata(name, value);
                }
                match self.queue(i, b.finish(), ev.change_type.to_owned(), "") {
                    Ok(id) => ids.push(id),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not queue a change_contact callback")
                    }
                }
            }
        }
        ids
    }

    /// Queues an arbitrary plaintext callback (text message, subscribe...) to the registrations of a target.
    pub(crate) fn push_raw(
        &mut self,
        req: &CallbackRequest,
        xml: &str,
    ) -> Result<Vec<u64>, SimError> {
        let (target, ..) = self.target_of(req)?;
        let msg = wx_crypto::CallbackMessage::parse(xml)
            .map_err(|e| SimError::InvalidChange(format!("not a callback message: {e}")))?;
        let kind = msg
            .change_type()
            .or(msg.event())
            .or(msg.msg_type())
            .unwrap_or("unknown")
            .to_owned();
        let openid = msg.from_user().unwrap_or("").to_owned();
        let mut ids = Vec::new();
        for i in 0..self.callbacks.len() {
            if self.callbacks[i].target == target {
                ids.push(self.queue(i, xml.to_owned(), kind.clone(), &openid)?);
            }
        }
        if ids.is_empty() {
            return Err(SimError::BadRegistration(
                "no callback URL is registered for that target".to_owned(),
            ));
        }
        Ok(ids)
    }
}

/// Registers a callback URL after verifying it the way the platform does.
pub(crate) async fn register(
    shared: &Arc<Shared>,
    req: CallbackRequest,
) -> Result<CallbackRegistration, SimError> {
    let (target, verify_url, expected, timeout, token, key) = {
        let mut st = shared.lock();
        let (target, receive_id, default_token, default_key) = st.target_of(&req)?;
        let token = req.token.clone().unwrap_or(default_token);
        let key = req.encoding_aes_key.clone().unwrap_or(default_key);
        let crypto = CallbackCrypto::new(&token, &key, &receive_id)
            .map_err(|e| SimError::BadRegistration(e.to_string()))?;
        let timestamp = (st.now_ms() / 1000).to_string();
        let nonce = digits(&mut st, 10);
        let echo = digits(&mut st, 19);
        let verify_url = match target {
            CallbackTarget::OfficialAccount { .. } => {
                // WeChat verifies with the plain 3-field signature and a plaintext echostr.
                let signature = wx_crypto::signature(&token, &timestamp, &nonce);
                with_query(
                    &req.url,
                    &[
                        ("signature", &signature),
                        ("timestamp", &timestamp),
                        ("nonce", &nonce),
                        ("echostr", &echo),
                    ],
                )?
            }
            _ => {
                let r16 = random16(&mut st);
                let echostr = crypto
                    .encrypt(echo.as_bytes(), r16)
                    .map_err(|e| SimError::BadRegistration(e.to_string()))?;
                let sig = crypto.sign(&timestamp, &nonce, &echostr);
                with_query(
                    &req.url,
                    &[
                        ("msg_signature", &sig),
                        ("timestamp", &timestamp),
                        ("nonce", &nonce),
                        ("echostr", &echostr),
                    ],
                )?
            }
        };
        (target, verify_url, echo, st.cfg.verify_timeout, token, key)
    };
    let fail = |reason: String| SimError::CallbackVerification {
        url: req.url.clone(),
        reason,
    };
    let resp = shared
        .http
        .get(&verify_url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| {
            fail(if e.is_timeout() {
                format!("no answer within {} ms", timeout.as_millis())
            } else {
                e.without_url().to_string()
            })
        })?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| fail(e.without_url().to_string()))?;
    if status.as_u16() != 200 {
        return Err(fail(format!("HTTP status {status}, expected 200")));
    }
    if body.as_ref() != expected.as_bytes() {
        let shown: String = String::from_utf8_lossy(&body).chars().take(80).collect();
        return Err(fail(format!(
            "expected the bare decrypted echostr {expected:?}, got {shown:?}"
        )));
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let reg = {
        let mut st = shared.lock();
        let id = st.callbacks.len() as u64 + 1;
        let reg = CallbackRegistration {
            id,
            target,
            url: req.url.clone(),
            token,
            encoding_aes_key: key,
        };
        st.callbacks.push(reg.clone());
        st.queues.insert(id, tx);
        reg
    };
    tokio::spawn(worker(Arc::downgrade(shared), rx));
    Ok(reg)
}

/// Delivers one registration's jobs in order, retrying each up to the configured number of deliveries.
async fn worker(shared: Weak<Shared>, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(job) = rx.recv().await {
        let Some(shared) = shared.upgrade() else {
            break;
        };
        let (attempts, timeout) = {
            let st = shared.lock();
            (st.cfg.callback_attempts.max(1), st.cfg.callback_timeout)
        };
        for _ in 0..attempts {
            let res = shared
                .http
                .post(&job.url)
                .header("content-type", "text/xml; charset=utf-8")
                .body(job.body.clone())
                .timeout(timeout)
                .send()
                .await;
            let attempt = match res {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let body = r.text().await.unwrap_or_default();
                    Attempt {
                        status: Some(status),
                        error: None,
                        body: body.chars().take(200).collect(),
                    }
                }
                Err(e) => Attempt {
                    status: None,
                    error: Some(if e.is_timeout() {
                        "timeout".to_owned()
                    } else {
                        e.without_url().to_string()
                    }),
                    body: String::new(),
                },
            };
            // WeCom counts HTTP 200 as received; anything else is retried with the same payload.
            let ok = attempt.status == Some(200);
            let mut st = shared.lock();
            if let Some(d) = st.deliveries.iter_mut().find(|d| d.id == job.delivery) {
                d.attempts.push(attempt);
                d.delivered = ok;
            }
            if ok {
                break;
            }
        }
        let mut st = shared.lock();
        if let Some(d) = st.deliveries.iter_mut().find(|d| d.id == job.delivery) {
            d.finished = true;
        }
        st.pending.send_modify(|n| *n = n.saturating_sub(1));
    }
}
