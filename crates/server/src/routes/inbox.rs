//! The callback inbox (`domain::callbacks`, `store::inbox`) seen by the API key holder:
//!
//! - `GET .../callbacks/inbox?status=&limit=`: the tenant's stored callbacks, newest first, with the
//!   receiving endpoint, kind, status, attempts, last error, times and the decrypted payload;
//! - `GET .../callbacks/stats`: how many are in each status (every status listed, zeros included);
//! - `POST .../callbacks/inbox/{id}/requeue`: a dead callback back to pending, due now, for the dispatch
//!   worker to try again (404 for no such callback of this tenant, 409 `not_dead` for any other status).

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use domain::callbacks::{InboxMessage, InboxStatus};
use serde::{Deserialize, Serialize};

use super::directory::{
    bad_query, database, internal, limit, not_dead, parse_id, parse_status, status_counts,
};
use crate::AppState;
use crate::auth::authorised_tenant;
use crate::error::WebError;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

/// Every status, in the order the stats list them.
const STATUSES: [InboxStatus; 5] = [
    InboxStatus::Pending,
    InboxStatus::Processing,
    InboxStatus::PendingWebhook,
    InboxStatus::Done,
    InboxStatus::Dead,
];

pub(crate) fn routes() -> Router<AppState> {
    const T: &str = "/api/v1/tenants/{tenant}/callbacks";
    Router::new()
        .route(&format!("{T}/inbox"), get(list_inbox))
        .route(&format!("{T}/stats"), get(inbox_stats))
        .route(
            &format!("{T}/inbox/{{inbox_id}}/requeue"),
            post(requeue_inbox),
        )
}

/// One stored callback.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InboxMessageDto {
    pub id: i64,
    /// The receiving endpoint: `wecom_app:<name>`, `wecom_contacts`, `wechat_oa:<name>`,
    /// `wechat_mp:<name>`.
    pub source: String,
    /// `change_contact`, `event:<Event>` or `msg:<MsgType>`.
    pub kind: String,
    /// `pending`, `processing`, `pending_webhook`, `done` or `dead`.
    pub status: String,
    /// How many times a worker claimed it.
    pub attempts: i64,
    pub last_error: Option<String>,
    /// What handling it amounted to (JSON written by the dispatch worker), when finished.
    pub outcome: Option<serde_json::Value>,
    /// When it was received (Unix milliseconds).
    pub received_at_ms: i64,
    /// When it was finished (Unix milliseconds).
    pub finished_at_ms: Option<i64>,
    /// The key redeliveries share (MsgId, or sender + CreateTime + event identity).
    pub dedup_key: String,
    /// The decrypted message as received (XML or JSON text).
    pub payload: String,
}

