//! Operator sessions for the admin UI on the HTTP side: the `wxbridge_admin` cookie, the CSRF rule, and
//! how the tenant API (`/api/v1/tenants/{t}/...`, normally API-key only) also admits an operator.
//!
//! - The cookie holds a `wxas_` token (HttpOnly, SameSite=Strict, Path=/, Secure when the public URL is
//!   https); [`domain::admin::Admin`] keeps only its hash, with the operator's scope and CSRF token.
//! - CSRF rule: a request authenticated by the cookie whose method is not GET/HEAD/OPTIONS must carry
//!   `X-CSRF-Token` equal to the session's token, and an `Origin` header, when present, must be the bridge's
//!   own origin (its public URL, or the `Host` it was reached at). Otherwise 403 `csrf_failed`.
//! - The tenant API: [`admin_api_context`] (a layer on every request) resolves the cookie for requests to
//!   `/api/v1/tenants/` that carry no API key and makes the outcome visible to
//!   [`crate::auth::authorised_tenant`] through a task-local, so the existing handlers accept an operator
//!   whose scope covers the tenant without changing their signatures. A client cannot set that task-local:
//!   only this layer does. Requests with an API key never look at the cookie.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use domain::admin::{Admin, AdminError, AdminSession, csrf_matches};
use wx_api::clock::SystemClock;

use crate::{AppState, WebError};

/// The operator session cookie.
pub const ADMIN_COOKIE: &str = "wxbridge_admin";
/// The header a cookie-authenticated non-GET request echoes the session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// What the admin layer found for a tenant API request.
#[derive(Debug, Clone)]
pub(crate) enum AdminContext {
    /// A valid operator session that passed the CSRF rule.
    Session(AdminSession),
    /// The cookie was there but the request fails (expired session, CSRF): this error is the answer
    /// unless an API key authorises the request.
    Refused {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
}

tokio::task_local! {
    static ADMIN_CONTEXT: AdminContext;
}

/// The operator service over the state's database.
pub(crate) fn admin(state: &AppState) -> Result<Admin, WebError> {
    let db = crate::routes::directory::database(state)?;
    Ok(Admin::new(db.clone(), Arc::new(SystemClock)))
}

/// The value of the request's cookie `name` (unquoted), if it has a non-empty one.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.trim().trim_matches('"').to_owned())
        .filter(|v| !v.is_empty())
}

/// The admin cookie's value, if the request has one.
pub(crate) fn admin_cookie(headers: &HeaderMap) -> Option<String> {
    cookie(headers, ADMIN_COOKIE)
}

/// The `Set-Cookie` value that stores `token` (or, with `None`, clears the cookie).
pub(crate) fn set_cookie(state: &AppState, token: Option<&str>) -> Option<HeaderValue> {
    let secure = if state.config.server.public_url.scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    let (value, max_age) = match token {
        Some(t) => (t, domain::admin::SESSION_TTL.as_secs()),
        None => ("", 0),
    };
    HeaderValue::from_str(&format!(
        "{ADMIN_COOKIE}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict{secure}"
    ))
    .ok()
}

pub(crate) fn session_required(message: impl Into<String>) -> WebError {
    WebError::Coded {
        status: StatusCode::UNAUTHORIZED,
        code: "admin_session_required",
        message: message.into(),
    }
}

fn csrf_failed(message: &str) -> WebError {
    WebError::Coded {
        status: StatusCode::FORBIDDEN,
        code: "csrf_failed",
        message: message.to_owned(),
    }
}

/// Whether the method changes state (and so falls under the CSRF rule).
pub(crate) fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Refuse a request whose `Origin` is not the bridge's own: its public URL's origin or the origin of
/// the `Host` it was reached at (same scheme as the public URL). No `Origin` header passes (older
/// browsers, non-browser clients); the CSRF token still has to match.
pub(crate) fn check_origin(state: &AppState, headers: &HeaderMap) -> Result<(), WebError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("").trim_end_matches('/');
    let public = state
        .config
        .server
        .public_url
        .origin()
        .ascii_serialization();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| format!("{}://{h}", state.config.server.public_url.scheme()));
    if origin == public || host.as_deref() == Some(origin) {
        Ok(())
    } else {
        Err(csrf_failed(
            "cross-origin request refused: the Origin header is not this bridge's origin",
        ))
    }
}

/// The request's operator session, with the CSRF rule applied for methods that change state.
/// 401 `admin_session_required` without a valid session; 403 `csrf_failed`.
pub(crate) async fn authenticate(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<AdminSession, WebError> {
    let token =
        admin_cookie(headers).ok_or_else(|| session_required("not signed in to the admin UI"))?;
    let session = admin(state)?.verify(&token).await.map_err(|e| match e {
        AdminError::Store(e) => crate::routes::directory::internal(e),
        other => session_required(other.to_string()),
    })?;
    if is_unsafe(method) {
        check_origin(state, headers)?;
        let presented = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !csrf_matches(&session.csrf, presented) {
            return Err(csrf_failed(
                "missing or wrong X-CSRF-Token header (take it from /admin/api/me)",
            ));
        }
    }
    Ok(session)
}

/// An operator session whose scope covers `tenant` (403 `admin_scope` otherwise).
pub(crate) fn check_scope(session: &AdminSession, tenant: &str) -> Result<(), WebError> {
    if session.scope.covers(tenant) {
        Ok(())
    } else {
        Err(WebError::Coded {
            status: StatusCode::FORBIDDEN,
            code: "admin_scope",
            message: format!(
                "this admin session is for tenant `{}` only, not `{tenant}`",
                session.scope
            ),
        })
    }
}

/// Layer: for tenant API requests with the admin cookie and no API key, resolve the operator (see the
/// module documentation).
pub(crate) async fn admin_api_context(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let applies = req.uri().path().starts_with("/api/v1/tenants/")
        && !has_api_key(req.headers())
        && admin_cookie(req.headers()).is_some();
    if !applies {
        return next.run(req).await;
    }
    let ctx = match authenticate(&state, req.method(), req.headers()).await {
        Ok(session) => AdminContext::Session(session),
        Err(WebError::Coded {
            status,
            code,
            message,
        }) => AdminContext::Refused {
            status,
            code,
            message,
        },
        Err(other) => {
            return axum::response::IntoResponse::into_response(other);
        }
    };
    ADMIN_CONTEXT.scope(ctx, next.run(req)).await
}

fn has_api_key(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split_once(' '))
        .any(|(scheme, rest)| {
            scheme.eq_ignore_ascii_case("bearer")
                && rest.trim().starts_with(crate::auth::API_KEY_PREFIX)
        })
}

/// For [`crate::auth::authorised_tenant`] when no API key matched: Ok when the admin layer found an
/// operator whose scope covers `tenant`; its refusal when it refused; 401 when there is no operator.
pub(crate) fn operator_for_tenant(tenant: &str) -> Result<(), WebError> {
    match ADMIN_CONTEXT.try_with(Clone::clone) {
        Ok(AdminContext::Session(session)) => check_scope(&session, tenant),
        Ok(AdminContext::Refused {
            status,
            code,
            message,
        }) => Err(WebError::Coded {
            status,
            code,
            message,
        }),
        Err(_) => Err(WebError::Unauthorized),
    }
}
