//! The admin UI (`/admin/`): its static files, operator sign-in and sign-out, and the admin-only read
//! endpoints its pages need beyond the tenant API.
//!
//! - Static: `GET /admin/` (index.html), `/admin/app.js`, `/admin/app.css`, compiled into the binary;
//!   `GET /admin` redirects to `/admin/`.
//! - Sign-in (each ends in an operator session in the `wxbridge_admin` cookie, see [`crate::admin_auth`]):
//!   `POST /admin/api/login/token {token}` (the bootstrap admin token, scope every tenant);
//!   `GET /admin/login/link?token=wxl_…` (a one-time link from `wxbridge admin link` / `wxbridge demo`:
//!   used once, within 15 minutes; then a redirect to the UI, or to its sign-in page saying why not);
//!   `GET /admin/login/wecom?tenant=T` → the WeCom login (in-app OAuth inside WeCom, PC QR elsewhere) of the
//!   tenant's `[admin] app` → `GET /admin/login/wecom/done`, which opens a session scoped to that tenant
//!   only for a member the tenant's `[admin]` settings name ([`domain::admin::is_wecom_admin`]).
//! - `GET /admin/api/login/options` (public: which sign-in methods exist), `GET /admin/api/me` (operator,
//!   CSRF token, tenants in scope), `POST /admin/api/logout`.
//! - Admin-only, under `/admin/api/tenants/{t}/`: `dashboard`, `roles/tree`, `graph/identities`,
//!   `graph/merges`, `setup`, `messages` (the delivery log with each call's userids). Everything else the
//!   UI reads or writes is the tenant API (`/api/v1/tenants/{t}/…`), which admits the operator cookie
//!   (`admin_auth::admin_api_context`).
//!
//! Every response under `/admin` carries `Content-Security-Policy: default-src 'self'` (the UI loads
//! nothing from elsewhere), `X-Frame-Options: DENY` and `Referrer-Policy: no-referrer` (a sign-in link's
//! token never leaks through a Referer); API and sign-in answers are `Cache-Control: no-store`. Errors are
//! JSON with stable codes: `admin_session_required` (401), `admin_token_invalid` (401),
//! `admin_token_not_configured` (403), `csrf_failed` (403), `admin_scope` (403). Sign-ins, refusals and
//! sign-outs are logged (kind, scope, tenant, WeCom userid), never a token.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use domain::Tenant;
use domain::admin::{Admin, AdminError, AdminKind, AdminSession, TenantScope};
use domain::identity::oauth::{LoginError, LoginStates, PendingLogin, resolve_wecom_member};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use wx_api::clock::SystemClock;

use crate::admin_auth;
use crate::routes::directory::{bad_query, database, internal, limit};
use crate::{AppState, WebError};

const INDEX_HTML: &str = include_str!("../../assets/admin/index.html");
const APP_JS: &str = include_str!("../../assets/admin/app.js");
const APP_CSS: &str = include_str!("../../assets/admin/app.css");

/// The UI is one page, one script and one style sheet from this origin; it fetches only from here.
const ADMIN_CSP: &str = "default-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";
/// The provider recorded with an admin WeCom login's state (so a state from `/auth` cannot finish here).
const STATE_PROVIDER: &str = "wecom_admin";
const DAY_MS: i64 = 24 * 3600 * 1000;

pub fn routes() -> Router<AppState> {
    const T: &str = "/admin/api/tenants/{tenant}";
    Router::new()
        .route("/admin", get(|| async { redirect("/admin/", Vec::new()) }))
        .route("/admin/", get(index_html))
        .route("/admin/index.html", get(index_html))
        .route("/admin/app.js", get(app_js))
        .route("/admin/app.css", get(app_css))
        .route("/admin/api/login/options", get(login_options))
        .route("/admin/api/login/token", post(login_token))
        .route("/admin/login/link", get(login_link))
        .route("/admin/login/wecom", get(login_wecom))
        .route("/admin/login/wecom/done", get(login_wecom_done))
        .route("/admin/api/me", get(me))
        .route("/admin/api/logout", post(logout))
        .route(&format!("{T}/dashboard"), get(dashboard))
        .route(&format!("{T}/roles/tree"), get(role_tree))
        .route(&format!("{T}/graph/identities"), get(graph_identities))
        .route(&format!("{T}/graph/merges"), get(graph_merges))
        .route(&format!("{T}/setup"), get(setup))
        .route(&format!("{T}/messages"), get(messages))
        .layer(axum::middleware::from_fn(admin_headers))
}

