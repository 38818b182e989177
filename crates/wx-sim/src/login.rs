//! Browser login pages (plain HTML forms, no JavaScript): WeCom in-app OAuth and PC QR login, WeChat
//! official-account OAuth and open-platform website QR login. A person picks a member or WeChat user from a
//! searchable, paginated list; submitting redirects to `redirect_uri?code=CODE&state=STATE` (deny: state only).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::Form;
use axum::extract::{OriginalUri, Query, State as AxState};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::model::WechatKind;
use crate::state::{CodeSubject, OAuthCode, Shared, State};
use crate::wecom::url_host;

/// Entries per page of the picker.
const PAGE_SIZE: usize = 50;
/// OAuth codes live 5 minutes, website QR codes 10.
pub(crate) const CODE_TTL_MS: i64 = 5 * 60 * 1000;
pub(crate) const QR_CODE_TTL_MS: i64 = 10 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// `/connect/oauth2/authorize` with a corpid, or the WeCom PC login pages.
    Wecom { sso: bool },
    /// `/connect/oauth2/authorize` with an official-account appid.
    WechatOauth,
    /// `/connect/qrconnect` with the website appid.
    WechatQr,
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn error_page(msg: &str) -> Response {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>wx-sim</title></head><body><h1>{}</h1></body></html>",
        esc(msg)
    );
    (StatusCode::BAD_REQUEST, Html(body)).into_response()
}

/// Works out which login a request is and checks its parameters the way the real page does.
fn resolve(
    st: &State,
    path: &str,
    p: &HashMap<String, String>,
) -> Result<(Flow, Option<usize>), String> {
    let appid = p.get("appid").map(String::as_str).unwrap_or("");
    let redirect = p.get("redirect_uri").map(String::as_str).unwrap_or("");
    if url::Url::parse(redirect).is_err() {
        return Err("redirect_uri 参数错误 (missing or not an absolute URL)".to_owned());
    }
    if path.starts_with("/connect/qrconnect") {
        let app = st.world.wechat.app(appid);
        let Some((WechatKind::Website, app)) = app else {
            return Err("该链接无法访问 (appid is not a website app)".to_owned());
        };
        if p.get("scope").map(String::as_str) != Some("snsapi_login") {
            return Err("该链接无法访问 (scope must be snsapi_login)".to_owned());
        }
        check_domain(app.trusted_domain.as_deref(), redirect)?;
        return Ok((Flow::WechatQr, None));
    }
    if let Some(ci) = st.world.corp_index(appid) {
        let sso = !path.starts_with("/connect/oauth2/authorize");
        if let Some(a) = p.get("agentid").filter(|s| !s.is_empty()) {
            let ok = a
                .parse::<u32>()
                .ok()
                .and_then(|a| st.world.corps[ci].app(a))
                .is_some();
            if !ok {
                return Err("invalid agentid".to_owned());
            }
        } else if sso {
            return Err("agentid is required for PC login".to_owned());
        }
        return Ok((Flow::Wecom { sso }, Some(ci)));
    }
    if path.starts_with("/connect/oauth2/authorize")
        && let Some((WechatKind::OfficialAccount, app)) = st.world.wechat.app(appid)
    {
        let scope = p.get("scope").map(String::as_str).unwrap_or("");
        if scope != "snsapi_base" && scope != "snsapi_userinfo" {
            return Err("scope 参数错误或没有 scope 权限".to_owned());
        }
        check_domain(app.trusted_domain.as_deref(), redirect)?;
        return Ok((Flow::WechatOauth, None));
    }
    Err("appid 参数错误 (unknown corpid/appid)".to_owned())
}

fn check_domain(trusted: Option<&str>, redirect: &str) -> Result<(), String> {
    match (trusted, url_host(redirect)) {
        (Some(t), Some(h)) if !t.eq_ignore_ascii_case(&h) => {
            Err("redirect_uri 域名与后台配置不一致，错误码 10003".to_owned())
        }
        _ => Ok(()),
    }
}

