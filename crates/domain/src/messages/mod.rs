//! Message push through WeCom self-built apps: the request a business system makes (recipients as local
//! users, local roles or everyone; text, markdown, textcard, news or template_card), its resolution into
//! `message/send` calls, the durable outbox (`store::outbox`) and the worker that sends (`worker.rs`).
//!
//! **Resolution** happens when the message is accepted, so the caller learns at once which recipients
//! cannot be reached:
//! - a user goes out as the WeCom userid of its link in the app's corp; a user without such a link (or an
//!   unknown user id) is an invalid recipient, reported by local id;
//! - a role that mirrors a WeCom department of the app's corp, asked for *with* sub-roles, goes out as that
//!   department (`toparty`): WeCom itself delivers to the department and every department below it, which
//!   is exactly "with sub-roles", and the upstream list stays current without us expanding it;
//! - any other role (a department without sub-roles, a tag, a local role) is expanded to its members'
//!   userids, because `toparty` cannot mean "this department only" and local roles have no upstream form;
//! - `all` is `touser=@all` (the app's visible scope).
//!
//! Userids are deduplicated and the calls are cut at 1,000 users and 100 departments each. Each call's
//! targets keep the local id every userid and department stands for, so `invaliduser` / `invalidparty`
//! in the answer map back to local users and roles.
//!
//! **WeChat** (`wechat_template` through an official account, `wechat_subscribe` through a mini program):
//! users (and roles, expanded) go out at their openid in that account, one call each; a user without an
//! identity there is invalid (`no_wechat_identity`), and a refusal (43004 not following, 40003, 43101)
//! maps that user back. `all` and recall have no WeChat form.
//!
//! **Idempotency**: the key is unique per tenant. The same key with the same request (hashed in its
//! canonical form) returns the first message's id; with a different request it is a conflict.

pub mod worker;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use store::{
    CallStatus, EnqueueOutcome, NewOutboxMessage, OutboxCall, OutboxMessage, OutboxStatus,
};
use wx_api::wecom::WecomApp;
use wx_api::wecom::types::{AppMessage, MessageBody, NewsArticle};

use crate::{Db, RoleId, Tenant, UserId};

pub use worker::{OutboxWorker, WorkerOptions};

/// WeCom's limits per `message/send` call.
pub const MAX_USERS_PER_CALL: usize = 1000;
pub const MAX_PARTIES_PER_CALL: usize = 100;
const MAX_IDEMPOTENCY_KEY: usize = 128;

/// A message to push, as a business system sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// The WeCom app (its key under `[tenants.X.wecom.apps]`) to send through.
    #[schema(example = "main")]
    pub app: String,
    /// Unique per tenant (1..=128 characters). Sending the same request again with it returns the first
    /// message; another request with it is refused (409).
    pub idempotency_key: String,
    pub to: Recipients,
    pub message: MessageContent,
    /// WeCom's `safe` flag (0 shareable, 1 confidential with watermark).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safe: Option<u8>,
}

/// Who receives it. `all` excludes the others.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Recipients {
    /// Local user ids.
    #[serde(default)]
    pub users: Vec<i64>,
    /// Local roles, each with or without its sub-roles.
    #[serde(default)]
    pub roles: Vec<RoleTarget>,
    /// Everyone in the app's visible scope.
    #[serde(default)]
    pub all: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleTarget {
    /// Local role id.
    pub id: i64,
    /// Also the members of every role below it.
    #[serde(default)]
    pub sub_roles: bool,
}