/// The `/admin` security headers (see the module documentation).
async fn admin_headers(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let no_store = path.starts_with("/admin/api/") || path.starts_with("/admin/login/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(ADMIN_CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if no_store { "no-store" } else { "no-cache" }),
    );
    resp
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn index_html() -> Response {
    asset(INDEX_HTML, "text/html; charset=utf-8")
}

async fn app_js() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8")
}

async fn app_css() -> Response {
    asset(APP_CSS, "text/css; charset=utf-8")
}

fn redirect(location: &str, cookies: Vec<HeaderValue>) -> Response {
    let mut resp = StatusCode::FOUND.into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        h.insert(header::LOCATION, v);
    }
    for c in cookies {
        h.append(header::SET_COOKIE, c);
    }
    resp
}

/// The UI's sign-in page with a reason it explains (`app.js` REASONS).
fn to_signin(reason: &str) -> Response {
    redirect(&format!("/admin/#/signin?reason={reason}"), Vec::new())
}

fn admin(state: &AppState) -> Result<Admin, WebError> {
    admin_auth::admin(state)
}

fn store_error(e: AdminError) -> WebError {
    internal(e)
}

// ---------------------------------------------------------------------------------------------------------
// Who is signed in

#[derive(Debug, Serialize)]
struct OperatorDto {
    kind: &'static str,
    name: String,
    /// `*` or the tenant key.
    tenant_scope: String,
    user_id: Option<i64>,
    expires_at_ms: i64,
}

#[derive(Debug, Serialize)]
struct TenantDto {
    key: String,
    name: String,
    /// Members named in the tenant's `[admin]` settings can sign in through WeCom.
    wecom_login: bool,
}

#[derive(Debug, Serialize)]
struct MeResponse {
    operator: OperatorDto,
    /// Echo in `X-CSRF-Token` on every request that is not GET/HEAD.
    csrf: String,
    tenants: Vec<TenantDto>,
}

/// The WeCom app whose login signs operators in to `tenant`, when WeCom sign-in is configured.
fn admin_wecom_app(tenant: &Tenant) -> Option<String> {
    let wecom = tenant.config.wecom.as_ref()?;
    if tenant.config.admin.is_empty() {
        return None;
    }
    let app = match &tenant.config.admin.app {
        Some(a) => a.clone(),
        None => wecom.apps.keys().next()?.clone(),
    };
    tenant.wecom_app(&app).map(|_| app)
}

fn tenant_dto(t: &Tenant) -> TenantDto {
    TenantDto {
        key: t.key().to_owned(),
        name: t.config.name.clone(),
        wecom_login: admin_wecom_app(t).is_some(),
    }
}

fn me_response(state: &AppState, session: AdminSession) -> MeResponse {
    let tenants = state
        .tenants
        .iter()
        .filter(|t| session.scope.covers(t.key()))
        .map(|t| tenant_dto(t))
        .collect();
    MeResponse {
        operator: OperatorDto {
            kind: match session.kind {
                AdminKind::Token => "token",
                AdminKind::Link => "link",
                AdminKind::Wecom => "wecom",
            },
            name: session.name,
            tenant_scope: session.scope.to_string(),
            user_id: session.user_id,
            expires_at_ms: session.expires_at_ms,
        },
        csrf: session.csrf,
        tenants,
    }
}

/// The signed-in operator, their CSRF token and the tenants in their scope.
async fn me(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
) -> Result<Json<MeResponse>, WebError> {
    let session = admin_auth::authenticate(&state, &method, &headers).await?;
    Ok(Json(me_response(&state, session)))
}

#[derive(Debug, Serialize)]
struct LoginOptions {
    /// A bootstrap admin token is configured.
    token_login: bool,
    /// The tenants whose members can sign in through WeCom (only those).
    tenants: Vec<TenantDto>,
}

