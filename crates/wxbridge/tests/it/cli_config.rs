//! `wxbridge check` run as a real process: offline validation, unknown keys, bad keys, `*_FILE` secrets,
//! environment overrides, and a live check against a simulator that reports a wrong secret with its hint.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wxbridge_config::{FileConfig, FileSecret};

const KEY: &str = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt";

fn good_toml() -> String {
    format!(
        r#"
[server]
public_url = "https://bridge.example.com"

[tenants.demo.wecom]
corpid = "ww1436e0e65a779aee"

[tenants.demo.wecom.apps.main]
agentid = 1000002
secret = "app-secret-value"
callback_token = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
encoding_aes_key = "{KEY}"
"#
    )
}

fn write(dir: &Path, toml: &str) -> PathBuf {
    let p = dir.join("wxbridge.toml");
    std::fs::write(&p, toml).unwrap();
    p
}

/// Run the binary with a clean WXBRIDGE_* environment plus `env`.
fn wxbridge(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wxbridge"));
    cmd.args(args);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("WXBRIDGE_")) {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn offline_check_of_a_good_config_exits_0_and_prints_callback_urls() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), &good_toml());
    let out = wxbridge(
        &["check", "--offline", "--config", cfg.to_str().unwrap()],
        &[],
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("https://bridge.example.com/callback/demo/wecom/apps/main"),
        "{t}"
    );
    assert!(
        t.contains("as configured (tenants.demo.wecom.apps.main.callback_token)"),
        "{t}"
    );
    assert!(
        !t.contains("app-secret-value") && !t.contains("hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"),
        "secrets printed: {t}"
    );
}

#[test]
fn unknown_key_exits_1_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        &good_toml().replace(
            "secret = \"app-secret-value\"",
            "secrt = \"app-secret-value\"",
        ),
    );
    let out = wxbridge(
        &["check", "--offline", "--config", cfg.to_str().unwrap()],
        &[],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("tenants.demo.wecom.apps.main.secrt"), "{t}");
    assert!(t.contains("did you mean `secret`?"), "{t}");
}

#[test]
fn bad_encoding_aes_key_is_reported_with_path_and_hint() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), &good_toml().replace(KEY, "not-a-key"));
    let out = wxbridge(
        &[
            "check",
            "--offline",
            "--json",
            "--config",
            cfg.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = report["problems"].as_array().unwrap();
    let p = problems
        .iter()
        .find(|p| p["path"] == "tenants.demo.wecom.apps.main.encoding_aes_key")
        .unwrap_or_else(|| panic!("no problem for the key: {report:#}"));
    assert_eq!(p["severity"], "error");
    assert!(p["message"].as_str().unwrap().contains("43"), "{p}");
    assert!(p["hint"].as_str().unwrap().contains("接收消息"), "{p}");
}

#[test]
fn secret_from_a_file_named_by_env_works() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        &good_toml().replace("secret = \"app-secret-value\"\n", ""),
    );
    let args = ["check", "--offline", "--config", cfg.to_str().unwrap()];
    // Without the secret the app is incomplete...
    let out = wxbridge(&args, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("tenants.demo.wecom.apps.main.secret"));
    // ...and a file named by WXBRIDGE_..._SECRET_FILE supplies it.
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "from-file\n").unwrap();
    let out = wxbridge(
        &args,
        &[(
            "WXBRIDGE_TENANTS__DEMO__WECOM__APPS__MAIN__SECRET_FILE",
            secret.to_str().unwrap(),
        )],
    );
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn env_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), &good_toml());
    let out = wxbridge(
        &["check", "--offline", "--config", cfg.to_str().unwrap()],
        &[("WXBRIDGE_SERVER__PUBLIC_URL", "https://other.example.org")],
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("https://other.example.org/callback/demo/wecom/apps/main"),
        "{t}"
    );
    // An env value that breaks validation is reported under the key it maps to.
    let out = wxbridge(
        &["check", "--offline", "--config", cfg.to_str().unwrap()],
        &[("WXBRIDGE_TENANTS__DEMO__WECOM__APPS__MAIN__AGENTID", "0")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("tenants.demo.wecom.apps.main.agentid"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_check_against_the_simulator_explains_a_wrong_secret() {
    let sim = wx_sim::Simulator::generate(wx_sim::SimConfig::new(1, 20, 3));
    let running = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let generated = sim.info().wxbridge_config("127.0.0.1:0").unwrap();
    let mut file = FileConfig::from_toml_str(&generated).unwrap();
    let tenant = file.tenants.get_mut("demo").unwrap();
    let apps = &mut tenant.wecom.as_mut().unwrap().apps;
    let app_name = apps
        .keys()
        .find(|k| k.as_str() == "main")
        .cloned()
        .unwrap_or_else(|| apps.keys().next().unwrap().clone());
    apps.get_mut(&app_name).unwrap().secret = Some(FileSecret::new("wrong-secret-for-test"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), &file.to_toml_string().unwrap());

    let cfg_s = cfg.to_str().unwrap().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        wxbridge(&["check", "--json", "--config", &cfg_s], &[])
    })
    .await
    .unwrap();
    running.shutdown().await;

    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = report["tenants"][0]["items"].as_array().unwrap();
    let failed: Vec<_> = items.iter().filter(|i| i["status"] == "error").collect();
    assert_eq!(failed.len(), 1, "only the wrong secret fails: {report:#}");
    let f = failed[0];
    assert_eq!(f["errcode"], 40001);
    assert!(
        f["subject"]
            .as_str()
            .unwrap()
            .contains(&format!("`{app_name}`")),
        "{f}"
    );
    let hint = f["hint"].as_str().unwrap();
    assert!(
        hint.contains("the secret does not match corpid") && hint.contains("应用管理"),
        "{hint}"
    );
    // The other credentials were checked and passed.
    assert!(
        items
            .iter()
            .any(|i| i["status"] == "ok" && i["check"] == "access token"),
        "{report:#}"
    );
    assert!(!text(&out).contains("wrong-secret-for-test"));
}
