// The tag mirror's SQL, written once and compiled twice: `tags.rs` includes this file in one module per
// backend, each defining `DB` and `BACKEND` first (the same pattern as `ops.rs`). Every statement is valid
// in both SQLite and PostgreSQL.

use std::collections::{HashMap, HashSet};

include!("../sql_common.rs");

/// Above this many userids in one batch, every member link of the corp is read once up front instead of
/// one lookup per userid.
const PRELOAD_LINKS_ABOVE: usize = 256;

/// Rows per multi-row INSERT.
const INSERT_CHUNK: usize = 500;

// ---- load ----

/// `tagid` and then `ROLE_COLS`.
type TagRoleRow = (
    i64,
    i64,
    String,
    String,
    Option<i64>,
    i64,
    String,
    Option<i64>,
    i64,
    i64,
);

pub(super) async fn load_tags(
    pool: &Pool,
    tenant: &str,
    corpid: &str,
    tagid: Option<i64>,
) -> Result<Vec<LocalTag>, Error> {
    let mut conn = pool.acquire().await.map_err(query_error)?;
    let only = if tagid.is_some() {
        " AND t.tagid = $3"
    } else {
        ""
    };

    let sql = format!(
        "SELECT t.tagid, {ROLE_COLS} FROM wecom_tag_links t \
         JOIN roles r ON r.id = t.role_id AND r.tenant = t.tenant \
         WHERE t.tenant = $1 AND t.corpid = $2{only} ORDER BY t.tagid"
    );
    let mut q = sqlx::query_as::<DB, TagRoleRow>(&sql)
        .bind(tenant)
        .bind(corpid);
    if let Some(id) = tagid {
        q = q.bind(id);
    }
    let rows = q.fetch_all(&mut *conn).await.map_err(query_error)?;
    let mut tags = Vec::with_capacity(rows.len());
    let mut index: HashMap<i64, usize> = HashMap::with_capacity(rows.len());
    for r in rows {
        let role = role_from_row((r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8, r.9))?;
        index.insert(r.0, tags.len());
        tags.push(LocalTag {
            tagid: r.0,
            role,
            userids: Vec::new(),
            department_ids: Vec::new(),
        });
    }
    if tags.is_empty() {
        return Ok(tags);
    }

    // CROSS JOIN pins SQLite's join order: the few tag links first, then memberships by role, then the
    // member link by user.
    let sql = format!(
        "SELECT t.tagid, l.userid FROM wecom_tag_links t CROSS JOIN memberships m \
         CROSS JOIN wecom_member_links l \
         WHERE t.tenant = $1 AND t.corpid = $2{only} \
         AND m.role_id = t.role_id AND m.tenant = t.tenant AND m.ended_at_ms IS NULL \
         AND l.tenant = t.tenant AND l.corpid = t.corpid AND l.user_id = m.user_id \
         ORDER BY t.tagid, l.userid_norm"
    );
    let mut q = sqlx::query_as::<DB, (i64, String)>(&sql)
        .bind(tenant)
        .bind(corpid);
    if let Some(id) = tagid {
        q = q.bind(id);
    }
    for (tagid, userid) in q.fetch_all(&mut *conn).await.map_err(query_error)? {
        if let Some(i) = index.get(&tagid) {
            tags[*i].userids.push(userid);
        }
    }

    let sql = format!(
        "SELECT t.tagid, d.department_id FROM wecom_tag_links t CROSS JOIN role_includes i \
         CROSS JOIN wecom_department_links d \
         WHERE t.tenant = $1 AND t.corpid = $2{only} \
         AND i.role_id = t.role_id AND i.tenant = t.tenant AND i.ended_at_ms IS NULL \
         AND d.tenant = t.tenant AND d.corpid = t.corpid AND d.role_id = i.included_role_id \
         ORDER BY t.tagid, d.department_id"
    );
    let mut q = sqlx::query_as::<DB, (i64, i64)>(&sql)
        .bind(tenant)
        .bind(corpid);
    if let Some(id) = tagid {
        q = q.bind(id);
    }
    for (tagid, department_id) in q.fetch_all(&mut *conn).await.map_err(query_error)? {
        if let Some(i) = index.get(&tagid) {
            tags[*i].department_ids.push(department_id);
        }
    }
    Ok(tags)
}

// ---- apply ----