/// The content, by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum MessageContent {
    Text {
        content: String,
    },
    Markdown {
        content: String,
    },
    Textcard {
        title: String,
        description: String,
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        btntxt: Option<String>,
    },
    News {
        articles: Vec<Article>,
    },
    /// WeCom's `template_card` object as documented upstream (must carry `card_type`).
    TemplateCard {
        #[schema(value_type = Object)]
        template_card: serde_json::Value,
    },
    /// A WeChat official-account template message; `app` then names an official account
    /// (`[tenants.X.wechat.official_accounts]`) and each user receives it at their openid in it.
    WechatTemplate {
        template_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        /// `{ "appid": ..., "pagepath": ... }` to open a mini program instead of `url`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<Object>)]
        miniprogram: Option<serde_json::Value>,
        #[schema(value_type = Object)]
        data: serde_json::Value,
    },
    /// A WeChat mini-program subscribe message; `app` then names a mini program
    /// (`[tenants.X.wechat.mini_programs]`).
    WechatSubscribe {
        template_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        page: Option<String>,
        #[schema(value_type = Object)]
        data: serde_json::Value,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Article {
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picurl: Option<String>,
}

impl MessageContent {
    pub fn msgtype(&self) -> &'static str {
        match self {
            MessageContent::Text { .. } => "text",
            MessageContent::Markdown { .. } => "markdown",
            MessageContent::Textcard { .. } => "textcard",
            MessageContent::News { .. } => "news",
            MessageContent::TemplateCard { .. } => "template_card",
            MessageContent::WechatTemplate { .. } => "wechat_template",
            MessageContent::WechatSubscribe { .. } => "wechat_subscribe",
        }
    }

    /// Sent through a WeChat account (one call per openid) rather than a WeCom app.
    pub fn is_wechat(&self) -> bool {
        matches!(
            self,
            MessageContent::WechatTemplate { .. } | MessageContent::WechatSubscribe { .. }
        )
    }

    /// The WeChat request body for one openid; `None` for WeCom kinds.
    pub fn wechat_body(&self, openid: &str) -> Option<serde_json::Value> {
        let mut body = match self {
            MessageContent::WechatTemplate {
                template_id,
                url,
                miniprogram,
                data,
            } => {
                let mut b = serde_json::json!({ "template_id": template_id, "data": data });
                if let Some(url) = url {
                    b["url"] = url.clone().into();
                }
                if let Some(mp) = miniprogram {
                    b["miniprogram"] = mp.clone();
                }
                b
            }
            MessageContent::WechatSubscribe {
                template_id,
                page,
                data,
            } => {
                let mut b = serde_json::json!({ "template_id": template_id, "data": data });
                if let Some(page) = page {
                    b["page"] = page.clone().into();
                }
                b
            }
            _ => return None,
        };
        body["touser"] = openid.into();
        Some(body)
    }

    fn validate(&self) -> Result<(), MessageError> {
        let bad = |m: &str| Err(MessageError::Invalid(m.to_owned()));
        let blank = |s: &str| s.trim().is_empty();
        match self {
            MessageContent::Text { content } | MessageContent::Markdown { content } => {
                if blank(content) {
                    return bad("message.content must not be empty");
                }
                if content.len() > 2048 {
                    return bad("message.content is longer than WeCom's 2048 bytes");
                }
            }
            MessageContent::Textcard {
                title,
                description,
                url,
                ..
            } => {
                if blank(title) || blank(description) || blank(url) {
                    return bad("a textcard needs a title, a description and a url");
                }
                if title.len() > 128 || description.len() > 512 {
                    return bad("a textcard's title is at most 128 bytes and its description 512");
                }
            }
            MessageContent::News { articles } => {
                if articles.is_empty() || articles.len() > 8 {
                    return bad("news needs 1 to 8 articles");
                }
                if articles.iter().any(|a| blank(&a.title) || blank(&a.url)) {
                    return bad("every news article needs a title and a url");
                }
            }
            MessageContent::TemplateCard { template_card } => {
                let typed = template_card
                    .get("card_type")
                    .and_then(serde_json::Value::as_str)
                    .is_some_and(|t| !t.is_empty());
                if !typed {
                    return bad("template_card must be an object with a card_type");
                }
            }
            MessageContent::WechatTemplate {
                template_id, data, ..
            }
            | MessageContent::WechatSubscribe {
                template_id, data, ..
            } => {
                if blank(template_id) || !data.is_object() {
                    return bad("a WeChat message needs a template_id and a data object");
                }
            }
        }
        Ok(())
    }

    fn body(&self) -> MessageBody {
        match self.clone() {
            MessageContent::Text { content } => MessageBody::Text { content },
            MessageContent::Markdown { content } => MessageBody::Markdown { content },
            MessageContent::Textcard {
                title,
                description,
                url,
                btntxt,
            } => MessageBody::TextCard {
                title,
                description,
                url,
                btntxt,
            },
            MessageContent::News { articles } => MessageBody::News {
                articles: articles
                    .into_iter()
                    .map(|a| NewsArticle {
                        title: a.title,
                        description: a.description,
                        url: Some(a.url),
                        picurl: a.picurl,
                    })
                    .collect(),
            },
            MessageContent::TemplateCard { template_card } => MessageBody::Raw {
                msgtype: "template_card".into(),
                content: template_card,
            },
            // Never sent through message/send (the worker sends WeChat kinds through the account).
            other @ (MessageContent::WechatTemplate { .. }
            | MessageContent::WechatSubscribe { .. }) => MessageBody::Raw {
                msgtype: other.msgtype().into(),
                content: serde_json::Value::Null,
            },
        }
    }
}

