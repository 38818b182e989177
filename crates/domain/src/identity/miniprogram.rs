//! Mini-program logins: WeChat mini programs (`sns/jscode2session`) and mini programs opened in WeCom
//! (`miniprogram/jscode2session`), any number per tenant, each addressed by its configuration key under
//! `wechat.mini_programs` or `wecom.mini_programs`.
//!
//! - **WeChat**: the `wx.login` code gives openid, unionid (when the mini program is bound to an
//!   open-platform account) and a session_key. The person is resolved through the account graph
//!   ([`AccountGraph::resolve_wechat_identity`], app kind `mini_program`), so two mini programs and an
//!   official account of one person converge on one user as soon as a unionid joins them. A session is
//!   opened (provider `wechat_mini_program`, app = the mini program's key).
//! - **WeCom**: the `wx.qy.login` code gives corpid, userid and a session_key. The corpid must be the
//!   tenant's; the member is looked up through the directory links, read on demand through the
//!   incremental apply (the same path as a `change_contact` event) when not synced yet, and refused when
//!   disabled or left. A session is opened (provider `wecom_mini_program`).
//!
//! The session_key never leaves the server. For WeChat logins it is sealed with AES-256-GCM
//! ([`SessionKeySealer`], associated data = tenant and identity id, so a sealed key cannot be replayed
//! onto another identity) and stored per identity; each login replaces it, as WeChat does. It serves
//! [`MiniPrograms::decrypt`]: `encryptedData` from `getPhoneNumber` / `getUserInfo` is decrypted with
//! it, the watermark appid checked, openId/unionId casing normalised ([`UpstreamWechatUser`] accepts both
//! spellings), and the user's mobile or profile filled. A session_key that no longer matches the client's
//! (the client called `wx.login` again elsewhere, or the key expired) gives
//! [`MiniProgramError::StaleSessionKey`] and writes nothing. WeCom logins keep their session_key too, sealed the same way but bound to tenant, mini-program appid
//! and user (a WeCom member has no WeChat identity), stored per (tenant, appid, user) and replaced at each
//! login; [`MiniPrograms::decrypt_wecom`] decrypts `wx.qy.getMobile` (`mobile`) and
//! `wx.qy.getEnterpriseUserInfo` (`corpid`/`userid`/`name`) data with it, the watermark still naming the
//! mini program's appid (not the corpid).
//!
//! The newer phone-number flow (`getPhoneNumber` returning a code, exchanged with
//! `wxa/business/getuserphonenumber`) needs no session_key: [`MiniPrograms::phone_by_code`]. WeCom has
//! no such API: WeCom mini programs send encryptedData.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};
use store::{AppKind, Db, IdentityId, SealedSessionKey, User, UserId, UserStatus, WechatIdentity};
use wx_api::ApiError;
use wx_api::clock::Clock;
use wx_api::wechat::WechatApp;
use wx_api::wecom::WecomApp;
use wx_crypto::CryptoError;

use super::graph::{AccountGraph, DEFAULT_WECHAT_NAME, DomainEvent, UpstreamWechatUser};
use super::session::{Provider, Session, SessionConfig, SessionOrigin, SessionToken, Sessions};
use super::{IdentityError, WechatLogin, WechatProfile};
use crate::error::DomainError;

/// The file under the data directory holding the session-key sealing key (64 hex digits, mode 0600).
/// Replicas sharing a database must share this file.
pub const SEAL_KEY_FILE: &str = "session-key-seal.key";
const NONCE_LEN: usize = 12;
/// Codes are short (32 characters from WeChat); anything much longer is not a code.
const MAX_CODE_LEN: usize = 512;

