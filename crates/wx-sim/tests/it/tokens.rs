//! Token lifetimes, revocation, rotation, WeChat classic/stable tokens and tickets.

use std::time::Duration;

use serde_json::json;
use wx_sim::Switches;

use crate::common::{Env, errcode};

#[tokio::test]
async fn gettoken_errors_and_same_token_within_validity() {
    let env = Env::generated().await;
    let info = env.sim.info();
    let corp = &info.corps[0];
    let ok = env
        .get(&format!(
            "/cgi-bin/gettoken?corpid={}&corpsecret={}",
            corp.corpid, corp.apps[0].secret
        ))
        .await;
    assert_eq!(ok["errcode"], 0);
    assert_eq!(ok["errmsg"], "ok");
    assert_eq!(ok["expires_in"], 7200);
    let again = env
        .get(&format!(
            "/cgi-bin/gettoken?corpid={}&corpsecret={}",
            corp.corpid, corp.apps[0].secret
        ))
        .await;
    assert_eq!(ok["access_token"], again["access_token"]);

    let bad_secret = env
        .get(&format!(
            "/cgi-bin/gettoken?corpid={}&corpsecret=nope",
            corp.corpid
        ))
        .await;
    assert_eq!(errcode(&bad_secret), 40001);
    let msg = bad_secret["errmsg"].as_str().unwrap();
    assert!(
        msg.contains(", hint: [")
            && msg.ends_with("more info at https://open.work.weixin.qq.com/devtool/query?e=40001"),
        "{msg}"
    );
    assert_eq!(
        errcode(
            &env.get("/cgi-bin/gettoken?corpid=wwnope&corpsecret=x")
                .await
        ),
        40013
    );
    assert_eq!(
        errcode(&env.get("/cgi-bin/gettoken?corpsecret=x").await),
        41002
    );

    // Contacts secret gets its own token.
    let contacts = env.wecom_token("contacts").await;
    assert_ne!(contacts, ok["access_token"].as_str().unwrap());
}

#[tokio::test]
async fn token_expires_with_the_clock_and_revocation_gives_40014() {
    let env = Env::generated().await;
    let token = env.wecom_token("main").await;
    let path = format!("/cgi-bin/department/get?access_token={token}&id=1");
    assert_eq!(errcode(&env.get(&path).await), 0);
    assert_eq!(
        errcode(&env.get("/cgi-bin/department/get?id=1").await),
        41001
    );
    assert_eq!(
        errcode(&env.get("/cgi-bin/department/get?access_token=&id=1").await),
        41001
    );
    assert_eq!(
        errcode(
            &env.get("/cgi-bin/department/get?access_token=garbage&id=1")
                .await
        ),
        40014
    );

    env.sim.advance_clock(Duration::from_secs(7199));
    assert_eq!(errcode(&env.get(&path).await), 0);
    env.sim.advance_clock(Duration::from_secs(1));
    assert_eq!(errcode(&env.get(&path).await), 42001);

    // After expiry gettoken issues a new one, which revocation kills.
    let fresh = env.wecom_token("main").await;
    assert_ne!(fresh, token);
    assert!(env.sim.revoke_token(&fresh));
    assert_eq!(
        errcode(
            &env.get(&format!(
                "/cgi-bin/department/get?access_token={fresh}&id=1"
            ))
            .await
        ),
        40014
    );

    // Revoke all through the control API.
    let t3 = env.wecom_token("main").await;
    let (status, _) = env
        .control("/_sim/tokens/revoke", &json!({"all": true}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        errcode(
            &env.get(&format!("/cgi-bin/department/get?access_token={t3}&id=1"))
                .await
        ),
        40014
    );
    let stats = env.sim.stats();
    assert_eq!(stats.calls_with("/cgi-bin/department/get", 42001), 1);
    assert_eq!(stats.calls_with("/cgi-bin/department/get", 40014), 3);
}

#[tokio::test]
async fn lifetime_and_rotation_are_switchable() {
    let env = Env::generated().await;
    env.sim.set_switches(&Switches {
        rotate_tokens: Some(true),
        token_lifetime_secs: Some(60),
        ..Switches::default()
    });
    let a = env.wecom_token("main").await;
    let b = env.wecom_token("main").await;
    assert_ne!(a, b);
    env.sim.advance_clock(Duration::from_secs(61));
    assert_eq!(
        errcode(
            &env.get(&format!(
                "/cgi-bin/agent/get?access_token={b}&agentid=1000002"
            ))
            .await
        ),
        42001
    );
}

#[tokio::test]
async fn classic_wechat_token_rotates_with_five_minute_overlap() {
    let env = Env::generated().await;
    let oa = env.sim.info().wechat.official_accounts[0].clone();
    let url = format!(
        "/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
        oa.appid, oa.secret
    );
    let first = env.get(&url).await;
    assert!(
        first.get("errcode").is_none(),
        "no errcode on success: {first}"
    );
    assert_eq!(first["expires_in"], 7200);
    let old = first["access_token"].as_str().unwrap().to_owned();
    let second = env.get(&url).await;
    let new = second["access_token"].as_str().unwrap().to_owned();
    assert_ne!(old, new);
    let ticket = |t: &str| format!("/cgi-bin/ticket/getticket?access_token={t}&type=jsapi");
    assert_eq!(errcode(&env.get(&ticket(&old)).await), 0);
    env.sim.advance_clock(Duration::from_secs(299));
    assert_eq!(errcode(&env.get(&ticket(&old)).await), 0);
    env.sim.advance_clock(Duration::from_secs(2));
    assert_ne!(errcode(&env.get(&ticket(&old)).await), 0);
    assert_eq!(errcode(&env.get(&ticket(&new)).await), 0);

    let bad = env
        .get(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={}&secret=x",
            oa.appid
        ))
        .await;
    assert_eq!(errcode(&bad), 40001);
    assert!(bad["errmsg"].as_str().unwrap().contains(" rid: "));
    assert_eq!(
        errcode(
            &env.get(&format!(
                "/cgi-bin/token?grant_type=x&appid={}&secret=x",
                oa.appid
            ))
            .await
        ),
        40002
    );
    assert_eq!(
        errcode(
            &env.get("/cgi-bin/token?grant_type=client_credential&appid=wxnope&secret=x")
                .await
        ),
        40013
    );
}

