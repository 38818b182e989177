//! WeCom server APIs at their real paths (qyapi.weixin.qq.com): tokens and tickets, contacts reads with
//! visibility scopes and the post-2022 field restrictions, app messages, OAuth code exchange and the WeCom
//! mini-program login.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State as AxState};
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::model::{Corp, Directory, Member, Visibility};
use crate::state::{ApiErr, Flavor, OAuthCode, Shared, State, TokenOwner, UserTicket, run_api};

type Q = Query<HashMap<String, String>>;
type S = AxState<Arc<Shared>>;

/// Fields a restricted (post-2022) app does not receive from user/get and user/list.
const WITHHELD: &[&str] = &[
    "mobile",
    "email",
    "biz_mail",
    "avatar",
    "thumb_avatar",
    "qr_code",
    "address",
];

/// Contacts reads the contacts-sync secret may not call from a "new IP" (after 2022-08-15).
const NEW_IP_BLOCKED: &[&str] = &[
    "/cgi-bin/user/get",
    "/cgi-bin/user/simplelist",
    "/cgi-bin/user/list",
    "/cgi-bin/department/list",
    "/cgi-bin/department/get",
];

/// A WeCom caller: corp index and agentid (None = contacts-sync).
type Caller = (usize, Option<u32>);

fn token(q: &HashMap<String, String>) -> Option<&str> {
    q.get("access_token").map(String::as_str)
}

/// Authenticates a WeCom token; the owner key for limits is the corpid.
fn auth(
    st: &mut State,
    q: &HashMap<String, String>,
    api: &str,
) -> Result<(Caller, String), ApiErr> {
    let (corp, agentid) = st.wecom_caller(token(q))?;
    if agentid.is_none() && st.cfg.contacts_new_ip && NEW_IP_BLOCKED.contains(&api) {
        return Err(ApiErr::new(
            48009,
            "api forbidden for contacts-sync secret from a new ip",
        ));
    }
    Ok(((corp, agentid), st.corpid(corp)))
}

/// Same, but only for app tokens (contacts-sync gets 48002).
fn auth_app(st: &mut State, q: &HashMap<String, String>) -> Result<((usize, u32), String), ApiErr> {
    let (corp, agentid) = st.wecom_caller(token(q))?;
    let agentid = agentid.ok_or_else(ApiErr::forbidden)?;
    Ok(((corp, agentid), st.corpid(corp)))
}

fn parse_body(body: &Bytes) -> Result<Value, ApiErr> {
    if body.is_empty() {
        return Err(ApiErr::new(44002, "empty post data"));
    }
    serde_json::from_slice::<Value>(body).map_err(|_| ApiErr::bad_json())
}

fn corp(st: &State, idx: usize) -> Result<&Corp, ApiErr> {
    st.world.corps.get(idx).ok_or_else(ApiErr::bad_token)
}

fn param_u32(q: &HashMap<String, String>, name: &str) -> Result<Option<u32>, ApiErr> {
    match q.get(name).map(|s| s.trim()) {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse::<u32>()
            .map(Some)
            .map_err(|_| ApiErr::bad_param(name)),
    }
}

pub(crate) async fn gettoken(AxState(sh): S, Query(q): Q) -> Response {
    run_api(
        &sh,
        Flavor::Wecom,
        "/cgi-bin/gettoken",
        |st| {
            let corpid = q
                .get("corpid")
                .filter(|s| !s.is_empty())
                .ok_or_else(|| ApiErr::new(41002, "corpid missing"))?;
            let secret = q
                .get("corpsecret")
                .filter(|s| !s.is_empty())
                .ok_or_else(|| ApiErr::new(41004, "corpsecret missing"))?;
            let idx = st
                .world
                .corp_index(corpid)
                .ok_or_else(|| ApiErr::new(40013, "invalid corpid"))?;
            let c = &st.world.corps[idx];
            let agentid = if c.contacts_secret == *secret {
                None
            } else {
                Some(
                    c.apps
                        .iter()
                        .find(|a| a.secret == *secret)
                        .ok_or_else(|| ApiErr::new(40001, "invalid credential"))?
                        .agentid,
                )
            };
            Ok(((idx, agentid), corpid.clone()))
        },
        |st, (idx, agentid)| {
            let now = st.now_ms();
            if !st.cfg.rotate_tokens
                && let Some(t) = st.wecom_current.get(&(idx, agentid))
                && let Some(e) = st.tokens.get(t)
                && !e.revoked
                && e.expires_ms > now
            {
                let expires_in = (e.expires_ms - now + 999) / 1000;
                return Ok(json!({"access_token": t, "expires_in": expires_in}));
            }
            let lifetime = st.lifetime_ms();
            let t = st.new_token(TokenOwner::Wecom { corp: idx, agentid }, lifetime);
            st.wecom_current.insert((idx, agentid), t.clone());
            Ok(json!({"access_token": t, "expires_in": lifetime / 1000}))
        },
    )
    .await
}

