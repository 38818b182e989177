//! Fetch one corp's directory through a `WecomApp` into an `UpstreamDirectory`. The strategy follows what
//! the credential may do (per-department `user/list`, or `user/list_id` + `user/get`), decided by trying;
//! an app's visible scope is read from `agent/get` and reported. Calls run with bounded concurrency under a
//! per-corp call budget; a 45009 block window is waited out on the clock and the remaining work resumes.
//! Every failed call is recorded as an item error that marks the snapshot incomplete: nothing is dropped
//! silently, because the planner must not remove what it merely failed to see.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinSet;
use wx_api::ApiError;
use wx_api::clock::Clock;
use wx_api::wecom::types::{Gender, MemberStatus, User};
use wx_api::wecom::{WecomApp, api};

use super::budget::CallBudget;
use crate::progress::Phase;

/// How members were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FetchStrategy {
    /// `user/list` per department.
    UserList,
    /// `user/list_id` pages, then `user/get` per member.
    ListIdThenGet,
}

/// Which strategy to use: `Auto` tries `user/list` and falls back on 48009/48002.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StrategyChoice {
    #[default]
    Auto,
    Force(FetchStrategy),
}

/// A member field the upstream withheld from this credential (post-2022 apps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WithheldField {
    Mobile,
    Email,
    Avatar,
    Gender,
}

/// One failed fetch. Never carries a token: wx-api errors are scrubbed and only their code is kept.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ItemError {
    /// The API path that failed.
    pub api: &'static str,
    /// What was being fetched ("department 7", "user zhangsan", "page 3").
    pub item: String,
    /// The WeCom errcode, when the platform answered with one.
    pub errcode: Option<i64>,
    /// wx-api's short error code (`TK001` ...).
    pub code: String,
}

impl ItemError {
    fn new(api: &'static str, item: String, e: &ApiError) -> Self {
        ItemError {
            api,
            item,
            errcode: e
                .errcode()
                .map(|c| c.code())
                .or_else(|| e.retry_after().map(|_| 45009)),
            code: e
                .to_string()
                .split_whitespace()
                .next()
                .unwrap_or("TK000")
                .to_owned(),
        }
    }

    /// A one-line reason for reports.
    pub fn reason(&self) -> String {
        match self.errcode {
            Some(c) => format!(
                "{} {} failed: errcode {c} ({})",
                self.api, self.item, self.code
            ),
            None => format!("{} {} failed ({})", self.api, self.item, self.code),
        }
    }
}

