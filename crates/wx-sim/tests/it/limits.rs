//! Rate limits (45009 + block window + recovery), concurrency limits (45033), injected faults, stats.

use std::time::Duration;

use serde_json::json;

use crate::common::{Env, errcode};

#[tokio::test]
async fn rate_limit_blocks_for_a_window_then_recovers() {
    let env = Env::generated().await;
    let token = env.wecom_token("main").await;
    let path = format!("/cgi-bin/department/simplelist?access_token={token}");
    env.sim
        .set_rate_limit("/cgi-bin/department/simplelist", 3, Duration::from_secs(60));
    for _ in 0..3 {
        assert_eq!(errcode(&env.get(&path).await), 0);
    }
    let over = env.get(&path).await;
    assert_eq!(errcode(&over), 45009);
    assert!(
        over["errmsg"]
            .as_str()
            .unwrap()
            .starts_with("api freq out of limit")
    );
    // Still blocked later in the block window, even though a new counting window would have started.
    env.sim.advance_clock(Duration::from_secs(59));
    assert_eq!(errcode(&env.get(&path).await), 45009);
    env.sim.advance_clock(Duration::from_secs(2));
    assert_eq!(errcode(&env.get(&path).await), 0);
    // Other APIs are not limited.
    assert_eq!(
        errcode(
            &env.get(&format!("/cgi-bin/department/list?access_token={token}"))
                .await
        ),
        0
    );
    // The control API sets limits too; per_window 0 removes.
    let (s, _) = env
        .control(
            "/_sim/rate_limits",
            &json!({"api": "/cgi-bin/department/simplelist", "per_window": 0}),
        )
        .await;
    assert_eq!(s, 200);
    for _ in 0..5 {
        assert_eq!(errcode(&env.get(&path).await), 0);
    }
    let stats = env.sim.stats();
    assert_eq!(stats.calls_with("/cgi-bin/department/simplelist", 45009), 2);
    let http_stats: serde_json::Value = env
        .http
        .get(env.url("/_sim/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        http_stats["calls"]["/cgi-bin/department/simplelist"]["45009"],
        2
    );
    env.control("/_sim/stats/reset", &json!({})).await;
    assert_eq!(env.sim.stats().calls("/cgi-bin/department/simplelist"), 0);
}

#[tokio::test]
async fn concurrency_limit_gives_45033() {
    let env = Env::generated().await;
    let token = env.wecom_token("main").await;
    let api = "/cgi-bin/department/get";
    env.sim.set_concurrency_limit(api, 2);
    env.sim.hold_api(api);
    let url = env.url(&format!("{api}?access_token={token}&id=1"));
    let mut held = Vec::new();
    for _ in 0..2 {
        let http = env.http.clone();
        let url = url.clone();
        held.push(tokio::spawn(async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }));
    }
    // Wait (bounded) until both requests are admitted and held.
    for _ in 0..500 {
        if env.sim.inflight(api) == 2 {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(env.sim.inflight(api), 2);
    let third = env.get(&format!("{api}?access_token={token}&id=1")).await;
    assert_eq!(errcode(&third), 45033);
    env.sim.release_api(api);
    for h in held {
        assert_eq!(errcode(&h.await.unwrap()), 0);
    }
    assert_eq!(env.sim.inflight(api), 0);
    assert_eq!(
        errcode(&env.get(&format!("{api}?access_token={token}&id=1")).await),
        0
    );
}

#[tokio::test]
async fn injected_faults_answer_the_errcode_then_stop() {
    let env = Env::generated().await;
    let token = env.wecom_token("main").await;
    let path = format!("/cgi-bin/department/list?access_token={token}");
    env.sim
        .inject_fault("/cgi-bin/department/list", -1, Some(2));
    let v = env.get(&path).await;
    assert_eq!(errcode(&v), -1);
    assert!(v["errmsg"].as_str().unwrap().starts_with("system busy"));
    assert_eq!(errcode(&env.get(&path).await), -1);
    assert_eq!(errcode(&env.get(&path).await), 0);
    let (s, _) = env
        .control(
            "/_sim/faults",
            &json!({"api": "/cgi-bin/gettoken", "errcode": -1}),
        )
        .await;
    assert_eq!(s, 200);
    let info = env.sim.info();
    let t = env
        .get(&format!(
            "/cgi-bin/gettoken?corpid={}&corpsecret={}",
            info.corps[0].corpid, info.corps[0].apps[0].secret
        ))
        .await;
    assert_eq!(errcode(&t), -1);
    assert_eq!(env.sim.stats().calls_with("/cgi-bin/gettoken", -1), 1);
    // Unknown paths answer like WeChat.
    assert_eq!(errcode(&env.get("/cgi-bin/nothing").await), 40066);
}
