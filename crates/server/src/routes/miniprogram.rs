//! Mini-program login, `encryptedData` decryption and the phone-number code, for WeChat mini programs
//! (`[tenants.T.wechat.mini_programs.KEY]`) and mini programs opened in WeCom
//! (`[tenants.T.wecom.mini_programs.KEY]`), each addressed by its configuration key (a key present in
//! both tables means the WeChat one).
//!
//! - `POST /api/v1/tenants/{tenant}/miniprograms/{key}/login` `{"code": "..."}`: the `wx.login` /
//!   `wx.qy.login` code becomes a session token (`wxs_...`) for the mini program to send as
//!   `Authorization: Bearer` to the business backend, which checks it with `sessions/verify`.
//!   **No API key**: the mini program calls this itself (`wx.request` to the bridge's domain, listed
//!   in the mini program's request domains) or through its backend as a plain proxy. The code is the
//!   credential: single use, five minutes, bound to the mini program's appid and exchanged with the
//!   mini program's own secret, which never leaves the bridge. The session_key stays on the bridge.
//! - `POST .../miniprograms/{key}/decrypt` (bearer session token from that mini program)
//!   `{"encrypted_data", "iv", "kind": "phone" | "user_info"}`: decrypted with the stored session_key,
//!   watermark checked (the mini program's appid, for WeCom too); fills the user's mobile or profile.
//!   409 `session_key_stale` when the client's key moved on (call `wx.login` / `wx.qy.login`, log in
//!   again, retry). WeChat and WeCom mini programs (WeCom: `wx.qy.getMobile`, or
//!   `wx.qy.getEnterpriseUserInfo` as `user_info`).
//! - `POST .../miniprograms/{key}/phone` (bearer session token) `{"code"}`: the `getPhoneNumber` code
//!   exchanged through `wxa/business/getuserphonenumber`; fills the user's mobile. WeChat mini programs
//!   only: WeCom has no such exchange (400 naming the encryptedData route instead).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use domain::identity::IdentityError;
use domain::identity::miniprogram::{
    DecryptKind, Decrypted, EncryptedData, MiniLogin, MiniProgramError, MiniPrograms,
    SessionKeySealer,
};
use domain::{CredentialKind, Tenant};
use serde::{Deserialize, Serialize};
use wx_api::clock::SystemClock;
use wx_api::wechat::WechatApp;

use crate::AppState;
use crate::error::WebError;
use crate::routes::directory::{UserStatusDto, database};
use crate::routes::sessions::SessionRouteError;

/// The body of the login and phone routes.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MiniCodeRequest {
    /// The code from `wx.login` / `wx.qy.login` (login) or from `getPhoneNumber` (phone).
    pub code: String,
}

/// What `encryptedData` holds.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecryptKindDto {
    Phone,
    UserInfo,
}

/// The body of the decrypt route: what the mini program received from `getPhoneNumber` or
/// `getUserInfo`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MiniDecryptRequest {
    pub encrypted_data: String,
    pub iv: String,
    pub kind: DecryptKindDto,
}

/// The user a mini-program session belongs to.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MiniUserDto {
    pub id: i64,
    pub name: String,
    pub status: UserStatusDto,
    pub avatar: Option<String>,
}

/// A new session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MiniLoginResponse {
    /// The session token (`wxs_...`): send it as `Authorization: Bearer` to the business backend.
    pub token: String,
    /// Milliseconds since the Unix epoch.
    pub expires_at_ms: i64,
    /// `wechat_mini_program` or `wecom_mini_program`.
    pub provider: String,
    /// The mini program's key.
    pub app: String,
    pub user: MiniUserDto,
    /// The login created the user (a first WeChat login with no unionid match).
    pub created_user: bool,
    /// The WeChat openid (WeChat mini programs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub openid: Option<String>,
    /// The unionid when the mini program is bound to an open-platform account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
    /// The WeCom userid (WeCom mini programs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userid: Option<String>,
    /// Users this login merged into `user` (unionid convergence); their ids are now `user.id`.
    pub merged_users: Vec<i64>,
}