/// The app's visible scope as `agent/get` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct VisibleScope {
    /// The scope contains the root department (or the credential is the contacts secret).
    pub whole_company: bool,
    pub departments: Vec<i64>,
    pub users: Vec<String>,
    pub tags: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpstreamDepartment {
    pub id: i64,
    /// Withheld names (some third-party contexts) stay `None`.
    pub name: Option<String>,
    /// 0 for the root department.
    pub parent_id: i64,
    pub order: i64,
    /// Userids, sorted.
    pub leaders: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpstreamMembership {
    pub department_id: i64,
    pub is_leader: bool,
    pub order: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpstreamMember {
    pub userid: String,
    pub name: Option<String>,
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub avatar: Option<String>,
    pub position: Option<String>,
    pub gender: Option<Gender>,
    /// Raw WeCom status: 1 active, 2 disabled, 4 not activated, 5 left.
    pub status: i64,
    /// Sorted by department id; only visible departments.
    pub memberships: Vec<UpstreamMembership>,
    pub main_department: Option<i64>,
}

impl UpstreamMember {
    /// One member as `user/get` or `user/list` answers it (memberships sorted, status as WeCom's code).
    pub fn from_user(u: User) -> Self {
        let mut memberships: Vec<UpstreamMembership> = u
            .department
            .iter()
            .enumerate()
            .map(|(i, d)| UpstreamMembership {
                department_id: *d,
                is_leader: u.is_leader_in_dept.get(i).copied().unwrap_or(0) == 1,
                order: u.order.get(i).copied().unwrap_or(0),
            })
            .collect();
        memberships.sort_by_key(|m| m.department_id);
        memberships.dedup_by_key(|m| m.department_id);
        let status = match u.status {
            Some(MemberStatus::Active) | None => 1,
            Some(MemberStatus::Disabled) => 2,
            Some(MemberStatus::NotActivated) => 4,
            Some(MemberStatus::Left) => 5,
            Some(MemberStatus::Other(c)) => c,
        };
        UpstreamMember {
            userid: u.userid,
            name: u.name,
            mobile: u.mobile,
            email: u.email,
            avatar: u.avatar,
            position: u.position,
            gender: u.gender,
            status,
            memberships,
            main_department: u.main_department.filter(|d| *d != 0),
        }
    }
}

/// A corp's directory as one credential sees it, with how complete that view is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpstreamDirectory {
    pub corpid: String,
    pub departments: BTreeMap<i64, UpstreamDepartment>,
    pub members: BTreeMap<String, UpstreamMember>,
    /// `None` when the department walk failed before members were read.
    pub strategy: Option<FetchStrategy>,
    pub scope: VisibleScope,
    /// Fields absent or empty for every member: withheld from this credential.
    pub withheld: BTreeSet<WithheldField>,
    /// Every failed fetch, sorted. Non-empty means the snapshot is incomplete.
    pub errors: Vec<ItemError>,
    /// Calls made (including retries after a block window).
    pub calls: u64,
    /// Times the fetch waited out a 45009 block window.
    pub rate_limit_waits: u64,
}

impl UpstreamDirectory {
    pub fn is_complete(&self) -> bool {
        self.errors.is_empty()
    }

    /// Why the snapshot is incomplete (empty when complete).
    pub fn incomplete_reasons(&self) -> Vec<String> {
        self.errors.iter().map(ItemError::reason).collect()
    }
}

/// What a fetch reports while it runs; the sync run turns these into its progress events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FetchProgress {
    /// A phase began; `total` counts its items (departments for `user/list`, members for `user/get`).
    Phase { phase: Phase, total: Option<u64> },
    /// `items` more items of the phase are done (failed ones included).
    Advanced { phase: Phase, items: u64 },
    /// One item failed; it is also in the snapshot's `errors`.
    ItemError { phase: Phase, error: ItemError },
}

/// Where progress goes: a callback, typically forwarding into a channel. Called from the fetch's own task,
/// so it must not block.
#[derive(Clone)]
pub struct FetchObserver(Arc<dyn Fn(FetchProgress) + Send + Sync>);

impl FetchObserver {
    pub fn new(f: impl Fn(FetchProgress) + Send + Sync + 'static) -> Self {
        FetchObserver(Arc::new(f))
    }

    pub fn emit(&self, event: FetchProgress) {
        (self.0)(event);
    }
}

impl std::fmt::Debug for FetchObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FetchObserver")
    }
}

/// Tuning of a fetch.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// In-flight calls at most. Default 8.
    pub concurrency: usize,
    /// Per-corp budget in calls per minute to each API; 0 = unlimited. Default 9,000: with the burst, under
    /// the platform's 10,000/min per company and API. Ignored when `budget` is given.
    pub calls_per_minute: u32,
    /// Per-corp budget in calls per hour to each API; 0 = none. Default 135,000: under the platform's
    /// 150,000/hour per company and API. Ignored when `budget` is given.
    pub calls_per_hour: u32,
    /// Calls the budget may save up per API. Default 100.
    pub burst: u32,
    /// A budget shared with other work on the same corp (incremental sync...); a fresh one when `None`.
    pub budget: Option<Arc<CallBudget>>,
    pub strategy: StrategyChoice,
    /// Block windows waited out per item before it is recorded as failed. Default 5.
    pub max_rate_limit_waits: u32,
    /// Rows per `user/list_id` page (1..=10,000). Default 10,000.
    pub list_id_page: u32,
    /// Progress callback; none by default.
    pub progress: Option<FetchObserver>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            concurrency: 8,
            calls_per_minute: 9_000,
            calls_per_hour: 135_000,
            burst: 100,
            budget: None,
            strategy: StrategyChoice::Auto,
            max_rate_limit_waits: 5,
            list_id_page: 10_000,
            progress: None,
        }
    }
}

/// What every task shares.
#[derive(Debug)]
struct Ctx {
    app: WecomApp,
    clock: Arc<dyn Clock>,
    budget: Arc<CallBudget>,
    max_waits: u32,
    waits: std::sync::atomic::AtomicU64,
    calls: std::sync::atomic::AtomicU64,
}

