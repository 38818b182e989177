//! The WeChat account graph: an identity is (tenant, appid, openid), optionally with a unionid; all
//! identities sharing a unionid belong to one local user.
//!
//! Rules:
//! - An identity seen for the first time joins the user already holding its unionid, or gets a new
//!   user (no WeCom link) when there is none.
//! - When identities with one unionid sit on several users (an identity learned its unionid late, or
//!   two first logins raced), the users CONVERGE: the surviving user is the one linked to a WeCom
//!   member, else the oldest (earliest created, then lowest id); every other user is merged into it
//!   (identities and sessions move, a merge record is written, a [`UserMerged`] event is returned).
//!   Two users each linked to a WeCom member are never merged automatically ([`IdentityError::MergeConflict`]).
//! - Identities an operator placed by hand (link/unlink, audited) are pinned: convergence never moves
//!   them and never merges their user.
//! - A unionid, once known, is never replaced (it cannot change upstream); re-resolving the same
//!   login changes nothing.
//!
//! openids and unionids are case-sensitive and compared exactly. The upstream's KEY spellings differ
//! (`openid`/`unionid` in OAuth and jscode2session answers, `openId`/`unionId` in decrypted
//! mini-program data): [`UpstreamWechatUser`] accepts both, so the difference stops at the edge.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use store::{
    AppKind, Db, IdentityAuditEntry, IdentityId, MemberLink, MergeReason, NewWechatIdentity, User,
    UserFields, UserId, UserMerge, UserMergeRecord, UserRole, UserStatus, WechatIdentity,
};
use wx_api::clock::Clock;

use super::IdentityError;

/// The actor recorded for automatic convergence.
pub const SYSTEM_ACTOR: &str = "system";
/// The name of a user created for a WeChat identity that came without a nickname.
pub const DEFAULT_WECHAT_NAME: &str = "WeChat user";

/// Profile values a login may carry (snsapi_userinfo, decrypted user info). `None` keeps what is stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WechatProfile {
    pub nickname: Option<String>,
    pub avatar: Option<String>,
}

/// One WeChat login to resolve to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WechatLogin {
    /// The app's appid (official account, mini program or website app).
    pub appid: String,
    pub app_kind: AppKind,
    pub openid: String,
    /// `None` when the upstream did not say (snsapi_base, an app not bound to an open-platform
    /// account); an empty string counts as `None`.
    pub unionid: Option<String>,
    pub profile: WechatProfile,
}

/// A WeChat user as any upstream answer spells it: OAuth and jscode2session (`openid`, `unionid`,
/// `nickname`, `headimgurl`) or decrypted mini-program data (`openId`, `unionId`, `nickName`,
/// `avatarUrl`). Unknown keys are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct UpstreamWechatUser {
    #[serde(alias = "openId")]
    pub openid: String,
    #[serde(default, alias = "unionId")]
    pub unionid: Option<String>,
    #[serde(default, alias = "nickName")]
    pub nickname: Option<String>,
    #[serde(default, alias = "avatarUrl")]
    pub headimgurl: Option<String>,
}

impl UpstreamWechatUser {
    /// The login for this user through app `appid`.
    pub fn into_login(self, appid: &str, app_kind: AppKind) -> WechatLogin {
        WechatLogin {
            appid: appid.to_owned(),
            app_kind,
            openid: self.openid,
            unionid: self.unionid,
            profile: WechatProfile {
                nickname: self.nickname.filter(|s| !s.is_empty()),
                avatar: self.headimgurl.filter(|s| !s.is_empty()),
            },
        }
    }
}

/// Two users became one. For the business system (`user.merged`, delivered by the webhook outbox
/// once it exists): ids of `from_user` should be replaced by `into_user`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserMerged {
    pub tenant: String,
    pub merge_id: i64,
    pub from_user: UserId,
    pub into_user: UserId,
    pub reason: MergeReason,
    pub unionid: Option<String>,
    pub actor: String,
    pub identities: Vec<IdentityId>,
    pub at_ms: i64,
}

impl UserMerged {
    fn from_record(tenant: &str, r: UserMergeRecord) -> UserMerged {
        UserMerged {
            tenant: tenant.to_owned(),
            merge_id: r.id.get(),
            from_user: r.from_user,
            into_user: r.into_user,
            reason: r.reason,
            unionid: r.unionid,
            actor: r.actor,
            identities: r.identities,
            at_ms: r.at_ms,
        }
    }
}