/// A phone number, now the user's mobile.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MiniPhoneResponse {
    pub user_id: i64,
    /// With the country code outside mainland China.
    pub phone_number: String,
    pub pure_phone_number: String,
    pub country_code: Option<String>,
}

/// What the decrypted data held (`openId`/`unionId` spelled `openid`/`unionid`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MiniDecryptResponse {
    pub kind: DecryptKindDto,
    /// The user after any convergence the data caused.
    pub user_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pure_phone_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub openid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    /// The WeCom userid (WeCom `user_info`, whose `name` is in `nickname`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userid: Option<String>,
    /// Users merged into `user_id` because the data revealed a unionid.
    pub merged_users: Vec<i64>,
}

fn err(status: StatusCode, code: &'static str, message: String) -> SessionRouteError {
    SessionRouteError::Session {
        status,
        code,
        message,
    }
}

fn mini_error(e: MiniProgramError) -> SessionRouteError {
    use MiniProgramError as E;
    let message = e.to_string();
    match e {
        E::InvalidCode { .. } => err(StatusCode::BAD_REQUEST, "invalid_code", message),
        E::InvalidInput { .. } => err(StatusCode::BAD_REQUEST, "bad_request", message),
        E::StaleSessionKey => err(StatusCode::CONFLICT, "session_key_stale", message),
        E::NoSessionKey => err(StatusCode::CONFLICT, "session_key_missing", message),
        E::Watermark { .. } => err(
            StatusCode::UNPROCESSABLE_ENTITY,
            "watermark_mismatch",
            message,
        ),
        E::DecryptedData { .. } => err(
            StatusCode::UNPROCESSABLE_ENTITY,
            "decrypted_data_invalid",
            message,
        ),
        E::WrongSession { .. } => err(StatusCode::FORBIDDEN, "session_provider_mismatch", message),
        E::MemberNotFound { .. } => err(StatusCode::FORBIDDEN, "member_not_found", message),
        E::MemberNotActive { .. } => err(StatusCode::FORBIDDEN, "user_not_active", message),
        E::NotAMember(_) => err(StatusCode::FORBIDDEN, "not_a_member", message),
        E::Upstream(_) | E::Directory(_) => {
            tracing::warn!(error = %message, "mini-program upstream call failed");
            err(StatusCode::BAD_GATEWAY, "upstream_error", message)
        }
        E::Identity(IdentityError::MergeConflict { .. }) => {
            err(StatusCode::CONFLICT, "merge_conflict", message)
        }
        E::Identity(i) => SessionRouteError::from(i),
        E::Seal(_) | E::Store(_) => SessionRouteError::Web(WebError::Internal(message)),
    }
}

/// One sealer per data directory, read (or created) on first use.
fn sealer(state: &AppState) -> Result<Arc<SessionKeySealer>, SessionRouteError> {
    static SEALERS: OnceLock<Mutex<HashMap<PathBuf, Arc<SessionKeySealer>>>> = OnceLock::new();
    let dir = state.config.server.data_dir.clone();
    let mut map = SEALERS
        .get_or_init(Default::default)
        .lock()
        .map_err(|_| WebError::Internal("session-key sealer cache poisoned".into()))?;
    if let Some(s) = map.get(&dir) {
        return Ok(s.clone());
    }
    let s = Arc::new(SessionKeySealer::open_or_create(&dir).map_err(mini_error)?);
    map.insert(dir, s.clone());
    Ok(s)
}

fn service(state: &AppState) -> Result<MiniPrograms, SessionRouteError> {
    let db = database(state)?;
    Ok(MiniPrograms::new(
        db.clone(),
        Arc::new(SystemClock),
        sealer(state)?,
        crate::routes::sessions::session_config(state),
    ))
}

fn tenant<'a>(state: &'a AppState, key: &str) -> Result<&'a Arc<Tenant>, WebError> {
    state
        .tenants
        .get(key)
        .ok_or_else(|| WebError::TenantNotFound(key.to_owned()))
}

/// Which mini program a key names.
enum Mini<'a> {
    Wechat { app: &'a WechatApp },
    Wecom { app_name: &'a str, appid: &'a str },
}

