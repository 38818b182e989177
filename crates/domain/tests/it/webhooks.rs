//! Business webhooks: a local receiver checks the HMAC signature and the headers of what the worker POSTs;
//! a 500 is retried with backoff (on a manual clock) and then delivered; a receiver that keeps failing
//! makes the delivery dead after `max_attempts`, and a replay delivers it; `events` patterns select
//! types; an inbox row handled twice (a crash between the handling and the mark) stores one delivery; a
//! WeCom app event names the synced member's local id;
//! a sync run's end is `sync.finished`; and two dispatchers on one database (two replicas; PostgreSQL
//! when configured, required under CI=true) handle a burst of rows, each once, each event queued once.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use domain::Db;
use domain::callbacks::{CallbackSource, DispatchOptions, DispatchReport, Dispatcher, accept};
use domain::webhooks::{
    self, ReplayOutcome, WebhookEvent, WebhookOptions, WebhookStatus, WebhookWorker,
};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use wx_api::clock::{Clock, ManualClock, SystemClock};
use wx_crypto::{CallbackMessage, XmlBuilder};
use wx_sim::{SimConfig, Simulator};
use wxbridge_config::FileSecret;
use wxbridge_config::file::WebhookFile;

use crate::support::{SimEnv, databases};

const SECRET: &str = "test-webhook-secret-0123456789";

/// What the receiver got: headers and body of every POST, in order.
type Seen = Arc<Mutex<Vec<(HeaderMap, String)>>>;

#[derive(Clone, Default)]
struct Hook {
    /// Statuses to answer, in order; 200 once empty.
    script: Arc<Mutex<VecDeque<u16>>>,
    seen: Seen,
}

async fn receive(State(h): State<Hook>, headers: HeaderMap, body: String) -> StatusCode {
    h.seen.lock().unwrap().push((headers, body));
    let code = h.script.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(code).unwrap()
}