/// Which sign-in methods this bridge offers (public: the sign-in page needs it).
async fn login_options(State(state): State<AppState>) -> Json<LoginOptions> {
    Json(LoginOptions {
        token_login: state.config.server.admin_token_hash.is_some(),
        tenants: state
            .tenants
            .iter()
            .map(|t| tenant_dto(t))
            .filter(|t| t.wecom_login)
            .collect(),
    })
}

/// A new session's answer: the cookie and the same body as `me`.
fn signed_in(state: &AppState, token: &str, session: AdminSession) -> Response {
    let mut resp = Json(me_response(state, session)).into_response();
    if let Some(c) = admin_auth::set_cookie(state, Some(token)) {
        resp.headers_mut().insert(header::SET_COOKIE, c);
    }
    resp
}

#[derive(Debug, Deserialize)]
struct TokenLogin {
    token: String,
}

/// Sign in with the bootstrap admin token.
async fn login_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    admin_auth::check_origin(&state, &headers)?;
    let login: TokenLogin = serde_json::from_slice(&body).map_err(|e| {
        WebError::BadRequest(format!(
            "expected a JSON body {{\"token\": \"wxa_…\"}}: {e}"
        ))
    })?;
    let configured = state.config.server.admin_token_hash.as_ref();
    if configured.is_none() {
        tracing::warn!(
            admin.kind = "token",
            "admin sign-in refused: no admin token is configured"
        );
        return Err(WebError::Coded {
            status: StatusCode::FORBIDDEN,
            code: "admin_token_not_configured",
            message: AdminError::TokenNotConfigured.to_string(),
        });
    }
    if !domain::admin::admin_token_matches(&login.token, configured) {
        tracing::warn!(
            admin.kind = "token",
            "admin sign-in refused: wrong admin token"
        );
        return Err(WebError::Coded {
            status: StatusCode::UNAUTHORIZED,
            code: "admin_token_invalid",
            message: AdminError::TokenInvalid.to_string(),
        });
    }
    let (token, session) = admin(&state)?
        .sign_in(AdminKind::Token, "admin token", &TenantScope::All, None)
        .await
        .map_err(store_error)?;
    Ok(signed_in(&state, token.expose(), session))
}

/// Use a one-time sign-in link, then go to the UI (or to its sign-in page saying why not).
async fn login_link(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, WebError> {
    let admin = admin(&state)?;
    let raw = q.get("token").map(String::as_str).unwrap_or("");
    let scope = match admin.consume_link(raw).await {
        Ok(scope) => scope,
        Err(AdminError::Store(e)) => return Err(internal(e)),
        Err(e) => {
            let reason = match e {
                AdminError::LinkUsed { .. } => "link_used",
                AdminError::LinkExpired { .. } => "link_expired",
                _ => "link_invalid",
            };
            tracing::warn!(
                admin.kind = "link",
                admin.refused = reason,
                "admin sign-in refused"
            );
            return Ok(to_signin(reason));
        }
    };
    if let TenantScope::Tenant(t) = &scope
        && state.tenants.get(t).is_none()
    {
        tracing::warn!(admin.kind = "link", admin.scope = %scope, "admin sign-in refused: the link's tenant is not configured");
        return Ok(to_signin("link_invalid"));
    }
    let (token, _) = admin
        .sign_in(AdminKind::Link, "sign-in link", &scope, None)
        .await
        .map_err(store_error)?;
    let cookie = admin_auth::set_cookie(&state, Some(token.expose()));
    Ok(redirect("/admin/#/", cookie.into_iter().collect()))
}

/// Sign out: end the session and clear the cookie.
async fn logout(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let session = admin_auth::authenticate(&state, &method, &headers).await?;
    if let Some(token) = admin_auth::admin_cookie(&headers) {
        admin(&state)?.sign_out(&token).await.map_err(store_error)?;
    }
    tracing::info!(admin.kind = session.kind.as_str(), admin.scope = %session.scope, "admin signed out");
    let mut resp = Json(json!({ "signed_out": true })).into_response();
    if let Some(c) = admin_auth::set_cookie(&state, None) {
        resp.headers_mut().insert(header::SET_COOKIE, c);
    }
    Ok(resp)
}

// ---------------------------------------------------------------------------------------------------------
// WeCom sign-in

fn binding_name(state: &str) -> Option<String> {
    state
        .get(..32)
        .filter(|n| n.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|n| format!("wxb_admin_login_{n}"))
}

/// The cookie that ties an admin WeCom login to the browser that started it (login CSRF).
fn binding_cookie(state: &AppState, st: &str, max_age: u64) -> Option<HeaderValue> {
    let secure = if state.config.server.public_url.scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    let name = binding_name(st)?;
    let value = if max_age == 0 { "" } else { "1" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Max-Age={max_age}; Path=/admin/login/; HttpOnly; SameSite=Lax{secure}"
    ))
    .ok()
}

