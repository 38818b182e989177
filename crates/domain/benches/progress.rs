//! Cost of progress reporting inside a sync: 100,000 `advance` calls through a tracker (memory log, hub
//! with one idle subscriber, 1 ms of clock per item so the time throttle is exercised), and a late
//! subscriber replaying a finished run's log. Run: `cargo bench -p domain --bench progress`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use domain::progress::{
    EntityCounters, MemoryProgressLog, Phase, ProgressHub, ProgressTracker, SyncKind, SyncRunId,
    SyncStatus, TrackerConfig,
};
use futures::StreamExt;
use wx_api::clock::ManualClock;

const ITEMS: u64 = 100_000;

async fn one_run(log: &MemoryProgressLog, hub: &ProgressHub, run: SyncRunId) {
    let clock = ManualClock::new(0);
    let mut t = ProgressTracker::new(
        run,
        Arc::new(clock.clone()),
        Arc::new(log.clone()),
        Some(hub.clone()),
        TrackerConfig::default(),
    );
    t.start(SyncKind::Full, false).await.unwrap();
    t.start_phase(Phase::Members, Some(ITEMS)).await.unwrap();
    let delta = EntityCounters {
        created: 1,
        ..EntityCounters::default()
    };
    for _ in 0..ITEMS {
        clock.advance(Duration::from_millis(1));
        t.advance(1, delta).await.unwrap();
    }
    t.finish(SyncStatus::Succeeded, None).await.unwrap();
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("progress");
    g.sample_size(20);
    g.bench_function("tracker_100k_advances", |b| {
        let mut n = 0;
        b.iter(|| {
            n += 1;
            let run = SyncRunId::from_raw(n);
            let log = MemoryProgressLog::new();
            let hub = ProgressHub::default();
            rt.block_on(async {
                let _idle = hub.subscribe(run, 0, Arc::new(log.clone()));
                one_run(&log, &hub, run).await;
            });
        });
    });

    let log = MemoryProgressLog::new();
    let hub = ProgressHub::default();
    let run = SyncRunId::from_raw(1);
    rt.block_on(one_run(&log, &hub, run));
    let events = log.events(run).len();
    g.bench_function(format!("replay_finished_run_{events}_events"), |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut s = hub.subscribe(run, 0, Arc::new(log.clone()));
                let mut n = 0;
                while let Some(item) = s.next().await {
                    item.unwrap();
                    n += 1;
                }
                assert_eq!(n, events);
            });
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
