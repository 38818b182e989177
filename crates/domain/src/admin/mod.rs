//! Operator sign-in for the admin UI: who may sign in and what an operator session is.
//!
//! Three ways in, each ending in an [`AdminSession`] (12 hours, scoped to every tenant or one):
//! - the bootstrap admin token (`wxa_…`, only its SHA-256 in `server.admin_token_hash`), compared by
//!   hash in constant time ([`admin_token_matches`]); scope `*`;
//! - a one-time link (`wxl_…`, printed by `wxbridge admin link` and `wxbridge demo`): only its hash is
//!   stored, it expires after 15 minutes and one atomic statement consumes it ([`Admin::consume_link`]);
//!   scope as issued;
//! - WeCom login as a member the tenant's `[admin]` settings name ([`is_wecom_admin`]): a configured
//!   department or any department below it (through the role tree), a configured tag (directly or through a
//!   tagged department), or a configured userid; disabled and left members are refused. Scope: that tenant.
//!
//! Session tokens (`wxas_…`) travel only in the HttpOnly cookie; the store keeps their SHA-256. Each
//! session has its own CSRF token, which the UI echoes in `X-CSRF-Token` on every non-GET request
//! ([`csrf_matches`]). Nothing here logs or displays a token.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
/// How an operator signed in (re-exported so the server layer does not depend on `store`).
pub use store::AdminKind;
use store::{AdminSessionRow, Db, LinkConsume, RoleId, User, UserStatus};
use wx_api::clock::Clock;
use wxbridge_config::{ApiKeyHash, TenantConfig};

/// The bootstrap admin token's prefix (`wxbridge admin token`).
pub const ADMIN_TOKEN_PREFIX: &str = "wxa_";
/// A one-time sign-in link token's prefix.
pub const LINK_TOKEN_PREFIX: &str = "wxl_";
/// An operator session token's prefix (the admin cookie's value).
pub const SESSION_TOKEN_PREFIX: &str = "wxas_";
/// How long an operator session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// How long a one-time link can be used.
pub const LINK_TTL: Duration = Duration::from_secs(15 * 60);
/// Used or expired links are kept this long past expiry (so a late visit is told why), then pruned.
const LINK_KEEP: Duration = Duration::from_secs(24 * 3600);
const TOKEN_BYTES: usize = 32;

/// Why a sign-in or a session check failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("AD001 the admin token is not valid")]
    TokenInvalid,
    #[error("AD002 no bootstrap admin token is configured (set server.admin_token_hash)")]
    TokenNotConfigured,
    #[error("AD003 this sign-in link is malformed (expected `wxl_` followed by 64 hex digits)")]
    LinkMalformed,
    #[error("AD004 this sign-in link is unknown; ask for a new one (`wxbridge admin link`)")]
    LinkUnknown,
    #[error(
        "AD005 this sign-in link was already used; each link signs in once (`wxbridge admin link` makes a new one)"
    )]
    LinkUsed { at_ms: i64 },
    #[error(
        "AD006 this sign-in link expired (links last 15 minutes); `wxbridge admin link` makes a new one"
    )]
    LinkExpired { at_ms: i64 },
    #[error("AD007 not signed in to the admin UI")]
    SessionMissing,
    #[error("AD008 the admin session expired or was signed out; sign in again")]
    SessionExpired,
    #[error("AD009 unknown tenant `{0}`")]
    TenantUnknown(String),
    #[error("AD010 database error: {0}")]
    Store(#[from] store::Error),
}

/// Which tenants an operator session may act on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TenantScope {
    /// Every tenant (bootstrap token, unscoped link).
    All,
    /// One tenant.
    Tenant(String),
}

impl TenantScope {
    /// `*` or the tenant key, as stored.
    pub fn as_str(&self) -> &str {
        match self {
            TenantScope::All => "*",
            TenantScope::Tenant(t) => t,
        }
    }

    pub fn parse(s: &str) -> TenantScope {
        if s == "*" {
            TenantScope::All
        } else {
            TenantScope::Tenant(s.to_owned())
        }
    }

    /// Whether the scope includes `tenant`.
    pub fn covers(&self, tenant: &str) -> bool {
        match self {
            TenantScope::All => true,
            TenantScope::Tenant(t) => t == tenant,
        }
    }
}

impl fmt::Display for TenantScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A secret token in clear (session or link). Debug and Display print a redacted form.
#[derive(Clone)]
pub struct AdminSecret(SecretString);

impl AdminSecret {
    fn generate(prefix: &str) -> AdminSecret {
        let mut bytes = [0u8; TOKEN_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        AdminSecret(SecretString::from(format!(
            "{prefix}{}",
            hex::encode(bytes)
        )))
    }

    /// The text, for the one place it is handed out (cookie, printed link).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for AdminSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminSecret(<redacted>)")
    }
}

impl fmt::Display for AdminSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

