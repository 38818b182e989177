//! `wxbridge bench sync`: the directory sync benchmark of issue 3. Starts the simulator as a child process
//! (`wxbridge sim`, so its memory is not counted), syncs its generated corp into a fresh SQLite file with
//! `domain::directory::run_full_sync`, then runs a second, no-change sync, and prints per run: wall time,
//! directory rows written, upstream calls, 45009 answers the simulator gave, and this process's peak RSS
//! (`VmHWM`, reset between runs on Linux so each run shows its own peak).
//!
//! `--sim-rate-limit N` limits the simulator to N calls per minute per API (per corp) and
//! `--budget-per-minute` sets the sync's own budget (default: off, i.e. unlimited); with a budget under the
//! limit the runs should see no 45009.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use wx_api::clock::{Clock, SystemClock};
use wx_api::token::{MemoryTokenStore, TokenManager};
use wx_api::wecom::{AppCredentials, WecomClient};

use super::{CmdError, CmdResult};

#[derive(Debug, clap::Subcommand)]
pub enum BenchCmd {
    /// Full sync then no-change re-sync of a generated corp (simulator in a child process, SQLite).
    Sync(BenchSyncArgs),
    /// Callback endpoint load: accepted/s and ack latency over loopback HTTP on SQLite.
    Callbacks(super::bench_callbacks::BenchCallbacksArgs),
}

/// How members are read during the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchStrategy {
    /// `user/list` per department (falls back when forbidden).
    Auto,
    /// `user/list_id` pages + `user/get` per member (one call per member).
    ListId,
}

#[derive(Debug, clap::Args)]
pub struct BenchSyncArgs {
    /// Members of the generated corp.
    #[arg(long, default_value_t = 100_000)]
    pub members: usize,
    /// Departments of the generated corp (including the root).
    #[arg(long, default_value_t = 5_000)]
    pub departments: usize,
    /// The sync's call budget per API and minute; 0 = unlimited.
    #[arg(long, default_value_t = 0)]
    pub budget_per_minute: u32,
    /// Limit the simulator to N calls per minute per API (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub sim_rate_limit: u32,
    /// How members are read.
    #[arg(long, value_enum, default_value_t = BenchStrategy::Auto)]
    pub strategy: BenchStrategy,
    /// Seed of the generated corp.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// In-flight calls at most.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub json: bool,
}