/// Why a message was not accepted (or a stored one cannot be read back).
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// The request is malformed; the message says how.
    #[error("MS001 {0}")]
    Invalid(String),
    /// The tenant has no WeCom app of that key.
    #[error(
        "MS002 tenant has no app `{0}` of that kind (a WeCom app, or for wechat_* kinds an official account / mini program)"
    )]
    UnknownApp(String),
    /// A role id names no role of the tenant.
    #[error("MS003 role {0} not found")]
    UnknownRole(i64),
    /// The idempotency key was used with another request.
    #[error("MS004 idempotency key already used for message {id} with a different request")]
    KeyReused { id: i64 },
    #[error("MS005 database: {0}")]
    Store(#[from] store::Error),
    #[error("MS006 stored message {id}: {message}")]
    Corrupt { id: i64, message: String },
    #[error("MS007 message {0} not found")]
    NotFound(i64),
}

/// A recipient that cannot be (or was not) reached, by local id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InvalidRecipient {
    /// `user` or `role`.
    pub kind: String,
    /// The local user or role id.
    pub id: i64,
    /// `unknown_user`, `no_wecom_link`, `archived_role`, `foreign_corp_role` (resolution), or
    /// `invaliduser`, `invalidparty`, `unlicenseduser` (WeCom's answer).
    pub reason: String,
}

impl InvalidRecipient {
    fn user(id: i64, reason: &str) -> Self {
        InvalidRecipient {
            kind: "user".into(),
            id,
            reason: reason.into(),
        }
    }
    fn role(id: i64, reason: &str) -> Self {
        InvalidRecipient {
            kind: "role".into(),
            id,
            reason: reason.into(),
        }
    }
}

/// One call's targets, with the local id each stands for (stored as the call's `targets`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallTargets {
    #[serde(default)]
    pub all: bool,
    /// (WeCom userid, local user id)
    #[serde(default)]
    pub users: Vec<(String, i64)>,
    /// (WeCom department id, local role id)
    #[serde(default)]
    pub parties: Vec<(i64, i64)>,
}

impl CallTargets {
    /// The `message/send` request for these targets.
    pub fn app_message(&self, request: &SendRequest) -> AppMessage {
        AppMessage {
            touser: self.users.iter().map(|(u, _)| u.clone()).collect(),
            toparty: self.parties.iter().map(|(d, _)| *d).collect(),
            totag: Vec::new(),
            to_all: self.all,
            body: request.message.body(),
            safe: request.safe,
            enable_duplicate_check: false,
            duplicate_check_interval_secs: None,
        }
    }