/// What went wrong in a mini-program login, decrypt or phone request. Never carries a code, a session
/// key or a token.
#[derive(Debug, thiserror::Error)]
pub enum MiniProgramError {
    /// The upstream refused the code (invalid, expired, used, or a risky user).
    #[error(
        "MP001 {api} rejected the code (errcode {errcode}): it is invalid, expired or already used; call wx.login (or getPhoneNumber) again for a fresh one"
    )]
    InvalidCode { api: &'static str, errcode: i64 },
    /// Any other upstream failure.
    #[error("MP002 upstream: {0}")]
    Upstream(ApiError),
    /// The stored session_key does not decrypt the data: the client's key changed.
    #[error(
        "MP003 session_key changed: the stored session_key does not decrypt this data (the mini program called wx.login again, or the key expired); call wx.login, log in again, then retry"
    )]
    StaleSessionKey,
    /// No session_key is held for the session's identity.
    #[error(
        "MP004 no session_key is held for this session; log in through this mini program (wx.login) first"
    )]
    NoSessionKey,
    /// The data decrypted, but its watermark names another mini program.
    #[error(
        "MP005 the data's watermark names appid {actual}, not this mini program's ({expected})"
    )]
    Watermark { expected: String, actual: String },
    /// The session token did not come from a login through this mini program.
    #[error(
        "MP006 the session came through provider `{provider}` and app `{app}`, not mini program `{key}`; log in through this mini program first"
    )]
    WrongSession {
        key: String,
        provider: String,
        app: String,
    },
    /// The WeCom member is not in the directory, even after reading it on demand.
    #[error(
        "MP007 WeCom member `{userid}` of corp {corpid} is not in the directory (not synced, and reading it on demand found nothing)"
    )]
    MemberNotFound { corpid: String, userid: String },
    /// The WeCom member is disabled or left.
    #[error("MP008 WeCom member `{userid}` is {status}; sign-in refused")]
    MemberNotActive { userid: String, status: UserStatus },
    /// jscode2session answered for another corp, or without a member.
    #[error("MP009 {0}")]
    NotAMember(String),
    /// A caller-supplied value is unusable.
    #[error("MP010 invalid {field}: {problem}")]
    InvalidInput {
        field: &'static str,
        problem: String,
    },
    /// The decrypted data lacks what its kind needs, or belongs to another person.
    #[error("MP011 decrypted {kind} data: {problem}")]
    DecryptedData { kind: &'static str, problem: String },
    /// The sealing key cannot be read, created or used.
    #[error("MP012 session-key sealing: {0}")]
    Seal(String),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("MP013 store: {0}")]
    Store(#[from] store::Error),
    /// Reading a WeCom member on demand failed.
    #[error("MP014 reading the WeCom member on demand: {0}")]
    Directory(DomainError),
}

