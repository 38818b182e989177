//! Two replicas against the WeCom simulator: each has its own `TokenManager`, `WecomClient` and pool on
//! one SQL database. Concurrent callers on both make exactly one `gettoken`, and the token works.

use std::path::Path;
use std::sync::Arc;

use secrecy::SecretString;
use tokio::sync::Notify;
use wx_api::clock::ManualClock;
use wx_api::token::{TokenManager, TokenStore};
use wx_api::wecom::{AppCredentials, WecomApp, WecomClient, api};
use wx_sim::Simulator;

use crate::manager::{Observed, STEP_LIMIT};
use crate::support::{self, prefix, with_postgres};

// The app of the simulator's example fixture.
const CORPID: &str = "ww0000000000000001";
const MAIN_AGENTID: i64 = 1_000_002;
const MAIN_SECRET: &str = "main-app-secret-0001";
const CALLERS_PER_REPLICA: usize = 10;

fn http() -> reqwest::Client {
    // Never through a proxy: the simulator is on loopback.
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn one_gettoken_for_two_replicas(url: &str) {
    let sim = Simulator::from_fixture_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../wx-sim/fixtures/example.toml"),
    )
    .unwrap();
    let running = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let clock = ManualClock::new(sim.now_ms());
    let tenant = prefix("sim");
    let refused = Arc::new(Notify::new());

    let mut apps: Vec<WecomApp> = Vec::new();
    for _ in 0..2 {
        let sql = store::SqlTokenStore::new(store::Db::connect(url).await.unwrap());
        let observed: Arc<dyn TokenStore> = Arc::new(Observed::new(sql, refused.clone()));
        let tokens = Arc::new(TokenManager::new(observed, Arc::new(clock.clone())));
        let client = WecomClient::new(http(), &running.base_url, tokens).unwrap();
        apps.push(client.app(AppCredentials {
            tenant: tenant.clone(),
            corpid: CORPID.to_owned(),
            agentid: Some(MAIN_AGENTID),
            secret: SecretString::from(MAIN_SECRET.to_owned()),
        }));
    }

    // The first gettoken is held at the simulator until the other replica has been refused the lease.
    sim.hold_api(api::GETTOKEN);
    let mut tasks = Vec::new();
    for app in &apps {
        for _ in 0..CALLERS_PER_REPLICA {
            let app = app.clone();
            tasks.push(tokio::spawn(async move {
                app.access_token().await.map(|t| t.value().to_owned())
            }));
        }
    }
    tokio::time::timeout(STEP_LIMIT, refused.notified())
        .await
        .unwrap();
    sim.release_api(api::GETTOKEN);

    let mut values = Vec::new();
    for t in tasks {
        values.push(t.await.unwrap().unwrap());
    }
    assert!(
        values.iter().all(|v| *v == values[0]),
        "every caller got the same token"
    );
    assert_eq!(sim.stats().calls(api::GETTOKEN), 1, "gettoken calls");

    // The shared token is accepted by the platform from either replica.
    apps[0].agent_get().await.unwrap();
    apps[1].agent_get().await.unwrap();
    assert_eq!(
        sim.stats().calls(api::GETTOKEN),
        1,
        "gettoken calls after use"
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_replicas_make_one_gettoken() {
    let (db, url, _dir) = support::sqlite_file().await;
    db.close().await;
    one_gettoken_for_two_replicas(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_replicas_make_one_gettoken() {
    with_postgres(|url| async move {
        let db = store::Db::connect(&url).await.unwrap();
        db.migrate().await.unwrap();
        db.close().await;
        one_gettoken_for_two_replicas(&url).await;
    })
    .await;
}