impl From<InboxMessage> for InboxMessageDto {
    fn from(m: InboxMessage) -> Self {
        InboxMessageDto {
            id: m.id,
            source: m.source,
            kind: m.kind,
            status: m.status.as_str().to_owned(),
            attempts: m.attempts,
            last_error: m.last_error,
            outcome: m
                .outcome
                .map(|o| serde_json::from_str(&o).unwrap_or(serde_json::Value::String(o))),
            received_at_ms: m.received_at_ms,
            finished_at_ms: m.finished_at_ms,
            dedup_key: m.dedup_key,
            payload: m.payload,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InboxListResponse {
    pub messages: Vec<InboxMessageDto>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InboxStatusCount {
    pub status: String,
    pub count: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InboxStatsResponse {
    /// Every status, zeros included.
    pub statuses: Vec<InboxStatusCount>,
    pub total: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RequeueResponse {
    pub id: i64,
    /// Always `pending`: the dispatch worker picks it up on its next poll.
    pub status: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InboxQuery {
    /// Only callbacks in this status: `pending`, `processing`, `pending_webhook`, `done`, `dead`.
    status: Option<String>,
    /// At most this many (1..=500, default 50).
    limit: Option<u32>,
}

/// The tenant's stored callbacks, newest first.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/callbacks/inbox", tag = "callbacks",
    params(("tenant" = String, Path, description = "Tenant key"), InboxQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Newest first", body = InboxListResponse),
        (status = 400, description = "A bad `status` or `limit`", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant", body = crate::error::ErrorBody),
    ))]
pub async fn list_inbox(
    State(state): State<AppState>,
    Path(tenant_key): Path<String>,
    headers: HeaderMap,
    query: Result<Query<InboxQuery>, QueryRejection>,
) -> Result<Json<InboxListResponse>, WebError> {
    let tenant = authorised_tenant(&state, &tenant_key, &headers)?;
    let Query(query) = query.map_err(bad_query)?;
    let status = query
        .status
        .as_deref()
        .map(|raw| parse_status(raw, &STATUSES, InboxStatus::as_str))
        .transpose()?;
    let limit = limit(query.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let rows = database(&state)?
        .inbox_messages(tenant.key(), status, i64::from(limit))
        .await
        .map_err(internal)?;
    Ok(Json(InboxListResponse {
        messages: rows.into_iter().map(InboxMessageDto::from).collect(),
    }))
}

/// How many of the tenant's callbacks are in each status.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/callbacks/stats", tag = "callbacks",
    params(("tenant" = String, Path, description = "Tenant key")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Counts by status", body = InboxStatsResponse),
        (status = 401, description = "Missing or invalid API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant", body = crate::error::ErrorBody),
    ))]
pub async fn inbox_stats(
    State(state): State<AppState>,
    Path(tenant_key): Path<String>,
    headers: HeaderMap,
) -> Result<Json<InboxStatsResponse>, WebError> {
    let tenant = authorised_tenant(&state, &tenant_key, &headers)?;
    let counts = database(&state)?
        .inbox_counts(tenant.key())
        .await
        .map_err(internal)?;
    let statuses: Vec<InboxStatusCount> = status_counts(&STATUSES, &counts, InboxStatus::as_str)
        .into_iter()
        .map(|(status, count)| InboxStatusCount { status, count })
        .collect();
    let total = statuses.iter().map(|s| s.count).sum();
    Ok(Json(InboxStatsResponse { statuses, total }))
}

/// Put a dead callback back to pending for the dispatch worker.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/callbacks/inbox/{inbox_id}/requeue",
    tag = "callbacks",
    params(("tenant" = String, Path, description = "Tenant key"),
           ("inbox_id" = i64, Path, description = "Inbox row id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Pending again", body = RequeueResponse),
        (status = 400, description = "A non-numeric id", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant, or no such callback in this tenant",
         body = crate::error::ErrorBody),
        (status = 409, description = "`not_dead`: the callback is not dead", body = crate::error::ErrorBody),
    ))]
pub async fn requeue_inbox(
    State(state): State<AppState>,
    Path((tenant_key, raw_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<RequeueResponse>, WebError> {
    let tenant = authorised_tenant(&state, &tenant_key, &headers)?;
    let id = parse_id("inbox_id", &raw_id)?;
    let db = database(&state)?;
    let now = state.tenants.tokens().clock().now_ms();
    if db
        .requeue_dead_inbox(tenant.key(), id, now)
        .await
        .map_err(internal)?
    {
        tracing::info!(
            tenant = tenant.key(),
            inbox.id = id,
            "dead callback requeued"
        );
        return Ok(Json(RequeueResponse {
            id,
            status: InboxStatus::Pending.as_str().to_owned(),
        }));
    }
    match db.inbox_message(tenant.key(), id).await.map_err(internal)? {
        None => Err(WebError::Missing(format!(
            "no callback {id} in tenant `{}`",
            tenant.key()
        ))),
        Some(m) => Err(not_dead(format!(
            "callback {id} is {}, not dead: only dead callbacks can be requeued",
            m.status
        ))),
    }
}
