//! Mini-program login (WeChat and WeCom), encryptedData and phone numbers.

use serde_json::json;
use wx_sim::MiniProgramRequest;

use crate::common::{Env, errcode};
use crate::contacts::example;

#[tokio::test]
async fn wechat_jscode2session_encrypted_data_and_phone() {
    let env = Env::start(example()).await;
    let (s, v) = env
        .control(
            "/_sim/miniprogram/code",
            &json!({"appid": "wx0000000000000002", "openid": "oMP00000000000000000000001"}),
        )
        .await;
    assert_eq!(s, 200);
    let code = v["code"].as_str().unwrap();
    let path = format!(
        "/sns/jscode2session?appid=wx0000000000000002&secret=shop-secret-0001&js_code={code}&grant_type=authorization_code"
    );
    let sess = env.get(&path).await;
    assert!(sess.get("errcode").is_none(), "{sess}");
    assert_eq!(sess["openid"], "oMP00000000000000000000001");
    assert_eq!(sess["unionid"], "oUnion000000000000000000001");
    let session_key = sess["session_key"].as_str().unwrap().to_owned();
    assert_eq!(errcode(&env.get(&path).await), 40163);
    assert_eq!(errcode(&env.get("/sns/jscode2session?appid=wx0000000000000002&secret=bad&js_code=x&grant_type=authorization_code").await), 40125);

    let req = MiniProgramRequest {
        appid: "wx0000000000000002".into(),
        openid: Some("oMP00000000000000000000001".into()),
        userid: None,
        kind: Some("userinfo".into()),
    };
    let data = env.sim.encrypted_data(&req).unwrap();
    let plain = wx_crypto::miniprogram::decrypt_data(
        &session_key,
        &data.iv,
        &data.encrypted_data,
        Some("wx0000000000000002"),
    )
    .unwrap();
    assert_eq!(plain["unionId"], "oUnion000000000000000000001");
    assert_eq!(plain["openId"], "oMP00000000000000000000001");
    wx_crypto::miniprogram::check_raw_data_signature(
        data.raw_data.as_deref().unwrap(),
        &session_key,
        data.signature.as_deref().unwrap(),
    )
    .unwrap();

    let (_, pc) = env
        .control(
            "/_sim/miniprogram/phone_code",
            &json!({"appid": "wx0000000000000002", "openid": "oMP00000000000000000000001"}),
        )
        .await;
    let t = env.post("/cgi-bin/stable_token", &json!({"grant_type": "client_credential", "appid": "wx0000000000000002", "secret": "shop-secret-0001"})).await;
    let at = t["access_token"].as_str().unwrap();
    let phone = env
        .post(
            &format!("/wxa/business/getuserphonenumber?access_token={at}"),
            &json!({"code": pc["code"]}),
        )
        .await;
    assert_eq!(phone["errcode"], 0);
    assert_eq!(phone["phone_info"]["purePhoneNumber"], "13900000001");
    assert_eq!(
        phone["phone_info"]["watermark"]["appid"],
        "wx0000000000000002"
    );
    assert_eq!(
        errcode(
            &env.post(
                &format!("/wxa/business/getuserphonenumber?access_token={at}"),
                &json!({"code": pc["code"]})
            )
            .await
        ),
        40029
    );
}

#[tokio::test]
async fn wecom_miniprogram_login_uses_the_linked_app_token() {
    let env = Env::start(example()).await;
    let code = env
        .sim
        .mint_miniprogram_code(&MiniProgramRequest {
            appid: "wx00000000000000a1".into(),
            userid: Some("lisi".into()),
            ..Default::default()
        })
        .unwrap();
    let sales = env
        .get("/cgi-bin/gettoken?corpid=ww0000000000000001&corpsecret=sales-app-secret-0001")
        .await;
    let main = env
        .get("/cgi-bin/gettoken?corpid=ww0000000000000001&corpsecret=main-app-secret-0001")
        .await;
    let path = |t: &serde_json::Value| {
        format!(
            "/cgi-bin/miniprogram/jscode2session?access_token={}&js_code={code}&grant_type=authorization_code",
            t["access_token"].as_str().unwrap()
        )
    };
    assert_eq!(errcode(&env.get(&path(&sales)).await), 40029);
    let v = env.get(&path(&main)).await;
    assert_eq!(v["errcode"], 0);
    assert_eq!(v["userid"], "LiSi");
    assert_eq!(v["corpid"], "ww0000000000000001");
    assert!(v["session_key"].is_string());
    assert_eq!(errcode(&env.get(&path(&main)).await), 40029);
}
