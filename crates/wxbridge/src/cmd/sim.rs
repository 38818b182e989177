//! `wxbridge sim`: runs the WeCom/WeChat simulator at the real API paths until Ctrl-C. The first stdout line
//! is one JSON object (ids, secrets, base URL) for scripts; `--write-config` writes a wxbridge config whose
//! tenant `demo` points at it.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use super::{CmdError, CmdResult};

#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Members of the generated organisation.
    #[arg(long, default_value_t = 200)]
    pub members: usize,
    /// Departments of the generated organisation (including the root).
    #[arg(long, default_value_t = 20)]
    pub departments: usize,
    /// WeChat users (openid per app, shared unionid).
    #[arg(long, default_value_t = 100)]
    pub wechat_users: usize,
    /// Seed: the same seed and sizes give the same organisation.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Port to listen on (0 picks a free port; the JSON line says which).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Load an exact world from a TOML (or JSON) fixture instead of generating one.
    #[arg(long)]
    pub fixture: Option<PathBuf>,
    /// Write a wxbridge config TOML whose tenant `demo` uses this simulator.
    #[arg(long)]
    pub write_config: Option<PathBuf>,
    /// Where the bridge configured by --write-config should listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bridge_listen: String,
}

pub fn run(args: SimArgs) -> CmdResult {
    let sim = match &args.fixture {
        Some(path) => wx_sim::Simulator::from_fixture_file(path).map_err(CmdError::new)?,
        None => wx_sim::Simulator::generate(wx_sim::SimConfig {
            seed: args.seed,
            members: args.members,
            departments: args.departments,
            wechat_users: args.wechat_users,
            ..wx_sim::SimConfig::default()
        }),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CmdError::new(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        let addr = SocketAddr::new(args.host, args.port);
        let running = sim.serve(addr).await.map_err(CmdError::new)?;
        let info = sim.info();
        // The config file is written before the JSON line, so a script that has read the line can use it.
        if let Some(path) = &args.write_config {
            let toml = info
                .wxbridge_config(&args.bridge_listen)
                .map_err(CmdError::new)?;
            std::fs::write(path, toml)
                .map_err(|e| CmdError::new(format!("cannot write {}: {e}", path.display())))?;
            eprintln!(
                "wrote {}: run `wxbridge serve --config {}`",
                path.display(),
                path.display()
            );
        }
        let line = serde_json::to_string(&info)
            .map_err(|e| CmdError::new(format!("cannot print the info: {e}")))?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| CmdError::new(format!("stdout: {e}")))?;
        drop(out);
        eprintln!("wx-sim listening on {} (Ctrl-C to stop)", running.base_url);
        tokio::signal::ctrl_c()
            .await
            .map_err(|e| CmdError::new(format!("cannot wait for Ctrl-C: {e}")))?;
        running.shutdown().await;
        Ok(())
    })
}
