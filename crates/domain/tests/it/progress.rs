//! Sync progress: tracker rate/ETA and throttling on a manual clock, hub subscriptions that replay the log
//! and follow live (midway, after the end, lagging, concurrent), and the SSE framing.

use std::sync::Arc;
use std::time::Duration;

use crate::support::databases;
use domain::progress::{
    EntityCounters, EventKind, MemoryProgressLog, Phase, ProgressError, ProgressEvent, ProgressHub,
    ProgressLog, ProgressTracker, SyncKind, SyncRunId, SyncStatus, TrackerConfig,
    after_seq_from_last_event_id, sse_frame,
};
use futures::StreamExt;
use wx_api::clock::ManualClock;

const RUN: i64 = 7;

fn run_id() -> SyncRunId {
    SyncRunId::from_raw(RUN)
}

fn created(n: u64) -> EntityCounters {
    EntityCounters {
        created: n,
        ..EntityCounters::default()
    }
}

fn tracker(
    clock: &ManualClock,
    log: &MemoryProgressLog,
    hub: Option<&ProgressHub>,
    config: TrackerConfig,
) -> ProgressTracker {
    ProgressTracker::new(
        run_id(),
        Arc::new(clock.clone()),
        Arc::new(log.clone()),
        hub.cloned(),
        config,
    )
}

/// The `Advanced` events of a log, as `(done, rate_per_s, eta_ms)`.
fn advances(events: &[ProgressEvent]) -> Vec<(u64, f64, Option<u64>)> {
    events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Advanced {
                done,
                rate_per_s,
                eta_ms,
                ..
            } => Some((done, rate_per_s, eta_ms)),
            _ => None,
        })
        .collect()
}

fn seqs(events: &[ProgressEvent]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

async fn collect(mut stream: domain::progress::ProgressStream) -> Vec<ProgressEvent> {
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        out.push(item.unwrap());
    }
    out
}

#[tokio::test]
async fn rate_is_a_moving_average_over_the_window_and_eta_follows_it() {
    let clock = ManualClock::new(1_000_000);
    let log = MemoryProgressLog::new();
    let mut t = tracker(&clock, &log, None, TrackerConfig::default());
    t.start(SyncKind::Full, false).await.unwrap();
    t.start_phase(Phase::Members, Some(1_000)).await.unwrap();

    // 10 items per second for 10 s.
    for _ in 0..10 {
        clock.advance(Duration::from_secs(1));
        t.advance(10, created(10)).await.unwrap();
    }
    let (done, rate, eta) = *advances(&log.events(run_id())).last().unwrap();
    assert_eq!(done, 100);
    assert!((rate - 10.0).abs() < 1e-9, "rate {rate}");
    assert_eq!(eta, Some(90_000), "900 left at 10/s");

    // Then 100 per second for 6 s: the 5 s window sees only the fast part (since-start would be ~43/s).
    for _ in 0..6 {
        clock.advance(Duration::from_secs(1));
        t.advance(100, created(100)).await.unwrap();
    }
    let (done, rate, eta) = *advances(&log.events(run_id())).last().unwrap();
    assert_eq!(done, 700);
    assert!((rate - 100.0).abs() < 1e-9, "rate {rate}");
    assert_eq!(eta, Some(3_000), "300 left at 100/s");

    // A stall: the rate decays within the window instead of staying at the old average.
    clock.advance(Duration::from_secs(3));
    t.advance(0, EntityCounters::default()).await.unwrap();
    clock.advance(Duration::from_millis(2_500));
    t.advance(1, created(1)).await.unwrap();
    let (_, rate, _) = *advances(&log.events(run_id())).last().unwrap();
    assert!(
        rate < 60.0,
        "rate after a 5.5 s stall should drop, got {rate}"
    );

    let fin = t.finish(SyncStatus::Succeeded, None).await.unwrap();
    match fin.kind {
        EventKind::Finished {
            status,
            counters,
            item_errors,
            error,
        } => {
            assert_eq!(status, SyncStatus::Succeeded);
            assert_eq!(counters[&Phase::Members], created(701));
            assert_eq!(item_errors, 0);
            assert_eq!(error, None);
        }
        other => panic!("expected Finished, got {other:?}"),
    }
}

