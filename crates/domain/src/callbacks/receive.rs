//! The endpoint's side: which receiver a path names, URL verification, and a POST verified, decrypted,
//! parsed and written to the inbox.

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::Deserialize;
use wx_crypto::{CallbackCrypto, CallbackMessage, CryptoError};
use wxbridge_config::MessageMode;

use crate::{Db, Tenants};

/// Largest accepted POST body. Real callbacks are a few KiB; anything larger is refused before any
/// parsing.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The endpoint a callback arrived at. Its [`CallbackSource::key`] is the inbox's `source` column.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CallbackSource {
    /// A self-built WeCom app, by its configured name.
    WecomApp(String),
    /// The contacts-sync assistant (通讯录同步).
    WecomContacts,
    /// A WeChat official account, by its configured name.
    OfficialAccount(String),
}

impl CallbackSource {
    /// `wecom_app:<name>`, `wecom_contacts`, `wechat_oa:<name>`.
    pub fn key(&self) -> String {
        match self {
            CallbackSource::WecomApp(n) => format!("wecom_app:{n}"),
            CallbackSource::WecomContacts => "wecom_contacts".to_owned(),
            CallbackSource::OfficialAccount(n) => format!("wechat_oa:{n}"),
        }
    }
}

impl fmt::Display for CallbackSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallbackSource::WecomApp(n) => write!(f, "WeCom app `{n}`"),
            CallbackSource::WecomContacts => f.write_str("the WeCom contacts-sync assistant"),
            CallbackSource::OfficialAccount(n) => write!(f, "official account `{n}`"),
        }
    }
}

/// The query string of a callback request (GET or POST), every field optional: which ones are needed
/// depends on the platform and mode.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CallbackQuery {
    pub msg_signature: Option<String>,
    pub signature: Option<String>,
    pub timestamp: Option<String>,
    pub nonce: Option<String>,
    pub echostr: Option<String>,
    pub encrypt_type: Option<String>,
    pub openid: Option<String>,
}

/// Why a callback request was refused. Nothing is stored for any of them.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("unknown tenant `{0}`")]
    UnknownTenant(String),
    #[error("tenant `{tenant}` has no {endpoint}")]
    UnknownSource {
        tenant: String,
        endpoint: CallbackSource,
    },
    #[error("{endpoint} of tenant `{tenant}` has no callback configured: set `{key}` first")]
    NotConfigured {
        tenant: String,
        endpoint: CallbackSource,
        key: String,
    },
    #[error("missing query parameter `{0}`")]
    MissingParam(&'static str),
    #[error("the body is larger than the {limit} bytes a callback may have")]
    BodyTooLarge { limit: usize },
    #[error("{0}")]
    Crypto(#[from] CryptoError),
    #[error("{0}")]
    BadRequest(String),
    /// The inbox could not be written: the platform should retry (nothing was acknowledged).
    #[error("the callback inbox is unavailable: {0}")]
    Inbox(String),
}

impl ReceiveError {
    /// A stable, greppable code for the refusal: `tenant_not_found`, `unknown_callback`,
    /// `callback_not_configured`, `missing_parameter`, `body_too_large`, `bad_request`,
    /// `inbox_unavailable`, `bad_signature`, `wrong_receive_id`, `hostile_xml`, `bad_base64`,
    /// `bad_ciphertext`, `bad_callback`.
    pub fn code(&self) -> &'static str {
        match self {
            ReceiveError::UnknownTenant(_) => "tenant_not_found",
            ReceiveError::UnknownSource { .. } => "unknown_callback",
            ReceiveError::NotConfigured { .. } => "callback_not_configured",
            ReceiveError::MissingParam(_) => "missing_parameter",
            ReceiveError::BodyTooLarge { .. } => "body_too_large",
            ReceiveError::BadRequest(_) => "bad_request",
            ReceiveError::Inbox(_) => "inbox_unavailable",
            ReceiveError::Crypto(e) => match e {
                CryptoError::SignatureMismatch => "bad_signature",
                CryptoError::ReceiveIdMismatch { .. } => "wrong_receive_id",
                CryptoError::HostileXml => "hostile_xml",
                CryptoError::Base64 { .. } => "bad_base64",
                CryptoError::CiphertextLength { .. }
                | CryptoError::Padding { .. }
                | CryptoError::BufferTooShort { .. }
                | CryptoError::LengthOutOfRange { .. }
                | CryptoError::InvalidUtf8 => "bad_ciphertext",
                _ => "bad_callback",
            },
        }
    }
}