    /// Map WeCom's `invaliduser` / `invalidparty` / `unlicenseduser` back to local ids.
    pub fn map_invalid(
        &self,
        invaliduser: &[String],
        invalidparty: &[String],
        unlicensed: &[String],
    ) -> Vec<InvalidRecipient> {
        let mut out = Vec::new();
        let mut users = |list: &[String], reason: &str| {
            for bad in list {
                // WeCom may answer in another case (it lowercases); userids match case-insensitively.
                if let Some((_, id)) = self.users.iter().find(|(u, _)| u.eq_ignore_ascii_case(bad))
                {
                    out.push(InvalidRecipient::user(*id, reason));
                }
            }
        };
        users(invaliduser, "invaliduser");
        users(unlicensed, "unlicenseduser");
        for bad in invalidparty {
            if let Some((_, role)) = self
                .parties
                .iter()
                .find(|(d, _)| d.to_string() == bad.trim())
            {
                out.push(InvalidRecipient::role(*role, "invalidparty"));
            }
        }
        out
    }

    /// Every target of the call as invalid (an 81013 answer: all invalid; for WeChat, the one openid
    /// refused with `reason`).
    pub fn all_invalid(&self, reason: &str) -> Vec<InvalidRecipient> {
        let mut out: Vec<_> = self
            .users
            .iter()
            .map(|(_, id)| InvalidRecipient::user(*id, reason))
            .collect();
        out.extend(
            self.parties
                .iter()
                .map(|(_, id)| InvalidRecipient::role(*id, "invalidparty")),
        );
        out
    }
}

/// What resolution produced: the calls, and who cannot be reached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    pub calls: Vec<CallTargets>,
    pub invalid: Vec<InvalidRecipient>,
}

/// The answer to an accepted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub id: i64,
    /// False when the idempotency key was replayed with the same request.
    pub created: bool,
}

/// Check a request before anything is resolved or stored.
pub fn validate(request: &SendRequest) -> Result<(), MessageError> {
    let key = request.idempotency_key.trim();
    if key.is_empty() || request.idempotency_key.chars().count() > MAX_IDEMPOTENCY_KEY {
        return Err(MessageError::Invalid(format!(
            "idempotency_key must be 1 to {MAX_IDEMPOTENCY_KEY} characters"
        )));
    }
    let to = &request.to;
    if to.all && (!to.users.is_empty() || !to.roles.is_empty()) {
        return Err(MessageError::Invalid(
            "to.all cannot be combined with users or roles".into(),
        ));
    }
    if !to.all && to.users.is_empty() && to.roles.is_empty() {
        return Err(MessageError::Invalid(
            "no recipients: give to.users, to.roles or to.all".into(),
        ));
    }
    if let Some(safe) = request.safe
        && safe > 2
    {
        return Err(MessageError::Invalid("safe must be 0, 1 or 2".into()));
    }
    request.message.validate()
}

