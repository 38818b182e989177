//! Directory sync runs over HTTP:
//!
//! - `POST .../sync` starts a full sync of the tenant's WeCom corp in the background and answers 202 with the
//!   run id as soon as the run is recorded (409 with the running run's id when one holds the corp's lease);
//! - `GET .../sync/runs` and `GET .../sync/runs/{run_id}`: the history (status, counters, error);
//! - `GET .../sync/runs/{run_id}/events`: the run's progress as Server-Sent Events, replayed from the start
//!   (or after `Last-Event-ID`) and then followed live, ending after the `finished` event.
//!
//! The run's credential and options come from the tenant's `[..wecom.directory]` settings
//! (`domain::directory::{directory_credential, sync_options}`), as for `wxbridge sync`: by default the
//! contacts secret, else the first self-built app, whose visibility scope then limits what is synced.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::progress::{SyncRunId, SyncStatus};
use domain::{DomainError, SyncRun, Tenant};
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use wx_api::wecom::WecomApp;

use super::directory::{bad_query, database, internal, limit, parse_id};
use super::progress;
use crate::AppState;
use crate::auth::authorised_tenant;
use crate::error::WebError;

/// Runs listed by `GET .../sync/runs` unless `limit` says otherwise.
const DEFAULT_RUNS_LIMIT: u32 = 20;
const MAX_RUNS_LIMIT: u32 = 100;

/// How to run the sync. An empty body means all defaults.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartSyncRequest {
    /// Plan and report without writing directory rows (the run and its events are still recorded).
    #[serde(default)]
    pub dry_run: bool,
    /// Remove even when more users would be marked left than the guard allows.
    #[serde(default)]
    pub override_guard: bool,
}

/// The run that was started.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StartSyncResponse {
    pub run_id: i64,
    /// Where the run's record is (also in the `Location` header).
    pub run_url: String,
    /// Where its progress streams as Server-Sent Events.
    pub events_url: String,
}

/// Created / updated / removed / unchanged for one kind of entity.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct EntityCountersDto {
    pub created: u64,
    pub updated: u64,
    pub removed: u64,
    pub unchanged: u64,
}

impl From<domain::progress::EntityCounters> for EntityCountersDto {
    fn from(c: domain::progress::EntityCounters) -> Self {
        EntityCountersDto {
            created: c.created,
            updated: c.updated,
            removed: c.removed,
            unchanged: c.unchanged,
        }
    }
}

/// What a run planned (and, unless a dry run, wrote), per kind of entity.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct SyncCountersDto {
    pub users: EntityCountersDto,
    pub roles: EntityCountersDto,
    pub memberships: EntityCountersDto,
}

/// One sync run.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SyncRunDto {
    pub id: i64,
    pub corpid: String,
    /// `full` or `incremental`.
    #[schema(example = "full")]
    pub kind: String,
    pub dry_run: bool,
    /// `running`, `succeeded`, `partial` (a fetch failed, nothing removed), `failed` or `refused` (the removal
    /// guard stopped it).
    #[schema(example = "succeeded")]
    pub status: String,
    pub counters: SyncCountersDto,
    /// Why the run was partial, refused or failed.
    pub error: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub started_at_ms: i64,
    pub updated_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

impl From<SyncRun> for SyncRunDto {
    fn from(r: SyncRun) -> Self {
        SyncRunDto {
            id: r.id.get(),
            corpid: r.corpid,
            kind: r.kind.as_str().to_owned(),
            dry_run: r.dry_run,
            status: r.status.as_str().to_owned(),
            counters: SyncCountersDto {
                users: r.counters.users.into(),
                roles: r.counters.roles.into(),
                memberships: r.counters.memberships.into(),
            },
            error: r.error,
            started_at_ms: r.started_at_ms,
            updated_at_ms: r.updated_at_ms,
            finished_at_ms: r.finished_at_ms,
        }
    }
}

/// The latest runs first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SyncRunsResponse {
    pub runs: Vec<SyncRunDto>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SyncRunsQuery {
    /// At most this many runs (1..=100, default 20).
    limit: Option<u32>,
}

/// The app a tenant syncs its directory with (see [`domain::directory::directory_credential`]).
fn sync_app(tenant: &Tenant) -> Option<&WecomApp> {
    domain::directory::directory_credential(tenant).and_then(|c| c.wecom())
}

fn run_urls(tenant: &str, run: SyncRunId) -> (String, String) {
    let run_url = format!("/api/v1/tenants/{tenant}/sync/runs/{run}");
    let events_url = format!("{run_url}/events");
    (run_url, events_url)
}