/// One run's figures.
#[derive(Debug, Serialize)]
struct RunFigures {
    name: &'static str,
    seconds: f64,
    status: String,
    rows_written: u64,
    applied: store::ApplyReport,
    upstream_calls: u64,
    /// 45009 answers the simulator gave during the run.
    rate_limited_45009: u64,
    /// Block windows the fetch waited out.
    rate_limit_waits: u64,
    /// Peak resident memory of this process during the run, in MiB (None off Linux).
    peak_rss_mib: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Report {
    members: usize,
    departments: usize,
    budget_per_minute: u32,
    sim_rate_limit: u32,
    strategy: String,
    /// Resident memory before the first run, in MiB.
    baseline_rss_mib: Option<f64>,
    runs: Vec<RunFigures>,
}

pub fn run(cmd: BenchCmd) -> CmdResult {
    match cmd {
        BenchCmd::Sync(args) => super::serve::runtime()?.block_on(bench_sync(args)),
        BenchCmd::Callbacks(args) => super::bench_callbacks::run(args),
    }
}

/// The simulator child, killed when the bench ends however it ends.
struct SimChild(Child);

impl Drop for SimChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A scratch directory removed at the end.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn start_sim(args: &BenchSyncArgs) -> Result<(SimChild, wx_sim::SimInfo), CmdError> {
    let exe = std::env::current_exe()
        .map_err(|e| CmdError::new(format!("cannot find this executable: {e}")))?;
    let child = Command::new(exe)
        .args([
            "sim",
            "--members",
            &args.members.to_string(),
            "--departments",
            &args.departments.to_string(),
            "--wechat-users",
            "0",
            "--seed",
            &args.seed.to_string(),
            "--port",
            "0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| CmdError::new(format!("cannot start the simulator: {e}")))?;
    let mut child = SimChild(child);
    let stdout = child
        .0
        .stdout
        .take()
        .ok_or_else(|| CmdError::new("the simulator's stdout is not piped"))?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| CmdError::new(format!("cannot read the simulator's info line: {e}")))?;
    if line.trim().is_empty() {
        return Err(CmdError::new(
            "the simulator exited before printing its info",
        ));
    }
    let info: wx_sim::SimInfo = serde_json::from_str(&line)
        .map_err(|e| CmdError::new(format!("the simulator's info line is not SimInfo: {e}")))?;
    Ok((child, info))
}

/// The APIs a directory sync calls, each limited when `--sim-rate-limit` is given.
const SYNC_APIS: [&str; 5] = [
    "/cgi-bin/department/list",
    "/cgi-bin/user/list",
    "/cgi-bin/user/list_id",
    "/cgi-bin/user/get",
    "/cgi-bin/agent/get",
];

async fn control(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value, CmdError> {
    let url = format!("{base}{path}");
    let req = match body {
        Some(b) => http.post(&url).json(&b),
        None => http.get(&url),
    };
    let resp = req
        .send()
        .await
        .map_err(|e| CmdError::new(format!("simulator control {path}: {e}")))?;
    if !resp.status().is_success() {
        return Err(CmdError::new(format!(
            "simulator control {path}: HTTP {}",
            resp.status()
        )));
    }
    resp.json()
        .await
        .map_err(|e| CmdError::new(format!("simulator control {path}: {e}")))
}

/// 45009 answers in a `/_sim/stats` document (`calls`: path -> errcode -> count).
fn count_45009(stats: &serde_json::Value) -> u64 {
    stats
        .get("calls")
        .and_then(serde_json::Value::as_object)
        .map(|calls| {
            calls
                .values()
                .filter_map(|by_code| by_code.get("45009").and_then(serde_json::Value::as_u64))
                .sum()
        })
        .unwrap_or(0)
}

/// A field of `/proc/self/status` in KiB.
fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

fn mib(kib: Option<u64>) -> Option<f64> {
    kib.map(|k| (k as f64 / 1024.0 * 10.0).round() / 10.0)
}

/// Resets the peak (`VmHWM`) to the current RSS, so the next reading is the next phase's own peak.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn rows(a: &store::ApplyReport) -> u64 {
    a.users_created
        + a.users_updated
        + a.users_left
        + a.userids_renamed
        + a.roles_created
        + a.roles_updated
        + a.roles_archived
        + a.memberships_opened
        + a.memberships_updated
        + a.memberships_closed
}

fn scratch_dir() -> Result<Scratch, CmdError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("wxbridge-bench-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| CmdError::new(format!("cannot create {}: {e}", dir.display())))?;
    Ok(Scratch(dir))
}

fn db_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("bench.db").display())
}