fn has_binding(headers: &HeaderMap, st: &str) -> bool {
    binding_name(st).is_some_and(|name| admin_auth::cookie(headers, &name).is_some())
}

fn param<'a>(q: &'a HashMap<String, String>, k: &str) -> &'a str {
    q.get(k).map(String::as_str).unwrap_or("")
}

/// The redirect URL the WeCom login comes back to.
fn done_url(state: &AppState, tenant: &str) -> String {
    let mut url = state.config.server.public_url.clone();
    url.set_path(&format!(
        "{}/admin/login/wecom/done",
        state.config.server.public_url.path().trim_end_matches('/')
    ));
    url.query_pairs_mut().clear().append_pair("tenant", tenant);
    url.set_fragment(None);
    url.to_string()
}

/// Start the WeCom sign-in of a tenant's operators.
async fn login_wecom(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let key = param(&q, "tenant");
    let Some(t) = state.tenants.get(key) else {
        tracing::warn!(
            admin.kind = "wecom",
            "admin WeCom sign-in for an unknown tenant"
        );
        return Ok(to_signin("wecom_failed"));
    };
    let Some(app_name) = admin_wecom_app(t) else {
        tracing::warn!(
            tenant.key = t.key(),
            "admin WeCom sign-in is not configured for this tenant"
        );
        return Ok(to_signin("wecom_failed"));
    };
    let Some(cred) = t.credential(domain::CredentialKind::WecomApp, &app_name) else {
        return Ok(to_signin("wecom_failed"));
    };
    let oauth = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.contains("wxwork/"));
    let db = database(&state)?;
    let st = LoginStates::new(db.clone(), Arc::new(SystemClock))
        .issue(
            t.key(),
            &PendingLogin {
                provider: STATE_PROVIDER.to_owned(),
                app: app_name.clone(),
                return_to: "/admin/".to_owned(),
                flow: if oauth { "oauth" } else { "qr" }.to_owned(),
            },
        )
        .await
        .map_err(internal)?;
    let callback = done_url(&state, t.key());
    let agentid = cred.agentid.map(|a| a.to_string()).unwrap_or_default();
    let up = &state.config.upstream;
    let (base, path) = if oauth {
        (&up.oauth_base_url, "/connect/oauth2/authorize")
    } else {
        (&up.wecom_login_base_url, "/wwlogin/sso/login")
    };
    let mut url = base.clone();
    url.set_path(&format!("{}{path}", base.path().trim_end_matches('/')));
    {
        let mut pairs = url.query_pairs_mut();
        pairs.clear();
        if oauth {
            pairs
                .append_pair("appid", cred.owner.as_str())
                .append_pair("redirect_uri", &callback)
                .append_pair("response_type", "code")
                .append_pair("scope", "snsapi_base")
                .append_pair("state", &st)
                .append_pair("agentid", &agentid);
        } else {
            pairs
                .append_pair("login_type", "CorpApp")
                .append_pair("appid", cred.owner.as_str())
                .append_pair("agentid", &agentid)
                .append_pair("redirect_uri", &callback)
                .append_pair("state", &st);
        }
    }
    if oauth {
        url.set_fragment(Some("wechat_redirect"));
    }
    let ttl = domain::identity::oauth::STATE_TTL.as_secs();
    Ok(redirect(
        url.as_str(),
        binding_cookie(&state, &st, ttl).into_iter().collect(),
    ))
}