/// A cached ticket (jsapi / agent_config): the same value until it expires.
fn ticket(st: &mut State, key: String) -> Value {
    let now = st.now_ms();
    if let Some((t, exp)) = st.tickets.get(&key)
        && *exp > now
    {
        return json!({"ticket": t, "expires_in": (*exp - now + 999) / 1000});
    }
    let lifetime = st.lifetime_ms();
    let t = format!("sim_{}", st.random_token(80));
    st.tickets.insert(key, (t.clone(), now + lifetime));
    json!({"ticket": t, "expires_in": lifetime / 1000})
}

pub(crate) async fn get_jsapi_ticket(AxState(sh): S, Query(q): Q) -> Response {
    run_api(
        &sh,
        Flavor::Wecom,
        "/cgi-bin/get_jsapi_ticket",
        |st| auth_app(st, &q),
        |st, (corp, _)| Ok(ticket(st, format!("wecom_jsapi:{corp}"))),
    )
    .await
}

pub(crate) async fn ticket_get(AxState(sh): S, Query(q): Q) -> Response {
    run_api(
        &sh,
        Flavor::Wecom,
        "/cgi-bin/ticket/get",
        |st| auth_app(st, &q),
        |st, (corp, agentid)| {
            if q.get("type").map(String::as_str) != Some("agent_config") {
                return Err(ApiErr::bad_param("type must be agent_config"));
            }
            Ok(ticket(st, format!("wecom_agent:{corp}:{agentid}")))
        },
    )
    .await
}

fn dept_json(dir: &Directory, id: u32) -> Value {
    match dir.departments.get(&id) {
        Some(d) => json!({
            "id": d.id, "name": d.name, "name_en": d.name_en, "department_leader": d.department_leader,
            "parentid": d.parentid, "order": d.order,
        }),
        None => Value::Null,
    }
}

/// Visible departments: `id`'s subtree (60011 if `id` is outside the scope) or the whole visible forest.
fn visible_depts(dir: &Directory, vis: &Visibility, id: Option<u32>) -> Result<Vec<u32>, ApiErr> {
    match id {
        Some(id) => {
            if !dir.departments.contains_key(&id) {
                return Err(ApiErr::new(60123, "invalid party id"));
            }
            if !vis.dept(id) {
                return Err(ApiErr::no_privilege());
            }
            Ok(dir.subtree(id))
        }
        None if vis.all => Ok(dir.subtree(1)),
        None => {
            // Roots of the visible forest: visible departments whose parent is not visible.
            let mut out = Vec::new();
            for root in dir.subtree(1) {
                if vis.dept(root) {
                    let parent_visible = dir
                        .departments
                        .get(&root)
                        .map(|d| vis.dept(d.parentid))
                        .unwrap_or(false);
                    if !parent_visible {
                        out.extend(dir.subtree(root));
                    }
                }
            }
            Ok(out)
        }
    }
}