async fn bench_sync(args: BenchSyncArgs) -> CmdResult {
    // Quiet unless asked: WXBRIDGE_LOG=domain=debug shows the sync's phase timings.
    super::serve::init_tracing_with_default("warn");
    let t = Instant::now();
    let (_sim, info) = start_sim(&args)?;
    let base = info
        .base_url
        .clone()
        .ok_or_else(|| CmdError::new("the simulator did not say where it listens"))?;
    let corp = info
        .corps
        .first()
        .ok_or_else(|| CmdError::new("the simulator has no corp"))?;
    if !args.json {
        eprintln!(
            "simulator up with {} members in {} departments ({:.1} s)",
            args.members,
            args.departments,
            t.elapsed().as_secs_f64()
        );
    }
    let http = wx_api::http_client().map_err(CmdError::new)?;
    if args.sim_rate_limit > 0 {
        for api in SYNC_APIS {
            control(
                &http,
                &base,
                "/_sim/rate_limits",
                Some(serde_json::json!({
                    "api": api, "per_window": args.sim_rate_limit, "window_secs": 60.0
                })),
            )
            .await?;
        }
    }

    let scratch = scratch_dir()?;
    let db = store::Db::connect(&db_url(&scratch.0))
        .await
        .map_err(|e| CmdError::new(format!("cannot open the bench database: {e}")))?;
    db.migrate()
        .await
        .map_err(|e| CmdError::new(format!("migration failed: {e}")))?;

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let tokens = Arc::new(TokenManager::new(
        Arc::new(MemoryTokenStore::new()),
        clock.clone(),
    ));
    let client = WecomClient::new(http.clone(), &base, tokens).map_err(CmdError::new)?;
    let app = client.app(AppCredentials {
        tenant: "bench".into(),
        corpid: corp.corpid.clone(),
        agentid: None,
        secret: corp.contacts_secret.clone().into(),
    });
    let opts = || domain::directory::SyncOptions {
        fetch: domain::directory::FetchOptions {
            calls_per_minute: args.budget_per_minute,
            // Budget off means off: no hourly budget either.
            calls_per_hour: if args.budget_per_minute == 0 {
                0
            } else {
                domain::directory::FetchOptions::default().calls_per_hour
            },
            concurrency: args.concurrency,
            strategy: match args.strategy {
                BenchStrategy::Auto => domain::directory::StrategyChoice::Auto,
                BenchStrategy::ListId => domain::directory::StrategyChoice::Force(
                    domain::directory::FetchStrategy::ListIdThenGet,
                ),
            },
            ..domain::directory::FetchOptions::default()
        },
        ..domain::directory::SyncOptions::default()
    };

    let mut report = Report {
        members: args.members,
        departments: args.departments,
        budget_per_minute: args.budget_per_minute,
        sim_rate_limit: args.sim_rate_limit,
        strategy: format!("{:?}", args.strategy),
        baseline_rss_mib: mib(proc_status_kib("VmRSS")),
        runs: Vec::new(),
    };
    for name in ["first full sync", "no-change re-sync"] {
        let before = count_45009(&control(&http, &base, "/_sim/stats", None).await?);
        reset_peak();
        let t = Instant::now();
        let out = domain::directory::run_full_sync(&db, "bench", &app, clock.clone(), opts())
            .await
            .map_err(|e| CmdError::new(format!("{name} failed: {e}")))?;
        let seconds = t.elapsed().as_secs_f64();
        let peak = mib(proc_status_kib("VmHWM"));
        let after = count_45009(&control(&http, &base, "/_sim/stats", None).await?);
        let figures = RunFigures {
            name,
            seconds: (seconds * 1000.0).round() / 1000.0,
            status: format!("{:?}", out.status).to_lowercase(),
            rows_written: rows(&out.applied),
            applied: out.applied,
            upstream_calls: out.calls,
            rate_limited_45009: after.saturating_sub(before),
            rate_limit_waits: out.rate_limit_waits,
            peak_rss_mib: peak,
        };
        drop(out);
        if !args.json {
            print_run(&figures);
        }
        report.runs.push(figures);
    }
    db.close().await;
    if args.json {
        let line = serde_json::to_string(&report)
            .map_err(|e| CmdError::new(format!("cannot print the report: {e}")))?;
        println!("{line}");
    }
    // Give the child a moment to be killed cleanly by the guard.
    tokio::time::sleep(Duration::from_millis(1)).await;
    Ok(())
}

fn print_run(f: &RunFigures) {
    let peak = f
        .peak_rss_mib
        .map_or_else(|| "unknown".to_owned(), |m| format!("{m} MiB"));
    println!(
        "{:<18} {:>8.3} s  status {:<9} rows written {:>8}  upstream calls {:>6}  45009 {:>3}  waits {:>2}  peak RSS {peak}",
        f.name,
        f.seconds,
        f.status,
        f.rows_written,
        f.upstream_calls,
        f.rate_limited_45009,
        f.rate_limit_waits
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_45009_across_apis() {
        let stats = serde_json::json!({
            "calls": {
                "/cgi-bin/user/list": {"0": 120, "45009": 3},
                "/cgi-bin/user/get": {"45009": 2},
                "/cgi-bin/gettoken": {"0": 1}
            },
            "messages": []
        });
        assert_eq!(count_45009(&stats), 5);
        assert_eq!(count_45009(&serde_json::json!({})), 0);
    }
}
