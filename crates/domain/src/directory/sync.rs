//! One full directory sync run of a corp into a tenant: take the corp's sync lease, record the run, fetch
//! upstream (fetch progress bridged into the run's progress events), plan against what the store holds, and
//! apply the plan in self-contained chunks so a run killed midway leaves whole chunks only and the next
//! run's diff picks up the rest. A dry run records the run and its events but writes no directory rows.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use wx_api::clock::Clock;
use wx_api::wecom::WecomApp;

use super::convert;
use super::plan::{PlanOptions, SyncPlan, plan};
use super::upstream::{
    FetchObserver, FetchOptions, FetchProgress, FetchStrategy, VisibleScope, fetch_directory,
};
use crate::Db;
use crate::error::DomainError;
use crate::progress::{
    DbProgressLog, EntityCounters, Phase, ProgressError, ProgressHub, ProgressTracker, SyncKind,
    SyncRunId, SyncStatus, TrackerConfig,
};

/// How a run behaves.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Plan and report, write no directory rows (the run record and its events are still written).
    pub dry_run: bool,
    /// The removal guard and its override.
    pub plan: PlanOptions,
    /// Fetch tuning (its `progress` is replaced by the run's own bridge).
    pub fetch: FetchOptions,
    /// Members per transaction. Default 2,000.
    pub chunk_size: usize,
    /// Live fan-out of the run's events; persisted events are written either way.
    pub hub: Option<ProgressHub>,
    /// How long the lease holds without renewal. Default 5 minutes; renewed on a timer while the run lasts.
    pub lease_ttl: Duration,
    /// Test hook simulating a killed run: stop after this many applied chunks (the run ends `failed`).
    pub stop_after_chunks: Option<usize>,
    /// Told the run's id as soon as the run is recorded, before any work: a caller running the sync in the
    /// background (the HTTP API) answers with the id at once.
    pub run_created: Option<mpsc::UnboundedSender<SyncRunId>>,
    /// The tenant's business webhook: when set, the run's end is queued as `sync.finished`
    /// ([`crate::webhooks`]), whoever started it.
    pub webhook: Option<wxbridge_config::WebhookConfig>,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            dry_run: false,
            plan: PlanOptions::default(),
            fetch: FetchOptions::default(),
            chunk_size: 2_000,
            hub: None,
            lease_ttl: Duration::from_secs(300),
            stop_after_chunks: None,
            run_created: None,
            webhook: None,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncOutcome {
    pub run_id: SyncRunId,
    pub status: SyncStatus,
    pub dry_run: bool,
    /// The full diff (what was written, or with `dry_run` what would be).
    pub plan: SyncPlan,
    pub counters: store::SyncCounters,
    /// Rows actually written (all zero for a dry run or a no-change run).
    pub applied: store::ApplyReport,
    pub chunks_applied: usize,
    /// Why removals were held back (partial, refused) or why the run stopped.
    pub reason: Option<String>,
    /// Upstream calls made by the fetch.
    pub calls: u64,
    /// How members were read, and what the credential may see.
    pub strategy: Option<FetchStrategy>,
    pub scope: VisibleScope,
    /// 45009 block windows waited out during the fetch.
    pub rate_limit_waits: u64,
    /// The tag mirror's pass ([`super::tags::sync_tags`]), run at the end of a succeeded run only.
    pub tags: Option<super::tags::TagSyncReport>,
    /// The fetch's failed items, as reasons (why a partial run removed nothing).
    pub errors: Vec<String>,
}

/// Distinguishes lease holders within one process; the process id separates processes.
static HOLDER_SEQ: AtomicU64 = AtomicU64::new(0);