impl Ctx {
    /// One call under the budget; a 45009 (answered, or a block window already open) is waited out on the
    /// clock and the same call retried, so the work done so far is kept.
    async fn call<T, F, Fut>(&self, api: &'static str, f: F) -> Result<T, ApiError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let mut waits = 0;
        loop {
            self.budget.acquire(api, self.clock.as_ref()).await;
            self.calls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match f().await {
                Err(e) if is_rate_limited(&e) && waits < self.max_waits => {
                    waits += 1;
                    self.waits
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let wait = self
                        .app
                        .blocked_for(api)
                        .or_else(|| e.retry_after())
                        .unwrap_or(Duration::from_secs(60));
                    tracing::info!(
                        api,
                        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        "rate limited; waiting out the block window"
                    );
                    self.clock.sleep(wait).await;
                }
                other => return other,
            }
        }
    }
}

fn is_rate_limited(e: &ApiError) -> bool {
    e.retry_after().is_some() || e.errcode().is_some_and(|c| c.is_rate_limited())
}

fn is_forbidden(e: &ApiError) -> bool {
    matches!(e.errcode().map(|c| c.code()), Some(48009 | 48002))
}

/// Run `f` over `items` with at most `limit` in flight, handing each result to `on_result` as it completes
/// (so results are folded in as they come instead of being held all at once).
async fn bounded<I, T, F, Fut, R>(items: Vec<I>, limit: usize, f: F, mut on_result: R)
where
    I: Send + 'static,
    T: Send + 'static,
    F: Fn(I) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    R: FnMut(Result<T, String>),
{
    let mut set = JoinSet::new();
    for item in items {
        while set.len() >= limit.max(1) {
            if let Some(r) = set.join_next().await {
                on_result(r.map_err(|e| e.to_string()));
            }
        }
        set.spawn(f(item));
    }
    while let Some(r) = set.join_next().await {
        on_result(r.map_err(|e| e.to_string()));
    }
}

/// Keep a failed fetch in the snapshot and tell the progress sink.
fn record(opts: &FetchOptions, dir: &mut UpstreamDirectory, phase: Phase, error: ItemError) {
    if let Some(sink) = &opts.progress {
        sink.emit(FetchProgress::ItemError {
            phase,
            error: error.clone(),
        });
    }
    dir.errors.push(error);
}

fn emit(opts: &FetchOptions, event: FetchProgress) {
    if let Some(sink) = &opts.progress {
        sink.emit(event);
    }
}

/// Fetch the directory `app` can see. Never fails as a whole: failures are item errors in the result.
pub async fn fetch_directory(
    app: &WecomApp,
    clock: Arc<dyn Clock>,
    opts: &FetchOptions,
) -> UpstreamDirectory {
    let ctx = Arc::new(Ctx {
        app: app.clone(),
        budget: opts.budget.clone().unwrap_or_else(|| {
            Arc::new(
                CallBudget::new(opts.calls_per_minute, opts.burst).with_hourly(opts.calls_per_hour),
            )
        }),
        clock,
        max_waits: opts.max_rate_limit_waits,
        waits: std::sync::atomic::AtomicU64::new(0),
        calls: std::sync::atomic::AtomicU64::new(0),
    });
    let mut dir = UpstreamDirectory {
        corpid: app.credentials().corpid.clone(),
        departments: BTreeMap::new(),
        members: BTreeMap::new(),
        strategy: None,
        scope: VisibleScope {
            whole_company: true,
            ..VisibleScope::default()
        },
        withheld: BTreeSet::new(),
        errors: Vec::new(),
        calls: 0,
        rate_limit_waits: 0,
    };
    fetch_into(&ctx, opts, &mut dir).await;
    dir.withheld = withheld_fields(dir.members.values());
    dir.errors.sort();
    dir.errors.dedup();
    dir.calls = ctx.calls.load(std::sync::atomic::Ordering::Relaxed);
    dir.rate_limit_waits = ctx.waits.load(std::sync::atomic::Ordering::Relaxed);
    dir
}

