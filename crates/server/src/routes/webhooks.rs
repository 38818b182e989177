//! The business webhook's deliveries (`domain::webhooks`, `store::webhooks`) seen by the API key holder:
//!
//! - `GET .../webhooks/deliveries?status=&limit=`: newest first, with status, attempts, last error and
//!   HTTP status, times, and the JSON body as POSTed (dead letters included);
//! - `GET .../webhooks/deliveries/{id}`: one of them;
//! - `POST .../webhooks/deliveries/{id}/replay`: a dead delivery pending again, due now, with its attempts
//!   reset (404 for no such delivery of this tenant, 409 `not_dead` for any other status);
//! - `POST .../webhooks/replay-dead`: every dead delivery of the tenant, likewise.
//!
//! The tenant's webhook secret is never part of an answer; the URL is not either (it is configuration).

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use domain::webhooks::{ReplayOutcome, WebhookDelivery, WebhookStatus};
use serde::{Deserialize, Serialize};

use super::directory::{
    bad_query, database, internal, limit, not_dead, parse_id, parse_status, status_counts,
};
use crate::AppState;
use crate::auth::authorised_tenant;
use crate::error::WebError;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

const STATUSES: [WebhookStatus; 4] = [
    WebhookStatus::Pending,
    WebhookStatus::Processing,
    WebhookStatus::Delivered,
    WebhookStatus::Dead,
];

pub(crate) fn routes() -> Router<AppState> {
    const T: &str = "/api/v1/tenants/{tenant}/webhooks";
    Router::new()
        .route(&format!("{T}/deliveries"), get(list_deliveries))
        .route(
            &format!("{T}/deliveries/{{delivery_id}}"),
            get(get_delivery),
        )
        .route(
            &format!("{T}/deliveries/{{delivery_id}}/replay"),
            post(replay_delivery),
        )
        .route(&format!("{T}/replay-dead"), post(replay_dead))
}

/// One webhook delivery.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookDeliveryDto {
    pub id: i64,
    /// The event id, also sent as `X-Wxbridge-Delivery` (stable across retries).
    pub event_id: String,
    /// `contact.user.updated`, `message.received`, `user.merged`, `sync.finished`, ...
    pub event_type: String,
    /// `pending`, `processing`, `delivered` or `dead`.
    pub status: String,
    /// Attempts since it was queued (or last replayed).
    pub attempts: i64,
    /// When it is due (pending) or its claim runs out (processing), Unix milliseconds.
    pub available_at_ms: i64,
    /// The last failure: the receiver's status and a snippet of its answer, a timeout, a connection error.
    pub last_error: Option<String>,
    /// The receiver's last HTTP status; null when it never answered.
    pub last_status_code: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub delivered_at_ms: Option<i64>,
    /// The JSON body as POSTed: `{"id", "type", "tenant", "occurred_at_ms", "data"}`.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

