//! The outbox worker: claims due messages, sends their pending calls through the app's `WecomApp` (which
//! takes its token from the token manager, backs off on -1/45033 and opens a block window on 45009), and
//! records each call's outcome and the message's final status.
//!
//! **Retries.** A 45009 (or a call refused because its block window is open) gives the message back until
//! the window closes, without counting an attempt. Transient failures (busy answers that outlasted the
//! client's own retries, timeouts, transport errors, HTTP errors, token store trouble, an invalid token after
//! the client's refresh) give it back with exponential backoff, counted; after `max_attempts` the remaining
//! calls fail with the last reason. Any other errcode fails the call at once (it will not get better), and
//! 81013 (every recipient invalid) marks the call `invalid` with all its targets mapped back to local ids.
//!
//! **Exactly once.** A call is sent only while this worker holds the message's lease (renewed before each
//! call), and its `msgid` is written in the same statement that marks it sent. A call is never re-sent once
//! marked. The window that can still duplicate is between WeCom accepting a call and that statement
//! committing: a crash (or a database outage) there leaves the call pending, and the lease's expiry hands it
//! to another worker, which sends it again. A timeout has the same effect (the request may have reached
//! WeCom). The window is one HTTP answer plus one single-row UPDATE wide; nothing else runs between them.

use std::sync::Arc;
use std::time::Duration;

use store::{CallOutcome, CallStatus, OutboxMessage, OutboxStatus};
use wx_api::ApiError;
use wx_api::wecom::types::SendResult;

use super::{InvalidRecipient, MessageContent, MessageError, SendRequest, call_targets, to_json};
use crate::{Db, Tenants};

/// How the worker paces itself.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// How long a claim lasts; renewed before each call, so it must outlast one call (the client's 10 s
    /// request timeout plus its busy retries). A crashed worker's messages come back after it.
    pub lease: Duration,
    /// How long to wait when nothing is due.
    pub poll_interval: Duration,
    /// Messages claimed at once.
    pub batch: u32,
    /// Counted attempts (transient failures) before the remaining calls fail.
    pub max_attempts: i64,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// How long a 45009 answer keeps the message waiting (WeCom's per-minute window).
    pub rate_limit_wait: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_millis(250),
            batch: 16,
            max_attempts: 8,
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            rate_limit_wait: Duration::from_secs(60),
        }
    }
}

/// Claims and sends outbox messages. Several workers (in one process or many) may share a database.
#[derive(Debug, Clone)]
pub struct OutboxWorker {
    db: Db,
    tenants: Tenants,
    options: WorkerOptions,
    owner: Arc<str>,
}

enum Outcome {
    Sent(SendResult),
    /// Every recipient of the call refused, with the reason recorded per recipient.
    AllInvalid(String, &'static str),
    Permanent(String),
    /// Wait this long without counting an attempt (rate limited).
    Wait(Duration, String),
    Transient(String),
}

fn classify(result: Result<SendResult, ApiError>, rate_limit_wait: Duration) -> Outcome {
    let err = match result {
        Ok(sent) => return Outcome::Sent(sent),
        Err(err) => err,
    };
    let reason = err.to_string();
    match &err {
        ApiError::RateLimited { retry_after, .. } => Outcome::Wait(*retry_after, reason),
        ApiError::Upstream { code, .. } => {
            if code.is_rate_limited() {
                Outcome::Wait(rate_limit_wait, reason)
            } else if let Some(why) = refused_recipient(code.code()) {
                Outcome::AllInvalid(reason, why)
            } else if code.is_retryable_busy() || code.is_token_invalid() {
                Outcome::Transient(reason)
            } else {
                Outcome::Permanent(reason)
            }
        }
        ApiError::BusyRetriesExhausted { .. }
        | ApiError::HttpStatus { .. }
        | ApiError::Timeout { .. }
        | ApiError::Transport { .. }
        | ApiError::Store(_)
        | ApiError::TokenWaitTimeout { .. } => Outcome::Transient(reason),
        // An unreadable answer may still mean WeCom sent it: do not send again.
        ApiError::BadResponse { .. } | ApiError::InvalidRequest { .. } => {
            Outcome::Permanent(reason)
        }
    }
}

/// Errcodes that mean "this recipient cannot receive it" rather than "this request is wrong".
fn refused_recipient(code: i64) -> Option<&'static str> {
    match code {
        81013 => Some("invaliduser"),
        40003 => Some("invalid_openid"),
        43004 => Some("not_following"),
        43101 => Some("subscription_refused"),
        _ => None,
    }
}

