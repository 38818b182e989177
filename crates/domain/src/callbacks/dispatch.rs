//! The dispatch worker: claims inbox rows and handles them.
//!
//! - `change_contact` goes to [`crate::directory::incremental::apply_contact_change`] through the
//!   tenant's directory credential ([`crate::directory::options::directory_credential`]), whichever
//!   endpoint received it.
//! - Everything else (messages, subscribe / unsubscribe, click, view, enter_agent, location, ...) is
//!   stored as `pending_webhook` from the start ([`super::initial_status`]) and never claimed here: the
//!   business webhook (issue 5 item 3) delivers those rows. Should one be claimed anyway it is finished
//!   as `pending_webhook`. subscribe / unsubscribe do not touch the account graph yet.
//!
//! Exactly once: a claim is a lease (`lease`), so a crashed worker's rows come back; the apply is
//! idempotent (it re-reads upstream and writes nothing for a redelivered event), and the row is marked
//! done right after it, fenced by the claim's attempt number. A worker that dies between the apply and
//! the mark leaves a row that a later claim applies again, writing nothing.
//!
//! Failures: a malformed event (DM007), an unknown tenant or a tenant without a directory credential is
//! dead at once; any other failure (an upstream read, the database) is retried with exponential backoff
//! (`backoff_base` doubling up to `backoff_max`) and dead after `max_attempts` claims. Dead rows keep
//! their last error and are listed by `Db::inbox_messages` (and can be requeued).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use store::{InboxMessage, InboxStatus};
use wx_crypto::CallbackMessage;

use crate::directory::incremental::{IncrementalOptions, apply_contact_change};
use crate::directory::options::{directory_credential, no_directory_app_reason};
use crate::error::DomainError;
use crate::{Db, Tenants};

/// How the worker claims and retries.
#[derive(Debug, Clone)]
pub struct DispatchOptions {
    /// Names this worker's claims (unique per process by default).
    pub worker_id: String,
    /// Sleep between claims when the inbox had nothing due.
    pub poll_interval: Duration,
    /// Rows per claim.
    pub batch: i64,
    /// How long a claim is this worker's; after it, another worker may claim the row again.
    pub lease: Duration,
    /// Claims before a failing row is dead.
    pub max_attempts: i64,
    /// Delay before the first retry; doubles per attempt.
    pub backoff_base: Duration,
    /// Longest delay between retries.
    pub backoff_max: Duration,
    pub incremental: IncrementalOptions,
}

impl Default for DispatchOptions {
    fn default() -> Self {
        DispatchOptions {
            worker_id: format!("w{}-{:08x}", std::process::id(), rand::random::<u32>()),
            poll_interval: Duration::from_millis(200),
            batch: 32,
            lease: Duration::from_secs(120),
            max_attempts: 8,
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(600),
            incremental: IncrementalOptions::default(),
        }
    }
}

/// What one claim amounted to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatchReport {
    pub claimed: usize,
    pub done: usize,
    pub webhook: usize,
    pub retried: usize,
    pub dead: usize,
    /// Rows whose claim had moved on before this worker finished them (nothing written).
    pub lost: usize,
}

/// Claims and handles inbox rows of every tenant.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    db: Db,
    tenants: Tenants,
    opts: Arc<DispatchOptions>,
}

