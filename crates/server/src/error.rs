//! The one place errors become HTTP responses: `{"error": {"code": "...", "message": "..."}}` with a status.
//! Handlers return `WebError`; internal causes are logged once here and answered with an opaque 500 (the
//! request id header, added by the middleware, lets an operator find the log line).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, greppable: `unauthorized`, `tenant_not_found`, `not_found`, `not_ready`, `internal`.
    pub code: String,
    /// For humans; wording may change.
    pub message: String,
}

/// A request failed. Each variant maps to one status and one stable `code`.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("missing or invalid API key")]
    Unauthorized,
    #[error("unknown tenant `{0}`")]
    TenantNotFound(String),
    #[error("not found")]
    NotFound,
    #[error("not ready: {0}")]
    NotReady(String),
    #[error("internal error")]
    Internal(String),
}

impl WebError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            WebError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            WebError::TenantNotFound(_) => (StatusCode::NOT_FOUND, "tenant_not_found"),
            WebError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            WebError::NotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            WebError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let WebError::Internal(cause) = &self {
            tracing::error!(error.cause = %cause, "request failed");
        }
        let mut resp = (
            status,
            Json(ErrorBody {
                error: ErrorDetail {
                    code: code.to_owned(),
                    message: self.to_string(),
                },
            }),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED
            && let Ok(v) = axum::http::HeaderValue::from_str("Bearer realm=\"wxbridge\"")
        {
            resp.headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, v);
        }
        resp
    }
}

/// Starting or running the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("server I/O error: {0}")]
    Io(std::io::Error),
}
