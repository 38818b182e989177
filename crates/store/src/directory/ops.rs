// The directory's SQL, written once and compiled twice: `mod.rs` includes this file in one module per
// backend, each defining `DB` (the sqlx database type) and `BACKEND` first. Every statement here is
// valid in both SQLite and PostgreSQL (`$n` placeholders, RETURNING, partial indexes, WITH RECURSIVE),
// so only the types differ, which generic sqlx code cannot express without a wall of bounds.

use std::collections::{HashMap, HashSet};

include!("../sql_common.rs");

/// Above this many userids in one batch, all links of the corp are read in one query up front instead
/// of one lookup per userid (a full sync sends tens of thousands; an incremental event one).
const PRELOAD_LINKS_ABOVE: usize = 256;

// ---- load ----

pub(super) async fn load(pool: &Pool, tenant: &str, corpid: &str) -> Result<LocalDirectory, Error> {
    let mut conn = pool.acquire().await.map_err(query_error)?;
    let sql = format!(
        "SELECT d.department_id, {ROLE_COLS} FROM wecom_department_links d \
         JOIN roles r ON r.id = d.role_id AND r.tenant = d.tenant \
         WHERE d.tenant = $1 AND d.corpid = $2 ORDER BY d.department_id"
    );
    #[allow(clippy::type_complexity)]
    let rows: Vec<(
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
    )> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(corpid)
        .fetch_all(&mut *conn)
        .await
        .map_err(query_error)?;
    let mut departments = Vec::with_capacity(rows.len());
    for r in rows {
        let role = role_from_row((r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8, r.9))?;
        departments.push(LocalDepartment {
            department_id: r.0,
            role,
        });
    }

    let sql = format!(
        "SELECT l.userid, l.open_userid, {USER_COLS} FROM wecom_member_links l \
         JOIN users u ON u.id = l.user_id AND u.tenant = l.tenant \
         WHERE l.tenant = $1 AND l.corpid = $2 ORDER BY l.userid_norm"
    );
    #[allow(clippy::type_complexity)]
    let rows: Vec<(
        String,
        Option<String>,
        i64,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
        i64,
        i64,
    )> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(corpid)
        .fetch_all(&mut *conn)
        .await
        .map_err(query_error)?;
    let mut members = Vec::with_capacity(rows.len());
    for r in rows {
        let user = user_from_row((r.2, r.3, r.4, r.5, r.6, r.7, r.8, r.9, r.10, r.11, r.12))?;
        members.push(LocalMember {
            userid: r.0,
            open_userid: r.1,
            user,
        });
    }

    // Open memberships of this corp's members, kept if their role is one of this corp's departments.
    // The department filter is done here rather than by a join: SQLite, with no statistics, would
    // otherwise pair every department with every member (quadratic at 100k members). CROSS JOIN pins
    // SQLite's join order (links first, then memberships by user); PostgreSQL plans it freely.
    let corp_roles: HashSet<i64> = departments.iter().map(|d| d.role.id.get()).collect();
    let sql = format!(
        "SELECT {MEMBERSHIP_COLS} FROM wecom_member_links l CROSS JOIN memberships m \
         WHERE l.tenant = $1 AND l.corpid = $2 AND m.user_id = l.user_id AND m.tenant = l.tenant \
         AND m.ended_at_ms IS NULL ORDER BY m.user_id, m.role_id"
    );
    let rows: Vec<MembershipRow> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(corpid)
        .fetch_all(&mut *conn)
        .await
        .map_err(query_error)?;
    let memberships = rows
        .into_iter()
        .filter(|r| corp_roles.contains(&r.2))
        .map(membership_from_row)
        .collect();
    Ok(LocalDirectory {
        departments,
        members,
        memberships,
    })
}

// ---- apply ----

/// The userid -> user links of the batch's corp: read lazily one by one, or all at once for big batches.
struct Links {
    preloaded: bool,
    by_norm: HashMap<String, i64>,
}

