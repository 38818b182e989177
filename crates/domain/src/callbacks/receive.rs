//! The endpoint's side: which receiver a path names, URL verification, and a POST verified, decrypted,
//! parsed and written to the inbox.

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::Deserialize;
use wx_crypto::{CallbackCrypto, CallbackMessage, CryptoError, EnvelopeFormat, PayloadFormat};
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
    /// A WeChat mini program's message push (消息推送), by its configured name.
    MiniProgram(String),
}

impl CallbackSource {
    /// `wecom_app:<name>`, `wecom_contacts`, `wechat_oa:<name>`, `wechat_mp:<name>`.
    pub fn key(&self) -> String {
        match self {
            CallbackSource::WecomApp(n) => format!("wecom_app:{n}"),
            CallbackSource::WecomContacts => "wecom_contacts".to_owned(),
            CallbackSource::OfficialAccount(n) => format!("wechat_oa:{n}"),
            CallbackSource::MiniProgram(n) => format!("wechat_mp:{n}"),
        }
    }

    /// What a callback that needs no passive reply is answered with: an empty body for WeCom, `success`
    /// for WeChat (both mean "received, no reply").
    pub fn no_reply(&self) -> &'static str {
        match self {
            CallbackSource::WecomApp(_) | CallbackSource::WecomContacts => "",
            CallbackSource::OfficialAccount(_) | CallbackSource::MiniProgram(_) => "success",
        }
    }
}

impl fmt::Display for CallbackSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallbackSource::WecomApp(n) => write!(f, "WeCom app `{n}`"),
            CallbackSource::WecomContacts => f.write_str("the WeCom contacts-sync assistant"),
            CallbackSource::OfficialAccount(n) => write!(f, "official account `{n}`"),
            CallbackSource::MiniProgram(n) => write!(f, "mini program `{n}` message push"),
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
    /// A WeCom app or the contacts-sync assistant: always encrypted.
    Wecom {
        crypto: CallbackCrypto,
        /// For an app: its agentid, which an `AgentID` in the message must match.
        agentid: Option<i64>,
        /// The app's passive replies (none for the contacts assistant).
        replies: PassiveReplies,
    },
    /// A WeChat official account or a mini program's message push: plain, compatible or safe mode.
    Wechat {
        /// The plain-mode token (for the 3-field signature).
        token: PlainToken,
        /// Present in compatible and safe mode.
        crypto: Option<CallbackCrypto>,
        mode: MessageMode,
        /// The account's passive replies (none for a mini program).
        replies: PassiveReplies,
    },
}

/// The configured passive text replies of a receiving app (`default_reply`, `subscribe_reply`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassiveReplies {
    /// Answer to a user's message (any `MsgType` but `event`).
    pub default_reply: Option<String>,
    /// Answer to the `subscribe` event.
    pub subscribe_reply: Option<String>,
}

impl PassiveReplies {
    /// The text to answer `msg` with, if any. Never for `change_contact` or any event but `subscribe`.
    pub fn text_for(&self, msg: &CallbackMessage) -> Option<&str> {
        let text = match (msg.msg_type(), msg.event()) {
            (_, Some("change_contact")) => None,
            (Some(t), _) if t.eq_ignore_ascii_case("event") => match msg.event() {
                Some("subscribe") => self.subscribe_reply.as_deref(),
                _ => None,
            },
            (Some(_), None) => self.default_reply.as_deref(),
            _ => None,
        };
        text.filter(|t| !t.is_empty())
    }
}