pub(crate) async fn department_list(AxState(sh): S, Query(q): Q) -> Response {
    let api = "/cgi-bin/department/list";
    run_api(
        &sh,
        Flavor::Wecom,
        api,
        |st| auth(st, &q, api),
        |st, (ci, agentid)| {
            let id = param_u32(&q, "id")?;
            let vis = st.vis(ci, agentid);
            let dir = &corp(st, ci)?.dir;
            let ids = visible_depts(dir, &vis, id)?;
            let list: Vec<Value> = ids.iter().map(|i| dept_json(dir, *i)).collect();
            Ok(json!({"department": list}))
        },
    )
    .await
}

pub(crate) async fn department_simplelist(AxState(sh): S, Query(q): Q) -> Response {
    let api = "/cgi-bin/department/simplelist";
    run_api(
        &sh,
        Flavor::Wecom,
        api,
        |st| auth(st, &q, api),
        |st, (ci, agentid)| {
            let id = param_u32(&q, "id")?;
            let vis = st.vis(ci, agentid);
            let dir = &corp(st, ci)?.dir;
            let ids = visible_depts(dir, &vis, id)?;
            let list: Vec<Value> = ids
                .iter()
                .filter_map(|i| dir.departments.get(i))
                .map(|d| json!({"id": d.id, "parentid": d.parentid, "order": d.order}))
                .collect();
            Ok(json!({"department_id": list}))
        },
    )
    .await
}

pub(crate) async fn department_get(AxState(sh): S, Query(q): Q) -> Response {
    let api = "/cgi-bin/department/get";
    run_api(
        &sh,
        Flavor::Wecom,
        api,
        |st| auth(st, &q, api),
        |st, (ci, agentid)| {
            let id = param_u32(&q, "id")?.ok_or_else(|| ApiErr::bad_param("id"))?;
            let vis = st.vis(ci, agentid);
            let dir = &corp(st, ci)?.dir;
            if !dir.departments.contains_key(&id) {
                return Err(ApiErr::new(60123, "invalid party id"));
            }
            if !vis.dept(id) {
                return Err(ApiErr::no_privilege());
            }
            Ok(json!({"department": dept_json(dir, id)}))
        },
    )
    .await
}

/// A member as user/get shows it to a caller with `vis`; `restricted` withholds the post-2022 fields.
pub(crate) fn user_json(
    m: &Member,
    vis: &Visibility,
    restricted: bool,
    withheld_as_empty: bool,
) -> Value {
    let idx: Vec<usize> = (0..m.department.len())
        .filter(|i| vis.all || vis.dept(m.department[*i]))
        .collect();
    let department: Vec<u32> = idx.iter().map(|i| m.department[*i]).collect();
    let order: Vec<u32> = idx
        .iter()
        .map(|i| m.order.get(*i).copied().unwrap_or(0))
        .collect();
    let leader: Vec<u8> = idx
        .iter()
        .map(|i| m.is_leader_in_dept.get(*i).copied().unwrap_or(0))
        .collect();
    let mut v = json!({
        "userid": m.userid, "name": m.name, "department": department, "order": order,
        "position": m.position, "mobile": m.mobile, "gender": m.gender, "email": m.email,
        "biz_mail": m.biz_mail, "is_leader_in_dept": leader, "direct_leader": m.direct_leader,
        "avatar": m.avatar, "thumb_avatar": m.thumb_avatar, "telephone": m.telephone, "alias": m.alias,
        "address": m.address, "open_userid": m.open_userid, "main_department": m.main_department,
        "status": m.status, "qr_code": m.qr_code, "extattr": {"attrs": []}, "external_position": "",
    });
    if restricted && let Some(obj) = v.as_object_mut() {
        for f in WITHHELD {
            if withheld_as_empty {
                obj.insert((*f).to_owned(), json!(""));
            } else {
                obj.remove(*f);
            }
        }
        obj.insert("gender".to_owned(), json!("0"));
    }
    v
}

fn restricted(st: &State, ci: usize, agentid: Option<u32>) -> bool {
    agentid
        .and_then(|a| st.world.corps.get(ci).and_then(|c| c.app(a)))
        .map(|a| a.restricted_fields)
        .unwrap_or(false)
}

