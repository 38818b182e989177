//! Login pages and code exchange: WeCom OAuth / PC login, WeChat OAuth and website QR login.

use std::time::Duration;

use serde_json::json;
use wx_sim::OAuthCodeRequest;

use crate::common::{Env, errcode};
use crate::contacts::example;

async fn token(env: &Env, secret: &str) -> String {
    let v = env
        .get(&format!(
            "/cgi-bin/gettoken?corpid=ww0000000000000001&corpsecret={secret}"
        ))
        .await;
    v["access_token"].as_str().unwrap().to_owned()
}

fn code_of(location: &str) -> (Option<String>, Option<String>) {
    let u = url::Url::parse(location).unwrap();
    let get = |k: &str| {
        u.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    };
    (get("code"), get("state"))
}

#[tokio::test]
async fn wecom_oauth_page_pick_code_single_use_and_expiry() {
    let env = Env::start(example()).await;
    let q = "appid=ww0000000000000001&redirect_uri=http%3A%2F%2Fapp.local%3A8080%2Fcb%3Fx%3D1&response_type=code&scope=snsapi_privateinfo&state=st1&agentid=1000002";
    let page = env
        .http
        .get(env.url(&format!("/connect/oauth2/authorize?{q}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("张三 (ZhangSan)") && html.contains("name=\"pick\""));
    let filtered = env
        .http
        .get(env.url(&format!("/connect/oauth2/authorize?{q}&q=lisi")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(filtered.contains("LiSi") && !filtered.contains("ZhangSan"));

    let form = [
        ("appid", "ww0000000000000001"),
        ("redirect_uri", "http://app.local:8080/cb?x=1"),
        ("scope", "snsapi_privateinfo"),
        ("state", "st1"),
        ("agentid", "1000002"),
        ("pick", "ZhangSan"),
    ];
    let resp = env
        .http
        .post(env.url("/connect/oauth2/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let loc = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        loc.starts_with("http://app.local:8080/cb?x=1&code="),
        "{loc}"
    );
    let (code, state) = code_of(&loc);
    assert_eq!(state.as_deref(), Some("st1"));
    let code = code.unwrap();

    let main = token(&env, "main-app-secret-0001").await;
    let info = env
        .get(&format!(
            "/cgi-bin/auth/getuserinfo?access_token={main}&code={code}"
        ))
        .await;
    assert_eq!(info["errcode"], 0);
    assert_eq!(info["userid"], "ZhangSan");
    let ticket = info["user_ticket"].as_str().unwrap().to_owned();
    assert_eq!(
        errcode(
            &env.get(&format!(
                "/cgi-bin/auth/getuserinfo?access_token={main}&code={code}"
            ))
            .await
        ),
        40029
    );
    let detail = env
        .post(
            &format!("/cgi-bin/auth/getuserdetail?access_token={main}"),
            &json!({"user_ticket": ticket}),
        )
        .await;
    assert_eq!(detail["mobile"], "13800000001");
    assert_eq!(detail["email"], "zhangsan@example.com");

    // Deny: redirect with state only.
    let mut deny: Vec<(&str, &str)> = form[..5].to_vec();
    deny.push(("deny", "1"));
    let resp = env
        .http
        .post(env.url("/connect/oauth2/authorize"))
        .form(&deny)
        .send()
        .await
        .unwrap();
    let (code, state) = code_of(resp.headers()["location"].to_str().unwrap());
    assert_eq!((code, state.as_deref()), (None, Some("st1")));

    // Codes expire after 5 minutes; user_ticket after 1800 s.
    let c2 = env
        .sim
        .mint_oauth_code(&OAuthCodeRequest {
            userid: Some("LiSi".into()),
            ..Default::default()
        })
        .unwrap();
    env.sim.advance_clock(Duration::from_secs(301));
    assert_eq!(
        errcode(
            &env.get(&format!(
                "/cgi-bin/auth/getuserinfo?access_token={main}&code={c2}"
            ))
            .await
        ),
        40029
    );
    env.sim.advance_clock(Duration::from_secs(1500));
    assert_eq!(
        errcode(
            &env.post(
                &format!("/cgi-bin/auth/getuserdetail?access_token={main}"),
                &json!({"user_ticket": ticket})
            )
            .await
        ),
        40029
    );
}

#[tokio::test]
async fn trusted_domain_mismatch_gives_50001_and_pc_login_has_no_ticket() {
    let env = Env::start(example()).await;
    let sales = token(&env, "sales-app-secret-0001").await;
    // sales trusts sales.example.com exactly (port included).
    let bad = env
        .sim
        .mint_oauth_code(&OAuthCodeRequest {
            userid: Some("LiSi".into()),
            agentid: Some(1000003),
            redirect_uri: Some("http://sales.example.com:8443/cb".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        errcode(
            &env.get(&format!(
                "/cgi-bin/auth/getuserinfo?access_token={sales}&code={bad}"
            ))
            .await
        ),
        50001
    );
    let good = env
        .sim
        .mint_oauth_code(&OAuthCodeRequest {
            userid: Some("LiSi".into()),
            agentid: Some(1000003),
            redirect_uri: Some("https://sales.example.com/cb".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        env.get(&format!(
            "/cgi-bin/auth/getuserinfo?access_token={sales}&code={good}"
        ))
        .await["userid"],
        "LiSi"
    );

    // PC QR login page; the code gives a userid and no user_ticket.
    let q = "login_type=CorpApp&appid=ww0000000000000001&agentid=1000002&redirect_uri=http%3A%2F%2Fpc.local%2Fcb&state=s";
    let html = env
        .http
        .get(env.url(&format!("/wwlogin/sso/login?{q}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("WangWu"));
    let form = [
        ("login_type", "CorpApp"),
        ("appid", "ww0000000000000001"),
        ("agentid", "1000002"),
        ("redirect_uri", "http://pc.local/cb"),
        ("state", "s"),
        ("pick", "WangWu"),
    ];
    let resp = env
        .http
        .post(env.url("/wwopen/sso/qrConnect"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let (code, _) = code_of(resp.headers()["location"].to_str().unwrap());
    let main = token(&env, "main-app-secret-0001").await;
    let v = env
        .get(&format!(
            "/cgi-bin/auth/getuserinfo?access_token={main}&code={}",
            code.unwrap()
        ))
        .await;
    assert_eq!(v["userid"], "WangWu");
    assert!(v.get("user_ticket").is_none());
    // A member outside the app's scope cannot be picked.
    let form = [
        ("login_type", "CorpApp"),
        ("appid", "ww0000000000000001"),
        ("agentid", "1000003"),
        ("redirect_uri", "http://pc.local/cb"),
        ("state", "s"),
        ("pick", "ZhangSan"),
    ];
    assert_eq!(
        env.http
            .post(env.url("/wwlogin/sso/login"))
            .form(&form)
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
}

#[tokio::test]
async fn wechat_oauth_userinfo_and_website_qr() {
    let env = Env::start(example()).await;
    let oa = "wx0000000000000001";
    let form = [
        ("appid", oa),
        ("redirect_uri", "https://h5.local/cb"),
        ("scope", "snsapi_userinfo"),
        ("state", "w"),
        ("pick", "oOA00000000000000000000001"),
    ];
    let page = env.http.get(env.url(&format!("/connect/oauth2/authorize?appid={oa}&redirect_uri=https%3A%2F%2Fh5.local%2Fcb&response_type=code&scope=snsapi_userinfo&state=w"))).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("小明"));
    let resp = env
        .http
        .post(env.url("/connect/oauth2/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let (code, _) = code_of(resp.headers()["location"].to_str().unwrap());
    let code = code.unwrap();
    let path = format!(
        "/sns/oauth2/access_token?appid={oa}&secret=oa-secret-0001&code={code}&grant_type=authorization_code"
    );
    let t = env.get(&path).await;
    assert!(t.get("errcode").is_none(), "{t}");
    assert_eq!(t["openid"], "oOA00000000000000000000001");
    assert_eq!(t["unionid"], "oUnion000000000000000000001");
    assert_eq!(errcode(&env.get(&path).await), 40163);
    let at = t["access_token"].as_str().unwrap();
    let u = env
        .get(&format!(
            "/sns/userinfo?access_token={at}&openid=oOA00000000000000000000001&lang=zh_CN"
        ))
        .await;
    assert_eq!(u["nickname"], "小明");
    assert_eq!(u["sex"], 1);

    // snsapi_base: userinfo refused with 48001.
    let c = env
        .sim
        .mint_oauth_code(&OAuthCodeRequest {
            appid: Some(oa.into()),
            openid: Some("oOA00000000000000000000001".into()),
            ..Default::default()
        })
        .unwrap();
    let t = env.get(&format!("/sns/oauth2/access_token?appid={oa}&secret=oa-secret-0001&code={c}&grant_type=authorization_code")).await;
    assert!(t.get("unionid").is_none());
    let at = t["access_token"].as_str().unwrap();
    assert_eq!(
        errcode(
            &env.get(&format!(
                "/sns/userinfo?access_token={at}&openid=oOA00000000000000000000001"
            ))
            .await
        ),
        48001
    );

    // Website QR login: scope must be snsapi_login; codes live 10 minutes.
    let web = "wx0000000000000003";
    let wrong = env.http.get(env.url(&format!("/connect/qrconnect?appid={web}&redirect_uri=https%3A%2F%2Fw.local%2F&scope=snsapi_base&state=x"))).send().await.unwrap();
    assert_eq!(wrong.status(), 400);
    let form = [
        ("appid", web),
        ("redirect_uri", "https://w.local/cb"),
        ("scope", "snsapi_login"),
        ("state", "q"),
        ("pick", "oWEB0000000000000000000001"),
    ];
    let resp = env
        .http
        .post(env.url("/connect/qrconnect"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let (code, _) = code_of(resp.headers()["location"].to_str().unwrap());
    env.sim.advance_clock(Duration::from_secs(540));
    let t = env.get(&format!("/sns/oauth2/access_token?appid={web}&secret=web-secret-0001&code={}&grant_type=authorization_code", code.unwrap())).await;
    assert_eq!(t["unionid"], "oUnion000000000000000000001");
    assert_eq!(t["scope"], "snsapi_login");
}