/// SHA-256 (hex) of the request in canonical form (field order fixed by the types; object keys inside a
/// template card sorted by serde_json's map).
pub fn request_hash(request: &SendRequest) -> Result<String, MessageError> {
    let bytes = serde_json::to_vec(request)
        .map_err(|e| MessageError::Invalid(format!("request does not serialise: {e}")))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// Resolve recipients into calls for `app`'s corp (see the module docs for the rules).
pub async fn resolve(
    db: &Db,
    tenant: &str,
    corpid: &str,
    to: &Recipients,
) -> Result<Resolution, MessageError> {
    let mut invalid = Vec::new();
    if to.all {
        return Ok(Resolution {
            calls: vec![CallTargets {
                all: true,
                ..CallTargets::default()
            }],
            invalid,
        });
    }
    // userid (lowercased for dedup) -> (spelling, local id); department id -> role id.
    let mut users: BTreeMap<String, (String, i64)> = BTreeMap::new();
    let mut parties: BTreeMap<i64, i64> = BTreeMap::new();
    let mut seen_invalid = std::collections::BTreeSet::new();

    let mut add_user = async |user_id: i64,
                              users: &mut BTreeMap<String, (String, i64)>,
                              invalid: &mut Vec<InvalidRecipient>|
           -> Result<(), MessageError> {
        let uid = UserId::from_raw(user_id);
        let reason = if db.user(tenant, uid).await?.is_none() {
            Some("unknown_user")
        } else {
            let links = db.wecom_links_of_user(tenant, uid).await?;
            match links.into_iter().find(|l| l.corpid == corpid) {
                Some(link) => {
                    users
                        .entry(link.userid.to_lowercase())
                        .or_insert((link.userid, user_id));
                    None
                }
                None => Some("no_wecom_link"),
            }
        };
        if let Some(reason) = reason
            && seen_invalid.insert(user_id)
        {
            invalid.push(InvalidRecipient::user(user_id, reason));
        }
        Ok(())
    };

    for &user_id in &to.users {
        add_user(user_id, &mut users, &mut invalid).await?;
    }
    for target in &to.roles {
        let role_id = RoleId::from_raw(target.id);
        let role = db
            .role(tenant, role_id)
            .await?
            .ok_or(MessageError::UnknownRole(target.id))?;
        if role.archived_at_ms.is_some() {
            invalid.push(InvalidRecipient::role(target.id, "archived_role"));
            continue;
        }
        if target.sub_roles
            && let Some(link) = db.department_of_role(tenant, role_id).await?
        {
            if link.corpid == corpid {
                parties.insert(link.department_id, target.id);
            } else {
                invalid.push(InvalidRecipient::role(target.id, "foreign_corp_role"));
            }
            continue;
        }
        for member in db.role_members(tenant, role_id, target.sub_roles).await? {
            add_user(member.user.id.get(), &mut users, &mut invalid).await?;
        }
    }

    let users: Vec<(String, i64)> = users.into_values().collect();
    let parties: Vec<(i64, i64)> = parties.into_iter().collect();
    Ok(Resolution {
        calls: split(&users, &parties),
        invalid,
    })
}

/// Resolve recipients to openids in WeChat app `appid`: one call per openid. A user without an identity in
/// that app is invalid (`no_wechat_identity`); roles are expanded to their members; `all` is refused.
pub async fn resolve_wechat(
    db: &Db,
    tenant: &str,
    appid: &str,
    to: &Recipients,
) -> Result<Resolution, MessageError> {
    if to.all {
        return Err(MessageError::Invalid(
            "to.all is not available for WeChat messages: name users or roles".into(),
        ));
    }
    let mut user_ids: Vec<i64> = to.users.clone();
    let mut invalid = Vec::new();
    for target in &to.roles {
        let role_id = RoleId::from_raw(target.id);
        let role = db
            .role(tenant, role_id)
            .await?
            .ok_or(MessageError::UnknownRole(target.id))?;
        if role.archived_at_ms.is_some() {
            invalid.push(InvalidRecipient::role(target.id, "archived_role"));
            continue;
        }
        for member in db.role_members(tenant, role_id, target.sub_roles).await? {
            user_ids.push(member.user.id.get());
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut calls = Vec::new();
    for user_id in user_ids {
        if !seen.insert(user_id) {
            continue;
        }
        let uid = UserId::from_raw(user_id);
        if db.user(tenant, uid).await?.is_none() {
            invalid.push(InvalidRecipient::user(user_id, "unknown_user"));
            continue;
        }
        let identities = db.wechat_identities_of_user(tenant, uid).await?;
        match identities.into_iter().find(|i| i.appid == appid) {
            Some(identity) => calls.push(CallTargets {
                all: false,
                users: vec![(identity.openid, user_id)],
                parties: Vec::new(),
            }),
            None => invalid.push(InvalidRecipient::user(user_id, "no_wechat_identity")),
        }
    }
    Ok(Resolution { calls, invalid })
}

/// The WeChat account a wechat_* message goes through.
pub fn wechat_account<'a>(
    tenant: &'a Tenant,
    app: &str,
    content: &MessageContent,
) -> Option<&'a wx_api::wechat::WechatApp> {
    let kind = match content {
        MessageContent::WechatTemplate { .. } => crate::CredentialKind::OfficialAccount,
        MessageContent::WechatSubscribe { .. } => crate::CredentialKind::WechatMiniProgram,
        _ => return None,
    };
    tenant.credential(kind, app).and_then(|c| c.wechat())
}

/// Cut targets into calls of at most 1,000 users and 100 departments (call i takes the i-th slice of each).
pub fn split(users: &[(String, i64)], parties: &[(i64, i64)]) -> Vec<CallTargets> {
    let mut user_chunks = users.chunks(MAX_USERS_PER_CALL);
    let mut party_chunks = parties.chunks(MAX_PARTIES_PER_CALL);
    let mut calls = Vec::new();
    loop {
        let u = user_chunks.next();
        let p = party_chunks.next();
        if u.is_none() && p.is_none() {
            break;
        }
        calls.push(CallTargets {
            all: false,
            users: u.map(<[_]>::to_vec).unwrap_or_default(),
            parties: p.map(<[_]>::to_vec).unwrap_or_default(),
        });
    }
    calls
}

fn to_json<T: Serialize>(value: &T) -> Result<String, MessageError> {
    serde_json::to_string(value).map_err(|e| MessageError::Invalid(e.to_string()))
}

/// Validate, resolve and store a message (or find the one stored under its idempotency key).
pub async fn accept(
    db: &Db,
    tenant: &Tenant,
    request: &SendRequest,
    now_ms: i64,
) -> Result<Accepted, MessageError> {
    validate(request)?;
    let hash = request_hash(request)?;
    // A replay resolves again but stores nothing: the store answers with the first message's id.
    let resolution = if request.message.is_wechat() {
        let account = wechat_account(tenant, &request.app, &request.message)
            .ok_or_else(|| MessageError::UnknownApp(request.app.clone()))?;
        resolve_wechat(db, tenant.key(), &account.credentials().appid, &request.to).await?
    } else {
        let app: &WecomApp = tenant
            .wecom_app(&request.app)
            .ok_or_else(|| MessageError::UnknownApp(request.app.clone()))?;
        resolve(db, tenant.key(), &app.credentials().corpid, &request.to).await?
    };
    let (status, error) = if resolution.calls.is_empty() {
        (
            OutboxStatus::Failed,
            Some("no recipient could be resolved to a WeCom userid or department".to_owned()),
        )
    } else {
        (OutboxStatus::Queued, None)
    };
    let new = NewOutboxMessage {
        app: request.app.clone(),
        idempotency_key: request.idempotency_key.clone(),
        request_hash: hash,
        request: to_json(request)?,
        msgtype: request.message.msgtype().to_owned(),
        status,
        error,
        invalid: to_json(&resolution.invalid)?,
        calls: resolution
            .calls
            .iter()
            .map(to_json)
            .collect::<Result<_, _>>()?,
    };
    match db
        .enqueue_outbox_message(tenant.key(), &new, now_ms)
        .await?
    {
        EnqueueOutcome::Created(id) => Ok(Accepted { id, created: true }),
        EnqueueOutcome::Existing {
            id,
            same_request: true,
        } => Ok(Accepted { id, created: false }),
        EnqueueOutcome::Existing {
            id,
            same_request: false,
        } => Err(MessageError::KeyReused { id }),
    }
}

/// One call of a message, as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CallView {
    pub seq: i64,
    /// `pending`, `sent`, `invalid` (every recipient invalid) or `failed`.
    pub status: String,
    pub msgid: Option<String>,
    /// How many userids and departments the call carried (`all`: the whole visible scope).
    pub users: usize,
    pub departments: usize,
    pub all: bool,
    pub invalid: Vec<InvalidRecipient>,
    pub error: Option<String>,
    pub sent_at_ms: Option<i64>,
    pub recalled_at_ms: Option<i64>,
}

