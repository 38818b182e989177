//! `wxbridge serve`: load and validate the configuration (every problem printed, exit 1 if any is an
//! error), open the database and migrate it, build the tenants over one token manager, and serve HTTP until
//! Ctrl-C / SIGTERM. Also the start-up steps `demo` reuses.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use domain::Tenants;
use wx_api::clock::SystemClock;
use wxbridge_config::{Config, Sources};

use super::{CmdError, CmdResult};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Configuration file (TOML). WXBRIDGE_* environment variables override it.
    #[arg(long, short, env = "WXBRIDGE_CONFIG")]
    pub config: PathBuf,
    /// Address to listen on (overrides `server.listen`).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
}

pub fn run(args: ServeArgs) -> CmdResult {
    init_tracing();
    let mut sources = Sources::file(&args.config).with_process_env();
    if let Some(listen) = args.listen {
        sources = sources.with_override("server.listen", listen.to_string());
    }
    let config = load_or_print(&sources)?;
    runtime()?.block_on(async move {
        let state = start(&config).await?;
        server::serve(state, config.server.listen)
            .await
            .map_err(CmdError::new)
    })
}

/// Load and validate; on failure print every problem (with its hint) to stderr.
pub(crate) fn load_or_print(sources: &Sources) -> Result<Arc<Config>, CmdError> {
    match wxbridge_config::load(sources) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("{w}");
            }
            Ok(Arc::new(loaded.config))
        }
        Err(e) => {
            for p in e.problems() {
                eprintln!("{p}");
            }
            Err(CmdError::new(e))
        }
    }
}

/// Open and migrate the database, open the token store, build the tenants.
pub(crate) async fn start(config: &Arc<Config>) -> Result<server::AppState, CmdError> {
    let db = store::Db::connect(config.database.url())
        .await
        .map_err(|e| CmdError::new(format!("cannot open the database: {e}")))?;
    let report = db
        .migrate()
        .await
        .map_err(|e| CmdError::new(format!("database migration failed: {e}")))?;
    tracing::info!(db.backend = %report.backend, db.migrations_applied = report.applied.len(), "database ready");
    let store = Tenants::open_token_store(config, Some(&db))
        .await
        .map_err(CmdError::new)?;
    let tokens = Tenants::token_manager(config, store, Arc::new(SystemClock));
    let tenants = Tenants::build(config, tokens).map_err(CmdError::new)?;
    Ok(server::AppState::new(config.clone(), tenants, Some(db)))
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CmdError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CmdError::new(format!("cannot start the async runtime: {e}")))
}

/// Logs to stderr; level from WXBRIDGE_LOG (or RUST_LOG), default info.
pub(crate) fn init_tracing() {
    init_tracing_with_default("info");
}

/// Logs to stderr with `default` as the filter unless WXBRIDGE_LOG (or RUST_LOG) says otherwise. Colours
/// only on a terminal, so redirected logs stay plain text.
pub(crate) fn init_tracing_with_default(default: &str) {
    use std::io::IsTerminal as _;
    let filter = std::env::var("WXBRIDGE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default.to_owned());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
