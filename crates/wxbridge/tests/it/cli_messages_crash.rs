//! A crash in the middle of a burst of queued messages, with real processes: `wxbridge sim` and `wxbridge
//! serve` on SQLite; the directory is synced over HTTP, messages are posted as fast as the server takes
//! them, the server is killed (SIGKILL) once the simulator has recorded some sends, and a new server on the
//! same database finishes the rest after the dead one's leases expire. Every accepted message ends `sent`
//! and reaches the simulator; at most the one call in flight at the kill may go out twice (the documented
//! window between WeCom's answer and the row marking it sent), and the test prints how many did.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::support::{
    assert_all_sent_once, free_port, queue_message, sent_texts, serve, start_sim, sync_demo,
    wait_until_up,
};

#[test]
fn a_server_killed_mid_burst_sends_every_accepted_message_once_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wxbridge.toml");
    let bridge: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (_sim, sim_addr) = start_sim(&config, bridge, 9);

    let key = "wxb_test_key_for_the_crash_test_0123456789";
    let hash = server::auth::hash_api_key(key).to_file_string();
    let mut first = serve(&config, dir.path(), &hash);
    wait_until_up(bridge, &mut first.0);

    // The directory first, so that the root department's role exists.
    let role = sync_demo(bridge, key);

    // The burst: the worker sends while messages keep arriving; kill once some have gone out.
    let mut accepted: BTreeMap<String, i64> = BTreeMap::new();
    let mut killed = false;
    for i in 0..400 {
        let content = format!("crash {i}");
        let Some(id) = queue_message(bridge, key, role, &content) else {
            break; // the server is gone
        };
        accepted.insert(content, id);
        if !killed && i >= 40 && sent_texts(sim_addr, "crash ").len() >= 10 {
            first.0.kill().unwrap();
            first.0.wait().unwrap();
            killed = true;
            break;
        }
    }
    assert!(killed, "the server finished the burst before the kill");
    let before_restart = sent_texts(sim_addr, "crash ");
    assert!(
        before_restart.len() < accepted.len(),
        "some accepted messages were still queued at the kill ({} of {})",
        before_restart.len(),
        accepted.len()
    );

    // A new server on the same database: the dead one's claims come back when their leases expire.
    let mut second = serve(&config, dir.path(), &hash);
    wait_until_up(bridge, &mut second.0);
    let twice = assert_all_sent_once(
        bridge,
        sim_addr,
        key,
        "crash ",
        &accepted,
        Duration::from_secs(150),
    );
    eprintln!(
        "crash test: {} accepted, {} sent before the kill, {} sent twice",
        accepted.len(),
        before_restart.len(),
        twice
    );
}
