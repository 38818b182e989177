//! The callback inbox (migration 0006): verified callbacks written before the HTTP answer, then claimed
//! and handled by a dispatch worker, as methods on [`Db`].
//!
//! - [`Db::insert_inbox`] keys every message by (tenant, source, dedup key); a redelivery inserts nothing
//!   and says so.
//! - [`Db::claim_inbox`] hands out a tenant's due rows (pending, or processing with an expired lease; a
//!   worker claims only for the tenants it has the configuration of) to one worker,
//!   safely across processes: `FOR UPDATE SKIP LOCKED` on PostgreSQL, one `BEGIN IMMEDIATE` transaction
//!   on SQLite. Each claim increments `attempts`, which fences the finish: a worker whose lease ran out
//!   and whose row was claimed again cannot finish it ([`Db::finish_inbox`] and [`Db::retry_inbox`]
//!   return false).
//! - [`Db::inbox_messages`] and [`Db::inbox_counts`] make every row, dead letters included, visible.
//!
//! Timestamps are milliseconds since the epoch supplied by the caller.

use std::fmt;
use std::str::FromStr;

use crate::db::{Db, Pool};
use crate::error::Error;

/// How [`Db::settle_inbox`] leaves one claimed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboxSettle {
    /// Finished with `status` (done, pending_webhook or dead); `finished_at_ms` is the settle time.
    Finish {
        status: InboxStatus,
        outcome: Option<String>,
        error: Option<String>,
    },
    /// Pending again, due at `at_ms`, with the error that stopped it.
    Retry { error: String, at_ms: i64 },
}

/// One claimed message to settle: its id, the attempt its claim made, and how to leave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxSettlement {
    pub id: i64,
    pub attempt: i64,
    pub settle: InboxSettle,
}

/// Where a message is in its life (see migration 0006).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InboxStatus {
    /// Waiting to be handled (or retried at `available_at_ms`).
    Pending,
    /// Claimed by a worker until `available_at_ms`.
    Processing,
    /// Handled by the dispatch worker.
    Done,
    /// Left for the business webhook (issue 5 item 3), which claims these rows itself.
    PendingWebhook,
    /// Out of attempts or not retryable; `last_error` says why.
    Dead,
}

impl InboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InboxStatus::Pending => "pending",
            InboxStatus::Processing => "processing",
            InboxStatus::Done => "done",
            InboxStatus::PendingWebhook => "pending_webhook",
            InboxStatus::Dead => "dead",
        }
    }
}

impl fmt::Display for InboxStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InboxStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "pending" => InboxStatus::Pending,
            "processing" => InboxStatus::Processing,
            "done" => InboxStatus::Done,
            "pending_webhook" => InboxStatus::PendingWebhook,
            "dead" => InboxStatus::Dead,
            other => {
                return Err(Error::InvalidStored {
                    column: "callback_inbox.status",
                    value: other.to_owned(),
                });
            }
        })
    }
}

/// A verified callback to store.
#[derive(Debug, Clone, Copy)]
pub struct NewInboxMessage<'a> {
    pub tenant: &'a str,
    /// The receiving endpoint: `wecom_app:<name>`, `wecom_contacts`, `wechat_oa:<name>`,
    /// `wechat_mp:<name>`.
    pub source: &'a str,
    pub dedup_key: &'a str,
    /// What it is: `change_contact`, `event:<Event>`, `msg:<MsgType>`.
    pub kind: &'a str,
    /// The decrypted plaintext as received.
    pub payload: &'a str,
    pub received_at_ms: i64,
    /// The status it starts in: [`InboxStatus::Pending`] for the dispatch worker, or
    /// [`InboxStatus::PendingWebhook`] for what only the business webhook handles.
    pub status: InboxStatus,
}

/// One stored callback.
#[derive(Clone, PartialEq, Eq)]
pub struct InboxMessage {
    pub id: i64,
    pub tenant: String,
    pub source: String,
    pub dedup_key: String,
    pub kind: String,
    pub payload: String,
    pub status: InboxStatus,
    /// How many times it was claimed.
    pub attempts: i64,
    /// When it is due (pending) or when the claim's lease runs out (processing).
    pub available_at_ms: i64,
    pub claimed_by: Option<String>,
    pub last_error: Option<String>,
    /// What handling it amounted to (JSON written by the dispatcher).
    pub outcome: Option<String>,
    pub received_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

impl fmt::Debug for InboxMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The payload can hold personal data: show its size.
        f.debug_struct("InboxMessage")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("source", &self.source)
            .field("kind", &self.kind)
            .field("status", &self.status)
            .field("attempts", &self.attempts)
            .field("available_at_ms", &self.available_at_ms)
            .field("last_error", &self.last_error)
            .field("payload_len", &self.payload.len())
            .finish_non_exhaustive()
    }
}

/// What [`Db::insert_inbox`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxInsert {
    /// Stored under this id.
    Inserted(i64),
    /// A message with the same (tenant, source, dedup key) is already stored (a redelivery).
    Duplicate,
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

