//! `GET /api/v1/tenants/{tenant}/tokens`: the health of each credential's token (kind, cached, expiry, last
//! errcode), never the token itself. Authenticated by the tenant's API key.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::is_authorised;
use crate::error::WebError;

pub async fn token_health(
    State(state): State<AppState>,
    Path(tenant_key): Path<String>,
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
    let tokens = tenant.token_health(state.tenants.tokens()).await;
    Ok(Json(json!({ "tenant": tenant.key(), "tokens": tokens })))
}
