//! WeChat server APIs at their real paths (api.weixin.qq.com): classic and stable access tokens, the JS-SDK
//! ticket, web OAuth code exchange and userinfo, mini-program login and phone numbers, follower info.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State as AxState};
use axum::response::Response;
use serde_json::{Value, json};

use crate::model::WechatKind;
use crate::state::{ApiErr, CodeSubject, Flavor, MpSubject, Shared, State, TokenOwner, run_api};

type Q = Query<HashMap<String, String>>;
type S = AxState<Arc<Shared>>;

/// A classic token stays valid this long after a newer one was issued.
const OVERLAP_MS: i64 = 5 * 60 * 1000;
const DAY_MS: i64 = 24 * 3600 * 1000;

fn parse_body(body: &Bytes) -> Result<Value, ApiErr> {
    if body.is_empty() {
        return Err(ApiErr::new(44002, "empty post data"));
    }
    serde_json::from_slice::<Value>(body).map_err(|_| ApiErr::bad_json())
}

/// Checks appid + secret; `bad_secret` is the errcode this API uses for a wrong secret.
fn app_credentials(
    st: &State,
    appid: Option<&str>,
    secret: Option<&str>,
    bad_secret: i64,
) -> Result<(String, WechatKind), ApiErr> {
    let appid = appid
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiErr::new(41002, "appid missing"))?;
    let secret = secret
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiErr::new(41004, "appsecret missing"))?;
    let (kind, app) = st
        .world
        .wechat
        .app(appid)
        .ok_or_else(|| ApiErr::new(40013, "invalid appid"))?;
    if app.secret != secret {
        let msg = if bad_secret == 40125 {
            "invalid appsecret"
        } else {
            "invalid credential"
        };
        return Err(ApiErr::new(bad_secret, msg));
    }
    Ok((appid.to_owned(), kind))
}

pub(crate) async fn token(AxState(sh): S, Query(q): Q) -> Response {
    run_api(
        &sh,
        Flavor::Wechat,
        "/cgi-bin/token",
        |st| {
            if q.get("grant_type").map(String::as_str) != Some("client_credential") {
                return Err(ApiErr::new(40002, "invalid grant_type"));
            }
            let (appid, _) = app_credentials(
                st,
                q.get("appid").map(String::as_str),
                q.get("secret").map(String::as_str),
                40001,
            )?;
            Ok((appid.clone(), appid))
        },
        |st, appid| {
            // Every call issues a new token; the previous one keeps working for 5 more minutes.
            let now = st.now_ms();
            if let Some(prev) = st.wechat_classic.get(&appid).cloned()
                && let Some(e) = st.tokens.get_mut(&prev)
            {
                e.expires_ms = e.expires_ms.min(now + OVERLAP_MS);
            }
            let lifetime = st.lifetime_ms();
            let t = st.new_token(
                TokenOwner::Wechat {
                    appid: appid.clone(),
                    stable: false,
                },
                lifetime,
            );
            st.wechat_classic.insert(appid, t.clone());
            Ok(json!({"access_token": t, "expires_in": lifetime / 1000}))
        },
    )
    .await
}

