//! The webhook outbox (migration 0009): business events waiting to be POSTed to a tenant's webhook, as
//! methods on [`Db`], and the subscribe state of official-account followers.
//!
//! - [`Db::enqueue_webhook`] stores an event once per (tenant, event id): enqueuing the same event again
//!   (an inbox row handled twice after a crash) writes nothing and says so.
//! - [`Db::claim_webhooks`] hands a tenant's due deliveries (pending and due, or processing under an
//!   expired lease) to one worker, safely across processes: `FOR UPDATE SKIP LOCKED` on PostgreSQL, one
//!   `BEGIN IMMEDIATE` transaction on SQLite. Each claim increments `attempts`, which fences the finish:
//!   a worker whose lease ran out and whose row was claimed again writes nothing
//!   ([`Db::finish_webhook`] returns false).
//! - [`Db::webhook_deliveries`], [`Db::webhook_delivery`] and [`Db::webhook_counts`] make every delivery,
//!   dead letters included, visible; [`Db::replay_dead_webhook`] / [`Db::replay_dead_webhooks`] make dead
//!   ones pending again with their attempts reset.
//!
//! Timestamps are milliseconds since the epoch supplied by the caller.

use std::fmt;
use std::str::FromStr;

use crate::db::{Db, Pool};
use crate::error::Error;
use crate::identity::IdentityId;

/// Where a delivery is in its life (see migration 0009).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WebhookStatus {
    /// Waiting for its first attempt, or for a retry at `available_at_ms`.
    Pending,
    /// Claimed by a worker until `available_at_ms`.
    Processing,
    /// The receiver answered 2xx.
    Delivered,
    /// Out of attempts (or the tenant has no webhook any more); `last_error` says why.
    Dead,
}

impl WebhookStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookStatus::Pending => "pending",
            WebhookStatus::Processing => "processing",
            WebhookStatus::Delivered => "delivered",
            WebhookStatus::Dead => "dead",
        }
    }
}

impl fmt::Display for WebhookStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for WebhookStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "pending" => WebhookStatus::Pending,
            "processing" => WebhookStatus::Processing,
            "delivered" => WebhookStatus::Delivered,
            "dead" => WebhookStatus::Dead,
            other => {
                return Err(Error::InvalidStored {
                    column: "webhook_deliveries.status",
                    value: other.to_owned(),
                });
            }
        })
    }
}

/// An event to deliver.
#[derive(Debug, Clone, Copy)]
pub struct NewWebhookDelivery<'a> {
    /// Unique per tenant; also the `X-Wxbridge-Delivery` header, stable across retries.
    pub event_id: &'a str,
    pub event_type: &'a str,
    /// The JSON body as it will be POSTed.
    pub payload: &'a str,
}

/// What [`Db::enqueue_webhook`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookEnqueue {
    /// Stored under this id, due at once.
    Created(i64),
    /// An event with this id is already stored (under this id): nothing was written.
    Existing(i64),
}

impl WebhookEnqueue {
    pub fn id(self) -> i64 {
        match self {
            WebhookEnqueue::Created(id) | WebhookEnqueue::Existing(id) => id,
        }
    }
}

/// One stored delivery.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub id: i64,
    pub tenant: String,
    pub event_id: String,
    pub event_type: String,
    pub payload: String,
    pub status: WebhookStatus,
    /// How many times it was claimed (attempted).
    pub attempts: i64,
    /// When it is due (pending) or when the claim's lease runs out (processing).
    pub available_at_ms: i64,
    pub lease_owner: Option<String>,
    pub last_error: Option<String>,
    /// The receiver's last HTTP status; None when it never answered.
    pub last_status_code: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub delivered_at_ms: Option<i64>,
}

impl fmt::Debug for WebhookDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The payload can hold personal data: show its size.
        f.debug_struct("WebhookDelivery")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("event_id", &self.event_id)
            .field("event_type", &self.event_type)
            .field("status", &self.status)
            .field("attempts", &self.attempts)
            .field("available_at_ms", &self.available_at_ms)
            .field("last_error", &self.last_error)
            .field("last_status_code", &self.last_status_code)
            .field("payload_len", &self.payload.len())
            .finish_non_exhaustive()
    }
}

/// How a claimed delivery ended, for [`Db::finish_webhook`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFinish<'a> {
    /// 2xx: delivered.
    Delivered { status_code: i64 },
    /// Failed; pending again, due at `retry_at_ms`.
    Retry {
        error: &'a str,
        status_code: Option<i64>,
        retry_at_ms: i64,
    },
    /// Failed for good: dead.
    Dead {
        error: &'a str,
        status_code: Option<i64>,
    },
}