enum Sender<'a> {
    Wecom(&'a wx_api::wecom::WecomApp),
    Wechat(&'a wx_api::wechat::WechatApp),
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl OutboxWorker {
    pub fn new(db: Db, tenants: Tenants, options: WorkerOptions) -> Self {
        let owner = format!(
            "outbox-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        );
        OutboxWorker {
            db,
            tenants,
            options,
            owner: owner.into(),
        }
    }

    /// This worker's lease owner name.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    fn now(&self) -> i64 {
        self.tenants.tokens().clock().now_ms()
    }

    fn backoff(&self, attempts: i64) -> Duration {
        let exp = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
        self.options
            .base_backoff
            .saturating_mul(2u32.saturating_pow(exp))
            .min(self.options.max_backoff)
    }

    /// Claim one batch of due messages per configured tenant (a worker never touches a tenant it has no
    /// configuration for) and process each; the number claimed.
    pub async fn run_once(&self) -> Result<usize, MessageError> {
        let mut total = 0;
        for tenant in self.tenants.iter() {
            let now = self.now();
            let claimed = self
                .db
                .claim_outbox_messages(
                    tenant.key(),
                    &self.owner,
                    now,
                    now.saturating_add(ms(self.options.lease)),
                    self.options.batch,
                )
                .await?;
            for message in &claimed {
                match self.process(message).await {
                    Ok(()) => {}
                    // A stored row that does not parse will not parse next time either: fail it
                    // instead of claiming it again every lease.
                    Err(e @ MessageError::Corrupt { .. }) => {
                        tracing::error!(tenant.key = %message.tenant, message.id = message.id, error = %e, "outbox message unreadable; failed");
                        self.fail(message, &e.to_string()).await?;
                    }
                    // The lease runs out and the message comes back; nothing is lost.
                    Err(e) => {
                        tracing::warn!(tenant.key = %message.tenant, message.id = message.id, error = %e, "outbox message not processed");
                    }
                }
            }
            total += claimed.len();
        }
        Ok(total)
    }

    /// Run until the task is dropped: a batch at a time, pausing when nothing is due.
    pub async fn run(self) {
        loop {
            match self.run_once().await {
                Ok(0) => tokio::time::sleep(self.options.poll_interval).await,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "outbox claim failed");
                    tokio::time::sleep(self.options.poll_interval).await;
                }
            }
        }
    }

    /// Start [`Self::run`] on the runtime.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn fail(&self, message: &OutboxMessage, reason: &str) -> Result<(), MessageError> {
        let now = self.now();
        self.db
            .finish_outbox_message(
                message.id,
                &self.owner,
                OutboxStatus::Failed,
                Some(reason),
                now,
            )
            .await?;
        Ok(())
    }

    async fn process(&self, message: &OutboxMessage) -> Result<(), MessageError> {
        let Some(tenant) = self.tenants.get(&message.tenant) else {
            return self
                .fail(message, "the tenant is no longer configured")
                .await;
        };
        let request: SendRequest =
            serde_json::from_str(&message.request).map_err(|e| MessageError::Corrupt {
                id: message.id,
                message: e.to_string(),
            })?;
        let sender = if request.message.is_wechat() {
            super::wechat_account(tenant, &message.app, &request.message).map(Sender::Wechat)
        } else {
            tenant.wecom_app(&message.app).map(Sender::Wecom)
        };
        let Some(sender) = sender else {
            let reason = format!("the tenant has no app `{}` any more", message.app);
            return self.fail(message, &reason).await;
        };
        let calls = self.db.outbox_calls(message.id).await?;
        let mut exhausted: Option<String> = None;
        for call in calls.iter().filter(|c| c.status == CallStatus::Pending) {
            let now = self.now();
            if let Some(reason) = &exhausted {
                let outcome = CallOutcome {
                    status: CallStatus::Failed,
                    msgid: None,
                    invalid: None,
                    error: Some(reason.clone()),
                };
                self.db
                    .finish_outbox_call(message.id, call.seq, &self.owner, &outcome, now)
                    .await?;
                continue;
            }
            let lease_until = now.saturating_add(ms(self.options.lease));
            if !self
                .db
                .renew_outbox_lease(message.id, &self.owner, lease_until, now)
                .await?
            {
                tracing::warn!(
                    message.id = message.id,
                    "outbox lease lost; leaving the message"
                );
                return Ok(());
            }
            let targets = call_targets(call)?;
            let result = match &sender {
                Sender::Wecom(app) => app.message_send(&targets.app_message(&request)).await,
                Sender::Wechat(account) => {
                    let openid = targets.users.first().map(|(o, _)| o.as_str()).unwrap_or("");
                    let body = request.message.wechat_body(openid).unwrap_or_default();
                    let sent = if matches!(request.message, MessageContent::WechatSubscribe { .. })
                    {
                        account.subscribe_send(body).await.map(|()| None)
                    } else {
                        account.template_send(body).await
                    };
                    sent.map(|msgid| SendResult {
                        invaliduser: Vec::new(),
                        invalidparty: Vec::new(),
                        invalidtag: Vec::new(),
                        unlicenseduser: Vec::new(),
                        msgid,
                        response_code: None,
                    })
                }
            };
            let now = self.now();
            let outcome = match classify(result, self.options.rate_limit_wait) {
                Outcome::Sent(sent) => {
                    let invalid = targets.map_invalid(
                        &sent.invaliduser,
                        &sent.invalidparty,
                        &sent.unlicenseduser,
                    );
                    CallOutcome {
                        status: CallStatus::Sent,
                        msgid: sent.msgid,
                        invalid: Some(to_json(&invalid)?),
                        error: None,
                    }
                }
                Outcome::AllInvalid(reason, why) => CallOutcome {
                    status: CallStatus::Invalid,
                    msgid: None,
                    invalid: Some(to_json(&targets.all_invalid(why))?),
                    error: Some(reason),
                },
                Outcome::Permanent(reason) => CallOutcome {
                    status: CallStatus::Failed,
                    msgid: None,
                    invalid: None,
                    error: Some(reason),
                },
                Outcome::Wait(wait, reason) => {
                    tracing::info!(
                        message.id = message.id,
                        wait_ms = ms(wait),
                        "outbox message waits out a rate limit"
                    );
                    self.db
                        .retry_outbox_message(
                            message.id,
                            &self.owner,
                            now.saturating_add(ms(wait)),
                            false,
                            &reason,
                            now,
                        )
                        .await?;
                    return Ok(());
                }
                Outcome::Transient(reason) => {
                    let attempts = message.attempts.saturating_add(1);
                    if attempts < self.options.max_attempts {
                        let wait = self.backoff(message.attempts);
                        tracing::info!(message.id = message.id, attempts, wait_ms = ms(wait), error = %reason, "outbox message retried later");
                        self.db
                            .retry_outbox_message(
                                message.id,
                                &self.owner,
                                now.saturating_add(ms(wait)),
                                true,
                                &reason,
                                now,
                            )
                            .await?;
                        return Ok(());
                    }
                    let reason = format!("gave up after {attempts} attempts: {reason}");
                    exhausted = Some(reason.clone());
                    CallOutcome {
                        status: CallStatus::Failed,
                        msgid: None,
                        invalid: None,
                        error: Some(reason),
                    }
                }
            };
            if !self
                .db
                .finish_outbox_call(message.id, call.seq, &self.owner, &outcome, now)
                .await?
            {
                tracing::warn!(
                    message.id = message.id,
                    call.seq = call.seq,
                    "outbox lease lost after a send; the call stays pending"
                );
                return Ok(());
            }
        }
        self.finalise(message).await
    }

    async fn finalise(&self, message: &OutboxMessage) -> Result<(), MessageError> {
        let calls = self.db.outbox_calls(message.id).await?;
        if calls.iter().any(|c| c.status == CallStatus::Pending) {
            return Ok(());
        }
        let resolved_invalid: Vec<InvalidRecipient> = serde_json::from_str(&message.invalid)
            .map_err(|e| MessageError::Corrupt {
                id: message.id,
                message: e.to_string(),
            })?;
        let sent = calls
            .iter()
            .filter(|c| c.status == CallStatus::Sent)
            .count();
        let call_invalid = calls.iter().any(|c| {
            c.status == CallStatus::Invalid
                || c.invalid
                    .as_deref()
                    .is_some_and(|j| j != "[]" && j != "null")
        });
        let failed = calls.iter().any(|c| c.status == CallStatus::Failed);
        let status = if sent == 0 {
            OutboxStatus::Failed
        } else if failed || call_invalid || !resolved_invalid.is_empty() {
            OutboxStatus::Partial
        } else {
            OutboxStatus::Sent
        };
        let error = calls.iter().find_map(|c| {
            (c.status != CallStatus::Sent)
                .then(|| c.error.clone())
                .flatten()
        });
        let now = self.now();
        self.db
            .finish_outbox_message(message.id, &self.owner, status, error.as_deref(), now)
            .await?;
        tracing::info!(tenant.key = %message.tenant, message.id = message.id, status = %status, calls = calls.len(), "outbox message finished");
        Ok(())
    }
}