/// Start a full directory sync in the background.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/sync", tag = "sync",
    params(("tenant" = String, Path, description = "Tenant key")),
    request_body(content = StartSyncRequest, description = "Optional; an empty body means all defaults"),
    security(("api_key" = [])),
    responses(
        (status = 202, description = "The run started; follow it at `events_url`", body = StartSyncResponse),
        (status = 400, description = "A malformed body, or the tenant has no WeCom app to sync with",
         body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant", body = crate::error::ErrorBody),
        (status = 409, description = "A sync of the corp is already running (`run_id` names it)",
         body = crate::error::ErrorBody),
    ))]
pub async fn start_sync(
    State(state): State<AppState>,
    Path(tenant_key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let tenant = authorised_tenant(&state, &tenant_key, &headers)?.clone();
    let request: StartSyncRequest = if body.iter().all(u8::is_ascii_whitespace) {
        StartSyncRequest::default()
    } else {
        // Through a Value first: serde would also read a struct from a JSON array.
        let value: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| WebError::BadRequest(format!("bad request body: {e}")))?;
        if !value.is_object() {
            return Err(WebError::BadRequest(
                "the request body must be a JSON object".into(),
            ));
        }
        serde_json::from_value(value)
            .map_err(|e| WebError::BadRequest(format!("bad request body: {e}")))?
    };
    let db = database(&state)?.clone();
    if sync_app(&tenant).is_none() {
        return Err(WebError::BadRequest(
            domain::directory::no_directory_app_reason(&tenant),
        ));
    }

    // The lease outlives a run's `finished` event by a moment (it is released right after), so a client that
    // starts again as soon as it sees `finished` can find the lease held while no run is running: in that
    // case (and only then) try again for a short while.
    let mut attempts = 0;
    let reply = loop {
        attempts += 1;
        let reply = spawn_run(&state, tenant.clone(), db.clone(), &request).await;
        match reply {
            Ok(Err(DomainError::SyncRunning { run: None, .. }))
                if attempts < LEASE_TAIL_ATTEMPTS =>
            {
                tokio::time::sleep(LEASE_TAIL_PAUSE).await;
            }
            other => break other,
        }
    };
    match reply {
        Ok(Ok(run)) => {
            let (run_url, events_url) = run_urls(&tenant_key, run);
            let mut resp = (
                StatusCode::ACCEPTED,
                Json(StartSyncResponse {
                    run_id: run.get(),
                    run_url: run_url.clone(),
                    events_url,
                }),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&run_url) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            Ok(resp)
        }
        Ok(Err(DomainError::SyncRunning { corpid, run })) => Err(WebError::SyncRunning {
            corpid,
            run_id: run.map(SyncRunId::get),
        }),
        Ok(Err(e)) => Err(internal(e)),
        Err(_) => Err(WebError::Internal(
            "the sync task ended without reporting".into(),
        )),
    }
}

/// How often, and how far apart, a start that found the corp's lease held by no running run is retried.
const LEASE_TAIL_ATTEMPTS: u32 = 20;
const LEASE_TAIL_PAUSE: std::time::Duration = std::time::Duration::from_millis(25);

/// Start one run in the background; the answer is its id as soon as it is recorded, or the error that
/// stopped it before (the lease is held).
async fn spawn_run(
    state: &AppState,
    tenant: Arc<Tenant>,
    db: domain::Db,
    request: &StartSyncRequest,
) -> Result<Result<SyncRunId, DomainError>, tokio::sync::oneshot::error::RecvError> {
    let base = domain::directory::sync_options(&tenant.config);
    let (created_tx, mut created_rx) = tokio::sync::mpsc::unbounded_channel();
    let opts = domain::directory::SyncOptions {
        dry_run: request.dry_run,
        plan: domain::directory::PlanOptions {
            override_guard: request.override_guard,
            ..base.plan
        },
        hub: Some(state.progress.clone()),
        run_created: Some(created_tx),
        ..base
    };
    let (reply_tx, reply_rx) = tokio::sync::oneshot::channel::<Result<SyncRunId, DomainError>>();
    let clock = state.tenants.tokens().clock().clone();
    let runs = state.runs.clone();
    let span = tracing::info_span!("sync.run", tenant.key = %tenant.key());

    tokio::spawn(
        async move {
            let Some(app) = sync_app(&tenant) else {
                return;
            };
            let sync = domain::directory::run_full_sync(&db, tenant.key(), app, clock, opts);
            tokio::pin!(sync);
            let mut reply = Some(reply_tx);
            let mut run = None;
            let result = loop {
                tokio::select! {
                    // The id arrives before the run's first event; `biased` takes it before the result.
                    biased;
                    Some(id) = created_rx.recv(), if run.is_none() => {
                        runs.insert(id);
                        run = Some(id);
                        if let Some(r) = reply.take() {
                            // The client may have gone; the run goes on.
                            let _ = r.send(Ok(id));
                        }
                    }
                    result = &mut sync => break result,
                }
            };
            if let Some(id) = run {
                runs.remove(id);
            }
            match result {
                Ok(outcome) => tracing::info!(
                    run = %outcome.run_id,
                    status = %outcome.status,
                    dry_run = outcome.dry_run,
                    "sync run finished"
                ),
                Err(e) => match reply.take() {
                    Some(r) => {
                        let _ = r.send(Err(e));
                    }
                    None => tracing::warn!(error = %e, "sync run failed"),
                },
            }
        }
        .instrument(span),
    );

    reply_rx.await
}

