//! `wxbridge demo`: no configuration needed. Starts the simulator in-process with a generated organisation,
//! writes a configuration for tenant `demo` pointing at it (SQLite in the data directory, a fresh API key
//! stored only as a hash), starts the bridge, runs `check` against it, runs the first directory sync of the
//! generated organisation with the live progress bar, and prints where to go next (lookup and sync API
//! included) while the bridge keeps serving.

use std::net::SocketAddr;
use std::path::PathBuf;

use domain::check::CheckReport;
use wx_api::clock::SystemClock;
use wxbridge_config::{FileConfig, FileSecret, Sources};

use super::serve::{init_tracing, load_or_print, runtime, start};
use super::sync::{run_and_render, write_outcome_text};
use super::{CmdError, CmdResult};
use crate::progress::Mode;

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
    /// Members of the generated organisation (enough to watch the first sync's progress bar move).
    #[arg(long, default_value_t = 5000)]
    pub members: usize,
    /// Departments of the generated organisation (including the root).
    #[arg(long, default_value_t = 250)]
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
    // The admin UI: a bootstrap token (only its hash in the config), and WeCom sign-in for every member
    // of the root department (1) through the first app, so the simulated login page signs anyone in.
    let (admin_token, admin_hash) = domain::admin::generate_admin_token();
    file.server.admin_token_hash = Some(admin_hash.to_file_string());
    let admin_app = info
        .corps
        .first()
        .and_then(|c| c.apps.first())
        .map(|a| a.name.clone());
    if let Some(t) = file.tenants.get_mut("demo") {
        t.api_key_hashes = vec![hash.to_file_string()];
        let admin = t.admin.get_or_insert_with(Default::default);
        admin.app = admin_app;
        admin.wecom_department_ids = vec![1];
    }
    let config_path = dir.join("wxbridge.toml");
    let text = file.to_toml_string().map_err(CmdError::new)?;
    let header = "# Written by `wxbridge demo`: tenant `demo` points at the in-process simulator.\n\
                  # Its secrets are the simulator's; the API key and the admin token are stored only as hashes.\n\n";
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

    // The first sync of the generated organisation, drawn like `wxbridge sync`. A failure is reported and
    // the bridge keeps serving: the sync API can run it again.
    println!(
        "\nfirst directory sync of {} members in {} departments:",
        args.members, args.departments
    );
    let synced_run = match state.tenants.get("demo").cloned() {
        Some(tenant) => {
            let mut opts = domain::directory::sync_options(&tenant.config);
            // The demo's database may hold an organisation generated with other sizes by an earlier demo;
            // the simulator is the truth here, so the removal guard does not stop the first sync.
            opts.plan.override_guard = true;
            match run_and_render(&state, &tenant, opts, Mode::from_flag(false)).await {
                Ok((outcome, _)) => {
                    let mut out = std::io::stdout().lock();
                    let _ = write_outcome_text(&mut out, &outcome, 0);
                    Some(outcome.run_id)
                }
                Err(e) => {
                    eprintln!("warning: the first sync did not complete: {e}");
                    None
                }
            }
        }
        None => None,
    };

    let bridge_url = config
        .server
        .public_url
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    let sim_url = running.base_url.clone();
    // A one-time admin sign-in link (only its hash is stored), scoped to the demo tenant.
    let admin_link = match &state.db {
        Some(db) => domain::admin::Admin::new(db.clone(), std::sync::Arc::new(SystemClock))
            .issue_link(&domain::admin::TenantScope::Tenant("demo".to_owned()))
            .await
            .map(|t| format!("{bridge_url}/admin/login/link?token={}", t.expose()))
            .map_err(|e| CmdError::new(format!("cannot store the admin sign-in link: {e}")))?,
        None => return Err(CmdError::new("the demo bridge has no database")),
    };
    println!("\nwxbridge demo is running (Ctrl-C to stop)");
    println!("  config:        {}", config_path.display());
    println!("  bridge:        {bridge_url}");
    println!("  health:        {bridge_url}/healthz   readiness: {bridge_url}/readyz");
    println!("  API key:       {api_key}   (shown once; only its hash is in the config)");
    let auth = format!("-H 'Authorization: Bearer {api_key}'");
    let api = format!("{bridge_url}/api/v1/tenants/demo");
    println!("  token status:  curl {auth} {api}/tokens");
    println!("  OpenAPI:       {bridge_url}/api/v1/openapi.json");
    let directory = sim.directory();
    if let Some(m) = directory.members.first() {
        let fragment = percent_encode(&m.name.chars().take(1).collect::<String>());
        println!(
            "  user by WeCom userid: curl {auth} {api}/wecom/users/{}",
            m.userid
        );
        println!("  users by name:        curl {auth} '{api}/users?q={fragment}'");
    }
    println!("  user's roles:         curl {auth} {api}/users/<user_id>/roles");
    println!("  role of department 1: curl {auth} {api}/wecom/departments/1");
    println!("  role's members:       curl {auth} '{api}/roles/<role_id>/members?sub_roles=true'");
    println!("  start a sync:         curl -X POST {auth} {api}/sync");
    println!("  sync runs:            curl {auth} {api}/sync/runs");
    if let Some(run) = synced_run {
        println!("  first sync's events:  curl -N {auth} {api}/sync/runs/{run}/events");
    }
    println!(
        "  sync from the CLI:    wxbridge sync --config {} --tenant demo",
        config_path.display()
    );
    println!("  simulator:     {sim_url}   (info: {sim_url}/_sim/info)");
    // Logins go through the bridge's own /auth routes: the simulator's page stands in for WeCom/WeChat and
    // the browser ends on /auth/demo/me with a session cookie.
    let me = "return_to=/auth/demo/me";
    if let Some(app) = info.corps.first().and_then(|c| c.apps.first()) {
        let name = &app.name;
        println!("  WeCom PC QR login:     {bridge_url}/auth/demo/wecom/{name}/login?mode=qr&{me}");
        println!(
            "  WeCom in-app OAuth:    {bridge_url}/auth/demo/wecom/{name}/login?mode=oauth&{me}"
        );
    }
    if let Some(oa) = info.wechat.official_accounts.first() {
        let name = &oa.name;
        println!(
            "  WeChat OA OAuth:       {bridge_url}/auth/demo/wechat/{name}/login?mode=oauth&{me}"
        );
    }
    if info.wechat.website.is_some() {
        println!("  WeChat website QR:     {bridge_url}/auth/demo/wechat/website/login?{me}");
    }
    println!("  JSSDK demo page:       {bridge_url}/sdk/demo.html");
    // The admin UI last, the one-time link as the very last line: scripts that read this output (the
    // browser tests) have everything above once they see it.
    println!("  admin UI:              {bridge_url}/admin/");
    println!(
        "  admin WeCom sign-in:   {bridge_url}/admin/login/wecom?tenant=demo   (any member: the simulator's login page)"
    );
    println!(
        "  admin token:           {}   (shown once; only its hash is in the config)",
        admin_token.expose()
    );
    println!(
        "  admin sign-in link:    {admin_link}\n                         (one-time, 15 minutes; `wxbridge admin link --config {} --tenant demo` makes another)",
        config_path.display()
    );

    let result = bridge
        .await
        .map_err(|e| CmdError::new(format!("the server task failed: {e}")))?;
    running.shutdown().await;
    result.map_err(CmdError::new)
}

/// `s` for a URL query value: unreserved ASCII kept, every other byte as `%XX`.
fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
