//! The directory lookup API, both ways between local users/roles and WeCom members/departments:
//!
//! - `GET .../users/{user_id}`, `GET .../users/{user_id}/roles`
//! - `GET .../users?mobile=` / `?email=` / `?q=` (exactly one; lists, since neither mobile nor email is unique)
//! - `GET .../wecom/users/{userid}` (the local user linked to a WeCom member of the tenant's corp)
//! - `GET .../roles/{role_id}`, `GET .../roles/{role_id}/members?sub_roles=`, `GET .../roles/{role_id}/department`
//! - `GET .../wecom/departments/{department_id}` (the local role mirroring a WeCom department)
//!
//! All under `/api/v1/tenants/{tenant}`, authenticated with the tenant's API key. Every store call is scoped
//! to the tenant, so a key of one tenant never reads another's rows. The answers are this module's DTOs, not
//! the store's rows: ids, status, the WeCom links and the role origin, no internal bookkeeping. Mobile, email
//! and name fragments travel in the query string, which the request log does not record (it logs the path).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use domain::{Db, Gender, MemberLink, Role, RoleId, Tenant, User, UserId, UserStatus};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::authorised_tenant;
use crate::error::WebError;

/// Most users a list lookup returns unless `limit` says otherwise.
const DEFAULT_LIST_LIMIT: u32 = 20;
/// The largest `limit` a list lookup accepts.
const MAX_LIST_LIMIT: u32 = 100;
/// Most members a role's member list returns unless `limit` says otherwise.
const DEFAULT_MEMBERS_LIMIT: u32 = 1_000;
/// The largest `limit` the member list accepts.
const MAX_MEMBERS_LIMIT: u32 = 10_000;
/// The longest `q`, `mobile` or `email` accepted, in characters.
const MAX_QUERY_CHARS: usize = 200;

// ---------------------------------------------------------------------------------------------------------
// DTOs

/// Where a user stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserStatusDto {
    Active,
    Disabled,
    /// Invited but not yet activated in WeCom.
    Inactive,
    /// Gone from the corp; the user is kept for history, with every membership closed.
    Left,
}

impl From<UserStatus> for UserStatusDto {
    fn from(s: UserStatus) -> Self {
        match s {
            UserStatus::Active => UserStatusDto::Active,
            UserStatus::Disabled => UserStatusDto::Disabled,
            UserStatus::Inactive => UserStatusDto::Inactive,
            UserStatus::Left => UserStatusDto::Left,
        }
    }
}

/// A user's gender as the directory reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GenderDto {
    Male,
    Female,
    Unspecified,
}

impl From<Gender> for GenderDto {
    fn from(g: Gender) -> Self {
        match g {
            Gender::Male => GenderDto::Male,
            Gender::Female => GenderDto::Female,
            Gender::Unspecified => GenderDto::Unspecified,
        }
    }
}

/// A WeCom member linked to a local user.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WecomMemberDto {
    pub corpid: String,
    /// The userid as WeCom spells it (lookups match it case-insensitively).
    pub userid: String,
    /// Present when WeCom has disclosed it.
    pub open_userid: Option<String>,
}

impl From<MemberLink> for WecomMemberDto {
    fn from(l: MemberLink) -> Self {
        WecomMemberDto {
            corpid: l.corpid,
            userid: l.userid,
            open_userid: l.open_userid,
        }
    }
}

/// A local user with its WeCom links. Fields WeCom withholds from the syncing app are `null` unless the
/// bridge learnt them another way.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserDto {
    pub id: i64,
    pub name: String,
    pub status: UserStatusDto,
    pub mobile: Option<String>,
    pub email: Option<String>,
    /// Avatar URL.
    pub avatar: Option<String>,
    pub position: Option<String>,
    pub gender: Option<GenderDto>,
    /// The WeCom members this user is (one per corp).
    pub wecom: Vec<WecomMemberDto>,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl UserDto {
    fn new(u: User, links: Vec<MemberLink>) -> Self {
        UserDto {
            id: u.id.get(),
            name: u.name,
            status: u.status.into(),
            mobile: u.mobile,
            email: u.email,
            avatar: u.avatar,
            position: u.position,
            gender: u.gender.map(Into::into),
            wecom: links.into_iter().map(Into::into).collect(),
            created_at_ms: u.created_at_ms,
            updated_at_ms: u.updated_at_ms,
        }
    }
}

/// A user in a list of a role's members: who they are, without their WeCom links (ask
/// `GET .../users/{user_id}` for those).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserSummaryDto {
    pub id: i64,
    pub name: String,
    pub status: UserStatusDto,
    pub position: Option<String>,
}

