// The webhook outbox's SQL, written once and compiled twice: `mod.rs` includes this file in one module
// per backend, each defining `DB` (the sqlx database type) and `BACKEND` first. Every value is a bound
// parameter; the one dialect difference is the claim's `FOR UPDATE SKIP LOCKED` (PostgreSQL), where
// SQLite relies on the write lock its IMMEDIATE transaction takes.

include!("../sql_common.rs");

const COLS: &str = "id, tenant, event_id, event_type, payload, status, attempts, available_at_ms, \
     lease_owner, last_error, last_status_code, created_at_ms, updated_at_ms, delivered_at_ms";

type Row = (
    i64,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<i64>,
    i64,
    i64,
    Option<i64>,
);

fn from_row(r: Row) -> Result<WebhookDelivery, Error> {
    Ok(WebhookDelivery {
        id: r.0,
        tenant: r.1,
        event_id: r.2,
        event_type: r.3,
        payload: r.4,
        status: r.5.parse()?,
        attempts: r.6,
        available_at_ms: r.7,
        lease_owner: r.8,
        last_error: r.9,
        last_status_code: r.10,
        created_at_ms: r.11,
        updated_at_ms: r.12,
        delivered_at_ms: r.13,
    })
}

pub(super) async fn enqueue(
    pool: &Pool,
    tenant: &str,
    new: &NewWebhookDelivery<'_>,
    now: i64,
) -> Result<WebhookEnqueue, Error> {
    let created: Option<i64> = sqlx::query_scalar(
        "INSERT INTO webhook_deliveries (tenant, event_id, event_type, payload, status, attempts, \
         available_at_ms, created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5, $5) \
         ON CONFLICT (tenant, event_id) DO NOTHING RETURNING id",
    )
    .bind(tenant)
    .bind(new.event_id)
    .bind(new.event_type)
    .bind(new.payload)
    .bind(now)
    .fetch_optional(pool)
    .await
    .map_err(query_error)?;
    if let Some(id) = created {
        return Ok(WebhookEnqueue::Created(id));
    }
    let id: i64 = sqlx::query_scalar(
        "SELECT id FROM webhook_deliveries WHERE tenant = $1 AND event_id = $2",
    )
    .bind(tenant)
    .bind(new.event_id)
    .fetch_one(pool)
    .await
    .map_err(query_error)?;
    Ok(WebhookEnqueue::Existing(id))
}

pub(super) async fn claim(
    pool: &Pool,
    tenant: &str,
    owner: &str,
    now: i64,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<WebhookDelivery>, Error> {
    let lock = match BACKEND {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    // An idle poll only reads: SQLite's BEGIN IMMEDIATE would take the write lock for nothing.
    let due: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM webhook_deliveries WHERE tenant = $1 AND status IN ('pending', 'processing') \
         AND available_at_ms <= $2 LIMIT 1",
    )
    .bind(tenant)
    .bind(now)
    .fetch_optional(pool)
    .await
    .map_err(query_error)?;
    if due.is_none() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "UPDATE webhook_deliveries SET status = 'processing', attempts = attempts + 1, \
         available_at_ms = $2, lease_owner = $3, updated_at_ms = $1 \
         WHERE id IN (SELECT id FROM webhook_deliveries \
           WHERE tenant = $5 AND status IN ('pending', 'processing') AND available_at_ms <= $1 \
           ORDER BY id LIMIT $4{lock}) \
         RETURNING {COLS}"
    );
    let mut tx = begin_write(pool).await?;
    let rows: Vec<Row> = sqlx::query_as(&sql)
        .bind(now)
        .bind(now.saturating_add(lease_ms))
        .bind(owner)
        .bind(limit)
        .bind(tenant)
        .fetch_all(&mut *tx)
        .await
        .map_err(query_error)?;
    tx.commit().await.map_err(query_error)?;
    let mut out = rows
        .into_iter()
        .map(from_row)
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by_key(|d| d.id);
    Ok(out)
}

