//! Browser logins under `/auth/{tenant}/...` (no API key: these are visited by people):
//!
//! - `GET /auth/{tenant}/wecom/{app}/login?return_to=…[&mode=oauth|qr][&consent=1]`: inside the WeCom
//!   client (`wxwork/` in the User-Agent) in-app OAuth (`connect/oauth2/authorize`, snsapi_base, or
//!   snsapi_privateinfo with `consent=1`), elsewhere the PC QR login (`wwlogin/sso/login`); `mode`
//!   overrides the guess. The callback (`…/callback?code&state`) exchanges the code
//!   (`auth/getuserinfo`), resolves the member through the directory links (reading an unsynced member
//!   with `user/get`), refuses disabled or left users (403 page), fills mobile/email/avatar from
//!   `auth/getuserdetail` after a consent login, opens a session and redirects to return_to.
//! - `GET /auth/{tenant}/wechat/{account}/login?return_to=…[&scope=userinfo][&mode=oauth|qr]`: inside
//!   WeChat (`MicroMessenger`) the official account's OAuth (snsapi_base, or snsapi_userinfo which also
//!   reads nickname and avatar), elsewhere the open platform's website QR login when the tenant has a
//!   website app. `account` = `website` always means the QR login. The code becomes openid/unionid
//!   (`sns/oauth2/access_token`) and a user through the account graph.
//! - `GET /auth/{tenant}/logout[?return_to=…]` revokes the cookie's session and clears the cookie.
//! - `GET /auth/{tenant}/me`: the session's user as JSON (cookie or `Authorization: Bearer wxs_…`).
//!
//! The session cookie is [`crate::guard::SESSION_COOKIE`] (what the provider guard reads): HttpOnly,
//! SameSite=Lax, Path=/, Secure when the public URL is https. A login start also sets a cookie named
//! after the state's nonce (`wxb_login_<nonce>`, Path=/auth/{tenant}/, 10 minutes); a callback without it
//! did not start in this browser (login CSRF) and is refused before the state is used. `state` handling
//! and the return_to allow-list are in [`domain::identity::oauth`]. Every refusal is an HTML page saying
//! what happened and creates nothing.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use domain::identity::oauth::{
    LoginError, LoginStates, PendingLogin, check_return_to, resolve_wecom_member,
};
use domain::identity::{
    AccountGraph, AppKind, Provider, SessionOrigin, Sessions, WechatLogin, WechatProfile,
};
use domain::{CredentialKind, Db, Tenant, UserStatus};

use wx_api::ErrCode;
use wx_api::clock::SystemClock;

use crate::AppState;
use crate::routes::sessions::{
    SessionRouteError, VerifySessionResponse, response as session_response,
};

/// A login step that ends in an HTML page instead of a redirect.
#[derive(Debug)]
pub struct LoginPage {
    status: StatusCode,
    title: &'static str,
    message: String,
}

impl LoginPage {
    fn new(status: StatusCode, title: &'static str, message: impl Into<String>) -> LoginPage {
        LoginPage {
            status,
            title,
            message: message.into(),
        }
    }
    fn bad(message: impl Into<String>) -> LoginPage {
        LoginPage::new(StatusCode::BAD_REQUEST, "Login failed", message)
    }
    fn not_found(message: impl Into<String>) -> LoginPage {
        LoginPage::new(StatusCode::NOT_FOUND, "Login not available", message)
    }
    fn internal(e: impl std::fmt::Display) -> LoginPage {
        tracing::error!(error = %e, "login failed inside the bridge");
        LoginPage::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Login failed",
            "The bridge could not complete the login. Try again later.",
        )
    }
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

impl IntoResponse for LoginPage {
    fn into_response(self) -> Response {
        let body = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
             content=\"width=device-width\"><title>{t}</title></head><body><h1>{t}</h1><p>{m}</p></body></html>",
            t = esc(self.title),
            m = esc(&self.message),
        );
        let mut resp = (self.status, Html(body)).into_response();
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}

impl From<LoginError> for LoginPage {
    fn from(e: LoginError) -> Self {
        if e.is_bad_request()
            || matches!(
                e,
                LoginError::UserNotActive { .. } | LoginError::MemberUnknown { .. }
            )
        {
            tracing::info!(error = %e, "login refused");
        }
        match &e {
            _ if e.is_bad_request() => LoginPage::bad(e.to_string()),
            LoginError::UserNotActive { status, .. } => LoginPage::new(
                StatusCode::FORBIDDEN,
                "Access refused",
                format!(
                    "Your account is {status} in this organisation, so you cannot log in. ({})",
                    e
                ),
            ),
            LoginError::MemberUnknown { .. } => {
                LoginPage::new(StatusCode::FORBIDDEN, "Access refused", e.to_string())
            }
            _ => LoginPage::internal(e),
        }
    }
}