/// A message with its calls and every invalid recipient (resolution and WeCom's answers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MessageView {
    pub id: i64,
    pub app: String,
    pub idempotency_key: String,
    pub msgtype: String,
    /// `queued`, `sending`, `sent`, `partial` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub error: Option<String>,
    pub invalid_recipients: Vec<InvalidRecipient>,
    pub calls: Vec<CallView>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

fn corrupt(id: i64, e: impl std::fmt::Display) -> MessageError {
    MessageError::Corrupt {
        id,
        message: e.to_string(),
    }
}

/// Parse a stored call's targets.
pub fn call_targets(call: &OutboxCall) -> Result<CallTargets, MessageError> {
    serde_json::from_str(&call.targets).map_err(|e| corrupt(call.message_id, e))
}

fn call_invalid(call: &OutboxCall) -> Result<Vec<InvalidRecipient>, MessageError> {
    match &call.invalid {
        Some(json) => serde_json::from_str(json).map_err(|e| corrupt(call.message_id, e)),
        None => Ok(Vec::new()),
    }
}

/// The message with its calls, for the API.
pub async fn view(db: &Db, message: OutboxMessage) -> Result<MessageView, MessageError> {
    let calls = db.outbox_calls(message.id).await?;
    let mut invalid: Vec<InvalidRecipient> =
        serde_json::from_str(&message.invalid).map_err(|e| corrupt(message.id, e))?;
    let mut views = Vec::with_capacity(calls.len());
    for call in &calls {
        let targets = call_targets(call)?;
        let call_invalid = call_invalid(call)?;
        invalid.extend(call_invalid.iter().cloned());
        views.push(CallView {
            seq: call.seq,
            status: call.status.as_str().to_owned(),
            msgid: call.msgid.clone(),
            users: targets.users.len(),
            departments: targets.parties.len(),
            all: targets.all,
            invalid: call_invalid,
            error: call.error.clone(),
            sent_at_ms: call.sent_at_ms,
            recalled_at_ms: call.recalled_at_ms,
        });
    }
    Ok(MessageView {
        id: message.id,
        app: message.app,
        idempotency_key: message.idempotency_key,
        msgtype: message.msgtype,
        status: message.status.as_str().to_owned(),
        attempts: message.attempts,
        error: message.error,
        invalid_recipients: invalid,
        calls: views,
        created_at_ms: message.created_at_ms,
        updated_at_ms: message.updated_at_ms,
        finished_at_ms: message.finished_at_ms,
    })
}

