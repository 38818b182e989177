//! Callback registration (URL verification) and pushes, received by a tiny axum server in the test that
//! decrypts with wx-crypto.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::json;
use wx_crypto::{CallbackCrypto, ChangeType};
use wx_sim::{AgentRef, CallbackRequest, Member, MemberUpdate};

use crate::common::Env;
use crate::contacts::example;

/// Query parameters and body of every POST received.
type Seen = Arc<Mutex<Vec<(HashMap<String, String>, String)>>>;

#[derive(Clone)]
struct Receiver {
    crypto: CallbackCrypto,
    /// Answer this status to the first `fail_first` POSTs.
    fail_first: usize,
    /// Answer the URL check with something else than the echo.
    wrong_echo: bool,
    seen: Seen,
}

async fn verify(
    State(r): State<Receiver>,
    Query(q): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    match r.crypto.verify_url(
        &q["msg_signature"],
        &q["timestamp"],
        &q["nonce"],
        &q["echostr"],
    ) {
        Ok(echo) if !r.wrong_echo => (StatusCode::OK, echo),
        Ok(echo) => (StatusCode::OK, format!("\"{echo}\"\n")),
        Err(_) => (StatusCode::FORBIDDEN, "bad signature".to_owned()),
    }
}

async fn receive(
    State(r): State<Receiver>,
    Query(q): Query<HashMap<String, String>>,
    body: String,
) -> StatusCode {
    let mut seen = r.seen.lock().unwrap();
    seen.push((q, body));
    if seen.len() <= r.fail_first {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

async fn start_receiver(r: Receiver) -> String {
    let app = Router::new()
        .route("/cb", get(verify).post(receive))
        .with_state(r);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/cb")
}

fn contacts_receiver(fail_first: usize, wrong_echo: bool) -> Receiver {
    Receiver {
        crypto: CallbackCrypto::new(
            "ContactsToken01",
            "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
            "ww0000000000000001",
        )
        .unwrap(),
        fail_first,
        wrong_echo,
        seen: Arc::default(),
    }
}

fn contacts_request(url: String) -> CallbackRequest {
    CallbackRequest {
        agentid: Some(AgentRef::Named("contacts".into())),
        url,
        ..Default::default()
    }
}

#[tokio::test]
async fn changes_push_encrypted_change_contact_callbacks() {
    let env = Env::start(example()).await;
    let recv = contacts_receiver(0, false);
    let seen = recv.seen.clone();
    let crypto = recv.crypto.clone();
    let url = start_receiver(recv).await;
    let (status, body) = env
        .control(
            "/_sim/callbacks",
            &json!({"agentid": "contacts", "url": url}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    env.sim
        .add_member(Member {
            userid: "ZhaoLiu".into(),
            name: "赵六".into(),
            department: vec![3],
            order: vec![],
            is_leader_in_dept: vec![],
            direct_leader: vec![],
            main_department: 0,
            position: "工程师".into(),
            mobile: "13800000009".into(),
            gender: "1".into(),
            email: String::new(),
            biz_mail: String::new(),
            avatar: String::new(),
            thumb_avatar: String::new(),
            telephone: String::new(),
            alias: String::new(),
            address: String::new(),
            status: 1,
            qr_code: String::new(),
            open_userid: String::new(),
        })
        .unwrap();
    env.sim
        .update_member(
            "ZhaoLiu",
            MemberUpdate {
                new_userid: Some("zhaoliu2".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let (s, _) = env
        .control(
            "/_sim/departments",
            &json!({"name": "前端组", "parentid": 2}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = env
        .control("/_sim/members/zhaoliu2", &json!({"department": [5]}))
        .await;
    assert_eq!(s, 200);
    let (s, _) = env
        .control("/_sim/tags/2", &json!({"add_users": ["LiSi"]}))
        .await;
    assert_eq!(s, 200);
    let resp = env
        .http
        .delete(env.url("/_sim/members/zhaoliu2"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = env
        .http
        .delete(env.url("/_sim/departments/5"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    env.sim.wait_for_deliveries().await;

    let seen = seen.lock().unwrap().clone();
    let mut kinds = Vec::new();
    for (q, body) in &seen {
        let msg = crypto
            .decrypt_body(
                &q["msg_signature"],
                &q["timestamp"],
                &q["nonce"],
                body.as_bytes(),
            )
            .unwrap();
        let parsed = msg.parse_message().unwrap();
        assert_eq!(parsed.event(), Some("change_contact"));
        let change = parsed.change_contact().unwrap();
        kinds.push(change.change_type());
        if change.change_type() == ChangeType::UpdateUser && change.new_user_id().is_some() {
            assert_eq!(change.user_id(), Some("ZhaoLiu"));
            assert_eq!(change.new_user_id(), Some("zhaoliu2"));
        }
        if change.change_type() == ChangeType::CreateUser {
            assert_eq!(change.departments().unwrap(), Some(vec![3]));
            assert_eq!(change.name(), Some("赵六"));
        }
    }
    assert_eq!(
        kinds,
        [
            ChangeType::CreateUser,
            ChangeType::UpdateUser,
            ChangeType::CreateParty,
            ChangeType::UpdateUser,
            ChangeType::UpdateTag,
            ChangeType::DeleteUser,
            ChangeType::DeleteParty
        ]
    );
    assert!(
        env.sim
            .deliveries()
            .iter()
            .all(|d| d.delivered && d.attempts.len() == 1)
    );
    let dir = env.sim.directory();
    assert!(dir.member("zhaoliu2").is_none());
    assert!(dir.departments.iter().all(|d| d.id != 5));
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_identical_payload() {
    let env = Env::start(example()).await;
    let recv = contacts_receiver(2, false);
    let seen = recv.seen.clone();
    let url = start_receiver(recv).await;
    env.sim
        .register_callback(contacts_request(url))
        .await
        .unwrap();
    env.sim.remove_member("WangWu").unwrap();
    env.sim.wait_for_deliveries().await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter().all(|s| *s == seen[0]),
        "timestamp, nonce and ciphertext identical"
    );
    let d = &env.sim.deliveries()[0];
    assert_eq!(
        d.attempts.iter().map(|a| a.status).collect::<Vec<_>>(),
        [Some(500), Some(500), Some(200)]
    );
    assert!(d.delivered);
    assert_eq!(d.kind, "delete_user");

    // With every attempt failing, delivery stops after 3 and is logged as not delivered.
    let always = contacts_receiver(usize::MAX, false);
    let seen2 = always.seen.clone();
    let url2 = start_receiver(always).await;
    env.sim
        .register_callback(contacts_request(url2))
        .await
        .unwrap();
    env.sim.remove_member("LiSi").unwrap();
    env.sim.wait_for_deliveries().await;
    assert_eq!(seen2.lock().unwrap().len(), 3);
    let last = env
        .sim
        .deliveries()
        .into_iter()
        .rev()
        .find(|d| d.kind == "delete_user")
        .unwrap();
    assert!(!last.delivered && last.finished);
}

#[tokio::test]
async fn registration_is_refused_when_url_verification_fails() {
    let env = Env::start(example()).await;
    let url = start_receiver(contacts_receiver(0, true)).await;
    let err = env
        .sim
        .register_callback(contacts_request(url.clone()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("verification failed"), "{err}");
    // Wrong token on the receiver side: signature check fails there, 403.
    let mut other = contacts_receiver(0, false);
    other.crypto = CallbackCrypto::new(
        "OtherToken",
        "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
        "ww0000000000000001",
    )
    .unwrap();
    let url2 = start_receiver(other).await;
    let (status, body) = env
        .control(
            "/_sim/callbacks",
            &json!({"agentid": "contacts", "url": url2}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("403"), "{body}");
    // Nothing listening.
    let e = env
        .sim
        .register_callback(contacts_request("http://127.0.0.1:9/cb".into()))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("verification failed"));
    assert!(env.sim.callbacks().is_empty());
}

#[tokio::test]
async fn app_callbacks_follow_scope_and_arbitrary_pushes_work() {
    let env = Env::start(example()).await;
    let recv = Receiver {
        crypto: CallbackCrypto::new(
            "MainToken01",
            "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG",
            "ww0000000000000001",
        )
        .unwrap(),
        fail_first: 0,
        wrong_echo: false,
        seen: Arc::default(),
    };
    let seen = recv.seen.clone();
    let crypto = recv.crypto.clone();
    let url = start_receiver(recv).await;
    env.sim
        .register_callback(CallbackRequest {
            agentid: Some(AgentRef::Agent(1000002)),
            url,
            ..Default::default()
        })
        .await
        .unwrap();
    env.sim
        .update_member(
            "LiSi",
            MemberUpdate {
                position: Some("架构师".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let text = "<xml><ToUserName><![CDATA[ww0000000000000001]]></ToUserName><FromUserName><![CDATA[LiSi]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好]]></Content><MsgId>1</MsgId><AgentID>1000002</AgentID></xml>";
    let (s, _) = env
        .control(
            "/_sim/callbacks/push",
            &json!({"agentid": 1000002, "xml": text}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = env.control("/_sim/callbacks/wait", &json!({})).await;
    assert_eq!(s, 200);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let (q, body) = &seen[0];
    assert!(body.contains("<AgentID><![CDATA[1000002]]></AgentID>"));
    let m = crypto
        .decrypt_body(
            &q["msg_signature"],
            &q["timestamp"],
            &q["nonce"],
            body.as_bytes(),
        )
        .unwrap()
        .parse_message()
        .unwrap();
    let change = m.change_contact().unwrap();
    assert_eq!(change.change_type(), ChangeType::UpdateUser);
    assert_eq!(change.get("Position"), Some("架构师"));
    let (q, body) = &seen[1];
    let m = crypto
        .decrypt_body(
            &q["msg_signature"],
            &q["timestamp"],
            &q["nonce"],
            body.as_bytes(),
        )
        .unwrap();
    assert_eq!(m.plaintext(), text);
    let log: serde_json::Value = env
        .http
        .get(env.url("/_sim/callbacks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log["deliveries"][1]["kind"], "text");
    assert!(
        log["registrations"][0].get("token").is_none(),
        "secrets are not in the log"
    );
}