pub(crate) async fn user_get(AxState(sh): S, Query(q): Q) -> Response {
    let api = "/cgi-bin/user/get";
    run_api(
        &sh,
        Flavor::Wecom,
        api,
        |st| auth(st, &q, api),
        |st, (ci, agentid)| {
            let userid = q
                .get("userid")
                .filter(|s| !s.is_empty())
                .ok_or_else(|| ApiErr::new(41009, "missing userid"))?;
            let vis = st.vis(ci, agentid);
            let restricted = restricted(st, ci, agentid);
            let dir = &corp(st, ci)?.dir;
            let m = dir
                .member(userid)
                .ok_or_else(|| ApiErr::new(60111, "userid not found"))?;
            if !vis.member(m) {
                return Err(ApiErr::no_privilege());
            }
            Ok(user_json(m, &vis, restricted, st.cfg.withheld_as_empty))
        },
    )
    .await
}

/// Members of a department (and of its sub-departments when `fetch_child=1`), each once, in tree order.
fn dept_users<'a>(
    dir: &'a Directory,
    vis: &Visibility,
    q: &HashMap<String, String>,
) -> Result<Vec<&'a Member>, ApiErr> {
    let id = param_u32(q, "department_id")?.ok_or_else(|| ApiErr::bad_param("department_id"))?;
    if !dir.departments.contains_key(&id) {
        return Err(ApiErr::new(60123, "invalid party id"));
    }
    if !vis.dept(id) {
        return Err(ApiErr::no_privilege());
    }
    let depts = if q.get("fetch_child").map(String::as_str) == Some("1") {
        dir.subtree(id)
    } else {
        vec![id]
    };
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for d in depts {
        if let Some(keys) = dir.dept_members.get(&d) {
            for k in keys {
                if seen.insert(k.as_str())
                    && let Some(m) = dir.members.get(k)
                {
                    out.push(m);
                }
            }
        }
    }
    Ok(out)
}

pub(crate) async fn user_simplelist(AxState(sh): S, Query(q): Q) -> Response {
    let api = "/cgi-bin/user/simplelist";
    run_api(&sh, Flavor::Wecom, api, |st| auth(st, &q, api), |st, (ci, agentid)| {
        let vis = st.vis(ci, agentid);
        let dir = &corp(st, ci)?.dir;
        let users = dept_users(dir, &vis, &q)?;
        let list: Vec<Value> = users
            .iter()
            .map(|m| {
                let depts: Vec<u32> = m.department.iter().copied().filter(|d| vis.dept(*d)).collect();
                json!({"userid": m.userid, "name": m.name, "department": depts, "open_userid": m.open_userid})
            })
            .collect();
        Ok(json!({"userlist": list}))
    })
    .await
}

pub(crate) async fn user_list(AxState(sh): S, Query(q): Q) -> Response {
    let api = "/cgi-bin/user/list";
    run_api(
        &sh,
        Flavor::Wecom,
        api,
        |st| auth(st, &q, api),
        |st, (ci, agentid)| {
            let vis = st.vis(ci, agentid);
            let restricted = restricted(st, ci, agentid);
            let empty = st.cfg.withheld_as_empty;
            let dir = &corp(st, ci)?.dir;
            let users = dept_users(dir, &vis, &q)?;
            let list: Vec<Value> = users
                .iter()
                .map(|m| user_json(m, &vis, restricted, empty))
                .collect();
            Ok(json!({"userlist": list}))
        },
    )
    .await
}

fn hex_encode(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect();
    String::from_utf8(bytes?).ok()
}