/// `commit` false runs everything and rolls back: the report says what would be written.
pub(super) async fn apply_tags(
    pool: &Pool,
    tenant: &str,
    corpid: &str,
    changes: &TagChanges,
    now_ms: i64,
    commit: bool,
) -> Result<TagApplyReport, Error> {
    let mut tx: Tx = begin_write(pool).await?;
    // Any `?` below drops `tx` uncommitted, which rolls the whole batch back.
    let mut report = apply_tags_in(&mut tx, tenant, corpid, changes, now_ms).await?;
    if commit {
        tx.commit().await.map_err(query_error)?;
    } else {
        tx.rollback().await.map_err(query_error)?;
    }
    report.unknown_userids.sort();
    report.unknown_userids.dedup();
    report.unknown_departments.sort_unstable();
    report.unknown_departments.dedup();
    Ok(report)
}

async fn tag_role_id(
    tx: &mut Tx,
    tenant: &str,
    corpid: &str,
    tagid: i64,
) -> Result<Option<i64>, Error> {
    sqlx::query_scalar(
        "SELECT role_id FROM wecom_tag_links WHERE tenant = $1 AND corpid = $2 AND tagid = $3",
    )
    .bind(tenant)
    .bind(corpid)
    .bind(tagid)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error)
}

/// Userid -> user id through the corp's member links, read one by one or, for big batches, all at once.
/// Users marked left are not found: a member gone from the corp holds no memberships.
struct UserLinks {
    preloaded: bool,
    by_norm: HashMap<String, i64>,
}

impl UserLinks {
    async fn new(tx: &mut Tx, tenant: &str, corpid: &str, preload: bool) -> Result<Self, Error> {
        let mut by_norm = HashMap::new();
        if preload {
            let rows: Vec<(String, i64)> = sqlx::query_as(
                "SELECT l.userid_norm, l.user_id FROM wecom_member_links l \
                 JOIN users u ON u.id = l.user_id AND u.tenant = l.tenant \
                 WHERE l.tenant = $1 AND l.corpid = $2 AND u.status <> 'left'",
            )
            .bind(tenant)
            .bind(corpid)
            .fetch_all(&mut **tx)
            .await
            .map_err(query_error)?;
            by_norm.extend(rows);
        }
        Ok(UserLinks {
            preloaded: preload,
            by_norm,
        })
    }

    async fn get(
        &mut self,
        tx: &mut Tx,
        tenant: &str,
        corpid: &str,
        userid: &str,
    ) -> Result<Option<i64>, Error> {
        let norm = normalize_userid(userid);
        if let Some(id) = self.by_norm.get(&norm) {
            return Ok(Some(*id));
        }
        if self.preloaded {
            return Ok(None);
        }
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT l.user_id FROM wecom_member_links l \
             JOIN users u ON u.id = l.user_id AND u.tenant = l.tenant \
             WHERE l.tenant = $1 AND l.corpid = $2 AND l.userid_norm = $3 AND u.status <> 'left'",
        )
        .bind(tenant)
        .bind(corpid)
        .bind(&norm)
        .fetch_optional(&mut **tx)
        .await
        .map_err(query_error)?;
        if let Some(id) = found {
            self.by_norm.insert(norm, id);
        }
        Ok(found)
    }
}