pub(super) async fn finish(
    pool: &Pool,
    id: i64,
    owner: &str,
    attempt: i64,
    how: &WebhookFinish<'_>,
    now: i64,
) -> Result<bool, Error> {
    // (status, available_at_ms, last_error, last_status_code, delivered_at_ms)
    let (status, available_at, error, code, delivered_at) = match *how {
        WebhookFinish::Delivered { status_code } => {
            (WebhookStatus::Delivered, now, None, Some(status_code), Some(now))
        }
        WebhookFinish::Retry {
            error,
            status_code,
            retry_at_ms,
        } => (WebhookStatus::Pending, retry_at_ms, Some(error), status_code, None),
        WebhookFinish::Dead { error, status_code } => {
            (WebhookStatus::Dead, now, Some(error), status_code, None)
        }
    };
    // A delivered row keeps the last failure's error for the record only when there was one; a
    // success clears nothing but the lease.
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET status = $4, available_at_ms = $5, \
         last_error = COALESCE($6, last_error), last_status_code = $7, delivered_at_ms = $8, \
         lease_owner = NULL, updated_at_ms = $9 \
         WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND status = 'processing'",
    )
    .bind(id)
    .bind(owner)
    .bind(attempt)
    .bind(status.as_str())
    .bind(available_at)
    .bind(error)
    .bind(code)
    .bind(delivered_at)
    .bind(now)
    .execute(pool)
    .await
    .map_err(query_error)?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn delivery(
    pool: &Pool,
    tenant: &str,
    id: i64,
) -> Result<Option<WebhookDelivery>, Error> {
    let sql = format!("SELECT {COLS} FROM webhook_deliveries WHERE tenant = $1 AND id = $2");
    let row: Option<Row> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(query_error)?;
    row.map(from_row).transpose()
}

pub(super) async fn list(
    pool: &Pool,
    tenant: &str,
    status: Option<WebhookStatus>,
    limit: i64,
) -> Result<Vec<WebhookDelivery>, Error> {
    let sql = format!(
        "SELECT {COLS} FROM webhook_deliveries WHERE tenant = $1 AND ($2 IS NULL OR status = $2) \
         ORDER BY id DESC LIMIT $3"
    );
    let rows: Vec<Row> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(status.map(WebhookStatus::as_str))
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(query_error)?;
    rows.into_iter().map(from_row).collect()
}

pub(super) async fn counts(pool: &Pool, tenant: &str) -> Result<Vec<(WebhookStatus, i64)>, Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, COUNT(*) FROM webhook_deliveries WHERE tenant = $1 GROUP BY status \
         ORDER BY status",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await
    .map_err(query_error)?;
    rows.into_iter()
        .map(|(s, n)| Ok((s.parse()?, n)))
        .collect()
}

pub(super) async fn replay_one(pool: &Pool, tenant: &str, id: i64, now: i64) -> Result<bool, Error> {
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, available_at_ms = $3, \
         lease_owner = NULL, updated_at_ms = $3 WHERE tenant = $1 AND id = $2 AND status = 'dead'",
    )
    .bind(tenant)
    .bind(id)
    .bind(now)
    .execute(pool)
    .await
    .map_err(query_error)?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn replay_all(pool: &Pool, tenant: &str, now: i64) -> Result<u64, Error> {
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, available_at_ms = $2, \
         lease_owner = NULL, updated_at_ms = $2 WHERE tenant = $1 AND status = 'dead'",
    )
    .bind(tenant)
    .bind(now)
    .execute(pool)
    .await
    .map_err(query_error)?;
    Ok(done.rows_affected())
}

pub(super) async fn set_subscription(
    pool: &Pool,
    tenant: &str,
    identity: i64,
    subscribed: bool,
    at: i64,
) -> Result<bool, Error> {
    let done = sqlx::query(
        "UPDATE wechat_identities SET subscribed = $3, subscribed_changed_at_ms = $4 \
         WHERE tenant = $1 AND id = $2 \
         AND (subscribed_changed_at_ms IS NULL OR subscribed_changed_at_ms <= $4)",
    )
    .bind(tenant)
    .bind(identity)
    .bind(subscribed)
    .bind(at)
    .execute(pool)
    .await
    .map_err(query_error)?;
    if done.rows_affected() > 0 {
        return Ok(true);
    }
    match subscription(pool, tenant, identity).await? {
        Some(_) => Ok(false),
        None => Err(Error::NotFound {
            what: "wechat identity",
            id: identity,
        }),
    }
}

pub(super) async fn subscription(
    pool: &Pool,
    tenant: &str,
    identity: i64,
) -> Result<Option<Subscription>, Error> {
    let row: Option<(Option<bool>, Option<i64>)> = sqlx::query_as(
        "SELECT subscribed, subscribed_changed_at_ms FROM wechat_identities \
         WHERE tenant = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(identity)
    .fetch_optional(pool)
    .await
    .map_err(query_error)?;
    Ok(row.map(|(subscribed, changed_at_ms)| Subscription {
        subscribed,
        changed_at_ms,
    }))
}