pub(crate) async fn user_list_id(AxState(sh): S, Query(q): Q, body: Bytes) -> Response {
    let api = "/cgi-bin/user/list_id";
    run_api(
        &sh,
        Flavor::Wecom,
        api,
        |st| auth(st, &q, api),
        |st, (ci, agentid)| {
            // Only the contacts-sync secret may call list_id in a self-built company.
            if agentid.is_some() {
                return Err(ApiErr::forbidden());
            }
            let req = if body.is_empty() {
                json!({})
            } else {
                parse_body(&body)?
            };
            let limit = match req.get("limit") {
                None | Some(Value::Null) => 10_000,
                Some(v) => v
                    .as_u64()
                    .filter(|n| (1..=10_000).contains(n))
                    .ok_or_else(|| ApiErr::bad_param("limit"))?,
            } as usize;
            let cursor = req.get("cursor").and_then(Value::as_str).unwrap_or("");
            // The cursor is opaque to clients: hex of "<lower userid>\n<department index>" of the next row.
            let (start_key, start_idx) = if cursor.is_empty() {
                (String::new(), 0usize)
            } else {
                let raw = hex_decode(cursor).ok_or_else(|| ApiErr::bad_param("cursor"))?;
                let (k, i) = raw
                    .split_once('\n')
                    .ok_or_else(|| ApiErr::bad_param("cursor"))?;
                (
                    k.to_owned(),
                    i.parse().map_err(|_| ApiErr::bad_param("cursor"))?,
                )
            };
            let dir = &corp(st, ci)?.dir;
            let mut rows = Vec::with_capacity(limit.min(10_000));
            let mut next = String::new();
            'outer: for (key, m) in dir.members.range(start_key.clone()..) {
                let first = if *key == start_key { start_idx } else { 0 };
                for (i, d) in m.department.iter().enumerate().skip(first) {
                    if rows.len() == limit {
                        next = hex_encode(&format!("{key}\n{i}"));
                        break 'outer;
                    }
                    rows.push(json!({"userid": m.userid, "department": d}));
                }
            }
            Ok(json!({"next_cursor": next, "dept_user": rows}))
        },
    )
    .await
}

pub(crate) async fn tag_list(AxState(sh): S, Query(q): Q) -> Response {
    let api = "/cgi-bin/tag/list";
    run_api(
        &sh,
        Flavor::Wecom,
        api,
        |st| auth(st, &q, api),
        |st, (ci, agentid)| {
            let vis = st.vis(ci, agentid);
            let dir = &corp(st, ci)?.dir;
            let list: Vec<Value> = dir
                .tags
                .values()
                .filter(|t| vis.tag(t.tagid))
                .map(|t| json!({"tagid": t.tagid, "tagname": t.tagname}))
                .collect();
            Ok(json!({"taglist": list}))
        },
    )
    .await
}

pub(crate) async fn tag_get(AxState(sh): S, Query(q): Q) -> Response {
    let api = "/cgi-bin/tag/get";
    run_api(
        &sh,
        Flavor::Wecom,
        api,
        |st| auth(st, &q, api),
        |st, (ci, agentid)| {
            let id = param_u32(&q, "tagid")?.ok_or_else(|| ApiErr::bad_param("tagid"))?;
            let vis = st.vis(ci, agentid);
            let dir = &corp(st, ci)?.dir;
            let tag = dir
                .tags
                .get(&id)
                .ok_or_else(|| ApiErr::new(40068, "invalid tagid"))?;
            if !vis.tag(id) {
                return Err(ApiErr::no_privilege());
            }
            let users: Vec<Value> = tag
                .users
                .iter()
                .filter_map(|u| dir.member(u))
                .filter(|m| vis.member(m))
                .map(|m| json!({"userid": m.userid, "name": m.name}))
                .collect();
            let parties: Vec<u32> = tag
                .departments
                .iter()
                .copied()
                .filter(|d| vis.dept(*d))
                .collect();
            Ok(json!({"tagname": tag.tagname, "userlist": users, "partylist": parties}))
        },
    )
    .await
}

