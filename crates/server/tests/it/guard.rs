//! The provider guard on a small router: 401 without a session or with one that does not verify, 403
//! for a session from another provider or app, the handler with the session otherwise; bearer and
//! cookie; the tenant from the path (sessions do not cross tenants) or fixed.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use domain::identity::{
    AccountGraph, AppKind, Provider, SessionConfig, SessionOrigin, SessionToken, Sessions,
    WechatLogin, WechatProfile,
};
use serde_json::{Value, json};
use server::AppState;
use server::guard::{GuardedSession, SESSION_COOKIE, require_origin, require_session};
use tower::ServiceExt;
use wx_api::clock::SystemClock;

use crate::support::{API_KEY, config_from, state, toml_with_key};

async fn whoami(s: GuardedSession) -> axum::Json<Value> {
    axum::Json(json!({
        "tenant": s.tenant,
        "user": s.user().id.get(),
        "provider": s.session().provider,
        "app": s.session().app,
    }))
}

/// A second tenant beside `acme`, so a session can be presented to the wrong one.
fn two_tenants() -> String {
    format!(
        "{}\n[tenants.beta]\n[tenants.beta.wecom]\ncorpid = \"ww0000000000000002\"\n[tenants.beta.wecom.apps.main]\nagentid = 5\nsecret = \"s\"\n",
        toml_with_key()
    )
}

struct Fixture {
    state: AppState,
    sessions: Sessions,
    user: i64,
    user_id: domain::UserId,
}

async fn fixture() -> Fixture {
    let state = state(config_from(&two_tenants()), true).await;
    let db = state.db.clone().unwrap();
    db.migrate().await.unwrap();
    let clock = Arc::new(SystemClock);
    let who = AccountGraph::new(db.clone(), clock.clone())
        .resolve_wechat_identity(
            "acme",
            &WechatLogin {
                appid: "wxoa1".to_owned(),
                app_kind: AppKind::OfficialAccount,
                openid: "oGuard1".to_owned(),
                unionid: None,
                profile: WechatProfile {
                    nickname: Some("Wang".to_owned()),
                    avatar: None,
                },
            },
        )
        .await
        .unwrap();
    Fixture {
        state,
        sessions: Sessions::new(db, clock, SessionConfig::default()),
        user: who.user_id.get(),
        user_id: who.user_id,
    }
}

impl Fixture {
    async fn session(&self, provider: Provider, app: &str) -> SessionToken {
        self.sessions
            .create(
                "acme",
                self.user_id,
                &SessionOrigin {
                    provider,
                    app: app.to_owned(),
                    identity: None,
                },
            )
            .await
            .unwrap()
            .0
    }
}

