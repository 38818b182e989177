//! The WeChat client (official accounts, mini programs, open-platform website apps): a `WechatClient` per base
//! URL and a `WechatApp` handle per appid. The base token comes from `cgi-bin/stable_token` by default, which
//! never invalidates a token another holder uses; classic `cgi-bin/token` is a switch away.

pub mod types;

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::error::ApiError;
use crate::http::{RateLimits, Request, RetryPolicy, Scope, Transport, lifetime};
use crate::token::{CachedToken, FetchedToken, TokenKey, TokenKind, TokenManager};
use crate::wecom::to_json;
use crate::wecom::types::{AccessTokenBody, TicketBody};
use types::*;

/// The real WeChat API host.
pub const DEFAULT_BASE_URL: &str = "https://api.weixin.qq.com";

pub mod api {
    //! API paths; each is also the scope of a 45009 block window.
    pub const TOKEN: &str = "/cgi-bin/token";
    pub const STABLE_TOKEN: &str = "/cgi-bin/stable_token";
    pub const GETTICKET: &str = "/cgi-bin/ticket/getticket";
    pub const SNS_OAUTH2_ACCESS_TOKEN: &str = "/sns/oauth2/access_token";
    pub const SNS_USERINFO: &str = "/sns/userinfo";
    pub const SNS_JSCODE2SESSION: &str = "/sns/jscode2session";
    pub const USER_INFO: &str = "/cgi-bin/user/info";
    pub const USER_GET: &str = "/cgi-bin/user/get";
    pub const USER_INFO_BATCHGET: &str = "/cgi-bin/user/info/batchget";
    pub const GET_USER_PHONE_NUMBER: &str = "/wxa/business/getuserphonenumber";
    pub const MESSAGE_TEMPLATE_SEND: &str = "/cgi-bin/message/template/send";
    pub const MESSAGE_SUBSCRIBE_SEND: &str = "/cgi-bin/message/subscribe/send";
}

/// Which endpoint issues the base access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenEndpoint {
    /// `POST cgi-bin/stable_token` (force_refresh false): replicas and other tools holding the same
    /// account's token do not invalidate each other.
    #[default]
    Stable,
    /// `GET cgi-bin/token`: each call invalidates the previous token (after a 5-minute overlap).
    Classic,
}

/// A WeChat API endpoint (the real one or a simulator).
#[derive(Debug, Clone)]
pub struct WechatClient {
    transport: Transport,
    token_endpoint: TokenEndpoint,
}

/// One official account, mini program or website app.
#[derive(Debug, Clone)]
pub struct WechatCredentials {
    pub tenant: String,
    pub appid: String,
    pub secret: SecretString,
}

impl WechatClient {
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        tokens: Arc<TokenManager>,
    ) -> Result<Self, ApiError> {
        Ok(WechatClient {
            transport: Transport::new(http, base_url, tokens)?,
            token_endpoint: TokenEndpoint::default(),
        })
    }

    pub fn with_token_endpoint(mut self, endpoint: TokenEndpoint) -> Self {
        self.token_endpoint = endpoint;
        self
    }

    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.transport.policy = policy;
        self
    }

    pub fn rate_limits(&self) -> &Arc<RateLimits> {
        &self.transport.limits
    }

    pub fn tokens(&self) -> &Arc<TokenManager> {
        &self.transport.tokens
    }

    pub fn app(&self, credentials: WechatCredentials) -> WechatApp {
        let key = TokenKey::new(
            credentials.tenant.clone(),
            credentials.appid.clone(),
            &credentials.secret,
            TokenKind::WechatAccessToken,
        );
        WechatApp {
            transport: self.transport.clone(),
            token_endpoint: self.token_endpoint,
            credentials,
            key,
        }
    }
}

/// Typed calls for one appid. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WechatApp {
    transport: Transport,
    token_endpoint: TokenEndpoint,
    credentials: WechatCredentials,
    key: TokenKey,
}

impl WechatApp {
    pub fn credentials(&self) -> &WechatCredentials {
        &self.credentials
    }

    pub fn token_key(&self) -> &TokenKey {
        &self.key
    }

