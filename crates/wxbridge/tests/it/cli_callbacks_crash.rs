//! A crash in the middle of a burst of callbacks AND queued messages, with real processes (`wxbridge sim`,
//! `wxbridge serve` on SQLite): distinct signed change_contact callbacks to the contacts endpoint, each
//! delivered twice (WeCom's retry), interleaved with messages to the root role; the server is killed
//! (SIGKILL) in the middle, a new one starts on the same database, and the callbacks that were not
//! acknowledged are delivered again as WeCom would. Then every callback is in the inbox exactly once and
//! `done`, the simulator saw no more `user/get` reads than there were claims (so no row was applied
//! outside a claim), and every accepted message was sent once (at most the one call in flight at the kill
//! twice). The figures are printed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use wx_crypto::{CallbackCrypto, CallbackMessage, XmlBuilder};
use wxbridge_config::FileConfig;

use crate::support::{
    assert_all_sent_once, free_port, http, queue_message, request, sent_texts, serve_with_env,
    start_sim, sync_demo, wait_until_up,
};

const CALLBACKS: usize = 240;
/// Callbacks delivered at once in the burst.
const ROUND: usize = 16;
const FIRST_CREATE_TIME: i64 = 1_700_100_000;

/// One signed, encrypted contacts callback: request path (with query) and body.
struct Callback {
    path: String,
    body: String,
}

fn callbacks(config: &std::path::Path, members: &[String]) -> Vec<Callback> {
    let file = FileConfig::from_toml_str(&std::fs::read_to_string(config).unwrap()).unwrap();
    let wecom = file.tenants["demo"].wecom.clone().unwrap();
    let contacts = wecom.contacts.unwrap();
    let crypto = CallbackCrypto::new(
        contacts.callback_token.unwrap().expose(),
        contacts.encoding_aes_key.unwrap().expose(),
        &wecom.corpid,
    )
    .unwrap();
    (0..CALLBACKS)
        .map(|i| {
            let mut b = XmlBuilder::new();
            b.cdata("ToUserName", &wecom.corpid)
                .cdata("FromUserName", "sys")
                .text("CreateTime", &(FIRST_CREATE_TIME + i as i64).to_string())
                .cdata("MsgType", "event")
                .cdata("Event", "change_contact")
                .cdata("ChangeType", "update_user")
                .cdata("UserID", &members[i % members.len()]);
            let (ts, nonce) = ((FIRST_CREATE_TIME + i as i64).to_string(), format!("n{i}"));
            let encrypt = crypto
                .encrypt(b.finish().as_bytes(), [i as u8; 16])
                .unwrap();
            let sig = crypto.sign(&ts, &nonce, &encrypt);
            Callback {
                path: format!(
                    "/callback/demo/wecom/contacts?msg_signature={sig}&timestamp={ts}&nonce={nonce}"
                ),
                body: format!("<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"),
            }
        })
        .collect()
}

/// Delivers a callback: true when the bridge acknowledged it (200 with WeCom's empty answer).
fn deliver(bridge: SocketAddr, cb: &Callback) -> bool {
    match http(bridge, "POST", &cb.path, &[], cb.body.as_bytes()) {
        Ok((200, body)) => {
            assert_eq!(body, "", "WeCom gets the empty answer");
            true
        }
        Ok((status, body)) => panic!("callback refused: {status} {body}"),
        Err(_) => false,
    }
}

