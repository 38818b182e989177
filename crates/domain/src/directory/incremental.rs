//! Apply ONE WeCom `change_contact` event to the local directory with the same rules as the full sync.
//!
//! The event is only a hint of what changed: member events carry only the changed fields (or, for contacts
//! callbacks set up after 2022-08-15, barely more than the userid), so the member or department is read
//! again authoritatively (`user/get`, `department/get`) and diffed by the full sync's own planner
//! ([`super::plan`]) against what the store holds for it, then written through the same conversion
//! ([`super::convert`]) as one [`store::DirectoryChanges`] batch. Re-reading makes the function idempotent
//! (a redelivered event plans nothing and writes no row) and makes events that arrive out of order converge
//! to upstream truth.
//!
//! Rules, as in the full sync:
//! - nothing is hard-deleted: a deleted member is marked left (memberships closed), a deleted department's
//!   role archived (its memberships closed);
//! - renames (`NewUserID`) move the WeCom link to the new userid and keep the same local user;
//! - fields upstream withholds never blank a value the bridge holds. With one member in hand, a field the
//!   answer lacks cannot be told apart from one the member cleared, so (as the full sync does when a field
//!   is absent for every member it read) it is treated as withheld: a real clearing of a mobile, email,
//!   avatar or gender is picked up by the next full sync, which sees other members' values;
//! - a department whose parent the bridge does not hold gets the parent chain read and created; a parent
//!   the credential may not read makes it top-level (as [`convert::detach_unknown_parents`] does);
//! - a membership in a department the credential cannot read is dropped (the full sync only sees visible
//!   departments).
//!
//! `user/get` answering 60111 (userid not found) means the member does not exist upstream: the full sync,
//! seeing a member absent from a complete fetch, marks it left; so does this function, for any member event
//! (the member may have been deleted after the event was sent). Any other failed read is an error and
//! writes nothing, so the caller can retry the event later; except for `delete_*` events, where the event
//! itself is WeCom's statement and the removal proceeds unless the re-read shows the object still exists.
//!
//! Tag membership (`update_tag`) re-reads that tag through [`super::tags::apply_tag_change`], the full tag
//! sync's own reconciliation (a failed read is DM008 and writes nothing).
//! The function takes no sync lease: one event is one small transaction, and a full sync running at the
//! same time re-reads everything anyway.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use wx_api::ApiError;
use wx_api::clock::Clock;
use wx_api::wecom::types::Department;
use wx_api::wecom::{WecomApp, api};
use wx_crypto::message::{ChangeType, ContactChange};

use super::budget::CallBudget;
use super::convert;
use super::plan::{PlanOptions, SyncPlan, plan};
use super::upstream::{
    UpstreamDepartment, UpstreamDirectory, UpstreamMember, VisibleScope, withheld_fields,
};
use crate::Db;
use crate::error::DomainError;

/// How an event is applied.
#[derive(Debug, Clone)]
pub struct IncrementalOptions {
    /// The corp's call budget shared with other work (the full sync, other events); none = unmetered.
    pub budget: Option<Arc<CallBudget>>,
    /// 45009 block windows waited out per call before the event fails (to be retried later). Default 1.
    pub max_rate_limit_waits: u32,
    /// How many ancestors of an unknown department are read at most. Default 32.
    pub max_parent_depth: usize,
}

impl Default for IncrementalOptions {
    fn default() -> Self {
        IncrementalOptions {
            budget: None,
            max_rate_limit_waits: 1,
            max_parent_depth: 32,
        }
    }
}

/// What the event amounted to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ChangeAction {
    /// The member was read and upserted (created, updated, or already current: see `applied`).
    Member {
        userid: String,
        /// The local user, when one exists after the event.
        user_id: Option<i64>,
        /// The previous userid when the event renamed it (`NewUserID`) and the link was moved.
        #[serde(skip_serializing_if = "Option::is_none")]
        renamed_from: Option<String>,
    },
    /// The member is gone upstream: marked left, memberships closed (or already so).
    MemberLeft {
        userid: String,
        user_id: Option<i64>,
    },
    /// The department was read and its role upserted (created, renamed, moved, reordered or current).
    Department { department_id: i64 },
    /// The department is gone upstream: its role archived, memberships closed (or already so).
    DepartmentArchived { department_id: i64 },
    /// The tag was re-read and its role mirrored, or archived when gone upstream. `tag_rows` is what the
    /// tag mirror wrote (department inclusions included); `applied` counts them as memberships.
    Tag {
        tagid: i64,
        archived: bool,
        tag_rows: store::TagApplyReport,
    },
    /// Nothing to do, and why (an event about something the bridge never held, or not handled here).
    Ignored { reason: String },
}

