//! The terminal view of a sync run, shared by `wxbridge sync` and `wxbridge demo`: progress bars per phase on
//! stderr and a summary table on stdout, or (`--json`) each event as one JSON line on stdout and nothing else.
//! Output goes to any `Write` and bars can be hidden, so the rendering is tested without a terminal.

use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use domain::progress::{
    EntityCounters, EventKind, Phase, ProgressEvent, ProgressStream, SyncKind, SyncRunId,
    SyncStatus,
};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cmd::CmdError;

/// How many item errors the summary lists one by one (the count is always complete).
const LISTED_ITEM_ERRORS: usize = 20;

/// Human (bars + table) or machine (JSON lines) output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Human {
        /// Draw bars on stderr. Off when stderr is not a terminal so logs and CI output stay clean.
        bars: bool,
    },
    Json,
}

impl Mode {
    /// `--json` or the human view, with bars only on a terminal.
    pub fn from_flag(json: bool) -> Self {
        if json {
            Mode::Json
        } else {
            Mode::Human {
                bars: io::stderr().is_terminal(),
            }
        }
    }
}

/// One failed item, as listed in the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemFailure {
    pub phase: Phase,
    pub item: String,
    pub code: Option<i64>,
    pub message: String,
}

/// What a run did, gathered from its events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub run_id: Option<SyncRunId>,
    pub kind: Option<SyncKind>,
    pub dry_run: bool,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    /// `None` until `Finished` arrives (a stream cut short).
    pub status: Option<SyncStatus>,
    pub counters: BTreeMap<Phase, EntityCounters>,
    pub item_errors: u64,
    /// The first [`LISTED_ITEM_ERRORS`] failures.
    pub failures: Vec<ItemFailure>,
    pub error: Option<String>,
}

impl Summary {
    /// Fold one event in.
    pub fn observe(&mut self, ev: &ProgressEvent) {
        self.run_id = Some(ev.run_id);
        match &ev.kind {
            EventKind::Started { kind, dry_run } => {
                self.kind = Some(*kind);
                self.dry_run = *dry_run;
                self.started_at_ms = Some(ev.at_ms);
            }
            EventKind::Phase { .. } => {}
            EventKind::Advanced {
                phase,
                created,
                updated,
                removed,
                unchanged,
                ..
            } => {
                // Running totals, so a stream cut short still summarises what was seen.
                self.counters.insert(
                    *phase,
                    EntityCounters {
                        created: *created,
                        updated: *updated,
                        removed: *removed,
                        unchanged: *unchanged,
                    },
                );
            }
            EventKind::ItemError {
                phase,
                item,
                code,
                message,
            } => {
                self.item_errors += 1;
                if self.failures.len() < LISTED_ITEM_ERRORS {
                    self.failures.push(ItemFailure {
                        phase: *phase,
                        item: item.clone(),
                        code: *code,
                        message: message.clone(),
                    });
                }
            }
            EventKind::Finished {
                status,
                counters,
                item_errors,
                error,
            } => {
                self.status = Some(*status);
                // The run's own totals are authoritative.
                self.counters = counters.clone();
                self.item_errors = *item_errors;
                self.error = error.clone();
                self.finished_at_ms = Some(ev.at_ms);
            }
        }
    }

    pub fn duration(&self) -> Option<Duration> {
        let (start, end) = (self.started_at_ms?, self.finished_at_ms?);
        Some(Duration::from_millis(
            u64::try_from(end.saturating_sub(start)).unwrap_or(0),
        ))
    }

