//! `GET /api/v1/tenants/{tenant}/tokens`: the health of each credential's token (kind, cached, expiry, last
//! errcode), never the token itself. Authenticated by the tenant's API key. With `?probe=true` every missing or
//! expiring token is fetched first (through the token manager, so a fresh cached token costs no upstream call).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use domain::TokenHealth;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::authorised_tenant;
use crate::error::WebError;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct TokenHealthQuery {
    /// Fetch every missing or expiring token first (a fresh cached token costs no upstream call).
    #[serde(default)]
    probe: bool,
}

/// Token health of every credential of one tenant.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenHealthResponse {
    pub tenant: String,
    pub tokens: Vec<TokenHealth>,
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/tokens", tag = "tokens",
    params(("tenant" = String, Path, description = "Tenant key"), TokenHealthQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Token health (never the token values)", body = TokenHealthResponse),
        (status = 401, description = "Missing or invalid API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant", body = crate::error::ErrorBody),
    ))]
pub async fn token_health(
    State(state): State<AppState>,
    Path(tenant_key): Path<String>,
    Query(query): Query<TokenHealthQuery>,
    headers: HeaderMap,
) -> Result<Json<TokenHealthResponse>, WebError> {
    let tenant = authorised_tenant(&state, &tenant_key, &headers)?;
    if query.probe {
        tenant.probe_tokens().await;
    }
    let tokens = tenant.token_health(state.tenants.tokens()).await;
    Ok(Json(TokenHealthResponse {
        tenant: tenant.key().to_owned(),
        tokens,
    }))
}