/// What applying one event did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncrementalOutcome {
    /// The event's ChangeType as sent.
    pub change_type: String,
    pub action: ChangeAction,
    /// The diff the planner made (empty for a redelivered event).
    pub plan: SyncPlan,
    /// Rows written (all zero when nothing changed).
    pub applied: store::ApplyReport,
    /// Upstream calls made.
    pub calls: u64,
    /// 45009 block windows waited out.
    pub rate_limit_waits: u64,
}

impl IncrementalOutcome {
    /// Whether any row was written.
    pub fn wrote(&self) -> bool {
        self.applied != store::ApplyReport::default()
    }
}

fn db_err(e: store::Error) -> DomainError {
    DomainError::Database(e.to_string())
}

fn bad_event(change_type: &str, message: impl Into<String>) -> DomainError {
    DomainError::ContactChange {
        change_type: change_type.to_owned(),
        message: message.into(),
    }
}

fn errcode(e: &ApiError) -> Option<i64> {
    e.errcode().map(|c| c.code())
}

/// `user/get`: the userid does not exist.
const USER_NOT_FOUND: i64 = 60111;
/// `department/get`: the department does not exist.
const DEPARTMENT_NOT_FOUND: i64 = 60123;

/// Everything one event needs: the app, the clock, the budget, counters, and what was loaded.
struct Ctx<'a> {
    db: &'a Db,
    tenant: &'a str,
    corpid: String,
    app: &'a WecomApp,
    clock: &'a dyn Clock,
    opts: &'a IncrementalOptions,
    change_type: String,
    calls: u64,
    waits: u64,
}