impl MiniProgramError {
    /// An upstream error of a code exchange: a refused code is the caller's problem, anything else ours.
    fn from_code_call(api: &'static str, e: ApiError) -> MiniProgramError {
        match e.errcode().map(|c| c.code()) {
            // 40029 invalid code, 40163 code used, 40226 high-risk user (login refused), 41008 missing code.
            Some(errcode @ (40029 | 40163 | 40226 | 41008)) => {
                MiniProgramError::InvalidCode { api, errcode }
            }
            _ => MiniProgramError::Upstream(e),
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Sealing
// ---------------------------------------------------------------------------------------------------

/// Seals session keys with AES-256-GCM: `nonce (12 bytes) || ciphertext || tag`, the associated data
/// binding the blob to its tenant and identity. `key_id` names the sealing key so a rotation can tell
/// which blobs an old key sealed (they then read as "no session_key": the person logs in again).
pub struct SessionKeySealer {
    cipher: Aes256Gcm,
    key_id: String,
}

impl fmt::Debug for SessionKeySealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKeySealer")
            .field("key_id", &self.key_id)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl SessionKeySealer {
    /// A sealer over a 256-bit key.
    pub fn new(key: &[u8; 32]) -> SessionKeySealer {
        let digest = hex::encode(Sha256::digest(key));
        SessionKeySealer {
            cipher: Aes256Gcm::new(key.into()),
            key_id: format!("gcm1:{}", digest.get(..16).unwrap_or(&digest)),
        }
    }

    /// The key in `data_dir/session-key-seal.key`, created (random, mode 0600) when missing. Two
    /// processes creating it at once agree: the file is created exclusively and the loser reads it.
    pub fn open_or_create(data_dir: &Path) -> Result<SessionKeySealer, MiniProgramError> {
        let path = data_dir.join(SEAL_KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => return Self::parse(&path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(seal_io(&path, "read", &e)),
        }
        std::fs::create_dir_all(data_dir).map_err(|e| seal_io(data_dir, "create", &e))?;
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        match options.open(&path) {
            Ok(mut file) => {
                file.write_all(format!("{}\n", hex::encode(key)).as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| seal_io(&path, "write", &e))?;
                tracing::info!(path = %path.display(), "created the session-key sealing key");
                Ok(SessionKeySealer::new(&key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text =
                    std::fs::read_to_string(&path).map_err(|e| seal_io(&path, "read", &e))?;
                Self::parse(&path, &text)
            }
            Err(e) => Err(seal_io(&path, "create", &e)),
        }
    }

    fn parse(path: &Path, text: &str) -> Result<SessionKeySealer, MiniProgramError> {
        let bytes = hex::decode(text.trim()).ok();
        let key: Option<[u8; 32]> = bytes.and_then(|b| b.try_into().ok());
        key.map(|k| SessionKeySealer::new(&k)).ok_or_else(|| {
            MiniProgramError::Seal(format!(
                "{} must hold 64 hex digits (a 256-bit key)",
                path.display()
            ))
        })
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    fn aad(tenant: &str, identity: IdentityId) -> Vec<u8> {
        format!("wxbridge/session_key/v1\0{tenant}\0{}", identity.get()).into_bytes()
    }

    /// The associated data of a WeCom member's key: its own domain string, so a WeChat blob never
    /// opens as a WeCom one (nor the reverse).
    fn wecom_aad(tenant: &str, appid: &str, user: UserId) -> Vec<u8> {
        format!(
            "wxbridge/wecom_session_key/v1\0{tenant}\0{appid}\0{}",
            user.get()
        )
        .into_bytes()
    }

    /// Seal `session_key` for `identity` of `tenant`.
    pub fn seal(
        &self,
        tenant: &str,
        identity: IdentityId,
        session_key: &SecretString,
        now_ms: i64,
    ) -> Result<SealedSessionKey, MiniProgramError> {
        self.seal_with(&Self::aad(tenant, identity), session_key, now_ms)
    }

    /// Seal the session_key of WeCom mini program `appid` for member `user` of `tenant`.
    pub fn seal_wecom(
        &self,
        tenant: &str,
        appid: &str,
        user: UserId,
        session_key: &SecretString,
        now_ms: i64,
    ) -> Result<SealedSessionKey, MiniProgramError> {
        self.seal_with(&Self::wecom_aad(tenant, appid, user), session_key, now_ms)
    }

    /// The WeCom session key in clear, or `None` (see [`Self::unseal`]).
    pub fn unseal_wecom(
        &self,
        tenant: &str,
        appid: &str,
        user: UserId,
        sealed: &SealedSessionKey,
    ) -> Option<SecretString> {
        self.unseal_with(&Self::wecom_aad(tenant, appid, user), sealed)
    }

    fn seal_with(
        &self,
        aad: &[u8],
        session_key: &SecretString,
        now_ms: i64,
    ) -> Result<SealedSessionKey, MiniProgramError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: session_key.expose_secret().as_bytes(),
                    aad,
                },
            )
            .map_err(|_| MiniProgramError::Seal("encryption failed".to_owned()))?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + ct.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ct);
        Ok(SealedSessionKey {
            key_id: self.key_id.clone(),
            sealed,
            updated_at_ms: now_ms,
        })
    }

    /// The session key in clear, or `None` when another key sealed it or the blob does not open for
    /// this tenant and identity (both mean: the person has to log in again).
    pub fn unseal(
        &self,
        tenant: &str,
        identity: IdentityId,
        sealed: &SealedSessionKey,
    ) -> Option<SecretString> {
        self.unseal_with(&Self::aad(tenant, identity), sealed)
    }

    fn unseal_with(&self, aad: &[u8], sealed: &SealedSessionKey) -> Option<SecretString> {
        if sealed.key_id != self.key_id || sealed.sealed.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, ct) = sealed.sealed.split_at(NONCE_LEN);
        let clear = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .ok()?;
        String::from_utf8(clear).ok().map(SecretString::from)
    }
}

fn seal_io(path: &Path, what: &str, e: &std::io::Error) -> MiniProgramError {
    MiniProgramError::Seal(format!("cannot {what} {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------------------
// Logins, decrypt, phone
// ---------------------------------------------------------------------------------------------------

/// A login's outcome: the session (the token in clear, once) and who it is.
#[derive(Debug)]
pub struct MiniLogin {
    pub token: SessionToken,
    pub session: Session,
    pub user: User,
    /// The WeChat identity (WeChat mini programs only).
    pub identity: Option<WechatIdentity>,
    pub created_user: bool,
    /// Merges the login caused (unionid convergence), for the business system.
    pub events: Vec<DomainEvent>,
}

/// What `encryptedData` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecryptKind {
    /// `getPhoneNumber` (the older encryptedData flow).
    Phone,
    /// `getUserInfo` / `getUserProfile`.
    UserInfo,
}

impl DecryptKind {
    fn as_str(self) -> &'static str {
        match self {
            DecryptKind::Phone => "phone",
            DecryptKind::UserInfo => "user_info",
        }
    }
}

/// `encryptedData` and `iv` as the mini program received them, and what they hold.
#[derive(Debug, Clone, Copy)]
pub struct EncryptedData<'a> {
    pub kind: DecryptKind,
    pub encrypted_data: &'a str,
    pub iv: &'a str,
}

/// A phone number, as the user's mobile now holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhoneNumber {
    /// With the country code for numbers outside mainland China (`phoneNumber`).
    pub phone_number: String,
    /// Without the country code (`purePhoneNumber`).
    pub pure_phone_number: String,
    pub country_code: Option<String>,
}

/// Decrypted user info, with the casing of `openId`/`unionId` normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiniUserInfo {
    pub openid: String,
    pub unionid: Option<String>,
    pub nickname: Option<String>,
    pub avatar: Option<String>,
}