/// How to check one endpoint's requests, built from the tenant's configuration.
#[derive(Debug, Clone)]
pub enum Receiver {
    Wecom {
        crypto: CallbackCrypto,
        /// For an app: its agentid, which an `AgentID` in the message must match.
        agentid: Option<i64>,
    },
    OfficialAccount {
        /// The plain-mode token (for the 3-field signature).
        token: PlainToken,
        /// Present in compatible and safe mode.
        crypto: Option<CallbackCrypto>,
        mode: MessageMode,
    },
}

/// The official account's token, redacted in Debug.
#[derive(Clone)]
pub struct PlainToken(secrecy::SecretString);

impl fmt::Debug for PlainToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainToken([redacted])")
    }
}

fn need<'a>(v: &'a Option<String>, name: &'static str) -> Result<&'a str, ReceiveError> {
    v.as_deref()
        .filter(|s| !s.is_empty())
        .ok_or(ReceiveError::MissingParam(name))
}

impl Receiver {
    /// The receiver of `source` in `tenant`.
    pub fn resolve(
        tenants: &Tenants,
        tenant: &str,
        source: &CallbackSource,
    ) -> Result<Receiver, ReceiveError> {
        let t = tenants
            .get(tenant)
            .ok_or_else(|| ReceiveError::UnknownTenant(tenant.to_owned()))?;
        let unknown = || ReceiveError::UnknownSource {
            tenant: tenant.to_owned(),
            endpoint: source.clone(),
        };
        let not_configured = |key: String| ReceiveError::NotConfigured {
            tenant: tenant.to_owned(),
            endpoint: source.clone(),
            key,
        };
        match source {
            CallbackSource::WecomApp(name) => {
                let w = t.config.wecom.as_ref().ok_or_else(unknown)?;
                let app = w.apps.get(name).ok_or_else(unknown)?;
                let cb = app.callback.as_ref().ok_or_else(|| {
                    not_configured(format!("tenants.{tenant}.wecom.apps.{name}.callback_token"))
                })?;
                Ok(Receiver::Wecom {
                    crypto: CallbackCrypto::with_key(
                        cb.token.expose(),
                        &cb.aes_key,
                        w.corpid.as_str(),
                    ),
                    agentid: Some(app.agentid.get()),
                })
            }
            CallbackSource::WecomContacts => {
                let w = t.config.wecom.as_ref().ok_or_else(unknown)?;
                let contacts = w.contacts.as_ref().ok_or_else(unknown)?;
                let cb = contacts.callback.as_ref().ok_or_else(|| {
                    not_configured(format!("tenants.{tenant}.wecom.contacts.callback_token"))
                })?;
                Ok(Receiver::Wecom {
                    crypto: CallbackCrypto::with_key(
                        cb.token.expose(),
                        &cb.aes_key,
                        w.corpid.as_str(),
                    ),
                    agentid: None,
                })
            }
            CallbackSource::OfficialAccount(name) => {
                let oa = t
                    .config
                    .wechat
                    .official_accounts
                    .get(name)
                    .ok_or_else(unknown)?;
                Ok(Receiver::OfficialAccount {
                    token: PlainToken(secrecy::SecretString::from(oa.token.expose().to_owned())),
                    crypto: oa
                        .aes_key
                        .as_ref()
                        .map(|k| CallbackCrypto::with_key(oa.token.expose(), k, oa.appid.as_str())),
                    mode: oa.mode,
                })
            }
        }
    }

