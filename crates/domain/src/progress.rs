//! Live progress of a sync run: the event model, the tracker the sync engine drives (rate and ETA from the
//! injected clock, throttled `Advanced` events), the persistence seam (`ProgressSink` / `ProgressLog`), the
//! in-process fan-out hub whose subscribers replay the persisted log and then follow live without gaps or
//! duplicates, and the Server-Sent Events framing.
//!
//! Ordering contract: the tracker persists an event *before* publishing it to the hub. A subscriber that
//! sees a live event with a seq it has not reached yet can therefore always fill the gap from the log, which
//! is how both the replay/live race and lagging (slow) subscribers are handled.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use wx_api::clock::Clock;

use crate::Db;

pub use store::{EntityCounters, SyncKind, SyncRunId, SyncStatus};

/// One event of one run. `seq` starts at 1 and has no gaps within a run; it doubles as the SSE `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressEvent {
    pub run_id: SyncRunId,
    pub seq: u64,
    /// Clock time of the event, milliseconds since the Unix epoch.
    pub at_ms: i64,
    pub kind: EventKind,
}

impl ProgressEvent {
    /// Whether this is the run's last event.
    pub fn is_finished(&self) -> bool {
        matches!(self.kind, EventKind::Finished { .. })
    }
}

/// What happened. Serialised as `{"type": "advanced", ...}`; field names are part of the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The run began.
    Started { kind: SyncKind, dry_run: bool },
    /// A phase began; `total` is the number of items when known in advance.
    Phase { phase: Phase, total: Option<u64> },
    /// Work done in the current phase so far. `created`..`unchanged` are the phase's running totals.
    Advanced {
        phase: Phase,
        done: u64,
        total: Option<u64>,
        created: u64,
        updated: u64,
        removed: u64,
        unchanged: u64,
        /// Items per second over the recent window (not since the start of the phase).
        rate_per_s: f64,
        /// Estimated time left in the phase; absent when the total or the rate is unknown.
        eta_ms: Option<u64>,
    },
    /// One item failed; the run goes on.
    ItemError {
        phase: Phase,
        /// The item's upstream id (a userid, a department id).
        item: String,
        /// The upstream errcode when there is one.
        code: Option<i64>,
        message: String,
    },
    /// The run ended. `counters` holds the final totals per phase that counted anything.
    Finished {
        status: SyncStatus,
        counters: BTreeMap<Phase, EntityCounters>,
        item_errors: u64,
        error: Option<String>,
    },
}

/// A stage of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Fetching departments (they become roles).
    Departments,
    /// Fetching members (they become users).
    Members,
    /// Comparing upstream with the local directory.
    Diff,
    /// Writing the changes.
    Apply,
    /// Tag memberships.
    Tags,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Departments => "departments",
            Phase::Members => "members",
            Phase::Diff => "diff",
            Phase::Apply => "apply",
            Phase::Tags => "tags",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Progress could not be recorded or replayed.
#[derive(Debug, thiserror::Error)]
pub enum ProgressError {
    /// The event log (database or memory) failed.
    #[error("PG001 progress log: {0}")]
    Log(String),
    /// The database numbered an event differently from the tracker (a second writer on the same run).
    #[error("PG003 run {run_id}: event stored as seq {stored}, expected {expected}")]
    SeqMismatch {
        run_id: SyncRunId,
        expected: u64,
        stored: i64,
    },
    /// The tracker was used out of order (for example `advance` before any `start_phase`).
    #[error("PG002 progress tracker misuse: {0}")]
    Misuse(&'static str),
}

/// Where events are persisted so late subscribers can replay them. The store implements this with its
/// `sync_events` table; [`MemoryProgressLog`] serves tests and single-process use.
#[async_trait]
pub trait ProgressSink: Send + Sync + fmt::Debug {
    async fn persist(&self, event: &ProgressEvent) -> Result<(), ProgressError>;
}

/// Reading the persisted events back.
#[async_trait]
pub trait ProgressLog: Send + Sync + fmt::Debug {
    /// The run's events with `seq > after_seq`, in seq order.
    async fn events_after(
        &self,
        run_id: SyncRunId,
        after_seq: u64,
    ) -> Result<Vec<ProgressEvent>, ProgressError>;

