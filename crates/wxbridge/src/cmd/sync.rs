//! `wxbridge sync --tenant T`: one full directory sync of the tenant's WeCom corp into the local users and
//! roles, drawn live (a bar per phase on stderr and a summary table, or `--json` lines of events and then
//! the outcome). `--dry-run` plans and shows the diff without writing directory rows. The exit code says
//! how the run ended, so scripts and cron jobs can act on it. `demo` runs its first sync through
//! [`run_and_render`] too.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use domain::directory::plan::{SyncPlan, UserUpdate};
use domain::directory::{
    FetchStrategy, SyncOptions, SyncOutcome, VisibleScope, WithheldField, directory_credential,
    no_directory_app_reason, run_full_sync, sync_options,
};
use domain::progress::{DbProgressLog, SyncRunId, SyncStatus};
use domain::{DomainError, Tenant};
use serde::Serialize;
use wxbridge_config::Sources;

use super::CmdError;
use super::serve::{init_tracing_with_default, load_or_print, runtime, start};
use crate::progress::{Mode, Renderer, Summary};

const EXIT_CODES: &str = "\
Exit codes:
  0  the run succeeded (with --dry-run: it would succeed)
  1  the command could not run: configuration, unknown tenant, no credential, database
  3  partial: a fetch failed, so nothing was removed (the reason is printed)
  4  refused: more users would be marked left than max_removal_share allows (see --override-guard)
  5  the run failed or stopped midway (the next run resumes where it stopped)
  6  another sync of this corp is running (here or in another process on the same database)";

/// Exit code of a partial run.
pub const EXIT_PARTIAL: u8 = 3;
/// Exit code of a run refused by the removal guard.
pub const EXIT_REFUSED: u8 = 4;
/// Exit code of a failed run.
pub const EXIT_FAILED: u8 = 5;
/// Exit code when another run holds the corp's lease.
pub const EXIT_RUNNING: u8 = 6;

#[derive(Debug, clap::Args)]
#[command(after_help = EXIT_CODES)]
pub struct SyncArgs {
    /// Configuration file (TOML). WXBRIDGE_* environment variables override it.
    #[arg(long, short, env = "WXBRIDGE_CONFIG")]
    pub config: PathBuf,
    /// The tenant whose WeCom directory to sync (a key under [tenants]).
    #[arg(long)]
    pub tenant: String,
    /// Plan and show the diff, write no users or roles (the run and its events are still recorded).
    #[arg(long)]
    pub dry_run: bool,
    /// Print each progress event as one JSON line on stdout, then the outcome as the last line.
    #[arg(long)]
    pub json: bool,
    /// Mark users left even when more than `max_removal_share` of them would be (this run only).
    #[arg(long)]
    pub override_guard: bool,
    /// With --dry-run: how many changed items of each kind to list.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub show: usize,
}