/// A POST that passed every check: the message, and the envelope it came in when it was encrypted
/// (`None` for a plaintext WeChat request), which decides the shape of a passive reply.
#[derive(Debug)]
pub struct Opened {
    pub message: CallbackMessage,
    pub envelope: Option<EnvelopeFormat>,
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
                    replies: PassiveReplies {
                        default_reply: app.default_reply.clone(),
                        subscribe_reply: app.subscribe_reply.clone(),
                    },
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
                    replies: PassiveReplies::default(),
                })
            }
            CallbackSource::OfficialAccount(name) => {
                let oa = t
                    .config
                    .wechat
                    .official_accounts
                    .get(name)
                    .ok_or_else(unknown)?;
                Ok(Receiver::Wechat {
                    token: PlainToken(secrecy::SecretString::from(oa.token.expose().to_owned())),
                    crypto: oa
                        .aes_key
                        .as_ref()
                        .map(|k| CallbackCrypto::with_key(oa.token.expose(), k, oa.appid.as_str())),
                    mode: oa.mode,
                    replies: PassiveReplies {
                        default_reply: oa.default_reply.clone(),
                        subscribe_reply: oa.subscribe_reply.clone(),
                    },
                })
            }
            CallbackSource::MiniProgram(name) => {
                let mp = t
                    .config
                    .wechat
                    .mini_programs
                    .get(name)
                    .ok_or_else(unknown)?;
                let push = mp.push.as_ref().ok_or_else(|| {
                    not_configured(format!(
                        "tenants.{tenant}.wechat.mini_programs.{name}.push_token"
                    ))
                })?;
                Ok(Receiver::Wechat {
                    token: PlainToken(secrecy::SecretString::from(push.token.expose().to_owned())),
                    crypto: push.aes_key.as_ref().map(|k| {
                        CallbackCrypto::with_key(push.token.expose(), k, mp.appid.as_str())
                    }),
                    mode: push.mode,
                    replies: PassiveReplies::default(),
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
            Receiver::Wechat { token, .. } => {
                use secrecy::ExposeSecret as _;
                let sig = need(&q.signature, "signature")?;
                wx_crypto::verify_signature(token.0.expose_secret(), timestamp, nonce, sig)?;
                Ok(echostr.to_owned())
            }
        }
    }

    /// POST: verify, decrypt and parse the body into a message. Nothing is stored here.
    pub fn open(&self, q: &CallbackQuery, body: &[u8]) -> Result<Opened, ReceiveError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(ReceiveError::BodyTooLarge {
                limit: MAX_BODY_BYTES,
            });
        }
        let timestamp = need(&q.timestamp, "timestamp")?;
        let nonce = need(&q.nonce, "nonce")?;
        match self {
            Receiver::Wecom {
                crypto, agentid, ..
            } => {
                let sig = need(&q.msg_signature, "msg_signature")?;
                let verified = crypto.decrypt_body(sig, timestamp, nonce, body)?;
                let envelope = verified.format();
                let msg = verified.into_message()?;
                if let (Some(expected), Some(actual)) = (agentid, msg.agent_id())
                    && !actual.trim().is_empty()
                    && actual.trim() != expected.to_string()
                {
                    return Err(ReceiveError::BadRequest(format!(
                        "the message is for agentid {actual}, this endpoint is agentid {expected}"
                    )));
                }
                Ok(Opened {
                    message: msg,
                    envelope: Some(envelope),
                })
            }
            Receiver::Wechat {
                token,
                crypto,
                mode,
                ..
            } => {
                use secrecy::ExposeSecret as _;
                let encrypted = q.encrypt_type.as_deref() == Some("aes");
                match (mode, crypto, encrypted) {
                    (MessageMode::Safe | MessageMode::Compat, Some(crypto), true) => {
                        let sig = need(&q.msg_signature, "msg_signature")?;
                        let verified = crypto.decrypt_body(sig, timestamp, nonce, body)?;
                        let envelope = verified.format();
                        Ok(Opened {
                            message: verified.into_message()?,
                            envelope: Some(envelope),
                        })
                    }
                    (MessageMode::Safe, _, _) => Err(ReceiveError::BadRequest(
                        "this account is in safe mode: the callback must be encrypted \
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
                        Ok(Opened {
                            message: CallbackMessage::parse(text)?,
                            envelope: None,
                        })
                    }
                }
            }
        }
    }

    /// The passive reply to an accepted message, or `None` when this endpoint has nothing configured
    /// for it (then answer [`CallbackSource::no_reply`]). A text reply with `ToUserName` and
    /// `FromUserName` swapped from the message, in the message's own format (XML, or JSON for a JSON
    /// push); encrypted into the envelope the request came in (`Encrypt`, `MsgSignature` over the
    /// reply's timestamp and nonce, `TimeStamp`, `Nonce`) when the request was encrypted — always on
    /// WeCom and in safe mode, in compatible mode when the request was — and plain otherwise.
    /// `now_secs` is both `CreateTime` and `TimeStamp`; the docs suggest echoing the request's `nonce`;
    /// `random16` are the 16 random bytes of the ciphertext. A redelivery gets the same reply.
    pub fn passive_reply(
        &self,
        opened: &Opened,
        now_secs: i64,
        nonce: &str,
        random16: [u8; 16],
    ) -> Result<Option<PassiveReply>, ReceiveError> {
        let (replies, crypto) = match self {
            Receiver::Wecom {
                replies, crypto, ..
            } => (replies, Some(crypto)),
            Receiver::Wechat {
                replies, crypto, ..
            } => (replies, crypto.as_ref()),
        };
        let msg = &opened.message;
        let Some(content) = replies.text_for(msg) else {
            return Ok(None);
        };
        let (Some(to), Some(from)) = (msg.from_user(), msg.to_user()) else {
            return Ok(None);
        };
        let plaintext = reply_plaintext(msg.format(), to, from, now_secs, content)?;
        match (opened.envelope, crypto) {
            (Some(format), Some(crypto)) => {
                let body = crypto.encrypt_envelope(
                    &plaintext,
                    &now_secs.to_string(),
                    nonce,
                    random16,
                    format,
                )?;
                Ok(Some(PassiveReply {
                    body,
                    json: format != EnvelopeFormat::Xml,
                }))
            }
            _ => Ok(Some(PassiveReply {
                body: plaintext,
                json: msg.format() == PayloadFormat::Json,
            })),
        }
    }
}