/// The WeCom login came back: an operator session for a member the tenant's `[admin]` names.
async fn login_wecom_done(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let st = param(&q, "state");
    let clear = binding_cookie(&state, st, 0);
    let refuse = |reason: &str| {
        let mut resp = to_signin(reason);
        if let Some(c) = clear.clone() {
            resp.headers_mut().append(header::SET_COOKIE, c);
        }
        resp
    };
    let Some(t) = state.tenants.get(param(&q, "tenant")) else {
        return Ok(refuse("wecom_failed"));
    };
    let Some(app_name) = admin_wecom_app(t) else {
        return Ok(refuse("wecom_failed"));
    };
    let Some(app) = t.wecom_app(&app_name) else {
        return Ok(refuse("wecom_failed"));
    };
    if !has_binding(&headers, st) {
        tracing::warn!(
            tenant.key = t.key(),
            "admin WeCom sign-in refused: not started in this browser"
        );
        return Ok(refuse("wecom_failed"));
    }
    let db = database(&state)?;
    if let Err(e) = LoginStates::new(db.clone(), Arc::new(SystemClock))
        .consume(t.key(), st, STATE_PROVIDER, &app_name)
        .await
    {
        if let LoginError::Store(e) = e {
            return Err(internal(e));
        }
        tracing::warn!(tenant.key = t.key(), error = %e, "admin WeCom sign-in refused");
        return Ok(refuse("wecom_failed"));
    }
    let code = param(&q, "code");
    if code.is_empty() {
        return Ok(refuse("wecom_failed"));
    }
    let who = match app.auth_getuserinfo(code).await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(tenant.key = t.key(), error = %e, "admin WeCom sign-in: the code exchange failed");
            return Ok(refuse("wecom_failed"));
        }
    };
    let Some(userid) = who.userid.as_deref() else {
        tracing::warn!(
            tenant.key = t.key(),
            "admin WeCom sign-in refused: not a member of the corp"
        );
        return Ok(refuse("not_admin"));
    };
    let user = match resolve_wecom_member(db, t.key(), app, &SystemClock, userid).await {
        Ok(u) => u,
        Err(LoginError::Store(e)) => return Err(internal(e)),
        Err(e) => {
            tracing::warn!(tenant.key = t.key(), wecom.userid = userid, error = %e, "admin WeCom sign-in refused");
            return Ok(refuse("not_admin"));
        }
    };
    let allowed = domain::admin::is_wecom_admin(db, &t.config, &user)
        .await
        .map_err(store_error)?;
    if !allowed {
        tracing::warn!(
            tenant.key = t.key(),
            wecom.userid = userid,
            "admin WeCom sign-in refused: not named in the tenant's [admin] settings"
        );
        return Ok(refuse("not_admin"));
    }
    let name = format!("{} ({userid})", user.name);
    let (token, _) = admin(&state)?
        .sign_in(
            AdminKind::Wecom,
            &name,
            &TenantScope::Tenant(t.key().to_owned()),
            Some(user.id.get()),
        )
        .await
        .map_err(store_error)?;
    tracing::info!(
        tenant.key = t.key(),
        wecom.userid = userid,
        "admin signed in through WeCom"
    );
    let cookies = admin_auth::set_cookie(&state, Some(token.expose()))
        .into_iter()
        .chain(clear)
        .collect();
    Ok(redirect(
        &format!("/admin/#/t/{}/dashboard", t.key()),
        cookies,
    ))
}

// ---------------------------------------------------------------------------------------------------------
// Admin-only tenant pages

/// The tenant in the path, for an operator whose session covers it (the admin-only pages' extractor):
/// 401 without a session, 404 for an unknown tenant, 403 `admin_scope` for another tenant's operator.
struct OperatorTenant(Arc<Tenant>);

impl FromRequestParts<AppState> for OperatorTenant {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        let Path(tenant) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| WebError::BadRequest(e.body_text()))?;
        let session = admin_auth::authenticate(state, &parts.method, &parts.headers).await?;
        let t = state
            .tenants
            .get(&tenant)
            .ok_or_else(|| WebError::TenantNotFound(tenant.clone()))?;
        admin_auth::check_scope(&session, t.key())?;
        tracing::Span::current().record("tenant.key", t.key());
        Ok(OperatorTenant(t.clone()))
    }
}