/// The WeCom department a role mirrors.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WecomDepartmentDto {
    pub corpid: String,
    pub department_id: i64,
    /// The local role mirroring it.
    pub role_id: i64,
}

/// A node of the role tree.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RoleDto {
    pub id: i64,
    pub name: String,
    /// `null` for a top-level role.
    pub parent_id: Option<i64>,
    pub sort_order: i64,
    /// `wecom` (mirrors a WeCom department), `wecom_tag` (mirrors a WeCom tag) or `local` (made in wxbridge).
    #[schema(example = "wecom")]
    pub origin: String,
    /// The mirrored department disappeared upstream; the role is kept, its memberships closed.
    pub archived: bool,
    pub archived_at_ms: Option<i64>,
    /// The WeCom department the role mirrors, `null` for other roles.
    pub wecom_department: Option<WecomDepartmentDto>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// One of a user's roles, through an open membership.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserRoleDto {
    pub role: RoleDto,
    /// The user leads this role (a WeCom department leader).
    pub is_leader: bool,
    /// The user's main department.
    pub is_main: bool,
    pub sort_order: i64,
    /// When the membership began, milliseconds since the Unix epoch.
    pub since_ms: i64,
}

/// A user's roles, main first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserRolesResponse {
    pub user_id: i64,
    pub roles: Vec<UserRoleDto>,
}

/// One open membership in a role (or one of its sub-roles).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RoleMemberDto {
    pub user: UserSummaryDto,
    /// The role this membership is in: the asked role, or a sub-role of it.
    pub role_id: i64,
    pub is_leader: bool,
    pub is_main: bool,
    pub sort_order: i64,
    pub since_ms: i64,
}

/// A role's members.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RoleMembersResponse {
    pub role_id: i64,
    /// Whether members of the roles below are included.
    pub sub_roles: bool,
    /// Memberships found before `limit` applied (a user in two sub-roles counts twice).
    pub total: usize,
    /// `total` exceeds `limit`: only the first `limit` are listed.
    pub truncated: bool,
    pub members: Vec<RoleMemberDto>,
}

/// Users found by a list lookup.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserListResponse {
    pub users: Vec<UserDto>,
}

// ---------------------------------------------------------------------------------------------------------
// Parameters

/// Exactly one of `mobile`, `email`, `q`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserListQuery {
    /// Users with exactly this mobile number (several users may share one).
    mobile: Option<String>,
    /// Users with this email, compared case-insensitively.
    email: Option<String>,
    /// Users whose name contains this fragment (case-insensitive for ASCII), ordered by name.
    q: Option<String>,
    /// At most this many users (1..=100, default 20).
    limit: Option<u32>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RoleMembersQuery {
    /// Also the members of every non-archived role below this one (default false).
    #[serde(default)]
    sub_roles: bool,
    /// At most this many memberships (1..=10000, default 1000).
    limit: Option<u32>,
}

// ---------------------------------------------------------------------------------------------------------
// Helpers

pub(crate) fn database(state: &AppState) -> Result<&Db, WebError> {
    state
        .db
        .as_ref()
        .ok_or_else(|| WebError::NotReady("no database is configured".into()))
}

pub(crate) fn internal(e: impl std::fmt::Display) -> WebError {
    WebError::Internal(e.to_string())
}

/// A query string that did not parse (a non-numeric `limit`, a `sub_roles` that is not a boolean).
pub(crate) fn bad_query(e: QueryRejection) -> WebError {
    WebError::BadRequest(format!("bad query string: {}", e.body_text()))
}

/// At most 40 characters of caller input, for echoing in an error message.
pub(crate) fn shown(raw: &str) -> String {
    let mut s: String = raw.chars().take(40).collect();
    if s.len() < raw.len() {
        s.push('…');
    }
    s
}

/// A numeric id from the path; 400 naming `what` when it is not one.
pub(crate) fn parse_id(what: &str, raw: &str) -> Result<i64, WebError> {
    raw.parse::<i64>().map_err(|_| {
        WebError::BadRequest(format!("{what} must be an integer, got `{}`", shown(raw)))
    })
}

/// One of `statuses` by its text (`as_str`); 400 listing them all when `raw` is none of them.
pub(crate) fn parse_status<S: Copy>(
    raw: &str,
    statuses: &[S],
    as_str: impl Fn(S) -> &'static str,
) -> Result<S, WebError> {
    statuses
        .iter()
        .copied()
        .find(|s| as_str(*s) == raw)
        .ok_or_else(|| {
            let all: Vec<&str> = statuses.iter().map(|s| as_str(*s)).collect();
            WebError::BadRequest(format!(
                "status must be one of {}; got `{}`",
                all.join(", "),
                shown(raw)
            ))
        })
}