    fn scope(&self) -> Scope<'_> {
        Scope {
            tenant: &self.credentials.tenant,
            owner: &self.credentials.appid,
        }
    }

    /// How long calls to `api` (a path from [`api`]) stay blocked after a 45009, if they are.
    pub fn blocked_for(&self, api: &str) -> Option<Duration> {
        self.transport.blocked_for(self.scope(), api)
    }

    /// The base access token (cached; refreshed once for all callers when due).
    pub async fn access_token(&self) -> Result<CachedToken, ApiError> {
        self.transport
            .tokens
            .get_or_refresh(&self.key, || self.fetch_access_token())
            .await
    }

    async fn fetch_access_token(&self) -> Result<FetchedToken, ApiError> {
        let secret = self.credentials.secret.expose_secret();
        let appid = self.credentials.appid.as_str();
        let body: AccessTokenBody = match self.token_endpoint {
            TokenEndpoint::Stable => {
                let json = to_json(
                    api::STABLE_TOKEN,
                    &StableTokenRequest {
                        grant_type: "client_credential",
                        appid,
                        secret,
                        force_refresh: false,
                    },
                )?;
                self.transport
                    .call(
                        self.scope(),
                        &Request::post(api::STABLE_TOKEN, json).scrub(secret),
                    )
                    .await?
            }
            TokenEndpoint::Classic => {
                let req = Request::get(api::TOKEN)
                    .query("grant_type", "client_credential")
                    .query("appid", appid)
                    .secret_query("secret", secret);
                self.transport.call(self.scope(), &req).await?
            }
        };
        Ok(FetchedToken {
            value: SecretString::from(body.access_token),
            expires_in: lifetime(body.expires_in),
        })
    }

    /// The JS-SDK ticket (`type=jsapi`), cached like a token.
    pub async fn jsapi_ticket(&self) -> Result<CachedToken, ApiError> {
        let key = self.key.with_kind(TokenKind::WechatJsapiTicket);
        self.transport
            .tokens
            .get_or_refresh(&key, || self.fetch_jsapi_ticket())
            .await
    }

    async fn fetch_jsapi_ticket(&self) -> Result<FetchedToken, ApiError> {
        let body: TicketBody = self
            .send(Request::get(api::GETTICKET).query("type", "jsapi"))
            .await?;
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

    /// `sns/oauth2/access_token`: exchange an OAuth / website-login code for a web-auth token and openid.
    pub async fn oauth_access_token(&self, code: &str) -> Result<OAuthAccessToken, ApiError> {
        let req = Request::get(api::SNS_OAUTH2_ACCESS_TOKEN)
            .query("appid", self.credentials.appid.as_str())
            .secret_query("secret", self.credentials.secret.expose_secret())
            .secret_query("code", code)
            .query("grant_type", "authorization_code");
        self.transport.call(self.scope(), &req).await
    }

    /// `sns/userinfo` with a web-auth token from [`oauth_access_token`](Self::oauth_access_token).
    pub async fn sns_userinfo(
        &self,
        web_token: &SecretString,
        openid: &str,
    ) -> Result<SnsUserInfo, ApiError> {
        let req = Request::get(api::SNS_USERINFO)
            .secret_query("access_token", web_token.expose_secret())
            .query("openid", openid)
            .query("lang", "zh_CN");
        self.transport.call(self.scope(), &req).await
    }

    /// Mini program `sns/jscode2session`: openid, session key and (if bound) unionid for a `wx.login` code.
    pub async fn jscode2session(&self, js_code: &str) -> Result<MiniSession, ApiError> {
        let req = Request::get(api::SNS_JSCODE2SESSION)
            .query("appid", self.credentials.appid.as_str())
            .secret_query("secret", self.credentials.secret.expose_secret())
            .secret_query("js_code", js_code)
            .query("grant_type", "authorization_code");
        self.transport.call(self.scope(), &req).await
    }

    /// `cgi-bin/user/info`: one follower of this official account.
    pub async fn user_info(&self, openid: &str) -> Result<FollowerInfo, ApiError> {
        self.send(
            Request::get(api::USER_INFO)
                .query("openid", openid)
                .query("lang", "zh_CN"),
        )
        .await
    }

    /// `cgi-bin/user/get`: one page (up to 10,000) of this official account's follower openids, starting
    /// after `next_openid` (none: from the start). The page's `next_openid` continues; an empty page ends.
    pub async fn user_get(&self, next_openid: Option<&str>) -> Result<FollowerPage, ApiError> {
        self.send(Request::get(api::USER_GET).query("next_openid", next_openid.unwrap_or("")))
            .await
    }

    /// `cgi-bin/user/info/batchget`: up to 100 followers at once.
    pub async fn user_info_batch(&self, openids: &[&str]) -> Result<Vec<FollowerInfo>, ApiError> {
        let body = BatchGetRequest {
            user_list: openids
                .iter()
                .map(|openid| BatchGetItem {
                    openid,
                    lang: "zh_CN",
                })
                .collect(),
        };
        let body = to_json(api::USER_INFO_BATCHGET, &body)?;
        Ok(self
            .send::<BatchGetBody>(Request::post(api::USER_INFO_BATCHGET, body))
            .await?
            .user_info_list)
    }

    /// `wxa/business/getuserphonenumber`: the phone number behind a `getPhoneNumber` code.
    pub async fn get_user_phone_number(&self, code: &str) -> Result<PhoneInfo, ApiError> {
        let body = to_json(api::GET_USER_PHONE_NUMBER, &PhoneCodeRequest { code })?;
        Ok(self
            .send::<PhoneBody>(Request::post(api::GET_USER_PHONE_NUMBER, body).scrub(code))
            .await?
            .phone_info)
    }

    /// `cgi-bin/message/template/send` (official account): one template message to one follower. `body` is
    /// the documented request (`touser`, `template_id`, `url` / `miniprogram`, `data`). The msgid, if any.
    pub async fn template_send(&self, body: serde_json::Value) -> Result<Option<String>, ApiError> {
        let answer: serde_json::Value = self
            .send(Request::post(api::MESSAGE_TEMPLATE_SEND, body))
            .await?;
        Ok(match answer.get("msgid") {
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        })
    }

    /// `cgi-bin/message/subscribe/send` (mini program): one subscribe message to one user who accepted the
    /// template. `body` is the documented request (`touser`, `template_id`, `page`, `data`, ...).
    pub async fn subscribe_send(&self, body: serde_json::Value) -> Result<(), ApiError> {
        self.send::<serde_json::Value>(Request::post(api::MESSAGE_SUBSCRIBE_SEND, body))
            .await?;
        Ok(())
    }
}