async fn fetch_into(ctx: &Arc<Ctx>, opts: &FetchOptions, dir: &mut UpstreamDirectory) {
    emit(
        opts,
        FetchProgress::Phase {
            phase: Phase::Departments,
            total: None,
        },
    );
    // An app reports its scope; the contacts secret (no agentid) sees the whole company.
    let mut extra_users: BTreeSet<String> = BTreeSet::new();
    if ctx.app.credentials().agentid.is_some() {
        match ctx.call(api::AGENT_GET, || ctx.app.agent_get()).await {
            Ok(agent) => {
                dir.scope = VisibleScope {
                    whole_company: agent.allow_partys.partyid.contains(&1),
                    departments: agent.allow_partys.partyid.clone(),
                    users: agent
                        .allowed_userids()
                        .into_iter()
                        .map(str::to_owned)
                        .collect(),
                    tags: agent.allow_tags.tagid.clone(),
                };
                extra_users.extend(dir.scope.users.iter().cloned());
            }
            Err(e) => {
                // Without the scope we cannot tell what "everything" is; the rest is still fetched.
                dir.scope.whole_company = false;
                let err = ItemError::new(api::AGENT_GET, "scope".to_owned(), &e);
                record(opts, dir, Phase::Departments, err);
            }
        }
        for tagid in dir.scope.tags.clone() {
            match ctx.call(api::TAG_GET, || ctx.app.tag_get(tagid)).await {
                Ok(t) => extra_users.extend(t.userlist.into_iter().map(|u| u.userid)),
                Err(e) => {
                    let err = ItemError::new(api::TAG_GET, format!("tag {tagid}"), &e);
                    record(opts, dir, Phase::Departments, err);
                }
            }
        }
    }

    // The visible department forest in one call; members are then walked per department ourselves.
    match ctx
        .call(api::DEPARTMENT_LIST, || ctx.app.department_list(None))
        .await
    {
        Ok(list) => {
            for d in list {
                let mut leaders = d.department_leader;
                leaders.sort();
                dir.departments.insert(
                    d.id,
                    UpstreamDepartment {
                        id: d.id,
                        name: d.name,
                        parent_id: d.parentid.unwrap_or(0),
                        order: d.order.unwrap_or(0),
                        leaders,
                    },
                );
            }
            emit(
                opts,
                FetchProgress::Advanced {
                    phase: Phase::Departments,
                    items: dir.departments.len() as u64,
                },
            );
        }
        Err(e) => {
            let err = ItemError::new(api::DEPARTMENT_LIST, "department tree".to_owned(), &e);
            record(opts, dir, Phase::Departments, err);
            return;
        }
    }

    let strategy = match opts.strategy {
        StrategyChoice::Force(s) => s,
        StrategyChoice::Auto => FetchStrategy::UserList,
    };
    let strategy = match strategy {
        FetchStrategy::UserList => {
            let ok = fetch_by_user_list(ctx, opts, dir).await;
            if ok || opts.strategy != StrategyChoice::Auto {
                FetchStrategy::UserList
            } else {
                tracing::info!(
                    "user/list is forbidden for this credential; using user/list_id + user/get"
                );
                fetch_by_list_id(ctx, opts, dir).await;
                FetchStrategy::ListIdThenGet
            }
        }
        FetchStrategy::ListIdThenGet => {
            fetch_by_list_id(ctx, opts, dir).await;
            FetchStrategy::ListIdThenGet
        }
    };
    dir.strategy = Some(strategy);

    // Scope users (listed directly or through a tag) outside every visible department.
    let missing: Vec<String> = extra_users
        .into_iter()
        .filter(|u| !dir.members.contains_key(u))
        .collect();
    fetch_users(ctx, opts, missing, dir).await;
}

/// Per-department `user/list`. Returns false (having changed nothing) when the first department answers
/// 48009/48002, so the caller can fall back to the other strategy.
async fn fetch_by_user_list(
    ctx: &Arc<Ctx>,
    opts: &FetchOptions,
    dir: &mut UpstreamDirectory,
) -> bool {
    let mut ids: Vec<i64> = dir.departments.keys().copied().collect();
    if ids.is_empty() {
        return true;
    }
    // Probe with the first department: the answer tells whether this credential may use user/list.
    let first = ids.remove(0);
    let probe = ctx.call(api::USER_LIST, || ctx.app.user_list(first)).await;
    if let Err(e) = &probe
        && is_forbidden(e)
        && opts.strategy == StrategyChoice::Auto
    {
        return false;
    }
    // One item per department.
    emit(
        opts,
        FetchProgress::Phase {
            phase: Phase::Members,
            total: Some(ids.len() as u64 + 1),
        },
    );
    let mut fold = |r: Result<(i64, Result<Vec<User>, ApiError>), String>| {
        match r {
            Ok((_, Ok(users))) => add_members(dir, users),
            Ok((id, Err(e))) => {
                let err = ItemError::new(api::USER_LIST, format!("department {id}"), &e);
                record(opts, dir, Phase::Members, err);
            }
            Err(join) => record(opts, dir, Phase::Members, task_failed(api::USER_LIST, join)),
        }
        emit(
            opts,
            FetchProgress::Advanced {
                phase: Phase::Members,
                items: 1,
            },
        );
    };
    fold(Ok((first, probe)));
    bounded(
        ids,
        opts.concurrency,
        |id| {
            let ctx = ctx.clone();
            async move {
                let r = ctx.call(api::USER_LIST, || ctx.app.user_list(id)).await;
                (id, r)
            }
        },
        fold,
    )
    .await;
    true
}

