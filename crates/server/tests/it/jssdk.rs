//! The JS-SDK config route against the simulator: a WeCom app's wx.config + wx.agentConfig and an
//! official account's wx.config, signed with the tickets the simulator issued (fetched once for many
//! pages, as `/_sim/stats` shows), the fragment dropped, hosts off the JS-safe list refused before any
//! ticket is fetched, CORS only for the app's domains; and the web SDK and demo served from the binary.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use domain::Tenants;
use domain::identity::jssdk::{JsApp, JsProvider, sign_config};
use serde_json::Value;
use server::AppState;
use tower::ServiceExt;
use wx_api::clock::SystemClock;
use wx_api::token::MemoryTokenStore;
use wx_sim::{RunningSim, SimConfig, Simulator};
use wxbridge_config::FileConfig;

use crate::support::config_from;

const DOMAIN: &str = "app.example.com";
const PAGE: &str = "https://app.example.com/orders?id=7&x=%E4%B8%AD";

struct Env {
    sim: Simulator,
    running: RunningSim,
    app: axum::Router,
    state: AppState,
    wecom_app: String,
    oa: String,
}

async fn env() -> Env {
    let sim = Simulator::generate(SimConfig::new(3, 10, 2));
    let running = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut file =
        FileConfig::from_toml_str(&sim.info().wxbridge_config("127.0.0.1:0").unwrap()).unwrap();
    let demo = file.tenants.get_mut("demo").unwrap();
    let wecom = demo.wecom.as_mut().unwrap();
    let (wecom_app, a) = wecom.apps.iter_mut().next().unwrap();
    a.js_safe_domains = vec![DOMAIN.to_owned(), "intranet.example.com:8443".to_owned()];
    let wecom_app = wecom_app.clone();
    let wechat = demo.wechat.as_mut().unwrap();
    let (oa, o) = wechat.official_accounts.iter_mut().next().unwrap();
    o.js_safe_domains = vec![DOMAIN.to_owned()];
    let oa = oa.clone();
    let config = config_from(&file.to_toml_string().unwrap());
    let tokens = Tenants::token_manager(
        &config,
        Arc::new(MemoryTokenStore::new()),
        Arc::new(SystemClock),
    );
    let tenants = Tenants::build(&config, tokens).unwrap();
    let state = AppState::new(Arc::new(config), tenants, None);
    Env {
        sim,
        running,
        app: server::router(state.clone()),
        state,
        wecom_app,
        oa,
    }
}