/// Recent sync runs of the tenant, latest first.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/sync/runs", tag = "sync",
    params(("tenant" = String, Path, description = "Tenant key"), SyncRunsQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The runs", body = SyncRunsResponse),
        (status = 400, description = "A bad limit", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant", body = crate::error::ErrorBody),
    ))]
pub async fn list_runs(
    State(state): State<AppState>,
    Path(tenant_key): Path<String>,
    query: Result<Query<SyncRunsQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Json<SyncRunsResponse>, WebError> {
    let tenant = authorised_tenant(&state, &tenant_key, &headers)?;
    let Query(query) = query.map_err(bad_query)?;
    let max = limit(query.limit, DEFAULT_RUNS_LIMIT, MAX_RUNS_LIMIT)?;
    let db = database(&state)?;
    let runs = db
        .recent_sync_runs(tenant.key(), None, max)
        .await
        .map_err(internal)?;
    Ok(Json(SyncRunsResponse {
        runs: runs.into_iter().map(Into::into).collect(),
    }))
}

async fn existing_run(state: &AppState, tenant: &str, raw: &str) -> Result<SyncRun, WebError> {
    let id = parse_id("run id", raw)?;
    database(state)?
        .sync_run(tenant, SyncRunId::from_raw(id))
        .await
        .map_err(internal)?
        .ok_or_else(|| WebError::Missing(format!("no sync run {id} in tenant {tenant}")))
}

/// One sync run.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/sync/runs/{run_id}", tag = "sync",
    params(("tenant" = String, Path, description = "Tenant key"),
           ("run_id" = i64, Path, description = "Sync run id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The run", body = SyncRunDto),
        (status = 400, description = "The id is not an integer", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant or run", body = crate::error::ErrorBody),
    ))]
pub async fn get_run(
    State(state): State<AppState>,
    Path((tenant_key, run_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<SyncRunDto>, WebError> {
    let tenant = authorised_tenant(&state, &tenant_key, &headers)?;
    Ok(Json(
        existing_run(&state, tenant.key(), &run_id).await?.into(),
    ))
}

/// A run's progress as Server-Sent Events.
///
/// Each frame is `event: progress`, `id: <seq>`, `data: <json>` where the JSON is
/// `{"run_id", "seq", "at_ms", "kind": {"type": ...}}` and `type` is one of `started`, `phase`, `advanced`
/// (done/total, created/updated/removed/unchanged, rate_per_s, eta_ms), `item_error` or `finished` (status,
/// counters per phase, item_errors, error). Events persisted so far are replayed first (after `Last-Event-ID`
/// when given), then live ones follow; the stream ends after `finished`. If the progress log fails, one
/// `event: error` frame ends the stream.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/sync/runs/{run_id}/events", tag = "sync",
    params(("tenant" = String, Path, description = "Tenant key"),
           ("run_id" = i64, Path, description = "Sync run id"),
           ("Last-Event-ID" = Option<String>, Header, description = "Resume after this seq")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The event stream", body = String, content_type = "text/event-stream"),
        (status = 400, description = "The id is not an integer", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant or run", body = crate::error::ErrorBody),
    ))]
pub async fn run_events(
    State(state): State<AppState>,
    Path((tenant_key, run_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let tenant = authorised_tenant(&state, &tenant_key, &headers)?;
    let run = existing_run(&state, tenant.key(), &run_id).await?;
    let db = database(&state)?.clone();
    let after = progress::after_seq(&headers);
    let events = if run.status == SyncStatus::Running && state.runs.contains(run.id) {
        let log = Arc::new(domain::progress::DbProgressLog::new(db, tenant.key()));
        state.progress.subscribe(run.id, after, log)
    } else {
        progress::polled(
            db,
            tenant.key().to_owned(),
            run.id,
            after,
            progress::POLL_INTERVAL,
        )
    };
    Ok(progress::sse(events).into_response())
}