#[tokio::test]
async fn no_rate_and_no_eta_before_time_moves_and_eta_zero_at_total() {
    let clock = ManualClock::new(0);
    let log = MemoryProgressLog::new();
    let mut t = tracker(&clock, &log, None, TrackerConfig::default());
    t.start(SyncKind::Full, true).await.unwrap();
    t.start_phase(Phase::Departments, Some(4)).await.unwrap();
    // Same millisecond: 25% crosses the 1% step, so it is emitted, but no time passed -> no rate.
    t.advance(1, created(1)).await.unwrap();
    assert_eq!(advances(&log.events(run_id())), vec![(1, 0.0, None)]);
    clock.advance(Duration::from_millis(500));
    t.advance(3, created(3)).await.unwrap();
    let (done, rate, eta) = *advances(&log.events(run_id())).last().unwrap();
    assert_eq!((done, eta), (4, Some(0)));
    assert!((rate - 8.0).abs() < 1e-9, "4 items in 0.5 s, got {rate}");
}

#[tokio::test]
async fn throttling_bounds_events_for_100k_items_and_always_sends_the_last() {
    let clock = ManualClock::new(0);
    let log = MemoryProgressLog::new();
    let mut t = tracker(&clock, &log, None, TrackerConfig::default());
    t.start(SyncKind::Full, false).await.unwrap();
    t.start_phase(Phase::Members, Some(100_000)).await.unwrap();
    // One item per millisecond: 100 s of clock time.
    for i in 0..100_000u64 {
        clock.advance(Duration::from_millis(1));
        let delta = if i % 2 == 0 {
            created(1)
        } else {
            EntityCounters {
                unchanged: 1,
                ..EntityCounters::default()
            }
        };
        t.advance(1, delta).await.unwrap();
    }
    t.finish(SyncStatus::Succeeded, None).await.unwrap();
    let events = log.events(run_id());
    let adv = advances(&events);
    // Every 100 ms of clock time -> 1000, the 1% steps coincide with those; a few extra at most.
    assert!(
        (900..=1_101).contains(&adv.len()),
        "{} Advanced events",
        adv.len()
    );
    let (done, rate, eta) = *adv.last().unwrap();
    assert_eq!(done, 100_000);
    assert_eq!(eta, Some(0));
    assert!((rate - 1000.0).abs() < 1e-6, "1 item/ms, got {rate}");
    match &events[events.len() - 2].kind {
        EventKind::Advanced {
            created, unchanged, ..
        } => assert_eq!((*created, *unchanged), (50_000, 50_000)),
        other => panic!("the last event before Finished must be the exact Advanced, got {other:?}"),
    }
    assert_eq!(seqs(&events), (1..=events.len() as u64).collect::<Vec<_>>());
}

#[tokio::test]
async fn with_a_frozen_clock_only_percent_steps_emit_and_unknown_totals_flush_at_phase_end() {
    let clock = ManualClock::new(0);
    let log = MemoryProgressLog::new();
    let mut t = tracker(&clock, &log, None, TrackerConfig::default());
    t.start(SyncKind::Full, false).await.unwrap();
    t.start_phase(Phase::Members, Some(100_000)).await.unwrap();
    for _ in 0..100_000 {
        t.advance(1, created(1)).await.unwrap();
    }
    let n = advances(&log.events(run_id())).len();
    assert_eq!(n, 100, "one per 1% step");

    // Unknown total and no clock movement: nothing until the phase ends, then exactly one exact event.
    t.start_phase(Phase::Apply, None).await.unwrap();
    for _ in 0..5_000 {
        t.advance(1, created(1)).await.unwrap();
    }
    assert_eq!(advances(&log.events(run_id())).len(), 100);
    t.finish(SyncStatus::Succeeded, None).await.unwrap();
    let adv = advances(&log.events(run_id()));
    assert_eq!(adv.len(), 101);
    assert_eq!(adv.last().unwrap().0, 5_000);
    assert_eq!(adv.last().unwrap().2, None, "no ETA without a total");
}

