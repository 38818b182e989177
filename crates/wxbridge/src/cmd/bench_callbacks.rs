//! `wxbridge bench callbacks`: the callback endpoint's load benchmark of issue 5. Runs the real server
//! (router, dispatch worker and all) on loopback over a fresh SQLite file, pre-builds N distinct signed
//! and encrypted WeCom app callbacks (text messages with unique MsgIds, so the worker only marks them for
//! the webhook and no upstream is needed), POSTs them with C in flight, and reports accepted callbacks per
//! second (verified, decrypted, in the inbox, acknowledged with 200) and the p50 / p99 / max
//! acknowledgement latency seen by the client. Client and server share this process and its cores.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde::Serialize;
use wx_api::clock::SystemClock;
use wx_api::token::MemoryTokenStore;
use wx_crypto::{CallbackCrypto, XmlBuilder};

use super::{CmdError, CmdResult};

const CORPID: &str = "wwbench0000000001";
const TOKEN: &str = "BenchToken123";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const AGENTID: i64 = 1000002;

#[derive(Debug, clap::Args)]
pub struct BenchCallbacksArgs {
    /// Callbacks to send (each distinct).
    #[arg(long, default_value_t = 20_000)]
    pub count: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    count: usize,
    concurrency: usize,
    accepted: usize,
    refused: usize,
    seconds: f64,
    accepted_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    inbox_rows: i64,
}

fn config_toml(dir: &std::path::Path) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
[database]
url = "sqlite://{db}"
[tokens]
store = "memory"
[tenants.bench.wecom]
corpid = "{CORPID}"
[tenants.bench.wecom.apps.main]
agentid = {AGENTID}
secret = "unused"
callback_token = "{TOKEN}"
encoding_aes_key = "{AES_KEY}"
"#,
        db = dir.join("bench.db").display()
    )
}

pub fn run(args: BenchCallbacksArgs) -> CmdResult {
    super::serve::runtime()?.block_on(bench(args))
}

async fn bench(args: BenchCallbacksArgs) -> CmdResult {
    let dir = std::env::temp_dir().join(format!("wxbridge-bench-cb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| CmdError::new(format!("scratch dir: {e}")))?;
    let result = bench_in(&args, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    let report = result?;
    if args.json {
        println!("{}", serde_json::to_string(&report).map_err(CmdError::new)?);
    } else {
        println!(
            "callbacks: {} sent, {} in flight, SQLite, loopback HTTP",
            report.count, report.concurrency
        );
        println!(
            "  accepted {} (refused {}) in {:.2} s = {:.0} accepted/s",
            report.accepted, report.refused, report.seconds, report.accepted_per_second
        );
        println!(
            "  ack latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            report.p50_ms, report.p99_ms, report.max_ms
        );
        println!("  inbox rows: {}", report.inbox_rows);
    }
    Ok(())
}

async fn bench_in(args: &BenchCallbacksArgs, dir: &std::path::Path) -> Result<Report, CmdError> {
    let path = dir.join("wxbridge.toml");
    std::fs::write(&path, config_toml(dir)).map_err(|e| CmdError::new(format!("config: {e}")))?;
    let config = Arc::new(
        wxbridge_config::load(&wxbridge_config::Sources::file(&path))
            .map_err(CmdError::new)?
            .config,
    );
    let db = store::Db::connect(config.database.url())
        .await
        .map_err(CmdError::new)?;
    db.migrate().await.map_err(CmdError::new)?;
    let tokens = domain::Tenants::token_manager(
        &config,
        Arc::new(MemoryTokenStore::new()),
        Arc::new(SystemClock),
    );
    let tenants = domain::Tenants::build(&config, tokens).map_err(CmdError::new)?;
    let state = server::AppState::new(config.clone(), tenants, Some(db.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(CmdError::new)?;
    let addr = listener.local_addr().map_err(CmdError::new)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::serve_on(state, listener, async {
        let _ = stopped.await;
    }));

    // Build every request before the clock starts.
    let crypto = CallbackCrypto::new(TOKEN, AES_KEY, CORPID).map_err(CmdError::new)?;
    let url = format!("http://{addr}/callback/bench/wecom/apps/main");
    let mut requests = Vec::with_capacity(args.count);
    for i in 0..args.count {
        let mut b = XmlBuilder::new();
        b.cdata("ToUserName", CORPID)
            .cdata("FromUserName", &format!("user{}", i % 1000))
            .text("CreateTime", "1700000000")
            .cdata("MsgType", "text")
            .cdata("Content", "benchmark message")
            .text("MsgId", &format!("{}", 7_000_000_000u64 + i as u64))
            .text("AgentID", &AGENTID.to_string());
        let (ts, nonce) = ("1700000000", format!("{i:010}"));
        let mut r16 = [0u8; 16];
        r16[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let encrypt = crypto
            .encrypt(b.finish().as_bytes(), r16)
            .map_err(CmdError::new)?;
        let sig = crypto.sign(ts, &nonce, &encrypt);
        let body = format!(
            "<xml><ToUserName><![CDATA[{CORPID}]]></ToUserName><AgentID><![CDATA[{AGENTID}]]></AgentID><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        );
        requests.push((
            format!("{url}?msg_signature={sig}&timestamp={ts}&nonce={nonce}"),
            body,
        ));
    }
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .map_err(CmdError::new)?;

    let start = Instant::now();
    let results: Vec<(bool, Duration)> = futures::stream::iter(requests)
        .map(|(u, body)| {
            let http = http.clone();
            async move {
                let t = Instant::now();
                let ok = match http.post(u).body(body).send().await {
                    Ok(r) => r.status().as_u16() == 200 && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                (ok, t.elapsed())
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let seconds = start.elapsed().as_secs_f64();

    let accepted = results.iter().filter(|(ok, _)| *ok).count();
    let mut lat: Vec<Duration> = results.iter().map(|(_, d)| *d).collect();
    lat.sort();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        lat.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let inbox_rows = db
        .inbox_counts("bench")
        .await
        .map_err(CmdError::new)?
        .iter()
        .map(|(_, n)| n)
        .sum();
    let _ = stop.send(());
    let _ = server.await;
    db.close().await;
    Ok(Report {
        count: args.count,
        concurrency: args.concurrency,
        accepted,
        refused: results.len() - accepted,
        seconds,
        accepted_per_second: accepted as f64 / seconds.max(1e-9),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: pct(1.0),
        inbox_rows,
    })
}
