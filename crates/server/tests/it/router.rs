//! Router behaviour in-process: health, readiness, API key auth, error shape, headers.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::Response;
use tower::ServiceExt;

use crate::support::{API_KEY, config_from, state, toml_with_key};

async fn call(app: axum::Router, req: Request<Body>) -> (Response, serde_json::Value, String) {
    let resp = app.oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (Response::from_parts(parts, Body::empty()), json, text)
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn get_with_auth(uri: &str, auth: &str) -> Request<Body> {
    Request::get(uri)
        .header("authorization", auth)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn healthz_is_ok_with_security_headers_and_a_request_id() {
    let app = server::router(state(config_from(&toml_with_key()), false).await);
    let (resp, _, text) = call(app.clone(), get("/healthz")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(text, "ok");
    let h = resp.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(!h["x-request-id"].is_empty());

    // A sane incoming id is kept, so logs correlate with the caller's.
    let req = Request::get("/healthz")
        .header("x-request-id", "abc-123")
        .body(Body::empty())
        .unwrap();
    let (resp, _, _) = call(app.clone(), req).await;
    assert_eq!(resp.headers()["x-request-id"], "abc-123");
    // An unsafe one is replaced.
    let req = Request::get("/healthz")
        .header("x-request-id", "a b<script>")
        .body(Body::empty())
        .unwrap();
    let (resp, _, _) = call(app, req).await;
    assert_ne!(resp.headers()["x-request-id"], "a b<script>");
}

#[tokio::test]
async fn unknown_route_is_a_json_404_with_headers() {
    let app = server::router(state(config_from(&toml_with_key()), false).await);
    let (resp, json, _) = call(app, get("/nope")).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(json["error"]["code"], "not_found");
    assert_eq!(resp.headers()["x-frame-options"], "DENY");
    assert!(resp.headers().contains_key("x-request-id"));
}

#[tokio::test]
async fn readyz_needs_the_database() {
    let with_db = server::router(state(config_from(&toml_with_key()), true).await);
    let (resp, json, _) = call(with_db, get("/readyz")).await;
    assert_eq!(resp.status(), StatusCode::OK, "{json}");
    assert_eq!(json["tenants"], 1);

    let without = server::router(state(config_from(&toml_with_key()), false).await);
    let (resp, json, _) = call(without, get("/readyz")).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json["error"]["code"], "not_ready");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("database")
    );
}

#[tokio::test]
async fn readyz_fails_when_the_database_is_closed() {
    let st = state(config_from(&toml_with_key()), true).await;
    st.db.as_ref().unwrap().close().await;
    let (resp, json, _) = call(server::router(st), get("/readyz")).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "{json}");
}

#[tokio::test]
async fn token_health_requires_the_tenants_api_key() {
    let app = server::router(state(config_from(&toml_with_key()), false).await);
    let uri = "/api/v1/tenants/acme/tokens";

    let (resp, json, _) = call(app.clone(), get(uri)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json["error"]["code"], "unauthorized");

    for bad in [
        "Bearer wxb_wrong",
        "Basic d3hiOng=",
        &format!("Bearer {API_KEY}x"),
        API_KEY,
    ] {
        let (resp, _, _) = call(app.clone(), get_with_auth(uri, bad)).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{bad}");
    }

    let (resp, json, _) = call(
        app.clone(),
        get_with_auth(uri, &format!("Bearer {API_KEY}")),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK, "{json}");
    assert_eq!(json["tenant"], "acme");
    let tokens = json["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0]["name"], "main");
    assert_eq!(tokens[0]["cached"], false);

    let (resp, json, _) = call(
        app,
        get_with_auth("/api/v1/tenants/other/tokens", &format!("Bearer {API_KEY}")),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(json["error"]["code"], "tenant_not_found");
}

#[tokio::test]
async fn a_key_of_another_tenant_is_rejected() {
    let other_hash = server::auth::hash_api_key("wxb_other_tenant_key").to_file_string();
    let toml = format!(
        "{}\n[tenants.beta]\napi_key_hashes = [\"{other_hash}\"]\n[tenants.beta.wecom]\ncorpid = \"ww0000000000000002\"\n[tenants.beta.wecom.apps.x]\nagentid = 5\nsecret = \"s\"\n",
        toml_with_key()
    );
    let app = server::router(state(config_from(&toml), false).await);
    let (resp, _, _) = call(
        app.clone(),
        get_with_auth("/api/v1/tenants/acme/tokens", "Bearer wxb_other_tenant_key"),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (resp, _, _) = call(
        app,
        get_with_auth("/api/v1/tenants/beta/tokens", "Bearer wxb_other_tenant_key"),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[test]
fn generated_keys_have_the_prefix_and_verify_against_their_hash() {
    let (key, hash) = server::auth::generate_api_key();
    assert!(key.starts_with("wxb_") && key.len() > 30);
    assert_eq!(server::auth::hash_api_key(&key), hash);
    let (key2, _) = server::auth::generate_api_key();
    assert_ne!(key, key2);
}