    /// Whether event `seq` is the run's `Finished` (always its last). Lets a subscriber that already saw
    /// everything (its `Last-Event-ID` is the last seq) end at once instead of waiting for events that will
    /// never come. Reads one event.
    async fn is_finished_at(&self, run_id: SyncRunId, seq: u64) -> Result<bool, ProgressError> {
        if seq == 0 {
            return Ok(false);
        }
        let events = self.events_after(run_id, seq - 1).await?;
        Ok(events
            .first()
            .is_some_and(|e| e.seq == seq && e.is_finished()))
    }
}

/// Events kept in memory, per run. Cloning shares the log.
#[derive(Debug, Clone, Default)]
pub struct MemoryProgressLog {
    runs: Arc<Mutex<HashMap<SyncRunId, Vec<ProgressEvent>>>>,
}

impl MemoryProgressLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every event of a run, in seq order.
    pub fn events(&self, run_id: SyncRunId) -> Vec<ProgressEvent> {
        lock(&self.runs).get(&run_id).cloned().unwrap_or_default()
    }
}

#[async_trait]
impl ProgressSink for MemoryProgressLog {
    async fn persist(&self, event: &ProgressEvent) -> Result<(), ProgressError> {
        let mut runs = lock(&self.runs);
        let events = runs.entry(event.run_id).or_default();
        // Keep the log's seq order even if a caller persists twice (idempotent on seq).
        match events.last() {
            Some(last) if last.seq >= event.seq => {
                if let Some(slot) = events.iter_mut().find(|e| e.seq == event.seq) {
                    *slot = event.clone();
                }
            }
            _ => events.push(event.clone()),
        }
        Ok(())
    }
}

