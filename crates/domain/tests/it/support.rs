//! Scaffolding shared by the domain tests: the simulator's clock, the databases a test runs on, unique
//! tenant names, a served simulator with a tenant configured for it, and a receiver for the
//! contacts-sync callbacks the simulator pushes.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use domain::{Db, Tenant, Tenants};
use wx_api::clock::{Clock, SystemClock};
use wx_api::token::MemoryTokenStore;
use wx_crypto::{CallbackCrypto, CallbackMessage};
use wx_sim::{AgentRef, CallbackRequest, RunningSim, Simulator};
use wxbridge_config::file::TenantFile;
use wxbridge_config::{FileConfig, Sources};

/// The simulator's own clock: waiting on it moves the simulator forward, so block windows and budgets
/// pass without real sleeping.
#[derive(Debug)]
pub struct SimClock(pub Simulator);

impl Clock for SimClock {
    fn now_ms(&self) -> i64 {
        self.0.now_ms()
    }

    fn sleep<'a, 'b>(&'a self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(async move {
            self.0.advance_clock(d);
            tokio::task::yield_now().await;
        })
    }
}

/// A migrated SQLite file, and PostgreSQL when WXBRIDGE_TEST_POSTGRES_URL is set (required under
/// CI=true). `what` names the behaviour in the message printed when PostgreSQL is skipped.
pub async fn databases(what: &str) -> (Vec<(&'static str, Db)>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Db::connect(&format!("sqlite://{}/wx.db", dir.path().display()))
        .await
        .unwrap();
    sqlite.migrate().await.unwrap();
    let mut dbs = vec![("sqlite", sqlite)];
    match std::env::var("WXBRIDGE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => {
            let pg = Db::connect(&url).await.unwrap();
            pg.migrate().await.unwrap();
            dbs.push(("postgres", pg));
        }
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but WXBRIDGE_TEST_POSTGRES_URL is not set")
        }
        _ => eprintln!("WXBRIDGE_TEST_POSTGRES_URL unset: {what} tested on SQLite only"),
    }
    (dbs, dir)
}

/// A tenant name no other test run uses, so a shared PostgreSQL database needs no cleanup.
pub fn tenant(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{test}-{nanos}")
}

/// A simulator serving on a free port, and the bridge's tenants configured for it: the simulator's
/// tenant under a unique key, tokens in memory.
pub struct SimEnv {
    pub sim: Simulator,
    _running: RunningSim,
    _dir: tempfile::TempDir,
    pub tenants: Tenants,
    pub key: String,
    /// The simulator's first corp.
    pub corpid: String,
}

impl SimEnv {
    /// Serve `sim` and configure its tenant under `tenant(prefix)`, changed by `edit` first; the token
    /// manager reads `clock`.
    pub async fn start(
        sim: Simulator,
        prefix: &str,
        clock: Arc<dyn Clock>,
        edit: impl FnOnce(&mut TenantFile),
    ) -> SimEnv {
        let running = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let mut file =
            FileConfig::from_toml_str(&sim.info().wxbridge_config("127.0.0.1:0").unwrap()).unwrap();
        let (_, mut tenant_file) = file.tenants.pop_first().unwrap();
        edit(&mut tenant_file);
        let key = tenant(prefix);
        file.tenants.insert(key.clone(), tenant_file);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wxbridge.toml");
        std::fs::write(&path, file.to_toml_string().unwrap()).unwrap();
        let config = wxbridge_config::load(&Sources::file(&path)).unwrap().config;
        let tokens = Tenants::token_manager(&config, Arc::new(MemoryTokenStore::new()), clock);
        let corpid = sim.info().corps[0].corpid.clone();
        SimEnv {
            sim,
            _running: running,
            _dir: dir,
            tenants: Tenants::build(&config, tokens).unwrap(),
            key,
            corpid,
        }
    }

    pub fn tenant(&self) -> &Arc<Tenant> {
        self.tenants.get(&self.key).unwrap()
    }

    /// The tenant's directory, synced from the simulator (it must succeed).
    pub async fn sync(&self, db: &Db) {
        let out = domain::directory::run_full_sync(
            db,
            &self.key,
            self.tenant().contacts().unwrap(),
            Arc::new(SystemClock),
            domain::directory::SyncOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(out.status, domain::progress::SyncStatus::Succeeded);
    }
}

/// Query and body of every POST the receiver got, in order.
type Seen = Arc<Mutex<Vec<(HashMap<String, String>, String)>>>;

#[derive(Clone)]
struct Receiver {
    crypto: CallbackCrypto,
    seen: Seen,
}

async fn verify(
    State(r): State<Receiver>,
    Query(q): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    match r.crypto.verify_url(
        &q["msg_signature"],
        &q["timestamp"],
        &q["nonce"],
        &q["echostr"],
    ) {
        Ok(echo) => (StatusCode::OK, echo),
        Err(_) => (StatusCode::FORBIDDEN, "bad signature".to_owned()),
    }
}

async fn receive(
    State(r): State<Receiver>,
    Query(q): Query<HashMap<String, String>>,
    body: String,
) -> StatusCode {
    r.seen.lock().unwrap().push((q, body));
    StatusCode::OK
}

/// The contacts-sync assistant's callback URL of the simulator's first corp, registered on a tiny local
/// receiver as an operator would: the simulator verifies it, then pushes every change_contact event there.
pub struct ContactsPush {
    pub crypto: CallbackCrypto,
    seen: Seen,
}

impl ContactsPush {
    pub async fn register(sim: &Simulator) -> ContactsPush {
        let corp = sim.info().corps[0].clone();
        let crypto = CallbackCrypto::new(
            &corp.contacts_callback_token,
            &corp.contacts_encoding_aes_key,
            &corp.corpid,
        )
        .unwrap();
        let seen = Seen::default();
        let router = Router::new()
            .route("/cb", get(verify).post(receive))
            .with_state(Receiver {
                crypto: crypto.clone(),
                seen: seen.clone(),
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        sim.register_callback(CallbackRequest {
            agentid: Some(AgentRef::Named("contacts".into())),
            url: format!("http://{addr}/cb"),
            ..CallbackRequest::default()
        })
        .await
        .unwrap();
        ContactsPush { crypto, seen }
    }

    /// The messages pushed since the last call, decrypted and verified, in order.
    pub async fn take(&self, sim: &Simulator) -> Vec<CallbackMessage> {
        sim.wait_for_deliveries().await;
        let seen: Vec<_> = std::mem::take(&mut *self.seen.lock().unwrap());
        seen.into_iter()
            .map(|(q, body)| {
                self.crypto
                    .decrypt_body(
                        &q["msg_signature"],
                        &q["timestamp"],
                        &q["nonce"],
                        body.as_bytes(),
                    )
                    .unwrap()
                    .parse_message()
                    .unwrap()
            })
            .collect()
    }
}