/// `?q=&limit=` of the list pages, the limit checked against `default` and `max`.
fn search_query(
    query: Result<Query<SearchQuery>, QueryRejection>,
    default: u32,
    max: u32,
) -> Result<(String, u32), WebError> {
    let Query(q) = query.map_err(bad_query)?;
    Ok((q.q.unwrap_or_default(), limit(q.limit, default, max)?))
}

fn now_ms(state: &AppState) -> i64 {
    state.tenants.tokens().clock().now_ms()
}

/// Callback, outbox and webhook backlog, the last sync run and token health.
async fn dashboard(
    State(state): State<AppState>,
    OperatorTenant(t): OperatorTenant,
) -> Result<Json<Value>, WebError> {
    let db = database(&state)?;
    let since = now_ms(&state) - DAY_MS;
    let inbox = db
        .admin_inbox_summary(t.key(), since)
        .await
        .map_err(internal)?;
    let outbox = db
        .admin_outbox_summary(t.key(), since)
        .await
        .map_err(internal)?;
    let webhooks = if t.config.webhook.is_some() {
        let counts = db.webhook_counts(t.key()).await.map_err(internal)?;
        let count = |s: &str| -> i64 {
            counts
                .iter()
                .filter(|(status, _)| status.as_str() == s)
                .map(|(_, n)| *n)
                .sum()
        };
        json!({
            "pending": count("pending") + count("processing"),
            "delivered": count("delivered"),
            "dead": count("dead"),
        })
    } else {
        Value::Null
    };
    let last_sync = db
        .recent_sync_runs(t.key(), None, 1)
        .await
        .map_err(internal)?
        .into_iter()
        .next()
        .map(crate::routes::sync::SyncRunDto::from);
    let tokens = t.token_health(state.tenants.tokens()).await;
    Ok(Json(json!({
        "tenant": t.key(),
        "callbacks": {
            "received_24h": inbox.received_since,
            "pending": inbox.pending,
            "failed": inbox.failed,
            "dead": inbox.dead,
        },
        "outbox": {
            "sent_24h": outbox.sent_since,
            "pending": outbox.pending,
            "failed": outbox.failed,
        },
        "webhooks": webhooks,
        "last_sync": last_sync,
        "tokens": tokens,
    })))
}

/// Every role of the tenant (flat; parents by id) with its WeCom link and own member count.
async fn role_tree(
    State(state): State<AppState>,
    OperatorTenant(t): OperatorTenant,
) -> Result<Json<Value>, WebError> {
    let rows = database(&state)?
        .admin_role_tree(t.key())
        .await
        .map_err(internal)?;
    let roles: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.name,
                "parent_id": r.parent_id,
                "origin": r.origin,
                "wecom_department_id": r.wecom_department_id,
                "wecom_tag_id": r.wecom_tag_id,
                "member_count": r.member_count,
            })
        })
        .collect();
    Ok(Json(json!({ "roles": roles })))
}

#[derive(Debug, Deserialize)]
struct SearchQuery {
    q: Option<String>,
    limit: Option<u32>,
}

