//! Operator control of the account graph (API key):
//!
//! - `GET .../users/{user_id}/identities`: the user's WeChat identities.
//! - `POST .../users/{user_id}/identities/link` `{appid, openid, reason, actor}`: move the identity
//!   `(appid, openid)` to this user, pinned (convergence never moves it back), audited; sessions opened
//!   through the identity are revoked.
//! - `POST .../users/{user_id}/identities/unlink` `{appid, openid, reason, actor}`: detach one of this
//!   user's identities into a new user of its own, pinned, audited.
//! - `GET .../users/{user_id}/identities/audit`: the audit trail of the user's current identities, newest
//!   first.
//!
//! - `POST .../wechat/official-accounts/{key}/backfill`: every follower of the official account becomes
//!   a WeChat identity (unionid convergence as at login); answers the counts.
//!
//! Errors: 400 `bad_request` / `invalid_input` (empty actor, appid, openid), 404 `user_not_found` /
//! `identity_not_found`, 409 `already_linked` (link to the user that already holds it) and
//! `not_this_users_identity` (unlink of an identity another user holds).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use domain::identity::{AccountGraph, IdentityAuditEntry, IdentityError, WechatIdentity};
use domain::{Db, UserId};
use serde::{Deserialize, Serialize};
use wx_api::clock::SystemClock;

use crate::AppState;
use crate::auth::authorised_tenant;
use crate::error::{ErrorBody, ErrorDetail, WebError};
use crate::routes::directory::{database, internal};
use crate::routes::sessions::WechatIdentityDto;

pub(crate) fn routes() -> axum::Router<AppState> {
    const U: &str = "/api/v1/tenants/{tenant}/users/{user_id}/identities";
    axum::Router::new()
        .route(U, get(list_identities))
        .route(&format!("{U}/link"), post(link_identity))
        .route(&format!("{U}/unlink"), post(unlink_identity))
        .route(&format!("{U}/audit"), get(identity_audit))
        .route(
            "/api/v1/tenants/{tenant}/wechat/official-accounts/{key}/backfill",
            post(backfill_followers),
        )
}

/// The body of link and unlink.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityActionRequest {
    /// The WeChat appid the openid belongs to.
    pub appid: String,
    /// The openid, exactly as WeChat sent it (case-sensitive).
    pub openid: String,
    /// Why: kept in the audit entry.
    #[serde(default)]
    pub reason: Option<String>,
    /// Who did it (an operator name or id): required, kept in the audit entry.
    pub actor: String,
}

/// A user's WeChat identities.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserIdentitiesResponse {
    pub user_id: i64,
    pub wechat: Vec<WechatIdentityDto>,
}

/// One operator action on an identity.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IdentityAuditDto {
    pub id: i64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    pub actor: String,
    /// `link` or `unlink`.
    pub action: String,
    pub identity_id: i64,
    pub from_user: i64,
    pub to_user: i64,
    pub note: Option<String>,
}

/// What a link or unlink did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IdentityActionResponse {
    pub audit: IdentityAuditDto,
    /// The identity as it now is (its `user_id` is the user it now belongs to).
    pub identity: WechatIdentityDto,
    pub user_id: i64,
}

/// The audit trail of a user's identities.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IdentityAuditResponse {
    pub entries: Vec<IdentityAuditDto>,
}

impl From<IdentityAuditEntry> for IdentityAuditDto {
    fn from(e: IdentityAuditEntry) -> Self {
        IdentityAuditDto {
            id: e.id,
            at_ms: e.at_ms,
            actor: e.actor,
            action: e.action.as_str().to_owned(),
            identity_id: e.identity_id.get(),
            from_user: e.from_user.get(),
            to_user: e.to_user.get(),
            note: e.note,
        }
    }
}

fn identity_dto(i: WechatIdentity) -> WechatIdentityDto {
    WechatIdentityDto {
        id: i.id.get(),
        appid: i.appid,
        app_kind: i.app_kind.as_str().to_owned(),
        openid: i.openid,
        unionid: i.unionid,
    }
}

