//! wxbridge HTTP surface (axum). Thin handlers: extract, authorise, call the domain, map the result. It serves
//! health, readiness, token health, the directory lookup API and sync runs (started over HTTP, followed as
//! Server-Sent Events); callbacks, login routes and the admin UI build on it.

mod admin_auth;
pub mod auth;
pub mod error;
pub mod guard;
mod middleware;
pub mod openapi;
mod routes;
pub mod runs;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use domain::progress::ProgressHub;
use domain::{Db, Tenants};
use tokio::net::TcpListener;
use wxbridge_config::Config;

pub use error::{ServerError, WebError};

/// Everything a handler may need. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub tenants: Tenants,
    /// None only in tests that run without a database (readiness then reports it).
    pub db: Option<Db>,
    /// Live fan-out of the progress of runs this process executes (SSE subscribers follow it).
    pub progress: ProgressHub,
    /// The runs this process executes in the background.
    pub runs: runs::LocalRuns,
    /// The callback inbox's group commit (`routes::callbacks`).
    pub inbox: domain::callbacks::InboxWriter,
}

impl AppState {
    pub fn new(config: Arc<Config>, tenants: Tenants, db: Option<Db>) -> Self {
        AppState {
            config,
            tenants,
            db,
            progress: ProgressHub::default(),
            runs: runs::LocalRuns::default(),
            inbox: domain::callbacks::InboxWriter::default(),
        }
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    routes::routes()
        .with_state(state.clone())
        // For layers that need the state without being built with it (guard::require_origin).
        // Admin UI operators on the tenant API (admin_auth); inside the headers layer.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            admin_auth::admin_api_context,
        ))
        .layer(axum::Extension(state))
        .layer(axum::middleware::from_fn(middleware::security_headers))
        .layer(axum::middleware::from_fn(middleware::request_id_and_span))
}

/// Bind `addr` and serve until Ctrl-C or SIGTERM, then finish in-flight requests.
pub async fn serve(state: AppState, addr: SocketAddr) -> Result<(), ServerError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    serve_on(state, listener, shutdown_signal()).await
}

/// Serve on an already bound listener until `shutdown` completes (tests and `wxbridge demo` pass their own).
pub async fn serve_on(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let addr = listener.local_addr().map_err(ServerError::Io)?;
    tracing::info!(server.addr = %addr, "wxbridge listening");
    // The callback inbox's dispatch worker runs as long as the server; dropping the handle stops it.
    let _dispatch = state.db.clone().map(|db| {
        let opts = domain::callbacks::DispatchOptions {
            lease: state.config.server.dispatch_lease,
            ..Default::default()
        };
        domain::callbacks::Dispatcher::new(db, state.tenants.clone(), opts)
            .deferring_to(state.inbox.clone())
            .spawn()
    });
    // The message outbox's worker, for as long as the server runs.
    let outbox = state.db.clone().map(|db| {
        domain::messages::OutboxWorker::new(db, state.tenants.clone(), Default::default()).spawn()
    });
    // The business webhook's delivery worker, likewise.
    let _webhooks = state.db.clone().and_then(|db| {
        domain::webhooks::WebhookWorker::new(db, state.tenants.clone(), Default::default())
            .map_err(|e| tracing::error!(error = %e, "webhook worker not started"))
            .ok()
            .map(domain::webhooks::WebhookWorker::spawn)
    });
    let served = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServerError::Io);
    if let Some(outbox) = outbox {
        outbox.abort();
    }
    served
}

/// Completes on Ctrl-C or (on Unix) SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // Without a Ctrl-C handler, wait for SIGTERM alone rather than shutting down at once.
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received, finishing in-flight requests");
}
