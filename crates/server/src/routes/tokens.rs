//! `GET /api/v1/tenants/{tenant}/tokens`: the health of each credential's token (kind, cached, expiry, last
//! errcode), never the token itself. Authenticated by the tenant's API key. With `?probe=true` every missing or
//! expiring token is fetched first (through the token manager, so a fresh cached token costs no upstream call).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::is_authorised;
use crate::error::WebError;

#[derive(Debug, Deserialize)]
pub struct TokenHealthQuery {
    #[serde(default)]
    probe: bool,
}

pub async fn token_health(
    State(state): State<AppState>,
    Path(tenant_key): Path<String>,
    Query(query): Query<TokenHealthQuery>,
    headers: HeaderMap,
) -> Result<Json<Value>, WebError> {
    let tenant = state
        .tenants
        .get(&tenant_key)
        .ok_or_else(|| WebError::TenantNotFound(tenant_key.clone()))?;
    tracing::Span::current().record("tenant.key", tenant.key());
    if !is_authorised(&headers, &tenant.config) {
        return Err(WebError::Unauthorized);
    }
    if query.probe {
        tenant.probe_tokens().await;
    }
    let tokens = tenant.token_health(state.tenants.tokens()).await;
    Ok(Json(json!({ "tenant": tenant.key(), "tokens": tokens })))
}