/// Percent-encode everything but unreserved characters, as encodeURIComponent would.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn get(
    app: &axum::Router,
    uri: &str,
    origin: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut req = Request::get(uri);
    if let Some(o) = origin {
        req = req.header(header::ORIGIN, o);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn config_uri(app: &str, provider: Option<&str>, page: &str) -> String {
    let mut uri = format!(
        "/api/v1/tenants/demo/jssdk/config?app={}&url={}",
        enc(app),
        enc(page)
    );
    if let Some(p) = provider {
        uri.push_str(&format!("&provider={p}"));
    }
    uri
}

/// The simulator's current ticket, asked directly (it answers the cached one until it expires).
async fn sim_ticket(base: &str, token_query: &str, ticket_path: &str) -> String {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let token: Value = http
        .get(format!("{base}{token_query}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap();
    let sep = if ticket_path.contains('?') { '&' } else { '?' };
    let ticket: Value = http
        .get(format!("{base}{ticket_path}{sep}access_token={token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    ticket["ticket"].as_str().unwrap().to_owned()
}

/// Calls per API path, read over the simulator's control API.
async fn stats(base: &str) -> Value {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{base}/_sim/stats"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()
}

fn calls(stats: &Value, api: &str) -> u64 {
    stats["calls"][api]
        .as_object()
        .map(|m| m.values().map(|v| v.as_u64().unwrap()).sum())
        .unwrap_or(0)
}

#[tokio::test]
async fn wecom_config_signed_with_the_simulators_tickets_fetched_once() {
    let e = env().await;
    let base = e.running.base_url.clone();

    // Refusals first: none of them fetches a ticket or a token.
    let (status, headers, json) = get(
        &e.app,
        &config_uri(&e.wecom_app, None, "https://evil.example.net/x#y"),
        Some("https://evil.example.net"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(json["error"]["code"], "url_not_allowed");
    let msg = json["error"]["message"].as_str().unwrap();
    assert!(msg.contains("`evil.example.net`"), "{msg}");
    assert!(
        msg.contains("app.example.com, intranet.example.com:8443"),
        "{msg}"
    );
    assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    for (uri, code) in [
        (
            config_uri(&e.wecom_app, None, "https://app.example.com.evil.net/"),
            "url_not_allowed",
        ),
        (
            config_uri(&e.wecom_app, None, "https://intranet.example.com/"),
            "url_not_allowed",
        ),
        (
            config_uri(&e.wecom_app, None, "ftp://app.example.com/"),
            "bad_url",
        ),
        (config_uri(&e.wecom_app, None, "/relative"), "bad_url"),
        (
            config_uri(&e.wecom_app, Some("wechat"), PAGE),
            "app_not_found",
        ),
        (config_uri("nope", None, PAGE), "app_not_found"),
        (
            config_uri(&e.wecom_app, Some("alipay"), PAGE),
            "bad_request",
        ),
        (
            format!("/api/v1/tenants/demo/jssdk/config?app={}", e.wecom_app),
            "bad_request",
        ),
        (
            format!("/api/v1/tenants/demo/jssdk/config?url={}", enc(PAGE)),
            "bad_request",
        ),
        (
            format!(
                "/api/v1/tenants/nope/jssdk/config?app={}&url={}",
                e.wecom_app,
                enc(PAGE)
            ),
            "tenant_not_found",
        ),
    ] {
        let (status, _, json) = get(&e.app, &uri, None).await;
        assert!(status.is_client_error(), "{uri}: {status}");
        assert_eq!(json["error"]["code"], code, "{uri}: {json}");
    }
    let s = stats(&base).await;
    assert_eq!(calls(&s, "/cgi-bin/gettoken"), 0, "{s}");
    assert_eq!(calls(&s, "/cgi-bin/get_jsapi_ticket"), 0, "{s}");

    // Many pages (some at once): one token, one company ticket, one app ticket upstream.
    let page_with_fragment = format!("{PAGE}#/detail?tab=2");
    let mut answers = Vec::new();
    let mut concurrent = Vec::new();
    for i in 0..8 {
        let app = e.app.clone();
        let uri = config_uri(&e.wecom_app, Some("wecom"), &format!("{PAGE}#{i}"));
        concurrent.push(tokio::spawn(async move {
            get(&app, &uri, Some("https://app.example.com")).await
        }));
    }
    for c in concurrent {
        answers.push(c.await.unwrap());
    }
    for _ in 0..12 {
        answers.push(
            get(
                &e.app,
                &config_uri(&e.wecom_app, None, &page_with_fragment),
                Some("https://app.example.com"),
            )
            .await,
        );
    }
    let s = stats(&base).await;
    assert_eq!(calls(&s, "/cgi-bin/gettoken"), 1, "{s}");
    assert_eq!(calls(&s, "/cgi-bin/get_jsapi_ticket"), 1, "{s}");
    assert_eq!(calls(&s, "/cgi-bin/ticket/get"), 1, "{s}");

    // The tickets the simulator issued (asked directly; it answers the cached ones).
    let corp = &e.sim.info().corps[0];
    let app_info = corp.apps.iter().find(|a| a.name == e.wecom_app).unwrap();
    let token_query = format!(
        "/cgi-bin/gettoken?corpid={}&corpsecret={}",
        corp.corpid, app_info.secret
    );
    let jsapi = sim_ticket(&base, &token_query, "/cgi-bin/get_jsapi_ticket").await;
    let agent = sim_ticket(&base, &token_query, "/cgi-bin/ticket/get?type=agent_config").await;
    assert!(jsapi.starts_with("sim_") && agent.starts_with("sim_"));
    assert_ne!(jsapi, agent);

    let tenant = e.state.tenants.get("demo").unwrap();
    let js_app = JsApp::resolve(tenant, &e.wecom_app, Some(JsProvider::Wecom)).unwrap();
    let mut nonces = std::collections::HashSet::new();
    for (status, headers, json) in &answers {
        assert_eq!(*status, StatusCode::OK, "{json}");
        assert_eq!(
            headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example.com"
        );
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(json["provider"], "wecom");
        assert_eq!(json["app"], e.wecom_app.as_str());
        assert_eq!(json["url"], PAGE, "the fragment is dropped, the query kept");
        let c = &json["config"];
        assert_eq!(c["beta"], true);
        assert_eq!(c["appId"], corp.corpid.as_str());
        let a = &json["agent_config"];
        assert_eq!(a["corpid"], corp.corpid.as_str());
        assert_eq!(a["agentid"], i64::from(app_info.agentid));
        assert_eq!(a["nonceStr"], c["nonceStr"]);
        let ts = c["timestamp"].as_i64().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!((now - ts).abs() < 600, "timestamp {ts} is in seconds");
        let nonce = c["nonceStr"].as_str().unwrap();
        assert!(nonces.insert(nonce.to_owned()), "nonce {nonce} repeated");
        // What the page would sign with the simulator's tickets.
        let expected = sign_config(&js_app, PAGE, &jsapi, Some(&agent), ts, nonce);
        assert_eq!(c["signature"], expected.config.signature.as_str());
        assert_eq!(
            a["signature"],
            expected.agent_config.unwrap().signature.as_str()
        );
        let text = json.to_string();
        assert!(!text.contains(&jsapi) && !text.contains(&agent));
    }

    // A port-qualified domain matches that port; a foreign origin gets no CORS header.
    let (status, headers, json) = get(
        &e.app,
        &config_uri(&e.wecom_app, None, "https://intranet.example.com:8443/p"),
        Some("https://elsewhere.example.org"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());

    // The preflight answers the app's origins only.
    let preflight = |origin: &'static str| {
        Request::options(config_uri(&e.wecom_app, None, PAGE))
            .header(header::ORIGIN, origin)
            .header("access-control-request-method", "GET")
            .body(Body::empty())
            .unwrap()
    };
    let resp = e
        .app
        .clone()
        .oneshot(preflight("https://app.example.com"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        resp.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example.com"
    );
    let resp = e
        .app
        .clone()
        .oneshot(preflight("https://evil.example.net"))
        .await
        .unwrap();
    assert!(
        resp.headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none()
    );

    e.running.shutdown().await;
}

#[tokio::test]
async fn official_account_config_has_no_agent_config() {
    let e = env().await;
    let base = e.running.base_url.clone();
    let mut answers = Vec::new();
    for i in 0..5 {
        let (status, _, json) = get(
            &e.app,
            &config_uri(&e.oa, None, &format!("{PAGE}#top{i}")),
            Some("https://app.example.com"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{json}");
        answers.push(json);
    }
    let s = stats(&base).await;
    assert_eq!(calls(&s, "/cgi-bin/ticket/getticket"), 1, "{s}");

    let oa = &e.sim.info().wechat.official_accounts[0];
    let ticket = sim_ticket(
        &base,
        &format!(
            "/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
            oa.appid, oa.secret
        ),
        "/cgi-bin/ticket/getticket?type=jsapi",
    )
    .await;
    let tenant = e.state.tenants.get("demo").unwrap();
    let js_app = JsApp::resolve(tenant, &e.oa, None).unwrap();
    for json in answers {
        assert_eq!(json["provider"], "wechat");
        assert_eq!(json["app"], e.oa.as_str());
        assert_eq!(json["url"], PAGE);
        assert!(json.get("agent_config").is_none(), "{json}");
        let c = &json["config"];
        assert!(c.get("beta").is_none(), "{json}");
        assert_eq!(c["appId"], oa.appid.as_str());
        let expected = sign_config(
            &js_app,
            PAGE,
            &ticket,
            None,
            c["timestamp"].as_i64().unwrap(),
            c["nonceStr"].as_str().unwrap(),
        );
        assert_eq!(c["signature"], expected.config.signature.as_str());
    }
    e.running.shutdown().await;
}

#[tokio::test]
async fn the_web_sdk_and_demo_are_served_with_cache_headers() {
    let e = env().await;
    let (status, headers, _) = get(&e.app, "/sdk/wxbridge-web.js", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(headers[header::CACHE_CONTROL], "public, max-age=300");
    let etag = headers[header::ETAG].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.len() > 10, "{etag}");

    let resp = e
        .app
        .clone()
        .oneshot(
            Request::get("/sdk/wxbridge-web.js")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let text = std::str::from_utf8(&body).unwrap();
    assert!(text.contains("/jssdk/config?provider="));
    assert!(text.contains("wx.agentConfig"));

    let resp = e
        .app
        .clone()
        .oneshot(
            Request::get("/sdk/wxbridge-web.js")
                .header(header::IF_NONE_MATCH, &etag)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(resp.headers()[header::ETAG].to_str().unwrap(), etag);

    let (status, headers, _) = get(&e.app, "/sdk/demo.html", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    let script_src = csp
        .split(';')
        .find(|d| d.trim().starts_with("script-src"))
        .unwrap();
    assert!(script_src.contains("'self'"), "{csp}");
    assert!(!script_src.contains("unsafe-inline"), "{csp}");
    let (status, _, _) = get(&e.app, "/sdk/demo.js", None).await;
    assert_eq!(status, StatusCode::OK);
    e.running.shutdown().await;
}