/// The command's entry point: its own exit codes, so it returns an `ExitCode` rather than a `CmdResult`.
pub fn main(args: SyncArgs) -> ExitCode {
    // Warnings only: the bars and the table are the output.
    init_tracing_with_default("warn");
    match run(&args) {
        Ok(outcome) => {
            let code = exit_code(outcome.status);
            if code != 0 {
                eprintln!(
                    "error: sync run {} {}: {}",
                    outcome.run_id,
                    outcome.status.as_str(),
                    outcome.reason.as_deref().unwrap_or("no reason recorded")
                );
            }
            ExitCode::from(code)
        }
        Err(Failure::Running(e)) => {
            eprintln!(
                "error: {e}; wait for it to finish (its progress: GET /api/v1/tenants/{}/sync/runs/<id>/events)",
                args.tenant
            );
            ExitCode::from(EXIT_RUNNING)
        }
        Err(Failure::Run(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILED)
        }
        Err(Failure::Setup(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Why `sync` did not produce an outcome.
#[derive(Debug)]
pub enum Failure {
    /// It could not start: configuration, tenant, credential, database.
    Setup(CmdError),
    /// Another run holds the corp's lease.
    Running(DomainError),
    /// The run started and then failed.
    Run(CmdError),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Setup(e) | Failure::Run(e) => e.fmt(f),
            Failure::Running(e) => e.fmt(f),
        }
    }
}

fn exit_code(status: SyncStatus) -> u8 {
    match status {
        SyncStatus::Succeeded => 0,
        SyncStatus::Partial => EXIT_PARTIAL,
        SyncStatus::Refused => EXIT_REFUSED,
        // `Running` cannot end a run; treat anything else as a failure.
        _ => EXIT_FAILED,
    }
}

fn run(args: &SyncArgs) -> Result<SyncOutcome, Failure> {
    let sources = Sources::file(&args.config).with_process_env();
    let config = load_or_print(&sources).map_err(Failure::Setup)?;
    if config.tenant(&args.tenant).is_none() {
        let known: Vec<&str> = config.tenants.keys().map(|k| k.as_str()).collect();
        return Err(Failure::Setup(CmdError::new(format!(
            "unknown tenant `{}`; the configuration has: {}",
            args.tenant,
            known.join(", ")
        ))));
    }
    let rt = runtime().map_err(Failure::Setup)?;
    rt.block_on(async {
        let state = start(&config).await.map_err(Failure::Setup)?;
        let tenant = state
            .tenants
            .get(&args.tenant)
            .cloned()
            .ok_or_else(|| Failure::Setup(CmdError::new("the tenant was not built")))?;
        let mut opts = sync_options(&tenant.config);
        opts.dry_run = args.dry_run;
        opts.plan.override_guard = args.override_guard;
        let mode = Mode::from_flag(args.json);
        let (outcome, _) = match run_and_render(&state, &tenant, opts, mode).await {
            Ok(done) => done,
            Err(Failure::Run(e)) if args.json => {
                // Scripts read the last line: it is the outcome even when the run failed.
                let line = serde_json::json!({"type": "outcome", "status": "failed", "error": e.to_string()});
                println!("{line}");
                return Err(Failure::Run(e));
            }
            Err(e) => return Err(e),
        };
        let mut out = io::stdout().lock();
        let written = if args.json {
            write_outcome_json(&mut out, &outcome, args.show)
        } else {
            write_outcome_text(&mut out, &outcome, args.show)
        };
        written
            .and_then(|()| out.flush())
            .map_err(|e| Failure::Run(CmdError::new(format!("cannot write the outcome: {e}"))))?;
        Ok(outcome)
    })
}

/// Run one full sync of `tenant` with `opts` (its hub is set here) and draw its events on stdout/stderr
/// as they happen. Returns the outcome and the summary of the drawn events.
pub(crate) async fn run_and_render(
    state: &server::AppState,
    tenant: &Arc<Tenant>,
    mut opts: SyncOptions,
    mode: Mode,
) -> Result<(SyncOutcome, Summary), Failure> {
    let db = state
        .db
        .clone()
        .ok_or_else(|| Failure::Setup(CmdError::new("no database is open")))?;
    let app = directory_credential(tenant)
        .and_then(|c| c.wecom())
        .cloned()
        .ok_or_else(|| Failure::Setup(CmdError::new(no_directory_app_reason(tenant))))?;
    let hub = state.progress.clone();
    opts.hub = Some(hub.clone());
    let (created_tx, mut created_rx) = tokio::sync::mpsc::unbounded_channel();
    opts.run_created = Some(created_tx);
    let clock = state.tenants.tokens().clock().clone();
    let key = tenant.key().to_owned();

    // The run goes on in its own task; this one follows its events through the hub (replaying from the
    // persisted log whatever was published before the subscription).
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
    let task = {
        let db = db.clone();
        let key = key.clone();
        tokio::spawn(async move {
            let result = run_full_sync(&db, &key, &app, clock, opts).await;
            let _ = done_tx.send(result);
        })
    };
    let finished = |r: Result<Result<SyncOutcome, DomainError>, _>| match r {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(e @ DomainError::SyncRunning { .. })) => Err(Failure::Running(e)),
        Ok(Err(e)) => Err(Failure::Run(CmdError::new(e))),
        Err(_) => Err(Failure::Run(CmdError::new(
            "the sync task ended unexpectedly",
        ))),
    };

    // `None`: the run ended before it was recorded (the lease was held, or the database failed).
    let Some(run_id) = created_rx.recv().await else {
        let result = finished((&mut done_rx).await);
        let _ = task.await;
        return result.map(|o| (o, Summary::default()));
    };
    let stream = hub.subscribe(run_id, 0, Arc::new(DbProgressLog::new(db, key)));
    let render = Renderer::new(mode, io::stdout()).run(stream);
    tokio::pin!(render);
    let (summary, result) = tokio::select! {
        summary = &mut render => (summary, finished((&mut done_rx).await)),
        result = &mut done_rx => {
            // The run is over; its last events are persisted, so the stream ends promptly. The timeout
            // only guards against a run that could not record its end.
            let summary = tokio::time::timeout(Duration::from_secs(10), &mut render)
                .await
                .unwrap_or_else(|_| Err(CmdError::new(format!("the events of run {run_id} stopped before its end"))));
            (summary, finished(result))
        }
    };
    let _ = task.await;
    let outcome = result?;
    // A rendering failure after a completed run is reported, but the run's own status decides the exit.
    let summary = summary.unwrap_or_else(|e| {
        eprintln!("warning: {e}");
        Summary::default()
    });
    Ok((outcome, summary))
}

// ---------------------------------------------------------------------------------------------------------
// Outcome output

/// The last `--json` line: what the run did, without the full plan (which can hold every member).
#[derive(Debug, Serialize)]
struct OutcomeLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    run_id: SyncRunId,
    status: SyncStatus,
    dry_run: bool,
    /// What the plan found per kind of entity (written, unless a dry run).
    counters: &'a store::SyncCounters,
    /// Rows actually written.
    applied: &'a store::ApplyReport,
    chunks_applied: usize,
    reason: Option<&'a str>,
    calls: u64,
    strategy: Option<FetchStrategy>,
    scope: &'a VisibleScope,
    rate_limit_waits: u64,
    withheld_fields: &'a [WithheldField],
    removals_skipped: usize,
    /// With `--dry-run`: the first changed items of each kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    changes: Option<Changes<'a>>,
}