pub(crate) async fn stable_token(AxState(sh): S, body: Bytes) -> Response {
    run_api(
        &sh,
        Flavor::Wechat,
        "/cgi-bin/stable_token",
        |st| {
            let req = parse_body(&body)?;
            if req.get("grant_type").and_then(Value::as_str) != Some("client_credential") {
                return Err(ApiErr::new(40002, "invalid grant_type"));
            }
            let (appid, _) = app_credentials(
                st,
                req.get("appid").and_then(Value::as_str),
                req.get("secret").and_then(Value::as_str),
                40001,
            )?;
            let force = req
                .get("force_refresh")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            Ok(((appid.clone(), force), appid))
        },
        |st, (appid, force)| {
            let now = st.now_ms();
            let lifetime = st.lifetime_ms();
            let mut stable = st.wechat_stable.get(&appid).cloned().unwrap_or_default();
            let current = stable.current.clone().and_then(|t| {
                st.tokens
                    .get(&t)
                    .filter(|e| !e.revoked && e.expires_ms > now)
                    .map(|e| (t.clone(), e.expires_ms))
            });
            let answer = if force {
                let day = now.div_euclid(DAY_MS);
                if stable.forced_today.0 != day {
                    stable.forced_today = (day, 0);
                }
                let too_soon = stable
                    .last_force_ms
                    .map(|t| now - t < 30_000)
                    .unwrap_or(false);
                match (&current, too_soon) {
                    // A force refresh sooner than 30 s after the last one does not refresh.
                    (Some((t, exp)), true) => (t.clone(), *exp),
                    _ => {
                        if stable.forced_today.1 >= 20 {
                            return Err(ApiErr::new(45009, "reach max api daily quota limit"));
                        }
                        stable.forced_today.1 += 1;
                        stable.last_force_ms = Some(now);
                        if let Some((old, _)) = &current
                            && let Some(e) = st.tokens.get_mut(old)
                        {
                            e.revoked = true;
                        }
                        let t = st.new_token(
                            TokenOwner::Wechat {
                                appid: appid.clone(),
                                stable: true,
                            },
                            lifetime,
                        );
                        (t, now + lifetime)
                    }
                }
            } else {
                match &current {
                    // Renewed 5 minutes before expiry; the old one keeps its remaining life (overlap).
                    Some((t, exp)) if *exp - now > OVERLAP_MS => (t.clone(), *exp),
                    _ => {
                        let t = st.new_token(
                            TokenOwner::Wechat {
                                appid: appid.clone(),
                                stable: true,
                            },
                            lifetime,
                        );
                        (t, now + lifetime)
                    }
                }
            };
            stable.current = Some(answer.0.clone());
            st.wechat_stable.insert(appid, stable);
            Ok(json!({"access_token": answer.0, "expires_in": (answer.1 - now) / 1000}))
        },
    )
    .await
}

fn auth_wechat(st: &mut State, q: &HashMap<String, String>) -> Result<(String, String), ApiErr> {
    let appid = st.wechat_caller(q.get("access_token").map(String::as_str))?;
    Ok((appid.clone(), appid))
}

pub(crate) async fn getticket(AxState(sh): S, Query(q): Q) -> Response {
    run_api(&sh, Flavor::Wechat, "/cgi-bin/ticket/getticket", |st| auth_wechat(st, &q), |st, appid| {
        let kind = match q.get("type").map(String::as_str) {
            Some("jsapi") => "jsapi",
            Some("wx_card") => "wx_card",
            _ => return Err(ApiErr::new(40097, "invalid args")),
        };
        let key = format!("wechat_{kind}:{appid}");
        let now = st.now_ms();
        let (t, exp) = match st.tickets.get(&key) {
            Some((t, exp)) if *exp > now => (t.clone(), *exp),
            _ => {
                let t = format!("sim_{}", st.random_token(80));
                let exp = now + st.lifetime_ms();
                st.tickets.insert(key, (t.clone(), exp));
                (t, exp)
            }
        };
        Ok(json!({"errcode": 0, "errmsg": "ok", "ticket": t, "expires_in": (exp - now + 999) / 1000}))
    })
    .await
}