/// Inbox rows of tenant `demo` not finished yet (pending or processing); 0 when the server is gone.
fn backlog(bridge: SocketAddr, key: &str) -> i64 {
    let Ok((200, stats)) = request(
        bridge,
        "GET",
        "/api/v1/tenants/demo/callbacks/stats",
        Some(key),
        None,
    ) else {
        return 0;
    };
    stats["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "pending" || s["status"] == "processing")
        .filter_map(|s| s["count"].as_i64())
        .sum()
}

/// The simulator's `user/get` calls so far.
fn user_gets(sim: SocketAddr) -> u64 {
    let (_, stats) = request(sim, "GET", "/_sim/stats", None, None).unwrap();
    stats["calls"]["/cgi-bin/user/get"]
        .as_object()
        .map(|by_code| by_code.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0)
}

/// The dispatch worker's lease, short so the dead server's claims come back in seconds (the default is
/// 120 s); set in the environment form, which `wxbridge serve` reads over the file.
const SHORT_LEASE: &[(&str, &str)] = &[("WXBRIDGE_SERVER__DISPATCH_LEASE_SECS", "10")];

#[test]
fn a_server_killed_mid_burst_of_callbacks_and_messages_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wxbridge.toml");
    let bridge: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (_sim, sim_addr) = start_sim(&config, bridge, 11);

    let key = "wxb_test_key_for_the_callback_crash_test_0123";
    let hash = server::auth::hash_api_key(key).to_file_string();
    let mut first = serve_with_env(&config, dir.path(), &hash, SHORT_LEASE);
    wait_until_up(bridge, &mut first.0);
    let role = sync_demo(bridge, key);

    let (status, world) = request(sim_addr, "GET", "/_sim/state", None, None).unwrap();
    assert_eq!(status, 200);
    let members: Vec<String> = world["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["status"] == 1)
        .filter_map(|m| m["userid"].as_str().map(str::to_owned))
        .collect();
    assert!(members.len() >= 10, "{members:?}");
    let cbs = callbacks(&config, &members);
    let gets_before = user_gets(sim_addr);

    // The burst, in rounds: ROUND callbacks at once, each twice (the retry), then a message per two
    // callbacks. Kill once the outbox worker has sent some, the dispatch worker has applied some, and
    // (so that the kill catches rows in flight) the inbox has a backlog — or, failing a backlog, past
    // two thirds of the burst.
    let mut acked = vec![false; CALLBACKS];
    let mut messages: BTreeMap<String, i64> = BTreeMap::new();
    let mut killed_at = None;
    for (round, chunk) in cbs.chunks(ROUND).enumerate() {
        let first_index = round * ROUND;
        let acks: Vec<bool> = std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|cb| s.spawn(move || deliver(bridge, cb) | deliver(bridge, cb)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (j, ack) in acks.into_iter().enumerate() {
            acked[first_index + j] = ack;
        }
        for j in (0..chunk.len()).step_by(2) {
            let content = format!("cbcrash {}", first_index + j);
            if let Some(id) = queue_message(bridge, key, role, &content) {
                messages.insert(content, id);
            }
        }
        let last = first_index + chunk.len() - 1;
        if last >= 80
            && sent_texts(sim_addr, "cbcrash ").len() >= 5
            && user_gets(sim_addr) > gets_before
        {
            let pending = backlog(bridge, key);
            if pending > 0 || last >= CALLBACKS * 2 / 3 {
                first.0.kill().unwrap();
                first.0.wait().unwrap();
                killed_at = Some((last, pending));
                break;
            }
        }
    }
    let (killed_at, backlog_at_kill) =
        killed_at.expect("the server finished the burst before the kill");
    let acked_before_kill = acked.iter().filter(|a| **a).count();
    let sent_before_kill = sent_texts(sim_addr, "cbcrash ").len();
    assert!(
        acked_before_kill < CALLBACKS,
        "the kill came before the end of the burst"
    );

    // A new server on the same database. WeCom retries what was never acknowledged; the rest of the
    // burst arrives too, and a few acknowledged ones come again (stored nothing).
    let mut second = serve_with_env(&config, dir.path(), &hash, SHORT_LEASE);
    wait_until_up(bridge, &mut second.0);
    for (i, cb) in cbs.iter().enumerate() {
        if !acked[i] || i % 10 == 0 {
            assert!(
                deliver(bridge, cb),
                "callback {i} refused after the restart"
            );
            acked[i] = true;
        }
    }

    // Settled: every row finished (rows claimed by the dead server come back when its leases end).
    let deadline = Instant::now() + Duration::from_secs(240);
    let rows = loop {
        let (status, list) = request(
            bridge,
            "GET",
            "/api/v1/tenants/demo/callbacks/inbox?limit=500",
            Some(key),
            None,
        )
        .unwrap();
        assert_eq!(status, 200, "{list}");
        let rows = list["messages"].as_array().unwrap().clone();
        if rows.len() == CALLBACKS && rows.iter().all(|r| r["status"] == "done") {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "not settled: {} rows, statuses {:?}",
            rows.len(),
            rows.iter()
                .map(|r| r["status"].as_str().unwrap_or_default().to_owned())
                .fold(BTreeMap::<String, usize>::new(), |mut m, s| {
                    *m.entry(s).or_default() += 1;
                    m
                })
        );
        std::thread::sleep(Duration::from_millis(250));
    };

    // Exactly once per callback, by its CreateTime (each callback has its own).
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    let mut claims = 0;
    let mut reclaimed = 0;
    for r in &rows {
        let msg = CallbackMessage::parse(r["payload"].as_str().unwrap()).unwrap();
        *seen.entry(msg.create_time().unwrap()).or_default() += 1;
        let attempts = r["attempts"].as_i64().unwrap();
        assert!(attempts >= 1, "{r}");
        claims += attempts;
        if attempts > 1 {
            reclaimed += 1;
        }
    }
    let expected: Vec<i64> = (0..CALLBACKS as i64)
        .map(|i| FIRST_CREATE_TIME + i)
        .collect();
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        expected,
        "every callback stored"
    );
    let twice = seen.values().filter(|n| **n > 1).count();
    assert_eq!(twice, 0, "no callback stored twice");
    // Rows re-claimed are only those the dead server had claimed (one batch at most).
    assert!(reclaimed <= 32, "{reclaimed} rows claimed again");
    // Each claim reads the member once at most: no apply happened outside a claim.
    let gets = user_gets(sim_addr) - gets_before;
    assert!(
        gets >= CALLBACKS as u64 && gets <= claims as u64,
        "{gets} user/get reads for {CALLBACKS} rows and {claims} claims"
    );

    let messages_twice = assert_all_sent_once(
        bridge,
        sim_addr,
        key,
        "cbcrash ",
        &messages,
        Duration::from_secs(150),
    );
    eprintln!(
        "callback crash test: {CALLBACKS} callbacks accepted ({acked_before_kill} before the kill at \
         callback {killed_at}, {backlog_at_kill} not yet finished), 0 stored twice, {reclaimed} claimed again after the kill, {gets} \
         user/get reads for {claims} claims; {} messages accepted, {sent_before_kill} sent before the \
         kill, {messages_twice} sent twice",
        messages.len()
    );
}
