//! Shared by the crash tests: real `wxbridge sim` and `wxbridge serve` processes (killed on drop),
//! minimal HTTP/1.1 over fresh connections (so a killed server shows as an error, not a hang), and the
//! directory sync the message burst needs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A child process, killed and reaped when dropped.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 request over a fresh connection with a raw body: (status, body text).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// A JSON request with an optional bearer key: (status, JSON body or Null).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    let auth = bearer.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    let body = body.map(Value::to_string).unwrap_or_default();
    let (status, text) = http(addr, method, path, &headers, body.as_bytes())?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// `wxbridge sim` on a free port writing a bridge configuration (tenant `demo`) for `bridge` to
/// `config`: the process and the simulator's address.
pub fn start_sim(config: &Path, bridge: SocketAddr, seed: u32) -> (Running, SocketAddr) {
    let mut sim = Running(
        Command::new(env!("CARGO_BIN_EXE_wxbridge"))
            .args(["sim", "--members", "30", "--departments", "5"])
            .args(["--seed", &seed.to_string()])
            .args(["--port", "0", "--write-config"])
            .arg(config)
            .args(["--bridge-listen", &bridge.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut first_line = String::new();
    BufReader::new(sim.0.stdout.take().unwrap())
        .read_line(&mut first_line)
        .unwrap();
    let info: Value = serde_json::from_str(&first_line).unwrap();
    let addr: SocketAddr = info["base_url"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    (sim, addr)
}

/// `wxbridge serve` with `config`, in `dir`, with the API key hash `hash` for tenant `demo`.
pub fn serve(config: &Path, dir: &Path, hash: &str) -> Running {
    serve_with_env(config, dir, hash, &[])
}

/// [`serve`] with more configuration in the environment form (`WXBRIDGE_SERVER__...`).
pub fn serve_with_env(config: &Path, dir: &Path, hash: &str, env: &[(&str, &str)]) -> Running {
    Running(
        Command::new(env!("CARGO_BIN_EXE_wxbridge"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .current_dir(dir)
            .env("WXBRIDGE_TENANTS__DEMO__API_KEY_HASHES", hash)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

pub fn wait_until_up(addr: SocketAddr, server: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok((200, _)) = request(addr, "GET", "/healthz", None, None) {
            return;
        }
        if let Some(status) = server.try_wait().unwrap() {
            panic!("wxbridge serve exited early with {status}");
        }
        assert!(Instant::now() < deadline, "wxbridge serve did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Syncs tenant `demo` over HTTP to the end; the local role id of the root department.
pub fn sync_demo(bridge: SocketAddr, key: &str) -> i64 {
    let (status, run) = request(
        bridge,
        "POST",
        "/api/v1/tenants/demo/sync",
        Some(key),
        Some(&json!({})),
    )
    .unwrap();
    assert_eq!(status, 202, "{run}");
    let run_id = run["run_id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, r) = request(
            bridge,
            "GET",
            &format!("/api/v1/tenants/demo/sync/runs/{run_id}"),
            Some(key),
            None,
        )
        .unwrap();
        if r["status"] != "running" {
            assert_eq!(r["status"], "succeeded", "{r}");
            break;
        }
        assert!(Instant::now() < deadline, "sync did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, root) = request(
        bridge,
        "GET",
        "/api/v1/tenants/demo/wecom/departments/1",
        Some(key),
        None,
    )
    .unwrap();
    assert_eq!(status, 200, "{root}");
    root["id"].as_i64().unwrap()
}

/// Accepts one text message to `role` (with sub-roles) through tenant `demo`'s outbox: its id, or
/// None when the server did not answer (it was killed).
pub fn queue_message(bridge: SocketAddr, key: &str, role: i64, content: &str) -> Option<i64> {
    let body = json!({
        "app": "main",
        "idempotency_key": content.replace(' ', "-"),
        "to": { "roles": [{ "id": role, "sub_roles": true }] },
        "message": { "kind": "text", "content": content },
    });
    match request(
        bridge,
        "POST",
        "/api/v1/tenants/demo/messages",
        Some(key),
        Some(&body),
    ) {
        Ok((202, v)) => Some(v["message_id"].as_i64().unwrap()),
        Ok((status, v)) => panic!("message {content}: {status} {v}"),
        Err(_) => None,
    }
}

/// Texts starting with `prefix` that the simulator recorded as sent: content -> times sent.
pub fn sent_texts(sim: SocketAddr, prefix: &str) -> std::collections::BTreeMap<String, u32> {
    let (status, stats) = request(sim, "GET", "/_sim/stats", None, None).unwrap();
    assert_eq!(status, 200);
    let mut out = std::collections::BTreeMap::new();
    for m in stats["messages"].as_array().unwrap() {
        if let Some(c) = m["body"]["text"]["content"].as_str()
            && c.starts_with(prefix)
        {
            *out.entry(c.to_owned()).or_insert(0) += 1;
        }
    }
    out
}

/// Waits (up to `patience`) until every content in `accepted` was sent, then checks each message is
/// `sent` and at most the one call in flight at a kill went out twice; the number sent twice.
pub fn assert_all_sent_once(
    bridge: SocketAddr,
    sim: SocketAddr,
    key: &str,
    prefix: &str,
    accepted: &std::collections::BTreeMap<String, i64>,
    patience: Duration,
) -> usize {
    let deadline = Instant::now() + patience;
    loop {
        let sent = sent_texts(sim, prefix);
        if accepted.keys().all(|c| sent.contains_key(c)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {} accepted messages sent after the restart",
            accepted.keys().filter(|c| sent.contains_key(*c)).count(),
            accepted.len()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    for (content, id) in accepted {
        let (status, view) = request(
            bridge,
            "GET",
            &format!("/api/v1/tenants/demo/messages/{id}"),
            Some(key),
            None,
        )
        .unwrap();
        assert_eq!(status, 200, "{view}");
        assert_eq!(view["status"], "sent", "{content}: {view}");
    }
    let sent = sent_texts(sim, prefix);
    let duplicated: Vec<(&String, &u32)> = sent.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicated.len() <= 1 && duplicated.iter().all(|(_, n)| **n == 2),
        "only the call in flight at the kill may go out twice: {duplicated:?}"
    );
    duplicated.len()
}