fn agentid(p: &HashMap<String, String>) -> Option<u32> {
    p.get("agentid").and_then(|a| a.parse().ok())
}

/// (value submitted, label shown) of the people this login may pick, filtered by `q`.
fn candidates(
    st: &mut State,
    flow: Flow,
    corp: Option<usize>,
    p: &HashMap<String, String>,
) -> Vec<(String, String)> {
    let q = p
        .get("q")
        .map(|s| s.trim().to_lowercase())
        .unwrap_or_default();
    let appid = p.get("appid").cloned().unwrap_or_default();
    match (flow, corp) {
        (Flow::Wecom { .. }, Some(ci)) => {
            let vis = agentid(p).map(|a| st.vis(ci, Some(a)));
            let dir = &st.world.corps[ci].dir;
            dir.members
                .values()
                .filter(|m| vis.as_ref().map(|v| v.member(m)).unwrap_or(true))
                .filter(|m| {
                    q.is_empty()
                        || m.userid.to_lowercase().contains(&q)
                        || m.name.to_lowercase().contains(&q)
                })
                .map(|m| (m.userid.clone(), format!("{} ({})", m.name, m.userid)))
                .collect()
        }
        _ => st
            .world
            .wechat
            .users
            .iter()
            .filter_map(|u| u.openids.get(&appid).map(|o| (o, u)))
            .filter(|(o, u)| {
                q.is_empty()
                    || o.to_lowercase().contains(&q)
                    || u.nickname.to_lowercase().contains(&q)
            })
            .map(|(o, u)| (o.clone(), format!("{} ({o})", u.nickname)))
            .collect(),
    }
}

const CARRIED: &[&str] = &[
    "appid",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "agentid",
    "login_type",
];

fn hidden(p: &HashMap<String, String>) -> String {
    let mut s = String::new();
    for k in CARRIED {
        if let Some(v) = p.get(*k) {
            let _ = write!(
                s,
                "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
                esc(v)
            );
        }
    }
    s
}

pub(crate) async fn page(
    AxState(sh): AxState<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<HashMap<String, String>>,
) -> Response {
    let path = uri.path().to_owned();
    let mut st = sh.lock();
    let (flow, corp) = match resolve(&st, &path, &p) {
        Ok(r) => r,
        Err(e) => return error_page(&e),
    };
    let all = candidates(&mut st, flow, corp, &p);
    drop(st);
    let page: usize = p.get("page").and_then(|s| s.parse().ok()).unwrap_or(0);
    let pages = all.len().div_ceil(PAGE_SIZE).max(1);
    let title = match flow {
        Flow::Wecom { sso: false } => "企业微信授权登录 (WeCom OAuth)",
        Flow::Wecom { sso: true } => "企业微信扫码登录 (WeCom PC login)",
        Flow::WechatOauth => "微信网页授权 (WeChat OAuth)",
        Flow::WechatQr => "微信扫码登录 (WeChat website login)",
    };
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head><body><h1>{title}</h1>\
         <p>wx-sim: pick who logs in. appid <code>{}</code>, scope <code>{}</code></p>\
         <form method=\"get\" action=\"{path}\">{}<input name=\"q\" value=\"{}\" placeholder=\"search\">\
         <button type=\"submit\">search</button></form>\
         <form method=\"post\" action=\"{path}\">{}<ul>",
        esc(p.get("appid").map(String::as_str).unwrap_or("")),
        esc(p.get("scope").map(String::as_str).unwrap_or("")),
        hidden(&p),
        esc(p.get("q").map(String::as_str).unwrap_or("")),
        hidden(&p),
    );
    for (value, label) in all.iter().skip(page * PAGE_SIZE).take(PAGE_SIZE) {
        let _ = write!(
            html,
            "<li><button type=\"submit\" name=\"pick\" value=\"{}\">{}</button></li>",
            esc(value),
            esc(label)
        );
    }
    let _ = write!(
        html,
        "</ul><button type=\"submit\" name=\"deny\" value=\"1\">拒绝 (deny)</button></form>\
         <p>{} matches, page {} of {pages}</p>",
        all.len(),
        page + 1
    );
    if page + 1 < pages {
        let mut next: Vec<(String, String)> = p
            .iter()
            .filter(|(k, _)| k.as_str() != "page")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        next.sort();
        next.push(("page".to_owned(), (page + 1).to_string()));
        let qs = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(next)
            .finish();
        let _ = write!(html, "<p><a href=\"{path}?{}\">next page</a></p>", esc(&qs));
    }
    html.push_str("</body></html>");
    Html(html).into_response()
}

