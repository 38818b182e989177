//! `wxbridge admin`: ways into the admin UI (`/admin/`).
//!
//! - `admin token` prints a new bootstrap admin token (`wxa_…`, shown once) and the
//!   `server.admin_token_hash = "sha256:…"` line to paste into the configuration; the token signs in
//!   for every tenant.
//! - `admin link [--tenant T] --config F` writes a one-time sign-in link into the configured database
//!   (only its hash is stored; it works once, within 15 minutes) and prints
//!   `<public_url>/admin/login/link?token=wxl_…`. Without `--tenant` the session it opens covers every
//!   tenant.

use std::path::PathBuf;
use std::sync::Arc;

use domain::admin::{Admin, TenantScope, generate_admin_token};
use wx_api::clock::SystemClock;
use wxbridge_config::Sources;

use super::serve::{load_or_print, runtime};
use super::{CmdError, CmdResult};

#[derive(Debug, clap::Subcommand)]
pub enum AdminCmd {
    /// Make a bootstrap admin token. Prints the token (shown once; keep it in a password manager) and
    /// the `server.admin_token_hash` line to paste into the configuration.
    Token,
    /// Make a one-time sign-in link to the admin UI (valid once, for 15 minutes).
    Link(LinkArgs),
}

#[derive(Debug, clap::Args)]
pub struct LinkArgs {
    /// Configuration file (TOML); the link is written into its database.
    #[arg(long, short, env = "WXBRIDGE_CONFIG")]
    pub config: PathBuf,
    /// Scope the session to this tenant (default: every tenant).
    #[arg(long)]
    pub tenant: Option<String>,
}

pub fn run(cmd: AdminCmd) -> CmdResult {
    match cmd {
        AdminCmd::Token => {
            let (token, hash) = generate_admin_token();
            println!("{}", token.expose());
            println!("server.admin_token_hash = \"{}\"", hash.to_file_string());
            eprintln!(
                "The token is shown once. Put the hash line under [server] in the configuration (or set \
                 WXBRIDGE_SERVER__ADMIN_TOKEN_HASH) and restart the bridge; then sign in at /admin/ with the token."
            );
            Ok(())
        }
        AdminCmd::Link(args) => link(args),
    }
}

fn link(args: LinkArgs) -> CmdResult {
    let config = load_or_print(&Sources::file(&args.config).with_process_env())?;
    let scope = match &args.tenant {
        None => TenantScope::All,
        Some(t) if config.tenants.keys().any(|k| k.as_str() == t) => TenantScope::Tenant(t.clone()),
        Some(t) => {
            let known: Vec<&str> = config.tenants.keys().map(|k| k.as_str()).collect();
            return Err(CmdError::new(format!(
                "unknown tenant `{t}` (configured: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )));
        }
    };
    runtime()?.block_on(async move {
        let db = store::Db::connect(config.database.url())
            .await
            .map_err(|e| CmdError::new(format!("cannot open the database: {e}")))?;
        db.migrate()
            .await
            .map_err(|e| CmdError::new(format!("database migration failed: {e}")))?;
        let token = Admin::new(db.clone(), Arc::new(SystemClock))
            .issue_link(&scope)
            .await
            .map_err(|e| CmdError::new(format!("cannot store the sign-in link: {e}")))?;
        db.close().await;
        println!(
            "{}",
            config
                .server
                .public_url_for(&format!("/admin/login/link?token={}", token.expose()))
        );
        eprintln!(
            "One-time sign-in link for {}: it works once, within 15 minutes.",
            match &scope {
                TenantScope::All => "every tenant".to_owned(),
                TenantScope::Tenant(t) => format!("tenant `{t}`"),
            }
        );
        Ok(())
    })
}