impl From<WebhookDelivery> for WebhookDeliveryDto {
    fn from(d: WebhookDelivery) -> Self {
        WebhookDeliveryDto {
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            status: d.status.as_str().to_owned(),
            attempts: d.attempts,
            available_at_ms: d.available_at_ms,
            last_error: d.last_error,
            last_status_code: d.last_status_code,
            created_at_ms: d.created_at_ms,
            updated_at_ms: d.updated_at_ms,
            delivered_at_ms: d.delivered_at_ms,
            payload: serde_json::from_str(&d.payload)
                .unwrap_or(serde_json::Value::String(d.payload)),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookCount {
    pub status: String,
    pub count: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookDeliveriesResponse {
    /// Newest first.
    pub deliveries: Vec<WebhookDeliveryDto>,
    /// How many of the tenant's deliveries are in each status (every status, zeros included).
    pub counts: Vec<WebhookCount>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookReplayResponse {
    pub id: i64,
    /// Always `pending`: the webhook worker delivers it on its next poll.
    pub status: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookReplayDeadResponse {
    /// How many dead deliveries are pending again.
    pub replayed: u64,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WebhookDeliveriesQuery {
    /// Only deliveries in this status: `pending`, `processing`, `delivered`, `dead`.
    status: Option<String>,
    /// At most this many (1..=500, default 50).
    limit: Option<u32>,
}

fn no_such(id: i64, tenant: &str) -> WebError {
    WebError::Missing(format!("no webhook delivery {id} in tenant `{tenant}`"))
}

/// The tenant's webhook deliveries, newest first, with counts per status.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/webhooks/deliveries", tag = "webhooks",
    params(("tenant" = String, Path, description = "Tenant key"), WebhookDeliveriesQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Newest first", body = WebhookDeliveriesResponse),
        (status = 400, description = "A bad `status` or `limit`", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant", body = crate::error::ErrorBody),
    ))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    Path(tenant_key): Path<String>,
    headers: HeaderMap,
    query: Result<Query<WebhookDeliveriesQuery>, QueryRejection>,
) -> Result<Json<WebhookDeliveriesResponse>, WebError> {
    let tenant = authorised_tenant(&state, &tenant_key, &headers)?;
    let Query(query) = query.map_err(bad_query)?;
    let status = query
        .status
        .as_deref()
        .map(|raw| parse_status(raw, &STATUSES, WebhookStatus::as_str))
        .transpose()?;
    let limit = limit(query.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let db = database(&state)?;
    let rows = db
        .webhook_deliveries(tenant.key(), status, i64::from(limit))
        .await
        .map_err(internal)?;
    let counts = db.webhook_counts(tenant.key()).await.map_err(internal)?;
    Ok(Json(WebhookDeliveriesResponse {
        deliveries: rows.into_iter().map(WebhookDeliveryDto::from).collect(),
        counts: status_counts(&STATUSES, &counts, WebhookStatus::as_str)
            .into_iter()
            .map(|(status, count)| WebhookCount { status, count })
            .collect(),
    }))
}

/// One webhook delivery of the tenant.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/webhooks/deliveries/{delivery_id}", tag = "webhooks",
    params(("tenant" = String, Path, description = "Tenant key"),
           ("delivery_id" = i64, Path, description = "Delivery id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The delivery", body = WebhookDeliveryDto),
        (status = 400, description = "A non-numeric id", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant, or no such delivery in this tenant", body = crate::error::ErrorBody),
    ))]
pub async fn get_delivery(
    State(state): State<AppState>,
    Path((tenant_key, raw_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<WebhookDeliveryDto>, WebError> {
    let tenant = authorised_tenant(&state, &tenant_key, &headers)?;
    let id = parse_id("delivery_id", &raw_id)?;
    let delivery = database(&state)?
        .webhook_delivery(tenant.key(), id)
        .await
        .map_err(internal)?
        .ok_or_else(|| no_such(id, tenant.key()))?;
    Ok(Json(delivery.into()))
}

/// Make a dead delivery pending again (attempts reset) for the webhook worker.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/webhooks/deliveries/{delivery_id}/replay",
    tag = "webhooks",
    params(("tenant" = String, Path, description = "Tenant key"),
           ("delivery_id" = i64, Path, description = "Delivery id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Pending again", body = WebhookReplayResponse),
        (status = 400, description = "A non-numeric id", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant, or no such delivery in this tenant", body = crate::error::ErrorBody),
        (status = 409, description = "`not_dead`: the delivery is not dead", body = crate::error::ErrorBody),
    ))]
pub async fn replay_delivery(
    State(state): State<AppState>,
    Path((tenant_key, raw_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<WebhookReplayResponse>, WebError> {
    let tenant = authorised_tenant(&state, &tenant_key, &headers)?;
    let id = parse_id("delivery_id", &raw_id)?;
    let db = database(&state)?;
    let now = state.tenants.tokens().clock().now_ms();
    match domain::webhooks::replay(db, tenant.key(), id, now)
        .await
        .map_err(internal)?
    {
        ReplayOutcome::Replayed => Ok(Json(WebhookReplayResponse {
            id,
            status: WebhookStatus::Pending.as_str().to_owned(),
        })),
        ReplayOutcome::NotFound => Err(no_such(id, tenant.key())),
        ReplayOutcome::NotDead(status) => Err(not_dead(format!(
            "webhook delivery {id} is {status}, not dead: only dead deliveries can be replayed"
        ))),
    }
}

/// Make every dead delivery of the tenant pending again (attempts reset).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/webhooks/replay-dead", tag = "webhooks",
    params(("tenant" = String, Path, description = "Tenant key")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "How many were replayed", body = WebhookReplayDeadResponse),
        (status = 401, description = "Missing or invalid API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant", body = crate::error::ErrorBody),
    ))]
pub async fn replay_dead(
    State(state): State<AppState>,
    Path(tenant_key): Path<String>,
    headers: HeaderMap,
) -> Result<Json<WebhookReplayDeadResponse>, WebError> {
    let tenant = authorised_tenant(&state, &tenant_key, &headers)?;
    let db = database(&state)?;
    let now = state.tenants.tokens().clock().now_ms();
    let replayed = domain::webhooks::replay_all_dead(db, tenant.key(), now)
        .await
        .map_err(internal)?;
    Ok(Json(WebhookReplayDeadResponse { replayed }))
}
