// The identity store's SQL, written once and compiled twice: `mod.rs` includes this file in one module
// per backend, each defining `DB` (the sqlx database type) and `BACKEND` first. Every statement is valid
// in both SQLite and PostgreSQL and every value is a bound parameter.

include!("../sql_common.rs");

// ---- identities ----

pub(super) async fn identity(
    pool: &Pool,
    tenant: &str,
    id: i64,
) -> Result<Option<WechatIdentity>, Error> {
    let sql = format!(
        "SELECT {IDENTITY_COLS} FROM wechat_identities i WHERE i.tenant = $1 AND i.id = $2"
    );
    let row: Option<IdentityRow> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(query_error)?;
    row.map(identity_from_row).transpose()
}

pub(super) async fn identity_by_openid(
    pool: &Pool,
    tenant: &str,
    appid: &str,
    openid: &str,
) -> Result<Option<WechatIdentity>, Error> {
    let sql = format!(
        "SELECT {IDENTITY_COLS} FROM wechat_identities i \
         WHERE i.tenant = $1 AND i.appid = $2 AND i.openid = $3"
    );
    let row: Option<IdentityRow> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(appid)
        .bind(openid)
        .fetch_optional(pool)
        .await
        .map_err(query_error)?;
    row.map(identity_from_row).transpose()
}

pub(super) async fn identities_by_unionid(
    pool: &Pool,
    tenant: &str,
    unionid: &str,
) -> Result<Vec<WechatIdentity>, Error> {
    let sql = format!(
        "SELECT {IDENTITY_COLS} FROM wechat_identities i \
         WHERE i.tenant = $1 AND i.unionid = $2 ORDER BY i.id"
    );
    let rows: Vec<IdentityRow> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(unionid)
        .fetch_all(pool)
        .await
        .map_err(query_error)?;
    rows.into_iter().map(identity_from_row).collect()
}

pub(super) async fn identities_of_user(
    pool: &Pool,
    tenant: &str,
    user_id: i64,
) -> Result<Vec<WechatIdentity>, Error> {
    let sql = format!(
        "SELECT {IDENTITY_COLS} FROM wechat_identities i \
         WHERE i.tenant = $1 AND i.user_id = $2 ORDER BY i.id"
    );
    let rows: Vec<IdentityRow> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(user_id)
        .fetch_all(pool)
        .await
        .map_err(query_error)?;
    rows.into_iter().map(identity_from_row).collect()
}

async fn user_exists(tx: &mut Tx, tenant: &str, user_id: i64) -> Result<bool, Error> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT id FROM users WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(user_id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(query_error)?;
    Ok(found.is_some())
}

async fn insert_user(tx: &mut Tx, tenant: &str, f: &UserFields, now: i64) -> Result<i64, Error> {
    sqlx::query_scalar(
        "INSERT INTO users (tenant, name, mobile, email, avatar, position, gender, status, \
         created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING id",
    )
    .bind(tenant)
    .bind(&f.name)
    .bind(&f.mobile)
    .bind(&f.email)
    .bind(&f.avatar)
    .bind(&f.position)
    .bind(f.gender.map(Gender::as_str))
    .bind(f.status.as_str())
    .bind(now)
    .fetch_one(&mut **tx)
    .await
    .map_err(query_error)
}

async fn insert_identity_tx(
    tx: &mut Tx,
    tenant: &str,
    user_id: i64,
    new: &NewWechatIdentity,
    now: i64,
) -> Result<WechatIdentity, Error> {
    let sql = format!(
        "INSERT INTO wechat_identities (tenant, appid, app_kind, openid, unionid, user_id, nickname, \
         avatar, pinned, created_at_ms, updated_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING {IDENTITY_COLS_BARE}"
    );
    let row: IdentityRow = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(&new.appid)
        .bind(new.app_kind.as_str())
        .bind(&new.openid)
        .bind(&new.unionid)
        .bind(user_id)
        .bind(&new.nickname)
        .bind(&new.avatar)
        .bind(false)
        .bind(now)
        .fetch_one(&mut **tx)
        .await
        .map_err(query_error)?;
    identity_from_row(row)
}

