//! WeCom tags mirrored into local roles: each tag becomes a role with origin `wecom_tag` (top-level, linked
//! by corp and tagid), the tag's users become memberships of that role (no leader, no main flag), and the
//! tag's departments become inclusions of the departments' roles, so the tag role's members "with
//! sub-roles" ([`store::Db::role_members_expanded`]) are its users plus everyone in those departments.
//!
//! Rules, as for departments and members:
//! - the full run ([`sync_tags`]) reads `tag/list`, then `tag/get` for every listed tag; a tag gone from a
//!   successful `tag/list` is archived (its memberships and inclusions closed), never deleted;
//! - a `tag/get` that fails (an app may list a tag it may not read, or the call failed) removes nothing
//!   for that tag: only its name is updated; a failed `tag/list` writes nothing at all;
//! - members the bridge has no user for (outside what the directory sync sees) and departments it has no
//!   role for are skipped and reported, never invented;
//! - only differences are written, so a run with no upstream change writes no row; a dry run computes the
//!   same report in a transaction that is rolled back.
//!
//! The incremental path ([`apply_tag_change`], for an `update_tag` event) re-reads that one tag with
//! `tag/get` and goes through the same reconciliation, so it is idempotent and converges to upstream
//! whatever the event said. Calls go through the corp's [`CallBudget`]; a 45009 block window is waited
//! out on the clock and the call retried.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use wx_api::ApiError;
use wx_api::clock::Clock;
use wx_api::wecom::types::TagMembers;
use wx_api::wecom::{WecomApp, api};

use super::budget::CallBudget;
use super::incremental::{ChangeAction, IncrementalOptions};
use super::plan::SyncPlan;
use super::upstream::ItemError;
use crate::Db;
use crate::error::DomainError;

/// `tag/get`: the tagid does not exist.
const INVALID_TAGID: i64 = 40068;

/// How tags are read.
#[derive(Debug, Clone)]
pub struct TagSyncOptions {
    /// The corp's call budget shared with other work (the full sync, events); `None` = unmetered.
    pub budget: Option<Arc<CallBudget>>,
    /// 45009 block windows waited out per call before it counts as failed. Default 5.
    pub max_rate_limit_waits: u32,
}

impl TagSyncOptions {
    /// The options a full sync run uses for its tags: the fetch's shared budget (or one of the same
    /// size) and its block-window limit.
    pub fn for_fetch(fetch: &super::upstream::FetchOptions) -> Self {
        TagSyncOptions {
            budget: Some(fetch.budget.clone().unwrap_or_else(|| {
                Arc::new(
                    CallBudget::new(fetch.calls_per_minute, fetch.burst)
                        .with_hourly(fetch.calls_per_hour),
                )
            })),
            max_rate_limit_waits: fetch.max_rate_limit_waits,
        }
    }
}

impl Default for TagSyncOptions {
    fn default() -> Self {
        TagSyncOptions {
            budget: None,
            max_rate_limit_waits: 5,
        }
    }
}

/// What a tag sync (full or one tag) did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagSyncReport {
    pub dry_run: bool,
    /// Tags upstream knows of: listed by `tag/list` (full run) or the one tag of an event.
    pub tags_seen: usize,
    /// Tags whose members and departments were read (`tag/get` answered).
    pub tags_read: usize,
    /// Tags archived because they are gone upstream (or, in a dry run, that would be).
    pub archived_tagids: Vec<i64>,
    /// Rows written (a dry run: rows that would be). All zero when nothing changed.
    pub applied: store::TagApplyReport,
    /// Failed reads; nothing was removed for what they cover.
    pub errors: Vec<ItemError>,
    /// Upstream calls made.
    pub calls: u64,
    /// 45009 block windows waited out.
    pub rate_limit_waits: u64,
}

impl TagSyncReport {
    fn new(dry_run: bool) -> Self {
        TagSyncReport {
            dry_run,
            tags_seen: 0,
            tags_read: 0,
            archived_tagids: Vec::new(),
            applied: store::TagApplyReport::default(),
            errors: Vec::new(),
            calls: 0,
            rate_limit_waits: 0,
        }
    }

    /// Every read succeeded.
    pub fn is_complete(&self) -> bool {
        self.errors.is_empty()
    }

    /// Whether any row was written (never for a dry run).
    pub fn wrote(&self) -> bool {
        !self.dry_run && self.applied.rows_written() > 0
    }
}

