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
    /// Stable, greppable: `unauthorized`, `tenant_not_found`, `not_found`, `bad_request`, `sync_running`,
    /// `not_ready`, `internal`.
    pub code: String,
    /// For humans; wording may change.
    pub message: String,
    /// With `sync_running`: the id of the run in progress, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<i64>,
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
    /// A named thing does not exist (in this tenant); the message names it.
    #[error("{0}")]
    Missing(String),
    /// The request is malformed; the message says how.
    #[error("{0}")]
    BadRequest(String),
    /// A sync of the tenant's corp is already running.
    #[error("a sync of corp {corpid} is already running{}", run_id.map(|r| format!(" (run {r})")).unwrap_or_default())]
    SyncRunning { corpid: String, run_id: Option<i64> },
    #[error("not ready: {0}")]
    NotReady(String),
    #[error("internal error")]
    Internal(String),
    /// A refusal with its own status and stable code (the admin UI's `admin_session_required`,
    /// `admin_token_invalid`, `csrf_failed`, `admin_scope`); the message says what to do.
    #[error("{message}")]
    Coded {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
}

impl WebError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            WebError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            WebError::TenantNotFound(_) => (StatusCode::NOT_FOUND, "tenant_not_found"),
            WebError::NotFound | WebError::Missing(_) => (StatusCode::NOT_FOUND, "not_found"),
            WebError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            WebError::SyncRunning { .. } => (StatusCode::CONFLICT, "sync_running"),
            WebError::NotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            WebError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            WebError::Coded { status, code, .. } => (*status, code),
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
                    run_id: match &self {
                        WebError::SyncRunning { run_id, .. } => *run_id,
                        _ => None,
                    },
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