fn holder_name() -> String {
    format!(
        "sync-{}-{}",
        std::process::id(),
        HOLDER_SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

fn db_err(e: store::Error) -> DomainError {
    DomainError::Database(e.to_string())
}

/// Run one full sync of `app`'s corp into `tenant`. Refuses with [`DomainError::SyncRunning`] when another
/// run holds the corp's lease. The lease is released at the end, also when the run fails.
pub async fn run_full_sync(
    db: &Db,
    tenant: &str,
    app: &WecomApp,
    clock: Arc<dyn Clock>,
    opts: SyncOptions,
) -> Result<SyncOutcome, DomainError> {
    let corpid = app.credentials().corpid.clone();
    let holder = holder_name();
    let taken = db
        .try_sync_lease(tenant, &corpid, &holder, clock.now_ms(), opts.lease_ttl)
        .await
        .map_err(db_err)?;
    if !taken {
        let run = db
            .recent_sync_runs(tenant, Some(&corpid), 10)
            .await
            .map_err(db_err)?
            .into_iter()
            .find(|r| r.status == SyncStatus::Running)
            .map(|r| r.id);
        return Err(DomainError::SyncRunning { corpid, run });
    }
    let result = run_holding_lease(db, tenant, app, &clock, &opts, &corpid, &holder).await;
    // Released whatever happened; a failure to release only delays the next run until the TTL.
    if let Err(e) = db.release_sync_lease(tenant, &corpid, &holder).await {
        tracing::warn!(tenant, corpid = %corpid, error = %e, "sync lease release failed");
    }
    result
}

/// What the run needs at each step.
struct Run<'a> {
    db: &'a Db,
    tenant: &'a str,
    corpid: &'a str,
    holder: &'a str,
    clock: &'a Arc<dyn Clock>,
    ttl: Duration,
    id: SyncRunId,
}

impl Run<'_> {
    fn fail(&self, what: &'static str, message: impl ToString) -> DomainError {
        DomainError::Sync {
            run: self.id,
            what,
            message: message.to_string(),
        }
    }

    fn progress(&self, e: ProgressError) -> DomainError {
        self.fail("progress", e)
    }

    /// Renews the lease once a third of its TTL has passed on the run's clock, checking on a real-time
    /// tick for as long as it is polled (a tick on the injected clock would move a simulated clock).
    /// Returns only when the lease is lost, or could not be renewed for a whole TTL.
    async fn keep_lease(&self) -> DomainError {
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        let every_ms = (ttl_ms / 3).max(1);
        let tick = (self.ttl / 6).clamp(Duration::from_millis(20), Duration::from_secs(5));
        let mut renewed_at = self.clock.now_ms();
        loop {
            tokio::time::sleep(tick).await;
            let now = self.clock.now_ms();
            if now - renewed_at < every_ms {
                continue;
            }
            match self.renew().await {
                Ok(()) => renewed_at = now,
                Err(e @ DomainError::SyncLeaseLost { .. }) => return e,
                Err(e) if now - renewed_at >= ttl_ms => return e,
                Err(e) => {
                    tracing::warn!(run = %self.id, error = %e, "sync lease renewal failed; retrying");
                }
            }
        }
    }

    async fn renew(&self) -> Result<(), DomainError> {
        let held = self
            .db
            .renew_sync_lease(
                self.tenant,
                self.corpid,
                self.holder,
                self.clock.now_ms(),
                self.ttl,
            )
            .await
            .map_err(|e| self.fail("lease renewal", e))?;
        if held {
            Ok(())
        } else {
            Err(DomainError::SyncLeaseLost {
                corpid: self.corpid.to_owned(),
                run: self.id,
            })
        }
    }
}

