//! Mini-program routes against the simulator: WeChat and WeCom logins ending in a session that verifies,
//! two WeChat mini programs of one person converging on one user through the unionid, invalid and reused
//! codes creating nothing, encryptedData (phone, user info) decrypted with the sealed session_key, a stale
//! session_key refused with nothing written, the phone-number code flow, unknown keys, and a disabled
//! member refused.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use domain::Tenants;
use serde_json::{Value, json};
use server::AppState;
use tower::ServiceExt;
use wx_api::clock::SystemClock;
use wx_api::token::MemoryTokenStore;
use wx_sim::{MiniProgramRequest, Simulator};
use wxbridge_config::FileConfig;

use crate::support::config_from;

const SHOP: &str = "wx0000000000000002";
const CLUB: &str = "wx0000000000000004";
const PORTAL: &str = "wx00000000000000a1";
const MING_SHOP: &str = "oMP00000000000000000000001";
const MING_CLUB: &str = "oCLUB000000000000000000001";
const MING_UNION: &str = "oUnion000000000000000000001";
const HUA_SHOP: &str = "oMP00000000000000000000002";

const FIXTURE: &str = r#"
[[corps]]
corpid = "ww0000000000000001"
name = "示例科技"
contacts_secret = "contacts-secret-0001"

[[corps.departments]]
id = 1
name = "示例科技"
parentid = 0

[[corps.departments]]
id = 2
name = "研发部"
parentid = 1

[[corps.members]]
userid = "ZhangSan"
name = "张三"
department = [2]
mobile = "13800000001"
status = 1

[[corps.members]]
userid = "LiSi"
name = "李四"
department = [2]
status = 2

[[corps.apps]]
name = "main"
agentid = 1000002
secret = "main-app-secret-0001"
callback_token = "MainToken01"
encoding_aes_key = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
scope = { departments = [1] }

[[corps.mini_programs]]
name = "portal"
appid = "wx00000000000000a1"
app = "main"

[[wechat.mini_programs]]
name = "shop"
appid = "wx0000000000000002"
secret = "shop-secret-0001"

[[wechat.mini_programs]]
name = "club"
appid = "wx0000000000000004"
secret = "club-secret-0001"

[[wechat.users]]
unionid = "oUnion000000000000000000001"
nickname = "小明"
headimgurl = "https://thirdwx.qlogo.cn/mmopen/vi_32/xiaoming/132"
phone = "13900000001"
openids = { wx0000000000000002 = "oMP00000000000000000000001", wx0000000000000004 = "oCLUB000000000000000000001" }

[[wechat.users]]
unionid = "oUnion000000000000000000002"
nickname = "小华"
phone = "13900000002"
openids = { wx0000000000000002 = "oMP00000000000000000000002" }
"#;

struct Env {
    sim: Simulator,
    _running: wx_sim::RunningSim,
    app: axum::Router,
    db: domain::Db,
    api_key: String,
    _dir: tempfile::TempDir,
}

async fn env() -> Env {
    let sim = Simulator::from_fixture_str(FIXTURE).unwrap();
    let running = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut file =
        FileConfig::from_toml_str(&sim.info().wxbridge_config("127.0.0.1:0").unwrap()).unwrap();
    let (api_key, hash) = server::auth::generate_api_key();
    file.tenants.get_mut("demo").unwrap().api_key_hashes = vec![hash.to_file_string()];
    file.server.data_dir = dir.path().display().to_string();
    let config = config_from(&file.to_toml_string().unwrap());
    let tokens = Tenants::token_manager(
        &config,
        Arc::new(MemoryTokenStore::new()),
        Arc::new(SystemClock),
    );
    let tenants = Tenants::build(&config, tokens).unwrap();
    let db = domain::Db::connect("sqlite::memory:").await.unwrap();
    db.migrate().await.unwrap();
    let state = AppState::new(Arc::new(config), tenants, Some(db.clone()));
    Env {
        sim,
        _running: running,
        app: server::router(state),
        db,
        api_key,
        _dir: dir,
    }
}

