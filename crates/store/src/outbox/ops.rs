// The outbox's SQL, written once and compiled twice: `mod.rs` includes this file in one module per backend,
// each defining `DB` (the sqlx database type) and `BACKEND` first. Every value is a bound parameter; the
// one dialect difference is the claim's `FOR UPDATE SKIP LOCKED` (PostgreSQL), where SQLite relies on the
// write lock its IMMEDIATE transaction takes.

include!("../sql_common.rs");

const MESSAGE_COLS: &str = "id, tenant, app, idempotency_key, request, msgtype, status, attempts, \
     next_attempt_at_ms, lease_owner, lease_until_ms, error, invalid, created_at_ms, updated_at_ms, \
     finished_at_ms";

type MessageRow = (
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<String>,
    Option<i64>,
    Option<String>,
    String,
    i64,
    i64,
    Option<i64>,
);

fn message_from_row(r: MessageRow) -> Result<OutboxMessage, Error> {
    Ok(OutboxMessage {
        id: r.0,
        tenant: r.1,
        app: r.2,
        idempotency_key: r.3,
        request: r.4,
        msgtype: r.5,
        status: OutboxStatus::parse(&r.6)?,
        attempts: r.7,
        next_attempt_at_ms: r.8,
        lease_owner: r.9,
        lease_until_ms: r.10,
        error: r.11,
        invalid: r.12,
        created_at_ms: r.13,
        updated_at_ms: r.14,
        finished_at_ms: r.15,
    })
}

const CALL_COLS: &str =
    "message_id, seq, targets, status, msgid, invalid, error, attempts, sent_at_ms, recalled_at_ms";

type CallRow = (
    i64,
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    Option<i64>,
    Option<i64>,
);

fn call_from_row(r: CallRow) -> Result<OutboxCall, Error> {
    Ok(OutboxCall {
        message_id: r.0,
        seq: r.1,
        targets: r.2,
        status: CallStatus::parse(&r.3)?,
        msgid: r.4,
        invalid: r.5,
        error: r.6,
        attempts: r.7,
        sent_at_ms: r.8,
        recalled_at_ms: r.9,
    })
}

async fn existing(tx: &mut Tx, tenant: &str, key: &str) -> Result<Option<(i64, String)>, Error> {
    sqlx::query_as(
        "SELECT id, request_hash FROM outbox_messages WHERE tenant = $1 AND idempotency_key = $2",
    )
    .bind(tenant)
    .bind(key)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error)
}

pub(super) async fn enqueue(
    pool: &Pool,
    tenant: &str,
    new: &NewOutboxMessage,
    now: i64,
) -> Result<EnqueueOutcome, Error> {
    let mut tx = begin_write(pool).await?;
    if let Some((id, hash)) = existing(&mut tx, tenant, &new.idempotency_key).await? {
        return Ok(EnqueueOutcome::Existing {
            id,
            same_request: hash == new.request_hash,
        });
    }
    let finished = new.status.is_final().then_some(now);
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO outbox_messages (tenant, app, idempotency_key, request_hash, request, msgtype, \
         status, attempts, next_attempt_at_ms, error, invalid, created_at_ms, updated_at_ms, \
         finished_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9, $10, $8, $8, $11) RETURNING id",
    )
    .bind(tenant)
    .bind(&new.app)
    .bind(&new.idempotency_key)
    .bind(&new.request_hash)
    .bind(&new.request)
    .bind(&new.msgtype)
    .bind(new.status.as_str())
    .bind(now)
    .bind(&new.error)
    .bind(&new.invalid)
    .bind(finished)
    .fetch_one(&mut *tx)
    .await
    .map_err(query_error)?;
    for (seq, targets) in new.calls.iter().enumerate() {
        sqlx::query(
            "INSERT INTO outbox_calls (message_id, seq, targets, status, attempts) \
             VALUES ($1, $2, $3, 'pending', 0)",
        )
        .bind(id)
        .bind(i64::try_from(seq).unwrap_or(i64::MAX))
        .bind(targets)
        .execute(&mut *tx)
        .await
        .map_err(query_error)?;
    }
    tx.commit().await.map_err(query_error)?;
    Ok(EnqueueOutcome::Created(id))
}

pub(super) async fn message(
    pool: &Pool,
    tenant: &str,
    id: i64,
) -> Result<Option<OutboxMessage>, Error> {
    let sql = format!("SELECT {MESSAGE_COLS} FROM outbox_messages WHERE tenant = $1 AND id = $2");
    let row: Option<MessageRow> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(query_error)?;
    row.map(message_from_row).transpose()
}

pub(super) async fn recent(
    pool: &Pool,
    tenant: &str,
    limit: i64,
) -> Result<Vec<OutboxMessage>, Error> {
    let sql = format!(
        "SELECT {MESSAGE_COLS} FROM outbox_messages WHERE tenant = $1 ORDER BY id DESC LIMIT $2"
    );
    let rows: Vec<MessageRow> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(query_error)?;
    rows.into_iter().map(message_from_row).collect()
}

pub(super) async fn calls(pool: &Pool, message_id: i64) -> Result<Vec<OutboxCall>, Error> {
    let sql = format!("SELECT {CALL_COLS} FROM outbox_calls WHERE message_id = $1 ORDER BY seq");
    let rows: Vec<CallRow> = sqlx::query_as(&sql)
        .bind(message_id)
        .fetch_all(pool)
        .await
        .map_err(query_error)?;
    rows.into_iter().map(call_from_row).collect()
}