#[tokio::test]
async fn item_errors_are_events_and_counted_and_misuse_is_an_error() {
    let clock = ManualClock::new(0);
    let log = MemoryProgressLog::new();
    let mut t = tracker(&clock, &log, None, TrackerConfig::default());
    t.start(SyncKind::Incremental, false).await.unwrap();
    assert!(matches!(
        t.advance(1, created(1)).await,
        Err(ProgressError::Misuse(_))
    ));
    t.start_phase(Phase::Members, Some(2)).await.unwrap();
    t.item_error("zhangsan", Some(60111), "userid not found")
        .await
        .unwrap();
    t.advance(2, created(1)).await.unwrap();
    let fin = t
        .finish(SyncStatus::Partial, Some("one fetch failed".into()))
        .await
        .unwrap();
    assert!(matches!(
        t.finish(SyncStatus::Succeeded, None).await,
        Err(ProgressError::Misuse(_))
    ));
    let events = log.events(run_id());
    assert!(events.iter().any(|e| e.kind
        == EventKind::ItemError {
            phase: Phase::Members,
            item: "zhangsan".into(),
            code: Some(60111),
            message: "userid not found".into(),
        }));
    match &fin.kind {
        EventKind::Finished {
            status,
            item_errors,
            error,
            ..
        } => {
            assert_eq!(*status, SyncStatus::Partial);
            assert_eq!(*item_errors, 1);
            assert_eq!(error.as_deref(), Some("one fetch failed"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(events.last(), Some(&fin));
}

#[test]
fn events_serialise_as_tagged_json_with_stable_field_names() {
    let ev = ProgressEvent {
        run_id: run_id(),
        seq: 3,
        at_ms: 1_700_000_000_000,
        kind: EventKind::Advanced {
            phase: Phase::Members,
            done: 5,
            total: Some(10),
            created: 1,
            updated: 2,
            removed: 0,
            unchanged: 2,
            rate_per_s: 2.5,
            eta_ms: Some(2000),
        },
    };
    let json = serde_json::to_value(&ev).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "run_id": 7, "seq": 3, "at_ms": 1_700_000_000_000i64,
            "kind": {"type": "advanced", "phase": "members", "done": 5, "total": 10, "created": 1,
                     "updated": 2, "removed": 0, "unchanged": 2, "rate_per_s": 2.5, "eta_ms": 2000}
        })
    );
    let started = EventKind::Started {
        kind: SyncKind::Full,
        dry_run: true,
    };
    assert_eq!(
        serde_json::to_value(&started).unwrap(),
        serde_json::json!({"type": "started", "kind": "full", "dry_run": true})
    );
    let fin = EventKind::Finished {
        status: SyncStatus::Partial,
        counters: [(Phase::Departments, created(2))].into_iter().collect(),
        item_errors: 1,
        error: Some("60011".into()),
    };
    let v = serde_json::to_value(&fin).unwrap();
    assert_eq!(v["type"], "finished");
    assert_eq!(v["status"], "partial");
    assert_eq!(v["counters"]["departments"]["created"], 2);
    let back: EventKind = serde_json::from_value(v).unwrap();
    assert_eq!(back, fin);
    let back: ProgressEvent = serde_json::from_value(json).unwrap();
    assert_eq!(back, ev);
}

/// Drive a small run: Started, Phase, `n` Advanced (clock moves 1 s each), Finished.
struct Run {
    clock: ManualClock,
    tracker: ProgressTracker,
}

impl Run {
    fn new(log: &MemoryProgressLog, hub: &ProgressHub) -> Self {
        let clock = ManualClock::new(0);
        let tracker = tracker(&clock, log, Some(hub), TrackerConfig::default());
        Run { clock, tracker }
    }

    async fn step(&mut self) {
        self.clock.advance(Duration::from_secs(1));
        self.tracker.advance(1, created(1)).await.unwrap();
    }
}

#[tokio::test]
async fn a_subscriber_joining_midway_gets_every_event_once_in_order() {
    let log = MemoryProgressLog::new();
    let hub = ProgressHub::new(64);
    let mut run = Run::new(&log, &hub);
    run.tracker.start(SyncKind::Full, false).await.unwrap();
    run.tracker
        .start_phase(Phase::Members, Some(1_000))
        .await
        .unwrap();
    for _ in 0..5 {
        run.step().await;
    }
    // Joins with 7 events persisted.
    let mut sub = hub.subscribe(run_id(), 0, Arc::new(log.clone()));
    // Published after subscribe() but before the first poll: both in the log and in the live channel.
    run.step().await;
    run.step().await;
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(sub.next().await.unwrap().unwrap());
    }
    for _ in 0..5 {
        run.step().await;
    }
    run.tracker
        .finish(SyncStatus::Succeeded, None)
        .await
        .unwrap();
    while let Some(item) = sub.next().await {
        got.push(item.unwrap());
    }
    let all = log.events(run_id());
    assert_eq!(all.len(), 2 + 12 + 1);
    assert_eq!(got, all, "exactly the log, once each, in seq order");
    assert!(got.last().unwrap().is_finished());
    assert_eq!(
        hub.live_runs(),
        0,
        "the run's channel is dropped after Finished"
    );
}

