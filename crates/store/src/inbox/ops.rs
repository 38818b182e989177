// The inbox's SQL, written once and compiled twice: `mod.rs` includes this file in one module per
// backend, each defining `DB` (the sqlx database type) and `BACKEND` first.

include!("../sql_common.rs");

const COLS: &str = "id, tenant, source, dedup_key, kind, payload, status, attempts, available_at_ms, \
    claimed_by, last_error, outcome, received_at_ms, finished_at_ms";

type Row = (
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
    Option<String>,
    Option<String>,
    i64,
    Option<i64>,
);

fn from_row(r: Row) -> Result<InboxMessage, Error> {
    Ok(InboxMessage {
        id: r.0,
        tenant: r.1,
        source: r.2,
        dedup_key: r.3,
        kind: r.4,
        payload: r.5,
        status: r.6.parse()?,
        attempts: r.7,
        available_at_ms: r.8,
        claimed_by: r.9,
        last_error: r.10,
        outcome: r.11,
        received_at_ms: r.12,
        finished_at_ms: r.13,
    })
}

/// Rows per multi-row INSERT: 7 parameters each, far under both databases' limits. One statement per
/// chunk instead of one per row saves a round trip to SQLite's connection thread per message.
const INSERT_CHUNK: usize = 128;

pub(super) async fn insert_batch(
    pool: &Pool,
    msgs: &[NewInboxMessage<'_>],
) -> Result<Vec<InboxInsert>, Error> {
    use std::fmt::Write as _;
    let mut tx = begin_write(pool).await?;
    let mut out = Vec::with_capacity(msgs.len());
    for chunk in msgs.chunks(INSERT_CHUNK) {
        let mut sql = String::from(
            "INSERT INTO callback_inbox (tenant, source, dedup_key, kind, payload, status, \
             attempts, available_at_ms, received_at_ms) VALUES ",
        );
        for i in 0..chunk.len() {
            let p = i * 7;
            let sep = if i == 0 { "" } else { ", " };
            let _ = write!(
                sql,
                "{sep}(${}, ${}, ${}, ${}, ${}, ${}, 0, ${}, ${})",
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 7,
                p + 6,
                p + 6
            );
        }
        // A key twice in one chunk (a retry arriving with the original) inserts once: the second is
        // skipped like any other conflict.
        sql.push_str(
            " ON CONFLICT (tenant, source, dedup_key) DO NOTHING \
             RETURNING id, tenant, source, dedup_key",
        );
        let mut q = sqlx::query_as::<_, (i64, String, String, String)>(&sql);
        for m in chunk {
            q = q
                .bind(m.tenant)
                .bind(m.source)
                .bind(m.dedup_key)
                .bind(m.kind)
                .bind(m.payload)
                .bind(m.received_at_ms)
                .bind(m.status.as_str());
        }
        let rows = q.fetch_all(&mut *tx).await.map_err(query_error)?;
        // RETURNING gives no order: match the new rows to the messages by key. The first message
        // with a key gets its row, any other with the same key is a duplicate.
        let mut inserted: std::collections::HashMap<(&str, &str, &str), i64> = rows
            .iter()
            .map(|(id, t, s, d)| ((t.as_str(), s.as_str(), d.as_str()), *id))
            .collect();
        for m in chunk {
            out.push(
                match inserted.remove(&(m.tenant, m.source, m.dedup_key)) {
                    Some(id) => InboxInsert::Inserted(id),
                    None => InboxInsert::Duplicate,
                },
            );
        }
    }
    tx.commit().await.map_err(query_error)?;
    Ok(out)
}

pub(super) async fn insert(pool: &Pool, m: &NewInboxMessage<'_>) -> Result<InboxInsert, Error> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO callback_inbox (tenant, source, dedup_key, kind, payload, status, attempts, \
         available_at_ms, received_at_ms) VALUES ($1, $2, $3, $4, $5, $7, 0, $6, $6) \
         ON CONFLICT (tenant, source, dedup_key) DO NOTHING RETURNING id",
    )
    .bind(m.tenant)
    .bind(m.source)
    .bind(m.dedup_key)
    .bind(m.kind)
    .bind(m.payload)
    .bind(m.received_at_ms)
    .bind(m.status.as_str())
    .fetch_optional(pool)
    .await
    .map_err(query_error)?;
    Ok(match id {
        Some(id) => InboxInsert::Inserted(id),
        None => InboxInsert::Duplicate,
    })
}

