//! The control API under `/_sim/`: inspect (info, directory state, stats, callbacks), steer (clock, token
//! revocation, limits, faults, switches, app settings), mint codes, and change the directory (which pushes
//! change_contact callbacks). Errors are HTTP 4xx with `{"error": "..."}`, unlike the simulated APIs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::callbacks::{AgentRef, CallbackRequest};
use crate::changes::{DepartmentUpdate, MemberUpdate, TagUpdate};
use crate::config::Switches;
use crate::error::SimError;
use crate::model::{Department, Member};
use crate::state::Shared;
use crate::{MiniProgramRequest, OAuthCodeRequest, Simulator};

type S = AxState<Arc<Shared>>;
type Q = Query<HashMap<String, String>>;

/// Longest a `POST /_sim/callbacks/wait` waits for deliveries to finish.
const WAIT_CAP: Duration = Duration::from_secs(60);

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sim/info", get(info))
        .route("/_sim/state", get(state))
        .route("/_sim/stats", get(stats))
        .route("/_sim/stats/reset", post(reset_stats))
        .route("/_sim/clock", get(clock))
        .route("/_sim/clock/advance", post(advance))
        .route("/_sim/tokens/revoke", post(revoke))
        .route("/_sim/rate_limits", post(rate_limit))
        .route("/_sim/concurrency_limits", post(concurrency_limit))
        .route("/_sim/faults", post(fault))
        .route("/_sim/switches", post(switches))
        .route("/_sim/apps", post(app_settings))
        .route("/_sim/oauth/code", post(oauth_code))
        .route("/_sim/miniprogram/code", post(mp_code))
        .route("/_sim/miniprogram/phone_code", post(phone_code))
        .route("/_sim/miniprogram/encrypted_data", post(encrypted_data))
        .route("/_sim/members", post(add_member))
        .route(
            "/_sim/members/{userid}",
            post(update_member).delete(remove_member),
        )
        .route("/_sim/departments", post(add_department))
        .route(
            "/_sim/departments/{id}",
            post(update_department).delete(remove_department),
        )
        .route("/_sim/tags/{tagid}", post(update_tag))
        .route(
            "/_sim/callbacks",
            get(list_callbacks).post(register_callback),
        )
        .route("/_sim/callbacks/push", post(push_callback))
        .route("/_sim/callbacks/wait", post(wait_callbacks))
}

fn sim(sh: &Arc<Shared>) -> Simulator {
    Simulator { inner: sh.clone() }
}

fn error(e: SimError) -> Response {
    let status = match e {
        SimError::UnknownCorp(_)
        | SimError::UnknownApp(_)
        | SimError::UnknownMember(_)
        | SimError::UnknownDepartment(_)
        | SimError::UnknownTag(_)
        | SimError::UnknownWechat(_) => StatusCode::NOT_FOUND,
        SimError::MemberExists(_) | SimError::DepartmentExists(_) => StatusCode::CONFLICT,
        _ => StatusCode::BAD_REQUEST,
    };
    (status, Json(json!({"error": e.to_string()}))).into_response()
}

fn bad(msg: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": msg.into()}))).into_response()
}

/// Parses a JSON body, answering 400 with the parser's message instead of axum's plain-text rejection.
/// The error is the ready response; its size does not matter on this cold path.
#[allow(clippy::result_large_err)]
fn body<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, Response> {
    let bytes = if bytes.is_empty() {
        b"{}".as_slice()
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| bad(format!("bad JSON body: {e}")))
}

fn changed(r: Result<Vec<u64>, SimError>) -> Response {
    match r {
        Ok(ids) => Json(json!({"ok": true, "deliveries": ids})).into_response(),
        Err(e) => error(e),
    }
}

async fn info(AxState(sh): S) -> Response {
    Json(sim(&sh).info()).into_response()
}

async fn state(AxState(sh): S, Query(q): Q) -> Response {
    let s = sim(&sh);
    match q.get("corpid") {
        Some(c) => match s.directory_of(c) {
            Some(d) => Json(d).into_response(),
            None => error(SimError::UnknownCorp(c.clone())),
        },
        None => Json(s.directory()).into_response(),
    }
}