#[tokio::test]
async fn stable_token_same_within_validity_and_force_refresh_rules() {
    let env = Env::generated().await;
    let mp = env.sim.info().wechat.mini_programs[0].clone();
    let body = |force: bool| json!({"grant_type": "client_credential", "appid": mp.appid, "secret": mp.secret, "force_refresh": force});
    let a = env.post("/cgi-bin/stable_token", &body(false)).await;
    assert!(a.get("errcode").is_none());
    let b = env.post("/cgi-bin/stable_token", &body(false)).await;
    assert_eq!(a["access_token"], b["access_token"]);
    // Separate from the classic token: a classic call does not invalidate it.
    env.get(&format!(
        "/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
        mp.appid, mp.secret
    ))
    .await;
    let t_a = a["access_token"].as_str().unwrap().to_owned();
    let check = |t: &str| format!("/cgi-bin/ticket/getticket?access_token={t}&type=jsapi");
    assert_eq!(errcode(&env.get(&check(&t_a)).await), 0);

    // Near expiry a new one is issued; the old keeps its remaining time (overlap); expires_in >= 300 always.
    env.sim.advance_clock(Duration::from_secs(7200 - 200));
    let c = env.post("/cgi-bin/stable_token", &body(false)).await;
    assert_ne!(c["access_token"], a["access_token"]);
    assert!(c["expires_in"].as_i64().unwrap() >= 300);
    assert_eq!(errcode(&env.get(&check(&t_a)).await), 0);

    // force_refresh invalidates the previous token at once; a second force within 30 s does not refresh.
    let t_c = c["access_token"].as_str().unwrap().to_owned();
    let d = env.post("/cgi-bin/stable_token", &body(true)).await;
    assert_ne!(d["access_token"], c["access_token"]);
    assert_eq!(errcode(&env.get(&check(&t_c)).await), 40014);
    env.sim.advance_clock(Duration::from_secs(10));
    let e = env.post("/cgi-bin/stable_token", &body(true)).await;
    assert_eq!(e["access_token"], d["access_token"]);
    env.sim.advance_clock(Duration::from_secs(31));
    let f = env.post("/cgi-bin/stable_token", &body(true)).await;
    assert_ne!(f["access_token"], e["access_token"]);
    assert_eq!(
        errcode(
            &env.post(
                "/cgi-bin/stable_token",
                &json!({"grant_type": "client_credential", "appid": mp.appid, "secret": "bad"})
            )
            .await
        ),
        40001
    );
}

#[tokio::test]
async fn tickets_are_cached_per_app() {
    let env = Env::generated().await;
    let main = env.wecom_token("main").await;
    let limited = env.wecom_token("limited").await;
    let corp1 = env
        .get(&format!("/cgi-bin/get_jsapi_ticket?access_token={main}"))
        .await;
    let corp2 = env
        .get(&format!("/cgi-bin/get_jsapi_ticket?access_token={limited}"))
        .await;
    assert_eq!(
        corp1["ticket"], corp2["ticket"],
        "company ticket is per corp"
    );
    let a1 = env
        .get(&format!(
            "/cgi-bin/ticket/get?access_token={main}&type=agent_config"
        ))
        .await;
    let a2 = env
        .get(&format!(
            "/cgi-bin/ticket/get?access_token={limited}&type=agent_config"
        ))
        .await;
    let a1b = env
        .get(&format!(
            "/cgi-bin/ticket/get?access_token={main}&type=agent_config"
        ))
        .await;
    assert_eq!(a1["errcode"], 0);
    assert_ne!(a1["ticket"], a2["ticket"]);
    assert_eq!(a1["ticket"], a1b["ticket"]);
    assert_ne!(a1["ticket"], corp1["ticket"]);
    let contacts = env.wecom_token("contacts").await;
    assert_eq!(
        errcode(
            &env.get(&format!(
                "/cgi-bin/get_jsapi_ticket?access_token={contacts}"
            ))
            .await
        ),
        48002
    );
}
