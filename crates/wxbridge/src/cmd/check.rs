//! `wxbridge check`: every configuration problem with a fix hint, live checks of each secret against
//! WeCom/WeChat (skip with `--offline`), and the callback URLs and domains to enter in the consoles.
//! Human-readable by default, JSON with `--json`; exits 1 when anything is an error.

use std::path::PathBuf;
use std::sync::Arc;

use domain::Tenants;
use domain::check::CheckReport;
use wx_api::clock::SystemClock;
use wx_api::token::MemoryTokenStore;
use wxbridge_config::Sources;

use super::serve::{init_tracing_with_default, runtime};
use super::{CmdError, CmdResult};

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Configuration file (TOML). WXBRIDGE_* environment variables override it.
    #[arg(long, short, env = "WXBRIDGE_CONFIG")]
    pub config: PathBuf,
    /// Only check the configuration itself; make no call to WeCom/WeChat.
    #[arg(long)]
    pub offline: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: CheckArgs) -> CmdResult {
    // Only errors by default: the report itself goes to stdout.
    init_tracing_with_default("error");
    let sources = Sources::file(&args.config).with_process_env();
    let inspection = wxbridge_config::inspect(&sources).map_err(CmdError::new)?;
    let mut report = CheckReport::from_config(inspection.problems, inspection.config.as_ref());
    if let (false, Some(mut config)) = (args.offline, inspection.config) {
        // Check WeChat credentials through stable_token even when the bridge uses the classic endpoint: a
        // classic cgi-bin/token call would issue a new token and retire the running bridge's within 5 minutes,
        // while stable tokens are separate and disturb no other holder.
        config.tokens.wechat_token_api = wxbridge_config::WechatTokenApi::Stable;
        let config = Arc::new(config);
        runtime()?.block_on(async {
            // A private in-memory token store: checking never touches the bridge's database or cache.
            let tokens = Tenants::token_manager(
                &config,
                Arc::new(MemoryTokenStore::new()),
                Arc::new(SystemClock),
            );
            let tenants = Tenants::build(&config, tokens).map_err(CmdError::new)?;
            report.run_live(&tenants).await;
            Ok::<_, CmdError>(())
        })?;
    }
    print(&report, args.json)?;
    if report.has_errors() {
        return Err(CmdError::new("the check found errors (see above)"));
    }
    Ok(())
}

pub(crate) fn print(report: &CheckReport, json: bool) -> CmdResult {
    if json {
        let s = serde_json::to_string_pretty(report).map_err(CmdError::new)?;
        println!("{s}");
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}
