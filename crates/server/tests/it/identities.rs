//! Operator link / unlink of WeChat identities over HTTP (in-process, SQLite): link moves an identity and
//! writes an audit row, unlink detaches it into a new user, clear 400/404/409 codes, API key checks.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use domain::identity::{AccountGraph, AppKind, Resolution, WechatLogin, WechatProfile};
use tower::ServiceExt;
use wx_api::clock::SystemClock;

use crate::support::{API_KEY, config_from, state, toml_with_key};

async fn call(
    app: axum::Router,
    method: &str,
    uri: &str,
    auth: Option<&str>,
    body: Option<serde_json::Value>,
) -> (StatusCode, serde_json::Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let resp = app
        .oneshot(req.body(Body::from(body)).unwrap())
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

async fn resolve(graph: &AccountGraph, openid: &str, unionid: &str, name: &str) -> Resolution {
    graph
        .resolve_wechat_identity(
            "acme",
            &WechatLogin {
                appid: "wxoa1".to_owned(),
                app_kind: AppKind::OfficialAccount,
                openid: openid.to_owned(),
                unionid: Some(unionid.to_owned()),
                profile: WechatProfile {
                    nickname: Some(name.to_owned()),
                    avatar: None,
                },
            },
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn link_unlink_and_audit_over_http() {
    for backend in crate::api_env::backends() {
        link_unlink_and_audit_on(backend).await;
    }
}

async fn link_unlink_and_audit_on(backend: &str) {
    let mut st = state(config_from(&toml_with_key()), true).await;
    if backend == "postgres" {
        let (url, _) = crate::api_env::create_pg_database().await;
        st.db = Some(domain::Db::connect(&url).await.unwrap());
    }
    let db = st.db.clone().unwrap();
    db.migrate().await.unwrap();
    let graph = AccountGraph::new(db.clone(), Arc::new(SystemClock));
    let ann = resolve(&graph, "oAnn", "uAnn", "Ann").await;
    let bob = resolve(&graph, "oBob", "uBob", "Bob").await;
    assert_ne!(ann.user_id, bob.user_id);
    let (a, b) = (ann.user_id.get(), bob.user_id.get());
    let app = server::router(st);
    let auth = format!("Bearer {API_KEY}");
    let auth = Some(auth.as_str());
    let base = |u: i64| format!("/api/v1/tenants/acme/users/{u}/identities");

    // List.
    let (status, json) = call(app.clone(), "GET", &base(a), auth, None).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["wechat"].as_array().unwrap().len(), 1);
    assert_eq!(json["wechat"][0]["openid"], "oAnn");

    // Link Bob's identity to Ann: it moves, and an audit row says who and why.
    let link = serde_json::json!({"appid": "wxoa1", "openid": "oBob", "reason": "same person", "actor": "ops:kim"});
    let (status, json) = call(
        app.clone(),
        "POST",
        &format!("{}/link", base(a)),
        auth,
        Some(link.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["user_id"], a);
    assert_eq!(json["audit"]["action"], "link");
    assert_eq!(json["audit"]["from_user"], b);
    assert_eq!(json["audit"]["to_user"], a);
    assert_eq!(json["audit"]["actor"], "ops:kim");
    assert_eq!(json["audit"]["note"], "same person");
    let (_, json) = call(app.clone(), "GET", &base(a), auth, None).await;
    let openids: Vec<&str> = json["wechat"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["openid"].as_str().unwrap())
        .collect();
    assert_eq!(openids, ["oAnn", "oBob"]);
    let (_, json) = call(app.clone(), "GET", &base(b), auth, None).await;
    assert_eq!(json["wechat"], serde_json::json!([]));
    let (status, json) = call(
        app.clone(),
        "GET",
        &format!("{}/audit", base(a)),
        auth,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["entries"].as_array().unwrap().len(), 1);
    assert_eq!(json["entries"][0]["action"], "link");

    // Linking again to the same user: 409.
    let (status, json) = call(
        app.clone(),
        "POST",
        &format!("{}/link", base(a)),
        auth,
        Some(link.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(json["error"]["code"], "already_linked");

    // Unlink from a user that does not hold it: 409; from Ann: a new user of its own.
    let unlink = serde_json::json!({"appid": "wxoa1", "openid": "oBob", "reason": "mistake", "actor": "ops:kim"});
    let (status, json) = call(
        app.clone(),
        "POST",
        &format!("{}/unlink", base(b)),
        auth,
        Some(unlink.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{json}");
    assert_eq!(json["error"]["code"], "not_this_users_identity");
    let (status, json) = call(
        app.clone(),
        "POST",
        &format!("{}/unlink", base(a)),
        auth,
        Some(unlink),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["audit"]["action"], "unlink");
    let new_user = json["user_id"].as_i64().unwrap();
    assert_ne!(new_user, a);
    let (_, json) = call(app.clone(), "GET", &base(new_user), auth, None).await;
    assert_eq!(json["wechat"][0]["openid"], "oBob");
    let (_, json) = call(
        app.clone(),
        "GET",
        &format!("{}/audit", base(new_user)),
        auth,
        None,
    )
    .await;
    let actions: Vec<&str> = json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["unlink", "link"]);

    // Unknown user, unknown identity: 404.
    let (status, json) = call(app.clone(), "GET", &base(999_999), auth, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json["error"]["code"], "user_not_found");
    let (status, json) = call(
        app.clone(),
        "POST",
        &format!("{}/link", base(999_999)),
        auth,
        Some(link.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json["error"]["code"], "user_not_found");
    let ghost = serde_json::json!({"appid": "wxoa1", "openid": "oNobody", "actor": "ops:kim"});
    let (status, json) = call(
        app.clone(),
        "POST",
        &format!("{}/link", base(a)),
        auth,
        Some(ghost),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json["error"]["code"], "identity_not_found");

    // Bad input: empty actor, missing fields.
    let no_actor = serde_json::json!({"appid": "wxoa1", "openid": "oBob", "actor": " "});
    let (status, json) = call(
        app.clone(),
        "POST",
        &format!("{}/link", base(a)),
        auth,
        Some(no_actor),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(json["error"]["code"], "invalid_input");
    let (status, _) = call(
        app.clone(),
        "POST",
        &format!("{}/link", base(a)),
        auth,
        Some(serde_json::json!({"appid": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Wrong or missing API key: 401, nothing moved.
    let (status, json) = call(
        app.clone(),
        "POST",
        &format!("{}/link", base(a)),
        Some("Bearer wxb_wrong"),
        Some(link.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json["error"]["code"], "unauthorized");
    let (status, _) = call(app.clone(), "GET", &base(a), None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, json) = call(app.clone(), "GET", &base(new_user), auth, None).await;
    assert_eq!(json["wechat"][0]["openid"], "oBob");
}

const BACKFILL_FIXTURE: &str = r#"
[[corps]]
corpid = "ww0000000000000001"
contacts_secret = "contacts-secret-0001"
[[corps.departments]]
id = 1
name = "Root"
parentid = 0
[[corps.apps]]
name = "main"
agentid = 1000002
secret = "main-app-secret-0001"
scope = { departments = [1] }
[[wechat.official_accounts]]
name = "news"
appid = "wx0000000000000003"
secret = "news-secret-0001"
token = "newstoken"
encoding_aes_key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
original_id = "gh_000000000001"
[[wechat.users]]
unionid = "oUnion000000000000000000001"
nickname = "Ming"
openids = { wx0000000000000003 = "oOA00000000000000000000001" }
subscribed = ["wx0000000000000003"]
[[wechat.users]]
unionid = "oUnion000000000000000000002"
nickname = "Hua"
openids = { wx0000000000000003 = "oOA00000000000000000000002" }
subscribed = ["wx0000000000000003"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_an_official_account_over_http() {
    let sim = wx_sim::Simulator::from_fixture_str(BACKFILL_FIXTURE).unwrap();
    let _running = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut file = wxbridge_config::FileConfig::from_toml_str(
        &sim.info().wxbridge_config("127.0.0.1:0").unwrap(),
    )
    .unwrap();
    let (api_key, hash) = server::auth::generate_api_key();
    file.tenants.get_mut("demo").unwrap().api_key_hashes = vec![hash.to_file_string()];
    let st = state(config_from(&file.to_toml_string().unwrap()), true).await;
    let db = st.db.clone().unwrap();
    db.migrate().await.unwrap();
    let app = server::router(st);
    let auth = format!("Bearer {api_key}");
    let uri = "/api/v1/tenants/demo/wechat/official-accounts/news/backfill";

    let (status, json) = call(app.clone(), "POST", uri, Some(&auth), None).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["listed"], 2);
    assert_eq!(json["created"], 2);
    let ming = db
        .wechat_identity_by_openid("demo", "wx0000000000000003", "oOA00000000000000000000001")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ming.unionid.as_deref(), Some("oUnion000000000000000000001"));
    let (status, json) = call(app.clone(), "POST", uri, Some(&auth), None).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["created"], 0);
    assert_eq!(json["already_known"], 2);

    let (status, json) = call(
        app.clone(),
        "POST",
        "/api/v1/tenants/demo/wechat/official-accounts/nope/backfill",
        Some(&auth),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json["error"]["code"], "official_account_not_found");
    let (status, _) = call(app.clone(), "POST", uri, Some("Bearer wxb_wrong"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