pub(crate) async fn sns_access_token(AxState(sh): S, Query(q): Q) -> Response {
    run_api(
        &sh,
        Flavor::Wechat,
        "/sns/oauth2/access_token",
        |st| {
            let (appid, _) =
                app_credentials(st, q.get("appid").map(String::as_str), q.get("secret").map(String::as_str), 40001)?;
            Ok((appid.clone(), appid))
        },
        |st, appid| {
            if q.get("grant_type").map(String::as_str) != Some("authorization_code") {
                return Err(ApiErr::new(40002, "invalid grant_type"));
            }
            let code = q.get("code").filter(|s| !s.is_empty()).ok_or_else(ApiErr::bad_code)?;
            let now = st.now_ms();
            let entry = st.oauth_codes.get(code).cloned().ok_or_else(ApiErr::bad_code)?;
            let CodeSubject::Wechat { appid: code_app, openid, scope } = entry.subject else {
                return Err(ApiErr::bad_code());
            };
            if code_app != appid || now >= entry.expires_ms {
                return Err(ApiErr::bad_code());
            }
            if entry.used {
                return Err(ApiErr::new(40163, "code been used"));
            }
            if let Some(c) = st.oauth_codes.get_mut(code) {
                c.used = true;
            }
            let token = st.new_token(
                TokenOwner::Sns { appid: appid.clone(), openid: openid.clone(), scope: scope.clone() },
                7_200_000,
            );
            let refresh = st.random_token(64);
            let mut out = json!({
                "access_token": token, "expires_in": 7200, "refresh_token": refresh, "openid": openid,
                "scope": scope, "is_snapshotuser": 0,
            });
            // unionid comes back with a userinfo grant (snsapi_userinfo, or snsapi_login on the website app).
            if scope != "snsapi_base"
                && let Some(u) = st.world.wechat.user(&appid, &openid)
                    && let Some(o) = out.as_object_mut() {
                        o.insert("unionid".to_owned(), json!(u.unionid));
                    }
            Ok(out)
        },
    )
    .await
}

pub(crate) async fn sns_userinfo(AxState(sh): S, Query(q): Q) -> Response {
    run_api(
        &sh,
        Flavor::Wechat,
        "/sns/userinfo",
        |st| match st.check_token(q.get("access_token").map(String::as_str))? {
            TokenOwner::Sns { appid, openid, scope } => Ok(((appid.clone(), openid, scope), appid)),
            _ => Err(ApiErr::bad_token()),
        },
        |st, (appid, openid, scope)| {
            if q.get("openid").map(String::as_str) != Some(openid.as_str()) {
                return Err(ApiErr::new(40003, "invalid openid"));
            }
            if scope == "snsapi_base" {
                return Err(ApiErr::new(48001, "api unauthorized"));
            }
            let u = st.world.wechat.user(&appid, &openid).ok_or_else(|| ApiErr::new(40003, "invalid openid"))?;
            Ok(json!({
                "openid": openid, "nickname": u.nickname, "sex": u.sex, "province": u.province, "city": u.city,
                "country": u.country, "headimgurl": u.headimgurl, "privilege": [], "unionid": u.unionid,
            }))
        },
    )
    .await
}

pub(crate) async fn jscode2session(AxState(sh): S, Query(q): Q) -> Response {
    run_api(
        &sh,
        Flavor::Wechat,
        "/sns/jscode2session",
        |st| {
            let (appid, kind) = app_credentials(
                st,
                q.get("appid").map(String::as_str),
                q.get("secret").map(String::as_str),
                40125,
            )?;
            if kind != WechatKind::MiniProgram {
                return Err(ApiErr::new(40013, "invalid appid"));
            }
            Ok((appid.clone(), appid))
        },
        |st, appid| {
            let code = q
                .get("js_code")
                .filter(|s| !s.is_empty())
                .ok_or_else(ApiErr::bad_code)?;
            let now = st.now_ms();
            let entry = st
                .mp_codes
                .get(code)
                .cloned()
                .ok_or_else(ApiErr::bad_code)?;
            let MpSubject::Wechat {
                appid: code_app,
                openid,
            } = entry.subject
            else {
                return Err(ApiErr::bad_code());
            };
            if code_app != appid || now >= entry.expires_ms {
                return Err(ApiErr::bad_code());
            }
            if entry.used {
                return Err(ApiErr::new(40163, "code been used"));
            }
            if let Some(c) = st.mp_codes.get_mut(code) {
                c.used = true;
            }
            // A new login gives a new session_key; it stays the same until the next login.
            let session_key = crate::generate::rand_session_key(&mut st.rng);
            st.sessions
                .insert((appid.clone(), openid.clone()), session_key.clone());
            let mut out = json!({"openid": openid, "session_key": session_key});
            if let Some(u) = st.world.wechat.user(&appid, &openid)
                && let Some(o) = out.as_object_mut()
            {
                o.insert("unionid".to_owned(), json!(u.unionid));
            }
            Ok(out)
        },
    )
    .await
}

