//! `wxbridge migrate`: apply the embedded database migrations to SQLite or PostgreSQL and say which ran.
//! The database comes from `--database-url` or, failing that, from the configuration file's
//! `database.url` (the same loading and validation as `serve`, so both migrate the same database).

use std::path::PathBuf;

use clap::Args;
use store::{Db, MigrationReport};
use wxbridge_config::Sources;

use super::serve::load_or_print;
use super::{CmdError, CmdResult};

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Configuration file (TOML) whose `database.url` to migrate. WXBRIDGE_* environment variables
    /// override it. Ignored when a database URL is given.
    #[arg(long, short, env = "WXBRIDGE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Database to migrate: sqlite://PATH (created if missing), sqlite::memory: or postgres://...
    /// Takes precedence over --config.
    #[arg(
        long,
        env = "WXBRIDGE_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
}

pub fn run(args: MigrateArgs) -> CmdResult {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CmdError::new(format!("cannot start the async runtime: {e}")))?;
    let url = match (args.database_url, args.config) {
        (Some(url), _) => url,
        (None, Some(file)) => {
            let config = load_or_print(&Sources::file(file).with_process_env())?;
            config.database.url().to_owned()
        }
        (None, None) => {
            return Err(CmdError::new(
                "no database: pass --database-url URL (or WXBRIDGE_DATABASE_URL) or --config FILE",
            ));
        }
    };
    let report = runtime.block_on(migrate(&url))?;
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

    /// `--config`: the URL comes from the file's `database.url`, exactly as `serve` would read it.
    #[test]
    fn migrates_the_database_named_in_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join("from-config/wx.db");
        let config = dir.path().join("wxbridge.toml");
        std::fs::write(
            &config,
            format!(
                "[database]\nurl = \"sqlite://{}\"\n\n\
                 [tenants.demo.wecom]\ncorpid = \"ww1436e0e65a779aee\"\n\
                 [tenants.demo.wecom.contacts]\nsecret = \"contacts-secret\"\n",
                db_path.display()
            ),
        )
        .unwrap();
        run(MigrateArgs {
            config: Some(config),
            database_url: None,
        })
        .unwrap();
        assert!(db_path.exists());
    }

    #[test]
    fn without_a_url_or_config_it_says_what_to_pass() {
        let err = run(MigrateArgs {
            config: None,
            database_url: None,
        })
        .unwrap_err();
        assert!(err.to_string().contains("--database-url"), "{err}");
    }

    #[tokio::test]
    async fn an_unknown_scheme_fails_without_echoing_the_url() {
        let err = migrate("mysql://user:hunter2@db/wx").await.unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("mysql"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
    }
}