fn db(state: &AppState) -> Result<&Db, LoginPage> {
    state.db.as_ref().ok_or_else(|| {
        LoginPage::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Login not available",
            "The bridge has no database configured.",
        )
    })
}

fn tenant<'a>(state: &'a AppState, key: &str) -> Result<&'a Arc<Tenant>, LoginPage> {
    state
        .tenants
        .get(key)
        .ok_or_else(|| LoginPage::not_found(format!("Unknown tenant `{key}`.")))
}

fn states(db: &Db) -> LoginStates {
    LoginStates::new(db.clone(), Arc::new(SystemClock))
}

fn sessions(state: &AppState, db: &Db) -> Sessions {
    crate::routes::sessions::sessions(state, db)
}

fn user_agent(headers: &HeaderMap) -> &str {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// `base` + `path` with the query pairs, and the `#wechat_redirect` the OAuth pages expect.
fn upstream_url(base: &url::Url, path: &str, pairs: &[(&str, &str)], fragment: bool) -> String {
    let mut url = base.clone();
    url.set_path(&format!("{}{path}", base.path().trim_end_matches('/')));
    url.query_pairs_mut().clear().extend_pairs(pairs);
    if fragment {
        url.set_fragment(Some("wechat_redirect"));
    }
    url.to_string()
}

fn redirect(location: &str, cookie: Option<String>) -> Response {
    let mut resp = StatusCode::FOUND.into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        h.insert(header::LOCATION, v);
    }
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert(header::SET_COOKIE, c);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn cookie(state: &AppState, value: &str, max_age_secs: u64) -> String {
    let secure = if state.config.server.public_url.scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{}={value}; Max-Age={max_age_secs}; Path=/; HttpOnly; SameSite=Lax{secure}",
        crate::guard::SESSION_COOKIE
    )
}

/// The cookie that ties a login to the browser that started it (RFC 6749 §10.12): named after the
/// state's nonce, so logins in several tabs do not overwrite each other, and sent only to this tenant's
/// `/auth` routes. A callback without it was not started in this browser (login CSRF) and is refused
/// before the state is consumed.
fn binding_cookie_name(state: &str) -> Option<String> {
    state
        .get(..32)
        .filter(|n| n.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|n| format!("wxb_login_{n}"))
}

fn binding_cookie(state: &AppState, tenant: &str, st: &str) -> Option<String> {
    let secure = if state.config.server.public_url.scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    let secs = domain::identity::oauth::STATE_TTL.as_secs();
    binding_cookie_name(st).map(|name| {
        format!("{name}=1; Max-Age={secs}; Path=/auth/{tenant}/; HttpOnly; SameSite=Lax{secure}")
    })
}

/// Refuse a callback whose browser did not start the login (no binding cookie for its state).
fn check_binding(headers: &HeaderMap, st: &str) -> Result<(), LoginPage> {
    let Some(name) = binding_cookie_name(st) else {
        // Not shaped like a state at all: the state check says so.
        return Ok(());
    };
    let present = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .any(|(k, _)| k == name);
    if present {
        Ok(())
    } else {
        Err(LoginPage::bad(
            "This login was not started in this browser (or its cookies are blocked); start the login again.",
        ))
    }
}

/// Open a session for `user_id` and redirect to `return_to` with the cookie set.
async fn finish(
    state: &AppState,
    db: &Db,
    tenant: &str,
    user_id: domain::UserId,
    origin: SessionOrigin,
    return_to: &str,
) -> Result<Response, LoginPage> {
    let sessions = sessions(state, db);
    let (token, _) = sessions
        .create(tenant, user_id, &origin)
        .await
        .map_err(LoginPage::internal)?;
    let c = cookie(state, token.expose(), sessions.config().ttl.as_secs());
    Ok(redirect(return_to, Some(c)))
}

fn param<'a>(q: &'a HashMap<String, String>, k: &str) -> Option<&'a str> {
    q.get(k).map(String::as_str).filter(|s| !s.is_empty())
}

fn bad_mode(mode: &str) -> LoginPage {
    LoginPage::bad(format!("Unknown mode `{mode}`: use `oauth` or `qr`."))
}

// ---- WeCom ----