fn follower_json(st: &State, appid: &str, openid: &str) -> Result<Value, ApiErr> {
    let u = st
        .world
        .wechat
        .user(appid, openid)
        .ok_or_else(|| ApiErr::new(40003, "invalid openid"))?;
    if !u.subscribed.iter().any(|a| a == appid) {
        return Ok(json!({"subscribe": 0, "openid": openid}));
    }
    Ok(json!({
        "subscribe": 1, "openid": openid, "language": "zh_CN", "subscribe_time": 1_600_000_000,
        "unionid": u.unionid, "remark": "", "groupid": 0, "tagid_list": [], "subscribe_scene": "ADD_SCENE_QR_CODE",
        "qr_scene": 0, "qr_scene_str": "",
    }))
}

fn official_account(st: &State, appid: &str) -> Result<(), ApiErr> {
    match st.world.wechat.app(appid) {
        Some((WechatKind::OfficialAccount, _)) => Ok(()),
        _ => Err(ApiErr::new(48001, "api unauthorized")),
    }
}

pub(crate) async fn user_info(AxState(sh): S, Query(q): Q) -> Response {
    run_api(
        &sh,
        Flavor::Wechat,
        "/cgi-bin/user/info",
        |st| auth_wechat(st, &q),
        |st, appid| {
            official_account(st, &appid)?;
            let openid = q
                .get("openid")
                .filter(|s| !s.is_empty())
                .ok_or_else(|| ApiErr::new(40003, "invalid openid"))?;
            follower_json(st, &appid, openid)
        },
    )
    .await
}

/// `cgi-bin/user/get` pages: openids in sorted order, this many at most (WeChat's own page size).
const USER_GET_PAGE: usize = 10_000;

/// `cgi-bin/user/get` is both WeCom's member read (with `userid`) and WeChat's follower list.
pub(crate) async fn user_get_either(st: S, q: Q) -> Response {
    if q.contains_key("userid") {
        crate::wecom::user_get(st, q).await
    } else {
        user_get(st, q).await
    }
}

pub(crate) async fn user_get(AxState(sh): S, Query(q): Q) -> Response {
    run_api(
        &sh,
        Flavor::Wechat,
        "/cgi-bin/user/get",
        |st| auth_wechat(st, &q),
        |st, appid| {
            official_account(st, &appid)?;
            let mut followers: Vec<&str> = st
                .world
                .wechat
                .users
                .iter()
                .filter(|u| u.subscribed.contains(&appid))
                .filter_map(|u| u.openids.get(&appid).map(String::as_str))
                .collect();
            followers.sort_unstable();
            let total = followers.len();
            let after = q.get("next_openid").map(String::as_str).unwrap_or("");
            let page: Vec<&str> = followers
                .into_iter()
                .filter(|o| after.is_empty() || *o > after)
                .take(USER_GET_PAGE)
                .collect();
            let next = page.last().copied().unwrap_or("");
            Ok(json!({
                "total": total, "count": page.len(),
                "data": {"openid": page}, "next_openid": next,
            }))
        },
    )
    .await
}

pub(crate) async fn user_info_batchget(AxState(sh): S, Query(q): Q, body: Bytes) -> Response {
    run_api(
        &sh,
        Flavor::Wechat,
        "/cgi-bin/user/info/batchget",
        |st| auth_wechat(st, &q),
        |st, appid| {
            official_account(st, &appid)?;
            let req = parse_body(&body)?;
            let list = req
                .get("user_list")
                .and_then(Value::as_array)
                .ok_or_else(|| ApiErr::new(40003, "invalid openid"))?;
            if list.len() > 100 {
                return Err(ApiErr::new(45032, "user_list size exceeds 100"));
            }
            let mut out = Vec::with_capacity(list.len());
            for item in list {
                let openid = item
                    .get("openid")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ApiErr::new(40003, "invalid openid"))?;
                out.push(follower_json(st, &appid, openid)?);
            }
            Ok(json!({"user_info_list": out}))
        },
    )
    .await
}

