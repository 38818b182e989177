//! message/send and message/recall: recipients, invalid lists, errcodes, the delivery record.

use serde_json::json;

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

#[tokio::test]
async fn send_resolves_users_parties_tags_and_records_delivery() {
    let env = Env::start(example()).await;
    let main = token(&env, "main-app-secret-0001").await;
    let url = format!("/cgi-bin/message/send?access_token={main}");
    let v = env
        .post(&url, &json!({"touser": "zhangsan|Ghost", "toparty": "4 | 77", "totag": "2", "msgtype": "text", "agentid": 1000002, "text": {"content": "hi"}}))
        .await;
    assert_eq!(v["errcode"], 0, "{v}");
    assert_eq!(v["invaliduser"], "ghost");
    assert_eq!(v["invalidparty"], "77");
    assert!(v["msgid"].is_string());
    let stats = env.sim.stats();
    let m = &stats.messages[0];
    assert_eq!(m.recipients, ["LiSi", "WangWu", "ZhangSan"]);
    assert_eq!(m.msgtype, "text");
    assert_eq!(m.body["text"]["content"], "hi");

    // All invalid: 81013 with the invalid list still in the body.
    let all_bad = env.post(&url, &json!({"touser": "ghost", "msgtype": "text", "agentid": 1000002, "text": {"content": "x"}})).await;
    assert_eq!(errcode(&all_bad), 81013);
    assert_eq!(all_bad["invaliduser"], "ghost");
    assert_eq!(
        errcode(
            &env.post(&url, &json!({"msgtype": "text", "agentid": 1000002}))
                .await
        ),
        82001
    );
    assert_eq!(
        errcode(
            &env.post(
                &url,
                &json!({"touser": "LiSi", "msgtype": "text", "agentid": 1000003})
            )
            .await
        ),
        301002
    );
    let many: Vec<String> = (0..1001).map(|i| format!("u{i}")).collect();
    assert_eq!(
        errcode(
            &env.post(
                &url,
                &json!({"touser": many.join("|"), "msgtype": "text", "agentid": 1000002})
            )
            .await
        ),
        40032
    );
    let contacts = token(&env, "contacts-secret-0001").await;
    let c = env
        .post(
            &format!("/cgi-bin/message/send?access_token={contacts}"),
            &json!({"touser": "LiSi", "msgtype": "text", "agentid": 1000002}),
        )
        .await;
    assert_eq!(errcode(&c), 48002);

    // Out of scope for "sales": ZhangSan is invalid there.
    let sales = token(&env, "sales-app-secret-0001").await;
    let s = env.post(&format!("/cgi-bin/message/send?access_token={sales}"), &json!({"touser": "@all", "msgtype": "text", "agentid": 1000003, "text": {"content": "all"}})).await;
    assert_eq!(s["errcode"], 0);
    assert_eq!(env.sim.stats().messages[1].recipients, ["LiSi", "WangWu"]);

    let msgid = v["msgid"].as_str().unwrap();
    let r = env
        .post(
            &format!("/cgi-bin/message/recall?access_token={main}"),
            &json!({"msgid": msgid}),
        )
        .await;
    assert_eq!(r["errcode"], 0);
    assert!(env.sim.stats().messages[0].recalled);
    let other = env
        .post(
            &format!("/cgi-bin/message/recall?access_token={sales}"),
            &json!({"msgid": msgid}),
        )
        .await;
    assert_eq!(errcode(&other), 40058);
    let stats = env.sim.stats();
    assert_eq!(stats.calls("/cgi-bin/message/send"), 7);
    assert_eq!(stats.calls_with("/cgi-bin/message/send", 0), 2);
    assert_eq!(stats.message_recipients(), ["LiSi", "WangWu", "ZhangSan"]);
}