/// A domain event for the business system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "data")]
pub enum DomainEvent {
    #[serde(rename = "user.merged")]
    UserMerged(UserMerged),
}

impl DomainEvent {
    /// The event's type name, as webhooks will carry it.
    pub fn kind(&self) -> &'static str {
        match self {
            DomainEvent::UserMerged(_) => "user.merged",
        }
    }
}

/// What [`AccountGraph::resolve_wechat_identity`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The identity as stored now.
    pub identity: WechatIdentity,
    /// The user the person is, after any convergence.
    pub user_id: UserId,
    pub created_user: bool,
    pub created_identity: bool,
    /// The identity had no unionid before this login.
    pub learned_unionid: bool,
    /// Merges this resolution caused, in order.
    pub events: Vec<DomainEvent>,
}

/// A user with everything the business system needs to know about who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserProfile {
    pub user: User,
    pub roles: Vec<UserRole>,
    pub wecom: Vec<MemberLink>,
    pub wechat: Vec<WechatIdentity>,
}

/// The account graph over the store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AccountGraph {
    db: Db,
    clock: Arc<dyn Clock>,
}

/// How many times a resolution starts over after losing an insert race to another replica.
const RACE_RETRIES: usize = 3;

impl AccountGraph {
    pub fn new(db: Db, clock: Arc<dyn Clock>) -> AccountGraph {
        AccountGraph { db, clock }
    }