/// [`dispatch!`] for the inbox's hot writes: on an SQLite file, through the inbox's own writer
/// connection ([`Db`]'s `inbox_writer`), so they queue in order instead of sleeping in SQLite's
/// busy handler.
macro_rules! dispatch_write {
    ($db:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match (&$db.pool, &$db.inbox_writer) {
            (Pool::Sqlite(_), Some(writer)) => sqlite_ops::$f(writer, $($arg),*).await,
            (Pool::Sqlite(pool), None) => sqlite_ops::$f(pool, $($arg),*).await,
            (Pool::Postgres(pool), _) => postgres_ops::$f(pool, $($arg),*).await,
        }
    };
}

impl Db {
    /// Store a verified callback in its starting status, due at once; [`InboxInsert::Duplicate`] (nothing written)
    /// when the same (tenant, source, dedup key) is already stored, whatever its status.
    pub async fn insert_inbox(&self, msg: &NewInboxMessage<'_>) -> Result<InboxInsert, Error> {
        dispatch_write!(self, insert(msg))
    }

    /// [`Db::insert_inbox`] for many messages in ONE transaction (a group commit): one result per
    /// message, in order. A message repeating an earlier one of the same batch is a duplicate.
    pub async fn insert_inbox_batch(
        &self,
        msgs: &[NewInboxMessage<'_>],
    ) -> Result<Vec<InboxInsert>, Error> {
        dispatch_write!(self, insert_batch(msgs))
    }

    /// Claim up to `limit` of `tenant`'s due messages (pending with `available_at_ms <= now`, or processing with an
    /// expired lease) for `worker`, oldest first: each becomes processing with a lease until
    /// `now_ms + lease_ms` and one more attempt. Two workers never get the same row from one claim.
    pub async fn claim_inbox(
        &self,
        tenant: &str,
        worker: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<InboxMessage>, Error> {
        dispatch_write!(self, claim(tenant, worker, now_ms, lease_ms, limit))
    }

    /// Settle claimed messages in one write transaction (one commit for a whole claim instead of
    /// one per message): each is finished or put back for a retry, fenced by its claim. For each
    /// item, in order, false when the claim is no longer this worker's (`attempts` moved on: the
    /// lease ran out and another worker claimed it), in which case nothing is written for it.
    pub async fn settle_inbox(
        &self,
        worker: &str,
        now_ms: i64,
        items: &[InboxSettlement],
    ) -> Result<Vec<bool>, Error> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        dispatch_write!(self, settle(worker, now_ms, items))
    }

    /// Finish a claimed message with `status` (done, pending_webhook or dead), `outcome` and
    /// `error` ([`Db::settle_inbox`] for one message).
    #[allow(clippy::too_many_arguments)]
    pub async fn finish_inbox(
        &self,
        id: i64,
        worker: &str,
        attempt: i64,
        status: InboxStatus,
        outcome: Option<&str>,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, Error> {
        let settle = InboxSettle::Finish {
            status,
            outcome: outcome.map(str::to_owned),
            error: error.map(str::to_owned),
        };
        self.settle_one(worker, now_ms, id, attempt, settle).await
    }

    /// Put a claimed message back as pending, due at `retry_at_ms`, with the error that stopped it
    /// ([`Db::settle_inbox`] for one message).
    pub async fn retry_inbox(
        &self,
        id: i64,
        worker: &str,
        attempt: i64,
        error: &str,
        retry_at_ms: i64,
    ) -> Result<bool, Error> {
        let settle = InboxSettle::Retry {
            error: error.to_owned(),
            at_ms: retry_at_ms,
        };
        // A retry's settle time is not stored (the row is not finished); its due time is.
        self.settle_one(worker, retry_at_ms, id, attempt, settle)
            .await
    }

    async fn settle_one(
        &self,
        worker: &str,
        now_ms: i64,
        id: i64,
        attempt: i64,
        settle: InboxSettle,
    ) -> Result<bool, Error> {
        let item = InboxSettlement {
            id,
            attempt,
            settle,
        };
        let done = self.settle_inbox(worker, now_ms, &[item]).await?;
        Ok(done.first().copied().unwrap_or(false))
    }

    /// A tenant's messages, newest first, optionally of one status.
    pub async fn inbox_messages(
        &self,
        tenant: &str,
        status: Option<InboxStatus>,
        limit: i64,
    ) -> Result<Vec<InboxMessage>, Error> {
        dispatch!(self, list(tenant, status, limit))
    }

    /// How many of a tenant's messages are in each status (statuses with none are left out).
    pub async fn inbox_counts(&self, tenant: &str) -> Result<Vec<(InboxStatus, i64)>, Error> {
        dispatch!(self, counts(tenant))
    }

    /// One of a tenant's messages by id (None when it is not this tenant's).
    pub async fn inbox_message(
        &self,
        tenant: &str,
        id: i64,
    ) -> Result<Option<InboxMessage>, Error> {
        dispatch!(self, get(tenant, id))
    }

    /// Make a dead message pending again, due at `now_ms` (an operator's replay). False when it is not
    /// a dead message of this tenant.
    pub async fn requeue_dead_inbox(
        &self,
        tenant: &str,
        id: i64,
        now_ms: i64,
    ) -> Result<bool, Error> {
        dispatch!(self, requeue_dead(tenant, id, now_ms))
    }
}
