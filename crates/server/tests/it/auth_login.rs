//! Browser logins under `/auth/...` end to end: the bridge on a real port, every upstream (API and login
//! pages) pointed at the simulator, a hand-driven "browser" that follows redirects, submits the
//! simulator's pick form and keeps its cookies (login binding, session); each login ends with the token
//! verified through `POST .../sessions/verify`. Then the refusals: tampered, expired and replayed state,
//! a callback in another browser, a code used twice, return_to off the allow-list, a disabled member —
//! each a clear page and no session.

use std::sync::Arc;

use domain::identity::oauth::{LoginError, LoginStates, PendingLogin};
use domain::{Db, Tenants};
use server::AppState;
use wx_api::clock::{Clock, ManualClock, SystemClock};
use wx_api::token::MemoryTokenStore;
use wxbridge_config::FileConfig;

use crate::support::config_from;

const WECOM_UA: &str =
    "Mozilla/5.0 (iPhone) AppleWebKit/605.1.15 wxwork/4.1.20 MicroMessenger/7.0.1";
const WECHAT_UA: &str =
    "Mozilla/5.0 (iPhone) AppleWebKit/605.1.15 MicroMessenger/8.0.47 NetType/WIFI";
const DESKTOP_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0";
const RETURN_TO: &str = "https://app.example.com/app/home?tab=1";

/// The simulator's example world plus a disabled member.
fn fixture() -> String {
    format!(
        "{}\n[[corps.members]]\nuserid = \"ZhaoLiu\"\nname = \"赵六\"\ndepartment = [4]\nstatus = 2\n",
        include_str!("../../../wx-sim/fixtures/example.toml")
    )
}

struct Env {
    sim: wx_sim::Simulator,
    _running: wx_sim::RunningSim,
    base: String,
    db: Db,
    key: String,
    http: reqwest::Client,
    /// The browser's login-binding cookies (`wxb_login_*`) set by the bridge.
    jar: std::sync::Mutex<Vec<(String, String)>>,
}

async fn env() -> Env {
    let sim = wx_sim::Simulator::from_fixture_str(&fixture()).unwrap();
    let running = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut file =
        FileConfig::from_toml_str(&sim.info().wxbridge_config(&addr.to_string()).unwrap()).unwrap();
    let (key, hash) = server::auth::generate_api_key();
    let demo = file.tenants.get_mut("demo").unwrap();
    demo.api_key_hashes = vec![hash.to_file_string()];
    demo.return_to_allow = vec!["https://app.example.com/app".to_owned()];
    let config = config_from(&file.to_toml_string().unwrap());
    let tokens = Tenants::token_manager(
        &config,
        Arc::new(MemoryTokenStore::new()),
        Arc::new(SystemClock),
    );
    let tenants = Tenants::build(&config, tokens).unwrap();
    let db = Db::connect("sqlite::memory:").await.unwrap();
    db.migrate().await.unwrap();
    let state = AppState::new(Arc::new(config), tenants, Some(db.clone()));
    tokio::spawn(server::serve_on(state, listener, std::future::pending()));
    Env {
        sim,
        _running: running,
        base: format!("http://{addr}"),
        db,
        key,
        http: reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        jar: std::sync::Mutex::new(Vec::new()),
    }
}

/// What the browser saw at the end of a login.
#[derive(Debug)]
struct Landing {
    /// The bridge's callback URL the login page sent the browser to.
    callback: String,
    status: u16,
    location: Option<String>,
    set_cookie: Option<String>,
    body: String,
}

impl Landing {
    /// The session token from the Set-Cookie header.
    fn token(&self) -> String {
        let c = self.set_cookie.as_deref().expect("a Set-Cookie header");
        let (_, rest) = c
            .split_once("wxbridge_session=")
            .expect("the session cookie");
        rest.split(';').next().unwrap().to_owned()
    }
}

fn strip_fragment(url: &str) -> &str {
    url.split('#').next().unwrap()
}

fn location(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
}

