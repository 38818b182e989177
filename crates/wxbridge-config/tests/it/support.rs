//! Helpers: a minimal valid config and a temp dir to write it to.

use std::path::PathBuf;

use wxbridge_config::{Inspection, Sources, inspect};

pub const KEY_A: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFA";
/// The key of the official WeCom sample (its last character has non-zero trailing bits).
pub const KEY_SAMPLE: &str = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt";

pub fn good_toml() -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:9999"
public_url = "https://bridge.example.com/"

[tenants.demo]
name = "Demo"

[tenants.demo.wecom]
corpid = "ww1436e0e65a779aee"

[tenants.demo.wecom.apps.main]
agentid = 1000002
secret = "app-secret-value"
callback_token = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
encoding_aes_key = "{KEY_SAMPLE}"
"#
    )
}

pub struct Written {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn write(toml: &str) -> Written {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wxbridge.toml");
    std::fs::write(&path, toml).unwrap();
    Written { dir, path }
}

pub fn inspect_toml(toml: &str) -> Inspection {
    let w = write(toml);
    inspect(&Sources::file(&w.path)).unwrap()
}

pub fn error_paths(i: &Inspection) -> Vec<String> {
    i.problems
        .iter()
        .filter(|p| p.is_error())
        .map(|p| p.path.clone())
        .collect()
}
