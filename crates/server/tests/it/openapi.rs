//! The committed OpenAPI document (`docs/openapi.json`) matches what the code generates, and the served one
//! is the same document.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use crate::support;

fn committed_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

#[test]
fn committed_document_matches_the_code() {
    let committed = std::fs::read_to_string(committed_path()).unwrap_or_default();
    let generated = server::openapi::document_json();
    assert!(
        committed == generated,
        "docs/openapi.json is out of date: regenerate it with `cargo run -- openapi > docs/openapi.json`"
    );
}

#[test]
fn document_lists_every_route_with_its_security() {
    let doc: serde_json::Value = serde_json::from_str(&server::openapi::document_json()).unwrap();
    for path in ["/healthz", "/readyz", "/api/v1/tenants/{tenant}/tokens"] {
        assert!(doc["paths"][path]["get"].is_object(), "{path} missing");
    }
    assert_eq!(
        doc["paths"]["/api/v1/tenants/{tenant}/tokens"]["get"]["security"][0]["api_key"],
        serde_json::json!([])
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn served_document_is_the_generated_one() {
    let app = server::router(
        support::state(support::config_from(&support::toml_with_key()), false).await,
    );
    let resp = app
        .oneshot(
            Request::get("/api/v1/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let served: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let generated: serde_json::Value =
        serde_json::from_str(&server::openapi::document_json()).unwrap();
    assert_eq!(served, generated);
}