/// What a recall did, per sent call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RecallOutcome {
    pub seq: i64,
    pub msgid: String,
    /// `recalled`, `already_recalled` or `failed`.
    pub result: String,
    pub error: Option<String>,
}

/// `message/recall` for every sent call's msgid (WeCom allows it within 24 hours of sending).
pub async fn recall(
    db: &Db,
    tenant: &Tenant,
    id: i64,
    now_ms: i64,
) -> Result<Vec<RecallOutcome>, MessageError> {
    let message = db
        .outbox_message(tenant.key(), id)
        .await?
        .ok_or(MessageError::NotFound(id))?;
    if message.msgtype.starts_with("wechat_") {
        return Err(MessageError::Invalid(
            "WeChat template and subscribe messages cannot be recalled".into(),
        ));
    }
    let app = tenant
        .wecom_app(&message.app)
        .ok_or_else(|| MessageError::UnknownApp(message.app.clone()))?;
    let mut out = Vec::new();
    for call in db.outbox_calls(id).await? {
        let (CallStatus::Sent, Some(msgid)) = (call.status, call.msgid.clone()) else {
            continue;
        };
        if call.recalled_at_ms.is_some() {
            out.push(RecallOutcome {
                seq: call.seq,
                msgid,
                result: "already_recalled".into(),
                error: None,
            });
            continue;
        }
        match app.message_recall(&msgid).await {
            Ok(()) => {
                db.mark_outbox_call_recalled(tenant.key(), id, call.seq, now_ms)
                    .await?;
                out.push(RecallOutcome {
                    seq: call.seq,
                    msgid,
                    result: "recalled".into(),
                    error: None,
                });
            }
            Err(e) => out.push(RecallOutcome {
                seq: call.seq,
                msgid,
                result: "failed".into(),
                error: Some(e.to_string()),
            }),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(n: usize) -> Vec<(String, i64)> {
        (0..n)
            .map(|i| (format!("u{i}"), i64::try_from(i).unwrap_or(0)))
            .collect()
    }

    fn parties(n: usize) -> Vec<(i64, i64)> {
        (0..n)
            .map(|i| {
                let i = i64::try_from(i).unwrap_or(0);
                (i + 2, i + 100)
            })
            .collect()
    }

    #[test]
    fn calls_are_cut_at_1000_users_and_100_departments() {
        let sizes = |calls: &[CallTargets]| -> Vec<(usize, usize)> {
            calls
                .iter()
                .map(|c| (c.users.len(), c.parties.len()))
                .collect()
        };
        assert_eq!(sizes(&split(&users(1000), &[])), vec![(1000, 0)]);
        assert_eq!(sizes(&split(&users(1001), &[])), vec![(1000, 0), (1, 0)]);
        assert_eq!(
            sizes(&split(&users(2500), &parties(150))),
            vec![(1000, 100), (1000, 50), (500, 0)]
        );
        assert_eq!(
            sizes(&split(&[], &parties(201))),
            vec![(0, 100), (0, 100), (0, 1)]
        );
        assert!(split(&[], &[]).is_empty());
        // Nothing lost or repeated.
        let calls = split(&users(2345), &[]);
        let all: Vec<_> = calls.iter().flat_map(|c| c.users.clone()).collect();
        assert_eq!(all, users(2345));
    }

    #[test]
    fn invalid_userids_and_parties_map_back_to_local_ids_case_insensitively() {
        let targets = CallTargets {
            all: false,
            users: vec![("ZhangSan".into(), 7), ("lisi".into(), 8)],
            parties: vec![(12, 40)],
        };
        let got = targets.map_invalid(&["zhangsan".into(), "stranger".into()], &["12".into()], &[]);
        assert_eq!(
            got,
            vec![
                InvalidRecipient::user(7, "invaliduser"),
                InvalidRecipient::role(40, "invalidparty")
            ]
        );
        assert_eq!(targets.all_invalid("invaliduser").len(), 3);
    }

    fn request(to: Recipients, message: MessageContent) -> SendRequest {
        SendRequest {
            app: "main".into(),
            idempotency_key: "k".into(),
            to,
            message,
            safe: None,
        }
    }

    #[test]
    fn requests_are_validated_before_anything_is_stored() {
        let one = Recipients {
            users: vec![1],
            ..Recipients::default()
        };
        let text = |s: &str| MessageContent::Text { content: s.into() };
        assert!(validate(&request(one.clone(), text("hi"))).is_ok());
        for (to, message, needle) in [
            (Recipients::default(), text("hi"), "no recipients"),
            (
                Recipients {
                    all: true,
                    users: vec![1],
                    ..Recipients::default()
                },
                text("hi"),
                "cannot be combined",
            ),
            (one.clone(), text("  "), "must not be empty"),
            (one.clone(), text(&"x".repeat(2049)), "2048"),
            (
                one.clone(),
                MessageContent::News { articles: vec![] },
                "1 to 8",
            ),
            (
                one.clone(),
                MessageContent::TemplateCard {
                    template_card: serde_json::json!({ "main_title": {} }),
                },
                "card_type",
            ),
        ] {
            let err = validate(&request(to, message)).unwrap_err().to_string();
            assert!(err.contains(needle), "{err} lacks {needle}");
        }
        let mut long_key = request(one, text("hi"));
        long_key.idempotency_key = "k".repeat(129);
        assert!(validate(&long_key).is_err());
    }

    #[test]
    fn the_hash_ignores_json_key_order_but_not_content() {
        let a: SendRequest = serde_json::from_str(
            r#"{"app":"main","idempotency_key":"k","to":{"users":[1]},"message":{"kind":"text","content":"hi"}}"#,
        )
        .unwrap();
        let b: SendRequest = serde_json::from_str(
            r#"{"message":{"content":"hi","kind":"text"},"to":{"users":[1]},"idempotency_key":"k","app":"main"}"#,
        )
        .unwrap();
        assert_eq!(request_hash(&a).unwrap(), request_hash(&b).unwrap());
        let mut c = a.clone();
        c.message = MessageContent::Text {
            content: "ho".into(),
        };
        assert_ne!(request_hash(&a).unwrap(), request_hash(&c).unwrap());
    }
}
