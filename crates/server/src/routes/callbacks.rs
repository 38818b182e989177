//! Callback endpoints (`domain::callbacks`): what WeCom and WeChat call. GET verifies the URL; POST is
//! verified, decrypted, parsed and written to the inbox before the answer, which is the configured
//! passive reply (encrypted when the request was) or else an empty body (WeCom) or `success` (WeChat),
//! whatever happens downstream: the dispatch worker handles the row later. A redelivery is answered the
//! same way and stores nothing new.
//!
//! Refusals are JSON errors (`{"error": {"code", "message"}}`) and store nothing: 404 for an unknown
//! tenant or app or one without a callback configured, 413 for a body over 64 KiB, 403 for a bad
//! signature, 400 for a missing parameter, a wrong receive id, broken base64 or padding, hostile XML
//! (DOCTYPE / entities) or an unparseable message, and 503 when the inbox cannot be written (so the
//! platform retries).

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use domain::callbacks::{CallbackQuery, CallbackSource, ReceiveError, Receiver};

use crate::AppState;
use crate::error::{ErrorBody, ErrorDetail};

/// The largest body read; one byte more is refused with 413.
const MAX_BODY: usize = 64 * 1024;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/callback/{tenant}/wecom/apps/{app}",
            get(verify_app).post(receive_app),
        )
        .route(
            "/callback/{tenant}/wecom/contacts",
            get(verify_contacts).post(receive_contacts),
        )
        .route(
            "/callback/{tenant}/wechat/official-accounts/{name}",
            get(verify_official_account).post(receive_official_account),
        )
        .route(
            "/callback/{tenant}/wechat/mini-programs/{name}",
            get(verify_mini_program).post(receive_mini_program),
        )
}

/// A refused callback request.
struct Refusal(ReceiveError);

impl Refusal {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        let code = self.0.code();
        let status = match code {
            "tenant_not_found" | "unknown_callback" | "callback_not_configured" => {
                StatusCode::NOT_FOUND
            }
            "body_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
            "bad_signature" => StatusCode::FORBIDDEN,
            "inbox_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        (status, code)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = self.0.to_string();
        if status.is_server_error() {
            tracing::error!(callback.refused = code, error = %message, "callback not stored");
        } else {
            tracing::info!(callback.refused = code, error = %message, "callback refused");
        }
        (
            status,
            Json(ErrorBody {
                error: ErrorDetail {
                    code: code.to_owned(),
                    message,
                    run_id: None,
                },
            }),
        )
            .into_response()
    }
}

impl From<ReceiveError> for Refusal {
    fn from(e: ReceiveError) -> Self {
        Refusal(e)
    }
}

fn verify(
    state: &AppState,
    tenant: &str,
    source: &CallbackSource,
    q: &CallbackQuery,
) -> Result<Response, Refusal> {
    let receiver = Receiver::resolve(&state.tenants, tenant, source)?;
    let echo = receiver.verify_url(q)?;
    tracing::info!(tenant, callback.source = %source.key(), "callback URL verified");
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        echo,
    )
        .into_response())
}

async fn read_body(body: Body) -> Result<Bytes, Refusal> {
    axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| Refusal(ReceiveError::BodyTooLarge { limit: MAX_BODY }))
}

async fn receive(
    state: &AppState,
    tenant: &str,
    source: CallbackSource,
    q: &CallbackQuery,
    body: Body,
) -> Result<Response, Refusal> {
    let receiver = Receiver::resolve(&state.tenants, tenant, &source)?;
    let body = read_body(body).await?;
    let opened = receiver.open(q, &body)?;
    let db = state.db.as_ref().ok_or_else(|| {
        Refusal(ReceiveError::Inbox(
            "the server runs without a database".to_owned(),
        ))
    })?;
    let now = state.tenants.tokens().clock().now_ms();
    let accepted = state
        .inbox
        .accept(db, tenant, &source, &opened.message, now)
        .await?;
    tracing::debug!(tenant, callback.source = %source.key(), inbox.id = ?accepted.id,
        callback.duplicate = accepted.duplicate, "callback accepted");
    // The row is committed: from here on the answer is 200 whatever happens. The request's nonce
    // (present: `open` checked it) is echoed in an encrypted reply, as the docs suggest.
    let nonce = q.nonce.as_deref().unwrap_or_default();
    let reply = match receiver.passive_reply(&opened, now.div_euclid(1000), nonce, rand::random()) {
        Ok(reply) => reply,
        Err(e) => {
            tracing::error!(tenant, callback.source = %source.key(), error = %e,
                "passive reply not built; answered without one");
            None
        }
    };
    let (content_type, answer) = match reply {
        Some(r) if r.json => ("application/json", r.body),
        Some(r) => ("application/xml; charset=utf-8", r.body),
        None => ("text/plain; charset=utf-8", source.no_reply().to_owned()),
    };
    Ok(([(axum::http::header::CONTENT_TYPE, content_type)], answer).into_response())
}

async fn verify_app(
    State(state): State<AppState>,
    Path((tenant, app)): Path<(String, String)>,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, Refusal> {
    verify(&state, &tenant, &CallbackSource::WecomApp(app), &q)
}

async fn receive_app(
    State(state): State<AppState>,
    Path((tenant, app)): Path<(String, String)>,
    Query(q): Query<CallbackQuery>,
    body: Body,
) -> Result<Response, Refusal> {
    receive(&state, &tenant, CallbackSource::WecomApp(app), &q, body).await
}

async fn verify_contacts(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, Refusal> {
    verify(&state, &tenant, &CallbackSource::WecomContacts, &q)
}

async fn receive_contacts(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    Query(q): Query<CallbackQuery>,
    body: Body,
) -> Result<Response, Refusal> {
    receive(&state, &tenant, CallbackSource::WecomContacts, &q, body).await
}

async fn verify_official_account(
    State(state): State<AppState>,
    Path((tenant, name)): Path<(String, String)>,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, Refusal> {
    verify(&state, &tenant, &CallbackSource::OfficialAccount(name), &q)
}

async fn receive_official_account(
    State(state): State<AppState>,
    Path((tenant, name)): Path<(String, String)>,
    Query(q): Query<CallbackQuery>,
    body: Body,
) -> Result<Response, Refusal> {
    receive(
        &state,
        &tenant,
        CallbackSource::OfficialAccount(name),
        &q,
        body,
    )
    .await
}

async fn verify_mini_program(
    State(state): State<AppState>,
    Path((tenant, name)): Path<(String, String)>,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, Refusal> {
    verify(&state, &tenant, &CallbackSource::MiniProgram(name), &q)
}

async fn receive_mini_program(
    State(state): State<AppState>,
    Path((tenant, name)): Path<(String, String)>,
    Query(q): Query<CallbackQuery>,
    body: Body,
) -> Result<Response, Refusal> {
    receive(&state, &tenant, CallbackSource::MiniProgram(name), &q, body).await
}