/// What a decrypt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decrypted {
    Phone {
        user_id: UserId,
        phone: PhoneNumber,
    },
    UserInfo {
        /// The user after any convergence the unionid caused.
        user_id: UserId,
        info: MiniUserInfo,
        learned_unionid: bool,
        events: Vec<DomainEvent>,
    },
    /// `wx.qy.getEnterpriseUserInfo` of a WeCom mini program.
    WecomUserInfo {
        user_id: UserId,
        corpid: String,
        userid: String,
        name: Option<String>,
    },
}

/// The mini-program service over the store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MiniPrograms {
    db: Db,
    clock: Arc<dyn Clock>,
    sealer: Arc<SessionKeySealer>,
    sessions: Sessions,
    graph: AccountGraph,
}

/// Where the sealing key of a data directory lives (for error messages and docs).
pub fn seal_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SEAL_KEY_FILE)
}

/// Decrypt `encryptedData` with `session_key` and check the watermark names `appid`. A wrong key shows
/// as bad padding or garbage instead of JSON: [`MiniProgramError::StaleSessionKey`].
fn open_data(
    session_key: &SecretString,
    iv: &str,
    encrypted_data: &str,
    appid: &str,
) -> Result<serde_json::Value, MiniProgramError> {
    wx_crypto::miniprogram::decrypt_data(
        session_key.expose_secret(),
        iv,
        encrypted_data,
        Some(appid),
    )
    .map_err(|e| match e {
        CryptoError::Watermark { expected, actual } => {
            MiniProgramError::Watermark { expected, actual }
        }
        CryptoError::MiniProgramIv { len } => MiniProgramError::InvalidInput {
            field: "iv",
            problem: format!("must be base64 of 16 bytes, got {len}"),
        },
        CryptoError::Base64 { .. } => MiniProgramError::InvalidInput {
            field: "encrypted_data",
            problem: "is not base64".to_owned(),
        },
        CryptoError::CiphertextLength { len } => MiniProgramError::InvalidInput {
            field: "encrypted_data",
            problem: format!("{len} bytes is not a whole number of AES blocks"),
        },
        // A wrong key shows as bad padding or garbage instead of JSON.
        _ => MiniProgramError::StaleSessionKey,
    })
}

fn check_data<'a>(data: &EncryptedData<'a>) -> Result<(), MiniProgramError> {
    if data.encrypted_data.trim().is_empty() || data.iv.trim().is_empty() {
        return Err(MiniProgramError::InvalidInput {
            field: if data.iv.trim().is_empty() {
                "iv"
            } else {
                "encrypted_data"
            },
            problem: "is empty".to_owned(),
        });
    }
    Ok(())
}

fn check_code(code: &str) -> Result<&str, MiniProgramError> {
    let code = code.trim();
    if code.is_empty() {
        return Err(MiniProgramError::InvalidInput {
            field: "code",
            problem: "is empty".to_owned(),
        });
    }
    if code.len() > MAX_CODE_LEN || code.chars().any(char::is_control) {
        return Err(MiniProgramError::InvalidInput {
            field: "code",
            problem: "is not a login code".to_owned(),
        });
    }
    Ok(code)
}

impl MiniPrograms {
    pub fn new(
        db: Db,
        clock: Arc<dyn Clock>,
        sealer: Arc<SessionKeySealer>,
        session_config: SessionConfig,
    ) -> MiniPrograms {
        MiniPrograms {
            sessions: Sessions::new(db.clone(), clock.clone(), session_config),
            graph: AccountGraph::new(db.clone(), clock.clone()),
            db,
            clock,
            sealer,
        }
    }