    /// GET URL verification: the text to answer with. WeCom: the decrypted `echostr`; WeChat: `echostr`
    /// itself once the 3-field `signature` checks.
    pub fn verify_url(&self, q: &CallbackQuery) -> Result<String, ReceiveError> {
        let timestamp = need(&q.timestamp, "timestamp")?;
        let nonce = need(&q.nonce, "nonce")?;
        let echostr = need(&q.echostr, "echostr")?;
        match self {
            Receiver::Wecom { crypto, .. } => {
                let sig = need(&q.msg_signature, "msg_signature")?;
                Ok(crypto.verify_url(sig, timestamp, nonce, echostr)?)
            }
            Receiver::OfficialAccount { token, .. } => {
                use secrecy::ExposeSecret as _;
                let sig = need(&q.signature, "signature")?;
                wx_crypto::verify_signature(token.0.expose_secret(), timestamp, nonce, sig)?;
                Ok(echostr.to_owned())
            }
        }
    }

    /// POST: verify, decrypt and parse the body into a message. Nothing is stored here.
    pub fn open(&self, q: &CallbackQuery, body: &[u8]) -> Result<CallbackMessage, ReceiveError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(ReceiveError::BodyTooLarge {
                limit: MAX_BODY_BYTES,
            });
        }
        let timestamp = need(&q.timestamp, "timestamp")?;
        let nonce = need(&q.nonce, "nonce")?;
        match self {
            Receiver::Wecom { crypto, agentid } => {
                let sig = need(&q.msg_signature, "msg_signature")?;
                let msg = crypto
                    .decrypt_body(sig, timestamp, nonce, body)?
                    .into_message()?;
                if let (Some(expected), Some(actual)) = (agentid, msg.agent_id())
                    && !actual.trim().is_empty()
                    && actual.trim() != expected.to_string()
                {
                    return Err(ReceiveError::BadRequest(format!(
                        "the message is for agentid {actual}, this endpoint is agentid {expected}"
                    )));
                }
                Ok(msg)
            }
            Receiver::OfficialAccount {
                token,
                crypto,
                mode,
            } => {
                use secrecy::ExposeSecret as _;
                let encrypted = q.encrypt_type.as_deref() == Some("aes");
                match (mode, crypto, encrypted) {
                    (MessageMode::Safe | MessageMode::Compat, Some(crypto), true) => {
                        let sig = need(&q.msg_signature, "msg_signature")?;
                        Ok(crypto
                            .decrypt_body(sig, timestamp, nonce, body)?
                            .into_message()?)
                    }
                    (MessageMode::Safe, _, _) => Err(ReceiveError::BadRequest(
                        "this official account is in safe mode: the callback must be encrypted \
                         (encrypt_type=aes)"
                            .to_owned(),
                    )),
                    (MessageMode::Plain | MessageMode::Compat, _, _) => {
                        let sig = need(&q.signature, "signature")?;
                        wx_crypto::verify_signature(
                            token.0.expose_secret(),
                            timestamp,
                            nonce,
                            sig,
                        )?;
                        let text = std::str::from_utf8(body).map_err(|_| {
                            ReceiveError::BadRequest("the body is not UTF-8".to_owned())
                        })?;
                        Ok(CallbackMessage::parse(text)?)
                    }
                }
            }
        }
    }
}

/// What the inbox's `kind` column says a message is: `change_contact`, `event:<Event>` or
/// `msg:<MsgType>`.
pub fn message_kind(msg: &CallbackMessage) -> String {
    match (msg.msg_type(), msg.event()) {
        (_, Some("change_contact")) => "change_contact".to_owned(),
        (_, Some(event)) => format!("event:{event}"),
        (Some(t), None) => format!("msg:{t}"),
        (None, None) => "unknown".to_owned(),
    }
}

/// The status a message starts in: `pending` when the dispatch worker handles it (change_contact),
/// `pending_webhook` when only the business webhook does (every other message and event), so the
/// worker never has to claim those.
pub fn initial_status(msg: &CallbackMessage) -> store::InboxStatus {
    if msg.change_contact().is_some() {
        store::InboxStatus::Pending
    } else {
        store::InboxStatus::PendingWebhook
    }
}

/// A callback written to the inbox (or recognised as a redelivery).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// The inbox row, when this delivery created it.
    pub id: Option<i64>,
    /// A message with the same dedup key was already stored: nothing was written.
    pub duplicate: bool,
}