impl Ctx<'_> {
    /// One upstream call under the budget; a 45009 is waited out at most `max_rate_limit_waits` times.
    async fn call<T, F, Fut>(&mut self, api: &'static str, f: F) -> Result<T, ApiError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let mut waits = 0;
        loop {
            if let Some(b) = &self.opts.budget {
                b.acquire(api, self.clock).await;
            }
            self.calls += 1;
            match f().await {
                Err(e)
                    if (e.retry_after().is_some()
                        || e.errcode().is_some_and(|c| c.is_rate_limited()))
                        && waits < self.opts.max_rate_limit_waits =>
                {
                    waits += 1;
                    self.waits += 1;
                    let wait = self
                        .app
                        .blocked_for(api)
                        .or_else(|| e.retry_after())
                        .unwrap_or(Duration::from_secs(60));
                    self.clock.sleep(wait).await;
                }
                other => return other,
            }
        }
    }

    fn upstream_err(&self, api: &'static str, item: String, e: &ApiError) -> DomainError {
        DomainError::ContactRead {
            change_type: self.change_type.clone(),
            api,
            item,
            errcode: errcode(e),
            message: e.to_string(),
        }
    }

    async fn user_get(&mut self, userid: &str) -> Result<UpstreamMember, ApiError> {
        let app = self.app;
        self.call(api::USER_GET, || app.user_get(userid))
            .await
            .map(UpstreamMember::from_user)
    }

    async fn department_get(&mut self, id: i64) -> Result<UpstreamDepartment, ApiError> {
        let app = self.app;
        self.call(api::DEPARTMENT_GET, || app.department_get(id))
            .await
            .map(upstream_department)
    }

    /// The store's department (role) linked to WeCom `id`, if any.
    async fn stored_department(
        &self,
        id: i64,
    ) -> Result<Option<store::LocalDepartment>, DomainError> {
        Ok(self
            .db
            .role_by_department(self.tenant, &self.corpid, id)
            .await
            .map_err(db_err)?
            .map(|role| store::LocalDepartment {
                department_id: id,
                role,
            }))
    }

    /// The WeCom department a role mirrors in this corp.
    async fn department_of_role(&self, role: store::RoleId) -> Result<Option<i64>, DomainError> {
        Ok(self
            .db
            .department_of_role(self.tenant, role)
            .await
            .map_err(db_err)?
            .filter(|l| l.corpid == self.corpid)
            .map(|l| l.department_id))
    }

    /// The stored member linked to `userid` (case-insensitive), with its open memberships in this corp's
    /// departments, which are added to `local`.
    async fn stored_member(
        &self,
        userid: &str,
        local: &mut Local,
    ) -> Result<Option<store::LocalMember>, DomainError> {
        let Some(user) = self
            .db
            .user_by_wecom_userid(self.tenant, &self.corpid, userid)
            .await
            .map_err(db_err)?
        else {
            return Ok(None);
        };
        let norm = store::normalize_userid(userid);
        let link = self
            .db
            .wecom_links_of_user(self.tenant, user.id)
            .await
            .map_err(db_err)?
            .into_iter()
            .find(|l| l.corpid == self.corpid && store::normalize_userid(&l.userid) == norm);
        let Some(link) = link else {
            return Ok(None);
        };
        for r in self
            .db
            .user_roles(self.tenant, user.id)
            .await
            .map_err(db_err)?
        {
            if let Some(dept) = self.department_of_role(r.role.id).await? {
                local
                    .departments
                    .entry(dept)
                    .or_insert(store::LocalDepartment {
                        department_id: dept,
                        role: r.role,
                    });
                local.memberships.push(r.membership);
            }
        }
        Ok(Some(store::LocalMember {
            userid: link.userid,
            open_userid: link.open_userid,
            user,
        }))
    }

    /// Make every upstream department's parent known: held locally (loaded), read upstream (added, and
    /// its own parent in turn), or, when it cannot be read, left for `detach_unknown_parents`. Also loads
    /// the local parent of every upstream department the store holds, so the planner sees its current
    /// parent by WeCom id.
    async fn resolve_parents(
        &mut self,
        up: &mut UpstreamDirectory,
        local: &mut Local,
    ) -> Result<(), DomainError> {
        let mut unreadable: BTreeSet<i64> = BTreeSet::new();
        for _ in 0..self.opts.max_parent_depth.max(1) {
            let mut wanted: BTreeSet<i64> = BTreeSet::new();
            for d in up.departments.values() {
                if d.parent_id != 0 {
                    wanted.insert(d.parent_id);
                }
                // The current parent of a department the store holds, for the planner's comparison.
                if let Some(l) = local.departments.get(&d.id)
                    && let Some(p) = l.role.parent_id
                    && !local.departments.values().any(|x| x.role.id == p)
                    && let Some(pd) = self.department_of_role(p).await?
                    && let Some(sd) = self.stored_department(pd).await?
                {
                    local.departments.insert(pd, sd);
                }
            }
            let missing: Vec<i64> = wanted
                .into_iter()
                .filter(|p| {
                    !up.departments.contains_key(p)
                        && !local.departments.contains_key(p)
                        && !unreadable.contains(p)
                })
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            for p in missing {
                if let Some(sd) = self.stored_department(p).await? {
                    local.departments.insert(p, sd);
                    continue;
                }
                match self.department_get(p).await {
                    Ok(d) => {
                        up.departments.insert(p, d);
                    }
                    Err(e) => {
                        tracing::info!(
                            department = p,
                            errcode = errcode(&e),
                            "the parent department cannot be read; the child is attached at the top"
                        );
                        unreadable.insert(p);
                    }
                }
            }
        }
        Ok(())
    }
}

fn upstream_department(d: Department) -> UpstreamDepartment {
    let mut leaders = d.department_leader;
    leaders.sort();
    UpstreamDepartment {
        id: d.id,
        name: d.name,
        parent_id: d.parentid.unwrap_or(0),
        order: d.order.unwrap_or(0),
        leaders,
    }
}

/// The slice of the store one event touches, keyed for building a `store::LocalDirectory`.
#[derive(Default)]
struct Local {
    departments: BTreeMap<i64, store::LocalDepartment>,
    members: Vec<store::LocalMember>,
    memberships: Vec<store::Membership>,
}