impl Env {
    /// GET `url` (relative to the bridge when it starts with `/`) as a browser with `ua`, sending the
    /// session token `cookie` if given and, to the bridge, the login-binding cookies it set.
    async fn get(&self, url: &str, ua: &str, cookie: Option<&str>) -> reqwest::Response {
        self.get_with(url, ua, cookie, true).await
    }

    async fn get_with(
        &self,
        url: &str,
        ua: &str,
        cookie: Option<&str>,
        with_jar: bool,
    ) -> reqwest::Response {
        let url = if url.starts_with('/') {
            format!("{}{url}", self.base)
        } else {
            url.to_owned()
        };
        let to_bridge = url.starts_with(&self.base);
        let mut cookies: Vec<String> = Vec::new();
        if to_bridge && with_jar {
            for (k, v) in self.jar.lock().unwrap().iter() {
                cookies.push(format!("{k}={v}"));
            }
        }
        if let Some(c) = cookie {
            cookies.push(format!("wxbridge_session={c}"));
        }
        let mut req = self.http.get(strip_fragment(&url)).header("user-agent", ua);
        if !cookies.is_empty() {
            req = req.header("cookie", cookies.join("; "));
        }
        let resp = req.send().await.unwrap();
        if to_bridge {
            for v in resp.headers().get_all("set-cookie") {
                let v = v.to_str().unwrap();
                let (k, rest) = v.split_once('=').unwrap();
                if k.starts_with("wxb_login_") {
                    assert!(v.contains("HttpOnly") && v.contains("SameSite=Lax"), "{v}");
                    let value = rest.split(';').next().unwrap().to_owned();
                    let mut jar = self.jar.lock().unwrap();
                    jar.retain(|(n, _)| n != k);
                    if !v.contains("Max-Age=0") {
                        jar.push((k.to_owned(), value));
                    }
                }
            }
        }
        resp
    }

    /// Start at `start`, expect a redirect to the simulator's page, pick `who` there and return the
    /// simulator's redirect to the bridge's callback (not yet followed).
    async fn to_callback(&self, start: &str, ua: &str, who: &str) -> (String, String) {
        let resp = self.get(start, ua, None).await;
        assert_eq!(resp.status(), 302, "{}", resp.text().await.unwrap());
        let page_url = location(&resp).unwrap();
        let page = self.get(&page_url, ua, None).await;
        assert_eq!(page.status(), 200, "{}", page.text().await.unwrap());
        let html = page.text().await.unwrap();
        assert!(
            html.contains(&format!("value=\"{who}\"")),
            "{who} is not offered: {html}"
        );
        // The form carries the page's query parameters as hidden fields; submit them with the pick.
        let parsed = url::Url::parse(strip_fragment(&page_url)).unwrap();
        let mut form: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
        form.push(("pick".to_owned(), who.to_owned()));
        let post_to = format!("{}{}", parsed.origin().ascii_serialization(), parsed.path());
        let resp = self
            .http
            .post(post_to)
            .header("user-agent", ua)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302, "{}", resp.text().await.unwrap());
        (page_url, location(&resp).unwrap())
    }

    async fn land(&self, callback: &str) -> Landing {
        self.land_with(callback, true).await
    }

    /// Follow the callback; `with_jar = false` is another browser (no login-binding cookie).
    async fn land_with(&self, callback: &str, with_jar: bool) -> Landing {
        let resp = self.get_with(callback, DESKTOP_UA, None, with_jar).await;
        let status = resp.status().as_u16();
        let location = location(&resp);
        let set_cookie = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|v| v.starts_with("wxbridge_session="));
        Landing {
            callback: callback.to_owned(),
            status,
            location,
            set_cookie,
            body: resp.text().await.unwrap(),
        }
    }

    async fn login(&self, start: &str, ua: &str, who: &str) -> (String, Landing) {
        let (page, callback) = self.to_callback(start, ua, who).await;
        (page, self.land(&callback).await)
    }

    async fn verify(&self, token: &str) -> (u16, serde_json::Value) {
        let resp = self
            .http
            .post(format!("{}/api/v1/tenants/demo/sessions/verify", self.base))
            .bearer_auth(&self.key)
            .json(&serde_json::json!({ "token": token }))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    async fn session_count(&self, userid: &str) -> usize {
        match self
            .db
            .user_by_wecom_userid("demo", "ww0000000000000001", userid)
            .await
            .unwrap()
        {
            Some(u) => self.db.sessions_of_user("demo", u.id).await.unwrap().len(),
            None => 0,
        }
    }
}

