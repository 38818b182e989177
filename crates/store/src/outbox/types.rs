//! The outbox's stored shapes.

use std::fmt;

use crate::error::Error;

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxStatus {
    /// Accepted, waiting for a worker (or for its next attempt after a transient error).
    Queued,
    /// Claimed by a worker whose lease has not expired.
    Sending,
    /// Every call went through and no recipient was invalid.
    Sent,
    /// Some recipients received it; others were invalid or a call failed.
    Partial,
    /// Nobody received it.
    Failed,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Queued => "queued",
            OutboxStatus::Sending => "sending",
            OutboxStatus::Sent => "sent",
            OutboxStatus::Partial => "partial",
            OutboxStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "queued" => OutboxStatus::Queued,
            "sending" => OutboxStatus::Sending,
            "sent" => OutboxStatus::Sent,
            "partial" => OutboxStatus::Partial,
            "failed" => OutboxStatus::Failed,
            other => {
                return Err(Error::InvalidStored {
                    column: "outbox_messages.status",
                    value: other.to_owned(),
                });
            }
        })
    }

    /// Sent, partial or failed: no worker touches it again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OutboxStatus::Sent | OutboxStatus::Partial | OutboxStatus::Failed
        )
    }
}

impl fmt::Display for OutboxStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one `message/send` call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStatus {
    Pending,
    /// Accepted upstream (`msgid` set); some recipients may still be listed as invalid.
    Sent,
    /// Refused because every recipient was invalid (81013).
    Invalid,
    /// Refused for another reason, or transient errors outlasted the retry budget.
    Failed,
}

impl CallStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Pending => "pending",
            CallStatus::Sent => "sent",
            CallStatus::Invalid => "invalid",
            CallStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "pending" => CallStatus::Pending,
            "sent" => CallStatus::Sent,
            "invalid" => CallStatus::Invalid,
            "failed" => CallStatus::Failed,
            other => {
                return Err(Error::InvalidStored {
                    column: "outbox_calls.status",
                    value: other.to_owned(),
                });
            }
        })
    }
}

/// A message to store. JSON columns are opaque to the store: the domain writes and reads them.
#[derive(Debug, Clone)]
pub struct NewOutboxMessage {
    /// The app key (in the tenant's configuration) to send through.
    pub app: String,
    pub idempotency_key: String,
    /// SHA-256 (hex) of the canonical request.
    pub request_hash: String,
    /// The request as accepted (JSON).
    pub request: String,
    pub msgtype: String,
    /// `Queued`, or `Failed` when nothing is left to send (every recipient invalid at resolution).
    pub status: OutboxStatus,
    pub error: Option<String>,
    /// Recipients found invalid before sending (JSON).
    pub invalid: String,
    /// One entry per `message/send` call: its targets (JSON).
    pub calls: Vec<String>,
}

/// What [`crate::Db::enqueue_outbox_message`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// A new message was stored.
    Created(i64),
    /// The idempotency key was already used; `same_request` says whether with the same request hash.
    Existing { id: i64, same_request: bool },
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub id: i64,
    pub tenant: String,
    pub app: String,
    pub idempotency_key: String,
    pub request: String,
    pub msgtype: String,
    pub status: OutboxStatus,
    pub attempts: i64,
    pub next_attempt_at_ms: i64,
    pub lease_owner: Option<String>,
    pub lease_until_ms: Option<i64>,
    pub error: Option<String>,
    pub invalid: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

/// One stored `message/send` call of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxCall {
    pub message_id: i64,
    pub seq: i64,
    pub targets: String,
    pub status: CallStatus,
    pub msgid: Option<String>,
    /// Invalid recipients of this call (JSON), as the domain recorded them.
    pub invalid: Option<String>,
    pub error: Option<String>,
    pub attempts: i64,
    pub sent_at_ms: Option<i64>,
    pub recalled_at_ms: Option<i64>,
}

/// The outcome of one call, written by [`crate::Db::finish_outbox_call`].
#[derive(Debug, Clone)]
pub struct CallOutcome {
    pub status: CallStatus,
    pub msgid: Option<String>,
    pub invalid: Option<String>,
    pub error: Option<String>,
}