fn hash_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// `prefix` followed by 64 lower-case hex digits.
fn well_formed(token: &str, prefix: &str) -> bool {
    token.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == TOKEN_BYTES * 2
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Equal-length byte strings compared without an early exit.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A new bootstrap admin token (`wxa_` + 64 hex digits) and the hash to put in
/// `server.admin_token_hash`.
pub fn generate_admin_token() -> (AdminSecret, ApiKeyHash) {
    let token = AdminSecret::generate(ADMIN_TOKEN_PREFIX);
    let hash = ApiKeyHash::from_bytes(Sha256::digest(token.expose().as_bytes()).into());
    (token, hash)
}

/// Whether `presented` is the bootstrap admin token whose hash is configured: SHA-256 compared in
/// constant time. No configured hash: never.
pub fn admin_token_matches(presented: &str, configured: Option<&ApiKeyHash>) -> bool {
    let Some(hash) = configured else {
        return false;
    };
    let digest: [u8; 32] = Sha256::digest(presented.trim().as_bytes()).into();
    ct_eq(&digest, hash.as_bytes())
}

/// Whether the CSRF token a request carries is the session's, in constant time.
pub fn csrf_matches(expected: &str, presented: &str) -> bool {
    !expected.is_empty() && ct_eq(expected.as_bytes(), presented.as_bytes())
}

/// A signed-in operator (never the session token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSession {
    pub kind: AdminKind,
    /// For people: "admin token", "sign-in link", or the member's name and userid.
    pub name: String,
    pub scope: TenantScope,
    /// The member's user for a WeCom sign-in.
    pub user_id: Option<i64>,
    /// Echo in `X-CSRF-Token` on every non-GET request.
    pub csrf: String,
    pub expires_at_ms: i64,
}