/// A failure of these routes, with a specific `code`.
#[derive(Debug)]
pub enum IdentityRouteError {
    Web(WebError),
    Coded {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
}

impl IdentityRouteError {
    fn coded(status: StatusCode, code: &'static str, message: String) -> Self {
        IdentityRouteError::Coded {
            status,
            code,
            message,
        }
    }
}

impl From<WebError> for IdentityRouteError {
    fn from(e: WebError) -> Self {
        IdentityRouteError::Web(e)
    }
}

impl From<IdentityError> for IdentityRouteError {
    fn from(e: IdentityError) -> Self {
        let (status, code) = match &e {
            IdentityError::UserNotFound { .. } => (StatusCode::NOT_FOUND, "user_not_found"),
            IdentityError::IdentityNotFound { .. } => (StatusCode::NOT_FOUND, "identity_not_found"),
            IdentityError::InvalidInput { .. } => (StatusCode::BAD_REQUEST, "invalid_input"),
            _ => return IdentityRouteError::Web(WebError::Internal(e.to_string())),
        };
        IdentityRouteError::coded(status, code, e.to_string())
    }
}

impl IntoResponse for IdentityRouteError {
    fn into_response(self) -> Response {
        match self {
            IdentityRouteError::Web(e) => e.into_response(),
            IdentityRouteError::Coded {
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

fn body<T>(payload: Result<Json<T>, JsonRejection>) -> Result<T, WebError> {
    payload
        .map(|Json(b)| b)
        .map_err(|e| WebError::BadRequest(format!("bad request body: {}", e.body_text())))
}

fn graph(db: &Db) -> AccountGraph {
    AccountGraph::new(db.clone(), Arc::new(SystemClock))
}

async fn existing_user(db: &Db, tenant: &str, id: i64) -> Result<UserId, IdentityRouteError> {
    let user_id = UserId::from_raw(id);
    match db.user(tenant, user_id).await.map_err(internal)? {
        Some(_) => Ok(user_id),
        None => Err(IdentityError::UserNotFound { id }.into()),
    }
}

async fn identity_by_openid(
    db: &Db,
    tenant: &str,
    req: &IdentityActionRequest,
) -> Result<WechatIdentity, IdentityRouteError> {
    if req.appid.trim().is_empty() || req.openid.trim().is_empty() {
        return Err(IdentityRouteError::coded(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "appid and openid must not be empty".to_owned(),
        ));
    }
    db.wechat_identity_by_openid(tenant, &req.appid, &req.openid)
        .await
        .map_err(internal)?
        .ok_or_else(|| {
            IdentityRouteError::coded(
                StatusCode::NOT_FOUND,
                "identity_not_found",
                format!(
                    "no WeChat identity with openid `{}` in app `{}`",
                    req.openid, req.appid
                ),
            )
        })
}

/// The WeChat identities of a user.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/users/{user_id}/identities", tag = "identities",
    params(("tenant" = String, Path, description = "Tenant key"), ("user_id" = i64, Path, description = "Local user id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The user's WeChat identities", body = UserIdentitiesResponse),
        (status = 401, description = "Missing or invalid API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant, or `user_not_found`", body = crate::error::ErrorBody),
    ))]
pub async fn list_identities(
    State(state): State<AppState>,
    Path((tenant_key, user_id)): Path<(String, i64)>,
    headers: HeaderMap,
) -> Result<Json<UserIdentitiesResponse>, IdentityRouteError> {
    let tenant = authorised_tenant(&state, &tenant_key, &headers)?;
    let db = database(&state)?;
    let user = existing_user(db, tenant.key(), user_id).await?;
    let wechat = db
        .wechat_identities_of_user(tenant.key(), user)
        .await
        .map_err(internal)?;
    Ok(Json(UserIdentitiesResponse {
        user_id,
        wechat: wechat.into_iter().map(identity_dto).collect(),
    }))
}

/// Move a WeChat identity to this user (operator action, pinned, audited; the identity's sessions are
/// revoked).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/users/{user_id}/identities/link", tag = "identities",
    params(("tenant" = String, Path, description = "Tenant key"), ("user_id" = i64, Path, description = "The user to move the identity to")),
    request_body = IdentityActionRequest,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Linked; the audit entry", body = IdentityActionResponse),
        (status = 400, description = "Malformed body, or `invalid_input` (empty appid, openid or actor)", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant, `user_not_found` or `identity_not_found`", body = crate::error::ErrorBody),
        (status = 409, description = "`already_linked`: the identity already belongs to this user", body = crate::error::ErrorBody),
    ))]
pub async fn link_identity(
    State(state): State<AppState>,
    Path((tenant_key, user_id)): Path<(String, i64)>,
    headers: HeaderMap,
    payload: Result<Json<IdentityActionRequest>, JsonRejection>,
) -> Result<Json<IdentityActionResponse>, IdentityRouteError> {
    let tenant = authorised_tenant(&state, &tenant_key, &headers)?;
    let req = body(payload)?;
    let db = database(&state)?;
    let user = existing_user(db, tenant.key(), user_id).await?;
    let identity = identity_by_openid(db, tenant.key(), &req).await?;
    if identity.user_id == user {
        return Err(IdentityRouteError::coded(
            StatusCode::CONFLICT,
            "already_linked",
            format!("identity {} already belongs to user {user_id}", identity.id),
        ));
    }
    let entry = graph(db)
        .link_identity(
            tenant.key(),
            identity.id,
            user,
            &req.actor,
            req.reason.as_deref(),
        )
        .await?;
    action_response(db, tenant.key(), entry).await
}

/// Detach one of this user's WeChat identities into a new user of its own (operator action, pinned,
/// audited; the identity's sessions are revoked).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/users/{user_id}/identities/unlink", tag = "identities",
    params(("tenant" = String, Path, description = "Tenant key"), ("user_id" = i64, Path, description = "The user that holds the identity now")),
    request_body = IdentityActionRequest,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Unlinked; `user_id` is the new user", body = IdentityActionResponse),
        (status = 400, description = "Malformed body, or `invalid_input`", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant, `user_not_found` or `identity_not_found`", body = crate::error::ErrorBody),
        (status = 409, description = "`not_this_users_identity`: another user holds the identity", body = crate::error::ErrorBody),
    ))]
