//! The WeCom (企业微信) client: a `WecomClient` per base URL, and a `WecomApp` handle per app secret whose
//! typed methods fetch the app's access token through the token manager.

pub mod types;

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::error::ApiError;
use crate::http::{RateLimits, Request, RetryPolicy, Scope, Transport, lifetime};
use crate::token::{CachedToken, FetchedToken, TokenKey, TokenKind, TokenManager};
use types::*;

/// The real WeCom API host.
pub const DEFAULT_BASE_URL: &str = "https://qyapi.weixin.qq.com";

pub mod api {
    //! API paths; each is also the scope of a 45009 block window.
    pub const GETTOKEN: &str = "/cgi-bin/gettoken";
    pub const GET_JSAPI_TICKET: &str = "/cgi-bin/get_jsapi_ticket";
    pub const TICKET_GET: &str = "/cgi-bin/ticket/get";
    pub const DEPARTMENT_LIST: &str = "/cgi-bin/department/list";
    pub const DEPARTMENT_SIMPLELIST: &str = "/cgi-bin/department/simplelist";
    pub const DEPARTMENT_GET: &str = "/cgi-bin/department/get";
    pub const USER_GET: &str = "/cgi-bin/user/get";
    pub const USER_SIMPLELIST: &str = "/cgi-bin/user/simplelist";
    pub const USER_LIST: &str = "/cgi-bin/user/list";
    pub const USER_LIST_ID: &str = "/cgi-bin/user/list_id";
    pub const TAG_LIST: &str = "/cgi-bin/tag/list";
    pub const TAG_GET: &str = "/cgi-bin/tag/get";
    pub const AGENT_GET: &str = "/cgi-bin/agent/get";
    pub const MESSAGE_SEND: &str = "/cgi-bin/message/send";
    pub const MESSAGE_RECALL: &str = "/cgi-bin/message/recall";
    pub const AUTH_GETUSERINFO: &str = "/cgi-bin/auth/getuserinfo";
    pub const AUTH_GETUSERDETAIL: &str = "/cgi-bin/auth/getuserdetail";
    pub const MINIPROGRAM_JSCODE2SESSION: &str = "/cgi-bin/miniprogram/jscode2session";
}

/// A WeCom API endpoint (the real one or a simulator), shared by every app of every tenant.
#[derive(Debug, Clone)]
pub struct WecomClient {
    transport: Transport,
}

/// One app secret of one company: a self-built app (with its `agentid`), the contacts-sync secret
/// (`agentid: None`), or the app linked to a WeCom mini program.
#[derive(Debug, Clone)]
pub struct AppCredentials {
    pub tenant: String,
    pub corpid: String,
    pub agentid: Option<i64>,
    pub secret: SecretString,
}

impl WecomClient {
    /// `base_url` is `DEFAULT_BASE_URL` in production and the simulator's URL in tests.
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        tokens: Arc<TokenManager>,
    ) -> Result<Self, ApiError> {
        Ok(WecomClient {
            transport: Transport::new(http, base_url, tokens)?,
        })
    }

    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.transport.policy = policy;
        self
    }

    /// The block windows opened by 45009 answers (shared by every app of this client).
    pub fn rate_limits(&self) -> &Arc<RateLimits> {
        &self.transport.limits
    }

    pub fn tokens(&self) -> &Arc<TokenManager> {
        &self.transport.tokens
    }

    /// A handle for one app secret.
    pub fn app(&self, credentials: AppCredentials) -> WecomApp {
        let key = TokenKey::new(
            credentials.tenant.clone(),
            credentials.corpid.clone(),
            &credentials.secret,
            TokenKind::WecomAccessToken,
        );
        WecomApp {
            transport: self.transport.clone(),
            credentials,
            key,
        }
    }
}

/// Typed calls made with one app's access token. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WecomApp {
    transport: Transport,
    credentials: AppCredentials,
    key: TokenKey,
}

impl WecomApp {
    pub fn credentials(&self) -> &AppCredentials {
        &self.credentials
    }

    /// The cache key of this app's access token.
    pub fn token_key(&self) -> &TokenKey {
        &self.key
    }