pub(crate) async fn getuserphonenumber(AxState(sh): S, Query(q): Q, body: Bytes) -> Response {
    run_api(
        &sh,
        Flavor::Wechat,
        "/wxa/business/getuserphonenumber",
        |st| auth_wechat(st, &q),
        |st, appid| {
            let req = parse_body(&body)?;
            let code = req
                .get("code")
                .and_then(Value::as_str)
                .ok_or_else(ApiErr::bad_code)?;
            let now = st.now_ms();
            let entry = st
                .phone_codes
                .get(code)
                .cloned()
                .ok_or_else(ApiErr::bad_code)?;
            if entry.used || now >= entry.expires_ms || entry.appid != appid {
                return Err(ApiErr::bad_code());
            }
            if let Some(c) = st.phone_codes.get_mut(code) {
                c.used = true;
            }
            let u = st
                .world
                .wechat
                .user(&appid, &entry.openid)
                .ok_or_else(ApiErr::bad_code)?;
            Ok(json!({
                "errcode": 0, "errmsg": "ok",
                "phone_info": {
                    "phoneNumber": u.phone, "purePhoneNumber": u.phone, "countryCode": "86",
                    "watermark": {"timestamp": now / 1000, "appid": appid},
                },
            }))
        },
    )
    .await
}

/// Shared by template/send and subscribe/send: the openid must belong to the app; recorded in the stats'
/// messages (the appid in `corpid`, agentid 0, the openid as the one recipient).
fn record_wechat_message(
    st: &mut State,
    appid: &str,
    msgtype: &str,
    req: &Value,
    must_follow: bool,
) -> Result<String, ApiErr> {
    let openid = req
        .get("touser")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiErr::new(40003, "invalid openid"))?
        .to_owned();
    let template = req.get("template_id").and_then(Value::as_str).unwrap_or("");
    if template.is_empty() {
        return Err(ApiErr::new(40037, "invalid template_id"));
    }
    let user = st
        .world
        .wechat
        .user(appid, &openid)
        .ok_or_else(|| ApiErr::new(40003, "invalid openid"))?;
    if must_follow && !user.subscribed.iter().any(|a| a == appid) {
        return Err(ApiErr::new(43004, "require subscribe"));
    }
    let msgid = st.next_seq().to_string();
    let now = st.now_ms();
    st.stats.messages.push(crate::state::SentMessage {
        msgid: msgid.clone(),
        corpid: appid.to_owned(),
        agentid: 0,
        msgtype: msgtype.to_owned(),
        recipients: vec![openid],
        invaliduser: Vec::new(),
        invalidparty: Vec::new(),
        invalidtag: Vec::new(),
        body: req.clone(),
        sent_at: now,
        recalled: false,
    });
    Ok(msgid)
}

/// `cgi-bin/message/template/send`: an official account's template message to a follower (43004 if the
/// openid does not follow). Answers a numeric msgid.
pub(crate) async fn message_template_send(AxState(sh): S, Query(q): Q, body: Bytes) -> Response {
    run_api(
        &sh,
        Flavor::Wechat,
        "/cgi-bin/message/template/send",
        |st| auth_wechat(st, &q),
        |st, appid| {
            official_account(st, &appid)?;
            let req = parse_body(&body)?;
            let msgid = record_wechat_message(st, &appid, "template", &req, true)?;
            Ok(json!({ "msgid": msgid.parse::<u64>().unwrap_or(0) }))
        },
    )
    .await
}

/// `cgi-bin/message/subscribe/send`: a mini program's subscribe message.
pub(crate) async fn message_subscribe_send(AxState(sh): S, Query(q): Q, body: Bytes) -> Response {
    run_api(
        &sh,
        Flavor::Wechat,
        "/cgi-bin/message/subscribe/send",
        |st| auth_wechat(st, &q),
        |st, appid| {
            if !matches!(
                st.world.wechat.app(&appid),
                Some((WechatKind::MiniProgram, _))
            ) {
                return Err(ApiErr::new(48001, "api unauthorized"));
            }
            let req = parse_body(&body)?;
            record_wechat_message(st, &appid, "subscribe", &req, false)?;
            Ok(json!({}))
        },
    )
    .await
}
