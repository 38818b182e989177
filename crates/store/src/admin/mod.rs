//! The admin UI's storage (migration 0010): operator sessions and one-time sign-in links, both keyed by
//! the SHA-256 of their token (the token itself never reaches the store), and the read-only summaries
//! the admin pages show (role tree with member counts, callback and outbox backlog, identity search,
//! merge history).
//!
//! The rules (who may sign in, lifetimes, CSRF) live in `domain::admin`; this module only stores and
//! reads. Every summary is scoped to one tenant.

use crate::db::{Db, on_pool};
use crate::error::Error;

/// How an operator signed in, as stored in `admin_sessions.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdminKind {
    /// The bootstrap admin token (`server.admin_token_hash`).
    Token,
    /// A one-time sign-in link (`wxbridge admin link`, `wxbridge demo`).
    Link,
    /// WeCom login as a member the tenant's `[admin]` settings name.
    Wecom,
}

impl AdminKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AdminKind::Token => "token",
            AdminKind::Link => "link",
            AdminKind::Wecom => "wecom",
        }
    }

    pub fn parse(s: &str) -> Option<AdminKind> {
        [AdminKind::Token, AdminKind::Link, AdminKind::Wecom]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A stored operator session (never its token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSessionRow {
    pub token_hash: String,
    pub kind: AdminKind,
    pub name: String,
    /// `*` or one tenant key.
    pub tenant_scope: String,
    /// The member's user for a WeCom sign-in.
    pub user_id: Option<i64>,
    pub csrf: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

/// What became of a one-time link presented for sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkConsume {
    /// This call used it; the link's tenant scope.
    Consumed { tenant_scope: String },
    /// It was used before (at this time).
    AlreadyUsed { at_ms: i64 },
    /// Its lifetime ended (at this time).
    Expired { at_ms: i64 },
    /// No such link (never issued, or pruned long after expiry).
    Unknown,
}

/// One role of the tree the admin UI draws, with its upstream link and open membership count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRoleRow {
    pub id: i64,
    pub name: String,
    pub parent_id: Option<i64>,
    pub origin: String,
    pub wecom_department_id: Option<i64>,
    pub wecom_tag_id: Option<i64>,
    /// Open memberships of this role itself (not of its sub-roles).
    pub member_count: i64,
}

/// Callback inbox figures for the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InboxSummary {
    /// Rows received since the given time.
    pub received_since: i64,
    /// Not done yet and already failed at least once (waiting for a retry).
    pub failed: i64,
    /// Given up on (`dead`).
    pub dead: i64,
    /// Waiting to be processed (`pending` or `processing`).
    pub pending: i64,
}

/// Outbox figures for the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxSummary {
    /// Queued or being sent.
    pub pending: i64,
    /// Ended `failed` or `partial`.
    pub failed: i64,
    /// Ended `sent` since the given time.
    pub sent_since: i64,
}

/// A WeChat identity with the name of the user it belongs to (identity search).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminIdentityRow {
    pub id: i64,
    pub appid: String,
    pub app_kind: String,
    pub openid: String,
    pub unionid: Option<String>,
    pub nickname: Option<String>,
    pub user_id: i64,
    pub user_name: String,
    pub pinned: bool,
    pub created_at_ms: i64,
}

/// One merge of two users, newest first in [`Db::admin_merges`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminMergeRow {
    pub id: i64,
    pub from_user_id: i64,
    pub from_user_name: String,
    pub into_user_id: i64,
    pub into_user_name: String,
    pub reason: String,
    pub unionid: Option<String>,
    pub actor: String,
    /// The identities moved, as the store wrote them (JSON).
    pub identities: String,
    pub at_ms: i64,
}

const SESSION_PRUNE: &str = "DELETE FROM admin_sessions WHERE expires_at_ms < $1";
const SESSION_INSERT: &str = "INSERT INTO admin_sessions (token_hash, kind, name, tenant_scope, user_id, \
    csrf, created_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const SESSION_GET: &str = "SELECT token_hash, kind, name, tenant_scope, user_id, csrf, created_at_ms, \
    expires_at_ms FROM admin_sessions WHERE token_hash = $1";
const SESSION_DELETE: &str = "DELETE FROM admin_sessions WHERE token_hash = $1";
const LINK_PRUNE: &str = "DELETE FROM admin_login_links WHERE expires_at_ms < $1";
const LINK_INSERT: &str = "INSERT INTO admin_login_links (token_hash, tenant_scope, created_at_ms, \
    expires_at_ms) VALUES ($1, $2, $3, $4)";
