//! Business webhooks (issue 5 item 3): JSON events for the business system, stored in the webhook
//! outbox (`store::WebhookDelivery`, migration 0009) and POSTed by [`WebhookWorker`] to the tenant's
//! `[tenants.<key>.webhook]` URL.
//!
//! - [`enqueue`] stores an event when the tenant has a webhook that wants its type, and does nothing
//!   otherwise. Event ids are deterministic where the source is (`inbox:<row>:<type>` for what a callback
//!   caused, `user.merged:<merge id>`, `sync.finished:<run id>`), so handling the same source twice (an
//!   inbox row claimed again after a crash) stores nothing new: one webhook per event.
//! - The body is `{"id", "type", "tenant", "occurred_at_ms", "data"}`; every POST carries
//!   `X-Wxbridge-Event` (the type), `X-Wxbridge-Delivery` (the event id, stable across retries so a
//!   receiver can dedupe), `X-Wxbridge-Timestamp` (Unix seconds) and `X-Wxbridge-Signature:
//!   sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>` ([`signature`]).
//! - A 2xx answer delivers; anything else, a timeout or a network error is retried with exponential
//!   backoff and jitter, and the delivery is dead after the tenant's `max_attempts`. Dead letters stay
//!   listed with their last error and status code until [`replay`] / [`replay_all_dead`] make them
//!   pending again with their attempts reset.

mod worker;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use store::{NewWebhookDelivery, WebhookEnqueue};
use wxbridge_config::WebhookConfig;

use crate::error::DomainError;
use crate::identity::DomainEvent;
use crate::{Db, Tenant};

/// The outbox's stored shapes, for the REST view of deliveries.
pub use store::{WebhookDelivery, WebhookStatus};
pub use worker::{WebhookHandle, WebhookOptions, WebhookReport, WebhookWorker};

/// Header naming the event type.
pub const HEADER_EVENT: &str = "X-Wxbridge-Event";
/// Header carrying the event id (stable across retries).
pub const HEADER_DELIVERY: &str = "X-Wxbridge-Delivery";
/// Header carrying the signing time, Unix seconds.
pub const HEADER_TIMESTAMP: &str = "X-Wxbridge-Timestamp";
/// Header carrying `sha256=<hex>`.
pub const HEADER_SIGNATURE: &str = "X-Wxbridge-Signature";

/// One business event.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    /// Unique per tenant and deterministic for a deterministic source.
    pub id: String,
    /// `contact.user.updated`, `message.received`, `user.merged`, ...
    pub event_type: String,
    pub data: Value,
}

impl WebhookEvent {
    pub fn new(id: impl Into<String>, event_type: impl Into<String>, data: Value) -> Self {
        WebhookEvent {
            id: id.into(),
            event_type: event_type.into(),
            data,
        }
    }

    /// The event caused by inbox row `inbox_id` (one event of each type per row).
    pub fn from_inbox(inbox_id: i64, event_type: &str, data: Value) -> Self {
        Self::new(format!("inbox:{inbox_id}:{event_type}"), event_type, data)
    }

    /// A domain event of the account graph (`user.merged`), keyed by the merge's id.
    pub fn from_domain(event: &DomainEvent) -> Self {
        match event {
            DomainEvent::UserMerged(m) => Self::new(
                format!("user.merged:{}", m.merge_id),
                event.kind(),
                serde_json::to_value(m).unwrap_or(Value::Null),
            ),
        }
    }

    /// The JSON body POSTed for this event.
    pub fn body(&self, tenant: &str, occurred_at_ms: i64) -> String {
        json!({
            "id": self.id,
            "type": self.event_type,
            "tenant": tenant,
            "occurred_at_ms": occurred_at_ms,
            "data": self.data,
        })
        .to_string()
    }
}

/// `sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`, the `X-Wxbridge-Signature` value.
pub fn signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length; the error branch cannot happen.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn db_err(e: store::Error) -> DomainError {
    DomainError::Database(e.to_string())
}