/// The body of a passive reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassiveReply {
    pub body: String,
    /// JSON (an encrypted JSON envelope or a plain JSON reply) rather than XML.
    pub json: bool,
}

/// `<xml><ToUserName/><FromUserName/><CreateTime/><MsgType>text</MsgType><Content/></xml>`, or the same
/// keys as a JSON object (`CreateTime` a number) for a JSON push.
fn reply_plaintext(
    format: PayloadFormat,
    to: &str,
    from: &str,
    create_time: i64,
    content: &str,
) -> Result<String, ReceiveError> {
    match format {
        PayloadFormat::Xml => {
            let mut b = wx_crypto::XmlBuilder::new();
            b.cdata("ToUserName", to)
                .cdata("FromUserName", from)
                .text("CreateTime", &create_time.to_string())
                .cdata("MsgType", "text")
                .cdata("Content", content);
            Ok(b.finish())
        }
        PayloadFormat::Json => serde_json::to_string(&serde_json::json!({
            "ToUserName": to,
            "FromUserName": from,
            "CreateTime": create_time,
            "MsgType": "text",
            "Content": content,
        }))
        .map_err(|e| ReceiveError::BadRequest(format!("cannot write the reply: {e}"))),
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

/// The status a message starts in: always `pending`, since the dispatch worker handles every row
/// (change_contact into the directory, subscribe / unsubscribe into the account graph, and a business
/// webhook event for each). `pending_webhook` is no longer written; migration 0009 made old such rows
/// pending.
pub fn initial_status(_msg: &CallbackMessage) -> store::InboxStatus {
    store::InboxStatus::Pending
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
    /// Callbacks handed to the writer and not yet answered (the dispatch worker defers to these).
    waiting: Arc<std::sync::atomic::AtomicUsize>,
}

/// Counts a callback as waiting for the inbox from `enter` until dropped.
struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(count: &'a std::sync::atomic::AtomicUsize) -> Self {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl fmt::Debug for InboxWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboxWriter")
            .field("started", &self.tx.get().is_some())
            .field("waiting", &self.waiting())
            .finish()
    }
}

impl InboxWriter {
    /// Callbacks waiting for their row to be committed right now: more than zero while requests are
    /// being acknowledged.
    pub fn waiting(&self) -> usize {
        self.waiting.load(std::sync::atomic::Ordering::Relaxed)
    }

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
        let _waiting = Waiting::enter(&self.waiting);
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
