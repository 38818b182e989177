//! The delivery worker: claims due webhook deliveries of every configured tenant and POSTs them.

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use store::{WebhookDelivery, WebhookFinish};

use super::{HEADER_DELIVERY, HEADER_EVENT, HEADER_SIGNATURE, HEADER_TIMESTAMP, signature};
use crate::error::DomainError;
use crate::{Db, Tenants};

/// How the worker claims, waits and backs off. Tests shorten the intervals.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// Names this worker's claims (unique per process by default).
    pub worker_id: String,
    /// Sleep between claims when nothing was due.
    pub poll_interval: Duration,
    /// Deliveries per claim (POSTed concurrently).
    pub batch: i64,
    /// How long a claim is this worker's. Longer than any per-attempt timeout (at most 120 s).
    pub lease: Duration,
    /// Delay before the first retry; doubles per attempt, with jitter (a random 50-100 % of it).
    pub backoff_base: Duration,
    /// Longest delay between retries.
    pub backoff_max: Duration,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            worker_id: format!("h{}-{:08x}", std::process::id(), rand::random::<u32>()),
            poll_interval: Duration::from_millis(500),
            batch: 16,
            lease: Duration::from_secs(300),
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(3600),
        }
    }
}

/// What one claim amounted to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookReport {
    pub claimed: usize,
    pub delivered: usize,
    pub retried: usize,
    pub dead: usize,
    /// Deliveries whose claim had moved on before this worker finished them, or whose outcome could not
    /// be written (nothing written; they come back after their lease).
    pub lost: usize,
}

/// Claims and POSTs webhook deliveries.
#[derive(Debug, Clone)]
pub struct WebhookWorker {
    db: Db,
    tenants: Tenants,
    opts: Arc<WebhookOptions>,
    client: reqwest::Client,
}

enum Attempt {
    Delivered(i64),
    Failed {
        error: String,
        code: Option<i64>,
    },
    /// Not attemptable at all (the tenant lost its webhook): dead at once.
    Unsendable(String),
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The delay before the retry that follows attempt `attempts` (1-based): `base * 2^(attempts-1)`, at most
/// `max`, then a random 50-100 % of that so retries of many deliveries spread out.
pub(crate) fn backoff(attempts: i64, base: Duration, max: Duration) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let full = base.saturating_mul(2u32.saturating_pow(exp)).min(max);
    full.mul_f64(0.5 + rand::random::<f64>() * 0.5)
}

/// A short, secret-free description of a transport failure.
fn transport_error(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        format!("timed out after {} s", timeout.as_secs_f64())
    } else if e.is_connect() {
        "connection failed".to_owned()
    } else if e.is_body() || e.is_decode() {
        "the response could not be read".to_owned()
    } else if e.is_request() {
        "the request could not be sent".to_owned()
    } else {
        "HTTP error".to_owned()
    }
}

/// How much of a failed answer's body is read for `last_error`.
const ERROR_BODY_BYTES: usize = 2048;