impl Links {
    /// With more than [`PRELOAD_LINKS_ABOVE`] userids in the batch, read the links of exactly those
    /// userids up front (IN lists of [`PENDING_CHUNK`]), so a miss afterwards means "no link". Reading
    /// only the batch's keeps a chunked first sync linear: reading every link of the corp per chunk made
    /// it quadratic in the corp's size.
    async fn load(tx: &mut Tx, tenant: &str, corpid: &str, wanted: &[String]) -> Result<Links, Error> {
        let preload = wanted.len() > PRELOAD_LINKS_ABOVE;
        let mut by_norm = HashMap::new();
        if preload {
            for chunk in wanted.chunks(PENDING_CHUNK) {
                let mut q = sqlx::QueryBuilder::<DB>::new(
                    "SELECT userid_norm, user_id FROM wecom_member_links WHERE tenant = ",
                );
                q.push_bind(tenant)
                    .push(" AND corpid = ")
                    .push_bind(corpid)
                    .push(" AND userid_norm IN (");
                let mut list = q.separated(", ");
                for norm in chunk {
                    list.push_bind(norm);
                }
                q.push(")");
                let rows: Vec<(String, i64)> = q
                    .build_query_as()
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(query_error)?;
                by_norm.extend(rows);
            }
        }
        Ok(Links {
            preloaded: preload,
            by_norm,
        })
    }

    async fn get(
        &mut self,
        tx: &mut Tx,
        tenant: &str,
        corpid: &str,
        norm: &str,
    ) -> Result<Option<i64>, Error> {
        if let Some(id) = self.by_norm.get(norm) {
            return Ok(Some(*id));
        }
        if self.preloaded {
            return Ok(None);
        }
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT user_id FROM wecom_member_links WHERE tenant = $1 AND corpid = $2 AND userid_norm = $3",
        )
        .bind(tenant)
        .bind(corpid)
        .bind(norm)
        .fetch_optional(&mut **tx)
        .await
        .map_err(query_error)?;
        if let Some(id) = found {
            self.by_norm.insert(norm.to_owned(), id);
        }
        Ok(found)
    }
}

/// Rows of new links and new memberships not yet written, sent as multi-row INSERTs: a 100k-member
/// first sync then costs one statement per user plus one per few hundred other rows, instead of one
/// per row (each statement has a fixed cost in the driver that dominates at this size).
#[derive(Default)]
struct Pending {
    /// (userid as given, normalised userid, open_userid, user id)
    links: Vec<(String, String, Option<String>, i64)>,
    /// (user id, role id, is_leader, sort_order, is_main)
    memberships: Vec<(i64, i64, bool, i64, bool)>,
    /// Users with rows above, so reading one of them back first flushes.
    users: HashSet<i64>,
}

/// Rows per multi-row INSERT: 7 parameters each stays far below both databases' parameter limits.
const PENDING_CHUNK: usize = 500;

impl Pending {
    fn is_full(&self) -> bool {
        self.links.len() >= PENDING_CHUNK || self.memberships.len() >= PENDING_CHUNK
    }

    async fn flush(
        &mut self,
        tx: &mut Tx,
        tenant: &str,
        corpid: &str,
        now: i64,
    ) -> Result<(), Error> {
        for chunk in self.links.chunks(PENDING_CHUNK) {
            let mut q = sqlx::QueryBuilder::<DB>::new(
                "INSERT INTO wecom_member_links (tenant, corpid, userid, userid_norm, open_userid, user_id) ",
            );
            q.push_values(chunk, |mut b, (userid, norm, open_userid, user_id)| {
                b.push_bind(tenant)
                    .push_bind(corpid)
                    .push_bind(userid)
                    .push_bind(norm)
                    .push_bind(open_userid)
                    .push_bind(user_id);
            });
            q.build().execute(&mut **tx).await.map_err(query_error)?;
        }
        for chunk in self.memberships.chunks(PENDING_CHUNK) {
            let mut q = sqlx::QueryBuilder::<DB>::new(
                "INSERT INTO memberships (tenant, user_id, role_id, is_leader, sort_order, is_main, \
                 started_at_ms) ",
            );
            q.push_values(
                chunk,
                |mut b, (user_id, role_id, is_leader, sort_order, is_main)| {
                    b.push_bind(tenant)
                        .push_bind(user_id)
                        .push_bind(role_id)
                        .push_bind(is_leader)
                        .push_bind(sort_order)
                        .push_bind(is_main)
                        .push_bind(now);
                },
            );
            q.build().execute(&mut **tx).await.map_err(query_error)?;
        }
        self.links.clear();
        self.memberships.clear();
        self.users.clear();
        Ok(())
    }
}

fn unknown_department(corpid: &str, department_id: i64) -> Error {
    Error::UnknownDepartment {
        corpid: corpid.to_owned(),
        department_id,
    }
}

fn unknown_userid(corpid: &str, userid: &str) -> Error {
    Error::UnknownUserid {
        corpid: corpid.to_owned(),
        userid: userid.to_owned(),
    }
}