    /// Find or create the user behind a WeChat login, converging users that share the unionid (see
    /// the module doc for the rules). Idempotent: resolving the same login again changes nothing and
    /// returns no events. Profile values given replace the identity's stored ones.
    pub async fn resolve_wechat_identity(
        &self,
        tenant: &str,
        login: &WechatLogin,
    ) -> Result<Resolution, IdentityError> {
        validate(login)?;
        let unionid = login.unionid.as_deref().filter(|u| !u.is_empty());
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.resolve_once(tenant, login, unionid).await {
                // Another replica inserted the same identity between our lookup and insert: start
                // over and find it.
                Err(IdentityError::Store(store::Error::Conflict { .. }))
                    if attempt < RACE_RETRIES => {}
                other => return other,
            }
        }
    }

    async fn resolve_once(
        &self,
        tenant: &str,
        login: &WechatLogin,
        unionid: Option<&str>,
    ) -> Result<Resolution, IdentityError> {
        let now = self.clock.now_ms();
        let existing = self
            .db
            .wechat_identity_by_openid(tenant, &login.appid, &login.openid)
            .await?;
        match existing {
            Some(identity) => {
                self.resolve_known(tenant, login, unionid, identity, now)
                    .await
            }
            None => self.resolve_new(tenant, login, unionid, now).await,
        }
    }

    async fn resolve_known(
        &self,
        tenant: &str,
        login: &WechatLogin,
        unionid: Option<&str>,
        identity: WechatIdentity,
        now: i64,
    ) -> Result<Resolution, IdentityError> {
        let mut identity = identity;
        let mut events = Vec::new();
        if let (Some(stored), Some(u)) = (identity.unionid.as_deref(), unionid)
            && stored != u
        {
            // A unionid cannot change upstream; keep the stored one and say so.
            tracing::warn!(
                tenant,
                identity.id = identity.id.get(),
                "login brought a different unionid than the stored one; keeping the stored one"
            );
        }
        let learned = identity.unionid.is_none() && unionid.is_some();
        let effective = identity.unionid.clone().or(unionid.map(str::to_owned));
        match effective {
            // An operator placed this identity: record the unionid, move nobody.
            Some(u) if identity.pinned && learned => {
                self.db
                    .learn_wechat_unionid(tenant, identity.id, &u, now)
                    .await?;
            }
            Some(_) if identity.pinned => {}
            // Converge every user holding the unionid through an unpinned identity. Usually only
            // when the unionid is new to this identity, but also when two first logins raced and
            // each made a user: the next login of either joins them.
            Some(u) => {
                let holders = self.db.wechat_identities_by_unionid(tenant, &u).await?;
                let mut users: BTreeSet<UserId> = holders
                    .iter()
                    .filter(|h| !h.pinned)
                    .map(|h| h.user_id)
                    .collect();
                users.insert(identity.user_id);
                let mut learn = learned.then(|| (identity.id, u.clone()));
                if users.len() > 1 {
                    let survivor = self.survivor(tenant, &users).await?;
                    for from in users.iter().copied().filter(|id| *id != survivor) {
                        let record = self
                            .db
                            .merge_users(
                                tenant,
                                &UserMerge {
                                    from_user: from,
                                    into_user: survivor,
                                    reason: MergeReason::Unionid,
                                    unionid: Some(u.clone()),
                                    actor: SYSTEM_ACTOR.to_owned(),
                                    learn_unionid: learn.take(),
                                },
                                now,
                            )
                            .await?;
                        events.push(self.merged(tenant, record));
                    }
                }
                if let Some((id, u)) = learn {
                    self.db.learn_wechat_unionid(tenant, id, &u, now).await?;
                }
            }
            None => {}
        }
        let profile_changed = login
            .profile
            .nickname
            .as_ref()
            .is_some_and(|n| identity.nickname.as_ref() != Some(n))
            || login
                .profile
                .avatar
                .as_ref()
                .is_some_and(|a| identity.avatar.as_ref() != Some(a));
        if profile_changed {
            let nickname = login
                .profile
                .nickname
                .as_deref()
                .or(identity.nickname.as_deref());
            let avatar = login
                .profile
                .avatar
                .as_deref()
                .or(identity.avatar.as_deref());
            self.db
                .update_wechat_identity_profile(tenant, identity.id, nickname, avatar, now)
                .await?;
        }
        if learned || profile_changed || !events.is_empty() {
            identity = self.db.wechat_identity(tenant, identity.id).await?.ok_or(
                IdentityError::IdentityNotFound {
                    id: identity.id.get(),
                },
            )?;
        }
        Ok(Resolution {
            user_id: identity.user_id,
            identity,
            created_user: false,
            created_identity: false,
            learned_unionid: learned,
            events,
        })
    }

    async fn resolve_new(
        &self,
        tenant: &str,
        login: &WechatLogin,
        unionid: Option<&str>,
        now: i64,
    ) -> Result<Resolution, IdentityError> {
        let new = NewWechatIdentity {
            appid: login.appid.clone(),
            app_kind: login.app_kind,
            openid: login.openid.clone(),
            unionid: unionid.map(str::to_owned),
            nickname: login.profile.nickname.clone(),
            avatar: login.profile.avatar.clone(),
        };
        let holders = match unionid {
            Some(u) => self.db.wechat_identities_by_unionid(tenant, u).await?,
            None => Vec::new(),
        };
        if holders.is_empty() {
            let identity = self
                .db
                .create_wechat_user(tenant, &new_user_fields(&login.profile), &new, now)
                .await?;
            tracing::info!(
                tenant,
                identity.id = identity.id.get(),
                user.id = identity.user_id.get(),
                "new WeChat user"
            );
            return Ok(Resolution {
                user_id: identity.user_id,
                identity,
                created_user: true,
                created_identity: true,
                learned_unionid: false,
                events: Vec::new(),
            });
        }
        // Users holding the unionid through identities convergence may move; when every holder is
        // pinned, the operator's placement decides and nothing is merged.
        let movable: BTreeSet<UserId> = holders
            .iter()
            .filter(|h| !h.pinned)
            .map(|h| h.user_id)
            .collect();
        let candidates = if movable.is_empty() {
            holders.iter().map(|h| h.user_id).collect()
        } else {
            movable.clone()
        };
        let survivor = self.survivor(tenant, &candidates).await?;
        let mut events = Vec::new();
        for from in movable.iter().copied().filter(|id| *id != survivor) {
            let record = self
                .db
                .merge_users(
                    tenant,
                    &UserMerge {
                        from_user: from,
                        into_user: survivor,
                        reason: MergeReason::Unionid,
                        unionid: unionid.map(str::to_owned),
                        actor: SYSTEM_ACTOR.to_owned(),
                        learn_unionid: None,
                    },
                    now,
                )
                .await?;
            events.push(self.merged(tenant, record));
        }
        let identity = self
            .db
            .insert_wechat_identity(tenant, survivor, &new, now)
            .await?;
        Ok(Resolution {
            user_id: identity.user_id,
            identity,
            created_user: false,
            created_identity: true,
            learned_unionid: false,
            events,
        })
    }

    /// The user that survives a convergence of `users`: the one linked to a WeCom member, else the
    /// oldest (created first, then lowest id). More than one linked user is a conflict.
    async fn survivor(
        &self,
        tenant: &str,
        users: &BTreeSet<UserId>,
    ) -> Result<UserId, IdentityError> {
        let mut linked = Vec::new();
        let mut oldest: Option<(i64, UserId)> = None;
        for id in users.iter().copied() {
            let user = self
                .db
                .user(tenant, id)
                .await?
                .ok_or(IdentityError::UserNotFound { id: id.get() })?;
            if !self.db.wecom_links_of_user(tenant, id).await?.is_empty() {
                linked.push(id);
            }
            let key = (user.created_at_ms, id);
            if oldest.is_none_or(|o| key < o) {
                oldest = Some(key);
            }
        }
        match linked.as_slice() {
            [one] => Ok(*one),
            [] => oldest.map(|(_, id)| id).ok_or(IdentityError::InvalidInput {
                field: "users",
                problem: "no user to converge",
            }),
            many => Err(IdentityError::MergeConflict {
                users: many.iter().map(|u| u.get()).collect(),
            }),
        }
    }

    fn merged(&self, tenant: &str, record: UserMergeRecord) -> DomainEvent {
        tracing::info!(
            tenant,
            merge.id = record.id.get(),
            from = record.from_user.get(),
            into = record.into_user.get(),
            moved = record.identities.len(),
            "users merged"
        );
        DomainEvent::UserMerged(UserMerged::from_record(tenant, record))
    }

    /// Operator: move an identity to an existing user, pinned, audited. Sessions opened through the
    /// identity are revoked.
    pub async fn link_identity(
        &self,
        tenant: &str,
        identity: IdentityId,
        to_user: UserId,
        actor: &str,
        note: Option<&str>,
    ) -> Result<IdentityAuditEntry, IdentityError> {
        check_actor(actor)?;
        let now = self.clock.now_ms();
        self.db
            .link_wechat_identity(tenant, identity, to_user, actor, note, now)
            .await
            .map_err(|e| IdentityError::from_store(e, "identity", identity.get()))
    }

    /// Operator: detach an identity into a new user of its own (named after its nickname), pinned,
    /// audited. Sessions opened through the identity are revoked.
    pub async fn unlink_identity(
        &self,
        tenant: &str,
        identity: IdentityId,
        actor: &str,
        note: Option<&str>,
    ) -> Result<IdentityAuditEntry, IdentityError> {
        check_actor(actor)?;
        let now = self.clock.now_ms();
        let current = self
            .db
            .wechat_identity(tenant, identity)
            .await?
            .ok_or(IdentityError::IdentityNotFound { id: identity.get() })?;
        let fields = new_user_fields(&WechatProfile {
            nickname: current.nickname.clone(),
            avatar: current.avatar.clone(),
        });
        self.db
            .unlink_wechat_identity(tenant, identity, &fields, actor, note, now)
            .await
            .map_err(|e| IdentityError::from_store(e, "identity", identity.get()))
    }

    /// A user with roles, WeCom links and WeChat identities.
    pub async fn profile(
        &self,
        tenant: &str,
        user_id: UserId,
    ) -> Result<UserProfile, IdentityError> {
        let user = self
            .db
            .user(tenant, user_id)
            .await?
            .ok_or(IdentityError::UserNotFound { id: user_id.get() })?;
        Ok(UserProfile {
            roles: self.db.user_roles(tenant, user_id).await?,
            wecom: self.db.wecom_links_of_user(tenant, user_id).await?,
            wechat: self.db.wechat_identities_of_user(tenant, user_id).await?,
            user,
        })
    }
}

fn validate(login: &WechatLogin) -> Result<(), IdentityError> {
    if login.appid.trim().is_empty() {
        return Err(IdentityError::InvalidInput {
            field: "appid",
            problem: "is empty",
        });
    }
    if login.openid.trim().is_empty() {
        return Err(IdentityError::InvalidInput {
            field: "openid",
            problem: "is empty",
        });
    }
    Ok(())
}

fn check_actor(actor: &str) -> Result<(), IdentityError> {
    if actor.trim().is_empty() {
        return Err(IdentityError::InvalidInput {
            field: "actor",
            problem: "is empty: an operator action must name who did it",
        });
    }
    Ok(())
}

fn new_user_fields(profile: &WechatProfile) -> UserFields {
    UserFields {
        name: profile
            .nickname
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_WECHAT_NAME.to_owned()),
        mobile: None,
        email: None,
        avatar: profile.avatar.clone(),
        position: None,
        gender: None,
        status: UserStatus::Active,
    }
}
