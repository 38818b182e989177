//! `wxbridge demo`: no configuration needed. Starts the simulator in-process with a generated organisation,
//! writes a configuration for tenant `demo` pointing at it (SQLite in the data directory, a fresh API key
//! stored only as a hash), starts the bridge, runs `check` against it and prints where to go next.

use std::net::SocketAddr;
use std::path::PathBuf;

use domain::check::CheckReport;
use wxbridge_config::{FileConfig, FileSecret, Sources};

use super::serve::{init_tracing, load_or_print, runtime, start};
use super::{CmdError, CmdResult};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Where the demo configuration and SQLite database go.
    #[arg(long, default_value = "./data/demo")]
    pub data_dir: PathBuf,
    /// Port of the bridge (127.0.0.1).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Port of the simulator (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub sim_port: u16,
    /// Members of the generated organisation.
    #[arg(long, default_value_t = 300)]
    pub members: usize,
    /// Departments of the generated organisation (including the root).
    #[arg(long, default_value_t = 30)]
    pub departments: usize,
    /// Seed of the generated organisation (same seed, same organisation).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

pub fn run(args: DemoArgs) -> CmdResult {
    init_tracing();
    runtime()?.block_on(demo(args))
}

async fn demo(args: DemoArgs) -> CmdResult {
    let sim = wx_sim::Simulator::generate(wx_sim::SimConfig::new(
        args.seed,
        args.members,
        args.departments,
    ));
    let sim_addr = SocketAddr::from(([127, 0, 0, 1], args.sim_port));
    let running = sim
        .serve(sim_addr)
        .await
        .map_err(|e| CmdError::new(format!("cannot start the simulator: {e}")))?;
    let info = sim.info();

    let listen = SocketAddr::from(([127, 0, 0, 1], args.port));
    let generated = info
        .wxbridge_config(&listen.to_string())
        .map_err(CmdError::new)?;
    let mut file = FileConfig::from_toml_str(&generated).map_err(CmdError::new)?;
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| CmdError::new(format!("cannot create {}: {e}", args.data_dir.display())))?;
    let dir = args
        .data_dir
        .canonicalize()
        .unwrap_or_else(|_| args.data_dir.clone());
    file.server.data_dir = dir.display().to_string();
    file.database.url = Some(FileSecret::new(format!(
        "sqlite://{}",
        dir.join("wxbridge.db").display()
    )));
    let (api_key, hash) = server::auth::generate_api_key();
    if let Some(t) = file.tenants.get_mut("demo") {
        t.api_key_hashes = vec![hash.to_file_string()];
    }
    let config_path = dir.join("wxbridge.toml");
    let text = file.to_toml_string().map_err(CmdError::new)?;
    let header = "# Written by `wxbridge demo`: tenant `demo` points at the in-process simulator.\n\
                  # Its secrets are the simulator's; the API key is stored only as a hash.\n\n";
    std::fs::write(&config_path, format!("{header}{text}"))
        .map_err(|e| CmdError::new(format!("cannot write {}: {e}", config_path.display())))?;

    let config = load_or_print(&Sources::file(&config_path).with_process_env())?;
    let state = start(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .map_err(|e| {
            CmdError::new(format!(
                "cannot listen on {} ({e}); try --port",
                config.server.listen
            ))
        })?;
    let bridge = tokio::spawn(server::serve_on(
        state.clone(),
        listener,
        server::shutdown_signal(),
    ));

    let mut report = CheckReport::from_config(Vec::new(), Some(&config));
    report.run_live(&state.tenants).await;
    print!("{}", report.to_text());

    let bridge_url = config
        .server
        .public_url
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    let sim_url = running.base_url.clone();
    println!("\nwxbridge demo is running (Ctrl-C to stop)");
    println!("  config:        {}", config_path.display());
    println!("  bridge:        {bridge_url}");
    println!("  health:        {bridge_url}/healthz   readiness: {bridge_url}/readyz");
    println!("  API key:       {api_key}   (shown once; only its hash is in the config)");
    println!(
        "  token status:  curl -H 'Authorization: Bearer {api_key}' {bridge_url}/api/v1/tenants/demo/tokens"
    );
    println!("  simulator:     {sim_url}   (info: {sim_url}/_sim/info)");
    if let Some(corp) = info.corps.first()
        && let Some(app) = corp.apps.first()
    {
        println!(
            "  WeCom login:   {sim_url}/wwlogin/sso/login?login_type=CorpApp&appid={}&agentid={}&redirect_uri={bridge_url}/healthz&state=demo",
            corp.corpid, app.agentid
        );
        println!(
            "  in-app OAuth:  {sim_url}/connect/oauth2/authorize?appid={}&agentid={}&redirect_uri={bridge_url}/healthz&response_type=code&scope=snsapi_base&state=demo#wechat_redirect",
            corp.corpid, app.agentid
        );
    }
    if let Some(site) = &info.wechat.website {
        println!(
            "  WeChat QR:     {sim_url}/connect/qrconnect?appid={}&redirect_uri={bridge_url}/healthz&response_type=code&scope=snsapi_login&state=demo",
            site.appid
        );
    }

    let result = bridge
        .await
        .map_err(|e| CmdError::new(format!("the server task failed: {e}")))?;
    running.shutdown().await;
    result.map_err(CmdError::new)
}
