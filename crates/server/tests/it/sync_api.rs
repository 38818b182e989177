//! Sync runs over HTTP against the simulator: start one, read its Server-Sent Events to the `finished`
//! frame, replay them as a late subscriber (whole and after `Last-Event-ID`), the run history, a second run
//! that changes nothing, dry runs, bad bodies, and 409 while a run holds the corp (followed live meanwhile).

use serde_json::{Value, json};
use wx_sim::SimConfig;

use crate::api_env::{ApiEnv, Frame, api_env, backends, parse_sse};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_started_over_http_streams_its_progress_and_replays_it() {
    for backend in backends() {
        let env = api_env(backend, SimConfig::new(5, 50, 7)).await;
        first_and_second_run(&env).await;
        env.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_start_while_running_is_a_conflict_and_the_stream_follows_live() {
    for backend in backends() {
        let env = api_env(backend, SimConfig::new(6, 30, 5)).await;
        conflict_and_live(&env).await;
        env.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_write_nothing_and_bad_bodies_are_refused() {
    for backend in backends() {
        let env = api_env(backend, SimConfig::new(8, 20, 4)).await;
        dry_run_and_bodies(&env).await;
        env.shutdown().await;
    }
}

/// Frames with `rate_per_s` rounded to 1/1000: a rate read back from the log may differ from the live one
/// in its last binary digit (serde_json's default float parsing is not exactly round-trip).
fn same_rates(mut frames: Vec<Frame>) -> Vec<Frame> {
    for f in &mut frames {
        if let Some(r) = f.data["kind"].get_mut("rate_per_s") {
            *r = json!((r.as_f64().unwrap() * 1000.0).round() / 1000.0);
        }
    }
    frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_replica_refuses_a_second_start_and_streams_the_run_from_the_log() {
    for backend in backends() {
        let env = api_env(backend, SimConfig::new(9, 30, 5)).await;
        let replica = env.replica().await;
        across_replicas(&env, &replica).await;
        replica.shutdown().await;
        env.shutdown().await;
    }
}

/// A run started on one server, seen from another over the same database: the lease refuses a second start
/// there too, and its event stream (read from the log, since that server does not execute the run) follows
/// the run to the end.
async fn across_replicas(env: &ApiEnv, replica: &ApiEnv) {
    env.sim.hold_api("/cgi-bin/user/list");
    let run = env.started("").await;
    let (status, json) = replica.start_sync("").await;
    assert_eq!(status, 409, "{json}");
    assert_eq!(json["error"]["run_id"], run);

    let subscriber = {
        let http = replica.http.clone();
        let url = replica.url(&replica.tenant, &format!("/sync/runs/{run}/events"));
        let key = replica.key.clone();
        tokio::spawn(async move {
            let resp = http.get(url).bearer_auth(key).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.text().await.unwrap()
        })
    };
    // Let the replica's stream start polling while the run is still held.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        replica.ok(&format!("/sync/runs/{run}")).await["status"],
        "running"
    );
    env.sim.release_api("/cgi-bin/user/list");
    let polled = tokio::time::timeout(crate::api_env::PATIENCE, subscriber)
        .await
        .expect("the replica's stream did not end")
        .unwrap();
    let frames = parse_sse(&polled);
    assert_well_formed(&frames, run);
    assert_eq!(frames.last().unwrap().data["kind"]["status"], "succeeded");
    assert_eq!(
        same_rates(frames),
        same_rates(parse_sse(&env.events_text(run, None).await))
    );
}

fn kinds(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .map(|f| f.data["kind"]["type"].as_str().unwrap().to_owned())
        .collect()
}

fn phases(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .filter(|f| f.data["kind"]["type"] == "phase")
        .map(|f| f.data["kind"]["phase"].as_str().unwrap().to_owned())
        .collect()
}

/// Frames are `progress` events numbered 1, 2, 3... with the seq as SSE id, all of `run`, started first and
/// finished last.
fn assert_well_formed(frames: &[Frame], run: i64) {
    assert!(frames.len() >= 4, "{frames:?}");
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.event, "progress");
        assert_eq!(f.id, Some(i as u64 + 1));
        assert_eq!(f.data["seq"], i as u64 + 1);
        assert_eq!(f.data["run_id"], run);
    }
    let kinds = kinds(frames);
    assert_eq!(kinds.first().unwrap(), "started");
    assert_eq!(kinds.last().unwrap(), "finished");
    assert_eq!(kinds.iter().filter(|k| *k == "finished").count(), 1);
}

async fn first_and_second_run(env: &ApiEnv) {
    let members = env.sim.directory().members.len() as u64;
    let (status, json) = env.start_sync("").await;
    assert_eq!(status, 202, "{json}");
    let run = json["run_id"].as_i64().unwrap();
    assert_eq!(
        json["events_url"],
        format!("/api/v1/tenants/{}/sync/runs/{run}/events", env.tenant)
    );

    let body = env.events_text(run, None).await;
    let frames = parse_sse(&body);
    assert_well_formed(&frames, run);
    assert_eq!(
        frames[0].data["kind"],
        json!({"type": "started", "kind": "full", "dry_run": false})
    );
    assert_eq!(phases(&frames), ["departments", "members", "diff", "apply"]);
    // Every phase reports how far it got; one with a known total reaches it.
    for phase in ["departments", "members", "diff", "apply"] {
        let last = &frames
            .iter()
            .rev()
            .find(|f| f.data["kind"]["type"] == "advanced" && f.data["kind"]["phase"] == phase)
            .unwrap_or_else(|| panic!("no advanced event in {phase}: {frames:?}"))
            .data["kind"];
        assert!(last["done"].as_u64().unwrap() > 0, "{phase}: {last}");
        if !last["total"].is_null() {
            assert_eq!(last["done"], last["total"], "{phase}");
        }
    }
    let finished = &frames.last().unwrap().data["kind"];
    assert_eq!(finished["status"], "succeeded", "{finished}");
    assert_eq!(finished["item_errors"], 0);
    assert_eq!(finished["error"], Value::Null);
    assert_eq!(finished["counters"]["diff"]["created"], members);
    assert_eq!(finished["counters"]["apply"]["created"], members);

    // A late subscriber replays the same stream; one that resumes gets the rest only.
    let replayed = parse_sse(&env.events_text(run, None).await);
    assert_eq!(same_rates(replayed), same_rates(frames.clone()));
    let resumed = parse_sse(&env.events_text(run, Some(3)).await);
    assert_eq!(same_rates(resumed), same_rates(frames[3..].to_vec()));
    let last_seq = frames.len() as u64;
    assert_eq!(env.events_text(run, Some(last_seq)).await, "");

    // The history.
    let record = env.ok(&format!("/sync/runs/{run}")).await;
    assert_eq!(record["id"], run);
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["kind"], "full");
    assert_eq!(record["dry_run"], false);
    assert_eq!(record["corpid"], env.corpid.as_str());
    assert_eq!(record["counters"]["users"]["created"], members);
    assert!(record["finished_at_ms"].as_i64().is_some());
    assert!(
        record.get("checkpoint").is_none(),
        "internal state leaked: {record}"
    );

    // A second run changes nothing: no apply phase, everyone unchanged.
    let second = env.started("{}").await;
    assert!(second > run);
    let frames = parse_sse(&env.events_text(second, None).await);
    assert_well_formed(&frames, second);
    assert_eq!(phases(&frames), ["departments", "members", "diff"]);
    let finished = &frames.last().unwrap().data["kind"];
    assert_eq!(finished["status"], "succeeded");
    assert_eq!(finished["counters"]["diff"]["unchanged"], members);
    assert_eq!(finished["counters"]["diff"]["created"], 0);

    let runs = env.ok("/sync/runs").await;
    let listed: Vec<i64> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, [second, run]);
    assert_eq!(runs["runs"][0]["counters"]["users"]["unchanged"], members);
    let limited = env.ok("/sync/runs?limit=1").await;
    assert_eq!(limited["runs"].as_array().unwrap().len(), 1);
}

