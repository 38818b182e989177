//! Sync progress as Server-Sent Events: each event is `event: progress`, `id: <seq>`, `data: <json>`; a client
//! that reconnects sends `Last-Event-ID` and resumes after that seq. A run this process executes is followed
//! through the hub (persisted events replayed, then live ones); any other run through [`polled`], which
//! reads the persisted log until the run's last event. The route is in `routes::sync`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use domain::Db;
use domain::progress::{
    DbProgressLog, ProgressError, ProgressEvent, ProgressLog, ProgressStream, SSE_EVENT, SyncRunId,
    SyncStatus, after_seq_from_last_event_id,
};
use futures::stream::{Stream, StreamExt};

/// The seq to resume after: the `Last-Event-ID` header of a reconnecting client, else 0 (from the start).
pub(crate) fn after_seq(headers: &HeaderMap) -> u64 {
    after_seq_from_last_event_id(headers.get("last-event-id").and_then(|v| v.to_str().ok()))
}

/// Turn a subscription into an SSE response. The stream ends after `Finished`; a failure of the progress log
/// ends it with one `event: error` whose data is opaque (the cause is logged, it may name the database).
pub(crate) fn sse(events: ProgressStream) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let frames = events.map(|item| {
        let event = match item {
            Ok(ev) => match serde_json::to_string(&ev) {
                Ok(json) => Event::default()
                    .event(SSE_EVENT)
                    .id(ev.seq.to_string())
                    .data(json),
                Err(e) => {
                    tracing::error!(error.cause = %e, seq = ev.seq, "cannot encode a progress event");
                    error_event()
                }
            },
            Err(e) => {
                tracing::error!(error.cause = %e, "progress stream failed");
                error_event()
            }
        };
        Ok(event)
    });
    Sse::new(frames).keep_alive(KeepAlive::default())
}

/// How often [`polled`] looks for new events of a run that is running elsewhere.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// A run whose record still says `running` but that has logged nothing for this long is taken as orphaned
/// (its process died without recording the end), and [`polled`] stops following it. Twice the default
/// sync lease: a live run renews its lease, and logs progress, far more often.
const ORPHAN_IDLE: Duration = Duration::from_secs(600);

/// The events of a run this process does not execute (finished, or running in another process on the same
/// database), read from the log: everything after `after_seq`, then, while the run's record says `running`,
/// whatever is appended, every `interval`. Ends after `Finished`, or once the run is no longer running and
/// its log has been read to the end (a run that died without its `Finished` event still ends the stream).
pub(crate) fn polled(
    db: Db,
    tenant: String,
    run_id: SyncRunId,
    after_seq: u64,
    interval: Duration,
) -> ProgressStream {
    let log = Arc::new(DbProgressLog::new(db.clone(), tenant.clone()));
    let state = Polled {
        db,
        tenant,
        run_id,
        log,
        last_seq: after_seq,
        pending: VecDeque::new(),
        last_event_at: tokio::time::Instant::now(),
        ending: false,
        done: false,
    };
    futures::stream::unfold(state, move |mut st| async move {
        st.next(interval).await.map(|item| (item, st))
    })
    .fuse()
    .boxed()
}

struct Polled {
    db: Db,
    tenant: String,
    run_id: SyncRunId,
    log: Arc<DbProgressLog>,
    last_seq: u64,
    pending: VecDeque<ProgressEvent>,
    /// When the log last had something new (or the stream began).
    last_event_at: tokio::time::Instant,
    /// The run is no longer running: one last read of the log, then the end.
    ending: bool,
    done: bool,
}

impl Polled {
    async fn next(&mut self, interval: Duration) -> Option<Result<ProgressEvent, ProgressError>> {
        loop {
            if self.done {
                return None;
            }
            if let Some(event) = self.pending.pop_front() {
                if event.seq <= self.last_seq {
                    continue;
                }
                self.last_seq = event.seq;
                self.done = event.is_finished();
                return Some(Ok(event));
            }
            match self.log.events_after(self.run_id, self.last_seq).await {
                Ok(events) if !events.is_empty() => {
                    self.last_event_at = tokio::time::Instant::now();
                    self.pending.extend(events);
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
            if self.ending {
                self.done = true;
                return None;
            }
            match self.db.sync_run(&self.tenant, self.run_id).await {
                // Read the log once more: events appended between the read above and this one.
                Ok(Some(run)) if run.status != SyncStatus::Running => self.ending = true,
                Ok(Some(_)) if self.last_event_at.elapsed() >= ORPHAN_IDLE => {
                    tracing::warn!(run = %self.run_id, "a running sync run logged nothing for 10 minutes; the event stream stops following it");
                    self.done = true;
                    return None;
                }
                Ok(Some(_)) => tokio::time::sleep(interval).await,
                Ok(None) => self.ending = true,
                Err(e) => {
                    self.done = true;
                    return Some(Err(ProgressError::Log(e.to_string())));
                }
            }
        }
    }
}

fn error_event() -> Event {
    Event::default()
        .event("error")
        .data(r#"{"code":"internal","message":"progress unavailable"}"#)
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;
    use axum::http::HeaderValue;
    use axum::response::IntoResponse;
    use domain::progress::{
        EventKind, Phase, ProgressError, ProgressEvent, SyncKind, SyncRunId, sse_frame,
    };

    use super::*;

    fn events() -> Vec<ProgressEvent> {
        let run_id = SyncRunId::from_raw(3);
        vec![
            ProgressEvent {
                run_id,
                seq: 4,
                at_ms: 10,
                kind: EventKind::Started {
                    kind: SyncKind::Full,
                    dry_run: false,
                },
            },
            ProgressEvent {
                run_id,
                seq: 5,
                at_ms: 11,
                kind: EventKind::Phase {
                    phase: Phase::Members,
                    total: Some(2),
                },
            },
        ]
    }

    async fn body_of(stream: ProgressStream) -> String {
        let resp = sse(stream).into_response();
        assert_eq!(
            resp.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        let bytes = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn the_response_is_one_progress_frame_per_event_with_the_seq_as_id() {
        let evs = events();
        let stream = futures::stream::iter(evs.clone().into_iter().map(Ok)).boxed();
        let body = body_of(stream).await;
        let expected: String = evs.iter().map(|e| sse_frame(e).unwrap()).collect();
        assert_eq!(body, expected);
        assert!(body.starts_with("event: progress\nid: 4\ndata: {\"run_id\":3,\"seq\":4,"));
    }

    #[tokio::test]
    async fn a_log_failure_ends_with_an_opaque_error_event() {
        let items = vec![
            Ok(events().remove(0)),
            Err(ProgressError::Log("postgres://secret@db failed".into())),
        ];
        let body = body_of(futures::stream::iter(items).boxed()).await;
        assert!(body.contains("id: 4\n"));
        assert!(body.ends_with(
            "event: error\ndata: {\"code\":\"internal\",\"message\":\"progress unavailable\"}\n\n"
        ));
        assert!(!body.contains("secret"));
    }

    #[test]
    fn last_event_id_sets_where_to_resume() {
        let mut headers = HeaderMap::new();
        assert_eq!(after_seq(&headers), 0);
        headers.insert("last-event-id", HeaderValue::from_static("12"));
        assert_eq!(after_seq(&headers), 12);
        headers.insert("last-event-id", HeaderValue::from_static("nope"));
        assert_eq!(after_seq(&headers), 0);
    }
}