const LINK_CONSUME: &str = "UPDATE admin_login_links SET consumed_at_ms = $2 \
    WHERE token_hash = $1 AND consumed_at_ms IS NULL AND expires_at_ms > $2 RETURNING tenant_scope";
const LINK_GET: &str =
    "SELECT expires_at_ms, consumed_at_ms FROM admin_login_links WHERE token_hash = $1";
const ROLE_TREE: &str = "SELECT r.id, r.name, r.parent_id, r.origin, d.department_id, t.tagid, \
    COALESCE(c.n, 0) FROM roles r \
    LEFT JOIN wecom_department_links d ON d.role_id = r.id AND d.tenant = r.tenant \
    LEFT JOIN wecom_tag_links t ON t.role_id = r.id AND t.tenant = r.tenant \
    LEFT JOIN (SELECT role_id, COUNT(*) AS n FROM memberships \
               WHERE tenant = $1 AND ended_at_ms IS NULL GROUP BY role_id) c ON c.role_id = r.id \
    WHERE r.tenant = $1 AND r.archived_at_ms IS NULL ORDER BY r.sort_order, r.id";
const INBOX_SUMMARY: &str = "SELECT \
    COALESCE(SUM(CASE WHEN received_at_ms >= $2 THEN 1 ELSE 0 END), 0), \
    COALESCE(SUM(CASE WHEN status IN ('pending', 'processing') AND last_error IS NOT NULL \
                 THEN 1 ELSE 0 END), 0), \
    COALESCE(SUM(CASE WHEN status = 'dead' THEN 1 ELSE 0 END), 0), \
    COALESCE(SUM(CASE WHEN status IN ('pending', 'processing') THEN 1 ELSE 0 END), 0) \
    FROM callback_inbox WHERE tenant = $1";
const OUTBOX_SUMMARY: &str = "SELECT \
    COALESCE(SUM(CASE WHEN status IN ('queued', 'sending') THEN 1 ELSE 0 END), 0), \
    COALESCE(SUM(CASE WHEN status IN ('failed', 'partial') THEN 1 ELSE 0 END), 0), \
    COALESCE(SUM(CASE WHEN status = 'sent' AND finished_at_ms >= $2 THEN 1 ELSE 0 END), 0) \
    FROM outbox_messages WHERE tenant = $1";
const IDENTITY_COLS: &str = "SELECT i.id, i.appid, i.app_kind, i.openid, i.unionid, i.nickname, \
    i.user_id, u.name, \
    CAST(CASE WHEN i.pinned THEN 1 ELSE 0 END AS BIGINT), i.created_at_ms FROM wechat_identities i \
    JOIN users u ON u.id = i.user_id";
const MERGES: &str = "SELECT m.id, m.from_user_id, f.name, m.into_user_id, t.name, m.reason, m.unionid, \
    m.actor, m.identities, m.at_ms FROM user_merges m \
    JOIN users f ON f.id = m.from_user_id JOIN users t ON t.id = m.into_user_id \
    WHERE m.tenant = $1 ORDER BY m.id DESC LIMIT $2";

type SessionTuple = (
    String,
    String,
    String,
    String,
    Option<i64>,
    String,
    i64,
    i64,
);
type IdentityTuple = (
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
    String,
    i64,
    i64,
);
type MergeTuple = (
    i64,
    i64,
    String,
    i64,
    String,
    String,
    Option<String>,
    String,
    String,
    i64,
);

fn identity_row(t: IdentityTuple) -> AdminIdentityRow {
    AdminIdentityRow {
        id: t.0,
        appid: t.1,
        app_kind: t.2,
        openid: t.3,
        unionid: t.4,
        nickname: t.5,
        user_id: t.6,
        user_name: t.7,
        pinned: t.8 != 0,
        created_at_ms: t.9,
    }
}

