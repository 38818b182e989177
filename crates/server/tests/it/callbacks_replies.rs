//! Passive replies and the mini-program message push, over HTTP against a served bridge:
//!
//! - a WeCom app with `default_reply` / `subscribe_reply` answers a text message and `subscribe` with an
//!   encrypted reply that decrypts (signature over the reply's own timestamp and nonce) to a text reply
//!   with To/From swapped; change_contact and other events get the empty answer; a redelivery gets the
//!   same reply and stores nothing new;
//! - an official account's `subscribe_reply` in plain mode, compatible mode (a plain and an encrypted
//!   request) and safe mode (XML and JSON envelopes);
//! - a mini program's message push: GET verification, XML and JSON in plain and safe mode stored with
//!   source `wechat_mp:<name>`, a bad signature refused with nothing stored, and a clear 404 when the
//!   mini program has no push configured.

use serde_json::{Value, json};
use wx_crypto::{CallbackCrypto, CallbackMessage, XmlBuilder};
use wxbridge_config::FileSecret;

use crate::callbacks::{Env, env_edited, envelope, q};

const DEFAULT_REPLY: &str = "收到，我们稍后回复 <&>";
const SUBSCRIBE_REPLY: &str = "欢迎关注";
const TS: &str = "1700000100";
const NONCE: &str = "rn0nce42";

/// Status, content type and body of a POST.
async fn post(env: &Env, url: &str, query: &[(&str, &str)], body: String) -> (u16, String, String) {
    let resp = env
        .http
        .post(url)
        .query(query)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ctype, resp.text().await.unwrap())
}

