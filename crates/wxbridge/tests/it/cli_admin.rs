//! `wxbridge admin token` and `wxbridge admin link` run as real processes: the printed hash line is
//! accepted by the configuration and matches the printed token; a link lands in the configured database
//! and signs in once, with the tenant scope asked for; an unknown tenant is an error that names it.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use domain::admin::{Admin, AdminError, TenantScope, admin_token_matches};
use wx_api::clock::SystemClock;

fn wxbridge(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wxbridge"));
    cmd.args(args);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("WXBRIDGE_")) {
        cmd.env_remove(k);
    }
    cmd.output().unwrap()
}

fn config(dir: &Path, server_extra: &str) -> std::path::PathBuf {
    let p = dir.join("wxbridge.toml");
    std::fs::write(
        &p,
        format!(
            r#"
[server]
public_url = "https://bridge.example.com/"
{server_extra}

[database]
url = "sqlite://{}/wx.db"

[tenants.demo.wecom]
corpid = "ww1436e0e65a779aee"

[tenants.demo.wecom.apps.main]
agentid = 1000002
secret = "app-secret-value"
"#,
            dir.display()
        ),
    )
    .unwrap();
    p
}

#[test]
fn admin_token_prints_a_token_and_the_hash_line_the_config_accepts() {
    let out = wxbridge(&["admin", "token"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let token = lines[0];
    assert!(
        token.starts_with("wxa_") && token.len() == 4 + 64,
        "{token}"
    );
    assert!(
        lines[1].starts_with("server.admin_token_hash = \"sha256:"),
        "{stdout}"
    );
    // The line, pasted under [server], loads and matches the token (and only it).
    let dir = tempfile::tempdir().unwrap();
    let pasted = lines[1].replace("server.admin_token_hash", "admin_token_hash");
    let path = config(dir.path(), &pasted);
    let loaded = wxbridge_config::load(&wxbridge_config::Sources::file(&path)).unwrap();
    let hash = loaded.config.server.admin_token_hash.as_ref();
    assert!(hash.is_some());
    assert!(admin_token_matches(token, hash));
    assert!(!admin_token_matches(&format!("{token}x"), hash));
    // The stderr hint never repeats the token.
    assert!(!String::from_utf8_lossy(&out.stderr).contains(token));
    // A second run makes another token.
    let again = String::from_utf8(wxbridge(&["admin", "token"]).stdout).unwrap();
    assert_ne!(again.lines().next(), Some(token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_link_writes_a_one_time_link_into_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let cfg = cfg.to_str().unwrap();

    let out = wxbridge(&["admin", "link", "--config", cfg, "--tenant", "demo"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let link = stdout.trim();
    let token = link
        .strip_prefix("https://bridge.example.com/admin/login/link?token=")
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        token.starts_with("wxl_") && token.len() == 4 + 64,
        "{token}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("tenant `demo`"));

    // Without --tenant: a link for every tenant.
    let out = wxbridge(&["admin", "link", "--config", cfg]);
    assert!(out.status.success(), "{out:?}");
    let all_stdout = String::from_utf8(out.stdout).unwrap();
    let all = all_stdout
        .trim()
        .rsplit_once("token=")
        .unwrap()
        .1
        .to_owned();

    let db = domain::Db::connect(&format!("sqlite://{}/wx.db", dir.path().display()))
        .await
        .unwrap();
    let admin = Admin::new(db, Arc::new(SystemClock));
    assert_eq!(
        admin.consume_link(token).await.unwrap(),
        TenantScope::Tenant("demo".to_owned())
    );
    assert!(matches!(
        admin.consume_link(token).await,
        Err(AdminError::LinkUsed { .. })
    ));
    assert_eq!(admin.consume_link(&all).await.unwrap(), TenantScope::All);

    // An unknown tenant: exit 1, the message names it and what is configured.
    let out = wxbridge(&["admin", "link", "--config", cfg, "--tenant", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown tenant `nope`") && stderr.contains("demo"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    // A configuration that does not load: exit 1 naming the problem.
    let out = wxbridge(&["admin", "link", "--config", "/nonexistent/wxbridge.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!out.stderr.is_empty());
}