pub(crate) async fn agent_get(AxState(sh): S, Query(q): Q) -> Response {
    run_api(&sh, Flavor::Wecom, "/cgi-bin/agent/get", |st| auth_app(st, &q), |st, (ci, agentid)| {
        let asked = param_u32(&q, "agentid")?.ok_or_else(|| ApiErr::new(41011, "missing agentid"))?;
        let c = corp(st, ci)?;
        if asked != agentid {
            return Err(if c.app(asked).is_some() { ApiErr::no_privilege() } else { ApiErr::new(40056, "invalid agentid") });
        }
        let app = c.app(agentid).ok_or_else(|| ApiErr::new(40056, "invalid agentid"))?;
        let users: Vec<Value> = app.scope.users.iter().map(|u| json!({"userid": u})).collect();
        Ok(json!({
            "agentid": app.agentid, "name": app.name, "square_logo_url": "", "description": app.description,
            "allow_userinfos": {"user": users}, "allow_partys": {"partyid": app.scope.departments},
            "allow_tags": {"tagid": app.scope.tags}, "close": 0,
            "redirect_domain": app.trusted_domain.clone().unwrap_or_default(), "report_location_flag": 0,
            "isreportenter": 0, "home_url": app.home_url,
        }))
    })
    .await
}

fn split_ids(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => s
            .split('|')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(Value::Number(n)) => vec![n.to_string()],
        _ => Vec::new(),
    }
}

const MSGTYPES: &[&str] = &[
    "text",
    "image",
    "voice",
    "video",
    "file",
    "textcard",
    "news",
    "mpnews",
    "markdown",
    "miniprogram_notice",
    "template_card",
];

pub(crate) async fn message_send(AxState(sh): S, Query(q): Q, body: Bytes) -> Response {
    run_api(
        &sh,
        Flavor::Wecom,
        "/cgi-bin/message/send",
        |st| auth_app(st, &q),
        |st, (ci, agentid)| {
            let req = parse_body(&body)?;
            let asked = req.get("agentid").and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            });
            let asked = asked.ok_or_else(|| ApiErr::new(41011, "missing agentid"))?;
            if asked != u64::from(agentid) {
                return Err(ApiErr::new(301002, "agentid not match the access_token"));
            }
            let msgtype = req.get("msgtype").and_then(Value::as_str).unwrap_or("");
            if !MSGTYPES.contains(&msgtype) {
                return Err(ApiErr::new(40008, "invalid message type"));
            }
            let users = split_ids(req.get("touser"));
            let parties = split_ids(req.get("toparty"));
            let tags = split_ids(req.get("totag"));
            if users.len() > 1000 {
                return Err(ApiErr::new(40032, "invalid userlist size"));
            }
            if parties.len() > 100 {
                return Err(ApiErr::new(82002, "invalid partylist size"));
            }
            if tags.len() > 100 {
                return Err(ApiErr::new(82003, "invalid taglist size"));
            }
            if users.is_empty() && parties.is_empty() && tags.is_empty() {
                return Err(ApiErr::new(82001, "touser & toparty & totag all empty"));
            }
            let vis = st.vis(ci, Some(agentid));
            let c = corp(st, ci)?;
            let dir = &c.dir;
            let mut recipients: BTreeSet<String> = BTreeSet::new();
            let (mut bad_users, mut bad_parties, mut bad_tags) =
                (Vec::new(), Vec::new(), Vec::new());
            let add_dept = |recipients: &mut BTreeSet<String>, id: u32| {
                for d in dir.subtree(id) {
                    for k in dir.dept_members.get(&d).into_iter().flatten() {
                        if let Some(m) = dir.members.get(k) {
                            recipients.insert(m.userid.clone());
                        }
                    }
                }
            };
            if users.iter().any(|u| u == "@all") {
                for m in dir.members.values().filter(|m| vis.member(m)) {
                    recipients.insert(m.userid.clone());
                }
            } else {
                for u in &users {
                    match dir.member(u) {
                        Some(m) if vis.member(m) => {
                            recipients.insert(m.userid.clone());
                        }
                        _ => bad_users.push(u.to_lowercase()),
                    }
                }
                for p in &parties {
                    match p.parse::<u32>() {
                        Ok(id) if dir.departments.contains_key(&id) && vis.dept(id) => {
                            add_dept(&mut recipients, id)
                        }
                        _ => bad_parties.push(p.clone()),
                    }
                }
                for t in &tags {
                    match t.parse::<u32>().ok().and_then(|id| dir.tags.get(&id)) {
                        Some(tag) if vis.tag(tag.tagid) => {
                            for u in &tag.users {
                                if let Some(m) = dir.member(u) {
                                    recipients.insert(m.userid.clone());
                                }
                            }
                            for d in &tag.departments {
                                add_dept(&mut recipients, *d);
                            }
                        }
                        _ => bad_tags.push(t.clone()),
                    }
                }
            }
            let mut extra = Map::new();
            if !bad_users.is_empty() {
                extra.insert("invaliduser".to_owned(), json!(bad_users.join("|")));
            }
            if !bad_parties.is_empty() {
                extra.insert("invalidparty".to_owned(), json!(bad_parties.join("|")));
            }
            if !bad_tags.is_empty() {
                extra.insert("invalidtag".to_owned(), json!(bad_tags.join("|")));
            }
            if recipients.is_empty() {
                let mut e = ApiErr::new(81013, "user & party & tag all invalid");
                e.extra = Some(extra);
                return Err(e);
            }
            let corpid = c.corpid.clone();
            let msgid = format!("sim_msg_{}", st.next_seq());
            let now = st.now_ms();
            st.stats.messages.push(crate::state::SentMessage {
                msgid: msgid.clone(),
                corpid,
                agentid,
                msgtype: msgtype.to_owned(),
                recipients: recipients.into_iter().collect(),
                invaliduser: bad_users,
                invalidparty: bad_parties,
                invalidtag: bad_tags,
                body: req.clone(),
                sent_at: now,
                recalled: false,
            });
            extra.insert("msgid".to_owned(), json!(msgid));
            Ok(Value::Object(extra))
        },
    )
    .await
}