/// `user/list_id` pages (sequential: each needs the previous cursor), then `user/get` per member.
async fn fetch_by_list_id(ctx: &Arc<Ctx>, opts: &FetchOptions, dir: &mut UpstreamDirectory) {
    let mut userids: BTreeSet<String> = BTreeSet::new();
    let mut cursor: Option<String> = None;
    let mut page = 0u64;
    loop {
        page += 1;
        let c = cursor.clone();
        let r = ctx
            .call(api::USER_LIST_ID, || {
                ctx.app.user_list_id(c.as_deref(), opts.list_id_page)
            })
            .await;
        match r {
            Ok(p) => {
                userids.extend(p.dept_user.into_iter().filter_map(|r| r.userid));
                match p.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            Err(e) => {
                // Without the next cursor the rest of the list is unknown.
                let err = ItemError::new(api::USER_LIST_ID, format!("page {page}"), &e);
                record(opts, dir, Phase::Members, err);
                break;
            }
        }
    }
    // One item per member.
    emit(
        opts,
        FetchProgress::Phase {
            phase: Phase::Members,
            total: Some(userids.len() as u64),
        },
    );
    fetch_users(ctx, opts, userids.into_iter().collect(), dir).await;
}

async fn fetch_users(
    ctx: &Arc<Ctx>,
    opts: &FetchOptions,
    userids: Vec<String>,
    dir: &mut UpstreamDirectory,
) {
    bounded(
        userids,
        opts.concurrency,
        |userid| {
            let ctx = ctx.clone();
            async move {
                let r = ctx.call(api::USER_GET, || ctx.app.user_get(&userid)).await;
                (userid, r)
            }
        },
        |r| {
            match r {
                Ok((_, Ok(user))) => add_members(dir, vec![user]),
                Ok((userid, Err(e))) => {
                    let err = ItemError::new(api::USER_GET, format!("user {userid}"), &e);
                    record(opts, dir, Phase::Members, err);
                }
                Err(join) => record(opts, dir, Phase::Members, task_failed(api::USER_GET, join)),
            }
            emit(
                opts,
                FetchProgress::Advanced {
                    phase: Phase::Members,
                    items: 1,
                },
            );
        },
    )
    .await;
}

fn task_failed(api: &'static str, message: String) -> ItemError {
    tracing::error!(api, %message, "directory fetch task failed");
    ItemError {
        api,
        item: "task".to_owned(),
        errcode: None,
        code: "DM100".to_owned(),
    }
}

fn add_members(dir: &mut UpstreamDirectory, users: Vec<User>) {
    for u in users {
        // A member in several departments is listed once per department, identically.
        if !dir.members.contains_key(&u.userid) {
            let m = UpstreamMember::from_user(u);
            dir.members.insert(m.userid.clone(), m);
        }
    }
}

/// A field absent (or empty, or gender "0") for every member is withheld from this credential.
pub fn withheld_fields<'a>(
    members: impl Iterator<Item = &'a UpstreamMember> + Clone,
) -> BTreeSet<WithheldField> {
    let mut out = BTreeSet::new();
    if members.clone().next().is_none() {
        return out;
    }
    let mut all = members.clone();
    if all.all(|m| m.mobile.is_none()) {
        out.insert(WithheldField::Mobile);
    }
    if members.clone().all(|m| m.email.is_none()) {
        out.insert(WithheldField::Email);
    }
    if members.clone().all(|m| m.avatar.is_none()) {
        out.insert(WithheldField::Avatar);
    }
    if members
        .clone()
        .all(|m| matches!(m.gender, None | Some(Gender::Unspecified)))
    {
        out.insert(WithheldField::Gender);
    }
    out
}
