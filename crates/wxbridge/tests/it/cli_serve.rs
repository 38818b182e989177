//! The operator's path end to end with real processes: `wxbridge sim --write-config` starts the simulator and
//! writes a config, `wxbridge serve --config` runs the bridge on SQLite against it, and the bridge answers
//! health, readiness and the per-tenant token API (fetching tokens from the simulator on a probe, never
//! showing them).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the child process when the test ends, pass or fail.
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

/// A minimal HTTP/1.1 GET over a fresh connection: (status, body).
fn get(addr: SocketAddr, path: &str, bearer: Option<&str>) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let auth = bearer
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
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
    Ok((status, body))
}

fn wait_until_up(addr: SocketAddr, server: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok((200, _)) = get(addr, "/healthz", None) {
            return;
        }
        if let Some(status) = server.try_wait().unwrap() {
            panic!("wxbridge serve exited early with {status}");
        }
        assert!(
            Instant::now() < deadline,
            "wxbridge serve did not come up on {addr}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sim_write_config_then_serve_answers_health_readiness_and_token_status() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wxbridge.toml");
    let bridge: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();

    let mut sim = Running(
        Command::new(env!("CARGO_BIN_EXE_wxbridge"))
            .args([
                "sim",
                "--members",
                "40",
                "--departments",
                "6",
                "--seed",
                "7",
                "--port",
                "0",
            ])
            .arg("--write-config")
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
    let info: serde_json::Value = serde_json::from_str(&first_line).expect("first line is JSON");
    assert!(
        info["base_url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    let corpid = info["corps"][0]["corpid"].as_str().unwrap().to_owned();
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(
        written.contains(&corpid),
        "the config names the simulator's corp"
    );

    let key = "wxb_test_key_for_the_serve_test_0123456789";
    let hash = server::auth::hash_api_key(key).to_file_string();
    let mut serve = Running(
        Command::new(env!("CARGO_BIN_EXE_wxbridge"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .current_dir(dir.path())
            .env("WXBRIDGE_TENANTS__DEMO__API_KEY_HASHES", &hash)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until_up(bridge, &mut serve.0);

    let (status, body) = get(bridge, "/readyz", None).unwrap();
    assert_eq!(status, 200, "readyz: {body}");
    assert!(
        dir.path().join("data/wxbridge.db").exists(),
        "SQLite file in the data dir"
    );

    let (status, _) = get(bridge, "/api/v1/tenants/demo/tokens", None).unwrap();
    assert_eq!(status, 401, "no key, no token status");
    let (status, _) = get(bridge, "/api/v1/tenants/nosuch/tokens", Some(key)).unwrap();
    assert_eq!(status, 404, "unknown tenant");
    let tokens = |path: &str| -> serde_json::Value {
        let (status, body) = get(bridge, path, Some(key)).unwrap();
        assert_eq!(status, 200, "token status: {body}");
        for secret in [info["corps"][0]["apps"][0]["secret"].as_str().unwrap(), key] {
            assert!(
                !body.contains(secret),
                "a secret leaked into the token status"
            );
        }
        serde_json::from_str(&body).unwrap()
    };
    let cached = |v: &serde_json::Value| -> Vec<(String, bool)> {
        v["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["name"].as_str().unwrap().to_owned(),
                    t["cached"].as_bool().unwrap(),
                )
            })
            .collect()
    };
    let before = tokens("/api/v1/tenants/demo/tokens");
    let before = cached(&before);
    assert!(
        before.iter().any(|(n, _)| n == "main"),
        "lists the app `main`: {before:?}"
    );
    assert!(
        before.iter().all(|(_, c)| !c),
        "nothing cached before the first use: {before:?}"
    );

    // Probing fetches every token from the simulator through the token manager and caches it in SQLite.
    let after = tokens("/api/v1/tenants/demo/tokens?probe=true");
    let after_cached = cached(&after);
    assert_eq!(after_cached.len(), before.len());
    assert!(
        after_cached.iter().all(|(_, c)| *c),
        "every token fetched: {after}"
    );
    for t in after["tokens"].as_array().unwrap() {
        let secs = t["expires_in_secs"].as_i64().unwrap();
        assert!(secs > 7000 && secs <= 7200, "a fresh two-hour token: {t}");
    }
}

#[test]
fn api_key_new_prints_a_key_and_the_hash_that_hash_reproduces() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_wxbridge"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (code, stdout, _) = run(&["api-key", "new"]);
    assert_eq!(code, Some(0));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with("wxb_") && lines[0].len() > 30,
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("sha256:") && lines[1].len() == 7 + 64,
        "{stdout}"
    );
    let (code, hashed, _) = run(&["api-key", "hash", lines[0]]);
    assert_eq!(code, Some(0));
    assert_eq!(hashed.trim_end(), lines[1]);
    let (code, _, stderr) = run(&["api-key", "hash", "not-a-key"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("wxb_"), "{stderr}");
}