async fn conflict_and_live(env: &ApiEnv) {
    // Hold the members fetch so the run stays in progress (a generous concurrency limit makes the
    // simulator count calls in flight).
    env.sim.set_concurrency_limit("/cgi-bin/user/list", 1_000);
    env.sim.hold_api("/cgi-bin/user/list");
    let run = env.started("").await;
    let (status, json) = env.start_sync("").await;
    assert_eq!(status, 409, "{json}");
    assert_eq!(json["error"]["code"], "sync_running");
    assert_eq!(json["error"]["run_id"], run);
    assert_eq!(
        env.ok(&format!("/sync/runs/{run}")).await["status"],
        "running"
    );

    // Subscribe while the run is held, then let it go: the stream follows it live to the end.
    let subscriber = {
        let http = env.http.clone();
        let url = env.url(&env.tenant, &format!("/sync/runs/{run}/events"));
        let key = env.key.clone();
        tokio::spawn(async move {
            let resp = http.get(url).bearer_auth(key).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.text().await.unwrap()
        })
    };
    // Wait (bounded) until the fetch is actually parked on the held API.
    for _ in 0..200 {
        if env.sim.inflight("/cgi-bin/user/list") > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(env.sim.inflight("/cgi-bin/user/list") > 0);
    env.sim.release_api("/cgi-bin/user/list");
    let live = tokio::time::timeout(crate::api_env::PATIENCE, subscriber)
        .await
        .expect("the live stream did not end")
        .unwrap();
    let frames = parse_sse(&live);
    assert_well_formed(&frames, run);
    assert_eq!(frames.last().unwrap().data["kind"]["status"], "succeeded");
    // The live stream and a replay afterwards are the same events.
    assert_eq!(
        same_rates(parse_sse(&env.events_text(run, None).await)),
        same_rates(frames)
    );

    // Once it ended, a new run may start.
    let next = env.started("").await;
    assert!(next > run);
    let frames = parse_sse(&env.events_text(next, None).await);
    assert_well_formed(&frames, next);
}

async fn dry_run_and_bodies(env: &ApiEnv) {
    let run = env.sync_to_end(r#"{"dry_run": true}"#).await;
    let record = env.ok(&format!("/sync/runs/{run}")).await;
    assert_eq!(record["dry_run"], true);
    assert_eq!(record["status"], "succeeded");
    // Nothing was written: no user is linked.
    let member = env.sim.directory().members[0].clone();
    let (status, _) = env.get(&format!("/wecom/users/{}", member.userid)).await;
    assert_eq!(status, 404);

    for body in [
        "{bogus",
        r#"{"dry_run": "yes"}"#,
        r#"{"dryrun": true}"#,
        "[]",
    ] {
        let (status, json) = env.start_sync(body).await;
        assert_eq!(status, 400, "{body}: {json}");
        assert_eq!(json["error"]["code"], "bad_request");
    }
    // The guard override is accepted (nothing to remove here).
    let run = env.sync_to_end(r#"{"override_guard": true}"#).await;
    assert_eq!(
        env.ok(&format!("/sync/runs/{run}")).await["status"],
        "succeeded"
    );
    let (status, _) = env.get(&format!("/wecom/users/{}", member.userid)).await;
    assert_eq!(status, 200);
}