pub(crate) async fn message_recall(AxState(sh): S, Query(q): Q, body: Bytes) -> Response {
    run_api(
        &sh,
        Flavor::Wecom,
        "/cgi-bin/message/recall",
        |st| auth_app(st, &q),
        |st, (ci, agentid)| {
            let req = parse_body(&body)?;
            let msgid = req
                .get("msgid")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiErr::bad_param("msgid"))?;
            let corpid = st.corpid(ci);
            let now = st.now_ms();
            let msg = st
                .stats
                .messages
                .iter_mut()
                .find(|m| m.msgid == msgid && m.corpid == corpid && m.agentid == agentid)
                .ok_or_else(|| ApiErr::bad_param("msgid"))?;
            // Only messages of the last 24 hours can be recalled.
            if now - msg.sent_at > 24 * 3600 * 1000 {
                return Err(ApiErr::bad_param("msgid (older than 24 h)"));
            }
            msg.recalled = true;
            Ok(json!({}))
        },
    )
    .await
}

/// Host and port of a URL as a trusted-domain check compares them ("host" or "host:port").
pub(crate) fn url_host(u: &str) -> Option<String> {
    let url = url::Url::parse(u).ok()?;
    let host = url.host_str()?.to_owned();
    Some(match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    })
}

pub(crate) async fn auth_getuserinfo(AxState(sh): S, Query(q): Q) -> Response {
    run_api(
        &sh,
        Flavor::Wecom,
        "/cgi-bin/auth/getuserinfo",
        |st| auth_app(st, &q),
        |st, (ci, agentid)| {
            let code = q
                .get("code")
                .filter(|s| !s.is_empty())
                .ok_or_else(ApiErr::bad_code)?;
            let now = st.now_ms();
            let entry: OAuthCode = st
                .oauth_codes
                .get(code)
                .cloned()
                .ok_or_else(ApiErr::bad_code)?;
            let crate::state::CodeSubject::Wecom {
                corp,
                agentid: code_agent,
                userid,
                privateinfo,
            } = entry.subject.clone()
            else {
                return Err(ApiErr::bad_code());
            };
            if entry.used || now >= entry.expires_ms || corp != ci {
                return Err(ApiErr::bad_code());
            }
            // The code must be exchanged by the app whose login page issued it.
            if code_agent.is_some_and(|a| a != agentid) {
                return Err(ApiErr::new(
                    50001,
                    "redirect_url not in trusted domain of this app",
                ));
            }
            let app = corp_app(st, ci, agentid)?;
            if let (Some(trusted), Some(host)) = (&app.trusted_domain, &entry.redirect_host)
                && !trusted.eq_ignore_ascii_case(host)
            {
                return Err(ApiErr::new(50001, "redirect_url not in trusted domain"));
            }
            if let Some(c) = st.oauth_codes.get_mut(code) {
                c.used = true;
            }
            let vis = st.vis(ci, Some(agentid));
            let in_scope = st
                .world
                .corps
                .get(ci)
                .and_then(|c| c.dir.member(&userid))
                .map(|m| vis.member(m))
                .unwrap_or(false);
            let mut out = json!({"userid": userid});
            if privateinfo && in_scope {
                let ticket = st.random_token(64);
                st.user_tickets.insert(
                    ticket.clone(),
                    UserTicket {
                        corp: ci,
                        userid,
                        expires_ms: now + 1_800_000,
                    },
                );
                if let Some(o) = out.as_object_mut() {
                    o.insert("user_ticket".to_owned(), json!(ticket));
                    o.insert("expires_in".to_owned(), json!(1800));
                }
            }
            Ok(out)
        },
    )
    .await
}