#[tokio::test]
async fn a_subscriber_joining_after_finished_gets_the_full_replay_and_the_stream_ends() {
    let log = MemoryProgressLog::new();
    let hub = ProgressHub::default();
    let mut run = Run::new(&log, &hub);
    run.tracker.start(SyncKind::Full, false).await.unwrap();
    run.tracker.start_phase(Phase::Members, None).await.unwrap();
    for _ in 0..3 {
        run.step().await;
    }
    run.tracker
        .finish(SyncStatus::Succeeded, None)
        .await
        .unwrap();
    let all = log.events(run_id());

    let got = collect(hub.subscribe(run_id(), 0, Arc::new(log.clone()))).await;
    assert_eq!(got, all);

    // Last-Event-ID semantics: resume after seq 3.
    let got = collect(hub.subscribe(run_id(), 3, Arc::new(log.clone()))).await;
    assert_eq!(got, all[3..].to_vec());
    assert_eq!(got[0].seq, 4);

    // Already saw everything: ends at once instead of waiting.
    let last = all.last().unwrap().seq;
    let got = collect(hub.subscribe(run_id(), last, Arc::new(log.clone()))).await;
    assert!(got.is_empty());
    assert_eq!(
        hub.live_runs(),
        0,
        "late subscribers leave no channel behind"
    );
}