    /// The table printed at the end of a human-mode run.
    pub fn write_table(&self, out: &mut impl Write) -> io::Result<()> {
        let run = self
            .run_id
            .map_or_else(|| "?".to_owned(), |id| id.to_string());
        let kind = self.kind.map_or("sync", SyncKind::as_str);
        let status = self.status.map_or("unfinished", SyncStatus::as_str);
        let dry = if self.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        };
        write!(out, "{kind} sync run {run}{dry}: {status}")?;
        match self.duration() {
            Some(d) => writeln!(out, " in {}", human_duration(d))?,
            None => writeln!(out)?,
        }
        // One row per phase that counted something. No total row: the diff counts what the plan found and
        // apply what was written, so adding them up would count each change twice.
        writeln!(
            out,
            "{:<12} {:>9} {:>9} {:>9} {:>9}",
            "phase", "created", "updated", "removed", "unchanged"
        )?;
        for (phase, c) in &self.counters {
            writeln!(
                out,
                "{:<12} {:>9} {:>9} {:>9} {:>9}",
                phase.as_str(),
                c.created,
                c.updated,
                c.removed,
                c.unchanged
            )?;
        }
        writeln!(out, "item errors: {}", self.item_errors)?;
        for f in &self.failures {
            let code = f.code.map(|c| format!(" [{c}]")).unwrap_or_default();
            writeln!(out, "  {} {}{}: {}", f.phase, f.item, code, f.message)?;
        }
        if self.item_errors > self.failures.len() as u64 {
            writeln!(
                out,
                "  ... and {} more",
                self.item_errors - self.failures.len() as u64
            )?;
        }
        if let Some(e) = &self.error {
            writeln!(out, "error: {e}")?;
        }
        Ok(())
    }
}

fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        let s = d.as_secs();
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// Draws a run as its events arrive.
#[derive(Debug)]
pub struct Renderer<W: Write> {
    mode: Mode,
    out: W,
    bar: Option<ProgressBar>,
    summary: Summary,
}

impl<W: Write> Renderer<W> {
    /// Render to `out` (stdout in the binary); bars, when on, go to stderr.
    pub fn new(mode: Mode, out: W) -> Self {
        Renderer {
            mode,
            out,
            bar: None,
            summary: Summary::default(),
        }
    }

    #[cfg(test)]
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// Give back the output (tests read what was written).
    #[cfg(test)]
    pub fn into_output(mut self) -> W {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
        self.out
    }

    /// Handle one event.
    pub fn handle(&mut self, ev: &ProgressEvent) -> io::Result<()> {
        self.summary.observe(ev);
        let bars = match self.mode {
            Mode::Json => {
                serde_json::to_writer(&mut self.out, ev)?;
                self.out.write_all(b"\n")?;
                // One line per event as it happens, for pipes.
                return self.out.flush();
            }
            Mode::Human { bars } => bars,
        };
        match &ev.kind {
            EventKind::Started { .. } => {}
            EventKind::Phase { phase, total } => {
                if let Some(old) = self.bar.take() {
                    old.finish();
                }
                self.bar = Some(new_bar(*phase, *total, bars));
            }
            EventKind::Advanced {
                done,
                total,
                created,
                updated,
                removed,
                rate_per_s,
                eta_ms,
                ..
            } => {
                if let Some(bar) = &self.bar {
                    if let Some(total) = total {
                        bar.set_length(*total);
                    }
                    bar.set_position(*done);
                    bar.set_message(bar_message(
                        *rate_per_s,
                        *eta_ms,
                        *created,
                        *updated,
                        *removed,
                    ));
                }
            }
            EventKind::ItemError {
                item,
                code,
                message,
                ..
            } => {
                if let Some(bar) = &self.bar {
                    let code = code.map(|c| format!(" [{c}]")).unwrap_or_default();
                    // Printed above the bar; a hidden bar prints nothing (the summary lists them).
                    bar.println(format!("item {item}{code}: {message}"));
                }
            }
            EventKind::Finished { .. } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish();
                }
                self.summary.write_table(&mut self.out)?;
                self.out.flush()?;
            }
        }
        Ok(())
    }

    /// Render a whole subscription; returns the summary. A stream that ends without `Finished` is an error
    /// (the summary of what was seen is printed first in human mode).
    pub async fn run(mut self, mut events: ProgressStream) -> Result<Summary, CmdError> {
        while let Some(item) = events.next().await {
            let ev = item.map_err(|e| CmdError::new(format!("progress stream: {e}")))?;
            self.handle(&ev)
                .map_err(|e| CmdError::new(format!("cannot write progress: {e}")))?;
        }
        let summary = self.summary.clone();
        if summary.status.is_none() {
            if matches!(self.mode, Mode::Human { .. }) {
                let _ = self.summary.write_table(&mut self.out);
            }
            return Err(CmdError::new(
                "the progress stream ended before the run finished",
            ));
        }
        Ok(summary)
    }
}