pub(super) async fn insert_identity(
    pool: &Pool,
    tenant: &str,
    user_id: i64,
    new: &NewWechatIdentity,
    now: i64,
) -> Result<WechatIdentity, Error> {
    let mut tx = begin_write(pool).await?;
    if !user_exists(&mut tx, tenant, user_id).await? {
        return Err(Error::NotFound {
            what: "user",
            id: user_id,
        });
    }
    let identity = insert_identity_tx(&mut tx, tenant, user_id, new, now).await?;
    tx.commit().await.map_err(query_error)?;
    Ok(identity)
}

pub(super) async fn create_user_with_identity(
    pool: &Pool,
    tenant: &str,
    fields: &UserFields,
    new: &NewWechatIdentity,
    now: i64,
) -> Result<WechatIdentity, Error> {
    let mut tx = begin_write(pool).await?;
    let user_id = insert_user(&mut tx, tenant, fields, now).await?;
    let identity = insert_identity_tx(&mut tx, tenant, user_id, new, now).await?;
    tx.commit().await.map_err(query_error)?;
    Ok(identity)
}

pub(super) async fn update_identity_profile(
    pool: &Pool,
    tenant: &str,
    id: i64,
    nickname: Option<&str>,
    avatar: Option<&str>,
    now: i64,
) -> Result<bool, Error> {
    let done = sqlx::query(
        "UPDATE wechat_identities SET nickname = $3, avatar = $4, updated_at_ms = $5 \
         WHERE tenant = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(nickname)
    .bind(avatar)
    .bind(now)
    .execute(pool)
    .await
    .map_err(query_error)?;
    Ok(done.rows_affected() > 0)
}

async fn learn_unionid_tx(
    tx: &mut Tx,
    tenant: &str,
    id: i64,
    unionid: &str,
    now: i64,
) -> Result<bool, Error> {
    let done = sqlx::query(
        "UPDATE wechat_identities SET unionid = $3, updated_at_ms = $4 \
         WHERE tenant = $1 AND id = $2 AND unionid IS NULL",
    )
    .bind(tenant)
    .bind(id)
    .bind(unionid)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(query_error)?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn learn_unionid(
    pool: &Pool,
    tenant: &str,
    id: i64,
    unionid: &str,
    now: i64,
) -> Result<bool, Error> {
    let mut tx = begin_write(pool).await?;
    let learned = learn_unionid_tx(&mut tx, tenant, id, unionid, now).await?;
    tx.commit().await.map_err(query_error)?;
    Ok(learned)
}

// ---- merges ----

pub(super) async fn merge_users(
    pool: &Pool,
    tenant: &str,
    merge: &UserMerge,
    now: i64,
) -> Result<UserMergeRecord, Error> {
    let from = merge.from_user.get();
    let into = merge.into_user.get();
    let mut tx = begin_write(pool).await?;
    for id in [from, into] {
        if !user_exists(&mut tx, tenant, id).await? {
            return Err(Error::NotFound { what: "user", id });
        }
    }
    if let Some((identity, unionid)) = &merge.learn_unionid {
        learn_unionid_tx(&mut tx, tenant, identity.get(), unionid, now).await?;
    }
    let moved: Vec<i64> = sqlx::query_scalar(
        "UPDATE wechat_identities SET user_id = $3, updated_at_ms = $4 \
         WHERE tenant = $1 AND user_id = $2 AND pinned = $5 RETURNING id",
    )
    .bind(tenant)
    .bind(from)
    .bind(into)
    .bind(now)
    .bind(false)
    .fetch_all(&mut *tx)
    .await
    .map_err(query_error)?;
    let sessions =
        sqlx::query("UPDATE sessions SET user_id = $3 WHERE tenant = $1 AND user_id = $2")
            .bind(tenant)
            .bind(from)
            .bind(into)
            .execute(&mut *tx)
            .await
            .map_err(query_error)?
            .rows_affected();
    let mut identities: Vec<IdentityId> = moved.into_iter().map(IdentityId::from_raw).collect();
    identities.sort();
    let detail = MergeDetail {
        identities,
        sessions_moved: sessions,
    };
    let detail_json = serde_json::to_string(&detail).map_err(|source| Error::StoredJson {
        column: "user_merges.identities",
        source,
    })?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO user_merges (tenant, from_user_id, into_user_id, reason, unionid, actor, \
         identities, at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(tenant)
    .bind(from)
    .bind(into)
    .bind(merge.reason.as_str())
    .bind(&merge.unionid)
    .bind(&merge.actor)
    .bind(&detail_json)
    .bind(now)
    .fetch_one(&mut *tx)
    .await
    .map_err(query_error)?;
    tx.commit().await.map_err(query_error)?;
    Ok(UserMergeRecord {
        id: MergeId::from_raw(id),
        from_user: merge.from_user,
        into_user: merge.into_user,
        reason: merge.reason,
        unionid: merge.unionid.clone(),
        actor: merge.actor.clone(),
        identities: detail.identities,
        sessions_moved: sessions,
        at_ms: now,
    })
}

pub(super) async fn merges_of_user(
    pool: &Pool,
    tenant: &str,
    user_id: i64,
) -> Result<Vec<UserMergeRecord>, Error> {
    let sql = format!(
        "SELECT {MERGE_COLS} FROM user_merges \
         WHERE tenant = $1 AND (from_user_id = $2 OR into_user_id = $2) ORDER BY id"
    );
    let rows: Vec<MergeRowTuple> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(user_id)
        .fetch_all(pool)
        .await
        .map_err(query_error)?;
    rows.into_iter().map(merge_from_row).collect()
}

// ---- operator link / unlink ----

#[allow(clippy::too_many_arguments)]
pub(super) async fn relink_identity(
    pool: &Pool,
    tenant: &str,
    id: i64,
    to_user: Option<i64>,
    new_user: &UserFields,
    actor: &str,
    note: Option<&str>,
    now: i64,
) -> Result<IdentityAuditEntry, Error> {
    let mut tx = begin_write(pool).await?;
    let from: Option<i64> =
        sqlx::query_scalar("SELECT user_id FROM wechat_identities WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(query_error)?;
    let Some(from) = from else {
        return Err(Error::NotFound {
            what: "identity",
            id,
        });
    };
    let (action, to) = match to_user {
        Some(to) => {
            if !user_exists(&mut tx, tenant, to).await? {
                return Err(Error::NotFound {
                    what: "user",
                    id: to,
                });
            }
            (AuditAction::Link, to)
        }
        None => (
            AuditAction::Unlink,
            insert_user(&mut tx, tenant, new_user, now).await?,
        ),
    };
    sqlx::query(
        "UPDATE wechat_identities SET user_id = $3, pinned = $4, updated_at_ms = $5 \
         WHERE tenant = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(to)
    .bind(true)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(query_error)?;
    // Sessions opened through this identity belonged to the person it was attached to; after an
    // operator moved it, none of them is trusted any more.
    sqlx::query(
        "UPDATE sessions SET revoked_at_ms = $3 \
         WHERE tenant = $1 AND identity_id = $2 AND revoked_at_ms IS NULL",
    )
    .bind(tenant)
    .bind(id)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(query_error)?;
    let audit_id: i64 = sqlx::query_scalar(
        "INSERT INTO identity_audit (tenant, at_ms, actor, action, identity_id, from_user_id, \
         to_user_id, note) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(tenant)
    .bind(now)
    .bind(actor)
    .bind(action.as_str())
    .bind(id)
    .bind(from)
    .bind(to)
    .bind(note)
    .fetch_one(&mut *tx)
    .await
    .map_err(query_error)?;
    tx.commit().await.map_err(query_error)?;
    Ok(IdentityAuditEntry {
        id: audit_id,
        at_ms: now,
        actor: actor.to_owned(),
        action,
        identity_id: IdentityId::from_raw(id),
        from_user: UserId::from_raw(from),
        to_user: UserId::from_raw(to),
        note: note.map(str::to_owned),
    })
}

pub(super) async fn audit_of_identity(
    pool: &Pool,
    tenant: &str,
    id: i64,
) -> Result<Vec<IdentityAuditEntry>, Error> {
    let sql = format!(
        "SELECT {AUDIT_COLS} FROM identity_audit WHERE tenant = $1 AND identity_id = $2 ORDER BY id"
    );
    let rows: Vec<AuditRowTuple> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .fetch_all(pool)
        .await
        .map_err(query_error)?;
    rows.into_iter().map(audit_from_row).collect()
}

// ---- sealed mini-program session keys ----

pub(super) async fn put_session_key(
    pool: &Pool,
    tenant: &str,
    identity_id: i64,
    key: &SealedSessionKey,
) -> Result<(), Error> {
    let mut tx = begin_write(pool).await?;
    let owned: Option<i64> =
        sqlx::query_scalar("SELECT id FROM wechat_identities WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(identity_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(query_error)?;
    if owned.is_none() {
        return Err(Error::NotFound {
            what: "identity",
            id: identity_id,
        });
    }
    sqlx::query(
        "INSERT INTO wechat_session_keys (tenant, identity_id, key_id, sealed, updated_at_ms) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (identity_id) DO UPDATE SET \
         key_id = excluded.key_id, sealed = excluded.sealed, updated_at_ms = excluded.updated_at_ms",
    )
    .bind(tenant)
    .bind(identity_id)
    .bind(&key.key_id)
    .bind(&key.sealed)
    .bind(key.updated_at_ms)
    .execute(&mut *tx)
    .await
    .map_err(query_error)?;
    tx.commit().await.map_err(query_error)?;
    Ok(())
}

pub(super) async fn session_key(
    pool: &Pool,
    tenant: &str,
    identity_id: i64,
) -> Result<Option<SealedSessionKey>, Error> {
    let row: Option<(String, Vec<u8>, i64)> = sqlx::query_as(
        "SELECT key_id, sealed, updated_at_ms FROM wechat_session_keys \
         WHERE tenant = $1 AND identity_id = $2",
    )
    .bind(tenant)
    .bind(identity_id)
    .fetch_optional(pool)
    .await
    .map_err(query_error)?;
    Ok(row.map(|(key_id, sealed, updated_at_ms)| SealedSessionKey {
        key_id,
        sealed,
        updated_at_ms,
    }))
}

pub(super) async fn put_wecom_session_key(
    pool: &Pool,
    tenant: &str,
    appid: &str,
    user_id: i64,
    key: &SealedSessionKey,
) -> Result<(), Error> {
    let mut tx = begin_write(pool).await?;
    let owned: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE tenant = $1 AND id = $2")
        .bind(tenant)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_error)?;
    if owned.is_none() {
        return Err(Error::NotFound {
            what: "user",
            id: user_id,
        });
    }
    sqlx::query(
        "INSERT INTO wecom_session_keys (tenant, appid, user_id, key_id, sealed, updated_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant, appid, user_id) DO UPDATE SET \
         key_id = excluded.key_id, sealed = excluded.sealed, updated_at_ms = excluded.updated_at_ms",
    )
    .bind(tenant)
    .bind(appid)
    .bind(user_id)
    .bind(&key.key_id)
    .bind(&key.sealed)
    .bind(key.updated_at_ms)
    .execute(&mut *tx)
    .await
    .map_err(query_error)?;
    tx.commit().await.map_err(query_error)?;
    Ok(())
}

pub(super) async fn wecom_session_key(
    pool: &Pool,
    tenant: &str,
    appid: &str,
    user_id: i64,
) -> Result<Option<SealedSessionKey>, Error> {
    let row: Option<(String, Vec<u8>, i64)> = sqlx::query_as(
        "SELECT key_id, sealed, updated_at_ms FROM wecom_session_keys \
         WHERE tenant = $1 AND appid = $2 AND user_id = $3",
    )
    .bind(tenant)
    .bind(appid)
    .bind(user_id)
    .fetch_optional(pool)
    .await
    .map_err(query_error)?;
    Ok(row.map(|(key_id, sealed, updated_at_ms)| SealedSessionKey {
        key_id,
        sealed,
        updated_at_ms,
    }))
}

// ---- sessions ----

pub(super) async fn insert_session(
    pool: &Pool,
    tenant: &str,
    new: &NewSession,
) -> Result<SessionRow, Error> {
    let mut tx = begin_write(pool).await?;
    if !user_exists(&mut tx, tenant, new.user_id.get()).await? {
        return Err(Error::NotFound {
            what: "user",
            id: new.user_id.get(),
        });
    }
    let sql = format!(
        "INSERT INTO sessions (tenant, token_hash, user_id, provider, app, identity_id, \
         created_at_ms, expires_at_ms, last_seen_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7) RETURNING {SESSION_COLS_BARE}"
    );
    let row: SessionRowTuple = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(&new.token_hash)
        .bind(new.user_id.get())
        .bind(&new.provider)
        .bind(&new.app)
        .bind(new.identity_id.map(IdentityId::get))
        .bind(new.created_at_ms)
        .bind(new.expires_at_ms)
        .fetch_one(&mut *tx)
        .await
        .map_err(query_error)?;
    tx.commit().await.map_err(query_error)?;
    Ok(session_from_row(row))
}

pub(super) async fn session_by_hash(
    pool: &Pool,
    tenant: &str,
    token_hash: &str,
) -> Result<Option<SessionRow>, Error> {
    let sql =
        format!("SELECT {SESSION_COLS} FROM sessions s WHERE s.tenant = $1 AND s.token_hash = $2");
    let row: Option<SessionRowTuple> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(token_hash)
        .fetch_optional(pool)
        .await
        .map_err(query_error)?;
    Ok(row.map(session_from_row))
}

pub(super) async fn sessions_of_user(
    pool: &Pool,
    tenant: &str,
    user_id: i64,
) -> Result<Vec<SessionRow>, Error> {
    let sql = format!(
        "SELECT {SESSION_COLS} FROM sessions s WHERE s.tenant = $1 AND s.user_id = $2 ORDER BY s.id"
    );
    let rows: Vec<SessionRowTuple> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(user_id)
        .fetch_all(pool)
        .await
        .map_err(query_error)?;
    Ok(rows.into_iter().map(session_from_row).collect())
}

pub(super) async fn touch_session(
    pool: &Pool,
    tenant: &str,
    id: i64,
    now: i64,
) -> Result<bool, Error> {
    // Never moves last_seen backwards (two replicas touching at once).
    let done = sqlx::query(
        "UPDATE sessions SET last_seen_at_ms = $3 \
         WHERE tenant = $1 AND id = $2 AND last_seen_at_ms < $3 AND revoked_at_ms IS NULL",
    )
    .bind(tenant)
    .bind(id)
    .bind(now)
    .execute(pool)
    .await
    .map_err(query_error)?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn revoke_session(
    pool: &Pool,
    tenant: &str,
    token_hash: &str,
    now: i64,
) -> Result<bool, Error> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at_ms = $3 \
         WHERE tenant = $1 AND token_hash = $2 AND revoked_at_ms IS NULL",
    )
    .bind(tenant)
    .bind(token_hash)
    .bind(now)
    .execute(pool)
    .await
    .map_err(query_error)?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn revoke_user_sessions(
    pool: &Pool,
    tenant: &str,
    user_id: i64,
    now: i64,
) -> Result<u64, Error> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at_ms = $3 \
         WHERE tenant = $1 AND user_id = $2 AND revoked_at_ms IS NULL",
    )
    .bind(tenant)
    .bind(user_id)
    .bind(now)
    .execute(pool)
    .await
    .map_err(query_error)?;
    Ok(done.rows_affected())
}

// ---- profile values learned at login (mini-program phone number, user info) ----

pub(super) async fn set_user_profile(
    pool: &Pool,
    tenant: &str,
    user_id: i64,
    name: &str,
    mobile: Option<&str>,
    avatar: Option<&str>,
    now: i64,
) -> Result<bool, Error> {
    let done = sqlx::query(
        "UPDATE users SET name = $3, mobile = $4, avatar = $5, updated_at_ms = $6 \
         WHERE tenant = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(user_id)
    .bind(name)
    .bind(mobile)
    .bind(avatar)
    .bind(now)
    .execute(pool)
    .await
    .map_err(query_error)?;
    Ok(done.rows_affected() > 0)
}
