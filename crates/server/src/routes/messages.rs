//! Message push (`domain::messages`), API key required:
//!
//! - `POST .../messages` accepts a message (recipients as local users, roles or everyone; text, markdown,
//!   textcard, news, template_card) into the durable outbox and answers 202 with its id; the outbox worker
//!   started by `serve` sends it. The same `idempotency_key` with the same request answers the first id
//!   again (`replayed: true`); with another request, 409 `idempotency_key_reused`.
//! - `GET .../messages` (latest first) and `GET .../messages/{id}`: status, per-call results, invalid
//!   recipients by local id.
//! - `POST .../messages/{id}/recall`: `message/recall` for every sent call.
//!
//! `POST /api/v1/messages`, `GET /api/v1/messages/{id}` and `POST /api/v1/messages/{id}/recall` are the
//! same with the tenant taken from the API key (a key belongs to exactly one tenant; 401 otherwise).

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use domain::messages::{self, MessageError, MessageView, RecallOutcome, SendRequest};
use serde::{Deserialize, Serialize};

use super::directory::{bad_query, database, limit, parse_id};
use crate::AppState;
use crate::auth::{authorised_tenant, tenant_of_api_key};
use crate::error::{ErrorBody, ErrorDetail, WebError};

const DEFAULT_LIST_LIMIT: u32 = 20;
const MAX_LIST_LIMIT: u32 = 100;

pub fn routes() -> Router<AppState> {
    const T: &str = "/api/v1/tenants/{tenant}";
    Router::new()
        .route(
            &format!("{T}/messages"),
            post(send_message).get(list_messages),
        )
        .route(&format!("{T}/messages/{{message_id}}"), get(get_message))
        .route(
            &format!("{T}/messages/{{message_id}}/recall"),
            post(recall_message),
        )
        .route("/api/v1/messages", post(send_message_by_key))
        .route("/api/v1/messages/{message_id}", get(get_message_by_key))
        .route(
            "/api/v1/messages/{message_id}/recall",
            post(recall_message_by_key),
        )
}

/// An error of these routes: the shared ones, or a 409 for a reused idempotency key.
#[derive(Debug)]
pub enum MessageRouteError {
    Web(WebError),
    KeyReused(String),
}

impl From<WebError> for MessageRouteError {
    fn from(e: WebError) -> Self {
        MessageRouteError::Web(e)
    }
}

impl From<MessageError> for MessageRouteError {
    fn from(e: MessageError) -> Self {
        let message = e.to_string();
        MessageRouteError::Web(match e {
            MessageError::KeyReused { .. } => return MessageRouteError::KeyReused(message),
            MessageError::Invalid(_)
            | MessageError::UnknownApp(_)
            | MessageError::UnknownRole(_) => WebError::BadRequest(message),
            MessageError::NotFound(_) => WebError::Missing(message),
            MessageError::Store(_) | MessageError::Corrupt { .. } => WebError::Internal(message),
        })
    }
}

impl IntoResponse for MessageRouteError {
    fn into_response(self) -> Response {
        match self {
            MessageRouteError::Web(e) => e.into_response(),
            MessageRouteError::KeyReused(message) => (
                StatusCode::CONFLICT,
                Json(ErrorBody {
                    error: ErrorDetail {
                        code: "idempotency_key_reused".into(),
                        message,
                        run_id: None,
                    },
                }),
            )
                .into_response(),
        }
    }
}

/// The accepted message.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SendMessageResponse {
    pub message_id: i64,
    /// True when the idempotency key was replayed with the same request (nothing new was stored).
    pub replayed: bool,
    /// Where the message's status is (also in the `Location` header).
    pub status_url: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessagesResponse {
    pub messages: Vec<MessageView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecallResponse {
    pub message_id: i64,
    /// One entry per sent call.
    pub results: Vec<RecallOutcome>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessagesQuery {
    /// At most this many messages (1..=100, default 20).
    limit: Option<u32>,
}

fn now_ms(state: &AppState) -> i64 {
    state.tenants.tokens().clock().now_ms()
}

/// Accept a message into the outbox.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/messages", tag = "messages",
    params(("tenant" = String, Path, description = "Tenant key")),
    request_body = SendRequest,
    security(("api_key" = [])),
    responses(
        (status = 202, description = "Stored in the outbox (or the same request replayed with its key)",
         body = SendMessageResponse),
        (status = 400, description = "A malformed body, no recipients, bad content, an unknown app or role",
         body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant", body = crate::error::ErrorBody),
        (status = 409, description = "`idempotency_key_reused`: the key was used with another request",
         body = crate::error::ErrorBody),
    ))]
pub async fn send_message(
    State(state): State<AppState>,
    Path(tenant_key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, MessageRouteError> {
    let tenant = authorised_tenant(&state, &tenant_key, &headers)?.clone();
    let status_base = format!("/api/v1/tenants/{tenant_key}/messages");
    send(&state, &tenant, &status_base, &body).await
}

/// Accept a message into the outbox of the API key's tenant.
#[utoipa::path(post, path = "/api/v1/messages", tag = "messages",
    request_body = SendRequest,
    security(("api_key" = [])),
    responses(
        (status = 202, description = "Stored in the outbox (or the same request replayed with its key)",
         body = SendMessageResponse),
        (status = 400, description = "A malformed body, no recipients, bad content, an unknown app or role",
         body = crate::error::ErrorBody),
        (status = 401, description = "Missing API key, or one no tenant has", body = crate::error::ErrorBody),
        (status = 409, description = "`idempotency_key_reused`: the key was used with another request",
         body = crate::error::ErrorBody),
    ))]
pub async fn send_message_by_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, MessageRouteError> {
    let tenant = tenant_of_api_key(&state, &headers)?.clone();
    send(&state, &tenant, "/api/v1/messages", &body).await
}

/// One message of the API key's tenant.
#[utoipa::path(get, path = "/api/v1/messages/{message_id}", tag = "messages",
    params(("message_id" = i64, Path, description = "Message id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The message", body = MessageView),
        (status = 400, description = "A non-numeric id", body = crate::error::ErrorBody),
        (status = 401, description = "Missing API key, or one no tenant has", body = crate::error::ErrorBody),
        (status = 404, description = "No such message in the key's tenant", body = crate::error::ErrorBody),
    ))]