fn db_err(e: store::Error) -> DomainError {
    DomainError::Database(e.to_string())
}

fn item_error(api: &'static str, item: String, e: &ApiError) -> ItemError {
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

/// Upstream reads under the budget, counting calls and block-window waits.
struct Reader<'a> {
    app: &'a WecomApp,
    clock: &'a dyn Clock,
    opts: &'a TagSyncOptions,
    calls: u64,
    waits: u64,
}

impl Reader<'_> {
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

    async fn tag_get(&mut self, tagid: i64) -> Result<TagMembers, ApiError> {
        let app = self.app;
        self.call(api::TAG_GET, || app.tag_get(tagid)).await
    }

    /// `tag/list` as (tagid, name), sorted by tagid, each once.
    async fn tag_list(&mut self) -> Result<Vec<(i64, String)>, ApiError> {
        let app = self.app;
        let mut tags: Vec<(i64, String)> = self
            .call(api::TAG_LIST, || app.tag_list())
            .await?
            .into_iter()
            .map(|t| (t.tagid, t.tagname))
            .collect();
        tags.sort_by_key(|t| t.0);
        tags.dedup_by_key(|t| t.0);
        Ok(tags)
    }
}

/// What one tag should be, from its `tag/get` answer: exactly these users and departments.
fn upsert_from(tagid: i64, listed_name: Option<String>, t: TagMembers) -> store::TagUpsert {
    let mut userids: Vec<String> = t.userlist.into_iter().map(|u| u.userid).collect();
    userids.sort();
    userids.dedup();
    let mut department_ids = t.partylist;
    department_ids.sort_unstable();
    department_ids.dedup();
    store::TagUpsert {
        tagid,
        name: t.tagname.or(listed_name).filter(|n| !n.trim().is_empty()),
        userids: Some(userids),
        department_ids: Some(department_ids),
    }
}

/// Write (or preview) one batch and put what it did in the report.
async fn reconcile(
    db: &Db,
    tenant: &str,
    corpid: &str,
    clock: &dyn Clock,
    changes: &store::TagChanges,
    report: &mut TagSyncReport,
) -> Result<(), DomainError> {
    let now = clock.now_ms();
    report.applied = if report.dry_run {
        db.preview_tag_changes(tenant, corpid, changes, now).await
    } else {
        db.apply_tag_changes(tenant, corpid, changes, now).await
    }
    .map_err(db_err)?;
    report.archived_tagids = changes.archived_tagids.clone();
    Ok(())
}

/// Mirror every tag `app` can list into `tenant`'s tag roles (see the module doc for the rules). Members
/// and departments are matched to what the directory sync already stored, so run it after that sync.
/// Never fails for an upstream error: failed reads are in the report and remove nothing.
pub async fn sync_tags(
    db: &Db,
    tenant: &str,
    app: &WecomApp,
    clock: &dyn Clock,
    opts: &TagSyncOptions,
    dry_run: bool,
) -> Result<TagSyncReport, DomainError> {
    let corpid = app.credentials().corpid.clone();
    let mut report = TagSyncReport::new(dry_run);
    let mut reader = Reader {
        app,
        clock,
        opts,
        calls: 0,
        waits: 0,
    };
    let listed = reader.tag_list().await;
    let mut changes = store::TagChanges::default();
    match listed {
        Ok(listed) => {
            report.tags_seen = listed.len();
            let ids: BTreeSet<i64> = listed.iter().map(|t| t.0).collect();
            for (tagid, name) in listed {
                let name = Some(name).filter(|n| !n.trim().is_empty());
                match reader.tag_get(tagid).await {
                    Ok(t) => {
                        report.tags_read += 1;
                        changes.tags.push(upsert_from(tagid, name, t));
                    }
                    Err(e) => {
                        // Listed but unreadable: keep what is stored, only follow a rename.
                        report
                            .errors
                            .push(item_error(api::TAG_GET, format!("tag {tagid}"), &e));
                        changes.tags.push(store::TagUpsert {
                            tagid,
                            name,
                            userids: None,
                            department_ids: None,
                        });
                    }
                }
            }
            // Gone from a complete list: archive (already archived ones are left alone).
            changes.archived_tagids = db
                .load_tags(tenant, &corpid)
                .await
                .map_err(db_err)?
                .into_iter()
                .filter(|t| t.role.archived_at_ms.is_none() && !ids.contains(&t.tagid))
                .map(|t| t.tagid)
                .collect();
            reconcile(db, tenant, &corpid, clock, &changes, &mut report).await?;
        }
        Err(e) => {
            // Without the list nothing can be told gone: write nothing.
            report
                .errors
                .push(item_error(api::TAG_LIST, "tag list".to_owned(), &e));
        }
    }
    report.calls = reader.calls;
    report.rate_limit_waits = reader.waits;
    Ok(report)
}