fn mini<'a>(tenant: &'a Tenant, key: &str) -> Result<Mini<'a>, WebError> {
    if tenant.config.wechat.mini_programs.contains_key(key) {
        let app = tenant
            .credential(CredentialKind::WechatMiniProgram, key)
            .and_then(|c| c.wechat())
            .ok_or_else(|| WebError::Internal(format!("mini program `{key}` has no API handle")))?;
        return Ok(Mini::Wechat { app });
    }
    if let Some(m) = tenant
        .config
        .wecom
        .as_ref()
        .and_then(|w| w.mini_programs.get(key))
    {
        return Ok(Mini::Wecom {
            app_name: m.app.as_str(),
            appid: m.appid.as_str(),
        });
    }
    Err(WebError::Missing(format!(
        "no mini program `{key}` in tenant `{}` (configure it under wechat.mini_programs or wecom.mini_programs)",
        tenant.key()
    )))
}

fn body<T>(payload: Result<Json<T>, JsonRejection>) -> Result<T, WebError> {
    payload
        .map(|Json(b)| b)
        .map_err(|e| WebError::BadRequest(format!("bad request body: {}", e.body_text())))
}

/// The session token of `Authorization: Bearer wxs_...`.
fn bearer(headers: &HeaderMap) -> Result<String, SessionRouteError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            err(
                StatusCode::UNAUTHORIZED,
                "session_missing",
                "send the session token from the mini-program login as `Authorization: Bearer wxs_...`"
                    .to_owned(),
            )
        })
}

/// Queue `user.merged` for the merges a login or a decryption caused (a failure is logged: the
/// merge itself is recorded either way).
async fn merged_webhooks(
    state: &AppState,
    tenant: &domain::Tenant,
    events: &[domain::identity::DomainEvent],
) {
    if let (Some(db), false) = (state.db.as_ref(), events.is_empty()) {
        let now = state.tenants.tokens().clock().now_ms();
        domain::webhooks::enqueue_domain_events_logged(db, tenant, events, now).await;
    }
}

fn login_response(login: MiniLogin, userid: Option<String>) -> MiniLoginResponse {
    let merged_users = login
        .events
        .iter()
        .map(|e| match e {
            domain::identity::DomainEvent::UserMerged(m) => m.from_user.get(),
        })
        .collect();
    MiniLoginResponse {
        token: login.token.expose().to_owned(),
        expires_at_ms: login.session.expires_at_ms,
        provider: login.session.provider,
        app: login.session.app,
        user: MiniUserDto {
            id: login.user.id.get(),
            name: login.user.name,
            status: login.user.status.into(),
            avatar: login.user.avatar,
        },
        created_user: login.created_user,
        openid: login.identity.as_ref().map(|i| i.openid.clone()),
        unionid: login.identity.and_then(|i| i.unionid),
        userid,
        merged_users,
    }
}

/// Log in with a mini program's `wx.login` / `wx.qy.login` code. No API key: the single-use code,
/// bound to the mini program, is the credential.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/miniprograms/{key}/login", tag = "miniprograms",
    params(("tenant" = String, Path, description = "Tenant key"),
           ("key" = String, Path, description = "The mini program's key under wechat.mini_programs or wecom.mini_programs")),
    request_body = MiniCodeRequest,
    responses(
        (status = 200, description = "A session for the person", body = MiniLoginResponse),
        (status = 400, description = "`invalid_code` (invalid, expired or used) or a malformed body", body = crate::error::ErrorBody),
        (status = 403, description = "WeCom: `member_not_found`, `user_not_active` (disabled or left), `not_a_member`", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant or mini program key", body = crate::error::ErrorBody),
        (status = 409, description = "`merge_conflict`: the unionid joins two WeCom-linked users", body = crate::error::ErrorBody),
        (status = 502, description = "`upstream_error`", body = crate::error::ErrorBody),
    ))]