pub async fn unlink_identity(
    State(state): State<AppState>,
    Path((tenant_key, user_id)): Path<(String, i64)>,
    headers: HeaderMap,
    payload: Result<Json<IdentityActionRequest>, JsonRejection>,
) -> Result<Json<IdentityActionResponse>, IdentityRouteError> {
    let tenant = authorised_tenant(&state, &tenant_key, &headers)?;
    let req = body(payload)?;
    let db = database(&state)?;
    let user = existing_user(db, tenant.key(), user_id).await?;
    let identity = identity_by_openid(db, tenant.key(), &req).await?;
    if identity.user_id != user {
        return Err(IdentityRouteError::coded(
            StatusCode::CONFLICT,
            "not_this_users_identity",
            format!(
                "identity {} belongs to user {}, not {user_id}",
                identity.id, identity.user_id
            ),
        ));
    }
    let entry = graph(db)
        .unlink_identity(tenant.key(), identity.id, &req.actor, req.reason.as_deref())
        .await?;
    action_response(db, tenant.key(), entry).await
}

async fn action_response(
    db: &Db,
    tenant: &str,
    entry: IdentityAuditEntry,
) -> Result<Json<IdentityActionResponse>, IdentityRouteError> {
    let identity = db
        .wechat_identity(tenant, entry.identity_id)
        .await
        .map_err(internal)?
        .ok_or(IdentityError::IdentityNotFound {
            id: entry.identity_id.get(),
        })?;
    Ok(Json(IdentityActionResponse {
        user_id: identity.user_id.get(),
        identity: identity_dto(identity),
        audit: entry.into(),
    }))
}