/// WeChat identities, newest first, optionally matching `q` (openid, unionid, nickname, user name).
async fn graph_identities(
    State(state): State<AppState>,
    OperatorTenant(t): OperatorTenant,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Json<Value>, WebError> {
    let (q, max) = search_query(query, 100, 500)?;
    let rows = database(&state)?
        .admin_search_identities(t.key(), &q, max)
        .await
        .map_err(internal)?;
    let identities: Vec<Value> = rows
        .into_iter()
        .map(|i| {
            json!({
                "id": i.id,
                "appid": i.appid,
                "app_kind": i.app_kind,
                "openid": i.openid,
                "unionid": i.unionid,
                "nickname": i.nickname,
                "user_id": i.user_id,
                "user_name": i.user_name,
                "pinned": i.pinned,
                "created_at_ms": i.created_at_ms,
            })
        })
        .collect();
    Ok(Json(json!({ "identities": identities })))
}

/// User merges, newest first.
async fn graph_merges(
    State(state): State<AppState>,
    OperatorTenant(t): OperatorTenant,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Json<Value>, WebError> {
    let (_, max) = search_query(query, 100, 500)?;
    let rows = database(&state)?
        .admin_merges(t.key(), max)
        .await
        .map_err(internal)?;
    let merges: Vec<Value> = rows
        .into_iter()
        .map(|m| {
            // The stored detail: {"identities": [ids], "sessions_moved": n}.
            let detail: Value = serde_json::from_str(&m.identities).unwrap_or(Value::Null);
            json!({
                "id": m.id,
                "from_user": m.from_user_id,
                "from_user_name": m.from_user_name,
                "into_user": m.into_user_id,
                "into_user_name": m.into_user_name,
                "reason": m.reason,
                "unionid": m.unionid,
                "actor": m.actor,
                "identities": detail.get("identities").cloned().unwrap_or_else(|| json!([])),
                "sessions_moved": detail.get("sessions_moved").cloned().unwrap_or(Value::Null),
                "at_ms": m.at_ms,
            })
        })
        .collect();
    Ok(Json(json!({ "merges": merges })))
}

/// What `wxbridge check` says about this tenant: callback URLs and domains to enter, live checks.
async fn setup(
    State(state): State<AppState>,
    OperatorTenant(t): OperatorTenant,
) -> Result<Json<Value>, WebError> {
    let mut report = domain::check::CheckReport::from_config(Vec::new(), Some(&state.config));
    report.tenants.retain(|r| r.key == t.key());
    report.run_live(&state.tenants).await;
    let Some(tr) = report.tenants.into_iter().next() else {
        return Err(WebError::TenantNotFound(t.key().to_owned()));
    };
    Ok(Json(json!({
        "tenant": tr.key,
        "callbacks": tr.callbacks,
        "domains": tr.domains,
        "items": tr.items,
        "problems": report.problems,
    })))
}

/// The delivery log: recent messages as `GET /api/v1/tenants/{t}/messages` shows them, each call with
/// the WeCom userids and department ids it was sent to.
async fn messages(
    State(state): State<AppState>,
    OperatorTenant(t): OperatorTenant,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Json<Value>, WebError> {
    let (_, max) = search_query(query, 50, 100)?;
    let db = database(&state)?;
    let rows = db
        .recent_outbox_messages(t.key(), max)
        .await
        .map_err(internal)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let id = row.id;
        let view = domain::messages::view(db, row).await.map_err(internal)?;
        let mut targets: HashMap<i64, domain::messages::CallTargets> = HashMap::new();
        for call in db.outbox_calls(id).await.map_err(internal)? {
            targets.insert(
                call.seq,
                domain::messages::call_targets(&call).map_err(internal)?,
            );
        }
        let mut v = serde_json::to_value(view).map_err(internal)?;
        if let Some(calls) = v.get_mut("calls").and_then(Value::as_array_mut) {
            for c in calls {
                let seq = c.get("seq").and_then(Value::as_i64).unwrap_or(-1);
                if let (Some(tg), Some(obj)) = (targets.get(&seq), c.as_object_mut()) {
                    let userids: Vec<&str> = tg.users.iter().map(|(u, _)| u.as_str()).collect();
                    let departments: Vec<i64> = tg.parties.iter().map(|(d, _)| *d).collect();
                    obj.insert("userids".into(), json!(userids));
                    obj.insert("department_ids".into(), json!(departments));
                }
            }
        }
        out.push(v);
    }
    Ok(Json(json!({ "messages": out })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_cookie_names_follow_the_state_nonce() {
        assert_eq!(
            binding_name(&"ab".repeat(40)).as_deref(),
            Some(format!("wxb_admin_login_{}", "ab".repeat(16)).as_str())
        );
        assert_eq!(binding_name("short"), None);
        assert_eq!(binding_name(&"zz".repeat(40)), None);
    }

    #[test]
    fn the_ui_is_compiled_in() {
        assert!(INDEX_HTML.contains("app.js"));
        assert!(APP_JS.contains("/admin/api/me"));
        assert!(!APP_CSS.is_empty());
        assert!(ADMIN_CSP.starts_with("default-src 'self'"));
    }
}