impl Hook {
    /// Serve on a fresh port; the URL to configure.
    async fn start() -> (Hook, String) {
        let hook = Hook::default();
        let router = Router::new()
            .route("/hook", post(receive))
            .with_state(hook.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        (hook, format!("http://{addr}/hook"))
    }

    fn answer(&self, codes: &[u16]) {
        self.script.lock().unwrap().extend(codes.iter().copied());
    }

    fn seen(&self) -> Vec<(HeaderMap, String)> {
        self.seen.lock().unwrap().clone()
    }
}

/// The receiver's check, written independently of `domain::webhooks::signature`.
fn verify(headers: &HeaderMap, body: &str) {
    let ts = headers["x-wxbridge-timestamp"].to_str().unwrap();
    assert!(
        ts.parse::<i64>().is_ok(),
        "the timestamp is Unix seconds: {ts}"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{ts}.{body}").as_bytes());
    let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(headers["x-wxbridge-signature"].to_str().unwrap(), want);
    assert_eq!(headers["content-type"], "application/json");
}

/// The simulator and a tenant of it (a unique key) whose webhook posts to `url` (none: no webhook).
async fn env(
    url: Option<&str>,
    events: &[&str],
    max_attempts: u32,
    clock: Arc<dyn Clock>,
) -> SimEnv {
    let sim = Simulator::generate(SimConfig::new(21, 12, 3));
    SimEnv::start(sim, "wh", clock, |tenant| {
        tenant.webhook = url.map(|url| WebhookFile {
            url: url.to_owned(),
            secret: Some(FileSecret::new(SECRET)),
            events: events.iter().map(|e| (*e).to_owned()).collect(),
            max_attempts,
            timeout_secs: 5,
            ..WebhookFile::default()
        });
    })
    .await
}

fn worker(db: &Db, e: &SimEnv) -> WebhookWorker {
    WebhookWorker::new(
        db.clone(),
        e.tenants.clone(),
        WebhookOptions {
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            ..WebhookOptions::default()
        },
    )
    .unwrap()
}

async fn delivery(db: &Db, tenant: &str, id: i64) -> domain::webhooks::WebhookDelivery {
    db.webhook_delivery(tenant, id).await.unwrap().unwrap()
}

#[tokio::test]
async fn deliveries_are_signed_and_carry_the_event_headers() {
    let (dbs, _dir) = databases("webhook delivery").await;
    let (hook, url) = Hook::start().await;
    let e = env(Some(&url), &[], 3, Arc::new(SystemClock)).await;
    for (backend, db) in &dbs {
        let event = WebhookEvent::new(
            format!("test:{backend}:1"),
            "contact.user.updated",
            json!({"userid": "zhangsan", "user_id": 7}),
        );
        let stored = webhooks::enqueue(db, e.tenant(), &event, 1_000)
            .await
            .unwrap()
            .unwrap();
        let report = worker(db, &e).run_once().await.unwrap();
        assert_eq!((report.claimed, report.delivered), (1, 1), "{backend}");

        let (headers, body) = hook.seen().pop().unwrap();
        verify(&headers, &body);
        assert_eq!(headers["x-wxbridge-event"], "contact.user.updated");
        assert_eq!(headers["x-wxbridge-delivery"], event.id.as_str());
        let json: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["id"], event.id.as_str());
        assert_eq!(json["type"], "contact.user.updated");
        assert_eq!(json["tenant"], e.key.as_str());
        assert_eq!(json["occurred_at_ms"], 1_000);
        assert_eq!(json["data"]["userid"], "zhangsan");
        assert!(!body.contains(SECRET), "the secret is never sent");

        let d = delivery(db, &e.key, stored.id()).await;
        assert_eq!(d.status, WebhookStatus::Delivered, "{backend}: {d:?}");
        assert_eq!((d.attempts, d.last_status_code), (1, Some(200)));
        assert!(d.delivered_at_ms.is_some());
        // A tampered body does not verify against the header it came with.
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        let ts = headers["x-wxbridge-timestamp"].to_str().unwrap();
        mac.update(format!("{ts}.{}", body.replace("zhangsan", "lisi")).as_bytes());
        assert_ne!(
            headers["x-wxbridge-signature"].to_str().unwrap(),
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        );
    }
}

#[tokio::test]
async fn a_failing_receiver_is_retried_with_backoff_then_delivered() {
    let (dbs, _dir) = databases("webhook retries").await;
    let (hook, url) = Hook::start().await;
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let e = env(Some(&url), &[], 5, clock.clone()).await;
    for (backend, db) in &dbs {
        hook.answer(&[500, 500]);
        let event = WebhookEvent::new(format!("retry:{backend}"), "message.received", json!({}));
        let id = webhooks::enqueue(db, e.tenant(), &event, clock.now_ms())
            .await
            .unwrap()
            .unwrap()
            .id();
        let w = worker(db, &e);

        let r = w.run_once().await.unwrap();
        assert_eq!((r.claimed, r.retried), (1, 1), "{backend}: {r:?}");
        let d = delivery(db, &e.key, id).await;
        assert_eq!(d.status, WebhookStatus::Pending);
        assert_eq!(d.last_status_code, Some(500));
        assert!(
            d.last_error.as_deref().unwrap().starts_with("HTTP 500"),
            "{d:?}"
        );
        // First retry after 50-100 % of the 1 s base.
        let wait = d.available_at_ms - clock.now_ms();
        assert!((500..=1_000).contains(&wait), "{backend}: {wait}");
        // Not due yet: nothing is claimed.
        assert_eq!(w.run_once().await.unwrap().claimed, 0);

        clock.advance(Duration::from_millis(1_000));
        let r = w.run_once().await.unwrap();
        assert_eq!((r.claimed, r.retried), (1, 1), "{backend}: {r:?}");
        let d = delivery(db, &e.key, id).await;
        // The delay doubles: 50-100 % of 2 s.
        let wait = d.available_at_ms - clock.now_ms();
        assert!((1_000..=2_000).contains(&wait), "{backend}: {wait}");

        clock.advance(Duration::from_millis(2_000));
        let r = w.run_once().await.unwrap();
        assert_eq!((r.claimed, r.delivered), (1, 1), "{backend}: {r:?}");
        let d = delivery(db, &e.key, id).await;
        assert_eq!(d.status, WebhookStatus::Delivered);
        assert_eq!((d.attempts, d.last_status_code), (3, Some(200)));
        // Every attempt carried the same delivery id, each one signed.
        let attempts: Vec<_> = hook
            .seen()
            .into_iter()
            .filter(|(h, _)| h["x-wxbridge-delivery"] == event.id.as_str())
            .collect();
        assert_eq!(attempts.len(), 3);
        for (h, b) in &attempts {
            verify(h, b);
        }
    }
}

#[tokio::test]
async fn a_delivery_is_dead_after_max_attempts_and_a_replay_delivers_it() {
    let (dbs, _dir) = databases("webhook dead letters").await;
    let (hook, url) = Hook::start().await;
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let e = env(Some(&url), &[], 2, clock.clone()).await;
    for (backend, db) in &dbs {
        hook.answer(&[503, 503]);
        let event = WebhookEvent::new(format!("dead:{backend}"), "event.received", json!({}));
        let id = webhooks::enqueue(db, e.tenant(), &event, clock.now_ms())
            .await
            .unwrap()
            .unwrap()
            .id();
        let w = worker(db, &e);
        assert_eq!(w.run_once().await.unwrap().retried, 1, "{backend}");
        clock.advance(Duration::from_secs(2));
        let r = w.run_once().await.unwrap();
        assert_eq!((r.claimed, r.dead), (1, 1), "{backend}: {r:?}");
        let d = delivery(db, &e.key, id).await;
        assert_eq!(d.status, WebhookStatus::Dead);
        assert_eq!((d.attempts, d.last_status_code), (2, Some(503)));
        // Dead stays dead: nothing is claimed however long one waits.
        clock.advance(Duration::from_secs(3_600));
        assert_eq!(w.run_once().await.unwrap().claimed, 0);
        let dead = db
            .webhook_deliveries(&e.key, Some(WebhookStatus::Dead), 10)
            .await
            .unwrap();
        assert!(dead.iter().any(|d| d.id == id), "{backend}: listed as dead");

        // Replays: unknown id, a dead one, then the same one again (no longer dead).
        let now = clock.now_ms();
        assert_eq!(
            webhooks::replay(db, &e.key, id + 1_000_000, now)
                .await
                .unwrap(),
            ReplayOutcome::NotFound
        );
        assert_eq!(
            webhooks::replay(db, "another-tenant", id, now)
                .await
                .unwrap(),
            ReplayOutcome::NotFound,
            "{backend}: another tenant cannot see it"
        );
        assert_eq!(
            webhooks::replay(db, &e.key, id, now).await.unwrap(),
            ReplayOutcome::Replayed
        );
        assert_eq!(
            webhooks::replay(db, &e.key, id, now).await.unwrap(),
            ReplayOutcome::NotDead(WebhookStatus::Pending)
        );
        let d = delivery(db, &e.key, id).await;
        assert_eq!((d.status, d.attempts), (WebhookStatus::Pending, 0));
        let r = w.run_once().await.unwrap();
        assert_eq!((r.claimed, r.delivered), (1, 1), "{backend}: {r:?}");
        assert_eq!(
            delivery(db, &e.key, id).await.status,
            WebhookStatus::Delivered
        );
        assert_eq!(webhooks::replay_all_dead(db, &e.key, now).await.unwrap(), 0);
    }
}

#[tokio::test]
async fn event_patterns_select_what_is_queued() {
    let (dbs, _dir) = databases("webhook event patterns").await;
    let picky = env(
        Some("http://127.0.0.1:9/hook"),
        &["contact.*", "sync.finished"],
        3,
        Arc::new(SystemClock),
    )
    .await;
    let none = env(None, &[], 3, Arc::new(SystemClock)).await;
    for (backend, db) in &dbs {
        let queued = |t: &'static str| {
            let ev = WebhookEvent::new(format!("{backend}:{t}"), t, json!({}));
            let tenant = picky.tenant().clone();
            let db = db.clone();
            async move { webhooks::enqueue(&db, &tenant, &ev, 1).await.unwrap() }
        };
        assert!(queued("contact.user.updated").await.is_some(), "{backend}");
        assert!(queued("contact.tag.updated").await.is_some());
        assert!(queued("sync.finished").await.is_some());
        assert!(queued("message.received").await.is_none());
        assert!(queued("user.merged").await.is_none());
        // `contact.*` is a prefix with its dot.
        assert!(queued("contacts.x").await.is_none());
        // The same event id again stores nothing new.
        assert!(matches!(
            queued("sync.finished").await,
            Some(store::WebhookEnqueue::Existing(_))
        ));
        let ev = WebhookEvent::new("x", "contact.user.created", json!({}));
        assert!(
            webhooks::enqueue(db, none.tenant(), &ev, 1)
                .await
                .unwrap()
                .is_none(),
            "no webhook, nothing queued"
        );
        let listed = db.webhook_deliveries(&picky.key, None, 100).await.unwrap();
        let mut types: Vec<_> = listed.iter().map(|d| d.event_type.as_str()).collect();
        types.sort_unstable();
        assert_eq!(
            types,
            [
                "contact.tag.updated",
                "contact.user.updated",
                "sync.finished"
            ],
            "{backend}"
        );
    }
}