/// The first [`ERROR_BODY_BYTES`] of a response body (lossy UTF-8); whatever arrived when reading fails.
async fn head_of_body(mut resp: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while buf.len() < ERROR_BODY_BYTES {
        match resp.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    buf.truncate(ERROR_BODY_BYTES);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Keep the first `n` characters of a receiver's answer for `last_error`.
fn snippet(s: &str, n: usize) -> String {
    let t: String = s.trim().chars().take(n).collect();
    t.replace(['\r', '\n'], " ")
}

impl WebhookWorker {
    pub fn new(db: Db, tenants: Tenants, opts: WebhookOptions) -> Result<Self, DomainError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("wxbridge-webhook/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| DomainError::Database(format!("webhook HTTP client: {e}")))?;
        Ok(WebhookWorker {
            db,
            tenants,
            opts: Arc::new(opts),
            client,
        })
    }

    fn now_ms(&self) -> i64 {
        self.tenants.tokens().clock().now_ms()
    }

    /// Claim one batch of due deliveries per configured tenant and attempt each.
    pub async fn run_once(&self) -> Result<WebhookReport, DomainError> {
        let o = &self.opts;
        let rows = self
            .tenants
            .claim_each(move |tenant| {
                self.db
                    .claim_webhooks(tenant, &o.worker_id, self.now_ms(), ms(o.lease), o.batch)
            })
            .await?;
        let mut report = WebhookReport {
            claimed: rows.len(),
            ..WebhookReport::default()
        };
        let outcomes = futures::future::join_all(rows.iter().map(|row| self.attempt(row))).await;
        for (row, attempt) in rows.iter().zip(outcomes) {
            let now = self.now_ms();
            let max_attempts = self
                .tenants
                .get(&row.tenant)
                .and_then(|t| t.config.webhook.as_ref())
                .map_or(1, |h| i64::from(h.max_attempts));
            let how = match &attempt {
                Attempt::Delivered(code) => {
                    report.delivered += 1;
                    tracing::info!(tenant = %row.tenant, webhook.id = row.id, event.kind = %row.event_type,
                        webhook.attempts = row.attempts, http.status = code, "webhook delivered");
                    WebhookFinish::Delivered { status_code: *code }
                }
                Attempt::Unsendable(error) => {
                    report.dead += 1;
                    tracing::warn!(tenant = %row.tenant, webhook.id = row.id, error = %error, "webhook dead");
                    WebhookFinish::Dead {
                        error,
                        status_code: None,
                    }
                }
                Attempt::Failed { error, code } if row.attempts >= max_attempts => {
                    report.dead += 1;
                    tracing::warn!(tenant = %row.tenant, webhook.id = row.id, event.kind = %row.event_type,
                        webhook.attempts = row.attempts, error = %error, "webhook dead after its last attempt");
                    WebhookFinish::Dead {
                        error,
                        status_code: *code,
                    }
                }
                Attempt::Failed { error, code } => {
                    report.retried += 1;
                    let delay = backoff(row.attempts, o.backoff_base, o.backoff_max);
                    tracing::info!(tenant = %row.tenant, webhook.id = row.id, event.kind = %row.event_type,
                        webhook.attempts = row.attempts, retry_in_ms = ms(delay), error = %error,
                        "webhook will be retried");
                    WebhookFinish::Retry {
                        error,
                        status_code: *code,
                        retry_at_ms: now.saturating_add(ms(delay)),
                    }
                }
            };
            // One failed write does not strand the rest of the batch: that row comes back when its
            // lease runs out and is POSTed again (same X-Wxbridge-Delivery).
            match self
                .db
                .finish_webhook(row.id, &o.worker_id, row.attempts, &how, now)
                .await
            {
                Ok(true) => {}
                Ok(false) => report.lost += 1,
                Err(e) => {
                    report.lost += 1;
                    tracing::warn!(tenant = %row.tenant, webhook.id = row.id, error = %e,
                        "recording the webhook attempt failed; it is retried after its lease");
                }
            }
        }
        Ok(report)
    }

    async fn attempt(&self, row: &WebhookDelivery) -> Attempt {
        let Some(hook) = self
            .tenants
            .get(&row.tenant)
            .and_then(|t| t.config.webhook.as_ref())
        else {
            return Attempt::Unsendable(format!(
                "tenant `{}` has no webhook configured",
                row.tenant
            ));
        };
        let timestamp = (self.now_ms() / 1000).to_string();
        let sig = signature(
            hook.secret.expose_secret().as_bytes(),
            &timestamp,
            row.payload.as_bytes(),
        );
        let sent = self
            .client
            .post(hook.url.clone())
            .timeout(hook.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(HEADER_EVENT, &row.event_type)
            .header(HEADER_DELIVERY, &row.event_id)
            .header(HEADER_TIMESTAMP, &timestamp)
            .header(HEADER_SIGNATURE, sig)
            .body(row.payload.clone())
            .send()
            .await;
        match sent {
            Ok(resp) if resp.status().is_success() => {
                Attempt::Delivered(i64::from(resp.status().as_u16()))
            }
            Ok(resp) => {
                let code = resp.status().as_u16();
                // A short look at the answer helps the operator; at most ERROR_BODY_BYTES are read
                // (a receiver answering with a huge page costs nothing), within the attempt's timeout.
                let text = tokio::time::timeout(hook.timeout, head_of_body(resp))
                    .await
                    .unwrap_or_default();
                let text = snippet(&text, 200);
                Attempt::Failed {
                    error: if text.is_empty() {
                        format!("HTTP {code}")
                    } else {
                        format!("HTTP {code}: {text}")
                    },
                    code: Some(i64::from(code)),
                }
            }
            Err(e) => Attempt::Failed {
                error: transport_error(&e, hook.timeout),
                code: None,
            },
        }
    }

    /// Run until the handle is dropped: claim, deliver, and sleep `poll_interval` when nothing was due.
    pub fn spawn(self) -> WebhookHandle {
        let task = tokio::spawn(async move {
            loop {
                let idle = match self.run_once().await {
                    Ok(r) => r.claimed == 0,
                    Err(e) => {
                        tracing::warn!(error = %e, "webhook worker: claim failed");
                        true
                    }
                };
                if idle {
                    tokio::time::sleep(self.opts.poll_interval).await;
                }
            }
        });
        WebhookHandle { task }
    }
}

/// The running worker; dropping it stops the worker (a delivery in flight comes back when its lease runs
/// out and is POSTed again with the same `X-Wxbridge-Delivery`, which receivers dedupe on).
#[derive(Debug)]
pub struct WebhookHandle {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WebhookHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
