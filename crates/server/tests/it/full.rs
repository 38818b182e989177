//! The server on a real port with tenants pointing at the simulator: a token fetched through the tenant's
//! credential shows up as cached in the token-health API, and the token value never does.

use std::sync::Arc;

use domain::{CredentialKind, Tenants};
use server::AppState;
use wx_api::clock::SystemClock;
use wx_api::token::MemoryTokenStore;
use wxbridge_config::FileConfig;

use crate::support::config_from;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_health_over_http_against_the_simulator() {
    let sim = wx_sim::Simulator::generate(wx_sim::SimConfig::new(3, 10, 2));
    let running = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut file =
        FileConfig::from_toml_str(&sim.info().wxbridge_config("127.0.0.1:0").unwrap()).unwrap();
    let (key, hash) = server::auth::generate_api_key();
    file.tenants.get_mut("demo").unwrap().api_key_hashes = vec![hash.to_file_string()];
    let config = config_from(&file.to_toml_string().unwrap());

    let tokens = Tenants::token_manager(
        &config,
        Arc::new(MemoryTokenStore::new()),
        Arc::new(SystemClock),
    );
    let tenants = Tenants::build(&config, tokens).unwrap();
    let db = domain::Db::connect("sqlite::memory:").await.unwrap();
    let state = AppState::new(Arc::new(config), tenants.clone(), Some(db));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::serve_on(state, listener, async {
        let _ = stopped.await;
    }));

    // Fetch one app's token through the tenant runtime.
    let demo = tenants.get("demo").unwrap();
    let main = demo
        .credentials
        .iter()
        .find(|c| c.kind == CredentialKind::WecomApp)
        .unwrap();
    let token = main.access_token().await.unwrap();

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = format!("http://{addr}");
    assert_eq!(
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let resp = http
        .get(format!("{base}/api/v1/tenants/demo/tokens"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    assert!(
        !body.contains(token.value()),
        "the token value leaked: {body}"
    );
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let entries = json["tokens"].as_array().unwrap();
    let mine = entries
        .iter()
        .find(|t| t["name"] == main.name.as_str())
        .unwrap();
    assert_eq!(mine["cached"], true);
    assert!(mine["expires_in_secs"].as_i64().unwrap() > 7000);
    // Nothing else was fetched, so nothing else is cached.
    assert!(
        entries
            .iter()
            .filter(|t| t["name"] != main.name.as_str())
            .all(|t| t["cached"] == false),
        "{json:#}"
    );

    let _ = stop.send(());
    server.await.unwrap().unwrap();
    running.shutdown().await;
}