impl Local {
    fn to_store(&self) -> store::LocalDirectory {
        store::LocalDirectory {
            departments: self.departments.values().cloned().collect(),
            members: self.members.clone(),
            memberships: self.memberships.clone(),
        }
    }
}

/// An upstream snapshot of just the items of one event. The scope is not the whole company and no
/// removal is planned from it: removals come only from delete events and "not found" answers.
fn slice(corpid: &str) -> UpstreamDirectory {
    UpstreamDirectory {
        corpid: corpid.to_owned(),
        departments: BTreeMap::new(),
        members: BTreeMap::new(),
        strategy: None,
        scope: VisibleScope::default(),
        withheld: BTreeSet::new(),
        errors: Vec::new(),
        calls: 0,
        rate_limit_waits: 0,
    }
}

/// Plan `up` against `local` with the full sync's planner, keep only creates and updates (a slice says
/// nothing about what it does not contain), and turn the plan into store changes.
fn plan_slice(up: &mut UpstreamDirectory, local: &Local) -> (SyncPlan, store::DirectoryChanges) {
    let local = convert::to_plan_local(&local.to_store());
    convert::detach_unknown_parents(up, &local);
    convert::drop_unstorable_main_departments(up);
    let mut p = plan(up, &local, PlanOptions::default());
    p.role_archives.clear();
    p.user_leaves.clear();
    p.counters.roles.removed = 0;
    p.counters.users.removed = 0;
    p.counters.memberships.removed = 0;
    p.removals_withheld = None;
    p.removals_skipped = 0;
    let changes = store::DirectoryChanges {
        renames: Vec::new(),
        departments: convert::department_changes(&p, up, &local),
        members: convert::member_changes(&p, up, &local),
        left_userids: Vec::new(),
        archived_departments: Vec::new(),
    };
    (p, changes)
}

/// Apply one `change_contact` event of `app`'s corp to `tenant`'s directory. See the module doc for the
/// rules. Fails with DM007 on a malformed event, DM008 when the authoritative read failed (nothing is
/// written: retry the event later), DM002 on a database error.
pub async fn apply_contact_change(
    db: &Db,
    tenant: &str,
    app: &WecomApp,
    clock: &dyn Clock,
    change: &ContactChange<'_>,
    opts: &IncrementalOptions,
) -> Result<IncrementalOutcome, DomainError> {
    let change_type = change.get("ChangeType").unwrap_or_default().to_owned();
    let mut ctx = Ctx {
        db,
        tenant,
        corpid: app.credentials().corpid.clone(),
        app,
        clock,
        opts,
        change_type: change_type.clone(),
        calls: 0,
        waits: 0,
    };
    let (action, plan, applied) = match change.change_type() {
        ChangeType::CreateUser | ChangeType::UpdateUser | ChangeType::DeleteUser => {
            let userid = change
                .user_id()
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .ok_or_else(|| bad_event(&change_type, "UserID is missing"))?;
            let new_userid = change
                .new_user_id()
                .map(str::trim)
                .filter(|u| !u.is_empty());
            let deleted = change.change_type() == ChangeType::DeleteUser;
            apply_member(&mut ctx, userid, new_userid, deleted).await?
        }
        ChangeType::CreateParty | ChangeType::UpdateParty | ChangeType::DeleteParty => {
            let id = change
                .party_id()
                .map_err(|e| bad_event(&change_type, e.to_string()))?
                .ok_or_else(|| bad_event(&change_type, "Id is missing"))?;
            let deleted = change.change_type() == ChangeType::DeleteParty;
            apply_department(&mut ctx, i64::from(id), deleted).await?
        }
        ChangeType::UpdateTag => {
            let tagid = change
                .tag_id()
                .map_err(|e| bad_event(&change_type, e.to_string()))?
                .ok_or_else(|| bad_event(&change_type, "TagId is missing"))?;
            let r = super::tags::apply_tag_event(db, tenant, app, clock, &change_type, tagid, opts)
                .await?;
            ctx.calls += r.calls;
            ctx.waits += r.rate_limit_waits;
            super::tags::tag_action(i64::from(tagid), r)
        }
        ChangeType::Other(t) => (
            ChangeAction::Ignored {
                reason: format!("unknown ChangeType {t:?}"),
            },
            SyncPlan::default(),
            store::ApplyReport::default(),
        ),
    };
    Ok(IncrementalOutcome {
        change_type,
        action,
        plan,
        applied,
        calls: ctx.calls,
        rate_limit_waits: ctx.waits,
    })
}