    /// Log in through WeChat mini program `key` (served by `app`) with a `wx.login` code.
    pub async fn login_wechat(
        &self,
        tenant: &str,
        key: &str,
        app: &WechatApp,
        code: &str,
    ) -> Result<MiniLogin, MiniProgramError> {
        let code = check_code(code)?;
        let answer = app
            .jscode2session(code)
            .await
            .map_err(|e| MiniProgramError::from_code_call("sns/jscode2session", e))?;
        let login = WechatLogin {
            appid: app.credentials().appid.clone(),
            app_kind: AppKind::MiniProgram,
            openid: answer.openid,
            unionid: answer.unionid,
            profile: WechatProfile::default(),
        };
        let resolved = self.graph.resolve_wechat_identity(tenant, &login).await?;
        let sealed = self.sealer.seal(
            tenant,
            resolved.identity.id,
            &answer.session_key,
            self.clock.now_ms(),
        )?;
        self.db
            .put_wechat_session_key(tenant, resolved.identity.id, &sealed)
            .await?;
        let (token, session) = self
            .sessions
            .create(
                tenant,
                resolved.user_id,
                &SessionOrigin {
                    provider: Provider::WechatMiniProgram,
                    app: key.to_owned(),
                    identity: Some(resolved.identity.id),
                },
            )
            .await?;
        let user = self.user(tenant, resolved.user_id).await?;
        Ok(MiniLogin {
            token,
            session,
            user,
            identity: Some(resolved.identity),
            created_user: resolved.created_user,
            events: resolved.events,
        })
    }

    /// Log in through WeCom mini program `key` (appid `appid`; its jscode2session served by `app`'s
    /// token) with a `wx.qy.login` code. `directory` reads a member the directory does not hold yet
    /// (none: no on-demand read). The session_key is sealed and kept for [`Self::decrypt_wecom`].
    pub async fn login_wecom(
        &self,
        tenant: &str,
        key: &str,
        appid: &str,
        app: &WecomApp,
        directory: Option<&WecomApp>,
        code: &str,
    ) -> Result<MiniLogin, MiniProgramError> {
        let code = check_code(code)?;
        let answer = app
            .miniprogram_jscode2session(code)
            .await
            .map_err(|e| MiniProgramError::from_code_call("miniprogram/jscode2session", e))?;
        let corpid = app.credentials().corpid.clone();
        if let Some(other) = answer.corpid.as_deref()
            && other != corpid
        {
            return Err(MiniProgramError::NotAMember(format!(
                "miniprogram/jscode2session answered for corp {other}, not this tenant's corp {corpid}"
            )));
        }
        let userid = answer.userid.ok_or_else(|| {
            MiniProgramError::NotAMember(
                "miniprogram/jscode2session gave no userid: the person is not a member of the corp"
                    .to_owned(),
            )
        })?;
        let user = match self
            .db
            .user_by_wecom_userid(tenant, &corpid, &userid)
            .await?
        {
            Some(u) => Some(u),
            None => match directory {
                Some(dir) => {
                    self.read_member(tenant, dir, &userid).await?;
                    self.db
                        .user_by_wecom_userid(tenant, &corpid, &userid)
                        .await?
                }
                None => None,
            },
        };
        let user = user.ok_or_else(|| MiniProgramError::MemberNotFound {
            corpid: corpid.clone(),
            userid: userid.clone(),
        })?;
        if matches!(user.status, UserStatus::Disabled | UserStatus::Left) {
            return Err(MiniProgramError::MemberNotActive {
                userid,
                status: user.status,
            });
        }
        let sealed = self.sealer.seal_wecom(
            tenant,
            appid,
            user.id,
            &answer.session_key,
            self.clock.now_ms(),
        )?;
        self.db
            .put_wecom_session_key(tenant, appid, user.id, &sealed)
            .await?;
        let (token, session) = self
            .sessions
            .create(
                tenant,
                user.id,
                &SessionOrigin {
                    provider: Provider::WecomMiniProgram,
                    app: key.to_owned(),
                    identity: None,
                },
            )
            .await?;
        Ok(MiniLogin {
            token,
            session,
            user,
            identity: None,
            created_user: false,
            events: Vec::new(),
        })
    }