pub(super) async fn apply(
    pool: &Pool,
    tenant: &str,
    corpid: &str,
    changes: &DirectoryChanges,
    now_ms: i64,
) -> Result<ApplyReport, Error> {
    let mut tx: Tx = begin_write(pool).await?;
    // Any `?` below drops `tx` uncommitted, which rolls the whole batch back.
    let report = apply_in(&mut tx, tenant, corpid, changes, now_ms).await?;
    tx.commit().await.map_err(query_error)?;
    Ok(report)
}

async fn apply_in(
    tx: &mut Tx,
    tenant: &str,
    corpid: &str,
    changes: &DirectoryChanges,
    now: i64,
) -> Result<ApplyReport, Error> {
    let mut report = ApplyReport::default();

    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT department_id, role_id FROM wecom_department_links WHERE tenant = $1 AND corpid = $2",
    )
    .bind(tenant)
    .bind(corpid)
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error)?;
    let mut roles: HashMap<i64, i64> = rows.into_iter().collect();

    let wanted: Vec<String> = changes
        .renames
        .iter()
        .flat_map(|r| [r.from.as_str(), r.to.as_str()])
        .chain(changes.members.iter().map(|m| m.userid.as_str()))
        .chain(changes.left_userids.iter().map(String::as_str))
        .map(normalize_userid)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut links = Links::load(tx, tenant, corpid, &wanted).await?;

    for rename in &changes.renames {
        let from = normalize_userid(&rename.from);
        let to = normalize_userid(&rename.to);
        let Some(user_id) = links.get(tx, tenant, corpid, &from).await? else {
            return Err(unknown_userid(corpid, &rename.from));
        };
        sqlx::query(
            "UPDATE wecom_member_links SET userid = $4, userid_norm = $5 \
             WHERE tenant = $1 AND corpid = $2 AND userid_norm = $3",
        )
        .bind(tenant)
        .bind(corpid)
        .bind(&from)
        .bind(&rename.to)
        .bind(&to)
        .execute(&mut **tx)
        .await
        .map_err(query_error)?;
        links.by_norm.remove(&from);
        links.by_norm.insert(to, user_id);
        report.userids_renamed += 1;
    }

    // Departments in two passes so a batch may list children before parents: first every role exists,
    // then parents are set. Updates here and below only touch rows whose values differ, so re-sending
    // an unchanged item writes nothing and the report counts real changes.
    for dep in &changes.departments {
        if let Some(role_id) = roles.get(&dep.department_id) {
            let n = sqlx::query(
                "UPDATE roles SET name = $3, sort_order = $4, archived_at_ms = NULL, updated_at_ms = $5 \
                 WHERE tenant = $1 AND id = $2 \
                 AND (name <> $3 OR sort_order <> $4 OR archived_at_ms IS NOT NULL)",
            )
            .bind(tenant)
            .bind(role_id)
            .bind(&dep.name)
            .bind(dep.sort_order)
            .bind(now)
            .execute(&mut **tx)
            .await
            .map_err(query_error)?
            .rows_affected();
            report.roles_updated += n;
        } else {
            let role_id: i64 = sqlx::query_scalar(
                "INSERT INTO roles (tenant, name, parent_id, sort_order, origin, archived_at_ms, \
                 created_at_ms, updated_at_ms) VALUES ($1, $2, NULL, $3, 'wecom', NULL, $4, $4) RETURNING id",
            )
            .bind(tenant)
            .bind(&dep.name)
            .bind(dep.sort_order)
            .bind(now)
            .fetch_one(&mut **tx)
            .await
            .map_err(query_error)?;
            sqlx::query(
                "INSERT INTO wecom_department_links (tenant, corpid, department_id, role_id) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(tenant)
            .bind(corpid)
            .bind(dep.department_id)
            .bind(role_id)
            .execute(&mut **tx)
            .await
            .map_err(query_error)?;
            roles.insert(dep.department_id, role_id);
            report.roles_created += 1;
        }
    }
    for dep in &changes.departments {
        let role_id = roles
            .get(&dep.department_id)
            .copied()
            .ok_or_else(|| unknown_department(corpid, dep.department_id))?;
        let parent = match dep.parent_department_id {
            None => None,
            Some(p) => Some(
                roles
                    .get(&p)
                    .copied()
                    .ok_or_else(|| unknown_department(corpid, p))?,
            ),
        };
        sqlx::query(
            "UPDATE roles SET parent_id = $3 WHERE tenant = $1 AND id = $2 \
             AND parent_id IS DISTINCT FROM $3",
        )
        .bind(tenant)
        .bind(role_id)
        .bind(parent)
        .execute(&mut **tx)
        .await
        .map_err(query_error)?;
    }

    // Every role of this corp's departments, to tell a membership of this corp from one in a local role
    // or another corp's department.
    let corp_roles: HashSet<i64> = roles.values().copied().collect();
    let mut pending = Pending::default();
    for member in &changes.members {
        if pending.is_full() {
            pending.flush(tx, tenant, corpid, now).await?;
        }
        let norm = normalize_userid(&member.userid);
        let f = &member.fields;
        let existing = links.get(tx, tenant, corpid, &norm).await?;
        let user_id = if let Some(user_id) = existing {
            // The same member twice in one batch: write its pending rows before reading them back.
            if pending.users.contains(&user_id) {
                pending.flush(tx, tenant, corpid, now).await?;
            }
            let n = sqlx::query(
                "UPDATE users SET name = $3, mobile = $4, email = $5, avatar = $6, position = $7, \
                 gender = $8, status = $9, updated_at_ms = $10 WHERE tenant = $1 AND id = $2 \
                 AND (name IS DISTINCT FROM $3 OR mobile IS DISTINCT FROM $4 OR email IS DISTINCT FROM $5 \
                 OR avatar IS DISTINCT FROM $6 OR position IS DISTINCT FROM $7 \
                 OR gender IS DISTINCT FROM $8 OR status IS DISTINCT FROM $9)",
            )
            .bind(tenant)
            .bind(user_id)
            .bind(&f.name)
            .bind(&f.mobile)
            .bind(&f.email)
            .bind(&f.avatar)
            .bind(&f.position)
            .bind(f.gender.map(Gender::as_str))
            .bind(f.status.as_str())
            .bind(now)
            .execute(&mut **tx)
            .await
            .map_err(query_error)?
            .rows_affected();
            report.users_updated += n;
            if let Some(open_userid) = &member.open_userid {
                sqlx::query(
                    "UPDATE wecom_member_links SET open_userid = $4 \
                     WHERE tenant = $1 AND corpid = $2 AND userid_norm = $3",
                )
                .bind(tenant)
                .bind(corpid)
                .bind(&norm)
                .bind(open_userid)
                .execute(&mut **tx)
                .await
                .map_err(query_error)?;
            }
            user_id
        } else {
            let user_id: i64 = sqlx::query_scalar(
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
            .map_err(query_error)?;
            pending.links.push((
                member.userid.clone(),
                norm.clone(),
                member.open_userid.clone(),
                user_id,
            ));
            pending.users.insert(user_id);
            links.by_norm.insert(norm, user_id);
            report.users_created += 1;
            user_id
        };
        if let Some(specs) = &member.memberships {
            replace_memberships(
                tx,
                tenant,
                corpid,
                user_id,
                existing.is_none(),
                specs,
                &roles,
                &corp_roles,
                now,
                &mut pending,
                &mut report,
            )
            .await?;
        }
    }
    // Left members and archived departments below close memberships: the new ones must exist first.
    pending.flush(tx, tenant, corpid, now).await?;

    for userid in &changes.left_userids {
        let norm = normalize_userid(userid);
        let Some(user_id) = links.get(tx, tenant, corpid, &norm).await? else {
            return Err(unknown_userid(corpid, userid));
        };
        report.users_left += sqlx::query(
            "UPDATE users SET status = 'left', updated_at_ms = $3 \
             WHERE tenant = $1 AND id = $2 AND status <> 'left'",
        )
        .bind(tenant)
        .bind(user_id)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(query_error)?
        .rows_affected();
        report.memberships_closed += sqlx::query(
            "UPDATE memberships SET ended_at_ms = $3 \
             WHERE tenant = $1 AND user_id = $2 AND ended_at_ms IS NULL",
        )
        .bind(tenant)
        .bind(user_id)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(query_error)?
        .rows_affected();
    }

    for department_id in &changes.archived_departments {
        let role_id = roles
            .get(department_id)
            .copied()
            .ok_or_else(|| unknown_department(corpid, *department_id))?;
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
    }

    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn replace_memberships(
    tx: &mut Tx,
    tenant: &str,
    corpid: &str,
    user_id: i64,
    new_user: bool,
    specs: &[MembershipSpec],
    roles: &HashMap<i64, i64>,
    corp_roles: &HashSet<i64>,
    now: i64,
    pending: &mut Pending,
    report: &mut ApplyReport,
) -> Result<(), Error> {
    // role_id -> (membership id, is_leader, sort_order, is_main) of the open memberships in this
    // corp's departments. A user created in this batch has none, so skip the query.
    let mut open: HashMap<i64, (i64, bool, i64, bool)> = HashMap::new();
    if !new_user {
        // All of the user's open memberships (a handful), filtered to this corp's roles here: a join
        // with the department links makes SQLite visit every department for every user.
        let rows: Vec<(i64, i64, bool, i64, bool)> = sqlx::query_as(
            "SELECT role_id, id, is_leader, sort_order, is_main FROM memberships \
             WHERE tenant = $1 AND user_id = $2 AND ended_at_ms IS NULL",
        )
        .bind(tenant)
        .bind(user_id)
        .fetch_all(&mut **tx)
        .await
        .map_err(query_error)?;
        open.extend(
            rows.into_iter()
                .filter(|r| corp_roles.contains(&r.0))
                .map(|r| (r.0, (r.1, r.2, r.3, r.4))),
        );
    }
    for spec in specs {
        let role_id = roles
            .get(&spec.department_id)
            .copied()
            .ok_or_else(|| unknown_department(corpid, spec.department_id))?;
        match open.remove(&role_id) {
            Some((_, is_leader, sort_order, is_main))
                if (is_leader, sort_order, is_main)
                    == (spec.is_leader, spec.sort_order, spec.is_main) => {}
            Some((id, ..)) => {
                sqlx::query(
                    "UPDATE memberships SET is_leader = $3, sort_order = $4, is_main = $5 \
                     WHERE tenant = $1 AND id = $2",
                )
                .bind(tenant)
                .bind(id)
                .bind(spec.is_leader)
                .bind(spec.sort_order)
                .bind(spec.is_main)
                .execute(&mut **tx)
                .await
                .map_err(query_error)?;
                report.memberships_updated += 1;
            }
            None => {
                pending.memberships.push((
                    user_id,
                    role_id,
                    spec.is_leader,
                    spec.sort_order,
                    spec.is_main,
                ));
                pending.users.insert(user_id);
                report.memberships_opened += 1;
            }
        }
    }
    // Whatever is still open was not listed: the member left that department.
    for (id, ..) in open.into_values() {
        sqlx::query("UPDATE memberships SET ended_at_ms = $3 WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .bind(now)
            .execute(&mut **tx)
            .await
            .map_err(query_error)?;
        report.memberships_closed += 1;
    }
    Ok(())
}

// ---- lookups ----

pub(super) async fn user(pool: &Pool, tenant: &str, id: i64) -> Result<Option<User>, Error> {
    let sql = format!("SELECT {USER_COLS} FROM users u WHERE u.tenant = $1 AND u.id = $2");
    let row: Option<UserRow> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(query_error)?;
    row.map(user_from_row).transpose()
}

pub(super) async fn user_by_userid(
    pool: &Pool,
    tenant: &str,
    corpid: &str,
    userid: &str,
) -> Result<Option<User>, Error> {
    let sql = format!(
        "SELECT {USER_COLS} FROM wecom_member_links l JOIN users u ON u.id = l.user_id AND u.tenant = l.tenant \
         WHERE l.tenant = $1 AND l.corpid = $2 AND l.userid_norm = $3"
    );
    let row: Option<UserRow> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(corpid)
        .bind(normalize_userid(userid))
        .fetch_optional(pool)
        .await
        .map_err(query_error)?;
    row.map(user_from_row).transpose()
}

/// `condition` is a fixed SQL expression over `$2` chosen in this crate, never user input.
pub(super) async fn users_where(
    pool: &Pool,
    tenant: &str,
    condition: &str,
    value: &str,
    limit: i64,
) -> Result<Vec<User>, Error> {
    let sql = format!(
        "SELECT {USER_COLS} FROM users u WHERE u.tenant = $1 AND {condition} ORDER BY u.name, u.id LIMIT $3"
    );
    let rows: Vec<UserRow> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(value)
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(query_error)?;
    rows.into_iter().map(user_from_row).collect()
}

pub(super) async fn member_links_of_user(
    pool: &Pool,
    tenant: &str,
    user_id: i64,
) -> Result<Vec<MemberLink>, Error> {
    let rows: Vec<(String, String, Option<String>, i64)> = sqlx::query_as(
        "SELECT corpid, userid, open_userid, user_id FROM wecom_member_links \
         WHERE tenant = $1 AND user_id = $2 ORDER BY corpid",
    )
    .bind(tenant)
    .bind(user_id)
    .fetch_all(pool)
    .await
    .map_err(query_error)?;
    Ok(rows
        .into_iter()
        .map(|r| MemberLink {
            corpid: r.0,
            userid: r.1,
            open_userid: r.2,
            user_id: UserId::from_raw(r.3),
        })
        .collect())
}

pub(super) async fn user_roles(
    pool: &Pool,
    tenant: &str,
    user_id: i64,
) -> Result<Vec<(Membership, Role)>, Error> {
    let sql = format!(
        "SELECT {MEMBERSHIP_COLS}, {ROLE_COLS} FROM memberships m \
         JOIN roles r ON r.id = m.role_id AND r.tenant = m.tenant \
         WHERE m.tenant = $1 AND m.user_id = $2 AND m.ended_at_ms IS NULL \
         ORDER BY m.is_main DESC, m.sort_order, r.id"
    );
    memberships_with(pool, &sql, tenant, user_id, |row| {
        use sqlx::Row;
        let role: RoleRow = (
            row.try_get(8)?,
            row.try_get(9)?,
            row.try_get(10)?,
            row.try_get(11)?,
            row.try_get(12)?,
            row.try_get(13)?,
            row.try_get(14)?,
            row.try_get(15)?,
            row.try_get(16)?,
        );
        Ok(role)
    })
    .await?
    .into_iter()
    .map(|(m, r)| Ok((m, role_from_row(r)?)))
    .collect()
}

pub(super) async fn role_members(
    pool: &Pool,
    tenant: &str,
    role_id: i64,
) -> Result<Vec<(Membership, User)>, Error> {
    // The role's own members only; with sub-roles and inclusions see `tags_ops::role_members_expanded`.
    let sql = format!(
        "SELECT {MEMBERSHIP_COLS}, {USER_COLS} FROM memberships m \
         JOIN users u ON u.id = m.user_id AND u.tenant = m.tenant \
         WHERE m.tenant = $1 AND m.role_id = $2 AND m.ended_at_ms IS NULL \
         ORDER BY m.sort_order, u.id"
    );
    memberships_with(pool, &sql, tenant, role_id, |row| {
        use sqlx::Row;
        let user: UserRow = (
            row.try_get(8)?,
            row.try_get(9)?,
            row.try_get(10)?,
            row.try_get(11)?,
            row.try_get(12)?,
            row.try_get(13)?,
            row.try_get(14)?,
            row.try_get(15)?,
            row.try_get(16)?,
            row.try_get(17)?,
            row.try_get(18)?,
        );
        Ok(user)
    })
    .await?
    .into_iter()
    .map(|(m, u)| Ok((m, user_from_row(u)?)))
    .collect()
}

/// Runs `sql` (membership columns first, then the rest) and decodes each row with `rest`.
async fn memberships_with<T>(
    pool: &Pool,
    sql: &str,
    tenant: &str,
    id: i64,
    rest: impl Fn(&<DB as sqlx::Database>::Row) -> Result<T, sqlx::Error>,
) -> Result<Vec<(Membership, T)>, Error> {
    use sqlx::Row;
    let rows = sqlx::query(sql)
        .bind(tenant)
        .bind(id)
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
        out.push((membership_from_row(m), rest(row).map_err(query_error)?));
    }
    Ok(out)
}

pub(super) async fn role(pool: &Pool, tenant: &str, id: i64) -> Result<Option<Role>, Error> {
    let sql = format!("SELECT {ROLE_COLS} FROM roles r WHERE r.tenant = $1 AND r.id = $2");
    let row: Option<RoleRow> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(query_error)?;
    row.map(role_from_row).transpose()
}

/// The role linked to upstream object `upstream_id` (a department or a tag) of `corpid`, archived or not.
pub(super) async fn role_by_link(
    pool: &Pool,
    tenant: &str,
    corpid: &str,
    kind: RoleLinkKind,
    upstream_id: i64,
) -> Result<Option<Role>, Error> {
    let (table, column) = kind.table_and_column();
    let sql = format!(
        "SELECT {ROLE_COLS} FROM {table} l JOIN roles r ON r.id = l.role_id AND r.tenant = l.tenant \
         WHERE l.tenant = $1 AND l.corpid = $2 AND l.{column} = $3"
    );
    let row: Option<RoleRow> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(corpid)
        .bind(upstream_id)
        .fetch_optional(pool)
        .await
        .map_err(query_error)?;
    row.map(role_from_row).transpose()
}

/// The upstream object a role mirrors through `kind`'s links: (corpid, upstream id).
pub(super) async fn link_of_role(
    pool: &Pool,
    tenant: &str,
    kind: RoleLinkKind,
    role_id: i64,
) -> Result<Option<(String, i64)>, Error> {
    let (table, column) = kind.table_and_column();
    sqlx::query_as(&format!(
        "SELECT corpid, {column} FROM {table} WHERE tenant = $1 AND role_id = $2"
    ))
    .bind(tenant)
    .bind(role_id)
    .fetch_optional(pool)
    .await
    .map_err(query_error)
}

// ---- sync runs, events, lease ----

pub(super) async fn create_run(
    pool: &Pool,
    tenant: &str,
    run: &NewSyncRun,
) -> Result<SyncRun, Error> {
    let counters = SyncCounters::default();
    let counters_json = counters_to_json(&counters)?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO sync_runs (tenant, corpid, kind, dry_run, status, counters, error, checkpoint, \
         last_event_seq, started_at_ms, updated_at_ms, finished_at_ms) \
         VALUES ($1, $2, $3, $4, 'running', $5, NULL, NULL, 0, $6, $6, NULL) RETURNING id",
    )
    .bind(tenant)
    .bind(&run.corpid)
    .bind(run.kind.as_str())
    .bind(run.dry_run)
    .bind(&counters_json)
    .bind(run.started_at_ms)
    .fetch_one(pool)
    .await
    .map_err(query_error)?;
    Ok(SyncRun {
        id: SyncRunId::from_raw(id),
        tenant: tenant.to_owned(),
        corpid: run.corpid.clone(),
        kind: run.kind,
        dry_run: run.dry_run,
        status: SyncStatus::Running,
        counters,
        error: None,
        checkpoint: None,
        started_at_ms: run.started_at_ms,
        updated_at_ms: run.started_at_ms,
        finished_at_ms: None,
    })
}

fn counters_to_json(counters: &SyncCounters) -> Result<String, Error> {
    serde_json::to_string(counters).map_err(|source| Error::StoredJson {
        column: "sync_runs.counters",
        source,
    })
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn update_run(
    pool: &Pool,
    tenant: &str,
    id: i64,
    status: SyncStatus,
    counters: &SyncCounters,
    checkpoint: Option<&serde_json::Value>,
    error: Option<&str>,
    finished_at_ms: Option<i64>,
    now_ms: i64,
) -> Result<(), Error> {
    let checkpoint = checkpoint.map(serde_json::Value::to_string);
    let n = sqlx::query(
        "UPDATE sync_runs SET status = $3, counters = $4, checkpoint = COALESCE($5, checkpoint), error = $6, \
         finished_at_ms = $7, updated_at_ms = $8 WHERE tenant = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(status.as_str())
    .bind(counters_to_json(counters)?)
    .bind(checkpoint)
    .bind(error)
    .bind(finished_at_ms)
    .bind(now_ms)
    .execute(pool)
    .await
    .map_err(query_error)?
    .rows_affected();
    if n == 0 {
        return Err(Error::NotFound {
            what: "sync run",
            id,
        });
    }
    Ok(())
}

pub(super) async fn get_run(pool: &Pool, tenant: &str, id: i64) -> Result<Option<SyncRun>, Error> {
    let sql = format!("SELECT {SYNC_RUN_COLS} FROM sync_runs WHERE tenant = $1 AND id = $2");
    let row: Option<SyncRunRow> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(query_error)?;
    row.map(sync_run_from_row).transpose()
}

pub(super) async fn recent_runs(
    pool: &Pool,
    tenant: &str,
    corpid: Option<&str>,
    limit: i64,
) -> Result<Vec<SyncRun>, Error> {
    let rows: Vec<SyncRunRow> = match corpid {
        Some(corpid) => {
            let sql = format!(
                "SELECT {SYNC_RUN_COLS} FROM sync_runs WHERE tenant = $1 AND corpid = $2 \
                 ORDER BY started_at_ms DESC, id DESC LIMIT $3"
            );
            sqlx::query_as(&sql)
                .bind(tenant)
                .bind(corpid)
                .bind(limit)
                .fetch_all(pool)
                .await
        }
        None => {
            let sql = format!(
                "SELECT {SYNC_RUN_COLS} FROM sync_runs WHERE tenant = $1 \
                 ORDER BY started_at_ms DESC, id DESC LIMIT $2"
            );
            sqlx::query_as(&sql)
                .bind(tenant)
                .bind(limit)
                .fetch_all(pool)
                .await
        }
    }
    .map_err(query_error)?;
    rows.into_iter().map(sync_run_from_row).collect()
}

pub(super) async fn append_event(
    pool: &Pool,
    tenant: &str,
    run_id: i64,
    at_ms: i64,
    payload: &serde_json::Value,
) -> Result<i64, Error> {
    let mut tx: Tx = begin_write(pool).await?;
    // Bumping the run's counter takes its row lock, so concurrent appends get distinct, gap-free seqs.
    let seq: Option<i64> = sqlx::query_scalar(
        "UPDATE sync_runs SET last_event_seq = last_event_seq + 1 \
         WHERE tenant = $1 AND id = $2 RETURNING last_event_seq",
    )
    .bind(tenant)
    .bind(run_id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(query_error)?;
    let Some(seq) = seq else {
        return Err(Error::NotFound {
            what: "sync run",
            id: run_id,
        });
    };
    sqlx::query(
        "INSERT INTO sync_events (tenant, run_id, seq, at_ms, payload) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(tenant)
    .bind(run_id)
    .bind(seq)
    .bind(at_ms)
    .bind(payload.to_string())
    .execute(&mut *tx)
    .await
    .map_err(query_error)?;
    tx.commit().await.map_err(query_error)?;
    Ok(seq)
}

pub(super) async fn events_after(
    pool: &Pool,
    tenant: &str,
    run_id: i64,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<SyncEvent>, Error> {
    let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(
        "SELECT run_id, seq, at_ms, payload FROM sync_events \
         WHERE tenant = $1 AND run_id = $2 AND seq > $3 ORDER BY seq LIMIT $4",
    )
    .bind(tenant)
    .bind(run_id)
    .bind(after_seq)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(query_error)?;
    rows.into_iter()
        .map(|r| {
            Ok(SyncEvent {
                run_id: SyncRunId::from_raw(r.0),
                seq: r.1,
                at_ms: r.2,
                payload: serde_json::from_str(&r.3).map_err(|source| Error::StoredJson {
                    column: "sync_events.payload",
                    source,
                })?,
            })
        })
        .collect()
}

// Same statement as the token lease: insert, or take over only an expired lease or our own.
pub(super) async fn try_lease(
    pool: &Pool,
    tenant: &str,
    corpid: &str,
    holder: &str,
    now_ms: i64,
    expires_at_ms: i64,
) -> Result<bool, Error> {
    let n = sqlx::query(
        "INSERT INTO sync_leases (tenant, corpid, holder, expires_at_ms) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant, corpid) DO UPDATE \
         SET holder = excluded.holder, expires_at_ms = excluded.expires_at_ms \
         WHERE sync_leases.expires_at_ms <= $5 OR sync_leases.holder = excluded.holder",
    )
    .bind(tenant)
    .bind(corpid)
    .bind(holder)
    .bind(expires_at_ms)
    .bind(now_ms)
    .execute(pool)
    .await
    .map_err(query_error)?
    .rows_affected();
    Ok(n > 0)
}

pub(super) async fn renew_lease(
    pool: &Pool,
    tenant: &str,
    corpid: &str,
    holder: &str,
    expires_at_ms: i64,
) -> Result<bool, Error> {
    let n = sqlx::query(
        "UPDATE sync_leases SET expires_at_ms = $4 WHERE tenant = $1 AND corpid = $2 AND holder = $3",
    )
    .bind(tenant)
    .bind(corpid)
    .bind(holder)
    .bind(expires_at_ms)
    .execute(pool)
    .await
    .map_err(query_error)?
    .rows_affected();
    Ok(n > 0)
}

pub(super) async fn release_lease(
    pool: &Pool,
    tenant: &str,
    corpid: &str,
    holder: &str,
) -> Result<bool, Error> {
    let n =
        sqlx::query("DELETE FROM sync_leases WHERE tenant = $1 AND corpid = $2 AND holder = $3")
            .bind(tenant)
            .bind(corpid)
            .bind(holder)
            .execute(pool)
            .await
            .map_err(query_error)?
            .rows_affected();
    Ok(n > 0)
}
