//! JS-SDK configuration and the web SDK:
//!
//! - `GET /api/v1/tenants/{tenant}/jssdk/config?url=&app=[&provider=wecom|wechat]` answers the
//!   `wx.config` parameters for the page (and `wx.agentConfig`'s for a WeCom app), signed for `url`
//!   without its fragment once its host is one of the app's `js_safe_domains`
//!   ([`domain::identity::jssdk`]). It is public — pages call it from the browser — and answers CORS for
//!   origins among the app's JS-safe domains. Nothing secret is in the answer: a signature is only good
//!   for that URL, and the tickets never leave the bridge.
//! - `GET /sdk/wxbridge-web.js`: the loader pages include (detects WeCom / WeChat, fetches the config,
//!   calls `wx.config` / `wx.agentConfig`, offers `wxbridge.ready()` and `wxbridge.login()`), compiled
//!   into the binary, with `Cache-Control` and an `ETag`.
//! - `GET /sdk/demo.html` (+ `/sdk/demo.js`): a page that uses it.

use std::sync::LazyLock;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::identity::jssdk::{self, JsApp, JsProvider, JssdkConfig, JssdkError};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::{ErrorBody, ErrorDetail, WebError};
use crate::routes::directory::bad_query;

/// The query of the config route.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JssdkConfigQuery {
    /// The page URL exactly as the page reports it (`location.href`); a `#fragment` is dropped
    /// before signing.
    #[param(required = true)]
    pub url: Option<String>,
    /// The app's local name: a WeCom app (`wecom.apps.<name>`) or an official account
    /// (`wechat.official_accounts.<name>`).
    #[param(required = true)]
    pub app: Option<String>,
    /// `wecom` or `wechat`; needed only when a WeCom app and an official account share the name.
    pub provider: Option<String>,
}

/// A failure of the config route.
#[derive(Debug)]
pub enum JssdkRouteError {
    Web(WebError),
    Jssdk(JssdkError),
}

impl From<WebError> for JssdkRouteError {
    fn from(e: WebError) -> Self {
        JssdkRouteError::Web(e)
    }
}

impl From<JssdkError> for JssdkRouteError {
    fn from(e: JssdkError) -> Self {
        JssdkRouteError::Jssdk(e)
    }
}

impl IntoResponse for JssdkRouteError {
    fn into_response(self) -> Response {
        let e = match self {
            JssdkRouteError::Web(e) => return e.into_response(),
            JssdkRouteError::Jssdk(e) => e,
        };
        let (status, code) = match &e {
            JssdkError::UnknownApp { .. } => (StatusCode::NOT_FOUND, "app_not_found"),
            JssdkError::AmbiguousApp { .. } => (StatusCode::BAD_REQUEST, "app_ambiguous"),
            JssdkError::BadUrl { .. } => (StatusCode::BAD_REQUEST, "bad_url"),
            JssdkError::HostNotAllowed { .. } => (StatusCode::BAD_REQUEST, "url_not_allowed"),
            JssdkError::Ticket { .. } => (StatusCode::BAD_GATEWAY, "upstream_error"),
        };
        if status == StatusCode::BAD_GATEWAY {
            tracing::warn!(error = %e, "JS-SDK ticket fetch failed");
        }
        (
            status,
            Json(ErrorBody {
                error: ErrorDetail {
                    code: code.to_owned(),
                    message: e.to_string(),
                    run_id: None,
                },
            }),
        )
            .into_response()
    }
}

/// The `wx.config` (and for WeCom `wx.agentConfig`) parameters for a page.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/jssdk/config", tag = "jssdk",
    operation_id = "jssdk_config",
    params(("tenant" = String, Path, description = "Tenant key"), JssdkConfigQuery),
    responses(
        (status = 200, description = "Signed for `url` without its fragment; spread `config` into wx.config \
            and `agent_config` into wx.agentConfig, adding jsApiList", body = JssdkConfig),
        (status = 400, description = "`bad_request` (url or app missing), `bad_url`, `url_not_allowed` \
            (the host is not among the app's js_safe_domains; the message names both), `app_ambiguous`",
            body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant (`tenant_not_found`) or app (`app_not_found`)",
            body = crate::error::ErrorBody),
        (status = 502, description = "`upstream_error`: a ticket could not be fetched", body = crate::error::ErrorBody),
    ))]
pub async fn config(
    State(state): State<AppState>,
    Path(tenant_key): Path<String>,
    headers: HeaderMap,
    query: Result<Query<JssdkConfigQuery>, QueryRejection>,
) -> Response {
    let mut cors = None;
    let result = config_inner(&state, &tenant_key, &headers, query, &mut cors).await;
    let mut resp = match result {
        Ok(c) => Json(c).into_response(),
        Err(e) => e.into_response(),
    };
    let h = resp.headers_mut();
    // Every answer carries a fresh nonce and timestamp.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = cors {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    resp
}