pub async fn login(
    State(state): State<AppState>,
    Path((tenant_key, key)): Path<(String, String)>,
    payload: Result<Json<MiniCodeRequest>, JsonRejection>,
) -> Result<Json<MiniLoginResponse>, SessionRouteError> {
    let tenant = tenant(&state, &tenant_key)?;
    let which = mini(tenant, &key)?;
    let req = body(payload)?;
    let svc = service(&state)?;
    match which {
        Mini::Wechat { app } => {
            let login = svc
                .login_wechat(tenant.key(), &key, app, &req.code)
                .await
                .map_err(mini_error)?;
            for e in &login.events {
                tracing::info!(
                    tenant = tenant.key(),
                    event = e.kind(),
                    "mini-program login merged users"
                );
            }
            merged_webhooks(&state, tenant, &login.events).await;
            Ok(Json(login_response(login, None)))
        }
        Mini::Wecom { app_name, appid } => {
            let app = tenant.wecom_app(app_name).ok_or_else(|| {
                WebError::Internal(format!(
                    "WeCom mini program `{key}` names app `{app_name}`, which has no API handle"
                ))
            })?;
            let directory =
                domain::directory::options::directory_credential(tenant).and_then(|c| c.wecom());
            let login = svc
                .login_wecom(tenant.key(), &key, appid, app, directory, &req.code)
                .await
                .map_err(mini_error)?;
            let db = database(&state)?;
            let userid = db
                .wecom_links_of_user(tenant.key(), login.user.id)
                .await
                .map_err(|e| WebError::Internal(e.to_string()))?
                .into_iter()
                .next()
                .map(|l| l.userid);
            Ok(Json(login_response(login, userid)))
        }
    }
}

fn wechat_only<'a>(which: Mini<'a>, key: &str) -> Result<&'a WechatApp, SessionRouteError> {
    match which {
        Mini::Wechat { app } => Ok(app),
        Mini::Wecom { .. } => Err(err(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!(
                "`{key}` is a WeCom mini program: WeCom has no phone-number code exchange; send the encryptedData and iv of wx.qy.getMobile to POST .../miniprograms/{key}/decrypt with kind `phone` instead"
            ),
        )),
    }
}

/// Decrypt `encryptedData` (phone number or user info) with the session's stored session_key.
/// Authenticated by the mini-program session: `Authorization: Bearer wxs_...` (not an API key).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/miniprograms/{key}/decrypt", tag = "miniprograms",
    params(("tenant" = String, Path, description = "Tenant key"),
           ("key" = String, Path, description = "The mini program's key (WeChat or WeCom)")),
    request_body = MiniDecryptRequest,
    responses(
        (status = 200, description = "The decrypted values; the user's mobile or profile was filled", body = MiniDecryptResponse),
        (status = 400, description = "Malformed body or values", body = crate::error::ErrorBody),
        (status = 401, description = "`session_missing` or the session does not verify", body = crate::error::ErrorBody),
        (status = 403, description = "`session_provider_mismatch`: not a session of this mini program", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant or mini program key", body = crate::error::ErrorBody),
        (status = 409, description = "`session_key_stale` (call wx.login again) or `session_key_missing`; nothing written", body = crate::error::ErrorBody),
        (status = 422, description = "`watermark_mismatch` or `decrypted_data_invalid`", body = crate::error::ErrorBody),
    ))]