#[async_trait]
impl ProgressLog for MemoryProgressLog {
    async fn events_after(
        &self,
        run_id: SyncRunId,
        after_seq: u64,
    ) -> Result<Vec<ProgressEvent>, ProgressError> {
        Ok(lock(&self.runs)
            .get(&run_id)
            .map(|events| {
                events
                    .iter()
                    .filter(|e| e.seq > after_seq)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// The persisted log in the database (`sync_events`). The store numbers a run's events itself; the tracker is
/// the run's only writer and both count from 1 without gaps, so the numbers agree, and a disagreement is an
/// error rather than silently renumbered. The payload column holds the event's `kind`.
#[derive(Debug, Clone)]
pub struct DbProgressLog {
    db: Db,
    tenant: String,
}

/// Events read per query when replaying.
const REPLAY_PAGE: u32 = 1_000;

impl DbProgressLog {
    pub fn new(db: Db, tenant: impl Into<String>) -> Self {
        DbProgressLog {
            db,
            tenant: tenant.into(),
        }
    }
}

#[async_trait]
impl ProgressSink for DbProgressLog {
    async fn persist(&self, event: &ProgressEvent) -> Result<(), ProgressError> {
        let payload =
            serde_json::to_value(&event.kind).map_err(|e| ProgressError::Log(e.to_string()))?;
        let stored = self
            .db
            .append_sync_event(&self.tenant, event.run_id, event.at_ms, &payload)
            .await
            .map_err(|e| ProgressError::Log(e.to_string()))?;
        if u64::try_from(stored).ok() != Some(event.seq) {
            return Err(ProgressError::SeqMismatch {
                run_id: event.run_id,
                expected: event.seq,
                stored,
            });
        }
        Ok(())
    }
}

#[async_trait]
impl ProgressLog for DbProgressLog {
    async fn events_after(
        &self,
        run_id: SyncRunId,
        after_seq: u64,
    ) -> Result<Vec<ProgressEvent>, ProgressError> {
        let mut out = Vec::new();
        let mut after = i64::try_from(after_seq).unwrap_or(i64::MAX);
        loop {
            let page = self
                .db
                .sync_events_after(&self.tenant, run_id, after, REPLAY_PAGE)
                .await
                .map_err(|e| ProgressError::Log(e.to_string()))?;
            let full = page.len() >= REPLAY_PAGE as usize;
            for row in page {
                after = row.seq;
                out.push(ProgressEvent {
                    run_id: row.run_id,
                    seq: u64::try_from(row.seq)
                        .map_err(|_| ProgressError::Log(format!("negative seq {}", row.seq)))?,
                    at_ms: row.at_ms,
                    kind: serde_json::from_value(row.payload)
                        .map_err(|e| ProgressError::Log(format!("stored event {after}: {e}")))?,
                });
            }
            if !full {
                return Ok(out);
            }
        }
    }
}

/// A poisoned lock only means another thread panicked while holding it; the maps stay usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------------------
// Tracker

/// How the tracker measures and throttles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackerConfig {
    /// Rate is measured over this much recent clock time.
    pub rate_window_ms: i64,
    /// An `Advanced` event goes out at least this much clock time after the previous one...
    pub min_interval_ms: i64,
    /// ...or when `done` crosses another this-many-per-mille of `total`. The last one of a phase always goes.
    pub min_step_per_mille: u64,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            rate_window_ms: 5_000,
            min_interval_ms: 100,
            min_step_per_mille: 10,
        }
    }
}

/// The state of the phase in progress.
#[derive(Debug)]
struct PhaseState {
    phase: Phase,
    total: Option<u64>,
    done: u64,
    counts: EntityCounters,
    /// `(at_ms, done)` samples, oldest first, at most one per millisecond.
    samples: VecDeque<(i64, u64)>,
    last_emit_ms: i64,
    last_emit_step: u64,
    /// `done` at the last emitted `Advanced`, so a phase end re-emits only when something moved.
    emitted_done: Option<u64>,
}

/// Records one run's progress: the sync engine calls it, it stamps and numbers events, persists them to the
/// sink and publishes them to the hub.
#[derive(Debug)]
pub struct ProgressTracker {
    run_id: SyncRunId,
    clock: Arc<dyn Clock>,
    sink: Arc<dyn ProgressSink>,
    hub: Option<ProgressHub>,
    config: TrackerConfig,
    next_seq: u64,
    phase: Option<PhaseState>,
    totals: BTreeMap<Phase, EntityCounters>,
    item_errors: u64,
    finished: bool,
}

impl ProgressTracker {
    /// A tracker for `run_id`. Nothing is emitted until [`ProgressTracker::start`].
    pub fn new(
        run_id: SyncRunId,
        clock: Arc<dyn Clock>,
        sink: Arc<dyn ProgressSink>,
        hub: Option<ProgressHub>,
        config: TrackerConfig,
    ) -> Self {
        ProgressTracker {
            run_id,
            clock,
            sink,
            hub,
            config,
            next_seq: 1,
            phase: None,
            totals: BTreeMap::new(),
            item_errors: 0,
            finished: false,
        }
    }

    pub fn run_id(&self) -> SyncRunId {
        self.run_id
    }

    /// Emit `Started`.
    pub async fn start(&mut self, kind: SyncKind, dry_run: bool) -> Result<(), ProgressError> {
        self.emit(EventKind::Started { kind, dry_run }).await
    }

    /// End the current phase (its last `Advanced` goes out if not yet sent) and begin `phase`.
    pub async fn start_phase(
        &mut self,
        phase: Phase,
        total: Option<u64>,
    ) -> Result<(), ProgressError> {
        self.close_phase().await?;
        let now = self.clock.now_ms();
        self.phase = Some(PhaseState {
            phase,
            total,
            done: 0,
            counts: self.totals.get(&phase).copied().unwrap_or_default(),
            samples: VecDeque::from([(now, 0)]),
            last_emit_ms: now,
            last_emit_step: 0,
            emitted_done: None,
        });
        self.emit(EventKind::Phase { phase, total }).await
    }

    /// `n` more items of the current phase are done, with what they did. Emits `Advanced` only when the
    /// throttle allows (and always for the item that reaches `total`).
    pub async fn advance(&mut self, n: u64, delta: EntityCounters) -> Result<(), ProgressError> {
        let now = self.clock.now_ms();
        let config = self.config;
        let state = self
            .phase
            .as_mut()
            .ok_or(ProgressError::Misuse("advance before start_phase"))?;
        state.done = state.done.saturating_add(n);
        add_counts(&mut state.counts, delta);
        // One sample per millisecond; the phase's starting sample is never overwritten so the first rate
        // counts everything done since the phase began.
        let merge = state.samples.len() > 1;
        match state.samples.back_mut() {
            Some((at, done)) if merge && *at >= now => *done = state.done,
            _ => state.samples.push_back((now, state.done)),
        }
        // Keep one sample at or before the window's start so the window is always fully covered.
        let window_start = now - config.rate_window_ms;
        while state.samples.len() > 2 && state.samples[1].0 <= window_start {
            state.samples.pop_front();
        }
        let step = match state.total {
            Some(total) if total > 0 && config.min_step_per_mille > 0 => {
                state.done.saturating_mul(1000) / total / config.min_step_per_mille
            }
            _ => 0,
        };
        let reached_total = state.total.is_some_and(|t| state.done >= t);
        let due = now - state.last_emit_ms >= config.min_interval_ms
            || step > state.last_emit_step
            || reached_total;
        if due && state.emitted_done != Some(state.done) {
            state.last_emit_ms = now;
            state.last_emit_step = step;
            let kind = advanced(state, now);
            self.emit(kind).await?;
        }
        Ok(())
    }

    /// One item failed.
    pub async fn item_error(
        &mut self,
        item: impl Into<String>,
        code: Option<i64>,
        message: impl Into<String>,
    ) -> Result<(), ProgressError> {
        let phase = self
            .phase
            .as_ref()
            .map(|s| s.phase)
            .ok_or(ProgressError::Misuse("item_error before start_phase"))?;
        self.item_errors += 1;
        self.emit(EventKind::ItemError {
            phase,
            item: item.into(),
            code,
            message: message.into(),
        })
        .await
    }

    /// End the run: flush the phase's last `Advanced`, then emit `Finished` with the totals.
    pub async fn finish(
        &mut self,
        status: SyncStatus,
        error: Option<String>,
    ) -> Result<ProgressEvent, ProgressError> {
        if self.finished {
            return Err(ProgressError::Misuse("finish called twice"));
        }
        self.close_phase().await?;
        let kind = EventKind::Finished {
            status,
            counters: self.totals.clone(),
            item_errors: self.item_errors,
            error,
        };
        let event = self.stamp(kind);
        self.deliver(&event).await?;
        self.finished = true;
        Ok(event)
    }

    /// Flush the phase's final `Advanced` (if anything moved since the last one) and fold its counts into
    /// the run's totals.
    async fn close_phase(&mut self) -> Result<(), ProgressError> {
        let Some(mut state) = self.phase.take() else {
            return Ok(());
        };
        if state.done > 0 && state.emitted_done != Some(state.done) {
            let now = self.clock.now_ms();
            let kind = advanced(&mut state, now);
            self.emit(kind).await?;
        }
        if state.counts != EntityCounters::default() {
            self.totals.insert(state.phase, state.counts);
        }
        Ok(())
    }

    fn stamp(&self, kind: EventKind) -> ProgressEvent {
        ProgressEvent {
            run_id: self.run_id,
            seq: self.next_seq,
            at_ms: self.clock.now_ms(),
            kind,
        }
    }

    async fn emit(&mut self, kind: EventKind) -> Result<(), ProgressError> {
        if self.finished {
            return Err(ProgressError::Misuse("event after finish"));
        }
        let event = self.stamp(kind);
        self.deliver(&event).await
    }

    /// Persist first, then publish (see the module's ordering contract). A failed persist consumes no seq,
    /// so the log stays gap-free.
    async fn deliver(&mut self, event: &ProgressEvent) -> Result<(), ProgressError> {
        self.sink.persist(event).await?;
        self.next_seq += 1;
        if let Some(hub) = &self.hub {
            hub.publish(event);
        }
        Ok(())
    }
}

fn add_counts(into: &mut EntityCounters, d: EntityCounters) {
    into.created = into.created.saturating_add(d.created);
    into.updated = into.updated.saturating_add(d.updated);
    into.removed = into.removed.saturating_add(d.removed);
    into.unchanged = into.unchanged.saturating_add(d.unchanged);
}

/// Build the `Advanced` event of the phase as it stands at `now`, and remember it was emitted.
fn advanced(state: &mut PhaseState, now: i64) -> EventKind {
    state.emitted_done = Some(state.done);
    let rate_per_s = match state.samples.front() {
        Some(&(at, done)) if now > at => {
            state.done.saturating_sub(done) as f64 * 1000.0 / (now - at) as f64
        }
        _ => 0.0,
    };
    let eta_ms = match state.total {
        Some(total) if state.done >= total => Some(0),
        Some(total) if rate_per_s > 0.0 => {
            let left = total - state.done;
            Some((left as f64 * 1000.0 / rate_per_s).round() as u64)
        }
        _ => None,
    };
    EventKind::Advanced {
        phase: state.phase,
        done: state.done,
        total: state.total,
        created: state.counts.created,
        updated: state.counts.updated,
        removed: state.counts.removed,
        unchanged: state.counts.unchanged,
        rate_per_s,
        eta_ms,
    }
}

// ---------------------------------------------------------------------------------------------------------
// Hub

/// Live fan-out of events to subscribers, keyed by run. Publishing never waits: each run has a bounded
/// broadcast channel and a subscriber that falls behind re-reads what it missed from the log. Cloning shares
/// the hub.
#[derive(Debug, Clone)]
pub struct ProgressHub {
    runs: Arc<Mutex<HashMap<SyncRunId, broadcast::Sender<ProgressEvent>>>>,
    capacity: usize,
}

/// A subscriber's events: replayed then live, each exactly once, in seq order, ending after `Finished`. An
/// `Err` item (the log failed) is the stream's last.
pub type ProgressStream = BoxStream<'static, Result<ProgressEvent, ProgressError>>;

impl Default for ProgressHub {
    fn default() -> Self {
        ProgressHub::new(1024)
    }
}

impl ProgressHub {
    /// A hub whose per-run channels hold `capacity` events for the slowest subscriber.
    pub fn new(capacity: usize) -> Self {
        ProgressHub {
            runs: Arc::new(Mutex::new(HashMap::new())),
            capacity: capacity.max(1),
        }
    }

    /// Send an event to the run's live subscribers (none is fine). After `Finished` the run's channel is
    /// dropped; later subscribers replay from the log.
    pub fn publish(&self, event: &ProgressEvent) {
        let mut runs = lock(&self.runs);
        if let Some(tx) = runs.get(&event.run_id) {
            // An error only means nobody listens right now.
            let _ = tx.send(event.clone());
        }
        if event.is_finished() {
            runs.remove(&event.run_id);
        }
    }

    /// Runs with a live channel (for diagnostics and tests).
    pub fn live_runs(&self) -> usize {
        lock(&self.runs).len()
    }

    /// A live receiver for the run, made under the map's lock so [`ProgressHub::forget_if_idle`] never drops
    /// a channel between its creation and the subscription.
    fn receiver(&self, run_id: SyncRunId) -> broadcast::Receiver<ProgressEvent> {
        lock(&self.runs)
            .entry(run_id)
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe()
    }

    /// Events of `run_id` with `seq > after_seq` (the SSE `Last-Event-ID`): first those already in `log`,
    /// then live ones, without gaps or duplicates, ending after `Finished`.
    ///
    /// The live receiver is taken *before* the log is read, so an event published during the read is either
    /// in the read or in the receiver (or both; duplicates are dropped by seq). For a run that never started
    /// the stream waits; callers check the run exists first.
    pub fn subscribe<L>(&self, run_id: SyncRunId, after_seq: u64, log: Arc<L>) -> ProgressStream
    where
        L: ProgressLog + ?Sized + 'static,
    {
        let rx = self.receiver(run_id);
        let sub = Subscription {
            hub: self.clone(),
            run_id,
            last_seq: after_seq,
            log,
            rx: Some(rx),
            pending: VecDeque::new(),
            state: SubState::Replay,
        };
        stream::unfold(sub, |mut sub| async move {
            sub.next().await.map(|item| (item, sub))
        })
        // Polling an ended subscription again answers `None` instead of panicking.
        .fuse()
        .boxed()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubState {
    /// The initial read of the log is still to do.
    Replay,
    Live,
    /// `Finished` or an error was yielded.
    Done,
}

struct Subscription<L: ?Sized> {
    hub: ProgressHub,
    run_id: SyncRunId,
    /// The seq of the last event yielded (or the caller's `after_seq`).
    last_seq: u64,
    log: Arc<L>,
    rx: Option<broadcast::Receiver<ProgressEvent>>,
    /// Events read from the log, not yet yielded.
    pending: VecDeque<ProgressEvent>,
    state: SubState,
}

impl<L: ProgressLog + ?Sized> Subscription<L> {
    async fn next(&mut self) -> Option<Result<ProgressEvent, ProgressError>> {
        loop {
            if self.state == SubState::Done {
                return None;
            }
            if let Some(event) = self.pending.pop_front() {
                if event.seq <= self.last_seq {
                    continue;
                }
                return Some(Ok(self.accept(event)));
            }
            if self.state == SubState::Replay {
                self.state = SubState::Live;
                if let Err(e) = self.refill().await {
                    return Some(Err(self.fail(e)));
                }
                if self.pending.is_empty() {
                    // Nothing after `after_seq`: if that was the run's end, there is nothing to wait for.
                    match self.log.is_finished_at(self.run_id, self.last_seq).await {
                        Ok(true) => {
                            self.end();
                            return None;
                        }
                        Ok(false) => {}
                        Err(e) => return Some(Err(self.fail(e))),
                    }
                }
                continue;
            }
            let Some(rx) = self.rx.as_mut() else {
                self.end();
                return None;
            };
            match rx.recv().await {
                Ok(event) if event.seq <= self.last_seq => continue,
                Ok(event) if event.seq == self.last_seq + 1 => return Some(Ok(self.accept(event))),
                Ok(event) => {
                    // A gap: events between were published before we listened or while we lagged. They are
                    // persisted (persist precedes publish), so read them; then take this one.
                    if let Err(e) = self.refill().await {
                        return Some(Err(self.fail(e)));
                    }
                    self.pending.push_back(event);
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if let Err(e) = self.refill().await {
                        return Some(Err(self.fail(e)));
                    }
                }
                Err(broadcast::error::RecvError::Closed) => {
                    // The channel went away (the hub forgot the run): whatever is left is in the log.
                    self.rx = None;
                    if let Err(e) = self.refill().await {
                        return Some(Err(self.fail(e)));
                    }
                    if self.pending.is_empty() {
                        self.end();
                        return None;
                    }
                }
            }
        }
    }

    async fn refill(&mut self) -> Result<(), ProgressError> {
        let events = self.log.events_after(self.run_id, self.last_seq).await?;
        self.pending.extend(events);
        Ok(())
    }

    fn accept(&mut self, event: ProgressEvent) -> ProgressEvent {
        self.last_seq = event.seq;
        if event.is_finished() {
            self.end();
        }
        event
    }

    fn end(&mut self) {
        self.state = SubState::Done;
        self.pending.clear();
        self.rx = None;
        self.hub.forget_if_idle(self.run_id);
    }

    fn fail(&mut self, e: ProgressError) -> ProgressError {
        self.end();
        e
    }
}

impl<L: ?Sized> Drop for Subscription<L> {
    /// A subscriber that goes away (client disconnected) frees the run's channel if it was the last one; a
    /// later subscriber makes a new one and fills any gap from the log.
    fn drop(&mut self) {
        self.rx = None;
        self.hub.forget_if_idle(self.run_id);
    }
}

impl ProgressHub {
    /// Drop a run's channel when nobody listens any more and its end was observed.
    fn forget_if_idle(&self, run_id: SyncRunId) {
        let mut runs = lock(&self.runs);
        if runs.get(&run_id).is_some_and(|tx| tx.receiver_count() == 0) {
            runs.remove(&run_id);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Server-Sent Events

/// The SSE event name of progress events.
pub const SSE_EVENT: &str = "progress";

/// One SSE frame: `event: progress\nid: <seq>\ndata: <json>\n\n`. Compact JSON has no raw newlines, so the
/// data fits one `data:` line.
pub fn sse_frame(event: &ProgressEvent) -> Result<String, serde_json::Error> {
    let json = serde_json::to_string(event)?;
    Ok(format!(
        "event: {SSE_EVENT}\nid: {}\ndata: {json}\n\n",
        event.seq
    ))
}

/// The `after_seq` for a (re)connecting SSE client: its `Last-Event-ID` header if that is a seq, else 0 (from
/// the beginning).
pub fn after_seq_from_last_event_id(header: Option<&str>) -> u64 {
    header.and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}
