//! `wxbridge migrate`: apply the embedded database migrations to SQLite or PostgreSQL and say which ran.
//!
//! Only `--database-url` (or `WXBRIDGE_DATABASE_URL`) for now; reading the URL from the configuration
//! file arrives with the config loader.

use clap::Args;
use store::{Db, MigrationReport};

use super::{CmdError, CmdResult};

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Database to migrate: sqlite://PATH (created if missing), sqlite::memory: or postgres://...
    #[arg(
        long,
        env = "WXBRIDGE_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: String,
}

pub fn run(args: MigrateArgs) -> CmdResult {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CmdError::new(format!("cannot start the async runtime: {e}")))?;
    let report = runtime.block_on(migrate(&args.database_url))?;
    println!("{}", describe(&report));
    Ok(())
}

async fn migrate(url: &str) -> Result<MigrationReport, CmdError> {
    let db = Db::connect(url).await.map_err(CmdError::new)?;
    let report = db.migrate().await.map_err(CmdError::new);
    db.close().await;
    report
}

/// The summary printed on success. It names the backend, never the URL (which may hold a password).
fn describe(report: &MigrationReport) -> String {
    if report.applied.is_empty() {
        return format!(
            "{} database is up to date ({} migration(s), none applied)",
            report.backend, report.total
        );
    }
    let mut out = format!(
        "applied {} migration(s) to the {} database ({} in total):",
        report.applied.len(),
        report.backend,
        report.total
    );
    for m in &report.applied {
        out.push_str(&format!("\n  {:04} {}", m.version, m.description));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn migrates_a_new_sqlite_file_then_reports_up_to_date() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/data/wxbridge.db", dir.path().display());

        let first = migrate(&url).await.unwrap();
        let text = describe(&first);
        assert!(!first.applied.is_empty(), "{text}");
        assert!(text.contains("0001 token cache"), "{text}");
        assert!(dir.path().join("data/wxbridge.db").exists());

        let second = migrate(&url).await.unwrap();
        assert!(second.applied.is_empty());
        assert!(describe(&second).contains("up to date"));
    }

    #[tokio::test]
    async fn an_unknown_scheme_fails_without_echoing_the_url() {
        let err = migrate("mysql://user:hunter2@db/wx").await.unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("mysql"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
    }
}