/// The operator audit trail of the user's current WeChat identities, newest first.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/users/{user_id}/identities/audit", tag = "identities",
    params(("tenant" = String, Path, description = "Tenant key"), ("user_id" = i64, Path, description = "Local user id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Audit entries, newest first", body = IdentityAuditResponse),
        (status = 401, description = "Missing or invalid API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant, or `user_not_found`", body = crate::error::ErrorBody),
    ))]
pub async fn identity_audit(
    State(state): State<AppState>,
    Path((tenant_key, user_id)): Path<(String, i64)>,
    headers: HeaderMap,
) -> Result<Json<IdentityAuditResponse>, IdentityRouteError> {
    let tenant = authorised_tenant(&state, &tenant_key, &headers)?;
    let db = database(&state)?;
    let user = existing_user(db, tenant.key(), user_id).await?;
    let mut entries = Vec::new();
    for identity in db
        .wechat_identities_of_user(tenant.key(), user)
        .await
        .map_err(internal)?
    {
        entries.extend(
            db.identity_audit(tenant.key(), identity.id)
                .await
                .map_err(internal)?,
        );
    }
    entries.sort_by(|a, b| b.at_ms.cmp(&a.at_ms).then(b.id.cmp(&a.id)));
    Ok(Json(IdentityAuditResponse {
        entries: entries.into_iter().map(Into::into).collect(),
    }))
}

/// What a follower backfill did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BackfillResponse {
    /// Openids `cgi-bin/user/get` listed.
    pub listed: u64,
    /// New identities.
    pub created: u64,
    /// Identities that already existed.
    pub already_known: u64,
    /// Followers whose unionid merged users.
    pub merged: u64,
    /// Listed but no longer following (skipped).
    pub unsubscribed: u64,
}

/// Backfill an official account's followers into the account graph (synchronous; idempotent).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/wechat/official-accounts/{key}/backfill", tag = "identities",
    params(("tenant" = String, Path, description = "Tenant key"), ("key" = String, Path, description = "The official account's name in the config (`official_accounts.<key>`)")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Counts", body = BackfillResponse),
        (status = 401, description = "Missing or invalid API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant, or `official_account_not_found`", body = crate::error::ErrorBody),
        (status = 502, description = "`upstream`: a WeChat call failed (the message names it); rerun to continue", body = crate::error::ErrorBody),
    ))]
pub async fn backfill_followers(
    State(state): State<AppState>,
    Path((tenant_key, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<BackfillResponse>, IdentityRouteError> {
    let tenant = authorised_tenant(&state, &tenant_key, &headers)?;
    let db = database(&state)?;
    let account = tenant
        .credential(domain::CredentialKind::OfficialAccount, &key)
        .and_then(|c| c.wechat())
        .ok_or_else(|| {
            IdentityRouteError::coded(
                StatusCode::NOT_FOUND,
                "official_account_not_found",
                format!("no official account `{key}` in tenant `{tenant_key}`"),
            )
        })?;
    let counts = domain::identity::backfill::backfill_followers(&graph(db), tenant.key(), account)
        .await
        .map_err(|e| match e {
            domain::identity::backfill::BackfillError::Api(api) => IdentityRouteError::coded(
                StatusCode::BAD_GATEWAY,
                "upstream",
                format!("WeChat call failed: {api}"),
            ),
            domain::identity::backfill::BackfillError::Identity(e) => e.into(),
        })?;
    let now = state.tenants.tokens().clock().now_ms();
    domain::webhooks::enqueue_domain_events_logged(db, tenant, &counts.events, now).await;
    Ok(Json(BackfillResponse {
        listed: counts.listed,
        created: counts.created,
        already_known: counts.already_known,
        merged: counts.merged,
        unsubscribed: counts.unsubscribed,
    }))
}