/// A text message from member `from` to the first WeCom app, as the inbox stores it.
fn text_message(e: &SimEnv, from: &str, msg_id: u64) -> CallbackMessage {
    let corp = &e.sim.info().corps[0];
    let mut b = XmlBuilder::new();
    b.cdata("ToUserName", &corp.corpid)
        .cdata("FromUserName", from)
        .text("CreateTime", "1700000100")
        .cdata("MsgType", "text")
        .cdata("Content", "hello")
        .text("MsgId", &msg_id.to_string())
        .text("AgentID", &corp.apps[0].agentid.to_string());
    CallbackMessage::parse_owned(b.finish()).unwrap()
}

fn app_source(e: &SimEnv) -> CallbackSource {
    CallbackSource::WecomApp(e.sim.info().corps[0].apps[0].name.clone())
}

/// Put a done row back to `processing` under an expired lease: as if its worker had handled it and died
/// before marking it done.
async fn unfinish(db: &Db, id: i64) {
    let sql = "UPDATE callback_inbox SET status = 'processing', available_at_ms = 0 WHERE id = $1";
    match (db.sqlite(), db.postgres()) {
        (Some(p), _) => {
            sqlx::query(sql).bind(id).execute(p).await.unwrap();
        }
        (_, Some(p)) => {
            sqlx::query(sql).bind(id).execute(p).await.unwrap();
        }
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn a_row_dispatched_twice_yields_one_delivery() {
    let (dbs, _dir) = databases("dispatch to webhooks").await;
    let (_hook, url) = Hook::start().await;
    let e = env(Some(&url), &[], 3, Arc::new(SystemClock)).await;
    let member = e.sim.directory().members[0].userid.clone();
    for (backend, db) in &dbs {
        let msg = text_message(&e, &member, rand::random::<u32>().into());
        let row = accept(db, &e.key, &app_source(&e), &msg, 1)
            .await
            .unwrap()
            .id
            .unwrap();
        let dispatcher = Dispatcher::new(db.clone(), e.tenants.clone(), DispatchOptions::default());
        let r = dispatcher.run_once().await.unwrap();
        assert_eq!(
            (r.claimed, r.done, r.webhooks),
            (1, 1, 1),
            "{backend}: {r:?}"
        );

        unfinish(db, row).await;
        let again = Dispatcher::new(db.clone(), e.tenants.clone(), DispatchOptions::default());
        let r = again.run_once().await.unwrap();
        assert_eq!(
            (r.claimed, r.done, r.webhooks),
            (1, 1, 0),
            "{backend}: handled again, nothing new queued: {r:?}"
        );
        let stored = db.inbox_message(&e.key, row).await.unwrap().unwrap();
        assert_eq!(stored.attempts, 2);
        let outcome: Value = serde_json::from_str(stored.outcome.as_deref().unwrap()).unwrap();
        let event_id = format!("inbox:{row}:message.received");
        assert_eq!(outcome["webhooks"], json!([event_id]), "{outcome}");

        let all = db.webhook_deliveries(&e.key, None, 500).await.unwrap();
        let mine: Vec<_> = all.iter().filter(|d| d.event_id == event_id).collect();
        assert_eq!(mine.len(), 1, "{backend}: one delivery: {all:?}");
        let body: Value = serde_json::from_str(&mine[0].payload).unwrap();
        assert_eq!(body["type"], "message.received");
        let data = &body["data"];
        assert_eq!(data["from_user"], member.as_str());
        assert_eq!(data["msg_type"], "text");
        assert_eq!(data["fields"]["Content"], "hello");
        assert_eq!(
            data["source"],
            format!("wecom_app:{}", e.sim.info().corps[0].apps[0].name)
        );
        // Not synced: the bridge does not know the member yet.
        assert_eq!(data["user_id"], Value::Null);
    }
}

#[tokio::test]
async fn a_sync_run_ends_with_sync_finished() {
    let (dbs, _dir) = databases("sync.finished").await;
    let (_hook, url) = Hook::start().await;
    let e = env(Some(&url), &["sync.*"], 3, Arc::new(SystemClock)).await;
    for (backend, db) in &dbs {
        let opts = domain::directory::sync_options(&e.tenant().config);
        assert!(opts.webhook.is_some(), "the tenant's webhook rides along");
        let out = domain::directory::run_full_sync(
            db,
            &e.key,
            e.tenant().contacts().unwrap(),
            Arc::new(SystemClock),
            domain::directory::SyncOptions {
                dry_run: true,
                ..opts
            },
        )
        .await
        .unwrap();
        let id = format!("sync.finished:{}", out.run_id.get());
        let all = db.webhook_deliveries(&e.key, None, 100).await.unwrap();
        let d = all
            .iter()
            .find(|d| d.event_id == id)
            .unwrap_or_else(|| panic!("{backend}: no {id} in {all:?}"));
        let body: Value = serde_json::from_str(&d.payload).unwrap();
        let data = &body["data"];
        assert_eq!(data["run_id"], out.run_id.get());
        assert_eq!(data["status"], "succeeded");
        assert_eq!(data["dry_run"], true);
        assert_eq!(
            data["counters"]["users"]["created"], out.counters.users.created,
            "{data}"
        );
        assert!(out.counters.users.created > 0);
        assert_eq!(data["error_count"], 0);
    }
}

#[tokio::test]
async fn two_dispatchers_on_one_database_handle_each_row_once() {
    let (dbs, _dir) = databases("two dispatchers (replicas)").await;
    let (_hook, url) = Hook::start().await;
    let e = env(Some(&url), &[], 3, Arc::new(SystemClock)).await;
    const ROWS: usize = 120;
    for (backend, db) in &dbs {
        let mut ids = BTreeSet::new();
        let base: u64 = rand::random::<u32>().into();
        for i in 0..ROWS {
            let msg = text_message(&e, &format!("user{i}"), base * 1_000 + i as u64);
            ids.insert(
                accept(db, &e.key, &app_source(&e), &msg, 1)
                    .await
                    .unwrap()
                    .id
                    .unwrap(),
            );
        }
        // Two replicas: on PostgreSQL each with its own pool, as two processes would have.
        let second = match *backend {
            "postgres" => Db::connect(&std::env::var("WXBRIDGE_TEST_POSTGRES_URL").unwrap())
                .await
                .unwrap(),
            _ => db.clone(),
        };
        let opts = |name: &str| DispatchOptions {
            worker_id: format!("{name}-{base}"),
            batch: 8,
            ..DispatchOptions::default()
        };
        let a = Dispatcher::new(db.clone(), e.tenants.clone(), opts("a"));
        let b = Dispatcher::new(second, e.tenants.clone(), opts("b"));
        let drain = |d: Dispatcher| async move {
            let mut total = DispatchReport::default();
            loop {
                let r = d.run_once().await.unwrap();
                if r.claimed == 0 {
                    return total;
                }
                total.claimed += r.claimed;
                total.done += r.done;
                total.webhooks += r.webhooks;
                total.lost += r.lost;
            }
        };
        let (ra, rb) = tokio::join!(drain(a), drain(b));
        assert_eq!(
            ra.claimed + rb.claimed,
            ROWS,
            "{backend}: every row claimed once in all ({ra:?}, {rb:?})"
        );
        assert_eq!(ra.done + rb.done, ROWS);
        assert_eq!(
            ra.webhooks + rb.webhooks,
            ROWS,
            "{backend}: one event per row"
        );
        assert_eq!(ra.lost + rb.lost, 0);
        println!(
            "{backend}: replica a handled {}, replica b {}",
            ra.done, rb.done
        );

        for id in &ids {
            let row = db.inbox_message(&e.key, *id).await.unwrap().unwrap();
            assert_eq!(row.status, store::InboxStatus::Done, "{backend}: {row:?}");
            assert_eq!(row.attempts, 1, "{backend}: handled once: {row:?}");
        }
        let deliveries = db.webhook_deliveries(&e.key, None, 500).await.unwrap();
        let event_ids: BTreeSet<String> = ids
            .iter()
            .map(|id| format!("inbox:{id}:message.received"))
            .collect();
        let mine: Vec<_> = deliveries
            .iter()
            .filter(|d| event_ids.contains(&d.event_id))
            .collect();
        assert_eq!(mine.len(), ROWS, "{backend}: each event queued once");
    }
}

#[tokio::test]
async fn a_wecom_app_event_names_the_local_member() {
    let (dbs, _dir) = databases("event.received").await;
    let (_hook, url) = Hook::start().await;
    let e = env(Some(&url), &["event.*"], 3, Arc::new(SystemClock)).await;
    let member = e.sim.directory().members[1].userid.clone();
    let corp = e.sim.info().corps[0].clone();
    for (backend, db) in &dbs {
        e.sync(db).await;
        let local = db
            .user_by_wecom_userid(&e.key, &corp.corpid, &member)
            .await
            .unwrap()
            .unwrap();
        let mut b = XmlBuilder::new();
        b.cdata("ToUserName", &corp.corpid)
            .cdata("FromUserName", &member)
            .text("CreateTime", &rand::random::<u32>().to_string())
            .cdata("MsgType", "event")
            .cdata("Event", "enter_agent")
            .cdata("EventKey", "")
            .text("AgentID", &corp.apps[0].agentid.to_string());
        let msg = CallbackMessage::parse_owned(b.finish()).unwrap();
        let row = accept(db, &e.key, &app_source(&e), &msg, 1)
            .await
            .unwrap()
            .id
            .unwrap();
        let r = Dispatcher::new(db.clone(), e.tenants.clone(), DispatchOptions::default())
            .run_once()
            .await
            .unwrap();
        assert_eq!((r.done, r.webhooks), (1, 1), "{backend}: {r:?}");
        let all = db.webhook_deliveries(&e.key, None, 100).await.unwrap();
        let d = all
            .iter()
            .find(|d| d.event_id == format!("inbox:{row}:event.received"))
            .unwrap_or_else(|| panic!("{backend}: {all:?}"));
        let data = &serde_json::from_str::<Value>(&d.payload).unwrap()["data"];
        assert_eq!(data["event"], "enter_agent");
        assert_eq!(data["from_user"], member.as_str());
        assert_eq!(data["user_id"], local.id.get(), "{backend}: {data}");
        assert_eq!(data["agent_id"], corp.apps[0].agentid.to_string());
    }
}
