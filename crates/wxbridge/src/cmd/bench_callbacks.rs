//! `wxbridge bench callbacks`: the callback endpoint's load benchmark of issue 5. Runs the real server
//! (router, dispatch worker and all) on loopback over a fresh SQLite file, pre-builds N distinct signed
//! and encrypted WeCom app callbacks (text messages with unique MsgIds: the dispatch worker claims each
//! and raises `message.received`, which no webhook is configured to take, so no upstream is needed), sends
//! them over C keep-alive HTTP/1.1 connections, and reports accepted callbacks per second (verified,
//! decrypted, in the inbox, acknowledged with 200), the p50 / p99 / max acknowledgement latency seen by
//! the client, and how long the dispatch worker took to finish every row. Client and server share this
//! process and its cores; the client is hyper's bare connection API so it takes as little of them as it
//! can.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
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
    /// Rows the dispatch worker had finished when the last acknowledgement came back.
    dispatched_at_ack_end: i64,
    /// Seconds from the first request until the dispatch worker had finished every row (None: it had
    /// not within the drain timeout).
    drained_seconds: Option<f64>,
    dispatched_per_second: Option<f64>,
}

/// How long to wait, after the last acknowledgement, for the dispatch worker to finish the inbox.
const DRAIN_TIMEOUT_SECS: u64 = 120;

/// The inbox's rows and how many of them the dispatch worker has finished (done, left for the webhook
/// or dead: anything not pending or claimed).
async fn inbox_progress(db: &store::Db) -> Result<(i64, i64), CmdError> {
    let counts = db.inbox_counts("bench").await.map_err(CmdError::new)?;
    let rows = counts.iter().map(|(_, n)| n).sum();
    let finished = counts
        .iter()
        .filter(|(s, _)| {
            !matches!(
                s,
                store::InboxStatus::Pending | store::InboxStatus::Processing
            )
        })
        .map(|(_, n)| n)
        .sum();
    Ok((rows, finished))
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
        println!(
            "  inbox rows: {} ({} already dispatched when the last ack came back)",
            report.inbox_rows, report.dispatched_at_ack_end
        );
        match (report.drained_seconds, report.dispatched_per_second) {
            (Some(s), Some(rate)) => println!(
                "  dispatch worker finished every row {s:.2} s after the first request = {rate:.0} dispatched/s"
            ),
            _ => println!(
                "  dispatch worker had not finished every row {DRAIN_TIMEOUT_SECS} s after the last ack"
            ),
        }
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
    let (host, path) = (addr.to_string(), "/callback/bench/wecom/apps/main");
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
        let request = http::Request::post(format!(
            "{path}?msg_signature={sig}&timestamp={ts}&nonce={nonce}"
        ))
        .header(http::header::HOST, &host)
        .header(http::header::CONTENT_TYPE, "text/xml")
        .body(Full::new(Bytes::from(body)))
        .map_err(CmdError::new)?;
        requests.push(request);
    }
    let queue = Arc::new(std::sync::Mutex::new(requests.into_iter()));

    let start = Instant::now();
    let clients = (0..args.concurrency.max(1)).map(|_| {
        let queue = queue.clone();
        tokio::spawn(client_loop(addr, queue))
    });
    let mut results: Vec<(bool, Duration)> = Vec::with_capacity(args.count);
    for joined in futures::future::join_all(clients).await {
        results.extend(joined.map_err(CmdError::new)??);
    }
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
    let (inbox_rows, dispatched_at_ack_end) = inbox_progress(&db).await?;
    let drain_deadline = Instant::now() + Duration::from_secs(DRAIN_TIMEOUT_SECS);
    let mut drained_seconds = None;
    loop {
        let (rows, finished) = inbox_progress(&db).await?;
        if finished == rows {
            drained_seconds = Some(start.elapsed().as_secs_f64());
            break;
        }
        if Instant::now() > drain_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
        dispatched_at_ack_end,
        drained_seconds,
        dispatched_per_second: drained_seconds.map(|s| inbox_rows as f64 / s.max(1e-9)),
    })
}

type BenchRequest = http::Request<Full<Bytes>>;
type Queue = Arc<std::sync::Mutex<std::vec::IntoIter<BenchRequest>>>;

/// One keep-alive HTTP/1.1 connection taking pre-built requests off the shared queue until it is empty,
/// timing each from send to the last byte of the answer. hyper's connection API, with no pool, URL
/// parsing or header building per request, so the cores the client shares with the server go to the
/// server, as with an external load generator such as wrk.
async fn client_loop(
    addr: std::net::SocketAddr,
    queue: Queue,
) -> Result<Vec<(bool, Duration)>, CmdError> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| CmdError::new(format!("bench client connect: {e}")))?;
    stream.set_nodelay(true).map_err(CmdError::new)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| CmdError::new(format!("bench client handshake: {e}")))?;
    let driver = tokio::spawn(conn);
    let mut timings = Vec::new();
    while let Some(request) = queue.lock().ok().and_then(|mut q| q.next()) {
        let t = Instant::now();
        let ok = match sender.send_request(request).await {
            Ok(r) => r.status() == http::StatusCode::OK && r.into_body().collect().await.is_ok(),
            Err(_) => false,
        };
        timings.push((ok, t.elapsed()));
    }
    drop(sender);
    let _ = driver.await;
    Ok(timings)
}
