//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: database reachable, tenants loaded).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::WebError;

pub async fn healthz() -> &'static str {
    "ok"
}

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
