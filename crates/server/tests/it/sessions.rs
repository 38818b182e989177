//! Session verify and revoke over HTTP (in-process): the user with roles and identities, clear 401 codes
//! for unknown / revoked / malformed tokens, the provider/app requirement, API key and body checks.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use domain::identity::{
    AccountGraph, Provider, SessionConfig, SessionOrigin, Sessions, WechatLogin, WechatProfile,
};
use tower::ServiceExt;
use wx_api::clock::SystemClock;

use crate::support::{API_KEY, config_from, state, toml_with_key};

async fn post(
    app: axum::Router,
    uri: &str,
    auth: Option<&str>,
    body: &str,
) -> (StatusCode, serde_json::Value) {
    let mut req = Request::post(uri).header("content-type", "application/json");
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = app
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn verify_and_revoke_a_session_over_http() {
    let st = state(config_from(&toml_with_key()), true).await;
    let db = st.db.clone().unwrap();
    db.migrate().await.unwrap();
    let clock = Arc::new(SystemClock);
    let graph = AccountGraph::new(db.clone(), clock.clone());
    let sessions = Sessions::new(db.clone(), clock, SessionConfig::default());
    let who = graph
        .resolve_wechat_identity(
            "acme",
            &WechatLogin {
                appid: "wxmp1".to_owned(),
                app_kind: domain::identity::AppKind::MiniProgram,
                openid: "oUser1".to_owned(),
                unionid: Some("uUser1".to_owned()),
                profile: WechatProfile {
                    nickname: Some("Lee".to_owned()),
                    avatar: None,
                },
            },
        )
        .await
        .unwrap();
    let (token, _) = sessions
        .create(
            "acme",
            who.user_id,
            &SessionOrigin {
                provider: Provider::WechatMiniProgram,
                app: "shop".to_owned(),
                identity: Some(who.identity.id),
            },
        )
        .await
        .unwrap();
    let app = server::router(st);
    let auth = format!("Bearer {API_KEY}");
    let verify = "/api/v1/tenants/acme/sessions/verify";
    let body = serde_json::json!({ "token": token.expose() }).to_string();

    let (status, json) = post(app.clone(), verify, Some(&auth), &body).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["user"]["id"], who.user_id.get());
    assert_eq!(json["user"]["name"], "Lee");
    assert_eq!(json["user"]["status"], "active");
    assert_eq!(json["user"]["roles"], serde_json::json!([]));
    assert_eq!(json["user"]["identities"]["wecom"], serde_json::json!([]));
    let wechat = &json["user"]["identities"]["wechat"][0];
    assert_eq!(wechat["openid"], "oUser1");
    assert_eq!(wechat["unionid"], "uUser1");
    assert_eq!(wechat["app_kind"], "mini_program");
    assert_eq!(json["session"]["provider"], "wechat_mini_program");
    assert_eq!(json["session"]["app"], "shop");
    assert!(!json.to_string().contains(&token.expose()[4..]));

    // The provider/app requirement.
    let required = serde_json::json!({ "token": token.expose(), "require_provider": "wechat_mini_program", "require_app": "shop" });
    let (status, _) = post(app.clone(), verify, Some(&auth), &required.to_string()).await;
    assert_eq!(status, StatusCode::OK);
    let wrong = serde_json::json!({ "token": token.expose(), "require_provider": "wecom" });
    let (status, json) = post(app.clone(), verify, Some(&auth), &wrong.to_string()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(json["error"]["code"], "session_provider_mismatch");

    // No API key, unknown tenant, bad body, malformed and unknown tokens.
    let (status, json) = post(app.clone(), verify, None, &body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json["error"]["code"], "unauthorized");
    let (status, _) = post(
        app.clone(),
        "/api/v1/tenants/nope/sessions/verify",
        Some(&auth),
        &body,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, json) = post(app.clone(), verify, Some(&auth), r#"{"tok": 1}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    let (status, json) = post(app.clone(), verify, Some(&auth), r#"{"token": "abc"}"#).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json["error"]["code"], "session_malformed");
    let unknown = serde_json::json!({ "token": format!("wxs_{}", "a".repeat(64)) }).to_string();
    let (status, json) = post(app.clone(), verify, Some(&auth), &unknown).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json["error"]["code"], "session_unknown");

    // Revoke, twice; then verify says revoked.
    let revoke = "/api/v1/tenants/acme/sessions/revoke";
    let (status, json) = post(app.clone(), revoke, Some(&auth), &body).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["revoked"], true);
    let (_, json) = post(app.clone(), revoke, Some(&auth), &body).await;
    assert_eq!(json["revoked"], false);
    let (status, json) = post(app.clone(), verify, Some(&auth), &body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json["error"]["code"], "session_revoked");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );
}

/// `[server] session_idle_timeout_secs` reaches the verify route: a session last seen two minutes ago
/// verifies under the defaults (no idle timeout) and is expired under a 60 s idle timeout.
#[tokio::test]
async fn configured_idle_timeout_applies_to_verify() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let db = store::Db::connect("sqlite::memory:").await.unwrap();
    db.migrate().await.unwrap();
    let past = Arc::new(wx_api::clock::ManualClock::new(now - 120_000));
    let graph = AccountGraph::new(db.clone(), past.clone());
    let who = graph
        .resolve_wechat_identity(
            "acme",
            &WechatLogin {
                appid: "wxmp1".to_owned(),
                app_kind: domain::identity::AppKind::MiniProgram,
                openid: "oIdle".to_owned(),
                unionid: None,
                profile: WechatProfile::default(),
            },
        )
        .await
        .unwrap();
    let (token, _) = Sessions::new(db.clone(), past, SessionConfig::default())
        .create(
            "acme",
            who.user_id,
            &SessionOrigin {
                provider: Provider::WechatMiniProgram,
                app: "shop".to_owned(),
                identity: Some(who.identity.id),
            },
        )
        .await
        .unwrap();
    let body = serde_json::json!({ "token": token.expose() }).to_string();
    let auth = format!("Bearer {API_KEY}");
    let verify = "/api/v1/tenants/acme/sessions/verify";

    let idle = toml_with_key().replace(
        "[tokens]",
        "[server]\nsession_idle_timeout_secs = 60\n[tokens]",
    );
    for (toml, expect) in [
        (idle, StatusCode::UNAUTHORIZED),
        (toml_with_key(), StatusCode::OK),
    ] {
        let mut st = state(config_from(&toml), false).await;
        st.db = Some(db.clone());
        let (status, json) = post(server::router(st), verify, Some(&auth), &body).await;
        assert_eq!(status, expect, "{json}");
        if expect == StatusCode::UNAUTHORIZED {
            assert_eq!(json["error"]["code"], "session_expired");
        }
    }
}