fn corp_app(st: &State, ci: usize, agentid: u32) -> Result<crate::model::App, ApiErr> {
    corp(st, ci)?
        .app(agentid)
        .cloned()
        .ok_or_else(ApiErr::bad_token)
}

pub(crate) async fn auth_getuserdetail(AxState(sh): S, Query(q): Q, body: Bytes) -> Response {
    run_api(
        &sh,
        Flavor::Wecom,
        "/cgi-bin/auth/getuserdetail",
        |st| auth_app(st, &q),
        |st, (ci, agentid)| {
            let req = parse_body(&body)?;
            let ticket = req
                .get("user_ticket")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiErr::bad_param("user_ticket"))?;
            let now = st.now_ms();
            let t = st
                .user_tickets
                .get(ticket)
                .cloned()
                .ok_or_else(|| ApiErr::new(40029, "invalid user_ticket"))?;
            if t.corp != ci || now >= t.expires_ms {
                return Err(ApiErr::new(40029, "invalid user_ticket"));
            }
            let vis = st.vis(ci, Some(agentid));
            let m = corp(st, ci)?
                .dir
                .member(&t.userid)
                .ok_or_else(|| ApiErr::new(60111, "userid not found"))?;
            if !vis.member(m) {
                return Err(ApiErr::no_privilege());
            }
            Ok(json!({
                "userid": m.userid, "gender": m.gender, "avatar": m.avatar, "qr_code": m.qr_code,
                "mobile": m.mobile, "email": m.email, "biz_mail": m.biz_mail, "address": m.address,
            }))
        },
    )
    .await
}

pub(crate) async fn miniprogram_jscode2session(AxState(sh): S, Query(q): Q) -> Response {
    run_api(
        &sh,
        Flavor::Wecom,
        "/cgi-bin/miniprogram/jscode2session",
        |st| auth_app(st, &q),
        |st, (ci, agentid)| {
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
            let crate::state::MpSubject::Wecom {
                corp,
                appid,
                userid,
            } = entry.subject
            else {
                return Err(ApiErr::bad_code());
            };
            if entry.used || now >= entry.expires_ms || corp != ci {
                return Err(ApiErr::bad_code());
            }
            // The token must be the one of the app the mini program is linked to.
            let c = self::corp(st, ci)?;
            let linked = c
                .mini_programs
                .iter()
                .find(|mp| mp.appid == appid)
                .and_then(|mp| c.apps.iter().find(|a| a.name == mp.app));
            if linked.map(|a| a.agentid) != Some(agentid) {
                return Err(ApiErr::bad_code());
            }
            let corpid = c.corpid.clone();
            if let Some(e) = st.mp_codes.get_mut(code) {
                e.used = true;
            }
            let session_key = crate::generate::rand_session_key(&mut st.rng);
            st.sessions
                .insert((appid, userid.clone()), session_key.clone());
            Ok(json!({"corpid": corpid, "userid": userid, "session_key": session_key}))
        },
    )
    .await
}