pub(super) async fn claim(
    pool: &Pool,
    tenant: &str,
    worker: &str,
    now: i64,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<InboxMessage>, Error> {
    // PostgreSQL: rows another transaction is claiming are skipped, not waited for. SQLite: the
    // IMMEDIATE transaction holds the one write lock, so claims are serialised.
    let lock = match BACKEND {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    // An idle poll only reads: SQLite's BEGIN IMMEDIATE would take the write lock for nothing.
    let due: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM callback_inbox WHERE tenant = $1 AND status IN ('pending', 'processing') \
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
        "UPDATE callback_inbox SET status = 'processing', attempts = attempts + 1, \
         available_at_ms = $2, claimed_by = $3 \
         WHERE id IN (SELECT id FROM callback_inbox \
           WHERE tenant = $5 AND status IN ('pending', 'processing') AND available_at_ms <= $1 \
           ORDER BY id LIMIT $4{lock}) \
         RETURNING {COLS}"
    );
    let mut tx = begin_write(pool).await?;
    let rows: Vec<Row> = sqlx::query_as(&sql)
        .bind(now)
        .bind(now.saturating_add(lease_ms))
        .bind(worker)
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
    out.sort_by_key(|m| m.id);
    Ok(out)
}

/// Messages per settle statement: 6 parameters each.
const SETTLE_CHUNK: usize = 128;

/// One `UPDATE ... FROM (VALUES ...)` per chunk, in one write transaction: the whole claim is settled
/// in a statement or two, so SQLite's write lock is held for one round trip instead of one per row.
/// `VALUES` columns are `column1..column6` in both dialects: id, attempt, status, outcome, error,
/// available_at_ms. A retry (`pending`) keeps the row's outcome and finish time.
pub(super) async fn settle(
    pool: &Pool,
    worker: &str,
    now: i64,
    items: &[InboxSettlement],
) -> Result<Vec<bool>, Error> {
    use std::fmt::Write as _;
    let mut tx = begin_write(pool).await?;
    let mut written = std::collections::HashSet::with_capacity(items.len());
    for chunk in items.chunks(SETTLE_CHUNK) {
        let mut values = String::new();
        for n in 0..chunk.len() {
            let p = 3 + n * 6;
            let sep = if n == 0 { "" } else { ", " };
            let _ = write!(
                values,
                "{sep}(${}, ${}, ${}, ${}, ${}, ${})",
                p,
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5
            );
        }
        let sql = format!(
            "UPDATE callback_inbox SET status = v.column3, \
             outcome = CASE WHEN v.column3 = 'pending' THEN callback_inbox.outcome ELSE v.column4 END, \
             last_error = v.column5, available_at_ms = v.column6, \
             finished_at_ms = CASE WHEN v.column3 = 'pending' THEN callback_inbox.finished_at_ms ELSE $2 END \
             FROM (VALUES {values}) AS v \
             WHERE callback_inbox.id = v.column1 AND callback_inbox.claimed_by = $1 \
               AND callback_inbox.attempts = v.column2 AND callback_inbox.status = 'processing' \
             RETURNING callback_inbox.id"
        );
        let mut query = sqlx::query_scalar::<_, i64>(&sql).bind(worker).bind(now);
        for item in chunk {
            let (status, outcome, error, available) = match &item.settle {
                InboxSettle::Finish {
                    status,
                    outcome,
                    error,
                } => (*status, outcome.as_deref(), error.as_deref(), now),
                InboxSettle::Retry { error, at_ms } => {
                    (InboxStatus::Pending, None, Some(error.as_str()), *at_ms)
                }
            };
            query = query
                .bind(item.id)
                .bind(item.attempt)
                .bind(status.as_str())
                .bind(outcome)
                .bind(error)
                .bind(available);
        }
        written.extend(query.fetch_all(&mut *tx).await.map_err(query_error)?);
    }
    tx.commit().await.map_err(query_error)?;
    Ok(items.iter().map(|i| written.contains(&i.id)).collect())
}

pub(super) async fn list(
    pool: &Pool,
    tenant: &str,
    status: Option<InboxStatus>,
    limit: i64,
) -> Result<Vec<InboxMessage>, Error> {
    let sql = format!(
        "SELECT {COLS} FROM callback_inbox WHERE tenant = $1 AND ($2 IS NULL OR status = $2) \
         ORDER BY id DESC LIMIT $3"
    );
    let rows: Vec<Row> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(status.map(InboxStatus::as_str))
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(query_error)?;
    rows.into_iter().map(from_row).collect()
}

pub(super) async fn counts(pool: &Pool, tenant: &str) -> Result<Vec<(InboxStatus, i64)>, Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, COUNT(*) FROM callback_inbox WHERE tenant = $1 GROUP BY status ORDER BY status",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await
    .map_err(query_error)?;
    rows.into_iter()
        .map(|(s, n)| Ok((s.parse()?, n)))
        .collect()
}

pub(super) async fn get(pool: &Pool, tenant: &str, id: i64) -> Result<Option<InboxMessage>, Error> {
    let sql = format!("SELECT {COLS} FROM callback_inbox WHERE tenant = $1 AND id = $2");
    let row: Option<Row> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(query_error)?;
    row.map(from_row).transpose()
}

pub(super) async fn requeue_dead(
    pool: &Pool,
    tenant: &str,
    id: i64,
    now: i64,
) -> Result<bool, Error> {
    let n = sqlx::query(
        "UPDATE callback_inbox SET status = 'pending', available_at_ms = $3, finished_at_ms = NULL \
         WHERE tenant = $1 AND id = $2 AND status = 'dead'",
    )
    .bind(tenant)
    .bind(id)
    .bind(now)
    .execute(pool)
    .await
    .map_err(query_error)?
    .rows_affected();
    Ok(n == 1)
}
