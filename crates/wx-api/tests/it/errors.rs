//! Every error variant, produced by a real call with a token and a secret in play, is formatted (Display
//! and Debug) and checked not to contain either. Plus the retry rules against scripted answers.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use wx_api::clock::{Clock, ManualClock};
use wx_api::token::{MemoryTokenStore, StoreError, TokenKind, TokenManager};
use wx_api::wecom::{AppCredentials, WecomApp, WecomClient, api};
use wx_api::{ApiError, ErrCode, RetryPolicy};

use crate::fake::Fake;

const SECRET: &str = "SECRET-abc123-corpsecret";
const TOKEN: &str = "TOKEN-xyz789-accesstoken";

fn gettoken_ok() -> String {
    format!(r#"{{"errcode":0,"errmsg":"ok","access_token":"{TOKEN}","expires_in":7200}}"#)
}

fn app_on(
    base: &str,
    http: reqwest::Client,
    clock: &ManualClock,
    agentid: Option<i64>,
) -> WecomApp {
    let tokens = Arc::new(TokenManager::new(
        Arc::new(MemoryTokenStore::new()),
        Arc::new(clock.clone()),
    ));
    let client = WecomClient::new(http, base, tokens).unwrap();
    client.app(AppCredentials {
        tenant: "acme".into(),
        corpid: "ww-corp".into(),
        agentid,
        secret: SecretString::from(SECRET.to_owned()),
    })
}

fn assert_clean(err: &ApiError) {
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(TOKEN), "token leaked: {text}");
        assert!(!text.contains(SECRET), "secret leaked: {text}");
        assert!(
            !text.contains("access_token="),
            "request URL leaked: {text}"
        );
    }
    assert!(
        err.to_string().starts_with("TK0"),
        "greppable code missing: {err}"
    );
}

#[tokio::test]
async fn no_error_variant_shows_the_token_or_secret() {
    let clock = ManualClock::new(1_700_000_000_000);
    let (fake, base) = Fake::start().await;
    fake.always(api::GETTOKEN, 200, &gettoken_ok());
    let app = app_on(&base, wx_api::http_client().unwrap(), &clock, None);
    let mut seen = Vec::new();

    // Upstream, with an errmsg that (hypothetically) echoes both.
    fake.push(
        api::USER_GET,
        200,
        &format!(r#"{{"errcode":60011,"errmsg":"no privilege {TOKEN} {SECRET}"}}"#),
    );
    let err = app.user_get("u1").await.unwrap_err();
    assert!(matches!(
        err,
        ApiError::Upstream {
            code: ErrCode::NoPrivilege,
            ..
        }
    ));
    seen.push(err);

    // Non-200 status with the token in the body.
    fake.push(api::USER_GET, 500, &format!("oops {TOKEN}"));
    let err = app.user_get("u1").await.unwrap_err();
    assert!(
        matches!(err, ApiError::HttpStatus { status: 500, .. }),
        "{err:?}"
    );
    seen.push(err);

    // Unreadable JSON whose error message would quote the token.
    fake.push(
        api::USER_GET,
        200,
        &format!(r#"{{"errcode":0,"userid":"u1","department":"{TOKEN}"}}"#),
    );
    let err = app.user_get("u1").await.unwrap_err();
    assert!(matches!(err, ApiError::BadResponse { .. }), "{err:?}");
    seen.push(err);

    // 45009, then the block window.
    fake.push(
        api::USER_GET,
        200,
        r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#,
    );
    seen.push(app.user_get("u1").await.unwrap_err());
    let err = app.user_get("u1").await.unwrap_err();
    assert!(matches!(err, ApiError::RateLimited { .. }), "{err:?}");
    seen.push(err);

    // Busy until the budget runs out.
    for _ in 0..4 {
        fake.push(
            api::TAG_LIST,
            200,
            r#"{"errcode":-1,"errmsg":"system busy"}"#,
        );
    }
    let err = app.tag_list().await.unwrap_err();
    assert!(
        matches!(err, ApiError::BusyRetriesExhausted { attempts: 4, .. }),
        "{err:?}"
    );
    seen.push(err);

    // A request that cannot be built (no agentid for agent/get).
    let err = app.agent_get().await.unwrap_err();
    assert!(matches!(err, ApiError::InvalidRequest { .. }), "{err:?}");
    seen.push(err);

    // Connection refused on gettoken, whose URL carries the secret.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    let dead = app_on(
        &format!("http://{closed_addr}"),
        wx_api::http_client().unwrap(),
        &clock,
        None,
    );
    let err = dead.user_get("u1").await.unwrap_err();
    assert!(matches!(err, ApiError::Transport { .. }), "{err:?}");
    seen.push(err);

    // A server that accepts and never answers, with a short client timeout.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung_addr = hung.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hung.accept().await {
            held.push(socket);
        }
    });
    let short = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = app_on(&format!("http://{hung_addr}"), short, &clock, None)
        .user_get("u1")
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Timeout { .. }), "{err:?}");
    seen.push(err);

    seen.push(ApiError::Store(StoreError::new(
        "redis",
        "connection refused",
    )));
    seen.push(ApiError::TokenWaitTimeout {
        tenant: "acme".into(),
        kind: TokenKind::WecomAccessToken,
        waited: Duration::from_secs(10),
    });
    for err in &seen {
        assert_clean(err);
    }
    // Token and secret did go on the wire, in the query string only.
    assert!(fake.queries(api::GETTOKEN)[0].contains("corpsecret=SECRET-abc123"));
    assert!(fake.queries(api::USER_GET)[0].contains(&format!("access_token={TOKEN}")));
}