fn start_url(path: &str, return_to: &str, extra: &str) -> String {
    let rt: String = url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
    format!("{path}?return_to={rt}{extra}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wecom_pc_qr_and_in_app_oauth_logins_end_to_end() {
    let env = env().await;
    assert!(
        env.db
            .user_by_wecom_userid("demo", "ww0000000000000001", "ZhangSan")
            .await
            .unwrap()
            .is_none(),
        "nothing synced yet"
    );

    // A desktop browser gets the PC QR login.
    let start = start_url("/auth/demo/wecom/main/login", RETURN_TO, "");
    let (page, landed) = env.login(&start, DESKTOP_UA, "ZhangSan").await;
    assert!(page.contains("/wwlogin/sso/login"), "{page}");
    assert!(page.contains("agentid=1000002"), "{page}");
    assert_eq!(landed.status, 302, "{}", landed.body);
    assert_eq!(landed.location.as_deref(), Some(RETURN_TO));
    let cookie = landed.set_cookie.clone().unwrap();
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "the public URL is http: {cookie}"
    );
    let token = landed.token();
    let (status, json) = env.verify(&token).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["user"]["name"], "张三");
    assert_eq!(json["user"]["status"], "active");
    assert_eq!(json["session"]["provider"], "wecom");
    assert_eq!(json["session"]["app"], "main");
    assert_eq!(json["user"]["identities"]["wecom"][0]["userid"], "ZhangSan");
    // The member was read on demand and is now in the directory.
    assert!(
        env.db
            .user_by_wecom_userid("demo", "ww0000000000000001", "ZhangSan")
            .await
            .unwrap()
            .is_some()
    );

    // /me answers for the cookie and for a bearer session token.
    let me = env.get("/auth/demo/me", DESKTOP_UA, Some(&token)).await;
    assert_eq!(me.status(), 200);
    let me: serde_json::Value = me.json().await.unwrap();
    assert_eq!(me["user"]["id"], json["user"]["id"]);
    let anon = env.get("/auth/demo/me", DESKTOP_UA, None).await;
    assert_eq!(anon.status(), 401);

    // Inside WeCom the in-app OAuth page; `mode=qr` overrides the user agent.
    let (page, landed) = env.login(&start, WECOM_UA, "LiSi").await;
    assert!(page.contains("/connect/oauth2/authorize"), "{page}");
    assert!(page.contains("scope=snsapi_base"), "{page}");
    assert_eq!(landed.status, 302, "{}", landed.body);
    let (status, json) = env.verify(&landed.token()).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["user"]["name"], "李四");
    let resp = env
        .get(
            &start_url("/auth/demo/wecom/main/login", RETURN_TO, "&mode=qr"),
            WECOM_UA,
            None,
        )
        .await;
    assert!(location(&resp).unwrap().contains("/wwlogin/sso/login"));

    // A relative return_to on the bridge is allowed.
    let (_, landed) = env
        .login(
            &start_url("/auth/demo/wecom/main/login", "/welcome", ""),
            DESKTOP_UA,
            "ZhangSan",
        )
        .await;
    assert_eq!(landed.location.as_deref(), Some("/welcome"));

    // Logout revokes the session and clears the cookie.
    let out = env.get("/auth/demo/logout", DESKTOP_UA, Some(&token)).await;
    assert_eq!(out.status(), 200);
    let cleared = out.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cleared.contains("wxbridge_session=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let (status, json) = env.verify(&token).await;
    assert_eq!(status, 401);
    assert_eq!(json["error"]["code"], "session_revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wecom_consent_login_fills_mobile_and_email_of_a_restricted_app() {
    let env = env().await;
    // The `sales` app is a post-2022 app: user/get withholds mobile and email.
    assert!(env.sim.set_trusted_domain("1000003", None));
    let plain = start_url("/auth/demo/wecom/sales/login", RETURN_TO, "");
    let (page, landed) = env.login(&plain, WECOM_UA, "LiSi").await;
    assert!(page.contains("scope=snsapi_base"), "{page}");
    assert_eq!(landed.status, 302, "{}", landed.body);
    let user = env
        .db
        .user_by_wecom_userid("demo", "ww0000000000000001", "LiSi")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.mobile, None, "withheld from a restricted app");
    assert_eq!(user.email, None);
    let start = start_url("/auth/demo/wecom/sales/login", RETURN_TO, "&consent=1");
    let (page, landed) = env.login(&start, WECOM_UA, "LiSi").await;
    assert!(page.contains("scope=snsapi_privateinfo"), "{page}");
    assert_eq!(landed.status, 302, "{}", landed.body);
    let (status, json) = env.verify(&landed.token()).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["session"]["app"], "sales");
    let user = env
        .db
        .user_by_wecom_userid("demo", "ww0000000000000001", "LiSi")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.mobile.as_deref(), Some("13800000002"));
    assert_eq!(user.email.as_deref(), Some("lisi@example.com"));

    // A plain login through the restricted app afterwards does not blank them.
    let (_, landed) = env.login(&plain, WECOM_UA, "LiSi").await;
    assert_eq!(landed.status, 302, "{}", landed.body);
    let user = env
        .db
        .user_by_wecom_userid("demo", "ww0000000000000001", "LiSi")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.mobile.as_deref(), Some("13800000002"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechat_official_account_and_website_logins_converge_on_one_user() {
    let env = env().await;

    // Inside WeChat: the official account's OAuth, snsapi_userinfo reads the nickname.
    let start = start_url("/auth/demo/wechat/oa/login", RETURN_TO, "&scope=userinfo");
    let (page, landed) = env
        .login(&start, WECHAT_UA, "oOA00000000000000000000001")
        .await;
    assert!(page.contains("/connect/oauth2/authorize"), "{page}");
    assert!(page.contains("scope=snsapi_userinfo"), "{page}");
    assert_eq!(landed.status, 302, "{}", landed.body);
    assert_eq!(landed.location.as_deref(), Some(RETURN_TO));
    let (status, oa) = env.verify(&landed.token()).await;
    assert_eq!(status, 200, "{oa}");
    assert_eq!(oa["session"]["provider"], "wechat_official_account");
    assert_eq!(oa["session"]["app"], "wx0000000000000001");
    assert_eq!(oa["user"]["name"], "小明");

    // snsapi_base inside WeChat.
    let start = start_url("/auth/demo/wechat/oa/login", RETURN_TO, "");
    let (page, landed) = env
        .login(&start, WECHAT_UA, "oOA00000000000000000000001")
        .await;
    assert!(page.contains("scope=snsapi_base"), "{page}");
    let (status, base) = env.verify(&landed.token()).await;
    assert_eq!(status, 200, "{base}");
    assert_eq!(base["user"]["id"], oa["user"]["id"]);

    // Outside WeChat the same start goes to the website QR login.
    let resp = env.get(&start, DESKTOP_UA, None).await;
    assert!(
        location(&resp).unwrap().contains("/connect/qrconnect"),
        "{:?}",
        location(&resp)
    );

    // The website QR login: same person (same unionid), same user.
    let start = start_url("/auth/demo/wechat/website/login", RETURN_TO, "");
    let (page, landed) = env
        .login(&start, DESKTOP_UA, "oWEB0000000000000000000001")
        .await;
    assert!(page.contains("scope=snsapi_login"), "{page}");
    assert_eq!(landed.status, 302, "{}", landed.body);
    let (status, web) = env.verify(&landed.token()).await;
    assert_eq!(status, 200, "{web}");
    assert_eq!(web["session"]["provider"], "wechat_website");
    assert_eq!(web["user"]["id"], oa["user"]["id"]);
    let ids = web["user"]["identities"]["wechat"].as_array().unwrap();
    assert_eq!(ids.len(), 2, "{web}");
    assert!(
        ids.iter()
            .all(|i| i["unionid"] == "oUnion000000000000000000001")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_expired_and_replayed_state_and_a_reused_code_are_refused() {
    let env = env().await;
    let start = start_url("/auth/demo/wecom/main/login", RETURN_TO, "");

    // Tampered: one hex digit of the signature changed. Nothing is consumed or created.
    let (_, callback) = env.to_callback(&start, DESKTOP_UA, "ZhangSan").await;
    let mut url = url::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let state = pairs.iter().find(|(k, _)| k == "state").unwrap().1.clone();
    let code = pairs.iter().find(|(k, _)| k == "code").unwrap().1.clone();
    let mut bad = state.clone();
    let last = bad.pop().unwrap();
    bad.push(if last == '0' { '1' } else { '0' });
    url.query_pairs_mut()
        .clear()
        .append_pair("code", &code)
        .append_pair("state", &bad);
    let landed = env.land(url.as_str()).await;
    assert_eq!(landed.status, 400, "{}", landed.body);
    assert!(landed.body.contains("altered"), "{}", landed.body);
    assert!(landed.set_cookie.is_none());
    // A state that is not even shaped like one.
    let landed = env
        .land(&format!(
            "{}/auth/demo/wecom/main/callback?code={code}&state=abc",
            env.base
        ))
        .await;
    assert_eq!(landed.status, 400);
    assert!(landed.body.contains("malformed"), "{}", landed.body);
    assert_eq!(env.session_count("ZhangSan").await, 0);

    // The same callback in another browser (no login-binding cookie, e.g. a link an attacker sends):
    // refused, and the state is not used up.
    let elsewhere = env.land_with(&callback, false).await;
    assert_eq!(elsewhere.status, 400, "{}", elsewhere.body);
    assert!(
        elsewhere.body.contains("not started in this browser"),
        "{}",
        elsewhere.body
    );
    assert_eq!(env.session_count("ZhangSan").await, 0);

    // The untouched callback still works once...
    let first = env.land(&callback).await;
    assert_eq!(first.status, 302, "{}", first.body);
    assert_eq!(env.session_count("ZhangSan").await, 1);
    // ...and a replay of it is refused.
    let replay = env.land(&first.callback).await;
    assert_eq!(replay.status, 400, "{}", replay.body);
    assert!(replay.body.contains("already used"), "{}", replay.body);
    assert!(replay.set_cookie.is_none());
    assert_eq!(env.session_count("ZhangSan").await, 1);

    // A code used twice: a fresh state with the spent code; the simulator answers 40029.
    let resp = env.get(&start, DESKTOP_UA, None).await;
    let fresh = url::Url::parse(strip_fragment(&location(&resp).unwrap())).unwrap();
    let fresh_state = fresh
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let landed = env
        .land(&format!(
            "{}/auth/demo/wecom/main/callback?code={code}&state={fresh_state}",
            env.base
        ))
        .await;
    assert_eq!(landed.status, 400, "{}", landed.body);
    assert!(landed.body.contains("already used"), "{}", landed.body);
    assert_eq!(env.session_count("ZhangSan").await, 1);

    // Expired: a state issued eleven minutes ago (a clock set back), used now.
    let past = ManualClock::new(SystemClock.now_ms() - 11 * 60 * 1000);
    let old_state = LoginStates::new(env.db.clone(), Arc::new(past))
        .issue(
            "demo",
            &PendingLogin {
                provider: "wecom".to_owned(),
                app: "main".to_owned(),
                return_to: RETURN_TO.to_owned(),
                flow: "qr".to_owned(),
            },
        )
        .await
        .unwrap();
    env.jar
        .lock()
        .unwrap()
        .push((format!("wxb_login_{}", &old_state[..32]), "1".to_owned()));
    let (_, callback) = env.to_callback(&start, DESKTOP_UA, "ZhangSan").await;
    let code = url::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let landed = env
        .land(&format!(
            "{}/auth/demo/wecom/main/callback?code={code}&state={old_state}",
            env.base
        ))
        .await;
    assert_eq!(landed.status, 400, "{}", landed.body);
    assert!(landed.body.contains("expired"), "{}", landed.body);
    assert_eq!(env.session_count("ZhangSan").await, 1);

    // A state issued for another app is refused too.
    let resp = env
        .get(
            &start_url("/auth/demo/wecom/sales/login", RETURN_TO, ""),
            DESKTOP_UA,
            None,
        )
        .await;
    let other = url::Url::parse(strip_fragment(&location(&resp).unwrap())).unwrap();
    let other_state = other
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let landed = env
        .land(&format!(
            "{}/auth/demo/wecom/main/callback?code={code}&state={other_state}",
            env.base
        ))
        .await;
    assert_eq!(landed.status, 400, "{}", landed.body);
    assert_eq!(env.session_count("ZhangSan").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn return_to_off_the_allow_list_is_refused_before_any_redirect() {
    let env = env().await;
    for bad in [
        "https://app.example.com.evil.com/app/home",
        "https://evil.com/app",
        "https://app.example.com/appx",
        "https://app.example.com/",
        "http://app.example.com/app/home",
        "https://app.example.com:8443/app/home",
        "https://user@app.example.com/app/home",
        "//evil.com/app",
        "/\\evil.com",
        "javascript:alert(1)",
    ] {
        for path in [
            "/auth/demo/wecom/main/login",
            "/auth/demo/wechat/website/login",
        ] {
            let resp = env.get(&start_url(path, bad, ""), DESKTOP_UA, None).await;
            assert_eq!(resp.status(), 400, "{bad} via {path}");
            assert!(resp.headers().get("location").is_none());
            let body = resp.text().await.unwrap();
            assert!(body.contains("not allowed"), "{bad}: {body}");
            assert!(!body.contains("<script"), "{body}");
        }
    }
    for good in [
        "https://app.example.com/app",
        "https://app.example.com/app/deep/page?x=1",
    ] {
        let resp = env
            .get(
                &start_url("/auth/demo/wecom/main/login", good, ""),
                DESKTOP_UA,
                None,
            )
            .await;
        assert_eq!(resp.status(), 302, "{good}");
    }
    // Unknown app and tenant: a page, not a redirect.
    let resp = env
        .get("/auth/demo/wecom/nope/login", DESKTOP_UA, None)
        .await;
    assert_eq!(resp.status(), 404);
    let resp = env
        .get("/auth/nope/wecom/main/login", DESKTOP_UA, None)
        .await;
    assert_eq!(resp.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_member_is_refused_with_a_page_and_no_session() {
    let env = env().await;
    let start = start_url("/auth/demo/wecom/main/login", RETURN_TO, "");
    let (_, landed) = env.login(&start, DESKTOP_UA, "ZhaoLiu").await;
    assert_eq!(landed.status, 403, "{}", landed.body);
    assert!(landed.body.contains("disabled"), "{}", landed.body);
    assert!(landed.set_cookie.is_none());
    let user = env
        .db
        .user_by_wecom_userid("demo", "ww0000000000000001", "ZhaoLiu")
        .await
        .unwrap()
        .expect("the member was read on demand");
    assert!(
        env.db
            .sessions_of_user("demo", user.id)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The state store's SQL on each backend (PostgreSQL when configured; required under CI=true): issue,
/// consume once, replay, tamper, another app, expiry. A unique tenant keeps a shared database clean.
#[tokio::test]
async fn login_state_store_on_each_backend() {
    for backend in crate::api_env::backends() {
        let db = match backend {
            "postgres" => Db::connect(&std::env::var("WXBRIDGE_TEST_POSTGRES_URL").unwrap())
                .await
                .unwrap(),
            _ => Db::connect("sqlite::memory:").await.unwrap(),
        };
        db.migrate().await.unwrap();
        let tenant = format!("st{:x}", rand::random::<u64>());
        let clock = Arc::new(ManualClock::new(SystemClock.now_ms()));
        let states = LoginStates::new(db.clone(), clock.clone());
        let login = PendingLogin {
            provider: "wecom".to_owned(),
            app: "main".to_owned(),
            return_to: RETURN_TO.to_owned(),
            flow: "qr".to_owned(),
        };
        let s = states.issue(&tenant, &login).await.unwrap();
        assert_eq!(s.len(), 96, "{backend}");
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()));
        // Another app, or another tenant (the MAC covers the tenant): refused; neither consumes it.
        let e = states.consume(&tenant, &s, "wecom", "sales").await;
        assert!(
            matches!(e, Err(LoginError::StateMismatch)),
            "{backend}: {e:?}"
        );
        let s2 = states.issue(&tenant, &login).await.unwrap();
        let e = states.consume("other", &s2, "wecom", "main").await;
        assert!(
            matches!(e, Err(LoginError::StateTampered)),
            "{backend}: {e:?}"
        );
        assert_eq!(
            states.consume(&tenant, &s2, "wecom", "main").await.unwrap(),
            login
        );
        let e = states.consume(&tenant, &s2, "wecom", "main").await;
        assert!(
            matches!(e, Err(LoginError::StateReplayed)),
            "{backend}: {e:?}"
        );
        // Expiry after ten minutes.
        let s3 = states.issue(&tenant, &login).await.unwrap();
        clock.advance(std::time::Duration::from_secs(10 * 60));
        let e = states.consume(&tenant, &s3, "wecom", "main").await;
        assert!(
            matches!(e, Err(LoginError::StateExpired)),
            "{backend}: {e:?}"
        );
        // Replicas on one database share the key: a second LoginStates verifies the first's state.
        let s4 = states.issue(&tenant, &login).await.unwrap();
        let other = LoginStates::new(db.clone(), clock.clone());
        assert_eq!(
            other.consume(&tenant, &s4, "wecom", "main").await.unwrap(),
            login
        );
        db.close().await;
    }
}

/// Behind an https public URL the cookies are Secure, and the authorize URLs use the configured
/// upstream (the real hosts by default; nothing is called here).
#[tokio::test]
async fn https_public_url_makes_cookies_secure() {
    use tower::ServiceExt;
    let toml = format!(
        "[server]\npublic_url = \"https://bridge.example.com\"\n{}",
        crate::support::toml_with_key()
    )
    .replace(
        "[tenants.acme]\n",
        "[tenants.acme]\nreturn_to_allow = [\"https://app.example.com/app\"]\n",
    );
    let st = crate::support::state(config_from(&toml), true).await;
    st.db.clone().unwrap().migrate().await.unwrap();
    let app = server::router(st);
    let req = axum::http::Request::get(start_url("/auth/acme/wecom/main/login", RETURN_TO, ""))
        .header("user-agent", DESKTOP_UA)
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 302);
    let loc = resp.headers()["location"].to_str().unwrap();
    assert!(
        loc.starts_with("https://login.work.weixin.qq.com/wwlogin/sso/login?"),
        "{loc}"
    );
    assert!(
        loc.contains(
            "redirect_uri=https%3A%2F%2Fbridge.example.com%2Fauth%2Facme%2Fwecom%2Fmain%2Fcallback"
        ),
        "{loc}"
    );
    let cookie = resp.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("wxb_login_"), "{cookie}");
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("Path=/auth/acme/"), "{cookie}");
}