pub async fn decrypt(
    State(state): State<AppState>,
    Path((tenant_key, key)): Path<(String, String)>,
    headers: HeaderMap,
    payload: Result<Json<MiniDecryptRequest>, JsonRejection>,
) -> Result<Json<MiniDecryptResponse>, SessionRouteError> {
    let tenant = tenant(&state, &tenant_key)?;
    let which = mini(tenant, &key)?;
    let token = bearer(&headers)?;
    let req = body(payload)?;
    let kind = match req.kind {
        DecryptKindDto::Phone => DecryptKind::Phone,
        DecryptKindDto::UserInfo => DecryptKind::UserInfo,
    };
    let data = EncryptedData {
        kind,
        encrypted_data: &req.encrypted_data,
        iv: &req.iv,
    };
    let svc = service(&state)?;
    let out = match which {
        Mini::Wechat { app } => {
            svc.decrypt(tenant.key(), &key, &app.credentials().appid, &token, &data)
                .await
        }
        Mini::Wecom { appid, .. } => {
            svc.decrypt_wecom(tenant.key(), &key, appid, &token, &data)
                .await
        }
    }
    .map_err(mini_error)?;
    if let Decrypted::UserInfo { events, .. } = &out {
        merged_webhooks(&state, tenant, events).await;
    }
    Ok(Json(match out {
        Decrypted::Phone { user_id, phone } => MiniDecryptResponse {
            kind: req.kind,
            user_id: user_id.get(),
            phone_number: Some(phone.phone_number),
            pure_phone_number: Some(phone.pure_phone_number),
            country_code: phone.country_code,
            openid: None,
            unionid: None,
            nickname: None,
            avatar: None,
            userid: None,
            merged_users: Vec::new(),
        },
        Decrypted::WecomUserInfo {
            user_id,
            userid,
            name,
            ..
        } => MiniDecryptResponse {
            kind: req.kind,
            user_id: user_id.get(),
            phone_number: None,
            pure_phone_number: None,
            country_code: None,
            openid: None,
            unionid: None,
            nickname: name,
            avatar: None,
            userid: Some(userid),
            merged_users: Vec::new(),
        },
        Decrypted::UserInfo {
            user_id,
            info,
            events,
            ..
        } => MiniDecryptResponse {
            kind: req.kind,
            user_id: user_id.get(),
            phone_number: None,
            pure_phone_number: None,
            country_code: None,
            openid: Some(info.openid),
            unionid: info.unionid,
            nickname: info.nickname,
            avatar: info.avatar,
            userid: None,
            merged_users: events
                .iter()
                .map(|e| match e {
                    domain::identity::DomainEvent::UserMerged(m) => m.from_user.get(),
                })
                .collect(),
        },
    }))
}

/// Exchange a `getPhoneNumber` code for the phone number (`wxa/business/getuserphonenumber`).
/// Authenticated by the mini-program session: `Authorization: Bearer wxs_...` (not an API key).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/miniprograms/{key}/phone", tag = "miniprograms",
    params(("tenant" = String, Path, description = "Tenant key"),
           ("key" = String, Path, description = "The WeChat mini program's key")),
    request_body = MiniCodeRequest,
    responses(
        (status = 200, description = "The phone number, now the user's mobile", body = MiniPhoneResponse),
        (status = 400, description = "`invalid_code`, a malformed body, or a WeCom mini program (no code exchange: use decrypt)", body = crate::error::ErrorBody),
        (status = 401, description = "`session_missing` or the session does not verify", body = crate::error::ErrorBody),
        (status = 403, description = "`session_provider_mismatch`: not a session of this mini program", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant or mini program key", body = crate::error::ErrorBody),
        (status = 502, description = "`upstream_error`", body = crate::error::ErrorBody),
    ))]
pub async fn phone(
    State(state): State<AppState>,
    Path((tenant_key, key)): Path<(String, String)>,
    headers: HeaderMap,
    payload: Result<Json<MiniCodeRequest>, JsonRejection>,
) -> Result<Json<MiniPhoneResponse>, SessionRouteError> {
    let tenant = tenant(&state, &tenant_key)?;
    let app = wechat_only(mini(tenant, &key)?, &key)?;
    let token = bearer(&headers)?;
    let req = body(payload)?;
    let (user_id, phone) = service(&state)?
        .phone_by_code(tenant.key(), &key, app, &token, &req.code)
        .await
        .map_err(mini_error)?;
    Ok(Json(MiniPhoneResponse {
        user_id: user_id.get(),
        phone_number: phone.phone_number,
        pure_phone_number: phone.pure_phone_number,
        country_code: phone.country_code,
    }))
}

/// The mini-program routes.
pub(crate) fn routes() -> axum::Router<AppState> {
    use axum::routing::post;
    const M: &str = "/api/v1/tenants/{tenant}/miniprograms/{key}";
    axum::Router::new()
        .route(&format!("{M}/login"), post(login))
        .route(&format!("{M}/decrypt"), post(decrypt))
        .route(&format!("{M}/phone"), post(phone))
}