async fn run_holding_lease(
    db: &Db,
    tenant: &str,
    app: &WecomApp,
    clock: &Arc<dyn Clock>,
    opts: &SyncOptions,
    corpid: &str,
    holder: &str,
) -> Result<SyncOutcome, DomainError> {
    let record = db
        .create_sync_run(
            tenant,
            &store::NewSyncRun {
                corpid: corpid.to_owned(),
                kind: SyncKind::Full,
                dry_run: opts.dry_run,
                started_at_ms: clock.now_ms(),
            },
        )
        .await
        .map_err(db_err)?;
    if let Some(tx) = &opts.run_created {
        // Nobody listening any more is fine: the run goes on.
        let _ = tx.send(record.id);
    }
    let run = Run {
        db,
        tenant,
        corpid,
        holder,
        clock,
        ttl: opts.lease_ttl,
        id: record.id,
    };
    let mut tracker = ProgressTracker::new(
        run.id,
        clock.clone(),
        Arc::new(DbProgressLog::new(db.clone(), tenant)),
        opts.hub.clone(),
        TrackerConfig::default(),
    );
    let mut counters = store::SyncCounters::default();
    // The work runs beside a timer that keeps the lease; losing the lease ends the work at its next await
    // (an apply transaction cut short rolls back, so only whole chunks are ever written).
    let result = {
        let work = steps(&run, app, opts, &mut tracker, &mut counters);
        tokio::pin!(work);
        tokio::select! {
            biased;
            r = &mut work => r,
            e = run.keep_lease() => Err(e),
        }
    };
    match result {
        Ok(outcome) => {
            let data = serde_json::json!({
                "run_id": run.id.get(),
                "corpid": corpid,
                "status": outcome.status,
                "dry_run": outcome.dry_run,
                "counters": outcome.counters,
                "applied": outcome.applied,
                "reason": outcome.reason,
                "errors": outcome.errors.iter().take(MAX_WEBHOOK_ERRORS).collect::<Vec<_>>(),
                "error_count": outcome.errors.len(),
                "calls": outcome.calls,
            });
            announce(db, tenant, opts, run.id, data, clock.now_ms()).await;
            Ok(outcome)
        }
        Err(e) => {
            // Record the failure; the original error is what the caller needs to see.
            let message = e.to_string();
            let now = clock.now_ms();
            if let Err(fe) = db
                .finish_sync_run(
                    tenant,
                    run.id,
                    SyncStatus::Failed,
                    &counters,
                    Some(&message),
                    now,
                )
                .await
            {
                tracing::warn!(run = %run.id, error = %fe, "recording the failed sync run failed");
            }
            let data = serde_json::json!({
                "run_id": run.id.get(),
                "corpid": corpid,
                "status": SyncStatus::Failed,
                "dry_run": opts.dry_run,
                "counters": counters,
                "reason": message,
                "errors": [message],
                "error_count": 1,
            });
            if let Err(fe) = tracker.finish(SyncStatus::Failed, Some(message)).await {
                tracing::warn!(run = %run.id, error = %fe, "the failed run's last event was not recorded");
            }
            announce(db, tenant, opts, run.id, data, now).await;
            Err(e)
        }
    }
}

/// At most this many item errors are named in a `sync.finished` event (`error_count` has them all).
const MAX_WEBHOOK_ERRORS: usize = 50;

/// Queue `sync.finished` for the run (id `sync.finished:<run id>`, so announcing twice stores one). The
/// run is recorded either way: a failure to queue is logged, not returned.
async fn announce(
    db: &Db,
    tenant: &str,
    opts: &SyncOptions,
    run: SyncRunId,
    data: serde_json::Value,
    now_ms: i64,
) {
    let event = crate::webhooks::WebhookEvent::new(
        format!("sync.finished:{}", run.get()),
        "sync.finished",
        data,
    );
    if let Err(e) =
        crate::webhooks::enqueue_to(db, tenant, opts.webhook.as_ref(), &event, now_ms).await
    {
        tracing::warn!(run = %run, error = %e, "sync.finished webhook not queued");
    }
}

fn users_delta(c: super::plan::Counts) -> EntityCounters {
    let n = |x: usize| u64::try_from(x).unwrap_or(u64::MAX);
    EntityCounters {
        created: n(c.created),
        updated: n(c.updated),
        removed: n(c.removed),
        unchanged: n(c.unchanged),
    }
}

fn add_report(total: &mut store::ApplyReport, r: &store::ApplyReport) {
    total.users_created += r.users_created;
    total.users_updated += r.users_updated;
    total.users_left += r.users_left;
    total.userids_renamed += r.userids_renamed;
    total.roles_created += r.roles_created;
    total.roles_updated += r.roles_updated;
    total.roles_archived += r.roles_archived;
    total.memberships_opened += r.memberships_opened;
    total.memberships_updated += r.memberships_updated;
    total.memberships_closed += r.memberships_closed;
}