pub async fn get_message_by_key(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<MessageView>, MessageRouteError> {
    let tenant_key = tenant_of_api_key(&state, &headers)?.key().to_owned();
    get_message(State(state), Path((tenant_key, raw_id)), headers).await
}

/// Recall a message of the API key's tenant.
#[utoipa::path(post, path = "/api/v1/messages/{message_id}/recall", tag = "messages",
    params(("message_id" = i64, Path, description = "Message id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "What happened to each sent call", body = RecallResponse),
        (status = 400, description = "A non-numeric id", body = crate::error::ErrorBody),
        (status = 401, description = "Missing API key, or one no tenant has", body = crate::error::ErrorBody),
        (status = 404, description = "No such message in the key's tenant", body = crate::error::ErrorBody),
    ))]
pub async fn recall_message_by_key(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<RecallResponse>, MessageRouteError> {
    let tenant_key = tenant_of_api_key(&state, &headers)?.key().to_owned();
    recall_message(State(state), Path((tenant_key, raw_id)), headers).await
}

/// Validate and store `body` for `tenant`; the status URL is `{status_base}/{id}`.
async fn send(
    state: &AppState,
    tenant: &domain::Tenant,
    status_base: &str,
    body: &[u8],
) -> Result<Response, MessageRouteError> {
    // Through a Value first: serde would also read a struct from a JSON array.
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| WebError::BadRequest(format!("bad request body: {e}")))?;
    if !value.is_object() {
        return Err(WebError::BadRequest("the request body must be a JSON object".into()).into());
    }
    let request: SendRequest = serde_json::from_value(value)
        .map_err(|e| WebError::BadRequest(format!("bad request body: {e}")))?;
    let db = database(state)?;
    let accepted = messages::accept(db, tenant, &request, now_ms(state)).await?;
    let status_url = format!("{status_base}/{}", accepted.id);
    let mut resp = (
        StatusCode::ACCEPTED,
        Json(SendMessageResponse {
            message_id: accepted.id,
            replayed: !accepted.created,
            status_url: status_url.clone(),
        }),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&status_url) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// The tenant's latest messages, newest first.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/messages", tag = "messages",
    params(("tenant" = String, Path, description = "Tenant key"), MessagesQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Latest messages first", body = MessagesResponse),
        (status = 400, description = "A bad `limit`", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant", body = crate::error::ErrorBody),
    ))]
pub async fn list_messages(
    State(state): State<AppState>,
    Path(tenant_key): Path<String>,
    headers: HeaderMap,
    query: Result<Query<MessagesQuery>, QueryRejection>,
) -> Result<Json<MessagesResponse>, MessageRouteError> {
    let tenant = authorised_tenant(&state, &tenant_key, &headers)?;
    let Query(query) = query.map_err(bad_query)?;
    let limit = limit(query.limit, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)?;
    let db = database(&state)?;
    let rows = db
        .recent_outbox_messages(tenant.key(), limit)
        .await
        .map_err(MessageError::from)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(messages::view(db, row).await?);
    }
    Ok(Json(MessagesResponse { messages: out }))
}

/// One message: status, per-call results, invalid recipients by local id.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/messages/{message_id}", tag = "messages",
    params(("tenant" = String, Path, description = "Tenant key"),
           ("message_id" = i64, Path, description = "Message id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The message", body = MessageView),
        (status = 400, description = "A non-numeric id", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant or message", body = crate::error::ErrorBody),
    ))]
pub async fn get_message(
    State(state): State<AppState>,
    Path((tenant_key, raw_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<MessageView>, MessageRouteError> {
    let tenant = authorised_tenant(&state, &tenant_key, &headers)?;
    let id = parse_id("message_id", &raw_id)?;
    let db = database(&state)?;
    let row = db
        .outbox_message(tenant.key(), id)
        .await
        .map_err(MessageError::from)?
        .ok_or(MessageError::NotFound(id))?;
    Ok(Json(messages::view(db, row).await?))
}

/// Recall a message: `message/recall` for each sent call's msgid (WeCom allows 24 hours).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/messages/{message_id}/recall", tag = "messages",
    params(("tenant" = String, Path, description = "Tenant key"),
           ("message_id" = i64, Path, description = "Message id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "What happened to each sent call", body = RecallResponse),
        (status = 400, description = "A non-numeric id", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant or message", body = crate::error::ErrorBody),
    ))]
pub async fn recall_message(
    State(state): State<AppState>,
    Path((tenant_key, raw_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<RecallResponse>, MessageRouteError> {
    let tenant = authorised_tenant(&state, &tenant_key, &headers)?.clone();
    let id = parse_id("message_id", &raw_id)?;
    let db = database(&state)?;
    let results = messages::recall(db, &tenant, id, now_ms(&state)).await?;
    Ok(Json(RecallResponse {
        message_id: id,
        results,
    }))
}