/// A phase with a known total: `     members [=====>    ] 512/1000 230.5/s ETA 2.1 s +500 ~12 -0`.
const BAR_TEMPLATE: &str = "{prefix:>12} [{bar:30}] {pos}/{len} {msg}";
/// A phase whose size is not known in advance.
const SPINNER_TEMPLATE: &str = "{prefix:>12} {spinner} {pos} {msg}";

fn new_bar(phase: Phase, total: Option<u64>, visible: bool) -> ProgressBar {
    let target = if visible {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(total, target);
    let template = if total.is_some() {
        BAR_TEMPLATE
    } else {
        SPINNER_TEMPLATE
    };
    // The templates are constants; a bad one would fall back to the default style rather than fail.
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(phase.as_str());
    bar
}

/// `123.4/s ETA 12s +5 ~2 -1`: rate, time left, created / updated / removed.
fn bar_message(rate: f64, eta_ms: Option<u64>, created: u64, updated: u64, removed: u64) -> String {
    let eta = eta_ms
        .map(|ms| format!(" ETA {}", human_duration(Duration::from_millis(ms))))
        .unwrap_or_default();
    format!("{rate:.1}/s{eta} +{created} ~{updated} -{removed}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64, at_ms: i64, kind: EventKind) -> ProgressEvent {
        ProgressEvent {
            run_id: SyncRunId::from_raw(9),
            seq,
            at_ms,
            kind,
        }
    }

    fn counters(created: u64, updated: u64, removed: u64, unchanged: u64) -> EntityCounters {
        EntityCounters {
            created,
            updated,
            removed,
            unchanged,
        }
    }

    fn run_events() -> Vec<ProgressEvent> {
        let advanced = |phase, done, c: EntityCounters| EventKind::Advanced {
            phase,
            done,
            total: Some(done),
            created: c.created,
            updated: c.updated,
            removed: c.removed,
            unchanged: c.unchanged,
            rate_per_s: 10.0,
            eta_ms: Some(0),
        };
        vec![
            ev(
                1,
                1_000,
                EventKind::Started {
                    kind: SyncKind::Full,
                    dry_run: false,
                },
            ),
            ev(
                2,
                1_000,
                EventKind::Phase {
                    phase: Phase::Departments,
                    total: Some(5),
                },
            ),
            ev(
                3,
                1_500,
                advanced(Phase::Departments, 5, counters(3, 1, 0, 1)),
            ),
            ev(
                4,
                1_500,
                EventKind::Phase {
                    phase: Phase::Members,
                    total: Some(100),
                },
            ),
            ev(
                5,
                2_000,
                EventKind::ItemError {
                    phase: Phase::Members,
                    item: "wangwu".into(),
                    code: Some(60111),
                    message: "userid not found".into(),
                },
            ),
            ev(
                6,
                3_000,
                advanced(Phase::Members, 100, counters(90, 4, 2, 3)),
            ),
            ev(
                7,
                13_500,
                EventKind::Finished {
                    status: SyncStatus::Partial,
                    counters: [
                        (Phase::Departments, counters(3, 1, 0, 1)),
                        (Phase::Members, counters(90, 4, 2, 3)),
                    ]
                    .into_iter()
                    .collect(),
                    item_errors: 1,
                    error: Some("a department fetch failed (60011)".into()),
                },
            ),
        ]
    }

    #[test]
    fn human_mode_prints_only_the_summary_table_on_stdout() {
        let mut r = Renderer::new(Mode::Human { bars: false }, Vec::new());
        for e in run_events() {
            r.handle(&e).unwrap();
        }
        let out = String::from_utf8(r.into_output()).unwrap();
        let expected = "\
full sync run 9: partial in 12.5 s
phase          created   updated   removed unchanged
departments          3         1         0         1
members             90         4         2         3
item errors: 1
  members wangwu [60111]: userid not found
error: a department fetch failed (60011)
";
        assert_eq!(out, expected);
    }

    #[test]
    fn nothing_is_printed_before_finished_in_human_mode() {
        let mut r = Renderer::new(Mode::Human { bars: false }, Vec::new());
        let events = run_events();
        for e in &events[..events.len() - 1] {
            r.handle(e).unwrap();
        }
        assert!(r.into_output().is_empty());
    }

    #[test]
    fn json_mode_prints_each_event_as_one_line_and_nothing_else() {
        let mut r = Renderer::new(Mode::Json, Vec::new());
        let events = run_events();
        for e in &events {
            r.handle(e).unwrap();
        }
        let out = String::from_utf8(r.into_output()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), events.len());
        for (line, e) in lines.iter().zip(&events) {
            let back: ProgressEvent = serde_json::from_str(line).unwrap();
            assert_eq!(&back, e);
        }
        assert!(!out.contains("unchanged\n"), "no table in JSON mode");
    }

    #[test]
    fn dry_runs_many_errors_and_long_runs_are_summarised() {
        let mut s = Summary::default();
        s.observe(&ev(
            1,
            0,
            EventKind::Started {
                kind: SyncKind::Incremental,
                dry_run: true,
            },
        ));
        for i in 0..25 {
            s.observe(&ev(
                2 + i,
                1,
                EventKind::ItemError {
                    phase: Phase::Apply,
                    item: format!("u{i}"),
                    code: None,
                    message: "boom".into(),
                },
            ));
        }
        s.observe(&ev(
            30,
            125_000,
            EventKind::Finished {
                status: SyncStatus::Succeeded,
                counters: BTreeMap::new(),
                item_errors: 25,
                error: None,
            },
        ));
        let mut out = Vec::new();
        s.write_table(&mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.starts_with(
                "incremental sync run 9 (dry run: nothing written): succeeded in 2m05s\n"
            ),
            "{out}"
        );
        assert!(out.contains("item errors: 25\n"));
        assert!(out.contains("  apply u19: boom\n"));
        assert!(!out.contains("u20:"));
        assert!(out.contains("  ... and 5 more\n"));
        assert_eq!(s.duration(), Some(Duration::from_millis(125_000)));
    }

    #[test]
    fn bars_follow_the_events_when_hidden() {
        let mut r = Renderer::new(Mode::Human { bars: false }, Vec::new());
        let events = run_events();
        for e in &events[..4] {
            r.handle(e).unwrap();
        }
        let bar = r.bar.clone().unwrap();
        assert_eq!(bar.length(), Some(100));
        assert_eq!(bar.position(), 0);
        r.handle(&events[4]).unwrap();
        r.handle(&events[5]).unwrap();
        assert_eq!(bar.position(), 100);
        assert_eq!(bar.message(), "10.0/s ETA 0 ms +90 ~4 -2");
        assert_eq!(r.summary().item_errors, 1);
        assert_eq!(r.summary().status, None);
    }

    #[test]
    fn the_bar_templates_parse() {
        assert!(ProgressStyle::with_template(BAR_TEMPLATE).is_ok());
        assert!(ProgressStyle::with_template(SPINNER_TEMPLATE).is_ok());
    }

    #[test]
    fn the_json_flag_selects_json_and_otherwise_the_human_view() {
        assert_eq!(Mode::from_flag(true), Mode::Json);
        assert!(matches!(Mode::from_flag(false), Mode::Human { .. }));
    }

    #[test]
    fn the_bar_message_shows_rate_eta_and_changes() {
        assert_eq!(
            bar_message(1234.56, Some(90_000), 5, 2, 1),
            "1234.6/s ETA 1m30s +5 ~2 -1"
        );
        assert_eq!(bar_message(0.0, None, 0, 0, 0), "0.0/s +0 ~0 -0");
    }

    #[tokio::test]
    async fn a_stream_is_rendered_to_the_end_and_a_cut_stream_is_an_error() {
        let events = run_events();
        let stream = futures::stream::iter(events.clone().into_iter().map(Ok)).boxed();
        let summary = Renderer::new(Mode::Json, Vec::new())
            .run(stream)
            .await
            .unwrap();
        assert_eq!(summary.status, Some(SyncStatus::Partial));
        assert_eq!(summary.counters[&Phase::Members], counters(90, 4, 2, 3));

        let cut = futures::stream::iter(events.into_iter().take(3).map(Ok)).boxed();
        let err = Renderer::new(Mode::Human { bars: false }, Vec::new())
            .run(cut)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("ended before the run finished"));
    }
}