async fn steps(
    run: &Run<'_>,
    app: &WecomApp,
    opts: &SyncOptions,
    tracker: &mut ProgressTracker,
    counters: &mut store::SyncCounters,
) -> Result<SyncOutcome, DomainError> {
    tracker
        .start(SyncKind::Full, opts.dry_run)
        .await
        .map_err(|e| run.progress(e))?;

    let t = std::time::Instant::now();
    let stored = run
        .db
        .load_directory(run.tenant, run.corpid)
        .await
        .map_err(|e| run.fail("loading the local directory", e))?;
    let local = convert::into_plan_local(stored);
    tracing::debug!(run = %run.id, ms = t.elapsed().as_millis() as u64, "sync: local directory loaded");

    let t = std::time::Instant::now();
    let mut upstream = fetch_with_progress(run, app, opts, tracker).await?;
    tracing::debug!(run = %run.id, ms = t.elapsed().as_millis() as u64, calls = upstream.calls, "sync: fetched");
    run.renew().await?;
    convert::detach_unknown_parents(&mut upstream, &local);
    convert::drop_unstorable_main_departments(&mut upstream);

    let total_items = upstream.departments.len() + upstream.members.len();
    tracker
        .start_phase(Phase::Diff, Some(total_items as u64))
        .await
        .map_err(|e| run.progress(e))?;
    let t = std::time::Instant::now();
    let p = plan(&upstream, &local, opts.plan);
    tracing::debug!(run = %run.id, ms = t.elapsed().as_millis() as u64, "sync: planned");
    *counters = convert::counters(&p);
    tracker
        .advance(total_items as u64, users_delta(p.counters.users))
        .await
        .map_err(|e| run.progress(e))?;
    let reason = p.removals_withheld.as_ref().map(|w| w.reason());
    let status = if p.is_partial() {
        SyncStatus::Partial
    } else if p.is_refused() {
        SyncStatus::Refused
    } else {
        SyncStatus::Succeeded
    };

    let mut applied = store::ApplyReport::default();
    let mut chunks_applied = 0;
    let mut stopped = None;
    if !opts.dry_run && !p.is_empty() {
        let departments = convert::department_changes(&p, &upstream, &local);
        // Member writes are built chunk by chunk (an update whose local member vanished is skipped, so
        // the plan's counts are an upper bound; the last chunk is the one after which nothing is left).
        let mut rest = convert::member_changes_iter(&p, &upstream, &local).peekable();
        let member_count = p.user_creates.len() + p.user_updates.len();
        let chunk_size = opts.chunk_size.max(1);
        let member_chunks = member_count.div_ceil(chunk_size).max(1);
        let total = departments.len() + member_count + p.user_leaves.len() + p.role_archives.len();
        tracker
            .start_phase(Phase::Apply, Some(total as u64))
            .await
            .map_err(|e| run.progress(e))?;
        // Chunk 1 carries every department (members reference them); the last carries the removals, which
        // come after all members so a member moving out of an archived department is written first.
        let mut departments = Some(departments);
        for _ in 0..member_chunks {
            if opts.stop_after_chunks.is_some_and(|n| chunks_applied >= n) {
                stopped = Some(format!(
                    "stopped after {chunks_applied} of {member_chunks} chunks (test hook)"
                ));
                break;
            }
            let members: Vec<store::MemberUpsert> = rest.by_ref().take(chunk_size).collect();
            let last = rest.peek().is_none();
            let changes = store::DirectoryChanges {
                renames: Vec::new(),
                departments: departments.take().unwrap_or_default(),
                members,
                left_userids: if last {
                    p.user_leaves.iter().map(|l| l.userid.clone()).collect()
                } else {
                    Vec::new()
                },
                archived_departments: if last {
                    p.role_archives.iter().map(|a| a.department_id).collect()
                } else {
                    Vec::new()
                },
            };
            let items = changes.departments.len()
                + changes.members.len()
                + changes.left_userids.len()
                + changes.archived_departments.len();
            let report = run
                .db
                .apply_directory_changes(run.tenant, run.corpid, &changes, run.clock.now_ms())
                .await
                .map_err(|e| run.fail("applying a chunk", e))?;
            add_report(&mut applied, &report);
            chunks_applied += 1;
            tracker
                .advance(
                    items as u64,
                    EntityCounters {
                        created: report.users_created,
                        updated: report.users_updated,
                        removed: report.users_left,
                        unchanged: 0,
                    },
                )
                .await
                .map_err(|e| run.progress(e))?;
            run.db
                .update_sync_run(
                    run.tenant,
                    run.id,
                    counters,
                    Some(&serde_json::json!({ "chunks_applied": chunks_applied })),
                    run.clock.now_ms(),
                )
                .await
                .map_err(|e| run.fail("saving the checkpoint", e))?;
            run.renew().await?;
            if last {
                break;
            }
        }
    }

    tracing::debug!(run = %run.id, chunks = chunks_applied, "sync: applied");
    let (status, reason) = match stopped {
        Some(why) => (SyncStatus::Failed, Some(why)),
        None => (status, reason),
    };
    // Tags are matched to the users and departments just stored: only after a run that succeeded.
    let tags = if status == SyncStatus::Succeeded {
        let tag_opts = super::tags::TagSyncOptions::for_fetch(&opts.fetch);
        let clock = run.clock.as_ref();
        let r = super::tags::sync_tags(run.db, run.tenant, app, clock, &tag_opts, opts.dry_run);
        Some(r.await.map_err(|e| run.fail("mirroring tags", e))?)
    } else {
        None
    };
    run.db
        .finish_sync_run(
            run.tenant,
            run.id,
            status,
            counters,
            reason.as_deref(),
            run.clock.now_ms(),
        )
        .await
        .map_err(|e| run.fail("finishing the run", e))?;
    tracker
        .finish(status, reason.clone())
        .await
        .map_err(|e| run.progress(e))?;
    let errors = upstream.incomplete_reasons();
    Ok(SyncOutcome {
        run_id: run.id,
        status,
        dry_run: opts.dry_run,
        counters: *counters,
        plan: p,
        applied,
        chunks_applied,
        reason,
        calls: upstream.calls,
        strategy: upstream.strategy,
        scope: upstream.scope,
        rate_limit_waits: upstream.rate_limit_waits,
        tags,
        errors,
    })
}

