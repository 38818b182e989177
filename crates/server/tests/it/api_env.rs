//! A server on a real port over a migrated database (SQLite, and a throwaway PostgreSQL database when
//! WXBRIDGE_TEST_POSTGRES_URL is set; required under CI=true), with a tenant syncing from the simulator and
//! a second tenant (`beta`, another corp) with its own key, plus helpers to call it and read SSE streams.

use std::sync::Arc;
use std::time::Duration;

use domain::{Db, Tenants};
use serde_json::Value;
use server::AppState;
use wx_api::clock::SystemClock;
use wx_api::token::MemoryTokenStore;
use wx_sim::{RunningSim, SimConfig, Simulator};
use wxbridge_config::FileConfig;

use crate::support::{config_from, send};

/// The database backends to run on: always SQLite, PostgreSQL when configured.
pub fn backends() -> Vec<&'static str> {
    let mut out = vec!["sqlite"];
    match std::env::var("WXBRIDGE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => out.push("postgres"),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but WXBRIDGE_TEST_POSTGRES_URL is not set"
            );
            eprintln!("WXBRIDGE_TEST_POSTGRES_URL unset: the HTTP API is tested on SQLite only");
        }
    }
    out
}

pub struct ApiEnv {
    pub sim: Simulator,
    pub http: reqwest::Client,
    pub base: String,
    /// The tenant syncing from the simulator, and its key.
    pub tenant: String,
    pub key: String,
    /// The other tenant and its key.
    pub beta: String,
    pub beta_key: String,
    pub corpid: String,
    config: Arc<wxbridge_config::Config>,
    db: Db,
    /// The throwaway PostgreSQL database, dropped by [`ApiEnv::shutdown`].
    pg_database: Option<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), server::ServerError>>>,
    running: Option<RunningSim>,
    _dir: tempfile::TempDir,
}

/// A new empty PostgreSQL database on the configured server (so a test never depends on the migration
/// state of a shared one): its URL and name.
pub async fn create_pg_database() -> (String, String) {
    let server_url = std::env::var("WXBRIDGE_TEST_POSTGRES_URL").unwrap();
    let admin = Db::connect(&server_url).await.unwrap();
    let name = format!("wxb_test_{:016x}", rand::random::<u64>());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(admin.postgres().unwrap())
        .await
        .unwrap();
    admin.close().await;
    let mut url = url::Url::parse(&server_url).unwrap();
    url.set_path(&name);
    (url.to_string(), name)
}

/// A tenant key no other test run uses, so a shared PostgreSQL database needs no cleanup.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{:x}-{:x}", nanos, rand::random::<u32>())
}

pub async fn api_env(backend: &str, cfg: SimConfig) -> ApiEnv {
    let sim = Simulator::generate(cfg);
    let running = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut file =
        FileConfig::from_toml_str(&sim.info().wxbridge_config("127.0.0.1:0").unwrap()).unwrap();
    let tenant = unique("acme");
    let beta = unique("beta");
    let (key, hash) = server::auth::generate_api_key();
    let (beta_key, beta_hash) = server::auth::generate_api_key();
    let mut t = file.tenants.remove("demo").unwrap();
    t.api_key_hashes = vec![hash.to_file_string()];
    file.tenants.insert(tenant.clone(), t);
    let toml = format!(
        "{}\n[tenants.{beta}]\napi_key_hashes = [\"{}\"]\n[tenants.{beta}.wecom]\ncorpid = \"ww0000000000000002\"\n[tenants.{beta}.wecom.apps.x]\nagentid = 5\nsecret = \"s\"\n",
        file.to_toml_string().unwrap(),
        beta_hash.to_file_string()
    );
    let config = config_from(&toml);

    let dir = tempfile::tempdir().unwrap();
    let (db, pg_database) = match backend {
        "sqlite" => (
            Db::connect(&format!("sqlite://{}/wx.db", dir.path().display()))
                .await
                .unwrap(),
            None,
        ),
        "postgres" => {
            let (url, name) = create_pg_database().await;
            (Db::connect(&url).await.unwrap(), Some(name))
        }
        other => panic!("unknown backend {other}"),
    };
    db.migrate().await.unwrap();

    let config = Arc::new(config);
    let (addr, stop, server) = spawn_server(config.clone(), db.clone()).await;
    let corpid = sim.info().corps[0].corpid.clone();
    ApiEnv {
        sim,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        base: format!("http://{addr}"),
        tenant,
        key,
        beta,
        beta_key,
        corpid,
        config,
        db,
        pg_database,
        stop: Some(stop),
        server: Some(server),
        running: Some(running),
        _dir: dir,
    }
}

type Spawned = (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), server::ServerError>>,
);