#[derive(Debug, Serialize)]
struct Changes<'a> {
    role_creates: &'a [domain::directory::plan::RoleCreate],
    role_updates: &'a [domain::directory::plan::RoleUpdate],
    role_archives: &'a [domain::directory::plan::RoleArchive],
    user_creates: &'a [domain::directory::plan::UserCreate],
    user_updates: &'a [UserUpdate],
    user_leaves: &'a [domain::directory::plan::UserLeave],
}

fn first<T>(v: &[T], n: usize) -> &[T] {
    &v[..v.len().min(n)]
}

fn changes(p: &SyncPlan, n: usize) -> Changes<'_> {
    Changes {
        role_creates: first(&p.role_creates, n),
        role_updates: first(&p.role_updates, n),
        role_archives: first(&p.role_archives, n),
        user_creates: first(&p.user_creates, n),
        user_updates: first(&p.user_updates, n),
        user_leaves: first(&p.user_leaves, n),
    }
}

pub(crate) fn write_outcome_json(
    out: &mut impl Write,
    o: &SyncOutcome,
    show: usize,
) -> io::Result<()> {
    let line = OutcomeLine {
        kind: "outcome",
        run_id: o.run_id,
        status: o.status,
        dry_run: o.dry_run,
        counters: &o.counters,
        applied: &o.applied,
        chunks_applied: o.chunks_applied,
        reason: o.reason.as_deref(),
        calls: o.calls,
        strategy: o.strategy,
        scope: &o.scope,
        rate_limit_waits: o.rate_limit_waits,
        withheld_fields: &o.plan.withheld_fields,
        removals_skipped: o.plan.removals_skipped,
        changes: o.dry_run.then(|| changes(&o.plan, show)),
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}

/// After the progress table: what the plan found per entity, what was written, how it was fetched, and for
/// a dry run the first changed items.
pub(crate) fn write_outcome_text(
    out: &mut impl Write,
    o: &SyncOutcome,
    show: usize,
) -> io::Result<()> {
    let c = &o.counters;
    writeln!(out)?;
    let verb = if o.dry_run {
        "the plan; nothing written"
    } else {
        "the plan"
    };
    writeln!(
        out,
        "{:<12} {:>9} {:>9} {:>9} {:>9}   ({verb})",
        "entity", "created", "updated", "removed", "unchanged"
    )?;
    for (name, e) in [
        ("users", c.users),
        ("roles", c.roles),
        ("memberships", c.memberships),
    ] {
        writeln!(
            out,
            "{name:<12} {:>9} {:>9} {:>9} {:>9}",
            e.created, e.updated, e.removed, e.unchanged
        )?;
    }
    let strategy = match o.strategy {
        Some(FetchStrategy::UserList) => "user/list per department",
        Some(FetchStrategy::ListIdThenGet) => "user/list_id + user/get",
        None => "none (nothing fetched)",
    };
    writeln!(
        out,
        "fetch: {} calls, {strategy}, {} rate-limit waits",
        o.calls, o.rate_limit_waits
    )?;
    if !o.scope.whole_company {
        writeln!(
            out,
            "scope: limited to {} departments, {} users, {} tags (the app's visible range)",
            o.scope.departments.len(),
            o.scope.users.len(),
            o.scope.tags.len()
        )?;
    }
    if !o.plan.withheld_fields.is_empty() {
        let names: Vec<String> = o
            .plan
            .withheld_fields
            .iter()
            .map(|f| format!("{f:?}").to_lowercase())
            .collect();
        writeln!(
            out,
            "withheld by WeCom (kept as the bridge has them): {}",
            names.join(", ")
        )?;
    }
    if o.dry_run {
        writeln!(out, "dry run: nothing was written")?;
        write_changes(out, &o.plan, show)?;
    } else {
        let a = &o.applied;
        let rows = a.users_created
            + a.users_updated
            + a.users_left
            + a.userids_renamed
            + a.roles_created
            + a.roles_updated
            + a.roles_archived
            + a.memberships_opened
            + a.memberships_updated
            + a.memberships_closed;
        if rows == 0 {
            writeln!(
                out,
                "written: nothing (the directory was already up to date)"
            )?;
        } else {
            writeln!(
                out,
                "written: users +{} ~{} left {}, roles +{} ~{} archived {}, memberships +{} ~{} closed {} ({} chunks)",
                a.users_created,
                a.users_updated,
                a.users_left,
                a.roles_created,
                a.roles_updated,
                a.roles_archived,
                a.memberships_opened,
                a.memberships_updated,
                a.memberships_closed,
                o.chunks_applied
            )?;
        }
    }
    if let Some(r) = &o.reason {
        writeln!(out, "reason: {r}")?;
    }
    Ok(())
}

fn write_changes(out: &mut impl Write, p: &SyncPlan, show: usize) -> io::Result<()> {
    fn section<T>(
        out: &mut impl Write,
        title: &str,
        items: &[T],
        show: usize,
        line: impl Fn(&T) -> String,
    ) -> io::Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        writeln!(out, "{title}: {}", items.len())?;
        for i in first(items, show) {
            writeln!(out, "  {}", line(i))?;
        }
        if items.len() > show {
            writeln!(out, "  ... and {} more", items.len() - show)?;
        }
        Ok(())
    }
    if p.is_empty() {
        writeln!(out, "no changes")?;
        return Ok(());
    }
    section(out, "roles to create", &p.role_creates, show, |r| {
        format!(
            "+ department {} {:?} (parent {})",
            r.department_id, r.name, r.parent_id
        )
    })?;
    section(out, "roles to update", &p.role_updates, show, |r| {
        let mut what = Vec::new();
        if let Some(n) = &r.name {
            what.push(format!("name -> {n:?}"));
        }
        if let Some(pid) = r.parent_id {
            what.push(format!("parent -> {pid}"));
        }
        if let Some(o) = r.order {
            what.push(format!("order -> {o}"));
        }
        if r.unarchive {
            what.push("unarchive".to_owned());
        }
        format!("~ department {}: {}", r.department_id, what.join(", "))
    })?;
    section(out, "roles to archive", &p.role_archives, show, |r| {
        format!("- department {}", r.department_id)
    })?;
    section(out, "users to create", &p.user_creates, show, |u| {
        let name = u.fields.name.as_deref().unwrap_or("");
        format!(
            "+ {} {name:?} in {} departments",
            u.userid,
            u.memberships.len()
        )
    })?;
    section(out, "users to update", &p.user_updates, show, |u| {
        format!("~ {}: {}", u.userid, update_fields(u).join(", "))
    })?;
    section(out, "users to mark left", &p.user_leaves, show, |u| {
        format!(
            "- {} (closes {} memberships)",
            u.userid,
            u.close_departments.len()
        )
    })
}

/// The names of what an update changes.
fn update_fields(u: &UserUpdate) -> Vec<&'static str> {
    let f = &u.fields;
    let mut out = Vec::new();
    for (changed, name) in [
        (f.name.is_some(), "name"),
        (f.mobile.is_some(), "mobile"),
        (f.email.is_some(), "email"),
        (f.avatar.is_some(), "avatar"),
        (f.position.is_some(), "position"),
        (f.gender.is_some(), "gender"),
        (u.status.is_some(), "status"),
        (!u.memberships.is_empty(), "memberships"),
        (u.main_department.is_some(), "main department"),
    ] {
        if changed {
            out.push(name);
        }
    }
    out
}