type Applied = (ChangeAction, SyncPlan, store::ApplyReport);

async fn write(
    ctx: &Ctx<'_>,
    changes: &store::DirectoryChanges,
) -> Result<store::ApplyReport, DomainError> {
    ctx.db
        .apply_directory_changes(ctx.tenant, &ctx.corpid, changes, ctx.clock.now_ms())
        .await
        .map_err(db_err)
}

async fn user_id_of(ctx: &Ctx<'_>, userid: &str) -> Result<Option<i64>, DomainError> {
    Ok(ctx
        .db
        .user_by_wecom_userid(ctx.tenant, &ctx.corpid, userid)
        .await
        .map_err(db_err)?
        .map(|u| u.id.get()))
}

/// A member event: `userid` as sent, `new_userid` when `NewUserID` renamed it.
async fn apply_member(
    ctx: &mut Ctx<'_>,
    userid: &str,
    new_userid: Option<&str>,
    deleted: bool,
) -> Result<Applied, DomainError> {
    let mut local = Local::default();
    let current = new_userid.unwrap_or(userid);
    let old = ctx.stored_member(userid, &mut local).await?;
    let mut renames = Vec::new();
    let mut renamed_from = None;
    let mut stale_old: Option<String> = None;
    let mut member = match new_userid {
        None => old,
        Some(new) => {
            let mut probe = Local::default();
            let existing_new = ctx.stored_member(new, &mut probe).await?;
            match (old, existing_new) {
                // The link still has the old userid: move it, keeping the user.
                (Some(mut m), None) => {
                    renames.push(store::UseridRename {
                        from: m.userid.clone(),
                        to: new.to_owned(),
                    });
                    renamed_from = Some(m.userid.clone());
                    m.userid = new.to_owned();
                    Some(m)
                }
                // Same link (a case-only rename, or a redelivery after the rename was applied).
                (Some(m), Some(n)) if m.user.id == n.user.id => {
                    if m.userid != new {
                        renames.push(store::UseridRename {
                            from: m.userid.clone(),
                            to: new.to_owned(),
                        });
                        renamed_from = Some(m.userid.clone());
                    }
                    let mut m = m;
                    m.userid = new.to_owned();
                    Some(m)
                }
                // Both userids are linked to different users (the new one was created from an event
                // that arrived before the rename): the two cannot be merged, so the new one is refreshed
                // and the old one is checked on its own below.
                (Some(m), Some(n)) => {
                    stale_old = Some(m.userid.clone());
                    local = probe;
                    Some(n)
                }
                (None, n) => {
                    local = probe;
                    n
                }
            }
        }
    };

    let read = ctx.user_get(current).await;
    let mut up = slice(&ctx.corpid);
    let mut left: Vec<String> = Vec::new();
    let action;
    match read {
        Ok(m) => {
            if let Some(l) = member.as_mut()
                && store::normalize_userid(&l.userid) == store::normalize_userid(&m.userid)
            {
                // Key both sides by upstream's spelling so the planner pairs them.
                l.userid = m.userid.clone();
            }
            up.withheld = withheld_fields(std::iter::once(&m));
            // Memberships in departments the bridge does not hold: read them (and their parents), or
            // drop the membership when the credential cannot.
            let unknown: Vec<i64> = m
                .memberships
                .iter()
                .map(|x| x.department_id)
                .filter(|d| !local.departments.contains_key(d))
                .collect();
            let mut unreadable = BTreeSet::new();
            for d in unknown {
                if let Some(sd) = ctx.stored_department(d).await? {
                    local.departments.insert(d, sd);
                    continue;
                }
                match ctx.department_get(d).await {
                    Ok(ud) => {
                        up.departments.insert(d, ud);
                    }
                    Err(e) => {
                        tracing::info!(
                            department = d,
                            errcode = errcode(&e),
                            "a membership in a department the credential cannot read is dropped"
                        );
                        unreadable.insert(d);
                    }
                }
            }
            let mut m = m;
            m.memberships
                .retain(|x| !unreadable.contains(&x.department_id));
            ctx.resolve_parents(&mut up, &mut local).await?;
            action = ChangeAction::Member {
                userid: m.userid.clone(),
                user_id: None,
                renamed_from: renamed_from.clone(),
            };
            up.members.insert(m.userid.clone(), m);
        }
        Err(e) if errcode(&e) == Some(USER_NOT_FOUND) || deleted => {
            if !deleted || errcode(&e) != Some(USER_NOT_FOUND) {
                tracing::info!(
                    userid = current,
                    errcode = errcode(&e),
                    "user/get failed for a deleted member; the event stands"
                );
            }
            match &member {
                Some(m) => left.push(m.userid.clone()),
                None if renames.is_empty() => {
                    return Ok((
                        ChangeAction::Ignored {
                            reason: format!(
                                "member {current} does not exist upstream and the bridge never held it"
                            ),
                        },
                        SyncPlan::default(),
                        store::ApplyReport::default(),
                    ));
                }
                None => {}
            }
            action = ChangeAction::MemberLeft {
                userid: current.to_owned(),
                user_id: None,
            };
        }
        Err(e) => return Err(ctx.upstream_err(api::USER_GET, format!("user {current}"), &e)),
    }
    if let Some(old) = &stale_old {
        match ctx.user_get(old).await {
            Err(e) if errcode(&e) == Some(USER_NOT_FOUND) => left.push(old.clone()),
            Err(e) => return Err(ctx.upstream_err(api::USER_GET, format!("user {old}"), &e)),
            // Still there upstream: a later event about it refreshes it.
            Ok(_) => {}
        }
    }

    if let Some(m) = member {
        local.members.push(m);
    }
    let (p, mut changes) = plan_slice(&mut up, &local);
    changes.renames = renames;
    // Already left with no open membership: marking again writes nothing, but skip the batch anyway.
    changes.left_userids = left;
    let applied = write(ctx, &changes).await?;
    let action = match action {
        ChangeAction::Member {
            userid,
            renamed_from,
            ..
        } => ChangeAction::Member {
            user_id: user_id_of(ctx, &userid).await?,
            userid,
            renamed_from,
        },
        ChangeAction::MemberLeft { userid, .. } => ChangeAction::MemberLeft {
            user_id: user_id_of(ctx, &userid).await?,
            userid,
        },
        other => other,
    };
    Ok((action, p, applied))
}

