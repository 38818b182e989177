//! The route table. Each submodule holds the handlers of one area.

pub(crate) mod admin;
pub(crate) mod auth;
pub(crate) mod callbacks;
pub(crate) mod directory;
pub(crate) mod health;
pub(crate) mod identities;
pub(crate) mod inbox;
pub(crate) mod jssdk;
pub(crate) mod messages;
pub(crate) mod miniprogram;
pub(crate) mod progress;
pub(crate) mod sessions;
pub(crate) mod sync;
pub(crate) mod tokens;
pub(crate) mod webhooks;

use axum::Router;
use axum::routing::{get, post};

use crate::AppState;
use crate::error::WebError;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/api/v1/tenants/{tenant}/tokens", get(tokens::token_health))
        .route("/api/v1/openapi.json", get(crate::openapi::serve_document))
        .merge(directory_routes())
        .merge(sync_routes())
        .merge(auth::routes())
        .merge(callbacks::routes())
        .merge(inbox::routes())
        .merge(jssdk_routes())
        .merge(miniprogram::routes())
        .merge(messages::routes())
        .merge(identities::routes())
        .merge(webhooks::routes())
        .merge(admin::routes())
        .route(
            "/api/v1/tenants/{tenant}/sessions/verify",
            post(sessions::verify_session),
        )
        .route(
            "/api/v1/tenants/{tenant}/sessions/revoke",
            post(sessions::revoke_session),
        )
        .fallback(|| async { WebError::NotFound })
}

/// The lookup API (`routes::directory`).
fn directory_routes() -> Router<AppState> {
    const T: &str = "/api/v1/tenants/{tenant}";
    Router::new()
        .route(&format!("{T}/users"), get(directory::users))
        .route(&format!("{T}/users/{{user_id}}"), get(directory::user))
        .route(
            &format!("{T}/users/{{user_id}}/roles"),
            get(directory::user_roles),
        )
        .route(
            &format!("{T}/wecom/users/{{userid}}"),
            get(directory::user_by_wecom_userid),
        )
        .route(&format!("{T}/roles/{{role_id}}"), get(directory::role))
        .route(
            &format!("{T}/roles/{{role_id}}/members"),
            get(directory::role_members),
        )
        .route(
            &format!("{T}/roles/{{role_id}}/department"),
            get(directory::role_department),
        )
        .route(
            &format!("{T}/wecom/departments/{{department_id}}"),
            get(directory::role_by_department),
        )
}

/// Sync runs (`routes::sync`).
fn sync_routes() -> Router<AppState> {
    const T: &str = "/api/v1/tenants/{tenant}";
    Router::new()
        .route(&format!("{T}/sync"), post(sync::start_sync))
        .route(&format!("{T}/sync/runs"), get(sync::list_runs))
        .route(&format!("{T}/sync/runs/{{run_id}}"), get(sync::get_run))
        .route(
            &format!("{T}/sync/runs/{{run_id}}/events"),
            get(sync::run_events),
        )
}

/// JS-SDK configuration and the web SDK (`routes::jssdk`); the config route is public.
fn jssdk_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/tenants/{tenant}/jssdk/config",
            get(jssdk::config).options(jssdk::config_preflight),
        )
        .route("/sdk/wxbridge-web.js", get(jssdk::web_js))
        .route("/sdk/demo.html", get(jssdk::demo_html))
        .route("/sdk/demo.js", get(jssdk::demo_js))
}
