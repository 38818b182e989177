//! Session verification for business backends:
//!
//! - `POST .../sessions/verify` with `{"token": "wxs_..."}` answers who the session belongs to (the user,
//!   their roles, their WeCom and WeChat identities) and how they logged in, or a 401 whose `code` says
//!   why not (`session_malformed`, `session_unknown`, `session_expired`, `session_revoked`,
//!   `user_not_active`). Optional `require_provider` / `require_app` refuse a session that came through
//!   another provider or app (403 `session_provider_mismatch`), so a business API can insist on, say,
//!   the WeCom self-built app.
//! - `POST .../sessions/revoke` with `{"token": "wxs_..."}` revokes it (idempotent).
//!
//! The token travels in the body, never in the path or query string: paths are logged. Both routes
//! are under `/api/v1/tenants/{tenant}` and need the tenant's API key.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::identity::{IdentityError, SessionConfig, Sessions, VerifiedSession};
use domain::{Db, UserRole};
use serde::{Deserialize, Serialize};
use wx_api::clock::SystemClock;

use crate::AppState;
use crate::auth::authorised_tenant;
use crate::error::{ErrorBody, ErrorDetail, WebError};
use crate::guard::OriginRequirement;
use crate::routes::directory::{UserStatusDto, WecomMemberDto, database, internal};

/// The body of both routes.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifySessionRequest {
    /// The session token the client presented (`wxs_` + 64 hex digits).
    pub token: String,
    /// Refuse the session unless it came through this provider: `wecom`, `wecom_mini_program`,
    /// `wechat_official_account`, `wechat_website`, `wechat_mini_program`.
    #[serde(default)]
    pub require_provider: Option<String>,
    /// Refuse the session unless it came through this app (a WeCom app name, a WeChat appid, a
    /// mini-program key).
    #[serde(default)]
    pub require_app: Option<String>,
}

/// The body of the revoke route.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeSessionRequest {
    pub token: String,
}

/// The session's own facts (never the token).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionDto {
    pub id: i64,
    /// How the person logged in.
    pub provider: String,
    /// Through which app.
    pub app: String,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub last_seen_at_ms: i64,
}

/// One of the user's roles.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionRoleDto {
    pub id: i64,
    pub name: String,
    pub is_leader: bool,
    pub is_main: bool,
}

/// A WeChat identity of the user.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WechatIdentityDto {
    pub id: i64,
    pub appid: String,
    /// `official_account`, `mini_program`, `website` or `wecom_mini_program`.
    pub app_kind: String,
    pub openid: String,
    pub unionid: Option<String>,
}

/// The user's identities on each platform.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IdentitiesDto {
    pub wecom: Vec<WecomMemberDto>,
    pub wechat: Vec<WechatIdentityDto>,
}

/// The user behind a session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionUserDto {
    pub id: i64,
    pub name: String,
    pub status: UserStatusDto,
    pub avatar: Option<String>,
    pub roles: Vec<SessionRoleDto>,
    pub identities: IdentitiesDto,
}

/// A valid session and its user.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VerifySessionResponse {
    pub user: SessionUserDto,
    pub session: SessionDto,
}

/// What revoking did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RevokeSessionResponse {
    /// False when the token was unknown or already revoked (revoking is idempotent).
    pub revoked: bool,
}