async fn apply_tags_in(
    tx: &mut Tx,
    tenant: &str,
    corpid: &str,
    changes: &TagChanges,
    now: i64,
) -> Result<TagApplyReport, Error> {
    let mut report = TagApplyReport::default();
    let userids: usize = changes
        .tags
        .iter()
        .map(|t| t.userids.as_ref().map_or(0, Vec::len))
        .sum();
    let mut links = UserLinks::new(tx, tenant, corpid, userids > PRELOAD_LINKS_ABOVE).await?;

    for tag in &changes.tags {
        let role_id = match tag_role_id(tx, tenant, corpid, tag.tagid).await? {
            Some(role_id) => {
                // Rename and un-archive only when something differs, so an unchanged tag writes nothing.
                report.roles_updated += sqlx::query(
                    "UPDATE roles SET name = COALESCE($3, name), archived_at_ms = NULL, updated_at_ms = $4 \
                     WHERE tenant = $1 AND id = $2 \
                     AND (name <> COALESCE($3, name) OR archived_at_ms IS NOT NULL)",
                )
                .bind(tenant)
                .bind(role_id)
                .bind(tag.name.as_deref())
                .bind(now)
                .execute(&mut **tx)
                .await
                .map_err(query_error)?
                .rows_affected();
                role_id
            }
            None => {
                let name = tag
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("tag {}", tag.tagid));
                let role_id: i64 = sqlx::query_scalar(
                    "INSERT INTO roles (tenant, name, parent_id, sort_order, origin, archived_at_ms, \
                     created_at_ms, updated_at_ms) VALUES ($1, $2, NULL, 0, 'wecom_tag', NULL, $3, $3) \
                     RETURNING id",
                )
                .bind(tenant)
                .bind(&name)
                .bind(now)
                .fetch_one(&mut **tx)
                .await
                .map_err(query_error)?;
                sqlx::query(
                    "INSERT INTO wecom_tag_links (tenant, corpid, tagid, role_id) VALUES ($1, $2, $3, $4)",
                )
                .bind(tenant)
                .bind(corpid)
                .bind(tag.tagid)
                .bind(role_id)
                .execute(&mut **tx)
                .await
                .map_err(query_error)?;
                report.roles_created += 1;
                role_id
            }
        };

        if let Some(userids) = &tag.userids {
            let mut want: HashSet<i64> = HashSet::with_capacity(userids.len());
            for userid in userids {
                match links.get(tx, tenant, corpid, userid).await? {
                    Some(user_id) => {
                        want.insert(user_id);
                    }
                    None => report.unknown_userids.push(userid.clone()),
                }
            }
            let open: Vec<(i64, i64)> = sqlx::query_as(
                "SELECT id, user_id FROM memberships \
                 WHERE tenant = $1 AND role_id = $2 AND ended_at_ms IS NULL",
            )
            .bind(tenant)
            .bind(role_id)
            .fetch_all(&mut **tx)
            .await
            .map_err(query_error)?;
            for (id, user_id) in open {
                if want.remove(&user_id) {
                    continue;
                }
                sqlx::query(
                    "UPDATE memberships SET ended_at_ms = $3 WHERE tenant = $1 AND id = $2",
                )
                .bind(tenant)
                .bind(id)
                .bind(now)
                .execute(&mut **tx)
                .await
                .map_err(query_error)?;
                report.memberships_closed += 1;
            }
            let mut new: Vec<i64> = want.into_iter().collect();
            new.sort_unstable();
            for chunk in new.chunks(INSERT_CHUNK) {
                let mut q = sqlx::QueryBuilder::<DB>::new(
                    "INSERT INTO memberships (tenant, user_id, role_id, is_leader, sort_order, is_main, \
                     started_at_ms) ",
                );
                q.push_values(chunk, |mut b, user_id| {
                    b.push_bind(tenant)
                        .push_bind(*user_id)
                        .push_bind(role_id)
                        .push_bind(false)
                        .push_bind(0_i64)
                        .push_bind(false)
                        .push_bind(now);
                });
                q.build().execute(&mut **tx).await.map_err(query_error)?;
            }
            report.memberships_opened += new.len() as u64;
        }

        if let Some(department_ids) = &tag.department_ids {
            let mut want: HashSet<i64> = HashSet::with_capacity(department_ids.len());
            for department_id in department_ids {
                let found: Option<i64> = sqlx::query_scalar(
                    "SELECT role_id FROM wecom_department_links \
                     WHERE tenant = $1 AND corpid = $2 AND department_id = $3",
                )
                .bind(tenant)
                .bind(corpid)
                .bind(department_id)
                .fetch_optional(&mut **tx)
                .await
                .map_err(query_error)?;
                match found {
                    Some(included) => {
                        want.insert(included);
                    }
                    None => report.unknown_departments.push(*department_id),
                }
            }
            let open: Vec<(i64, i64)> = sqlx::query_as(
                "SELECT id, included_role_id FROM role_includes \
                 WHERE tenant = $1 AND role_id = $2 AND ended_at_ms IS NULL",
            )
            .bind(tenant)
            .bind(role_id)
            .fetch_all(&mut **tx)
            .await
            .map_err(query_error)?;
            for (id, included) in open {
                if want.remove(&included) {
                    continue;
                }
                sqlx::query(
                    "UPDATE role_includes SET ended_at_ms = $3 WHERE tenant = $1 AND id = $2",
                )
                .bind(tenant)
                .bind(id)
                .bind(now)
                .execute(&mut **tx)
                .await
                .map_err(query_error)?;
                report.inclusions_closed += 1;
            }
            let mut new: Vec<i64> = want.into_iter().collect();
            new.sort_unstable();
            for included in &new {
                sqlx::query(
                    "INSERT INTO role_includes (tenant, role_id, included_role_id, started_at_ms) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(tenant)
                .bind(role_id)
                .bind(included)
                .bind(now)
                .execute(&mut **tx)
                .await
                .map_err(query_error)?;
            }
            report.inclusions_opened += new.len() as u64;
        }
    }

    for tagid in &changes.archived_tagids {
        let Some(role_id) = tag_role_id(tx, tenant, corpid, *tagid).await? else {
            continue;
        };
        report.roles_archived += sqlx::query(
            "UPDATE roles SET archived_at_ms = $3, updated_at_ms = $3 \
             WHERE tenant = $1 AND id = $2 AND archived_at_ms IS NULL",
        )
        .bind(tenant)
        .bind(role_id)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(query_error)?
        .rows_affected();
        report.memberships_closed += sqlx::query(
            "UPDATE memberships SET ended_at_ms = $3 \
             WHERE tenant = $1 AND role_id = $2 AND ended_at_ms IS NULL",
        )
        .bind(tenant)
        .bind(role_id)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(query_error)?
        .rows_affected();
        report.inclusions_closed += sqlx::query(
            "UPDATE role_includes SET ended_at_ms = $3 \
             WHERE tenant = $1 AND role_id = $2 AND ended_at_ms IS NULL",
        )
        .bind(tenant)
        .bind(role_id)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(query_error)?
        .rows_affected();
    }
    Ok(report)
}