async fn call(
    app: &Router,
    uri: &str,
    headers: &[(header::HeaderName, String)],
) -> (StatusCode, Value) {
    let mut req = Request::get(uri);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn bearer(t: &str) -> Vec<(header::HeaderName, String)> {
    vec![(header::AUTHORIZATION, format!("Bearer {t}"))]
}

fn cookie(t: &str) -> Vec<(header::HeaderName, String)> {
    vec![(
        header::COOKIE,
        format!("theme=dark; {SESSION_COOKIE}={t}; lang=zh"),
    )]
}

#[tokio::test]
async fn only_sessions_from_the_wecom_app_main_pass() {
    let f = fixture().await;
    let app = Router::new()
        .route("/t/{tenant}/approvals", get(whoami))
        .route_layer(require_origin(Provider::Wecom, Some("main")))
        .layer(axum::Extension(f.state.clone()));
    let uri = "/t/acme/approvals";

    let wecom_main = f.session(Provider::Wecom, "main").await;
    let (status, json) = call(&app, uri, &bearer(wecom_main.expose())).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(
        json,
        json!({"tenant": "acme", "user": f.user, "provider": "wecom", "app": "main"})
    );
    let (status, _) = call(&app, uri, &cookie(wecom_main.expose())).await;
    assert_eq!(status, StatusCode::OK);

    // No session at all, or only the tenant's API key: 401 session_missing.
    for headers in [
        vec![],
        bearer(API_KEY),
        vec![(header::COOKIE, "theme=dark".to_owned())],
    ] {
        let (status, json) = call(&app, uri, &headers).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{json}");
        assert_eq!(json["error"]["code"], "session_missing");
        assert!(
            json["error"]["message"]
                .as_str()
                .unwrap()
                .contains(SESSION_COOKIE)
        );
    }

    // Tokens that do not verify: the verify endpoint's codes.
    let (status, json) = call(&app, uri, &bearer("wxs_short")).await;
    assert_eq!(
        (status, json["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("session_malformed"))
    );
    let unknown = format!("wxs_{}", "ab".repeat(32));
    let (status, json) = call(&app, uri, &cookie(&unknown)).await;
    assert_eq!(
        (status, json["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("session_unknown"))
    );
    let revoked = f.session(Provider::Wecom, "main").await;
    assert!(f.sessions.revoke("acme", revoked.expose()).await.unwrap());
    let (status, json) = call(&app, uri, &bearer(revoked.expose())).await;
    assert_eq!(
        (status, json["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("session_revoked"))
    );

    // Valid, but from elsewhere: 403 naming where it came from and what is required.
    for (provider, app_name) in [
        (Provider::WechatOfficialAccount, "wxoa1"),
        (Provider::Wecom, "hr"),
        (Provider::WecomMiniProgram, "main"),
    ] {
        let t = f.session(provider, app_name).await;
        let (status, json) = call(&app, uri, &bearer(t.expose())).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{provider} {app_name}: {json}"
        );
        assert_eq!(json["error"]["code"], "session_provider_mismatch");
        let msg = json["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(&format!("provider `{provider}` and app `{app_name}`")),
            "{msg}"
        );
        assert!(
            msg.contains("provider `wecom` and app `main` is required"),
            "{msg}"
        );
    }

    // The session belongs to acme: presented on beta's path it is unknown there.
    let (status, json) = call(&app, "/t/beta/approvals", &bearer(wecom_main.expose())).await;
    assert_eq!(
        (status, json["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("session_unknown"))
    );
    let (status, json) = call(&app, "/t/nope/approvals", &bearer(wecom_main.expose())).await;
    assert_eq!(
        (status, json["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("tenant_not_found"))
    );
}

/// An empty session cookie is no session: 401 `session_missing`, like no cookie at all (not
/// `session_malformed`, which is for a token that is there but cannot be one). A quoted token is unquoted.
#[tokio::test]
async fn an_empty_session_cookie_is_a_missing_session() {
    let f = fixture().await;
    let app = Router::new()
        .route("/t/{tenant}/approvals", get(whoami))
        .route_layer(require_session())
        .layer(axum::Extension(f.state.clone()));
    let uri = "/t/acme/approvals";
    for value in ["", "\"\"", " "] {
        let (status, json) = call(&app, uri, &cookie(value)).await;
        assert_eq!(
            (status, json["error"]["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("session_missing")),
            "cookie value {value:?}: {json}"
        );
    }
    let (status, json) = call(&app, uri, &[(header::COOKIE, format!("{SESSION_COOKIE}="))]).await;
    assert_eq!(
        (status, json["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("session_missing")),
        "{json}"
    );

    let t = f.session(Provider::Wecom, "main").await;
    let (status, json) = call(&app, uri, &cookie(&format!("\"{}\"", t.expose()))).await;
    assert_eq!(status, StatusCode::OK, "{json}");
}

#[tokio::test]
async fn provider_only_any_session_and_a_fixed_tenant() {
    let f = fixture().await;
    let oa = f.session(Provider::WechatOfficialAccount, "wxoa1").await;
    let wecom_hr = f.session(Provider::Wecom, "hr").await;
    let app = Router::new()
        .route("/any-wecom-app", get(whoami))
        .route_layer(
            require_origin(Provider::Wecom, None)
                .tenant("acme")
                .with_state(f.state.clone()),
        )
        .merge(
            Router::new()
                .route("/anyone", get(whoami))
                .route_layer(require_session().tenant("acme").with_state(f.state.clone())),
        );
    let (status, json) = call(&app, "/any-wecom-app", &bearer(wecom_hr.expose())).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["app"], "hr");
    let (status, json) = call(&app, "/any-wecom-app", &bearer(oa.expose())).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{json}");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("but provider `wecom` is required")
    );
    let (status, json) = call(&app, "/anyone", &cookie(oa.expose())).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["provider"], "wechat_official_account");
    let (status, _) = call(&app, "/anyone", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// The verify endpoint applies the same requirement and wording as the guard.
#[tokio::test]
async fn verify_endpoint_shares_the_requirement() {
    let f = fixture().await;
    let t = f.session(Provider::Wecom, "hr").await;
    let app = server::router(f.state.clone());
    let req = Request::post("/api/v1/tenants/acme/sessions/verify")
        .header("content-type", "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {API_KEY}"))
        .body(Body::from(
            json!({"token": t.expose(), "require_provider": "wecom", "require_app": "main"})
                .to_string(),
        ))
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let json: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(json["error"]["code"], "session_provider_mismatch");
    assert_eq!(
        json["error"]["message"],
        "the session came through provider `wecom` and app `hr`, but provider `wecom` and app `main` is required"
    );
}

/// Inside the bridge's own router the state comes from the request extensions.
#[tokio::test]
async fn the_guard_finds_the_state_the_bridge_router_provides() {
    let f = fixture().await;
    let t = f.session(Provider::Wecom, "main").await;
    // server::router puts AppState in the extensions; a router without it gets a clear 500.
    let bare = Router::new()
        .route("/t/{tenant}/x", get(whoami))
        .route_layer(require_origin(Provider::Wecom, Some("main")));
    let (status, json) = call(&bare, "/t/acme/x", &bearer(t.expose())).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{json}");
    let with_state = bare.layer(axum::Extension(f.state.clone()));
    let (status, _) = call(&with_state, "/t/acme/x", &bearer(t.expose())).await;
    assert_eq!(status, StatusCode::OK);
}