    /// Read one member through the incremental apply, as an `update_user` event would.
    async fn read_member(
        &self,
        tenant: &str,
        dir: &WecomApp,
        userid: &str,
    ) -> Result<(), MiniProgramError> {
        // WeCom userids are letters, digits and `_-@.`; anything else cannot be a member (and must not
        // reach the synthetic event's XML).
        let plausible = !userid.is_empty()
            && userid.len() <= 64
            && userid
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-@.".contains(c));
        if !plausible {
            return Ok(());
        }
        let xml = format!(
            "<xml><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event>\
             <ChangeType><![CDATA[update_user]]></ChangeType><UserID><![CDATA[{userid}]]></UserID></xml>"
        );
        let Ok(msg) = wx_crypto::message::CallbackMessage::from_xml(&xml) else {
            return Ok(());
        };
        let Some(change) = msg.change_contact() else {
            return Ok(());
        };
        let outcome = crate::directory::incremental::apply_contact_change(
            &self.db,
            tenant,
            dir,
            self.clock.as_ref(),
            &change,
            &crate::directory::incremental::IncrementalOptions::default(),
        )
        .await
        .map_err(MiniProgramError::Directory)?;
        tracing::info!(
            tenant,
            wrote = outcome.wrote(),
            "WeCom mini-program login read a member not yet synced"
        );
        Ok(())
    }

    /// The session of `token`, checked to come from WeChat mini program `key`.
    async fn mini_session(
        &self,
        tenant: &str,
        key: &str,
        token: &str,
    ) -> Result<(Session, User, IdentityId), MiniProgramError> {
        let verified = self.sessions.verify(tenant, token).await?;
        let s = verified.session;
        let identity = s
            .identity
            .filter(|_| s.provider == Provider::WechatMiniProgram.as_str() && s.app == key);
        match identity {
            Some(id) => Ok((s, verified.user, id)),
            None => Err(MiniProgramError::WrongSession {
                key: key.to_owned(),
                provider: s.provider,
                app: s.app,
            }),
        }
    }

    /// Decrypt `encryptedData` of the session's person with the stored session_key, check the
    /// watermark against `appid`, and fill the user's mobile (phone) or profile (user info; a unionid
    /// learned here goes through the account graph). Nothing is written when decryption fails.
    pub async fn decrypt(
        &self,
        tenant: &str,
        key: &str,
        appid: &str,
        token: &str,
        data: &EncryptedData<'_>,
    ) -> Result<Decrypted, MiniProgramError> {
        let EncryptedData {
            kind,
            encrypted_data,
            iv,
        } = *data;
        check_data(data)?;
        let (session, user, identity_id) = self.mini_session(tenant, key, token).await?;
        let sealed = self
            .db
            .wechat_session_key(tenant, identity_id)
            .await?
            .ok_or(MiniProgramError::NoSessionKey)?;
        let session_key = self
            .sealer
            .unseal(tenant, identity_id, &sealed)
            .ok_or(MiniProgramError::NoSessionKey)?;
        let value = open_data(&session_key, iv, encrypted_data, appid)?;
        let identity = self.db.wechat_identity(tenant, identity_id).await?.ok_or(
            IdentityError::IdentityNotFound {
                id: identity_id.get(),
            },
        )?;
        match kind {
            DecryptKind::Phone => {
                let field = |name: &str| {
                    value
                        .get(name)
                        .and_then(|v| v.as_str())
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                };
                let phone_number = field("phoneNumber").ok_or(MiniProgramError::DecryptedData {
                    kind: kind.as_str(),
                    problem: "no phoneNumber".to_owned(),
                })?;
                let phone = PhoneNumber {
                    pure_phone_number: field("purePhoneNumber")
                        .unwrap_or_else(|| phone_number.clone()),
                    phone_number,
                    country_code: field("countryCode"),
                };
                self.set_mobile(tenant, &user, &phone).await?;
                Ok(Decrypted::Phone {
                    user_id: session.user_id,
                    phone,
                })
            }
            DecryptKind::UserInfo => {
                let upstream: UpstreamWechatUser =
                    serde_json::from_value(value).map_err(|_| MiniProgramError::DecryptedData {
                        kind: kind.as_str(),
                        problem: "no openId".to_owned(),
                    })?;
                if upstream.openid != identity.openid {
                    return Err(MiniProgramError::DecryptedData {
                        kind: kind.as_str(),
                        problem: "its openId is not this session's".to_owned(),
                    });
                }
                let login = upstream.into_login(&identity.appid, identity.app_kind);
                let info = MiniUserInfo {
                    openid: login.openid.clone(),
                    unionid: login.unionid.clone().filter(|u| !u.is_empty()),
                    nickname: login.profile.nickname.clone(),
                    avatar: login.profile.avatar.clone(),
                };
                let resolved = self.graph.resolve_wechat_identity(tenant, &login).await?;
                let now_user = self.user(tenant, resolved.user_id).await?;
                self.fill_profile(tenant, &now_user, &info).await?;
                Ok(Decrypted::UserInfo {
                    user_id: resolved.user_id,
                    info,
                    learned_unionid: resolved.learned_unionid,
                    events: resolved.events,
                })
            }
        }
    }