enum Verdict {
    Done(String),
    Webhook,
    Retry(String),
    Dead(String),
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Dispatcher {
    pub fn new(db: Db, tenants: Tenants, opts: DispatchOptions) -> Self {
        Dispatcher {
            db,
            tenants,
            opts: Arc::new(opts),
        }
    }

    fn now_ms(&self) -> i64 {
        self.tenants.tokens().clock().now_ms()
    }

    /// Claim one batch of due rows per configured tenant and handle each.
    pub async fn run_once(&self) -> Result<DispatchReport, DomainError> {
        let o = &self.opts;
        // Only the tenants this process has the configuration of: another deployment sharing the
        // database handles its own.
        let mut rows = Vec::new();
        for tenant in self.tenants.iter() {
            rows.extend(
                self.db
                    .claim_inbox(
                        tenant.key(),
                        &o.worker_id,
                        self.now_ms(),
                        ms(o.lease),
                        o.batch,
                    )
                    .await
                    .map_err(|e| DomainError::Database(e.to_string()))?,
            );
        }
        let mut report = DispatchReport {
            claimed: rows.len(),
            ..DispatchReport::default()
        };
        for row in rows {
            let verdict = self.handle(&row).await;
            let now = self.now_ms();
            let written = match &verdict {
                Verdict::Done(outcome) => {
                    report.done += 1;
                    self.finish(&row, InboxStatus::Done, Some(outcome), None, now)
                        .await
                }
                Verdict::Webhook => {
                    report.webhook += 1;
                    self.finish(&row, InboxStatus::PendingWebhook, None, None, now)
                        .await
                }
                Verdict::Dead(error) => {
                    report.dead += 1;
                    tracing::warn!(inbox.id = row.id, tenant = %row.tenant, inbox.kind = %row.kind,
                        error = %error, "callback dead");
                    self.finish(&row, InboxStatus::Dead, None, Some(error), now)
                        .await
                }
                Verdict::Retry(error) if row.attempts >= o.max_attempts => {
                    report.dead += 1;
                    let error = format!("gave up after {} attempts: {error}", row.attempts);
                    tracing::warn!(inbox.id = row.id, tenant = %row.tenant, inbox.kind = %row.kind,
                        error = %error, "callback dead");
                    self.finish(&row, InboxStatus::Dead, None, Some(&error), now)
                        .await
                }
                Verdict::Retry(error) => {
                    report.retried += 1;
                    let exp =
                        u32::try_from(row.attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
                    let delay = o
                        .backoff_base
                        .saturating_mul(2u32.saturating_pow(exp))
                        .min(o.backoff_max);
                    tracing::info!(inbox.id = row.id, tenant = %row.tenant, inbox.attempts = row.attempts,
                        retry_in_ms = ms(delay), error = %error, "callback will be retried");
                    self.db
                        .retry_inbox(
                            row.id,
                            &o.worker_id,
                            row.attempts,
                            error,
                            now.saturating_add(ms(delay)),
                        )
                        .await
                        .map_err(|e| DomainError::Database(e.to_string()))
                }
            }?;
            if !written {
                report.lost += 1;
            }
        }
        Ok(report)
    }

    async fn finish(
        &self,
        row: &InboxMessage,
        status: InboxStatus,
        outcome: Option<&str>,
        error: Option<&str>,
        now: i64,
    ) -> Result<bool, DomainError> {
        self.db
            .finish_inbox(
                row.id,
                &self.opts.worker_id,
                row.attempts,
                status,
                outcome,
                error,
                now,
            )
            .await
            .map_err(|e| DomainError::Database(e.to_string()))
    }

    async fn handle(&self, row: &InboxMessage) -> Verdict {
        let Some(tenant) = self.tenants.get(&row.tenant) else {
            return Verdict::Dead(format!("tenant `{}` is no longer configured", row.tenant));
        };
        let msg = match CallbackMessage::parse(&row.payload) {
            Ok(m) => m,
            Err(e) => return Verdict::Dead(format!("stored payload does not parse: {e}")),
        };
        let Some(change) = msg.change_contact() else {
            return Verdict::Webhook;
        };
        let Some(app) = directory_credential(tenant).and_then(|c| c.wecom()) else {
            return Verdict::Dead(no_directory_app_reason(tenant));
        };
        let clock = self.tenants.tokens().clock().clone();
        match apply_contact_change(
            &self.db,
            tenant.key(),
            app,
            clock.as_ref(),
            &change,
            &self.opts.incremental,
        )
        .await
        {
            Ok(outcome) => Verdict::Done(
                json!({
                    "change_type": outcome.change_type,
                    "action": outcome.action,
                    "wrote": outcome.wrote(),
                    "calls": outcome.calls,
                })
                .to_string(),
            ),
            Err(e @ DomainError::ContactChange { .. }) => Verdict::Dead(e.to_string()),
            Err(e) => Verdict::Retry(e.to_string()),
        }
    }

    /// Run until the handle is dropped or shut down: claim, handle, and sleep `poll_interval` when
    /// nothing was due.
    pub fn spawn(self) -> DispatchHandle {
        let task = tokio::spawn(async move {
            loop {
                let idle = match self.run_once().await {
                    Ok(r) => r.claimed == 0,
                    Err(e) => {
                        tracing::warn!(error = %e, "callback dispatch: claim failed");
                        true
                    }
                };
                if idle {
                    tokio::time::sleep(self.opts.poll_interval).await;
                }
            }
        });
        DispatchHandle { task }
    }
}

/// The running worker; dropping it stops the worker (a row being handled comes back when its lease
/// runs out, and the idempotent apply makes that harmless).
#[derive(Debug)]
pub struct DispatchHandle {
    task: tokio::task::JoinHandle<()>,
}

impl DispatchHandle {
    /// Stop the worker.
    pub fn shutdown(self) {
        // Drop aborts.
    }
}

impl Drop for DispatchHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
