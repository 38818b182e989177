//! The provider guard: routes that serve a logged-in person can insist that the session came through a
//! given provider and app — "only from the WeCom self-built app `main`" — the way a business system's
//! container guard refuses a page opened outside WeCom.
//!
//! ```ignore
//! Router::new()
//!     .route("/api/v1/tenants/{tenant}/approvals", get(approvals))
//!     .route_layer(require_origin(Provider::Wecom, Some("main")))
//! ```
//!
//! The layer reads the session token from `Authorization: Bearer wxs_...` or, failing that, the
//! [`SESSION_COOKIE`] cookie, verifies it in the tenant named by the route's `{tenant}` path parameter
//! (or a fixed tenant, [`RequireOrigin::tenant`]) and then:
//! - no token: 401 `session_missing`;
//! - a token that does not verify: 401 with the verify endpoint's codes (`session_malformed`,
//!   `session_unknown`, `session_expired`, `session_revoked`, `user_not_active`);
//! - a valid session from another provider or app: 403 `session_provider_mismatch`, the same check
//!   ([`OriginRequirement`]) the verify endpoint applies to `require_provider` / `require_app`;
//! - otherwise the handler runs, and can take the session with the [`GuardedSession`] extractor.
//!
//! Use it with `route_layer` (it needs the matched route's path parameters). The layer finds the
//! [`AppState`] in the request's extensions, where [`crate::router`] puts it, or takes one explicitly
//! ([`RequireOrigin::with_state`]) for routers built elsewhere.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::identity::{Provider, Session, VerifiedSession};
use futures::future::BoxFuture;
use tower::{Layer, Service};

use crate::AppState;
use crate::WebError;
use crate::routes::directory::database;
use crate::routes::sessions::{SessionRouteError, sessions};

/// The cookie a browser session travels in (HttpOnly; set by the `/auth` login routes).
pub const SESSION_COOKIE: &str = "wxbridge_session";

/// What a route or a verify call requires of a session's origin. Empty requires nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginRequirement {
    /// The provider's text (`wecom`, `wechat_official_account`, ...; see [`Provider`]).
    pub provider: Option<String>,
    /// The app: a WeCom app name, a WeChat appid, a mini-program key.
    pub app: Option<String>,
}

impl OriginRequirement {
    pub fn new(provider: Option<Provider>, app: Option<&str>) -> OriginRequirement {
        OriginRequirement {
            provider: provider.map(|p| p.as_str().to_owned()),
            app: app.map(str::to_owned),
        }
    }

    /// Whether the session came through the required provider and app.
    pub fn allows(&self, session: &Session) -> bool {
        self.provider
            .as_deref()
            .is_none_or(|p| p == session.provider)
            && self.app.as_deref().is_none_or(|a| a == session.app)
    }

    /// Ok when [`Self::allows`]; otherwise the 403 that says where the session came from and what was
    /// required.
    pub(crate) fn check(&self, session: &Session) -> Result<(), SessionRouteError> {
        if self.allows(session) {
            return Ok(());
        }
        let required = match (&self.provider, &self.app) {
            (Some(p), Some(a)) => format!("provider `{p}` and app `{a}`"),
            (Some(p), None) => format!("provider `{p}`"),
            (None, Some(a)) => format!("app `{a}`"),
            (None, None) => String::new(),
        };
        Err(SessionRouteError::Session {
            status: StatusCode::FORBIDDEN,
            code: "session_provider_mismatch",
            message: format!(
                "the session came through provider `{}` and app `{}`, but {required} is required",
                session.provider, session.app
            ),
        })
    }
}

/// A layer that lets a request through only with a valid session from `provider` (and `app` when
/// given). See the module documentation.
pub fn require_origin(provider: Provider, app: Option<&str>) -> RequireOrigin {
    RequireOrigin {
        requirement: OriginRequirement::new(Some(provider), app),
        tenant: None,
        state: None,
    }
}

/// A layer that lets a request through with any valid session (no provider requirement).
pub fn require_session() -> RequireOrigin {
    RequireOrigin {
        requirement: OriginRequirement::default(),
        tenant: None,
        state: None,
    }
}

/// The guard layer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RequireOrigin {
    requirement: OriginRequirement,
    tenant: Option<String>,
    state: Option<AppState>,
}

impl RequireOrigin {
    /// Verify sessions in this tenant instead of the route's `{tenant}` path parameter.
    pub fn tenant(mut self, key: &str) -> Self {
        self.tenant = Some(key.to_owned());
        self
    }