    /// The session of `token`, checked to come from WeCom mini program `key`.
    async fn wecom_session(
        &self,
        tenant: &str,
        key: &str,
        token: &str,
    ) -> Result<(Session, User), MiniProgramError> {
        let verified = self.sessions.verify(tenant, token).await?;
        let s = verified.session;
        if s.provider == Provider::WecomMiniProgram.as_str() && s.app == key {
            Ok((s, verified.user))
        } else {
            Err(MiniProgramError::WrongSession {
                key: key.to_owned(),
                provider: s.provider,
                app: s.app,
            })
        }
    }

    /// Decrypt `encryptedData` of a WeCom mini-program session (`appid`: the mini program's appid,
    /// which the watermark names) with the session_key kept at its login. Phone data (`mobile`, as
    /// `wx.qy.getMobile` gives it) fills the user's mobile; user info (`wx.qy.getEnterpriseUserInfo`:
    /// corpid, userid, name) must name this member and fills the name only while it is empty.
    /// Nothing is written when decryption fails.
    pub async fn decrypt_wecom(
        &self,
        tenant: &str,
        key: &str,
        appid: &str,
        token: &str,
        data: &EncryptedData<'_>,
    ) -> Result<Decrypted, MiniProgramError> {
        check_data(data)?;
        let (session, user) = self.wecom_session(tenant, key, token).await?;
        let sealed = self
            .db
            .wecom_session_key(tenant, appid, user.id)
            .await?
            .ok_or(MiniProgramError::NoSessionKey)?;
        let session_key = self
            .sealer
            .unseal_wecom(tenant, appid, user.id, &sealed)
            .ok_or(MiniProgramError::NoSessionKey)?;
        let value = open_data(&session_key, data.iv, data.encrypted_data, appid)?;
        let field = |name: &str| {
            value
                .get(name)
                .and_then(|v| v.as_str())
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let kind = data.kind.as_str();
        match data.kind {
            DecryptKind::Phone => {
                let phone_number = field("mobile")
                    .or_else(|| field("phoneNumber"))
                    .ok_or_else(|| MiniProgramError::DecryptedData {
                        kind,
                        problem:
                            "no mobile (the member has none, or the data is not wx.qy.getMobile's)"
                                .to_owned(),
                    })?;
                let phone = PhoneNumber {
                    pure_phone_number: field("purePhoneNumber")
                        .unwrap_or_else(|| phone_number.clone()),
                    phone_number,
                    country_code: field("countryCode"),
                };
                self.set_mobile(tenant, &user, &phone).await?;
                Ok(Decrypted::Phone {
                    user_id: session.user_id,
                    phone,
                })
            }
            DecryptKind::UserInfo => {
                let (Some(corpid), Some(userid)) = (field("corpid"), field("userid")) else {
                    return Err(MiniProgramError::DecryptedData {
                        kind,
                        problem: "no corpid or userid".to_owned(),
                    });
                };
                let links = self.db.wecom_links_of_user(tenant, user.id).await?;
                let mine = links
                    .iter()
                    .any(|l| l.corpid == corpid && l.userid.eq_ignore_ascii_case(&userid));
                if !mine {
                    return Err(MiniProgramError::DecryptedData {
                        kind,
                        problem: "its corpid/userid is not this session's member".to_owned(),
                    });
                }
                let name = field("name");
                if let Some(n) = &name
                    && user.name.trim().is_empty()
                {
                    self.db
                        .set_user_profile(
                            tenant,
                            user.id,
                            n,
                            user.mobile.as_deref(),
                            user.avatar.as_deref(),
                            self.clock.now_ms(),
                        )
                        .await?;
                }
                Ok(Decrypted::WecomUserInfo {
                    user_id: session.user_id,
                    corpid,
                    userid,
                    name,
                })
            }
        }
    }

    /// Exchange a `getPhoneNumber` code (`wxa/business/getuserphonenumber`) for the session's person's
    /// phone number and set it as the user's mobile.
    pub async fn phone_by_code(
        &self,
        tenant: &str,
        key: &str,
        app: &WechatApp,
        token: &str,
        code: &str,
    ) -> Result<(UserId, PhoneNumber), MiniProgramError> {
        let code = check_code(code)?;
        let (session, user, _) = self.mini_session(tenant, key, token).await?;
        let info = app
            .get_user_phone_number(code)
            .await
            .map_err(|e| MiniProgramError::from_code_call("wxa/business/getuserphonenumber", e))?;
        if let Some(w) = &info.watermark
            && w.appid != app.credentials().appid
        {
            return Err(MiniProgramError::Watermark {
                expected: app.credentials().appid.clone(),
                actual: w.appid.chars().take(64).collect(),
            });
        }
        let phone = PhoneNumber {
            pure_phone_number: if info.pure_phone_number.is_empty() {
                info.phone_number.clone()
            } else {
                info.pure_phone_number
            },
            phone_number: info.phone_number,
            country_code: info.country_code,
        };
        if phone.phone_number.trim().is_empty() {
            return Err(MiniProgramError::DecryptedData {
                kind: "phone",
                problem: "getuserphonenumber returned no phoneNumber".to_owned(),
            });
        }
        self.set_mobile(tenant, &user, &phone).await?;
        Ok((session.user_id, phone))
    }

    async fn user(&self, tenant: &str, id: UserId) -> Result<User, MiniProgramError> {
        Ok(self
            .db
            .user(tenant, id)
            .await?
            .ok_or(IdentityError::UserNotFound { id: id.get() })?)
    }

    async fn set_mobile(
        &self,
        tenant: &str,
        user: &User,
        phone: &PhoneNumber,
    ) -> Result<(), MiniProgramError> {
        if user.mobile.as_deref() == Some(phone.phone_number.as_str()) {
            return Ok(());
        }
        self.db
            .set_user_profile(
                tenant,
                user.id,
                &user.name,
                Some(&phone.phone_number),
                user.avatar.as_deref(),
                self.clock.now_ms(),
            )
            .await?;
        Ok(())
    }

    /// Fill the user's name (only while it is the placeholder) and avatar (only when empty).
    async fn fill_profile(
        &self,
        tenant: &str,
        user: &User,
        info: &MiniUserInfo,
    ) -> Result<(), MiniProgramError> {
        let name = match &info.nickname {
            Some(n) if user.name == DEFAULT_WECHAT_NAME && !n.trim().is_empty() => n.as_str(),
            _ => user.name.as_str(),
        };
        let avatar = user.avatar.as_deref().or(info.avatar.as_deref());
        if name == user.name && avatar == user.avatar.as_deref() {
            return Ok(());
        }
        self.db
            .set_user_profile(
                tenant,
                user.id,
                name,
                user.mobile.as_deref(),
                avatar,
                self.clock.now_ms(),
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_for_their_tenant_and_identity() {
        let sealer = SessionKeySealer::new(&[7u8; 32]);
        let key = SecretString::from("tiihtNczf5v6AKRyjwEUhQ==".to_owned());
        let id = IdentityId::from_raw(5);
        let sealed = sealer.seal("acme", id, &key, 1).unwrap();
        assert!(!sealed.sealed.windows(8).any(|w| w == b"tiihtNcz"));
        assert_eq!(
            sealer.unseal("acme", id, &sealed).unwrap().expose_secret(),
            key.expose_secret()
        );
        assert!(sealer.unseal("other", id, &sealed).is_none());
        assert!(
            sealer
                .unseal("acme", IdentityId::from_raw(6), &sealed)
                .is_none()
        );
        let other = SessionKeySealer::new(&[8u8; 32]);
        assert!(other.unseal("acme", id, &sealed).is_none());
        let mut tampered = sealed.clone();
        if let Some(b) = tampered.sealed.last_mut() {
            *b ^= 1;
        }
        assert!(sealer.unseal("acme", id, &tampered).is_none());
        assert!(!format!("{sealer:?}").contains("07070707"));
    }

    #[test]
    fn the_key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = SessionKeySealer::open_or_create(dir.path()).unwrap();
        let b = SessionKeySealer::open_or_create(dir.path()).unwrap();
        assert_eq!(a.key_id(), b.key_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(seal_key_path(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(seal_key_path(dir.path()), "nope").unwrap();
        assert!(matches!(
            SessionKeySealer::open_or_create(dir.path()),
            Err(MiniProgramError::Seal(_))
        ));
    }
}