/// Appends query pairs to a redirect URI, keeping what it already has.
fn redirect_to(redirect: &str, pairs: &[(&str, &str)]) -> Option<Response> {
    let mut url = url::Url::parse(redirect).ok()?;
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    Some((StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response())
}

pub(crate) async fn submit(
    AxState(sh): AxState<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    Form(p): Form<HashMap<String, String>>,
) -> Response {
    let path = uri.path().to_owned();
    let mut st = sh.lock();
    let (flow, corp) = match resolve(&st, &path, &p) {
        Ok(r) => r,
        Err(e) => return error_page(&e),
    };
    let redirect = p.get("redirect_uri").cloned().unwrap_or_default();
    let state = p.get("state").cloned().unwrap_or_default();
    if p.contains_key("deny") {
        return redirect_to(&redirect, &[("state", &state)])
            .unwrap_or_else(|| error_page("bad redirect_uri"));
    }
    let Some(pick) = p.get("pick").cloned() else {
        return error_page("nobody was picked");
    };
    // The pick must be someone this page offered (in scope, existing).
    let allowed = candidates(
        &mut st,
        flow,
        corp,
        &HashMap::from([
            (
                "appid".to_owned(),
                p.get("appid").cloned().unwrap_or_default(),
            ),
            (
                "agentid".to_owned(),
                p.get("agentid").cloned().unwrap_or_default(),
            ),
            ("q".to_owned(), pick.clone()),
        ]),
    )
    .into_iter()
    .any(|(v, _)| v == pick);
    if !allowed {
        return error_page("no permission: this person cannot log in to this app");
    }
    let scope = p
        .get("scope")
        .cloned()
        .unwrap_or_else(|| "snsapi_base".to_owned());
    let code = match (flow, corp) {
        (Flow::Wecom { sso }, Some(ci)) => {
            let agent = agentid(&p);
            // snsapi_privateinfo needs an agentid, and PC login never gives a user_ticket.
            let privateinfo = !sso && scope == "snsapi_privateinfo" && agent.is_some();
            let subject = CodeSubject::Wecom {
                corp: ci,
                agentid: agent,
                userid: pick,
                privateinfo,
            };
            st.mint_code(subject, url_host(&redirect), CODE_TTL_MS)
        }
        (Flow::WechatQr, _) => {
            let subject = CodeSubject::Wechat {
                appid: p.get("appid").cloned().unwrap_or_default(),
                openid: pick,
                scope,
            };
            st.mint_code(subject, url_host(&redirect), QR_CODE_TTL_MS)
        }
        _ => {
            let subject = CodeSubject::Wechat {
                appid: p.get("appid").cloned().unwrap_or_default(),
                openid: pick,
                scope,
            };
            st.mint_code(subject, url_host(&redirect), CODE_TTL_MS)
        }
    };
    redirect_to(&redirect, &[("code", &code), ("state", &state)])
        .unwrap_or_else(|| error_page("bad redirect_uri"))
}

impl State {
    /// Issues a single-use OAuth code.
    pub(crate) fn mint_code(
        &mut self,
        subject: CodeSubject,
        redirect_host: Option<String>,
        ttl_ms: i64,
    ) -> String {
        let code = self.random_token(32);
        let expires_ms = self.now_ms() + ttl_ms;
        self.oauth_codes.insert(
            code.clone(),
            OAuthCode {
                subject,
                redirect_host,
                expires_ms,
                used: false,
            },
        );
        code
    }
}