/// Write a verified message to the inbox, pending. Call before answering the platform.
pub async fn accept(
    db: &Db,
    tenant: &str,
    source: &CallbackSource,
    msg: &CallbackMessage,
    now_ms: i64,
) -> Result<Accepted, ReceiveError> {
    let source_key = source.key();
    let kind = message_kind(msg);
    let dedup = msg.dedup_key();
    let new = store::NewInboxMessage {
        tenant,
        source: &source_key,
        dedup_key: &dedup,
        kind: &kind,
        payload: msg.plaintext(),
        received_at_ms: now_ms,
        status: initial_status(msg),
    };
    match db.insert_inbox(&new).await {
        Ok(store::InboxInsert::Inserted(id)) => Ok(Accepted {
            id: Some(id),
            duplicate: false,
        }),
        Ok(store::InboxInsert::Duplicate) => Ok(Accepted {
            id: None,
            duplicate: true,
        }),
        Err(e) => Err(ReceiveError::Inbox(e.to_string())),
    }
}

/// A message waiting for the group commit.
struct Job {
    tenant: String,
    source: String,
    dedup_key: String,
    kind: String,
    payload: String,
    received_at_ms: i64,
    status: store::InboxStatus,
    reply: tokio::sync::oneshot::Sender<Result<store::InboxInsert, String>>,
}

/// Most messages written in one transaction.
const MAX_BATCH: usize = 512;

/// Writes accepted callbacks to the inbox through ONE task that commits whatever has queued up in one
/// transaction (group commit): under load many requests share a commit, and SQLite's single writer is
/// not fought over by every request. Each caller still waits for its own row to be committed before it
/// answers. Cheap to clone; the task starts on first use and ends when the last clone is dropped.
#[derive(Clone, Default)]
pub struct InboxWriter {
    tx: Arc<OnceLock<tokio::sync::mpsc::Sender<Job>>>,
}

impl fmt::Debug for InboxWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboxWriter")
            .field("started", &self.tx.get().is_some())
            .finish()
    }
}

impl InboxWriter {
    /// Like [`accept`], through the group commit. `db` must be the same on every call (the first call
    /// starts the writer on it).
    pub async fn accept(
        &self,
        db: &Db,
        tenant: &str,
        source: &CallbackSource,
        msg: &CallbackMessage,
        now_ms: i64,
    ) -> Result<Accepted, ReceiveError> {
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::channel(4 * MAX_BATCH);
            tokio::spawn(write_batches(db.clone(), rx));
            tx
        });
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            tenant: tenant.to_owned(),
            source: source.key(),
            dedup_key: msg.dedup_key(),
            kind: message_kind(msg),
            payload: msg.plaintext().to_owned(),
            received_at_ms: now_ms,
            status: initial_status(msg),
            reply,
        };
        let gone = || ReceiveError::Inbox("the inbox writer stopped".to_owned());
        tx.send(job).await.map_err(|_| gone())?;
        match answer.await.map_err(|_| gone())? {
            Ok(store::InboxInsert::Inserted(id)) => Ok(Accepted {
                id: Some(id),
                duplicate: false,
            }),
            Ok(store::InboxInsert::Duplicate) => Ok(Accepted {
                id: None,
                duplicate: true,
            }),
            Err(e) => Err(ReceiveError::Inbox(e)),
        }
    }
}

async fn write_batches(db: Db, mut rx: tokio::sync::mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let news: Vec<store::NewInboxMessage<'_>> = batch
            .iter()
            .map(|j| store::NewInboxMessage {
                tenant: &j.tenant,
                source: &j.source,
                dedup_key: &j.dedup_key,
                kind: &j.kind,
                payload: &j.payload,
                received_at_ms: j.received_at_ms,
                status: j.status,
            })
            .collect();
        let result = db.insert_inbox_batch(&news).await;
        drop(news);
        match result {
            Ok(results) => {
                for (job, r) in batch.into_iter().zip(results) {
                    let _ = job.reply.send(Ok(r));
                }
            }
            Err(e) => {
                let e = e.to_string();
                for job in batch {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
}