pub(super) async fn claim(
    pool: &Pool,
    tenant: &str,
    owner: &str,
    now: i64,
    lease_until: i64,
    limit: i64,
) -> Result<Vec<OutboxMessage>, Error> {
    let lock = match BACKEND {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    // `status IN (...)` repeats what the OR says so that the partial index of open messages
    // (migration 0011) serves the claim in id order.
    let sql = format!(
        "UPDATE outbox_messages SET status = 'sending', lease_owner = $1, lease_until_ms = $2, \
         updated_at_ms = $3 WHERE id IN (SELECT id FROM outbox_messages \
         WHERE tenant = $5 AND status IN ('queued', 'sending') \
           AND ((status = 'queued' AND next_attempt_at_ms <= $3) \
            OR (status = 'sending' AND lease_until_ms <= $3)) \
         ORDER BY id LIMIT $4{lock}) RETURNING {MESSAGE_COLS}"
    );
    // Idle workers poll: look first without a write transaction (on SQLite, BEGIN IMMEDIATE takes the
    // database's one write lock even when nothing is due).
    let due: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM outbox_messages WHERE tenant = $1 AND \
         ((status = 'queued' AND next_attempt_at_ms <= $2) OR (status = 'sending' AND lease_until_ms <= $2)) \
         LIMIT 1",
    )
    .bind(tenant)
    .bind(now)
    .fetch_optional(pool)
    .await
    .map_err(query_error)?;
    if due.is_none() {
        return Ok(Vec::new());
    }
    let mut tx = begin_write(pool).await?;
    let rows: Vec<MessageRow> = sqlx::query_as(&sql)
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .bind(limit)
        .bind(tenant)
        .fetch_all(&mut *tx)
        .await
        .map_err(query_error)?;
    tx.commit().await.map_err(query_error)?;
    let mut out = rows
        .into_iter()
        .map(message_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by_key(|m| m.id);
    Ok(out)
}

pub(super) async fn renew(
    pool: &Pool,
    id: i64,
    owner: &str,
    lease_until: i64,
    now: i64,
) -> Result<bool, Error> {
    let done = sqlx::query(
        "UPDATE outbox_messages SET lease_until_ms = $3, updated_at_ms = $4 \
         WHERE id = $1 AND status = 'sending' AND lease_owner = $2",
    )
    .bind(id)
    .bind(owner)
    .bind(lease_until)
    .bind(now)
    .execute(pool)
    .await
    .map_err(query_error)?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn finish_call(
    pool: &Pool,
    message_id: i64,
    seq: i64,
    owner: &str,
    outcome: &CallOutcome,
    now: i64,
) -> Result<bool, Error> {
    // One statement: the call is marked only while this worker still holds the message's lease, and only
    // once (a pending call), so the msgid and the 'sent' status land together or not at all.
    let done = sqlx::query(
        "UPDATE outbox_calls SET status = $4, msgid = $5, invalid = $6, error = $7, \
         attempts = attempts + 1, sent_at_ms = $8 \
         WHERE message_id = $1 AND seq = $2 AND status = 'pending' AND EXISTS \
         (SELECT 1 FROM outbox_messages m WHERE m.id = $1 AND m.status = 'sending' AND m.lease_owner = $3)",
    )
    .bind(message_id)
    .bind(seq)
    .bind(owner)
    .bind(outcome.status.as_str())
    .bind(&outcome.msgid)
    .bind(&outcome.invalid)
    .bind(&outcome.error)
    .bind(now)
    .execute(pool)
    .await
    .map_err(query_error)?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn retry_later(
    pool: &Pool,
    id: i64,
    owner: &str,
    next_attempt_at: i64,
    count_attempt: bool,
    error: &str,
    now: i64,
) -> Result<bool, Error> {
    let done = sqlx::query(
        "UPDATE outbox_messages SET status = 'queued', lease_owner = NULL, lease_until_ms = NULL, \
         next_attempt_at_ms = $3, attempts = attempts + $4, error = $5, updated_at_ms = $6 \
         WHERE id = $1 AND status = 'sending' AND lease_owner = $2",
    )
    .bind(id)
    .bind(owner)
    .bind(next_attempt_at)
    .bind(i64::from(count_attempt))
    .bind(error)
    .bind(now)
    .execute(pool)
    .await
    .map_err(query_error)?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn finish(
    pool: &Pool,
    id: i64,
    owner: &str,
    status: OutboxStatus,
    error: Option<&str>,
    now: i64,
) -> Result<bool, Error> {
    let done = sqlx::query(
        "UPDATE outbox_messages SET status = $3, lease_owner = NULL, lease_until_ms = NULL, \
         error = $4, updated_at_ms = $5, finished_at_ms = $5 \
         WHERE id = $1 AND status = 'sending' AND lease_owner = $2",
    )
    .bind(id)
    .bind(owner)
    .bind(status.as_str())
    .bind(error)
    .bind(now)
    .execute(pool)
    .await
    .map_err(query_error)?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn mark_recalled(
    pool: &Pool,
    tenant: &str,
    message_id: i64,
    seq: i64,
    now: i64,
) -> Result<bool, Error> {
    let done = sqlx::query(
        "UPDATE outbox_calls SET recalled_at_ms = $4 WHERE message_id = $2 AND seq = $3 \
         AND recalled_at_ms IS NULL AND EXISTS \
         (SELECT 1 FROM outbox_messages m WHERE m.id = $2 AND m.tenant = $1)",
    )
    .bind(tenant)
    .bind(message_id)
    .bind(seq)
    .bind(now)
    .execute(pool)
    .await
    .map_err(query_error)?;
    Ok(done.rows_affected() > 0)
}