/// How many rows are in each of `statuses` (in that order, zeros included), from a store's
/// (status, count) pairs that leave out the statuses with none.
pub(crate) fn status_counts<S: Copy + PartialEq>(
    statuses: &[S],
    counts: &[(S, i64)],
    as_str: impl Fn(S) -> &'static str,
) -> Vec<(String, i64)> {
    statuses
        .iter()
        .map(|s| {
            let n = counts.iter().filter(|(c, _)| c == s).map(|(_, n)| *n).sum();
            (as_str(*s).to_owned(), n)
        })
        .collect()
}

/// 409 `not_dead`: a requeue or replay of a row that is not dead.
pub(crate) fn not_dead(message: String) -> WebError {
    WebError::Coded {
        status: StatusCode::CONFLICT,
        code: "not_dead",
        message,
    }
}

pub(crate) fn limit(raw: Option<u32>, default: u32, max: u32) -> Result<u32, WebError> {
    match raw {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(WebError::BadRequest(format!(
            "limit must be between 1 and {max}, got {n}"
        ))),
    }
}

/// The tenant's WeCom corp; 404 when the tenant has none.
fn corpid(tenant: &Tenant) -> Result<&str, WebError> {
    tenant
        .config
        .wecom
        .as_ref()
        .map(|w| w.corpid.as_str())
        .ok_or_else(|| WebError::Missing(format!("tenant {} has no WeCom corp", tenant.key())))
}

async fn user_dto(db: &Db, tenant: &str, user: User) -> Result<UserDto, WebError> {
    let links = db
        .wecom_links_of_user(tenant, user.id)
        .await
        .map_err(internal)?;
    Ok(UserDto::new(user, links))
}

async fn users_dto(db: &Db, tenant: &str, users: Vec<User>) -> Result<UserListResponse, WebError> {
    let mut out = Vec::with_capacity(users.len());
    for u in users {
        out.push(user_dto(db, tenant, u).await?);
    }
    Ok(UserListResponse { users: out })
}

async fn role_dto(db: &Db, tenant: &str, role: Role) -> Result<RoleDto, WebError> {
    let department = db
        .department_of_role(tenant, role.id)
        .await
        .map_err(internal)?;
    Ok(RoleDto {
        id: role.id.get(),
        name: role.name,
        parent_id: role.parent_id.map(RoleId::get),
        sort_order: role.sort_order,
        origin: role.origin.as_str().to_owned(),
        archived: role.archived_at_ms.is_some(),
        archived_at_ms: role.archived_at_ms,
        wecom_department: department.map(|d| WecomDepartmentDto {
            corpid: d.corpid,
            department_id: d.department_id,
            role_id: d.role_id.get(),
        }),
        created_at_ms: role.created_at_ms,
        updated_at_ms: role.updated_at_ms,
    })
}

async fn existing_user(db: &Db, tenant: &str, raw_id: &str) -> Result<User, WebError> {
    let id = parse_id("user id", raw_id)?;
    db.user(tenant, UserId::from_raw(id))
        .await
        .map_err(internal)?
        .ok_or_else(|| WebError::Missing(format!("no user {id} in tenant {tenant}")))
}

async fn existing_role(db: &Db, tenant: &str, raw_id: &str) -> Result<Role, WebError> {
    let id = parse_id("role id", raw_id)?;
    db.role(tenant, RoleId::from_raw(id))
        .await
        .map_err(internal)?
        .ok_or_else(|| WebError::Missing(format!("no role {id} in tenant {tenant}")))
}

fn nonempty<'a>(name: &str, value: &'a str) -> Result<&'a str, WebError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(WebError::BadRequest(format!("`{name}` must not be empty")));
    }
    if v.chars().count() > MAX_QUERY_CHARS {
        return Err(WebError::BadRequest(format!(
            "`{name}` is longer than {MAX_QUERY_CHARS} characters"
        )));
    }
    Ok(v)
}

// ---------------------------------------------------------------------------------------------------------
// Handlers

/// A user by local id.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/users/{user_id}", tag = "directory",
    params(("tenant" = String, Path, description = "Tenant key"),
           ("user_id" = i64, Path, description = "Local user id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The user with its WeCom links", body = UserDto),
        (status = 400, description = "The id is not an integer", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant or user", body = crate::error::ErrorBody),
    ))]