// ---- lookups ----

pub(super) async fn included_roles(
    pool: &Pool,
    tenant: &str,
    role_id: i64,
) -> Result<Vec<Role>, Error> {
    let sql = format!(
        "SELECT {ROLE_COLS} FROM role_includes i \
         JOIN roles r ON r.id = i.included_role_id AND r.tenant = i.tenant \
         WHERE i.tenant = $1 AND i.role_id = $2 AND i.ended_at_ms IS NULL ORDER BY r.id"
    );
    let rows: Vec<RoleRow> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(role_id)
        .fetch_all(pool)
        .await
        .map_err(query_error)?;
    rows.into_iter().map(role_from_row).collect()
}

pub(super) async fn role_members_expanded(
    pool: &Pool,
    tenant: &str,
    role_id: i64,
) -> Result<Vec<(Membership, User)>, Error> {
    use sqlx::Row;
    // Seeds: the role and the non-archived roles it includes; then every non-archived role below any of
    // them. UNION (not UNION ALL) stops on a cycle should the tree ever be corrupted.
    let sql = format!(
        "WITH RECURSIVE tree(id) AS ( \
            SELECT id FROM roles WHERE tenant = $1 AND id = $2 \
            UNION SELECT i.included_role_id FROM role_includes i \
                JOIN roles r ON r.id = i.included_role_id AND r.tenant = i.tenant \
                WHERE i.tenant = $1 AND i.role_id = $2 AND i.ended_at_ms IS NULL \
                AND r.archived_at_ms IS NULL \
            UNION SELECT c.id FROM roles c JOIN tree t ON c.parent_id = t.id \
                WHERE c.tenant = $1 AND c.archived_at_ms IS NULL) \
         SELECT {MEMBERSHIP_COLS}, {USER_COLS} FROM memberships m \
         JOIN users u ON u.id = m.user_id AND u.tenant = m.tenant \
         WHERE m.tenant = $1 AND m.role_id IN (SELECT id FROM tree) AND m.ended_at_ms IS NULL \
         ORDER BY m.role_id, m.sort_order, u.id"
    );
    let rows = sqlx::query(&sql)
        .bind(tenant)
        .bind(role_id)
        .fetch_all(pool)
        .await
        .map_err(query_error)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let m: MembershipRow = (
            row.try_get(0).map_err(query_error)?,
            row.try_get(1).map_err(query_error)?,
            row.try_get(2).map_err(query_error)?,
            row.try_get(3).map_err(query_error)?,
            row.try_get(4).map_err(query_error)?,
            row.try_get(5).map_err(query_error)?,
            row.try_get(6).map_err(query_error)?,
            row.try_get(7).map_err(query_error)?,
        );
        let u: UserRow = (
            row.try_get(8).map_err(query_error)?,
            row.try_get(9).map_err(query_error)?,
            row.try_get(10).map_err(query_error)?,
            row.try_get(11).map_err(query_error)?,
            row.try_get(12).map_err(query_error)?,
            row.try_get(13).map_err(query_error)?,
            row.try_get(14).map_err(query_error)?,
            row.try_get(15).map_err(query_error)?,
            row.try_get(16).map_err(query_error)?,
            row.try_get(17).map_err(query_error)?,
            row.try_get(18).map_err(query_error)?,
        );
        out.push((membership_from_row(m), user_from_row(u)?));
    }
    Ok(out)
}