/// Start a WeCom login.
pub async fn wecom_login(
    State(state): State<AppState>,
    Path((tenant_key, app_name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, LoginPage> {
    let t = tenant(&state, &tenant_key)?;
    let cred = t
        .credential(CredentialKind::WecomApp, &app_name)
        .ok_or_else(|| {
            LoginPage::not_found(format!(
                "Tenant `{tenant_key}` has no WeCom app `{app_name}`."
            ))
        })?;
    let return_to = check_return_to(
        &t.config.return_to_allow,
        param(&q, "return_to").unwrap_or(""),
    )
    .map_err(LoginPage::from)?;
    let in_wecom = user_agent(&headers).contains("wxwork/");
    let oauth = match param(&q, "mode") {
        None => in_wecom,
        Some("oauth") => true,
        Some("qr") => false,
        Some(m) => return Err(bad_mode(m)),
    };
    let consent = oauth && matches!(param(&q, "consent"), Some("1" | "true"));
    let flow = match (oauth, consent) {
        (true, true) => "consent",
        (true, false) => "oauth",
        _ => "qr",
    };
    let db = db(&state)?;
    let st = states(db)
        .issue(
            t.key(),
            &PendingLogin {
                provider: Provider::Wecom.as_str().to_owned(),
                app: app_name.clone(),
                return_to,
                flow: flow.to_owned(),
            },
        )
        .await
        .map_err(LoginPage::from)?;
    let callback = state
        .config
        .server
        .public_url_for(&format!("/auth/{}/wecom/{app_name}/callback", t.key()));
    let agentid = cred.agentid.map(|a| a.to_string()).unwrap_or_default();
    let up = &state.config.upstream;
    let location = if oauth {
        let scope = if consent {
            "snsapi_privateinfo"
        } else {
            "snsapi_base"
        };
        upstream_url(
            &up.oauth_base_url,
            "/connect/oauth2/authorize",
            &[
                ("appid", cred.owner.as_str()),
                ("redirect_uri", &callback),
                ("response_type", "code"),
                ("scope", scope),
                ("state", &st),
                ("agentid", &agentid),
            ],
            true,
        )
    } else {
        upstream_url(
            &up.wecom_login_base_url,
            "/wwlogin/sso/login",
            &[
                ("login_type", "CorpApp"),
                ("appid", cred.owner.as_str()),
                ("agentid", &agentid),
                ("redirect_uri", &callback),
                ("state", &st),
            ],
            false,
        )
    };
    Ok(redirect(&location, binding_cookie(&state, t.key(), &st)))
}

/// The WeCom login's callback.
pub async fn wecom_callback(
    State(state): State<AppState>,
    Path((tenant_key, app_name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, LoginPage> {
    let t = tenant(&state, &tenant_key)?;
    let app = t.wecom_app(&app_name).ok_or_else(|| {
        LoginPage::not_found(format!(
            "Tenant `{tenant_key}` has no WeCom app `{app_name}`."
        ))
    })?;
    let db = db(&state)?;
    let st = param(&q, "state").unwrap_or("");
    check_binding(&headers, st)?;
    let pending = states(db)
        .consume(t.key(), st, Provider::Wecom.as_str(), &app_name)
        .await
        .map_err(LoginPage::from)?;
    let code = param(&q, "code")
        .ok_or_else(|| LoginPage::bad("The login was cancelled (no code came back)."))?;
    let who = app.auth_getuserinfo(code).await.map_err(|e| {
        if e.errcode() == Some(ErrCode::InvalidCode) {
            LoginPage::bad(
                "The login code is invalid, expired or was already used; start the login again.",
            )
        } else {
            LoginPage::internal(e)
        }
    })?;
    let Some(userid) = who.userid.as_deref() else {
        return Err(LoginPage::new(
            StatusCode::FORBIDDEN,
            "Access refused",
            "You are not a member of this organisation.",
        ));
    };
    let clock = SystemClock;
    let user = resolve_wecom_member(db, t.key(), app, &clock, userid)
        .await
        .map_err(LoginPage::from)?;
    if pending.flow == "consent"
        && let Some(ticket) = &who.user_ticket
    {
        match app.auth_getuserdetail(ticket).await {
            Ok(d) => {
                let email = d.email.as_deref().or(d.biz_mail.as_deref());
                db.fill_user_contact(
                    t.key(),
                    user.id,
                    d.mobile.as_deref(),
                    email,
                    d.avatar.as_deref(),
                    wx_api::clock::Clock::now_ms(&clock),
                )
                .await
                .map_err(LoginPage::internal)?;
            }
            // The login itself succeeded; the extra fields are a bonus.
            Err(e) => tracing::warn!(error = %e, "auth/getuserdetail failed; login continues"),
        }
    }
    let origin = SessionOrigin {
        provider: Provider::Wecom,
        app: app_name,
        identity: None,
    };
    finish(&state, db, t.key(), user.id, origin, &pending.return_to).await
}

// ---- WeChat ----

const WEBSITE: &str = "website";

/// Start a WeChat login (official-account OAuth or website QR).
pub async fn wechat_login(
    State(state): State<AppState>,
    Path((tenant_key, account)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, LoginPage> {
    let t = tenant(&state, &tenant_key)?;
    let in_wechat = user_agent(&headers).contains("MicroMessenger");
    let has_website = t.credential(CredentialKind::Website, WEBSITE).is_some();
    let oauth = if account == WEBSITE {
        false
    } else {
        match param(&q, "mode") {
            None => in_wechat || !has_website,
            Some("oauth") => true,
            Some("qr") => false,
            Some(m) => return Err(bad_mode(m)),
        }
    };
    let (kind, key) = if oauth {
        (CredentialKind::OfficialAccount, account.as_str())
    } else {
        (CredentialKind::Website, WEBSITE)
    };
    let cred = t.credential(kind, key).ok_or_else(|| {
        LoginPage::not_found(if oauth {
            format!("Tenant `{tenant_key}` has no official account `{account}`.")
        } else {
            format!("Tenant `{tenant_key}` has no website app for QR login.")
        })
    })?;
    let return_to = check_return_to(
        &t.config.return_to_allow,
        param(&q, "return_to").unwrap_or(""),
    )
    .map_err(LoginPage::from)?;
    let (provider, flow, scope) = if !oauth {
        (Provider::WechatWebsite, "login", "snsapi_login")
    } else if param(&q, "scope") == Some("userinfo") {
        (
            Provider::WechatOfficialAccount,
            "userinfo",
            "snsapi_userinfo",
        )
    } else {
        (Provider::WechatOfficialAccount, "base", "snsapi_base")
    };
    let db = db(&state)?;
    let st = states(db)
        .issue(
            t.key(),
            &PendingLogin {
                provider: provider.as_str().to_owned(),
                app: key.to_owned(),
                return_to,
                flow: flow.to_owned(),
            },
        )
        .await
        .map_err(LoginPage::from)?;
    let callback = state
        .config
        .server
        .public_url_for(&format!("/auth/{}/wechat/{key}/callback", t.key()));
    let path = if oauth {
        "/connect/oauth2/authorize"
    } else {
        "/connect/qrconnect"
    };
    let location = upstream_url(
        &state.config.upstream.oauth_base_url,
        path,
        &[
            ("appid", cred.owner.as_str()),
            ("redirect_uri", &callback),
            ("response_type", "code"),
            ("scope", scope),
            ("state", &st),
        ],
        true,
    );
    Ok(redirect(&location, binding_cookie(&state, t.key(), &st)))
}

/// The WeChat login's callback.
pub async fn wechat_callback(
    State(state): State<AppState>,
    Path((tenant_key, account)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, LoginPage> {
    let t = tenant(&state, &tenant_key)?;
    let (kind, provider, app_kind) = if account == WEBSITE {
        (
            CredentialKind::Website,
            Provider::WechatWebsite,
            AppKind::Website,
        )
    } else {
        (
            CredentialKind::OfficialAccount,
            Provider::WechatOfficialAccount,
            AppKind::OfficialAccount,
        )
    };
    let cred = t.credential(kind, &account).ok_or_else(|| {
        LoginPage::not_found(format!(
            "Tenant `{tenant_key}` has no WeChat app `{account}`."
        ))
    })?;
    let api = cred
        .wechat()
        .ok_or_else(|| LoginPage::internal("a WeChat credential without a WeChat API handle"))?;
    let db = db(&state)?;
    let st = param(&q, "state").unwrap_or("");
    check_binding(&headers, st)?;
    let pending = states(db)
        .consume(t.key(), st, provider.as_str(), &account)
        .await
        .map_err(LoginPage::from)?;
    let code = param(&q, "code")
        .ok_or_else(|| LoginPage::bad("The login was cancelled (no code came back)."))?;
    let web = api.oauth_access_token(code).await.map_err(|e| {
        if e.errcode() == Some(ErrCode::InvalidCode) {
            LoginPage::bad(
                "The login code is invalid, expired or was already used; start the login again.",
            )
        } else {
            LoginPage::internal(e)
        }
    })?;
    let mut login = WechatLogin {
        appid: cred.owner.clone(),
        app_kind,
        openid: web.openid.clone(),
        unionid: web.unionid.clone(),
        profile: WechatProfile::default(),
    };
    if matches!(pending.flow.as_str(), "userinfo" | "login") {
        match api.sns_userinfo(&web.access_token, &web.openid).await {
            Ok(info) => {
                login.profile = WechatProfile {
                    nickname: info.nickname,
                    avatar: info.headimgurl,
                };
                if login.unionid.is_none() {
                    login.unionid = info.unionid;
                }
            }
            Err(e) => tracing::warn!(error = %e, "sns/userinfo failed; login continues"),
        }
    }
    let graph = AccountGraph::new(db.clone(), Arc::new(SystemClock));
    let resolved = graph
        .resolve_wechat_identity(t.key(), &login)
        .await
        .map_err(|e| match e {
            domain::identity::IdentityError::MergeConflict { .. } => {
                tracing::warn!(error = %e, "WeChat login needs an operator");
                LoginPage::new(
                    StatusCode::CONFLICT,
                    "Account needs attention",
                    "This WeChat account belongs to more than one member of the organisation; \
                     an administrator has to link it by hand before you can log in.",
                )
            }
            other => LoginPage::internal(other),
        })?;
    domain::webhooks::enqueue_domain_events_logged(
        db,
        t,
        &resolved.events,
        state.tenants.tokens().clock().now_ms(),
    )
    .await;
    let user = db
        .user(t.key(), resolved.user_id)
        .await
        .map_err(LoginPage::internal)?
        .ok_or_else(|| LoginPage::internal("the resolved user vanished"))?;
    if matches!(user.status, UserStatus::Disabled | UserStatus::Left) {
        return Err(LoginError::UserNotActive {
            user_id: user.id.get(),
            status: user.status,
        }
        .into());
    }
    let origin = SessionOrigin {
        provider,
        app: cred.owner.clone(),
        identity: Some(resolved.identity.id),
    };
    finish(&state, db, t.key(), user.id, origin, &pending.return_to).await
}

// ---- session: logout, me ----

/// Log out: revoke the session and clear the cookie; then go to return_to (allow-listed) or show a page.
pub async fn logout(
    State(state): State<AppState>,
    Path(tenant_key): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, LoginPage> {
    let t = tenant(&state, &tenant_key)?;
    let db = db(&state)?;
    if let Some(token) = crate::guard::session_token(&headers) {
        match sessions(&state, db).revoke(t.key(), &token).await {
            Ok(_) | Err(domain::identity::IdentityError::SessionMalformed) => {}
            Err(e) => return Err(LoginPage::internal(e)),
        }
    }
    let clear = cookie(&state, "", 0);
    match param(&q, "return_to") {
        Some(rt) => {
            let to = check_return_to(&t.config.return_to_allow, rt).map_err(LoginPage::from)?;
            Ok(redirect(&to, Some(clear)))
        }
        None => {
            let mut resp =
                LoginPage::new(StatusCode::OK, "Logged out", "You are logged out.").into_response();
            if let Ok(v) = HeaderValue::from_str(&clear) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            Ok(resp)
        }
    }
}

/// The signed-in user, for web pages: the session cookie (or a bearer session token) -> the same JSON
/// as `POST .../sessions/verify`. 401 with a `session_*` code when there is no valid session.
#[utoipa::path(get, path = "/auth/{tenant}/me", tag = "sessions",
    params(("tenant" = String, Path, description = "Tenant key")),
    responses(
        (status = 200, description = "The session's user", body = VerifySessionResponse),
        (status = 401, description = "No valid session: `session_malformed`, `session_unknown`, \
            `session_expired`, `session_revoked`, `user_not_active`", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant", body = crate::error::ErrorBody),
    ))]
pub async fn me(
    State(state): State<AppState>,
    Path(tenant_key): Path<String>,
    headers: HeaderMap,
) -> Result<Json<VerifySessionResponse>, SessionRouteError> {
    let t = state
        .tenants
        .get(&tenant_key)
        .ok_or_else(|| crate::WebError::TenantNotFound(tenant_key.clone()))?;
    let db = crate::routes::directory::database(&state)?;
    let token = crate::guard::session_token(&headers).unwrap_or_default();
    let verified = sessions(&state, db).verify(t.key(), &token).await?;
    Ok(Json(session_response(db, t.key(), verified).await?))
}

/// The `/auth/{tenant}/...` routes.
pub(crate) fn routes() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/auth/{tenant}/wecom/{app}/login", get(wecom_login))
        .route("/auth/{tenant}/wecom/{app}/callback", get(wecom_callback))
        .route("/auth/{tenant}/wechat/{account}/login", get(wechat_login))
        .route(
            "/auth/{tenant}/wechat/{account}/callback",
            get(wechat_callback),
        )
        .route("/auth/{tenant}/logout", get(logout))
        .route("/auth/{tenant}/me", get(me))
}