pub async fn user(
    State(state): State<AppState>,
    Path((tenant_key, user_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<UserDto>, WebError> {
    let tenant = authorised_tenant(&state, &tenant_key, &headers)?;
    let db = database(&state)?;
    let user = existing_user(db, tenant.key(), &user_id).await?;
    Ok(Json(user_dto(db, tenant.key(), user).await?))
}

/// The user linked to a WeCom member of the tenant's corp (userid matched case-insensitively).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/wecom/users/{userid}", tag = "directory",
    params(("tenant" = String, Path, description = "Tenant key"),
           ("userid" = String, Path, description = "WeCom userid")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The linked user", body = UserDto),
        (status = 401, description = "Missing or invalid API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant or userid", body = crate::error::ErrorBody),
    ))]
pub async fn user_by_wecom_userid(
    State(state): State<AppState>,
    Path((tenant_key, userid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<UserDto>, WebError> {
    let tenant = authorised_tenant(&state, &tenant_key, &headers)?;
    let db = database(&state)?;
    let corpid = corpid(tenant)?;
    let user = db
        .user_by_wecom_userid(tenant.key(), corpid, &userid)
        .await
        .map_err(internal)?
        .ok_or_else(|| {
            WebError::Missing(format!(
                "no user is linked to WeCom userid `{}` of corp {corpid}",
                shown(&userid)
            ))
        })?;
    Ok(Json(user_dto(db, tenant.key(), user).await?))
}

/// Users by mobile, by email, or by a fragment of the name: exactly one of `mobile`, `email`, `q`.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/users", tag = "directory",
    params(("tenant" = String, Path, description = "Tenant key"), UserListQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Matching users (possibly none)", body = UserListResponse),
        (status = 400, description = "Not exactly one of mobile/email/q, an empty value, or a bad limit",
         body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant", body = crate::error::ErrorBody),
    ))]
pub async fn users(
    State(state): State<AppState>,
    Path(tenant_key): Path<String>,
    query: Result<Query<UserListQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Json<UserListResponse>, WebError> {
    let tenant = authorised_tenant(&state, &tenant_key, &headers)?;
    let Query(query) = query.map_err(bad_query)?;
    let db = database(&state)?;
    let max = limit(query.limit, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)?;
    let t = tenant.key();
    let found = match (&query.mobile, &query.email, &query.q) {
        (Some(mobile), None, None) => {
            db.users_by_mobile(t, nonempty("mobile", mobile)?, max)
                .await
        }
        (None, Some(email), None) => db.users_by_email(t, nonempty("email", email)?, max).await,
        (None, None, Some(q)) => db.search_users_by_name(t, nonempty("q", q)?, max).await,
        _ => {
            return Err(WebError::BadRequest(
                "give exactly one of `mobile`, `email` or `q`".into(),
            ));
        }
    }
    .map_err(internal)?;
    Ok(Json(users_dto(db, t, found).await?))
}

/// A user's roles through open memberships, main first, with leader flags.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/users/{user_id}/roles", tag = "directory",
    params(("tenant" = String, Path, description = "Tenant key"),
           ("user_id" = i64, Path, description = "Local user id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The user's roles", body = UserRolesResponse),
        (status = 400, description = "The id is not an integer", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant or user", body = crate::error::ErrorBody),
    ))]
pub async fn user_roles(
    State(state): State<AppState>,
    Path((tenant_key, user_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<UserRolesResponse>, WebError> {
    let tenant = authorised_tenant(&state, &tenant_key, &headers)?;
    let db = database(&state)?;
    let t = tenant.key();
    let user = existing_user(db, t, &user_id).await?;
    let rows = db.user_roles(t, user.id).await.map_err(internal)?;
    let mut roles = Vec::with_capacity(rows.len());
    for r in rows {
        roles.push(UserRoleDto {
            is_leader: r.membership.is_leader,
            is_main: r.membership.is_main,
            sort_order: r.membership.sort_order,
            since_ms: r.membership.started_at_ms,
            role: role_dto(db, t, r.role).await?,
        });
    }
    Ok(Json(UserRolesResponse {
        user_id: user.id.get(),
        roles,
    }))
}

/// A role by local id.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/roles/{role_id}", tag = "directory",
    params(("tenant" = String, Path, description = "Tenant key"),
           ("role_id" = i64, Path, description = "Local role id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The role", body = RoleDto),
        (status = 400, description = "The id is not an integer", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant or role", body = crate::error::ErrorBody),
    ))]
pub async fn role(
    State(state): State<AppState>,
    Path((tenant_key, role_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<RoleDto>, WebError> {
    let tenant = authorised_tenant(&state, &tenant_key, &headers)?;
    let db = database(&state)?;
    let role = existing_role(db, tenant.key(), &role_id).await?;
    Ok(Json(role_dto(db, tenant.key(), role).await?))
}

/// A role's members through open memberships: the role's own, or with `sub_roles=true` also those of every
/// non-archived role below it (one entry per membership).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/roles/{role_id}/members", tag = "directory",
    params(("tenant" = String, Path, description = "Tenant key"),
           ("role_id" = i64, Path, description = "Local role id"), RoleMembersQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The role's members", body = RoleMembersResponse),
        (status = 400, description = "The id is not an integer, or a bad query", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant or role", body = crate::error::ErrorBody),
    ))]
pub async fn role_members(
    State(state): State<AppState>,
    Path((tenant_key, role_id)): Path<(String, String)>,
    query: Result<Query<RoleMembersQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Json<RoleMembersResponse>, WebError> {
    let tenant = authorised_tenant(&state, &tenant_key, &headers)?;
    let Query(query) = query.map_err(bad_query)?;
    let max = limit(query.limit, DEFAULT_MEMBERS_LIMIT, MAX_MEMBERS_LIMIT)? as usize;
    let db = database(&state)?;
    let t = tenant.key();
    let role = existing_role(db, t, &role_id).await?;
    let rows = db
        .role_members(t, role.id, query.sub_roles)
        .await
        .map_err(internal)?;
    let total = rows.len();
    let members = rows
        .into_iter()
        .take(max)
        .map(|m| RoleMemberDto {
            user: UserSummaryDto {
                id: m.user.id.get(),
                name: m.user.name,
                status: m.user.status.into(),
                position: m.user.position,
            },
            role_id: m.membership.role_id.get(),
            is_leader: m.membership.is_leader,
            is_main: m.membership.is_main,
            sort_order: m.membership.sort_order,
            since_ms: m.membership.started_at_ms,
        })
        .collect();
    Ok(Json(RoleMembersResponse {
        role_id: role.id.get(),
        sub_roles: query.sub_roles,
        total,
        truncated: total > max,
        members,
    }))
}

/// The WeCom department (corpid + department id) a role mirrors.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/roles/{role_id}/department", tag = "directory",
    params(("tenant" = String, Path, description = "Tenant key"),
           ("role_id" = i64, Path, description = "Local role id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The mirrored department", body = WecomDepartmentDto),
        (status = 400, description = "The id is not an integer", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant or role, or the role mirrors no department",
         body = crate::error::ErrorBody),
    ))]
pub async fn role_department(
    State(state): State<AppState>,
    Path((tenant_key, role_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<WecomDepartmentDto>, WebError> {
    let tenant = authorised_tenant(&state, &tenant_key, &headers)?;
    let db = database(&state)?;
    let t = tenant.key();
    let role = existing_role(db, t, &role_id).await?;
    let link = db
        .department_of_role(t, role.id)
        .await
        .map_err(internal)?
        .ok_or_else(|| {
            WebError::Missing(format!(
                "role {} does not mirror a WeCom department",
                role.id
            ))
        })?;
    Ok(Json(WecomDepartmentDto {
        corpid: link.corpid,
        department_id: link.department_id,
        role_id: link.role_id.get(),
    }))
}

/// The role mirroring a WeCom department of the tenant's corp (archived or not).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/wecom/departments/{department_id}", tag = "directory",
    params(("tenant" = String, Path, description = "Tenant key"),
           ("department_id" = i64, Path, description = "WeCom department id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The role", body = RoleDto),
        (status = 400, description = "The id is not an integer", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown tenant or department", body = crate::error::ErrorBody),
    ))]
pub async fn role_by_department(
    State(state): State<AppState>,
    Path((tenant_key, department_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<RoleDto>, WebError> {
    let tenant = authorised_tenant(&state, &tenant_key, &headers)?;
    let db = database(&state)?;
    let department_id = parse_id("department id", &department_id)?;
    let corpid = corpid(tenant)?;
    let t = tenant.key();
    let role = db
        .role_by_department(t, corpid, department_id)
        .await
        .map_err(internal)?
        .ok_or_else(|| {
            WebError::Missing(format!(
                "no role mirrors department {department_id} of corp {corpid}"
            ))
        })?;
    Ok(Json(role_dto(db, t, role).await?))
}