/// `%fragment%` for LIKE with `%`, `_` and `\` matched literally, lower-cased.
fn like_pattern(fragment: &str) -> String {
    let mut p = String::from("%");
    for c in fragment.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

impl Db {
    fn admin_query_failed(&self, source: sqlx::Error) -> Error {
        Error::Query {
            backend: self.backend(),
            source,
        }
    }

    /// Store a new operator session, pruning sessions that expired before `prune_before_ms`.
    pub async fn insert_admin_session(
        &self,
        row: &AdminSessionRow,
        prune_before_ms: i64,
    ) -> Result<(), Error> {
        on_pool!(self, |pool| {
            sqlx::query(SESSION_PRUNE)
                .bind(prune_before_ms)
                .execute(pool)
                .await
                .map(|_| ())
        })
        .map_err(|e| self.admin_query_failed(e))?;
        on_pool!(self, |pool| {
            sqlx::query(SESSION_INSERT)
                .bind(&row.token_hash)
                .bind(row.kind.as_str())
                .bind(&row.name)
                .bind(&row.tenant_scope)
                .bind(row.user_id)
                .bind(&row.csrf)
                .bind(row.created_at_ms)
                .bind(row.expires_at_ms)
                .execute(pool)
                .await
                .map(|_| ())
        })
        .map_err(|e| self.admin_query_failed(e))
    }

    /// The operator session stored under `token_hash` (expired or not).
    pub async fn admin_session(&self, token_hash: &str) -> Result<Option<AdminSessionRow>, Error> {
        let row: Option<SessionTuple> = on_pool!(self, |pool| {
            sqlx::query_as(SESSION_GET)
                .bind(token_hash)
                .fetch_optional(pool)
                .await
        })
        .map_err(|e| self.admin_query_failed(e))?;
        Ok(row.and_then(|t| {
            Some(AdminSessionRow {
                token_hash: t.0,
                kind: AdminKind::parse(&t.1)?,
                name: t.2,
                tenant_scope: t.3,
                user_id: t.4,
                csrf: t.5,
                created_at_ms: t.6,
                expires_at_ms: t.7,
            })
        }))
    }

    /// Delete an operator session (sign-out); false when there was none.
    pub async fn delete_admin_session(&self, token_hash: &str) -> Result<bool, Error> {
        let n = on_pool!(self, |pool| {
            sqlx::query(SESSION_DELETE)
                .bind(token_hash)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(|e| self.admin_query_failed(e))?;
        Ok(n == 1)
    }

    /// Store a one-time sign-in link, pruning links that expired before `prune_before_ms`.
    pub async fn insert_admin_link(
        &self,
        token_hash: &str,
        tenant_scope: &str,
        now_ms: i64,
        expires_at_ms: i64,
        prune_before_ms: i64,
    ) -> Result<(), Error> {
        on_pool!(self, |pool| {
            sqlx::query(LINK_PRUNE)
                .bind(prune_before_ms)
                .execute(pool)
                .await
                .map(|_| ())
        })
        .map_err(|e| self.admin_query_failed(e))?;
        on_pool!(self, |pool| {
            sqlx::query(LINK_INSERT)
                .bind(token_hash)
                .bind(tenant_scope)
                .bind(now_ms)
                .bind(expires_at_ms)
                .execute(pool)
                .await
                .map(|_| ())
        })
        .map_err(|e| self.admin_query_failed(e))
    }

    /// Use a one-time link: one atomic statement marks it consumed only when it is unused and not
    /// expired, so of two concurrent visits exactly one signs in.
    pub async fn consume_admin_link(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<LinkConsume, Error> {
        let scope: Option<String> = on_pool!(self, |pool| {
            sqlx::query_scalar(LINK_CONSUME)
                .bind(token_hash)
                .bind(now_ms)
                .fetch_optional(pool)
                .await
        })
        .map_err(|e| self.admin_query_failed(e))?;
        if let Some(tenant_scope) = scope {
            return Ok(LinkConsume::Consumed { tenant_scope });
        }
        let row: Option<(i64, Option<i64>)> = on_pool!(self, |pool| {
            sqlx::query_as(LINK_GET)
                .bind(token_hash)
                .fetch_optional(pool)
                .await
        })
        .map_err(|e| self.admin_query_failed(e))?;
        Ok(match row {
            None => LinkConsume::Unknown,
            Some((_, Some(at_ms))) => LinkConsume::AlreadyUsed { at_ms },
            Some((expires_at_ms, None)) => LinkConsume::Expired {
                at_ms: expires_at_ms,
            },
        })
    }

    /// Every non-archived role of the tenant with its department or tag link and its own open
    /// membership count, ordered by sort order then id (a flat list; parents are named by id).
    pub async fn admin_role_tree(&self, tenant: &str) -> Result<Vec<AdminRoleRow>, Error> {
        type Row = (
            i64,
            String,
            Option<i64>,
            String,
            Option<i64>,
            Option<i64>,
            i64,
        );
        let rows: Vec<Row> = on_pool!(self, |pool| {
            sqlx::query_as(ROLE_TREE).bind(tenant).fetch_all(pool).await
        })
        .map_err(|e| self.admin_query_failed(e))?;
        Ok(rows
            .into_iter()
            .map(|r| AdminRoleRow {
                id: r.0,
                name: r.1,
                parent_id: r.2,
                origin: r.3,
                wecom_department_id: r.4,
                wecom_tag_id: r.5,
                member_count: r.6,
            })
            .collect())
    }

    /// Callback inbox figures of a tenant; `received_since` counts rows received at or after `since_ms`.
    pub async fn admin_inbox_summary(
        &self,
        tenant: &str,
        since_ms: i64,
    ) -> Result<InboxSummary, Error> {
        let r: (i64, i64, i64, i64) = on_pool!(self, |pool| {
            sqlx::query_as(INBOX_SUMMARY)
                .bind(tenant)
                .bind(since_ms)
                .fetch_one(pool)
                .await
        })
        .map_err(|e| self.admin_query_failed(e))?;
        Ok(InboxSummary {
            received_since: r.0,
            failed: r.1,
            dead: r.2,
            pending: r.3,
        })
    }

    /// Outbox figures of a tenant; `sent_since` counts messages sent at or after `since_ms`.
    pub async fn admin_outbox_summary(
        &self,
        tenant: &str,
        since_ms: i64,
    ) -> Result<OutboxSummary, Error> {
        let r: (i64, i64, i64) = on_pool!(self, |pool| {
            sqlx::query_as(OUTBOX_SUMMARY)
                .bind(tenant)
                .bind(since_ms)
                .fetch_one(pool)
                .await
        })
        .map_err(|e| self.admin_query_failed(e))?;
        Ok(OutboxSummary {
            pending: r.0,
            failed: r.1,
            sent_since: r.2,
        })
    }

    /// WeChat identities of a tenant, newest first, at most `max`: all of them for an empty `q`, else
    /// those whose openid or unionid equals `q` or whose nickname or user's name contains it
    /// (case-insensitive for ASCII).
    pub async fn admin_search_identities(
        &self,
        tenant: &str,
        q: &str,
        max: u32,
    ) -> Result<Vec<AdminIdentityRow>, Error> {
        let max = i64::from(max);
        let q = q.trim();
        let rows: Vec<IdentityTuple> = if q.is_empty() {
            let sql = format!("{IDENTITY_COLS} WHERE i.tenant = $1 ORDER BY i.id DESC LIMIT $2");
            on_pool!(self, |pool| {
                sqlx::query_as(&sql)
                    .bind(tenant)
                    .bind(max)
                    .fetch_all(pool)
                    .await
            })
        } else {
            let sql = format!(
                "{IDENTITY_COLS} WHERE i.tenant = $1 AND (i.openid = $2 OR i.unionid = $2 \
                 OR lower(i.nickname) LIKE $3 ESCAPE '\\' OR lower(u.name) LIKE $3 ESCAPE '\\') \
                 ORDER BY i.id DESC LIMIT $4"
            );
            let pattern = like_pattern(q);
            on_pool!(self, |pool| {
                sqlx::query_as(&sql)
                    .bind(tenant)
                    .bind(q)
                    .bind(&pattern)
                    .bind(max)
                    .fetch_all(pool)
                    .await
            })
        }
        .map_err(|e| self.admin_query_failed(e))?;
        Ok(rows.into_iter().map(identity_row).collect())
    }

    /// The tenant's user merges, newest first, at most `max`, with both users' names.
    pub async fn admin_merges(&self, tenant: &str, max: u32) -> Result<Vec<AdminMergeRow>, Error> {
        let rows: Vec<MergeTuple> = on_pool!(self, |pool| {
            sqlx::query_as(MERGES)
                .bind(tenant)
                .bind(i64::from(max))
                .fetch_all(pool)
                .await
        })
        .map_err(|e| self.admin_query_failed(e))?;
        Ok(rows
            .into_iter()
            .map(|t| AdminMergeRow {
                id: t.0,
                from_user_id: t.1,
                from_user_name: t.2,
                into_user_id: t.3,
                into_user_name: t.4,
                reason: t.5,
                unionid: t.6,
                actor: t.7,
                identities: t.8,
                at_ms: t.9,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(like_pattern("A_b%"), "%a\\_b\\%%");
    }

    #[test]
    fn kinds_round_trip() {
        for k in [AdminKind::Token, AdminKind::Link, AdminKind::Wecom] {
            assert_eq!(AdminKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(AdminKind::parse("root"), None);
    }
}
