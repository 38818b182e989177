//! The admin UI's HTTP side: sign-in by bootstrap token (good, wrong, not configured), one-time links
//! (used once, expired, malformed), the cookie's flags, `me`, the CSRF rule on the tenant API and on
//! logout, an operator scoped to one tenant refused on another, logout ending the session, WeCom sign-in
//! through the simulator's login page for a member `[admin]` names and its refusal for another, the
//! security headers of `/admin/`, and every admin-only endpoint answering with real data after a sync
//! and a message (SQLite, and PostgreSQL when WXBRIDGE_TEST_POSTGRES_URL is set).

use std::sync::Arc;
use std::time::Duration;

use domain::Db;
use domain::admin::{Admin, TenantScope};
use serde_json::{Value, json};
use wx_api::clock::{Clock, ManualClock, SystemClock};
use wxbridge_config::FileConfig;

use crate::api_env::{backends, create_pg_database};
use crate::support::config_from;

const DESKTOP_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) Chrome/130.0";

struct Env {
    _sim: wx_sim::Simulator,
    _running: wx_sim::RunningSim,
    base: String,
    db: Db,
    http: reqwest::Client,
    /// The bootstrap admin token, when configured.
    admin_token: Option<String>,
}

/// The bridge over the simulator's example corp as tenant `demo` (WeCom sign-in for userid `lisi`, in
/// another case than the directory's `LiSi`) plus tenant `beta`, on `backend`.
async fn env(backend: &str, with_token: bool) -> Env {
    let sim =
        wx_sim::Simulator::from_fixture_str(include_str!("../../../wx-sim/fixtures/example.toml"))
            .unwrap();
    let running = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut file =
        FileConfig::from_toml_str(&sim.info().wxbridge_config(&addr.to_string()).unwrap()).unwrap();
    let admin_token = with_token.then(|| {
        let (token, hash) = domain::admin::generate_admin_token();
        file.server.admin_token_hash = Some(hash.to_file_string());
        token.expose().to_owned()
    });
    let demo = file.tenants.get_mut("demo").unwrap();
    let admin = demo.admin.get_or_insert_with(Default::default);
    admin.app = Some("main".to_owned());
    admin.wecom_userids = vec!["lisi".to_owned()];
    let toml = format!(
        "{}\n[tenants.beta]\n[tenants.beta.wecom]\ncorpid = \"ww0000000000000002\"\n[tenants.beta.wecom.apps.x]\nagentid = 5\nsecret = \"s\"\n",
        file.to_toml_string().unwrap()
    );
    let config = config_from(&toml);
    let dir = tempfile::tempdir().unwrap();
    let url = match backend {
        "sqlite" => format!("sqlite://{}/wx.db", dir.path().display()),
        _ => create_pg_database().await.0,
    };
    let db = Db::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    let tokens = domain::Tenants::token_manager(
        &config,
        Arc::new(wx_api::token::MemoryTokenStore::new()),
        Arc::new(SystemClock),
    );
    let tenants = domain::Tenants::build(&config, tokens).unwrap();
    let state = server::AppState::new(Arc::new(config), tenants, Some(db.clone()));
    tokio::spawn(server::serve_on(state, listener, std::future::pending()));
    // The SQLite file lives as long as the process's test; leak the directory handle with it.
    std::mem::forget(dir);
    Env {
        _sim: sim,
        _running: running,
        base: format!("http://{addr}"),
        db,
        http: reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        admin_token,
    }
}

/// A signed-in operator: the cookie's token and the session's CSRF token.
#[derive(Debug, Clone)]
struct Operator {
    cookie: String,
    csrf: String,
}

fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with(&format!("{name}=")))
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned()
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn body(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

impl Env {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn token_login(&self, token: &str) -> reqwest::Response {
        self.http
            .post(self.url("/admin/api/login/token"))
            .json(&json!({ "token": token }))
            .send()
            .await
            .unwrap()
    }

    /// GET as the operator (no CSRF header: GETs need none).
    async fn get(&self, op: Option<&Operator>, path: &str) -> (u16, Value) {
        let mut req = self.http.get(self.url(path));
        if let Some(op) = op {
            req = req.header("cookie", format!("wxbridge_admin={}", op.cookie));
        }
        body(req.send().await.unwrap()).await
    }

    /// POST as the operator with `csrf` as the X-CSRF-Token header (None: no header).
    async fn post(
        &self,
        op: &Operator,
        path: &str,
        csrf: Option<&str>,
        json_body: Value,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .post(self.url(path))
            .header("cookie", format!("wxbridge_admin={}", op.cookie))
            .json(&json_body);
        if let Some(c) = csrf {
            req = req.header("x-csrf-token", c);
        }
        body(req.send().await.unwrap()).await
    }

    /// The operator a `me` answer and its cookie make.
    async fn operator(&self, cookie: String) -> Operator {
        let (status, me) = self
            .get(
                Some(&Operator {
                    cookie: cookie.clone(),
                    csrf: String::new(),
                }),
                "/admin/api/me",
            )
            .await;
        assert_eq!(status, 200, "{me}");
        Operator {
            cookie,
            csrf: me["csrf"].as_str().unwrap().to_owned(),
        }
    }

    async fn issue_link(&self, scope: TenantScope, clock: Arc<dyn Clock>) -> String {
        Admin::new(self.db.clone(), clock)
            .issue_link(&scope)
            .await
            .unwrap()
            .expose()
            .to_owned()
    }

    /// Sign in through a one-time link scoped to `scope`.
    async fn link_operator(&self, scope: TenantScope) -> Operator {
        let token = self.issue_link(scope, Arc::new(SystemClock)).await;
        let resp = self
            .http
            .get(self.url(&format!("/admin/login/link?token={token}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302);
        let cookie = cookie_value(&set_cookie(&resp, "wxbridge_admin").unwrap());
        self.operator(cookie).await
    }

    /// Sign in through WeCom as `who` on the simulator's PC login page: the final answer of the bridge.
    async fn wecom_login(&self, who: &str) -> reqwest::Response {
        let start = self
            .http
            .get(self.url("/admin/login/wecom?tenant=demo"))
            .header("user-agent", DESKTOP_UA)
            .send()
            .await
            .unwrap();
        assert_eq!(start.status(), 302);
        let binding = set_cookie(&start, "wxb_admin_login_").map(|c| {
            assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax"), "{c}");
            c.split(';').next().unwrap().to_owned()
        });
        // The binding cookie's name carries the nonce; find it among the Set-Cookie headers.
        let binding = binding.or_else(|| {
            start
                .headers()
                .get_all("set-cookie")
                .iter()
                .map(|v| v.to_str().unwrap())
                .find(|v| v.starts_with("wxb_admin_login_"))
                .map(|v| v.split(';').next().unwrap().to_owned())
        });
        let binding = binding.expect("a login-binding cookie");
        let page_url = location(&start);
        assert!(page_url.contains("/wwlogin/sso/login"), "{page_url}");
        let page = self
            .http
            .get(&page_url)
            .header("user-agent", DESKTOP_UA)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let parsed = url::Url::parse(&page_url).unwrap();
        let mut form: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
        form.push(("pick".to_owned(), who.to_owned()));
        let picked = self
            .http
            .post(format!(
                "{}{}",
                parsed.origin().ascii_serialization(),
                parsed.path()
            ))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(picked.status(), 302, "{}", picked.text().await.unwrap());
        let done = location(&picked);
        assert!(
            done.starts_with(&self.url("/admin/login/wecom/done?tenant=demo")),
            "{done}"
        );
        self.http
            .get(&done)
            .header("cookie", binding)
            .send()
            .await
            .unwrap()
    }
}

fn error_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_sign_in_cookie_me_csrf_scope_and_logout() {
    let env = env("sqlite", true).await;

    // Wrong token: 401 admin_token_invalid, no cookie.
    let resp = env.token_login("wxa_wrong").await;
    assert!(set_cookie(&resp, "wxbridge_admin").is_none());
    let (status, v) = body(resp).await;
    assert_eq!(
        (status, error_code(&v)),
        (401, "admin_token_invalid"),
        "{v}"
    );

    // The bootstrap token: a session for every tenant in an HttpOnly, SameSite=Strict cookie.
    let resp = env.token_login(env.admin_token.as_deref().unwrap()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let c = set_cookie(&resp, "wxbridge_admin").unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(c.contains(flag), "{flag} missing: {c}");
    }
    assert!(!c.contains("Secure"), "http public URL: {c}");
    let cookie = cookie_value(&c);
    assert!(cookie.starts_with("wxas_"));
    let (_, login) = body(resp).await;
    let op = env.operator(cookie).await;
    assert_eq!(login["csrf"], op.csrf.as_str());
    let (status, me) = env.get(Some(&op), "/admin/api/me").await;
    assert_eq!(status, 200);
    assert_eq!(me["operator"]["kind"], "token");
    assert_eq!(me["operator"]["tenant_scope"], "*");
    let keys: Vec<&str> = me["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["beta", "demo"]);
    let demo = &me["tenants"][1];
    assert_eq!(demo["wecom_login"], true, "{me}");
    assert_eq!(me["tenants"][0]["wecom_login"], false, "{me}");

    // No cookie, or a made-up one: 401 admin_session_required.
    let (status, v) = env.get(None, "/admin/api/me").await;
    assert_eq!((status, error_code(&v)), (401, "admin_session_required"));
    let fake = Operator {
        cookie: format!("wxas_{}", "0".repeat(64)),
        csrf: String::new(),
    };
    let (status, v) = env.get(Some(&fake), "/admin/api/me").await;
    assert_eq!((status, error_code(&v)), (401, "admin_session_required"));

    // The tenant API takes the cookie: GET without CSRF; a write needs X-CSRF-Token.
    let (status, v) = env.get(Some(&op), "/api/v1/tenants/demo/tokens").await;
    assert_eq!(status, 200, "{v}");
    let sync = "/api/v1/tenants/demo/sync";
    let (status, v) = env.post(&op, sync, None, json!({ "dry_run": true })).await;
    assert_eq!((status, error_code(&v)), (403, "csrf_failed"), "{v}");
    let (status, v) = env
        .post(&op, sync, Some("wrong"), json!({ "dry_run": true }))
        .await;
    assert_eq!((status, error_code(&v)), (403, "csrf_failed"), "{v}");
    // A right token from another origin is refused too.
    let resp = env
        .http
        .post(env.url(sync))
        .header("cookie", format!("wxbridge_admin={}", op.cookie))
        .header("x-csrf-token", &op.csrf)
        .header("origin", "https://evil.example")
        .json(&json!({ "dry_run": true }))
        .send()
        .await
        .unwrap();
    let (status, v) = body(resp).await;
    assert_eq!((status, error_code(&v)), (403, "csrf_failed"), "{v}");
    let (status, v) = env
        .post(&op, sync, Some(&op.csrf), json!({ "dry_run": true }))
        .await;
    assert_eq!(status, 202, "{v}");
    // An unknown tenant is still 404 for an operator of every tenant.
    let (status, _) = env
        .get(Some(&op), "/admin/api/tenants/nope/dashboard")
        .await;
    assert_eq!(status, 404);

    // An operator of `demo` only: 403 admin_scope on beta, on the tenant API and the admin endpoints.
    let scoped = env
        .link_operator(TenantScope::Tenant("demo".to_owned()))
        .await;
    let (_, me) = env.get(Some(&scoped), "/admin/api/me").await;
    assert_eq!(me["operator"]["kind"], "link");
    assert_eq!(me["operator"]["tenant_scope"], "demo");
    assert_eq!(me["tenants"].as_array().unwrap().len(), 1);
    for path in [
        "/api/v1/tenants/beta/tokens",
        "/admin/api/tenants/beta/dashboard",
        "/admin/api/tenants/beta/roles/tree",
    ] {
        let (status, v) = env.get(Some(&scoped), path).await;
        assert_eq!(
            (status, error_code(&v)),
            (403, "admin_scope"),
            "{path}: {v}"
        );
    }
    let (status, _) = env
        .get(Some(&scoped), "/admin/api/tenants/demo/roles/tree")
        .await;
    assert_eq!(status, 200);

    // Logout needs the CSRF token, then ends the session and clears the cookie.
    let (status, v) = env.post(&op, "/admin/api/logout", None, json!({})).await;
    assert_eq!((status, error_code(&v)), (403, "csrf_failed"));
    let resp = env
        .http
        .post(env.url("/admin/api/logout"))
        .header("cookie", format!("wxbridge_admin={}", op.cookie))
        .header("x-csrf-token", &op.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cleared = set_cookie(&resp, "wxbridge_admin").unwrap();
    assert!(
        cleared.starts_with("wxbridge_admin=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let (status, v) = env.get(Some(&op), "/admin/api/me").await;
    assert_eq!((status, error_code(&v)), (401, "admin_session_required"));
    let (status, _) = env.get(Some(&op), "/api/v1/tenants/demo/tokens").await;
    assert_eq!(status, 401);
    // The other session lives on.
    let (status, _) = env.get(Some(&scoped), "/admin/api/me").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_token_the_token_sign_in_is_refused() {
    let env = env("sqlite", false).await;
    let (status, options) = env.get(None, "/admin/api/login/options").await;
    assert_eq!(status, 200);
    assert_eq!(options["token_login"], false);
    // Only the tenant with WeCom sign-in configured is offered.
    assert_eq!(
        options["tenants"],
        json!([{ "key": "demo", "name": options["tenants"][0]["name"], "wecom_login": true }])
    );
    let (status, v) = body(env.token_login("wxa_anything").await).await;
    assert_eq!(
        (status, error_code(&v)),
        (403, "admin_token_not_configured"),
        "{v}"
    );
    let (status, v) = body(
        env.http
            .post(env.url("/admin/api/login/token"))
            .body("not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_time_link_signs_in_once_and_not_after_it_expired() {
    let env = env("sqlite", true).await;
    let token = env
        .issue_link(TenantScope::All, Arc::new(SystemClock))
        .await;
    let visit = |t: String| {
        let http = env.http.clone();
        let url = env.url(&format!("/admin/login/link?token={t}"));
        async move { http.get(url).send().await.unwrap() }
    };
    let first = visit(token.clone()).await;
    assert_eq!(first.status(), 302);
    assert_eq!(location(&first), "/admin/#/");
    assert_eq!(first.headers()["referrer-policy"], "no-referrer");
    assert_eq!(first.headers()["cache-control"], "no-store");
    let c = set_cookie(&first, "wxbridge_admin").unwrap();
    assert!(
        c.contains("HttpOnly") && c.contains("SameSite=Strict"),
        "{c}"
    );
    let op = env.operator(cookie_value(&c)).await;
    let (_, me) = env.get(Some(&op), "/admin/api/me").await;
    assert_eq!(me["operator"]["kind"], "link");
    assert_eq!(me["operator"]["tenant_scope"], "*");

    // Used: the sign-in page says so, no cookie.
    let again = visit(token).await;
    assert_eq!(location(&again), "/admin/#/signin?reason=link_used");
    assert!(set_cookie(&again, "wxbridge_admin").is_none());

    // Issued 20 minutes ago (15-minute lifetime): expired.
    let past = Arc::new(ManualClock::new(
        SystemClock.now_ms() - Duration::from_secs(20 * 60).as_millis() as i64,
    ));
    let old = env.issue_link(TenantScope::All, past).await;
    let expired = visit(old).await;
    assert_eq!(location(&expired), "/admin/#/signin?reason=link_expired");
    assert!(set_cookie(&expired, "wxbridge_admin").is_none());

    // Malformed and unknown links.
    for bad in ["nope".to_owned(), format!("wxl_{}", "a".repeat(64))] {
        let resp = visit(bad).await;
        assert_eq!(location(&resp), "/admin/#/signin?reason=link_invalid");
        assert!(set_cookie(&resp, "wxbridge_admin").is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wecom_sign_in_admits_a_named_member_and_refuses_another() {
    let env = env("sqlite", false).await;
    // LiSi is named (as `lisi`): a session for tenant demo only, straight to its dashboard.
    let done = env.wecom_login("LiSi").await;
    assert_eq!(done.status(), 302);
    assert_eq!(location(&done), "/admin/#/t/demo/dashboard");
    let c = set_cookie(&done, "wxbridge_admin").expect("an admin cookie");
    let op = env.operator(cookie_value(&c)).await;
    let (_, me) = env.get(Some(&op), "/admin/api/me").await;
    assert_eq!(me["operator"]["kind"], "wecom");
    assert_eq!(me["operator"]["tenant_scope"], "demo");
    assert!(
        me["operator"]["name"].as_str().unwrap().contains("LiSi"),
        "{me}"
    );
    let (status, _) = env
        .get(Some(&op), "/admin/api/tenants/beta/dashboard")
        .await;
    assert_eq!(status, 403);

    // ZhangSan is an active member but not named: the sign-in page says why, no session.
    let refused = env.wecom_login("ZhangSan").await;
    assert_eq!(location(&refused), "/admin/#/signin?reason=not_admin");
    assert!(set_cookie(&refused, "wxbridge_admin").is_none());

    // A callback without the browser's binding cookie is refused before the state is used.
    let resp = env
        .http
        .get(env.url(&format!(
            "/admin/login/wecom/done?tenant=demo&code=x&state={}",
            "a".repeat(96)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&resp), "/admin/#/signin?reason=wecom_failed");
    assert!(set_cookie(&resp, "wxbridge_admin").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_pages_are_served_with_security_headers() {
    let env = env("sqlite", true).await;
    let resp = env.http.get(env.url("/admin")).send().await.unwrap();
    assert_eq!(
        (resp.status().as_u16(), location(&resp)),
        (302, "/admin/".to_owned())
    );
    for (path, kind) in [
        ("/admin/", "text/html"),
        ("/admin/app.js", "text/javascript"),
        ("/admin/app.css", "text/css"),
    ] {
        let resp = env.http.get(env.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let h = resp.headers();
        assert!(
            h["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.starts_with("default-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["x-content-type-options"], "nosniff");
    }
    let resp = env.http.get(env.url("/admin/api/me")).send().await.unwrap();
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert!(
        resp.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'self'")
    );
}

/// Poll `path` as `op` until `done` holds for its JSON (or give up after a minute).
async fn wait_for(env: &Env, op: &Operator, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..600 {
        let (status, v) = env.get(Some(op), path).await;
        assert_eq!(status, 200, "{path}: {v}");
        if done(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never got there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_answer_with_real_data_after_a_sync() {
    for backend in backends() {
        let env = env(backend, true).await;
        let op = env
            .link_operator(TenantScope::Tenant("demo".to_owned()))
            .await;

        // A sync started through the tenant API with the cookie, followed to its end.
        let (status, started) = env
            .post(&op, "/api/v1/tenants/demo/sync", Some(&op.csrf), json!({}))
            .await;
        assert_eq!(status, 202, "{backend}: {started}");
        let run = started["run_id"].as_i64().unwrap();
        wait_for(
            &env,
            &op,
            &format!("/api/v1/tenants/demo/sync/runs/{run}"),
            |v| v["status"] != "running",
        )
        .await;

        // A WeChat identity that then converges with another through a unionid: an identity and a merge.
        let graph = domain::identity::AccountGraph::new(env.db.clone(), Arc::new(SystemClock));
        let login = |openid: &str, unionid: Option<&str>| domain::identity::WechatLogin {
            appid: "wx0000000000000001".to_owned(),
            app_kind: domain::identity::AppKind::OfficialAccount,
            openid: openid.to_owned(),
            unionid: unionid.map(str::to_owned),
            profile: Default::default(),
        };
        graph
            .resolve_wechat_identity("demo", &login("oA", None))
            .await
            .unwrap();
        let mut website = login("oB", Some("uShared"));
        website.appid = "wx0000000000000003".to_owned();
        website.app_kind = domain::identity::AppKind::Website;
        graph
            .resolve_wechat_identity("demo", &website)
            .await
            .unwrap();
        graph
            .resolve_wechat_identity("demo", &login("oA", Some("uShared")))
            .await
            .unwrap();

        // A message to LiSi, sent by the outbox worker.
        let (_, lisi) = env
            .get(Some(&op), "/api/v1/tenants/demo/wecom/users/LiSi")
            .await;
        let (status, sent) = env
            .post(
                &op,
                "/api/v1/tenants/demo/messages",
                Some(&op.csrf),
                json!({
                    "app": "main",
                    "idempotency_key": "admin-test-1",
                    "to": { "users": [lisi["id"]] },
                    "message": { "kind": "text", "content": "hello" },
                }),
            )
            .await;
        assert_eq!(status, 202, "{backend}: {sent}");

        let t = "/admin/api/tenants/demo";
        let log = wait_for(&env, &op, &format!("{t}/messages?limit=10"), |v| {
            v["messages"][0]["status"] == "sent"
        })
        .await;
        assert_eq!(
            log["messages"][0]["calls"][0]["userids"],
            json!(["LiSi"]),
            "{log}"
        );

        let (status, d) = env.get(Some(&op), &format!("{t}/dashboard")).await;
        assert_eq!(status, 200, "{d}");
        assert_eq!(d["last_sync"]["id"], run);
        assert_eq!(d["last_sync"]["status"], "succeeded", "{d}");
        assert_eq!(d["outbox"]["sent_24h"], 1, "{d}");
        assert_eq!(d["callbacks"]["dead"], 0);
        assert!(d["webhooks"].is_null(), "no webhook configured: {d}");
        let tokens = d["tokens"].as_array().unwrap();
        assert!(
            tokens
                .iter()
                .any(|x| x["name"] == "main" && x["kind"] == "wecom_app"),
            "{d}"
        );

        let (_, tree) = env.get(Some(&op), &format!("{t}/roles/tree")).await;
        let roles = tree["roles"].as_array().unwrap();
        let dept = |id: i64| {
            roles
                .iter()
                .find(|r| r["wecom_department_id"] == id)
                .unwrap_or_else(|| panic!("department {id} in {tree}"))
        };
        assert!(dept(1)["parent_id"].is_null());
        assert_eq!(dept(3)["parent_id"], dept(2)["id"]);
        assert_eq!(dept(3)["member_count"], 2, "ZhangSan and LiSi: {tree}");
        assert!(
            roles
                .iter()
                .any(|r| r["origin"] == "wecom_tag" && r["wecom_tag_id"].is_i64())
        );

        let (_, ids) = env.get(Some(&op), &format!("{t}/graph/identities")).await;
        assert_eq!(ids["identities"].as_array().unwrap().len(), 2, "{ids}");
        let (_, found) = env
            .get(Some(&op), &format!("{t}/graph/identities?q=uShared"))
            .await;
        assert_eq!(found["identities"].as_array().unwrap().len(), 2, "{found}");
        let (_, none) = env
            .get(Some(&op), &format!("{t}/graph/identities?q=zzz"))
            .await;
        assert_eq!(none["identities"], json!([]));
        let (_, merges) = env.get(Some(&op), &format!("{t}/graph/merges")).await;
        let m = &merges["merges"][0];
        assert_eq!(m["unionid"], "uShared", "{merges}");
        assert_eq!(m["identities"].as_array().unwrap().len(), 1, "{merges}");
        assert!(m["from_user"].is_i64() && m["into_user"].is_i64());

        let (status, setup) = env.get(Some(&op), &format!("{t}/setup")).await;
        assert_eq!(status, 200, "{setup}");
        assert!(
            setup["callbacks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["url"].as_str().unwrap().contains("/callback/demo/")),
            "{setup}"
        );
        let items = setup["items"].as_array().unwrap();
        assert!(
            items.iter().any(|i| i["status"] == "ok"),
            "live checks ran against the simulator: {setup}"
        );
    }
}
