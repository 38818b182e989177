//! `wxbridge bench sync` at a tiny size: the simulator runs as a child process, the first sync writes the
//! whole corp, the no-change re-sync writes nothing, and every figure the issue asks for is reported.

use std::process::Command;

use serde_json::Value;

fn bench(extra: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_wxbridge"))
        .args([
            "bench",
            "sync",
            "--members",
            "300",
            "--departments",
            "20",
            "--json",
        ])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[test]
fn bench_sync_reports_both_runs_and_the_resync_writes_nothing() {
    let r = bench(&[]);
    assert_eq!(r["members"], 300);
    assert_eq!(r["departments"], 20);
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for run in runs {
        for field in [
            "name",
            "seconds",
            "status",
            "rows_written",
            "applied",
            "upstream_calls",
            "rate_limited_45009",
            "rate_limit_waits",
            "peak_rss_mib",
        ] {
            assert!(run.get(field).is_some(), "{field} missing in {run}");
        }
        assert_eq!(run["status"], "succeeded", "{run}");
        assert!(run["seconds"].as_f64().unwrap() > 0.0);
        // One department/list plus one user/list per department.
        assert_eq!(run["upstream_calls"], 21, "{run}");
        assert_eq!(run["rate_limited_45009"], 0, "{run}");
        if cfg!(target_os = "linux") {
            assert!(run["peak_rss_mib"].as_f64().unwrap() > 0.0, "{run}");
        }
    }
    let first = &runs[0];
    assert_eq!(first["applied"]["users_created"], 300, "{first}");
    assert_eq!(first["applied"]["roles_created"], 20, "{first}");
    assert!(first["rows_written"].as_u64().unwrap() > 320, "{first}");
    let again = &runs[1];
    assert_eq!(again["rows_written"], 0, "{again}");
}
