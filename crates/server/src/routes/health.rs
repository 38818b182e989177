//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: database reachable, tenants loaded).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::WebError;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is alive", body = String, content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database answers and at least one tenant is loaded.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Object, example = json!({"status": "ready", "tenants": 1})),
        (status = 503, description = "Not ready, with the reason", body = crate::error::ErrorBody),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, WebError> {
    let Some(db) = &state.db else {
        return Err(WebError::NotReady("no database is configured".into()));
    };
    domain::ping_database(db)
        .await
        .map_err(|e| WebError::NotReady(e.to_string()))?;
    if state.tenants.is_empty() {
        return Err(WebError::NotReady("no tenant is loaded".into()));
    }
    Ok(Json(
        json!({ "status": "ready", "tenants": state.tenants.len() }),
    ))
}