    /// Use this state instead of the one [`crate::router`] puts in the request's extensions.
    pub fn with_state(mut self, state: AppState) -> Self {
        self.state = Some(state);
        self
    }

    pub fn requirement(&self) -> &OriginRequirement {
        &self.requirement
    }

    /// Find, verify and check the request's session.
    async fn authorise(&self, parts: &mut Parts) -> Result<GuardedSession, Response> {
        let state = match (&self.state, parts.extensions.get::<AppState>()) {
            (Some(s), _) | (None, Some(s)) => s.clone(),
            (None, None) => {
                return Err(WebError::Internal(
                    "require_origin: no AppState (use server::router or RequireOrigin::with_state)"
                        .into(),
                )
                .into_response());
            }
        };
        let tenant_key = match &self.tenant {
            Some(t) => t.clone(),
            None => {
                let params = RawPathParams::from_request_parts(parts, &())
                    .await
                    .map_err(IntoResponse::into_response)?;
                let found = params
                    .iter()
                    .find(|(k, _)| *k == "tenant")
                    .map(|(_, v)| v.to_owned());
                found.ok_or_else(|| {
                    WebError::Internal(
                        "require_origin: the route has no {tenant} parameter and no fixed tenant"
                            .into(),
                    )
                    .into_response()
                })?
            }
        };
        let tenant = state
            .tenants
            .get(&tenant_key)
            .ok_or_else(|| WebError::TenantNotFound(tenant_key.clone()).into_response())?;
        tracing::Span::current().record("tenant.key", tenant.key());
        let Some(token) = session_token(&parts.headers) else {
            return Err(SessionRouteError::Session {
                status: StatusCode::UNAUTHORIZED,
                code: "session_missing",
                message: format!(
                    "no session: log in first (send `Authorization: Bearer wxs_...` or the `{SESSION_COOKIE}` cookie)"
                ),
            }
            .into_response());
        };
        let db = database(&state).map_err(IntoResponse::into_response)?;
        let verified = sessions(&state, db)
            .verify(tenant.key(), &token)
            .await
            .map_err(|e| SessionRouteError::from(e).into_response())?;
        self.requirement
            .check(&verified.session)
            .map_err(IntoResponse::into_response)?;
        Ok(GuardedSession {
            tenant: tenant.key().to_owned(),
            verified: Arc::new(verified),
        })
    }
}

/// The session token of a request: a `wxs_` bearer token, else the session cookie. An API key
/// (`Bearer wxb_...`) is not a session and is passed over, and so is an empty cookie (no session, not
/// a malformed one).
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    let bearer = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split_once(' '))
        .find(|(scheme, rest)| {
            scheme.eq_ignore_ascii_case("bearer")
                && rest.trim().starts_with(domain::identity::TOKEN_PREFIX)
        })
        .map(|(_, rest)| rest.trim().to_owned());
    bearer.or_else(|| crate::admin_auth::cookie(headers, SESSION_COOKIE))
}

impl<S> Layer<S> for RequireOrigin {
    type Service = RequireOriginService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireOriginService {
            inner,
            guard: self.clone(),
        }
    }
}

/// The service [`RequireOrigin`] wraps a route in.
#[derive(Debug, Clone)]
pub struct RequireOriginService<S> {
    inner: S,
    guard: RequireOrigin,
}

impl<S> Service<Request> for RequireOriginService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // The clone that was polled ready serves this request; a fresh clone stays for the next one.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let guard = self.guard.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            match guard.authorise(&mut parts).await {
                Ok(session) => {
                    parts.extensions.insert(session);
                    inner.call(Request::from_parts(parts, body)).await
                }
                Err(refused) => Ok(refused),
            }
        })
    }
}

/// The session a guarded request came with: take it as a handler argument behind [`require_origin`].
#[derive(Debug, Clone)]
pub struct GuardedSession {
    pub tenant: String,
    pub verified: Arc<VerifiedSession>,
}

impl GuardedSession {
    pub fn session(&self) -> &Session {
        &self.verified.session
    }

    pub fn user(&self) -> &domain::User {
        &self.verified.user
    }
}

impl<S: Send + Sync> FromRequestParts<S> for GuardedSession {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<GuardedSession>()
            .cloned()
            .ok_or_else(|| {
                WebError::Internal("GuardedSession used on a route without require_origin".into())
            })
    }
}