/// A department event.
async fn apply_department(
    ctx: &mut Ctx<'_>,
    id: i64,
    deleted: bool,
) -> Result<Applied, DomainError> {
    let mut local = Local::default();
    let stored = ctx.stored_department(id).await?;
    if let Some(sd) = &stored {
        local.departments.insert(id, sd.clone());
    }
    match ctx.department_get(id).await {
        Ok(d) => {
            let mut up = slice(&ctx.corpid);
            up.departments.insert(id, d);
            ctx.resolve_parents(&mut up, &mut local).await?;
            let (p, changes) = plan_slice(&mut up, &local);
            let applied = write(ctx, &changes).await?;
            Ok((ChangeAction::Department { department_id: id }, p, applied))
        }
        Err(e) if errcode(&e) == Some(DEPARTMENT_NOT_FOUND) || deleted => {
            if stored.is_none() {
                return Ok((
                    ChangeAction::Ignored {
                        reason: format!(
                            "department {id} does not exist upstream and the bridge never held it"
                        ),
                    },
                    SyncPlan::default(),
                    store::ApplyReport::default(),
                ));
            }
            let changes = store::DirectoryChanges {
                archived_departments: vec![id],
                ..store::DirectoryChanges::default()
            };
            let applied = write(ctx, &changes).await?;
            Ok((
                ChangeAction::DepartmentArchived { department_id: id },
                SyncPlan::default(),
                applied,
            ))
        }
        Err(e) => Err(ctx.upstream_err(api::DEPARTMENT_GET, format!("department {id}"), &e)),
    }
}