/// Re-read one tag (after an `update_tag` event) and mirror it exactly as [`sync_tags`] does. Idempotent:
/// a replayed event writes nothing. A tag `tag/get` calls invalid (40068) is archived once `tag/list`
/// confirms it is gone. A failed read writes nothing and is in the report's `errors`, so the event can be
/// applied again later.
pub async fn apply_tag_change(
    db: &Db,
    tenant: &str,
    app: &WecomApp,
    clock: &dyn Clock,
    tagid: i64,
    opts: &TagSyncOptions,
    dry_run: bool,
) -> Result<TagSyncReport, DomainError> {
    let corpid = app.credentials().corpid.clone();
    let mut report = TagSyncReport::new(dry_run);
    let mut reader = Reader {
        app,
        clock,
        opts,
        calls: 0,
        waits: 0,
    };
    let mut changes = store::TagChanges::default();
    match reader.tag_get(tagid).await {
        Ok(t) => {
            report.tags_seen = 1;
            report.tags_read = 1;
            changes.tags.push(upsert_from(tagid, None, t));
        }
        Err(e) if e.errcode().map(|c| c.code()) == Some(INVALID_TAGID) => {
            match reader.tag_list().await {
                Ok(listed) if listed.iter().all(|t| t.0 != tagid) => {
                    let held = db
                        .role_by_tag(tenant, &corpid, tagid)
                        .await
                        .map_err(db_err)?
                        .is_some_and(|r| r.archived_at_ms.is_none());
                    if held {
                        changes.archived_tagids.push(tagid);
                    }
                }
                Ok(_) => report
                    .errors
                    .push(item_error(api::TAG_GET, format!("tag {tagid}"), &e)),
                Err(le) => {
                    report
                        .errors
                        .push(item_error(api::TAG_LIST, "tag list".to_owned(), &le))
                }
            }
        }
        Err(e) => report
            .errors
            .push(item_error(api::TAG_GET, format!("tag {tagid}"), &e)),
    }
    if report.errors.is_empty() {
        reconcile(db, tenant, &corpid, clock, &changes, &mut report).await?;
    }
    report.calls = reader.calls;
    report.rate_limit_waits = reader.waits;
    Ok(report)
}

/// The `update_tag` arm of [`super::incremental::apply_contact_change`]: [`apply_tag_change`] under the
/// event's budget; a failed read is DM008 (nothing written) so the event can be applied again later.
pub(crate) async fn apply_tag_event(
    db: &Db,
    tenant: &str,
    app: &WecomApp,
    clock: &dyn Clock,
    change_type: &str,
    tagid: u32,
    opts: &IncrementalOptions,
) -> Result<TagSyncReport, DomainError> {
    let tag_opts = TagSyncOptions {
        budget: opts.budget.clone(),
        max_rate_limit_waits: opts.max_rate_limit_waits,
    };
    let r = apply_tag_change(db, tenant, app, clock, i64::from(tagid), &tag_opts, false).await?;
    match r.errors.first() {
        Some(e) => Err(DomainError::ContactRead {
            change_type: change_type.to_owned(),
            api: e.api,
            item: e.item.clone(),
            errcode: e.errcode,
            message: e.reason(),
        }),
        None => Ok(r),
    }
}

/// An applied tag event as the incremental outcome reports it: the tag's rows in the action, and in the
/// directory report (a department joining or leaving the tag counts as a membership opened or closed).
pub(crate) fn tag_action(
    tagid: i64,
    r: TagSyncReport,
) -> (ChangeAction, SyncPlan, store::ApplyReport) {
    let a = &r.applied;
    let applied = store::ApplyReport {
        roles_created: a.roles_created,
        roles_updated: a.roles_updated,
        roles_archived: a.roles_archived,
        memberships_opened: a.memberships_opened + a.inclusions_opened,
        memberships_closed: a.memberships_closed + a.inclusions_closed,
        ..store::ApplyReport::default()
    };
    let action = ChangeAction::Tag {
        tagid,
        archived: !r.archived_tagids.is_empty(),
        tag_rows: r.applied,
    };
    (action, SyncPlan::default(), applied)
}