#[tokio::test]
async fn a_lagging_subscriber_recovers_from_the_log_and_does_not_block_the_run() {
    let log = MemoryProgressLog::new();
    // Room for 4 events only; the run publishes hundreds while the subscriber does not read.
    let hub = ProgressHub::new(4);
    let mut run = Run::new(&log, &hub);
    let mut slow = hub.subscribe(run_id(), 0, Arc::new(log.clone()));
    run.tracker.start(SyncKind::Full, false).await.unwrap();
    let first = slow.next().await.unwrap().unwrap();
    assert_eq!(first.seq, 1);
    run.tracker
        .start_phase(Phase::Members, Some(500))
        .await
        .unwrap();
    for _ in 0..300 {
        run.step().await;
    }
    let mut got = vec![first];
    for _ in 0..10 {
        got.push(slow.next().await.unwrap().unwrap());
    }
    for _ in 0..200 {
        run.step().await;
    }
    run.tracker
        .finish(SyncStatus::Succeeded, None)
        .await
        .unwrap();
    while let Some(item) = slow.next().await {
        got.push(item.unwrap());
    }
    let all = log.events(run_id());
    assert!(all.len() > 500);
    assert_eq!(seqs(&got), seqs(&all));
    assert_eq!(got, all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_subscribers_each_see_the_whole_run_exactly_once() {
    let log = MemoryProgressLog::new();
    let hub = ProgressHub::new(8);
    let mut run = Run::new(&log, &hub);
    run.tracker.start(SyncKind::Full, false).await.unwrap();
    run.tracker
        .start_phase(Phase::Members, Some(2_000))
        .await
        .unwrap();

    let producer = tokio::spawn(async move {
        for i in 0..2_000 {
            run.step().await;
            if i % 50 == 0 {
                tokio::task::yield_now().await;
            }
        }
        run.tracker
            .finish(SyncStatus::Succeeded, None)
            .await
            .unwrap();
    });
    let mut subscribers = Vec::new();
    for after in [0u64, 0, 1, 2] {
        let stream = hub.subscribe(run_id(), after, Arc::new(log.clone()));
        subscribers.push((after, tokio::spawn(collect(stream))));
        tokio::task::yield_now().await;
    }
    producer.await.unwrap();
    let all = log.events(run_id());
    for (after, handle) in subscribers {
        let got = handle.await.unwrap();
        let expected: Vec<_> = all.iter().filter(|e| e.seq > after).cloned().collect();
        assert_eq!(got, expected, "subscriber after {after}");
    }
}

#[tokio::test]
async fn the_memory_log_answers_is_finished_at_and_events_after() {
    let log = MemoryProgressLog::new();
    let hub = ProgressHub::default();
    let mut run = Run::new(&log, &hub);
    run.tracker.start(SyncKind::Full, false).await.unwrap();
    assert!(!log.is_finished_at(run_id(), 1).await.unwrap());
    run.tracker
        .finish(SyncStatus::Failed, Some("boom".into()))
        .await
        .unwrap();
    assert!(log.is_finished_at(run_id(), 2).await.unwrap());
    assert!(!log.is_finished_at(run_id(), 1).await.unwrap());
    assert!(!log.is_finished_at(run_id(), 0).await.unwrap());
    assert!(!log.is_finished_at(run_id(), 3).await.unwrap());
    assert_eq!(log.events_after(run_id(), 1).await.unwrap().len(), 1);
    assert!(
        log.events_after(SyncRunId::from_raw(99), 0)
            .await
            .unwrap()
            .is_empty()
    );
}

#[test]
fn sse_frames_carry_the_seq_as_id_and_one_json_data_line() {
    let ev = ProgressEvent {
        run_id: run_id(),
        seq: 42,
        at_ms: 5,
        kind: EventKind::ItemError {
            phase: Phase::Members,
            item: "li\nsi".into(),
            code: None,
            message: "multi\nline".into(),
        },
    };
    let frame = sse_frame(&ev).unwrap();
    assert!(frame.starts_with("event: progress\nid: 42\ndata: {"));
    assert!(frame.ends_with("}\n\n"));
    assert_eq!(
        frame.matches('\n').count(),
        4,
        "newlines in values are escaped: {frame:?}"
    );
    let data = frame
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap();
    let back: ProgressEvent = serde_json::from_str(data).unwrap();
    assert_eq!(back, ev);

    assert_eq!(after_seq_from_last_event_id(None), 0);
    assert_eq!(after_seq_from_last_event_id(Some("17")), 17);
    assert_eq!(after_seq_from_last_event_id(Some(" 17 ")), 17);
    assert_eq!(after_seq_from_last_event_id(Some("abc")), 0);
    assert_eq!(after_seq_from_last_event_id(Some("-1")), 0);
}

// ---- the database log (sync_events) ----

async fn new_run(db: &domain::Db, tenant: &str) -> SyncRunId {
    db.create_sync_run(
        tenant,
        &store::NewSyncRun {
            corpid: "wwprogress".into(),
            kind: SyncKind::Full,
            dry_run: false,
            started_at_ms: 0,
        },
    )
    .await
    .unwrap()
    .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_log_persists_replays_and_feeds_late_subscribers() {
    let (dbs, _dir) = databases("progress log").await;
    for (backend, db) in dbs {
        // A tenant of its own so runs on a shared PostgreSQL do not meet.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let tenant = format!("progress-{}-{nanos}", std::process::id());
        let run = new_run(&db, &tenant).await;
        let log = Arc::new(domain::progress::DbProgressLog::new(db.clone(), &tenant));
        let hub = ProgressHub::new(4);
        let clock = ManualClock::new(1_000);
        let mut t = ProgressTracker::new(
            run,
            Arc::new(clock.clone()),
            log.clone(),
            Some(hub.clone()),
            TrackerConfig::default(),
        );
        t.start(SyncKind::Full, false).await.unwrap();
        t.start_phase(Phase::Members, Some(30)).await.unwrap();
        let mut midway = hub.subscribe(run, 0, log.clone());
        for _ in 0..30 {
            clock.advance(Duration::from_secs(1));
            t.advance(1, created(1)).await.unwrap();
        }
        t.item_error("x", Some(60111), "gone").await.unwrap();
        let fin = t.finish(SyncStatus::Succeeded, None).await.unwrap();

        let all = log.events_after(run, 0).await.unwrap();
        assert_eq!(seqs(&all), (1..=fin.seq).collect::<Vec<_>>(), "{backend}");
        assert_eq!(all.last(), Some(&fin), "{backend}");
        assert_eq!(
            all[0].kind,
            EventKind::Started {
                kind: SyncKind::Full,
                dry_run: false
            }
        );

        let mut got = Vec::new();
        while let Some(item) = midway.next().await {
            got.push(item.unwrap());
        }
        assert_eq!(
            got, all,
            "{backend}: midway subscriber behind a 4-event channel"
        );
        let late = collect(hub.subscribe(run, 10, log.clone())).await;
        assert_eq!(late, all[10..].to_vec(), "{backend}");
        assert!(
            collect(hub.subscribe(run, fin.seq, log.clone()))
                .await
                .is_empty()
        );
        assert!(log.is_finished_at(run, fin.seq).await.unwrap());

        // A run the database does not know cannot take events.
        let ghost = ProgressEvent {
            run_id: SyncRunId::from_raw(i64::MAX),
            seq: 1,
            at_ms: 0,
            kind: EventKind::Started {
                kind: SyncKind::Full,
                dry_run: false,
            },
        };
        use domain::progress::ProgressSink;
        assert!(
            matches!(log.persist(&ghost).await, Err(ProgressError::Log(_))),
            "{backend}"
        );
        db.close().await;
    }
}

#[tokio::test]
async fn a_second_writer_on_the_same_run_is_a_seq_mismatch() {
    let (dbs, _dir) = databases("progress log").await;
    let (_, db) = &dbs[0];
    let run = new_run(db, "progress-mismatch").await;
    let log = Arc::new(domain::progress::DbProgressLog::new(
        db.clone(),
        "progress-mismatch",
    ));
    let clock: Arc<ManualClock> = Arc::new(ManualClock::new(0));
    let mut a = ProgressTracker::new(
        run,
        clock.clone(),
        log.clone(),
        None,
        TrackerConfig::default(),
    );
    let mut b = ProgressTracker::new(run, clock, log.clone(), None, TrackerConfig::default());
    a.start(SyncKind::Full, false).await.unwrap();
    assert!(matches!(
        b.start(SyncKind::Full, false).await,
        Err(ProgressError::SeqMismatch {
            expected: 1,
            stored: 2,
            ..
        })
    ));
}

/// A small deterministic generator for the interleaving test (no extra dependency).
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[tokio::test]
async fn random_interleavings_of_emits_subscribes_polls_and_drops_never_lose_or_repeat_events() {
    use futures::FutureExt;
    for seed in 1..=200u64 {
        let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let log = MemoryProgressLog::new();
        // Tiny channels so lagging happens often.
        let hub = ProgressHub::new(1 + rng.below(4) as usize);
        let mut run = Run::new(&log, &hub);
        run.tracker.start(SyncKind::Full, false).await.unwrap();
        run.tracker.start_phase(Phase::Members, None).await.unwrap();
        // (after_seq, stream, received)
        let mut subs: Vec<(u64, domain::progress::ProgressStream, Vec<ProgressEvent>)> = Vec::new();
        let mut finished = false;
        for _ in 0..300 {
            match rng.below(10) {
                0..=3 if !finished => run.step().await,
                4 => {
                    let emitted = log.events(run_id()).len() as u64;
                    let after = rng.below(emitted + 1);
                    subs.push((
                        after,
                        hub.subscribe(run_id(), after, Arc::new(log.clone())),
                        Vec::new(),
                    ));
                }
                5..=8 if !subs.is_empty() => {
                    let i = rng.below(subs.len() as u64) as usize;
                    let (_, stream, got) = &mut subs[i];
                    for _ in 0..rng.below(5) {
                        match stream.next().now_or_never() {
                            Some(Some(item)) => got.push(item.unwrap()),
                            _ => break,
                        }
                    }
                }
                9 if !subs.is_empty() && rng.below(4) == 0 => {
                    // A client disconnects; its channel may be freed while the run goes on.
                    let i = rng.below(subs.len() as u64) as usize;
                    let (after, stream, got) = subs.swap_remove(i);
                    drop(stream);
                    let expected: Vec<_> = log
                        .events(run_id())
                        .into_iter()
                        .filter(|e| e.seq > after)
                        .collect();
                    assert_eq!(
                        got,
                        expected[..got.len()].to_vec(),
                        "seed {seed}: dropped prefix"
                    );
                }
                _ if !finished && rng.below(20) == 0 => {
                    run.tracker
                        .finish(SyncStatus::Succeeded, None)
                        .await
                        .unwrap();
                    finished = true;
                }
                _ => {}
            }
        }
        if !finished {
            run.tracker
                .finish(SyncStatus::Succeeded, None)
                .await
                .unwrap();
        }
        let all = log.events(run_id());
        for (after, mut stream, mut got) in subs {
            while let Some(item) = stream.next().await {
                got.push(item.unwrap());
            }
            let expected: Vec<_> = all.iter().filter(|e| e.seq > after).cloned().collect();
            assert_eq!(seqs(&got), seqs(&expected), "seed {seed}, after {after}");
            assert_eq!(got, expected, "seed {seed}");
        }
        assert_eq!(hub.live_runs(), 0, "seed {seed}: no channel left behind");
    }
}