    fn scope(&self) -> Scope<'_> {
        Scope {
            tenant: &self.credentials.tenant,
            owner: &self.credentials.corpid,
        }
    }

    /// How long calls to `api` (a path from [`api`]) stay blocked after a 45009, if they are.
    pub fn blocked_for(&self, api: &str) -> Option<Duration> {
        self.transport.blocked_for(self.scope(), api)
    }

    /// The app's access token (cached; refreshed once for all callers when due).
    pub async fn access_token(&self) -> Result<CachedToken, ApiError> {
        self.transport
            .tokens
            .get_or_refresh(&self.key, || self.fetch_access_token())
            .await
    }

    async fn fetch_access_token(&self) -> Result<FetchedToken, ApiError> {
        let secret = self.credentials.secret.expose_secret();
        let req = Request::get(api::GETTOKEN)
            .query("corpid", self.credentials.corpid.as_str())
            .secret_query("corpsecret", secret);
        let body: AccessTokenBody = self.transport.call(self.scope(), &req).await?;
        Ok(FetchedToken {
            value: SecretString::from(body.access_token),
            expires_in: lifetime(body.expires_in),
        })
    }

    /// The company jsapi ticket (for `wx.config`), cached like a token.
    pub async fn jsapi_ticket(&self) -> Result<CachedToken, ApiError> {
        let key = self.key.with_kind(TokenKind::WecomJsapiTicket);
        self.transport
            .tokens
            .get_or_refresh(&key, || {
                self.fetch_ticket(Request::get(api::GET_JSAPI_TICKET))
            })
            .await
    }

    /// The app ticket (for `wx.agentConfig`), cached like a token.
    pub async fn agent_ticket(&self) -> Result<CachedToken, ApiError> {
        let key = self.key.with_kind(TokenKind::WecomAgentTicket);
        self.transport
            .tokens
            .get_or_refresh(&key, || {
                self.fetch_ticket(Request::get(api::TICKET_GET).query("type", "agent_config"))
            })
            .await
    }

    async fn fetch_ticket(&self, req: Request<'_>) -> Result<FetchedToken, ApiError> {
        let body: TicketBody = self.send(req).await?;
        Ok(FetchedToken {
            value: SecretString::from(body.ticket),
            expires_in: lifetime(body.expires_in),
        })
    }

    async fn send<T: serde::de::DeserializeOwned>(&self, req: Request<'_>) -> Result<T, ApiError> {
        let req = req.scrub(self.credentials.secret.expose_secret());
        self.transport
            .call_with_token(self.scope(), &req, &self.key, || self.access_token())
            .await
    }

    /// `department/list`: `id` and all its descendants, or the whole visible tree.
    pub async fn department_list(&self, id: Option<i64>) -> Result<Vec<Department>, ApiError> {
        let mut req = Request::get(api::DEPARTMENT_LIST);
        if let Some(id) = id {
            req = req.query("id", id.to_string());
        }
        Ok(self.send::<DepartmentListBody>(req).await?.department)
    }

    /// `department/simplelist`: ids, parents and order of `id`'s subtree (or the whole visible tree).
    pub async fn department_simplelist(
        &self,
        id: Option<i64>,
    ) -> Result<Vec<DepartmentRef>, ApiError> {
        let mut req = Request::get(api::DEPARTMENT_SIMPLELIST);
        if let Some(id) = id {
            req = req.query("id", id.to_string());
        }
        Ok(self
            .send::<DepartmentSimpleListBody>(req)
            .await?
            .department_id)
    }

    /// `department/get`.
    pub async fn department_get(&self, id: i64) -> Result<Department, ApiError> {
        let req = Request::get(api::DEPARTMENT_GET).query("id", id.to_string());
        Ok(self.send::<DepartmentGetBody>(req).await?.department)
    }

    /// `user/get`.
    pub async fn user_get(&self, userid: &str) -> Result<User, ApiError> {
        self.send(Request::get(api::USER_GET).query("userid", userid))
            .await
    }

    /// `user/simplelist`: the members of one department (not its sub-departments).
    pub async fn user_simplelist(&self, department_id: i64) -> Result<Vec<SimpleUser>, ApiError> {
        let req =
            Request::get(api::USER_SIMPLELIST).query("department_id", department_id.to_string());
        Ok(self.send::<SimpleUserListBody>(req).await?.userlist)
    }

    /// `user/list`: member details of one department (not its sub-departments).
    pub async fn user_list(&self, department_id: i64) -> Result<Vec<User>, ApiError> {
        let req = Request::get(api::USER_LIST).query("department_id", department_id.to_string());
        Ok(self.send::<UserListBody>(req).await?.userlist)
    }

    /// `user/list_id`: one page of (userid, department) rows. Pass the previous page's `next_cursor`;
    /// `limit` is clamped to 1..=10000.
    pub async fn user_list_id(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<UserIdPage, ApiError> {
        let body = UserListIdRequest {
            cursor: cursor.filter(|c| !c.is_empty()),
            limit: limit.clamp(1, 10_000),
        };
        self.send(Request::post(
            api::USER_LIST_ID,
            to_json(api::USER_LIST_ID, &body)?,
        ))
        .await
    }

    /// `tag/list`.
    pub async fn tag_list(&self) -> Result<Vec<Tag>, ApiError> {
        Ok(self
            .send::<TagListBody>(Request::get(api::TAG_LIST))
            .await?
            .taglist)
    }

    /// `tag/get`.
    pub async fn tag_get(&self, tagid: i64) -> Result<TagMembers, ApiError> {
        self.send(Request::get(api::TAG_GET).query("tagid", tagid.to_string()))
            .await
    }

    fn agentid(&self, api: &'static str) -> Result<i64, ApiError> {
        self.credentials
            .agentid
            .ok_or_else(|| ApiError::InvalidRequest {
                api,
                message: "this secret has no agentid".into(),
            })
    }

    /// `agent/get` for this app: its settings and visible scope.
    pub async fn agent_get(&self) -> Result<Agent, ApiError> {
        let agentid = self.agentid(api::AGENT_GET)?;
        self.send(Request::get(api::AGENT_GET).query("agentid", agentid.to_string()))
            .await
    }

    /// `message/send` from this app. Some invalid recipients still succeed and are listed in the result;
    /// all invalid is errcode 81013.
    pub async fn message_send(&self, message: &AppMessage) -> Result<SendResult, ApiError> {
        let agentid = self.agentid(api::MESSAGE_SEND)?;
        self.send(Request::post(api::MESSAGE_SEND, message.to_json(agentid)))
            .await
    }

    /// `message/recall` (within 24 h of sending).
    pub async fn message_recall(&self, msgid: &str) -> Result<(), ApiError> {
        let body = to_json(api::MESSAGE_RECALL, &MsgIdRequest { msgid })?;
        self.send::<Empty>(Request::post(api::MESSAGE_RECALL, body))
            .await
            .map(|_| ())
    }

    /// `auth/getuserinfo`: exchange an OAuth / web-login code (single use, 5 minutes).
    pub async fn auth_getuserinfo(&self, code: &str) -> Result<LoginIdentity, ApiError> {
        self.send(Request::get(api::AUTH_GETUSERINFO).secret_query("code", code))
            .await
    }

    /// `auth/getuserdetail`: sensitive fields, with the `user_ticket` from `auth_getuserinfo`.
    pub async fn auth_getuserdetail(
        &self,
        user_ticket: &SecretString,
    ) -> Result<UserDetail, ApiError> {
        let ticket = user_ticket.expose_secret();
        let body = to_json(
            api::AUTH_GETUSERDETAIL,
            &UserTicketRequest {
                user_ticket: ticket,
            },
        )?;
        self.send(Request::post(api::AUTH_GETUSERDETAIL, body).scrub(ticket))
            .await
    }

    /// `miniprogram/jscode2session` with this (mini-program-linked) app's token.
    pub async fn miniprogram_jscode2session(
        &self,
        js_code: &str,
    ) -> Result<WecomMiniSession, ApiError> {
        let req = Request::get(api::MINIPROGRAM_JSCODE2SESSION)
            .secret_query("js_code", js_code)
            .query("grant_type", "authorization_code");
        self.send(req).await
    }
}

pub(crate) fn to_json<T: serde::Serialize>(
    api: &'static str,
    body: &T,
) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(body).map_err(|e| ApiError::InvalidRequest {
        api,
        message: e.to_string(),
    })
}
