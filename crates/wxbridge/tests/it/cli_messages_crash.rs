//! A crash in the middle of a burst of queued messages, with real processes: `wxbridge sim` and `wxbridge
//! serve` on SQLite; the directory is synced over HTTP, messages are posted as fast as the server takes
//! them, the server is killed (SIGKILL) once the simulator has recorded some sends, and a new server on the
//! same database finishes the rest after the dead one's leases expire. Every accepted message ends `sent`
//! and reaches the simulator; at most the one call in flight at the kill may go out twice (the documented
//! window between WeCom's answer and the row marking it sent), and the test prints how many did.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal HTTP/1.1 request over a fresh connection: (status, JSON body or Null).
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    let auth = bearer
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
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
    Ok((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
}

fn serve(config: &Path, dir: &Path, hash: &str) -> Running {
    Running(
        Command::new(env!("CARGO_BIN_EXE_wxbridge"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .current_dir(dir)
            .env("WXBRIDGE_TENANTS__DEMO__API_KEY_HASHES", hash)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn wait_until_up(addr: SocketAddr, server: &mut Child) {
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

/// Texts of the burst's messages as the simulator recorded them: content -> times sent.
fn sent_burst(sim: SocketAddr) -> BTreeMap<String, u32> {
    let (status, stats) = request(sim, "GET", "/_sim/stats", None, None).unwrap();
    assert_eq!(status, 200);
    let mut out = BTreeMap::new();
    for m in stats["messages"].as_array().unwrap() {
        if let Some(c) = m["body"]["text"]["content"].as_str()
            && c.starts_with("crash ")
        {
            *out.entry(c.to_owned()).or_insert(0) += 1;
        }
    }
    out
}

#[test]
fn a_server_killed_mid_burst_sends_every_accepted_message_once_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wxbridge.toml");
    let bridge: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut sim = Running(
        Command::new(env!("CARGO_BIN_EXE_wxbridge"))
            .args([
                "sim",
                "--members",
                "30",
                "--departments",
                "5",
                "--seed",
                "9",
            ])
            .args(["--port", "0", "--write-config"])
            .arg(&config)
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
    let sim_addr: SocketAddr = info["base_url"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();

    let key = "wxb_test_key_for_the_crash_test_0123456789";
    let hash = server::auth::hash_api_key(key).to_file_string();
    let mut first = serve(&config, dir.path(), &hash);
    wait_until_up(bridge, &mut first.0);

    // The directory first, so that the root department's role exists.
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
    let role = root["id"].as_i64().unwrap();

    // The burst: the worker sends while messages keep arriving; kill once some have gone out.
    let mut accepted: BTreeMap<String, i64> = BTreeMap::new();
    let mut killed = false;
    for i in 0..400 {
        let content = format!("crash {i}");
        let body = json!({
            "app": "main",
            "idempotency_key": format!("crash-{i}"),
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
            Ok((202, v)) => {
                accepted.insert(content, v["message_id"].as_i64().unwrap());
            }
            Ok((status, v)) => panic!("message {i}: {status} {v}"),
            Err(_) => break, // the server is gone
        }
        if !killed && i >= 40 && sent_burst(sim_addr).len() >= 10 {
            first.0.kill().unwrap();
            first.0.wait().unwrap();
            killed = true;
            break;
        }
    }
    assert!(killed, "the server finished the burst before the kill");
    let before_restart = sent_burst(sim_addr);
    assert!(
        before_restart.len() < accepted.len(),
        "some accepted messages were still queued at the kill ({} of {})",
        before_restart.len(),
        accepted.len()
    );

    // A new server on the same database: the dead one's claims come back when their leases expire.
    let mut second = serve(&config, dir.path(), &hash);
    wait_until_up(bridge, &mut second.0);
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let sent = sent_burst(sim_addr);
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
    for (content, id) in &accepted {
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
    let sent = sent_burst(sim_addr);
    let duplicated: Vec<(&String, &u32)> = sent.iter().filter(|(_, n)| **n > 1).collect();
    eprintln!(
        "crash test: {} accepted, {} sent before the kill, {} sent twice",
        accepted.len(),
        before_restart.len(),
        duplicated.len()
    );
    assert!(
        duplicated.len() <= 1 && duplicated.iter().all(|(_, n)| **n == 2),
        "only the call in flight at the kill may go out twice: {duplicated:?}"
    );
}