impl AdminSession {
    fn from_row(r: AdminSessionRow) -> AdminSession {
        AdminSession {
            kind: r.kind,
            name: r.name,
            scope: TenantScope::parse(&r.tenant_scope),
            user_id: r.user_id,
            csrf: r.csrf,
            expires_at_ms: r.expires_at_ms,
        }
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Operator sessions and one-time links. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Admin {
    db: Db,
    clock: Arc<dyn Clock>,
}

impl Admin {
    pub fn new(db: Db, clock: Arc<dyn Clock>) -> Admin {
        Admin { db, clock }
    }

    /// Open an operator session. Returns the cookie's token (the only time it exists in clear).
    pub async fn sign_in(
        &self,
        kind: AdminKind,
        name: &str,
        scope: &TenantScope,
        user_id: Option<i64>,
    ) -> Result<(AdminSecret, AdminSession), AdminError> {
        let now = self.clock.now_ms();
        let token = AdminSecret::generate(SESSION_TOKEN_PREFIX);
        let mut csrf = [0u8; 24];
        rand::rng().fill_bytes(&mut csrf);
        let row = AdminSessionRow {
            token_hash: hash_hex(token.expose()),
            kind,
            name: name.to_owned(),
            tenant_scope: scope.as_str().to_owned(),
            user_id,
            csrf: hex::encode(csrf),
            created_at_ms: now,
            expires_at_ms: now.saturating_add(ms(SESSION_TTL)),
        };
        self.db.insert_admin_session(&row, now).await?;
        tracing::info!(admin.kind = kind.as_str(), admin.scope = %scope, "admin signed in");
        Ok((token, AdminSession::from_row(row)))
    }

    /// The live session of a cookie's token.
    pub async fn verify(&self, token: &str) -> Result<AdminSession, AdminError> {
        if !well_formed(token, SESSION_TOKEN_PREFIX) {
            return Err(AdminError::SessionMissing);
        }
        let row = self
            .db
            .admin_session(&hash_hex(token))
            .await?
            .ok_or(AdminError::SessionExpired)?;
        if self.clock.now_ms() >= row.expires_at_ms {
            return Err(AdminError::SessionExpired);
        }
        Ok(AdminSession::from_row(row))
    }

    /// End a session; false when it was unknown already.
    pub async fn sign_out(&self, token: &str) -> Result<bool, AdminError> {
        if !well_formed(token, SESSION_TOKEN_PREFIX) {
            return Ok(false);
        }
        Ok(self.db.delete_admin_session(&hash_hex(token)).await?)
    }

    /// A new one-time sign-in link token for `scope`, valid for [`LINK_TTL`].
    pub async fn issue_link(&self, scope: &TenantScope) -> Result<AdminSecret, AdminError> {
        let now = self.clock.now_ms();
        let token = AdminSecret::generate(LINK_TOKEN_PREFIX);
        self.db
            .insert_admin_link(
                &hash_hex(token.expose()),
                scope.as_str(),
                now,
                now.saturating_add(ms(LINK_TTL)),
                now.saturating_sub(ms(LINK_KEEP)),
            )
            .await?;
        tracing::info!(admin.scope = %scope, "admin sign-in link issued");
        Ok(token)
    }

    /// Use a link: its scope for the one caller that consumed it, otherwise why not.
    pub async fn consume_link(&self, token: &str) -> Result<TenantScope, AdminError> {
        let token = token.trim();
        if !well_formed(token, LINK_TOKEN_PREFIX) {
            return Err(AdminError::LinkMalformed);
        }
        match self
            .db
            .consume_admin_link(&hash_hex(token), self.clock.now_ms())
            .await?
        {
            LinkConsume::Consumed { tenant_scope } => Ok(TenantScope::parse(&tenant_scope)),
            LinkConsume::AlreadyUsed { at_ms } => Err(AdminError::LinkUsed { at_ms }),
            LinkConsume::Expired { at_ms } => Err(AdminError::LinkExpired { at_ms }),
            LinkConsume::Unknown => Err(AdminError::LinkUnknown),
        }
    }
}

/// Whether `user` (a member of `tenant`'s corp) may sign in to the tenant's admin UI through WeCom: a
/// userid in `[admin] wecom_userids` (case-insensitive), a member of a department in
/// `wecom_department_ids` or of any department below it, or a member of a tag in `wecom_tag_ids`
/// (directly, or through a department the tag includes or one below it). Disabled and left members never.
pub async fn is_wecom_admin(
    db: &Db,
    tenant: &TenantConfig,
    user: &User,
) -> Result<bool, AdminError> {
    if matches!(user.status, UserStatus::Disabled | UserStatus::Left) {
        return Ok(false);
    }
    let admin = &tenant.admin;
    let Some(wecom) = &tenant.wecom else {
        return Ok(false);
    };
    if admin.is_empty() {
        return Ok(false);
    }
    let key = tenant.key.as_str();
    let corpid = wecom.corpid.as_str();
    if !admin.wecom_userids.is_empty() {
        let links = db.wecom_links_of_user(key, user.id).await?;
        let named = links.iter().filter(|l| l.corpid == corpid).any(|l| {
            admin
                .wecom_userids
                .iter()
                .any(|u| store::normalize_userid(u) == store::normalize_userid(&l.userid))
        });
        if named {
            return Ok(true);
        }
    }
    if admin.wecom_department_ids.is_empty() && admin.wecom_tag_ids.is_empty() {
        return Ok(false);
    }
    // The user's roles and every role above them.
    let direct: HashSet<i64> = db
        .user_roles(key, user.id)
        .await?
        .into_iter()
        .map(|r| r.role.id.get())
        .collect();
    let above = ancestors_or_self(db, key, &direct).await?;
    for &department in &admin.wecom_department_ids {
        if let Some(role) = db.role_by_department(key, corpid, department).await?
            && role.archived_at_ms.is_none()
            && above.contains(&role.id.get())
        {
            return Ok(true);
        }
    }
    for &tag in &admin.wecom_tag_ids {
        let Some(role) = db.role_by_tag(key, corpid, tag).await? else {
            continue;
        };
        if role.archived_at_ms.is_some() {
            continue;
        }
        if direct.contains(&role.id.get()) {
            return Ok(true);
        }
        let included = db.included_roles(key, role.id).await?;
        if included
            .iter()
            .any(|r| r.archived_at_ms.is_none() && above.contains(&r.id.get()))
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `roles` and all their ancestors (parent chains), each role read once; a chain longer than the
/// deepest WeCom tree (or a cycle) stops.
async fn ancestors_or_self(
    db: &Db,
    tenant: &str,
    roles: &HashSet<i64>,
) -> Result<HashSet<i64>, AdminError> {
    const MAX_DEPTH: usize = 64;
    let mut seen: HashSet<i64> = HashSet::new();
    let mut parents: HashMap<i64, Option<i64>> = HashMap::new();
    for &start in roles {
        let mut current = Some(start);
        let mut depth = 0;
        while let Some(id) = current {
            if !seen.insert(id) || depth > MAX_DEPTH {
                break;
            }
            depth += 1;
            let parent = match parents.get(&id) {
                Some(p) => *p,
                None => {
                    let p = db
                        .role(tenant, RoleId::from_raw(id))
                        .await?
                        .and_then(|r| r.parent_id)
                        .map(RoleId::get);
                    parents.insert(id, p);
                    p
                }
            };
            current = parent;
        }
    }
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_token_matches_only_its_hash() {
        let (token, hash) = generate_admin_token();
        assert!(token.expose().starts_with(ADMIN_TOKEN_PREFIX));
        assert!(admin_token_matches(token.expose(), Some(&hash)));
        assert!(!admin_token_matches("wxa_other", Some(&hash)));
        assert!(!admin_token_matches(token.expose(), None));
        assert!(!format!("{token:?} {token}").contains(&token.expose()[4..]));
    }

    #[test]
    fn scope_covers() {
        assert!(TenantScope::All.covers("a"));
        assert!(TenantScope::parse("a").covers("a"));
        assert!(!TenantScope::parse("a").covers("b"));
        assert_eq!(TenantScope::parse("*"), TenantScope::All);
    }

    #[test]
    fn csrf_compare() {
        assert!(csrf_matches("abc", "abc"));
        assert!(!csrf_matches("abc", "abd"));
        assert!(!csrf_matches("abc", "ab"));
        assert!(!csrf_matches("", ""));
    }

    #[test]
    fn link_shape() {
        let t = AdminSecret::generate(LINK_TOKEN_PREFIX);
        assert!(well_formed(t.expose(), LINK_TOKEN_PREFIX));
        assert!(!well_formed("wxl_zz", LINK_TOKEN_PREFIX));
    }
}
