//! Building an `AppState` from TOML text, with an optional in-memory SQLite database.

use std::sync::Arc;

use domain::{Db, Tenants};
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