async fn config_inner(
    state: &AppState,
    tenant_key: &str,
    headers: &HeaderMap,
    query: Result<Query<JssdkConfigQuery>, QueryRejection>,
    cors: &mut Option<HeaderValue>,
) -> Result<JssdkConfig, JssdkRouteError> {
    let tenant = state
        .tenants
        .get(tenant_key)
        .ok_or_else(|| WebError::TenantNotFound(tenant_key.to_owned()))?;
    tracing::Span::current().record("tenant.key", tenant.key());
    let Query(q) = query.map_err(bad_query)?;
    let provider = match q.provider.as_deref() {
        None | Some("") => None,
        Some(p) => Some(JsProvider::parse(p).ok_or_else(|| {
            WebError::BadRequest(format!(
                "provider must be `wecom` or `wechat`, not `{}`",
                crate::routes::directory::shown(p)
            ))
        })?),
    };
    let app_name = q.app.filter(|a| !a.is_empty()).ok_or_else(|| {
        WebError::BadRequest("`app` is required (a WeCom app or official account name)".into())
    })?;
    let url = q.url.filter(|u| !u.is_empty()).ok_or_else(|| {
        WebError::BadRequest("`url` is required (the page's location.href)".into())
    })?;
    let app = JsApp::resolve(tenant, &app_name, provider)?;
    // Let the page read the answer (errors too) when it is served from one of the app's domains.
    *cors = allowed_origin(&app, headers);
    let now_ms = state.tenants.tokens().clock().now_ms();
    Ok(jssdk::config_for_page(tenant, &app.name, Some(app.provider), &url, now_ms).await?)
}

fn allowed_origin(app: &JsApp, headers: &HeaderMap) -> Option<HeaderValue> {
    let origin = headers.get(header::ORIGIN)?;
    let text = origin.to_str().ok()?;
    app.origin_allowed(text).then(|| origin.clone())
}

/// CORS preflight of the config route. The SDK sends a simple GET (no preflight); this answers
/// clients that add headers. Only GET is allowed, from the app's JS-safe origins.
pub async fn config_preflight(
    State(state): State<AppState>,
    Path(tenant_key): Path<String>,
    headers: HeaderMap,
    query: Result<Query<JssdkConfigQuery>, QueryRejection>,
) -> Response {
    let origin = state.tenants.get(&tenant_key).and_then(|tenant| {
        let q = query.ok()?.0;
        let provider = q.provider.as_deref().and_then(JsProvider::parse);
        let app = JsApp::resolve(tenant, q.app.as_deref()?, provider).ok()?;
        allowed_origin(&app, &headers)
    });
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
    }
    resp
}

// ---------------------------------------------------------------------------------------------------------
// The web SDK and its demo, compiled in.

const WEB_JS: &str = include_str!("../../assets/wxbridge-web.js");
const DEMO_HTML: &str = include_str!("../../assets/demo.html");
const DEMO_JS: &str = include_str!("../../assets/demo.js");

/// Browsers and CDNs may reuse the SDK for five minutes, then revalidate with the ETag (a new release
/// of the bridge reaches pages within that time).
const CACHE: &str = "public, max-age=300";
/// The demo may load the loader and jweixin and call the bridge; nothing else.
const DEMO_CSP: &str = "default-src 'none'; script-src 'self' https://res.wx.qq.com https://open.work.weixin.qq.com; \
    connect-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

fn etag(body: &str) -> HeaderValue {
    let digest = Sha256::digest(body.as_bytes());
    HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..16])))
        .unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

static WEB_JS_ETAG: LazyLock<HeaderValue> = LazyLock::new(|| etag(WEB_JS));
static DEMO_HTML_ETAG: LazyLock<HeaderValue> = LazyLock::new(|| etag(DEMO_HTML));
static DEMO_JS_ETAG: LazyLock<HeaderValue> = LazyLock::new(|| etag(DEMO_JS));

fn asset(
    headers: &HeaderMap,
    body: &'static str,
    tag: &HeaderValue,
    content_type: &'static str,
) -> Response {
    let fresh = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == tag.to_str().unwrap_or_default()
        });
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = body.into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        r
    };
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(CACHE));
    h.insert(header::ETAG, tag.clone());
    resp
}

/// `GET /sdk/wxbridge-web.js`.
pub async fn web_js(headers: HeaderMap) -> Response {
    let mut resp = asset(
        &headers,
        WEB_JS,
        &WEB_JS_ETAG,
        "text/javascript; charset=utf-8",
    );
    // Pages on other origins include it with <script src>.
    resp.headers_mut().insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("cross-origin"),
    );
    resp
}

/// `GET /sdk/demo.html`.
pub async fn demo_html(headers: HeaderMap) -> Response {
    let mut resp = asset(
        &headers,
        DEMO_HTML,
        &DEMO_HTML_ETAG,
        "text/html; charset=utf-8",
    );
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DEMO_CSP),
    );
    resp
}

/// `GET /sdk/demo.js`.
pub async fn demo_js(headers: HeaderMap) -> Response {
    asset(
        &headers,
        DEMO_JS,
        &DEMO_JS_ETAG,
        "text/javascript; charset=utf-8",
    )
}