/// Store `event` for delivery to `tenant`'s webhook. `Ok(None)` (nothing stored) when the tenant has no
/// webhook or does not want this type; [`WebhookEnqueue::Existing`] when the event id is already stored.
pub async fn enqueue(
    db: &Db,
    tenant: &Tenant,
    event: &WebhookEvent,
    now_ms: i64,
) -> Result<Option<WebhookEnqueue>, DomainError> {
    enqueue_to(
        db,
        tenant.key(),
        tenant.config.webhook.as_ref(),
        event,
        now_ms,
    )
    .await
}

/// [`enqueue`] for a caller that holds the tenant's key and webhook settings rather than the whole
/// [`Tenant`] (a sync run).
pub async fn enqueue_to(
    db: &Db,
    tenant: &str,
    hook: Option<&WebhookConfig>,
    event: &WebhookEvent,
    now_ms: i64,
) -> Result<Option<WebhookEnqueue>, DomainError> {
    let Some(hook) = hook else {
        return Ok(None);
    };
    if !hook.wants(&event.event_type) {
        return Ok(None);
    }
    let body = event.body(tenant, now_ms);
    let new = NewWebhookDelivery {
        event_id: &event.id,
        event_type: &event.event_type,
        payload: &body,
    };
    let stored = db
        .enqueue_webhook(tenant, &new, now_ms)
        .await
        .map_err(db_err)?;
    if let WebhookEnqueue::Created(id) = stored {
        tracing::debug!(tenant, webhook.id = id, event.id = %event.id,
            event.kind = %event.event_type, "webhook event queued");
    }
    Ok(Some(stored))
}

/// [`enqueue`] each of the account graph's events (`user.merged`).
pub async fn enqueue_domain_events(
    db: &Db,
    tenant: &Tenant,
    events: &[DomainEvent],
    now_ms: i64,
) -> Result<(), DomainError> {
    for e in events {
        enqueue(db, tenant, &WebhookEvent::from_domain(e), now_ms).await?;
    }
    Ok(())
}

/// [`enqueue_domain_events`] for a path whose own work is already done (a login, a backfill): a failure
/// to queue is logged, not returned, so the caller's answer does not change. The merge itself is in
/// `user_merges` either way.
pub async fn enqueue_domain_events_logged(
    db: &Db,
    tenant: &Tenant,
    events: &[DomainEvent],
    now_ms: i64,
) {
    if let Err(e) = enqueue_domain_events(db, tenant, events, now_ms).await {
        tracing::warn!(tenant = %tenant.key(), error = %e, "user.merged webhook not queued");
    }
}

/// What [`replay`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayOutcome {
    /// Pending again, attempts reset.
    Replayed,
    /// No delivery with this id in this tenant.
    NotFound,
    /// The delivery is not dead (pending, processing or delivered): nothing changed.
    NotDead(store::WebhookStatus),
}

/// Make dead delivery `id` of `tenant` pending again, due at once, with its attempts reset.
pub async fn replay(
    db: &Db,
    tenant: &str,
    id: i64,
    now_ms: i64,
) -> Result<ReplayOutcome, DomainError> {
    if db
        .replay_dead_webhook(tenant, id, now_ms)
        .await
        .map_err(db_err)?
    {
        tracing::info!(tenant, webhook.id = id, "dead webhook delivery replayed");
        return Ok(ReplayOutcome::Replayed);
    }
    Ok(
        match db.webhook_delivery(tenant, id).await.map_err(db_err)? {
            None => ReplayOutcome::NotFound,
            Some(d) => ReplayOutcome::NotDead(d.status),
        },
    )
}

/// [`replay`] every dead delivery of `tenant`; how many.
pub async fn replay_all_dead(db: &Db, tenant: &str, now_ms: i64) -> Result<u64, DomainError> {
    let n = db
        .replay_dead_webhooks(tenant, now_ms)
        .await
        .map_err(db_err)?;
    tracing::info!(tenant, replayed = n, "dead webhook deliveries replayed");
    Ok(n)
}