async fn stats(AxState(sh): S) -> Response {
    Json(sim(&sh).stats()).into_response()
}

async fn reset_stats(AxState(sh): S) -> Response {
    sim(&sh).reset_stats();
    Json(json!({"ok": true})).into_response()
}

async fn clock(AxState(sh): S) -> Response {
    let st = sh.lock();
    Json(json!({"now_ms": st.now_ms(), "offset_ms": st.offset_ms})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    seconds: f64,
}

async fn advance(AxState(sh): S, raw: axum::body::Bytes) -> Response {
    let a: Advance = match body(&raw) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if !(a.seconds.is_finite() && a.seconds >= 0.0) {
        return bad("seconds must be a non-negative number");
    }
    let s = sim(&sh);
    s.advance_clock(Duration::from_secs_f64(a.seconds));
    Json(json!({"ok": true, "now_ms": s.now_ms()})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Revoke {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    all: bool,
    #[serde(default)]
    corpid: Option<String>,
    #[serde(default)]
    agentid: Option<AgentRef>,
    #[serde(default)]
    appid: Option<String>,
}

async fn revoke(AxState(sh): S, raw: axum::body::Bytes) -> Response {
    let r: Revoke = match body(&raw) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let s = sim(&sh);
    let revoked = if r.all {
        s.revoke_all_tokens();
        json!("all")
    } else if let Some(t) = r.token {
        json!(usize::from(s.revoke_token(&t)))
    } else if let Some(appid) = r.appid {
        json!(s.revoke_tokens_of(&appid, None))
    } else if let Some(corpid) = r
        .corpid
        .or_else(|| s.info().corps.first().map(|c| c.corpid.clone()))
    {
        match r.agentid {
            Some(AgentRef::Named(n)) if n == "contacts" => json!(s.revoke_contacts_tokens(&corpid)),
            Some(AgentRef::Agent(a)) => json!(s.revoke_tokens_of(&corpid, Some(a))),
            Some(AgentRef::Named(n)) => {
                return bad(format!(
                    "agentid {n:?} is neither a number nor \"contacts\""
                ));
            }
            None => json!(s.revoke_tokens_of(&corpid, None)),
        }
    } else {
        return bad("give token, all, appid or corpid [+ agentid]");
    };
    Json(json!({"ok": true, "revoked": revoked})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitReq {
    api: String,
    per_window: u32,
    #[serde(default = "sixty")]
    window_secs: f64,
    /// A corpid or WeChat appid to limit only that one.
    #[serde(default)]
    owner: Option<String>,
}

fn sixty() -> f64 {
    60.0
}

async fn rate_limit(AxState(sh): S, raw: axum::body::Bytes) -> Response {
    let r: RateLimitReq = match body(&raw) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if !(r.window_secs.is_finite() && r.window_secs > 0.0) {
        return bad("window_secs must be a positive number");
    }
    let window = Duration::from_secs_f64(r.window_secs);
    let s = sim(&sh);
    match r.owner {
        Some(o) => s.set_rate_limit_for(&o, &r.api, r.per_window, window),
        None => s.set_rate_limit(&r.api, r.per_window, window),
    }
    Json(json!({"ok": true})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConcurrencyReq {
    api: String,
    max: u32,
    /// Hold (true) or release (false) admitted requests to `api`, to create concurrency on purpose.
    #[serde(default)]
    hold: Option<bool>,
    #[serde(default)]
    latency_ms: Option<u64>,
}

async fn concurrency_limit(AxState(sh): S, raw: axum::body::Bytes) -> Response {
    let r: ConcurrencyReq = match body(&raw) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let s = sim(&sh);
    s.set_concurrency_limit(&r.api, r.max);
    match r.hold {
        Some(true) => s.hold_api(&r.api),
        Some(false) => s.release_api(&r.api),
        None => {}
    }
    if let Some(ms) = r.latency_ms {
        s.set_latency(&r.api, Duration::from_millis(ms));
    }
    Json(json!({"ok": true, "inflight": s.inflight(&r.api)})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultReq {
    api: String,
    /// None clears the fault.
    #[serde(default)]
    errcode: Option<i64>,
    #[serde(default)]
    remaining: Option<u32>,
}

async fn fault(AxState(sh): S, raw: axum::body::Bytes) -> Response {
    let r: FaultReq = match body(&raw) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let s = sim(&sh);
    match r.errcode {
        Some(code) => s.inject_fault(&r.api, code, r.remaining),
        None => s.clear_fault(&r.api),
    }
    Json(json!({"ok": true})).into_response()
}

async fn switches(AxState(sh): S, raw: axum::body::Bytes) -> Response {
    let r: Switches = match body(&raw) {
        Ok(r) => r,
        Err(r) => return r,
    };
    sim(&sh).set_switches(&r);
    Json(json!({"ok": true})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppSettings {
    #[serde(default)]
    agentid: Option<u32>,
    #[serde(default)]
    appid: Option<String>,
    /// "" removes the trusted domain.
    #[serde(default)]
    trusted_domain: Option<String>,
    #[serde(default)]
    restricted_fields: Option<bool>,
}

async fn app_settings(AxState(sh): S, raw: axum::body::Bytes) -> Response {
    let r: AppSettings = match body(&raw) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let s = sim(&sh);
    let key = match (r.agentid, &r.appid) {
        (Some(a), _) => a.to_string(),
        (None, Some(appid)) => appid.clone(),
        (None, None) => return bad("give agentid (first corp) or appid"),
    };
    if let Some(d) = &r.trusted_domain {
        let d = if d.is_empty() { None } else { Some(d.as_str()) };
        if !s.set_trusted_domain(&key, d) {
            return error(SimError::UnknownApp(key));
        }
    }
    if let Some(flag) = r.restricted_fields {
        let ok = r
            .agentid
            .map(|a| s.set_restricted_fields(a, flag))
            .unwrap_or(false);
        if !ok {
            return error(SimError::UnknownApp(key));
        }
    }
    Json(json!({"ok": true})).into_response()
}

async fn oauth_code(AxState(sh): S, raw: axum::body::Bytes) -> Response {
    let r: OAuthCodeRequest = match body(&raw) {
        Ok(r) => r,
        Err(r) => return r,
    };
    match sim(&sh).mint_oauth_code(&r) {
        Ok(code) => Json(json!({"code": code})).into_response(),
        Err(e) => error(e),
    }
}

async fn mp_code(AxState(sh): S, raw: axum::body::Bytes) -> Response {
    let r: MiniProgramRequest = match body(&raw) {
        Ok(r) => r,
        Err(r) => return r,
    };
    match sim(&sh).mint_miniprogram_code(&r) {
        Ok(code) => Json(json!({"code": code})).into_response(),
        Err(e) => error(e),
    }
}

async fn phone_code(AxState(sh): S, raw: axum::body::Bytes) -> Response {
    let r: MiniProgramRequest = match body(&raw) {
        Ok(r) => r,
        Err(r) => return r,
    };
    match sim(&sh).mint_phone_code(&r) {
        Ok(code) => Json(json!({"code": code})).into_response(),
        Err(e) => error(e),
    }
}

async fn encrypted_data(AxState(sh): S, raw: axum::body::Bytes) -> Response {
    let r: MiniProgramRequest = match body(&raw) {
        Ok(r) => r,
        Err(r) => return r,
    };
    match sim(&sh).encrypted_data(&r) {
        Ok(d) => Json(d).into_response(),
        Err(e) => error(e),
    }
}

fn corpid(q: &HashMap<String, String>) -> Option<&str> {
    q.get("corpid").map(String::as_str)
}

fn change(
    sh: &Arc<Shared>,
    op: impl FnOnce(
        &mut crate::state::State,
    ) -> Result<(usize, Vec<crate::changes::ChangeEvent>), SimError>,
) -> Response {
    let mut st = sh.lock();
    changed(op(&mut st).map(|(ci, events)| st.dispatch(ci, &events)))
}

async fn add_member(AxState(sh): S, Query(q): Q, raw: axum::body::Bytes) -> Response {
    let m: Member = match body(&raw) {
        Ok(m) => m,
        Err(r) => return r,
    };
    change(&sh, |st| st.op_add_member(corpid(&q), m))
}

async fn update_member(
    AxState(sh): S,
    Path(userid): Path<String>,
    Query(q): Q,
    raw: axum::body::Bytes,
) -> Response {
    let u: MemberUpdate = match body(&raw) {
        Ok(u) => u,
        Err(r) => return r,
    };
    change(&sh, |st| st.op_update_member(corpid(&q), &userid, u))
}

async fn remove_member(AxState(sh): S, Path(userid): Path<String>, Query(q): Q) -> Response {
    change(&sh, |st| st.op_remove_member(corpid(&q), &userid))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDepartment {
    #[serde(default)]
    id: u32,
    name: String,
    #[serde(default)]
    name_en: String,
    parentid: u32,
    #[serde(default)]
    order: u32,
}

async fn add_department(AxState(sh): S, Query(q): Q, raw: axum::body::Bytes) -> Response {
    let d: NewDepartment = match body(&raw) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let d = Department {
        id: d.id,
        name: d.name,
        name_en: d.name_en,
        parentid: d.parentid,
        order: d.order,
        department_leader: Vec::new(),
    };
    change(&sh, |st| st.op_add_department(corpid(&q), d))
}

async fn update_department(
    AxState(sh): S,
    Path(id): Path<u32>,
    Query(q): Q,
    raw: axum::body::Bytes,
) -> Response {
    let u: DepartmentUpdate = match body(&raw) {
        Ok(u) => u,
        Err(r) => return r,
    };
    change(&sh, |st| st.op_update_department(corpid(&q), id, u))
}

async fn remove_department(AxState(sh): S, Path(id): Path<u32>, Query(q): Q) -> Response {
    change(&sh, |st| st.op_remove_department(corpid(&q), id))
}

async fn update_tag(
    AxState(sh): S,
    Path(tagid): Path<u32>,
    Query(q): Q,
    raw: axum::body::Bytes,
) -> Response {
    let u: TagUpdate = match body(&raw) {
        Ok(u) => u,
        Err(r) => return r,
    };
    change(&sh, |st| st.op_update_tag(corpid(&q), tagid, u))
}

async fn list_callbacks(AxState(sh): S) -> Response {
    let s = sim(&sh);
    Json(json!({"registrations": s.callbacks(), "deliveries": s.deliveries()})).into_response()
}

async fn register_callback(AxState(sh): S, raw: axum::body::Bytes) -> Response {
    let r: CallbackRequest = match body(&raw) {
        Ok(r) => r,
        Err(r) => return r,
    };
    match sim(&sh).register_callback(r).await {
        Ok(reg) => Json(json!({"ok": true, "registration": reg})).into_response(),
        Err(e) => error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushReq {
    #[serde(default)]
    corpid: Option<String>,
    #[serde(default)]
    agentid: Option<AgentRef>,
    #[serde(default)]
    appid: Option<String>,
    /// The plaintext callback XML to encrypt and push.
    xml: String,
}

async fn push_callback(AxState(sh): S, raw: axum::body::Bytes) -> Response {
    let r: PushReq = match body(&raw) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let target = CallbackRequest {
        corpid: r.corpid,
        agentid: r.agentid,
        appid: r.appid,
        url: String::new(),
        ..Default::default()
    };
    changed(sim(&sh).push_callback(&target, &r.xml))
}

async fn wait_callbacks(AxState(sh): S) -> Response {
    let s = sim(&sh);
    match tokio::time::timeout(WAIT_CAP, s.wait_for_deliveries()).await {
        Ok(()) => Json(json!({"ok": true})).into_response(),
        Err(_) => (
            StatusCode::GATEWAY_TIMEOUT,
            Json(json!({"error": "deliveries still running"})),
        )
            .into_response(),
    }
}

/// Unknown paths answer like WeChat does for a wrong URL (HTTP 200, errcode 40066).
pub(crate) async fn unknown_path() -> Response {
    Json(json!({"errcode": 40066, "errmsg": "invalid url"})).into_response()
}
