//! The outbox: messages accepted for push and the `message/send` calls each is split into, as methods on
//! [`Db`] (migration 0007).
//!
//! A message is stored once per (tenant, idempotency key) together with its planned calls, in one
//! transaction. Workers claim due messages with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the
//! IMMEDIATE write lock on SQLite), so several processes on one database never hold the same message; a
//! crashed worker's claim comes back when its lease expires. Every write of a worker names the lease owner
//! and does nothing once the lease has moved on. A call's `msgid` is written in the same statement that
//! marks it sent. The JSON columns (request, targets, invalid recipients) belong to `domain::messages`.

mod types;

pub use types::{
    CallOutcome, CallStatus, EnqueueOutcome, NewOutboxMessage, OutboxCall, OutboxMessage,
    OutboxStatus,
};

use crate::db::{Db, Pool};
use crate::error::Error;

mod sqlite_ops {
    use super::types::*;
    use crate::db::Backend;
    use crate::error::Error;
    type DB = sqlx::Sqlite;
    const BACKEND: Backend = Backend::Sqlite;
    include!("ops.rs");
}

mod postgres_ops {
    use super::types::*;
    use crate::db::Backend;
    use crate::error::Error;
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
    /// Store a message and its calls, or report the message already stored under its idempotency key.
    pub async fn enqueue_outbox_message(
        &self,
        tenant: &str,
        new: &NewOutboxMessage,
        now_ms: i64,
    ) -> Result<EnqueueOutcome, Error> {
        match dispatch!(self, enqueue(tenant, new, now_ms)) {
            // Two requests with one key raced past the lookup (PostgreSQL): the loser reads the winner.
            Err(Error::Conflict { .. }) => dispatch!(self, enqueue(tenant, new, now_ms)),
            other => other,
        }
    }

    pub async fn outbox_message(
        &self,
        tenant: &str,
        id: i64,
    ) -> Result<Option<OutboxMessage>, Error> {
        dispatch!(self, message(tenant, id))
    }

    /// The tenant's latest messages, newest first.
    pub async fn recent_outbox_messages(
        &self,
        tenant: &str,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, Error> {
        dispatch!(self, recent(tenant, i64::from(limit)))
    }

    /// The calls of a message (the caller has checked the message's tenant), in order.
    pub async fn outbox_calls(&self, message_id: i64) -> Result<Vec<OutboxCall>, Error> {
        dispatch!(self, calls(message_id))
    }

    /// Claim up to `limit` of the tenant's due messages (queued and due, or claimed under an expired
    /// lease) for `owner` until `lease_until_ms`. Safe with several workers on one database: each message
    /// goes to one.
    pub async fn claim_outbox_messages(
        &self,
        tenant: &str,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, Error> {
        dispatch!(
            self,
            claim(tenant, owner, now_ms, lease_until_ms, i64::from(limit))
        )
    }

    /// Extend `owner`'s lease; false if it no longer holds it.
    pub async fn renew_outbox_lease(
        &self,
        id: i64,
        owner: &str,
        lease_until_ms: i64,
        now_ms: i64,
    ) -> Result<bool, Error> {
        dispatch!(self, renew(id, owner, lease_until_ms, now_ms))
    }

    /// Record a pending call's outcome while `owner` holds the message's lease; false (nothing written)
    /// if the call is no longer pending or the lease moved on.
    pub async fn finish_outbox_call(
        &self,
        message_id: i64,
        seq: i64,
        owner: &str,
        outcome: &CallOutcome,
        now_ms: i64,
    ) -> Result<bool, Error> {
        dispatch!(self, finish_call(message_id, seq, owner, outcome, now_ms))
    }

    /// Give the message back for another attempt at `next_attempt_at_ms` (counting an attempt or not).
    pub async fn retry_outbox_message(
        &self,
        id: i64,
        owner: &str,
        next_attempt_at_ms: i64,
        count_attempt: bool,
        error: &str,
        now_ms: i64,
    ) -> Result<bool, Error> {
        dispatch!(
            self,
            retry_later(id, owner, next_attempt_at_ms, count_attempt, error, now_ms)
        )
    }

    /// Set the final status (sent, partial, failed) and drop the lease.
    pub async fn finish_outbox_message(
        &self,
        id: i64,
        owner: &str,
        status: OutboxStatus,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, Error> {
        dispatch!(self, finish(id, owner, status, error, now_ms))
    }

    /// Note that a call's msgid was recalled; false if it already was.
    pub async fn mark_outbox_call_recalled(
        &self,
        tenant: &str,
        message_id: i64,
        seq: i64,
        now_ms: i64,
    ) -> Result<bool, Error> {
        dispatch!(self, mark_recalled(tenant, message_id, seq, now_ms))
    }
}