/// Checks an encrypted reply envelope (XML or JSON, any key spelling) the way the platform does and
/// returns the decrypted reply: the signature is over the reply's own TimeStamp and Nonce, and the
/// nonce echoes the request's.
fn open_reply(crypto: &CallbackCrypto, body: &str) -> CallbackMessage {
    let env = CallbackMessage::parse(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let field = |a: &str, b: &str| {
        env.get(a)
            .or_else(|| env.get(b))
            .unwrap_or_else(|| panic!("no {a} in the reply: {body}"))
            .to_owned()
    };
    let encrypt = field("Encrypt", "encrypt");
    let sig = field("MsgSignature", "msgsignature");
    let ts = field("TimeStamp", "timestamp");
    let nonce = field("Nonce", "nonce");
    assert_eq!(nonce, NONCE, "the reply echoes the request's nonce: {body}");
    assert_ne!(ts, TS, "the reply has its own timestamp: {body}");
    crypto
        .decrypt_encrypted(&sig, &ts, &nonce, &encrypt)
        .unwrap_or_else(|e| panic!("the reply does not verify: {e}: {body}"))
        .parse_message()
        .unwrap()
}

/// Asserts a text reply from `from` to `to` saying `content`.
fn assert_text_reply(reply: &CallbackMessage, to: &str, from: &str, content: &str) {
    assert_eq!(reply.to_user(), Some(to), "{}", reply.plaintext());
    assert_eq!(reply.from_user(), Some(from), "{}", reply.plaintext());
    assert_eq!(reply.msg_type(), Some("text"), "{}", reply.plaintext());
    assert_eq!(reply.get("Content"), Some(content), "{}", reply.plaintext());
    assert!(reply.create_time().unwrap() > 1_700_000_000);
    assert!(reply.get("Encrypt").is_none(), "{}", reply.plaintext());
}

fn wecom_msg(
    corpid: &str,
    from: &str,
    agentid: u32,
    build: impl FnOnce(&mut XmlBuilder),
) -> String {
    let mut b = XmlBuilder::new();
    b.cdata("ToUserName", corpid)
        .cdata("FromUserName", from)
        .text("CreateTime", "1700000200");
    build(&mut b);
    b.text("AgentID", &agentid.to_string());
    b.finish()
}

#[tokio::test]
async fn a_wecom_app_answers_messages_and_subscribe_with_encrypted_replies_once_stored() {
    let env = env_edited("sqlite", true, |t| {
        for app in t.wecom.as_mut().unwrap().apps.values_mut() {
            app.default_reply = Some(DEFAULT_REPLY.into());
            app.subscribe_reply = Some(SUBSCRIBE_REPLY.into());
        }
    })
    .await;
    let app = env.sim.info().corps[0].apps[0].clone();
    let crypto =
        CallbackCrypto::new(&app.callback_token, &app.encoding_aes_key, &env.corpid).unwrap();
    let url = format!(
        "{}/callback/{}/wecom/apps/{}",
        env.base, env.tenant, app.name
    );
    let signed = |plaintext: &str| {
        // envelope() signs with its own nonce; re-sign with ours so the echo can be checked.
        let (_, body) = envelope(&crypto, plaintext);
        let encrypt = CallbackMessage::parse(&body)
            .unwrap()
            .get("Encrypt")
            .unwrap()
            .to_owned();
        let query: Vec<(String, String)> = vec![
            ("msg_signature".into(), crypto.sign(TS, NONCE, &encrypt)),
            ("timestamp".into(), TS.into()),
            ("nonce".into(), NONCE.into()),
        ];
        (query, body)
    };

    // A text message: the default reply, encrypted, To/From swapped.
    let text = wecom_msg(&env.corpid, "zhangsan", app.agentid, |b| {
        b.cdata("MsgType", "text")
            .cdata("Content", "你好")
            .text("MsgId", "7000000000000000001");
    });
    let (query, body) = signed(&text);
    let mut replies = Vec::new();
    for delivery in 0..2 {
        let (status, ctype, answer) = post(&env, &url, &q(&query), body.clone()).await;
        assert_eq!(status, 200, "delivery {delivery}: {answer}");
        assert!(ctype.starts_with("application/xml"), "{ctype}");
        assert!(
            answer.starts_with("<xml>") && answer.contains("<Encrypt>"),
            "{answer}"
        );
        let reply = open_reply(&crypto, &answer);
        assert_text_reply(&reply, "zhangsan", &env.corpid, DEFAULT_REPLY);
        replies.push((
            reply.to_user().map(str::to_owned),
            reply.get("Content").map(str::to_owned),
        ));
        assert_eq!(env.inbox().await.len(), 1, "delivery {delivery}: one row");
    }
    assert_eq!(replies[0], replies[1], "a redelivery gets the same reply");

    // subscribe: the subscribe reply.
    let subscribe = wecom_msg(&env.corpid, "lisi", app.agentid, |b| {
        b.cdata("MsgType", "event").cdata("Event", "subscribe");
    });
    let (query, body) = signed(&subscribe);
    let (status, _, answer) = post(&env, &url, &q(&query), body).await;
    assert_eq!(status, 200, "{answer}");
    assert_text_reply(
        &open_reply(&crypto, &answer),
        "lisi",
        &env.corpid,
        SUBSCRIBE_REPLY,
    );

    // No reply: change_contact, enter_agent, click, unsubscribe. Each stored, answered empty.
    let silent = [
        wecom_msg(&env.corpid, "sys", app.agentid, |b| {
            b.cdata("MsgType", "event")
                .cdata("Event", "change_contact")
                .cdata("ChangeType", "update_user")
                .cdata("UserID", &env.sim.directory().members[0].userid);
        }),
        wecom_msg(&env.corpid, "wangwu", app.agentid, |b| {
            b.cdata("MsgType", "event")
                .cdata("Event", "enter_agent")
                .cdata("EventKey", "");
        }),
        wecom_msg(&env.corpid, "zhaoliu", app.agentid, |b| {
            b.cdata("MsgType", "event")
                .cdata("Event", "click")
                .cdata("EventKey", "MENU_1");
        }),
        wecom_msg(&env.corpid, "lisi", app.agentid, |b| {
            b.cdata("MsgType", "event").cdata("Event", "unsubscribe");
        }),
    ];
    for (i, plaintext) in silent.iter().enumerate() {
        let (query, body) = signed(plaintext);
        let (status, _, answer) = post(&env, &url, &q(&query), body).await;
        assert_eq!(status, 200, "event {i}: {answer}");
        assert_eq!(answer, "", "event {i}: WeCom gets the empty answer");
    }
    assert_eq!(env.inbox().await.len(), 2 + silent.len());
    env.shutdown().await;
}

/// Every account has its own appid (the receive id of its ciphertexts).
const OA_PLAIN_APPID: &str = "wx00000000000000b1";
const OA_COMPAT_APPID: &str = "wx00000000000000b2";
const MP_PLAIN_APPID: &str = "wx00000000000000a1";
const MP_SAFE_APPID: &str = "wx00000000000000a2";

/// Adds `plain` and `compat` copies of the simulator's (safe-mode) official account, and a subscribe
/// reply on all three.
fn official_accounts(t: &mut wxbridge_config::file::TenantFile) {
    let oas = &mut t.wechat.as_mut().unwrap().official_accounts;
    let (_, safe) = oas.iter_mut().next().unwrap();
    safe.subscribe_reply = Some(SUBSCRIBE_REPLY.into());
    let base = safe.clone();
    for (mode, appid) in [("plain", OA_PLAIN_APPID), ("compat", OA_COMPAT_APPID)] {
        let mut oa = base.clone();
        oa.mode = mode.into();
        oa.appid = appid.into();
        oas.insert(format!("oa_{mode}"), oa);
    }
}

/// The query of a WeChat POST: `signature` always; `encrypt_type=aes` and `msg_signature` over
/// `encrypt` when given.
fn wechat_query(
    token: &str,
    openid: &str,
    encrypt: Option<(&CallbackCrypto, &str)>,
) -> Vec<(String, String)> {
    let mut query = vec![
        (
            "signature".to_owned(),
            wx_crypto::signature(token, TS, NONCE),
        ),
        ("timestamp".to_owned(), TS.to_owned()),
        ("nonce".to_owned(), NONCE.to_owned()),
        ("openid".to_owned(), openid.to_owned()),
    ];
    if let Some((crypto, encrypt)) = encrypt {
        query.push(("encrypt_type".into(), "aes".into()));
        query.push(("msg_signature".into(), crypto.sign(TS, NONCE, encrypt)));
    }
    query
}

fn oa_event(gh: &str, openid: &str, event: &str) -> String {
    let mut b = XmlBuilder::new();
    b.cdata("ToUserName", gh)
        .cdata("FromUserName", openid)
        .text("CreateTime", "1700000300")
        .cdata("MsgType", "event")
        .cdata("Event", event);
    b.finish()
}

#[tokio::test]
async fn official_accounts_answer_subscribe_in_plain_compat_and_safe_mode() {
    let env = env_edited("sqlite", true, official_accounts).await;
    let oa = env.sim.info().wechat.official_accounts[0].clone();
    let crypto = CallbackCrypto::new(&oa.token, &oa.encoding_aes_key, &oa.appid).unwrap();
    let compat = CallbackCrypto::new(&oa.token, &oa.encoding_aes_key, OA_COMPAT_APPID).unwrap();
    let url = |name: &str| {
        format!(
            "{}/callback/{}/wechat/official-accounts/{name}",
            env.base, env.tenant
        )
    };
    let gh = oa.original_id.as_str();

    // Plain mode: a plain XML reply.
    let body = oa_event(gh, "oPlain1", "subscribe");
    let query = wechat_query(&oa.token, "oPlain1", None);
    let (status, ctype, answer) = post(&env, &url("oa_plain"), &q(&query), body).await;
    assert_eq!(status, 200, "{answer}");
    assert!(ctype.starts_with("application/xml"), "{ctype}");
    let reply = CallbackMessage::parse(&answer).unwrap();
    assert_text_reply(&reply, "oPlain1", gh, SUBSCRIBE_REPLY);

    // Compatible mode, unencrypted request: a plain reply.
    let body = oa_event(gh, "oCompat1", "subscribe");
    let query = wechat_query(&oa.token, "oCompat1", None);
    let (status, _, answer) = post(&env, &url("oa_compat"), &q(&query), body).await;
    assert_eq!(status, 200, "{answer}");
    assert_text_reply(
        &CallbackMessage::parse(&answer).unwrap(),
        "oCompat1",
        gh,
        SUBSCRIBE_REPLY,
    );

    // Compatible mode, encrypted request (plaintext fields beside Encrypt): an encrypted reply.
    let plaintext = oa_event(gh, "oCompat2", "subscribe");
    let encrypt = compat.encrypt(plaintext.as_bytes(), [3u8; 16]).unwrap();
    let body = plaintext.replace(
        "</xml>",
        &format!("<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"),
    );
    let query = wechat_query(&oa.token, "oCompat2", Some((&compat, &encrypt)));
    let (status, _, answer) = post(&env, &url("oa_compat"), &q(&query), body).await;
    assert_eq!(status, 200, "{answer}");
    assert_text_reply(
        &open_reply(&compat, &answer),
        "oCompat2",
        gh,
        SUBSCRIBE_REPLY,
    );

    // Safe mode, XML envelope: an encrypted XML reply.
    let plaintext = oa_event(gh, "oSafe1", "subscribe");
    let encrypt = crypto.encrypt(plaintext.as_bytes(), [4u8; 16]).unwrap();
    let body = format!(
        "<xml><ToUserName><![CDATA[{gh}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    );
    let query = wechat_query(&oa.token, "oSafe1", Some((&crypto, &encrypt)));
    let (status, ctype, answer) = post(&env, &url(&oa.name), &q(&query), body).await;
    assert_eq!(status, 200, "{answer}");
    assert!(ctype.starts_with("application/xml"), "{ctype}");
    assert_text_reply(&open_reply(&crypto, &answer), "oSafe1", gh, SUBSCRIBE_REPLY);

    // Safe mode, JSON envelope and JSON plaintext: `{"Encrypt","MsgSignature","TimeStamp":n,"Nonce"}`
    // around a JSON reply.
    let plaintext = json!({
        "ToUserName": gh, "FromUserName": "oSafe2", "CreateTime": 1700000301,
        "MsgType": "event", "Event": "subscribe",
    })
    .to_string();
    let encrypt = crypto.encrypt(plaintext.as_bytes(), [5u8; 16]).unwrap();
    let body = json!({ "ToUserName": gh, "Encrypt": encrypt }).to_string();
    let query = wechat_query(&oa.token, "oSafe2", Some((&crypto, &encrypt)));
    let (status, ctype, answer) = post(&env, &url(&oa.name), &q(&query), body).await;
    assert_eq!(status, 200, "{answer}");
    assert!(ctype.starts_with("application/json"), "{ctype}");
    let envelope: Value = serde_json::from_str(&answer).unwrap();
    assert!(
        envelope["TimeStamp"].is_u64(),
        "TimeStamp is a number: {answer}"
    );
    assert!(envelope["MsgSignature"].is_string(), "{answer}");
    let reply = open_reply(&crypto, &answer);
    assert_eq!(reply.format(), wx_crypto::PayloadFormat::Json);
    assert_text_reply(&reply, "oSafe2", gh, SUBSCRIBE_REPLY);

    // No default_reply configured: a text message gets `success`; unsubscribe too.
    let mut b = XmlBuilder::new();
    b.cdata("ToUserName", gh)
        .cdata("FromUserName", "oPlain1")
        .text("CreateTime", "1700000302")
        .cdata("MsgType", "text")
        .cdata("Content", "hi")
        .text("MsgId", "42");
    for body in [b.finish(), oa_event(gh, "oPlain1", "unsubscribe")] {
        let query = wechat_query(&oa.token, "oPlain1", None);
        let (status, _, answer) = post(&env, &url("oa_plain"), &q(&query), body).await;
        assert_eq!((status, answer.as_str()), (200, "success"));
    }
    let rows = env.inbox().await;
    assert_eq!(rows.len(), 7, "{rows:?}");
    env.shutdown().await;
}

const PUSH_TOKEN: &str = "PushToken2024";

/// `mp_plain` (plain mode, token only) and `mp_safe` (safe mode) with message push, copied from the
/// simulator's first mini program, whose own entry keeps no push.
fn mini_programs(t: &mut wxbridge_config::file::TenantFile) {
    let wechat = t.wechat.as_mut().unwrap();
    let aes = wechat
        .official_accounts
        .values()
        .next()
        .unwrap()
        .encoding_aes_key
        .clone();
    let mps = &mut wechat.mini_programs;
    let base = mps.values().next().unwrap().clone();
    let mut plain = base.clone();
    plain.appid = MP_PLAIN_APPID.into();
    plain.push_token = Some(FileSecret::new(PUSH_TOKEN));
    plain.push_mode = Some("plain".into());
    mps.insert("mp_plain".into(), plain);
    let mut safe = base;
    safe.appid = MP_SAFE_APPID.into();
    safe.push_token = Some(FileSecret::new(PUSH_TOKEN));
    safe.push_encoding_aes_key = aes;
    safe.push_mode = Some("safe".into());
    mps.insert("mp_safe".into(), safe);
}

#[tokio::test]
async fn mini_program_push_is_verified_and_stored_in_plain_and_safe_mode() {
    let env = env_edited("sqlite", true, mini_programs).await;
    let info = env.sim.info();
    let key = info.wechat.official_accounts[0].encoding_aes_key.clone();
    let crypto = CallbackCrypto::new(PUSH_TOKEN, &key, MP_SAFE_APPID).unwrap();
    let url = |name: &str| {
        format!(
            "{}/callback/{}/wechat/mini-programs/{name}",
            env.base, env.tenant
        )
    };
    let gh = "gh_minipush0001";

    // GET verification, the plain form in every mode: echostr back unchanged.
    for name in ["mp_plain", "mp_safe"] {
        let resp = env
            .http
            .get(url(name))
            .query(&[
                (
                    "signature",
                    wx_crypto::signature(PUSH_TOKEN, TS, NONCE).as_str(),
                ),
                ("timestamp", TS),
                ("nonce", NONCE),
                ("echostr", "echo+4711/="),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{name}");
        assert_eq!(resp.text().await.unwrap(), "echo+4711/=", "{name}");
    }

    let xml_text = |openid: &str, msgid: &str| {
        let mut b = XmlBuilder::new();
        b.cdata("ToUserName", gh)
            .cdata("FromUserName", openid)
            .text("CreateTime", "1700000400")
            .cdata("MsgType", "text")
            .cdata("Content", "客服你好")
            .text("MsgId", msgid);
        b.finish()
    };
    let json_event = |openid: &str| {
        json!({
            "ToUserName": gh, "FromUserName": openid, "CreateTime": 1700000401,
            "MsgType": "event", "Event": "user_enter_tempsession", "SessionFrom": "card",
        })
        .to_string()
    };

    // Plain: XML and JSON bodies, `success`.
    for body in [xml_text("oMp1", "9001"), json_event("oMp2")] {
        let query = wechat_query(PUSH_TOKEN, "oMp", None);
        let (status, _, answer) = post(&env, &url("mp_plain"), &q(&query), body).await;
        assert_eq!((status, answer.as_str()), (200, "success"));
    }
    // Safe: XML and JSON envelopes.
    let xml = xml_text("oMp3", "9002");
    let encrypt = crypto.encrypt(xml.as_bytes(), [6u8; 16]).unwrap();
    let xml_body = format!(
        "<xml><ToUserName><![CDATA[{gh}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    );
    let xml_query = wechat_query(PUSH_TOKEN, "oMp3", Some((&crypto, &encrypt)));
    let js = json_event("oMp4");
    let encrypt = crypto.encrypt(js.as_bytes(), [7u8; 16]).unwrap();
    let json_body = json!({ "ToUserName": gh, "Encrypt": encrypt }).to_string();
    let json_query = wechat_query(PUSH_TOKEN, "oMp4", Some((&crypto, &encrypt)));
    for (query, body) in [(&xml_query, &xml_body), (&json_query, &json_body)] {
        let (status, _, answer) = post(&env, &url("mp_safe"), &q(query), body.clone()).await;
        assert_eq!((status, answer.as_str()), (200, "success"), "{body}");
    }
    // A redelivery stores nothing new.
    let (status, _, _) = post(&env, &url("mp_safe"), &q(&json_query), json_body.clone()).await;
    assert_eq!(status, 200);

    let mut rows = env.inbox().await;
    rows.sort_by_key(|r| r.id);
    let got: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.source.clone(), r.kind.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("wechat_mp:mp_plain".to_owned(), "msg:text".to_owned()),
            (
                "wechat_mp:mp_plain".to_owned(),
                "event:user_enter_tempsession".to_owned()
            ),
            ("wechat_mp:mp_safe".to_owned(), "msg:text".to_owned()),
            (
                "wechat_mp:mp_safe".to_owned(),
                "event:user_enter_tempsession".to_owned()
            ),
        ]
    );
    assert!(rows[2].payload.contains("客服你好") && rows[2].payload.contains("oMp3"));
    assert!(rows[3].payload.starts_with('{') && rows[3].payload.contains("oMp4"));

    // Refusals, nothing stored.
    let mut bad = wechat_query(PUSH_TOKEN, "oMp", None);
    bad[0].1 = "0".repeat(40);
    let mut bad_safe = xml_query.clone();
    bad_safe.last_mut().unwrap().1 = "0".repeat(40);
    // The simulator's own mini program keeps no push.
    let unconfigured = &info.wechat.mini_programs[0].name;
    let cases = [
        (
            "bad signature (plain)",
            url("mp_plain"),
            bad,
            xml_text("oMp9", "9009"),
            403,
            "bad_signature",
            "signature",
        ),
        (
            "bad msg_signature (safe)",
            url("mp_safe"),
            bad_safe,
            xml_body.clone(),
            403,
            "bad_signature",
            "signature",
        ),
        (
            "plaintext to safe mode",
            url("mp_safe"),
            wechat_query(PUSH_TOKEN, "oMp", None),
            xml_text("oMp9", "9010"),
            400,
            "bad_request",
            "safe mode",
        ),
        (
            "no push configured",
            url(unconfigured),
            wechat_query(PUSH_TOKEN, "oMp", None),
            xml_text("oMp9", "9011"),
            404,
            "callback_not_configured",
            "push_token",
        ),
        (
            "unknown mini program",
            url("nosuch"),
            wechat_query(PUSH_TOKEN, "oMp", None),
            xml_text("oMp9", "9012"),
            404,
            "unknown_callback",
            "mini program `nosuch`",
        ),
    ];
    for (what, url, query, body, status, code, text) in cases {
        let (got, _, answer) = post(&env, &url, &q(&query), body).await;
        assert_eq!(got, status, "{what}: {answer}");
        let err: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(err["error"]["code"], code, "{what}: {err}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains(text), "{what}: {message}");
        assert!(
            !message.contains(PUSH_TOKEN),
            "{what}: the token leaked: {message}"
        );
    }
    // GET of the unconfigured one is refused too.
    let resp = env.http.get(url(unconfigured)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(env.inbox().await.len(), 4, "nothing stored by the refusals");
    env.shutdown().await;
}