#[tokio::test]
async fn retry_rules_on_scripted_answers() {
    let clock = ManualClock::new(1_700_000_000_000);
    let (fake, base) = Fake::start().await;
    fake.always(api::GETTOKEN, 200, &gettoken_ok());
    fake.always(
        api::TAG_LIST,
        200,
        r#"{"errcode":0,"errmsg":"ok","taglist":[{"tagid":1,"tagname":"a"}]}"#,
    );
    let app = app_on(&base, wx_api::http_client().unwrap(), &clock, None);

    // 40014 twice in a row: one refresh, one retry, then the error (no loop).
    fake.push(
        api::TAG_LIST,
        200,
        r#"{"errcode":40014,"errmsg":"invalid access_token"}"#,
    );
    fake.push(
        api::TAG_LIST,
        200,
        r#"{"errcode":40014,"errmsg":"invalid access_token"}"#,
    );
    let err = app.tag_list().await.unwrap_err();
    assert_eq!(err.errcode(), Some(ErrCode::InvalidAccessToken));
    assert_eq!(fake.calls(api::TAG_LIST), 2);
    assert_eq!(fake.calls(api::GETTOKEN), 2);

    // -1 twice then success: three calls, backoff through the manual clock (200 ms + 400 ms).
    let before = clock.now_ms();
    fake.push(
        api::TAG_LIST,
        200,
        r#"{"errcode":-1,"errmsg":"system busy"}"#,
    );
    fake.push(
        api::TAG_LIST,
        200,
        r#"{"errcode":45033,"errmsg":"api concurrent out of limit"}"#,
    );
    assert_eq!(app.tag_list().await.unwrap().len(), 1);
    assert_eq!(fake.calls(api::TAG_LIST), 5);
    assert_eq!(clock.now_ms() - before, 600);

    // 48002 / 40001 / 60020: once each, never retried.
    for code in [48002, 60020] {
        fake.push(
            api::TAG_LIST,
            200,
            &format!(r#"{{"errcode":{code},"errmsg":"x"}}"#),
        );
        let calls = fake.calls(api::TAG_LIST);
        let err = app.tag_list().await.unwrap_err();
        assert_eq!(err.errcode(), Some(ErrCode::from_code(code)));
        assert_eq!(fake.calls(api::TAG_LIST), calls + 1);
    }

    // 45009 opens a window for that API only; it closes after the configured window.
    fake.push(
        api::TAG_LIST,
        200,
        r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#,
    );
    app.tag_list().await.unwrap_err();
    let calls = fake.calls(api::TAG_LIST);
    let err = app.tag_list().await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(60)));
    assert_eq!(
        fake.calls(api::TAG_LIST),
        calls,
        "a blocked call must not reach the server"
    );
    assert_eq!(
        app.blocked_for(api::TAG_LIST),
        Some(Duration::from_secs(60))
    );
    assert_eq!(app.blocked_for(api::USER_GET), None);
    clock.advance(Duration::from_secs(60));
    assert_eq!(app.tag_list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn wrong_secret_is_not_retried_and_not_hammered() {
    let clock = ManualClock::new(1_700_000_000_000);
    let (fake, base) = Fake::start().await;
    fake.always(
        api::GETTOKEN,
        200,
        r#"{"errcode":40001,"errmsg":"invalid credential"}"#,
    );
    let tokens = Arc::new(TokenManager::new(
        Arc::new(MemoryTokenStore::new()),
        Arc::new(clock.clone()),
    ));
    let client = WecomClient::new(wx_api::http_client().unwrap(), &base, tokens)
        .unwrap()
        .with_retry_policy(RetryPolicy {
            busy_retries: 1,
            ..RetryPolicy::default()
        });
    let app = client.app(AppCredentials {
        tenant: "acme".into(),
        corpid: "ww-corp".into(),
        agentid: Some(1),
        secret: SecretString::from("wrong".to_owned()),
    });
    let err = app.tag_list().await.unwrap_err();
    assert_eq!(err.errcode(), Some(ErrCode::InvalidCredential));
    assert_eq!(fake.calls(api::GETTOKEN), 1);
    assert_eq!(fake.calls(api::TAG_LIST), 0);
}
