//! Building an `AppState` from TOML text, with an optional in-memory SQLite database; sending a request
//! to a served bridge and reading its JSON answer.

use std::sync::Arc;

use domain::{Db, Tenants};
use serde_json::Value;
use server::AppState;
use wx_api::clock::SystemClock;
use wx_api::token::MemoryTokenStore;
use wxbridge_config::{Config, Sources};

pub const API_KEY: &str = "wxb_test_key_0123456789";

pub fn config_from(toml: &str) -> Config {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wxbridge.toml");
    std::fs::write(&path, toml).unwrap();
    wxbridge_config::load(&Sources::file(&path)).unwrap().config
}

pub fn toml_with_key() -> String {
    let hash = server::auth::hash_api_key(API_KEY).to_file_string();
    format!(
        r#"
[tokens]
store = "memory"
[tenants.acme]
api_key_hashes = ["{hash}"]
[tenants.acme.wecom]
corpid = "ww1436e0e65a779aee"
[tenants.acme.wecom.apps.main]
agentid = 1000002
secret = "s"
"#
    )
}

pub async fn state(config: Config, with_db: bool) -> AppState {
    let db = if with_db {
        Some(Db::connect("sqlite::memory:").await.unwrap())
    } else {
        None
    };
    let tokens = Tenants::token_manager(
        &config,
        Arc::new(MemoryTokenStore::new()),
        Arc::new(SystemClock),
    );
    let tenants = Tenants::build(&config, tokens).unwrap();
    AppState::new(Arc::new(config), tenants, db)
}

/// Send `req`, with `key` as its bearer token (none: without one): the status and the JSON body (Null
/// when the body is not JSON).
pub async fn send(req: reqwest::RequestBuilder, key: Option<&str>) -> (u16, Value) {
    let req = match key {
        Some(k) => req.bearer_auth(k),
        None => req,
    };
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}
