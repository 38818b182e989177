//! Response shapes from the reference, with the real-world variance the client must tolerate.

use secrecy::ExposeSecret;
use wx_api::wechat::types::{FollowerInfo, MiniSession, OAuthAccessToken, PhoneInfo, SnsUserInfo};
use wx_api::wecom::types::{
    Agent, Department, Gender, LoginIdentity, MemberStatus, SendResult, TagMembers, User,
    UserDetail, UserIdPage, WecomMiniSession,
};
use wx_api::{ApiError, ErrCode, parse_response};

#[test]
fn missing_errcode_is_success() {
    let page: UserIdPage =
        parse_response("t", br#"{"dept_user":[{"userid":"a","department":1}]}"#).unwrap();
    assert_eq!(page.dept_user.len(), 1);
}

#[test]
fn nonzero_errcode_is_typed_upstream_error() {
    let err = parse_response::<UserIdPage>(
        "/cgi-bin/user/list_id",
        br#"{"errcode":60020,"errmsg":"not allow to access from your ip, hint: [1], from ip: 1.2.3.4"}"#,
    )
    .unwrap_err();
    match err {
        ApiError::Upstream { code, api, .. } => {
            assert_eq!(code, ErrCode::IpNotAllowed);
            assert!(code.is_config_error());
            assert_eq!(api, "/cgi-bin/user/list_id");
        }
        other => panic!("expected Upstream, got {other:?}"),
    }
    let err = parse_response::<UserIdPage>("t", br#"{"errcode":99999,"errmsg":"x"}"#).unwrap_err();
    assert_eq!(err.errcode(), Some(ErrCode::Other(99999)));
}

#[test]
fn bad_json_is_bad_response() {
    assert!(matches!(
        parse_response::<UserIdPage>("t", b"<html>"),
        Err(ApiError::BadResponse { .. })
    ));
    assert!(matches!(
        parse_response::<User>("t", br#"{"errcode":0,"name":"no userid"}"#),
        Err(ApiError::BadResponse { .. })
    ));
}

#[test]
fn wecom_user_full_shape() {
    let body = br#"{"errcode":0,"errmsg":"ok","userid":"zhangsan","name":"Zhang San","department":[1,2],
        "order":[1,2],"position":"PM","mobile":"13800000000","gender":"1","email":"z@x.com","biz_mail":"z@y.com",
        "is_leader_in_dept":[1,0],"direct_leader":["lisi"],"avatar":"http://a/0","thumb_avatar":"http://a/100",
        "telephone":"020-1","alias":"jackzhang","address":"Guangzhou","open_userid":"xxxxxx","main_department":1,
        "extattr":{"attrs":[{"type":0,"name":"f","text":{"value":"v"}}]},"status":1,"qr_code":"https://q",
        "external_position":"Boss","external_profile":{"external_corp_name":"c"},"unknown_future_field":{"a":1}}"#;
    let user: User = parse_response("/cgi-bin/user/get", body).unwrap();
    assert_eq!(user.userid, "zhangsan");
    assert_eq!(user.gender, Some(Gender::Male));
    assert_eq!(user.department, vec![1, 2]);
    assert_eq!(user.is_leader_in_dept, vec![1, 0]);
    assert_eq!(user.status, Some(MemberStatus::Active));
    assert_eq!(user.main_department, Some(1));
    assert!(user.extattr.is_some());
}

#[test]
fn wecom_user_with_withheld_fields_omitted_or_empty() {
    let omitted: User = parse_response(
        "t",
        br#"{"errcode":0,"userid":"a","name":"A","department":[1]}"#,
    )
    .unwrap();
    assert_eq!(omitted.mobile, None);
    assert_eq!(omitted.gender, None);
    assert_eq!(omitted.status, None);
    let empty: User = parse_response(
        "t",
        br#"{"errcode":0,"userid":"a","name":"A","department":[1],"mobile":"","email":"","avatar":"",
            "gender":"0","status":"4","qr_code":null,"order":null}"#,
    )
    .unwrap();
    assert_eq!(empty.mobile, None);
    assert_eq!(empty.email, None);
    assert_eq!(empty.avatar, None);
    assert_eq!(empty.gender, Some(Gender::Unspecified));
    assert_eq!(empty.status, Some(MemberStatus::NotActivated));
    assert!(empty.order.is_empty());
}

#[test]
fn department_root_and_minimal() {
    let root: Department = serde_json::from_str(
        r#"{"id":1,"name":"HQ","parentid":0,"order":100000000,"department_leader":["a"]}"#,
    )
    .unwrap();
    assert_eq!(root.parentid, Some(0));
    assert_eq!(root.order, Some(100_000_000));
    // uint32 orders near the top of the range must not overflow.
    let big: Department =
        serde_json::from_str(r#"{"id":2,"parentid":1,"order":4294967295}"#).unwrap();
    assert_eq!(big.order, Some(4_294_967_295));
    assert_eq!(big.name, None);
}

#[test]
fn list_id_cursor_end_variants() {
    let more: UserIdPage =
        parse_response("t", br#"{"errcode":0,"next_cursor":"abc","dept_user":[{"userid":"a","department":1},{"userid":"a","department":2}]}"#)
            .unwrap();
    assert_eq!(more.next_cursor.as_deref(), Some("abc"));
    assert_eq!(more.dept_user.len(), 2);
    let empty: UserIdPage =
        parse_response("t", br#"{"errcode":0,"next_cursor":"","dept_user":[]}"#).unwrap();
    assert_eq!(empty.next_cursor, None);
    let missing: UserIdPage = parse_response("t", br#"{"errcode":0,"dept_user":[]}"#).unwrap();
    assert_eq!(missing.next_cursor, None);
    let third_party: UserIdPage = parse_response(
        "t",
        br#"{"errcode":0,"dept_user":[{"open_userid":"o1","department":"3"}]}"#,
    )
    .unwrap();
    assert_eq!(third_party.dept_user[0].userid, None);
    assert_eq!(third_party.dept_user[0].department, 3);
}

#[test]
fn send_result_pipe_lists_and_string_msgid() {
    let res: SendResult = parse_response(
        "t",
        br#"{"errcode":0,"errmsg":"ok","invaliduser":"userid1|userid2","invalidparty":"",
            "invalidtag":"1 | 2","unlicenseduser":"u3","msgid":"xxxx","response_code":"rc"}"#,
    )
    .unwrap();
    assert_eq!(res.invaliduser, vec!["userid1", "userid2"]);
    assert!(res.invalidparty.is_empty());
    assert_eq!(res.invalidtag, vec!["1", "2"]);
    assert_eq!(res.unlicenseduser, vec!["u3"]);
    assert_eq!(res.msgid.as_deref(), Some("xxxx"));
    let minimal: SendResult =
        parse_response("t", br#"{"errcode":0,"errmsg":"ok","msgid":12345}"#).unwrap();
    assert!(minimal.invaliduser.is_empty());
    assert_eq!(minimal.msgid.as_deref(), Some("12345"));
    let all_invalid = parse_response::<SendResult>(
        "t",
        br#"{"errcode":81013,"errmsg":"user & party & tag all invalid","invaliduser":"a"}"#,
    )
    .unwrap_err();
    assert_eq!(all_invalid.errcode(), Some(ErrCode::AllRecipientsInvalid));
}

#[test]
fn getuserinfo_both_spellings() {
    let modern: LoginIdentity = parse_response(
        "t",
        br#"{"errcode":0,"errmsg":"ok","userid":"USERID","user_ticket":"TICKET"}"#,
    )
    .unwrap();
    assert_eq!(modern.userid.as_deref(), Some("USERID"));
    assert_eq!(
        modern
            .user_ticket
            .as_ref()
            .map(|t| t.expose_secret().to_owned())
            .as_deref(),
        Some("TICKET")
    );
    assert!(
        !format!("{modern:?}").contains("TICKET"),
        "Debug must redact the user_ticket"
    );
    let legacy: LoginIdentity = parse_response("t", br#"{"UserId":"U1","DeviceId":"D1"}"#).unwrap();
    assert_eq!(legacy.userid.as_deref(), Some("U1"));
    assert_eq!(legacy.device_id.as_deref(), Some("D1"));
    let legacy_outsider: LoginIdentity =
        parse_response("t", br#"{"OpenId":"O1","DeviceId":"D1"}"#).unwrap();
    assert_eq!(legacy_outsider.userid, None);
    assert_eq!(legacy_outsider.openid.as_deref(), Some("O1"));
    let outsider: LoginIdentity = parse_response(
        "t",
        br#"{"errcode":0,"openid":"OPENID","external_userid":"EXT"}"#,
    )
    .unwrap();
    assert_eq!(outsider.external_userid.as_deref(), Some("EXT"));
    let bad = parse_response::<LoginIdentity>("t", br#"{"errcode":40029,"errmsg":"invalid code"}"#)
        .unwrap_err();
    assert_eq!(bad.errcode(), Some(ErrCode::InvalidCode));
}

#[test]
fn getuserdetail_without_consent() {
    let d: UserDetail = parse_response(
        "t",
        br#"{"errcode":0,"userid":"lisi","gender":"0","avatar":"http://d"}"#,
    )
    .unwrap();
    assert_eq!(d.gender, Some(Gender::Unspecified));
    assert_eq!(d.mobile, None);
}

#[test]
fn agent_get_modern_and_legacy() {
    let a: Agent = parse_response(
        "t",
        br#"{"errcode":0,"agentid":1000005,"name":"HR","allow_userinfos":{"user":[{"userid":"zhangshan"},{"userid":"lisi"}]},
            "allow_partys":{"partyid":[1]},"allow_tags":{"tagid":[1,2,3]},"close":0,"redirect_domain":"x.com",
            "report_location_flag":0,"isreportenter":0,"home_url":"https://x.com"}"#,
    )
    .unwrap();
    assert_eq!(a.allowed_userids(), vec!["zhangshan", "lisi"]);
    assert_eq!(a.allow_partys.partyid, vec![1]);
    assert_eq!(a.allow_tags.tagid, vec![1, 2, 3]);
    let legacy: Agent =
        parse_response("t", br#"{"errcode":0,"agentid":"1","name":"old","type":1}"#).unwrap();
    assert_eq!(legacy.agentid, 1);
    assert!(legacy.allow_partys.partyid.is_empty());
}

#[test]
fn tag_get_shape() {
    let t: TagMembers = parse_response(
        "t",
        br#"{"errcode":0,"tagname":"t","userlist":[{"userid":"a","name":"A"}],"partylist":[2]}"#,
    )
    .unwrap();
    assert_eq!(t.userlist[0].userid, "a");
    assert_eq!(t.partylist, vec![2]);
}

#[test]
fn wecom_mini_session_redacts_session_key() {
    let s: WecomMiniSession = parse_response(
        "t",
        br#"{"corpid":"CORPID","userid":"USERID","session_key":"kJtdi6RF+Dv67QkbLlPGjw==","errcode":0,"errmsg":"ok"}"#,
    )
    .unwrap();
    assert_eq!(s.session_key.expose_secret(), "kJtdi6RF+Dv67QkbLlPGjw==");
    assert!(!format!("{s:?}").contains("kJtdi6RF"));
}

#[test]
fn wechat_shapes() {
    let mini: MiniSession =
        parse_response("t", br#"{"openid":"o1","session_key":"c2Vzc2lvbg=="}"#).unwrap();
    assert_eq!(mini.unionid, None);
    assert!(!format!("{mini:?}").contains("c2Vzc2lvbg"));
    let oauth: OAuthAccessToken = parse_response(
        "t",
        br#"{"access_token":"WEBTOKEN","expires_in":7200,"refresh_token":"REFRESH","openid":"o1","scope":"snsapi_userinfo","is_snapshotuser":1,"unionid":"u1"}"#,
    )
    .unwrap();
    assert_eq!(oauth.is_snapshotuser, Some(1));
    let debug = format!("{oauth:?}");
    assert!(!debug.contains("WEBTOKEN") && !debug.contains("REFRESH"));
    let info: SnsUserInfo = parse_response(
        "t",
        br#"{"openid":"o1","nickname":"Band","sex":1,"province":"GD","city":"GZ","country":"CN","headimgurl":"http://h/0","privilege":["CHINAUNICOM"]}"#,
    )
    .unwrap();
    assert_eq!(info.sex, Some(Gender::Male));
    assert_eq!(info.unionid, None);
    let follower: FollowerInfo = parse_response(
        "t",
        br#"{"subscribe":1,"openid":"o1","language":"zh_CN","subscribe_time":1382694957,"unionid":"u1","remark":"","groupid":0,"tagid_list":[128,2],"subscribe_scene":"ADD_SCENE_QR_CODE","qr_scene":98765,"qr_scene_str":""}"#,
    )
    .unwrap();
    assert!(follower.is_subscribed());
    assert_eq!(follower.remark, None);
    assert_eq!(follower.tagid_list, vec![128, 2]);
    let unsubscribed: FollowerInfo =
        parse_response("t", br#"{"subscribe":0,"openid":"o2"}"#).unwrap();
    assert!(!unsubscribed.is_subscribed());
    let phone: PhoneInfo = serde_json::from_str(
        r#"{"phoneNumber":"+8613800000000","purePhoneNumber":"13800000000","countryCode":"86","watermark":{"timestamp":1637744274,"appid":"wx1"}}"#,
    )
    .unwrap();
    assert_eq!(phone.pure_phone_number, "13800000000");
    assert_eq!(phone.watermark.map(|w| w.appid).as_deref(), Some("wx1"));
}