impl Env {
    async fn post(&self, path: &str, bearer: Option<&str>, body: Value) -> (StatusCode, Value) {
        let mut req = Request::post(format!("/api/v1/tenants/demo/{path}"))
            .header("content-type", "application/json");
        if let Some(b) = bearer {
            req = req.header("authorization", format!("Bearer {b}"));
        }
        let resp = self
            .app
            .clone()
            .oneshot(req.body(Body::from(body.to_string())).unwrap())
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

    fn wechat_code(&self, appid: &str, openid: &str) -> String {
        self.sim
            .mint_miniprogram_code(&MiniProgramRequest {
                appid: appid.to_owned(),
                openid: Some(openid.to_owned()),
                ..Default::default()
            })
            .unwrap()
    }

    async fn login(&self, key: &str, code: &str) -> (StatusCode, Value) {
        self.post(
            &format!("miniprograms/{key}/login"),
            None,
            json!({ "code": code }),
        )
        .await
    }

    async fn verify(&self, token: &str) -> (StatusCode, Value) {
        self.post(
            "sessions/verify",
            Some(&self.api_key),
            json!({ "token": token }),
        )
        .await
    }

    async fn enc(&self, appid: &str, openid: &str, kind: &str) -> wx_sim::EncryptedData {
        self.sim
            .encrypted_data(&MiniProgramRequest {
                appid: appid.to_owned(),
                openid: Some(openid.to_owned()),
                kind: Some(kind.to_owned()),
                ..Default::default()
            })
            .unwrap()
    }

    /// (users, WeChat identities, sessions) rows.
    async fn counts(&self) -> (i64, i64, i64) {
        (
            self.scalar("SELECT COUNT(*) FROM users").await,
            self.scalar("SELECT COUNT(*) FROM wechat_identities").await,
            self.scalar("SELECT COUNT(*) FROM sessions").await,
        )
    }

    async fn scalar(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(self.db.sqlite().unwrap())
            .await
            .unwrap()
    }

    async fn user_column(&self, user_id: i64, column: &str) -> Option<String> {
        sqlx::query_scalar(&format!("SELECT {column} FROM users WHERE id = $1"))
            .bind(user_id)
            .fetch_one(self.db.sqlite().unwrap())
            .await
            .unwrap()
    }
}

fn token_of(json: &Value) -> String {
    let t = json["token"].as_str().unwrap().to_owned();
    assert!(t.starts_with("wxs_"), "{json}");
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechat_logins_of_two_mini_programs_converge_on_one_user_and_verify() {
    let env = env().await;
    let (status, shop) = env.login("shop", &env.wechat_code(SHOP, MING_SHOP)).await;
    assert_eq!(status, StatusCode::OK, "{shop}");
    assert_eq!(shop["provider"], "wechat_mini_program");
    assert_eq!(shop["app"], "shop");
    assert_eq!(shop["openid"], MING_SHOP);
    assert_eq!(shop["unionid"], MING_UNION);
    assert_eq!(shop["created_user"], true);
    assert!(shop.get("session_key").is_none(), "{shop}");
    let shop_token = token_of(&shop);
    let user_id = shop["user"]["id"].as_i64().unwrap();

    // The session verifies through the business system's endpoint.
    let (status, v) = env.verify(&shop_token).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["user"]["id"], user_id);
    assert_eq!(v["session"]["provider"], "wechat_mini_program");
    assert_eq!(v["session"]["app"], "shop");
    assert_eq!(v["user"]["identities"]["wechat"][0]["openid"], MING_SHOP);
    assert_eq!(
        v["user"]["identities"]["wechat"][0]["app_kind"],
        "mini_program"
    );

    // The second mini program's openid differs; the unionid joins it to the same user.
    let (status, club) = env.login("club", &env.wechat_code(CLUB, MING_CLUB)).await;
    assert_eq!(status, StatusCode::OK, "{club}");
    assert_eq!(club["user"]["id"], user_id);
    assert_eq!(club["created_user"], false);
    assert_eq!(club["openid"], MING_CLUB);
    let (status, v) = env.verify(&token_of(&club)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["session"]["app"], "club");
    let mut openids: Vec<String> = v["user"]["identities"]["wechat"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["openid"].as_str().unwrap().to_owned())
        .collect();
    openids.sort();
    assert_eq!(openids, vec![MING_CLUB.to_owned(), MING_SHOP.to_owned()]);
    assert_eq!(env.counts().await, (1, 2, 2));

    // Another person is another user.
    let (status, hua) = env.login("shop", &env.wechat_code(SHOP, HUA_SHOP)).await;
    assert_eq!(status, StatusCode::OK, "{hua}");
    assert_ne!(hua["user"]["id"], user_id);
    assert_eq!(env.counts().await, (2, 3, 3));

    // The session key is stored sealed, one per identity, never in clear (it is base64 of 16 bytes:
    // a sealed blob is nonce + 24 bytes + tag).
    let sealed: Vec<Vec<u8>> = sqlx::query_scalar("SELECT sealed FROM wechat_session_keys")
        .fetch_all(env.db.sqlite().unwrap())
        .await
        .unwrap();
    assert_eq!(sealed.len(), 3);
    assert!(sealed.iter().all(|s| s.len() == 12 + 24 + 16));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_reused_or_misdirected_codes_are_refused_and_create_nothing() {
    let env = env().await;
    let (status, json) = env.login("shop", "not-a-real-code").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(json["error"]["code"], "invalid_code");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("wx.login"),
        "{json}"
    );
    // A code of one mini program does not log in through another.
    let club_code = env.wechat_code(CLUB, MING_CLUB);
    let (status, json) = env.login("shop", &club_code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(json["error"]["code"], "invalid_code");
    let (status, json) = env.login("shop", "  ").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(json["error"]["code"], "bad_request");
    let (status, _) = env
        .post("miniprograms/shop/login", None, json!({ "js_code": "x" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(env.counts().await, (0, 0, 0));

    // A code works once.
    let code = env.wechat_code(SHOP, MING_SHOP);
    let (status, json) = env.login("shop", &code).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let (status, json) = env.login("shop", &code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(json["error"]["code"], "invalid_code");
    assert_eq!(env.counts().await, (1, 1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_mini_program_key_or_tenant_is_a_404_naming_it() {
    let env = env().await;
    let (status, json) = env.login("no-such-app", "code").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{json}");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no-such-app"),
        "{json}"
    );
    let req = Request::post("/api/v1/tenants/nope/miniprograms/shop/login")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"code":"x"}"#))
        .unwrap();
    let resp = env.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(env.counts().await, (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_phone_and_user_info_fill_the_user_and_a_stale_session_key_writes_nothing() {
    let env = env().await;
    let (status, login) = env.login("shop", &env.wechat_code(SHOP, MING_SHOP)).await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let token = token_of(&login);
    let user_id = login["user"]["id"].as_i64().unwrap();
    assert_eq!(env.user_column(user_id, "mobile").await, None);

    // Phone number from encryptedData.
    let enc = env.enc(SHOP, MING_SHOP, "phone").await;
    let body = json!({ "encrypted_data": enc.encrypted_data, "iv": enc.iv, "kind": "phone" });
    let (status, json) = env
        .post("miniprograms/shop/decrypt", Some(&token), body.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["phone_number"], "13900000001");
    assert_eq!(json["country_code"], "86");
    assert_eq!(json["user_id"], user_id);
    assert_eq!(
        env.user_column(user_id, "mobile").await.as_deref(),
        Some("13900000001")
    );

    // User info: openId/unionId come back as openid/unionid; the placeholder name is replaced.
    assert_eq!(
        env.user_column(user_id, "name").await.as_deref(),
        Some("WeChat user")
    );
    let enc = env.enc(SHOP, MING_SHOP, "userinfo").await;
    let (status, json) = env
        .post(
            "miniprograms/shop/decrypt",
            Some(&token),
            json!({ "encrypted_data": enc.encrypted_data, "iv": enc.iv, "kind": "user_info" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["openid"], MING_SHOP);
    assert_eq!(json["unionid"], MING_UNION);
    assert_eq!(json["nickname"], "小明");
    assert!(json.get("openId").is_none());
    assert_eq!(
        env.user_column(user_id, "name").await.as_deref(),
        Some("小明")
    );
    assert_eq!(
        env.user_column(user_id, "avatar").await.as_deref(),
        Some("https://thirdwx.qlogo.cn/mmopen/vi_32/xiaoming/132")
    );

    // Stale session_key: Hua's data was made under the key of her first login; she logged in again
    // (a new session_key), so the stored key no longer decrypts it. Clear error, nothing written.
    let (_, hua1) = env.login("shop", &env.wechat_code(SHOP, HUA_SHOP)).await;
    let hua_id = hua1["user"]["id"].as_i64().unwrap();
    let old = env.enc(SHOP, HUA_SHOP, "phone").await;
    let (status, hua2) = env.login("shop", &env.wechat_code(SHOP, HUA_SHOP)).await;
    assert_eq!(status, StatusCode::OK, "{hua2}");
    let hua_token = token_of(&hua2);
    let before = env.counts().await;
    let (status, json) = env
        .post(
            "miniprograms/shop/decrypt",
            Some(&hua_token),
            json!({ "encrypted_data": old.encrypted_data, "iv": old.iv, "kind": "phone" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{json}");
    assert_eq!(json["error"]["code"], "session_key_stale");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("wx.login"),
        "{json}"
    );
    assert_eq!(env.user_column(hua_id, "mobile").await, None);
    assert_eq!(env.counts().await, before);
    // Data made under the current key decrypts.
    let fresh = env.enc(SHOP, HUA_SHOP, "phone").await;
    let (status, json) = env
        .post(
            "miniprograms/shop/decrypt",
            Some(&hua_token),
            json!({ "encrypted_data": fresh.encrypted_data, "iv": fresh.iv, "kind": "phone" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(
        env.user_column(hua_id, "mobile").await.as_deref(),
        Some("13900000002")
    );

    // Without a session token, or with a session of another mini program.
    let (status, json) = env
        .post("miniprograms/shop/decrypt", None, body.clone())
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{json}");
    assert_eq!(json["error"]["code"], "session_missing");
    let (status, json) = env
        .post("miniprograms/club/decrypt", Some(&token), body.clone())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{json}");
    assert_eq!(json["error"]["code"], "session_provider_mismatch");
    let (status, json) = env
        .post(
            "miniprograms/shop/decrypt",
            Some("wxs_0000000000000000000000000000000000000000000000000000000000000000"),
            body,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{json}");
    assert_eq!(json["error"]["code"], "session_unknown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_number_code_sets_the_mobile_once() {
    let env = env().await;
    let (_, login) = env.login("shop", &env.wechat_code(SHOP, HUA_SHOP)).await;
    let token = token_of(&login);
    let user_id = login["user"]["id"].as_i64().unwrap();
    let code = env
        .sim
        .mint_phone_code(&MiniProgramRequest {
            appid: SHOP.to_owned(),
            openid: Some(HUA_SHOP.to_owned()),
            ..Default::default()
        })
        .unwrap();
    let (status, json) = env
        .post(
            "miniprograms/shop/phone",
            Some(&token),
            json!({ "code": code }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["phone_number"], "13900000002");
    assert_eq!(json["user_id"], user_id);
    assert_eq!(
        env.user_column(user_id, "mobile").await.as_deref(),
        Some("13900000002")
    );
    let (status, json) = env
        .post(
            "miniprograms/shop/phone",
            Some(&token),
            json!({ "code": code }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(json["error"]["code"], "invalid_code");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wecom_mini_program_login_reads_the_member_on_demand_and_refuses_a_disabled_one() {
    let env = env().await;
    let code = |userid: &str| {
        env.sim
            .mint_miniprogram_code(&MiniProgramRequest {
                appid: PORTAL.to_owned(),
                userid: Some(userid.to_owned()),
                ..Default::default()
            })
            .unwrap()
    };
    // Nothing is synced: the member is read on demand.
    let (status, json) = env.login("portal", &code("ZhangSan")).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["provider"], "wecom_mini_program");
    assert_eq!(json["app"], "portal");
    assert_eq!(json["userid"], "ZhangSan");
    assert_eq!(json["user"]["name"], "张三");
    let (status, v) = env.verify(&token_of(&json)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["session"]["provider"], "wecom_mini_program");
    assert_eq!(v["user"]["identities"]["wecom"][0]["userid"], "ZhangSan");
    let sessions = env.scalar("SELECT COUNT(*) FROM sessions").await;

    // A disabled member gets no session.
    let (status, json) = env.login("portal", &code("LiSi")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{json}");
    assert_eq!(json["error"]["code"], "user_not_active");
    assert_eq!(env.scalar("SELECT COUNT(*) FROM sessions").await, sessions);

    // An invalid code; WeCom has no phone-number code exchange: the 400 says to use decrypt.
    let (status, json) = env.login("portal", "bogus").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(json["error"]["code"], "invalid_code");
    let (status, json) = env
        .post(
            "miniprograms/portal/phone",
            Some("wxs_x"),
            json!({ "code": "c" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(json["error"]["code"], "bad_request");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("WeCom has no phone-number code exchange")
            && message.contains("miniprograms/portal/decrypt")
            && message.contains("wx.qy.getMobile"),
        "{json}"
    );
    assert_eq!(env.scalar("SELECT COUNT(*) FROM sessions").await, sessions);
}

/// Every text or blob cell of every table that contains `needle` (SQLite), as `table.column`.
async fn cells_containing(env: &Env, needle: &[u8]) -> Vec<String> {
    let pool = env.db.sqlite().unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut found = Vec::new();
    for t in tables {
        let cols: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
            .bind(&t)
            .fetch_all(pool)
            .await
            .unwrap();
        for c in cols {
            let n: i64 = sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM \"{t}\" WHERE instr(CAST(\"{c}\" AS BLOB), $1) > 0"
            ))
            .bind(needle)
            .fetch_one(pool)
            .await
            .unwrap();
            if n > 0 {
                found.push(format!("{t}.{c}"));
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wecom_mini_program_keeps_its_session_key_sealed_and_decrypts_the_phone() {
    use base64::Engine as _;
    let env = env().await;
    let code = || {
        env.sim
            .mint_miniprogram_code(&MiniProgramRequest {
                appid: PORTAL.to_owned(),
                userid: Some("ZhangSan".to_owned()),
                ..Default::default()
            })
            .unwrap()
    };
    let enc = |kind: &str| {
        env.sim
            .encrypted_data(&MiniProgramRequest {
                appid: PORTAL.to_owned(),
                userid: Some("ZhangSan".to_owned()),
                kind: Some(kind.to_owned()),
                ..Default::default()
            })
            .unwrap()
    };
    let mut responses = Vec::new();
    let (status, first) = env.login("portal", &code()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let user_id = first["user"]["id"].as_i64().unwrap();
    responses.push(first.to_string());
    // The directory read brought the mobile; blank it so the decrypt's write is visible.
    sqlx::query("UPDATE users SET mobile = NULL WHERE id = $1")
        .bind(user_id)
        .execute(env.db.sqlite().unwrap())
        .await
        .unwrap();

    // Data made under the first login's key, sent after a second login: stale, nothing written.
    let old = enc("phone");
    let (status, second) = env.login("portal", &code()).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    responses.push(second.to_string());
    let token = token_of(&second);
    let (status, json) = env
        .post(
            "miniprograms/portal/decrypt",
            Some(&token),
            json!({ "encrypted_data": old.encrypted_data, "iv": old.iv, "kind": "phone" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{json}");
    assert_eq!(json["error"]["code"], "session_key_stale");
    responses.push(json.to_string());
    assert_eq!(env.user_column(user_id, "mobile").await, None);

    // Current data: the phone fills the mobile.
    let fresh = enc("phone");
    let (status, json) = env
        .post(
            "miniprograms/portal/decrypt",
            Some(&token),
            json!({ "encrypted_data": fresh.encrypted_data, "iv": fresh.iv, "kind": "phone" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["phone_number"], "13800000001");
    assert_eq!(json["user_id"], user_id);
    responses.push(json.to_string());
    assert_eq!(
        env.user_column(user_id, "mobile").await.as_deref(),
        Some("13800000001")
    );

    // Enterprise user info: the member's userid and name.
    let info = enc("userinfo");
    let (status, json) = env
        .post(
            "miniprograms/portal/decrypt",
            Some(&token),
            json!({ "encrypted_data": info.encrypted_data, "iv": info.iv, "kind": "user_info" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["userid"], "ZhangSan");
    assert_eq!(json["nickname"], "张三");
    responses.push(json.to_string());

    // A WeChat mini-program session does not open WeCom data, nor the reverse.
    let (_, ming) = env.login("shop", &env.wechat_code(SHOP, MING_SHOP)).await;
    let (status, json) = env
        .post(
            "miniprograms/portal/decrypt",
            Some(&token_of(&ming)),
            json!({ "encrypted_data": fresh.encrypted_data, "iv": fresh.iv, "kind": "phone" }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{json}");
    assert_eq!(json["error"]["code"], "session_provider_mismatch");
    let (status, json) = env
        .post(
            "miniprograms/shop/decrypt",
            Some(&token),
            json!({ "encrypted_data": fresh.encrypted_data, "iv": fresh.iv, "kind": "phone" }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{json}");

    // The session_key (as text and as raw bytes) is in no response and no table; one sealed row.
    assert_eq!(
        env.scalar("SELECT COUNT(*) FROM wecom_session_keys").await,
        1
    );
    let clear = env.sim.current_session_key(PORTAL, "ZhangSan").unwrap();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&clear)
        .unwrap();
    for r in &responses {
        assert!(!r.contains(&clear), "{r}");
    }
    assert_eq!(
        cells_containing(&env, clear.as_bytes()).await,
        Vec::<String>::new()
    );
    assert_eq!(cells_containing(&env, &raw).await, Vec::<String>::new());
    // The check itself finds what is there.
    assert_eq!(
        cells_containing(&env, "13800000001".as_bytes()).await,
        vec!["users.mobile".to_owned()]
    );
}