/// A failure of these routes: the usual [`WebError`]s, or a session that does not verify.
#[derive(Debug)]
pub enum SessionRouteError {
    Web(WebError),
    Session {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
}

impl From<WebError> for SessionRouteError {
    fn from(e: WebError) -> Self {
        SessionRouteError::Web(e)
    }
}

impl From<IdentityError> for SessionRouteError {
    fn from(e: IdentityError) -> Self {
        let code = match &e {
            IdentityError::SessionMalformed => "session_malformed",
            IdentityError::SessionUnknown => "session_unknown",
            IdentityError::SessionExpired { .. } => "session_expired",
            IdentityError::SessionRevoked { .. } => "session_revoked",
            IdentityError::UserNotActive { .. } => "user_not_active",
            _ => return SessionRouteError::Web(WebError::Internal(e.to_string())),
        };
        SessionRouteError::Session {
            status: StatusCode::UNAUTHORIZED,
            code,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for SessionRouteError {
    fn into_response(self) -> Response {
        match self {
            SessionRouteError::Web(e) => e.into_response(),
            SessionRouteError::Session {
                status,
                code,
                message,
            } => (
                status,
                Json(ErrorBody {
                    error: ErrorDetail {
                        code: code.to_owned(),
                        message,
                        run_id: None,
                    },
                }),
            )
                .into_response(),
        }
    }
}

/// The session lifetime and idle timeout from `[server]`, the rest at their defaults.
pub(crate) fn session_config(state: &AppState) -> SessionConfig {
    SessionConfig {
        ttl: state.config.server.session_ttl,
        idle_timeout: state.config.server.session_idle_timeout,
        ..SessionConfig::default()
    }
}

pub(crate) fn sessions(state: &AppState, db: &Db) -> Sessions {
    Sessions::new(db.clone(), Arc::new(SystemClock), session_config(state))
}

fn body<T>(payload: Result<Json<T>, JsonRejection>) -> Result<T, WebError> {
    payload
        .map(|Json(b)| b)
        .map_err(|e| WebError::BadRequest(format!("bad request body: {}", e.body_text())))
}

/// Verify a session token and return its user.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/sessions/verify", tag = "sessions",
    params(("tenant" = String, Path, description = "Tenant key")),
    request_body = VerifySessionRequest,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The session is valid", body = VerifySessionResponse),
        (status = 400, description = "Malformed body", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid API key (`unauthorized`), or the session does not verify: \
            `session_malformed`, `session_unknown`, `session_expired`, `session_revoked`, `user_not_active`",
            body = crate::error::ErrorBody),
        (status = 403, description = "`session_provider_mismatch`: valid, but not from the required provider or app",
            body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant", body = crate::error::ErrorBody),
    ))]
pub async fn verify_session(
    State(state): State<AppState>,
    Path(tenant_key): Path<String>,
    headers: HeaderMap,
    payload: Result<Json<VerifySessionRequest>, JsonRejection>,
) -> Result<Json<VerifySessionResponse>, SessionRouteError> {
    let tenant = authorised_tenant(&state, &tenant_key, &headers)?;
    let req = body(payload)?;
    let db = database(&state)?;
    let verified = sessions(&state, db)
        .verify(tenant.key(), &req.token)
        .await?;
    // The same check the route guard (crate::guard) applies.
    OriginRequirement {
        provider: req.require_provider,
        app: req.require_app,
    }
    .check(&verified.session)?;
    Ok(Json(response(db, tenant.key(), verified).await?))
}

pub(crate) async fn response(
    db: &Db,
    tenant: &str,
    verified: VerifiedSession,
) -> Result<VerifySessionResponse, WebError> {
    let VerifiedSession { session, user } = verified;
    let roles: Vec<UserRole> = db.user_roles(tenant, user.id).await.map_err(internal)?;
    let wecom = db
        .wecom_links_of_user(tenant, user.id)
        .await
        .map_err(internal)?;
    let wechat = db
        .wechat_identities_of_user(tenant, user.id)
        .await
        .map_err(internal)?;
    Ok(VerifySessionResponse {
        user: SessionUserDto {
            id: user.id.get(),
            name: user.name,
            status: user.status.into(),
            avatar: user.avatar,
            roles: roles
                .into_iter()
                .map(|r| SessionRoleDto {
                    id: r.role.id.get(),
                    name: r.role.name,
                    is_leader: r.membership.is_leader,
                    is_main: r.membership.is_main,
                })
                .collect(),
            identities: IdentitiesDto {
                wecom: wecom.into_iter().map(Into::into).collect(),
                wechat: wechat
                    .into_iter()
                    .map(|i| WechatIdentityDto {
                        id: i.id.get(),
                        appid: i.appid,
                        app_kind: i.app_kind.as_str().to_owned(),
                        openid: i.openid,
                        unionid: i.unionid,
                    })
                    .collect(),
            },
        },
        session: SessionDto {
            id: session.id.get(),
            provider: session.provider,
            app: session.app,
            created_at_ms: session.created_at_ms,
            expires_at_ms: session.expires_at_ms,
            last_seen_at_ms: session.last_seen_at_ms,
        },
    })
}

/// Revoke a session token (logout). Idempotent.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/sessions/revoke", tag = "sessions",
    params(("tenant" = String, Path, description = "Tenant key")),
    request_body = RevokeSessionRequest,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Whether a live session was revoked", body = RevokeSessionResponse),
        (status = 400, description = "Malformed body", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid API key, or `session_malformed`", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant", body = crate::error::ErrorBody),
    ))]
pub async fn revoke_session(
    State(state): State<AppState>,
    Path(tenant_key): Path<String>,
    headers: HeaderMap,
    payload: Result<Json<RevokeSessionRequest>, JsonRejection>,
) -> Result<Json<RevokeSessionResponse>, SessionRouteError> {
    let tenant = authorised_tenant(&state, &tenant_key, &headers)?;
    let req = body(payload)?;
    let db = database(&state)?;
    let revoked = sessions(&state, db)
        .revoke(tenant.key(), &req.token)
        .await?;
    Ok(Json(RevokeSessionResponse { revoked }))
}
