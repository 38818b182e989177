//! The route table. Each submodule holds the handlers of one area.

pub(crate) mod health;
pub(crate) mod progress;
pub(crate) mod tokens;

use axum::Router;
use axum::routing::get;

use crate::AppState;
use crate::error::WebError;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/api/v1/tenants/{tenant}/tokens", get(tokens::token_health))
        .route("/api/v1/openapi.json", get(crate::openapi::serve_document))
        .fallback(|| async { WebError::NotFound })
}