/// Fetch upstream while forwarding the fetch's progress callbacks (called from the fetch's tasks, so
/// they only push into a channel) into the tracker, which persists and publishes them.
async fn fetch_with_progress(
    run: &Run<'_>,
    app: &WecomApp,
    opts: &SyncOptions,
    tracker: &mut ProgressTracker,
) -> Result<super::upstream::UpstreamDirectory, DomainError> {
    let (tx, mut rx) = mpsc::unbounded_channel::<FetchProgress>();
    let mut fetch_opts = opts.fetch.clone();
    fetch_opts.progress = Some(FetchObserver::new(move |ev| {
        // The receiver only goes away once the fetch has returned.
        let _ = tx.send(ev);
    }));
    let fetch = async move {
        let up = fetch_directory(app, run.clock.clone(), &fetch_opts).await;
        // Dropping the options drops the last sender, which ends the drain below.
        drop(fetch_opts);
        up
    };
    let drain = async {
        let mut first_err: Option<ProgressError> = None;
        while let Some(ev) = rx.recv().await {
            let r = match ev {
                FetchProgress::Phase { phase, total } => tracker.start_phase(phase, total).await,
                FetchProgress::Advanced { items, .. } => {
                    tracker.advance(items, EntityCounters::default()).await
                }
                FetchProgress::ItemError { error, .. } => {
                    let message = error.reason();
                    tracker.item_error(error.item, error.errcode, message).await
                }
            };
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        }
        first_err
    };
    let (upstream, err) = tokio::join!(fetch, drain);
    match err {
        Some(e) => Err(run.progress(e)),
        None => Ok(upstream),
    }
}