/// A server (its own tenants, token cache, progress hub) over `db` on a fresh port.
async fn spawn_server(config: Arc<wxbridge_config::Config>, db: Db) -> Spawned {
    let tokens = Tenants::token_manager(
        &config,
        Arc::new(MemoryTokenStore::new()),
        Arc::new(SystemClock),
    );
    let tenants = Tenants::build(&config, tokens).unwrap();
    let state = AppState::new(config, tenants, Some(db));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::serve_on(state, listener, async {
        let _ = stopped.await;
    }));
    (addr, stop, server)
}

/// Guards against a hang (a stream that never ends); not a performance assertion.
pub const PATIENCE: Duration = Duration::from_secs(120);

impl ApiEnv {
    /// `/api/v1/tenants/{tenant}` + `rest`.
    pub fn url(&self, tenant: &str, rest: &str) -> String {
        format!("{}/api/v1/tenants/{tenant}{rest}", self.base)
    }

    /// GET with a key (or none): status and JSON body (Null when the body is not JSON).
    pub async fn get_as(&self, key: Option<&str>, tenant: &str, rest: &str) -> (u16, Value) {
        send(self.http.get(self.url(tenant, rest)), key).await
    }

    /// GET on the main tenant with its key.
    pub async fn get(&self, rest: &str) -> (u16, Value) {
        self.get_as(Some(&self.key), &self.tenant, rest).await
    }

    /// GET that must answer 200.
    pub async fn ok(&self, rest: &str) -> Value {
        let (status, json) = self.get(rest).await;
        assert_eq!(status, 200, "GET {rest}: {json}");
        json
    }

    /// POST `.../sync` with a raw body: status and JSON.
    pub async fn start_sync(&self, body: &str) -> (u16, Value) {
        let req = self
            .http
            .post(self.url(&self.tenant, "/sync"))
            .header("content-type", "application/json")
            .body(body.to_owned());
        send(req, Some(&self.key)).await
    }

    /// Start a sync that must be accepted; its run id.
    pub async fn started(&self, body: &str) -> i64 {
        let (status, json) = self.start_sync(body).await;
        assert_eq!(status, 202, "{json}");
        json["run_id"].as_i64().unwrap()
    }

    /// The whole SSE body of a run's events (the server ends it after `finished`).
    pub async fn events_text(&self, run: i64, last_event_id: Option<u64>) -> String {
        let mut req = self
            .http
            .get(self.url(&self.tenant, &format!("/sync/runs/{run}/events")))
            .bearer_auth(&self.key);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let resp = tokio::time::timeout(PATIENCE, req.send())
            .await
            .expect("the events request hung")
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        tokio::time::timeout(PATIENCE, resp.text())
            .await
            .expect("the event stream did not end")
            .unwrap()
    }

    /// Run a full sync over HTTP and wait for its end; its id.
    pub async fn sync_to_end(&self, body: &str) -> i64 {
        let run = self.started(body).await;
        let frames = parse_sse(&self.events_text(run, None).await);
        assert_eq!(
            frames.last().unwrap().data["kind"]["type"],
            "finished",
            "{frames:?}"
        );
        run
    }

    /// A second server on the same database and configuration, as another replica would be: it does not
    /// share this one's progress hub or run registry. The returned env shares the simulator; shut it down
    /// with [`ApiEnv::shutdown`] too (it leaves the simulator running).
    pub async fn replica(&self) -> ApiEnv {
        let (addr, stop, server) = spawn_server(self.config.clone(), self.db.clone()).await;
        ApiEnv {
            sim: self.sim.clone(),
            http: self.http.clone(),
            base: format!("http://{addr}"),
            tenant: self.tenant.clone(),
            key: self.key.clone(),
            beta: self.beta.clone(),
            beta_key: self.beta_key.clone(),
            corpid: self.corpid.clone(),
            config: self.config.clone(),
            db: self.db.clone(),
            pg_database: None,
            stop: Some(stop),
            server: Some(server),
            running: None,
            _dir: tempfile::tempdir().unwrap(),
        }
    }

    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
        if let Some(name) = self.pg_database.take() {
            self.db.close().await;
            let admin = Db::connect(&std::env::var("WXBRIDGE_TEST_POSTGRES_URL").unwrap())
                .await
                .unwrap();
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(admin.postgres().unwrap())
                .await
                .unwrap();
            admin.close().await;
        }
    }
}

/// One SSE frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub event: String,
    pub id: Option<u64>,
    pub data: Value,
}

/// Parse an SSE body into frames (comments and keep-alives skipped; each data line is one JSON document).
pub fn parse_sse(body: &str) -> Vec<Frame> {
    body.split("\n\n")
        .filter_map(|block| {
            let mut event = None;
            let mut id = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().parse().unwrap());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            let event = event?;
            Some(Frame {
                event,
                id,
                data: serde_json::from_str(&data).unwrap(),
            })
        })
        .collect()
}