/// An official-account follower's subscribe state, as the last callback said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    /// None: no subscribe / unsubscribe callback was ever recorded.
    pub subscribed: Option<bool>,
    pub changed_at_ms: Option<i64>,
}

mod sqlite_ops {
    use super::*;
    use crate::db::Backend;
    type DB = sqlx::Sqlite;
    const BACKEND: Backend = Backend::Sqlite;
    include!("ops.rs");
}

mod postgres_ops {
    use super::*;
    use crate::db::Backend;
    type DB = sqlx::Postgres;
    const BACKEND: Backend = Backend::Postgres;
    include!("ops.rs");
}

macro_rules! dispatch {
    ($db:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match &$db.pool {
            Pool::Sqlite(pool) => sqlite_ops::$f(pool, $($arg),*).await,
            Pool::Postgres(pool) => postgres_ops::$f(pool, $($arg),*).await,
        }
    };
}

impl Db {
    /// Store an event for delivery, due at `now_ms`; [`WebhookEnqueue::Existing`] (nothing written) when
    /// the tenant already has an event with this id, whatever its status.
    pub async fn enqueue_webhook(
        &self,
        tenant: &str,
        new: &NewWebhookDelivery<'_>,
        now_ms: i64,
    ) -> Result<WebhookEnqueue, Error> {
        dispatch!(self, enqueue(tenant, new, now_ms))
    }

    /// Claim up to `limit` of `tenant`'s due deliveries (pending with `available_at_ms <= now`, or
    /// processing under an expired lease) for `owner`, oldest first: each becomes processing with a lease
    /// until `now_ms + lease_ms` and one more attempt. Two workers never get the same row from one claim.
    pub async fn claim_webhooks(
        &self,
        tenant: &str,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<WebhookDelivery>, Error> {
        dispatch!(self, claim(tenant, owner, now_ms, lease_ms, limit))
    }

    /// Record how a claimed delivery ended. False (nothing written) when the claim is no longer
    /// `owner`'s at `attempt` (the lease ran out and the row was claimed again, or it was replayed).
    pub async fn finish_webhook(
        &self,
        id: i64,
        owner: &str,
        attempt: i64,
        how: &WebhookFinish<'_>,
        now_ms: i64,
    ) -> Result<bool, Error> {
        dispatch!(self, finish(id, owner, attempt, how, now_ms))
    }

    /// One delivery of the tenant.
    pub async fn webhook_delivery(
        &self,
        tenant: &str,
        id: i64,
    ) -> Result<Option<WebhookDelivery>, Error> {
        dispatch!(self, delivery(tenant, id))
    }

    /// A tenant's deliveries, newest first, optionally of one status.
    pub async fn webhook_deliveries(
        &self,
        tenant: &str,
        status: Option<WebhookStatus>,
        limit: i64,
    ) -> Result<Vec<WebhookDelivery>, Error> {
        dispatch!(self, list(tenant, status, limit))
    }

    /// How many of a tenant's deliveries are in each status (statuses with none are left out).
    pub async fn webhook_counts(&self, tenant: &str) -> Result<Vec<(WebhookStatus, i64)>, Error> {
        dispatch!(self, counts(tenant))
    }

    /// Make a dead delivery pending again, due at `now_ms`, with its attempts reset. False when it is not
    /// a dead delivery of this tenant.
    pub async fn replay_dead_webhook(
        &self,
        tenant: &str,
        id: i64,
        now_ms: i64,
    ) -> Result<bool, Error> {
        dispatch!(self, replay_one(tenant, id, now_ms))
    }

    /// [`Db::replay_dead_webhook`] for every dead delivery of the tenant; how many.
    pub async fn replay_dead_webhooks(&self, tenant: &str, now_ms: i64) -> Result<u64, Error> {
        dispatch!(self, replay_all(tenant, now_ms))
    }

    /// Record that a follower subscribed (`true`) or unsubscribed at `at_ms` (the callback's time). A
    /// callback older than the one recorded changes nothing (false); an unknown identity is
    /// [`Error::NotFound`].
    pub async fn set_wechat_subscription(
        &self,
        tenant: &str,
        identity: IdentityId,
        subscribed: bool,
        at_ms: i64,
    ) -> Result<bool, Error> {
        dispatch!(
            self,
            set_subscription(tenant, identity.get(), subscribed, at_ms)
        )
    }

    /// An identity's subscribe state; None for an unknown identity.
    pub async fn wechat_subscription(
        &self,
        tenant: &str,
        identity: IdentityId,
    ) -> Result<Option<Subscription>, Error> {
        dispatch!(self, subscription(tenant, identity.get()))
    }
}
